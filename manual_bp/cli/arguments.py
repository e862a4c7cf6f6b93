"""Arguments that several commands share, parsed the same way everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path("manual-bp-out")


def int_list(text: str) -> list[int]:
    """``"2,3,3,1"`` -> ``[2, 3, 3, 1]`` (an argparse ``type``)."""
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 2,3,3,1, got {text!r}"
        ) from None


def name_list(text: str) -> list[str]:
    """``"relu,relu,sigmoid"`` -> ``["relu", "relu", "sigmoid"]``; one name is
    repeated by the caller for every layer."""
    names = [item.strip() for item in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """Keep the examples in an epilog as written."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the files written (default: ./{DEFAULT_OUT})",
    )
