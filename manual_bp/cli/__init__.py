"""Command line: ``manual-bp <command>`` (also ``python -m manual_bp <command>``).

Each command lives in its own module and registers its own sub-parser:

* ``demo``    train the seed's network and check its gradients (``demo.py``)
* ``compare`` manual vs autodiff, one row per variable (``compare.py``)
* ``check``   property-check your own backprop function (``check.py``)
* ``explain`` the backward derivation of a network, layer by layer (``explain.py``)
* ``train``   train on a 2-D data set and plot it (``train.py``)
* ``audit``   sweep depth, width and dtype; CSV and plot (``audit.py``)

The commands that use the oracle import jax lazily (the ``oracle`` extra);
the plots need matplotlib (the ``plots`` extra); ``extras.require`` imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from manual_bp.cli import audit, check, compare, demo, explain, train
from manual_bp.cli.extras import ExtraMissingError

COMMANDS = (demo, compare, check, explain, train, audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manual-bp",
        description="Hand-written backpropagation, checked against jax.grad.",
        epilog="Run 'manual-bp <command> --help' for a command's options and examples.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (TypeError, ValueError, ExtraMissingError) as error:
        print(f"manual-bp {args.command}: error: {error}", file=sys.stderr)
        return 2
