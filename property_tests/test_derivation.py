"""``manual_bp.derivation`` and ``manual-bp explain``: the printed derivation is
what the code computes.

The strongest law evaluates the printed formulas: with ``⊙`` as ``*``, ``·``
as ``@``, ``ᵀ`` as ``.T`` and ``Σ_columns`` as a sum over the columns, the
right-hand side of every backward step, fed the forward cache, ``Y`` and the
gradients of the steps before it, reproduces ``backward``'s array for that key.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given

from manual_bp import (
    convolution,
    curvature,
    dp_sgd,
    embedding,
    per_example,
    pooling,
    recurrent,
    spatial_normalization,
    temporal,
)
from manual_bp.activations import ACTIVATIONS, sigmoid
from manual_bp.architecture import gradient_keys
from manual_bp.cli import main
from manual_bp.derivation import (
    LAYERS,
    QUANTITIES,
    Derivation,
    Step,
    at_layer,
    derive,
    layer_derivation,
    quantity_derivation,
)
from manual_bp.losses import LOSSES
from manual_bp.network import backward, forward
from manual_bp.normalization import EPS
from manual_bp_reference.strategies import networks
from property_tests.budget import examples
from property_tests.test_normalization import normalized_nets

SEED_NET = ([2, 3, 3, 1], ["sigmoid"] * 3, "binary_cross_entropy")
# Backward formulas that read as Python once the symbols are translated; the
# others (conditionals, gelu's u, silu's s) are checked for shapes and reads.
EVALUATED = {"identity", "relu", "sigmoid", "tanh", "softplus", "softmax"}
_SYMBOL = re.compile(r"(?<![A-Za-z0-9_])(d?[WBAZFM][0-9]+|Y)(?![A-Za-z0-9_])")


def evaluate(formula: str, values: dict[str, np.ndarray], m: int) -> np.ndarray:
    """The right-hand side of a formula, read as NumPy."""
    expression = formula.split(" = ", 1)[1]
    # The decay's scalar: "0.01 · W2" (a number, not a variable's index).
    expression = re.sub(r"(?<![A-Za-z0-9_.])([0-9][0-9.e+-]*) · ", r"\1 * ", expression)
    for text, python in [("⊙", "*"), ("−", "-"), ("·", "@"), ("ᵀ", ".T")]:
        expression = expression.replace(text, python)
    for text, python in [("½", "0.5"), ("³", "**3"), ("²", "**2"), ("√(", "sqrt(")]:
        expression = expression.replace(text, python)
    # A sum over a parenthesised term, or over one symbol.
    expression = re.sub(r"Σ_columns \(", "rowsum(", expression)
    expression = re.sub(r"Σ_rows \(", "colsum(", expression)
    expression = re.sub(r"Σ_rows (\w+)", r"colsum(\1)", expression)
    expression = re.sub(r"Σ_columns (\w+)", r"rowsum(\1)", expression)
    # The course's implicit products: "(2/m) dvar1", "m dZhat1", "0.5 inv_std1".
    expression = re.sub(r"(\)|\bm|\bn[0-9]+|\b[0-9.]+) (?=[A-Za-z_(])", r"\1*", expression)
    expression = re.sub(r"\[([^\]]*)\]", r"(\1)", expression)  # Iverson bracket
    names = {
        "colsum": lambda V: np.sum(V, axis=0, keepdims=True),
        "rowsum": lambda V: np.sum(V, axis=1, keepdims=True),
        "sigmoid": sigmoid,
        "sqrt": np.sqrt,
        "m": m,
    }
    return eval(expression, names, dict(values))


def backward_steps(derivation: Derivation) -> list[Step]:
    return [step for step in derivation.steps if step.gradient]


@examples(0.3)
@given(networks(max_depth=4, max_width=4, max_batch=4, dtypes=("float64",)))
def test_every_gradient_key_has_exactly_one_formula_in_backward_order(case):
    for input_gradient in (False, True):
        derivation = derive(case.layer_sizes, case.activations, case.loss, None, input_gradient)
        returned = [step.key for step in derivation.steps if step.returned]
        keys = gradient_keys(case.depth, input_gradient)
        assert sorted(returned) == sorted(keys) and len(set(returned)) == len(returned)
        for key in keys:
            assert derivation.gradient_step(key).formula.startswith(f"d{key} = ")


@examples(0.3)
@given(networks(max_depth=4, max_width=4, max_batch=4, dtypes=("float64",)))
def test_each_step_names_only_its_own_layer_and_the_one_below(case):
    derivation = derive(case.layer_sizes, case.activations, case.loss, None, True)
    for step in backward_steps(derivation):
        numbers = {int(re.search("[0-9]+", s).group()) for s in step.shapes if s != "Y"}
        key_number = int(step.key[1:])
        layer_below = step.layer - 1
        if step.key.startswith("A") and key_number == layer_below:  # dA(l-1) = Wlᵀ · dZl
            assert numbers == {step.layer, layer_below}, step.formula
        elif step.key.startswith("W"):  # dWl = dZl · A(l-1)ᵀ
            assert numbers == {step.layer, layer_below}, step.formula
        else:  # dZl, dBl, and dAL at the output
            assert key_number == step.layer and numbers == {step.layer}, step.formula


@examples(0.3)
@given(networks(max_depth=4, max_width=4, max_batch=4, dtypes=("float64",)))
def test_the_output_step_is_fused_exactly_for_the_canonical_pair(case):
    derivation = derive(case.layer_sizes, case.activations, case.loss)
    L, spec = case.depth, LOSSES[case.loss]
    output = [step for step in derivation.steps if step.section == "output"]
    dZ_L = derivation.gradient_step(f"Z{L}")
    dA_L = [step for step in output if step.key == f"A{L}"]
    if case.activations[-1] == spec.canonical_activation:
        assert derivation.fused and not dA_L
        assert dZ_L.formula == f"dZ{L} = {at_layer(spec.fused_formula, L)}"
    else:
        assert not derivation.fused
        assert [step.formula for step in dA_L] == [f"dA{L} = {at_layer(spec.dA_formula, L)}"]
        assert not dA_L[0].returned
        backward_text = ACTIVATIONS[case.activations[-1]].backward_formula
        assert dZ_L.formula == f"dZ{L} = {at_layer(backward_text, L)}"
    assert all(step.layer == L for step in output)


@examples(0.5)
@given(networks(max_depth=4, max_width=4, max_batch=4, dtypes=("float64",)))
def test_the_printed_formulas_and_shapes_reproduce_backward(case):
    assert_the_printed_formulas_reproduce_backward(case)


@examples(0.3)
@given(networks(max_depth=4, max_width=4, max_batch=4, dtypes=("float64",), regularization=True))
def test_the_printed_decay_and_dropout_steps_reproduce_backward(case):
    """``dWl = dZl · A(l-1)ᵀ + λ · Wl``, ``dFl = dAl ⊙ Ml / (1 − p)`` and the
    activation's step in ``dFl``, ``Fl``, evaluated, give backward's arrays."""
    derivation = assert_the_printed_formulas_reproduce_backward(case)
    for l, rate in enumerate(case.dropout, start=1):
        if rate:
            assert derivation.steps[[s.key for s in derivation.steps].index(f"F{l}")].reads
            assert f"dF{l} = dA{l} ⊙ M{l} / (1 − " in derivation.text()
    for l in range(1, case.depth + 1):
        assert (" · W" in derivation.gradient_step(f"W{l}").formula) == bool(case.l2)


def assert_the_printed_formulas_reproduce_backward(case) -> Derivation:
    m = case.X.shape[1]
    _, cache = case.forward()
    grads = case.backward(cache, input_gradient=True)
    derivation = derive(
        case.layer_sizes, case.activations, case.loss, m, input_gradient=True, l2=case.l2,
        dropout=case.dropout or None,
    )  # fmt: skip
    values = {**cache, "Y": case.Y}
    text = derivation.text()
    for step in backward_steps(derivation):
        # Every symbol has the shape of the real array, the left-hand side included.
        for symbol, shape in step.shapes.items():
            real = grads.get(symbol[1:]) if symbol.startswith("d") else values[symbol]
            if real is not None:
                assert shape == real.shape, (step.formula, symbol)
        if step.returned:
            assert step.shape == grads[step.key].shape
        assert step.formula in text and step.shape_text in text
        # It reads exactly the cache entries (and Y) its right-hand side names.
        named = _SYMBOL.findall(step.formula.split(" = ", 1)[1])
        assert set(step.reads) == {symbol for symbol in named if not symbol.startswith("d")}
        assert all(entry == "Y" or entry in cache for entry in step.reads)
        fused = derivation.fused and step.section == "output"
        by_name = case.activations[step.layer - 1] in EVALUATED
        if step.returned and step.key.startswith("Z") and not (fused or by_name):
            values[f"d{step.key}"] = grads[step.key]  # not Python: shapes and reads only
            continue
        result = evaluate(step.formula, values, m)
        if step.returned:
            np.testing.assert_allclose(result, grads[step.key], rtol=1e-12, atol=1e-290)
            result = grads[step.key]  # the next steps start from backward's own values
        values[f"d{step.key}"] = result
    return derivation


def test_the_seed_network_reads_what_the_seed_says():
    derivation = derive(*SEED_NET)
    reads = {step.formula.split(" = ")[0]: step.reads for step in backward_steps(derivation)}
    assert reads == {
        "dZ3": ("A3", "Y"),
        "dW3": ("A2",),
        "dB3": (),
        "dA2": ("W3",),
        "dZ2": ("A2",),
        "dW2": ("A1",),
        "dB2": (),
        "dA1": ("W2",),
        "dZ1": ("A1",),
        "dW1": ("A0",),
        "dB1": (),
    }
    text = derivation.text()
    assert "cached but not read by this backward pass: W1, Z1, Z2, Z3" in text
    assert "dW2 = dZ2 · A1ᵀ" in text and "(3, 3) = (3, m) · (m, 3)" in text


def test_a_new_activation_and_a_new_loss_explain_themselves(monkeypatch):
    cube = dataclasses.replace(
        ACTIVATIONS["tanh"], name="cube", formula="Z³", backward_formula="dA ⊙ 3 ⊙ Z ⊙ Z"
    )
    monkeypatch.setitem(ACTIVATIONS, "cube", cube)
    quarter = dataclasses.replace(
        LOSSES["mse"],
        name="quarter_mse",
        formula="(1/(4m)) Σ (A − Y)²",
        dA_formula="(A − Y) / (2m)",
        output_activations=frozenset({"identity", "cube"}),
    )
    monkeypatch.setitem(LOSSES, "quarter_mse", quarter)
    derivation = derive([2, 3, 2], ["cube", "cube"], "quarter_mse", m=5)
    formulas = [step.formula for step in derivation.steps]
    assert "A1 = cube(Z1) = Z1³" in formulas
    assert "L = (1/(4m)) Σ (A2 − Y)²" in formulas
    assert "dA2 = (A2 − Y) / (2m)" in formulas
    assert derivation.gradient_step("Z1").formula == "dZ1 = dA1 ⊙ 3 ⊙ Z1 ⊙ Z1"
    assert derivation.gradient_step("Z1").reads == ("Z1",)
    assert "dZ2 = dA2 ⊙ 3 ⊙ Z2 ⊙ Z2" in derivation.text()


def exit_code(argv: list[str]) -> int:
    """``main``'s return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def test_explain_prints_and_writes_the_derivation(capsys, tmp_path):
    argv = ["explain", "--layers", "2,3,3,1", "--activations", "sigmoid"]
    argv += ["--loss", "binary_cross_entropy", "--batch", "8", "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "explain.txt").read_text(encoding="utf-8")
    assert printed.rstrip("\n") == derive(*SEED_NET, m=8).text()
    for heading in ["Forward pass", "Loss", "Output layer 3", "Hidden layer 2", "Hidden layer 1"]:
        assert f"\n{heading}" in printed
    assert "dZ3 = (A3 − Y) / m" in printed and "(3, 8) = (3, 3) · (3, 8)" in printed
    assert "What the backward pass reads from the cache" in printed


def test_explain_derives_decay_and_dropout_given_or_saved(capsys, tmp_path):
    argv = ["explain", "--layers", "2,4,4,1", "--activations", "relu,tanh,sigmoid"]
    argv += ["--l2", "0.01", "--dropout", "0.5,0.25", "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    expected = derive(
        [2, 4, 4, 1], ["relu", "tanh", "sigmoid"], "binary_cross_entropy", l2=0.01,
        dropout=(0.5, 0.25, 0.0),
    )  # fmt: skip
    assert printed.rstrip("\n") == expected.text()
    assert "dW1 = dZ1 · A0ᵀ + 0.01 · W1" in printed and "dF2 = dA2 ⊙ M2 / (1 − 0.25)" in printed
    from manual_bp import DNN

    DNN([2, 4, 4, 1], ["relu", "tanh", "sigmoid"], l2=0.01, dropout=[0.5, 0.25]).save(
        tmp_path / "net.npz"
    )
    assert main(["explain", "--model", str(tmp_path / "net.npz"), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.rstrip("\n") == expected.text()
    assert exit_code(["explain", "--model", str(tmp_path / "net.npz"), "--l2", "0.1"]) == 2
    assert "drop --l2" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_explain_prints_both_normalization_derivations(capsys, tmp_path, kind):
    argv = ["explain", "--layers", "2,4,4,1", "--activations", "relu,tanh,sigmoid"]
    assert main([*argv, "--normalization", kind, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    expected = derive([2, 4, 4, 1], ["relu", "tanh", "sigmoid"], "binary_cross_entropy",
                      normalization=kind)  # fmt: skip
    assert printed.rstrip("\n") == expected.text()
    total = "Σ_columns" if kind == "batch" else "Σ_rows"
    expected_texts = [
        "staged form",
        "closed form",
        "mu1 = (1/",
        f"{total} (dZhat1 ⊙ Zhat1)",
        "dgamma2 = Σ_columns (dN2 ⊙ Zhat2)",
        f"Hidden layer 1 (relu, {kind} normalization)",
        "inv_std1 read by",
    ]
    for text in expected_texts:
        assert text in printed, text


def test_explain_defaults_to_the_seed_network(capsys, tmp_path):
    assert main(["explain", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.rstrip("\n") == derive(*SEED_NET).text()


def test_explain_takes_a_new_activation(capsys, tmp_path, monkeypatch):
    cube = dataclasses.replace(
        ACTIVATIONS["tanh"], name="cube", formula="Z³", backward_formula="dA ⊙ 3 ⊙ Z ⊙ Z"
    )
    monkeypatch.setitem(ACTIVATIONS, "cube", cube)
    argv = ["explain", "--layers", "2,3,1", "--activations", "cube,sigmoid", "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "A1 = cube(Z1) = Z1³" in printed and "dZ1 = dA1 ⊙ 3 ⊙ Z1 ⊙ Z1" in printed


def test_explain_help_has_examples(capsys):
    assert exit_code(["explain", "--help"]) == 0
    assert "examples:\n  manual-bp explain\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--layers", "2,0,1"], "--layers"),
        (["--layers", "2,x"], "--layers"),
        (["--layers", "2"], "--layers"),
        (["--activations", "sigmoid,banana,sigmoid"], "--activations"),
        (["--activations", "relu,relu,relu,relu"], "--activations"),
        (["--loss", "hinge"], "--loss"),
        (["--layers", "2,3,1", "--loss", "cross_entropy"], "--loss"),
        (["--batch", "0"], "--batch"),
        (["--out", "/dev/null/folder"], "--out"),
        (["--dropout", "1.5"], "--dropout"),
        (["--dropout", "0.5,0.5,0.5"], "--dropout"),
        (["--l2", "-1"], "--l2"),
        (["--normalization", "batchnorm"], "--normalization"),
    ],
)
def test_explain_names_the_bad_argument(capsys, tmp_path, argv, named):
    assert exit_code(["explain", "--out", str(tmp_path), *argv]) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error


@examples(0.2)
@given(normalized_nets(max_batch=5))
def test_the_normalization_formulas_reproduce_both_backward_forms(case):
    """explain's normalized layers: every printed backward formula, the staged
    and the closed form, evaluated on the cache, gives backward's array (the
    staged ones ``backward(..., staged=True)``'s), with the printed shapes."""
    m, kinds = case.m, case.normalization
    _, cache = forward(dict(case.params), case.X, case.net)
    closed = backward(cache, case.Y, case.net)
    staged = backward(cache, case.Y, case.net, staged=True)
    derivation = derive(case.layer_sizes, case.activations, case.loss, m, normalization=kinds[:-1])
    returned = [step.key for step in derivation.steps if step.returned]
    assert sorted(returned) == sorted(gradient_keys(case.depth, normalization=kinds))
    assert {step.key for step in derivation.steps if step.form == "staged"} == {
        f"{name}{l}" for l, kind in enumerate(kinds, start=1) if kind for name in ("mu", "var", "Z")
    }
    sizes = {f"n{l}": n for l, n in enumerate(case.layer_sizes)}
    values = {**cache, "Y": case.Y, "eps": EPS, **sizes}
    text = derivation.text()
    for step in backward_steps(derivation):
        grads = staged if step.form == "staged" else closed
        for symbol, shape in step.shapes.items():
            real = grads.get(symbol[1:]) if symbol.startswith("d") else values.get(symbol)
            if real is not None:
                assert shape == real.shape, (step.formula, symbol)
        assert step.formula in text
        expected = grads.get(step.key) if step.returned or step.form else None
        kind = kinds[step.layer - 1]
        opaque = case.activations[step.layer - 1] not in EVALUATED
        if opaque and step.key in (f"N{step.layer}", f"Z{step.layer}") and not kind:
            values[f"d{step.key}"] = expected  # not Python: shapes and reads only
            continue
        if opaque and step.key == f"N{step.layer}":
            values[f"d{step.key}"] = expected
            continue
        if derivation.fused and step.section == "output" and step.key.startswith("Z"):
            values[f"d{step.key}"] = expected
            continue
        result = evaluate(step.formula, {**values}, m)
        if expected is not None:
            scale = 1 + float(np.max(np.abs(expected)))
            np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-12 * scale)
            result = expected
        values[f"d{step.key}"] = result


# --- one layer function's derivation: layer_derivation, explain --layer -------------------

LAYER_MODULES = {
    "conv": convolution, "max_pool": pooling, "avg_pool": pooling,
    "spatial_batchnorm": spatial_normalization, "spatial_groupnorm": spatial_normalization,
    "rnn_step": recurrent, "rnn": recurrent, "lstm_step": recurrent, "lstm": recurrent,
    "word_embedding": embedding, "temporal_affine": temporal, "temporal_softmax_loss": temporal,
}  # fmt: skip


def test_every_shaped_check_layer_kind_has_a_derivation():
    from manual_bp_reference.layer_kinds import LAYER_KINDS

    shaped = {name for name, kind in LAYER_KINDS.items() if kind.shapes is not None}
    assert set(LAYERS) == shaped == set(LAYER_MODULES)


@pytest.mark.parametrize("layer", sorted(LAYER_MODULES))
def test_each_layer_prints_its_modules_derivation(capsys, tmp_path, layer):
    module = LAYER_MODULES[layer]
    text = layer_derivation(layer)
    heading, blank, *body = text.splitlines()
    assert blank == "" and "\n".join(body) == module.DERIVATION.rstrip()
    named = heading.removeprefix(f"{layer}: ").split(", ")
    assert all(name.startswith(f"{module.__name__}.") for name in named), heading
    assert all(callable(getattr(module, name.rsplit(".", 1)[1])) for name in named), heading
    assert main(["explain", "--layer", layer, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed == text + "\n" == (tmp_path / "explain.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("layer", "error", "words"),
    [
        ("conv2d", ValueError, ["layer: expected one of conv, max_pool", "'conv2d'", "mean conv?"]),
        ("group_norm", ValueError, ["temporal_softmax_loss", "did you mean spatial_groupnorm?"]),
        ("affine", ValueError, ["layer: expected one of", "got 'affine'"]),
        ("", ValueError, ["layer: expected one of", "got ''"]),
        (None, TypeError, ["layer: expected a layer name", "NoneType"]),
        (convolution, TypeError, ["layer: expected a layer name", "module"]),
    ],
)
def test_an_unknown_layer_is_refused_with_the_choices(layer, error, words):
    with pytest.raises(error) as raised:
        layer_derivation(layer)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--layer", "conv2d"], ["argument --layer: expected one of conv,", "did you mean conv?"]),
        (["--layer", "LSTM"], ["argument --layer:", "got 'LSTM'"]),
        (["--layer"], ["argument --layer: expected one argument"]),
        (["--layer", "conv", "--layers", "2,3,1"], ["--layers: describes a network", "--layer"]),
        (["--layer", "rnn", "--activations", "relu"], ["--activations: describes a network"]),
        (["--layer", "rnn", "--loss", "mse"], ["--loss: describes a network"]),
        (["--layer", "lstm", "--batch", "4"], ["--batch: describes a network"]),
        (["--layer", "lstm", "--input-gradient"], ["--input-gradient: describes a network"]),
        (["--layer", "conv", "--l2", "0.1"], ["--l2: describes a network"]),
        (["--layer", "conv", "--dropout", "0.5"], ["--dropout: describes a network"]),
        (["--layer", "conv", "--normalization", "batch"], ["--normalization: describes"]),
        (["--layer", "conv", "--model", "net.npz"], ["--model: describes a network"]),
    ],
)
def test_explain_layer_names_the_bad_flag_and_exits_2(capsys, tmp_path, argv, said):
    assert exit_code(["explain", "--out", str(tmp_path), *argv]) == 2
    captured = capsys.readouterr()
    assert all(words in captured.err for words in said), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "explain.txt").exists()


def test_explain_help_lists_the_layers(capsys):
    assert exit_code(["explain", "--help"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "--layer NAME" in printed and "manual-bp explain --layer conv" in printed
    assert ", ".join(LAYERS) in printed


# --- one research quantity's derivation: quantity_derivation, explain --quantity ----------

QUANTITY_MODULES = {
    "per_example_gradients": per_example, "per_example_norms": per_example,
    "gradient_variance": per_example, "dp_sgd": dp_sgd,
    "hessian_vector_product": curvature, "ggn_vector_product": curvature,
    "ggn_diagonal": curvature,
}  # fmt: skip
# What a student must find in each family's text: the formulas the brief asks for.
QUANTITY_WORDS = {
    per_example: [
        "dWl_i = dZl[:, i] · A(l-1)[:, i]ᵀ + λ · Wl", "dBl_i = dZl[:, i]",
        "‖z · aᵀ‖_F²         = ‖z‖² ‖a‖²", "Goodfellow", "dA(l-1) = Wlᵀ · dZl",
        "var_θ  = (1/m) Σ_i (g_i[θ] − mean_θ)²",
    ],
    curvature: [
        "R(Zl) = VWl · A(l-1) + Wl · R(A(l-1)) + VBl", "R(Al) = f_l'(Zl) ⊙ R(Zl)",
        "R(dZl)     = f_l'(Zl) ⊙ R(dAl) + f_l''(Zl) ⊙ dAl ⊙ R(Zl)",
        "R(dA(l-1)) = Wlᵀ · R(dZl) + VWlᵀ · dZl", "G V = Jᵀ H_out J V",
        "diag(G)_Wl = (Σ_k Dl_k ⊙ Dl_k) · (A(l-1) ⊙ A(l-1))ᵀ + λ",
    ],
    dp_sgd: [
        "s_i = min(1, C / ‖g_i‖)", "gbar[θ] = (1/m) Σ_i s_i g_i[θ]",
        "g~[θ] = gbar[θ] + (σ C / m) ξ[θ]", "optimizer.update(g~, state, θ)",
    ],
}  # fmt: skip


def test_every_quantity_has_a_derivation():
    assert set(QUANTITIES) == set(QUANTITY_MODULES)
    for module in set(QUANTITY_MODULES.values()):
        assert set(QUANTITIES) >= set(module.__all__) - {"DPSGD", "clipped_mean"}


@pytest.mark.parametrize("module", sorted(QUANTITY_WORDS, key=lambda module: module.__name__))
def test_each_quantity_module_carries_a_readable_derivation(module):
    text = module.DERIVATION
    assert text.endswith("\n") and text.strip()
    too_long = [line for line in text.splitlines() if len(line) > 88]
    assert not too_long, too_long
    missing = [words for words in QUANTITY_WORDS[module] if words not in text]
    assert not missing, missing


@pytest.mark.parametrize("quantity", sorted(QUANTITY_MODULES))
def test_each_quantity_prints_its_modules_derivation(capsys, tmp_path, quantity):
    module = QUANTITY_MODULES[quantity]
    text = quantity_derivation(quantity)
    heading, blank, *body = text.splitlines()
    assert blank == "" and "\n".join(body) == module.DERIVATION.rstrip()
    named = heading.removeprefix(f"{quantity}: ").split(", ")
    assert all(name.startswith(f"{module.__name__}.") for name in named), heading
    assert all(callable(getattr(module, name.rsplit(".", 1)[1])) for name in named), heading
    if quantity != "dp_sgd":
        assert named == [f"{module.__name__}.{quantity}"]
    assert main(["explain", "--quantity", quantity, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed == text + "\n" == (tmp_path / "explain.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("quantity", "error", "words"),
    [
        ("hvp", ValueError, ["quantity: expected one of per_example_gradients,", "got 'hvp'",
                             "did you mean hessian_vector_product?"]),
        ("ggn", ValueError, ["ggn_diagonal, got 'ggn'", "did you mean ggn_vector_product?"]),
        ("per_example", ValueError, ["did you mean per_example_gradients?"]),
        ("ggn_diag", ValueError, ["did you mean ggn_diagonal?"]),
        ("dpsgd", ValueError, ["did you mean dp_sgd?"]),
        ("gradients", ValueError, ["quantity: expected one of", "got 'gradients'"]),
        ("conv", ValueError, ["quantity: expected one of", "got 'conv'"]),
        ("", ValueError, ["quantity: expected one of", "got ''"]),
        (None, TypeError, ["quantity: expected a quantity name", "NoneType"]),
        (curvature, TypeError, ["quantity: expected a quantity name", "module"]),
    ],
)  # fmt: skip
def test_an_unknown_quantity_is_refused_with_the_choices(quantity, error, words):
    with pytest.raises(error) as raised:
        quantity_derivation(quantity)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--quantity", "hvp"], ["argument --quantity: expected one of per_example_gradients,",
                                 "did you mean hessian_vector_product?"]),
        (["--quantity", "GGN_DIAGONAL"], ["argument --quantity:", "got 'GGN_DIAGONAL'"]),
        (["--quantity"], ["argument --quantity: expected one argument"]),
        (["--quantity", "dp_sgd", "--layer", "conv"], ["--quantity:", "drop --layer"]),
        (["--layer", "conv", "--quantity", "ggn_diagonal"], ["--quantity:", "not a layer"]),
        (["--quantity", "dp_sgd", "--layers", "2,3,1"], ["--layers: describes a network",
                                                         "--quantity"]),
        (["--quantity", "ggn_diagonal", "--activations", "relu"], ["--activations: describes"]),
        (["--quantity", "ggn_diagonal", "--loss", "mse"], ["--loss: describes a network"]),
        (["--quantity", "hessian_vector_product", "--batch", "4"], ["--batch: describes"]),
        (["--quantity", "per_example_norms", "--input-gradient"], ["--input-gradient: desc"]),
        (["--quantity", "per_example_norms", "--l2", "0.1"], ["--l2: describes a network"]),
        (["--quantity", "gradient_variance", "--dropout", "0.5"], ["--dropout: describes"]),
        (["--quantity", "dp_sgd", "--normalization", "batch"], ["--normalization: describes"]),
        (["--quantity", "dp_sgd", "--model", "net.npz"], ["--model: describes a network"]),
    ],
)  # fmt: skip
def test_explain_quantity_names_the_bad_flag_and_exits_2(capsys, tmp_path, argv, said):
    assert exit_code(["explain", "--out", str(tmp_path), *argv]) == 2
    captured = capsys.readouterr()
    assert all(words in captured.err for words in said), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "explain.txt").exists()


def test_explain_help_lists_the_quantities(capsys):
    assert exit_code(["explain", "--help"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "--quantity NAME" in printed
    assert "manual-bp explain --quantity hessian_vector_product" in printed
    assert ", ".join(QUANTITIES) in printed
