"""Real code checked as its author wrote it (issue 24, first part): the course's
``dW1``/``db1`` keys beside its ``dA``/``dZ`` entries, cs231n's ``(loss,
grads)``, a student's ``dw1``, and a hint naming the convention a raising
function most likely needs."""

from __future__ import annotations

import numpy as np
import pytest

from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.layer_check import LayerMismatch, check_layer
from manual_bp_reference.settings import Settings

NET = ([2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy")


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def course_backward(parameters, X, Y, *, one_over_m=True):
    """deeplearning.ai style: columns, ``W1``/``b1`` params, ``dW1``/``db1``
    gradients and the ``dA``/``dZ`` entries the course keeps in ``grads``."""
    m = X.shape[1]
    W1, b1 = parameters["W1"], parameters["b1"]
    W2, b2 = parameters["W2"], parameters["b2"]
    A1 = np.tanh(np.dot(W1, X) + b1)
    A2 = sigmoid(np.dot(W2, A1) + b2)
    dZ2 = A2 - Y
    scale = 1 / m if one_over_m else 1.0
    grads = {"dZ2": dZ2}
    grads["dW2"] = scale * np.dot(dZ2, A1.T)
    grads["db2"] = scale * np.sum(dZ2, axis=1, keepdims=True)
    grads["dA1"] = np.dot(W2.T, dZ2)
    dZ1 = grads["dA1"] * (1 - np.power(A1, 2))
    grads["dW1"] = scale * np.dot(dZ1, X.T)
    grads["db1"] = scale * np.sum(dZ1, axis=1, keepdims=True)
    return grads


def test_the_course_keys_pass_and_the_extra_entries_are_a_note():
    report = check_gradients(
        course_backward,
        *NET,
        conventions=Conventions(names="W1/b1"),
        settings=Settings(max_examples=10),
    )
    notes = " ".join(sorted(report.notes))
    assert "'dW1' for W1" in notes and "'db2' for B2" in notes
    assert "not checked: ['dZ2', 'dA1']" in notes


def test_a_bug_under_the_course_keys_is_still_caught_and_named():
    def missing_one_over_m(parameters, X, Y):
        return course_backward(parameters, X, Y, one_over_m=False)

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            missing_one_over_m,
            *NET,
            conventions=Conventions(names="W1/b1"),
            settings=Settings(max_examples=20),
        )
    assert raised.value.verdict == "wrong"
    assert "missing 1/m" in str(raised.value)


def test_a_students_lowercase_keys_are_read():
    def student(params, X, Y):
        grads = course_backward(params, X, Y)
        return {"dw1": grads["dW1"], "db1": grads["db1"], "dw2": grads["dW2"], "db2": grads["db2"]}

    report = check_gradients(
        student, *NET, conventions=Conventions(names="W1/b1"), settings=Settings(max_examples=5)
    )
    assert any("'dw1' for W1" in note for note in report.notes)


def test_a_loss_and_grads_pair_is_read_as_cs231n_returns_it():
    def fully_connected_loss(params, X, y):
        N = X.shape[0]
        h = np.tanh(X @ params["W1"] + params["b1"])
        p = sigmoid(h @ params["W2"] + params["b2"])
        loss = -np.mean(y * np.log(p[:, 0]) + (1 - y) * np.log(1 - p[:, 0]))
        d2 = (p[:, 0] - y)[:, None] / N
        d1 = (d2 @ params["W2"].T) * (1 - h**2)
        grads = {"W1": X.T @ d1, "b1": d1.sum(0), "W2": h.T @ d2, "b2": d2.sum(0)}
        return loss, grads

    report = check_gradients(
        fully_connected_loss,
        *NET,
        conventions=Conventions(layout="rows", names="W1/b1", targets="labels"),
        settings=Settings(max_examples=10),
    )
    assert any("returned (loss, grads)" in note for note in report.notes)


def test_missing_gradients_still_fail_whatever_else_is_returned():
    def only_extras(parameters, X, Y):
        grads = course_backward(parameters, X, Y)
        return {key: value for key, value in grads.items() if key[1] in "AZ"}

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            only_extras,
            *NET,
            conventions=Conventions(names="W1/b1"),
            settings=Settings(max_examples=5),
        )
    assert raised.value.verdict == "wrong" and "missing key" in str(raised.value)


