"""cs231n assignment 3's word embedding, temporal affine and temporal softmax loss,
as students write them (rows as samples, cs231n's cache tuples, loops).

Correct styles, each in cs231n's exact signature (suffix = the style):

* ``word_embedding_forward/backward``: ``W[x]`` and ``np.add.at``;
  ``_loops``: nested loops over (n, t); ``_onehot``: a one-hot matmul;
  ``_vocab_loop``: one masked sum per vocabulary word.
* ``temporal_affine_forward/backward``: reshape to ``(N*T, D)`` (cs231n's
  given code, cache ``(x, w, b, out)``); ``_einsum``: einsum, cache ``(x, w)``;
  ``_loop_over_time``: one affine per time step, gradients accumulated.
* ``temporal_softmax_loss``: cs231n's given code (flattened, probabilities,
  ``mask_flat *``); ``_loop_over_time``: log-sum-exp per time step.

Bugs, one line each in the function's docstring, named ``NAME__bug``:
``word_embedding_backward__fancy_index_assignment``,
``temporal_affine_backward__db_summed_over_n_only``,
``temporal_affine_backward__dw_without_sum_over_t``,
``temporal_softmax_loss__mask_ignored_in_dx``,
``temporal_softmax_loss__mask_ignored_in_loss``,
``temporal_softmax_loss__loss_divided_by_nt``,
``temporal_softmax_loss__dx_not_divided_by_n``.

``STYLES`` and ``BUGS`` list them per layer: a layer's entry is a
``(forward, backward)`` pair, the loss's a single function returning
``(loss, dx)``.  Only numpy is imported.
"""

# Students unpack every shape and cache entry whether they use it or not.
# ruff: noqa: RUF059

import numpy as np

# --------------------------------------------------------------------------------------
# Word embedding


def word_embedding_forward(x, W):
    out, cache = None, None
    out = W[x]
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    dW = None
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def word_embedding_forward_loops(x, W):
    N, T = x.shape
    V, D = W.shape
    out = np.zeros((N, T, D), dtype=W.dtype)
    for n in range(N):
        for t in range(T):
            out[n, t, :] = W[x[n, t], :]
    cache = (x, W)
    return out, cache


def word_embedding_backward_loops(dout, cache):
    x, W = cache
    N, T = x.shape
    dW = np.zeros_like(W)
    for n in range(N):
        for t in range(T):
            dW[x[n, t], :] += dout[n, t, :]
    return dW


def word_embedding_forward_onehot(x, W):
    V, D = W.shape
    one_hot = np.eye(V, dtype=W.dtype)[x]  # (N, T, V)
    out = one_hot.dot(W)
    cache = (one_hot, W)
    return out, cache


def word_embedding_backward_onehot(dout, cache):
    one_hot, W = cache
    V, D = W.shape
    dW = one_hot.reshape(-1, V).T.dot(dout.reshape(-1, D))
    return dW


def word_embedding_backward_vocab_loop(dout, cache):
    x, W = cache
    V, D = W.shape
    dW = np.zeros_like(W)
    for v in range(V):
        dW[v] = dout[x == v].sum(axis=0)
    return dW


def word_embedding_backward__fancy_index_assignment(dout, cache):
    """Bug: dW[x] += dout writes a repeated word's row once, dropping the other occurrences."""
    x, W = cache
    dW = np.zeros_like(W)
    dW[x] += dout
    return dW


# --------------------------------------------------------------------------------------
# Temporal affine


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    M = b.shape[0]
    out = x.reshape(N * T, D).dot(w).reshape(N, T, M) + b
    cache = x, w, b, out
    return out, cache


def temporal_affine_backward(dout, cache):
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]

    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = dout.reshape(N * T, M).T.dot(x.reshape(N * T, D)).T
    db = dout.sum(axis=(0, 1))

    return dx, dw, db


def temporal_affine_forward_einsum(x, w, b):
    out = np.einsum("ntd,dm->ntm", x, w) + b
    cache = (x, w)
    return out, cache


def temporal_affine_backward_einsum(dout, cache):
    x, w = cache
    dx = np.einsum("ntm,dm->ntd", dout, w)
    dw = np.einsum("ntd,ntm->dm", x, dout)
    db = np.sum(dout, axis=(0, 1))
    return dx, dw, db


def temporal_affine_forward_loop_over_time(x, w, b):
    N, T, D = x.shape
    M = w.shape[1]
    out = np.zeros((N, T, M), dtype=x.dtype)
    for t in range(T):
        out[:, t, :] = x[:, t, :].dot(w) + b
    cache = (x, w, b)
    return out, cache


def temporal_affine_backward_loop_over_time(dout, cache):
    x, w, b = cache
    N, T, D = x.shape
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for t in range(T):
        dx[:, t, :] = dout[:, t, :].dot(w.T)
        dw += x[:, t, :].T.dot(dout[:, t, :])
        db += dout[:, t, :].sum(axis=0)
    return dx, dw, db


