"""Lint, format and types are part of the test command: CI fails on any of them.

* ``ruff check``: the rules in ``pyproject.toml`` (pycodestyle, pyflakes,
  isort, bugbear, pyupgrade, naming with the seed's maths names allowed,
  NumPy and Ruff's own rules), over the whole repository.
* ``ruff format --check``: the formatting, over the whole repository.
* ``mypy``: ``manual_bp/`` and ``reference/`` with untyped bodies checked and
  unused ignores reported (``[tool.mypy]`` in ``pyproject.toml``).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff check", "ruff format", "mypy"],
)
def test_the_code_passes(command):
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
