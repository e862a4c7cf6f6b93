"""cs231n assignment 3's vanilla RNN and LSTM, as students write them (rows as samples,
cs231n's cache tuples, a loop over time), correct and with named bugs.

Correct styles, each in cs231n's exact signature (suffix = the style):

* no suffix: the step caches ``(x, prev_h, Wx, Wh, next_h)`` (the LSTM's
  ``(x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)``), ``tanh' = 1 - next_h**2``
  from the output, the sequence's cache a list of step caches, and the
  sequence backward calling the step backward (cs231n's usual solution; the
  stable ``sigmoid`` that cs231n's ``rnn_layers.py`` gives).
* ``_preactivation``: the caches keep the pre-activation (``z``, the LSTM's
  ``a``), ``tanh'`` is ``1 - np.tanh(z)**2`` recomputed from it, the gates are
  recomputed in the backward (``np.split``, the naive ``1 / (1 + np.exp(-a))``),
  the sequence cache holds the stacked arrays and the BPTT loop is inlined.

Bugs, one line each in the function's docstring, named ``NAME__bug`` (the
forward of a backward-only bug is the correct one under the bug's name):
``no_carried_dh`` (BPTT uses only ``dh[:, t]``), ``overwritten_dW`` (``dWx``,
``dWh`` of the last step processed, t = 0, not the sum), ``gate_order_ifgo`` (the
gates split as i, f, g, o in both passes), ``dc_not_carried`` (``dprev_c = f *``
the cell gradient from ``dnext_h`` only), ``tanh_prime_linear`` (``1 - tanh``
for ``tanh' = 1 - tanh**2``).

``STYLES`` and ``BUGS`` list them per layer (``rnn_step``, ``rnn``,
``lstm_step``, ``lstm``): a ``(forward, backward)`` pair per style, a
``(forward, backward, description)`` triple per bug.  Only numpy is imported.
"""

import numpy as np

