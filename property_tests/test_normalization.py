"""Batch and layer normalization: both backward forms against each other and
against ``jax.grad``, the statistics, the running statistics, stability, m = 1."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from manual_bp import DNN
from manual_bp import normalization as norm
from manual_bp.architecture import gradient_keys
from manual_bp.network import backward, forward, init_params
from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from manual_bp_reference.oracle import oracle_gradients
from property_tests.budget import examples
from property_tests.mutations import NORMALIZATION_CATALOG, inject

ACTIVATIONS = ["tanh", "relu", "sigmoid", "identity", "gelu"]
OUTPUTS = {"mse": "identity", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}


@st.composite
def normalized_nets(
    draw, dtypes: tuple[str, ...] = ("float64",), max_batch: int = 6, stability: bool = False
):
    """A small normalized net and batch.  Shapes come from a short list so the
    unpadded oracle compiles few of them; values from a drawn seed.  With
    ``stability``, also the stability cases: near-constant inputs (each
    column the first one plus relative noise 1e-6) or a 1e6 offset on every
    normalized layer's bias (features ``1e6 + noise``)."""
    dtype = draw(st.sampled_from(dtypes))
    depth = draw(st.integers(2, 3))
    sizes = [draw(st.sampled_from([1, 2, 3]))] + [
        draw(st.sampled_from([1, 3, 4])) for _ in range(depth - 1)
    ]
    loss = draw(st.sampled_from(sorted(OUTPUTS)))
    sizes.append(2 if loss == "cross_entropy" else 1)
    kinds = tuple(draw(st.sampled_from(["batch", "layer", None])) for _ in range(depth - 1))
    kinds = (*kinds[:-1], kinds[-1] or "batch", None)  # at least one normalized layer
    activations = [draw(st.sampled_from(ACTIVATIONS)) for _ in range(depth - 1)]
    activations.append(OUTPUTS[loss])
    m = draw(st.sampled_from([1, 2, max_batch]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = init_params(sizes, activations, seed=int(rng.integers(2**31)), dtype=dtype)
    for l, kind in enumerate(kinds, start=1):
        if kind:
            params[f"gamma{l}"] = (1 + rng.standard_normal((sizes[l], 1))).astype(dtype)
            params[f"beta{l}"] = rng.standard_normal((sizes[l], 1)).astype(dtype)
    X = (3 * rng.standard_normal((sizes[0], m))).astype(dtype)
    hard = draw(st.sampled_from(["", "near-constant", "offset"])) if stability else ""
    if hard == "near-constant":
        X = (X[:, :1] * (1 + 1e-6 * rng.standard_normal((sizes[0], m)))).astype(dtype)
    elif hard == "offset":
        for l, kind in enumerate(kinds, start=1):
            if kind:
                params[f"B{l}"] = (params[f"B{l}"] + 1e6).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1], dtype=dtype)[:, rng.integers(0, sizes[-1], m)]
    else:
        Y = rng.uniform(0, 1, (sizes[-1], m)).astype(dtype)
    return Case.of(params, X, Y, activations, loss, normalization=kinds)


def manual_gradients(case: Case, staged: bool) -> dict[str, np.ndarray]:
    params = {key: np.asarray(value) for key, value in case.params.items()}
    _, cache = forward(params, case.X, case.net)
    return backward(cache, case.Y, case.net, staged=staged)


def assert_normalization_matches(case: Case) -> None:
    """Every gradient of the closed and the staged form against ``jax.grad`` of
    ``forward_xp`` (the one definition) through ``compare``, entry by entry
    within the rounding model's tolerance (``manual_bp_reference.tolerance``), in the
    case's dtype; and the running statistics one training step moves,
    against the batch's moments from NumPy."""
    for staged in (False, True):
        grads = manual_gradients(case, staged)
        keys = gradient_keys(case.depth, normalization=case.normalization, staged=staged)
        assert sorted(grads) == sorted(keys)
        comparison = compare(case, grads, keys=keys, explain=False)
        assert comparison.ok, (staged, comparison.report())
    _, cache = forward(dict(case.params), case.X, case.net)
    sizes = case.layer_sizes
    running = norm.init_running(sizes, case.normalization, case.dtype)
    new = norm.update_running(running, cache, case.normalization)
    for l, kind in enumerate(case.normalization, start=1):
        if kind == "batch":
            Z = cache[f"Z{l}"]
            expected_mean = 0.1 * Z.mean(axis=1, keepdims=True)
            expected_var = 0.9 + 0.1 * Z.var(axis=1, keepdims=True)
            rtol = 1e-9
            if case.dtype == "float32":
                # float32's moments of 1e6 + noise are mostly rounding: the
                # update is checked against the forward's own (two-pass) moments.
                expected_mean = 0.1 * cache[f"mu{l}"].astype(np.float64)
                expected_var = 0.9 + 0.1 * cache[f"var{l}"].astype(np.float64)
                rtol = 1e-6
            atol = rtol * (1 + float(np.abs(Z).max()))
            np.testing.assert_allclose(new[f"running_mean{l}"], expected_mean, atol=atol)
            np.testing.assert_allclose(new[f"running_var{l}"], expected_var, rtol=rtol)


