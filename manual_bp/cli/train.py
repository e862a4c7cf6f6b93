"""``manual-bp train``: being written (issue 5)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    raise ValueError("'train' is not written yet")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="(not written yet)")
    parser.set_defaults(handler=run)
