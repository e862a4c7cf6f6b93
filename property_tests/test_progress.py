"""A check draws a bar over its examples in a notebook or on a terminal, and
nowhere else (``Settings.progress``, ``check_run.progress``)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from manual_bp import Net
from manual_bp_reference import check_run
from manual_bp_reference.check import check_gradients
from manual_bp_reference.settings import Settings

NET = Net.of([2, 2, 1], ["tanh", "sigmoid"])


def backprop(params, X, Y):
    W1, b1, W2, b2 = params["W1"], params["B1"], params["W2"], params["B2"]
    A1 = np.tanh(W1 @ X + b1)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
    dZ2 = (A2 - Y) / X.shape[1]
    dZ1 = (W2.T @ dZ2) * (1 - A1**2)
    return {"W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True)}  # fmt: skip


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("setting", "terminal", "shown"),
    [(None, False, False), (None, True, True), (False, True, False), (True, False, True)],
)
def test_the_bar_is_drawn_on_a_terminal_or_when_asked(setting, terminal, shown, monkeypatch):
    monkeypatch.setattr("sys.stderr", Terminal() if terminal else io.StringIO())
    assert check_run.progress_shown(setting) is shown


def test_a_check_counts_its_examples_on_the_bar(monkeypatch, capsys):
    monkeypatch.setattr(check_run, "PROGRESS_DELAY", 0.0)  # draw at once, not after 1 s
    counted = []
    close = check_run.Progress.close

    def closing(self):
        counted.append(self.bar.n)
        close(self)

    monkeypatch.setattr(check_run.Progress, "close", closing)
    check_gradients(backprop, NET, settings=Settings(max_examples=12, progress=True))
    assert counted == [12]
    err = capsys.readouterr().err
    assert "check_gradients:" in err and "/12 [" in err


def test_without_a_terminal_nothing_is_drawn(monkeypatch, capsys):
    monkeypatch.setattr(check_run, "PROGRESS_DELAY", 0.0)
    check_gradients(backprop, NET, settings=Settings(max_examples=5))
    assert capsys.readouterr().err == ""


def test_a_bar_that_is_not_drawn_leaves_the_test_function_as_it_is():
    def test(case):
        return None

    assert check_run.Progress().counted(test) is test


def test_progress_takes_a_flag():
    with pytest.raises(TypeError, match="progress: expected True or False"):
        Settings(progress="yes")
