"""``manual-bp check FILE.py:NAME --quantity QUANTITY``: the research checks on
the command line.  A pass prints PASS and exits 0, a buggy file exits 1
naming the bug, an option the quantity does not take (or one it needs,
missing) exits 2 naming the flag; ``--json`` prints the verdict and the bug."""

import json
from pathlib import Path

import pytest

from benchmarks import hvp_styles
from manual_bp.cli import main
from manual_bp.cli.check import QUANTITIES

CODE = """
import numpy as np

C, SIGMA = 2.0, 1.1


def per_example(params, X, y, kept_mean=False):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    m = X.shape[0]
    h = np.maximum(X @ W1 + b1, 0)
    scores = h @ W2 + b2
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(m), y] -= 1
    ds = p / m if kept_mean else p
    dh = (ds @ W2.T) * (h > 0)
    return {"W1": X[:, :, None] * dh[:, None, :], "b1": dh,
            "W2": h[:, :, None] * ds[:, None, :], "b2": ds}


def mean_kept(params, X, y):
    return per_example(params, X, y, kept_mean=True)


def norms(params, X, y):
    grads = per_example(params, X, y)
    return np.sqrt(sum(np.sum(g.reshape(len(X), -1) ** 2, axis=1) for g in grads.values()))


def dp_step(per_example, noise, sigma_times_clip=True):
    m = next(iter(per_example.values())).shape[0]
    squares = sum(np.sum(g.reshape(m, -1) ** 2, axis=1) for g in per_example.values())
    scale = C / np.maximum(np.sqrt(squares), C)
    std = SIGMA * C if sigma_times_clip else SIGMA
    return {k: np.tensordot(scale, g, axes=1) / m + std / m * noise[k]
            for k, g in per_example.items()}


def dp_step_without_clip_in_noise(per_example, noise):
    return dp_step(per_example, noise, sigma_times_clip=False)


def dp_step_opacus(per_example, noise):
    m = next(iter(per_example.values())).shape[0]
    norms = np.sqrt(sum(np.sum(g.reshape(m, -1) ** 2, axis=1) for g in per_example.values()))
    factor = np.minimum(1.0, C / (norms + 1e-6))  # Opacus's per_sample_clip_factor
    return {k: np.tensordot(factor, g, axes=1) / m + SIGMA * C / m * noise[k]
            for k, g in per_example.items()}
"""
NET = ["--layers", "3,5,4", "--activations", "relu,softmax"]
ROWS = ["--layout", "rows", "--names", "W1/b1", "--targets", "labels"]
FEW = ["--examples", "6", "--no-isolation", "--quiet"]
DP = ["--quantity", "dp_sgd", "--clip", "2.0", "--noise-multiplier", "1.1"]


# A student's R-operator (benchmarks/hvp_styles.py, NumPy only) as a user's file:
# the module's own text, and the functions the check calls by name.
HVP_CODE = (
    Path(hvp_styles.__file__).read_text()
    + """

from types import SimpleNamespace

NET = SimpleNamespace(activations=("tanh", "sigmoid"), loss="binary_cross_entropy", l2=0.1)


def hvp(params, X, Y, V):
    return student_hvp(params, X, Y, V, NET)


def ggn(params, X, Y, V):
    return student_ggn(params, X, Y, V, NET)


def no_second(params, X, Y, V):
    return student_hvp(params, X, Y, V, NET, second=False)


def decay_doubled(params, X, Y, V):
    return student_ggn(params, X, Y, V, NET, decay=2.0)


ROWS_NET = SimpleNamespace(activations=("tanh", "softmax"), loss="cross_entropy", l2=0.0)


def rows_hvp(params, X, y, V, **bug):
    # cs231n's layout (X (m, n0), W1 (n0, n1), flat b1, labels) around the columns R-operator.
    def columns(rows):
        return {k.upper(): v.T if k[0] == "W" else v[:, None] for k, v in rows.items()}

    Y = np.eye(params["W2"].shape[1])[y].T
    product = student_hvp(columns(params), X.T, Y, columns(V), ROWS_NET, **bug)
    return {k if k[0] == "W" else k.lower(): v.T if k[0] == "W" else v[:, 0]
            for k, v in product.items()}


def rows_no_second(params, X, y, V):
    return rows_hvp(params, X, y, V, second=False)
"""
)
CURVATURE = ["--layers", "3,4,1", "--activations", "tanh,sigmoid", "--l2", "0.1"]


