"""``manual-bp audit`` and ``manual_bp_reference.sweep`` on a tiny sweep: table, CSV,
PNG, exit codes."""

import csv
import sys

import numpy as np
import pytest

from manual_bp.cli import main
from manual_bp.network import backward, forward
from manual_bp_reference.oracle import oracle_gradients
from manual_bp_reference.sweep import (
    AUDIT_LOSS,
    CSV_COLUMNS,
    audit_case,
    audit_config,
    relative_error,
    sweep,
    worst_of,
)
from property_tests.test_cli_train import png_size, run, wrong_dW1

# 2 depths x 2 widths x 2 dtypes = 8 configurations, 2 seeds each; 4 network
# shapes for the oracle to compile (the dtype does not change its shape).
SWEEP = [
    "audit", "--depths", "1,2", "--widths", "2,3", "--dtypes", "float32,float64",
    "--activations", "tanh", "--batch", "5", "--repeats", "2", "--seed", "0",
]  # fmt: skip
HEADER = "depth,width,dtype,activation,batch,max_abs_error,max_rel_error,worst_ratio,ok"


def read_audit(path) -> list[dict[str, str]]:
    with path.open() as file:
        assert file.readline().strip() == HEADER
        file.seek(0)
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "out"
    code, stdout, stderr = run([*SWEEP, "--out", str(out)])
    return code, stdout, stderr, out


def test_audit_exits_0_and_prints_one_table_row_per_configuration(sweep_run):
    code, stdout, _, _ = sweep_run
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "depth", "width", "dtype", "activation", "batch",
        "max", "abs", "err", "max", "rel", "err", "err/tol", "ok",
    ]  # fmt: skip
    table = [line.split() for line in lines[1:9]]
    assert [(row[0], row[1], row[2]) for row in table] == [
        (depth, width, dtype)
        for depth in ("1", "2")
        for width in ("2", "3")
        for dtype in ("float32", "float64")
    ]
    assert all(row[-1] == "yes" for row in table)
    assert "all 8 configurations match jax.grad" in stdout


def test_audit_csv_has_the_columns_and_the_sweep_results(sweep_run):
    out = sweep_run[3]
    rows = read_audit(out / "audit.csv")
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 8
    expected = sweep([1, 2], [2, 3], ["float32", "float64"], ["tanh"], 5, seed=0, repeats=2)
    for written, row in zip(rows, expected, strict=True):
        assert written == dict(zip(CSV_COLUMNS, row.csv_values(), strict=True))
        assert float(written["max_abs_error"]) == row.max_abs_error  # every digit kept


def test_float32_gradients_are_further_from_the_oracle_than_float64(sweep_run):
    rows = read_audit(sweep_run[3] / "audit.csv")
    error = {(r["depth"], r["width"], r["dtype"]): float(r["max_rel_error"]) for r in rows}
    for depth in ("1", "2"):
        for width in ("2", "3"):
            # float32 rounds at u = 6e-8, float64 at 1.1e-16: the gap is many decades.
            assert error[depth, width, "float32"] > 1e3 * error[depth, width, "float64"]


def test_audit_png_has_the_documented_size(sweep_run):
    from matplotlib.image import imread

    path = sweep_run[3] / "audit.png"
    assert png_size(path) == (1100, 450)  # figsize (11, 4.5) x dpi 100
    assert imread(path).shape[:2] == (450, 1100)


def test_repeats_keep_the_worst_seed():
    rows = [audit_config(2, 3, "float32", "tanh", 5, seed) for seed in (7, 8)]
    [combined] = sweep([2], [3], ["float32"], ["tanh"], 5, seed=7, repeats=2)
    assert combined == worst_of(rows)
    assert combined.max_rel_error == max(row.max_rel_error for row in rows)
    assert combined.worst_ratio == max(row.worst_ratio for row in rows)


def test_relative_error_is_per_variable_max_error_over_max_oracle():
    assert relative_error(2.0, 4.0) == 0.5
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(1.0, 0.0) == float("inf")


