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
``Al`` for every layer.  ``Bl`` is not needed.  The cache holds references
to ``X`` and ``Wl``, not copies; no function here ever writes into an array
it did not allocate itself.

Speed and memory
----------------
``forward_xp`` is the definition over an array namespace, the function
``jax.grad`` differentiates.  With NumPy, ``forward`` runs the same steps
through each activation's NumPy kernel (``Activation.forward_into``), in
place, and ``property_tests/test_fast_path.py`` proves the two equal.  Both
``forward`` (the new ``Zl``, ``Al``) and ``backward`` (the new gradients) take
their arrays from one allocation each (``new_arrays``): separate large arrays
each come as fresh pages from the operating system, a page fault per 4 KiB
(about 0.5 ms per MiB on the benchmark machine, as long as the matrix products
themselves), while one block is reused by the allocator from call to call.
The arrays of one cache (or one grads dict) are views of one block: keeping
any of them keeps the block alive; copy an array to keep it alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import NamedTuple

import numpy as np

from manual_bp import threads
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


# Below this size a block saves nothing: the allocator recycles small arrays
# anyway (glibc serves them from its heap, not from fresh pages), and carving
# the views costs about 0.3 microseconds each.
BLOCK_MIN_BYTES = 128 * 1024


class LayerKeys(NamedTuple):
    """The dict keys of layer l: ``Wl``, ``Bl``, ``Zl``, ``Al`` and ``A(l-1)``."""

    W: str
    B: str
    Z: str
    A: str
    A_prev: str


@functools.cache
def layer_keys(depth: int) -> tuple[LayerKeys, ...]:
    """The keys of layers 1..L, built once per depth (formatting them on every
    call cost about 4 µs of a 45 µs step of the seed's network)."""
    return tuple(
        LayerKeys(f"W{l}", f"B{l}", f"Z{l}", f"A{l}", f"A{l - 1}") for l in range(1, depth + 1)
    )


def new_arrays(shapes: Mapping[str, tuple[int, int]], dtype: np.dtype) -> dict[str, Array]:
    """One new C-contiguous matrix per key, all views of a single allocation.

    The values are uninitialised: every caller writes an array before it
    hands it out.  For less than ``BLOCK_MIN_BYTES`` in all, the dict is empty:
    callers pass ``out=slots.get(key)``, ``None``, and each operation
    allocates its own result.
    """
    size = sum(rows * cols for rows, cols in shapes.values())
    if size * dtype.itemsize < BLOCK_MIN_BYTES:
        return {}
    block = np.empty(size, dtype)
    arrays, start = {}, 0
    for key, (rows, cols) in shapes.items():
        stop = start + rows * cols
        arrays[key] = block[start:stop].reshape(rows, cols)
        start = stop
    return arrays


