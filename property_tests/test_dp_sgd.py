"""DP-SGD (``manual_bp.dp_sgd``): the clipping against a jax reference written
here with ``jax.numpy`` (norms over every parameter, ``min(1, C / norm)``,
mean), the noise against the same reference given the same normals (drawn
in NumPy from the same seed, as the module documents), the edge cases of the
clip, the wrapped optimizer's step, and the noise's standard deviation.

Tolerance.  In float64 each clipped-mean entry is a dot product over ``m <=
8`` examples of ``s_i g_i[θ]`` whose ``s_i`` comes from a norm over at most
``P = 16`` entries: at most ``m + P + 6`` roundings, each relative to the
absolute-value magnitude ``(1/m) sum_i s_i |g_i[θ]|`` (plus the noise's
``|σ C ξ / m|``).  ``RELATIVE = 1e-13``, about 900 units of rounding, covers
that with room to spare; a wrong clip (per parameter, after averaging, a
norm squared twice, a noise scaled by ``1/m`` twice) is off by a factor of
the values' own size.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import network
from manual_bp.dp_sgd import DPSGD, clipped_mean
from manual_bp.net import Net
from manual_bp.optimizers import SGD, Adam, Momentum
from manual_bp.per_example import per_example_gradients
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

RELATIVE = 1e-13  # float64, of the absolute-value magnitude: see the module notes
SHAPES = (
    {"W1": (1, 1)},
    {"W1": (2, 3), "B1": (2, 1)},
    {"W1": (3, 2), "B1": (3, 1), "W2": (1, 3), "B2": (1, 1)},
)
BATCHES = (1, 2, 3, 8)
CLIPS = (0.01, 0.5, 1.0, 10.0)
SIGMAS = (0.0, 0.5, 1.0, 4.0)
SCALES = (1e-3, 1.0, 30.0)  # gradients far below, around and far above the clips


@st.composite
def per_example_cases(draw, dtype: str = "float64"):
    """``(per_example, params, clip, sigma, seed)``: examples zero, tiny or large."""
    shapes = draw(st.sampled_from(SHAPES))
    m = draw(st.sampled_from(BATCHES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scales = np.array([draw(st.sampled_from((0.0, *SCALES))) for _ in range(m)])
    per_example = {
        key: _frozen((scales.reshape(m, 1, 1) * rng.standard_normal((m, *shape))).astype(dtype))
        for key, shape in shapes.items()
    }
    params = {
        key: _frozen(rng.standard_normal(shape).astype(dtype)) for key, shape in shapes.items()
    }
    clip = draw(st.sampled_from(CLIPS))
    sigma = draw(st.sampled_from(SIGMAS))
    seed = draw(st.integers(0, 2**16))
    return per_example, params, clip, sigma, seed


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.flags.writeable = False
    return array


@jax.jit
def jax_private_gradient(per_example: dict, clip, std, normals: dict) -> dict:
    """The reference: each example's whole gradient clipped to ``clip``, the
    mean, and ``std`` times the given normals, with ``jax.numpy``."""
    m = next(iter(per_example.values())).shape[0]
    squared = sum(jnp.sum(g.reshape(m, -1) ** 2, axis=1) for g in per_example.values())
    norms = jnp.sqrt(squared)
    scale = jnp.where(norms > clip, clip / jnp.where(norms > clip, norms, 1.0), 1.0)
    return {
        key: jnp.mean(scale.reshape(m, *([1] * (g.ndim - 1))) * g, axis=0) + std * normals[key]
        for key, g in per_example.items()
    }


def reference(per_example, params, clip, sigma, seed):
    """The reference's result and magnitude, with the normals drawn as
    ``DPSGD`` documents: float64, ``default_rng(seed)``, keys sorted."""
    rng = np.random.default_rng(seed)
    m = next(iter(per_example.values())).shape[0]
    normals = {key: rng.standard_normal(np.shape(params[key])) for key in sorted(params)}
    as64 = {key: np.asarray(g, np.float64) for key, g in per_example.items()}
    std = sigma * clip / m
    result = jax.device_get(jax_private_gradient(as64, clip, std, normals))
    norms = np.sqrt(sum((g.reshape(m, -1) ** 2).sum(axis=1) for g in as64.values()))
    scale = np.minimum(1.0, clip / np.maximum(norms, 1e-300))
    magnitude = {
        key: np.tensordot(scale, np.abs(g), axes=(0, 0)) / m + np.abs(std * normals[key])
        for key, g in as64.items()
    }
    return result, magnitude


# --- against the jax reference ------------------------------------------------------------


@examples(0.5)
@given(per_example_cases())
def test_private_gradient_matches_the_jax_reference(case):
    per_example, params, clip, sigma, seed = case
    before = copy.deepcopy((per_example, params))
    dp = DPSGD(clip, sigma)
    state = dp.init(params, seed=seed)
    state_before = copy.deepcopy(state)
    noisy, _ = dp.private_gradient(per_example, state, params)
    expected, magnitude = reference(per_example, params, clip, sigma, seed)
    for key, value in noisy.items():
        assert value.shape == params[key].shape and value.dtype == np.float64
        assert (np.abs(value - expected[key]) <= RELATIVE * magnitude[key]).all(), key
    assert_same(before, (per_example, params))
    assert_same(state_before, state)


@examples(0.3)
@given(per_example_cases())
def test_clipped_mean_matches_the_reference_and_is_sigma_zero(case):
    per_example, params, clip, _, seed = case
    mean = clipped_mean(per_example, clip)
    expected, magnitude = reference(per_example, params, clip, 0.0, seed)
    for key, value in mean.items():
        assert (np.abs(value - expected[key]) <= RELATIVE * magnitude[key]).all(), key
    # σ = 0 adds nothing: the private gradient is the clipped mean, bitwise.
    dp = DPSGD(clip, 0.0)
    noisy, _ = dp.private_gradient(per_example, dp.init(params, seed=seed), params)
    for key in mean:
        np.testing.assert_array_equal(noisy[key], mean[key])
    # Every clipped example has norm <= C (up to rounding): the sensitivity.
    m = next(iter(per_example.values())).shape[0]
    for i in range(m):
        one = {key: g[i : i + 1] for key, g in per_example.items()}
        norm = np.sqrt(sum((v**2).sum() for v in clipped_mean(one, clip).values()))
        assert norm <= clip * (1 + 1e-14)


@examples(0.3)
# Built per example, not at import: a mutant that makes a constructor raise must fail
# this test, not its collection (docs/testing.md, "mutmut").
@given(
    per_example_cases(),
    st.sampled_from((lambda: SGD(0.1), lambda: Momentum(0.05), lambda: Adam(0.01))).map(
        lambda make: make()
    ),
)
def test_update_is_the_wrapped_optimizer_on_the_private_gradient(case, optimizer):
    per_example, params, clip, sigma, seed = case
    dp = DPSGD(clip, sigma, optimizer)
    state = dp.init(params, seed=seed)
    new_params, new_state = dp.update(per_example, state, params)
    noisy, rng_state = dp.private_gradient(per_example, state, params)
    expected, expected_state = optimizer.update(noisy, optimizer.init(params), params)
    for key in params:
        np.testing.assert_array_equal(new_params[key], expected[key])
    assert new_state["rng"] == rng_state
    assert_same(new_state["optimizer"], expected_state)
    # A second step from the saved state is what the first one's state gives.
    again, _ = dp.update(per_example, copy.deepcopy(new_state), new_params)
    twice, _ = dp.update(per_example, new_state, new_params)
    for key in params:
        np.testing.assert_array_equal(again[key], twice[key])


@examples(0.2)
@given(per_example_cases(dtype="float32"))
def test_float32_in_float32_out(case):
    per_example, params, clip, sigma, seed = case
    dp = DPSGD(clip, sigma)
    new_params, _ = dp.update(per_example, dp.init(params, seed=seed), params)
    mean = clipped_mean(per_example, clip)
    assert all(value.dtype == np.float32 for value in (*new_params.values(), *mean.values()))
    expected, magnitude = reference(per_example, params, clip, sigma, seed)
    noisy, _ = dp.private_gradient(per_example, dp.init(params, seed=seed), params)
    for key, value in noisy.items():
        assert value.dtype == np.float32
        # float32's unit roundoff is 6e-8: a few hundred of them.
        assert (np.abs(value - expected[key]) <= 1e-5 * magnitude[key]).all(), key


# --- the clip's edge cases ---------------------------------------------------------------


def test_a_norm_of_exactly_C_is_not_scaled_and_a_zero_gradient_is_no_division():
    per_example = {"W1": np.array([[[3.0, 4.0]], [[0.0, 0.0]], [[6.0, 8.0]]])}  # 5, 0, 10
    with np.errstate(all="raise"):
        mean = clipped_mean(per_example, 5.0)
    # (3, 4) kept exactly, 0 kept, (6, 8) halved to (3, 4) exactly.
    np.testing.assert_array_equal(mean["W1"], np.array([[6.0, 8.0]]) / 3)
    with np.errstate(all="raise"):
        zero = clipped_mean({"W1": np.zeros((4, 2, 2)), "B1": np.zeros((4, 2, 1))}, 1.0)
    assert all((value == 0).all() for value in zero.values())


def test_the_norm_is_over_every_parameter_together():
    # Each parameter alone has norm 3 < C = 4; together 3 sqrt(2) > 4: clipped.
    per_example = {"W1": np.array([[[3.0]]]), "B1": np.array([[[0.0], [3.0]]])}
    mean = clipped_mean(per_example, 4.0)
    factor = 4.0 / np.sqrt(18.0)
    np.testing.assert_allclose(mean["W1"], [[3.0 * factor]], rtol=1e-15)
    np.testing.assert_allclose(mean["B1"], [[0.0], [3.0 * factor]], rtol=1e-15)


def test_the_same_seed_gives_the_same_steps_and_another_seed_others():
    params = {"W1": np.zeros((2, 2))}
    per_example = {"W1": np.ones((3, 2, 2))}
    dp = DPSGD(1.0, 1.0)
    a, _ = dp.update(per_example, dp.init(params, seed=7), params)
    b, _ = dp.update(per_example, dp.init(params, seed=7), params)
    c, _ = dp.update(per_example, dp.init(params, seed=8), params)
    np.testing.assert_array_equal(a["W1"], b["W1"])
    assert not np.array_equal(a["W1"], c["W1"])


def test_the_noise_has_standard_deviation_sigma_C_over_m():
    """A statistical test with a fixed seed (it cannot flake): 400 steps of 50
    entries give 20000 draws of the noise; the sample standard deviation of
    Gaussian draws is within 1.5 % of the true one with probability 1 - 1e-11
    (its relative error has sd 1 / sqrt(2 N) = 0.5 %), and their mean within
    4 sd / sqrt(N)."""
    sigma, clip, m = 2.0, 0.5, 4
    params = {"W1": np.zeros((5, 5)), "B1": np.zeros((5, 1)), "W2": np.zeros((4, 5))}
    rng = np.random.default_rng(0)
    per_example = {key: rng.standard_normal((m, *p.shape)) for key, p in params.items()}
    dp = DPSGD(clip, sigma)
    mean = clipped_mean(per_example, clip)
    state, noise = dp.init(params, seed=1234), []
    for _ in range(400):
        noisy, rng_state = dp.private_gradient(per_example, state, params)
        state = {**state, "rng": rng_state}
        noise.append(np.concatenate([(noisy[k] - mean[k]).ravel() for k in params]))
    draws = np.concatenate(noise)
    expected = sigma * clip / m
    assert draws.size == 20000
    assert abs(draws.std() / expected - 1) < 0.015
    assert abs(draws.mean()) < 4 * expected / np.sqrt(draws.size)


def test_dp_sgd_without_clip_or_noise_is_sgd_on_the_batch_gradient():
    """With a clip above every norm and σ = 0, DP-SGD on the per-example gradients
    of ``manual_bp.per_example`` is SGD on ``network.backward``'s mean gradient."""
    net = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", l2=0.1)
    params = network.init_params(net.layer_sizes, net.activations, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 6)), np.eye(2)[:, rng.integers(0, 2, 6)]
    dp = DPSGD(1e6, 0.0, SGD(0.5))
    new, _ = dp.update(per_example_gradients(params, X, Y, net), dp.init(params), params)
    _, cache = network.forward(params, X, net)
    grads = network.backward(cache, Y, net)
    expected, _ = SGD(0.5).update({k: grads[k] for k in params}, {}, params)
    for key in params:
        np.testing.assert_allclose(new[key], expected[key], rtol=1e-14, atol=1e-15)


