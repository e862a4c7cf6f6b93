"""Speed of the hand-written backward pass against jax.jit and the matrix-product roofline,
quiet and beside a competing CPU-bound process, with tail latencies.

What it times (one process, side by side, every method in every round)
---------------------------------------------------------------------
``dnn``
    The user-facing path with default settings: ``DNN.forward(X)`` then
    ``DNN.compute_gradients(out, cache, Y)``, input checks included, BLAS
    threads as ``manual_bp.threads`` chooses them.  Every ``manual`` ratio uses it.
``dnn_1``
    The same with the BLAS on one thread (set around each sample).
``dnn_lib``
    The same with the thread policy off (``threads.set_policy(False)``): the
    library's own choice, what the project did before the policy.
``prepared``
    ``DNN.prepare(X, Y)`` once, then ``batch.compute_gradients()``: the same
    gradients with ``X`` and ``Y`` checked once (full-batch gradient descent).
``core``
    ``network.forward`` then ``network.backward``, no input checks: ``dnn -
    core`` is what validation costs.
``jit``
    ``jax.jit(jax.value_and_grad(batch_loss))`` of the very same forward,
    gradients of every ``Wl`` and ``Bl``, warm, inputs on the device,
    ``block_until_ready``; XLA's own threads.
``roof``
    The roofline: only the 3L - 1 matrix products the algorithm needs, ``out=``
    into preallocated arrays, each with the thread count ``manual_bp.threads``
    gives it (the policy's choice, as in ``dnn``).

Every call is timed on its own, so the tables give the median, the 90th and
the 99th percentile of single calls.  Methods take turns in ``--rounds``
rounds; in each round a method runs for ``--min-sample`` seconds (at least
one call), and at least ``--min-calls`` calls are gathered in all.

Scenarios: ``quiet`` (nothing started by the benchmark) and ``competing``
(one CPU-bound Python process the benchmark starts beside itself, bounded by
its own deadline and stopped at the end; ``environment.competitor``).  Each
table is printed with the environment it was measured in (BLAS, kernel,
threads, ``OPENBLAS_*`` variables, load average).

Grid: by default the issue's five points, relu hidden layers, the output the
canonical pair (softmax + cross_entropy; sigmoid + binary_cross_entropy for
one output).  ``--grid full`` runs every size, both dtypes and relu, sigmoid,
tanh.

Usage
-----
From the repository root::

    python -m benchmarks.speed                       # both scenarios, about 3 min
    python -m benchmarks.speed --scenarios quiet --quick
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.speed
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.environment import competitor, print_environment
from manual_bp import DNN, network, threads

SIZES: dict[str, tuple[list[int], int]] = {
    "tiny": ([2, 3, 3, 1], 8),
    "small": ([2, 16, 16, 2], 64),
    "medium": ([64, 128, 128, 10], 256),
    "large": ([784, 512, 512, 10], 512),
    "very_large": ([784, 1024, 1024, 10], 1024),
}
# The issue's points: (size, dtype), relu hidden layers.
ISSUE_GRID = [
    ("tiny", "float64"),
    ("small", "float64"),
    ("medium", "float64"),
    ("large", "float64"),
    ("very_large", "float32"),
]
LARGE_SIZES = ("large", "very_large")
DTYPES = ("float32", "float64")
HIDDEN = ("relu", "sigmoid", "tanh")
SCENARIOS = ("quiet", "competing")
# Goals: manual/jax_jit medians, quiet, default settings.
JIT_GOALS = {"tiny": 1.3, "small": 1.3, "medium": 1.0, "large": 1.0, "very_large": 1.0}


@dataclass(frozen=True)
class Point:
    size: str
    dtype: str
    hidden: str

    @property
    def layer_sizes(self) -> list[int]:
        return SIZES[self.size][0]

    @property
    def m(self) -> int:
        return SIZES[self.size][1]

    @property
    def activations(self) -> tuple[str, ...]:
        output = "sigmoid" if self.layer_sizes[-1] == 1 else "softmax"
        return (self.hidden,) * (len(self.layer_sizes) - 2) + (output,)

    @property
    def loss(self) -> str:
        return "binary_cross_entropy" if self.layer_sizes[-1] == 1 else "cross_entropy"


def make_batch(point: Point, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal ``X`` (n0, m); one-hot columns (or 0/1 labels) ``Y`` (nL, m)."""
    sizes, m = point.layer_sizes, point.m
    X = rng.standard_normal((sizes[0], m)).astype(point.dtype)
    if sizes[-1] == 1:
        Y = rng.integers(0, 2, (1, m)).astype(point.dtype)
    else:
        Y = np.eye(sizes[-1], dtype=point.dtype)[:, rng.integers(0, sizes[-1], m)]
    return X, Y