# --------------------------------------------------------------------------------------
# Vanilla RNN, cs231n's usual solution


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h, cache = None, None
    next_h = np.tanh(prev_h.dot(Wh) + x.dot(Wx) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    dx, dprev_h, dWx, dWh, db = None, None, None, None, None
    x, prev_h, Wx, Wh, next_h = cache
    dtanh = dnext_h * (1 - next_h**2)
    dx = dtanh.dot(Wx.T)
    dprev_h = dtanh.dot(Wh.T)
    dWx = x.T.dot(dtanh)
    dWh = prev_h.T.dot(dtanh)
    db = np.sum(dtanh, axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    h, cache = None, None
    N, T, _D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    cache = []
    prev_h = h0
    for t in range(T):
        next_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = next_h
        cache.append(step_cache)
        prev_h = next_h
    return h, cache


def rnn_backward(dh, cache):
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev_h, cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    return dx, dh0, dWx, dWh, db


# --------------------------------------------------------------------------------------
# Vanilla RNN, the pre-activation kept, BPTT inlined


def rnn_step_forward_preactivation(x, prev_h, Wx, Wh, b):
    z = x @ Wx + prev_h @ Wh + b
    next_h = np.tanh(z)
    cache = (x, prev_h, Wx, Wh, b, z)
    return next_h, cache


def rnn_step_backward_preactivation(dnext_h, cache):
    x, prev_h, Wx, Wh, _b, z = cache
    dz = (1 - np.tanh(z) ** 2) * dnext_h
    dx = dz @ Wx.T
    dprev_h = dz @ Wh.T
    dWx = x.T @ dz
    dWh = prev_h.T @ dz
    db = dz.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward_preactivation(x, h0, Wx, Wh, b):
    N, T, _D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    z = np.zeros((N, T, H))
    prev_h = h0
    for t in range(T):
        z[:, t, :] = x[:, t, :] @ Wx + prev_h @ Wh + b
        h[:, t, :] = np.tanh(z[:, t, :])
        prev_h = h[:, t, :]
    cache = (x, h0, Wx, Wh, b, h, z)
    return h, cache


def rnn_backward_preactivation(dh, cache):
    x, h0, Wx, Wh, b, h, z = cache
    _N, T, _H = dh.shape
    dx = np.zeros_like(x)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    db = np.zeros_like(b)
    dnext = np.zeros_like(h0)
    for t in range(T - 1, -1, -1):
        dz = (dh[:, t, :] + dnext) * (1 - np.tanh(z[:, t, :]) ** 2)
        prev_h = h0 if t == 0 else h[:, t - 1, :]
        dx[:, t, :] = dz @ Wx.T
        dWx += x[:, t, :].T @ dz
        dWh += prev_h.T @ dz
        db += dz.sum(axis=0)
        dnext = dz @ Wh.T
    dh0 = dnext
    return dx, dh0, dWx, dWh, db


# --------------------------------------------------------------------------------------
# LSTM, cs231n's usual solution


def sigmoid(x):
    """A numerically stable version of the logistic sigmoid function (cs231n's)."""
    pos_mask = x >= 0
    neg_mask = x < 0
    z = np.zeros_like(x)
    z[pos_mask] = np.exp(-x[pos_mask])
    z[neg_mask] = np.exp(x[neg_mask])
    top = np.ones_like(x)
    top[neg_mask] = z[neg_mask]
    return top / (1 + z)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    next_h, next_c, cache = None, None, None
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    dx, dprev_h, dprev_c, dWx, dWh, db = None, None, None, None, None, None
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    do = dnext_h * tanh_c
    di = dc * g
    df = dc * prev_c
    dg = dc * i
    dprev_c = dc * f
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_o = do * o * (1 - o)
    da_g = dg * (1 - g**2)
    da = np.hstack((da_i, da_f, da_o, da_g))
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = np.sum(da, axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    h, cache = None, None
    N, T, _D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    cache = []
    prev_h = h0
    prev_c = np.zeros_like(h0)
    for t in range(T):
        next_h, next_c, step_cache = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = next_h
        cache.append(step_cache)
        prev_h, prev_c = next_h, next_c
    return h, cache


def lstm_backward(dh, cache):
    dx, dh0, dWx, dWh, db = None, None, None, None, None
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, 4 * H))
    dWh = np.zeros((H, 4 * H))
    db = np.zeros(4 * H)
    dprev_h = np.zeros((N, H))
    dprev_c = np.zeros((N, H))
    for t in reversed(range(T)):
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t, :] + dprev_h, dprev_c, cache[t]
        )
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    return dx, dh0, dWx, dWh, db


# --------------------------------------------------------------------------------------
# LSTM, the pre-activation kept, the gates recomputed, BPTT inlined


def _sigmoid_naive(a):
    return 1 / (1 + np.exp(-a))


def lstm_step_forward_preactivation(x, prev_h, prev_c, Wx, Wh, b):
    a = x @ Wx + prev_h @ Wh + b
    ai, af, ao, ag = np.split(a, 4, axis=1)
    i, f, o, g = _sigmoid_naive(ai), _sigmoid_naive(af), _sigmoid_naive(ao), np.tanh(ag)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, a, next_c)
    return next_h, next_c, cache


def _lstm_step_backward_from_a(dnext_h, dnext_c, x, prev_h, prev_c, Wx, Wh, a, next_c):
    ai, af, ao, ag = np.split(a, 4, axis=1)
    i, f, o, g = _sigmoid_naive(ai), _sigmoid_naive(af), _sigmoid_naive(ao), np.tanh(ag)
    dc = dnext_c + dnext_h * o * (1 - np.tanh(next_c) ** 2)
    da = np.concatenate(
        [
            dc * g * i * (1 - i),
            dc * prev_c * f * (1 - f),
            dnext_h * np.tanh(next_c) * o * (1 - o),
            dc * i * (1 - np.tanh(ag) ** 2),
        ],
        axis=1,
    )
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_backward_preactivation(dnext_h, dnext_c, cache):
    return _lstm_step_backward_from_a(dnext_h, dnext_c, *cache)


