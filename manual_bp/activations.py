"""Activation functions: the value and its derivative side by side.

Every activation is applied elementwise to ``Z_l`` of shape ``(n_l, m)``,
except ``softmax``, which normalises each column (axis 0, one sample per
column).  The forward function takes an array namespace ``xp`` (``numpy`` by
default, ``jax.numpy`` in the oracle) so that the very same maths is
differentiated by ``jax.grad`` in ``reference/``.

The backward function is written by hand in NumPy::

    dZ_l = backward(dA_l, Z_l, A_l)        # = dA_l * f'(Z_l) elementwise

NumPy kernels
-------------
``forward(Z, xp)`` is the formula, the one ``jax.grad`` differentiates.  Some
formulas are slow in NumPy: ``np.where`` branches on every entry, about ten
times the cost of an arithmetic pass (``benchmarks/RESULTS.md``).  Those
activations also carry a ``kernel(Z, out)`` that writes the same values into
an array the caller allocated, with arithmetic in place of ``where``;
``property_tests/test_fast_path.py`` proves kernel and formula equal on every
kind of value (signed zeros, subnormals, +-inf, NaN).  The backward functions
and derivatives take an optional ``out`` for the same reason.

Each activation matches ``jax.nn`` with default arguments, including the
derivative at a kink, which is defined once here:

* ``relu'(0) = 0`` (as ``jax.nn.relu``),
* ``leaky_relu'(0) = 1`` (as ``jax.nn.leaky_relu``, which selects ``x >= 0``),
* ``elu'(0) = 1`` (``elu`` is C1 there, so no choice is made).

Where a kink's convention is a choice, the activation's ``kink_side`` says
which pre-activations count as the right-hand side (``relu``: ``Z > 0``,
``leaky_relu``: ``Z >= 0``).  The formula, the derivative, the tolerance and
the finite differences all read it from there.
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
    backward : callable ``(dA, Z, A, out=None) -> dZ``
        The vector-Jacobian product ``dZ = (dA/dZ)^T dA`` in NumPy, written
        into ``out`` when given, else into a new array.
    derivative : callable ``(Z, A, out=None) -> f'(Z)`` or None
        The elementwise derivative, a new array (or ``out``); ``None`` for
        ``softmax``, whose Jacobian is not diagonal.
    formula : str
        ``f`` as text, in ``Z``: what ``forward`` computes.
    backward_formula : str
        ``dZ`` as text, in ``dA``, ``Z`` and ``A``: what ``backward``
        computes.  ``manual-bp explain`` prints both.
    kernel : callable ``(Z, out) -> out`` or None
        ``forward(Z, numpy)`` written into ``out`` (same shape and dtype as
        ``Z``) without ``np.where``; ``None`` where the formula is fast as it is.
    kink_side : callable ``(Z) -> bool array`` or None
        For an activation with a kink at 0 (``relu``, ``leaky_relu``): where
        ``Z`` takes the right-hand piece and its slope, which decides
        ``f'(0)``.  ``None`` for smooth activations.
    init : ``"he"`` or ``"glorot"``
        The initialisation ``init_params`` gives the layer's ``W``: He's
        keeps the variance of relu-like units, Glorot's of the others.
    zero_at_zero : bool
        ``f(0) = 0`` exactly (and ``f(z) = 0`` only there or on relu's flat
        side): a unit with ``Z`` provably 0 gives ``A`` exactly 0
        (``manual_bp_reference.kinks``).
    second_derivative : callable ``(Z, A) -> f''(Z)`` or None
        The elementwise second derivative, a new array of ``Z``'s shape and
        dtype, for the R-operator's term ``f''(Zl) ⊙ dAl ⊙ R(Zl)``
        (``manual_bp.curvature``); ``None`` for ``softmax``, whose
        second-order term ``manual_bp.curvature`` writes out itself.  At a
        kink it is the kink side's piece, as jax differentiates the formula:
        ``relu''(0) = leaky_relu''(0) = 0`` (both are 0 away from 0 and
        undefined at 0), ``elu''(0) = 1`` (``elu`` is C1 but not C2 at 0:
        ``f'' = 0`` for ``z > 0``, ``e^z`` for ``z <= 0``).  A check must
        call entries with ``Z`` at such a point undecided.
    second_formula : str
        ``f''(Z)`` as text.
    """

    name: str
    forward: Callable[[Array, ModuleType], Array]
    backward: Callable[..., Array]
    derivative: Callable[..., Array] | None
    formula: str
    backward_formula: str
    kernel: Callable[[Array, Array], Array] | None = None
    kink_side: Callable[[Array], Array] | None = None
    init: str = "glorot"
    zero_at_zero: bool = False
    second_derivative: Callable[[Array, Array], Array] | None = None
    second_formula: str = ""

    def forward_into(self, Z: Array, out: Array | None) -> Array:
        """``f(Z)`` in NumPy, written into ``out`` (or a new array when it is
        None): the kernel, else the formula."""
        out = _new_or(out, Z)
        if self.kernel is not None:
            return self.kernel(Z, out)
        np.copyto(out, self.forward(Z, np))
        return out


