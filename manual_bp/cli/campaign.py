"""``manual-bp campaign``: many seeded verification examples on Dask.

Runs ``--examples`` examples of ``manual_bp_reference.draws`` through the oracle
comparison (``manual_bp_reference.campaign``) in chunks of ``--chunk-size``, on a local
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
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from manual_bp.cli.arguments import (
    _naming_the_option,
    add_convention_arguments,
    add_network_arguments,
    add_timeout_argument,
    architecture_from_arguments,
    conventions_from_arguments,
    help_formatter,
    non_negative_int,
    positive_int,
)
from manual_bp.cli.extras import require
from manual_bp.net import Net

EXAMPLES = """\
examples:
  manual-bp campaign --examples 100000                  # local cluster, one worker per core
  manual-bp campaign --examples 1000000 --out big --resume   # continue after a crash
  manual-bp campaign --scheduler tcp://10.0.0.5:8786 --database redis://10.0.0.5:6379
  manual-bp campaign --target mymodule:my_backprop --examples 2000
  manual-bp campaign --target my_net.py:backprop --layers 2,3,1 --activations tanh,sigmoid
      a student's backprop(params, X, Y), as manual-bp check calls it
  manual-bp campaign --target two_layer.py:loss_grads --layers 4,10,3 \\
      --activations relu,softmax --layout rows --names W1/b1 --targets labels

Without --layers/--activations/--loss every example draws its own architecture,
and a --target function is called as backprop(params, X, Y, activations, loss),
returning grads with W1..WL, B1..BL (and any Zl, Al to compare too), in our
conventions.  With them every example is that one network (the batch size and
values are drawn), and --target is called as manual-bp check calls it,
backprop(params, X, Y), in the conventions of --layout, --names, ... .
Replay example i of the campaign at --out (its network, the err/tol of every
gradient):  manual-bp campaign --out OUT --replay i
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
        "--replay",
        type=non_negative_int,
        metavar="INDEX",
        help="rebuild example INDEX of the campaign at --out and recheck it "
        "(default: run the campaign)",
    )
    parser.add_argument(
        "--target",
        default="manual_bp",
        help="manual_bp, or a user's backprop: FILE.py:NAME or MODULE:NAME (default: %(default)s)",
    )
    add_timeout_argument(parser, "a call of a --target past it fails its example")
    parser.add_argument(
        "--dtype",
        default="both",
        choices=["float64", "float32", "both"],
        help="both: float64 for even examples, float32 for odd (default: %(default)s)",
    )
    parser.add_argument("--max-depth", type=positive_int, help="largest depth drawn (default: 6)")
    parser.add_argument(
        "--max-width", type=positive_int, help="largest layer width drawn (default: 32)"
    )
    parser.add_argument("--max-batch", type=positive_int, help="largest batch drawn (default: 64)")
    group = parser.add_argument_group(
        "one network (default: every example draws its own architecture)"
    )
    add_network_arguments(group)  # a group adds arguments as a parser does
    conventions = parser.add_argument_group(
        "the conventions of a --target on one network (as manual-bp check takes them)"
    )
    add_convention_arguments(conventions)
    # --replay reads everything but --out from the campaign: any other flag is refused.
    defaults = {
        action.dest: action.default
        for action in parser._actions
        if action.dest not in ("help", "out", "replay")
    }
    parser.set_defaults(handler=run, defaults=defaults)


def _network(args: argparse.Namespace):
    """``(network, conventions)`` from the one-network and conventions flags."""
    from manual_bp_reference.conventions import convention_fields

    fields = [f.name for f in convention_fields()]
    given = [f"--{n.replace('_', '-')}" for n in fields if getattr(args, n) is not None]
    if args.layers is None and args.activations is None and args.loss is None:
        if given:
            raise ValueError(
                f"{given[0]}: the conventions of a --target on one network; give the network "
                "(--layers, --activations, --loss)"
            )
        return None, None
    for name in ("max_depth", "max_width"):  # refused, not ignored
        if getattr(args, name) is not None:
            raise ValueError(
                f"--{name.replace('_', '-')}: limits drawn architectures; one network's "
                "sizes are --layers (--max-batch still limits the batch)"
            )
    if given and args.target == "manual_bp":
        raise ValueError(f"{given[0]}: the conventions of a user's --target (manual_bp has ours)")
    dtype = args.dtype
    args.dtype = None  # the architecture's dtype is --dtype's business here
    try:
        sizes, names, loss, _ = architecture_from_arguments(args)
    finally:
        args.dtype = dtype
    if not given:
        return Net.of(sizes, names, loss), None
    conventions = conventions_from_arguments(args)
    try:
        conventions.check_targets(loss, sizes[-1])
    except ValueError as error:
        raise ValueError(f"--targets: {error}") from None
    return Net.of(sizes, names, loss), conventions


