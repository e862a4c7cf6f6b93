"""The rounding model of the second-order products ``H V`` and ``G V`` (``manual_bp.curvature``).

The R-operator (``manual_bp.curvature``'s notes) is run again on ``Bound``
values: a float64 value (computed here in NumPy from the case's own inputs,
never from a user's answer) with an absolute bound on the error that any
correct computation of it, in the case's dtype, can have made.  Every sum is
bounded order-free from its terms' magnitudes (``Terms``): ``N`` summands of
products of ``j`` factors, however associated, err by at most::

    (N - 1 + (j - 1)) u sum |terms|  +  N tiny            (rounding, underflow)
    prod (|x_i| + e_i) - prod |x_i|                        (the factors' errors)

``u = eps(dtype) + eps(float64)`` (the user's side and the oracle's), ``tiny``
the dtype's smallest normal number.  The forward ``Zl``, ``Al`` and their
bounds are ``manual_bp_reference.tolerance.forward_errors``' (the same ones
``check_gradients`` and ``away_from_kinks`` use).  Then, per layer::

    R(Zl)   = VWl A(l-1) + Wl R(A(l-1)) + VBl       one sum of 2 n(l-1) + 1 terms
    f'(Zl)  error  c2 EZl + D_f(Zl) u               (+ the kink's jump where near)
    f''(Zl) error  c3 EZl + S_f(Zl) u               (+ elu's jump of 1 where near)
    R(Al)   = f'(Zl) R(Zl)        (softmax: A R(Z) - A colsum(A R(Z)))
    R(dZl)  = f'(Zl) R(dAl) + f''(Zl) dAl R(Zl)     (softmax: its five products)
    R(dWl)  = R(dZl) A(l-1)^T + dZl R(A(l-1))^T + l2 VWl
    R(dBl)  = rowsum R(dZl)
    R(dA(l-1)) = Wl^T R(dZl) + VWl^T dZl

``c2 = sup |f''|`` (``ERROR_MODELS``' curvature) and ``c3 = sup |f'''|``
(``THIRD_DERIVATIVE``) bound how far ``f'`` and ``f''`` move when their
argument is off by ``EZl`` (Lipschitz: any size of error); ``D_f`` is
``ERROR_MODELS``' rounding of ``f'`` and ``S_f`` (``second_derivative_error``)
that of ``f''``, each in units of ``u``.  The output step: ``dZL = (s AL -
Y) / m`` and ``R(dZL) = s R(AL) / m`` for a canonical pair (``s`` the column
sums of ``Y`` for cross-entropy, bounded with ``|s - 1|`` as error: code
that takes ``s = 1`` for targets that sum to 1 is correct), binary
cross-entropy with the oracle's softplus rounding ``(|ZL| + 8) u`` relative;
mse after another activation through ``dAL = (AL - Y) / m``.  The decay's
``l2`` is rounded into the dtype (``u l2``).  The GGN runs the same steps
with no second-order terms: ``U = H_out R(ZL)`` and the plain backward of
``U``.

Kinks: relu's and leaky_relu's ``f'`` jumps at 0 (``kink_jump``), elu's
``f''`` jumps from 1 to 0.  Where ``|Zl| <= SAFETY EZl`` (``Z`` within its
rounding bound of 0, an exact 0 included) the two sides may take different
pieces; the jump is added to the error there, so every entry it reaches gets
a tolerance of its own size (undecided, never failed), and ``excused`` says
how many ``Z`` were so treated.

The tolerance is ``SAFETY`` times the bound.  The same run evaluates a
catalogued bug's formula (``Variant``: a term dropped, a factor changed)
with its own bound, which the diagnosis compares a user's values against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES
from manual_bp.network import forward
from manual_bp_reference.cases import Case
from manual_bp_reference.tolerance.activation import ERROR_MODELS, _forward_error, derivative_of
from manual_bp_reference.tolerance.loss import oracle_logit_error
from manual_bp_reference.tolerance.rounding import SAFETY, Array, unit_roundoff

# sup |f'''| over all z, rounded up (property_tests/test_hvp_check.py checks them
# on a fine grid against jax's third derivative): sigmoid 0.125 (z = 0), tanh 2
# (z = 0), softplus 0.0962 (z = +-1.317), elu 1 (z -> 0-), silu 0.308
# (z = -1.03), gelu 0.777 (z = +-0.79); the piecewise-linear ones 0.
THIRD_DERIVATIVE: dict[str, float] = {
    "identity": 0.0, "relu": 0.0, "leaky_relu": 0.0, "sigmoid": 0.13, "tanh": 2.01,
    "softplus": 0.1, "elu": 1.0, "silu": 0.31, "gelu": 0.78,
}  # fmt: skip
# |f''(0+) - f''(0-)|: elu's second derivative jumps from e^0 = 1 to 0 at 0.
SECOND_JUMP: dict[str, float] = {"elu": 1.0}
PRODUCTS = ("hessian", "ggn")


def second_derivative_error(name: str, Z: Array) -> Array:
    """A bound on ``|fl(f''(z)) - f''(z)| / u`` for any evaluation of ``f''``.

    Absolute, in units of ``u``: each formula is a product of a few factors of
    size ``O(1)`` whose absolute rounding is a few ``u`` (``1 - s`` and
    ``1 - t^2`` lose their relative accuracy, not their absolute one).  silu
    and gelu multiply such a factor by ``z`` (and gelu by ``u'(z)^2``, a
    polynomial in ``z``) until the sigmoid or tanh saturates; jax's softplus
    is ``logaddexp``, whose derivatives err by ``(|z| + 5) u`` relatively.
    """
    Z = np.asarray(Z, dtype=np.float64)
    size = np.abs(Z)
    if name == "softplus":
        s = 1.0 / (1.0 + np.exp(-np.clip(Z, -700, 700)))
        return 16 + 4 * (size + 5) * s * (1 - s)
    if name == "silu":
        return 16 + 4 * np.minimum(size, 40.0)
    if name == "gelu":
        Zc = np.minimum(size, 10.0)
        du = 0.8 * (1 + 0.134 * Zc**2)
        return 16 + 4 * (du + 0.5 * Zc * (0.43 * Zc + 2 * du**2))
    constant = {"sigmoid": 16.0, "tanh": 32.0, "elu": 8.0}.get(name, 0.0)
    return np.full(Z.shape, constant)


# --- bounded arithmetic -------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A float64 ``value`` and an absolute bound ``error`` on how far a correct
    computation of it in the case's dtype can be."""

    value: Array
    error: Array

    @property
    def size(self) -> Array:
        """``|value| + error``: the largest magnitude a computed value can have."""
        return np.abs(self.value) + self.error


