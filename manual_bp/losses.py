"""Losses: the batch-mean value, dL/dA_L, and the fused dL/dZ_L.

``Z_L`` and ``A_L = f(Z_L)`` have shape ``(n_L, m)``; so has the target ``Y``.
Every loss is the mean over the ``m`` columns of the batch.  Values are written
over an array namespace ``xp`` and computed from the logits ``Z_L`` wherever a
logarithm is taken, so they never evaluate ``log(0)``.

The canonical pairs share one fused output gradient::

    sigmoid + binary_cross_entropy   dZ_L = (A_L - Y) / m
    softmax + cross_entropy          dZ_L = (A_L - Y) / m   (columns of Y sum to 1)
    identity + mse                   dZ_L = (A_L - Y) / m

``mse`` also accepts every other output activation, through the general chain
rule ``dZ_L = f'(Z_L)^T dA_L`` with ``dA_L = (A_L - Y) / m``.  The logarithmic
losses accept only their canonical activation: it is the only one of ours
whose output lies inside their domain for every finite ``Z_L``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from manual_bp.activations import ACTIVATIONS, Activation, log_softmax, softplus

Array = np.ndarray


@dataclass(frozen=True)
class Loss:
    """A loss ``L(Z_L, A_L, Y)`` and its hand-written gradients.

    Attributes
    ----------
    name : str
    canonical_activation : str
        The output activation whose pairing has the fused gradient.
    output_activations : frozenset of str
        Every output activation this loss accepts.
    min_outputs : int
        The smallest ``n_L`` that makes sense (2 for ``cross_entropy``).
    value : callable ``(Z_L, A_L, Y, xp) -> scalar``
    fused_dZ : callable ``(A_L, Y) -> dZ_L``
        The gradient for the canonical pair, computed without ``f'``.
    dA : callable ``(A_L, Y) -> dA_L``, or None
        dL/dA_L for the general chain rule; ``None`` when only the canonical
        pair is accepted.
    check_targets : callable ``(Y) -> None``
        Raises ``ValueError`` when ``Y`` lies outside the loss's domain.
    formula : str
        ``L`` as text, in ``Z``, ``A``, ``Y`` and ``m``.
    fused_formula : str
        ``dZ_L`` of the canonical pair as text.
    dA_formula : str or None
        ``dA_L`` as text, with ``dA``.  ``manual-bp explain`` prints these.
    """

    name: str
    canonical_activation: str
    output_activations: frozenset[str]
    min_outputs: int
    value: Callable[[Array, Array, Array, ModuleType], Array]
    fused_dZ: Callable[[Array, Array], Array]
    dA: Callable[[Array, Array], Array] | None
    check_targets: Callable[[Array], None]
    formula: str
    fused_formula: str
    dA_formula: str | None


def _batch_size(Y: Array) -> int:
    return Y.shape[1]


def mean_residual(A: Array, Y: Array) -> Array:
    """``(A - Y) / m``: the fused dZ_L of every canonical pair, and mse's dA_L."""
    return (A - Y) / _batch_size(Y)


# --- binary cross-entropy ------------------------------------------------------------


def binary_cross_entropy(Z: Array, A: Array, Y: Array, xp: ModuleType = np) -> Array:
    """``L = -(1/m) sum [Y log A + (1 - Y) log(1 - A)]`` with ``A = sigmoid(Z)``.

    Notes
    -----
    From the logits: ``-log sigmoid(z) = softplus(-z)`` and
    ``-log(1 - sigmoid(z)) = softplus(z)``, so
    ``L = (1/m) sum [Y softplus(-Z) + (1 - Y) softplus(Z)]``, finite for every
    finite Z.  ``dL/dZ = (sigmoid(Z) - Y) / m = (A - Y) / m``.
    """
    per_entry = Y * softplus(-Z, xp) + (1 - Y) * softplus(Z, xp)
    return xp.sum(per_entry) / _batch_size(Y)


def _check_binary_targets(Y: Array) -> None:
    if not (Y.min() >= 0 and Y.max() <= 1):  # NaN fails too
        raise ValueError(
            "Y: binary_cross_entropy expects targets in [0, 1], "
            f"got values in [{Y.min()}, {Y.max()}]"
        )


# --- categorical cross-entropy --------------------------------------------------------


def cross_entropy(Z: Array, A: Array, Y: Array, xp: ModuleType = np) -> Array:
    """``L = -(1/m) sum Y log A`` with ``A = softmax(Z)`` over each column.

    Notes
    -----
    ``log A = log_softmax(Z) = Z - logsumexp(Z)``, from the logits.
    ``dL/dZ = (A * s - Y) / m`` where ``s`` holds the column sums of ``Y``;
    since every column of ``Y`` is a probability vector, ``s = 1`` and
    ``dL/dZ = (A - Y) / m``.  The code keeps ``s``: the validated sums may
    differ from 1 by rounding, and the gradient returned is then still the
    exact gradient of the loss value returned.
    """
    return -xp.sum(Y * log_softmax(Z, xp)) / _batch_size(Y)


