"""Activation functions: the value and its derivative side by side.

Every activation is applied elementwise to ``Z_l`` of shape ``(n_l, m)``,
except ``softmax``, which normalises each column (axis 0, one sample per
column).  The forward function takes an array namespace ``xp`` (``numpy`` by
default, ``jax.numpy`` in the oracle) so that the very same maths is
differentiated by ``jax.grad`` in ``reference/``.

The backward function is written by hand in NumPy::

    dZ_l = backward(dA_l, Z_l, A_l)        # = dA_l * f'(Z_l) elementwise

Each activation matches ``jax.nn`` with default arguments, including the
derivative at a kink, which is defined once here:

* ``relu'(0) = 0`` (as ``jax.nn.relu``),
* ``leaky_relu'(0) = 1`` (as ``jax.nn.leaky_relu``, which selects ``x >= 0``),
* ``elu'(0) = 1`` (``elu`` is C1 there, so no choice is made).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

Array = np.ndarray

LEAKY_RELU_SLOPE = 0.01
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
# Beyond |z| = 10 the tanh argument exceeds 43 and tanh is exactly +-1 in
# float32 and float64, so clipping z there changes no value of gelu.  It keeps
# z**3 from overflowing (float32 overflows near |z| = 7e12).
GELU_CLIP = 10.0


@dataclass(frozen=True)
class Activation:
    """An activation ``A = f(Z)`` with its hand-written backward step.

    Attributes
    ----------
    name : str
        The name used in ``DNN(activations=[...])``.
    forward : callable ``(Z, xp) -> A``
        The value, written over the array namespace ``xp``.
    backward : callable ``(dA, Z, A) -> dZ``
        The vector-Jacobian product ``dZ = (dA/dZ)^T dA`` in NumPy.
    derivative : callable ``(Z, A) -> f'(Z)`` or None
        The elementwise derivative; ``None`` for ``softmax``, whose Jacobian is
        not diagonal.
    formula : str
        ``f`` as text, in ``Z``: what ``forward`` computes.
    backward_formula : str
        ``dZ`` as text, in ``dA``, ``Z`` and ``A``: what ``backward``
        computes.  ``manual-bp explain`` prints both.
    """

    name: str
    forward: Callable[[Array, ModuleType], Array]
    backward: Callable[[Array, Array, Array], Array]
    derivative: Callable[[Array, Array], Array] | None
    formula: str
    backward_formula: str


def _elementwise(
    name: str,
    forward: Callable[[Array, ModuleType], Array],
    derivative: Callable[[Array, Array], Array],
    formula: str,
    derivative_formula: str,
) -> Activation:
    """Build an elementwise activation, whose backward is ``dA * f'(Z)``.

    ``derivative_formula`` is ``f'(Z)`` as text; the backward formula is
    ``dA ⊙ (f'(Z))``.
    """

    def backward(dA: Array, Z: Array, A: Array) -> Array:
        return dA * derivative(Z, A)

    return Activation(name, forward, backward, derivative, formula, f"dA ⊙ {derivative_formula}")


# --- sigmoid: f(z) = 1 / (1 + e^-z),  f'(z) = f(z) (1 - f(z)) -------------------


def sigmoid(Z: Array, xp: ModuleType = np) -> Array:
    """Logistic sigmoid, stable for every finite ``z``.

    Notes
    -----
    With ``e = exp(-|z|)`` (which never overflows),
    ``f(z) = 1 / (1 + e)`` for ``z >= 0`` and ``e / (1 + e)`` for ``z < 0``.
    ``-|z|`` is written as ``where(z >= 0, -z, z)`` rather than ``-abs(z)``:
    ``jax.grad`` of ``abs`` at 0 is 0, which would make ``f'(0)`` vanish.
    ``f'(z) = f(z) (1 - f(z))``.
    """
    negative_magnitude = xp.where(Z >= 0, -Z, Z)
    e = xp.exp(negative_magnitude)
    return xp.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_derivative(Z: Array, A: Array) -> Array:
    return A * (1 - A)


# --- tanh: f'(z) = 1 - f(z)^2 ----------------------------------------------------


def tanh(Z: Array, xp: ModuleType = np) -> Array:
    """Hyperbolic tangent.  ``f'(z) = 1 - tanh(z)^2``."""
    return xp.tanh(Z)


def _tanh_derivative(Z: Array, A: Array) -> Array:
    return 1 - A * A


# --- relu: f(z) = max(z, 0), f'(z) = [z > 0] ------------------------------------


def relu(Z: Array, xp: ModuleType = np) -> Array:
    """Rectified linear unit ``max(z, 0)``.

    Notes
    -----
    ``f'(z) = 1`` for ``z > 0`` and ``0`` for ``z <= 0``: the derivative at the
    kink is 0, as in ``jax.nn.relu``.  It is written with ``where(z > 0, ...)``
    because ``jax.grad`` of ``maximum(z, 0)`` at a tie is 0.5.
    """
    return xp.where(Z > 0, Z, 0)


def _relu_derivative(Z: Array, A: Array) -> Array:
    return (Z > 0).astype(Z.dtype)


# --- leaky_relu: f(z) = z for z >= 0, 0.01 z otherwise ----------------------------


def leaky_relu(Z: Array, xp: ModuleType = np) -> Array:
    """Leaky ReLU with slope 0.01 below zero.

    Notes
    -----
    ``f'(z) = 1`` for ``z >= 0`` and ``0.01`` for ``z < 0``: the derivative at
    the kink is 1, as ``jax.nn.leaky_relu`` selects ``z >= 0``.
    """
    return xp.where(Z >= 0, Z, LEAKY_RELU_SLOPE * Z)


def _leaky_relu_derivative(Z: Array, A: Array) -> Array:
    return np.where(Z >= 0, 1.0, LEAKY_RELU_SLOPE).astype(Z.dtype)


# --- elu: f(z) = z for z > 0, e^z - 1 otherwise -----------------------------------


def elu(Z: Array, xp: ModuleType = np) -> Array:
    """Exponential linear unit with ``alpha = 1``.

    Notes
    -----
    ``f'(z) = 1`` for ``z > 0`` and ``e^z = f(z) + 1`` for ``z <= 0``, so
    ``f'(0) = 1`` from both sides.  The inner ``where`` keeps ``expm1`` from
    overflowing for large positive z (the "double where" that keeps
    ``jax.grad`` free of ``0 * inf = nan``).
    """
    return xp.where(Z > 0, Z, xp.expm1(xp.where(Z > 0, 0, Z)))


def _elu_derivative(Z: Array, A: Array) -> Array:
    return np.where(Z > 0, 1, A + 1).astype(Z.dtype, copy=False)


# --- softplus: f(z) = log(1 + e^z), f'(z) = sigmoid(z) -----------------------------


def softplus(Z: Array, xp: ModuleType = np) -> Array:
    """``log(1 + e^z)`` as ``logaddexp(z, 0)``.  ``f'(z) = sigmoid(z)``."""
    return xp.logaddexp(Z, 0)


def _softplus_derivative(Z: Array, A: Array) -> Array:
    return sigmoid(Z)


# --- silu: f(z) = z sigmoid(z) -----------------------------------------------------


def silu(Z: Array, xp: ModuleType = np) -> Array:
    """SiLU (swish) ``z * sigmoid(z)``.

    Notes
    -----
    ``f'(z) = s (1 + z (1 - s))`` with ``s = sigmoid(z)``.
    """
    return Z * sigmoid(Z, xp)


def _silu_derivative(Z: Array, A: Array) -> Array:
    s = sigmoid(Z)
    return s * (1 + Z * (1 - s))


# --- gelu (tanh approximation) ---------------------------------------------------


def _gelu_inner(Z: Array, xp: ModuleType) -> tuple[Array, Array]:
    """Return ``(zc, t)``: z clipped to +-GELU_CLIP and ``t = tanh(u(zc))``."""
    Zc = xp.clip(Z, -GELU_CLIP, GELU_CLIP)
    t = xp.tanh(SQRT_2_OVER_PI * (Zc + GELU_CUBIC * Zc**3))
    return Zc, t


def gelu(Z: Array, xp: ModuleType = np) -> Array:
    """GELU, tanh approximation, as ``jax.nn.gelu(approximate=True)``.

    Notes
    -----
    ``f(z) = z c(z)`` with ``c(z) = (1 + tanh(u)) / 2`` and
    ``u = sqrt(2/pi) (z + 0.044715 z^3)``, so
    ``f'(z) = c(z) + z (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2) / 2``.
    """
    _, t = _gelu_inner(Z, xp)
    return Z * (0.5 * (1 + t))


def _gelu_derivative(Z: Array, A: Array) -> Array:
    Zc, t = _gelu_inner(Z, np)
    du_dz = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * Zc * Zc)
    return 0.5 * (1 + t) + Z * (0.5 * (1 - t * t) * du_dz)


