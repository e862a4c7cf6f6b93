"""The documentation site builds in strict mode, and reads as it should.

* A broken link, a missing page or reference, or a docstring griffe cannot
  parse fails the strict build.
* Every doctest example renders as code: Markdown reads a bare ``>>>`` as
  three nested quotes, which collapses an example into one grey paragraph
  (``tools/docs_hooks.fence_doctests`` fences them at build time), and the
  pages stay the same doctests.
"""

import doctest
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tools/ is the repository's, not an installed package
from tools.docs_hooks import fence_doctests  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site (the build takes 4 s: its tests are in the deep suite)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.deep
def test_the_site_builds_strict(site):
    cli_page = (site / "cli" / "index.html").read_text()
    # The CLI reference is generated from the parser: every command is there.
    for command in ("demo", "explain", "compare", "train", "audit", "campaign"):
        assert f"manual-bp {command}" in cli_page


class Prose(HTMLParser):
    """The text of a page outside ``pre`` and ``code``, line by line, and how
    deep blockquotes nest."""

    def __init__(self) -> None:
        super().__init__()
        self.code = 0
        self.quotes = 0
        self.deepest_quote = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("pre", "code"):
            self.code += 1
        if tag == "blockquote":
            self.quotes += 1
            self.deepest_quote = max(self.deepest_quote, self.quotes)

    def handle_endtag(self, tag):
        if tag in ("pre", "code"):
            self.code -= 1
        if tag == "blockquote":
            self.quotes -= 1

    def handle_data(self, data):
        if not self.code:
            self.text.append(data)


@pytest.mark.deep
def test_every_doctest_prompt_renders_inside_a_code_block(site):
    pages = sorted(site.glob("**/index.html"))
    assert len(pages) > 15
    faults = []
    for page in pages:
        prose = Prose()
        prose.feed(page.read_text(encoding="utf-8"))
        name = page.parent.relative_to(site)
        if prose.deepest_quote > 1:  # what a bare >>> becomes
            faults.append(f"{name}: blockquotes nested {prose.deepest_quote} deep")
        for line in "".join(prose.text).splitlines():
            if line.lstrip().startswith((">>>", "... ")):
                faults.append(f"{name}: a prompt outside a code block: {line.strip()[:60]!r}")
    assert not faults, "\n".join(faults)


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_fencing_keeps_every_page_the_same_doctest(page):
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    parser = doctest.DocTestParser()

    def examples(source: str) -> list[tuple[str, str]]:
        return [(e.source, e.want) for e in parser.get_examples(source)]

    assert examples(fence_doctests(text)) == examples(text)


def test_fence_doctests_fences_bare_examples_and_leaves_code_blocks_alone():
    text = "Text.\n\n>>> 1 + 1\n2\n\n```python\n>>> 3\n3\n```\n\n  >>> x = 1\n  ... \n"
    assert fence_doctests(text) == (
        "Text.\n\n```pycon\n>>> 1 + 1\n2\n\n```\n\n```python\n>>> 3\n3\n```\n\n"
        "  ```pycon\n  >>> x = 1\n  ... \n\n  ```\n"
    )
    numpydoc = "Notes\n-----\n>>> a\n\nExamples\n--------\n>>> b\n"
    assert fence_doctests(numpydoc, skip_sections=("Examples",)) == (
        "Notes\n-----\n```pycon\n>>> a\n\n```\n\nExamples\n--------\n>>> b\n"
    )
