"""Units of rounding: ``u`` of a dtype, the underflow floor, the ``SAFETY`` factor."""

from __future__ import annotations

import numpy as np

Array = np.ndarray
EPS64 = float(np.finfo(np.float64).eps)
TINY64 = float(np.finfo(np.float64).tiny)
# First-order bounds drop O(u^2) terms; a factor 2 covers them with room.
SAFETY = 2.0


def unit_roundoff(dtype: np.dtype | str) -> float:
    """``u = eps(dtype) + eps(float64)``: the manual side's and the oracle's."""
    return float(np.finfo(np.dtype(dtype)).eps) + EPS64


def flushed(V: Array, u: float) -> Array:
    """XLA treats float64 subnormal inputs as 0: their whole value is error."""
    V = np.abs(V)
    return np.where(V < TINY64, V, 0.0) / u


def column_sum(X: Array) -> Array:
    return np.sum(X, axis=0, keepdims=True)
