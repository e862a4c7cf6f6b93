"""Command line: ``manual-bp <command>`` (also ``python -m manual_bp <command>``).

Each command lives in its own module and registers its own sub-parser:

* ``demo``    train the seed's network and check its gradients (``demo.py``)
* ``compare`` manual vs autodiff, one row per variable (``compare.py``)
* ``check``   property-check your own backprop function (``check.py``)
* ``explain`` the backward derivation of a network, layer by layer (``explain.py``)
* ``train``   train on a 2-D data set and plot it (``train.py``)
* ``audit``   sweep depth, width and dtype; CSV and plot (``audit.py``)
* ``campaign`` many seeded examples on Dask, resumable (``campaign.py``)
* ``grade``   a class's submissions by a spec: gradebook, Gradescope, HTML (``grade.py``)

The commands that use the oracle import jax lazily (the ``oracle`` extra);
the plots need matplotlib (the ``plots`` extra); ``extras.require`` imports them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from manual_bp.cli import audit, campaign, check, compare, demo, explain, grade, train
from manual_bp.cli.arguments import Parser
from manual_bp.cli.extras import ExtraMissingError

COMMANDS = (demo, compare, check, explain, train, audit, campaign, grade)


def build_parser() -> Parser:
    """The ``manual-bp`` parser; its sub-parsers (one per command) are ``Parser``s too."""
    parser = Parser(
        prog="manual-bp",
        description="Hand-written backpropagation, checked against jax.grad.",
        epilog="Run 'manual-bp <command> --help' for a command's options and examples.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in COMMANDS:
        command.register(commands)
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, Parser]:
    """The sub-parser of each command, by name."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.  Exit status 2, with one line on stderr naming the option,
    for a bad argument and for a resource error (memory, files); else the command's."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        command_parsers(parser)[args.command].unrecognized(extras)
    try:
        return args.handler(args)
    except (TypeError, ValueError, ExtraMissingError) as error:
        print(f"manual-bp {args.command}: error: {error}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout gets JSON too
            print(json.dumps({"verdict": "error", "error": str(error), "exit_status": 2}))
        return 2
    except MemoryError as error:
        print(
            f"manual-bp {args.command}: error: out of memory ({error or type(error).__name__}); "
            "try smaller --layers, --batch or --samples",
            file=sys.stderr,
        )
        return 2
    except OSError as error:  # a disk that is full, a file that cannot be written
        print(f"manual-bp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (a child is stopped with us)
        print(f"manual-bp {args.command}: interrupted", file=sys.stderr)
        return 130