@pytest.fixture
def hvp_file(tmp_path):
    path = tmp_path / "curvature.py"
    path.write_text(HVP_CODE)
    return path


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "research.py"
    path.write_text(CODE)
    return path


def test_per_example_gradients_in_cs231n_style_pass(user_file, capsys):
    argv = ["check", f"{user_file}:per_example", "--quantity", "per_example_gradients",
            *NET, *ROWS, *FEW]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS (per-example gradients): 6 examples")
    assert "b1" in out  # the worst ratios under the code's own names


def test_per_example_norms_pass_as_json(user_file, capsys):
    argv = ["check", f"{user_file}:norms", "--quantity", "per_example_norms",
            *NET, *ROWS, *FEW, "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "pass" and result["examples"] == 6
    assert result["quantity"] == "per_example_norms" and "norms" in result["worst"]


def test_a_per_example_bug_exits_1_and_is_named(user_file, capsys):
    argv = ["check", f"{user_file}:mean_kept", "--quantity", "per_example_gradients",
            *NET, *ROWS, *FEW]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "likely bug: per-example gradients divided by m" in out
    assert "per_example = mean_kept(params, X, Y)" in out  # the call as the user makes it


def test_a_per_example_bug_as_json(user_file, capsys):
    argv = ["check", f"{user_file}:mean_kept", "--quantity", "per_example_gradients",
            *NET, *ROWS, *FEW, "--json"]  # fmt: skip
    assert main(argv) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "wrong" and result["bug"] == "per-example gradients divided by m"
    assert result["quantity"] == "per_example_gradients"


def test_a_dp_step_passes(user_file, capsys):
    assert main(["check", f"{user_file}:dp_step", *DP, *FEW]) == 0
    assert capsys.readouterr().out.startswith("PASS (DP step, C = 2, σ = 1.1): 6 examples")


def test_an_opacus_step_passes_with_its_clip_eps_declared(user_file, capsys):
    argv = ["check", f"{user_file}:dp_step_opacus", *DP, *FEW]
    assert main([*argv, "--clip-eps", "1e-6"]) == 0
    assert capsys.readouterr().out.startswith("PASS (DP step, C = 2, σ = 1.1, ε = 1e-6)")
    assert main([*argv, "--json"]) == 1  # not declared: the convention is named
    result = json.loads(capsys.readouterr().out)
    assert result["bug"].startswith("ε in the clip denominator")
    assert main(argv) == 1
    assert "--clip-eps 1e-6" in capsys.readouterr().out


def test_a_dp_step_bug_exits_1_and_is_named(user_file, capsys):
    argv = ["check", f"{user_file}:dp_step_without_clip_in_noise", *DP, *FEW, "--json"]
    assert main(argv) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["bug"] == "noise std σ instead of σ C" and result["quantity"] == "dp_sgd"


@pytest.mark.parametrize(("quantity", "symbol"), [("hvp", "H V"), ("ggn", "G V")])
def test_a_students_curvature_product_passes(hvp_file, quantity, symbol, capsys):
    argv = ["check", f"{hvp_file}:{quantity}", "--quantity", quantity, *CURVATURE, *FEW]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"PASS ({symbol}): 6 examples")


def test_a_cs231n_style_hvp_passes_in_its_declared_conventions(hvp_file, capsys):
    argv = ["check", f"{hvp_file}:rows_hvp", "--quantity", "hvp", "--layers", "3,5,4",
            "--activations", "tanh,softmax", *ROWS, *FEW]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS (H V): 6 examples") and "b1" in out  # the code's own names
    bounded = ["--param-bound", "2", "--input-bound", "2"]  # tanh off saturation
    argv = ["check", f"{hvp_file}:rows_no_second", *argv[2:], *bounded, "--json"]
    assert main(argv) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["bug"] == "the second-derivative term missing"


