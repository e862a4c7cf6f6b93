"""The vanilla RNN and the LSTM, one step and a whole sequence, forward and backward by hand.

Rows are samples, as in cs231n's assignment 3: ``N`` samples, ``T`` time steps,
``D`` input features, ``H`` hidden units.

The vanilla RNN step, forward and backward side by side (``dz`` is ``dL/dz``)::

    z      = prev_h Wh + x Wx + b     (N, H)    dz      = dnext_h ⊙ (1 − next_h²)   (N, H)
    next_h = tanh(z)                  (N, H)    dx      = dz Wxᵀ                     (N, D)
      x (N, D)  prev_h (N, H)                   dprev_h = dz Whᵀ                     (N, H)
      Wx (D, H)  Wh (H, H)  b (H,)              dWx = xᵀ dz (D, H)   dWh = prev_hᵀ dz (H, H)
                                                db  = Σ_n dz                         (H,)

The LSTM step (gates in cs231n's order i, f, o, g; ``σ`` the logistic sigmoid)::

    a = x Wx + prev_h Wh + b          (N, 4H)   dc = dnext_c + dnext_h ⊙ o ⊙ (1 − tanh²(next_c))
    i = σ(a[:, :H])                   (N, H)    do = dnext_h ⊙ tanh(next_c)
    f = σ(a[:, H:2H])                 (N, H)    di = dc ⊙ g    df = dc ⊙ prev_c    dg = dc ⊙ i
    o = σ(a[:, 2H:3H])                (N, H)    dprev_c = dc ⊙ f                      (N, H)
    g = tanh(a[:, 3H:])               (N, H)    da = [di ⊙ i(1−i), df ⊙ f(1−f),
    next_c = f ⊙ prev_c + i ⊙ g       (N, H)          do ⊙ o(1−o), dg ⊙ (1−g²)]       (N, 4H)
    next_h = o ⊙ tanh(next_c)         (N, H)    dx = da Wxᵀ (N, D)   dprev_h = da Whᵀ (N, H)
      Wx (D, 4H)  Wh (H, 4H)  b (4H,)           dWx = xᵀ da   dWh = prev_hᵀ da   db = Σ_n da

A sequence runs the step ``T`` times, ``x`` (N, T, D) in, ``h`` (N, T, H) out, from
``h0`` (N, H) (and, for the LSTM, ``c0 = 0``).  Backprop through time runs the step
backward from ``t = T − 1`` down to 0; the upstream gradient of ``h_t`` is
``dh[:, t]`` *plus* what flows back from step ``t + 1`` (``dprev_h``; the LSTM also
carries ``dprev_c``), and the weights' gradients are summed over the steps, since
every step uses the same ``Wx``, ``Wh``, ``b``.

Every forward is written once over an array namespace ``xp`` (NumPy by default;
the oracle passes ``jax.numpy`` and differentiates the same definition).  It
returns ``(out, cache)``, the cache a dict of named arrays; the backward, in NumPy,
returns the gradients in the order of the forward's array inputs.  The dtype of
the inputs (all float32 or all float64) is the dtype of every output.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from manual_bp.activations import sigmoid
from manual_bp.validation import (
    check_cache,
    check_float_array,
    check_ndim,
    check_same_dtype,
    check_shape,
)

Array = Any  # a NumPy array, or a jax array when xp is jax.numpy
Cache = dict[str, Array]


DERIVATION = """\
Vanilla RNN, one step.  Rows are samples: x (N, D), prev_h (N, H), Wx (D, H),
Wh (H, H), b (H,).

  forward    z = prev_h Wh + x Wx + b            (N, H)
             next_h = tanh(z)                    (N, H)

  backward   dz = dnext_h ⊙ tanh'(z) = dnext_h ⊙ (1 - next_h²)
                  (tanh' = 1 - tanh², read from the output: z is not kept)
             z is linear in each input, so each gradient is one product with dz:
             dx      = dz Wxᵀ                    (N, D)
             dprev_h = dz Whᵀ                    (N, H)
             dWx     = xᵀ dz                     (D, H)   sums over the batch
             dWh     = prev_hᵀ dz                (H, H)   sums over the batch
             db      = Σ_n dz[n]                 (H,)     b is added to every row

Vanilla RNN, a sequence: x (N, T, D), h0 (N, H), h (N, T, H).

  forward    h_t = step(x_t, h_(t-1)) for t = 0 .. T-1, with h_(-1) = h0

  backward   (backprop through time) h_t reaches the loss twice: directly, through
             dh[:, t], and through h_(t+1), which reads it as prev_h.  So, from
             t = T-1 down to 0, with carry = 0 at t = T-1:
               dx_t, carry, dWx_t, dWh_t, db_t = step_backward(dh[:, t] + carry)
             dh0 = the last carry;  dWx = Σ_t dWx_t,  dWh = Σ_t dWh_t,  db = Σ_t db_t
             (one Wx, Wh, b is used at every step: their gradients add up).

LSTM, one step: x (N, D), prev_h, prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).

  forward    a = x Wx + prev_h Wh + b             (N, 4H)
             i = σ(a[:, :H])    f = σ(a[:, H:2H])    o = σ(a[:, 2H:3H])
             g = tanh(a[:, 3H:])                  each (N, H)
             next_c = f ⊙ prev_c + i ⊙ g          (N, H)
             next_h = o ⊙ tanh(next_c)            (N, H)

  backward   next_c reaches the loss through dnext_c and through next_h:
             dc = dnext_c + dnext_h ⊙ o ⊙ (1 - tanh²(next_c))
             do = dnext_h ⊙ tanh(next_c)
             di = dc ⊙ g     df = dc ⊙ prev_c     dg = dc ⊙ i
             dprev_c = dc ⊙ f                     (the cell's own path back)
             through the nonlinearities, σ' = σ (1 - σ) and tanh' = 1 - tanh²:
             da = [di ⊙ i(1-i) | df ⊙ f(1-f) | do ⊙ o(1-o) | dg ⊙ (1-g²)]   (N, 4H)
             dx = da Wxᵀ    dprev_h = da Whᵀ    dWx = xᵀ da    dWh = prev_hᵀ da
             db = Σ_n da[n]                       (4H,)

LSTM, a sequence: x (N, T, D), h0 (N, H), c0 = 0, h (N, T, H).

  backward   as the RNN's, carrying two gradients back from step t+1:
               dx_t, dh_carry, dc_carry, ... =
                   step_backward(dh[:, t] + dh_carry, dc_carry)
             both carries start at 0; dh0 = the last dh_carry (c0 is a constant).
"""


# --- input checks -----------------------------------------------------------------


FLOAT_ARRAY = "a float32 or float64 array"  # how the inputs word their dtype


def _as_float_array(value: object, name: str, xp: ModuleType) -> Array:
    """``value`` as an array of xp (a jax tracer passes as is), float32 or float64."""
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        try:
            value = np.asarray(value) if xp is np else xp.asarray(value)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name}: expected an array, got {type(value).__name__}: {error}"
            ) from None
    check_float_array(value, name, expected=FLOAT_ARRAY)
    return value


def _check_shape(array: Array, name: str, layout: str, expected: tuple[int, ...]) -> None:
    """``array`` has the axes ``layout`` names, of the sizes ``expected``."""
    check_ndim(tuple(array.shape), name, layout)
    check_shape(array, name, expected, layout=layout)


def _check_same_dtype(arrays: Mapping[str, Array]) -> None:
    """Every array has the first one's dtype: float32 in, float32 out, never a silent mix."""
    (first_name, first), *others = arrays.items()
    for name, array in others:
        check_same_dtype(array.dtype, name, first.dtype, f"like {first_name}")


def _check_positive_sizes(sizes: Mapping[str, int], where: str) -> None:
    for letter, size in sizes.items():
        if size < 1:
            raise ValueError(f"{where}: expected {letter} >= 1, got shape with {letter} = {size}")


def _check_weights(
    Wx: Array, Wh: Array, b: Array, D: int, H: int, gates: int
) -> None:  # gates: 1 for the RNN, 4 for the LSTM
    width = "H" if gates == 1 else "4H"
    _check_shape(Wx, "Wx", f"(D, {width})", (D, gates * H))
    _check_shape(Wh, "Wh", f"(H, {width})", (H, gates * H))
    _check_shape(b, "b", f"({width},)", (gates * H,))


def _check_step_inputs(arrays: dict[str, object], gates: int, xp: ModuleType) -> dict[str, Array]:
    """``x`` (N, D), ``prev_h`` [``prev_c``] (N, H), then the weights: checked, as arrays."""
    checked = {name: _as_float_array(value, name, xp) for name, value in arrays.items()}
    x, prev_h = checked["x"], checked["prev_h"]
    check_ndim(tuple(x.shape), "x", "(N, D)")
    N, D = x.shape
    check_ndim(tuple(prev_h.shape), "prev_h", "(N, H)")
    H = prev_h.shape[1]
    _check_shape(prev_h, "prev_h", "(N, H)", (N, H))
    if "prev_c" in checked:
        _check_shape(checked["prev_c"], "prev_c", "(N, H)", (N, H))
    _check_positive_sizes({"N": N, "D": D, "H": H}, "x, prev_h")
    _check_weights(checked["Wx"], checked["Wh"], checked["b"], D, H, gates)
    _check_same_dtype(checked)
    return checked


def _check_sequence_inputs(
    arrays: dict[str, object], gates: int, xp: ModuleType
) -> dict[str, Array]:
    """``x`` (N, T, D), ``h0`` (N, H), then the weights: checked, as arrays."""
    checked = {name: _as_float_array(value, name, xp) for name, value in arrays.items()}
    x, h0 = checked["x"], checked["h0"]
    check_ndim(tuple(x.shape), "x", "(N, T, D)")
    N, T, D = x.shape
    check_ndim(tuple(h0.shape), "h0", "(N, H)")
    H = h0.shape[1]
    _check_shape(h0, "h0", "(N, H)", (N, H))
    _check_positive_sizes({"N": N, "T": T, "D": D, "H": H}, "x, h0")
    _check_weights(checked["Wx"], checked["Wh"], checked["b"], D, H, gates)
    _check_same_dtype(checked)
    return checked


def _check_upstream(dout: object, name: str, like: Array) -> np.ndarray:
    """An upstream gradient: the shape and dtype of the output it belongs to."""
    array = _as_float_array(dout, name, np)
    check_shape(array, name, tuple(like.shape), why="(the forward's output)")
    check_same_dtype(array.dtype, name, like.dtype, "(the forward's)")
    return np.asarray(array)


# --- vanilla RNN ------------------------------------------------------------------

RNN_STEP_KEYS = ("x", "prev_h", "Wx", "Wh", "next_h")
RNN_KEYS = ("x", "h0", "Wx", "Wh", "h")


def _rnn_step(x: Array, prev_h: Array, Wx: Array, Wh: Array, b: Array, xp: ModuleType) -> Array:
    """``tanh(prev_h Wh + x Wx + b)``, unchecked."""
    return xp.tanh(prev_h @ Wh + x @ Wx + b)


def rnn_step_forward(
    x: Array, prev_h: Array, Wx: Array, Wh: Array, b: Array, *, xp: ModuleType = np
) -> tuple[Array, Cache]:
    """``next_h = tanh(prev_h Wh + x Wx + b)`` (N, H), and the cache ``RNN_STEP_KEYS``.

    ``x`` (N, D), ``prev_h`` (N, H), ``Wx`` (D, H), ``Wh`` (H, H), ``b`` (H,).
    """
    checked = _check_step_inputs({"x": x, "prev_h": prev_h, "Wx": Wx, "Wh": Wh, "b": b}, 1, xp)
    x, prev_h, Wx, Wh, b = checked.values()
    next_h = _rnn_step(x, prev_h, Wx, Wh, b, xp)
    return next_h, {"x": x, "prev_h": prev_h, "Wx": Wx, "Wh": Wh, "next_h": next_h}


def _rnn_step_backward(
    dnext_h: np.ndarray, cache: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, ...]:
    """``(dx, dprev_h, dWx, dWh, db)``, unchecked."""
    next_h = cache["next_h"]
    dz = dnext_h * (1 - next_h * next_h)  # tanh' = 1 - tanh², from the output
    dx = dz @ cache["Wx"].T
    dprev_h = dz @ cache["Wh"].T
    dWx = cache["x"].T @ dz
    dWh = cache["prev_h"].T @ dz
    db = dz.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_step_backward(
    dnext_h: Array, cache: Mapping[str, Array]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dprev_h, dWx, dWh, db)`` from ``dnext_h`` (N, H) and ``rnn_step_forward``'s cache."""
    cache = check_cache(cache, RNN_STEP_KEYS, "rnn_step_forward")
    dnext_h = _check_upstream(dnext_h, "dnext_h", cache["next_h"])
    dx, dprev_h, dWx, dWh, db = _rnn_step_backward(dnext_h, cache)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(
    x: Array, h0: Array, Wx: Array, Wh: Array, b: Array, *, xp: ModuleType = np
) -> tuple[Array, Cache]:
    """``h`` (N, T, H): the step run over ``x`` (N, T, D) from ``h0`` (N, H).

    The cache (``RNN_KEYS``) keeps the inputs and every hidden state; the
    backward rebuilds each step's cache from them.
    """
    checked = _check_sequence_inputs({"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}, 1, xp)
    x, h0, Wx, Wh, b = checked.values()
    hs = []
    prev_h = h0
    for t in range(x.shape[1]):  # the recurrence: step t reads step t - 1's output
        prev_h = _rnn_step(x[:, t, :], prev_h, Wx, Wh, b, xp)
        hs.append(prev_h)
    h = xp.stack(hs, axis=1)
    return h, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "h": h}


def rnn_backward(
    dh: Array, cache: Mapping[str, Array]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dh0, dWx, dWh, db)`` from ``dh`` (N, T, H), backprop through time.

    At step ``t`` the upstream gradient is ``dh[:, t]`` plus the ``dprev_h``
    that step ``t + 1`` sends back; the weights' gradients add up over the steps.
    """
    cache = check_cache(cache, RNN_KEYS, "rnn_forward")
    h = cache["h"]
    dh = _check_upstream(dh, "dh", h)
    x, Wx, Wh = cache["x"], cache["Wx"], cache["Wh"]
    T = x.shape[1]
    dx = np.zeros_like(x)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
    db = np.zeros(Wh.shape[1], dtype=Wh.dtype)
    dcarry = np.zeros_like(cache["h0"])  # nothing flows back into the last step
    for t in reversed(range(T)):
        step_cache = {
            "x": x[:, t, :],
            "prev_h": h[:, t - 1, :] if t > 0 else cache["h0"],
            "Wx": Wx,
            "Wh": Wh,
            "next_h": h[:, t, :],
        }
        dx_t, dcarry, dWx_t, dWh_t, db_t = _rnn_step_backward(dh[:, t, :] + dcarry, step_cache)
        dx[:, t, :] = dx_t  # our own array: the step's slot
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dcarry, dWx, dWh, db


# --- LSTM -------------------------------------------------------------------------

LSTM_STEP_KEYS = ("x", "prev_h", "prev_c", "Wx", "Wh", "i", "f", "o", "g", "tanh_c")
LSTM_KEYS = ("x", "h0", "Wx", "Wh", "h", "c", "i", "f", "o", "g", "tanh_c")


def _lstm_step(
    x: Array, prev_h: Array, prev_c: Array, Wx: Array, Wh: Array, b: Array, xp: ModuleType
) -> Cache:
    """The step's values by name (gates, ``next_c``, ``tanh_c``, ``next_h``), unchecked."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H], xp)
    f = sigmoid(a[:, H : 2 * H], xp)
    o = sigmoid(a[:, 2 * H : 3 * H], xp)
    g = xp.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = xp.tanh(next_c)
    return {
        "i": i,
        "f": f,
        "o": o,
        "g": g,
        "next_c": next_c,
        "tanh_c": tanh_c,
        "next_h": o * tanh_c,
    }


def lstm_step_forward(
    x: Array,
    prev_h: Array,
    prev_c: Array,
    Wx: Array,
    Wh: Array,
    b: Array,
    *,
    xp: ModuleType = np,
) -> tuple[Array, Array, Cache]:
    """``(next_h, next_c, cache)``, each (N, H): one LSTM step, gates in the order i, f, o, g.

    ``x`` (N, D), ``prev_h``, ``prev_c`` (N, H), ``Wx`` (D, 4H), ``Wh`` (H, 4H),
    ``b`` (4H,).  The cache holds ``LSTM_STEP_KEYS``.
    """
    arrays = {"x": x, "prev_h": prev_h, "prev_c": prev_c, "Wx": Wx, "Wh": Wh, "b": b}
    checked = _check_step_inputs(arrays, 4, xp)
    x, prev_h, prev_c, Wx, Wh, b = checked.values()
    values = _lstm_step(x, prev_h, prev_c, Wx, Wh, b, xp)
    cache = {"x": x, "prev_h": prev_h, "prev_c": prev_c, "Wx": Wx, "Wh": Wh}
    cache.update({key: values[key] for key in ("i", "f", "o", "g", "tanh_c")})
    return values["next_h"], values["next_c"], cache


def _lstm_step_backward(
    dnext_h: np.ndarray, dnext_c: np.ndarray, cache: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, ...]:
    """``(dx, dprev_h, dprev_c, dWx, dWh, db)``, unchecked."""
    i, f, o, g, tanh_c = (cache[key] for key in ("i", "f", "o", "g", "tanh_c"))
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)  # both paths into next_c
    do = dnext_h * tanh_c
    di, df, dg = dc * g, dc * cache["prev_c"], dc * i
    dprev_c = dc * f
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], axis=1
    )
    dx = da @ cache["Wx"].T
    dprev_h = da @ cache["Wh"].T
    dWx = cache["x"].T @ da
    dWh = cache["prev_h"].T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_step_backward(
    dnext_h: Array, dnext_c: Array, cache: Mapping[str, Array]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dprev_h, dprev_c, dWx, dWh, db)`` from ``dnext_h``, ``dnext_c`` (N, H)."""
    cache = check_cache(cache, LSTM_STEP_KEYS, "lstm_step_forward")
    dnext_h = _check_upstream(dnext_h, "dnext_h", cache["tanh_c"])
    dnext_c = _check_upstream(dnext_c, "dnext_c", cache["tanh_c"])
    dx, dprev_h, dprev_c, dWx, dWh, db = _lstm_step_backward(dnext_h, dnext_c, cache)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(
    x: Array, h0: Array, Wx: Array, Wh: Array, b: Array, *, xp: ModuleType = np
) -> tuple[Array, Cache]:
    """``h`` (N, T, H): the LSTM step run over ``x`` (N, T, D) from ``h0`` and ``c0 = 0``.

    The cache (``LSTM_KEYS``) keeps the inputs, the hidden and cell states and
    the gates of every step, each stacked along the time axis (N, T, H).
    """
    checked = _check_sequence_inputs({"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}, 4, xp)
    x, h0, Wx, Wh, b = checked.values()
    kept = ("next_h", "next_c", "i", "f", "o", "g", "tanh_c")
    steps: dict[str, list[Array]] = {key: [] for key in kept}
    prev_h, prev_c = h0, xp.zeros_like(h0)
    for t in range(x.shape[1]):  # the recurrence: step t reads step t - 1's h and c
        values = _lstm_step(x[:, t, :], prev_h, prev_c, Wx, Wh, b, xp)
        for key in kept:
            steps[key].append(values[key])
        prev_h, prev_c = values["next_h"], values["next_c"]
    stacked = {key: xp.stack(steps[key], axis=1) for key in kept}
    h = stacked.pop("next_h")
    stacked["c"] = stacked.pop("next_c")
    return h, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "h": h, **stacked}


def lstm_backward(
    dh: Array, cache: Mapping[str, Array]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dh0, dWx, dWh, db)`` from ``dh`` (N, T, H), backprop through time.

    Two gradients flow back from step ``t + 1``: ``dprev_h``, added to
    ``dh[:, t]``, and ``dprev_c``, the step's ``dnext_c``.  ``c0`` is a
    constant, so its gradient is dropped.
    """
    cache = check_cache(cache, LSTM_KEYS, "lstm_forward")
    h, c = cache["h"], cache["c"]
    dh = _check_upstream(dh, "dh", h)
    x, Wx, Wh = cache["x"], cache["Wx"], cache["Wh"]
    T = x.shape[1]
    dx = np.zeros_like(x)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
    db = np.zeros(Wh.shape[1], dtype=Wh.dtype)
    dh_carry = np.zeros_like(cache["h0"])  # nothing flows back into the last step
    dc_carry = np.zeros_like(cache["h0"])
    for t in reversed(range(T)):
        step_cache = {key: cache[key][:, t, :] for key in ("i", "f", "o", "g", "tanh_c")}
        step_cache.update(
            x=x[:, t, :],
            prev_h=h[:, t - 1, :] if t > 0 else cache["h0"],
            prev_c=c[:, t - 1, :] if t > 0 else np.zeros_like(cache["h0"]),
            Wx=Wx,
            Wh=Wh,
        )
        dx_t, dh_carry, dc_carry, dWx_t, dWh_t, db_t = _lstm_step_backward(
            dh[:, t, :] + dh_carry, dc_carry, step_cache
        )
        dx[:, t, :] = dx_t  # our own array: the step's slot
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dh_carry, dWx, dWh, db
