"""Where more BLAS threads pay: one product at 1 thread and at every core, side by side.

For square products ``n x n`` times ``n x n`` (``work = n^3`` multiply-adds)
and the products of the speed grid's networks, in float64 and float32, the
script times single calls at one thread and at the usable core count, in
interleaved rounds, and prints median and p90 of each and their ratio.  The
crossover is the smallest ``work`` from which every larger product ran faster
(median) on all cores; ``manual_bp.threads.MULTI_THREAD_WORK`` holds the value
chosen from these runs (benchmarks/RESULTS.md).

It also measures what the policy itself costs: threadpoolctl's
``get_num_threads`` and ``set_num_threads`` on a cached controller, creating a
controller, and one ``Gemms`` object per pass.

Usage::

    python -m benchmarks.crossover
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.crossover
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit

import numpy as np

from benchmarks.environment import print_environment
from manual_bp import threads

SQUARE = (48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# (m, k, n) of the speed grid's products: Z = W A, dW = dZ A^T, dA = W^T dZ.
NETWORK = (
    (128, 64, 256),
    (128, 128, 256),
    (128, 256, 128),
    (512, 784, 512),
    (512, 512, 512),
    (512, 512, 784),
    (1024, 784, 1024),
    (1024, 1024, 1024),
)


def policy_costs() -> list[str]:
    from threadpoolctl import ThreadpoolController

    start = time.perf_counter()
    controller = ThreadpoolController()
    created = time.perf_counter() - start
    library = controller.select(user_api="blas").lib_controllers[0]
    before = library.get_num_threads()

    def best(statement, number=2000) -> float:
        return min(timeit.repeat(statement, number=number, repeat=20)) / number

    def flip() -> None:
        library.set_num_threads(1)
        library.set_num_threads(before)

    def one_pass() -> None:
        gemms = threads.gemms()
        gemms.restore()

    return [
        f"ThreadpoolController(): {created * 1e3:.2f} ms (once per process)",
        f"get_num_threads: {best(library.get_num_threads) * 1e6:.2f} µs",
        f"set_num_threads(1) then back: {best(flip) * 1e6:.2f} µs",
        f"a pass's Gemms object, nothing to change: {best(one_pass) * 1e6:.2f} µs",
    ]


def time_product(m: int, k: int, n: int, dtype: str, counts: tuple[int, ...], rounds: int):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    from threadpoolctl import ThreadpoolController

    library = ThreadpoolController().select(user_api="blas").lib_controllers[0]
    before = library.get_num_threads()
    samples: dict[int, list[float]] = {count: [] for count in counts}
    calls = max(3, min(200, int(2e8 / (m * k * n))))
    try:
        for _ in range(rounds):
            for count in counts:
                library.set_num_threads(count)
                np.matmul(A, B, out=out)  # wake the threads
                for _ in range(calls):
                    start = time.perf_counter()
                    np.matmul(A, B, out=out)
                    samples[count].append(time.perf_counter() - start)
    finally:
        library.set_num_threads(before)
    return samples


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args(argv)
    cores = threads.usable_cores()
    counts = (1, cores)
    print_environment()
    print("\n".join(policy_costs()))
    shapes = sorted({(n, n, n) for n in SQUARE} | set(NETWORK), key=lambda s: s[0] * s[1] * s[2])
    for dtype in args.dtypes.split(","):
        print(
            "\n| dtype | m, k, n | work m k n | 1 thread p50 | p90 "
            f"| {cores} threads p50 | p90 | ratio p50 |\n|---|---|---|---|---|---|---|---|"
        )
        rows = []
        for m, k, n in shapes:
            samples = time_product(m, k, n, dtype, counts, args.rounds)
            one, many = samples[1], samples[cores]
            ratio = statistics.median(many) / statistics.median(one)
            rows.append((m * k * n, ratio))
            print(
                f"| {dtype} | {m}, {k}, {n} | {m * k * n:.2e} "
                f"| {statistics.median(one) * 1e6:.0f} µs | {quantile(one, 0.9) * 1e6:.0f} µs "
                f"| {statistics.median(many) * 1e6:.0f} µs | {quantile(many, 0.9) * 1e6:.0f} µs "
                f"| {ratio:.2f} |",
                flush=True,
            )
        crossover = None
        for index in range(len(rows)):
            if all(ratio < 1.0 for _, ratio in rows[index:]):
                crossover = rows[index][0]
                break
        print(
            f"\n{dtype}: more threads faster from work = {crossover:.3g} on"
            if crossover
            else f"\n{dtype}: more threads never faster throughout the largest sizes"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