@dataclass(frozen=True)
class Terms:
    """An unrounded sum: its value, the error its inputs carry into it, the
    sum of its summands' sizes, how many summands (``count``) and the most
    roundings inside one summand (``rounds``)."""

    value: Array
    error: Array
    magnitude: Array
    count: int
    rounds: int

    def __neg__(self) -> Terms:
        return Terms(-self.value, self.error, self.magnitude, self.count, self.rounds)


@dataclass(frozen=True)
class Rounding:
    """``u`` and ``tiny`` of the case's dtype (``u`` includes float64's)."""

    unit: float
    tiny: float

    def rounded(self, terms: Terms) -> Bound:
        """The sum computed in any order: its rounding added (module notes)."""
        factor = max(terms.count - 1 + terms.rounds, 0)
        error = terms.error + factor * self.unit * terms.magnitude + terms.count * self.tiny
        return Bound(terms.value, error)


def leaf(bound: Bound) -> Terms:
    """A value as one summand of a sum."""
    return Terms(bound.value, bound.error, bound.size, 1, 0)


def times(*factors: Bound) -> Terms:
    """The elementwise product of ``factors``: one summand, ``j - 1`` roundings."""
    value = factors[0].value
    exact, sizes = np.abs(factors[0].value), factors[0].size
    for factor in factors[1:]:
        value = value * factor.value
        exact, sizes = exact * np.abs(factor.value), sizes * factor.size
    return Terms(value, sizes - exact, sizes, 1, len(factors) - 1)


def dot(a: Bound, b: Bound) -> Terms:
    """``a @ b``: ``k`` products per entry, ``k`` the inner size."""
    absa, absb = np.abs(a.value), np.abs(b.value)
    error = absa @ b.error + a.error @ absb + a.error @ b.error
    return Terms(a.value @ b.value, error, a.size @ b.size, a.value.shape[1], 1)


def plus(*terms: Terms) -> Terms:
    """One sum of every summand of ``terms`` (order-free)."""
    first = terms[0]
    value, error, magnitude = first.value, first.error, first.magnitude
    for t in terms[1:]:
        value, error, magnitude = value + t.value, error + t.error, magnitude + t.magnitude
    return Terms(value, error, magnitude, sum(t.count for t in terms), max(t.rounds for t in terms))


