"""``manual-bp compare``: the table, the JSON, the exit codes and the errors.

Every run uses the seed's network [2, 3, 3, 1] with a batch of 8 columns, so
that jax compiles the oracle once for the whole file.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import gradient_keys
from manual_bp.cli import main
from manual_bp.cli.compare import draw_targets, make_batch
from manual_bp.derivation import derive
from manual_bp.model import DNN
from manual_bp.validation import check_targets

SEED_NET = ([2, 3, 3, 1], ["sigmoid"] * 3, "binary_cross_entropy")
KEYS = gradient_keys(3, input_gradient=True)
ROW_FIELDS = {
    "key": str,
    "shape": list,
    "formula": str,
    "manual_norm": float,
    "autodiff_norm": float,
    "max_abs_diff": float,
    "ratio": float,
    "failing": int,
    "match": bool,
}


def exit_code(argv: list[str]) -> int:
    """``main``'s return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def compare_json(capsys, tmp_path, *extra: str) -> tuple[int, dict]:
    code = main(["compare", "--json", "--out", str(tmp_path), *extra])
    return code, json.loads(capsys.readouterr().out)


def seed_batch(dtype: str = "float64", seed: int = 0) -> tuple[DNN, np.ndarray, np.ndarray]:
    net = DNN(SEED_NET[0], seed=seed, dtype=dtype)
    return (net, *make_batch(net, 8, seed))


def test_the_table_has_one_row_per_gradient_key_with_its_formula(capsys, tmp_path):
    assert main(["compare", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("key "))
    for name in ["shape", "formula", "|manual|", "|autodiff|", "max |diff|", "err/tol", "match"]:
        assert name in lines[header]
    rows = lines[header + 1 : header + 2 + len(KEYS)]
    assert [row.split()[0] for row in rows] == [*KEYS, "loss"]
    derivation = derive(*SEED_NET, input_gradient=True)
    for key, row in zip(KEYS, rows, strict=False):
        assert derivation.gradient_step(key).formula in row
        assert row.split()[-1] == "yes"
    assert "L = (1/m) Σ [Y ⊙ softplus(−Z3)" in rows[-1] and rows[-1].endswith("yes")
    assert "all gradients match" in captured.out
    assert (tmp_path / "compare.json").exists()


def test_the_json_holds_the_rows_and_the_summary(capsys, tmp_path):
    code, document = compare_json(capsys, tmp_path, "--seed", "3")
    assert code == 0
    assert document == json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))
    summary, rows = document["summary"], document["rows"]
    assert summary["ok"] is True and 0 <= summary["worst_ratio"] <= 1
    assert summary["layer_sizes"] == SEED_NET[0] and summary["activations"] == SEED_NET[1]
    assert (summary["loss"], summary["dtype"], summary["batch"]) == (SEED_NET[2], "float64", 8)
    assert summary["seed"] == 3 and summary["data"] is None and summary["finite_diff"] is False
    assert [row["key"] for row in rows] == [*KEYS, "loss"]
    for row in rows:
        for field, kind in ROW_FIELDS.items():
            assert isinstance(row[field], kind), (row["key"], field)
        assert row["match"] and row["ratio"] <= 1
    assert summary["worst_ratio"] == max(row["ratio"] for row in rows)
    # The norms are those of the real gradients of that network and batch.
    net, X, Y = seed_batch(seed=3)
    out, cache = net.forward(X)
    grads = net.compute_gradients(out, cache, Y, input_gradient=True)
    for row in rows[:-1]:
        assert row["shape"] == list(grads[row["key"]].shape)
        assert row["manual_norm"] == pytest.approx(np.linalg.norm(grads[row["key"]]), rel=1e-12)
        assert row["autodiff_norm"] == pytest.approx(row["manual_norm"], rel=1e-9)
    assert rows[-1]["manual_norm"] == pytest.approx(net.loss(X, Y), rel=1e-12)


