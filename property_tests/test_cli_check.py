"""``manual-bp check FILE.py:FUNCTION``: exit 0 on a pass, 1 on a mismatch, 2 on bad arguments."""

import json

import pytest

from manual_bp.cli import main

CODE = """
import numpy as np

def backprop(params, X, y):
    m = X.shape[0]
    h = np.maximum(X @ params["W1"] + params["b1"], 0)
    s = h @ params["W2"] + params["b2"]
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(m), y] -= 1
    ds = p / m
    dh = (ds @ params["W2"].T) * (h > 0)
    return {"W1": X.T @ dh, "b1": dh.sum(axis=0), "W2": h.T @ ds, "b2": ds.sum(axis=0)}

def indexes_out_of_range(params, X, y):
    return backprop(params, X, np.zeros_like(y) - 10 ** 6)
"""
FLAGS = ["--layers", "3,4,3", "--activations", "relu,softmax", "--layout", "rows",
         "--names", "W1/b1", "--targets", "labels", "--examples", "8"]  # fmt: skip


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "two_layer.py"
    path.write_text(CODE)
    return path


def test_a_correct_cs231n_style_function_passes(user_file, capsys):
    assert main(["check", f"{user_file}:backprop", *FLAGS, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "pass" and result["examples"] == 8


def test_a_crashing_function_exits_1_with_the_traceback(user_file, capsys):
    assert main(["check", f"{user_file}:indexes_out_of_range", *FLAGS]) == 1
    out = capsys.readouterr().out
    assert "verdict: raised" in out and "IndexError" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["check", "nofile.py:f", "--layers", "2,1"], "no file"),
        (["check", "no_colon", "--layers", "2,1"], "FUNCTION"),
        (["check", "json:nothing_here", "--layers", "2,1"], "no function"),
        (["check", "json:dumps", "--layers", "2,1", "--examples", "0"], "--examples"),
    ],
)
def test_bad_arguments_exit_2_naming_them(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
