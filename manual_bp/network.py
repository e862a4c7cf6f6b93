"""The functional core: ``init_params``, ``forward``, ``batch_loss``, ``backward``.

Notation (from the seed)
------------------------
The batch is stored as columns.  With layer sizes ``[n0, n1, ..., nL]``::

    A0 = X                      (n0, m)
    Zl = Wl A(l-1) + Bl         (nl, m)   Wl: (nl, n(l-1)),  Bl: (nl, 1)
    Al = f_l(Zl)                (nl, m)
    L  = loss(ZL, AL, Y)        scalar, the mean over the m columns

Backward, for l = L, ..., 1 (one loop over layers, vectorised over the batch)::

    dZL = (AL - Y) / m                      canonical pair (fused)
        = f_L'(ZL)^T dAL                    otherwise, dAL = dL/dAL
    dZl = f_l'(Zl)^T dAl                    = dAl * f_l'(Zl) when elementwise
    dWl = dZl A(l-1)^T                      sums over the batch; 1/m is in dZ
    dBl = sum of the columns of dZl
    dA(l-1) = Wl^T dZl

What the backward pass reads from the cache ("identify the required matrices"):
layer l reads ``Zl`` and ``Al`` (for ``f_l'``), ``A(l-1)`` (for ``dWl``) and
``Wl`` (for ``dA(l-1)``).  So ``forward`` caches ``A0``, and ``Wl``, ``Zl``,
``Al`` for every layer.  ``Bl`` is not needed.  The cache holds references,
not copies; no function here ever writes into an array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES, output_gradient

Array = np.ndarray
Params = Mapping[str, Array]

# He initialisation keeps the variance of relu-like layers; Glorot the rest.
_HE_INIT = frozenset({"relu", "leaky_relu", "elu", "gelu", "silu"})


def init_params(
    layer_sizes: Sequence[int],
    activations: Sequence[str],
    seed: int = 0,
    dtype: np.dtype | str = "float64",
) -> dict[str, Array]:
    """Random weights and zero biases.

    ``Wl ~ N(0, 2 / n(l-1))`` (He) for relu-like ``f_l``, else
    ``N(0, 2 / (n(l-1) + nl))`` (Glorot); ``Bl = 0``.

    Returns
    -------
    dict with ``Wl`` of shape ``(nl, n(l-1))`` and ``Bl`` of shape ``(nl, 1)``.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(layer_sizes)):
        fan_in, fan_out = layer_sizes[l - 1], layer_sizes[l]
        if activations[l - 1] in _HE_INIT:
            std = np.sqrt(2.0 / fan_in)
        else:
            std = np.sqrt(2.0 / (fan_in + fan_out))
        params[f"W{l}"] = (std * rng.standard_normal((fan_out, fan_in))).astype(dtype)
        params[f"B{l}"] = np.zeros((fan_out, 1), dtype=dtype)
    return params


def forward(
    params: Params,
    X: Array,
    activations: Sequence[str],
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Forward pass over the array namespace ``xp``.

    Parameters
    ----------
    params : dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1), l = 1..L
    X : (n0, m) array, one sample per column
    activations : L activation names
    xp : array namespace, ``numpy`` (default) or ``jax.numpy``
    taps : optional dict of zero arrays ``Zl`` (l = 1..L) and ``Al``
        (l = 1..L-1) added to the matching variables.  They change no value;
        the oracle takes ``jax.grad`` with respect to them, which gives
        dL/dZl and dL/dAl.

    Returns
    -------
    out : (nL, m) array ``AL``
    cache : dict with ``A0`` and ``Wl``, ``Zl``, ``Al`` for l = 1..L
    """
    depth = len(activations)
    A = X
    cache = {"A0": X}
    for l in range(1, depth + 1):
        W = params[f"W{l}"]
        Z = W @ A + params[f"B{l}"]
        if taps is not None:
            Z = Z + taps[f"Z{l}"]
        A = ACTIVATIONS[activations[l - 1]].forward(Z, xp)
        if taps is not None and l < depth:
            A = A + taps[f"A{l}"]
        cache[f"W{l}"], cache[f"Z{l}"], cache[f"A{l}"] = W, Z, A
    return A, cache


def loss_from_cache(
    cache: Mapping[str, Array], Y: Array, loss: str, depth: int, xp: ModuleType = np
) -> Array:
    """The batch-mean loss from the cached ``ZL`` (logits) and ``AL``."""
    return LOSSES[loss].value(cache[f"Z{depth}"], cache[f"A{depth}"], Y, xp)


def batch_loss(
    params: Params,
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
) -> Array:
    """``loss(forward(params, X))``: the function the oracle differentiates."""
    _, cache = forward(params, X, activations, xp, taps)
    return loss_from_cache(cache, Y, loss, len(activations), xp)


def gradient_keys(depth: int, input_gradient: bool = False) -> list[str]:
    """The keys ``backward`` returns, in forward order: ``A0`` (with
    ``input_gradient``), then ``W1, B1, Z1, A1, W2, ...``; ``AL`` is not one."""
    keys = ["A0"] if input_gradient else []
    for l in range(1, depth + 1):
        keys += [f"W{l}", f"B{l}", f"Z{l}"] + ([f"A{l}"] if l < depth else [])
    return keys


def backward(
    cache: Mapping[str, Array],
    Y: Array,
    activations: Sequence[str],
    loss: str,
    input_gradient: bool = False,
) -> dict[str, Array]:
    """Hand-written backward pass: one loop over layers.

    Parameters
    ----------
    cache : the cache returned by ``forward``
    Y : (nL, m) targets
    activations, loss : names, as given to ``forward`` and ``batch_loss``
    input_gradient : also return ``A0`` = dL/dX

    Returns
    -------
    grads : dict of dL/dv for ``v`` in ``Wl``, ``Bl``, ``Zl`` (l = 1..L) and
        ``Al`` (l = 1..L-1, and l = 0 with ``input_gradient``), each with the
        shape and dtype of ``v``.
    """
    depth = len(activations)
    grads: dict[str, Array] = {}
    for l in range(depth, 0, -1):
        activation = ACTIVATIONS[activations[l - 1]]
        Z, A = cache[f"Z{l}"], cache[f"A{l}"]
        if l == depth:
            dZ = output_gradient(LOSSES[loss], activation, Z, A, Y)
        else:
            dZ = activation.backward(grads[f"A{l}"], Z, A)
        grads[f"Z{l}"] = dZ
        grads[f"W{l}"] = dZ @ cache[f"A{l - 1}"].T
        grads[f"B{l}"] = np.sum(dZ, axis=1, keepdims=True)
        if l > 1 or input_gradient:
            grads[f"A{l - 1}"] = cache[f"W{l}"].T @ dZ
    return grads
