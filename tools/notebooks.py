"""The documentation's notebooks (``docs/notebooks/``), run in a real Jupyter kernel.

``execute(path)`` runs a notebook top to bottom with ``nbclient`` in a fresh
``python3`` kernel (the environment's own Python), in a temporary working
directory, and returns it with its outputs; a cell tagged
``raises-exception`` may end in an error, any other error fails the run.
``property_tests/test_notebook.py`` asserts on the outputs; run this file to
refresh the outputs the docs site shows (mkdocs-jupyter shows them as saved)::

    .venv/bin/python tools/notebooks.py docs/notebooks/*.ipynb
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# Starting a kernel, importing jax and running two checks: seconds; a hang: never.
CELL_TIMEOUT = 300


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(
            notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
            resources={"metadata": {"path": folder}},
        )  # fmt: skip
        client.execute()
    return notebook


if __name__ == "__main__":
    for name in sys.argv[1:]:
        nbformat.write(execute(Path(name)), name)
        print(f"executed and saved {name}")