def lstm_forward_preactivation(x, h0, Wx, Wh, b):
    N, T, _D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    c = np.zeros((N, T, H))
    a = np.zeros((N, T, 4 * H))
    prev_h, prev_c = h0, np.zeros((N, H))
    for t in range(T):
        next_h, next_c, (_, _, _, _, _, a_t, _) = lstm_step_forward_preactivation(
            x[:, t, :], prev_h, prev_c, Wx, Wh, b
        )
        h[:, t, :], c[:, t, :], a[:, t, :] = next_h, next_c, a_t
        prev_h, prev_c = next_h, next_c
    cache = (x, h0, Wx, Wh, h, c, a)
    return h, cache


def lstm_backward_preactivation(dh, cache):
    x, h0, Wx, Wh, h, c, a = cache
    N, T, H = dh.shape
    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)
    dnext_h, dnext_c = np.zeros((N, H)), np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        prev_h = h0 if t == 0 else h[:, t - 1, :]
        prev_c = np.zeros((N, H)) if t == 0 else c[:, t - 1, :]
        dx[:, t, :], dnext_h, dnext_c, dWx_t, dWh_t, db_t = _lstm_step_backward_from_a(
            dh[:, t, :] + dnext_h, dnext_c, x[:, t, :], prev_h, prev_c, Wx, Wh,
            a[:, t, :], c[:, t, :],
        )  # fmt: skip
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dnext_h, dWx, dWh, db


# --------------------------------------------------------------------------------------
# Bugs


def _rnn_bptt(dh, cache, step_backward, carry=True, accumulate=True):
    """cs231n's rnn_backward loop, with the step backward and the two BPTT slips as knobs."""
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh, db = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        upstream = dh[:, t, :] + dprev_h if carry else dh[:, t, :]
        dx[:, t, :], dprev_h, dWx_t, dWh_t, db_t = step_backward(upstream, cache[t])
        if accumulate:
            dWx += dWx_t
            dWh += dWh_t
        else:
            dWx = dWx_t
            dWh = dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def _lstm_bptt(dh, cache, step_backward, carry=True, accumulate=True):
    """cs231n's lstm_backward loop, with the step backward and the two BPTT slips as knobs."""
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx, dWh, db = np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        upstream = dh[:, t, :] + dprev_h if carry else dh[:, t, :]
        dx[:, t, :], dprev_h, dprev_c, dWx_t, dWh_t, db_t = step_backward(
            upstream, dprev_c, cache[t]
        )
        if accumulate:
            dWx += dWx_t
            dWh += dWh_t
        else:
            dWx = dWx_t
            dWh = dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


rnn_forward__no_carried_dh = rnn_forward


def rnn_backward__no_carried_dh(dh, cache):
    """BPTT feeds each step only dh[:, t]: the dprev_h from step t + 1 is dropped."""
    return _rnn_bptt(dh, cache, rnn_step_backward, carry=False)


rnn_forward__overwritten_dW = rnn_forward


def rnn_backward__overwritten_dW(dh, cache):
    """dWx = dWx_t and dWh = dWh_t at each step: the last step processed (t = 0) wins."""
    return _rnn_bptt(dh, cache, rnn_step_backward, accumulate=False)


rnn_step_forward__tanh_prime_linear = rnn_step_forward


def rnn_step_backward__tanh_prime_linear(dnext_h, cache):
    """tanh'(z) taken as 1 - tanh(z) instead of 1 - tanh(z)**2."""
    x, prev_h, Wx, Wh, next_h = cache
    dtanh = dnext_h * (1 - next_h)
    return dtanh.dot(Wx.T), dtanh.dot(Wh.T), x.T.dot(dtanh), prev_h.T.dot(dtanh), dtanh.sum(0)


rnn_forward__tanh_prime_linear = rnn_forward


def rnn_backward__tanh_prime_linear(dh, cache):
    """BPTT over the step whose tanh'(z) is 1 - tanh(z) instead of 1 - tanh(z)**2."""
    return _rnn_bptt(dh, cache, rnn_step_backward__tanh_prime_linear)


lstm_forward__no_carried_dh = lstm_forward


def lstm_backward__no_carried_dh(dh, cache):
    """BPTT feeds each step only dh[:, t] as dnext_h (dprev_c is still carried)."""
    return _lstm_bptt(dh, cache, lstm_step_backward, carry=False)