def _new_or(out: Array | None, Z: Array) -> Array:
    """``out``, or a new array shaped like ``Z`` when there is none."""
    return np.empty_like(Z) if out is None else out


def _as_result(value: Array, Z: Array, out: Array | None) -> Array:
    """``value`` (a new array) in ``Z``'s dtype, copied into ``out`` if given."""
    if out is None:
        return value.astype(Z.dtype, copy=False)
    np.copyto(out, value)
    return out


def elementwise_backward(derivative: Callable[..., Array]) -> Callable[..., Array]:
    """The backward step of an elementwise activation: ``dZ = dA * f'(Z)``.

    ``f'(Z)`` is written into ``out`` (or a new array of the dtype
    ``dA * f'(Z)`` has) and multiplied by ``dA`` in place there: one array,
    no temporary.
    """

    def backward(dA: Array, Z: Array, A: Array, out: Array | None = None) -> Array:
        if out is None:
            dtype = dA.dtype if dA.dtype == A.dtype else np.result_type(dA, A)
            out = np.empty(dA.shape, dtype)
        dZ = derivative(Z, A, out=out)
        dZ *= dA
        return dZ

    return backward


def _elementwise(
    name: str,
    forward: Callable[[Array, ModuleType], Array],
    derivative: Callable[..., Array],
    formula: str,
    derivative_formula: str,
    kernel: Callable[[Array, Array], Array] | None = None,
    kink_side: Callable[[Array], Array] | None = None,
    *,
    init: str = "glorot",
    zero_at_zero: bool = False,
    second_derivative: Callable[[Array, Array], Array] | None = None,
    second_formula: str = "",
) -> Activation:
    """Build an elementwise activation, whose backward is ``dA * f'(Z)``.

    ``derivative_formula`` is ``f'(Z)`` as text; the backward formula is
    ``dA ⊙ (f'(Z))``.  ``second_derivative`` is ``f''`` (and
    ``second_formula`` it as text).
    """
    backward = elementwise_backward(derivative)
    return Activation(
        name, forward, backward, derivative, formula, f"dA ⊙ {derivative_formula}", kernel,
        kink_side, init=init, zero_at_zero=zero_at_zero, second_derivative=second_derivative,
        second_formula=second_formula,
    )  # fmt: skip


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


