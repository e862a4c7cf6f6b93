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

The network is one value, a ``manual_bp.Net``; each of its layers is a
``manual_bp.layers.Dense``, whose ``forward`` and ``backward`` run its steps'
pairs (affine, normalization, activation, dropout); the functions here loop
over the layers.

What the backward pass reads from the cache ("identify the required matrices"):
layer l reads ``Zl`` and ``Al`` (for ``f_l'``), ``A(l-1)`` (for ``dWl``) and
``Wl`` (for ``dA(l-1)``).  So ``forward`` caches ``A0``, and ``Wl``, ``Zl``,
``Al`` for every layer.  ``Bl`` is not needed.  The cache holds references
to ``X`` and ``Wl``, not copies; no function here ever writes into an array
it did not allocate itself.

How many copies of the forward pass exist, and what proves them equal
-------------------------------------------------------------------
1. ``forward_xp``, written over an array namespace, is *the definition*: the
   function ``jax.grad`` differentiates (``manual_bp_reference.oracle``) and the one
   every other copy is measured against.
2. ``forward_numpy``, the NumPy fast path that ``forward`` takes: the same
   steps, in place, through each activation's NumPy kernel
   (``Activation.forward_into``).  ``property_tests/test_fast_path.py``
   proves it bitwise equal to the definition (but for the sign of a zero).
3. ``manual_bp_reference.padding``, the padded oracle: the same wiring
   ``Zl = Wl A(l-1) + Bl``, ``Al = f_l(Zl)`` inside one ``lax.scan`` over
   stacked, zero-padded layers, calling the same activations and losses.
   ``property_tests/test_padded_oracle.py`` proves it agrees with the
   unpadded oracle to well within the rounding bound.
4. ``manual_bp.prepared.PreparedBatch``, a plain net's forward and backward
   over one batch checked once (``DNN.prepare``): the steps of
   ``forward_numpy`` and ``backward`` in its own loop, into arrays it
   allocated once.  ``property_tests/test_prepared.py`` proves its
   gradients bitwise equal to ``backward`` of ``forward``.

Memory: ``forward`` (the new ``Zl``, ``Al``) and ``backward`` (the new
gradients) take their arrays from one allocation each (``new_arrays``):
separate large arrays each come as fresh pages from the operating system, a
page fault per 4 KiB, which costs as much as the matrix products themselves
(``benchmarks/RESULTS.md``), while one block is reused by the allocator from
call to call.  The arrays of one cache (or one grads dict) are views of one
block: keeping any of them keeps the block alive; copy an array to keep it
alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np

from manual_bp import threads
from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import gradient_shapes, layer_keys, layer_sizes_of
from manual_bp.dropout import check_masks
from manual_bp.losses import LOSSES, l2_penalty, l2_penalty_gradient, output_gradient
from manual_bp.net import Net

Array = np.ndarray
Params = Mapping[str, Array]


def init_params(
    layer_sizes: Sequence[int],
    activations: Sequence[str],
    seed: int | None = 0,
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
        if ACTIVATIONS[activations[l - 1]].init == "he":
            std = np.sqrt(2.0 / fan_in)
        else:
            std = np.sqrt(2.0 / (fan_in + fan_out))
        params[f"W{l}"] = (std * rng.standard_normal((fan_out, fan_in))).astype(dtype)
        params[f"B{l}"] = np.zeros((fan_out, 1), dtype=dtype)
    return params


# Below this size a block saves nothing: the allocator recycles small arrays
# anyway (glibc serves them from its heap, not from fresh pages), and carving
# the views has a cost of its own (benchmarks/RESULTS.md).
BLOCK_MIN_BYTES = 128 * 1024


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
    net: Net,
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
    *,
    running: Mapping[str, Array] | None = None,
    masks: Mapping[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Forward pass over the array namespace ``xp``.

    With NumPy (and no taps, no normalization, no dropout) the NumPy path
    runs, which computes the same values as ``forward_xp`` in place (see the
    module notes); otherwise ``forward_xp``.  Parameters and returns are
    those of ``forward_xp``; the dropout ``masks`` are checked first
    (``manual_bp.dropout.check_masks``: with NumPy their values too).
    """
    net = _checked_net(net)
    if masks or net.dropped:  # a mask without dropout is refused, not ignored
        sizes = _checked_sizes(params, X, net)
        rates = net.dropout if net.dropped else ()
        # Under another namespace (jax tracing) the keys and shapes only.
        masks = check_masks(masks, sizes, np.shape(X)[1], rates, values=xp is np)
    if net.dropped or net.normalized or xp is not np or taps is not None:
        return forward_xp(params, X, net, xp, taps, running=running, masks=masks)
    _checked_sizes(params, X, net)
    dtype = np.result_type(X, *params.values())
    # Mixed dtypes take the definition: its per-layer promotion (a float32
    # layer after a float64 one) is not what one block of one dtype holds.
    if dtype.kind == "f" and all(np.asarray(v).dtype == dtype for v in (X, *params.values())):
        return forward_numpy(params, X, net.activations)
    return forward_xp(params, X, net, xp, taps)


def forward_xp(
    params: Params,
    X: Array,
    net: Net,
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
    *,
    running: Mapping[str, Array] | None = None,
    masks: Mapping[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Forward pass over the array namespace ``xp``: the definition.

    Parameters
    ----------
    params : dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1), l = 1..L (and
        a normalized layer's ``gammal``, ``betal``)
    X : (n0, m) array, one sample per column
    net : the network (``manual_bp.Net``): its layers ``Dense(nl, f_l, norm,
        pl)`` say each layer's activation, normalization (the step
        ``Nl = gammal * Zhatl + betal`` between ``Zl`` and ``f_l``) and drop
        probability (inverted dropout ``Al = Fl ⊙ Ml / (1 − pl)`` after
        ``Fl = f_l(Zl)``); ``params`` must have its sizes
    xp : array namespace, ``numpy`` (default) or ``jax.numpy``
    taps : optional dict of zero arrays ``Zl`` (l = 1..L) and ``Al``
        (l = 1..L-1) added to the matching variables (a normalized layer's
        ``mul``, ``varl``, ``Zhatl``, ``Nl`` too).  They change no value;
        the oracle takes ``jax.grad`` with respect to them, which gives
        dL/dZl and dL/dAl.
    running : optional ``running_meanl``, ``running_varl``: inference mode,
        batch normalization uses them instead of the batch's statistics
    masks : ``Ml`` (nl, m) of zeros and ones for every layer with ``pl > 0``
        (``manual_bp.dropout.draw_masks``): an input, never drawn here.  The
        ``Al`` tap is added after the mask.  A net with dropout needs them;
        ``net.without_dropout()`` is the same net as inference runs it.

    Returns
    -------
    out : (nL, m) array ``AL``
    cache : dict with ``A0`` and ``Wl``, ``Zl``, ``Al`` for l = 1..L (and a
        normalized layer's ``gammal``, ``mul``, ``varl``, ``inv_stdl``,
        ``Zhatl``, ``Nl``; a dropped layer's ``Fl`` and ``Ml``)
    """
    net = _checked_net(net)
    _checked_sizes(params, X, net)
    depth = net.depth
    A = X
    cache = {"A0": X}
    for l, layer in enumerate(net.layers, 1):
        A = layer.forward(A, params, l, cache, xp, taps=taps, running=running, masks=masks)
        if taps is not None and l < depth:
            A = A + taps[f"A{l}"]
        cache[f"A{l}"] = A
    return A, cache


def forward_numpy(
    params: Params, X: Array, activations: Sequence[str]
) -> tuple[Array, dict[str, Array]]:
    """``forward_xp`` with NumPy, in place: ``Zl`` and ``Al`` from one block.

    For callers that know ``X`` and every parameter share one float dtype
    (``DNN`` validates it once, when the parameters are set, and converts
    ``X``); ``forward`` checks it on every call.  ``Zl = Wl A(l-1)`` is
    written by the matrix product into its own array, ``Bl`` is added there,
    and ``f_l`` writes ``Al`` into the next one.  A plain network (no
    normalization, no dropout) needs only its activations, ``f_l`` by name.
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
    net: Net,
    xp: ModuleType = np,
    taps: Mapping[str, Array] | None = None,
    *,
    running: Mapping[str, Array] | None = None,
    masks: Mapping[str, Array] | None = None,
) -> Array:
    """``net.loss(forward(params, X, net))``: the function the oracle
    differentiates, plus the net's weight decay ``l2_penalty(params, net.l2)``
    (``l2 / 2 sum ||Wl||^2``)."""
    net = _checked_net(net)
    _, cache = forward(params, X, net, xp, taps, running=running, masks=masks)
    value = loss_from_cache(cache, Y, net.loss, net.depth, xp)
    return value + l2_penalty(params, net.l2, xp) if net.l2 else value


def backward(
    cache: Mapping[str, Array],
    Y: Array,
    net: Net,
    *,
    input_gradient: bool = False,
    staged: bool = False,
    params: Params | None = None,
) -> dict[str, Array]:
    """Hand-written backward pass: one loop over layers.

    Parameters
    ----------
    cache : the cache ``forward(params, X, net)`` returned
    Y : (nL, m) targets
    net : the network, as given to ``forward`` (``manual_bp.Net``): its
        loss gives ``dZL``; a normalized layer (training mode: the batch's
        statistics) makes ``f_l'`` read ``Nl``, and the normalization's
        backward (``manual_bp.normalization``) takes ``dNl`` to ``dZl``; a
        dropped layer takes ``dFl = dAl ⊙ Ml / (1 − pl)`` with the cached mask
        ``Ml``, and ``f_l'`` reads the cached ``Fl``; the weight decay
        ``net.l2`` adds ``l2 Wl`` to ``dWl``
        (``manual_bp.losses.l2_penalty_gradient``; the biases are not decayed)
    input_gradient : also return ``A0`` = dL/dX
    staged : the normalization's staged backward instead of the closed form
    params : where the decayed ``Wl`` are read (default: the cache's ``Wl``,
        the weights the forward pass used)

    Returns
    -------
    grads : dict of dL/dv for ``v`` in ``Wl``, ``Bl``, ``Zl`` (l = 1..L) and
        ``Al`` (l = 1..L-1, and l = 0 with ``input_gradient``), each with the
        shape and dtype of ``v``.  Above ``BLOCK_MIN_BYTES`` all but ``ZL``
        are views of one new block (see the module notes); each is written
        before it enters ``grads``.  A normalized layer adds ``Nl``,
        ``gammal``, ``betal``, ``Zhatl`` (and ``varl``, ``mul`` when ``staged``).
    """
    net = _checked_net(net)
    depth = net.depth
    # The dtype every product of the chain rule gives: ZL's (that of the
    # forward pass) and Y's meet in dZL = (AL - Y) / m.
    keys = layer_keys(depth)
    dtype = np.result_type(cache[keys[-1].Z], Y)
    A0 = cache["A0"]
    m = A0.shape[1]
    # Shapes only (W1 first): the block and the thread policy read no values.
    sizes = _checked_sizes(cache, A0, net)
    out: dict[str, Array] = {}
    if _gradient_size_bound(sizes, m) * dtype.itemsize >= BLOCK_MIN_BYTES:
        # Every gradient but ZL, which the output gradient allocates, in one block.
        shapes = gradient_shapes(sizes, m, input_gradient)
        del shapes[keys[-1].Z]
        out = new_arrays(shapes, dtype)
    layers, l2 = net.layers, net.l2
    grads: dict[str, Array] = {}
    weights = cache if params is None else params
    gemms = threads.gemms()
    # Every product of layer l does nl * n(l-1) * m multiply-adds (see forward).
    largest = max(n * n_prev for n, n_prev in zip(sizes[1:], sizes, strict=False)) * m
    matmul = gemms.matmul if largest > threads.SINGLE_THREAD_WORK else np.matmul
    try:
        for l in range(depth, 0, -1):
            key, layer = keys[l - 1], layers[l - 1]
            dZ = None
            if l == depth:
                activation = ACTIVATIONS[layer.activation]
                dZ = output_gradient(LOSSES[net.loss], activation, cache[key.Z], cache[key.A], Y)
            # dZ, input gradient, staged, matmul, out: positional (this loop is hot).
            layer.backward(grads.get(key.A), cache, key, grads, dZ, l > 1 or input_gradient,
                           staged, matmul, out)  # fmt: skip
            if l2:
                for name in (key.W,):  # the weights only: the biases are not decayed
                    grads[name] += l2_penalty_gradient(weights[name], l2)
    finally:
        gemms.restore()
    return grads


def _checked_net(net: object) -> Net:
    """``net`` if it is a ``Net``; a ``TypeError`` naming what to give otherwise."""
    if not isinstance(net, Net):
        hint = (
            "; for the seed's lists use manual_bp.Net.of(layer_sizes, activations, loss)"
            if isinstance(net, (list, tuple))
            else ""
        )
        raise TypeError(f"net: expected a manual_bp.Net, got {type(net).__name__} {net!r}{hint}")
    return net


def _checked_sizes(arrays: Mapping[str, Array], X: Array, net: Net) -> list[int]:
    """``[n0, ..., nL]`` of ``arrays`` (``Wl`` in order), which must be the net's."""
    sizes = layer_sizes_of(arrays, X, net.depth)
    if sizes != net.layer_sizes:
        raise ValueError(
            f"params: expected the shapes of net.layer_sizes {net.layer_sizes}, "
            f"got W1..W{net.depth} and X of layer sizes {sizes}"
        )
    return sizes


def _gradient_size_bound(sizes: Sequence[int], m: int) -> int:
    """At least the entries of the gradients ``backward`` writes into its
    block: below the block size no dict of shapes is built at all."""
    return sum(
        (n + n_prev) * (m + 1) + n * n_prev for n, n_prev in zip(sizes[1:], sizes, strict=False)
    )
