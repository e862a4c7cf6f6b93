"""The constants behind the tolerance are true of the functions they describe."""

import numpy as np
import pytest

from manual_bp.activations import ACTIVATIONS
from reference.cases import Case
from reference.compare import compare
from reference.jax_setup import jax, jnp
from reference.tolerance import ERROR_MODELS

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
    check = compare(Case(params, X, Y, ["identity"], "mse"))
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
    check = compare(Case(params, X, Y, ["tanh", "identity"], "mse"))
    # Every tolerance stays within a few thousand ulps of the value it guards.
    for v in check.variables.values():
        assert (
            v.tolerance <= 1e4 * np.finfo(np.float64).eps * max(abs(v.oracle), 1e-300)
            or abs(v.oracle) < 1e-12
        ), v
