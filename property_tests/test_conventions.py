"""check_gradients takes code as people write it: declared conventions, no glue."""

import numpy as np
import pytest

from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.settings import Settings

FEW = 8


def cs231n_two_layer(reg_in_code=0.0, *, reduce="mean", flat_bias=True, skip_reg_grad=False):
    """A cs231n-style two-layer net: rows as samples, W (n_in, n_out), b (n,),
    integer labels, softmax cross-entropy, L2 on the weights."""

    def backprop(params, X, y):
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        m = X.shape[0]
        h_pre = X @ W1 + b1
        h = np.maximum(h_pre, 0)
        scores = h @ W2 + b2
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        dscores = probs.copy()
        dscores[np.arange(m), y] -= 1
        if reduce == "mean":
            dscores /= m
        dW2 = h.T @ dscores + (0 if skip_reg_grad else reg_in_code * W2)
        db2 = dscores.sum(axis=0)
        dh = dscores @ W2.T
        dh[h_pre <= 0] = 0
        dW1 = X.T @ dh + reg_in_code * W1
        db1 = dh.sum(axis=0)
        if not flat_bias:
            db1, db2 = db1[None, :], db2[None, :]
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    return backprop


CS231N = {"layout": "rows", "names": "W1/b1", "targets": "labels"}
ARCH = ([4, 5, 3], ["relu", "softmax"], "cross_entropy")


@pytest.mark.parametrize(
    ("code", "declared"),
    [
        (cs231n_two_layer(), CS231N),
        (cs231n_two_layer(reduce="sum"), {**CS231N, "reduction": "sum"}),
        (cs231n_two_layer(0.3), {**CS231N, "l2": 0.3}),
        (cs231n_two_layer(flat_bias=False), {**CS231N, "bias_shape": "row"}),
        (
            cs231n_two_layer(),
            {**CS231N, "names": {"W1": "W1", "B1": "b1", "W2": "W2", "B2": "b2"}},
        ),
    ],
)
def test_declared_conventions_pass_correct_code(code, declared):
    report = check_gradients(
        code, *ARCH, conventions=Conventions(**declared), settings=Settings(max_examples=FEW)
    )
    assert report.examples == FEW
    assert "PASS" in str(report)


def test_biases_in_another_bias_shape_are_read_with_a_note():
    """Biases returned (1, n) while declared flat: read as their values, and
    the note names both shapes (a bias shape is a convention, not a bug)."""
    report = check_gradients(
        cs231n_two_layer(flat_bias=False),
        *ARCH,
        conventions=Conventions(**CS231N),
        settings=Settings(max_examples=FEW),
    )
    assert any("shape (1, 3) (row), the declared bias shape is (3,)" in note
               for note in report.notes)  # fmt: skip


@pytest.mark.parametrize(
    ("code", "declared", "expected"),
    [
        # Code that sums, declared as a mean: the factor m is found.
        (cs231n_two_layer(reduce="sum"), CS231N, "missing 1/m"),
        # reg in the loss but its gradient forgotten in dW2.
        (cs231n_two_layer(0.3, skip_reg_grad=True), {**CS231N, "l2": 0.3}, "W2"),
    ],
)
def test_a_wrong_declaration_or_a_bug_is_caught(code, declared, expected):
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(
            code, *ARCH, conventions=Conventions(**declared), settings=Settings(max_examples=30)
        )
    assert expected in str(caught.value)


def nielsen_style(params, X, Y):
    """Per-sample column vectors, lists of weights and biases, summed over the batch."""
    W1, b1, W2, b2 = params
    grads = [np.zeros_like(p) for p in params]
    for k in range(X.shape[1]):
        x, y = X[:, k : k + 1], Y[:, k : k + 1]
        z1 = W1 @ x + b1
        a1 = 1 / (1 + np.exp(-z1))
        z2 = W2 @ a1 + b2
        a2 = 1 / (1 + np.exp(-z2))
        delta2 = a2 - y
        delta1 = (W2.T @ delta2) * a1 * (1 - a1)
        for i, g in enumerate([delta1 @ x.T, delta1, delta2 @ a1.T, delta2]):
            grads[i] += g
    return grads


def test_nielsen_style_lists_and_sums_pass():
    report = check_gradients(
        nielsen_style,
        [2, 3, 1],
        ["sigmoid", "sigmoid"],
        "binary_cross_entropy",
        conventions=Conventions(container="list", reduction="sum"),
        settings=Settings(param_bound=2.0, input_bound=2.0, max_examples=FEW),
    )
    assert report.examples == FEW


