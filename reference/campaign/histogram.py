"""The histogram of err/tol: quarter decades per dtype and key kind."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

KINDS = ("W", "B", "Z", "A", "loss")
# log10(err/tol) bin edges: quarter decades from 1e-12 to 1e2.  Bin 0 holds
# exact agreement (ratio 0), bin 1 everything below 1e-12, the last bin 1e2
# and above (inf: a NaN or an exception).  A ratio of exactly 1 passes but
# falls into the bin that starts at 1.
LOG_EDGES = np.linspace(-12.0, 2.0, 57)
BINS = len(LOG_EDGES) + 2
# How many worst examples (and error lines) a chunk keeps, and the totals.
WORST_KEPT = 10


def histogram(ratios: Iterable[float]) -> np.ndarray:
    """Counts of ``ratios`` in the ``BINS`` bins described at ``LOG_EDGES``.

    >>> counts = histogram([0.0, 1e-20, 0.5, 1.0, 3.0, float("inf")])
    >>> int(counts[0]), int(counts[1]), int(counts[-1]), int(counts.sum())
    (1, 1, 1, 6)
    """
    values = np.asarray(list(ratios), dtype=np.float64)
    counts = np.zeros(BINS, dtype=np.int64)
    counts[0] = np.sum(values == 0)
    positive = values[values > 0]
    with np.errstate(divide="ignore"):
        logs = np.log10(positive)
    counts[1] = np.sum(logs < LOG_EDGES[0])
    counts[-1] = np.sum(logs >= LOG_EDGES[-1])
    inside = logs[(logs >= LOG_EDGES[0]) & (logs < LOG_EDGES[-1])]
    counts[2:-1] = np.histogram(inside, LOG_EDGES)[0]
    return counts


def kind_of(key: str) -> str:
    """``W3`` -> ``W``, ``A0`` -> ``A``, ``loss`` -> ``loss``."""
    return key if key == "loss" else key.rstrip("0123456789")