def test_float32_is_compared_in_float32(capsys, tmp_path):
    code, document = compare_json(capsys, tmp_path, "--dtype", "float32")
    assert code == 0 and document["summary"]["dtype"] == "float32"
    net, X, Y = seed_batch("float32")
    out, cache = net.forward(X)
    grads = net.compute_gradients(out, cache, Y, input_gradient=True)
    diffs = {row["key"]: row["max_abs_diff"] for row in document["rows"]}
    # float32 rounding shows: the manual side is not the float64 oracle.
    assert max(diffs.values()) > 1e-12
    assert all(grads[key].dtype == np.float32 for key in KEYS)


def test_finite_differences_support_every_manual_entry(capsys, tmp_path):
    code, document = compare_json(capsys, tmp_path, "--finite-diff")
    assert code == 0 and document["summary"]["finite_diff"] is True
    for row in document["rows"][:-1]:
        assert row["fd_supported"] == row["fd_entries"] == int(np.prod(row["shape"]))
        assert 0 <= row["fd_max_abs_diff"] < 1e-6
    # float32: the tolerance widens the float64 finite-difference interval.
    code, document = compare_json(capsys, tmp_path, "--finite-diff", "--dtype", "float32")
    assert code == 0
    assert all(row["fd_supported"] == row["fd_entries"] for row in document["rows"][:-1])
    assert main(["compare", "--finite-diff", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "FD supports" in printed and "FD max |diff|" in printed
    assert " 24/24 " in printed  # Z1, A1, Z2, A2: 3 x 8 entries


def test_a_wrong_backward_step_is_a_mismatch(capsys, tmp_path, monkeypatch):
    net, X, Y = seed_batch()
    out, cache = net.forward(X)
    right = net.compute_gradients(out, cache, Y, input_gradient=True)
    wrong = dataclasses.replace(ACTIVATIONS["sigmoid"], backward=lambda dA, Z, A, out=None: dA * A)
    monkeypatch.setitem(ACTIVATIONS, "sigmoid", wrong)
    code, document = compare_json(capsys, tmp_path)
    assert code == 1 and document["summary"]["ok"] is False
    rows = {row["key"]: row for row in document["rows"]}
    assert not rows["Z2"]["match"] and rows["Z2"]["ratio"] > 1 and rows["Z2"]["failing"] > 0
    assert rows["Z3"]["match"] and rows["W3"]["match"]  # the fused output layer is right
    for key in ["Z2", "W1"]:  # the autodiff column holds the right gradient's norm
        assert rows[key]["autodiff_norm"] == pytest.approx(np.linalg.norm(right[key]), rel=1e-9)
        assert rows[key]["manual_norm"] != pytest.approx(rows[key]["autodiff_norm"], rel=1e-3)
    assert main(["compare", "--out", str(tmp_path)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_data_from_an_npz_file(capsys, tmp_path):
    _, X, Y = seed_batch(seed=5)
    path = tmp_path / "batch.npz"
    np.savez(path, X=X, Y=Y)
    code, from_file = compare_json(capsys, tmp_path, "--data", str(path), "--seed", "5")
    assert code == 0 and from_file["summary"]["data"] == str(path)
    assert from_file["summary"]["batch"] == 8
    _, drawn = compare_json(capsys, tmp_path, "--seed", "5")
    # The same X and Y as the seeded draw: the same manual norms.
    assert [row["manual_norm"] for row in from_file["rows"]] == [
        row["manual_norm"] for row in drawn["rows"]
    ]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((2, 8))}, "missing ['Y']"),
        ({"X": np.zeros((3, 8)), "Y": np.zeros((1, 8))}, "X: expected shape (2, m)"),
        ({"X": np.zeros((2, 8)), "Y": np.zeros((1, 7))}, "Y: expected shape (1, 8)"),
        ({"X": np.zeros((2, 8)), "Y": np.full((1, 8), 2.0)}, "targets in [0, 1]"),
        ({"X": np.array([1, "a"], dtype=object), "Y": np.zeros((1, 8))}, "cannot read X and Y"),
    ],
)
def test_bad_data_files_name_the_problem(capsys, tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert main(["compare", "--data", str(path), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"--data {path}" in error and message in error


def test_data_that_is_not_an_npz_archive(capsys, tmp_path):
    np.save(tmp_path / "one.npy", np.zeros((2, 8)))
    for path in [tmp_path / "one.npy", tmp_path / "missing.npz"]:
        assert main(["compare", "--data", str(path), "--out", str(tmp_path)]) == 2
        assert f"--data {path}" in capsys.readouterr().err
    np.savez(tmp_path / "b.npz", X=np.zeros((2, 8)), Y=np.zeros((1, 8)))
    argv = ["compare", "--data", str(tmp_path / "b.npz"), "--batch", "4", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--batch: 4 disagrees with the 8 columns" in capsys.readouterr().err


def test_compare_help_has_examples(capsys):
    assert exit_code(["compare", "--help"]) == 0
    printed = capsys.readouterr().out
    assert "examples:\n  manual-bp compare\n" in printed and "--finite-diff" in printed


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--layers", "2,0,1"], "--layers"),
        (["--layers", "2,three,1"], "--layers"),
        (["--activations", "sigmoid,banana,sigmoid"], "--activations"),
        (["--activations", "relu,relu,relu,relu"], "--activations"),
        (["--activations", "relu,relu,relu"], "output activation"),  # with cross-entropy
        (["--loss", "hinge"], "--loss"),
        (["--dtype", "float16"], "--dtype"),
        (["--batch", "-1"], "--batch"),
        (["--out", "/dev/null/folder"], "--out"),
    ],
)
def test_compare_names_the_bad_argument(capsys, tmp_path, argv, named):
    assert exit_code(["compare", "--out", str(tmp_path), *argv]) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "cross_entropy", "mse"])
