"""Built-in 2-D toy data sets, generated (nothing is downloaded).

Each returns ``X`` of shape ``(2, m)`` (one sample per column) and binary
labels ``Y`` of shape ``(1, m)`` in {0, 1}, as float64.
"""

from __future__ import annotations

import numpy as np

from manual_bp.validation import check_positive_int


def _noise(noise: float) -> float:
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise: expected a finite float >= 0, got {noise}")
    return float(noise)


def two_moons(m: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles; class 1 is the lower, shifted one."""
    m = check_positive_int(m, "m")
    rng = np.random.default_rng(seed)
    upper = m // 2
    angle = np.pi * rng.random(m)
    is_lower = np.arange(m) >= upper
    x = np.where(is_lower, 1 - np.cos(angle), np.cos(angle))
    y = np.where(is_lower, 0.5 - np.sin(angle), np.sin(angle))
    X = np.stack([x, y]) + _noise(noise) * rng.standard_normal((2, m))
    return X, is_lower.astype(np.float64)[None, :]


def xor(m: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four clusters at (+-1, +-1); the label is 1 where the signs differ."""
    m = check_positive_int(m, "m")
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(2, m))
    X = (2.0 * corners - 1) + _noise(noise) * rng.standard_normal((2, m))
    return X, (corners[0] != corners[1]).astype(np.float64)[None, :]


DATASETS = {"moons": two_moons, "xor": xor}