@pytest.mark.parametrize(
    ("name", "quantity", "bug"),
    [("no_second", "hvp", "the second-derivative term missing"),
     ("decay_doubled", "ggn", "the decay doubled")],
)  # fmt: skip
def test_a_curvature_bug_exits_1_and_is_named(hvp_file, name, quantity, bug, capsys):
    argv = ["check", f"{hvp_file}:{name}", "--quantity", quantity, *CURVATURE, *FEW]
    assert main(argv) == 1
    assert f"likely bug: {bug}" in capsys.readouterr().out
    assert main([*argv, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["bug"] == bug and result["quantity"] == quantity


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        # An option another quantity takes, or none does with this one.
        (["--quantity", "dp_sgd", "--clip", "1", "--noise-multiplier", "1", "--layers", "2,1"],
         "--layers: not an option of --quantity dp_sgd"),
        (["--quantity", "dp_sgd", "--clip", "1", "--noise-multiplier", "1", "--layout", "rows"],
         "--layout: not an option of --quantity dp_sgd"),
        (["--clip", "1"], "--clip: not an option of --quantity gradients"),
        (["--noise-multiplier", "1"], "--noise-multiplier: not an option of --quantity gradients"),
        (["--quantity", "per_example_norms", "--clip", "1"],
         "--clip: not an option of --quantity per_example_norms"),
        (["--quantity", "per_example_gradients", "--per-sample"],
         "--per-sample: not an option of --quantity per_example_gradients"),
        (["--quantity", "per_example_gradients", "--reduction", "sum"],
         "--reduction: not an option of --quantity per_example_gradients"),
        (["--quantity", "per_example_gradients", "--layer", "affine"],
         "--layer: not an option of --quantity per_example_gradients"),
        (["--quantity", "per_example_gradients", "--conventions", "auto"], "--conventions: auto"),
        # The curvature products take the declared conventions of a whole batch's mean.
        (["--quantity", "hvp", "--reduction", "sum"],
         "--reduction: not an option of --quantity hvp"),
        (["--quantity", "ggn", "--per-sample"], "--per-sample: not an option of --quantity ggn"),
        (["--quantity", "hvp", "--conventions", "auto"], "--conventions: auto"),
        (["--quantity", "ggn", "--clip", "1"], "--clip: not an option of --quantity ggn"),
        (["--quantity", "hvp", "--l2", "-1"], "--l2: "),
        # Missing where needed, or a bad value.
        (["--quantity", "dp_sgd", "--noise-multiplier", "1"], "--clip: required"),
        (["--quantity", "dp_sgd", "--clip", "1"], "--noise-multiplier: required"),
        (["--quantity", "dp_sgd", "--clip", "-1", "--noise-multiplier", "1"], "--clip: "),
        (["--quantity", "dp_sgd", "--clip", "1", "--noise-multiplier", "1", "--clip-eps", "-1"],
         "--clip-eps: "),
        (["--quantity", "dp_sgd", "--clip", "1", "--noise-multiplier", "1", "--clip-eps", "nan"],
         "--clip-eps: "),
        (["--clip-eps", "1e-6"], "--clip-eps: not an option of --quantity gradients"),
        (["--quantity", "hvp", "--clip-eps", "1e-6"],
         "--clip-eps: not an option of --quantity hvp"),
        (["--quantity", "per_example_gradients", "--targets", "labels", "--loss", "mse",
          "--layers", "2,1", "--activations", "identity"], "--targets: "),
    ],
)  # fmt: skip
def test_bad_flag_combinations_exit_2_naming_the_flag(user_file, extra, fragment, capsys):
    assert main(["check", f"{user_file}:per_example", *extra, *FEW]) == 2
    assert fragment in capsys.readouterr().err


def test_a_quantity_has_one_name_and_a_did_you_mean(user_file, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["check", f"{user_file}:dp_step", "--quantity", "dp-step"])
    assert exited.value.code == 2
    assert "--quantity: expected one of" in capsys.readouterr().err


def test_a_bad_combination_as_json_is_an_error_verdict(user_file, capsys):
    assert main(["check", f"{user_file}:dp_step", "--quantity", "dp_sgd", "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "error" and result["error"].startswith("--clip: required")


def test_every_quantity_is_in_the_help():
    from manual_bp.cli import build_parser, command_parsers

    text = command_parsers(build_parser())["check"].format_help()
    for name in QUANTITIES:
        assert name in text