@examples(0.15)
@given(normalized_nets(dtypes=("float64", "float32"), stability=True))
def test_both_forms_agree_with_jax_grad(case):
    assert_normalization_matches(case)


@examples(0.1)
@given(normalized_nets(dtypes=("float64", "float32"), stability=True))
def test_compare_passes_manual_bp_on_normalized_nets(case):
    """``compare(case)``, manual_bp's own forward and backward (the closed
    form) and loss, never calls the correct code wrong, stability cases included."""
    comparison = compare(case, explain=False)
    assert comparison.ok, comparison.report()
    assert {"gamma1", "Zhat1", "N1"} & set(comparison.variables) or case.normalization[0] is None


@pytest.mark.parametrize(
    "mutation", NORMALIZATION_CATALOG, ids=[mutation.name for mutation in NORMALIZATION_CATALOG]
)
def test_the_normalization_property_catches_the_bug(mutation, monkeypatch):
    """Each catalogued normalization bug fails the property within the ci budget."""
    inject(mutation, monkeypatch)
    examples_run = 0

    @settings(settings.get_profile("ci"), phases=[Phase.generate], database=None)
    @given(normalized_nets())
    def normalization_property(case):
        nonlocal examples_run
        examples_run += 1
        assert_normalization_matches(case)

    # A crash counts as caught too: 2 / (k - 1) divides by zero at m = 1.
    with pytest.raises((AssertionError, ZeroDivisionError)):
        normalization_property()
    print(f"{mutation.name}: caught after {examples_run} examples")


