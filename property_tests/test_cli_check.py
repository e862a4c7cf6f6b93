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


LAYERS = """
import numpy as np

def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)

def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)

def batchnorm_forward(x, gamma, beta, bn_param):
    mu = x.mean(axis=0)
    xhat = (x - mu) / np.sqrt(x.var(axis=0) + bn_param["eps"])
    return gamma * xhat + beta, (xhat, gamma, np.sqrt(x.var(axis=0) + bn_param["eps"]))

def batchnorm_backward_no_gamma(dout, cache):
    xhat, gamma, std = cache
    m = dout.shape[0]
    dx = (m * dout - dout.sum(axis=0) - xhat * (dout * xhat).sum(axis=0)) / (m * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)
"""


@pytest.fixture
def layer_file(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(LAYERS)
    return path


def test_a_correct_affine_layer_passes(layer_file, capsys):
    argv = ["check", f"{layer_file}:affine_backward", "--layer", "affine",
            "--forward", f"{layer_file}:affine_forward", "--examples", "5", "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "pass" and result["examples"] == 5


def test_a_batchnorm_bug_exits_1_and_is_named(layer_file, capsys):
    argv = ["check", f"{layer_file}:batchnorm_backward_no_gamma", "--layer", "batchnorm",
            "--forward", f"{layer_file}:batchnorm_forward", "--examples", "10",
            "--json"]  # fmt: skip
    assert main(argv) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["failing"] == ["dx"] and "forgotten gamma in dx" in result["diagnosis"][0]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--layer", "convolution"], "--layer"),
        (["--layer", "affine", "--layers", "2,1"], "--layers"),
        (["--layer", "affine", "--names", "W1/B1"], "--names"),
        (["--forward", "x.py:f"], "--forward"),
        (["--layer", "batchnorm"], "--forward"),
        (["--layer", "affine", "--forward", "nofile.py:f"], "--forward"),
        (["--layer", "affine", "--targets", "labels"], "--targets"),
        (["--layer", "affine", "--input-bound", "-1"], "--input-bound"),
    ],
)
def test_bad_layer_arguments_exit_2_naming_the_flag(layer_file, extra, fragment, capsys):
    assert main(["check", f"{layer_file}:affine_backward", *extra]) == 2
    assert fragment in capsys.readouterr().err
