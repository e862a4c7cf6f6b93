"""check_gradients passes a correct backprop and catches broken homework."""

import numpy as np
import pytest

from manual_bp import Net, backward, forward
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.settings import SETTING_NAMES, Settings

SIZES, ACTS, LOSS = [3, 4, 2], ["relu", "sigmoid"], "binary_cross_entropy"


def student_backprop(bug=None):
    """A classic homework backprop, written from scratch, with an optional bug."""

    def backprop(params, X, Y):
        m = X.shape[1]
        Z1 = params["W1"] @ X + params["B1"]
        A1 = np.where(Z1 > 0, Z1, 0.0)
        Z2 = params["W2"] @ A1 + params["B2"]
        A2 = np.exp(-np.logaddexp(0.0, -Z2))
        dZ2 = (A2 - Y) / (1 if bug == "missing 1/m" else m)
        dW2 = dZ2 @ A1.T
        dB2 = dZ2.sum(axis=1, keepdims=True)
        dA1 = params["W2"].T @ dZ2
        dZ1 = dA1 * (Z1 > 0) if bug != "no relu'" else dA1
        dW1 = dZ1 @ X.T
        dB1 = dZ1.sum(axis=1, keepdims=True) if bug != "bias" else dZ1.mean(axis=1, keepdims=True)
        if bug == "sign":
            dW1 = -dW1
        return {"W1": dW1, "B1": dB1, "W2": dW2, "B2": dB2, "Z2": dZ2, "Z1": dZ1}

    return backprop


def test_a_correct_backprop_passes():
    check_gradients(student_backprop(), SIZES, ACTS, LOSS, settings=Settings(max_examples=20))


def test_manual_bp_itself_passes_in_float32():
    net = Net.of(SIZES, ACTS, LOSS)

    def ours(params, X, Y):
        _, cache = forward(params, X, net)
        return backward(cache, Y, net)

    check_gradients(ours, net, settings=Settings(dtype="float32", max_examples=20))


@pytest.mark.parametrize(
    ("bug", "expected"),
    [
        ("missing 1/m", "missing 1/m"),
        ("no relu'", "wrong activation derivative"),
        ("bias", "bias sum axis"),
        ("sign", "sign flip"),
    ],
)
def test_broken_homework_is_caught_with_a_diagnosis(bug, expected):
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(
            student_backprop(bug), SIZES, ACTS, LOSS, settings=Settings(max_examples=50)
        )
    mismatch = caught.value
    assert mismatch.comparison.diagnosis.bug_class == expected, str(mismatch)
    assert "minimal case:" in str(mismatch)
    # Shrinking leaves a small batch.
    assert mismatch.case.X.shape[1] <= 2, mismatch.case


@pytest.mark.parametrize(
    ("arguments", "error", "fragment"),
    [
        ({"activations": ["relu", "identity"]}, ValueError, "binary_cross_entropy needs"),
        ({"layer_sizes": [3]}, ValueError, "layer_sizes"),
        ({"dtype": "float16"}, TypeError, "dtype"),
        ({"max_examples": 0}, ValueError, "max_examples"),
        ({"backprop": "not a function"}, TypeError, "backprop"),
    ],
)
def test_bad_arguments_are_clear_errors(arguments, error, fragment):
    call = {
        "backprop": student_backprop(),
        "layer_sizes": SIZES,
        "activations": ACTS,
        "loss": LOSS,
        **arguments,
    }
    settings = {name: call.pop(name) for name in list(call) if name in SETTING_NAMES}
    with pytest.raises(error, match=fragment):
        check_gradients(**call, settings=Settings(**settings) if settings else None)
