"""Temporal affine and temporal softmax loss by hand (cs231n assignment 3, rows as samples).

The temporal affine map is one affine map applied at every time step::

    forward                                  backward, dout = dL/dout (N, T, M)
    out[n, t, :] = x[n, t, :] w + b          dx[n, t, :] = dout[n, t, :] w^T       (N, T, D)
                                             dw = sum_{n,t} x[n, t, :]^T dout[n, t, :]  (D, M)
    x: (N, T, D)  w: (D, M)  b: (M,)         db = sum_{n,t} dout[n, t, :]          (M,)
    out: (N, T, M)

``w`` and ``b`` are shared by every ``(n, t)``, so their gradients sum over N
*and* T: with ``X = x`` reshaped ``(N*T, D)`` and ``G = dout`` reshaped
``(N*T, M)``, ``dw = X^T G`` and ``db`` is the column sum of ``G``.  The cache
is ``{"x": x, "w": w}`` (``b`` is not needed).

The temporal softmax loss scores a vocabulary at every step and ignores the
masked-out steps::

    forward                                            backward (dL/dL = 1)
    m[n, t] = max_v x[n, t, v]                         p = softmax(x) over v    (N, T, V)
    log p[n, t, v] = x[n, t, v] - m[n, t]              dx[n, t, v] = mask[n, t] / K
                     - log sum_u exp(x[n, t, u] - m)       * (p[n, t, v] - [v = y[n, t]])
    L = -(1/K) sum_{n,t} mask[n, t] log p[n, t, y[n, t]]
    x: (N, T, V)  y: (N, T)  mask: (N, T)  L: scalar   dx: (N, T, V)

``K`` is the normalisation, ``normalize=``:

* ``"batch"`` (the default): ``K = N``, cs231n's ``temporal_softmax_loss``
  (the mean over the batch of each caption's summed loss);
* ``"tokens"``: ``K = sum mask``, the mean over the unmasked tokens (what
  frameworks' masked means do).  An all-false mask has no token to average
  over: the loss is then 0 and ``dx`` is 0, deliberately (the empty sum over
  ``max(K, 1)``), never ``0/0 = nan``.

Conventions decided here:

* ``mask`` may be bool, or integer or float with every entry exactly 0 or 1
  (``(captions != NULL).astype(np.float32)`` is a common way to build it);
  any other value (0.5, -1, nan) is refused: this loss does not weight tokens.
* ``y`` must be in ``[0, V)`` where ``mask`` is true; at masked-out steps the
  label is never read, so any integer (a ``-1`` or ``-100`` padding label) is
  accepted there.
* Stability: the max shift, so ``exp`` never overflows, and ``log p`` from the
  shifted scores minus ``log`` of their exponentials' sum (log-sum-exp), so
  a tiny probability never becomes ``log 0``.
* ``softmax_loss_value`` is the loss alone, written over ``xp``: ``jax.grad``
  of it under ``xp=jax.numpy`` is the oracle for ``dx``, which
  ``softmax_loss`` computes by hand in NumPy.
* Every float array of one call has one dtype (float32 in, float32 out);
  a mix is refused rather than silently upcast.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from manual_bp.validation import (
    check_entries,
    check_float_array,
    check_integer_array,
    check_shape,
)

Array = np.ndarray

NORMALIZATIONS = ("batch", "tokens")

DERIVATION = """\
Temporal affine: one affine map applied at every time step, rows as samples.
  x: (N, T, D)    w: (D, M)    b: (M,)    out: (N, T, M)

Forward
  out[n, t, :] = x[n, t, :] w + b
  With X = x reshaped (N*T, D): out reshaped (N*T, M) = X w + b.

Backward, with dout = dL/dout (N, T, M) and G = dout reshaped (N*T, M)
  dx[n, t, :] = dout[n, t, :] w^T                        dx: (N, T, D)
  dw = sum_{n, t} x[n, t, :]^T dout[n, t, :] = X^T G     dw: (D, M)
  db = sum_{n, t} dout[n, t, :]                          db: (M,)
  w and b are used at every (n, t): their gradients sum over N AND T.

Temporal softmax loss: a softmax over V at every step, masked steps ignored.
  x: (N, T, V) scores    y: (N, T) labels in [0, V)    mask: (N, T) 0/1

