"""``manual-bp audit``: sweep depth, width and dtype; CSV and plot.

For every (activation, depth, width, dtype) a seeded network with ``depth``
hidden layers of ``width`` units (4 inputs, a 2-class softmax output,
cross-entropy) computes its gradients by hand on a seeded batch, and every
gradient is compared with ``jax.grad`` in float64 (``manual_bp_reference.sweep``, which
uses the tolerances of ``manual_bp_reference.compare``).  The command writes
``audit.csv`` and ``audit.png`` into ``--out`` and prints a summary table.
It needs the ``oracle`` (jax) and ``plots`` (matplotlib) extras.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from manual_bp.cli.arguments import (
    activation_list,
    add_out_argument,
    add_quiet_argument,
    dtype_list,
    help_formatter,
    non_negative_int,
    output_folder,
    positive_int,
    positive_int_list,
)
from manual_bp.cli.extras import require
from manual_bp.cli.progress import progress

EXAMPLES = """\
examples:
  manual-bp audit                                   # the default sweep, 24 configurations
  manual-bp audit --depths 1,2,4,8,16 --widths 4,64 --repeats 5
  manual-bp audit --activations tanh,relu,gelu --dtypes float32 --out audit-run

Columns of audit.csv (one row per configuration, the worst over --repeats seeds):
  depth, width, dtype, activation, batch,
  max_abs_error  max |manual - oracle| over every entry of every gradient,
  max_rel_error  max over the gradients of max |manual - oracle| / max |oracle|,
  worst_ratio    max |manual - oracle| / tolerance (<= 1: ok), ok.
audit.png: max_rel_error against depth (left) and width (right), log scale;
an error of exactly 0 is marked at the bottom of its panel.  A progress bar
goes to stderr when it is a terminal (not with --quiet).
Exit status: 0 if every configuration matched, 1 if not, 2 on bad arguments.
"""


def write_csv(path: Path, rows: Sequence) -> Path:
    """``audit.csv``: the header ``CSV_COLUMNS``, then one line per row."""
    from manual_bp_reference.sweep import CSV_COLUMNS

    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(row.csv_values() for row in rows)
    return path


def summary_table(rows: Sequence) -> str:
    """The rows as an aligned text table, errors to three significant digits."""
    lines = [
        f"{'depth':>5} {'width':>5} {'dtype':<7} {'activation':<10} {'batch':>5} "
        f"{'max abs err':>11} {'max rel err':>11} {'err/tol':>9}  ok"
    ]
    for row in rows:
        lines.append(
            f"{row.depth:>5} {row.width:>5} {row.dtype:<7} {row.activation:<10} {row.batch:>5} "
            f"{row.max_abs_error:>11.2e} {row.max_rel_error:>11.2e} {row.worst_ratio:>9.2e}  "
            f"{'yes' if row.ok else 'NO'}"
        )
    return "\n".join(lines)


def audit(args: argparse.Namespace) -> int:
    # The arguments are checked by their argparse types, before anything is imported.
    plots = require("plots", "manual_bp.cli.plots", "audit")
    sweep = require("oracle", "manual_bp_reference.sweep", "audit").sweep
    output_folder(args.out)  # before the sweep: a folder that cannot be made is an error
    total = len(args.depths) * len(args.widths) * len(args.dtypes) * len(args.activations)
    try:
        with progress(total, "configurations", "config", args.quiet) as bar:
            rows = sweep(
                args.depths,
                args.widths,
                args.dtypes,
                args.activations,
                args.batch,
                seed=args.seed,
                repeats=args.repeats,
                callback=lambda row: bar.advance(1),
            )
    except (TypeError, ValueError) as error:
        # sweep's messages start with its parameter's name, the flag without "--".
        raise type(error)(f"--{error}") from None
    print(summary_table(rows))
    for path in (
        write_csv(args.out / "audit.csv", rows),
        plots.save(plots.audit_figure(rows), args.out / "audit.png"),
    ):
        print(f"wrote {path}")
    failed = [row for row in rows if not row.ok]
    print(
        f"all {len(rows)} configurations match jax.grad"
        if not failed
        else f"MISMATCH in {len(failed)} of {len(rows)} configurations"
    )
    return 0 if not failed else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "audit",
        help="sweep depth, width and dtype: manual vs jax.grad agreement (CSV, PNG)",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    parser.add_argument(
        "--depths",
        type=positive_int_list,
        default=[1, 2, 4, 8],
        help="hidden layers (default: 1,2,4,8)",
    )
    parser.add_argument(
        "--widths",
        type=positive_int_list,
        default=[2, 8, 32],
        help="units per hidden layer (default: 2,8,32)",
    )
    parser.add_argument(
        "--dtypes",
        type=dtype_list,
        default=["float32", "float64"],
        help="dtypes of the manual computation (default: float32,float64)",
    )
    parser.add_argument(
        "--activations",
        type=activation_list,
        default=["tanh"],
        help="hidden-layer activations, each swept (default: tanh)",
    )
    parser.add_argument(
        "--batch", type=positive_int, default=16, help="m, columns of X (default: 16)"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="seeds per configuration, worst kept (default: 1)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="first seed (default: 0)")
    add_quiet_argument(parser)
    add_out_argument(parser)
    parser.set_defaults(handler=audit)
