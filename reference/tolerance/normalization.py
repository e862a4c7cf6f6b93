"""The batch/layer-normalization step's rounding (``manual_bp.normalization``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from manual_bp.normalization import AXIS
from manual_bp.normalization import EPS as EPS_NORMALIZATION
from manual_bp_reference.tolerance.rounding import SAFETY, Array, flushed

# --- the normalization step (manual_bp.normalization) ---------------------------------------
#
# Separate functions: the forward and backward recursions above, with the
# batch- or layer-normalization step between a hidden layer's Zl and f_l.
# docs/tolerance.md derives each term.

# Both sides' inv_std lie in (0, 1 / sqrt(eps)]: a bound on their difference
# that holds however wrong the variance is (1e-3 covers float32's eps).
_INV_STD_CAP = 1.001 / np.sqrt(EPS_NORMALIZATION)
# |Zhat| <= sqrt(k) in exact arithmetic over k entries; 1.05 covers rounding.
_ZHAT_CAP = 1.05


@dataclass(frozen=True)
class NormalizationErrors:
    """The forward values and error bounds (units of ``u``) of one normalized layer.

    ``D = Z - mu``; ``s = inv_std``; ``s_low`` a lower bound on either
    side's ``s``; ``r`` the relative error bound of ``var + eps``.
    """

    kind: str
    k: int
    D: Array
    ED: Array
    s: Array
    Es: Array
    s_low: Array
    r: Array
    EZhat: Array
    EN: Array


def _axis_sum(X: Array, axis: int) -> Array:
    return np.sum(X, axis=axis, keepdims=True)


def normalization_forward_errors(
    kind: str, l: int, f64: Mapping[str, Array], EZ: Array, u: float, floor: float
) -> NormalizationErrors:
    """Error bounds of ``mu``, ``var``, ``inv_std``, ``Zhat`` and ``N`` of layer ``l``.

    Over ``k`` entries along the kind's axis (``S`` the sum along it)::

        Emu  = S(EZ) / k + (k - 1) S(|Z|) / k + |mu|          (0 error in D when k = 1)
        ED   = EZ + Emu + |D|                                 D = Z - mu
        Evar = S(2 |D| ED + D^2 + SAFETY u ED^2) / k + (k - 1) S(D^2) / k + |var|
        r    = SAFETY u (Evar + 2 (var + eps)) / (var + eps)  relative error of var + eps
        |s - s'| <= s ((1 - r)^(-1/2) - 1) + 3 u s   (r < 1), else <= 1 / sqrt(eps)
        EZhat = s ED + (|D| + SAFETY u ED) Es + |Zhat|,  at most 2 * 1.05 sqrt(k) / (SAFETY u)
        EN   = |gamma| EZhat + |gamma Zhat| + |N|

    The bound on ``s`` is exact, not first order: a variance dominated by
    rounding (near-constant features, ``1e6 + noise``) gives a huge but
    sound bound, which makes everything downstream undecidable rather
    than wrong.  With ``k = 1`` both sides' ``D``, ``var`` and ``Zhat`` are
    exactly 0.
    """
    axis = AXIS[kind]
    Z, mu, var = f64[f"Z{l}"], f64[f"mu{l}"], f64[f"var{l}"]
    s, Zhat, N, gamma = f64[f"inv_std{l}"], f64[f"Zhat{l}"], f64[f"N{l}"], f64[f"gamma{l}"]
    k = Z.shape[axis]
    scale = SAFETY * u
    if k == 1:
        D = ED = np.zeros_like(Z)
        Evar = np.zeros_like(var)
    else:
        D = Z - mu
        Emu = (
            (_axis_sum(EZ, axis) + (k - 1) * _axis_sum(np.abs(Z) + floor, axis)) / k
            + np.abs(mu)
            + floor
        )
        ED = EZ + Emu + np.abs(D) + floor
        EP = 2 * np.abs(D) * ED + D * D + scale * ED * ED + floor
        Evar = (
            (_axis_sum(EP, axis) + (k - 1) * _axis_sum(D * D + floor, axis)) / k
            + np.abs(var)
            + floor
        )
    v = var + EPS_NORMALIZATION
    # The addition rounds, and float32 holds eps itself only to within u.
    r = scale * (Evar + 2 * v) / v
    with np.errstate(invalid="ignore"):
        # s (1 - r)^(-1/2) - s, without cancellation for small r.
        deviation = s * np.expm1(-0.5 * np.log1p(-np.minimum(r, 0.5)))
    deviation = np.where(r < 0.5, deviation, _INV_STD_CAP)
    Es = np.minimum(deviation, _INV_STD_CAP) / scale + 3 * s
    s_low = s / np.sqrt(1 + r) * (1 - 4 * u)
    EZhat = s * ED + (np.abs(D) + scale * ED) * Es + np.abs(Zhat) + (s + 1) * k * floor
    EZhat = np.minimum(EZhat, 2 * _ZHAT_CAP * np.sqrt(k) / scale)
    # XLA flushes a subnormal gamma to 0: its whole product is error (a flushed
    # beta errs by less than tiny, which the floor covers).
    lost_gamma = flushed(gamma, u) * (np.abs(Zhat) + scale * EZhat)
    EN = np.abs(gamma) * EZhat + np.abs(gamma * Zhat) + np.abs(N) + lost_gamma + 2 * floor
    return NormalizationErrors(kind, k, D, ED, s, Es, s_low, r, EZhat, EN)


def normalization_backward_errors(
    errors: NormalizationErrors,
    l: int,
    f64: Mapping[str, Array],
    oracle_grads: Mapping[str, Array],
    EdN: Array,
    *,
    u: float,
    floor: float,
) -> dict[str, Array]:
    """``Edgammal``, ``Edbetal``, ``EdZhatl``, ``Edvarl``, ``Edmul`` and ``EdZl`` from ``EdNl``.

    Magnitudes of gradients are the oracle's (``a = |dZhat|``), of forward
    values ours, so every product error ``x y - x' y' = (x - x') y + x' (y - y')``
    is bounded exactly, without second-order terms.  ``EdZl`` is the larger
    of the closed form's and the staged form's bound, so either form passes::

        closed: dZ = (s / k) Br,  Br = k dZhat - S(dZhat) - Zhat S(dZhat Zhat)
                EdZ = (Es |Br'| + s EBr) / k + 3 |dZ|,  |Br'| <= k |dZ| / s_low
        staged: dZ = dZhat s + dvar (2 / k) D + dmu / k
    """
    axis, k, scale = AXIS[errors.kind], errors.k, SAFETY * u
    m = EdN.shape[1]
    gamma, Zhat = np.abs(f64[f"gamma{l}"]), np.abs(f64[f"Zhat{l}"])
    s, Es, D, ED, EZhat = errors.s, errors.Es, np.abs(errors.D), errors.ED, errors.EZhat
    dN = np.abs(oracle_grads[f"N{l}"]) + scale * EdN  # bounds ours too
    absdZ = np.abs(oracle_grads[f"Z{l}"])

    def S(X: Array) -> Array:
        return _axis_sum(X, axis)

    E = {
        f"N{l}": EdN,
        f"gamma{l}": column_sum_rows(EdN * Zhat + dN * EZhat)
        + (m + 1) * (column_sum_rows(dN * Zhat) + floor),
        f"beta{l}": column_sum_rows(EdN) + (m + 1) * (column_sum_rows(dN) + floor),
    }
    # A subnormal gamma is 0 to the oracle (XLA flushes it): gamma dN is all error.
    EdZhat = gamma * EdN + gamma * dN + flushed(f64[f"gamma{l}"], u) * dN + floor
    a = gamma * dN  # bounds both sides' |dZhat|
    E[f"Zhat{l}"] = EdZhat

    # closed form
    ET1 = S(EdZhat) + k * (S(a) + floor)
    ET2 = S(EdZhat * Zhat + a * EZhat) + (k + 1) * (S(a * Zhat) + floor)
    T2 = S(a * (Zhat + scale * EZhat))
    magnitude = k * a + S(a) + (Zhat + scale * EZhat) * (T2 + scale * ET2)
    EBr = k * EdZhat + ET1 + Zhat * ET2 + EZhat * T2 + 3 * magnitude
    bracket = np.minimum(k * absdZ / errors.s_low, magnitude)
    closed = (Es * bracket + s * EBr) / k + 3 * absdZ + 4 * floor
    # The oracle's own backward (jax's graph of the forward) flushes subnormal
    # intermediates to 0: dvar / k, then times 2 D, and dmu / k, each up to
    # tiny; seen with |D| ~ 100, where the oracle lost the whole variance path.
    D_mean = _axis_sum(D, axis) / k
    flushes = (8 + 4 * D + 4 * D_mean + 2 * s) * floor

    # staged form
    T3 = S(a * (D + scale * ED))
    ET3 = S(EdZhat * D + a * ED) + (k + 1) * (S(a * D) + floor)
    s_high = s + scale * Es
    cube = 0.5 * s**3
    Ecube = 0.5 * (3 * s * s + 3 * s * scale * Es + (scale * Es) ** 2) * Es + 4 * cube
    dvar = np.abs(oracle_grads[f"var{l}"])
    Edvar = ET3 * cube + T3 * Ecube + 2 * T3 * 0.5 * s_high**3 + floor
    sumD = np.abs(S(errors.D))
    EsumD = S(ED) + k * (S(D) + floor)
    Eterm1 = ET1 * s + S(a) * Es + S(a) * s
    Eterm2 = (2 / k) * (Edvar * sumD + dvar * EsumD + 3 * dvar * (sumD + scale * EsumD))
    dmu = np.abs(oracle_grads[f"mu{l}"])
    Edmu = Eterm1 + Eterm2 + S(a) * s_high + dvar * (2 / k) * (sumD + scale * EsumD) + floor
    staged = (
        EdZhat * s
        + a * Es
        + (2 / k) * (Edvar * D + dvar * ED)
        + Edmu / k
        + 3 * (a * s_high + (2 / k) * (dvar + scale * Edvar) * (D + scale * ED) + dmu / k)
        + 6 * floor
    )
    E[f"var{l}"], E[f"mu{l}"] = Edvar, Edmu
    E[f"dZ{l}"] = np.maximum(closed, staged) + flushes
    return E


def column_sum_rows(X: Array) -> Array:
    """Sum over the batch (the columns): ``(nl, m) -> (nl, 1)``."""
    return np.sum(X, axis=1, keepdims=True)