Forward
  m[n, t] = max_v x[n, t, v]                    (the shift: exp never overflows)
  log p[n, t, v] = x[n, t, v] - m[n, t] - log sum_u exp(x[n, t, u] - m[n, t])
  L = -(1/K) sum_{n, t} mask[n, t] log p[n, t, y[n, t]]
  K = N              normalize="batch"   (cs231n: the mean over the batch)
  K = sum mask       normalize="tokens"  (the mean over unmasked tokens; L = 0
                                          and dx = 0 when no token is unmasked)

Backward
  d log p[n, t, y] / dx[n, t, v] = [v = y] - p[n, t, v]    (the shift cancels)
  dx[n, t, v] = (mask[n, t] / K) (p[n, t, v] - [v = y[n, t]])      dx: (N, T, V)
  Masked steps get 0; each unmasked step's row sums to 0.  y (indices) and
  mask (flags) are not differentiable: they have no gradient.
"""


def affine_forward(x: Any, w: Any, b: Any, *, xp: ModuleType = np) -> tuple[Any, dict[str, Any]]:
    """``out = x w + b`` at every step: ``(out, cache)``, ``out`` of shape ``(N, T, M)``.

    ``x`` is ``(N, T, D)``, ``w`` ``(D, M)``, ``b`` ``(M,)``, all of one float
    dtype (NumPy's, or jax's under ``xp=jax.numpy``: only methods and
    operators both have are used, so ``xp`` itself is not called).
    """
    dtype = _check_float(x, "x", "(N, T, D)")
    _check_float(w, "w", "(D, M)", like=dtype)
    _check_float(b, "b", "(M,)", like=dtype)
    N, T, D = x.shape
    M = w.shape[1]
    if w.shape[0] != D:
        raise ValueError(f"w: expected shape (D, M) with D = {D} (x's last axis), got {w.shape}")
    check_shape(b, "b", (M,), layout="(M,)", why="(w's columns)")
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, M)
    return out, {"x": x, "w": w}


def affine_backward(dout: Array, cache: dict[str, Any]) -> tuple[Array, Array, Array]:
    """``(dx, dw, db)`` from ``dout`` ``(N, T, M)`` and the cache ``{"x", "w"}``."""
    x, w = cache["x"], cache["w"]
    N, T, D = x.shape
    M = w.shape[1]
    _check_float(dout, "dout", "(N, T, M)", like=x.dtype)
    check_shape(dout, "dout", (N, T, M), layout="(N, T, M)", why="(the forward's out)")
    X = x.reshape(N * T, D)
    G = dout.reshape(N * T, M)
    dx = (G @ w.T).reshape(N, T, D)
    dw = X.T @ G
    db = G.sum(axis=0)
    return dx, dw, db


def softmax_loss_value(
    x: Any, y: Any, mask: Any, *, normalize: str = "batch", xp: ModuleType = np
) -> Any:
    """The temporal softmax loss ``L`` alone, a scalar of ``x``'s dtype, over ``xp``.

    The definition ``softmax_loss`` computes by hand: ``jax.grad`` of this
    under ``xp=jax.numpy`` (``y`` and ``mask`` held fixed) is ``dx``'s oracle.
    Under another ``xp`` with ``y`` and ``mask`` not NumPy arrays (traced by
    ``jax.jit``: the oracle compiles one function for many labels and masks),
    they are taken as checked by the caller: a tracer has no values to check.
    """
    if xp is np or isinstance(y, np.ndarray) or isinstance(mask, np.ndarray):
        labels, unmasked, K = _check_loss_inputs(x, y, mask, normalize)
    else:
        unmasked = mask.astype(bool)
        labels = xp.where(unmasked, y, 0)
        K = x.shape[0] if normalize == "batch" else xp.sum(unmasked)
    shifted, _, total = _shifted_exponentials(x, xp)
    return _loss(shifted, total, labels, unmasked, K, xp)


def softmax_loss(
    x: Any, y: Any, mask: Any, *, normalize: str = "batch", xp: ModuleType = np
) -> tuple[Any, Array]:
    """``(L, dx)``: the temporal softmax loss and ``dL/dx`` ``(N, T, V)``.

    ``x`` scores ``(N, T, V)``, ``y`` integer labels ``(N, T)``, ``mask``
    ``(N, T)`` of bools or 0/1 values; ``normalize`` is ``"batch"`` (divide by
    N, cs231n's) or ``"tokens"`` (divide by the unmasked count).  ``dx`` is
    computed by hand in NumPy; ``xp`` only chooses where ``L`` is computed
    (``xp=jax.numpy`` needs a concrete ``x``, not a tracer: differentiate
    ``softmax_loss_value`` instead).
    """
    labels, unmasked, K = _check_loss_inputs(x, y, mask, normalize)
    scores = np.asarray(x)
    shifted, exp_shifted, total = _shifted_exponentials(scores, np)
    if xp is np:
        loss = _loss(shifted, total, labels, unmasked, K, np)
    else:
        loss = softmax_loss_value(x, y, mask, normalize=normalize, xp=xp)
    N, T, _ = scores.shape
    dx = exp_shifted / total  # p, a fresh array: the one-hot is subtracted in place
    dx[np.arange(N)[:, None], np.arange(T)[None, :], labels] -= 1
    dx = np.where(unmasked[..., None], dx, 0) / max(K, 1)
    return loss, dx


def _shifted_exponentials(x: Any, xp: ModuleType) -> tuple[Any, Any, Any]:
    """``(x - m, exp(x - m), sum_v exp(x - m))``, ``m`` the max over ``v`` (keepdims)."""
    shifted = x - xp.max(x, axis=-1, keepdims=True)
    exp_shifted = xp.exp(shifted)
    return shifted, exp_shifted, xp.sum(exp_shifted, axis=-1, keepdims=True)


def _loss(shifted: Any, total: Any, labels: Array, unmasked: Array, K: int, xp: ModuleType) -> Any:
    """``-(1/K) sum mask log p[y]`` from the shifted scores and their exponentials' sum."""
    log_p_label = xp.take_along_axis(shifted, labels[..., None], axis=-1)[..., 0] - xp.log(
        total[..., 0]
    )
    # where, not a product: a masked-out log p of -inf must not make 0 * -inf = nan.
    return xp.sum(xp.where(unmasked, -log_p_label, 0)) / (
        max(K, 1) if isinstance(K, int) else xp.maximum(K, 1)
    )


def _check_loss_inputs(x: Any, y: Any, mask: Any, normalize: object) -> tuple[Array, Array, int]:
    """``(labels, unmasked, K)``: labels with masked-out entries set to 0 (never read),
    the mask as bools and the normalisation ``K``; raises on any bad argument."""
    if not isinstance(normalize, str):
        raise TypeError(f"normalize: expected 'batch' or 'tokens', got {type(normalize).__name__}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected 'batch' or 'tokens', got {normalize!r}")
    _check_float(x, "x", "(N, T, V)")
    N, T, V = x.shape
    if N < 1 or V < 1:
        raise ValueError(f"x: expected N >= 1 samples and V >= 1 classes, got shape {x.shape}")
    unmasked = _check_mask(mask, (N, T))
    labels = check_integer_array(y, "y", "integer labels (N, T)")
    check_shape(labels, "y", (N, T), layout="(N, T)", why="(x's first two axes)")
    check_entries(
        unmasked & ((labels < 0) | (labels >= V)),
        labels,
        "y",
        f"labels in [0, {V}) where mask is true (x scores {V} classes)",
    )
    K = N if normalize == "batch" else int(np.count_nonzero(unmasked))
    return np.where(unmasked, labels, 0), unmasked, K


def _check_mask(mask: Any, shape: tuple[int, int]) -> Array:
    """``mask`` as bools: bool, or integer or float entries that are exactly 0 or 1."""
    values = np.asarray(mask)
    if values.dtype != np.bool_ and not (
        np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
    ):
        raise TypeError(f"mask: expected bools or 0/1 numbers (N, T), got dtype {values.dtype}")
    check_shape(values, "mask", shape, layout="(N, T)", why="(x's first two axes)")
    if values.dtype == np.bool_:
        return values
    check_entries(
        (values != 0) & (values != 1),
        values,
        "mask",
        "bools or values exactly 0 or 1 (no token weights)",
    )
    return values == 1


def _check_float(value: Any, name: str, layout: str, *, like: object = None) -> np.dtype:
    """A float array (NumPy's or jax's, a tracer too) of ``layout``'s axes and ``like``'s dtype."""
    return check_float_array(value, name, layout, like=like, expected=f"a float array {layout}")
