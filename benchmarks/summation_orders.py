"""False alarms of ``check_gradients`` on correct code that adds up in other orders.

For every order of ``benchmarks.rounding_variants`` and both dtypes, runs
``check_gradients`` with ``--examples`` examples on architectures that mix
relu and leaky_relu hidden layers with smooth ones, and prints how many
examples passed, the worst error/tolerance and the time.  A false alarm
prints the mismatch (it stops that order's run).

    python -m benchmarks.summation_orders --examples 10000
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.rounding_variants import ORDERS, make_backprop
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.settings import Settings

ARCHITECTURES = [
    ([3, 6, 5, 4, 3], ["tanh", "relu", "leaky_relu", "softmax"], "cross_entropy"),
    ([2, 5, 4, 1], ["relu", "sigmoid", "sigmoid"], "binary_cross_entropy"),
    ([4, 8, 3, 2], ["leaky_relu", "relu", "identity"], "mse"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="per order and dtype")
    parser.add_argument("--orders", nargs="*", default=list(ORDERS), choices=ORDERS)
    parser.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, examples per order and dtype: {args.examples}")
    per_architecture = -(-args.examples // len(ARCHITECTURES))
    for order in args.orders:
        for dtype in args.dtypes:
            start, passed, worst, alarm = time.perf_counter(), 0, 0.0, ""
            for sizes, activations, loss in ARCHITECTURES:
                layout = "rows" if order == "rows as samples" else "columns"
                try:
                    report = check_gradients(
                        make_backprop(order, activations),
                        sizes,
                        activations,
                        loss,
                        conventions=Conventions(layout=layout),
                        settings=Settings(dtype=dtype, max_examples=per_architecture),
                    )
                except GradientMismatch as mismatch:
                    alarm = str(mismatch)
                    break
                passed += report.examples
                worst = max(worst, *report.worst.values())
            seconds = time.perf_counter() - start
            verdict = "FALSE ALARM" if alarm else "no false alarm"
            print(
                f"{order:<18} {dtype:<8} {passed:>6} examples passed, worst err/tol "
                f"{worst:.3g}, {seconds:.0f} s: {verdict}",
                flush=True,
            )
            if alarm:
                print(alarm)


if __name__ == "__main__":
    main()
