"""False alarms of ``check_gradients(conventions="auto")`` on correct code as written.

Each correct style of ``benchmarks.real_styles`` (cs231n, the course,
Nielsen, Denny Britz, labels read back with ``argmax``) is checked with
inferred conventions, ``--runs`` times with seeds 0, 1, ... and
``--examples`` drawn cases each.  A false alarm is any verdict but a pass,
or a pass under another declaration than the one the style is written in.
The bounds are ``|W|, |B|, |X| <= 2``: Denny Britz's softmax takes no max
shift, so larger logits overflow (a true "unstable numerics" verdict, not a
false alarm).

Usage::

    python -m benchmarks.inferred_false_alarms [--examples 500] [--runs 4]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.environment import print_environment
from benchmarks.real_styles import STYLES
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="per run (default 500)")
    parser.add_argument("--runs", type=int, default=4, help="seeds per style (default 4)")
    args = parser.parse_args(argv)
    print_environment("inferred conventions, false alarms")
    total, alarms, start = 0, 0, time.perf_counter()
    for name, (backprop, net, conventions, expected) in sorted(STYLES.items()):
        examples, seconds, wrong = 0, time.perf_counter(), []
        for seed in range(args.runs):
            settings = Settings(
                max_examples=args.examples, seed=seed, param_bound=2.0, input_bound=2.0
            )
            try:
                report = check_gradients(backprop, net, conventions=conventions, settings=settings)
            except GradientMismatch as mismatch:
                wrong.append(f"seed {seed}: {mismatch.verdict}")
                continue
            examples += report.examples
            if report.conventions != expected:
                wrong.append(f"seed {seed}: inferred {report.conventions}")
        total += examples
        alarms += len(wrong)
        print(
            f"{name:12} {examples:6} examples in {args.runs} runs, {len(wrong)} false alarms, "
            f"{time.perf_counter() - seconds:6.1f} s {wrong or ''}"
        )
    print(f"total: {total} examples, {alarms} false alarms, {time.perf_counter() - start:.0f} s")
    return 1 if alarms else 0


if __name__ == "__main__":
    raise SystemExit(main())
