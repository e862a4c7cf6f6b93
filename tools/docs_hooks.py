"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

* ``<!-- cli-reference -->`` becomes every command's ``--help``, produced by
  the very argparse parser that ``manual-bp`` runs (``manual_bp.cli.build_parser``).
* ``<!-- include: PATH -->`` becomes the text of a file of the repository
  (``ARCHITECTURE.md``, ``CHANGELOG.md``), so each has one copy.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_INCLUDE = re.compile(r"<!-- include: (\S+) -->")


def cli_reference() -> str:
    """The help of ``manual-bp`` and of each command, as Markdown sections."""
    from manual_bp.cli import build_parser

    parser = build_parser()
    parser.prog = "manual-bp"
    sections = [f"## manual-bp\n\n```text\n{parser.format_help()}```\n"]
    commands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    for name, command in commands.choices.items():
        sections.append(f"## manual-bp {name}\n\n```text\n{command.format_help()}```\n")
    return "\n".join(sections)


def _included(match: re.Match[str]) -> str:
    text = (ROOT / match.group(1)).read_text(encoding="utf-8")
    # The included file's own title gives way to the page's.
    return re.sub(r"\A# .*\n", "", text)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    markdown = _INCLUDE.sub(_included, markdown)
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    return markdown
