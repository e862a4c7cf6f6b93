"""The affine step's rounding: ``W A + B`` forward, ``W^T dZ``, ``dZ A^T`` and
``sum dZ`` backward."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from manual_bp_reference.tolerance.rounding import Array, flushed


def _affine_errors(
    l: int,
    EdZ: Array,
    oracle_grads: Mapping[str, Array],
    f64: Mapping[str, Array],
    EA_prev: Array,
    u: float,
    floor: float,
) -> dict[str, Array]:
    """``EdZl`` and what it makes: ``EdWl``, ``EdBl`` and ``EdA(l-1)``."""
    m = EdZ.shape[1]
    absdZ = np.abs(oracle_grads[f"Z{l}"])
    absA_prev = np.abs(f64[f"A{l - 1}"])
    absW = np.abs(f64[f"W{l}"])
    return {
        f"Z{l}": EdZ,
        f"W{l}": (
            EdZ @ absA_prev.T
            + (absdZ + u * EdZ) @ EA_prev.T
            + (m + 1) * (absdZ @ absA_prev.T + floor)
        ),
        f"B{l}": np.sum(EdZ, axis=1, keepdims=True)
        + (m + 1) * (np.sum(absdZ, axis=1, keepdims=True) + floor),
        f"A{l - 1}": (
            absW.T @ EdZ
            + (absW.shape[0] + 1) * (absW.T @ absdZ + floor)
            + flushed(f64[f"W{l}"], u).T @ (absdZ + u * EdZ)
        ),
    }
