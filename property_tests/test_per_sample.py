"""Backprop one sample at a time, checked as written: Nielsen's
``Network.backprop(x, y)`` (the book's ``network.py`` and ``network2.py``) with
``Conventions(per_sample=True, container="nabla")``, and a per-sample
function of the params."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.per_sample import OneSampleAtATime, holds_its_network
from manual_bp_reference.settings import Settings

NIELSEN = Conventions(per_sample=True, container="nabla")
FEW = Settings(max_examples=25)


# Nielsen's network.py (Python 3), the parts backprop uses, as in the book.
class Network:
    def __init__(self, sizes):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]  # noqa: NPY002
        self.weights = [np.random.randn(y, x)  # noqa: NPY002
                        for x, y in zip(sizes[:-1], sizes[1:], strict=True)]  # noqa: RUF007  # fmt: skip

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        # feedforward
        activation = x
        activations = [x]  # list to store all the activations, layer by layer
        zs = []  # list to store all the z vectors, layer by layer
        for b, w in zip(self.biases, self.weights, strict=True):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        # backward pass
        delta = self.cost_derivative(activations[-1], y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            z = zs[-l]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def cost_derivative(self, output_activations, y):
        return output_activations - y


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class CrossEntropyCost:  # network2.py
    @staticmethod
    def delta(z, a, y):
        return a - y


class Network2(Network):
    """network2.py's backprop: the cost's own delta at the output."""

    cost = CrossEntropyCost

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights, strict=True):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = (self.cost).delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sigmoid_prime(zs[-l])
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)


class ForgotSigmoidPrime(Network):
    def backprop(self, x, y):
        nabla_b, nabla_w = [None] * 2, [None] * 2
        z1 = self.weights[0] @ x + self.biases[0]
        a1 = sigmoid(z1)
        z2 = self.weights[1] @ a1 + self.biases[1]
        delta = (sigmoid(z2) - y) * sigmoid_prime(z2)
        nabla_b[1], nabla_w[1] = delta, delta @ a1.T
        delta = self.weights[1].T @ delta  # * sigmoid_prime(z1) forgotten
        nabla_b[0], nabla_w[0] = delta, delta @ x.T
        return nabla_b, nabla_w


def test_nielsens_network_passes_as_written():
    net = Network([2, 3, 1])
    report = check_gradients(net.backprop, [2, 3, 1], ["sigmoid", "sigmoid"], "mse",
                             conventions=NIELSEN, settings=FEW)  # fmt: skip
    assert report.examples == 25
    deep = Network([3, 4, 4, 2])
    sizes, activations = [3, 4, 4, 2], ["sigmoid"] * 3
    assert check_gradients(deep.backprop, sizes, activations, "mse", conventions=NIELSEN,
                           settings=FEW).examples == 25  # fmt: skip


def test_network2s_cross_entropy_passes_as_binary_cross_entropy():
    net = Network2([2, 3, 2])
    report = check_gradients(net.backprop, [2, 3, 2], ["sigmoid", "sigmoid"],
                             "binary_cross_entropy", conventions=NIELSEN, settings=FEW)  # fmt: skip
    assert report.examples == 25


def test_a_bug_in_nielsen_style_code_is_caught_and_named():
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(ForgotSigmoidPrime([2, 3, 1]).backprop, [2, 3, 1],
                        ["sigmoid", "sigmoid"], "mse", conventions=NIELSEN)  # fmt: skip
    mismatch = raised.value
    assert mismatch.verdict == "wrong"
    assert mismatch.comparison.diagnosis.bug_class == "wrong activation derivative", str(mismatch)
    assert "one sample at a time" in str(mismatch)  # the pasteable call says how it was called


def _per_sample_dict(params, x, y):
    """One sample, a dict of params, the mean-squared error's gradient."""
    a1 = np.tanh(params["W1"] @ x + params["B1"])
    a2 = params["W2"] @ a1 + params["B2"]
    d2 = a2 - y
    d1 = (params["W2"].T @ d2) * (1 - a1**2)
    return {"W1": d1 @ x.T, "B1": d1, "W2": d2 @ a1.T, "B2": d2}


def test_a_per_sample_function_of_the_params_averaged_or_summed():
    arch = ([2, 3, 1], ["tanh", "identity"], "mse")
    mean = Conventions(per_sample=True)
    assert check_gradients(_per_sample_dict, *arch, conventions=mean, settings=FEW).examples
    summed = Conventions(per_sample=True, reduction="sum")
    assert check_gradients(_per_sample_dict, *arch, conventions=summed, settings=FEW).examples
    with pytest.raises(GradientMismatch):  # undeclared, the per-sample sum is m times the mean
        check_gradients(lambda p, X, Y: _per_sample_sum(p, X, Y), *arch, settings=FEW)


