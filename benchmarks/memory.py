"""Peak memory of forward + backward against the minimum the backward pass must keep.

What it measures
----------------
``tracemalloc`` sees every array NumPy allocates.  For each grid point the
script builds the network and the batch, then measures, from the moment just
before ``DNN.forward(X)`` to the end of ``DNN.compute_gradients(out, cache,
Y)`` with the cache and the grads still held, the peak of the bytes allocated
beyond what existed before (``P``).  ``X``, ``Y`` and the parameters exist
before and are not counted.

The minimum
-----------
``M`` = the bytes of the new arrays the seed's cache holds: ``Zl`` and ``Al``
for l = 1..L (``A0`` and ``Wl`` are the caller's ``X`` and the parameters,
referenced, not copied).  The seed's backward reads all of them (``f_l'``
from ``Zl`` or ``Al``, ``dWl`` from ``A(l-1)``), and the seed API returns them
from ``forward``, so no implementation of that API keeps less between the
two calls.  (The chain rule alone could do with one array per layer, ``Al``,
since relu, sigmoid and tanh have ``f'`` in terms of ``A``: ``M / 2``.)

``G`` = the bytes of the gradients returned: ``dWl``, ``dBl``, and, as the
seed API asks, ``dZl`` and ``dAl`` for every layer.  They are outputs, so the
table gives the peak both with them (``P / M``) and without them
(``(P - G) / M``, the memory the computation needs beyond its inputs and
outputs, relative to the minimum), and ``P / (M + G)`` (1.0 means no
temporary at all survives to the peak).

Usage
-----
From the repository root::

    python -m benchmarks.memory
    python -m benchmarks.memory --sizes large,very_large --dtypes float64
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc

import numpy as np

from benchmarks.speed import DTYPES, HIDDEN, LARGE_SIZES, SIZES, Point, make_batch, parse_list
from manual_bp import DNN

MIB = 2.0**20


def measure(point: Point) -> dict[str, float]:
    """``P``, ``M`` and ``G`` in bytes for one grid point (see the module notes)."""
    net = DNN(point.layer_sizes, list(point.activations), point.loss, seed=0, dtype=point.dtype)
    X, Y = make_batch(point, np.random.default_rng(0))
    out, cache = net.forward(X)  # one run first, so one-off allocations are not counted
    net.compute_gradients(out, cache, Y)
    del out, cache
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out, cache = net.forward(X)
        grads = net.compute_gradients(out, cache, Y)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    depth = len(point.activations)
    minimum = sum(cache[f"{v}{l}"].nbytes for l in range(1, depth + 1) for v in "ZA")
    outputs = sum(value.nbytes for value in grads.values())
    return {"peak": peak, "minimum": minimum, "outputs": outputs}


def table(rows: list[tuple[Point, dict[str, float]]]) -> str:
    lines = [
        "| size | layers, m | dtype | hidden | M: cache Zl, Al | G: grads | P: peak "
        "| P / M | (P − G) / M | P / (M + G) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for point, r in rows:
        P, M, G = r["peak"], r["minimum"], r["outputs"]
        lines.append(
            f"| {point.size} | {point.layer_sizes}, {point.m} | {point.dtype} | {point.hidden} "
            f"| {M / MIB:.2f} MiB | {G / MIB:.2f} MiB | {P / MIB:.2f} MiB "
            f"| {P / M:.2f} | {(P - G) / M:.2f} | {P / (M + G):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="default: all of %(default)s")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="default: %(default)s")
    parser.add_argument(
        "--activations", default=",".join(HIDDEN), help="hidden activations (default %(default)s)"
    )
    args = parser.parse_args(argv)
    rows = []
    for size in parse_list(args.sizes, SIZES, "sizes"):
        for dtype in parse_list(args.dtypes, DTYPES, "dtypes"):
            for hidden in parse_list(args.activations, HIDDEN, "activations"):
                point = Point(size, dtype, hidden)
                rows.append((point, measure(point)))
    print(table(rows))
    large = [(r["peak"] - r["outputs"]) / r["minimum"] for p, r in rows if p.size in LARGE_SIZES]
    if large:
        worst = max(large)
        print(
            f"\n(P - G) / M <= 1.5 at the large sizes: worst {worst:.2f} -> "
            f"{'met' if worst <= 1.5 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