def _limits(args: argparse.Namespace):
    from manual_bp_reference.draws import DEFAULT_LIMITS, Limits

    return Limits(
        args.max_depth or DEFAULT_LIMITS.depth,
        args.max_width or DEFAULT_LIMITS.width,
        args.max_batch or DEFAULT_LIMITS.batch,
    )


def _rate(value: float) -> str:
    return f"{value:,.1f}" if math.isfinite(value) else "-"


def _as_flag(error: Exception) -> Exception:
    """``"chunk_size: ..."`` -> ``"--chunk-size: ..."`` (only the name: a file's stays)."""
    named = _naming_the_option(error)
    if named is not error:
        return named
    argument, colon, rest = str(error).partition(":")
    flag = {"index": "replay"}.get(argument, argument)  # replay(out, index) is --replay
    return type(error)(f"--{flag.replace('_', '-')}{colon}{rest}")


def _check_call(campaign: ModuleType, config: Any) -> None:
    """A user's target must load and take the arguments its form passes: refused
    up front (where it runs: a child process), not once per example."""
    target = campaign.target_function(config)
    if target is None:
        return
    one_network = config.network is not None
    form = "backprop(params, X, Y)" if one_network else (
        "backprop(params, X, Y, activations, loss)"
    )  # fmt: skip
    signature = target.sandbox.binds("target", 3 if one_network else 5)
    if signature is not None:
        hint = (
            "drop --layers/--activations/--loss for the five-argument form on drawn networks"
            if one_network
            else "give its network with --layers, --activations, --loss for check's form"
        )
        name = config.target.rpartition(":")[2]
        raise ValueError(f"target: {name}{signature} cannot be called as {form}; {hint}")


def _replay(args: argparse.Namespace) -> int:
    """``--replay INDEX``: rebuild example INDEX of the campaign at ``--out`` and recheck it."""
    campaign = require("campaign", "manual_bp_reference.campaign", "campaign")

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            example, outcome = campaign.replay(args.out, args.replay)
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    for warning in caught:
        print(f"note: {warning.message}")
    print(example.describe())
    for key, ratio in sorted(outcome.ratios.items(), key=lambda item: -item[1]):
        print(f"  {key}: err/tol {ratio:.3g}")
    if outcome.undecided:
        print(f"  undecided entries: {outcome.undecided}")
    ratio, key = outcome.worst
    print(outcome.error or outcome.details or "", end="")
    print(f"{'pass' if outcome.ok else 'FAIL'}: worst err/tol {ratio:.3g} in {key}")
    return 0 if outcome.ok else 1


def run(args: argparse.Namespace) -> int:
    if args.replay is not None:
        given = [name for name, default in args.defaults.items() if getattr(args, name) != default]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ValueError(f"{flag}: not with --replay (the campaign at --out says how to draw)")
        return _replay(args)
    if args.scheduler is not None and args.workers is not None:
        raise ValueError("--workers: a local cluster's size; not with --scheduler")
    campaign = require("campaign", "manual_bp_reference.campaign", "campaign")

    if args.seed < 0:
        raise ValueError(f"--seed: expected a non-negative int, got {args.seed}")
    manifest = campaign.paths(args.out)["manifest"]
    if manifest.exists() and not (args.resume or args.report_only):
        raise ValueError(f"--out: {manifest} exists; pass --resume to continue that campaign")
    network, conventions = _network(args)
    target = args.target
    if target.partition(":")[0].endswith(".py"):  # workers may run elsewhere: an absolute path
        where, _, name = target.rpartition(":")
        target = f"{Path(where).resolve()}:{name}"
    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    try:  # manual_bp_reference.campaign names its arguments; here they are flags
        config = campaign.Config(
            args.examples, args.seed, args.chunk_size, target, _limits(args),
            network, conventions, dtypes, args.timeout,
        )  # fmt: skip
        _check_call(campaign, config)
        database = campaign.example_database(args.database)
        if args.scheduler is not None and args.workers is not None:
            raise ValueError("--workers: give either --workers (a local cluster) or --scheduler")
        summary = campaign.run_campaign(
            config,
            args.out,
            cluster=args.scheduler if args.scheduler is not None else args.workers,
            database=database,
            resume=args.resume,
            report_only=args.report_only,
        )
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
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