def _sigmoid_kernel(Z: Array, out: Array) -> Array:
    """``sigmoid(Z)`` into ``out`` as ``max(e, [z >= 0]) / (1 + e)``, ``e = exp(-|z|)``.

    The same divisions as the formula: for ``z >= 0`` the numerator is 1
    exactly (there ``e <= 1``), for ``z < 0`` it is ``e`` (``max(e, 0)``,
    and NaN stays NaN).  One ``exp`` per entry: an earlier kernel took
    ``exp(min(z, 0))`` for the numerator, a second ``exp`` that cost more
    than every other pass together (benchmarks/RESULTS.md).
    """
    np.abs(Z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    numerator = np.maximum(out, Z >= 0)
    out += 1
    return np.divide(numerator, out, out=out)


def _sigmoid_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return np.multiply(A, np.subtract(1, A, out=out), out=out)  # A (1 - A)


# --- tanh: f'(z) = 1 - f(z)^2 ----------------------------------------------------


def tanh(Z: Array, xp: ModuleType = np) -> Array:
    """Hyperbolic tangent.  ``f'(z) = 1 - tanh(z)^2``."""
    return xp.tanh(Z)


def _tanh_kernel(Z: Array, out: Array) -> Array:
    return np.tanh(Z, out=out)


def _tanh_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return np.subtract(1, np.multiply(A, A, out=out), out=out)  # 1 - A A


# --- relu: f(z) = max(z, 0), f'(z) = [z > 0] ------------------------------------


def relu(Z: Array, xp: ModuleType = np) -> Array:
    """Rectified linear unit ``max(z, 0)``.

    Notes
    -----
    ``f'(z) = 1`` for ``z > 0`` and ``0`` for ``z <= 0``: the derivative at the
    kink is 0, as in ``jax.nn.relu``.  It is written with ``where(z > 0, ...)``
    because ``jax.grad`` of ``maximum(z, 0)`` at a tie is 0.5.
    """
    return xp.where(_relu_side(Z), Z, 0)


def _relu_side(Z: Array) -> Array:
    """relu's right-hand piece: ``z > 0``, so ``relu'(0) = 0``."""
    return Z > 0


def _relu_kernel(Z: Array, out: Array) -> Array:
    """``relu(Z)`` into ``out`` as ``fmax(z, 0)``, which also maps NaN to 0 as
    the formula does (``fmax`` returns the number when one side is NaN)."""
    return np.fmax(Z, 0, out=out)


def _relu_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return np.greater(Z, 0, out=_new_or(out, Z))  # _relu_side(Z), as 1.0 or 0.0


# --- leaky_relu: f(z) = z for z >= 0, 0.01 z otherwise ----------------------------


def leaky_relu(Z: Array, xp: ModuleType = np) -> Array:
    """Leaky ReLU with slope 0.01 below zero.

    Notes
    -----
    ``f'(z) = 1`` for ``z >= 0`` and ``0.01`` for ``z < 0``: the derivative at
    the kink is 1, as ``jax.nn.leaky_relu`` selects ``z >= 0``.
    """
    return xp.where(_leaky_relu_side(Z), Z, LEAKY_RELU_SLOPE * Z)


def _leaky_relu_side(Z: Array) -> Array:
    """leaky_relu's right-hand piece: ``z >= 0``, so ``leaky_relu'(0) = 1``."""
    return Z >= 0


def _leaky_relu_kernel(Z: Array, out: Array) -> Array:
    """``max(z, 0.01 z)``: ``z`` for ``z >= 0`` and ``0.01 z`` below, as the formula."""
    np.multiply(Z, LEAKY_RELU_SLOPE, out=out)
    return np.maximum(Z, out, out=out)


def _leaky_relu_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return _as_result(np.where(_leaky_relu_side(Z), 1.0, LEAKY_RELU_SLOPE), Z, out)


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


def _elu_kernel(Z: Array, out: Array) -> Array:
    """``expm1(min(z, 0)) + max(z, 0)``: one term is exactly 0 for every z."""
    np.minimum(Z, 0, out=out)
    np.expm1(out, out=out)
    out += np.maximum(Z, 0)
    return out


def _elu_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return _as_result(np.where(Z > 0, 1, A + 1), Z, out)


# --- softplus: f(z) = log(1 + e^z), f'(z) = sigmoid(z) -----------------------------


def softplus(Z: Array, xp: ModuleType = np) -> Array:
    """``log(1 + e^z)`` as ``logaddexp(z, 0)``.  ``f'(z) = sigmoid(z)``."""
    return xp.logaddexp(Z, 0)


def _softplus_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return _sigmoid_kernel(Z, _new_or(out, Z))


# --- silu: f(z) = z sigmoid(z) -----------------------------------------------------


def silu(Z: Array, xp: ModuleType = np) -> Array:
    """SiLU (swish) ``z * sigmoid(z)``.

    Notes
    -----
    ``f'(z) = s (1 + z (1 - s))`` with ``s = sigmoid(z)``.
    """
    return Z * sigmoid(Z, xp)


def _silu_kernel(Z: Array, out: Array) -> Array:
    _sigmoid_kernel(Z, out)
    out *= Z
    return out


def _silu_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    s = sigmoid(Z)
    return _as_result(s * (1 + Z * (1 - s)), Z, out)


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


def _gelu_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    Zc, t = _gelu_inner(Z, np)
    du_dz = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * Zc * Zc)
    return _as_result(0.5 * (1 + t) + Z * (0.5 * (1 - t * t) * du_dz), Z, out)


