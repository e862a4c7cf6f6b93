"""Bad input gets a clear TypeError or ValueError naming the argument."""

import warnings

import numpy as np
import pytest

from manual_bp import DNN

X = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
Y = np.array([[1.0, 0.0, 1.0]])


def net(**overrides):
    arguments = dict(layer_sizes=[2, 3, 1], seed=0)
    return DNN(**{**arguments, **overrides})


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"layer_sizes": [2]}, ValueError, "layer_sizes"),
        ({"layer_sizes": "23"}, TypeError, "layer_sizes"),
        ({"layer_sizes": [2, 0, 1]}, ValueError, "layer_sizes[1]"),
        ({"layer_sizes": [2, 3.0, 1]}, TypeError, "layer_sizes[1]"),
        ({"activations": ["sigmoid"]}, ValueError, "expected 2 names"),
        ({"activations": ["sigmoid", "swish"]}, ValueError, "activations[1]"),
        ({"activations": ["relu", "identity"]}, ValueError, "binary_cross_entropy needs"),
        (
            {"activations": ["relu", "softmax"], "loss": "binary_cross_entropy"},
            ValueError,
            "needs an output activation",
        ),
        (
            {"loss": "cross_entropy", "activations": ["relu", "softmax"]},
            ValueError,
            "at least 2 outputs",
        ),
        ({"loss": "hinge"}, ValueError, "loss"),
        ({"dtype": "float16"}, TypeError, "dtype"),
        ({"dtype": "int64"}, TypeError, "dtype"),
        ({"dtype": "banana"}, TypeError, "dtype"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "^seed: expected an int >= 0 or None, got -1$"),
    ],
)
def test_construction_errors_name_the_argument(overrides, error, fragment):
    with pytest.raises(error, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        net(**overrides)


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda n: n.forward(X.T), ValueError, r"X: expected shape \(2, m\)"),
        (lambda n: n.forward(X[0]), ValueError, "X: expected a 2-D array"),
        (lambda n: n.forward(X[:, :0]), ValueError, r"m >= 1, got \(2, 0\)"),
        (lambda n: n.forward([[1, 2], [3]]), ValueError, "X"),
        (lambda n: n.forward(X.astype(str)), TypeError, "X: expected a real numeric"),
        (lambda n: n.forward(np.where(X > 1, np.nan, X)), ValueError, "X: expected finite"),
        (lambda n: n.loss(X, Y[0]), ValueError, "Y: expected a 2-D array"),
        (lambda n: n.loss(X, Y.T), ValueError, r"Y: expected shape \(1, 3\)"),
        (lambda n: n.loss(X, Y[:, :1]), ValueError, r"Y: expected shape \(1, 3\)"),
        (lambda n: n.loss(X, 2 * Y), ValueError, r"Y: binary_cross_entropy expects targets"),
        (lambda n: n.step({}, 0.1), ValueError, "grads: expected keys"),
        (
            lambda n: n.step({**n.params, "W1": n.params["W1"][:, :1]}, 0.1),
            ValueError,
            r"grads\['W1'\]: expected shape \(3, 2\)",
        ),
        (
            lambda n: setattr(n, "params", {**n.params, "W3": n.params["W2"]}),
            ValueError,
            "params: expected keys",
        ),
        (
            lambda n: setattr(n, "params", {k: v for k, v in n.params.items() if k != "B2"}),
            ValueError,
            "params: expected keys",
        ),
        (lambda n: setattr(n, "params", [1, 2]), TypeError, "params: expected a dict"),
        (lambda n: n.step(n.params, -1.0), ValueError, "learning_rate"),
        (lambda n: n.step(n.params, 0.0), ValueError, "learning_rate"),
        (
            lambda n: n.compute_gradients(
                n.forward(X)[0], {k: v for k, v in n.forward(X)[1].items() if k != "Z1"}, Y
            ),
            ValueError,
            r"missing \['Z1'\]",
        ),
        (lambda n: n.step(n.params, "0.1"), TypeError, "learning_rate"),
        (lambda n: n.fit(X, Y, epochs=-1, learning_rate=0.1), ValueError, "epochs"),
        (lambda n: n.fit(X, Y, epochs=1.0, learning_rate=0.1), TypeError, "epochs"),
        (
            lambda n: n.fit(X, Y, epochs=1, learning_rate=0.1, batch_size=0),
            ValueError,
            "batch_size",
        ),
        (
            lambda n: setattr(n, "params", {**n.params, "W1": n.params["W1"].T}),
            ValueError,
            r"params\['W1'\]: expected shape \(3, 2\)",
        ),
        (
            lambda n: setattr(n, "params", {**n.params, "B1": np.zeros(3)}),
            ValueError,
            r"params\['B1'\]: expected shape \(3, 1\)",
        ),
        (
            lambda n: setattr(n, "params", {**n.params, "W1": n.params["W1"].astype("float32")}),
            TypeError,
            r"params\['W1'\]: expected dtype float64",
        ),
        (
            lambda n: n.compute_gradients(np.zeros((1, 3)), n.forward(X)[1], Y),
            ValueError,
            "out: expected the output",
        ),
        (
            lambda n: n.compute_gradients(*n.forward(X[:, :2]), Y),
            ValueError,
            r"Y: expected shape \(1, 2\)",
        ),
        (
            lambda n: n.compute_gradients(n.forward(X)[0], {"A0": X}, Y),
            ValueError,
            "cache: expected the dict",
        ),
    ],
)
def test_call_errors_name_the_argument_and_change_nothing(call, error, fragment):
    model = net()
    before = model.params
    with pytest.raises(error, match=fragment):
        call(model)
    np.testing.assert_equal(model.params, before)


def test_cross_entropy_rejects_columns_that_are_not_distributions():
    model = DNN([2, 3], activations=["softmax"], loss="cross_entropy")
    labels = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.4], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"column 2 summing to 0\.9"):
        model.loss(X, labels)


def test_cross_entropy_rejects_negative_targets():
    model = DNN([2, 3], activations=["softmax"], loss="cross_entropy")
    labels = np.array([[1.5, 0.0, 0.5], [-0.5, 1.0, 0.5], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="non-negative targets"):
        model.loss(X, labels)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"expected one of \['elu', 'gelu'"):
        net(activations=["relu", "swish"])
    with pytest.raises(ValueError, match=r"expected one of \['binary_cross_entropy'"):
        net(loss="hinge")


def test_inputs_of_another_dtype_are_converted_to_the_networks():
    model = net(dtype="float32")
    out, cache = model.forward(X.astype(np.float64))
    grads = model.compute_gradients(out, cache, Y.astype(np.int64))
    assert out.dtype == cache["A0"].dtype == grads["W1"].dtype == np.float32


def test_inputs_that_overflow_a_float32_net_say_so_without_a_numpy_warning():
    float32_net = net(dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" would raise
        with pytest.raises(ValueError, match=r"^X: values up to 1e\+39 overflow float32"):
            float32_net.forward(np.array([[1e39, 1.0, 0.0], [0.0, 1.0, 0.0]]))
        with pytest.raises(ValueError, match=r"^X: expected finite values, got NaN or inf$"):
            float32_net.forward(np.array([[np.inf, 1.0, 0.0], [0.0, 1.0, 0.0]]))
