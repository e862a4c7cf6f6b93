"""No false alarm for correct code that adds up in another order, and a wrong
kink convention is still caught (manual_bp_reference.kinks, benchmarks.rounding_variants).

The budget here is small (CI); ``python -m benchmarks.summation_orders`` runs
10^4 examples per order and dtype (benchmarks/RESULTS.md).
"""

import pytest

from benchmarks.rounding_variants import ORDERS, make_backprop
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.settings import Settings

# relu and leaky_relu hidden layers mixed with smooth ones, each canonical head.
ARCHITECTURES = [
    ([3, 6, 5, 4, 3], ["tanh", "relu", "leaky_relu", "softmax"], "cross_entropy"),
    ([2, 5, 4, 1], ["relu", "sigmoid", "sigmoid"], "binary_cross_entropy"),
    ([4, 4, 3, 2], ["leaky_relu", "relu", "identity"], "mse"),
]
BUDGET = 12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=["softmax", "sigmoid", "mse"])
def test_correct_code_in_any_summation_order_passes(architecture, order, dtype):
    sizes, activations, loss = architecture
    layout = "rows" if order == "rows as samples" else "columns"
    report = check_gradients(
        make_backprop(order, activations),
        sizes,
        activations,
        loss,
        conventions=Conventions(layout=layout),
        settings=Settings(dtype=dtype, max_examples=BUDGET),
    )
    assert report.examples == BUDGET


@pytest.mark.parametrize("returns_Z", [True, False], ids=["with Z", "W and B only"])
def test_a_wrong_kink_convention_is_caught(returns_Z):
    sizes, activations, loss = ARCHITECTURES[0]
    wrong = make_backprop("1/m last", activations, kink_convention="right")

    def backprop(params, X, Y):
        grads = wrong(params, X, Y)
        return grads if returns_Z else {k: v for k, v in grads.items() if k[0] in "WB"}

    with pytest.raises(GradientMismatch) as caught:
        check_gradients(backprop, sizes, activations, loss, settings=Settings(max_examples=100))
    assert caught.value.verdict == "wrong"


def test_a_product_that_underflows_in_float64_is_not_a_provable_zero():
    """Found by benchmarks/summation_orders.py: W 2e-162 times X 5e-296 is 0 in
    float64 but not in long double, where the relu's Z is then nonzero."""
    import numpy as np

    from manual_bp_reference.cases import Case
    from manual_bp_reference.check import compare_backprop
    from manual_bp_reference.kinks import away_from_kinks

    activations = ("relu", "sigmoid", "sigmoid")
    W1, W2 = np.zeros((5, 2)), np.zeros((4, 5))
    W1[1, 0], W2[3, 1] = -2.2227587494850775e-162, -0.6322707976214588
    X = np.zeros((2, 12))
    X[0, 11] = -4.892989160178156e-296
    params = {"W1": W1, "B1": np.zeros((5, 1)), "W2": W2, "B2": np.zeros((4, 1)),
              "W3": np.array([[0.0, 0.0, 0.0, 0.25]]), "B3": np.zeros((1, 1))}  # fmt: skip
    case = away_from_kinks(
        Case.of(params, X, np.zeros((1, 12)), activations, "binary_cross_entropy")
    )
    comparison, _, _, _ = compare_backprop(make_backprop("wide accumulation", activations), case)
    assert comparison.ok, comparison.report()
