"""``conventions="auto"``: real code checked as written, and no bug excused.

Each style below is written the way its source writes it (cs231n's
``TwoLayerNet.loss``, the deeplearning.ai course's ``dW1``/``db1``, Nielsen's
``Network.backprop``, Denny Britz's nn-from-scratch); the check infers the
structural conventions and passes it with no glue.  The numerical ones (the
reduction, the L2 term) are never inferred: a bug that equals one of them is
reported, with the declaration under which it would pass.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from benchmarks.real_styles import (
    REG_LAMBDA,
    SOFTMAX_NET,
    STYLES,
    course_two_layer,
    course_without_1_over_m,
    cs231n_two_layer,
    denny_britz,
)
from manual_bp import Net
from manual_bp.cli import main
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.inference import Auto, candidates, declaration, probe_case
from manual_bp_reference.settings import Settings

QUICK = Settings(max_examples=25, param_bound=2.0, input_bound=2.0)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_real_code_passes_as_written_and_the_report_names_the_declaration(style):
    backprop, net, auto, expected = STYLES[style]
    report = check_gradients(backprop, net, conventions=auto, settings=QUICK)
    assert report.conventions == expected
    python, flags = declaration(expected)
    assert any(python in note and flags in note for note in report.notes), report.notes
    # The inferred declaration, given explicitly, is the same check.
    few = dataclasses.replace(QUICK, max_examples=10)
    assert check_gradients(backprop, net, conventions=expected, settings=few).examples


def test_missing_1_over_m_is_reported_under_auto_never_read_as_a_convention():
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(course_without_1_over_m, SOFTMAX_NET, conventions="auto", settings=QUICK)
    mismatch = raised.value
    assert mismatch.verdict == "wrong"
    assert mismatch.conventions == Conventions(names="W1/b1")  # not per_sample, not a sum
    assert mismatch.comparison.diagnosis.bug_class == "missing 1/m"
    assert any("passes on this case with --reduction sum" in line for line in mismatch.details)


def test_ours_is_tried_first_and_every_candidate_is_a_valid_declaration():
    tried = list(candidates(Auto(), SOFTMAX_NET))
    assert tried[0] == Conventions()
    assert len(tried) == len(set(map(repr, tried)))
    assert all(
        not c.per_sample for c in tried[: tried.index(next(c for c in tried if c.per_sample))]
    )
    fixed = list(candidates(Auto({"layout": "rows"}), SOFTMAX_NET))
    assert {c.layout for c in fixed} == {"rows"}


def test_the_probe_has_a_batch_size_none_of_the_layers_has():
    for sizes in ([3, 4, 2], [3, 3, 3], [4, 5, 6, 3]):
        case = probe_case(Net.of(sizes, ["tanh"] * (len(sizes) - 2) + ["softmax"]))
        assert case.m not in sizes and case.m >= 3


@pytest.mark.parametrize(
    ("conventions", "error", "message"),
    [
        ("automatic", ValueError, "conventions: expected a Conventions or 'auto', got 'automatic'"),
        (Auto, TypeError, "conventions: expected a Conventions or 'auto'"),
    ],
)
def test_a_conventions_argument_that_is_neither_is_refused_by_name(conventions, error, message):
    with pytest.raises(error, match=message):
        check_gradients(course_two_layer, SOFTMAX_NET, conventions=conventions, settings=QUICK)


def test_auto_checks_its_declared_conventions_by_name():
    with pytest.raises(ValueError, match=r"layout: expected one of \['columns', 'rows'\]"):
        Auto({"layout": "diagonal"})


def test_the_command_line_infers_with_conventions_auto(tmp_path, capsys):
    source = tmp_path / "two_layer.py"
    source.write_text(
        "import numpy as np\n\n"
        + "\n".join(line for line in __import__("inspect").getsource(cs231n_two_layer).splitlines())
        + "\n"
    )
    argv = [
        "check", f"{source}:cs231n_two_layer", "--layers", "3,4,2", "--activations",
        "relu,softmax", "--loss", "cross_entropy", "--examples", "10", "--param-bound", "2",
        "--input-bound", "2", "--conventions", "auto", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "pass"
    assert out["conventions"]["layout"] == "rows" and out["conventions"]["targets"] == "labels"
    declared = [*argv[:-3], "--conventions", "declared", "--json"]
    assert main(declared) == 1  # ours: it raises on params["b1"]
    assert json.loads(capsys.readouterr().out)["verdict"] == "raised"
    capsys.readouterr()
    layer = ["check", f"{source}:cs231n_two_layer", "--layer", "affine", "--conventions", "auto"]
    assert main(layer) == 2
    assert "--conventions: not a layer check's option" in capsys.readouterr().err


# The network each mutation of the main catalogue needs to show: the
# activation or loss it breaks (first match in the mutation's name).
_NETS_BY_NAME = [
    ("leaky_relu", (["leaky_relu", "leaky_relu", "sigmoid"], "binary_cross_entropy")),
    ("relu", (["relu", "relu", "sigmoid"], "binary_cross_entropy")),
    ("gelu", (["gelu", "gelu", "sigmoid"], "binary_cross_entropy")),
    ("silu", (["silu", "silu", "sigmoid"], "binary_cross_entropy")),
    ("softplus", (["softplus", "softplus", "sigmoid"], "binary_cross_entropy")),
    ("elu", (["elu", "elu", "sigmoid"], "binary_cross_entropy")),
    # softmax's own backward runs where its loss is not the fused pair's
    ("softmax", (["tanh", "tanh", "softmax"], "mse")),
    ("cross-entropy", (["tanh", "tanh", "softmax"], "cross_entropy")),
    ("mse", (["tanh", "tanh", "sigmoid"], "mse")),
    ("fused", (["tanh", "tanh", "sigmoid"], "mse")),
    ("sigmoid", (["sigmoid", "sigmoid", "sigmoid"], "binary_cross_entropy")),
]
_DEFAULT_NET = (["tanh", "tanh", "sigmoid"], "binary_cross_entropy")


def _mutation_net(name: str) -> Net:
    activations, loss = next((net for word, net in _NETS_BY_NAME if word in name), _DEFAULT_NET)
    outputs = 3 if activations[-1] == "softmax" else 1  # a softmax of one unit is constant
    return Net.of([3, 5, 4, outputs], activations, loss)


def test_every_mutation_of_the_backward_is_caught_under_auto_and_named_from_W_and_B():
    """manual_bp's own backward with each catalogued bug injected, returning W and
    B alone, checked with inferred conventions (in this process: the bug is a
    patch).  Every bug must be caught; the figure of those named right is printed."""
    import manual_bp.network as network
    from property_tests.mutations import CATALOG, inject

    named = {}
    for mutation in CATALOG:
        net = _mutation_net(mutation.name)

        def backprop(params, X, Y, net=net):
            _, cache = network.forward(params, X, net)
            grads = network.backward(cache, Y, net)
            return {key: value for key, value in grads.items() if key[0] in "WB"}

        with pytest.MonkeyPatch.context() as patch:
            inject(mutation, patch)
            try:
                check_gradients(
                    backprop, net,
                    settings=Settings(max_examples=40, isolate=False, shrink=False),
                )  # fmt: skip
                named[mutation.name] = "passed"
            except GradientMismatch as mismatch:
                diagnosis = mismatch.comparison.diagnosis if mismatch.comparison else None
                named[mutation.name] = diagnosis.bug_class if diagnosis else mismatch.verdict
    right = sum(named[m.name] == m.bug_class for m in CATALOG)
    print(f"mutations named right from W and B under auto: {right} of {len(CATALOG)}")
    print({m.name: named[m.name] for m in CATALOG if named[m.name] != m.bug_class})
    assert "passed" not in named.values(), named
    # 24 of 26 when written: "dA uses W instead of W^T" raises in non-square
    # layers (its traceback is the report), and A and Z swapped in the
    # derivative is named a wrong activation derivative.
    assert right >= 0.9 * len(CATALOG), named


def test_the_decay_mutations_are_caught_under_auto_with_the_decay_declared():
    """A net with weight decay: its ``l2`` is the declared L2 term, the rest is
    inferred, and manual_bp's backward with a decay bug injected fails."""
    import manual_bp.network as network
    from property_tests.mutations import REGULARIZATION_CATALOG, inject

    net = Net.of([3, 5, 4, 1], ["tanh", "tanh", "sigmoid"], l2=0.1)

    def backprop(params, X, Y):
        _, cache = network.forward(params, X, net)
        return network.backward(cache, Y, net)

    decay = [m for m in REGULARIZATION_CATALOG if m.bug_class == "weight decay"]
    assert decay
    assert check_gradients(backprop, net, settings=Settings(max_examples=20, isolate=False))
    for mutation in decay:
        with pytest.MonkeyPatch.context() as patch:
            inject(mutation, patch)
            with pytest.raises(GradientMismatch):
                check_gradients(backprop, net, settings=Settings(max_examples=40, isolate=False))