def test_the_audits_errors_are_those_of_the_gradients_against_the_oracle():
    case = audit_case(2, 3, "float32", "tanh", 5, 0)
    assert case.loss == AUDIT_LOSS
    _, cache = forward(case.params, case.X, case.net)
    grads = backward(cache, case.Y, case.net)
    oracle = oracle_gradients(case).grads
    # float32 manual values are compared in float64, not rounded back.
    errors = {key: np.max(np.abs(grads[key].astype(np.float64) - oracle[key])) for key in grads}
    relative = [errors[key] / np.max(np.abs(oracle[key])) for key in grads]
    row = audit_config(2, 3, "float32", "tanh", 5, 0)
    assert row.max_abs_error == max(errors.values())
    assert row.max_rel_error == max(relative)


def test_a_wrong_hand_written_gradient_fails_the_audit(tmp_path, monkeypatch):
    wrong_dW1(monkeypatch, factor=1 + 1e-6)
    code, stdout, _ = run(
        ["audit", "--depths", "2", "--widths", "3", "--dtypes", "float64", "--batch", "5",
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 1
    assert "MISMATCH in 1 of 1 configurations" in stdout
    [row] = read_audit(tmp_path / "audit.csv")
    assert row["ok"] == "False" and float(row["worst_ratio"]) > 1
    assert float(row["max_rel_error"]) == pytest.approx(1e-6, rel=1e-3)  # the bug's own size


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--depths", "0,2"], "--depths: expected an int >= 1, got 0"),
        (["--widths", "-3"], "--widths: expected an int >= 1, got -3"),
        (["--dtypes", "float16"], "--dtypes: dtype: expected one of ('float32', 'float64')"),
        (["--activations", "tanh,nope"], "--activations: activations[1] (layer 2)"),
        (["--seed", "-1"], "--seed: expected an int >= 0, got -1"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(arguments, message, tmp_path):
    code, _, stderr = run(["audit", "--out", str(tmp_path), *arguments])
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "audit.csv").exists()


def test_an_out_folder_that_cannot_be_made_is_refused_before_the_sweep(capsys, monkeypatch):
    import manual_bp_reference.sweep

    def sweep_that_must_not_run(*args, **kwargs):
        raise AssertionError("the sweep ran before --out was checked")

    monkeypatch.setattr(manual_bp_reference.sweep, "sweep", sweep_that_must_not_run)
    assert main(["audit", "--depths", "1", "--widths", "2", "--out", "/dev/null/x"]) == 2
    assert "--out: cannot create the folder '/dev/null/x'" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--batch", "--repeats"])
def test_non_positive_counts_are_refused_by_argparse(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["audit", option, "0"])
    assert exit_.value.code == 2
    assert f"argument {option}: expected an integer >= 1" in capsys.readouterr().err


def test_help_lists_the_options_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "--help"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert "examples:" in printed and "--repeats 5" in printed and "audit.csv" in printed


def test_the_default_out_folder_is_manual_bp_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(
        ["audit", "--depths", "1", "--widths", "2", "--dtypes", "float64", "--batch", "5"]
    )
    assert code == 0
    assert len(read_audit(tmp_path / "manual-bp-out" / "audit.csv")) == 1


def test_without_matplotlib_it_says_which_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, stderr = run(["audit", "--out", str(tmp_path)])
    assert code == 2
    assert "pip install 'manual-bp[plots]'" in stderr


def test_each_activation_swept_gets_its_own_row_of_panels(tmp_path):
    code, _, _ = run(
        ["audit", "--depths", "1", "--widths", "2", "--dtypes", "float64", "--batch", "5",
         "--activations", "tanh,relu", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    assert [row["activation"] for row in read_audit(tmp_path / "audit.csv")] == ["tanh", "relu"]
    assert png_size(tmp_path / "audit.png") == (1100, 900)  # figsize (11, 2 x 4.5) x dpi 100