@pytest.mark.parametrize(
    ("declared", "hint"),
    [
        ({}, "declare names='W1/b1' (--names W1/b1)"),
        ({"names": "W1/b1"}, "declare layout='rows' (--layout rows)"),
    ],
)
def test_a_forgotten_convention_is_named_when_the_code_raises(declared, hint):
    def rows_style(params, X, y):  # cs231n: rows, b1, integer labels
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        h = np.maximum(0, X @ W1 + b1)
        p = sigmoid(h @ W2 + b2)[:, 0]
        d2 = ((p - y) / X.shape[0])[:, None]
        d1 = (d2 @ W2.T) * (h > 0)
        return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": h.T @ d2, "b2": d2.sum(0)}

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            rows_style,
            [2, 3, 1],
            ["relu", "sigmoid"],
            "binary_cross_entropy",
            conventions=Conventions(**declared),
            settings=Settings(max_examples=5),
        )
    assert raised.value.verdict == "raised"
    assert hint in str(raised.value)


def test_labels_are_hinted_when_the_code_indexes_with_its_targets():
    def labels_style(params, X, y):  # indexes the class scores with integer labels
        scores = X.T @ params["W1"].T + params["B1"].T
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        probs[np.arange(X.shape[1]), y] -= 1
        return {"W1": (probs.T @ X.T) / X.shape[1], "B1": probs.sum(0)[:, None] / X.shape[1]}

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            labels_style, [2, 3], ["softmax"], "cross_entropy", conventions=Conventions(),
            settings=Settings(max_examples=5),
        )  # fmt: skip
    assert raised.value.verdict == "raised"
    assert "declare targets='labels' (--targets labels)" in str(raised.value)
    # Not declared, the labels are inferred.
    report = check_gradients(
        labels_style, [2, 3], ["softmax"], "cross_entropy", settings=Settings(max_examples=5)
    )
    assert report.conventions == Conventions(targets="labels")


def test_bias_gradients_may_each_keep_their_own_shape():
    """Denny Britz's nn-from-scratch keeps ``db1`` flat ``(H,)`` and ``db2`` a
    row ``(1, C)``: each is read as its values, with a note."""

    def britz(model, X, y):
        W1, b1, W2, b2 = model["W1"], model["b1"], model["W2"], model["b2"]
        a1 = np.tanh(X.dot(W1) + b1)
        scores = a1.dot(W2) + b2
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        delta3 = exp / exp.sum(axis=1, keepdims=True)
        delta3[range(X.shape[0]), y] -= 1
        delta3 /= X.shape[0]
        delta2 = delta3.dot(W2.T) * (1 - np.power(a1, 2))
        return {"W1": np.dot(X.T, delta2), "b1": np.sum(delta2, axis=0),
                "W2": (a1.T).dot(delta3), "b2": np.sum(delta3, axis=0, keepdims=True)}  # fmt: skip

    rows = {"layout": "rows", "names": "W1/b1", "targets": "labels"}
    report = check_gradients(
        britz,
        [2, 3, 2],
        ["tanh", "softmax"],
        "cross_entropy",
        conventions=Conventions(**rows),
        settings=Settings(max_examples=10),
    )
    assert any("B2: gradient returned with shape (1, 2) (row)" in note for note in report.notes)

    def wrong_size(model, X, y):  # a bias gradient of the wrong size is still refused
        grads = britz(model, X, y)
        grads["b2"] = np.concatenate([grads["b2"], grads["b2"]], axis=1)
        return grads

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            wrong_size,
            [2, 3, 2],
            ["tanh", "softmax"],
            "cross_entropy",
            conventions=Conventions(**rows),
            settings=Settings(max_examples=5),
        )
    assert "shape (1, 4), expected (2,)" in str(raised.value)


def _course_gradients(params, X, Y, *, one_over_m=True, tanh_prime_of_z=False):
    Z1 = params["W1"] @ X + params["B1"]
    A1 = np.tanh(Z1)
    dZ2 = sigmoid(params["W2"] @ A1 + params["B2"]) - Y
    dZ1 = (params["W2"].T @ dZ2) * (1 - (Z1 if tanh_prime_of_z else A1) ** 2)
    scale = 1 / X.shape[1] if one_over_m else 1.0
    return {"W1": scale * dZ1 @ X.T, "B1": scale * dZ1.sum(1, keepdims=True),
            "W2": scale * dZ2 @ A1.T, "B2": scale * dZ2.sum(1, keepdims=True)}  # fmt: skip