def temporal_affine_backward__db_summed_over_n_only(dout, cache):
    """Bug: db sums over N only; the (T, M) result is cut to its first row to fit b."""
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T.dot(dout.reshape(N * T, M))
    db = np.sum(dout, axis=0)
    db = db.reshape(-1, M)[0]
    return dx, dw, db


def temporal_affine_backward__dw_without_sum_over_t(dout, cache):
    """Bug: dw is assigned (=) per time step instead of accumulated, so only t = T-1 stays."""
    x, w, b = cache
    N, T, D = x.shape
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for t in range(T):
        dx[:, t, :] = dout[:, t, :].dot(w.T)
        dw = x[:, t, :].T.dot(dout[:, t, :])
        db += dout[:, t, :].sum(axis=0)
    return dx, dw, db


# --------------------------------------------------------------------------------------
# Temporal softmax loss


def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape

    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)

    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]

    if verbose:
        print("dx_flat: ", dx_flat.shape)

    dx = dx_flat.reshape(N, T, V)

    return loss, dx


def temporal_softmax_loss_loop_over_time(x, y, mask, verbose=False):
    N, T, V = x.shape
    loss = 0.0
    dx = np.zeros_like(x)
    for t in range(T):
        scores = x[:, t, :]
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        probs = np.exp(log_probs)
        m = mask[:, t]
        loss -= np.sum(log_probs[np.arange(N), y[:, t]] * m)
        dscores = probs.copy()
        dscores[np.arange(N), y[:, t]] -= 1
        dx[:, t, :] = dscores * m[:, None] / N
    loss /= N
    if verbose:
        print("loss: ", loss)
    return loss, dx


def _flat_probs(x):
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    probs = np.exp(x_flat - np.max(x_flat, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    return probs


def temporal_softmax_loss__mask_ignored_in_dx(x, y, mask, verbose=False):
    """Bug: the loss is masked but dx is not: padded steps still push gradient."""
    N, T, V = x.shape
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = _flat_probs(x)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx = dx_flat.reshape(N, T, V)
    return loss, dx


def temporal_softmax_loss__mask_ignored_in_loss(x, y, mask, verbose=False):
    """Bug: dx is masked but the loss sums every step, the padded ones included."""
    N, T, V = x.shape
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = _flat_probs(x)
    loss = -np.sum(np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    dx = dx_flat.reshape(N, T, V)
    return loss, dx


def temporal_softmax_loss__loss_divided_by_nt(x, y, mask, verbose=False):
    """Bug: the loss is divided by N*T (a mean over steps) while dx is divided by N."""
    N, T, V = x.shape
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = _flat_probs(x)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / (N * T)
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    dx = dx_flat.reshape(N, T, V)
    return loss, dx


def temporal_softmax_loss__dx_not_divided_by_n(x, y, mask, verbose=False):
    """Bug: the loss is divided by N but dx is not: the gradient is N times too large."""
    N, T, V = x.shape
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    probs = _flat_probs(x)
    loss = -np.sum(mask_flat * np.log(probs[np.arange(N * T), y_flat])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat *= mask_flat[:, None]
    dx = dx_flat.reshape(N, T, V)
    return loss, dx


STYLES = {
    "word_embedding": {
        "add_at": (word_embedding_forward, word_embedding_backward),
        "loops": (word_embedding_forward_loops, word_embedding_backward_loops),
        "onehot": (word_embedding_forward_onehot, word_embedding_backward_onehot),
        "vocab_loop": (word_embedding_forward, word_embedding_backward_vocab_loop),
    },
    "temporal_affine": {
        "reshape": (temporal_affine_forward, temporal_affine_backward),
        "einsum": (temporal_affine_forward_einsum, temporal_affine_backward_einsum),
        "loop_over_time": (
            temporal_affine_forward_loop_over_time,
            temporal_affine_backward_loop_over_time,
        ),
    },
    "temporal_softmax_loss": {
        "cs231n": temporal_softmax_loss,
        "loop_over_time": temporal_softmax_loss_loop_over_time,
    },
}

BUGS = {
    "word_embedding": {
        "fancy_index_assignment": (
            word_embedding_forward,
            word_embedding_backward__fancy_index_assignment,
        ),
    },
    "temporal_affine": {
        "db_summed_over_n_only": (
            temporal_affine_forward,
            temporal_affine_backward__db_summed_over_n_only,
        ),
        "dw_without_sum_over_t": (
            temporal_affine_forward_loop_over_time,
            temporal_affine_backward__dw_without_sum_over_t,
        ),
    },
    "temporal_softmax_loss": {
        "mask_ignored_in_dx": temporal_softmax_loss__mask_ignored_in_dx,
        "mask_ignored_in_loss": temporal_softmax_loss__mask_ignored_in_loss,
        "loss_divided_by_nt": temporal_softmax_loss__loss_divided_by_nt,
        "dx_not_divided_by_n": temporal_softmax_loss__dx_not_divided_by_n,
    },
}
