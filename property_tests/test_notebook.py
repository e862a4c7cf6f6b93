"""``docs/notebooks/check-in-a-notebook.ipynb`` runs in a real Jupyter kernel and
shows the reports as HTML: the student's buggy cell, the mismatch with its
likely bug, the fix and the pass (``tools/notebooks.execute``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tools/ is the repository's, not an installed package
from tools.notebooks import execute  # noqa: E402

NOTEBOOK = ROOT / "docs" / "notebooks" / "check-in-a-notebook.ipynb"


@pytest.fixture(scope="module")
def cells() -> list:
    return [cell for cell in execute(NOTEBOOK).cells if cell.cell_type == "code"]


def html_of(cell) -> list[str]:
    return [out.data["text/html"] for out in cell.outputs if "text/html" in out.get("data", {})]


def test_the_buggy_cell_shows_the_mismatch_as_html_and_fails(cells):
    check = next(cell for cell in cells if "raises-exception" in cell.metadata.get("tags", []))
    (report,) = html_of(check)
    assert "verdict: wrong" in report
    assert "wrong activation derivative" in report  # the likely bug
    assert "<svg" in report  # the per-layer picture
    errors = [out for out in check.outputs if out.output_type == "error"]
    assert [error.ename for error in errors] == ["GradientMismatch"]
    # The error is the one-line summary: not the checker's frames, not the report twice.
    (line,) = errors[0].traceback
    summary = r"GradientMismatch: wrong: .+ wrong \(layer sizes \[2, 4, 1\], m = \d+\)"
    assert re.fullmatch(summary, line)


def test_the_fixed_cell_passes_with_an_html_report(cells):
    last = cells[-1]
    (report,) = html_of(last)
    assert "PASS: 100 examples" in report
    assert all(out.output_type != "error" for cell in cells[:-1] for out in cell.outputs
               if "raises-exception" not in cell.metadata.get("tags", []))  # fmt: skip


@pytest.mark.deep  # a second kernel: about 5 s
def test_a_long_check_shows_a_progress_widget_in_jupyter(tmp_path):
    """``tqdm.auto`` in a kernel with ipywidgets: the bar is a widget, not text."""
    import nbformat

    code = """\
import numpy as np
from manual_bp import Net
from manual_bp_reference import check_run
from manual_bp_reference.check import check_gradients
from manual_bp_reference.settings import Settings

check_run.PROGRESS_DELAY = 0.0  # draw at once: this check takes less than the usual second

def backprop(params, X, Y):
    A1 = np.tanh(params["W1"] @ X + params["B1"])
    A2 = 1 / (1 + np.exp(-(params["W2"] @ A1 + params["B2"])))
    dZ2 = (A2 - Y) / X.shape[1]
    dZ1 = (params["W2"].T @ dZ2) * (1 - A1**2)
    return {"W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True)}

net = Net.of([2, 3, 1], ["tanh", "sigmoid"])
check_gradients(backprop, net, settings=Settings(max_examples=20))
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    path = tmp_path / "progress.ipynb"
    nbformat.write(notebook, path)
    (cell,) = execute(path).cells
    kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" in kinds, kinds
    assert "text/html" in kinds  # and the passing report
