"""Walk the shell blocks of README.md and of the documentation pages in order, as a
newcomer would.

    .venv/bin/python tools/walk_readme.py            # the whole walk (about 10 minutes)
    .venv/bin/python tools/walk_readme.py --list     # the commands it would run

The repository's files (``git ls-files``: tracked and new, not ignored; no
``.venv``, no caches) are copied into a fresh temporary folder, and every
command of every ```` ```sh ```` block of the README is run there, in order,
each by a fresh ``bash`` (``set -eo pipefail``) without the caller's
``PYTHONPATH`` or ``VIRTUAL_ENV``: as if pasted into a new shell in a new
clone.  A block right after a line ``<!-- readme-walk: skip (reason) -->``
is long by nature (mutmut, benchmarks) and is listed as skipped.  One line
per command: ``ok`` or ``FAILED`` and the seconds; the output's last lines
on a failure.  Exit status 1 if any command failed.

The walk itself is too slow for CI (it creates a venv and installs the
extras); ``property_tests/test_readme_walk.py`` tests the parsing and the
runner on a small README, and that every command the README shows is
written to run from a clone (``.venv/bin/...``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SKIP = re.compile(r"^<!--\s*readme-walk:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->\s*$")
FENCE = "```"


@dataclass(frozen=True)
class Block:
    """One ```` ```sh ```` block: its first line number, its commands, and why it is skipped."""

    line: int
    commands: tuple[str, ...]
    skip: str | None = None


@dataclass(frozen=True)
class Result:
    command: str
    status: str  # "ok", "FAILED" or "skipped"
    seconds: float = 0.0
    output: str = ""


def commands_of(lines: list[str]) -> list[str]:
    """The commands of a block: ``\\``-continued lines joined; blank lines and
    whole-line comments dropped (a trailing ``# comment`` is left to bash)."""
    commands, pending = [], ""
    for line in lines:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.strip()[:-1].rstrip() + " "
            continue
        commands.append(pending + line.strip())
        pending = ""
    if pending:
        commands.append(pending.strip())
    return commands


def shell_blocks(text: str) -> list[Block]:
    """Every ```` ```sh ```` (or ``bash``, ``shell``) block of a Markdown text, in order."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        line = lines[index]
        if line.strip() in (f"{FENCE}sh", f"{FENCE}bash", f"{FENCE}shell"):
            end = index + 1
            while end < len(lines) and lines[end].strip() != FENCE:
                end += 1
            previous = lines[index - 1] if index else ""
            marker = SKIP.match(previous.strip())
            blocks.append(
                Block(
                    line=index + 1,
                    commands=tuple(commands_of(lines[index + 1 : end])),
                    skip=marker["reason"] if marker else None,
                )
            )
            index = end
        index += 1
    return blocks


def fresh_environment() -> dict[str, str]:
    """The caller's environment without what would leak the caller's Python into the walk."""
    leaks = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"}
    return {key: value for key, value in os.environ.items() if key not in leaks}


def run_command(command: str, folder: Path, timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            ["bash", "-c", f"set -eo pipefail\n{command}"],
            cwd=folder,
            env=fresh_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    return done.returncode == 0, (done.stdout + done.stderr)


def walk(
    blocks: list[Block],
    folder: Path,
    timeout: float = 1800.0,
    report: Callable[[Result], None] = lambda result: None,
) -> list[Result]:
    """Run every command of the blocks that are not skipped, in order, in ``folder``."""
    results = []
    for block in blocks:
        for command in block.commands:
            if block.skip is not None:
                result = Result(command, "skipped", output=block.skip)
            else:
                started = time.perf_counter()
                ok, output = run_command(command, folder, timeout)
                result = Result(
                    command, "ok" if ok else "FAILED", time.perf_counter() - started, output
                )
            results.append(result)
            report(result)
    return results


def copy_repository(source: Path, target: Path) -> None:
    """The files a clone would have (plus new ones not yet committed), without ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        origin = source / name
        if origin.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / name)


def print_result(result: Result) -> None:
    if result.status == "skipped":
        print(f"skipped  {result.command}  ({result.output})", flush=True)
        return
    print(f"{result.status:<8} {result.seconds:7.1f} s  {result.command}", flush=True)
    if result.status != "ok":
        print("\n".join("    " + line for line in result.output.splitlines()[-30:]), flush=True)


def documents(root: Path) -> list[Path]:
    """The README, then every page of the documentation site: all that a reader may run."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks_of(paths: list[Path]) -> list[Block]:
    """The shell blocks of every document, in order."""
    return [block for path in paths for block in shell_blocks(path.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument(
        "--readme",
        type=Path,
        action="append",
        default=None,
        help="a document to walk, repeatable (default: README.md, then docs/*.md)",
    )
    parser.add_argument("--list", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per command (default: 1800)"
    )
    args = parser.parse_args(argv)
    paths = args.readme or documents(root)
    blocks = blocks_of(paths)
    if args.list:
        for block in blocks:
            for command in block.commands:
                print(f"{'skip' if block.skip else 'run '}  {command}")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="readme-walk-"))
    try:
        copy_repository(paths[0].resolve().parent, folder)
        print(f"walking {', '.join(map(str, paths))} in {folder}", flush=True)
        started = time.perf_counter()
        results = walk(blocks, folder, args.timeout, print_result)
        failed = [result for result in results if result.status == "FAILED"]
        ran = sum(result.status != "skipped" for result in results)
        print(
            f"{ran - len(failed)} of {ran} commands ok, {len(results) - ran} skipped, "
            f"{time.perf_counter() - started:.0f} s"
        )
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
