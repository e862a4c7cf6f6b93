"""``manual-bp compare``: being written (issue 5)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    raise ValueError("'compare' is not written yet")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compare", help="(not written yet)")
    parser.set_defaults(handler=run)
