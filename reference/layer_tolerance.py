"""Per-entry rounding bounds for ONE layer function's outputs (``check_layer``).

A layer function gets its inputs exactly (they are drawn, not computed), so
its outputs carry only the rounding of its own few operations, which any
evaluation order bounds by the classical ``|fl(sum) - sum| <= (k - 1) u
sum |terms|`` for a k-term sum.  Every bound below is in our columns layout
(``x`` ``(n, m)``, one sample per column), absolute (not in units of ``u``),
and already multiplied by ``SAFETY`` (``manual_bp_reference.tolerance``);
``u = eps(dtype) + eps(float64)`` counts the user's rounding and the
oracle's.  ``floor`` terms, ``k * tiny``, cover products that underflow.

affine, ``Z = W A + B`` (``W`` ``(o, i)``, ``A`` ``(i, m)``, ``dZ = dout``)::

    out  (i + 1) u (|W| |A| + |B|)
    dA   (o + 1) u |W|^T |dZ|       dW  (m + 1) u |dZ| |A|^T       dB  (m + 1) u sum |dZ|

an activation ``A = f(Z)``: ``manual_bp_reference.tolerance``'s one-step error model
(``_forward_error``, ``_backward_error``) with exact ``Z`` and ``dout``: the
value's rounding ``V_f`` and the derivative's ``D_f`` (taken from ``Z`` or from
the cached ``A``).  At ``Z = 0`` exactly the kink convention is checked (a
drawn input is exact: its side of the kink is no matter of rounding).

a loss head (fused ``dZ = (A - Y) / m``; the value ``manual_bp_reference.tolerance``'s
``_loss_value_error``).  For ``binary_cross_entropy`` the value's bound also covers
the direct evaluation ``log(1 - sigmoid(z))``, whose error grows as ``e^z``:
code written so is correct, only inaccurate there.

batch and layer normalization (``k`` entries per statistic, sums over the
statistic's axis; ``dgamma``, ``dbeta`` always sum over the batch).  The
forward errors, covering both a two-pass variance and ``E[x^2] - mu^2``::

    Emu   = (k + 1) u mean|x|                  ED = Emu + u |D|      (D = x - mu)
    Evar  = 2 mean(|D| ED) + (k + 3) u mean(x^2) + 2 |mu| Emu
    Es    = s (Evar + u (var + eps)) / (2 (var + eps)) + 3 u s      (s = 1/sqrt(var + eps))
    Exhat = s ED + |D| Es + u |xhat|

and with ``g = gamma dout``, ``T1 = |g|``, ``T2 = sum|g| / k``,
``T3 = |xhat| sum|g xhat| / k`` (the three terms of the closed form
``dx = s (g - sum g / k - xhat sum(g xhat) / k)``; the staged form's terms
have the same magnitudes, its ``dvar`` carries ``s^3``, hence the 3)::

    Edx = (k + 6) u s (T1 + T2 + T3) + Es (T1 + T2 + 3 T3)
          + s (Exhat sum|g xhat| + |xhat| sum(|g| Exhat)) / k + s^3 sum|g D| Emu / k
    Edgamma = sum |dout| Exhat + (m + 1) u sum |dout xhat|      Edbeta = (m + 1) u sum |dout|
    Eout  = |gamma| Exhat + 2 u (|gamma xhat| + |beta|) + 2 tiny

``property_tests/test_layer_check.py`` measures the false-alarm rate of
these bounds on correct implementations written several ways.
"""

from __future__ import annotations

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES
from manual_bp.normalization import AXIS, EPS
from manual_bp_reference.tolerance.activation import _backward_error, _forward_error
from manual_bp_reference.tolerance.loss import _loss_value_error
from manual_bp_reference.tolerance.rounding import SAFETY, unit_roundoff

Array = np.ndarray


def _units(dtype: str) -> tuple[float, float]:
    """``u`` and the underflow floor ``tiny`` of ``dtype``."""
    return unit_roundoff(dtype), float(np.finfo(np.dtype(dtype)).tiny)


def affine_tolerances(W: Array, A: Array, B: Array, dZ: Array, dtype: str) -> dict[str, Array]:
    """``out``, ``dx`` (= dA), ``dw``, ``db`` bounds of ``Z = W A + B``."""
    u, tiny = _units(dtype)
    absW, absA, absdZ = np.abs(W), np.abs(A), np.abs(dZ)
    (o, i), m = W.shape, A.shape[1]
    return {
        "out": SAFETY * ((i + 1) * u * (absW @ absA + np.abs(B)) + (i + 2) * tiny),
        "dx": SAFETY * ((o + 1) * u * (absW.T @ absdZ) + (o + 2) * tiny),
        "dw": SAFETY * ((m + 1) * u * (absdZ @ absA.T) + (m + 2) * tiny),
        "db": SAFETY * ((m + 1) * u * absdZ.sum(axis=1, keepdims=True) + (m + 2) * tiny),
    }


def activation_tolerances(name: str, Z: Array, dA: Array, dtype: str) -> dict[str, Array]:
    """``out`` and ``dx`` bounds of ``A = f(Z)`` (``manual_bp_reference.tolerance``'s model)."""
    u, tiny = _units(dtype)
    floor = tiny / u
    A = np.asarray(ACTIVATIONS[name].forward(Z.astype(dtype), np), dtype=np.float64)
    zero = np.zeros(Z.shape)
    no_kink = np.zeros(Z.shape, dtype=bool)
    EA = _forward_error(name, Z, A, zero, floor, no_kink, u)
    EdZ = _backward_error(name, Z, A, zero, EA, dA, zero, u, floor, no_kink)
    return {"out": SAFETY * u * EA, "dx": SAFETY * u * EdZ}


