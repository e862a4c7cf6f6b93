"""A loss's rounding model: its value's error and the oracle's own error at the logits."""

from __future__ import annotations

import numpy as np

from manual_bp.activations import log_softmax, sigmoid, softplus
from manual_bp_reference.tolerance.rounding import SAFETY, Array, column_sum


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


def _loss_value_error(
    loss: str, Z: Array, A: Array, Y: Array, EZ: Array, EA: Array, floor: float, u: float
) -> float:
    """Error of the batch-mean loss, from the forward errors and the summands."""
    if loss == "binary_cross_entropy":
        # |dl/dZ| = |sigmoid(Z) - Y| bounded from the logits: A may round to Y.
        propagated = (np.abs(Y) * sigmoid(-Z) + np.abs(1 - Y) * sigmoid(Z)) * EZ
    elif loss == "cross_entropy":
        propagated = np.abs(Y) * EZ + np.abs(column_sum(Y)) * column_sum(np.abs(A) * EZ)
    else:
        propagated = (np.abs(A - Y) + u * EA) * EA
    terms = loss_terms(loss, Z, A, Y)
    return float((np.sum(propagated) + (Y.size + 8) * (np.sum(terms) + floor)) / Y.shape[1])


def oracle_logit_error(loss: str, Z: Array, Y: Array) -> Array:
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


def second_order_loss_error(loss: str, Y: Array, EZ: Array, u: float) -> float:
    """The loss's second-order term, for a logit error that need not be small.

    ``_loss_value_error`` takes the loss's slope at our ``ZL``; a normalized layer
    with a variance lost to rounding can move ``ZL`` far (a saturated
    sigmoid at ``ZL = 330`` whose true ``ZL`` is negative).  The slope moves
    by at most the loss's curvature times the error: ``1/4`` per unit for
    binary cross-entropy, ``1/4`` per entry of a column for cross-entropy
    (``diag(A) - A A^T``); mse's term is already in ``_loss_value_error``.
    """
    m = Y.shape[1]
    if loss == "binary_cross_entropy":
        return float(np.sum((np.abs(Y) + np.abs(1 - Y)) * EZ * EZ) * 0.25 * SAFETY * u / m)
    if loss == "cross_entropy":
        return float(np.sum(np.abs(column_sum(Y)) * column_sum(EZ) ** 2) * 0.125 * SAFETY * u / m)
    return 0.0
