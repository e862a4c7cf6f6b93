"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

* ``<!-- cli-reference -->`` becomes every command's ``--help``, produced by
  the very argparse parser that ``manual-bp`` runs (``manual_bp.cli.build_parser``).
* ``<!-- include: PATH -->`` becomes the text of a file of the repository
  (``ARCHITECTURE.md``, ``CHANGELOG.md``), so each has one copy.
* Every doctest example outside a code block (the pages' ``>>>`` lines, which
  pytest runs as they are written) is put in a ``pycon`` code block
  (``fence_doctests``), and so is every one in a docstring outside its
  ``Examples`` section (``DoctestFences``, a griffe extension that
  ``mkdocs.yml`` loads from this file): Markdown reads ``>>>`` as three
  nested quotes.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import griffe

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


_FENCE = re.compile(r"^\s*(```|~~~)")
_PROMPT = re.compile(r"^(\s*)>>>( |$)")
_SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")


def fence_doctests(text: str, skip_sections: tuple[str, ...] = ()) -> str:
    """``text`` with every doctest example outside a code block fenced as ``pycon``.

    An example runs from its first ``>>>`` line to the next blank line (where
    doctest ends its expected output), at the indentation of that line.
    Lines in a fenced block are left alone, and so are those under a numpydoc
    section header named in ``skip_sections`` (griffe renders a docstring's
    ``Examples`` as code itself).  The blank line after an example moves
    inside the block, before its closing fence, so the page is still the
    doctest it was.
    """
    lines, out = text.split("\n"), []
    fenced, section, i = False, "", 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _SECTION_RULE.match(lines[i + 1]) and line.strip():
            section = line.strip()
        prompt = _PROMPT.match(line)
        if _FENCE.match(line):
            fenced = not fenced
        elif prompt and not fenced and section not in skip_sections:
            indent = prompt.group(1)
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            # The blank line goes inside the block, before the fence: doctest
            # would read a fence right after the example as expected output.
            out += [f"{indent}```pycon", *lines[i:end], "", f"{indent}```", ""]
            i = end + 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences a docstring's doctest examples outside its ``Examples`` section."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value, skip_sections=("Examples",))


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    markdown = fence_doctests(_INCLUDE.sub(_included, markdown))
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    return markdown
