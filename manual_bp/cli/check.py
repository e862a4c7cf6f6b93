"""``manual-bp check FILE.py:FUNCTION``: property-check your own backprop.

Loads ``FUNCTION`` from a Python file (or ``package.module:FUNCTION``), a
callable ``backprop(params, X, Y) -> grads``, and runs
``reference.check.check_gradients`` on it with the conventions given as
flags.  Exit 0 on a pass, 1 on a mismatch (or an exception in the user's
code), 2 on bad arguments.  ``--json`` prints the verdict as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

from manual_bp.cli.arguments import (
    _naming_the_option,
    add_network_arguments,
    help_formatter,
    network_from_arguments,
)
from manual_bp.cli.extras import require

EXAMPLES = """\
examples:
  manual-bp check my_net.py:backprop --layers 2,3,1 --activations tanh,sigmoid
      course style: columns as samples, W1/B1, mean over the batch
  manual-bp check two_layer.py:loss_grads --layers 4,10,3 --activations relu,softmax \\
      --layout rows --names W1/b1 --targets labels --l2 0.1
      cs231n style: rows as samples, W (n_in, n_out), b (n,), integer labels, reg 0.1
  manual-bp check nielsen.py:backprop --layers 2,3,1 --container list --reduction sum
      parameters and gradients as lists [W1, B1, W2, B2], summed over the batch
"""


def load_function(spec: str) -> Callable[..., object]:
    """``path/to/file.py:name`` or ``package.module:name`` -> the callable."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(f"FUNCTION: expected FILE.py:NAME or MODULE:NAME, got {spec!r}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"FUNCTION: no file {where!r}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"FUNCTION: {where!r} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.pop(0)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"FUNCTION: cannot import module {where!r} ({error})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"FUNCTION: {where!r} has no function {name!r}")
    return function


def run(args: argparse.Namespace) -> int:
    net = network_from_arguments(args)
    check = require("oracle", "reference.check", "check")
    backprop = load_function(args.function)
    try:
        report = check.check_gradients(
            backprop, net.layer_sizes, net.activations, net.loss_name,
            dtype=args.dtype, max_examples=args.examples, layout=args.layout,
            names=args.names, bias_shape=args.bias_shape, container=args.container,
            targets=args.targets, reduction=args.reduction, l2=args.l2,
            param_bound=args.param_bound, input_bound=args.input_bound,
        )  # fmt: skip
    except (TypeError, ValueError) as error:
        raise _naming_the_option(error) from None
    except check.GradientMismatch as mismatch:
        diagnosis = mismatch.comparison.diagnosis if mismatch.comparison else None
        if args.json:
            print(json.dumps({
                "verdict": mismatch.verdict,
                "bug_class": diagnosis.bug_class if diagnosis else None,
                "first_wrong": diagnosis.key if diagnosis else None,
                "failing": [v.key for v in mismatch.comparison.failures()]
                if mismatch.comparison else [],
                "report": str(mismatch),
            }, indent=2))  # fmt: skip
        else:
            print(mismatch)
        return 1
    if args.json:
        print(json.dumps({
            "verdict": "pass", "examples": report.examples,
            "batch_sizes": sorted(report.batch_sizes), "worst": report.worst,
            "notes": sorted(report.notes), "undecided_examples": report.undecided,
        }, indent=2))  # fmt: skip
    else:
        print(report)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check",
        help="property-check your own backprop function",
        description="Check a hand-written backprop(params, X, Y) -> grads on many drawn "
        "networks of one architecture against jax.grad, in the conventions it uses.",
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    parser.add_argument(
        "function", metavar="FUNCTION", help="FILE.py:NAME or MODULE:NAME (required, no default)"
    )
    add_network_arguments(parser)
    parser.add_argument(
        "--dtype", default="float64", choices=["float64", "float32"], help="default: float64"
    )
    parser.add_argument("--examples", type=int, default=100, help="examples (default: 100)")
    parser.add_argument(
        "--layout", default="columns", choices=["columns", "rows"], help="default: columns"
    )
    parser.add_argument(
        "--names", default="W1/B1", choices=["W1/B1", "W1/b1"], help="default: W1/B1"
    )
    parser.add_argument(
        "--bias-shape", default=None, choices=["column", "flat", "row"],
        help="default: column for columns, flat for rows",
    )  # fmt: skip
    parser.add_argument(
        "--container", default="dict", choices=["dict", "list"], help="default: dict"
    )
    parser.add_argument(
        "--targets", default="soft", choices=["soft", "one_hot", "labels"], help="default: soft"
    )
    parser.add_argument(
        "--reduction", default="mean", choices=["mean", "sum"], help="default: mean"
    )
    parser.add_argument("--l2", type=float, default=0.0, help="L2 strength (default: 0)")
    parser.add_argument(
        "--param-bound", type=float, default=10.0, help="|W|, |B| bound (default: 10)"
    )
    parser.add_argument("--input-bound", type=float, default=100.0, help="|X| bound (default: 100)")
    parser.add_argument(
        "--json", action="store_true", help="print the verdict as JSON (default: text)"
    )
    parser.set_defaults(handler=run)