@pytest.mark.parametrize(
    ("code", "declared", "suggestion"),
    [
        # The loss summed over the batch, declared (by default) as a mean.
        (lambda p, X, Y: _course_gradients(p, X, Y, one_over_m=False), {},
         "passes on this case with --reduction sum (reduction='sum'): did you mean it?"),
        # cs231n's 0.5 * reg * sum W^2 declared with the l2 = 2 * reg rule of reg * sum W^2.
        (lambda p, X, Y: {k: v + 0.1 * p[k] if k[0] == "W" else v
                          for k, v in _course_gradients(p, X, Y).items()}, {"l2": 0.2},
         "passes on this case with --l2 0.1 (l2=0.1)"),
    ],
)  # fmt: skip
def test_another_declaration_that_passes_is_named_and_the_verdict_stands(
    code, declared, suggestion
):
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            code,
            *NET,
            conventions=Conventions(**declared),
            settings=Settings(max_examples=20, isolate=False),
        )
    assert raised.value.verdict == "wrong"
    assert suggestion in str(raised.value)


def test_a_bug_no_declaration_explains_gets_no_suggestion():
    def wrong_derivative(params, X, Y):
        return _course_gradients(params, X, Y, tanh_prime_of_z=True)

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            wrong_derivative,
            *NET,
            settings=Settings(max_examples=20, param_bound=2.0, input_bound=2.0),
        )
    assert raised.value.verdict == "wrong"
    assert "passes on this case" not in str(raised.value)
    assert "partly in float32" not in str(raised.value)


def test_the_minimal_case_is_pasteable_into_the_users_own_call():
    """The report holds the minimal case in the user's conventions (rows, ``b1``
    flat, integer labels): pasted next to the function, it runs and gives
    the failing gradients again."""

    def forgot_one_over_n(params, X, y):
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        h = np.maximum(0, X @ W1 + b1)
        scores = h @ W2 + b2
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        dscores = exp / exp.sum(axis=1, keepdims=True)
        dscores[np.arange(X.shape[0]), y] -= 1  # and no / N
        dh = (dscores @ W2.T) * (h > 0)
        return {"W1": X.T @ dh, "b1": dh.sum(0), "W2": h.T @ dscores, "b2": dscores.sum(0)}

    rows = {"layout": "rows", "names": "W1/b1", "targets": "labels"}
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            forgot_one_over_n,
            [2, 3, 2],
            ["relu", "softmax"],
            "cross_entropy",
            conventions=Conventions(**rows),
            settings=Settings(max_examples=20),
        )
    text = str(raised.value)
    pasted = text.split("in your conventions (paste it next to your function):\n")[1]
    pasted = pasted.split("\nseed ")[0]
    namespace = {"np": np, "forgot_one_over_n": forgot_one_over_n}  # the user's own name
    exec(pasted, namespace)
    case = raised.value.case
    assert namespace["X"].shape == (case.m, 2) and namespace["Y"].dtype.kind == "i"
    assert namespace["params"]["b1"].shape == (3,)
    # The user's gradients on the pasted inputs are the ones the report judged.
    np.testing.assert_array_equal(
        namespace["grads"]["W1"], forgot_one_over_n(*raised.value.conventions.to_user(case))["W1"]
    )


def _affine_forward(x, w, b):  # cs231n: rows, x (N, D), w (D, M), b (M,)
    return x @ w + b, (x, w, b)


@pytest.mark.parametrize(
    ("bug", "named"),
    [
        ("mean", "likely: db averaged over the batch"),
        ("divided", "likely: dw and db divided by the batch size"),
    ],
)
def test_classic_affine_bugs_are_named(bug, named):
    def affine_backward(dout, cache):
        x, w, _ = cache
        dx, dw, db = dout @ w.T, x.T @ dout, dout.sum(axis=0)
        if bug == "mean":
            db = dout.mean(axis=0)
        if bug == "divided":
            dw, db = dw / x.shape[0], db / x.shape[0]
        return dx, dw, db

    with pytest.raises(LayerMismatch) as raised:
        check_layer(
            affine_backward, "affine", forward=_affine_forward, settings=Settings(max_examples=20)
        )
    assert named in str(raised.value)


class Float32Net:
    """A student's class that computes in float32 whatever it is given."""

    def __init__(self, one_over_m=True):
        self.dtype, self.one_over_m = np.float32, one_over_m

    def backprop(self, params, X, Y):
        p = {key: value.astype(self.dtype) for key, value in params.items()}
        X, Y = X.astype(self.dtype), Y.astype(self.dtype)
        return _course_gradients(p, X, Y, one_over_m=self.one_over_m)


def test_code_that_computes_in_float32_is_judged_with_float32s_rounding():
    report = check_gradients(Float32Net().backprop, *NET, settings=Settings(max_examples=50))
    assert any("your code computes in float32" in note for note in report.notes)


def test_a_bug_in_float32_code_is_still_caught():
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            Float32Net(one_over_m=False).backprop, *NET, settings=Settings(max_examples=50)
        )
    assert raised.value.verdict == "wrong" and "missing 1/m" in str(raised.value)


