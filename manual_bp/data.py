"""Built-in 2-D toy data sets, generated (nothing is downloaded).

Each is called as ``dataset(m, noise, seed)`` and returns ``X`` of shape
``(2, m)`` (one sample per column) and targets ``Y``, both float64:

* ``two_moons``, ``circles``, ``xor``, ``spirals``: binary labels, ``Y`` of
  shape ``(1, m)`` in {0, 1} (for a sigmoid output and binary cross-entropy);
* ``blobs``: ``k`` classes, ``Y`` one-hot of shape ``(k, m)`` (for a softmax
  output and cross-entropy).

``noise`` is the standard deviation of the Gaussian noise added to ``X``.
The classes are as balanced as ``m`` allows (``m // 2`` and ``m - m // 2``
samples, or ``m // k`` or ``m // k + 1`` per class) except in ``xor``,
whose corners are drawn at random.  The same ``seed`` gives the same data.

``stripes`` makes small images instead, for a convolutional network in
cs231n's layout: ``X`` of shape ``(m, 1, size, size)`` (NCHW, one channel) and
integer class labels of shape ``(m,)``, four orientations of a short bar.
"""

from __future__ import annotations

import numbers

import numpy as np

from manual_bp.validation import check_positive_int


def _noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(
            f"noise: expected a finite float >= 0, got {type(noise).__name__} {noise!r}"
        )
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise: expected a finite float >= 0, got {noise}")
    return float(noise)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(check_positive_int(seed, "seed", minimum=0))


def two_moons(m: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles; class 1 is the lower, shifted one."""
    m = check_positive_int(m, "m")
    rng = _rng(seed)
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
    rng = _rng(seed)
    corners = rng.integers(0, 2, size=(2, m))
    X = (2.0 * corners - 1) + _noise(noise) * rng.standard_normal((2, m))
    return X, (corners[0] != corners[1]).astype(np.float64)[None, :]


def circles(m: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles, radius 1 (class 0) and 0.5 (class 1)."""
    m = check_positive_int(m, "m")
    rng = _rng(seed)
    angle = 2 * np.pi * rng.random(m)
    is_inner = np.arange(m) >= m // 2
    radius = np.where(is_inner, 0.5, 1.0)
    X = radius * np.stack([np.cos(angle), np.sin(angle)]) + _noise(noise) * rng.standard_normal(
        (2, m)
    )
    return X, is_inner.astype(np.float64)[None, :]


def spirals(m: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of 1.5 turns; class 1 is class 0 turned by 180 degrees.

    A point at turning angle ``t`` in [0, 3 pi] lies at radius ``2 t / (3 pi)``
    (so inside the disc of radius 2, with the arms 2/3 apart).
    """
    m = check_positive_int(m, "m")
    rng = _rng(seed)
    turn = 3 * np.pi * rng.random(m)
    is_second = np.arange(m) >= m // 2
    angle = turn + np.where(is_second, np.pi, 0.0)
    radius = 2 * turn / (3 * np.pi)
    X = radius * np.stack([np.cos(angle), np.sin(angle)]) + _noise(noise) * rng.standard_normal(
        (2, m)
    )
    return X, is_second.astype(np.float64)[None, :]


def blobs(
    m: int = 200, noise: float = 0.7, seed: int = 0, classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` Gaussian clusters with centres evenly spaced on the circle of radius 2.

    Returns ``Y`` one-hot of shape ``(classes, m)``: ``Y[k, i] = 1`` when
    sample ``i`` belongs to cluster ``k``.  Sample ``i`` belongs to cluster
    ``i % classes``.
    """
    m = check_positive_int(m, "m")
    classes = check_positive_int(classes, "classes", minimum=2)
    rng = _rng(seed)
    label = np.arange(m) % classes
    centre_angle = 2 * np.pi * np.arange(classes) / classes
    centres = 2.0 * np.stack([np.cos(centre_angle), np.sin(centre_angle)])
    X = centres[:, label] + _noise(noise) * rng.standard_normal((2, m))
    Y = (np.arange(classes)[:, None] == label[None, :]).astype(np.float64)
    return X, Y


STRIPE_CLASSES = ("horizontal", "vertical", "diagonal", "anti-diagonal")


def stripes(
    m: int = 200, noise: float = 0.2, seed: int = 0, *, size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Images of one short bar each, in four orientations: ``(X, labels)`` for a small CNN.

    ``X`` has shape ``(m, 1, size, size)`` (cs231n's NCHW, one channel),
    float64: a background of 0 with a bar of ``length = (size + 1) // 2 + 1``
    pixels of value 1 at a random position (the whole bar inside the image),
    plus Gaussian noise of standard deviation ``noise`` on every pixel.
    ``labels`` has shape ``(m,)``, int64: sample ``i`` is of class ``i % 4``,
    ``STRIPE_CLASSES[label]``: 0 horizontal, 1 vertical, 2 diagonal (down to
    the right), 3 anti-diagonal (down to the left).  ``size`` is at least 3.

    >>> X, labels = stripes(4, noise=0.0, size=4)
    >>> X.shape, labels.tolist()
    ((4, 1, 4, 4), [0, 1, 2, 3])
    >>> X[3, 0]  # an anti-diagonal bar of 3 pixels, where seed 0 put it
    array([[0., 0., 0., 1.],
           [0., 0., 1., 0.],
           [0., 1., 0., 0.],
           [0., 0., 0., 0.]])
    """
    m = check_positive_int(m, "m")
    size = check_positive_int(size, "size", minimum=3)
    noise = _noise(noise)
    rng = _rng(seed)
    length = (size + 1) // 2 + 1
    labels = np.arange(m) % len(STRIPE_CLASSES)
    # The bar's start along its length (so that it fits) and across it (anywhere).
    along = rng.integers(0, size - length + 1, size=(m, 1))
    across = rng.integers(0, size, size=(m, 1))
    second = rng.integers(0, size - length + 1, size=(m, 1))  # a diagonal's column start
    step = np.arange(length)[None, :]
    label = labels[:, None]
    rows = np.select(
        [label == 0, label == 1], [np.broadcast_to(across, (m, length)), along + step], along + step
    )
    cols = np.select(
        [label == 0, label == 1, label == 2],
        [along + step, np.broadcast_to(across, (m, length)), second + step],
        second + length - 1 - step,
    )
    X = np.zeros((m, 1, size, size))
    X[np.arange(m)[:, None], 0, rows, cols] = 1.0
    X += noise * rng.standard_normal(X.shape)
    return X, labels.astype(np.int64)


DATASETS = {"moons": two_moons, "circles": circles, "xor": xor, "spirals": spirals, "blobs": blobs}