def test_the_dropout_mutations_are_caught_under_auto_through_a_forward_backward_pair():
    """manual_bp's own forward and backward as the course's pair (the forward
    draws its masks, the backward reads them from the cache), checked with
    inferred conventions; each dropout bug injected into the backward fails."""
    import manual_bp.network as network
    from manual_bp.dropout import draw_masks
    from property_tests.mutations import REGULARIZATION_CATALOG, inject

    sizes, activations = [3, 5, 4, 1], ["tanh", "tanh", "sigmoid"]
    rng = np.random.default_rng(0)

    def forward(X, parameters, keep_prob):
        net = Net.of(sizes, activations, dropout=1 - keep_prob)
        masks = draw_masks(net.layer_sizes, X.shape[1], net.dropout, rng)
        return network.forward(parameters, X, net, masks=masks)

    def backward(AL, Y, cache):
        net = Net.of(sizes, activations, dropout=1 - KEEP)
        grads = network.backward(cache, Y, net)
        return {key: value for key, value in grads.items() if key[0] in "WB"}

    KEEP = 0.75
    net = Net.of(sizes, activations, dropout=1 - KEEP)
    quick = Settings(max_examples=30, isolate=False)
    assert check_gradients(backward, net, forward=forward, settings=quick).examples
    dropout = [m for m in REGULARIZATION_CATALOG if m.bug_class == "dropout"]
    assert dropout
    for mutation in dropout:
        with pytest.MonkeyPatch.context() as patch:
            inject(mutation, patch)
            with pytest.raises(GradientMismatch):
                check_gradients(backward, net, forward=forward, settings=quick)


