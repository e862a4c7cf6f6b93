"""Correct backprop code in the styles real code is written in, verbatim-style.

cs231n's ``TwoLayerNet.loss`` (rows, ``W1``/``b1``, integer labels, a
``(loss, grads)`` pair), the deeplearning.ai course's two-layer step
(columns, ``dW1``/``db1`` keys and a ``dA1`` beside them), Nielsen's
``Network.backprop(x, y)`` (one sample, ``(nabla_b, nabla_w)``), Denny
Britz's nn-from-scratch (rows, labels, summed over the batch, ``reg * W``),
and code that reads its labels back with ``argmax(Y)``.  ``STYLES`` gives
each with its network, the ``conventions`` to check it with and the
declaration inference must find.  Read by ``benchmarks.inferred_false_alarms``
and ``property_tests/test_inference.py``.
"""

from __future__ import annotations

import itertools

import numpy as np

from manual_bp import Net
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.inference import Auto

SOFTMAX_NET = Net.of([3, 4, 2], ["relu", "softmax"], "cross_entropy")


def cs231n_two_layer(params, X, y):
    """cs231n's TwoLayerNet.loss: rows, W1/b1, integer labels, (loss, grads)."""
    W1, b1 = params["W1"], params["b1"]
    W2, b2 = params["W2"], params["b2"]
    N = X.shape[0]
    hidden = np.maximum(0, X.dot(W1) + b1)
    scores = hidden.dot(W2) + b2
    scores -= np.max(scores, axis=1, keepdims=True)
    probs = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    grads = {}
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1
    dscores /= N
    grads["W2"] = hidden.T.dot(dscores)
    grads["b2"] = np.sum(dscores, axis=0)
    dhidden = dscores.dot(W2.T)
    dhidden[hidden <= 0] = 0
    grads["W1"] = X.T.dot(dhidden)
    grads["b1"] = np.sum(dhidden, axis=0)
    return loss, grads


def course_two_layer(parameters, X, Y):
    """The course's forward and backward in one: columns, W1/b1, dW1 keys, dA1 too."""
    W1, b1, W2, b2 = parameters["W1"], parameters["b1"], parameters["W2"], parameters["b2"]
    m = X.shape[1]
    Z1 = np.dot(W1, X) + b1
    A1 = np.maximum(0, Z1)
    Z2 = np.dot(W2, A1) + b2
    t = np.exp(Z2 - np.max(Z2, axis=0, keepdims=True))
    A2 = t / np.sum(t, axis=0, keepdims=True)
    dZ2 = A2 - Y
    dW2 = 1 / m * np.dot(dZ2, A1.T)
    db2 = 1 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.array(dA1, copy=True)
    dZ1[Z1 <= 0] = 0
    dW1 = 1 / m * np.dot(dZ1, X.T)
    db1 = 1 / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dA1": dA1, "dW2": dW2, "db2": db2, "dW1": dW1, "db1": db1}


def course_without_1_over_m(parameters, X, Y):
    """The same with the classic bug: no 1/m anywhere."""
    m = X.shape[1]
    return {k: v if k == "dA1" else v * m for k, v in course_two_layer(parameters, X, Y).items()}


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Network:
    """Nielsen's network.py: one sample at a time, (nabla_b, nabla_w), quadratic cost."""

    def __init__(self, sizes):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.zeros((y, 1)) for y in sizes[1:]]  # the check sets them
        self.weights = [np.zeros((y, x)) for x, y in itertools.pairwise(sizes)]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights, strict=True):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = (activations[-1] - y) * sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            z = zs[-l]
            sp = sigmoid(z) * (1 - sigmoid(z))
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)


REG_LAMBDA = 0.01


def denny_britz(model, X, y):
    """nn-from-scratch's gradient step: rows, labels, summed over the batch, reg * W."""
    W1, b1, W2, b2 = model["W1"], model["b1"], model["W2"], model["b2"]
    z1 = X.dot(W1) + b1
    a1 = np.tanh(z1)
    z2 = a1.dot(W2) + b2
    exp_scores = np.exp(z2)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    delta3 = probs
    delta3[range(len(X)), y] -= 1
    dW2 = (a1.T).dot(delta3)
    db2 = np.sum(delta3, axis=0, keepdims=True)
    delta2 = delta3.dot(W2.T) * (1 - np.power(a1, 2))
    dW1 = np.dot(X.T, delta2)
    db1 = np.sum(delta2, axis=0)
    dW2 += REG_LAMBDA * W2
    dW1 += REG_LAMBDA * W1
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def argmax_targets(params, X, Y):
    """Columns, our names, but the labels read back from Y with argmax."""
    labels = np.argmax(Y, axis=0)
    one_hot = np.eye(Y.shape[0])[:, labels]
    Z1 = params["W1"] @ X + params["B1"]
    A1 = np.maximum(Z1, 0)
    Z2 = params["W2"] @ A1 + params["B2"]
    E = np.exp(Z2 - Z2.max(axis=0))
    dZ2 = (E / E.sum(axis=0) - one_hot) / X.shape[1]
    dZ1 = (params["W2"].T @ dZ2) * (Z1 > 0)
    return {
        "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True),
        "W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
    }  # fmt: skip


STYLES = {
    "cs231n": (
        cs231n_two_layer, SOFTMAX_NET, "auto",
        Conventions(layout="rows", names="W1/b1", targets="labels"),
    ),
    "course": (course_two_layer, SOFTMAX_NET, "auto", Conventions(names="W1/b1")),
    "nielsen": (
        Network([3, 4, 2]).backprop, Net.of([3, 4, 2], ["sigmoid", "sigmoid"], "mse"), "auto",
        Conventions(container="nabla", per_sample=True),
    ),
    "denny": (
        denny_britz, Net.of([2, 5, 3], ["tanh", "softmax"], "cross_entropy"),
        Auto({"reduction": "sum", "l2": REG_LAMBDA}),
        Conventions(layout="rows", names="W1/b1", targets="labels", reduction="sum",
                    l2=REG_LAMBDA),
    ),
    "argmax of Y": (argmax_targets, SOFTMAX_NET, "auto", Conventions(targets="one_hot")),
}  # fmt: skip
