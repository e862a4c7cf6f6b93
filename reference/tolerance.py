"""Per-entry tolerances from a first-order rounding-error bound.

A fixed rtol/atol either cries wolf when a gradient cancels to about zero
(the bias gradient of a symmetric batch) or lets a real bug through.  Here
every entry of every gradient gets its own bound, derived from the unit
roundoff ``u`` and from the magnitudes of the numbers that were summed to
make it.  The bound is the backward recursion run again on magnitudes and
error terms, beside a forward recursion that bounds the rounding error of the
cached forward values.

Units: every ``E*`` array below is in units of ``u = eps(dtype) + eps(float64)``
(the manual side's and the oracle's unit roundoff; for float32 the second is
negligible, for float64 both sides round).  The tolerance is
``SAFETY * u * E``.

Forward (l = 1..L), with ``|.|`` elementwise and ``n = n(l-1)``::

    EZl = (n + 1) (|Wl| |A(l-1)| + |Bl|) + |Wl| EA(l-1)       EA0 = 0
    EAl = |f'(Zl)| EZl + c_f u EZl^2 / 2 + V_f(Zl, Al)
    softmax:  EAl = max(|J| EZl, |Al| expm1(2d) / u) + V,   d = u max EZl per column

Output::

    fused pair:  EdZL = (EAL + (nL + 2)(|AL| + |Y|) + O) / m
                 O = (|ZL| + 8)(|Y| sigmoid(-ZL) + |1 - Y| sigmoid(ZL)) for BCE, else 0
    mse + f:     EdAL = (EAL + 2 |AL - Y|) / m, then the activation step below

Backward (l = L..1), magnitudes ``|dZl|`` etc. taken from the oracle::

    EdZl = |f'| EdAl + |dAl| (c_f EZl + D_f(Zl, Al)) + |dZl|  (+ kink term)
    EdWl = EdZl |A(l-1)|^T + |dZl| EA(l-1)^T + m |dZl| |A(l-1)|^T
    EdBl = sum_columns EdZl + m sum_columns |dZl|
    EdA(l-1) = |Wl|^T EdZl + nl |Wl|^T |dZl|

``c_f`` bounds ``|f''|`` (a derivative taken at a slightly wrong ``z`` is off
by at most ``c_f`` times the error in ``z``, and Taylor's remainder of ``f``
is at most ``c_f d^2 / 2``, so both hold for any size of error); ``V_f`` and
``D_f`` bound the rounding of evaluating ``f`` and ``f'``, on either side
(the oracle's softplus' errs by ``u (|z| + 5)`` relatively: jax differentiates
``logaddexp`` as ``exp(z - lse)``).  softmax has no bounded curvature, but a
logit error of at most ``d`` moves each probability by a factor within
``exp(+-2d)``: float32 logits near 1e7 round by O(1), where ``|J| EZ`` fails.

Dropout (``manual_bp.dropout``): a dropped layer's ``EAl`` is that of
``Fl = f_l(Zl)`` times ``Ml / (1 − p)`` plus ``2 |Al|`` (``1 − p`` rounded to
the dtype and the division); backward, ``dFl = dAl ⊙ Ml / (1 − p)`` the same
way, then ``f_l'`` at ``Fl``.  The weight decay is added by
``reference.compare.with_objective``.

Second order: where ``f'`` and ``dA`` both round to 0 (``tanh(-13.3)`` is
exactly -1 in float32, and so is the target) every first-order term vanishes,
so ``u EdA (c_f EZ + D_f)`` and ``u EdZ EA(l-1)^T`` are added.

Kinks (relu, leaky_relu): the oracle reports its own forward ``Zl``.  Where
it lies on the other side of 0 than ours, the two sides legitimately take
different one-sided derivatives: the kink term allows ``|dA| * jump`` there,
and the slope is bounded by 1.  Everywhere else, ``Z`` exactly 0 included,
the kink convention itself is checked.  (Without the oracle's ``Z``, every
``|Z|`` within its error bound of 0 is excused.)

The ``(n + 1)`` and ``m`` factors are the classical worst-case bound
``|fl(sum) - sum| <= (k - 1) u sum |terms|`` for a k-term sum.

Underflow: relative bounds fail for results near the smallest normal number
``tiny`` (and XLA flushes float64 subnormals to zero, so the oracle may return
0 where NumPy returns ``1e-308``).  Every step therefore also adds
``k * tiny`` absolutely, ``k`` the number of its summands, a subnormal input
counts entirely as error, and the recursion carries both forward like any
other error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from manual_bp.activations import ACTIVATIONS, log_softmax, sigmoid, softplus
from manual_bp.dropout import rate_of
from manual_bp.losses import LOSSES
from reference.cases import Case

Array = np.ndarray
EPS64 = float(np.finfo(np.float64).eps)
TINY64 = float(np.finfo(np.float64).tiny)
# First-order bounds drop O(u^2) terms; a factor 2 covers them with room.
SAFETY = 2.0
# sigmoid(z) rounds to exactly 0 or 1 beyond |z| = 40 in float64 (17 in float32).
_SATURATION = 40.0


@dataclass(frozen=True)
class ErrorModel:
    """How rounding in one activation can move its value and derivative.

    curvature : upper bound on ``|f''(z)|`` over all z
    kink_jump : ``|f'(0+) - f'(0-)|``
    value_error : ``(Z, A) -> bound on |fl(f(z)) - f(z)| / u``
    derivative_error : ``(Z, A) -> bound on |fl(f'(z)) - f'(z)| / u``
    """

    curvature: float
    kink_jump: float
    value_error: Callable[[Array, Array], Array]
    derivative_error: Callable[[Array, Array], Array]


def _relative(c: float) -> Callable[[Array, Array], Array]:
    return lambda Z, A: c * np.abs(A)


def _absolute(c: float) -> Callable[[Array, Array], Array]:
    return lambda Z, A: np.full(np.shape(Z), c)


def _gelu_value_error(Z: Array, A: Array) -> Array:
    # z * cdf with cdf off by <= 2u absolutely while 1 + tanh is inexact.
    return np.abs(A) + 4 * np.where(np.abs(Z) <= 10, np.abs(Z), 0)


def _gelu_derivative_error(Z: Array, A: Array) -> Array:
    # 1 - t^2 is off by <= 2u absolutely; it is scaled by |z| u'(z) / 2.
    Zc = np.minimum(np.abs(Z), 10)
    return 8 + 2 * Zc * (1 + 0.134 * Zc**2)


def _softplus_derivative_error(Z: Array, A: Array) -> Array:
    # The oracle differentiates softplus = logaddexp(z, 0) as exp(z - lse):
    # lse rounds to within u |lse| absolutely, so sigmoid(z) errs by
    # u (|z| + 5) relatively (z = 33: lse = z + 3e-15 rounds to z, f' to 1).
    return 4 + (np.abs(Z) + 5) * sigmoid(Z)


def _silu_derivative_error(Z: Array, A: Array) -> Array:
    # 1 - sigmoid(z) is off by <= u absolutely until sigmoid saturates; times z.
    return 8 + 2 * np.minimum(np.abs(Z), _SATURATION)


# Curvatures max |f''|: sigmoid 0.0962 (z = +-1.317), tanh 0.770 (z = +-0.658),
# softplus 0.25, silu 0.5 (z = 0), gelu 0.798 (z = 0), elu 1 (z -> 0-),
# rounded up.  property_tests/test_tolerance.py checks them on a fine grid.
ERROR_MODELS: dict[str, ErrorModel] = {
    "sigmoid": ErrorModel(0.1, 0.0, _relative(4), _absolute(8)),
    "tanh": ErrorModel(0.8, 0.0, _relative(4), _absolute(10)),
    "relu": ErrorModel(0.0, 1.0, _relative(0), _absolute(0)),
    "leaky_relu": ErrorModel(0.0, 0.99, _relative(1), _absolute(1)),
    "elu": ErrorModel(1.0, 0.0, _relative(4), _absolute(8)),
    "softplus": ErrorModel(0.25, 0.0, _relative(4), _softplus_derivative_error),
    "silu": ErrorModel(0.5, 0.0, _relative(8), _silu_derivative_error),
    "gelu": ErrorModel(0.8, 0.0, _gelu_value_error, _gelu_derivative_error),
    "identity": ErrorModel(0.0, 0.0, _relative(0), _absolute(0)),
    # softmax: value_error per entry; the Jacobian terms are handled below.
    "softmax": ErrorModel(1.0, 0.0, lambda Z, A: (Z.shape[0] + 4) * np.abs(A), _absolute(0)),
}


def _derivative(name: str) -> Callable[..., Array]:
    """``f'`` of an elementwise activation (softmax, which has none, is handled apart)."""
    derivative = ACTIVATIONS[name].derivative
    if derivative is None:
        raise ValueError(f"{name} has no elementwise derivative")
    return derivative


def _column_sum(X: Array) -> Array:
    return np.sum(X, axis=0, keepdims=True)


def _forward_error(
    name: str, Z: Array, A: Array, EZ: Array, floor: float, near_kink: Array, u: float
) -> Array:
    """``EA``: the error of ``A = f(Z)`` given the error ``EZ`` of ``Z``.

    Near a kink the two sides' ``Z`` may lie on different linear pieces, so the
    slope there is bounded by 1 (relu and leaky_relu are 1-Lipschitz).  An
    intermediate that underflowed (``sigmoid(-710)`` inside ``silu``) moves the
    value by up to ``tiny`` times ``|z|``.
    """
    model = ERROR_MODELS[name]
    if name == "softmax":
        # |J| EZ with J = diag(A) - A A^T.
        propagated = np.abs(A) * (EZ + _column_sum(np.abs(A) * EZ))
        propagated = np.maximum(propagated, _softmax_growth(A, EZ, u, floor * u))
    else:
        slope = np.abs(_derivative(name)(Z, A))
        if model.kink_jump:
            slope = np.where(near_kink, 1.0, slope)
        # Taylor's remainder: |f(z + d) - f(z) - f'(z) d| <= c d^2 / 2, d = u EZ.
        propagated = slope * EZ + 0.5 * model.curvature * u * EZ**2
    return propagated + model.value_error(Z, A) + (Z.shape[0] + 4 + np.abs(Z)) * floor


# Below this logit error a linearized softmax is within 0.1 % of the truth,
# which SAFETY covers; above it the exponential's growth is bounded exactly.
_LINEAR_SOFTMAX = 1e-3


def _softmax_growth(A: Array, EZ: Array, u: float, tiny: float) -> Array:
    """A bound on the change of ``softmax`` that holds for any logit error.

    When every logit of a column moves by at most ``d``, each probability moves
    by a factor within ``exp(+-2d)``: ``|dA| <= min(|A| expm1(2d), 1)``, and
    one that underflowed to 0 (``tiny`` the dtype's smallest normal) by at most
    ``tiny exp(2d)``.  The first-order
    ``|J| EZ`` is exact only for small ``d``; float32 logits near ``1e7`` round
    by O(1) (``d = u EZ`` of order 1), and there the linear bound fails.
    """
    d = np.minimum(SAFETY * u * np.max(EZ, axis=0, keepdims=True, initial=0.0), 350.0)
    # A probability that underflowed to 0 was below ``tiny`` before it did;
    # none moves by more than 1.
    change = np.abs(A) * np.expm1(2 * d) + tiny * np.exp(2 * d)
    return np.where(d > _LINEAR_SOFTMAX, np.minimum(change, 1.0) / (SAFETY * u), 0.0)


def _backward_error(
    name: str,
    Z: Array,
    A: Array,
    EZ: Array,
    EA: Array,
    dA: Array,
    EdA: Array,
    u: float,
    floor: float,
    near_kink: Array,
) -> Array:
    """``EdZ``: the error of ``dZ = f'(Z)^T dA`` given the errors of its inputs.

    ``near_kink`` marks the entries whose ``Z`` may lie on the other side of 0
    on the oracle's side.
    """
    model = ERROR_MODELS[name]
    if name == "softmax":
        t = _column_sum(A * dA)
        Et = _column_sum(EA * np.abs(dA) + np.abs(A) * EdA) + A.shape[0] * _column_sum(
            np.abs(A * dA)
        )
        return (
            EA * np.abs(dA - t)
            + np.abs(A) * (EdA + Et + 3 * (np.abs(dA) + np.abs(t)))
            + u * EA * (EdA + Et)
            + (A.shape[0] + 4) * floor
        )
    derivative = _derivative(name)(Z, A)
    derivative_error = model.curvature * EZ + model.derivative_error(Z, A)
    # Near a kink the oracle's f' may be the other one-sided slope (<= 1).
    slope = np.where(near_kink, 1.0, np.abs(derivative)) if model.kink_jump else np.abs(derivative)
    EdZ = (
        slope * EdA
        + np.abs(dA) * derivative_error
        # Second order: when f' and dA both round to 0 (tanh(-13) = -1 in
        # float32 against a target of -1) the first-order terms vanish.
        + u * EdA * derivative_error
        + np.abs(dA * derivative)
        + (4 + (1 + np.abs(dA)) * model.derivative_error(Z, A)) * floor
    )
    if model.kink_jump:
        # The jump multiplies the oracle's dA, which is within u EdA of ours.
        EdZ = EdZ + np.where(near_kink, (np.abs(dA) / u + EdA) * model.kink_jump, 0.0)
    return EdZ


def loss_terms(loss: str, Z: Array, A: Array, Y: Array) -> Array:
    """Magnitudes of the loss's summands, each with the rounding of its own
    evaluation (``log_softmax`` rounds relative to ``|Z|`` and ``logsumexp``)."""
    if loss == "binary_cross_entropy":
        return np.abs(Y) * softplus(-Z) + np.abs(1 - Y) * softplus(Z)
    if loss == "cross_entropy":
        logp = log_softmax(Z)
        lse = Z - np.max(Z, axis=0, keepdims=True) - logp
        # log(sum exp) of a sum near 1 errs by ~u absolutely, not u |lse|.
        return np.abs(Y) * (np.abs(logp) + (Z.shape[0] + 4) * (1 + np.abs(lse)) + np.abs(Z))
    return 0.5 * (A - Y) ** 2


def _loss_error(
    loss: str, Z: Array, A: Array, Y: Array, EZ: Array, EA: Array, floor: float, u: float
) -> float:
    """Error of the batch-mean loss, from the forward errors and the summands."""
    if loss == "binary_cross_entropy":
        # |dl/dZ| = |sigmoid(Z) - Y| bounded from the logits: A may round to Y.
        propagated = (np.abs(Y) * sigmoid(-Z) + np.abs(1 - Y) * sigmoid(Z)) * EZ
    elif loss == "cross_entropy":
        propagated = np.abs(Y) * EZ + np.abs(_column_sum(Y)) * _column_sum(np.abs(A) * EZ)
    else:
        propagated = (np.abs(A - Y) + u * EA) * EA
    terms = loss_terms(loss, Z, A, Y)
    return float((np.sum(propagated) + (Y.size + 8) * (np.sum(terms) + floor)) / Y.shape[1])


def _oracle_logit_error(loss: str, Z: Array, Y: Array) -> Array:
    """The oracle's own rounding of a fused ``dZL`` that grows with ``|Z|``.

    binary_cross_entropy is ``Y softplus(-Z) + (1 - Y) softplus(Z)`` and the
    oracle differentiates each softplus as ``exp(z - logaddexp(z, 0))``
    (``_softplus_derivative_error``): relative error ``u (|Z| + 5)`` on each
    term, ``|Y| sigmoid(-Z)`` and ``|1 - Y| sigmoid(Z)``.  Seen in a campaign:
    ``Z = -33.3``, ``Y = 1`` gave the oracle ``-1/m`` exactly and us
    ``-(1 - 3.4e-15)/m``, 15 u apart.  cross_entropy's ``log_softmax`` has no
    such term: its largest logit is shifted to exactly 0.
    """
    if loss != "binary_cross_entropy":
        return np.zeros_like(Z)
    return (np.abs(Z) + 8) * (np.abs(Y) * sigmoid(-Z) + np.abs(1 - Y) * sigmoid(Z))


@dataclass(frozen=True)
class Tolerances:
    """Absolute tolerance for the loss and for every entry of every gradient."""

    loss: float
    grads: dict[str, Array]
    unit: float


def unit_roundoff(dtype: np.dtype | str) -> float:
    """``u = eps(dtype) + eps(float64)``: the manual side's and the oracle's."""
    return float(np.finfo(np.dtype(dtype)).eps) + EPS64


def _flushed(V: Array, u: float) -> Array:
    """XLA treats float64 subnormal inputs as 0: their whole value is error."""
    V = np.abs(V)
    return np.where(V < TINY64, V, 0.0) / u


def _near_kinks(name: str, Z: Array, EZ: Array, u: float, oracle_Z: Array | None) -> Array:
    """Where the oracle may have taken the other one-sided derivative.

    With the oracle's own ``Z`` this is exact: where the two lie on different
    sides (``Activation.kink_side``).  Without it, wherever ``|Z|`` is within
    its error bound of 0.
    """
    side = ACTIVATIONS[name].kink_side
    if side is None:
        return np.zeros(Z.shape, dtype=bool)
    if oracle_Z is None:
        return np.abs(Z) <= SAFETY * u * EZ
    # XLA compares a subnormal z as 0.
    oracle_Z = np.asarray(oracle_Z)
    return side(Z) != side(np.where(np.abs(oracle_Z) < TINY64, 0.0, oracle_Z))


def _dropout_error(E: Array, V: Array, M: Array, rate: float, floor: float) -> Array:
    """The error of ``V = (U ⊙ M) / (1 − p)`` (``manual_bp.dropout``) given the
    error ``E`` of ``U``: the mask scales it by ``M / (1 − p)``, and ``1 − p``
    rounded to the dtype and the division each round once (``U ⊙ M`` is exact)."""
    return M / (1 - rate) * E + 2 * np.abs(V) + 2 * floor


def _forward_errors(
    params: Mapping[str, Array],
    f64: Mapping[str, Array],
    activations: Sequence[str],
    floor: float,
    u: float,
    oracle_Z: Mapping[str, Array] | None,
    dropout: Sequence[float] = (),
) -> tuple[dict[int, Array], dict[int, Array], dict[int, Array]]:
    """``EZl``, ``EAl`` and the near-kink masks for every layer.

    ``EA0`` counts only a subnormal input, which the oracle flushes to 0.  A
    layer with dropout bounds ``Fl = f_l(Zl)`` first, then the mask's step
    (``_dropout_error``).
    """
    EA = {0: _flushed(f64["A0"], u)}
    EZ, kinks = {}, {}
    for l in range(1, len(activations) + 1):
        W, B = f64[f"W{l}"], np.asarray(params[f"B{l}"], dtype=np.float64)
        absW, absA_prev = np.abs(W), np.abs(f64[f"A{l - 1}"])
        magnitude = absW @ absA_prev + np.abs(B)
        EZ[l] = (
            (absA_prev.shape[0] + 1) * (magnitude + floor)
            + absW @ EA[l - 1]
            + _flushed(W, u) @ (absA_prev + u * EA[l - 1])
            + _flushed(B, u)
        )
        name, Z = activations[l - 1], f64[f"Z{l}"]
        kinks[l] = _near_kinks(name, Z, EZ[l], u, None if oracle_Z is None else oracle_Z[f"Z{l}"])
        rate = rate_of(dropout, l)
        A = f64[f"F{l}"] if rate else f64[f"A{l}"]
        EA[l] = _forward_error(name, Z, A, EZ[l], floor, kinks[l], u)
        if rate:
            EA[l] = _dropout_error(EA[l], f64[f"A{l}"], f64[f"M{l}"], rate, floor)
    return EZ, EA, kinks


def forward_bounds(
    case: Case, cache: Mapping[str, Array]
) -> tuple[dict[int, Array], dict[int, Array]]:
    """Absolute bounds on the rounding error of every forward ``Zl`` and ``Al``
    (``Al`` for l = 0..L) that *any* summation order in ``case.dtype`` makes.

    ``cache`` is manual_bp's forward cache of ``case``.  The classical bound
    ``(k - 1) u sum |terms|`` holds for every order of a k-term sum, so a
    ``Zl`` farther than its bound from a kink lies on the same side of it in
    everyone's forward.
    """
    u = unit_roundoff(case.dtype)
    floor = float(np.finfo(np.dtype(case.dtype)).tiny) / u
    f64 = {key: np.asarray(value, dtype=np.float64) for key, value in cache.items()}
    EZ, EA, _ = _forward_errors(case.params, f64, case.activations, floor, u, None, case.dropout)
    scale = SAFETY * u
    return (
        {l: scale * value for l, value in EZ.items()},
        {l: scale * value for l, value in EA.items()},
    )


def tolerances(
    case: Case,
    cache: Mapping[str, Array],
    oracle_grads: Mapping[str, Array],
    *,
    oracle_Z: Mapping[str, Array] | None = None,
) -> Tolerances:
    """Tolerances for comparing the manual computation of ``case`` (in
    ``case.dtype``) with the oracle.

    ``cache`` is the manual forward's (cast to float64 here);
    ``oracle_grads`` supplies the magnitudes of the true gradients, so that a
    wrong manual gradient cannot loosen its own tolerance.  ``oracle_Z``, the
    oracle's forward ``Zl``, locates kinks exactly; without it every ``Zl``
    within its error bound of a kink is excused.
    """
    case.refuse_normalization("the tolerance's rounding model")
    # The weight decay (case.l2) is added by reference.compare.with_objective.
    params, activations, loss = case.params, case.activations, case.loss
    u = unit_roundoff(case.dtype)
    floor = float(np.finfo(np.dtype(case.dtype)).tiny) / u
    depth = len(activations)
    f64 = {key: np.asarray(value, dtype=np.float64) for key, value in cache.items()}
    Y = np.asarray(case.Y, dtype=np.float64)
    m = Y.shape[1]

    EZ, EA, near_kink = _forward_errors(params, f64, activations, floor, u, oracle_Z, case.dropout)

    Z_L, A_L = f64[f"Z{depth}"], f64[f"A{depth}"]
    loss_error = _loss_error(loss, Z_L, A_L, Y, EZ[depth], EA[depth], floor, u)

    E: dict[str, Array] = {}
    for l in range(depth, 0, -1):
        name = activations[l - 1]
        Z, A = f64[f"Z{l}"], f64[f"A{l}"]
        if l == depth and name == LOSSES[loss].canonical_activation:
            # The oracle may flush the result itself: the floor after the 1/m.
            EdZ = (
                EA[l]
                + (A.shape[0] + 2) * (np.abs(A) + np.abs(Y) + floor)
                + _oracle_logit_error(loss, Z, Y)
            ) / m + 2 * floor
        else:
            if l == depth:
                dA = (A - Y) / m
                EdA = (EA[l] + 2 * (np.abs(A - Y) + floor)) / m + 2 * floor
            else:
                dA, EdA = oracle_grads[f"A{l}"], E[f"A{l}"]
            EA_l, rate = EA[l], rate_of(case.dropout, l)
            if rate:  # dFl = dAl ⊙ Ml / (1 − pl); f_l' reads Fl
                M, A = f64[f"M{l}"], f64[f"F{l}"]
                dA = M / (1 - rate) * dA
                EdA = _dropout_error(EdA, dA, M, rate, floor)
                EA_l = _forward_error(name, Z, A, EZ[l], floor, near_kink[l], u)
            EdZ = _backward_error(name, Z, A, EZ[l], EA_l, dA, EdA, u, floor, near_kink[l])
        absdZ = np.abs(oracle_grads[f"Z{l}"])
        absA_prev = np.abs(f64[f"A{l - 1}"])
        absW = np.abs(f64[f"W{l}"])
        E[f"Z{l}"] = EdZ
        E[f"W{l}"] = (
            EdZ @ absA_prev.T
            + (absdZ + u * EdZ) @ EA[l - 1].T
            + (m + 1) * (absdZ @ absA_prev.T + floor)
        )
        E[f"B{l}"] = np.sum(EdZ, axis=1, keepdims=True) + (m + 1) * (
            np.sum(absdZ, axis=1, keepdims=True) + floor
        )
        E[f"A{l - 1}"] = (
            absW.T @ EdZ
            + (absW.shape[0] + 1) * (absW.T @ absdZ + floor)
            + _flushed(f64[f"W{l}"], u).T @ (absdZ + u * EdZ)
        )

    scale = SAFETY * u
    return Tolerances(scale * loss_error, {key: scale * value for key, value in E.items()}, u)