def course_bias_not_summed(parameters, X, Y):
    """The course's step with ``db = dZ / m``: a bias gradient of shape (n, m)."""
    grads = course_two_layer(parameters, X, Y)
    m = X.shape[1]
    W2, b1, b2 = parameters["W2"], parameters["b1"], parameters["b2"]
    Z1 = parameters["W1"] @ X + b1
    A1 = np.maximum(0, Z1)
    Z2 = W2 @ A1 + b2
    t = np.exp(Z2 - Z2.max(axis=0))
    dZ2 = t / t.sum(axis=0) - Y
    dZ1 = (W2.T @ dZ2) * (Z1 > 0)
    return {**grads, "db2": dZ2 / m, "db1": dZ1 / m}


def test_a_batch_function_whose_bias_is_not_summed_is_never_read_one_sample_at_a_time():
    """At m = 1 an unsummed dB is right, and averaging the samples sums it:
    read one sample at a time this bug would pass.  Code that returns anything
    for a batch is a batch."""
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(course_bias_not_summed, SOFTMAX_NET, settings=QUICK)
    mismatch = raised.value
    assert not mismatch.conventions.per_sample and mismatch.conventions.names == "W1/b1"
    assert mismatch.comparison.diagnosis.bug_class == "bias sum axis"
    assert any("some of them misshapen" in note for note in mismatch.notes), mismatch.notes


def course_transposed_dW1(parameters, X, Y):
    """dW1 returned as dZ1 X^T transposed: (n0, n1), not (n1, n0)."""
    grads = course_two_layer(parameters, X, Y)
    return {**grads, "dW1": grads["dW1"].T}


def test_a_misshapen_gradient_is_named_under_the_declaration_the_code_ran_under():
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(course_transposed_dW1, SOFTMAX_NET, settings=QUICK)
    assert raised.value.conventions == Conventions(names="W1/b1")
    assert raised.value.comparison.diagnosis.bug_class == "transposed matrix"


def lowercase_keys(params, X, Y):
    """A student's own names: w1, b1, ... (columns, ours otherwise)."""
    renamed = {key: params[key.lower()] for key in ("W1", "B1", "W2", "B2")}  # KeyError: 'w1'
    grads = backward_of_ours(renamed, X, Y)
    return {key.lower(): value for key, value in grads.items()}


def backward_of_ours(params, X, Y):
    from manual_bp import backward, forward

    _, cache = forward(params, X, SOFTMAX_NET)
    grads = backward(cache, Y, SOFTMAX_NET)
    return {key: value for key, value in grads.items() if key[0] in "WB"}


def test_lowercase_names_are_inferred_and_hinted():
    report = check_gradients(lowercase_keys, SOFTMAX_NET, settings=QUICK)
    assert report.conventions == Conventions(names="w1/b1")
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(lowercase_keys, SOFTMAX_NET, conventions=Conventions(), settings=QUICK)
    assert "declare names='w1/b1' (--names w1/b1)" in str(raised.value)


def test_auto_takes_a_names_mapping():
    names = {"W1": "w1", "B1": "b1", "W2": "w2", "B2": "b2"}
    report = check_gradients(
        lowercase_keys, SOFTMAX_NET, conventions=Auto({"names": names}), settings=QUICK
    )
    assert report.conventions.user_key("B2") == "b2"


def test_an_undeclared_l2_term_is_named_with_its_strength():
    """Denny Britz's code with the sum declared and its reg_lambda not: the
    report measures the L2 term the gradients hold and names the flag."""
    net = Net.of([2, 5, 3], ["tanh", "softmax"], "cross_entropy")
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(denny_britz, net, conventions=Auto({"reduction": "sum"}), settings=QUICK)
    assert raised.value.verdict == "wrong"
    assert any(
        line.startswith(f"passes on this case with --l2 {REG_LAMBDA!r}")
        for line in raised.value.details
    ), raised.value.details


@pytest.mark.parametrize("conventions", [Conventions(per_sample=True), Auto({"per_sample": True})])
def test_a_forward_backward_pair_declared_one_sample_at_a_time_is_refused(conventions):
    with pytest.raises(ValueError, match="forward: a forward/backward pair takes the batch"):
        check_gradients(
            course_two_layer, SOFTMAX_NET, forward=lambda X, parameters: (X, {}),
            conventions=conventions, settings=QUICK,
        )  # fmt: skip