# --- identity ----------------------------------------------------------------------


def identity(Z: Array, xp: ModuleType = np) -> Array:
    """``f(z) = z``, ``f'(z) = 1``."""
    return Z


def _identity_backward(dA: Array, Z: Array, A: Array, out: Array | None = None) -> Array:
    if out is None:  # a copy (dZ is a gradient of its own, not an alias of dA),
        # in the dtype every backward takes: NumPy's promotion of dA's and A's
        return dA.astype(np.result_type(dA, A))
    np.copyto(out, dA)
    return out


def _identity_derivative(Z: Array, A: Array, out: Array | None = None) -> Array:
    return _as_result(np.ones_like(Z), Z, out)


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


def _softmax_kernel(Z: Array, out: Array) -> Array:
    """The formula's steps, in place in ``out``."""
    np.subtract(Z, Z.max(axis=0, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=0, keepdims=True)
    return out


def _softmax_backward(dA: Array, Z: Array, A: Array, out: Array | None = None) -> Array:
    """Jacobian-vector product of softmax, one column at a time.

    Notes
    -----
    ``dA_i/dZ_k = A_i ([i = k] - A_k)``, so
    ``dZ = A * (dA - sum_i A_i dA_i)``, the sum taken over each column.
    """
    return np.multiply(A, dA - np.sum(A * dA, axis=0, keepdims=True), out=out)


# --- second derivatives: f''(Z) for the R-operator (manual_bp.curvature) -----------
#
# Each takes ``(Z, A)`` with ``A = f(Z)`` and returns a new array of Z's shape and
# dtype.  At a kink the formula's own piece is taken (as jax differentiates it):
# relu and leaky_relu are linear on both sides, so f'' = 0 there too; elu takes
# its ``z <= 0`` piece at 0, f''(0) = 1.


def zero_second_derivative(Z: Array, A: Array) -> Array:
    """``f'' = 0``: identity, and relu and leaky_relu on either side of the kink.

    One function for all three, so a caller can tell that the term
    ``f''(Z) ⊙ dA ⊙ R(Z)`` vanishes and skip it (``manual_bp.curvature``).
    """
    return np.zeros_like(Z)


def _sigmoid_second(Z: Array, A: Array) -> Array:
    """``s'' = s (1 - s) (1 - 2 s)`` with ``s = A``."""
    return (A * (1 - A) * (1 - 2 * A)).astype(Z.dtype, copy=False)


def _tanh_second(Z: Array, A: Array) -> Array:
    """``tanh'' = -2 t (1 - t^2)`` with ``t = A``."""
    return (-2 * A * (1 - A * A)).astype(Z.dtype, copy=False)


def _softplus_second(Z: Array, A: Array) -> Array:
    """``softplus'' = sigmoid'(z) = s (1 - s)``, ``s = sigmoid(z)``."""
    s = _sigmoid_kernel(Z, np.empty_like(Z))
    return s * (1 - s)


def _elu_second(Z: Array, A: Array) -> Array:
    """``0`` for ``z > 0``, ``e^z = A + 1`` for ``z <= 0`` (so ``elu''(0) = 1``)."""
    return _as_result(np.where(Z > 0, 0, A + 1), Z, None)


def _silu_second(Z: Array, A: Array) -> Array:
    """``s (1 - s) (2 + z (1 - 2 s))`` with ``s = sigmoid(z)``."""
    s = _sigmoid_kernel(Z, np.empty_like(Z))
    return s * (1 - s) * (2 + Z * (1 - 2 * s))


def _gelu_second(Z: Array, A: Array) -> Array:
    """``f = z c``, ``c = (1 + t) / 2``, ``t = tanh(u)``: ``f'' = 2 c' + z c''`` with
    ``c' = (1 - t^2) u' / 2``, ``c'' = (1 - t^2) (u'' - 2 t u'^2) / 2``,
    ``u' = √(2/π)(1 + 3·0.044715 z²)``, ``u'' = √(2/π)·6·0.044715 z``.  Past the
    clip (``|z| > GELU_CLIP``) ``1 - t^2`` is exactly 0, and so is ``f''``, as jax
    differentiates the clipped formula.
    """
    Zc, t = _gelu_inner(Z, np)
    du = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * Zc * Zc)
    d2u = SQRT_2_OVER_PI * (6 * GELU_CUBIC) * Zc
    sech2 = 1 - t * t
    return _as_result(sech2 * du + Z * (0.5 * sech2 * (d2u - 2 * t * du * du)), Z, None)