def test_float64_gradients_of_a_float32_net_are_a_note_not_a_failure():
    def upcasting(params, X, Y):
        grads = cs231n_two_layer()({k: v.astype(np.float64) for k, v in params.items()}, X, Y)
        return grads

    report = check_gradients(
        upcasting,
        *ARCH,
        conventions=Conventions(**CS231N),
        settings=Settings(dtype="float32", max_examples=FEW),
    )
    assert "dtype float64 returned for a float32 net" in str(report)


def test_missing_and_extra_keys_are_named():
    def renamed(params, X, y):
        grads = cs231n_two_layer()(params, X, y)
        grads["grad_W1"] = grads.pop("W1")  # no name the check reads W1's gradient from
        return grads

    with pytest.raises(GradientMismatch) as caught:
        check_gradients(
            renamed, *ARCH, conventions=Conventions(**CS231N), settings=Settings(max_examples=FEW)
        )
    text = str(caught.value)
    assert "missing key" in text and "'W1'" in text and "extra keys" in text and "grad_W1" in text


def test_an_exception_in_user_code_comes_with_the_minimal_case_and_traceback():
    def crashes(params, X, y):
        if X.shape[0] > 1:
            raise RuntimeError("boom in user code")
        return cs231n_two_layer()(params, X, y)

    with pytest.raises(GradientMismatch) as caught:
        check_gradients(
            crashes, *ARCH, conventions=Conventions(**CS231N), settings=Settings(max_examples=30)
        )
    mismatch = caught.value
    assert mismatch.verdict == "raised"
    assert "RuntimeError: boom in user code" in str(mismatch)
    assert mismatch.case.m == 2  # shrunk to the smallest batch that raises


@pytest.mark.parametrize(
    ("argument", "value", "error"),
    [
        ("layout", "cols", ValueError),
        ("names", "w1/B1", ValueError),
        ("bias_shape", "vector", ValueError),
        ("container", "tuple", ValueError),
        ("targets", "hard", ValueError),
        ("reduction", "avg", ValueError),
        ("l2", -1.0, ValueError),
        ("l2", "0.1", TypeError),
        ("l2_divided_by_m", "yes", TypeError),
    ],
)
def test_bad_conventions_name_the_argument(argument, value, error):
    with pytest.raises(error, match=argument):
        Conventions(**{argument: value})


def test_labels_need_a_classification_loss():
    with pytest.raises(ValueError, match="targets"):
        check_gradients(
            cs231n_two_layer(),
            [2, 2],
            ["identity"],
            "mse",
            conventions=Conventions(targets="labels"),
            settings=Settings(max_examples=1),
        )


def test_conversion_round_trips_every_layout():
    from manual_bp_reference.cases import Case

    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(3, 2)), "B1": rng.normal(size=(3, 1))}
    case = Case.of(params, rng.normal(size=(2, 4)), rng.random((3, 4)), ["sigmoid"], "mse")
    for layout in ("columns", "rows"):
        for bias_shape in ("column", "flat", "row"):
            for container in ("dict", "list"):
                conventions = Conventions(layout=layout, bias_shape=bias_shape, container=container)
                user_params, _, _ = conventions.to_user(case)
                back, problems, extra, notes = conventions.from_user(user_params, case)
                assert not problems and not extra and not notes
                for key in params:
                    np.testing.assert_array_equal(back[key], params[key])


def deeplearning_ai(lambd, *, divide_grad_by_m=True):
    """The deeplearning.ai course's L2: cost + lambd / (2 m) * sum ||Wl||^2, so
    dWl = dZl A(l-1).T / m + lambd / m * Wl; columns as samples, relu then sigmoid."""

    def backprop(params, X, Y):
        W1, B1, W2, B2 = params["W1"], params["B1"], params["W2"], params["B2"]
        m = X.shape[1]
        Z1 = W1 @ X + B1
        A1 = np.maximum(0, Z1)
        A2 = 1 / (1 + np.exp(-(W2 @ A1 + B2)))
        dZ2 = A2 - Y
        dZ1 = (W2.T @ dZ2) * (Z1 > 0)
        scale = lambd / m if divide_grad_by_m else lambd
        dW1, dW2 = dZ1 @ X.T / m + scale * W1, dZ2 @ A1.T / m + scale * W2
        dB1, dB2 = dZ1.sum(axis=1, keepdims=True) / m, dZ2.sum(axis=1, keepdims=True) / m
        return {"W1": dW1, "B1": dB1, "W2": dW2, "B2": dB2}

    return backprop