def _cross_entropy_dZ(A: Array, Y: Array) -> Array:
    return (A * Y.sum(axis=0, keepdims=True) - Y) / _batch_size(Y)


@functools.cache
def _column_sum_tolerance(dtype: np.dtype) -> float:
    """Columns normalised in floating point sum to 1 within a few ulps; a
    column that is off by more than sqrt(eps) was not normalised at all."""
    return float(np.sqrt(np.finfo(dtype).eps))


def _check_probability_columns(Y: Array) -> None:
    if Y.min() < 0:
        raise ValueError(
            f"Y: cross_entropy expects non-negative targets, got a minimum of {Y.min()}"
        )
    tolerance = _column_sum_tolerance(Y.dtype)
    sums = Y.sum(axis=0)
    deviations = np.abs(sums - 1)
    if deviations.max() > tolerance:
        worst = int(np.argmax(deviations))
        raise ValueError(
            "Y: cross_entropy expects every column to be a probability vector "
            f"(sum 1 within {tolerance:.1e}), got column {worst} summing to "
            f"{sums[worst]}"
        )


# --- mean squared error -----------------------------------------------------------------


def mse(Z: Array, A: Array, Y: Array, xp: ModuleType = np) -> Array:
    """``L = (1/(2m)) sum (A - Y)^2``.

    Notes
    -----
    ``dL/dA = (A - Y) / m``; the 1/2 cancels the 2 of the square.
    """
    return 0.5 * xp.sum((A - Y) ** 2) / _batch_size(Y)


def _check_any_targets(Y: Array) -> None:
    """mse accepts every finite target."""


LOSSES: dict[str, Loss] = {
    # Simplest first: Hypothesis shrinks a draw of them toward the first.
    "mse": Loss(
        "mse",
        "identity",
        frozenset(ACTIVATIONS),
        1,
        mse,
        mean_residual,
        mean_residual,
        _check_any_targets,
        "(1/(2m)) Σ (A − Y)²",
        "(A − Y) / m",
        "(A − Y) / m",
    ),
    "binary_cross_entropy": Loss(
        "binary_cross_entropy",
        "sigmoid",
        frozenset({"sigmoid"}),
        1,
        binary_cross_entropy,
        mean_residual,
        None,
        _check_binary_targets,
        "(1/m) Σ [Y ⊙ softplus(−Z) + (1 − Y) ⊙ softplus(Z)]",
        "(A − Y) / m",
        None,
    ),
    "cross_entropy": Loss(
        "cross_entropy",
        "softmax",
        frozenset({"softmax"}),
        2,
        cross_entropy,
        _cross_entropy_dZ,
        None,
        _check_probability_columns,
        "−(1/m) Σ Y ⊙ log_softmax(Z)",
        "(A ⊙ colsum(Y) − Y) / m",
        None,
    ),
}


def output_gradient(loss: Loss, activation: Activation, Z_L: Array, A_L: Array, Y: Array) -> Array:
    """``dZ_L``: fused for the canonical pair, else ``f'(Z_L)^T dL/dA_L``."""
    if activation.name == loss.canonical_activation:
        return loss.fused_dZ(A_L, Y)
    if loss.dA is None:  # validation pairs such a loss with its canonical activation only
        raise ValueError(f"{loss.name} takes only {loss.canonical_activation} outputs")
    return activation.backward(loss.dA(A_L, Y), Z_L, A_L)


def l2_penalty(params: Mapping[str, Array], strength: float, xp: ModuleType = np) -> Array:
    """The L2 penalty ``strength / 2 * sum_l ||Wl||_F^2``, on the weights only.

    Biases are not penalised (as cs231n and most course code do).  The total
    loss is ``L + l2_penalty``; its gradient adds ``l2_penalty_gradient(Wl)``
    to every ``dWl`` and nothing to ``dBl``.

    >>> float(l2_penalty({"W1": np.array([[1.0, 2.0]]), "B1": np.array([[5.0]])}, 0.5))
    1.25
    """
    weights = [value for key, value in params.items() if key.startswith("W")]
    return strength / 2 * sum(xp.sum(W * W) for W in weights)


def l2_penalty_gradient(W: Array, strength: float) -> Array:
    """``d/dW (strength / 2 ||W||^2) = strength * W``."""
    return strength * W
