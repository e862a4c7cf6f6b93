"""Saturated logits give exact, finite gradients, on both sides."""

import numpy as np
import pytest

from manual_bp import DNN, backward, forward
from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from manual_bp_reference.oracle import oracle_gradients

# Pre-activations up to +-1000 in float64 and +-100 in float32.
EXTREMES = {
    "float64": [-1000.0, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1000.0],
    "float32": [-100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0],
}
PAIRS = [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy")] + [
    (name, "mse") for name in sorted(ACTIVATIONS)
]


def saturating_case(hidden: str, output: str, loss: str, dtype: str):
    """X = identity rows, so Z1 = W1 holds every extreme value exactly."""
    values = np.array(EXTREMES[dtype], dtype=dtype)
    k = values.size
    params = {
        "W1": np.tile(values, (2, 1)) * np.array([[1.0], [-1.0]], dtype=dtype),
        "B1": np.zeros((2, 1), dtype=dtype),
        "W2": np.array([[1.0, -1.0], [0.5, 2.0]], dtype=dtype),
        "B2": np.array([[values[-1]], [values[0]]], dtype=dtype),
    }
    X = np.eye(k, dtype=dtype)
    rng = np.random.default_rng(0)
    if loss == "cross_entropy":
        Y = np.eye(2, dtype=dtype)[:, rng.integers(0, 2, k)]
    else:
        Y = rng.random((2, k)).astype(dtype)
    return params, X, Y, [hidden, output]


# Every output pair behind one hidden activation, and every hidden activation
# in front of one output (each combination compiles the oracle once).
COMBINATIONS = [("elu", output, loss) for output, loss in PAIRS] + [
    (hidden, "identity", "mse") for hidden in sorted(ACTIVATIONS) if hidden != "elu"
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("hidden", "output", "loss"), COMBINATIONS)
def test_extreme_pre_activations_give_finite_matching_gradients(hidden, output, loss, dtype):
    params, X, Y, activations = saturating_case(hidden, output, loss, dtype)
    case = Case.of(params, X, Y, activations, loss)
    _, cache = forward(params, X, case.net)
    grads = backward(cache, Y, case.net, input_gradient=True)
    oracle = oracle_gradients(case, input_gradient=True)
    for key, value in grads.items():
        assert value.dtype == dtype and np.all(np.isfinite(value)), key
        assert np.all(np.isfinite(oracle.grads[key])), f"jax.grad is not finite in {key}"
    check = compare(Case.of(params, X, Y, activations, loss))
    assert np.isfinite(check.loss_manual) and np.isfinite(check.loss_oracle)
    assert check.ok, check.report()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_confident_wrong_logit_gives_a_large_finite_loss(dtype):
    net = DNN([1, 1], ["sigmoid"], "binary_cross_entropy", dtype=dtype)
    net.params = {"W1": np.array([[1.0]], dtype=dtype), "B1": np.zeros((1, 1), dtype=dtype)}
    # -log(sigmoid(-100)) = 100 + log(1 + e^-100), computed from the logit.
    assert net.loss(np.array([[-100.0]]), np.array([[1.0]])) == pytest.approx(100.0, rel=1e-6)


def test_the_same_seed_gives_bit_identical_init_batches_and_history():
    from manual_bp.data import two_moons

    X, Y = two_moons(50, seed=1)
    nets = [DNN([2, 5, 1], ["relu", "sigmoid"], seed=42) for _ in range(2)]
    np.testing.assert_equal(nets[0].params, nets[1].params)
    histories = [net.fit(X, Y, 4, 0.3, batch_size=7) for net in nets]
    assert histories[0] == histories[1]
    np.testing.assert_equal(nets[0].params, nets[1].params)
    other = DNN([2, 5, 1], ["relu", "sigmoid"], seed=43)
    assert not np.array_equal(
        other.params["W1"], DNN([2, 5, 1], ["relu", "sigmoid"], seed=42).params["W1"]
    )
