"""Targeted search for the worst error/tolerance ratio on the correct code.

The main property calls ``hypothesis.target()`` on each example's worst
``|manual - oracle| / tolerance``; Hypothesis then mutates the highest-scoring
examples to push the score up, toward the worst-conditioned networks.  This
script runs that property for ``--examples`` examples (the ``thorough``
profile runs 4,000) and prints the highest ratio found and its case.  A
ratio above 1 would be a false alarm.

    python -m benchmarks.target_search --examples 1500
"""

from __future__ import annotations

import argparse
import os
import time

from hypothesis import HealthCheck, Phase, given, settings, target

from manual_bp.cli.progress import progress
from manual_bp_reference.compare import compare
from manual_bp_reference.strategies import networks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (shown only on a terminal)"
    )
    args = parser.parse_args()
    worst = {"ratio": -1.0, "case": None, "report": ""}
    start = time.perf_counter()

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.target],
        suppress_health_check=list(HealthCheck),
    )
    @given(networks())
    def search(case):
        check = compare(case)
        target(min(check.worst_ratio, 1e6), label="error/tolerance")
        if check.worst_ratio > worst["ratio"]:
            worst.update(ratio=check.worst_ratio, case=case, report=check.report())
        bar.advance(1, worst=f"{worst['ratio']:.3g}")

    # A tqdm bar on a terminal (manual_bp.cli.progress); nothing in a log or under --quiet.
    with progress(args.examples, "examples", "example", args.quiet) as bar:
        __import__("hypothesis").seed(args.seed)(search)()
    print(f"{args.examples} examples, {os.cpu_count()} cores, {time.perf_counter() - start:.0f} s")
    print(f"highest error/tolerance: {worst['ratio']:.4g}")
    print(worst["report"])
    print(repr(worst["case"]))


if __name__ == "__main__":
    main()