@examples(0.5)
@given(normalized_nets(dtypes=("float64", "float32"), max_batch=9))
def test_the_staged_and_closed_forms_agree_within_rounding(case):
    """The law: the two forms compute the same dZ up to rounding, in float64 and float32.

    Each dZ entry is a sum of k terms of size up to ``|dZhat| * s`` (s =
    ``inv_std``); the two forms order them differently, so they may differ by
    a few ulps of the largest gradient of the case (k <= 9 terms, s <= 316,
    depth <= 3: 1e3 ulps is a generous bound; a wrong term is off by order 1)."""
    closed, staged = manual_gradients(case, False), manual_gradients(case, True)
    bound = 1e3 * np.finfo(case.dtype).eps * max(float(np.max(np.abs(g))) for g in staged.values())
    for key in closed:
        assert closed[key].dtype == staged[key].dtype == case.dtype
        assert np.max(np.abs(closed[key] - staged[key])) <= bound, key


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_statistics_are_over_the_right_axis(kind):
    """Batch: each unit (row) over the batch; layer: each sample (column) over the units."""
    Z = np.random.default_rng(0).standard_normal((4, 6)) * 5 + 3
    gamma, beta = np.ones((4, 1)), np.zeros((4, 1))
    out = norm.normalize(Z, gamma, beta, kind)
    axis = norm.AXIS[kind]
    assert out["mu"].shape == ((4, 1) if kind == "batch" else (1, 6))
    np.testing.assert_allclose(out["mu"], Z.mean(axis=axis, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(out["var"], Z.var(axis=axis, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(out["Zhat"].mean(axis=axis), 0, atol=1e-14)
    np.testing.assert_allclose(
        out["Zhat"].var(axis=axis), Z.var(axis=axis) / (Z.var(axis=axis) + norm.EPS), rtol=1e-13
    )


@pytest.mark.parametrize("dtype, offset, noise", [("float64", 1e6, 1e-3), ("float32", 1e3, 1e-1)])
def test_variance_of_near_constant_features_is_stable(dtype, offset, noise):
    """Huge offsets and small noise: the two-pass variance keeps the noise's
    variance, where ``E[Z^2] - E[Z]^2`` cancels catastrophically (checked
    here too, so the case is a hard one)."""
    rng = np.random.default_rng(1)
    Z = (offset + noise * rng.standard_normal((3, 64))).astype(dtype)
    exact = np.var(Z.astype(np.float64) - offset, axis=1, keepdims=True)  # Z - offset is exact
    var = norm.normalize(Z, np.ones((3, 1), dtype), np.zeros((3, 1), dtype), "batch")["var"]
    assert var.dtype == dtype
    np.testing.assert_allclose(var, exact, rtol=1e-3)
    naive = (Z * Z).mean(axis=1, keepdims=True) - Z.mean(axis=1, keepdims=True) ** 2
    assert np.max(np.abs(naive - exact) / exact) > 0.1


def test_near_constant_columns_give_finite_gradients_that_match_jax():
    """A unit whose Z is constant over the batch: var = 0, Zhat = 0, finite s = 1/sqrt(eps)."""
    W1 = np.array([[1.0, -1.0], [0.0, 0.0], [1e-9, 0.0]])
    params = {"W1": W1, "B1": np.array([[0.0], [1e6], [1e6]]), "W2": np.ones((1, 3))}
    params |= {"B2": np.zeros((1, 1)), "gamma1": np.ones((3, 1)), "beta1": np.zeros((3, 1))}
    X = np.random.default_rng(2).standard_normal((2, 5))
    case = Case.of(params, X, np.ones((1, 5)), ["tanh", "identity"], "mse",
                normalization=("batch", None))  # fmt: skip
    oracle = oracle_gradients(case).grads
    for staged in (False, True):
        grads = manual_gradients(case, staged)
        for key in ("W1", "Z1", "gamma1", "beta1"):
            assert np.all(np.isfinite(grads[key]))
            np.testing.assert_allclose(grads[key], oracle[key], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_one_sample_or_one_unit_is_defined(kind):
    """m = 1 (batch) or nl = 1 (layer): var = 0, Zhat = 0, N = beta, dZ = 0
    exactly in both forms, dgamma = 0, dbeta = dN; jax.grad agrees."""
    m, width = (1, 3) if kind == "batch" else (4, 1)
    rng = np.random.default_rng(3)
    params = {"W1": rng.standard_normal((width, 2)), "B1": rng.standard_normal((width, 1)),
              "gamma1": rng.standard_normal((width, 1)), "beta1": rng.standard_normal((width, 1)),
              "W2": rng.standard_normal((1, width)), "B2": np.zeros((1, 1))}  # fmt: skip
    case = Case.of(params, rng.standard_normal((2, m)), np.ones((1, m)), ["tanh", "identity"],
                "mse", normalization=(kind, None))  # fmt: skip
    _, cache = forward(dict(case.params), case.X, case.net)
    assert np.all(cache["Zhat1"] == 0)
    np.testing.assert_array_equal(cache["N1"], np.broadcast_to(case.params["beta1"], (width, m)))
    oracle = oracle_gradients(case).grads
    for staged in (False, True):
        grads = manual_gradients(case, staged)
        assert np.all(grads["Z1"] == 0) and np.all(grads["W1"] == 0)
        assert np.all(grads["gamma1"] == 0)
        np.testing.assert_array_equal(grads["beta1"], grads["N1"].sum(axis=1, keepdims=True))
        np.testing.assert_allclose(oracle["Z1"], 0, atol=1e-15)
        np.testing.assert_allclose(grads["beta1"], oracle["beta1"], rtol=1e-12)


def test_running_statistics_follow_the_training_batches():
    """A training forward moves running = 0.9 running + 0.1 batch; inference uses
    running and changes nothing; its cache gives no gradients."""
    net = DNN([2, 3, 1], ["relu", "sigmoid"], normalization="batch")
    X = np.random.default_rng(4).standard_normal((2, 8)) + 2
    assert np.all(net.running["running_mean1"] == 0) and np.all(net.running["running_var1"] == 1)
    _, cache = net.forward(X)
    np.testing.assert_allclose(net.running["running_mean1"], 0.1 * cache["mu1"], rtol=1e-15)
    np.testing.assert_allclose(net.running["running_var1"], 0.9 + 0.1 * cache["var1"], rtol=1e-15)
    for _ in range(300):
        net.forward(X)
    np.testing.assert_allclose(net.running["running_mean1"], cache["mu1"], rtol=1e-9)
    np.testing.assert_allclose(net.running["running_var1"], cache["var1"], rtol=1e-9)
    before = net.running
    out, inference = net.forward(X, training=False)
    assert all(np.array_equal(before[k], net.running[k]) for k in before)
    np.testing.assert_allclose(net.predict(X), out)
    np.testing.assert_allclose(inference["Zhat1"], cache["Zhat1"], rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="training=False"):
        net.compute_gradients(out, inference, np.ones((1, 8)))


def test_step_and_fit_update_gamma_and_beta():
    net = DNN([2, 4, 4, 1], ["tanh", "tanh", "sigmoid"], normalization=["batch", "layer"])
    X = np.random.default_rng(5).standard_normal((2, 32))
    Y = (X[:1] * X[1:] > 0).astype(float)
    out, cache = net.forward(X)
    grads = net.compute_gradients(out, cache, Y)
    before = net.params
    net.step(grads, 0.1)
    for key in ("gamma1", "beta1", "gamma2", "beta2"):
        np.testing.assert_array_equal(net.params[key], before[key] - 0.1 * grads[key])
    history = net.fit(X, Y, epochs=30, learning_rate=0.5, batch_size=8)
    assert history[-1] < history[0]
    assert not np.array_equal(net.running["running_mean1"], before["beta1"] * 0)


@pytest.mark.parametrize(
    "normalization, error",
    [
        ("batchnorm", ValueError),
        (["batch"], ValueError),
        (3, TypeError),
        (["layer", "x"], ValueError),
    ],
)
def test_bad_normalization_is_named(normalization, error):
    with pytest.raises(error, match="normalization"):
        DNN([2, 3, 3, 1], normalization=normalization)


def test_nets_without_normalization_keep_the_seed_api():
    net = DNN([2, 3, 1])
    assert sorted(net.params) == ["B1", "B2", "W1", "W2"] and net.running == {}
    assert net.normalization == (None, None)
    assert "normalization" not in repr(net)


def small_normalized_case(kind: str, m: int = 4) -> Case:
    rng = np.random.default_rng(7)
    sizes, activations = [2, 3, 3, 1], ["tanh", "relu", "identity"]
    params = init_params(sizes, activations, seed=3)
    for l in (1, 2):
        params[f"gamma{l}"] = 1 + rng.standard_normal((3, 1))
        params[f"beta{l}"] = rng.standard_normal((3, 1))
    X, Y = rng.standard_normal((2, m)), rng.standard_normal((1, m))
    return Case.of(params, X, Y, activations, "mse", normalization=(kind, kind, None))


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_finite_differences_support_the_oracle_on_normalized_nets(kind):
    """The second oracle differentiates the normalization step too: every key,
    gamma, beta, Zhat and N included, within its own error estimate."""
    from manual_bp_reference.finite_diff import finite_difference_gradients

    case = small_normalized_case(kind)
    fd = finite_difference_gradients(case, input_gradient=True)
    oracle = oracle_gradients(case, input_gradient=True).grads
    assert set(fd.grads) == set(gradient_keys(case.depth, True, normalization=case.normalization))
    for key, value in fd.grads.items():
        inside = np.abs(value - oracle[key]) <= fd.error[key]
        assert np.all(inside | fd.at_kink[key]), key


@pytest.mark.parametrize(
    "key, expected",
    [
        ("gamma2", "wrong dgamma"),
        ("Z1", "wrong normalization backward"),
        ("N2", "wrong activation derivative"),
    ],
)
def test_a_wrong_normalization_gradient_is_named(key, expected):
    """compare explains a mismatch in a normalized layer: the diagnosis names
    the step, and finite differences side with the oracle."""
    case = small_normalized_case("batch")
    grads = manual_gradients(case, staged=False)
    grads[key] = grads[key] * 1.01
    comparison = compare(case, grads)
    assert not comparison.ok
    assert comparison.diagnosis is not None and comparison.diagnosis.key == key
    assert comparison.diagnosis.bug_class == expected
    assert comparison.variables[key].finite_differences == "oracle"
