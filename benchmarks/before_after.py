"""The hand-written step timed against the code at an older commit, side by side in one run.

A restructuring of the core must not make it slower.  This runs the user's
path with default settings (``DNN.forward(X)`` then
``DNN.compute_gradients(out, cache, Y)``, as ``benchmarks.speed``'s ``dnn``
method) for every point of ``benchmarks.speed``'s grid, in two worker
processes: one imports the code of ``--baseline`` (a git worktree of it),
the other this tree's.  The parent hands out rounds in turn (old, new, old,
new, ...; each side first in every other round), so that a change of the
machine's load falls on both alike; each
call is timed alone, and the table gives medians and their ratio.

Besides the grid's plain relu networks, two points exercise the layer steps
the plain fast path skips: ``medium`` with batch normalization and with
dropout 0.2 on the hidden layers (float64).

Usage::

    python -m benchmarks.before_after --baseline 8ac5718 [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.environment import print_environment
from benchmarks.isolation_overhead import baseline_checkout
from benchmarks.speed import ISSUE_GRID, SIZES

HOME = Path(__file__).resolve().parent.parent
# (size, dtype, options of DNN): the speed grid, then the layer steps.
POINTS: list[tuple[str, str, dict]] = [(size, dtype, {}) for size, dtype in ISSUE_GRID] + [
    ("medium", "float64", {"normalization": "batch"}),
    ("medium", "float64", {"dropout": 0.2}),
]

WORKER = r"""
import json, sys, time
import numpy as np
from manual_bp import DNN
SIZES = json.loads(sys.argv[1])
POINTS = json.loads(sys.argv[2])
steps = []
for size, dtype, options in POINTS:
    sizes, m = SIZES[size]
    hidden = ["relu"] * (len(sizes) - 2)
    output, loss = ("softmax", "cross_entropy")
    if sizes[-1] == 1:
        output, loss = "sigmoid", "binary_cross_entropy"
    net = DNN(sizes, hidden + [output], loss, seed=0, dtype=dtype, **options)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((sizes[0], m)).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[:, rng.integers(0, sizes[-1], m)]
    def step(net=net, X=X, Y=Y):
        out, cache = net.forward(X)
        return net.compute_gradients(out, cache, Y)
    step()
    steps.append(step)
print("ready", flush=True)
clock = time.perf_counter
for line in sys.stdin:
    index, seconds = line.split()
    step, times, end = steps[int(index)], [], clock() + float(seconds)
    while len(times) < 3 or clock() < end:
        start = clock()
        step()
        times.append(clock() - start)
    print(json.dumps(times), flush=True)
"""


def worker(code: Path) -> subprocess.Popen:
    """A Python that imports manual_bp from ``code`` and times steps on request."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(SIZES), json.dumps(POINTS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=code,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def ask(process: subprocess.Popen, index: int, seconds: float) -> list[float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{index} {seconds}\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the old commit")
    parser.add_argument("--rounds", type=int, default=20, help="default %(default)s")
    parser.add_argument("--seconds", type=float, default=0.1, help="per round and side")
    args = parser.parse_args(argv)
    print_environment("before/after")
    with baseline_checkout(args.baseline) as old_tree:
        workers = {"before": worker(old_tree), "after": worker(HOME)}
        try:
            times: dict[tuple[str, int], list[float]] = {}
            for round_ in range(args.rounds):
                for index in range(len(POINTS)):
                    # Each side goes first in every other round: what ran just
                    # before (and what it left in the caches) falls on both alike.
                    sides = list(workers)[:: 1 if (round_ + index) % 2 else -1]
                    for side in sides:
                        times.setdefault((side, index), []).extend(
                            ask(workers[side], index, args.seconds)
                        )
        finally:
            for process in workers.values():
                assert process.stdin is not None
                process.stdin.close()
                process.wait()
    print(f"\nbaseline {args.baseline}; medians of single steps, {args.rounds} rounds")
    print(f"{'point':<62}{'before':>12}{'after':>12}{'after/before':>14}")
    for index, (size, dtype, options) in enumerate(POINTS):
        before = statistics.median(times[("before", index)])
        after = statistics.median(times[("after", index)])
        name = f"{size} {SIZES[size][0]} m={SIZES[size][1]} {dtype}"
        name += "".join(f" {key}={value}" for key, value in options.items())
        print(f"{name:<62}{before * 1e6:>10.1f}us{after * 1e6:>10.1f}us{after / before:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
