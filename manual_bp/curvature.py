"""Second-order products by hand: the Hessian-vector product and the Gauss-Newton matrix.

Notation (from the seed, as ``manual_bp.network``)
---------------------------------------------------
The batch is stored as columns; ``Wl`` is ``(nl, n(l-1))``, ``Bl`` is
``(nl, 1)``, ``Zl = Wl A(l-1) + Bl`` and ``Al = f_l(Zl)`` are ``(nl, m)``, and
the loss ``L`` is the mean over the ``m`` columns (plus ``l2 / 2 sum ||Wl||^2``
when ``net.l2 > 0``).  ``V`` is a direction in parameter space: a dict with a
``Wl`` (``VWl``) and a ``Bl`` (``VBl``) of the params' shapes.  ``H`` is the
Hessian of ``L`` with respect to every ``Wl``, ``Bl``; ``J`` the Jacobian of
the network's output (see the GGN below) with respect to them.

Hessian-vector product (Pearlmutter's R-operator)
-------------------------------------------------
``R(x) = d/dε x(θ + εV) at ε = 0`` of every variable ``x`` of the forward and
the backward pass; ``R(dWl)``, ``R(dBl)`` are ``H V``.  Forward, l = 1..L,
with ``R(A0) = 0``::

    R(Zl) = VWl A(l-1) + Wl R(A(l-1)) + VBl             (nl, m)
    R(Al) = f_l'(Zl) ⊙ R(Zl)                            (nl, m)
          = Al ⊙ (R(Zl) − colsum(Al ⊙ R(Zl)))           softmax

Output: a canonical pair (identity + mse, sigmoid + binary_cross_entropy,
softmax + cross_entropy) has the fused ``dZL = (AL − Y) / m`` (times the
column sums ``s`` of ``Y`` for cross-entropy, 1 up to rounding), so::

    R(dZL) = R(AL) / m                   (⊙ s for cross_entropy)

``mse`` with another output activation goes through ``dAL = (AL − Y) / m``,
``R(dAL) = R(AL) / m`` and the activation's step below.  Backward,
l = L..1::

    R(dWl) = R(dZl) A(l-1)^T + dZl R(A(l-1))^T + l2 VWl   (nl, n(l-1))
    R(dBl) = rowsum(R(dZl))                               (nl, 1)
    dA(l-1)    = Wl^T dZl                                 (n(l-1), m)
    R(dA(l-1)) = Wl^T R(dZl) + VWl^T dZl
    dZl    = f_l'(Zl) ⊙ dAl
    R(dZl) = f_l'(Zl) ⊙ R(dAl) + f_l''(Zl) ⊙ dAl ⊙ R(Zl)     elementwise f_l
    R(dZl) = Al ⊙ (R(dAl) − colsum(Al ⊙ R(dAl)))             softmax
             + R(Al) ⊙ (dAl − colsum(Al ⊙ dAl)) − Al ⊙ colsum(R(Al) ⊙ dAl)

The term ``f_l''(Zl) ⊙ dAl ⊙ R(Zl)`` (``Activation.second_derivative``) is what
makes this the Hessian and not the Gauss-Newton matrix.  Kinks: relu and
leaky_relu have ``f'' = 0`` on either side and none at 0, where it is taken
as 0 (as jax takes it); elu's ``f''`` jumps from ``e^0 = 1`` to 0 at 0 and
takes 1 there.  A check must call entries whose ``Z`` lies at (within
rounding of) such a point undecided: there the Hessian does not exist, and
the two one-sided answers differ.

Generalised Gauss-Newton (GGN)
------------------------------
``G = J^T H_out J``, where the network's output is where the loss is
convex: the logits ``ZL`` for a canonical pair (the output activation is
part of the loss), ``AL`` for ``mse`` with another activation.  ``H_out`` per
column (``p = AL``, ``s`` = the column sums of ``Y``)::

    identity + mse                 I / m
    sigmoid + binary_cross_entropy diag(p (1 − p)) / m
    softmax + cross_entropy        s (diag(p) − p p^T) / m
    f + mse (f not identity)       I / m at AL, i.e. J_f^T J_f / m at ZL

``G`` is ``H`` without the second-derivative terms of every layer (and of a
non-canonical output activation): positive semi-definite.  ``G V`` is the R
forward pass to ``R(ZL)`` (``J V``), ``U = H_out R(ZL)`` (``R(dZL)`` above, and
for mse with ``f``: ``U = f_L'(ZL)^T R(AL) / m``), then the ordinary backward
pass of ``U`` (``dWl = U A(l-1)^T`` ...), plus ``l2 VWl``.

The exact diagonal of ``G`` (BackPACK's DiagGGN exact) factors each column's
``H_out = S S^T`` with ``K = nL`` columns of ``S`` (``(nL, K, m)`` for the
batch), backpropagates every column ``S_k`` as a ``dZL`` (``Dl`` of shape
``(nl, K, m)``), and sums the squares::

    identity + mse           S_k = e_k / √m
    sigmoid + bce            S_k = e_k ⊙ sqrt(p (1 − p) / m)
    softmax + ce             S_k = sqrt(s / m) √p_k (e_k − p)
    f + mse                  S_k = f_L'(ZL)^T e_k / √m
    diag(G)_Wl = (Σ_k Dl_k ⊙ Dl_k) (A(l-1) ⊙ A(l-1))^T + l2      (nl, n(l-1))
    diag(G)_Bl = rowsum(Σ_k Dl_k ⊙ Dl_k)                           (nl, 1)
    D(l-1)_k = f_(l-1)'(Z(l-1))^T (Wl^T Dl_k)

Only plain dense networks (no normalization, no dropout).  Every function
checks its arguments first, computes in the params' dtype (float32 stays
float32) and never writes into its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from manual_bp import threads
from manual_bp.activations import ACTIVATIONS, Activation, zero_second_derivative
from manual_bp.architecture import layer_keys
from manual_bp.losses import LOSSES
from manual_bp.net import Net
from manual_bp.network import forward_numpy, new_arrays
from manual_bp.validation import (
    SUPPORTED_DTYPES,
    check_inputs,
    check_params,
    check_targets,
)

Array = np.ndarray
Params = Mapping[str, Array]
Matmul = Callable[..., Array]

__all__ = ["ggn_diagonal", "ggn_vector_product", "hessian_vector_product"]


DERIVATION = """\
Second-order products by hand: H V (Pearlmutter's R-operator) and the GGN G V.

Notation (the seed's): the batch is stored as columns.

  A0 = X                        (n0, m)
  Zl = Wl · A(l-1) + Bl         (nl, m)    Wl (nl, n(l-1)),  Bl (nl, 1)
  Al = f_l(Zl)                  (nl, m)
  L  = mean loss over the m columns + (λ/2) Σ_l ‖Wl‖²     λ = net.l2

V is a direction in parameter space: VWl (nl, n(l-1)) and VBl (nl, 1) for every l.
R(x) = d/dε x(θ + ε V) at ε = 0, for every variable x of the forward and the
backward pass.  R(dWl) and R(dBl) are the Hessian-vector product H V.

R forward pass, l = 1, ..., L, with R(A0) = 0:
  R(Zl) = VWl · A(l-1) + Wl · R(A(l-1)) + VBl          (nl, m)
  R(Al) = f_l'(Zl) ⊙ R(Zl)                             (nl, m)   elementwise f_l
  R(Al) = Al ⊙ (R(Zl) − colsum(Al ⊙ R(Zl)))           softmax

Output layer L (canonical pairs: identity + mse, sigmoid + binary_cross_entropy,
softmax + cross_entropy):
  dZL    = (AL − Y) / m                                (nL, m)
  R(dZL) = R(AL) / m                                   (nL, m)
  (mse after another activation: dAL = (AL − Y) / m, R(dAL) = R(AL) / m, then
  the activation's step below)

R backward pass, l = L, ..., 1 (each line next to the ordinary one it
differentiates):
  dWl        = dZl · A(l-1)ᵀ + λ Wl
  R(dWl)     = R(dZl) · A(l-1)ᵀ + dZl · R(A(l-1))ᵀ + λ VWl     (nl, n(l-1))
  dBl        = Σ_columns dZl
  R(dBl)     = Σ_columns R(dZl)                                (nl, 1)
  dA(l-1)    = Wlᵀ · dZl
  R(dA(l-1)) = Wlᵀ · R(dZl) + VWlᵀ · dZl                       (n(l-1), m)
  dZl        = f_l'(Zl) ⊙ dAl
  R(dZl)     = f_l'(Zl) ⊙ R(dAl) + f_l''(Zl) ⊙ dAl ⊙ R(Zl)     (nl, m)

The second-derivative term f_l''(Zl) ⊙ dAl ⊙ R(Zl) is what makes this H and not
the Gauss-Newton matrix.  At a kink (relu, leaky_relu at 0; elu's f'' at 0) the
Hessian does not exist: f'' is taken as jax takes it, and a check must not
judge entries whose Z sits there.

The generalised Gauss-Newton product G V = Jᵀ H_out J V
J is the Jacobian of the network's output with respect to every Wl, Bl; the
output is where the loss is convex: the logits ZL for a canonical pair, AL for
mse after another activation.  H_out, per column (p = AL, s = colsum(Y)):

  identity + mse                   I / m
  sigmoid + binary_cross_entropy   diag(p ⊙ (1 − p)) / m
  softmax + cross_entropy          s (diag(p) − p · pᵀ) / m
  f + mse (f not identity)         I / m at AL, so J_fᵀ J_f / m at ZL

  1. J V:      the R forward pass above, up to R(ZL)           (nL, m)
  2. H_out:    U = H_out R(ZL)                                 (nL, m)
  3. Jᵀ U:     the ordinary backward pass with dZL = U, no f'' term:
               dWl = Dl · A(l-1)ᵀ + λ VWl,  dBl = Σ_columns Dl,
               D(l-1) = f_(l-1)'(Z(l-1)) ⊙ (Wlᵀ · Dl),  DL = U

G is H without every second-derivative term: positive semi-definite.

The exact diagonal of G (ggn_diagonal)
Factor each column's H_out = S Sᵀ with K = nL columns S_k:

  identity + mse                   S_k = e_k / √m
  sigmoid + binary_cross_entropy   S_k = e_k ⊙ √(p ⊙ (1 − p) / m)
  softmax + cross_entropy          S_k = √(s / m) √p_k (e_k − p)
  f + mse                          S_k = f_L'(ZL)ᵀ e_k / √m

Backpropagate every S_k as a dZL, DL_k = S_k, all k at once (nl, K, m):

  D(l-1)_k   = f_(l-1)'(Z(l-1)) ⊙ (Wlᵀ · Dl_k)
  diag(G)_Wl = (Σ_k Dl_k ⊙ Dl_k) · (A(l-1) ⊙ A(l-1))ᵀ + λ      (nl, n(l-1))
  diag(G)_Bl = Σ_columns Σ_k Dl_k ⊙ Dl_k                       (nl, 1)

Scope: plain dense networks (no normalization, no dropout).
"""
"""The derivation, as ``manual-bp explain --quantity`` prints it: plain text in the
seed's notation, layer by layer."""


def hessian_vector_product(
    params: Params, X: Array, Y: Array, net: Net, V: Params
) -> dict[str, Array]:
    """``H V``: the Hessian of the batch loss times ``V``, by the R-operator.

    Parameters
    ----------
    params : dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1), l = 1..L, one
        float dtype (float32 or float64)
    X : (n0, m) inputs, one sample per column
    Y : (nL, m) targets, in the loss's domain
    net : a plain ``manual_bp.Net`` (no normalization, no dropout); its
        ``l2`` adds ``l2 VWl`` to every weight's product
    V : dict of the params' keys, shapes and dtype: the direction

    Returns
    -------
    dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1): ``R(dWl)``, ``R(dBl)``
    (see the module notes), in the params' dtype.
    """
    params, X, Y, V, net = _checked(params, X, Y, net, V)
    gemms = threads.gemms()
    matmul = _matmul_for(gemms, net, X.shape[1])
    try:
        slots = _work_arrays(net, X.shape[1], X.dtype, backward=True)
        passes = _r_forward(params, X, V, net, matmul, slots)
        return _r_backward(params, V, Y, net, passes, matmul, slots)
    finally:
        gemms.restore()


def ggn_vector_product(params: Params, X: Array, Y: Array, net: Net, V: Params) -> dict[str, Array]:
    """``G V = J^T H_out J V`` (+ ``l2 VWl``): the Gauss-Newton product.

    Parameters are those of ``hessian_vector_product``.  The R forward pass
    gives ``J V`` (``R(ZL)``, or ``R(AL)`` for mse with a non-identity output
    activation), ``H_out`` multiplies it (module notes), and the ordinary
    backward pass (no second-derivative terms) gives ``J^T``.

    Returns
    -------
    dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1), in the params' dtype.
    """
    params, X, Y, V, net = _checked(params, X, Y, net, V)
    gemms = threads.gemms()
    matmul = _matmul_for(gemms, net, X.shape[1])
    try:
        slots = _work_arrays(net, X.shape[1], X.dtype, backward=False)
        Zs, As, _, RAs, derivatives = _r_forward(params, X, V, net, matmul, slots)
        depth, m = net.depth, X.shape[1]
        output = ACTIVATIONS[net.activations[-1]]
        loss = LOSSES[net.loss]
        if output.name == loss.canonical_activation:
            U = _canonical_curvature(net.loss, RAs[depth], Y)
        else:  # mse at AL: H_out = I / m, then f_L'(ZL)^T back to ZL
            U = output.backward(RAs[depth] / m, Zs[depth], As[depth])
        result: dict[str, Array] = {}
        for key in reversed(layer_keys(depth)):
            l = key.l
            dW = matmul(U, As[l - 1].T)
            if net.l2:
                dW += net.l2 * V[key.W]
            result[key.W], result[key.B] = dW, U.sum(axis=1, keepdims=True)
            if l > 1:
                U = matmul(params[key.W].T, U)
                derivative = derivatives[l - 1]
                if derivative is not None:
                    U *= derivative
                else:  # softmax
                    U = ACTIVATIONS[net.activations[l - 2]].backward(U, Zs[l - 1], As[l - 1])
        return _in_param_order(result, depth)
    finally:
        gemms.restore()


def ggn_diagonal(params: Params, X: Array, Y: Array, net: Net) -> dict[str, Array]:
    """The exact diagonal of the GGN ``G`` (+ ``l2`` on the weights).

    Each column's output Hessian is factored ``H_out = S S^T`` with
    ``K = nL`` columns, every column is backpropagated at once as a
    ``(nl, K, m)`` array (no loop over samples or columns), and
    ``diag(G) = Σ_samples Σ_k (backprop of S_k)^2`` in each parameter's shape
    (module notes).

    Parameters
    ----------
    params, X, Y, net : as ``hessian_vector_product``

    Returns
    -------
    dict with ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1): the diagonal entries of
    ``G`` for each parameter, in the params' dtype; non-negative.
    """
    params, X, Y, net = _checked_batch(params, X, Y, net)
    depth, m = net.depth, X.shape[1]
    gemms = threads.gemms()
    matmul = _matmul_for(gemms, net, X.shape[1] * net.layer_sizes[-1])
    try:
        _, cache = forward_numpy(params, X, net.activations)
        keys = layer_keys(depth)
        ZL, AL = cache[keys[-1].Z], cache[keys[-1].A]
        D = _output_factor(net, ZL, AL, Y)
        K = D.shape[1]
        result: dict[str, Array] = {}
        for key in reversed(keys):
            l = key.l
            D2 = np.einsum("ikj,ikj->ij", D, D)  # Σ_k Dl_k ⊙ Dl_k, (nl, m)
            A_prev = cache[key.A_prev]
            diag_W = matmul(D2, (A_prev * A_prev).T)
            if net.l2:
                diag_W += net.l2
            result[key.W], result[key.B] = diag_W, D2.sum(axis=1, keepdims=True)
            if l > 1:
                W = params[key.W]
                back = matmul(W.T, D.reshape(W.shape[0], K * m)).reshape(W.shape[1], K, m)
                activation = ACTIVATIONS[net.activations[l - 2]]
                D = _backward_columns(activation, cache[f"Z{l - 1}"], cache[key.A_prev], back)
        return _in_param_order(result, depth)
    finally:
        gemms.restore()


# --- the passes ---------------------------------------------------------------------


def _r_forward(
    params: Params, X: Array, V: Params, net: Net, matmul: Matmul, slots: Mapping[str, Array]
) -> tuple[list[Array], list[Array], list[Array], list[Array], list[Array | None]]:
    """``Zl``, ``Al``, ``R(Zl)``, ``R(Al)`` and ``f_l'(Zl)`` (``None`` for
    softmax) for l = 0..L; index 0 is the input ``A0 = X`` (``Z0``, ``R(Z0)``
    and ``f_0'`` are placeholders, and ``R(A0) = 0`` is never read: layer 1
    skips its products).  Each is written into its array of ``slots``
    (``_work_arrays``), or a new one when there is none."""
    Zs, As, RZs, RAs = [X], [X], [X], [X]
    derivatives: list[Array | None] = [None]
    for key in layer_keys(net.depth):
        l = key.l
        W, B, VW, VB = params[key.W], params[key.B], V[key.W], V[key.B]
        A_prev = As[l - 1]
        activation = ACTIVATIONS[net.activations[l - 1]]
        Z = matmul(W, A_prev, out=slots.get(f"Z{l}"))
        Z += B
        A = activation.forward_into(Z, slots.get(f"A{l}"))
        RZ = matmul(VW, A_prev, out=slots.get(f"RZ{l}"))
        if l > 1:
            RZ += matmul(W, RAs[l - 1], out=slots.get(f"T{l}"))
        RZ += VB
        if activation.derivative is not None:  # R(Al) = f'(Zl) ⊙ R(Zl)
            derivative = activation.derivative(Z, A, out=slots.get(f"F{l}"))
            RA = np.multiply(derivative, RZ, out=slots.get(f"RA{l}"))
        else:  # softmax: J R(Zl), J = diag(p) − p p^T symmetric, so its backward step
            derivative = None
            RA = activation.backward(RZ, Z, A, out=slots.get(f"RA{l}"))
        Zs.append(Z)
        As.append(A)
        RZs.append(RZ)
        RAs.append(RA)
        derivatives.append(derivative)
    return Zs, As, RZs, RAs, derivatives


def _work_arrays(net: Net, m: int, dtype: np.dtype, backward: bool) -> dict[str, Array]:
    """The pass's ``(n, m)`` arrays, views of one block (``network.new_arrays``:
    separate large arrays would each come as fresh pages, a page fault per
    4 KiB, which doubled the HVP's time in ``benchmarks/curvature_speed.py``).
    Forward: ``Zl``, ``Al``, ``RZl``, ``RAl``, ``Fl`` (``f_l'``), ``Tl`` (a
    product's scratch); ``backward``: ``dAl``, ``RdAl``, ``Sl`` (scratch) for
    l = 1..L-1, and ``Ql`` (nl, n(l-1)), ``dR(dWl)``'s second product."""
    sizes = net.layer_sizes
    shapes: dict[str, tuple[int, int]] = {}
    for l in range(1, net.depth + 1):
        for name in ("Z", "A", "RZ", "RA", "F", "T"):
            shapes[f"{name}{l}"] = (sizes[l], m)
        if backward and l > 1:
            for name in ("dA", "RdA", "S"):
                shapes[f"{name}{l - 1}"] = (sizes[l - 1], m)
            shapes[f"Q{l}"] = (sizes[l], sizes[l - 1])
    return new_arrays(shapes, dtype)


def _result_arrays(net: Net, dtype: np.dtype) -> dict[str, Array]:
    """The result's ``Wl`` arrays, views of one block of their own."""
    sizes = net.layer_sizes
    shapes = {f"W{l}": (sizes[l], sizes[l - 1]) for l in range(1, net.depth + 1)}
    return new_arrays(shapes, dtype)


def _r_backward(
    params: Params,
    V: Params,
    Y: Array,
    net: Net,
    passes: tuple[list[Array], list[Array], list[Array], list[Array], list[Array | None]],
    matmul: Matmul,
    slots: Mapping[str, Array],
) -> dict[str, Array]:
    """The backward pass and its R pass together, l = L..1 (module notes)."""
    Zs, As, RZs, RAs, derivatives = passes
    depth, m = net.depth, Y.shape[1]
    loss = LOSSES[net.loss]
    output = ACTIVATIONS[net.activations[-1]]
    if output.name == loss.canonical_activation:
        dZ = loss.fused_dZ(As[depth], Y)
        RdZ = _canonical_curvature(net.loss, RAs[depth], Y)
    else:
        if loss.dA is None:  # Net's validation pairs such a loss with its canonical output
            raise ValueError(f"net: {loss.name} takes only {loss.canonical_activation} outputs")
        dZ, RdZ = _r_activation_backward(
            output, Zs[depth], As[depth], RZs[depth], RAs[depth], derivatives[depth],
            loss.dA(As[depth], Y), RAs[depth] / m,
        )  # fmt: skip
    result: dict[str, Array] = {}
    outputs = _result_arrays(net, Y.dtype)
    for key in reversed(layer_keys(depth)):
        l = key.l
        W, VW = params[key.W], V[key.W]
        RdW = matmul(RdZ, As[l - 1].T, out=outputs.get(key.W))
        if l > 1:
            RdW += matmul(dZ, RAs[l - 1].T, out=slots.get(f"Q{l}"))
        if net.l2:
            RdW += net.l2 * VW
        result[key.W], result[key.B] = RdW, RdZ.sum(axis=1, keepdims=True)
        if l > 1:
            dA = matmul(W.T, dZ, out=slots.get(f"dA{l - 1}"))
            RdA = matmul(W.T, RdZ, out=slots.get(f"RdA{l - 1}"))
            RdA += matmul(VW.T, dZ, out=slots.get(f"S{l - 1}"))
            activation = ACTIVATIONS[net.activations[l - 2]]
            dZ, RdZ = _r_activation_backward(
                activation, Zs[l - 1], As[l - 1], RZs[l - 1], RAs[l - 1], derivatives[l - 1],
                dA, RdA,
            )  # fmt: skip
    return _in_param_order(result, depth)


def _r_activation_backward(
    activation: Activation,
    Z: Array,
    A: Array,
    RZ: Array,
    RA: Array,
    derivative: Array | None,
    dA: Array,
    RdA: Array,
) -> tuple[Array, Array]:
    """``(dZ, R(dZ))`` of one activation step, every array ``(nl, m)``;
    ``derivative`` is ``f'(Z)`` from the forward pass (``None``: softmax).
    ``dA`` and ``RdA`` are the pass's own arrays: an elementwise step writes
    ``dZ`` and ``R(dZ)`` over them.

    Elementwise: ``R(dZ) = f'(Z) ⊙ R(dA) + f''(Z) ⊙ dA ⊙ R(Z)``, the last term
    skipped where ``f''`` is ``zero_second_derivative``.  Softmax
    (``dZ = A ⊙ (dA − c)``, ``c = colsum(A ⊙ dA)``):
    ``R(dZ) = A ⊙ (R(dA) − colsum(A ⊙ R(dA))) + R(A) ⊙ (dA − c) − A ⊙ colsum(R(A) ⊙ dA)``.
    """
    if derivative is not None:
        RdA *= derivative
        second = activation.second_derivative
        if second is not None and second is not zero_second_derivative:
            term = second(Z, A)
            term *= dA
            term *= RZ
            RdA += term
        dA *= derivative
        return dA, RdA
    # softmax: its Jacobian's own R term
    dZ = activation.backward(dA, Z, A)
    RdZ = activation.backward(RdA, Z, A)
    c = np.sum(A * dA, axis=0, keepdims=True)
    RdZ += RA * (dA - c) - A * np.sum(RA * dA, axis=0, keepdims=True)
    return dZ, RdZ


def _canonical_curvature(loss: str, R: Array, Y: Array) -> Array:
    """``R(dZL)`` of a canonical pair from ``R(AL)``: ``R(AL) / m``, times the
    column sums of ``Y`` for cross-entropy (whose fused ``dZL`` keeps them).
    The same ``H_out R(ZL)`` the GGN takes: ``R(AL) = J_f R(ZL)``."""
    m = Y.shape[1]
    if loss == "cross_entropy":
        return R * (Y.sum(axis=0, keepdims=True) / m)
    return R / m


def _output_factor(net: Net, ZL: Array, AL: Array, Y: Array) -> Array:
    """``S`` of ``H_out = S S^T`` for every column: ``(nL, K, m)``, ``K = nL``."""
    n, m = AL.shape
    dtype = AL.dtype
    eye = np.eye(n, dtype=dtype)[:, :, None]  # e_k as eye[:, k]
    output = ACTIVATIONS[net.activations[-1]]
    if output.name != LOSSES[net.loss].canonical_activation:  # mse at AL: J_f^T e_k / √m
        identity = np.broadcast_to(eye / math.sqrt(m), (n, n, m))
        return _backward_columns(output, ZL, AL, identity)
    if net.loss == "mse":
        return np.broadcast_to(eye / math.sqrt(m), (n, n, m)).copy()
    if net.loss == "binary_cross_entropy":
        return eye * np.sqrt(AL * (1 - AL) / m)[:, None, :]
    # cross_entropy: S_k = sqrt(s / m) √p_k (e_k − p)
    scale = np.sqrt(Y.sum(axis=0, keepdims=True) / m) * np.sqrt(AL)  # (K, m): column k's
    return (eye - AL[:, None, :]) * scale[None, :, :]


def _backward_columns(activation: Activation, Z: Array, A: Array, D: Array) -> Array:
    """The activation's backward step of ``K`` columns at once: ``D`` is
    ``(nl, K, m)``, ``Z`` and ``A`` ``(nl, m)``."""
    A3 = A[:, None, :]
    if activation.derivative is not None:
        return D * activation.derivative(Z, A)[:, None, :]
    return A3 * (D - np.sum(A3 * D, axis=0, keepdims=True))  # softmax


def _in_param_order(result: dict[str, Array], depth: int) -> dict[str, Array]:
    """``W1, B1, ..., WL, BL``: the params' order."""
    ordered: dict[str, Array] = {}
    for key in layer_keys(depth):
        ordered[key.W], ordered[key.B] = result[key.W], result[key.B]
    return ordered


def _matmul_for(gemms: threads.Gemms, net: Net, columns: int) -> Matmul:
    """The thread policy's ``matmul`` when some product is big enough for it
    to act, else NumPy's own (as ``manual_bp.network``)."""
    sizes = net.layer_sizes
    largest = max(n * n_prev for n, n_prev in zip(sizes[1:], sizes, strict=False)) * columns
    return gemms.matmul if largest > threads.SINGLE_THREAD_WORK else np.matmul


# --- checks -------------------------------------------------------------------------


def _checked(
    params: object, X: object, Y: object, net: object, V: object
) -> tuple[dict[str, Array], Array, Array, dict[str, Array], Net]:
    """``_checked_batch``, then ``V``: the params' keys, shapes and dtype exactly."""
    checked, X, Y, net = _checked_batch(params, X, Y, net)
    direction = check_params(V, net.layer_sizes, checked["W1"].dtype, "V")
    return checked, X, Y, direction, net


def _checked_batch(
    params: object, X: object, Y: object, net: object
) -> tuple[dict[str, Array], Array, Array, Net]:
    """Every argument checked before any work: a plain ``Net``; params of its
    sizes and one float dtype; ``X`` (n0, m) and ``Y`` (nL, m) in that dtype
    (converted if needed, as ``DNN`` converts them)."""
    if not isinstance(net, Net):
        raise TypeError(f"net: expected a manual_bp.Net, got {type(net).__name__} {net!r}")
    if net.normalized or net.dropped:
        raise ValueError(
            "net: curvature products support plain dense networks (no normalization, "
            f"no dropout), got normalization {list(net.normalization)} and dropout "
            f"{list(net.dropout)}"
        )
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
    dtype = np.asarray(params["W1"]).dtype if "W1" in params else np.dtype(np.float64)
    if dtype.name not in SUPPORTED_DTYPES:
        raise TypeError(f"params['W1']: expected dtype float32 or float64, got dtype {dtype}")
    sizes = net.layer_sizes
    checked = check_params(params, sizes, dtype)
    inputs = check_inputs(X, sizes[0], dtype)
    targets = check_targets(Y, (sizes[-1], inputs.shape[1]), net.loss, dtype)
    return checked, inputs, targets, net
