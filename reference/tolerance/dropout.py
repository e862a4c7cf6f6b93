"""The dropout mask's rounding."""

from __future__ import annotations

import numpy as np

from manual_bp_reference.tolerance.rounding import Array


def dropout_error(E: Array, V: Array, M: Array, rate: float, floor: float) -> Array:
    """The error of ``V = (U ⊙ M) / (1 − p)`` (``manual_bp.dropout``) given the
    error ``E`` of ``U``: the mask scales it by ``M / (1 − p)``, and ``1 − p``
    rounded to the dtype and the division each round once (``U ⊙ M`` is exact)."""
    return M / (1 - rate) * E + 2 * np.abs(V) + 2 * floor