def test_the_courses_l2_divided_by_m_is_declared_not_glued():
    arch = ([2, 3, 1], ["relu", "sigmoid"], "binary_cross_entropy")
    code = deeplearning_ai(0.7)
    report = check_gradients(
        code,
        *arch,
        conventions=Conventions(l2=0.7, l2_divided_by_m=True),
        settings=Settings(max_examples=FEW),
    )
    assert report.examples == FEW
    with pytest.raises(GradientMismatch):  # undeclared, the 1/m on the penalty is a mismatch
        check_gradients(
            code, *arch, conventions=Conventions(l2=0.7), settings=Settings(max_examples=FEW)
        )
    with pytest.raises(GradientMismatch):  # the penalty's gradient without its 1/m: a bug
        check_gradients(
            deeplearning_ai(0.7, divide_grad_by_m=False),
            *arch,
            conventions=Conventions(l2=0.7, l2_divided_by_m=True),
            settings=Settings(max_examples=FEW),
        )
    with pytest.raises(ValueError, match="l2_divided_by_m: divides the L2 penalty, but l2 is 0"):
        check_gradients(code, *arch, conventions=Conventions(l2_divided_by_m=True))
    assert Conventions(l2=0.7, l2_divided_by_m=True).l2_for(7) == pytest.approx(0.1)


def test_every_convention_is_a_flag_of_check_and_campaign():
    """A new convention is one field of Conventions: the flags follow its fields."""
    from manual_bp.cli import build_parser, command_parsers
    from manual_bp_reference.conventions import convention_fields

    flags = {"--" + f.name.replace("_", "-") for f in convention_fields()}
    for command in ("check", "campaign"):
        parser = command_parsers(build_parser())[command]
        options = {option for action in parser._actions for option in action.option_strings}
        assert flags <= options, (command, flags - options)


def test_check_gradients_takes_the_conventions_object_or_its_keywords_not_both():
    from manual_bp_reference.check import check_gradients
    from manual_bp_reference.conventions import Conventions

    def backprop(params, X, Y):
        m = X.shape[0]
        A1 = np.tanh(X @ params["W1"] + params["b1"])
        A2 = 1 / (1 + np.exp(-(A1 @ params["W2"] + params["b2"])))
        dZ2 = (A2 - Y) / m
        dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
        return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}

    rows = Conventions(layout="rows", names="W1/b1")
    arch = ([2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
    assert (
        check_gradients(
            backprop, *arch, conventions=rows, settings=Settings(max_examples=5)
        ).examples
        == 5
    )
    old = pytest.warns(FutureWarning, match="0.1 spelling")
    with old, pytest.raises(ValueError, match=r"^conventions: give the Conventions or its old"):
        check_gradients(backprop, *arch, conventions=rows, layout="rows")
    with pytest.raises(TypeError, match=r"^conventions: "):
        check_gradients(backprop, *arch, conventions={"layout": "rows"})


def test_the_record_of_conventions_holds_every_field():
    """A campaign's manifest rebuilds its Conventions from as_dict: no field is left out."""
    from manual_bp_reference.conventions import convention_fields

    rows = Conventions(layout="rows", names={"W1": "w1", "B1": "b1"}, l2=0.5)
    assert set(rows.as_dict()) == {f.name for f in convention_fields()}
    assert Conventions(**rows.as_dict()) == rows


def test_a_report_speaks_the_users_layout_names_and_shapes():
    """A rows-layout failure shows W1 (n0, n1), b1 (n1,), and the worst entry's
    index in the user's own array: what their debugger shows them."""
    rows = Conventions(layout="rows", names="W1/b1")
    assert rows.view("W1", (6, 4), (4, 2)) == ("W1", (4, 6), (2, 4))
    assert rows.view("B1", (6, 1), (5, 0)) == ("b1", (6,), (5,))
    assert Conventions(bias_shape="row").view("B2", (3, 1), (1, 0)) == ("B2", (1, 3), (0, 1))
    assert not Conventions().reshapes() and rows.reshapes()
    assert rows.view("B2", (), None) == ("b2", (), None)  # a problem row has no shape

    def times_m(params, X, y):  # dW1 m times too large, the rest right
        grads = cs231n_two_layer()(params, X, y)
        return {**grads, "W1": grads["W1"] * X.shape[0]}

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(times_m, *ARCH, conventions=Conventions(**CS231N),
                        settings=Settings(max_examples=30))  # fmt: skip
    text = str(raised.value)
    n0, n1 = ARCH[0][0], ARCH[0][1]
    assert "minimal case (names, shapes and indices as your code has them):" in text
    assert f"W1    {n0}x{n1} " in text and f"b1    {n1} " in text
    assert f"W1 ({n0}, {n1}) float64:" in text