# --- bad input ---------------------------------------------------------------------------


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match=r"^clip: expected a finite float > 0, got 0"):
        DPSGD(0.0, 1.0)
    with pytest.raises(ValueError, match=r"^noise_multiplier: expected a finite float >= 0"):
        DPSGD(1.0, -1.0)
    with pytest.raises(TypeError, match=r"^noise_multiplier: expected a float"):
        DPSGD(1.0, "1")
    with pytest.raises(TypeError, match=r"^optimizer: expected a manual_bp.optimizers"):
        DPSGD(1.0, 1.0, optimizer="sgd")
    with pytest.raises(ValueError, match=r"^clip: expected a finite float > 0, got nan"):
        clipped_mean({"W1": np.ones((2, 1, 1))}, float("nan"))
    dp = DPSGD(1.0, 1.0)
    with pytest.raises(ValueError, match=r"^seed: expected an int >= 0, got -1"):
        dp.init({"W1": np.zeros((1, 1))}, seed=-1)
    with pytest.raises(TypeError, match=r"^seed: expected an int"):
        dp.init({"W1": np.zeros((1, 1))}, seed=1.5)


def test_bad_per_example_gradients_and_states_are_named():
    params = {"W1": np.zeros((2, 3)), "B1": np.zeros((2, 1))}
    good = {"W1": np.ones((4, 2, 3)), "B1": np.ones((4, 2, 1))}
    dp = DPSGD(1.0, 1.0)
    state = dp.init(params)
    name = r"^per_example_grads"
    cases = [
        ({"W1": good["W1"]}, ValueError, name + r": expected the keys of params"),
        ({**good, "B1": np.ones((3, 2, 1))}, ValueError, name + r"\['B1'\]: expected m = 4"),
        ({**good, "W1": np.ones((4, 3, 2))}, ValueError, name + r"\['W1'\]: expected shape \(m, "),
        ({**good, "W1": np.ones((2, 3))}, ValueError, name + r"\['W1'\]: expected shape"),
        ({**good, "B1": np.ones((4, 2, 1), np.float32)}, TypeError,
         name + r"\['B1'\]: expected dtype float64"),
        ({**good, "B1": np.full((4, 2, 1), np.nan)}, ValueError,
         name + r"\['B1'\]: expected finite"),
        ({**good, "B1": np.ones((0, 2, 1))}, ValueError,
         name + r"\['B1'\]: expected an array \(m, ...\) with m >= 1"),
        ([good["W1"]], TypeError, name + r": expected a dict"),
    ]  # fmt: skip
    for bad, error, message in cases:
        with pytest.raises(error, match=message):
            dp.update(bad, state, params)
    with pytest.raises(ValueError, match=r"^state: expected the keys \['optimizer', 'rng'\]"):
        dp.update(good, state["optimizer"], params)
    with pytest.raises(ValueError, match=r"^state\['rng'\]: expected the PCG64 generator state"):
        dp.update(good, {**state, "rng": {"bit_generator": "MT19937"}}, params)
    with pytest.raises(ValueError, match=r"^per_example: expected at least one"):
        clipped_mean({}, 1.0)
    with pytest.raises(ValueError, match=r"^per_example\['B1'\]: expected m = 4"):
        clipped_mean({**good, "B1": np.ones((3, 2, 1))}, 1.0)


def assert_same(a, b) -> None:
    """Equal nested dicts / tuples of arrays and plain values."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b