def test_drawn_targets_lie_in_the_loss_domain(loss):
    Y = draw_targets(loss, (3, 50), np.random.default_rng(0))
    assert Y.shape == (3, 50)
    check_targets(Y, (3, 50), loss, np.dtype("float64"))
    if loss == "binary_cross_entropy":
        assert set(np.unique(Y)) == {0.0, 1.0}
    if loss == "cross_entropy":
        assert np.all(np.sort(Y, axis=0) == np.array([[0.0], [0.0], [1.0]]))
        assert set(np.argmax(Y, axis=0)) == {0, 1, 2}  # every class drawn
    if loss == "mse":
        assert len(np.unique(Y)) == Y.size and abs(Y.mean()) < 0.5


@pytest.fixture
def saved_model(tmp_path):
    from manual_bp import DNN

    path = tmp_path / "model.npz"
    DNN([2, 5, 1], ["relu", "sigmoid"], seed=7).save(path)
    return path


def test_compare_and_explain_take_a_saved_model(capsys, tmp_path, saved_model):
    code, document = compare_json(capsys, tmp_path, "--model", str(saved_model))
    summary = document["summary"]
    assert code == 0 and summary["layer_sizes"] == [2, 5, 1]
    assert summary["activations"] == ["relu", "sigmoid"] and summary["model"] == str(saved_model)
    assert main(["explain", "--model", str(saved_model), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("Network [2, 5, 1]: activations relu, sigmoid;")


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("compare", ["--layers", "2,5,1"], "--model: the network comes from"),
        ("explain", ["--loss", "mse"], "drop --loss"),
        ("compare", ["--dtype", "float32"], "--dtype: float32 differs from the model's float64"),
    ],
)
def test_model_refuses_options_describing_another_network(
    capsys, tmp_path, saved_model, command, extra, message
):
    argv = [command, "--model", str(saved_model), *extra, "--out", str(tmp_path)]
    assert exit_code(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


@pytest.mark.parametrize("command", ["compare", "explain"])
def test_a_bad_model_file_is_named_with_model(capsys, tmp_path, command):
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 not a whole archive")
    for path in (tmp_path / "cut.npz", tmp_path / "missing.npz"):
        assert exit_code([command, "--model", str(path), "--out", str(tmp_path)]) == 2
        error = capsys.readouterr().err
        assert f"--model: model file '{path}': " in error and error.count("\n") == 1
