"""An activation's one-step rounding model: the error of ``f(Z)`` and of ``f'(Z)^T dA``
(``ERROR_MODELS``), softmax's growth, the kinks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from manual_bp.activations import ACTIVATIONS, sigmoid
from manual_bp_reference.tolerance.rounding import SAFETY, TINY64, Array, column_sum

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


def derivative_of(name: str) -> Callable[..., Array]:
    """``f'`` of an elementwise activation (softmax, which has none, is handled apart)."""
    derivative = ACTIVATIONS[name].derivative
    if derivative is None:
        raise ValueError(f"{name} has no elementwise derivative")
    return derivative


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
        propagated = np.abs(A) * (EZ + column_sum(np.abs(A) * EZ))
        propagated = np.maximum(propagated, softmax_growth(A, EZ, u, floor * u))
    else:
        slope = np.abs(derivative_of(name)(Z, A))
        if model.kink_jump:
            slope = np.where(near_kink, 1.0, slope)
        # Taylor's remainder: |f(z + d) - f(z) - f'(z) d| <= c d^2 / 2, d = u EZ.
        propagated = slope * EZ + 0.5 * model.curvature * u * EZ**2
    return propagated + model.value_error(Z, A) + (Z.shape[0] + 4 + np.abs(Z)) * floor


# Below this logit error a linearized softmax is within 0.1 % of the truth,
# which SAFETY covers; above it the exponential's growth is bounded exactly.
_LINEAR_SOFTMAX = 1e-3


def softmax_growth(A: Array, EZ: Array, u: float, tiny: float) -> Array:
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
    # The cap 1 is exact, but dividing it by SAFETY u here and multiplying back
    # (and the oracle's own (A - Y) / m) round: a normalized float32 net's
    # logits off by O(1) hit it and came out 1 ulp over (benchmarks/RESULTS.md).
    cap = 1.0 + 8 * u
    return np.where(d > _LINEAR_SOFTMAX, np.minimum(change, cap) / (SAFETY * u), 0.0)


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
        t = column_sum(A * dA)
        Et = column_sum(EA * np.abs(dA) + np.abs(A) * EdA) + A.shape[0] * column_sum(np.abs(A * dA))
        return (
            EA * np.abs(dA - t)
            + np.abs(A) * (EdA + Et + 3 * (np.abs(dA) + np.abs(t)))
            + u * EA * (EdA + Et)
            + (A.shape[0] + 4) * floor
        )
    derivative = derivative_of(name)(Z, A)
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


def near_kinks(name: str, Z: Array, EZ: Array, u: float, oracle_Z: Array | None) -> Array:
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
