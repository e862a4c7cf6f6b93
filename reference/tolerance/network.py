"""The recursions through a network: ``forward_bounds`` and ``tolerances``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from manual_bp.dropout import rate_of
from manual_bp.losses import LOSSES
from manual_bp.net import Net
from manual_bp_reference.cases import Case
from manual_bp_reference.tolerance.activation import _backward_error, _forward_error, near_kinks
from manual_bp_reference.tolerance.affine import _affine_errors
from manual_bp_reference.tolerance.dropout import dropout_error
from manual_bp_reference.tolerance.loss import (
    _loss_value_error,
    oracle_logit_error,
    second_order_loss_error,
)
from manual_bp_reference.tolerance.normalization import (
    NormalizationErrors,
    normalization_backward_errors,
    normalization_forward_errors,
)
from manual_bp_reference.tolerance.rounding import (
    SAFETY,
    Array,
    flushed,
    unit_roundoff,
)


@dataclass(frozen=True)
class Tolerances:
    """Absolute tolerance for the loss and for every entry of every gradient."""

    loss: float
    grads: dict[str, Array]
    unit: float


def _pre_activation_error(
    params: Mapping[str, Array],
    f64: Mapping[str, Array],
    EA_prev: Array,
    l: int,
    floor: float,
    u: float,
) -> Array:
    """``EZl = (n + 1) (|Wl| |A(l-1)| + |Bl|) + |Wl| EA(l-1)`` (and the flushed subnormals)."""
    W, B = f64[f"W{l}"], np.asarray(params[f"B{l}"], dtype=np.float64)
    absW, absA_prev = np.abs(W), np.abs(f64[f"A{l - 1}"])
    magnitude = absW @ absA_prev + np.abs(B)
    return (
        (absA_prev.shape[0] + 1) * (magnitude + floor)
        + absW @ EA_prev
        + flushed(W, u) @ (absA_prev + u * EA_prev)
        + flushed(B, u)
    )


def forward_errors(
    params: Mapping[str, Array],
    f64: Mapping[str, Array],
    net: Net,
    floor: float,
    u: float,
    oracle_Z: Mapping[str, Array] | None,
    *,
    normalized: dict[int, NormalizationErrors] | None = None,
) -> tuple[dict[int, Array], dict[int, Array], dict[int, Array]]:
    """``EZl``, ``EAl`` and the near-kink masks for every layer of ``net``.

    ``EA0`` counts only a subnormal input, which the oracle flushes to 0.
    A layer with a ``normalization`` step feeds ``Nl`` and its bound to
    ``f_l`` (``normalization_forward_errors``, stored in ``normalized``); the
    oracle does not report its ``Nl``, so every ``|Nl|`` within its bound of
    a kink is excused.  A layer with dropout bounds ``Fl = f_l(.)`` first,
    then the mask's step (``manual_bp_reference.tolerance.dropout.dropout_error``).
    """
    EA = {0: flushed(f64["A0"], u)}
    EZ, kinks = {}, {}
    for l, layer in enumerate(net.layers, 1):
        EZ[l] = _pre_activation_error(params, f64, EA[l - 1], l, floor, u)
        name, V, EV = layer.activation, f64[f"Z{l}"], EZ[l]
        oracle_V = None if oracle_Z is None else oracle_Z[f"Z{l}"]
        kind, rate = layer.norm, layer.dropout
        if kind is not None:
            errors = normalization_forward_errors(kind, l, f64, EZ[l], u, floor)
            if normalized is not None:
                normalized[l] = errors
            V, EV, oracle_V = f64[f"N{l}"], errors.EN, None
        kinks[l] = near_kinks(name, V, EV, u, oracle_V)
        A = f64[f"F{l}"] if rate else f64[f"A{l}"]
        EA[l] = _forward_error(name, V, A, EV, floor, kinks[l], u)
        if rate:
            EA[l] = dropout_error(EA[l], f64[f"A{l}"], f64[f"M{l}"], rate, floor)
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
    EZ, EA, _ = forward_errors(case.params, f64, case.net, floor, u, None)
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
    # The weight decay (case.l2) is added by manual_bp_reference.compare.with_objective.
    params, activations, loss = case.params, case.activations, case.loss
    u = unit_roundoff(case.dtype)
    floor = float(np.finfo(np.dtype(case.dtype)).tiny) / u
    depth = len(activations)
    f64 = {key: np.asarray(value, dtype=np.float64) for key, value in cache.items()}
    Y = np.asarray(case.Y, dtype=np.float64)
    m = Y.shape[1]

    normalized: dict[int, NormalizationErrors] = {}
    EZ, EA, near_kink = forward_errors(
        params, f64, case.net, floor, u, oracle_Z, normalized=normalized
    )

    Z_L, A_L = f64[f"Z{depth}"], f64[f"A{depth}"]
    loss_error = _loss_value_error(loss, Z_L, A_L, Y, EZ[depth], EA[depth], floor, u)
    loss_error += second_order_loss_error(loss, Y, EZ[depth], u)

    E: dict[str, Array] = {}
    for l in range(depth, 0, -1):
        name = activations[l - 1]
        Z, A = f64[f"Z{l}"], f64[f"A{l}"]
        if l == depth and name == LOSSES[loss].canonical_activation:
            # The oracle may flush the result itself: the floor after the 1/m.
            EdZ = (
                EA[l]
                + (A.shape[0] + 2) * (np.abs(A) + np.abs(Y) + floor)
                + oracle_logit_error(loss, Z, Y)
            ) / m + 2 * floor
        else:
            if l == depth:
                dA = (A - Y) / m
                EdA = (EA[l] + 2 * (np.abs(A - Y) + floor)) / m + 2 * floor
            else:
                dA, EdA = oracle_grads[f"A{l}"], E[f"A{l}"]
            errors = normalized.get(l)
            V, EV = (Z, EZ[l]) if errors is None else (f64[f"N{l}"], errors.EN)
            EA_l, rate = EA[l], rate_of(case.dropout, l)
            if rate:  # dFl = dAl ⊙ Ml / (1 − pl); f_l' reads Fl
                M, A = f64[f"M{l}"], f64[f"F{l}"]
                dA = M / (1 - rate) * dA
                EdA = dropout_error(EdA, dA, M, rate, floor)
                EA_l = _forward_error(name, V, A, EV, floor, near_kink[l], u)
            EdZ = _backward_error(name, V, A, EV, EA_l, dA, EdA, u, floor, near_kink[l])
            if errors is not None:  # dNl, then the normalization's backward to dZl
                step = normalization_backward_errors(
                    errors, l, f64, oracle_grads, EdZ, u=u, floor=floor
                )
                EdZ = step.pop(f"dZ{l}")
                E.update(step)
        E.update(_affine_errors(l, EdZ, oracle_grads, f64, EA[l - 1], u, floor))

    scale = SAFETY * u
    return Tolerances(scale * loss_error, {key: scale * value for key, value in E.items()}, u)