def _per_sample_sum(params, X, Y):
    """The batch function a student writes around a per-sample one: the sum."""
    total = None
    for k in range(X.shape[1]):
        g = _per_sample_dict(params, X[:, k : k + 1], Y[:, k : k + 1])
        total = g if total is None else {key: total[key] + g[key] for key in g}
    return total


def test_the_wrapper_finds_nielsens_method_and_copies_what_it_returns():
    assert holds_its_network(Network([2, 1]).backprop)
    assert not holds_its_network(_per_sample_dict)

    class Reuses:  # hands back the same arrays every call
        def __init__(self):
            self.out = {"g": np.zeros((1, 1))}

        def __call__(self, params, x, y):
            self.out["g"][...] = x
            return self.out

    total = OneSampleAtATime(Reuses(), "columns", average=False)(
        {}, np.array([[1.0, 2.0]]), np.zeros((1, 2))
    )
    assert total["g"][0, 0] == 3.0


def test_the_cli_checks_a_per_sample_function_in_a_file(tmp_path):
    (tmp_path / "net.py").write_text(
        textwrap.dedent("""
        import numpy as np

        def backprop(params, x, y):
            a1 = np.tanh(params["W1"] @ x + params["B1"])
            a2 = params["W2"] @ a1 + params["B2"]
            d2 = a2 - y
            d1 = (params["W2"].T @ d2) * (1 - a1**2)
            return {"W1": d1 @ x.T, "B1": d1, "W2": d2 @ a1.T, "B2": d2}
    """)
    )
    argv = ["check", "net.py:backprop", "--layers", "2,3,1", "--activations", "tanh,identity",
            "--loss", "mse", "--per-sample", "--examples", "10"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "manual_bp", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 10 examples" in done.stdout


def test_a_network_object_of_another_depth_takes_the_checked_nets():
    """The book's loop runs over range(2, self.num_layers): the object's own
    depth must not decide which layers are back-propagated."""
    net = Network([784, 30, 10])
    report = check_gradients(net.backprop, [2, 3, 3, 1], ["sigmoid"] * 3, "mse",
                             conventions=NIELSEN, settings=FEW)  # fmt: skip
    assert report.examples == 25


def test_a_loss_declared_wrong_gets_the_hint_of_the_one_that_passes():
    """network2.py's cross-entropy declared as the quadratic cost: wrong, with
    the loss under which the failing case passes."""
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(Network2([2, 3, 2]).backprop, [2, 3, 2], ["sigmoid", "sigmoid"], "mse",
                        conventions=NIELSEN)  # fmt: skip
    assert raised.value.verdict == "wrong"
    assert "passes on this case with --loss binary_cross_entropy" in str(raised.value)


def test_the_cli_checks_nielsens_method_of_an_object_the_file_makes(tmp_path):
    """``FILE.py:net.backprop``: the method of the file's own Network object."""
    source = Path(__file__).read_text()
    book = source[source.index("class Network:") : source.index("class CrossEntropyCost")]
    (tmp_path / "network.py").write_text(
        "import numpy as np\n\n\n" + book + "\nnet = Network([784, 30, 10])\n"
    )
    argv = ["check", "network.py:net.backprop", "--layers", "2,3,1", "--activations",
            "sigmoid,sigmoid", "--loss", "mse", "--per-sample", "--container", "nabla",
            "--examples", "10"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "manual_bp", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 10 examples" in done.stdout


def test_nielsens_object_takes_params_in_any_container():
    """The object's weights and biases come from a dict, a list in order, or the
    nabla pair: what Conventions.to_user gives each container."""
    W1, B1, W2, B2 = (np.full((1, 1), float(k)) for k in range(4))
    net = Network([1, 1, 1])
    for params in ({"W1": W1, "b1": B1, "W2": W2, "b2": B2}, [W1, B1, W2, B2],
                   ([B1, B2], [W1, W2])):  # fmt: skip
        OneSampleAtATime(net.backprop, "columns", average=True)(
            params, np.zeros((1, 1)), np.zeros((1, 1))
        )
        assert [w[0, 0] for w in net.weights] == [0.0, 2.0], params
        assert [b[0, 0] for b in net.biases] == [1.0, 3.0], params