ACTIVATIONS: dict[str, Activation] = {
    # Simplest first: Hypothesis shrinks a draw of them toward the first.
    "identity": Activation(
        "identity",
        identity,
        _identity_backward,
        _identity_derivative,
        "Z",
        "dA",
        zero_at_zero=True,
        second_derivative=zero_second_derivative,
        second_formula="0",
    ),
    "relu": _elementwise(
        "relu",
        relu,
        _relu_derivative,
        "max(Z, 0)",
        "[Z > 0]",
        _relu_kernel,
        _relu_side,
        init="he",
        zero_at_zero=True,
        second_derivative=zero_second_derivative,
        second_formula="0 (undefined at Z = 0; taken as 0)",
    ),
    "leaky_relu": _elementwise(
        "leaky_relu",
        leaky_relu,
        _leaky_relu_derivative,
        f"Z if Z ≥ 0 else {LEAKY_RELU_SLOPE}·Z",
        f"(1 if Z ≥ 0 else {LEAKY_RELU_SLOPE})",
        _leaky_relu_kernel,
        _leaky_relu_side,
        init="he",
        zero_at_zero=True,
        second_derivative=zero_second_derivative,
        second_formula="0 (undefined at Z = 0; taken as 0)",
    ),
    "sigmoid": _elementwise(
        "sigmoid",
        sigmoid,
        _sigmoid_derivative,
        "1 / (1 + exp(−Z))",
        "A ⊙ (1 − A)",
        _sigmoid_kernel,
        second_derivative=_sigmoid_second,
        second_formula="A ⊙ (1 − A) ⊙ (1 − 2A)",
    ),
    "tanh": _elementwise(
        "tanh",
        tanh,
        _tanh_derivative,
        "tanh(Z)",
        "(1 − A ⊙ A)",
        _tanh_kernel,
        zero_at_zero=True,
        second_derivative=_tanh_second,
        second_formula="−2 A ⊙ (1 − A ⊙ A)",
    ),
    "softplus": _elementwise(
        "softplus",
        softplus,
        _softplus_derivative,
        "log(1 + exp(Z))",
        "sigmoid(Z)",
        second_derivative=_softplus_second,
        second_formula="s ⊙ (1 − s), s = sigmoid(Z)",
    ),
    "elu": _elementwise(
        "elu",
        elu,
        _elu_derivative,
        "Z if Z > 0 else exp(Z) − 1",
        "(1 if Z > 0 else A + 1)",
        _elu_kernel,
        init="he",
        zero_at_zero=True,
        second_derivative=_elu_second,
        second_formula="(0 if Z > 0 else A + 1)",
    ),
    "silu": _elementwise(
        "silu",
        silu,
        _silu_derivative,
        "Z ⊙ sigmoid(Z)",
        "s ⊙ (1 + Z ⊙ (1 − s)), s = sigmoid(Z)",
        _silu_kernel,
        init="he",
        zero_at_zero=True,
        second_derivative=_silu_second,
        second_formula="s ⊙ (1 − s) ⊙ (2 + Z ⊙ (1 − 2s)), s = sigmoid(Z)",
    ),
    "gelu": _elementwise(
        "gelu",
        gelu,
        _gelu_derivative,
        "Z ⊙ (1 + tanh(u)) / 2, u = √(2/π)·(Z + 0.044715·Z³)",
        "((1 + tanh(u)) / 2 + Z ⊙ (1 − tanh(u)²) ⊙ u′ / 2), "
        "u = √(2/π)·(Z + 0.044715·Z³), u′ = √(2/π)·(1 + 3·0.044715·Z²)",
        init="he",
        zero_at_zero=True,
        second_derivative=_gelu_second,
        second_formula="(1 − tanh(u)²) ⊙ (u′ + Z ⊙ (u″ − 2 tanh(u) ⊙ u′²) / 2), "
        "u″ = √(2/π)·6·0.044715·Z",
    ),
    "softmax": Activation(
        "softmax",
        softmax,
        _softmax_backward,
        None,
        "exp(Z) / colsum(exp(Z))",
        "A ⊙ (dA − colsum(A ⊙ dA))",
        _softmax_kernel,
    ),
}
