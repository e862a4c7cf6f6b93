"""The oracle's compile crossover: one network's compile against one bucket's.

``oracle_gradients(case, compiled="network")`` compiles ``forward_xp`` of the
case's own network (only the batch padded); ``"bucket"`` compiles the padded
``lax.scan`` that serves every network of the bucket.  For each network
below, a fresh process (the persistent compile cache off, so every compile
is a compile) times the first call of each (trace, lower, compile, run) and
the median of 200 calls after it.  The crossover is the number of distinct
networks whose compiles cost one bucket's: a caller of fewer networks than
that (a check, the demo) compiles by the network (``one_network()``), one of
more (a property, a campaign over drawn architectures) by the bucket.

    python -m benchmarks.compile_crossover
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from benchmarks.environment import print_environment

NETWORKS = [
    ([2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy"),
    ([2, 3, 3, 1], ["sigmoid", "sigmoid", "sigmoid"], "binary_cross_entropy"),
    ([4, 10, 3], ["relu", "softmax"], "cross_entropy"),
    ([8, 16, 16, 16, 4], ["relu", "gelu", "tanh", "identity"], "mse"),
]

ONE = """\
import json, sys, time
import numpy as np
from manual_bp_reference.cases import Case
from manual_bp_reference.oracle import oracle_gradients
sizes, activations, loss, compiled = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
params = {}
for l in range(1, len(sizes)):
    params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1]))
    params[f"B{l}"] = rng.standard_normal((sizes[l], 1))
X = rng.standard_normal((sizes[0], 8))
Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], 8)] if loss == "cross_entropy" \\
    else rng.uniform(0.1, 0.9, (sizes[-1], 8))
case = Case.of(params, X, Y, activations, loss)
start = time.perf_counter()
oracle_gradients(case, compiled=compiled)
first = time.perf_counter() - start
calls = []
for _ in range(200):
    start = time.perf_counter()
    oracle_gradients(case, compiled=compiled)
    calls.append(time.perf_counter() - start)
calls.sort()
print(json.dumps({"first": first, "call": calls[100]}))
"""


def _measure(network: tuple, compiled: str) -> dict[str, float]:
    env = {**os.environ, "MANUAL_BP_COMPILE_CACHE": "off"}
    out = subprocess.run(
        [sys.executable, "-c", ONE, json.dumps([*network, compiled])],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    return json.loads(out)


def main() -> None:
    print_environment("compile crossover")
    rounds = 3
    print(f"\nfirst call (compile included) and a call after it; medians of {rounds} processes")
    print(f"{'network':<44} {'network':>9} {'bucket':>9} {'ratio':>6}  per call (ms)")
    ratios = []
    for network in NETWORKS:
        results = {
            compiled: [_measure(network, compiled) for _ in range(rounds)]
            for compiled in ("network", "bucket")
        }
        first = {k: statistics.median(r["first"] for r in v) for k, v in results.items()}
        call = {k: statistics.median(r["call"] for r in v) for k, v in results.items()}
        ratio = first["bucket"] / first["network"]
        ratios.append(ratio)
        name = f"{network[0]} {','.join(network[1])}"
        print(
            f"{name:<44} {first['network']:8.2f}s {first['bucket']:8.2f}s {ratio:6.1f}  "
            f"network {1e3 * call['network']:.2f}, bucket {1e3 * call['bucket']:.2f}"
        )
    print(
        f"\ncrossover: a bucket's compile costs {min(ratios):.1f} to {max(ratios):.1f} network "
        "compiles; a caller of fewer networks compiles by the network"
    )


if __name__ == "__main__":
    main()
