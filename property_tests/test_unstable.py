"""Correct maths that overflows is its own verdict, told apart from wrong maths."""

import numpy as np
import pytest

from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.settings import Settings

ARCH = ([2, 16, 1], ["tanh", "sigmoid"], "binary_cross_entropy")


def course_code(sign=1.0):
    """The widespread course backprop: dAL from the loss, then sigmoid'."""

    def backprop(params, X, Y):
        with np.errstate(all="ignore"):
            return _backprop(params, X, Y)

    def _backprop(params, X, Y):
        m = X.shape[1]
        Z1 = params["W1"] @ X + params["B1"]
        A1 = np.tanh(Z1)
        Z2 = params["W2"] @ A1 + params["B2"]
        A2 = 1 / (1 + np.exp(-Z2))
        dA2 = -(Y / A2 - (1 - Y) / (1 - A2))
        dZ2 = dA2 * A2 * (1 - A2) / m
        dZ1 = (params["W2"].T @ dZ2) * (1 - A1**2) * sign
        return {
            "W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True),
        }  # fmt: skip

    return backprop


def test_correct_but_unstable_code_gets_its_own_verdict():
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(course_code(), *ARCH, settings=Settings(max_examples=30, dtype="float32"))
    mismatch = caught.value
    assert mismatch.verdict == "correct maths, unstable numerics", str(mismatch)
    text = str(mismatch)
    assert "NaN/inf in the user's gradients" in text
    assert "saturated output" in text
    # Right formulas: no bug class, in the report or in the JSON (issue 22).
    assert mismatch.comparison.diagnosis is None and "likely bug" not in text


def test_wrong_and_unstable_code_is_wrong():
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(
            course_code(sign=-1.0), *ARCH, settings=Settings(max_examples=30, dtype="float32")
        )
    assert caught.value.verdict == "wrong"


def test_the_input_range_is_the_users_choice():
    # With small enough inputs the same code passes outright.
    report = check_gradients(
        course_code(), *ARCH, settings=Settings(max_examples=20, param_bound=0.25, input_bound=1.0)
    )
    assert report.examples == 20
    with pytest.raises(ValueError, match="param_bound"):
        check_gradients(course_code(), *ARCH, settings=Settings(param_bound=0.0))