def roofline(params: dict[str, np.ndarray], X: np.ndarray, depth: int) -> Callable[[], None]:
    """The 3L - 1 matrix products of forward + backward, into preallocated arrays."""
    m = X.shape[1]
    A = {0: X}
    Z, dZ, dW, dA = {}, {}, {}, {}
    rng = np.random.default_rng(1)
    for l in range(1, depth + 1):
        W = params[f"W{l}"]
        Z[l] = np.empty((W.shape[0], m), X.dtype)
        A[l] = rng.standard_normal((W.shape[0], m)).astype(X.dtype)
        dZ[l] = rng.standard_normal((W.shape[0], m)).astype(X.dtype)
        dW[l] = np.empty_like(W)
        dA[l - 1] = np.empty((W.shape[1], m), X.dtype)

    def run() -> None:
        gemms = threads.gemms()  # the thread counts manual_bp's own products get
        try:
            for l in range(1, depth + 1):
                gemms.matmul(params[f"W{l}"], A[l - 1], out=Z[l])
            for l in range(depth, 0, -1):
                gemms.matmul(dZ[l], A[l - 1].T, out=dW[l])
                if l > 1:
                    gemms.matmul(params[f"W{l}"].T, dZ[l], out=dA[l - 1])
        finally:
            gemms.restore()

    return run


class Blas:
    """The BLAS controller, found once, for setting one thread around a sample."""

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController

        pools = ThreadpoolController().select(user_api="blas").lib_controllers
        self.library = pools[0] if pools else None

    def one_thread(self) -> tuple[Callable[[], object], Callable[[], object]]:
        library = self.library
        if library is None:
            return (lambda: None), (lambda: None)
        before = library.get_num_threads()
        return (lambda: library.set_num_threads(1)), (lambda: library.set_num_threads(before))


@dataclass
class Method:
    run: Callable[[], object]
    enter: Callable[[], object] = lambda: None
    leave: Callable[[], object] = lambda: None


def methods(point: Point, blas: Blas) -> dict[str, Method]:
    """The timed methods of one grid point, each already run once (warm)."""
    from manual_bp_reference.jax_setup import jax, jnp

    net = DNN(point.layer_sizes, list(point.activations), point.loss, seed=0, dtype=point.dtype)
    X, Y = make_batch(point, np.random.default_rng(0))
    params, spec = net.params, net.net

    def dnn() -> object:
        out, cache = net.forward(X)
        return net.compute_gradients(out, cache, Y)

    batch = net.prepare(X, Y)

    def core() -> object:
        _, cache = network.forward(params, X, spec)
        return network.backward(cache, Y, spec)

    def objective(params, X, Y):
        return network.batch_loss(params, X, Y, spec, xp=jnp)

    jitted = jax.jit(jax.value_and_grad(objective))
    jparams = {key: jax.device_put(value) for key, value in params.items()}
    jX, jY = jax.device_put(X), jax.device_put(Y)
    one_on, one_off = blas.one_thread()
    policy = {"before": True}

    def policy_off() -> None:
        policy["before"] = threads.set_policy(False)

    timed = {
        "dnn": Method(dnn),
        "dnn_1": Method(dnn, one_on, one_off),
        "dnn_lib": Method(dnn, policy_off, lambda: threads.set_policy(policy["before"])),
        "prepared": Method(batch.compute_gradients),
        "core": Method(core),
        "jit": Method(lambda: jax.block_until_ready(jitted(jparams, jX, jY))),
        "roof": Method(roofline(params, X, spec.depth)),
    }
    for method in timed.values():
        method.enter()
        method.run()
        method.leave()
    return timed


@dataclass(frozen=True)
class Times:
    """Single-call seconds of one method."""

    calls: tuple[float, ...]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.calls)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.calls)


