"""False alarms of ``check_optimizer(style=...)`` on correct code in each style.

Each rule of ``benchmarks/cs231n_optim.py`` (sgd, sgd_momentum, rmsprop,
adam; ``style="cs231n"``) and each update function of
``benchmarks/course_optim.py`` (gradient descent, momentum, Adam;
``style="course"``) is checked with ``--examples`` drawn cases, from ``init`` and from warm
states (so the rule's own ``config.setdefault`` state and a long-running
state are both read back), float64 and float32, seeded.  A failing check is
a false alarm: the rules are correct.  The momentum rule's state is
converted (``velocity = -learning_rate * m``), which rounds once more on the
way in and out: this measures whether the step tolerance covers it.

Usage::

    python -m benchmarks.optimizer_styles [--examples 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.environment import print_environment
from manual_bp.optimizers import SGD, Adam, Momentum, RMSProp
from manual_bp_reference.optimizer_check import OptimizerMismatch, check_optimizer
from manual_bp_reference.settings import Settings

HERE = Path(__file__).resolve().parent
# (style, file, function name, the optimizer it implements)
CODE = [
    ("cs231n", "cs231n_optim.py", "sgd", SGD(1e-2)),
    ("cs231n", "cs231n_optim.py", "sgd_momentum", Momentum(1e-2, 0.9)),
    ("cs231n", "cs231n_optim.py", "rmsprop", RMSProp(1e-2, decay=0.99, eps_in_sqrt=False)),
    ("cs231n", "cs231n_optim.py", "adam", Adam(1e-3)),
    ("course", "course_optim.py", "update_parameters_with_gd", SGD(1e-2)),
    ("course", "course_optim.py", "update_parameters_with_momentum",
     Momentum(1e-2, 0.9, dampening=0.9)),
    ("course", "course_optim.py", "update_parameters_with_adam", Adam(1e-2)),
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400, help="per function, start and dtype")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print_environment("optimizer code in its authors' styles")
    total = alarms = 0
    started = time.perf_counter()
    print("| style | function | start | dtype | examples | steps | false alarms | worst err/tol |")
    print("|---|---|---|---|---|---|---|---|")
    for style, file, name, optimizer in CODE:
        for warm in (False, True):
            for dtype in ("float64", "float32"):
                try:
                    report = check_optimizer(
                        f"{HERE / file}:{name}",
                        optimizer,
                        style=style,
                        warm_start=warm,
                        settings=Settings(dtype=dtype, max_examples=args.examples, seed=args.seed),
                    )
                    row = (report.examples, report.steps, 0, f"{report.worst:.3g}")
                except OptimizerMismatch as mismatch:
                    print(mismatch, file=sys.stderr)
                    row = ("-", "-", 1, "-")
                total += row[0] if isinstance(row[0], int) else 0
                alarms += row[2]
                start = "warm" if warm else "init"
                cells = [style, name, start, dtype, *map(str, row)]
                print("| " + " | ".join(cells) + " |")
    print(f"\n{total} examples, {alarms} false alarms ({time.perf_counter() - started:.0f} s)")
    return 1 if alarms else 0


if __name__ == "__main__":
    sys.exit(main())