def forward(
    params: Params,
    X: Array,
    activations: Sequence[str],
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Forward pass over the array namespace ``xp``.

    With NumPy (and no taps) the NumPy path runs, which computes the same
    values as ``forward_xp`` in place (see the module notes); otherwise
    ``forward_xp``.  Parameters and returns are those of ``forward_xp``.
    """
    if xp is np and taps is None:
        dtype = np.result_type(X, *params.values())
        # Mixed dtypes take the definition: its per-layer promotion (a float32
        # layer after a float64 one) is not what one block of one dtype holds.
        if dtype.kind == "f" and all(np.asarray(v).dtype == dtype for v in (X, *params.values())):
            return forward_numpy(params, X, activations)
    return forward_xp(params, X, activations, xp, taps)


def forward_xp(
    params: Params,
    X: Array,
    activations: Sequence[str],
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Forward pass over the array namespace ``xp``: the definition.

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


def forward_numpy(
    params: Params, X: Array, activations: Sequence[str]
) -> tuple[Array, dict[str, Array]]:
    """``forward_xp`` with NumPy, in place: ``Zl`` and ``Al`` from one block.

    For callers that know ``X`` and every parameter share one float dtype
    (``DNN`` validates it once, when the parameters are set, and converts
    ``X``); ``forward`` checks it on every call.  ``Zl = Wl A(l-1)`` is
    written by the matrix product into its own array, ``Bl`` is added there,
    and ``f_l`` writes ``Al`` into the next one.
    """
    dtype = X.dtype
    keys, m = layer_keys(len(activations)), X.shape[1]
    weights = [params[key.W] for key in keys]
    arrays: dict[str, Array] = {}
    if 2 * m * sum(W.shape[0] for W in weights) * dtype.itemsize >= BLOCK_MIN_BYTES:
        shapes = {}
        for key, W in zip(keys, weights, strict=True):
            shapes[key.Z] = shapes[key.A] = (W.shape[0], m)
        arrays = new_arrays(shapes, dtype)
    A = X
    cache = {"A0": X}
    gemms = threads.gemms()
    # Every product of layer l does W.size * m multiply-adds; when none is big
    # enough for the thread policy to act, NumPy's own matmul is called.
    matmul = (
        gemms.matmul if max(W.size for W in weights) * m > threads.SINGLE_THREAD_WORK else np.matmul
    )
    try:
        for key, W, name in zip(keys, weights, activations, strict=True):
            Z = matmul(W, A, out=arrays.get(key.Z))
            Z += params[key.B]
            A = ACTIVATIONS[name].forward_into(Z, arrays.get(key.A))
            cache[key.W], cache[key.Z], cache[key.A] = W, Z, A
    finally:
        gemms.restore()
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
        shape and dtype of ``v``.  Above ``BLOCK_MIN_BYTES`` all but ``ZL``
        are views of one new block (see the module notes); each is written
        before it enters ``grads``.
    """
    depth = len(activations)
    # The dtype every product of the chain rule gives: ZL's (that of the
    # forward pass) and Y's meet in dZL = (AL - Y) / m.
    keys = layer_keys(depth)
    dtype = np.result_type(cache[keys[-1].Z], Y)
    m = cache["A0"].shape[1]
    # Shapes only (W1 first): the block and the thread policy read no values.
    shapes = [cache[key.W].shape for key in keys]
    out: dict[str, Array] = {}
    if _gradient_size_bound(shapes, m) * dtype.itemsize >= BLOCK_MIN_BYTES:
        out = new_arrays(_gradient_shapes(shapes, m, input_gradient), dtype)
    grads: dict[str, Array] = {}
    gemms = threads.gemms()
    # Every product of layer l does rows * cols * m multiply-adds (see forward).
    largest = max(rows * cols for rows, cols in shapes) * m
    matmul = gemms.matmul if largest > threads.SINGLE_THREAD_WORK else np.matmul
    try:
        for l in range(depth, 0, -1):
            key = keys[l - 1]
            activation = ACTIVATIONS[activations[l - 1]]
            Z, A = cache[key.Z], cache[key.A]
            if l == depth:
                dZ = output_gradient(LOSSES[loss], activation, Z, A, Y)
            else:
                dZ = activation.backward(grads[key.A], Z, A, out=out.get(key.Z))
            grads[key.Z] = dZ
            grads[key.W] = matmul(dZ, cache[key.A_prev].T, out=out.get(key.W))
            grads[key.B] = dZ.sum(axis=1, keepdims=True, out=out.get(key.B))
            if l > 1 or input_gradient:
                grads[key.A_prev] = matmul(cache[key.W].T, dZ, out=out.get(key.A_prev))
    finally:
        gemms.restore()
    return grads


def _gradient_size_bound(shapes: Sequence[tuple[int, int]], m: int) -> int:
    """At least the entries of ``_gradient_shapes``: below the block size no
    dict of shapes is built at all."""
    return sum((rows + cols) * (m + 1) + rows * cols for rows, cols in shapes)


def _gradient_shapes(
    shapes: Sequence[tuple[int, int]], m: int, input_gradient: bool
) -> dict[str, tuple[int, int]]:
    """The shapes of the gradients ``backward`` writes into its block: every key
    of ``gradient_keys`` but ``ZL``, which the output gradient allocates.
    ``shapes`` holds the shape of every ``Wl``, l = 1..L."""
    depth = len(shapes)
    keys = layer_keys(depth)
    block = {}
    for l in range(depth, 0, -1):
        key, (rows, cols) = keys[l - 1], shapes[l - 1]
        if l < depth:
            block[key.Z] = (rows, m)
        block[key.W], block[key.B] = (rows, cols), (rows, 1)
        if l > 1 or input_gradient:
            block[key.A_prev] = (cols, m)
    return block
