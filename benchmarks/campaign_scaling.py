"""Campaign throughput with 1 and 2 workers, parallel efficiency, and a projection.

For each worker count, a fresh local Dask cluster (one single-threaded
process per worker) first checks a warm-up chunk on every worker, so that
each has imported jax and compiled its padded-oracle buckets, then runs the
same timed campaign (``--examples`` examples of seed ``--seed``).  Printed:
wall time and examples per second, each worker's busy rate, the parallel
efficiency ``rate(2) / (2 rate(1))``, whether the totals were identical, and
the cost of 10^8 examples in core-hours at the one-worker rate.

Usage (from the repository root)::

    python -m benchmarks.campaign_scaling                 # 4000 examples per run
    python -m benchmarks.campaign_scaling --examples 20000 --workers 1,2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from manual_bp_reference.campaign import Config, dask_client, run_campaign, run_chunk

TARGET_EXAMPLES = 1e8


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def measure(workers: int, config: Config, folder: Path) -> dict:
    with dask_client(workers=workers) as client:
        warm = Config(40, seed=config.seed + 1, chunk_size=40, limits=config.limits)
        client.run(run_chunk, warm, 0)  # every worker: jax imported, buckets compiled
        start = time.perf_counter()
        summary = run_campaign(config, folder / f"scaling-{workers}", cluster=client, plot=False)
        summary["measured_wall"] = time.perf_counter() - start
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    config = Config(args.examples, args.seed, args.chunk_size)
    print(f"{args.examples} examples per run, chunks of {args.chunk_size}; {load()}")
    rates, totals = {}, []
    with tempfile.TemporaryDirectory() as folder:
        for workers in counts:
            summary = measure(workers, config, Path(folder))
            wall = summary["measured_wall"]
            rates[workers] = args.examples / wall
            totals.append(summary["totals"])
            print(
                f"{workers} worker(s): {wall:.1f} s wall, {rates[workers]:.1f} examples/s; {load()}"
            )
            for name, worker in summary["throughput"]["workers"].items():
                print(
                    f"  {name}: {worker['examples']} examples, busy "
                    f"{worker['examples_per_second']:.1f} examples/s"
                )
    print(f"totals identical across worker counts: {all(t == totals[0] for t in totals)}")
    base = counts[0]
    for workers in counts[1:]:
        efficiency = rates[workers] / (workers / base * rates[base])
        print(f"parallel efficiency {base} -> {workers} workers: {efficiency:.2f}")
    per_core = rates[base] / base
    core_hours = TARGET_EXAMPLES / per_core / 3600
    print(
        f"one core: {per_core:.1f} examples/s = {1e3 / per_core:.2f} ms per example; "
        f"1e8 examples = {core_hours:,.0f} core-hours"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
