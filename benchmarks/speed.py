"""Speed of the hand-written backward pass against jax and the matrix-product roofline.

What it times (one process, side by side, every method once per round)
----------------------------------------------------------------------
``dnn``
    The user-facing path: ``DNN.forward(X)`` then ``DNN.compute_gradients(out,
    cache, Y)``, input checks included.  Every ``manual`` ratio uses this.
``core``
    The functional core alone: ``network.forward`` then ``network.backward``
    (no input checks).  ``dnn - core`` is what validation costs.
``fwd``
    ``DNN.forward(X)`` alone; ``vg/fwd = dnn / fwd``.
``jit``
    ``jax.jit(jax.value_and_grad(batch_loss))`` of the very same forward
    (``manual_bp.network.batch_loss`` with ``xp=jax.numpy``), gradients of
    every ``Wl`` and ``Bl``, warm (compiled before timing), inputs already on
    the device, ``block_until_ready`` on the result.
``grad``
    The same without ``jax.jit``: un-jitted ``jax.value_and_grad``, warm (its
    per-primitive compilations done before timing).  Slow: fewer repeats.
``roof``
    The roofline: only the 3L - 1 matrix products the algorithm needs
    (``Zl = Wl A(l-1)``, ``dWl = dZl A(l-1)^T``, ``dA(l-1) = Wl^T dZl`` for
    l >= 2), with ``out=`` into preallocated arrays, in the same layouts
    (transposed operands are views, as in ``network.backward``).

Each method is timed ``--repeats`` times in interleaved rounds (so that the
machine's noise hits every method alike); each sample runs the method enough
times in a row to last at least ``--min-sample`` seconds and is divided by
that count.  The table gives medians.

Grid: hidden layers of one activation (relu, sigmoid, tanh); the output layer
is the canonical pair, softmax + cross_entropy (sigmoid +
binary_cross_entropy when n_L = 1, the seed's tiny network), whose output
gradient is the fused ``(A_L - Y) / m``.

Usage
-----
From the repository root::

    python -m benchmarks.speed                        # the whole grid, a few minutes
    python -m benchmarks.speed --sizes tiny,small --quick
    python -m benchmarks.speed --sizes large --dtypes float64 --activations relu
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from manual_bp import DNN, network

SIZES: dict[str, tuple[list[int], int]] = {
    "tiny": ([2, 3, 3, 1], 8),
    "small": ([2, 16, 16, 2], 64),
    "medium": ([64, 128, 128, 10], 256),
    "large": ([784, 512, 512, 10], 512),
    "very_large": ([784, 1024, 1024, 10], 1024),
}
LARGE_SIZES = ("large", "very_large")
DTYPES = ("float32", "float64")
HIDDEN = ("relu", "sigmoid", "tanh")
METHODS = ("dnn", "core", "fwd", "jit", "grad", "roof")


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
        for l in range(1, depth + 1):
            np.matmul(params[f"W{l}"], A[l - 1], out=Z[l])
        for l in range(depth, 0, -1):
            np.matmul(dZ[l], A[l - 1].T, out=dW[l])
            if l > 1:
                np.matmul(params[f"W{l}"].T, dZ[l], out=dA[l - 1])

    return run


def methods(point: Point, include_grad: bool) -> dict[str, Callable[[], object]]:
    """The timed callables of one grid point, each already run once (warm)."""
    # Here, so that --threads can configure XLA before jax starts.
    from reference.jax_setup import jax, jnp

    net = DNN(point.layer_sizes, list(point.activations), point.loss, seed=0, dtype=point.dtype)
    X, Y = make_batch(point, np.random.default_rng(0))
    params, activations, loss = net.params, point.activations, point.loss

    def dnn() -> object:
        out, cache = net.forward(X)
        return net.compute_gradients(out, cache, Y)

    def core() -> object:
        _, cache = network.forward(params, X, activations)
        return network.backward(cache, Y, activations, loss)

    def forward_only() -> object:
        return net.forward(X)

    def objective(params, X, Y):
        return network.batch_loss(params, X, Y, activations, loss, xp=jnp)

    jitted = jax.jit(jax.value_and_grad(objective))
    unjitted = jax.value_and_grad(objective)
    jparams = {key: jax.device_put(value) for key, value in params.items()}
    jX, jY = jax.device_put(X), jax.device_put(Y)

    timed = {
        "dnn": dnn,
        "core": core,
        "fwd": forward_only,
        "jit": lambda: jax.block_until_ready(jitted(jparams, jX, jY)),
        "grad": lambda: jax.block_until_ready(unjitted(jparams, jX, jY)),
        "roof": roofline(params, X, len(activations)),
    }
    if not include_grad:
        del timed["grad"]
    for run in timed.values():
        run()
    return timed


def calls_per_sample(run: Callable[[], object], min_sample: float) -> int:
    """How many calls in a row last at least ``min_sample`` seconds."""
    start = time.perf_counter()
    run()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(np.ceil(min_sample / once)))


def time_point(
    timed: dict[str, Callable[[], object]], repeats: int, grad_repeats: int, min_sample: float
) -> dict[str, float]:
    """Median seconds per call of every method, over interleaved rounds."""
    counts = {name: calls_per_sample(run, min_sample) for name, run in timed.items()}
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for round_ in range(repeats):
        for name, run in timed.items():
            if name == "grad" and round_ >= grad_repeats:
                continue
            count = counts[name]
            start = time.perf_counter()
            for _ in range(count):
                run()
            samples[name].append((time.perf_counter() - start) / count)
    return {name: statistics.median(values) for name, values in samples.items()}


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def machine_lines() -> list[str]:
    """Cores and the BLAS numpy uses (threadpoolctl)."""
    import jax
    from threadpoolctl import threadpool_info

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"cores: os.cpu_count() = {os.cpu_count()}, usable (sched_getaffinity) = {cores}, "
        f"load average now {os.getloadavg()[0]:.2f}",
        f"numpy {np.__version__}, jax {jax.__version__}, python {sys.version.split()[0]}",
    ]
    for pool in threadpool_info():
        lines.append(
            f"{pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
            f"({pool.get('architecture')}, {pool.get('threading_layer')}, "
            f"{pool['num_threads']} threads)"
        )
    return lines


def table(rows: list[tuple[Point, dict[str, float]]]) -> str:
    header = (
        "| size | layers, m | dtype | hidden | dnn (vg) | core | fwd | jax jit | jax grad "
        "| roofline | manual/jax_jit | manual/roofline | roofline/jax_jit | vg/fwd | validation |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for point, t in rows:
        grad = format_time(t["grad"]) if "grad" in t else "–"
        lines.append(
            f"| {point.size} | {point.layer_sizes}, {point.m} | {point.dtype} | {point.hidden} "
            f"| {format_time(t['dnn'])} | {format_time(t['core'])} | {format_time(t['fwd'])} "
            f"| {format_time(t['jit'])} | {grad} | {format_time(t['roof'])} "
            f"| {t['dnn'] / t['jit']:.2f} | {t['dnn'] / t['roof']:.2f} "
            f"| {t['roof'] / t['jit']:.2f} "
            f"| {t['dnn'] / t['fwd']:.2f} | {100 * (t['dnn'] - t['core']) / t['dnn']:.0f} % |"
        )
    return "\n".join(lines)


def goals(rows: list[tuple[Point, dict[str, float]]]) -> list[str]:
    """The issue's two goals, checked on this run's medians."""
    vs_jit = [(t["dnn"] / t["jit"], p) for p, t in rows]
    worst_jit, where_jit = max(vs_jit, key=lambda r: r[0])
    lines = [
        f"manual/jax_jit <= 1.0 at every point: worst {worst_jit:.2f} "
        f"({where_jit.size}, {where_jit.dtype}, {where_jit.hidden}) -> "
        f"{'met' if worst_jit <= 1.0 else 'NOT met'}"
    ]
    large = [(t["dnn"] / t["roof"], p) for p, t in rows if p.size in LARGE_SIZES]
    if large:
        worst_roof, where_roof = max(large, key=lambda r: r[0])
        lines.append(
            f"manual/roofline <= 1.15 at the large sizes: worst {worst_roof:.2f} "
            f"({where_roof.size}, {where_roof.dtype}, {where_roof.hidden}) -> "
            f"{'met' if worst_roof <= 1.15 else 'NOT met'}"
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
    parser.add_argument("--sizes", default=",".join(SIZES), help="default: all of %(default)s")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="default: %(default)s")
    parser.add_argument(
        "--activations", default=",".join(HIDDEN), help="hidden activations (default %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=15, help="rounds per point (default 15)")
    parser.add_argument(
        "--min-sample", type=float, default=0.02, help="seconds per sample (default 0.02)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 rounds of >= 5 ms, un-jitted jax.grad skipped"
    )
    parser.add_argument("--no-grad", action="store_true", help="skip un-jitted jax.grad")
    parser.add_argument(
        "--single-thread",
        action="store_true",
        help="pin the process to one core, numpy's BLAS (threadpoolctl) and XLA's Eigen to one "
        "thread: stable figures on a machine other processes share (default: every core)",
    )
    args = parser.parse_args(argv)
    if args.single_thread:
        # Before jax starts: XLA reads its flags once.
        flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = flags.strip()
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sizes = parse_list(args.sizes, SIZES, "sizes")
    dtypes = parse_list(args.dtypes, DTYPES, "dtypes")
    hidden = parse_list(args.activations, HIDDEN, "activations")
    repeats, min_sample, include_grad = args.repeats, args.min_sample, not args.no_grad
    if args.quick:
        repeats, min_sample, include_grad = 5, 0.005, False

    print("\n".join(machine_lines()), flush=True)
    rows = []
    start = time.perf_counter()
    for size in sizes:
        for dtype in dtypes:
            for name in hidden:
                point = Point(size, dtype, name)
                grad_repeats = 3 if size in LARGE_SIZES else repeats
                timed = methods(point, include_grad)
                result = time_point(timed, repeats, grad_repeats, min_sample)
                rows.append((point, result))
                print(
                    f"  {size} {dtype} {name}: manual/jax_jit "
                    f"{result['dnn'] / result['jit']:.2f}, manual/roofline "
                    f"{result['dnn'] / result['roof']:.2f}",
                    flush=True,
                )
    print()
    print(table(rows))
    print()
    print("\n".join(goals(rows)))
    print(
        f"\n{repeats} interleaved rounds per point (un-jitted jax.grad: "
        f"{'skipped' if not include_grad else '3 at the large sizes'}), samples of >= "
        f"{min_sample * 1e3:.0f} ms; wall time {time.perf_counter() - start:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f} (when above the core count, other "
        "processes compete: OpenBLAS threads then wait for each other far longer than XLA's)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