lstm_forward__overwritten_dW = lstm_forward


def lstm_backward__overwritten_dW(dh, cache):
    """dWx = dWx_t and dWh = dWh_t at each step: the last step processed (t = 0) wins."""
    return _lstm_bptt(dh, cache, lstm_step_backward, accumulate=False)


def lstm_step_forward__gate_order_ifgo(x, prev_h, prev_c, Wx, Wh, b):
    """The gates split as i, f, g, o (g = tanh of the third block), not cs231n's i, f, o, g."""
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    g = np.tanh(a[:, 2 * H : 3 * H])
    o = sigmoid(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)
    return next_h, next_c, cache


def lstm_step_backward__gate_order_ifgo(dnext_h, dnext_c, cache):
    """The backward of the i, f, g, o split: da stacked as (i, f, g, o)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    da = np.hstack(
        (dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dc * i * (1 - g**2),
         dnext_h * tanh_c * o * (1 - o))
    )  # fmt: skip
    return da.dot(Wx.T), da.dot(Wh.T), dc * f, x.T.dot(da), prev_h.T.dot(da), da.sum(0)


def lstm_forward__gate_order_ifgo(x, h0, Wx, Wh, b):
    """The gates split as i, f, g, o at every step, not cs231n's i, f, o, g."""
    N, T, _D = x.shape
    h = np.zeros((N, T, h0.shape[1]))
    cache = []
    prev_h, prev_c = h0, np.zeros_like(h0)
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward__gate_order_ifgo(
            x[:, t, :], prev_h, prev_c, Wx, Wh, b
        )
        h[:, t, :] = prev_h
        cache.append(step_cache)
    return h, cache


def lstm_backward__gate_order_ifgo(dh, cache):
    """BPTT over the i, f, g, o step's backward: da stacked as (i, f, g, o)."""
    return _lstm_bptt(dh, cache, lstm_step_backward__gate_order_ifgo)


lstm_step_forward__dc_not_carried = lstm_step_forward


def lstm_step_backward__dc_not_carried(dnext_h, dnext_c, cache):
    """dprev_c = f * (the cell gradient from dnext_h only): dnext_c not passed back."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc_from_h = dnext_h * o * (1 - tanh_c**2)
    dc = dnext_c + dc_from_h
    da = np.hstack(
        (dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
         dc * i * (1 - g**2))
    )  # fmt: skip
    dprev_c = f * dc_from_h
    return da.dot(Wx.T), da.dot(Wh.T), dprev_c, x.T.dot(da), prev_h.T.dot(da), da.sum(0)


lstm_forward__dc_not_carried = lstm_forward


def lstm_backward__dc_not_carried(dh, cache):
    """BPTT with dprev_c = f * (the cell gradient from dnext_h only): dc not carried."""
    return _lstm_bptt(dh, cache, lstm_step_backward__dc_not_carried)


lstm_step_forward__tanh_prime_linear = lstm_step_forward


def lstm_step_backward__tanh_prime_linear(dnext_h, dnext_c, cache):
    """tanh' taken as 1 - tanh (for tanh(next_c) and for g) instead of 1 - tanh**2."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c)
    da = np.hstack(
        (dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
         dc * i * (1 - g))
    )  # fmt: skip
    return da.dot(Wx.T), da.dot(Wh.T), dc * f, x.T.dot(da), prev_h.T.dot(da), da.sum(0)


lstm_forward__tanh_prime_linear = lstm_forward


def lstm_backward__tanh_prime_linear(dh, cache):
    """BPTT over the step whose tanh' is 1 - tanh (for tanh(next_c) and g), not 1 - tanh**2."""
    return _lstm_bptt(dh, cache, lstm_step_backward__tanh_prime_linear)


# --------------------------------------------------------------------------------------
# tanh written by hand, as students do when they forget np.tanh (exact to u absolutely,
# not relatively: 0 where |a| is below u)


