"""``manual-bp campaign``: many seeded verification examples on Dask.

Runs ``--examples`` examples of ``reference.draws`` through the oracle
comparison (``reference.campaign``) in chunks of ``--chunk-size``, on a local
Dask cluster of one single-threaded worker process per core, or on the
cluster of ``--scheduler``.  Writes ``<out>.json`` (totals, worst cases,
throughput), ``<out>.png`` (the err/tol histograms) and
``<out>.manifest.jsonl`` (finished chunks: ``--resume`` continues from it).
Failing examples go into a Hypothesis example database (``--database``).
It needs the ``oracle``, ``plots`` and ``campaign`` extras.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from manual_bp.cli.arguments import help_formatter, positive_int

EXAMPLES = """\
examples:
  manual-bp campaign --examples 100000                  # local cluster, one worker per core
  manual-bp campaign --examples 1000000 --out big --resume   # continue after a crash
  manual-bp campaign --scheduler tcp://10.0.0.5:8786 --database redis://10.0.0.5:6379
  manual-bp campaign --target mymodule:my_backprop --examples 2000

A --target function is called as backprop(params, X, Y, activations, loss) and
returns grads with W1..WL, B1..BL (and any Zl, Al to compare too).
Replay example i of seed s:  python -c "from reference.campaign import run_example;
  print(run_example(s, i))"
Exit status: 0 if every example passed, 1 if any failed, 2 on bad arguments.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "campaign",
        help="many seeded examples on Dask: totals, histograms, worst cases",
        description=__doc__.split("\n\n")[1],
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    parser.add_argument(
        "--examples",
        type=positive_int,
        default=10_000,
        help="how many examples (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the campaign's seed (default: %(default)s)"
    )
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=500,
        help="examples per Dask task (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="worker processes of the local cluster (default: one per core)",
    )
    parser.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of an existing Dask scheduler (default: a local cluster)",
    )
    parser.add_argument(
        "--database",
        help="where failures go: redis://HOST:PORT (with the local directory) or a "
        "directory (default: .hypothesis/examples)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("campaign"), help="output stem (default: campaign)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run at --out (default: start a new one)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: summarise the chunks that --out's manifest holds (default: run)",
    )
    parser.add_argument(
        "--target",
        default="manual_bp",
        help="manual_bp or module:function, a user's backprop (default: %(default)s)",
    )
    parser.add_argument("--max-depth", type=positive_int, help="largest depth drawn (default: 6)")
    parser.add_argument(
        "--max-width", type=positive_int, help="largest layer width drawn (default: 32)"
    )
    parser.add_argument("--max-batch", type=positive_int, help="largest batch drawn (default: 64)")
    parser.set_defaults(handler=run)


def _limits(args: argparse.Namespace):
    from reference.draws import DEFAULT_LIMITS, Limits

    return Limits(
        args.max_depth or DEFAULT_LIMITS.depth,
        args.max_width or DEFAULT_LIMITS.width,
        args.max_batch or DEFAULT_LIMITS.batch,
    )


def _rate(value: float) -> str:
    return f"{value:,.1f}" if math.isfinite(value) else "-"


def run(args: argparse.Namespace) -> int:
    if args.scheduler is not None and args.workers is not None:
        raise ValueError("--workers: a local cluster's size; not with --scheduler")
    from reference import campaign

    if args.seed < 0:
        raise ValueError(f"--seed: expected a non-negative int, got {args.seed}")
    manifest = campaign.paths(args.out)["manifest"]
    if manifest.exists() and not (args.resume or args.report_only):
        raise ValueError(f"--out: {manifest} exists; pass --resume to continue that campaign")
    try:  # reference.campaign names its arguments; here they are flags
        campaign.load_target(args.target)
        config = campaign.Config(
            args.examples, args.seed, args.chunk_size, args.target, _limits(args)
        )
        database = campaign.example_database(args.database)
        summary = campaign.run_campaign(
            config,
            args.out,
            scheduler=args.scheduler,
            workers=args.workers,
            database=database,
            resume=args.resume,
            report_only=args.report_only,
        )
    except ValueError as error:
        raise ValueError(f"--{str(error).replace('_', '-')}") from None
    totals, speed = summary["totals"], summary["throughput"]
    by_dtype = ", ".join(f"{n} {dtype}" for dtype, n in totals["examples_by_dtype"].items())
    of = "" if summary["complete"] else f" (partial: {totals['chunks']} of {config.chunks} chunks)"
    print(f"examples: {totals['examples']} ({by_dtype}), failures: {totals['failures']}{of}")
    undecided = sum(totals.get("undecided_by_dtype", {}).values())
    if undecided:
        print(
            f"undecided: {undecided} examples had entries whose tolerance reaches the gradient's "
            "scale (their forward rounds too much to decide; counted as passing)"
        )
    for entry in totals["worst"][:5]:
        print(
            f"  err/tol {entry['ratio']:.3g} in {entry['key']}: example {entry['index']} "
            f"({entry['dtype']}, {entry['network']})"
        )
    for message in totals["errors"][:3]:
        print(f"  raised: {message}")
    if not args.report_only:
        print(
            f"this session: {speed['examples']} examples in {speed['wall_seconds']:.1f} s wall, "
            f"{_rate(speed['examples_per_second'])} examples/s"
        )
    for name, worker in speed["workers"].items():
        print(
            f"  {name}: {worker['examples']} examples, "
            f"{_rate(worker['examples_per_second'])} examples/s busy, "
            f"{worker['buckets']} oracle buckets compiled"
        )
    if totals["failures"] and not args.report_only:
        print(f"failures saved to the database under key {summary['database_key'][:16]}...")
    files = summary["files"]
    print(f"wrote {files['summary']}, {files['plot']}, {files['manifest']}", file=sys.stderr)
    return 1 if totals["failures"] else 0