def time_point(
    timed: dict[str, Method], rounds: int, min_sample: float, min_calls: int
) -> dict[str, Times]:
    """Every call of every method, timed alone, in interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in timed}
    per_round = max(1, -(-min_calls // rounds))
    clock = time.perf_counter
    for _ in range(rounds):
        for name, method in timed.items():
            calls = samples[name]
            method.enter()
            try:
                end = clock() + min_sample
                count = 0
                while count < per_round or clock() < end:
                    start = clock()
                    method.run()
                    calls.append(clock() - start)
                    count += 1
            finally:
                method.leave()
    return {name: Times(tuple(values)) for name, values in samples.items()}


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(rows: list[tuple[Point, dict[str, Times]]]) -> str:
    header = (
        "| size | layers, m | dtype | hidden | dnn p50 | dnn p90 | dnn p99 | dnn, 1 thread "
        "| dnn, policy off p50 / p99 | prepared | core | jax jit p50 | jit p90 | jit p99 "
        "| roofline | manual/jax_jit | prepared/jax_jit | manual/roofline | validation | calls |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for point, t in rows:
        dnn, jit = t["dnn"], t["jit"]
        lines.append(
            f"| {point.size} | {point.layer_sizes}, {point.m} | {point.dtype} | {point.hidden} "
            f"| {format_time(dnn.median)} | {format_time(dnn.quantile(0.9))} "
            f"| {format_time(dnn.quantile(0.99))} | {format_time(t['dnn_1'].median)} "
            f"| {format_time(t['dnn_lib'].median)} / {format_time(t['dnn_lib'].quantile(0.99))} "
            f"| {format_time(t['prepared'].median)} | {format_time(t['core'].median)} "
            f"| {format_time(jit.median)} | {format_time(jit.quantile(0.9))} "
            f"| {format_time(jit.quantile(0.99))} | {format_time(t['roof'].median)} "
            f"| {dnn.median / jit.median:.2f} | {t['prepared'].median / jit.median:.2f} "
            f"| {dnn.median / t['roof'].median:.2f} "
            f"| {100 * (dnn.median - t['core'].median) / dnn.median:.0f} % "
            f"| {len(dnn.calls)} |"
        )
    return "\n".join(lines)


def goals(results: dict[str, list[tuple[Point, dict[str, Times]]]]) -> list[str]:
    """The issue's goals, on this run's figures."""
    lines = []
    quiet = results.get("quiet", [])
    for point, t in quiet:
        ratio = t["dnn"].median / t["jit"].median
        goal = JIT_GOALS[point.size]
        lines.append(
            f"quiet, {point.size} {point.dtype} {point.hidden}: manual/jax_jit {ratio:.2f} "
            f"(goal <= {goal}) -> {'met' if ratio <= goal else 'NOT met'}"
        )
        prepared = t["prepared"].median / t["jit"].median
        lines.append(
            f"quiet, {point.size} {point.dtype} {point.hidden}: prepared/jax_jit {prepared:.2f} "
            f"(goal <= {goal}) -> {'met' if prepared <= goal else 'NOT met'}"
        )
    single = {(p.size, p.dtype, p.hidden): t["dnn_1"].median for p, t in quiet}
    for point, t in results.get("competing", []):
        base = single.get((point.size, point.dtype, point.hidden))
        if base is None:
            continue
        median, p99 = t["dnn"].median / base, t["dnn"].quantile(0.99) / base
        verdict = "met" if median <= 1.5 and p99 <= 3 else "NOT met"
        lines.append(
            f"competing, {point.size} {point.dtype} {point.hidden}: median {median:.2f}x, "
            f"p99 {p99:.2f}x the quiet one-thread median {format_time(base)} "
            f"(goals 1.5x, 3x) -> {verdict}"
        )
    return lines


def parse_list(text: str, allowed: tuple[str, ...] | dict, name: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"--{name}: expected a comma-separated subset of {list(allowed)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=["issue", "full"], default="issue")
    parser.add_argument("--sizes", help="subset of the grid's sizes: " + ",".join(SIZES))
    parser.add_argument("--dtypes", help="full grid only: " + ",".join(DTYPES))
    parser.add_argument("--activations", default="relu", help="hidden activations")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="%(default)s")
    parser.add_argument("--rounds", type=int, default=10, help="default %(default)s")
    parser.add_argument("--min-sample", type=float, default=0.05, help="seconds per round")
    parser.add_argument("--min-calls", type=int, default=100, help="calls per method at least")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10 ms, 20 calls")
    args = parser.parse_args(argv)
    hidden = parse_list(args.activations, HIDDEN, "activations")
    scenarios = parse_list(args.scenarios, SCENARIOS, "scenarios")
    if args.grid == "issue":
        grid = [(size, dtype) for size, dtype in ISSUE_GRID]
    else:
        dtypes = parse_list(args.dtypes or ",".join(DTYPES), DTYPES, "dtypes")
        grid = [(size, dtype) for size in SIZES for dtype in dtypes]
    if args.sizes:
        sizes = parse_list(args.sizes, SIZES, "sizes")
        grid = [(size, dtype) for size, dtype in grid if size in sizes]
    rounds, min_sample, min_calls = args.rounds, args.min_sample, args.min_calls
    if args.quick:
        rounds, min_sample, min_calls = 3, 0.01, 20

    blas = Blas()
    points = [Point(size, dtype, name) for size, dtype in grid for name in hidden]
    timed = {point: methods(point, blas) for point in points}
    results: dict[str, list[tuple[Point, dict[str, Times]]]] = {}
    start = time.perf_counter()
    for scenario in scenarios:
        rows = []
        with competitor() if scenario == "competing" else contextlib.nullcontext():
            print_environment(f"\n{scenario}: environment at the start")
            for point in points:
                result = time_point(timed[point], rounds, min_sample, min_calls)
                rows.append((point, result))
                print(
                    f"  {point.size} {point.dtype} {point.hidden}: manual/jax_jit "
                    f"{result['dnn'].median / result['jit'].median:.2f}, prepared/jax_jit "
                    f"{result['prepared'].median / result['jit'].median:.2f}",
                    flush=True,
                )
            load = os.getloadavg()
        results[scenario] = rows
        print(f"\n**{scenario}** (load average at the end {load[0]:.2f} {load[1]:.2f}):\n")
        print(table(rows))
    print()
    print("\n".join(goals(results)))
    print(
        f"\n{rounds} interleaved rounds of >= {min_sample * 1e3:.0f} ms, >= {min_calls} calls "
        f"per method; wall time {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
