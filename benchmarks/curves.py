"""Cost curves: time and peak memory of one forward + backward step against width,
depth and batch size, for manual_bp, jax.jit and the matrix-product roofline;
and the main property's verified networks per second against depth and width.

Sweeps (float64, relu hidden layers, softmax + cross-entropy over 10 outputs)
---------------------------------------------------------------------------
* width ``w``: layers ``[64, w, w, 10]``, batch 256;
* depth ``L``: layers ``[64] + [128] * (L - 1) + [10]``, batch 256;
* batch ``m``: layers ``[64, 128, 128, 10]``.

Time: the median of single calls (``DNN.forward`` + ``compute_gradients``
with default settings; ``jax.jit(value_and_grad)`` warm; the roofline's
3L - 1 products into preallocated arrays, with the thread policy's counts),
methods interleaved.  Peak memory:
manual_bp's is tracemalloc's peak over the step, cache and grads held
(``benchmarks/memory.py``'s ``P``); jax.jit's is XLA's own account of the
compiled step, its temporaries plus outputs (``memory_analysis()``); the
roofline's is the bytes the products write (``Zl``, ``dWl``, ``dA(l-1)``).
The fitted exponent is the slope of log cost against log size over the
upper half of each sweep (the lower half is per-call overhead).

Verified networks per second: the main property (manual gradients against
the oracle, ``manual_bp_reference.compare.compare``, as ``benchmarks/throughput.py`` runs it) run by
Hypothesis on networks of one architecture (``[w] * L + [2]``, tanh hidden,
softmax + cross-entropy, batch <= 32, float32 and float64 drawn), after a
warm-up that compiles the oracle's bucket.

Usage::

    python -m benchmarks.curves                     # about 4 minutes, writes the PNGs
    python -m benchmarks.curves --quick --out /tmp  # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from benchmarks.environment import environment_lines, print_environment
from benchmarks.speed import roofline
from manual_bp import DNN, network

SWEEPS: dict[str, tuple[str, list[int]]] = {
    "width": ("hidden width w, layers [64, w, w, 10], m = 256", [16, 32, 64, 128, 256, 512, 1024]),
    "depth": ("layers with weights L, width 128, m = 256", [1, 2, 3, 4, 6, 8, 12, 16]),
    "batch": ("batch size m, layers [64, 128, 128, 10]", [4, 16, 64, 256, 1024, 4096, 16384]),
}
THROUGHPUT: dict[str, tuple[str, list[int]]] = {
    "depth": ("layers with weights L, width 8", [1, 2, 3, 4, 6, 8, 12, 16]),
    # Wider networks are too large for Hypothesis to generate (a byte per entry).
    "width": ("width w, 3 layers", [1, 2, 4, 8, 16, 32]),
}


def architecture(sweep: str, value: int) -> tuple[list[int], int]:
    if sweep == "width":
        return [64, value, value, 10], 256
    if sweep == "depth":
        return [64] + [128] * (value - 1) + [10], 256
    return [64, 128, 128, 10], value


def median_call(run: Callable[[], object], seconds: float, min_calls: int) -> list[float]:
    calls, end = [], time.perf_counter() + seconds
    while len(calls) < min_calls or time.perf_counter() < end:
        start = time.perf_counter()
        run()
        calls.append(time.perf_counter() - start)
    return calls


def measure(sizes: list[int], m: int, seconds: float, rounds: int) -> dict[str, float]:
    from manual_bp_reference.jax_setup import jax, jnp

    depth = len(sizes) - 1
    activations = ["relu"] * (depth - 1) + ["softmax"]
    net = DNN(sizes, activations, "cross_entropy", seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((sizes[0], m))
    Y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], m)]
    params = net.params

    def manual() -> object:
        out, cache = net.forward(X)
        return net.compute_gradients(out, cache, Y)

    def objective(params, X, Y):
        return network.batch_loss(params, X, Y, net.net, xp=jnp)

    jparams = {key: jax.device_put(value) for key, value in params.items()}
    jX, jY = jax.device_put(X), jax.device_put(Y)
    compiled = jax.jit(jax.value_and_grad(objective)).lower(jparams, jX, jY).compile()
    methods = {
        "manual_bp": manual,
        "jax.jit": lambda: jax.block_until_ready(compiled(jparams, jX, jY)),
        "roofline": roofline(params, X, depth),
    }
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for run in methods.values():
        run()
    for _ in range(rounds):
        for name, run in methods.items():
            samples[name] += median_call(run, seconds / rounds, max(1, 9 // rounds))
    result = {f"time {name}": statistics.median(values) for name, values in samples.items()}

    manual()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        kept = manual()
        result["memory manual_bp"] = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    del kept
    stats = compiled.memory_analysis()
    result["memory jax.jit"] = stats.temp_size_in_bytes + stats.output_size_in_bytes
    itemsize = X.dtype.itemsize
    written = 0
    for l in range(1, depth + 1):
        rows, cols = params[f"W{l}"].shape
        written += rows * m + rows * cols + (cols * m if l > 1 else 0)
    result["memory roofline"] = written * itemsize
    return result


def exponent(xs: list[int], ys: list[float]) -> float:
    """Slope of log y against log x over the upper half of the points."""
    half = len(xs) // 2
    slope, _ = np.polyfit(np.log(xs[half:]), np.log(ys[half:]), 1)
    return float(slope)


def verified_per_second(sizes: list[int], examples: int) -> float:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from manual_bp import Net
    from manual_bp_reference.compare import compare
    from manual_bp_reference.strategies import networks

    depth = len(sizes) - 1
    net = st.just(Net.of(sizes, ["tanh"] * (depth - 1) + ["softmax"], "cross_entropy"))
    count = 0

    def run(n: int) -> float:
        nonlocal count

        @settings(
            max_examples=n,
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(networks(max_batch=32, net=net))
        def main_property(case):
            nonlocal count
            count += 1
            check = compare(case, input_gradient=True)
            assert check.ok, check.report()

        count = 0
        start = time.perf_counter()
        main_property()
        return count / (time.perf_counter() - start)

    run(max(5, examples // 5))  # compile the bucket
    return run(examples)


def plot(results: dict, throughput: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(15, 13))
    styles = {"manual_bp": "o-", "jax.jit": "s--", "roofline": "^:"}
    for column, (sweep, (label, xs)) in enumerate(SWEEPS.items()):
        for row, kind in enumerate(["time", "memory"]):
            ax = axes[row][column]
            for name, style in styles.items():
                ys = [results[sweep][x][f"{kind} {name}"] for x in xs]
                scale = 1e3 if kind == "time" else 2.0**-20
                ax.loglog(
                    xs,
                    [y * scale for y in ys],
                    style,
                    label=f"{name} (exponent {exponent(xs, ys):.2f})",
                )
            ax.set_xlabel(label)
            ax.set_ylabel("ms per step (median)" if kind == "time" else "peak MiB")
            ax.set_title(f"{kind} against {sweep}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    for column, (sweep, (label, xs)) in enumerate(THROUGHPUT.items()):
        ax = axes[2][column]
        ys = [throughput[sweep][x] for x in xs]
        ax.loglog(xs, ys, "o-", label="main property, padded oracle")
        ax.set_xlabel(label)
        ax.set_ylabel("verified networks per second")
        ax.set_title(f"verified networks per second against {sweep}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[2][2].axis("off")
    axes[2][2].text(0, 1, "\n".join(_wrap(environment_lines())), va="top", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _wrap(lines: list[str], width: int = 70) -> list[str]:
    import textwrap

    return [part for line in lines for part in textwrap.wrap(line, width)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # docs/: the one copy, which the docs site and benchmarks/RESULTS.md both show.
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
    parser.add_argument("--out", default=docs)
    parser.add_argument("--name", default="cost_curves", help="the PNG's file name, no suffix")
    parser.add_argument("--seconds", type=float, default=0.6, help="per method and point")
    parser.add_argument("--examples", type=int, default=100, help="per throughput point")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    seconds, examples, rounds = args.seconds, args.examples, 3
    if args.quick:
        seconds, examples, rounds = 0.05, 10, 1
    print_environment()
    results: dict[str, dict[int, dict[str, float]]] = {}
    for sweep, (_, xs) in SWEEPS.items():
        results[sweep] = {}
        for x in xs:
            sizes, m = architecture(sweep, x)
            results[sweep][x] = measure(sizes, m, seconds, rounds)
            r = results[sweep][x]
            print(
                f"  {sweep} {x}: manual {r['time manual_bp'] * 1e3:.3f} ms, "
                f"jit {r['time jax.jit'] * 1e3:.3f} ms, "
                f"roofline {r['time roofline'] * 1e3:.3f} ms; "
                f"peak {r['memory manual_bp'] / 2**20:.2f} / {r['memory jax.jit'] / 2**20:.2f} "
                f"/ {r['memory roofline'] / 2**20:.2f} MiB",
                flush=True,
            )
    throughput: dict[str, dict[int, float]] = {}
    for sweep, (_, xs) in THROUGHPUT.items():
        throughput[sweep] = {}
        for x in xs:
            sizes = [8] * x + [2] if sweep == "depth" else [x] * 3 + [2]
            throughput[sweep][x] = verified_per_second(sizes, examples)
            print(f"  verified/s, {sweep} {x}: {throughput[sweep][x]:.1f}", flush=True)
    print("\n| sweep | cost | manual_bp | jax.jit | roofline |\n|---|---|---|---|---|")
    for sweep, (_, xs) in SWEEPS.items():
        for kind in ["time", "memory"]:
            cells = [
                f"{exponent(xs, [results[sweep][x][f'{kind} {name}'] for x in xs]):.2f}"
                for name in ["manual_bp", "jax.jit", "roofline"]
            ]
            print(f"| {sweep} | {kind} | {' | '.join(cells)} |")
    path = os.path.join(args.out, f"{args.name}.png")
    load = os.getloadavg()
    plot(results, throughput, path, f"{args.name}: load average {load[0]:.2f} at the end")
    print(f"\nwrote {path}; load average at the end {load[0]:.2f} {load[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