# --- identity ----------------------------------------------------------------------


def identity(Z: Array, xp: ModuleType = np) -> Array:
    """``f(z) = z``, ``f'(z) = 1``."""
    return Z


def _identity_backward(dA: Array, Z: Array, A: Array) -> Array:
    return dA


def _identity_derivative(Z: Array, A: Array) -> Array:
    return np.ones_like(Z)


# --- softmax over each column ------------------------------------------------------


def softmax(Z: Array, xp: ModuleType = np) -> Array:
    """Softmax of each column: ``A[i, j] = exp(Z[i, j]) / sum_k exp(Z[k, j])``.

    Computed max-shifted, which never overflows.
    """
    E = xp.exp(Z - xp.max(Z, axis=0, keepdims=True))
    return E / xp.sum(E, axis=0, keepdims=True)


def log_softmax(Z: Array, xp: ModuleType = np) -> Array:
    """``log softmax(Z)`` per column, from the logits: ``Z - logsumexp(Z)``."""
    shifted = Z - xp.max(Z, axis=0, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=0, keepdims=True))


def _softmax_backward(dA: Array, Z: Array, A: Array) -> Array:
    """Jacobian-vector product of softmax, one column at a time.

    Notes
    -----
    ``dA_i/dZ_k = A_i ([i = k] - A_k)``, so
    ``dZ = A * (dA - sum_i A_i dA_i)``, the sum taken over each column.
    """
    return A * (dA - np.sum(A * dA, axis=0, keepdims=True))


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": _elementwise(
        "sigmoid", sigmoid, _sigmoid_derivative, "1 / (1 + exp(−Z))", "A ⊙ (1 − A)"
    ),
    "tanh": _elementwise("tanh", tanh, _tanh_derivative, "tanh(Z)", "(1 − A ⊙ A)"),
    "relu": _elementwise("relu", relu, _relu_derivative, "max(Z, 0)", "[Z > 0]"),
    "leaky_relu": _elementwise(
        "leaky_relu",
        leaky_relu,
        _leaky_relu_derivative,
        f"Z if Z ≥ 0 else {LEAKY_RELU_SLOPE}·Z",
        f"(1 if Z ≥ 0 else {LEAKY_RELU_SLOPE})",
    ),
    "elu": _elementwise(
        "elu", elu, _elu_derivative, "Z if Z > 0 else exp(Z) − 1", "(1 if Z > 0 else A + 1)"
    ),
    "softplus": _elementwise(
        "softplus", softplus, _softplus_derivative, "log(1 + exp(Z))", "sigmoid(Z)"
    ),
    "silu": _elementwise(
        "silu",
        silu,
        _silu_derivative,
        "Z ⊙ sigmoid(Z)",
        "s ⊙ (1 + Z ⊙ (1 − s)), s = sigmoid(Z)",
    ),
    "gelu": _elementwise(
        "gelu",
        gelu,
        _gelu_derivative,
        "Z ⊙ (1 + tanh(u)) / 2, u = √(2/π)·(Z + 0.044715·Z³)",
        "((1 + tanh(u)) / 2 + Z ⊙ (1 − tanh(u)²) ⊙ du/dZ / 2)",
    ),
    "identity": Activation(
        "identity", identity, _identity_backward, _identity_derivative, "Z", "dA"
    ),
    "softmax": Activation(
        "softmax",
        softmax,
        _softmax_backward,
        None,
        "exp(Z) / colsum(exp(Z))",
        "A ⊙ (dA − colsum(A ⊙ dA))",
    ),
}
