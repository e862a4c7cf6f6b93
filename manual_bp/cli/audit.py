"""``manual-bp audit``: being written (issue 5)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    raise ValueError("'audit' is not written yet")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="(not written yet)")
    parser.set_defaults(handler=run)
