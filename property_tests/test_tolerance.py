"""The constants behind the tolerance are true of the functions they describe."""

import numpy as np
import pytest

from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.tolerance import ERROR_MODELS

ELEMENTWISE = sorted(name for name, a in ACTIVATIONS.items() if a.derivative is not None)
GRID = np.concatenate([np.linspace(-60, 60, 240_001), [-1e3, 1e3]])


def test_every_activation_has_an_error_model():
    assert set(ERROR_MODELS) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_curvature_bounds_the_second_derivative(name):
    def f(z):
        return ACTIVATIONS[name].forward(z, jnp)

    second = jax.vmap(jax.grad(jax.grad(f)))(jnp.asarray(GRID[GRID != 0]))
    assert float(jnp.max(jnp.abs(second))) <= ERROR_MODELS[name].curvature


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_kink_jump_is_the_jump_of_the_derivative_at_zero(name):
    derivative = ACTIVATIONS[name].derivative
    tiny = np.array([[-1e-300, 1e-300]])
    left, right = derivative(tiny, ACTIVATIONS[name].forward(tiny, np))[0]
    assert abs(right - left) == pytest.approx(ERROR_MODELS[name].kink_jump, abs=1e-12)


def test_a_bias_gradient_that_cancels_is_no_false_alarm():
    # A symmetric batch: the bias gradient sums +g and -g to (nearly) 0, where
    # any relative tolerance would fail.
    rng = np.random.default_rng(0)
    half = rng.standard_normal((3, 4))
    X = np.concatenate([half, -half], axis=1)
    params = {"W1": rng.standard_normal((2, 3)), "B1": np.zeros((2, 1))}
    Y = np.concatenate([rng.standard_normal((2, 4))] * 2, axis=1) * 0
    check = compare(Case.of(params, X, Y, ["identity"], "mse"))
    assert abs(check.variables["B1"].oracle) < 1e-15
    assert check.ok, check.report()


def test_the_tolerance_is_tight_enough_to_see_a_one_ulp_per_entry_bias():
    rng = np.random.default_rng(1)
    params = {
        "W1": rng.standard_normal((3, 3)),
        "B1": rng.standard_normal((3, 1)),
        "W2": rng.standard_normal((2, 3)),
        "B2": rng.standard_normal((2, 1)),
    }
    X, Y = rng.standard_normal((3, 8)), rng.standard_normal((2, 8))
    check = compare(Case.of(params, X, Y, ["tanh", "identity"], "mse"))
    # Every tolerance stays within a few thousand ulps of the value it guards.
    for v in check.variables.values():
        assert (
            v.tolerance <= 1e4 * np.finfo(np.float64).eps * max(abs(v.oracle), 1e-300)
            or abs(v.oracle) < 1e-12
        ), v


# --- false alarms a 147,000-example campaign found (manual_bp_reference.campaign, seed 0) ---


@pytest.mark.parametrize("index", [34312, 125288])
def test_the_oracles_own_rounding_of_a_saturated_bce_gradient_is_no_false_alarm(index):
    """jax differentiates softplus as exp(z - logaddexp(z, 0)): at z = 33 the
    sum rounds to z and the oracle's sigmoid to exactly 1, 15 u from ours."""
    from manual_bp_reference.campaign import run_example

    example, outcome = run_example(0, index)
    assert example.case.loss == "binary_cross_entropy" and example.dtype == "float64"
    assert outcome.ok, outcome.worst


def test_softmax_logits_that_round_by_more_than_one_are_undecided_not_failed():
    """float32 logits near 2e9 round by O(1) and some probabilities underflow
    to 0: the linearized softmax bound gave err/tol 5e27 on correct code."""
    from manual_bp_reference.campaign import run_example

    example, outcome = run_example(0, 11113)
    assert example.dtype == "float32" and example.case.activations[-1] == "softmax"
    assert outcome.ok, outcome.worst
    comparison = compare(example.case, explain=False)
    assert comparison.variables["Z6"].undecided > 0
    assert "undecided entries (" in comparison.report()


def test_a_well_rounded_case_has_no_undecided_entry():
    rng = np.random.default_rng(3)
    params = {"W1": rng.normal(size=(4, 3)), "B1": rng.normal(size=(4, 1)),
              "W2": rng.normal(size=(2, 4)), "B2": rng.normal(size=(2, 1))}  # fmt: skip
    X = rng.normal(size=(3, 5))
    Y = np.eye(2)[:, rng.integers(0, 2, 5)]
    comparison = compare(Case.of(params, X, Y, ("tanh", "softmax"), "cross_entropy"))
    assert comparison.ok and comparison.undecided == 0
    assert "undecided" not in comparison.report()


@pytest.mark.parametrize("z", [-40.0, -33.3, -5.0, 0.0, 5.0, 33.3, 200.0])
def test_the_softplus_derivative_model_covers_the_oracles_logaddexp(z):
    """The oracle's softplus'(z) against the exact sigmoid(z) (float64 rounds
    the exact one to within 2 u): within the model's D_f(z) u."""
    from manual_bp.activations import sigmoid

    oracle = float(jax.grad(lambda t: jnp.logaddexp(t, 0.0))(z))
    exact = float(sigmoid(np.array(z)))
    u = float(np.finfo(np.float64).eps)
    bound = ERROR_MODELS["softplus"].derivative_error(np.array(z), np.array(exact))
    assert abs(oracle - exact) <= (bound + 2 * abs(exact)) * u


def test_a_check_report_counts_the_examples_with_undecided_entries():
    from manual_bp_reference.campaign import run_example
    from manual_bp_reference.check import CheckReport

    example, _ = run_example(0, 11113)
    report = CheckReport()
    report.add(example.case, compare(example.case, explain=False))
    assert report.undecided == 1
    assert "undecided: 1 of 1 examples" in str(report)


def test_a_loss_from_subnormal_targets_is_no_false_alarm():
    """Campaign example 342042 (607,000-example run, seed 0): Y = 1e-311, which
    XLA flushes to 0, against logits near -1e5: the manual loss is 3e-306 and
    the oracle's 0; the loss bound once gave err/tol 63.7."""
    from manual_bp_reference.campaign import run_example

    example, outcome = run_example(0, 342042)
    assert example.case.loss == "binary_cross_entropy"
    assert outcome.ok, outcome.worst