def loss_tolerances(loss: str, Z: Array, Y: Array, dtype: str) -> dict[str, Array]:
    """``loss`` (0-d) and ``dx`` bounds of a loss head with its canonical activation."""
    u, tiny = _units(dtype)
    floor = tiny / u
    name = LOSSES[loss].canonical_activation
    A = np.asarray(ACTIVATIONS[name].forward(Z.astype(dtype), np), dtype=np.float64)
    zero = np.zeros(Z.shape)
    EA = _forward_error(name, Z, A, zero, floor, np.zeros(Z.shape, dtype=bool), u)
    m = Y.shape[1]
    EdZ = (EA + (A.shape[0] + 2) * (np.abs(A) + np.abs(Y) + floor)) / m + 2 * floor
    E_loss = _loss_value_error(loss, Z, A, Y, zero, EA, floor, u)
    if loss == "binary_cross_entropy":  # log(sigmoid) and log(1 - sigmoid) taken directly
        clipped = np.clip(Z, -700, 700)
        direct = np.abs(1 - Y) * np.exp(clipped) + np.abs(Y) * np.exp(-clipped)
        E_loss += float(np.sum(8 + 2 * direct)) / m
    return {"loss": np.asarray(SAFETY * u * E_loss), "dx": SAFETY * u * EdZ}


def _normalized(kind: str, Z: Array, u: float, tiny: float) -> tuple[Array, ...]:
    """``D``, ``s``, ``Emu``, ``Es``, ``xhat``, ``Exhat`` of the module notes."""
    axis = AXIS[kind]
    k = Z.shape[axis]

    def mean(V: Array) -> Array:
        return np.mean(V, axis=axis, keepdims=True)

    mu = mean(Z)
    D = Z - mu
    var = mean(D * D)
    s = 1 / np.sqrt(var + EPS)
    xhat = D * s
    Emu = (k + 1) * u * mean(np.abs(Z)) + tiny
    ED = Emu + u * np.abs(D)
    Evar = 2 * mean(np.abs(D) * ED) + (k + 3) * u * mean(Z * Z) + 2 * np.abs(mu) * Emu + tiny
    Es = s * (Evar + u * (var + EPS)) / (2 * (var + EPS)) + 3 * u * s
    Exhat = s * ED + np.abs(D) * Es + u * np.abs(xhat) + tiny
    return D, s, Emu, Es, xhat, Exhat


def normalized_errors(kind: str, Z: Array, dtype: str) -> tuple[Array, Array]:
    """``xhat`` and its error bound ``Exhat`` (the module notes; not times ``SAFETY``)."""
    u, tiny = _units(dtype)
    _, _, _, _, xhat, Exhat = _normalized(kind, Z, u, tiny)
    return xhat, Exhat


def normalization_tolerances(
    kind: str, Z: Array, gamma: Array, beta: Array, dN: Array, dtype: str
) -> dict[str, Array]:
    """``out``, ``dx``, ``dgamma``, ``dbeta`` bounds of batch (``kind="batch"``) or
    layer normalization (the module notes give the formulas)."""
    u, tiny = _units(dtype)
    axis = AXIS[kind]
    k, m = Z.shape[axis], Z.shape[1]

    def total(V: Array) -> Array:
        return np.sum(V, axis=axis, keepdims=True)

    D, s, Emu, Es, xhat, Exhat = _normalized(kind, Z, u, tiny)
    g = np.abs(gamma * dN)
    T1, T2, T3 = g, total(g) / k, np.abs(xhat) * total(g * np.abs(xhat)) / k
    Edx = (
        (k + 6) * u * s * (T1 + T2 + T3)
        + Es * (T1 + T2 + 3 * T3)
        + s * (Exhat * total(g * np.abs(xhat)) + np.abs(xhat) * total(g * Exhat)) / k
        + s**3 * total(g * np.abs(D)) * Emu / k
        # XLA flushes subnormal intermediates to 0 (gamma dout s^3 near 1e-310, with
        # gamma near 1e-302): each lost tiny may come out scaled by s and D twice.
        + (k + 8) * tiny * (1 + s) * (1 + np.max(np.abs(D), axis=axis, keepdims=True)) ** 2
    )
    absdN = np.abs(dN)
    return {
        # + 2 tiny: gamma * xhat may be subnormal, which the oracle (XLA) flushes to 0.
        "out": SAFETY
        * (np.abs(gamma) * Exhat + 2 * u * (np.abs(gamma * xhat) + np.abs(beta)) + 2 * tiny),
        "dx": SAFETY * Edx,
        "dgamma": SAFETY
        * (
            np.sum(absdN * Exhat, axis=1, keepdims=True)
            + (m + 1) * u * np.sum(absdN * np.abs(xhat), axis=1, keepdims=True)
            + (m + 2) * tiny
        ),
        "dbeta": SAFETY * ((m + 1) * u * np.sum(absdN, axis=1, keepdims=True) + (m + 2) * tiny),
    }
