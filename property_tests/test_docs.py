"""The documentation site builds in strict mode: a broken link, a missing page or
reference, or a docstring griffe cannot parse fails the build."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.deep  # builds the whole site
def test_the_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    cli_page = (tmp_path / "cli" / "index.html").read_text()
    # The CLI reference is generated from the parser: every command is there.
    for command in ("demo", "explain", "compare", "train", "audit", "campaign"):
        assert f"manual-bp {command}" in cli_page
