"""Backprop targets for ``property_tests/test_campaign.py``, loaded by name
(``property_tests.campaign_targets:slow``) in Dask worker processes.

Conventions of ``manual_bp_reference.campaign.target_function``:
``backprop(params, X, Y, activations, loss) -> grads``; ``STUDENTS`` is the
source of a file of students' functions for one network,
``backprop(params, X, Y)`` in the conventions ``manual-bp check`` takes.
"""

from __future__ import annotations

import os
import time

from manual_bp.architecture import layer_sizes_of
from manual_bp.net import Net
from manual_bp.network import backward, forward

# Long enough that a chunk of a few examples is still running when the test kills its worker.
SLOW_SECONDS = 0.1


# While the file this names exists, ``slow`` waits: the test holds every chunk mid-way.
HOLD = "MANUAL_BP_TEST_HOLD"


def _net(params, X, activations, loss) -> Net:
    """The plain network a campaign target is called with."""
    return Net.of(layer_sizes_of(params, X, len(activations)), activations, loss)


def slow(params, X, Y, activations, loss):
    """manual_bp's correct backward pass, slowly, and held while the hold file exists."""
    time.sleep(SLOW_SECONDS)
    while os.path.exists(os.environ.get(HOLD, "")):
        time.sleep(0.01)
    net = _net(params, X, activations, loss)
    _, cache = forward(params, X, net)
    return backward(cache, Y, net)


def wrong_bias(params, X, Y, activations, loss):
    """A classic bug: dB is the batch sum, not the mean (off by a factor m)."""
    net = _net(params, X, activations, loss)
    _, cache = forward(params, X, net)
    grads = backward(cache, Y, net)
    m = X.shape[1]
    for key in [k for k in grads if k.startswith("B")]:
        grads[key] = grads[key] * m
    return grads


# Students' functions, in the three styles real code is written in, written to a file.
STUDENTS = '''
import numpy as np


def course(params, X, Y):
    """Columns as samples, tanh then sigmoid, binary cross-entropy, mean."""
    W1, B1, W2, B2 = params["W1"], params["B1"], params["W2"], params["B2"]
    m = X.shape[1]
    A1 = np.tanh(W1 @ X + B1)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + B2)))
    dZ2 = A2 - Y
    dZ1 = (W2.T @ dZ2) * (1 - A1**2)
    return {"W1": dZ1 @ X.T / m, "B1": dZ1.sum(axis=1, keepdims=True) / m,
            "W2": dZ2 @ A1.T / m, "B2": dZ2.sum(axis=1, keepdims=True) / m}


def course_sum_bias(params, X, Y):
    """The classic bug: dB1 summed over the batch, not averaged."""
    grads = course(params, X, Y)
    grads["B1"] = grads["B1"] * X.shape[1]
    return grads


def cs231n(params, X, y):
    """Rows as samples, W (n_in, n_out), b (n,), integer labels, relu then softmax."""
    N = X.shape[0]
    h = np.maximum(0, X @ params["W1"] + params["b1"])
    scores = h @ params["W2"] + params["b2"]
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(N), y] -= 1
    dscores = p / N
    dh = dscores @ params["W2"].T
    dh[h <= 0] = 0
    return {"W1": X.T @ dh, "b1": dh.sum(axis=0), "W2": h.T @ dscores, "b2": dscores.sum(axis=0)}


def nielsen(params, X, Y):
    """Per-sample column vectors, lists [W1, B1, W2, B2], sigmoid, mse summed."""
    weights, biases = params[0::2], params[1::2]
    nabla_w = [np.zeros_like(w) for w in weights]
    nabla_b = [np.zeros_like(b) for b in biases]
    for j in range(X.shape[1]):
        activation, activations, zs = X[:, [j]], [X[:, [j]]], []
        for w, b in zip(weights, biases):
            zs.append(w @ activation + b)
            activation = 1 / (1 + np.exp(-zs[-1]))
            activations.append(activation)
        delta = (activations[-1] - Y[:, [j]]) * activations[-1] * (1 - activations[-1])
        for l in range(1, len(weights) + 1):
            if l > 1:
                a = activations[-l]
                delta = (weights[-l + 1].T @ delta) * a * (1 - a)
            nabla_b[-l] += delta
            nabla_w[-l] += delta @ activations[-l - 1].T
    return [g for pair in zip(nabla_w, nabla_b) for g in pair]
'''
