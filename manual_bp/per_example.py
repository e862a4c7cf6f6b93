"""Per-example gradients, their norms and the gradient's variance over the batch.

Notation (from the seed: the batch as columns, ``manual_bp.network``)::

    A0 = X                      (n0, m)
    Zl = Wl A(l-1) + Bl         (nl, m)   Wl: (nl, n(l-1)),  Bl: (nl, 1)
    Al = f_l(Zl)                (nl, m)
    L  = (1/m) sum_i l_i  +  l2/2 sum_l ||Wl||^2

The per-example loss
--------------------
``l_i`` is the loss of example ``i`` alone (column ``i`` of ``X`` and ``Y``
as a batch of one) plus the whole decay ``l2/2 sum_l ||Wl||^2``, so that::

    L = (1/m) sum_i (l_i)          and       dL/dθ = (1/m) sum_i g_i,   g_i = dl_i/dθ

the batch gradient (``network.backward``'s) is the MEAN of the per-example
gradients, decay included: each ``g_i`` carries the decay's ``l2 Wl``, and
their mean carries it once.

One backward pass, unaveraged
-----------------------------
Column ``i`` of ``Zl`` depends on example ``i`` alone, so ``dL/dZl[:, i] =
(1/m) dl_i/dZl[:, i]``.  The backward pass here is ``network.backward``'s with
the ``1/m`` taken out: ``dZL`` is the loss's output gradient times ``m``
(``m (A_L - Y) / m`` for a canonical pair: one more rounding than
``A_L - Y``), then, for ``l = L, ..., 1``::

    dZl      (nl, m)       column i is dl_i/dZl[:, i]        (dZl = f_l'(Zl)^T dAl)
    dA(l-1) = Wl^T dZl     (n(l-1), m), for l > 1 only

and the per-example gradients are outer products, one per column, for all
columns at once (broadcasting, no loop over samples)::

    dWl_i = dZl[:, i] A(l-1)[:, i]^T + l2 Wl      (m, nl, n(l-1))
    dBl_i = dZl[:, i]                              (m, nl, 1)

The product ``dWl = dZl A(l-1)^T`` of the plain backward is never computed:
the sum over the batch is what per-example quantities must not do.

Norms without the per-example gradients (Goodfellow's trick)
-------------------------------------------------------------
For one example, with ``z = dZl[:, i]`` and ``a = A(l-1)[:, i]``::

    ||z a^T||_F^2          = ||z||^2 ||a||^2
    ||z a^T + l2 Wl||_F^2  = ||z||^2 ||a||^2 + 2 l2 z^T Wl a + l2^2 ||Wl||_F^2
    ||dBl_i||^2            = ||z||^2

and ``Wl a`` is column ``i`` of ``Zl - Bl``, the cached pre-activation minus
the bias: ``O(nl m)`` per layer, no product.  ``||g_i||^2`` sums these over
the layers.  Rounding: each term is a sum of squares (relative error a few
units of rounding per entry); the decay's cross term can cancel the others
(a per-example gradient near 0 with decay), so the squared norm's error is
relative to ``sum_l ||z||^2 (||a||^2 + 1) + 2 l2 |z|^T (|Wl| |a| + |Bl|) +
l2^2 ||Wl||^2``, not to itself; a negative result of that cancellation is
returned as 0.

The variance over the batch
---------------------------
``gradient_variance`` is the biased (``1/m``) variance of ``g_i`` over the
examples, entry by entry: ``(1/m) sum_i (g_i - mean_j g_j)^2``, of each
parameter's shape.  The decay's ``l2 Wl`` is the same in every ``g_i`` and
drops out exactly, so it is left out of the computation.  It is the two-pass
form (the deviations from the mean first, then their squares), not the
second-moment form ``(1/m) (dZl^2) (A(l-1)^2)^T - mean^2``: that one needs no
per-example array (one product) but loses every digit when the variance is
small against the squared mean (``mean^2 / var`` times the unit roundoff),
which is exactly where gradient-noise measurements look.  The two-pass form's
error is a few units of rounding of ``var`` plus ``m u^2 mean^2``.  Its cost:
one layer's per-example gradients at a time, ``m nl n(l-1)`` entries.

Scope: plain dense networks.  A normalized layer couples the examples of a
batch (its statistics are the batch's), so ``l_i`` is not a loss of example
``i`` alone; dropout needs masks.  Both are refused (``ValueError``).
Dtypes: the params' dtype (float32 or float64) throughout; ``X`` and ``Y``
are converted to it (as ``DNN`` does).  Inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from manual_bp import network, threads
from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import layer_keys
from manual_bp.losses import LOSSES, output_gradient
from manual_bp.net import Net
from manual_bp.validation import check_dtype, check_inputs, check_params, check_targets

Array = np.ndarray

__all__ = ["gradient_variance", "per_example_gradients", "per_example_norms"]


DERIVATION = """\
Per-example gradients, their norms (Goodfellow's trick) and their variance.

Notation (the seed's): the batch is stored as columns, i = 1..m.

  A0 = X                        (n0, m)
  Zl = Wl · A(l-1) + Bl         (nl, m)    Wl (nl, n(l-1)),  Bl (nl, 1)
  Al = f_l(Zl)                  (nl, m)
  L  = (1/m) Σ_i l_i + (λ/2) Σ_l ‖Wl‖²     λ = net.l2

The per-example loss l_i is the loss of column i alone (plus the whole decay), so
the batch gradient is the MEAN of the per-example gradients g_i = dl_i/dθ:

  dL/dθ = (1/m) Σ_i g_i

Column i of Zl depends on example i alone, so one backward pass gives every
example's dZl at once: run network.backward's pass without the 1/m.

Output layer L:
  dZL = m · (the loss's output gradient)    (nL, m)   canonical pair: AL − Y
Hidden layers, l = L, ..., 1 (the same steps as the batch backward):
  dA(l-1) = Wlᵀ · dZl                       (n(l-1), m)
  dZ(l-1) = f_(l-1)'(Z(l-1)) ⊙ dA(l-1)      (n(l-1), m)   the activation's own step
  column i of dZl is dl_i/dZl[:, i]

The per-example gradients are outer products, one per column (broadcast over i,
never a loop over the examples), where the batch backward would sum them:

  dWl_i = dZl[:, i] · A(l-1)[:, i]ᵀ + λ · Wl     (m, nl, n(l-1))
  dBl_i = dZl[:, i]                              (m, nl, 1)

  (their mean over i is backward's dWl = dZl · A(l-1)ᵀ / m + λ · Wl)

Norms without the per-example gradients (Goodfellow 2015)
For one example, with z = dZl[:, i] (nl,) and a = A(l-1)[:, i] (n(l-1),):

  ‖z · aᵀ‖_F²         = ‖z‖² ‖a‖²                          (a rank-one matrix)
  ‖z · aᵀ + λ Wl‖_F²  = ‖z‖² ‖a‖² + 2 λ zᵀ (Wl · a) + λ² ‖Wl‖_F²
  ‖dBl_i‖²            = ‖z‖²
  ‖g_i‖²              = Σ_l (the two lines above)

and Wl · a is column i of Zl − Bl, already in the cache: O(nl m) work per layer
instead of the (m, nl, n(l-1)) array.  A cancellation of the decay's cross term
that rounds below 0 is returned as 0.

The variance over the batch (gradient_variance)
Entry by entry, the biased (1/m) variance of g_i over the examples, in two
passes (the deviations first, then their squares):

  mean_θ = (1/m) Σ_i g_i[θ]
  var_θ  = (1/m) Σ_i (g_i[θ] − mean_θ)²          the shape of θ

The decay λ · Wl is the same in every g_i and drops out.  The one-pass form
(1/m) (dZl ⊙ dZl) · (A(l-1) ⊙ A(l-1))ᵀ − mean² needs no per-example array but
loses every digit when var is small against mean².

Scope: plain dense networks; a normalized layer couples the examples of a batch
and dropout needs masks, so both are refused.
"""
"""The derivation, as ``manual-bp explain --quantity`` prints it: plain text in the
seed's notation, layer by layer."""


def per_example_gradients(
    params: Mapping[str, Array], X: Array, Y: Array, net: Net
) -> dict[str, Array]:
    """Every example's gradient ``g_i = dl_i/dθ``, stacked along a new first axis.

    Parameters
    ----------
    params : ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1), l = 1..L, float32 or float64
    X : (n0, m) inputs, one example per column
    Y : (nL, m) targets
    net : a plain ``manual_bp.Net`` (no normalization, no dropout); its
        ``l2`` adds ``l2 Wl`` to every example's ``dWl``

    Returns
    -------
    dict with ``Wl`` of shape ``(m, nl, n(l-1))`` and ``Bl`` of shape
    ``(m, nl, 1)``, in the params' dtype, keyed in the order ``W1, B1, W2, ...``:
    ``grads["Wl"][i] = dZl[:, i] A(l-1)[:, i]^T + l2 Wl`` and
    ``grads["Bl"][i] = dZl[:, i]``, where ``dZl`` is the unaveraged backward
    (see the module notes).  The mean over axis 0 is ``network.backward``'s
    ``dWl``, ``dBl`` (up to rounding).
    """
    params, X, Y, net = _checked(params, X, Y, net)
    cache, dZ = _unaveraged_backward(params, X, Y, net)
    grads: dict[str, Array] = {}
    for key in layer_keys(net.depth):
        dZ_t = dZ[key.l].T  # (m, nl)
        A_prev_t = cache[key.A_prev].T  # (m, n(l-1))
        dW = dZ_t[:, :, None] * A_prev_t[:, None, :]  # (m, nl, n(l-1)), a new array
        if net.l2:
            dW += net.l2 * params[key.W]
        grads[key.W] = dW
        grads[key.B] = dZ_t[:, :, None].copy()  # (m, nl, 1), its own array
    return grads


def per_example_norms(
    params: Mapping[str, Array], X: Array, Y: Array, net: Net, *, squared: bool = False
) -> Array:
    """``||g_i||`` over every parameter together, without forming any ``g_i``.

    Parameters
    ----------
    params, X, Y, net : as ``per_example_gradients``
    squared : return ``||g_i||^2`` instead (what a sum of squares gives
        before its square root; a gradient-noise scale wants it)

    Returns
    -------
    (m,) array in the params' dtype::

        ||g_i||^2 = sum_l [ ||dZl_i||^2 (||A(l-1)_i||^2 + 1)
                            + 2 l2 dZl_i^T (Zl - Bl)_i + l2^2 ||Wl||_F^2 ]

    with ``dZl_i = dZl[:, i]`` of the unaveraged backward and ``(Zl - Bl)_i =
    Wl A(l-1)_i`` (module notes: Goodfellow's trick, and its rounding).  Cost:
    the forward pass, the backward's ``Wl^T dZl`` products (not its ``dWl``
    products) and ``O(sum_l (nl + n(l-1)) m)`` more.
    """
    params, X, Y, net = _checked(params, X, Y, net)
    cache, dZ = _unaveraged_backward(params, X, Y, net)
    l2 = net.l2
    total = np.zeros(X.shape[1], dtype=X.dtype)
    for key in layer_keys(net.depth):
        z = dZ[key.l]
        A_prev = cache[key.A_prev]
        z_squared = np.einsum("jk,jk->k", z, z)  # ||dZl_i||^2, (m,)
        a_squared = np.einsum("jk,jk->k", A_prev, A_prev)  # ||A(l-1)_i||^2, (m,)
        total += z_squared * (a_squared + 1)
        if l2:
            W = params[key.W]
            WA = cache[key.Z] - params[key.B]  # Wl A(l-1), (nl, m)
            total += (2 * l2) * np.einsum("jk,jk->k", z, WA)
            total += l2 * l2 * np.einsum("jk,jk->", W, W)
    np.maximum(total, 0, out=total)  # the decay's cross term may cancel below 0
    return total if squared else np.sqrt(total, out=total)


def gradient_variance(
    params: Mapping[str, Array], X: Array, Y: Array, net: Net
) -> dict[str, Array]:
    """The biased variance over the batch of the per-example gradients, per entry.

    Parameters
    ----------
    params, X, Y, net : as ``per_example_gradients``

    Returns
    -------
    dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1), each of its parameter's
    shape and the params' dtype::

        var[θ] = (1/m) sum_i (g_i[θ] - gbar[θ])^2,     gbar = (1/m) sum_i g_i

    biased (``1/m``, NumPy's ``var`` default and ``jax.numpy.var``'s): with
    ``m = 1`` it is 0.  The decay's ``l2 Wl`` is the same in every ``g_i``:
    it drops out, and the result does not depend on ``net.l2``.  Two-pass
    form, one layer's per-example gradients at a time (``m nl n(l-1)``
    entries): see the module notes for why not the second-moment form.
    """
    params, X, Y, net = _checked(params, X, Y, net)
    cache, dZ = _unaveraged_backward(params, X, Y, net)
    variance: dict[str, Array] = {}
    for key in layer_keys(net.depth):
        z = dZ[key.l]  # (nl, m)
        A_prev = cache[key.A_prev]  # (n(l-1), m)
        outer = z.T[:, :, None] * A_prev.T[:, None, :]  # (m, nl, n(l-1)), without l2 Wl
        variance[key.W] = _two_pass_variance(outer)
        variance[key.B] = _two_pass_variance(z.T)[:, None]
    return variance


def _two_pass_variance(samples: Array) -> Array:
    """``(1/m) sum_i (x_i - mean)^2`` over axis 0: deviations first, then squares."""
    deviations = samples - samples.mean(axis=0)
    return np.einsum("i...,i...->...", deviations, deviations) / samples.shape[0]


def _unaveraged_backward(
    params: Mapping[str, Array], X: Array, Y: Array, net: Net
) -> tuple[dict[str, Array], dict[int, Array]]:
    """The forward cache and ``dZl`` (nl, m) for l = 1..L, column ``i`` being
    ``dl_i/dZl[:, i]``: ``network.backward``'s ``dZl`` times ``m``, without
    its ``dWl``, ``dBl`` products and without ``dA0``."""
    _, cache = network.forward(params, X, net)
    depth, m = net.depth, X.shape[1]
    keys = layer_keys(depth)
    output = keys[-1]
    activation = ACTIVATIONS[net.activations[-1]]
    # The loss's dZL holds the batch mean's 1/m: times m, each column is one example's.
    dZ_L = output_gradient(LOSSES[net.loss], activation, cache[output.Z], cache[output.A], Y)
    dZ_L *= m  # output_gradient returns a new array
    dZ: dict[int, Array] = {depth: dZ_L}
    sizes = net.layer_sizes
    # The products W2^T dZ2 .. WL^T dZL: nl n(l-1) m multiply-adds each.
    largest = max(
        (n * n_prev * m for n, n_prev in zip(sizes[2:], sizes[1:], strict=False)), default=0
    )
    gemms = threads.gemms()
    # The same thread policy as network.backward's products (manual_bp.threads).
    matmul = gemms.matmul if largest > threads.SINGLE_THREAD_WORK else np.matmul
    try:
        for l in range(depth, 1, -1):
            key = keys[l - 2]  # layer l - 1
            dA = matmul(params[f"W{l}"].T, dZ[l])  # dA(l-1) = Wl^T dZl
            activation = ACTIVATIONS[net.activations[l - 2]]
            dZ[l - 1] = activation.backward(dA, cache[key.Z], cache[key.A])
    finally:
        gemms.restore()
    return cache, dZ


def _checked(
    params: object, X: object, Y: object, net: object
) -> tuple[dict[str, Array], Array, Array, Net]:
    """The arguments, checked before any work: a plain ``Net``; ``params`` of
    its sizes in one float dtype; ``X`` (n0, m) and ``Y`` (nL, m) in that
    dtype (converted when they are not), ``Y`` in the loss's domain."""
    if not isinstance(net, Net):
        raise TypeError(f"net: expected a manual_bp.Net, got {type(net).__name__} {net!r}")
    if net.normalized or net.dropped:
        raise ValueError(
            "net: per-example quantities are supported for plain dense networks (no "
            "normalization: its batch statistics couple the examples; no dropout), got "
            f"normalization {net.normalization} and dropout {net.dropout}"
        )
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
    if "W1" not in params:
        raise ValueError(
            f"params: expected keys W1..W{net.depth}, B1..B{net.depth}, "
            f"got {sorted(map(str, params))}"
        )
    dtype = np.asarray(params["W1"]).dtype
    try:
        dtype = check_dtype(dtype)
    except TypeError:
        raise TypeError(f"params['W1']: expected dtype float32 or float64, got {dtype}") from None
    checked = check_params(params, net.layer_sizes, dtype)
    inputs = check_inputs(X, net.inputs, dtype)
    targets: Array = check_targets(Y, (net.layer_sizes[-1], inputs.shape[1]), net.loss, dtype)
    return checked, inputs, targets, net