def rnn_step_forward_exp_tanh(x, prev_h, Wx, Wh, b):
    h = x.dot(Wx) + prev_h.dot(Wh) + b
    next_h = (np.exp(h) - np.exp(-h)) / (np.exp(h) + np.exp(-h))
    cache = (next_h, Wx, Wh, x, prev_h)
    return next_h, cache


def rnn_step_backward_exp_tanh(dnext_h, cache):
    next_h, Wx, Wh, x, prev_h = cache
    dh = (1 - next_h**2) * dnext_h
    return dh.dot(Wx.T), dh.dot(Wh.T), x.T.dot(dh), prev_h.T.dot(dh), np.sum(dh, axis=0)


def lstm_step_forward_sigmoid_tanh(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    tanh = lambda v: sigmoid(2 * v) - sigmoid(-2 * v)  # noqa: E731  # as students write it
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H])
    g = tanh(a[:, 3 * H :])
    next_c = prev_c * f + i * g
    next_h = tanh(next_c) * o
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward_sigmoid_tanh(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = sigmoid(2 * next_c) - sigmoid(-2 * next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    da = np.hstack((dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                    dnext_h * tanh_c * o * (1 - o), dc * i * (1 - g**2)))  # fmt: skip
    return da.dot(Wx.T), da.dot(Wh.T), dc * f, x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


STYLES = {
    "rnn_step": {
        "cs231n": (rnn_step_forward, rnn_step_backward),
        "preactivation": (rnn_step_forward_preactivation, rnn_step_backward_preactivation),
        "exp_tanh": (rnn_step_forward_exp_tanh, rnn_step_backward_exp_tanh),
    },
    "rnn": {
        "cs231n": (rnn_forward, rnn_backward),
        "preactivation": (rnn_forward_preactivation, rnn_backward_preactivation),
    },
    "lstm_step": {
        "cs231n": (lstm_step_forward, lstm_step_backward),
        "preactivation": (lstm_step_forward_preactivation, lstm_step_backward_preactivation),
        "sigmoid_tanh": (lstm_step_forward_sigmoid_tanh, lstm_step_backward_sigmoid_tanh),
    },
    "lstm": {
        "cs231n": (lstm_forward, lstm_backward),
        "preactivation": (lstm_forward_preactivation, lstm_backward_preactivation),
    },
}


def _bug(forward, backward):
    """A bug's ``(forward, backward, description)``: the description is the docstring's line."""
    documented = forward if forward.__doc__ else backward  # a correct forward has no docstring
    return forward, backward, documented.__doc__.strip()


BUGS = {
    "rnn_step": {
        "tanh_prime_linear": _bug(
            rnn_step_forward__tanh_prime_linear, rnn_step_backward__tanh_prime_linear
        ),
    },
    "rnn": {
        "no_carried_dh": _bug(rnn_forward__no_carried_dh, rnn_backward__no_carried_dh),
        "overwritten_dW": _bug(rnn_forward__overwritten_dW, rnn_backward__overwritten_dW),
        "tanh_prime_linear": _bug(rnn_forward__tanh_prime_linear, rnn_backward__tanh_prime_linear),
    },
    "lstm_step": {
        "gate_order_ifgo": _bug(
            lstm_step_forward__gate_order_ifgo, lstm_step_backward__gate_order_ifgo
        ),
        "dc_not_carried": _bug(
            lstm_step_forward__dc_not_carried, lstm_step_backward__dc_not_carried
        ),
        "tanh_prime_linear": _bug(
            lstm_step_forward__tanh_prime_linear, lstm_step_backward__tanh_prime_linear
        ),
    },
    "lstm": {
        "no_carried_dh": _bug(lstm_forward__no_carried_dh, lstm_backward__no_carried_dh),
        "overwritten_dW": _bug(lstm_forward__overwritten_dW, lstm_backward__overwritten_dW),
        "gate_order_ifgo": _bug(lstm_forward__gate_order_ifgo, lstm_backward__gate_order_ifgo),
        "dc_not_carried": _bug(lstm_forward__dc_not_carried, lstm_backward__dc_not_carried),
        "tanh_prime_linear": _bug(
            lstm_forward__tanh_prime_linear, lstm_backward__tanh_prime_linear
        ),
    },
}