def summed(terms: Terms, axis: int) -> Terms:
    """``terms`` summed over ``axis`` (keepdims): the summands of every entry."""
    n = terms.value.shape[axis]

    def total(x: Array) -> Array:
        return np.sum(np.broadcast_to(x, terms.value.shape), axis=axis, keepdims=True)

    return Terms(
        total(terms.value), total(terms.error), total(terms.magnitude), terms.count * n,
        terms.rounds,
    )  # fmt: skip


def constant(value: float, unit: float) -> Bound:
    """A Python float the user's code rounds into its dtype."""
    return Bound(np.asarray(value, dtype=np.float64), np.asarray(unit * abs(value)))


# --- the products ------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """Which formula to evaluate: the correct product (the defaults, with
    ``product``) or a catalogued bug's (a term dropped, a factor changed).

    ``second``: the ``f''`` terms (Hessian); ``cross``: ``dZl R(A(l-1))^T`` in
    ``R(dWl)``; ``back_direction``: ``VWl^T dZl`` in ``R(dA(l-1))``;
    ``bias_direction``: ``VBl`` in ``R(Zl)``; ``output``: ``"correct"``,
    ``"identity"`` (mse's ``I / m`` at the logits, any loss) or ``"diagonal"``
    (cross-entropy's ``diag(p) / m``, its ``p p^T`` left out); ``mean_power``:
    the loss part divided by ``m`` that many times; ``decay``: ``l2 VWl``
    times it; ``sign``: the whole product times it.
    """

    product: str = "hessian"
    second: bool = True
    cross: bool = True
    back_direction: bool = True
    bias_direction: bool = True
    output: str = "correct"
    mean_power: int = 1
    decay: float = 1.0
    sign: float = 1.0


@dataclass(frozen=True)
class CurvatureBounds:
    """A variant's values (float64) and their tolerances (``SAFETY`` times the
    bound), keyed ``W1``, ``B1``, ...; ``excused``: the ``Z`` entries within
    rounding of a kink, per layer (their jump is in the tolerances)."""

    values: dict[str, Array]
    tolerances: dict[str, Array]
    unit: float
    excused: dict[int, int] = field(default_factory=dict)


@dataclass
class _Pass:
    """The forward quantities of one case, as ``Bound`` values."""

    Z: dict[int, Bound]
    A: dict[int, Bound]
    RZ: dict[int, Bound]
    RA: dict[int, Bound]
    D: dict[int, Bound]
    S: dict[int, Bound]


def _naive_value_error(name: str, Z: Array, A: Array, u: float) -> Array:
    """What ``ERROR_MODELS``' value error (relative, for ``expm1``) leaves out:
    elu written ``exp(z) - 1`` errs by ``u (e^z + |A|)`` absolutely for ``z <=
    0``, not ``u |A|``.  Measured (``benchmarks/hvp_false_alarms.py``, seed 0,
    example 3268): ``z = -2.2e-160`` gave ``A = 0`` against ``-2.2e-160``, and
    the next layer's ``Z`` landed on the other side of elu's jump of ``f''``."""
    if name != "elu":
        return np.zeros_like(Z)
    return np.where(Z <= 0, 2 * u * (A + 1), 0.0)


def _exact(value: Array) -> Bound:
    """An input of the case: exact in its dtype; a float64 subnormal the
    oracle flushes to 0 is all error."""
    value = np.asarray(value, dtype=np.float64)
    return Bound(value, np.where(np.abs(value) < np.finfo(np.float64).tiny, np.abs(value), 0.0))


def _slopes(name: str, Z: Array, A: Array, EZ: Array, near: Array, r: Rounding):
    """``f'(Z)`` and ``f''(Z)`` as bounds (module notes), or None for softmax."""
    activation, model = ACTIVATIONS[name], ERROR_MODELS[name]
    if activation.derivative is None:
        return None, None
    D_error = model.curvature * EZ + r.unit * model.derivative_error(Z, A)
    if model.kink_jump:
        D_error = D_error + np.where(near, model.kink_jump, 0.0)
    D = Bound(derivative_of(name)(Z, A), D_error)
    second = activation.second_derivative
    S_value = np.zeros_like(Z) if second is None else second(Z, A)
    S_error = THIRD_DERIVATIVE[name] * EZ + r.unit * second_derivative_error(name, Z)
    S_error = S_error + np.where(near, SECOND_JUMP.get(name, 0.0), 0.0)
    return D, Bound(S_value, S_error)


def _forward(case: Case, V: Mapping[str, Array], variant: Variant, r: Rounding):
    """The forward and R forward passes; the excused ``Z`` count per layer."""
    net = case.net.with_l2(0.0)
    params = {key: np.asarray(value, np.float64) for key, value in case.params.items()}
    X = np.asarray(case.X, np.float64)
    _, cache = forward(params, X, net)
    f64 = {key: np.asarray(value, np.float64) for key, value in cache.items()}
    f64.update(params)
    f64["A0"] = X
    u = r.unit
    passes = _Pass({}, {0: _exact(X)}, {}, {}, {}, {})
    excused: dict[int, int] = {}
    for l, name in enumerate(net.activations, 1):
        shape = f64[f"Z{l}"].shape
        B = _exact(params[f"B{l}"])
        Z = r.rounded(plus(
            dot(_exact(params[f"W{l}"]), passes.A[l - 1]),
            leaf(Bound(np.broadcast_to(B.value, shape), np.broadcast_to(B.error, shape))),
        ))  # fmt: skip
        Z = Bound(f64[f"Z{l}"], Z.error)
        near = np.abs(Z.value) <= SAFETY * Z.error
        kinked = bool(ERROR_MODELS[name].kink_jump) or name in SECOND_JUMP
        if kinked and near.any():
            excused[l] = int(near.sum())
        near = near & kinked
        A_units = _forward_error(name, Z.value, f64[f"A{l}"], Z.error / u, r.tiny / u, near, u)
        A = Bound(f64[f"A{l}"], u * A_units + _naive_value_error(name, Z.value, f64[f"A{l}"], u))
        W, VW, VB = _exact(params[f"W{l}"]), _exact(V[f"W{l}"]), _exact(V[f"B{l}"])
        terms = [dot(VW, passes.A[l - 1])]
        if variant.bias_direction:
            shape = Z.value.shape
            terms.append(
                leaf(Bound(np.broadcast_to(VB.value, shape), np.broadcast_to(VB.error, shape)))
            )
        if l > 1:
            terms.append(dot(W, passes.RA[l - 1]))
        RZ = r.rounded(plus(*terms))
        D, S = _slopes(name, Z.value, A.value, Z.error, near, r)
        if D is None:  # softmax: A R(Z) - A colsum(A R(Z))
            c = r.rounded(summed(times(A, RZ), axis=0))
            RA = r.rounded(plus(times(A, RZ), -times(A, c)))
        else:
            RA = r.rounded(times(D, RZ))
            passes.D[l], passes.S[l] = D, S
        passes.Z[l], passes.A[l], passes.RZ[l], passes.RA[l] = Z, A, RZ, RA
    return passes, excused


def _softmax_step(p: _Pass, l: int, dA: Bound, RdA: Bound | None, r: Rounding, second: bool):
    """``dZ`` and ``R(dZ)`` of a softmax layer (``manual_bp.curvature``'s
    five products; ``second=False``: the Jacobian's own R terms left out)."""
    A, RA = p.A[l], p.RA[l]
    c = r.rounded(summed(times(A, dA), axis=0))
    dZ = r.rounded(plus(times(A, dA), -times(A, c)))
    if RdA is None:
        return dZ, None
    c1 = r.rounded(summed(times(A, RdA), axis=0))
    terms = [times(A, RdA), -times(A, c1)]
    if second:
        c2 = r.rounded(summed(times(RA, dA), axis=0))
        terms += [times(RA, dA), -times(RA, c), -times(A, c2)]
    return dZ, r.rounded(plus(*terms))


def _activation_step(p: _Pass, l: int, dA: Bound, RdA: Bound | None, r: Rounding, second: bool):
    """``(dZl, R(dZl))`` from ``(dAl, R(dAl))`` (``RdA`` None: only ``dZl``)."""
    D = p.D.get(l)
    if D is None:
        return _softmax_step(p, l, dA, RdA, r, second)
    dZ = r.rounded(times(D, dA))
    if RdA is None:
        return dZ, None
    terms = [times(D, RdA)]
    if second:
        terms.append(times(p.S[l], dA, p.RZ[l]))
    return dZ, r.rounded(plus(*terms))


def _output(case: Case, p: _Pass, variant: Variant, r: Rounding):
    """``(dZL, U)``: the output layer's ``dZL`` and ``R(dZL)`` (Hessian) or
    ``H_out J V`` (GGN)."""
    L, m, u = case.depth, case.m, r.unit
    Y = _exact(case.Y)
    loss, name = case.loss, case.activations[-1]
    inverse = constant(float(m) ** -variant.mean_power, u)
    Z, A, RZ, RA = p.Z[L], p.A[L], p.RZ[L], p.RA[L]
    if name != LOSSES[loss].canonical_activation:  # mse after another activation
        dA = r.rounded(plus(times(A, inverse), -times(Y, inverse)))
        if variant.output == "identity":  # the logits' I / m
            return _activation_step(p, L, dA, None, r, False)[0], r.rounded(times(RZ, inverse))
        RdA = r.rounded(times(RA, inverse))
        hessian = variant.product == "hessian"
        if not hessian:
            return _activation_step(p, L, dA, None, r, False)[0], _activation_step(
                p, L, RdA, None, r, False
            )[0]
        return _activation_step(p, L, dA, RdA, r, variant.second)
    s = Bound(np.ones((1, m)), np.zeros((1, m)))
    if loss == "cross_entropy":
        total = np.sum(Y.value, axis=0, keepdims=True)
        sums = r.rounded(summed(leaf(Y), axis=0))
        s = Bound(total, sums.error + np.abs(total - 1))
    dZ = r.rounded(plus(times(s, A, inverse), -times(Y, inverse)))
    logit = u * oracle_logit_error(loss, Z.value, Y.value) * float(m) ** -variant.mean_power
    dZ = Bound(dZ.value, dZ.error + logit)
    if variant.output == "identity":
        U = r.rounded(times(s, RZ, inverse))
    elif variant.output == "diagonal" and loss == "cross_entropy":
        U = r.rounded(times(s, A, RZ, inverse))
    elif variant.output == "diagonal":  # bce: p (1 - p) is already diagonal
        U = r.rounded(times(RZ, inverse))
    else:
        U = r.rounded(times(s, RA, inverse))
    if loss == "binary_cross_entropy":  # the oracle's softplus: (|Z| + 8) u relatively
        U = Bound(U.value, U.error + u * (np.abs(Z.value) + 8) * np.abs(U.value))
    return dZ, U


def curvature_bounds(
    case: Case, V: Mapping[str, Array], *, variant: Variant = Variant()
) -> CurvatureBounds:
    """``H V`` or ``G V`` of ``case`` (a plain net; its ``l2`` included) along
    ``V`` as ``variant`` computes it, in float64, with each entry's tolerance
    for a computation in ``case.dtype`` (module notes)."""
    u = unit_roundoff(case.dtype)
    r = Rounding(u, float(np.finfo(np.dtype(case.dtype)).tiny))
    p, excused = _forward(case, V, variant, r)
    dZ, RdZ = _output(case, p, variant, r)
    hessian = variant.product == "hessian"
    l2 = constant(case.l2 * variant.decay, u)
    values: dict[str, Array] = {}
    errors: dict[str, Array] = {}
    for l in range(case.depth, 0, -1):
        W, VW = _exact(case.params[f"W{l}"]), _exact(V[f"W{l}"])
        A_prev = p.A[l - 1]
        terms = [dot(RdZ, Bound(A_prev.value.T, A_prev.error.T))]
        if hessian and variant.cross and l > 1:
            terms.append(dot(dZ, Bound(p.RA[l - 1].value.T, p.RA[l - 1].error.T)))
        if case.l2 and variant.decay:
            terms.append(times(l2, VW))
        RdW = r.rounded(plus(*terms))
        RdB = r.rounded(summed(leaf(RdZ), axis=1))
        values[f"W{l}"], errors[f"W{l}"] = RdW.value, RdW.error
        values[f"B{l}"], errors[f"B{l}"] = RdB.value, RdB.error
        if l == 1:
            break
        WT = Bound(W.value.T, W.error.T)
        back = [dot(WT, RdZ)]
        if hessian and variant.back_direction:
            back.append(dot(Bound(VW.value.T, VW.error.T), dZ))
        RdA = r.rounded(plus(*back))
        if hessian:
            dA = r.rounded(dot(WT, dZ))
            dZ, RdZ_next = _activation_step(p, l - 1, dA, RdA, r, variant.second)
            assert RdZ_next is not None
            RdZ = RdZ_next
        else:  # G V: the plain backward of U
            RdZ = _activation_step(p, l - 1, RdA, None, r, False)[0]
    ordered = [key for l in range(1, case.depth + 1) for key in (f"W{l}", f"B{l}")]
    sign = variant.sign
    return CurvatureBounds(
        {key: sign * values[key] for key in ordered},
        {key: SAFETY * errors[key] for key in ordered},
        u,
        excused,
    )


__all__ = [
    "PRODUCTS", "SECOND_JUMP", "THIRD_DERIVATIVE", "Bound", "CurvatureBounds", "Variant",
    "curvature_bounds", "second_derivative_error",
]  # fmt: skip