def test_a_pair_of_caches_and_grads_is_a_verdict_not_a_crash():
    def caches_and_grads(parameters, X, Y):  # the course's ragged caches first
        caches = [((X, parameters["W1"], parameters["b1"]), X), ((X, parameters["W2"]),)]
        return caches, course_backward(parameters, X, Y)

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(
            caches_and_grads,
            *NET,
            conventions=Conventions(names="W1/b1"),
            settings=Settings(max_examples=5),
        )
    assert raised.value.verdict == "wrong" and "tuple of 2 (list, dict)" in str(raised.value)


def test_a_cost_of_one_entry_counts_as_the_loss_of_a_pair():
    def cost_and_grads(parameters, X, Y):  # a course cost without np.squeeze: (1, 1)
        return np.array([[0.69]]), course_backward(parameters, X, Y)

    report = check_gradients(
        cost_and_grads,
        *NET,
        conventions=Conventions(names="W1/b1"),
        settings=Settings(max_examples=5),
    )
    assert any("returned (loss, grads)" in note for note in report.notes)


def test_gradients_right_only_to_float32s_rounding_say_so():
    def half_cast(params, X, Y):  # params and X in float32, Y left in float64
        p = {key: value.astype(np.float32) for key, value in params.items()}
        return _course_gradients(p, X.astype(np.float32), Y)

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(half_cast, *NET, settings=Settings(max_examples=50))
    assert raised.value.verdict == "wrong"
    assert "your code seems to compute partly in float32" in str(raised.value)


def test_writes_by_contract_are_no_note_and_other_writes_are():
    """cs231n's batchnorm forward keeps its running statistics in ``bn_param``
    (its contract: no note); the same forward also scaling ``x`` in place is
    a write worth a note."""

    def batchnorm_forward(x, gamma, beta, bn_param, scale_x_in_place=False):
        momentum = bn_param.get("momentum", 0.9)
        mu, var = x.mean(axis=0), x.var(axis=0)
        running = bn_param.get("running_mean", np.zeros(x.shape[1]))
        bn_param["running_mean"] = momentum * running + (1 - momentum) * mu
        xhat = (x - mu) / np.sqrt(var + bn_param.get("eps", 1e-5))
        if scale_x_in_place:
            x *= 1.0
            x[...] = x + 1.0
        return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + bn_param.get("eps", 1e-5)))

    def batchnorm_backward(dout, cache):
        xhat, gamma, std = cache
        N = dout.shape[0]
        dxhat = dout * gamma
        dx = (N * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (N * std)
        return dx, (dout * xhat).sum(0), dout.sum(0)

    report = check_layer(
        batchnorm_backward,
        "batchnorm",
        forward=batchnorm_forward,
        settings=Settings(max_examples=10),
    )
    assert not any("wrote into its arguments" in note for note in report.notes), report.notes

    def scaling(x, gamma, beta, bn_param):
        return batchnorm_forward(x, gamma, beta, bn_param, scale_x_in_place=True)

    report = check_layer(
        batchnorm_backward, "batchnorm", forward=scaling, settings=Settings(max_examples=10)
    )
    (note,) = [note for note in report.notes if "wrote into its arguments" in note]
    assert "in place (x):" in note  # x, and not its param


def test_a_transposed_dw1_in_a_loss_and_grads_pair_is_named_without_a_dtype_note():
    """cs231n's TwoLayerNet.loss returns (loss, grads); with dW1 transposed the
    wrong shape is read from inside the pair, and no float32 note appears
    (a missing or misshapen gradient is no rounding)."""

    def two_layer(params, X, y):
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        N = X.shape[0]
        h1 = np.maximum(0, X.dot(W1) + b1)
        scores = h1.dot(W2) + b2
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(N), y]).mean()
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        dscores /= N
        dh1 = dscores.dot(W2.T)
        dh1[h1 <= 0] = 0
        grads = {"W1": dh1.T.dot(X), "b1": dh1.sum(axis=0),  # dW1 transposed
                 "W2": h1.T.dot(dscores), "b2": dscores.sum(axis=0)}  # fmt: skip
        return loss, grads

    rows = Conventions(layout="rows", names="W1/b1", targets="labels")
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(two_layer, [4, 6, 3], ["relu", "softmax"], "cross_entropy",
                        conventions=rows, settings=Settings(max_examples=20))  # fmt: skip
    assert raised.value.comparison.diagnosis.bug_class == "transposed matrix"
    assert "float32" not in str(raised.value)
