"""Each activation equals jax.nn's (default arguments), value and derivative."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from manual_bp.activations import ACTIVATIONS, log_softmax
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

JAX_NN = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "identity": lambda z: z,
    "softmax": lambda z: jax.nn.softmax(z, axis=0),
}
# Values and derivatives are O(1) or O(|z|); both sides round in float64, in a
# different order of operations.  Measured worst difference: a few ulps.
RTOL, ATOL = 1e-13, 1e-14

# XLA flushes subnormal numbers to zero on the CPU, so for jax a subnormal z
# sits exactly at a kink (leaky_relu'(-5e-324) is 1 there, 0.01 in NumPy).
# The network property allows for this through the tolerance's underflow
# floor; here, comparing single functions, subnormals are left out.
pre_activations = arrays(
    np.float64,
    (3, 8),  # one shape, so jax compiles each function once
    elements=st.one_of(
        st.just(0.0),
        st.floats(-5, 5, allow_subnormal=False),
        st.floats(-1e3, 1e3, allow_subnormal=False),
    ),
)


def test_every_activation_has_a_jax_counterpart():
    assert set(JAX_NN) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@examples(0.3)
@given(Z=pre_activations)
def test_value_and_derivative_match_jax_nn(name, Z):
    activation = ACTIVATIONS[name]
    A = activation.forward(Z, np)
    np.testing.assert_allclose(A, np.asarray(JAX_NN[name](Z)), rtol=RTOL, atol=ATOL)
    dA = np.cos(np.arange(Z.size, dtype=np.float64)).reshape(Z.shape)  # any fixed cotangent
    _, vjp = jax.vjp(JAX_NN[name], jnp.asarray(Z))
    np.testing.assert_allclose(
        activation.backward(dA, Z, A), np.asarray(vjp(dA)[0]), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(("name", "expected"), [("relu", 0.0), ("leaky_relu", 1.0), ("elu", 1.0)])
def test_the_kink_convention_is_the_same_on_both_sides(name, expected):
    Z = np.zeros((1, 1))
    activation = ACTIVATIONS[name]
    manual = activation.derivative(Z, activation.forward(Z, np))[0, 0]
    ours_under_jax = jax.grad(lambda z: activation.forward(z, jnp).sum())(jnp.asarray(Z))[0, 0]
    reference = jax.grad(lambda z: JAX_NN[name](z).sum())(jnp.asarray(Z))[0, 0]
    assert manual == ours_under_jax == reference == expected


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_float32_stays_float32_and_extremes_stay_finite(name):
    Z = np.array([[-1e30, -100.0, -0.0, 0.0, 1e-40, 100.0, 1e30]], dtype=np.float32).T
    activation = ACTIVATIONS[name]
    A = activation.forward(Z, np)
    dZ = activation.backward(np.ones_like(Z), Z, A)
    assert A.dtype == dZ.dtype == np.float32
    assert np.all(np.isfinite(dZ))
    assert np.all(np.isfinite(A)) or name in (
        "identity",
        "relu",
        "leaky_relu",
        "elu",
        "softplus",
        "silu",
        "gelu",
    )


@examples(0.3)
@given(Z=pre_activations)
def test_log_softmax_is_per_column_and_matches_jax(Z):
    np.testing.assert_allclose(
        log_softmax(Z, np), np.asarray(jax.nn.log_softmax(Z, axis=0)), rtol=RTOL, atol=ATOL
    )
