"""Laws of the manual backward pass that need no oracle."""

import contextlib
import copy

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import DNN, backward, batch_loss, forward, init_params
from manual_bp.optimizers import Adam
from manual_bp.training import Schedule, TrainingDiverged, fit, sgd_step
from manual_bp_reference.cases import Case
from manual_bp_reference.strategies import networks
from manual_bp_reference.tolerance import tolerances
from property_tests.budget import examples


def manual_gradients(case: Case, X: np.ndarray, Y: np.ndarray):
    _, cache = forward(case.params, X, case.net)
    return cache, backward(cache, Y, case.net)


@examples(0.5)
@given(networks(max_batch=8))
def test_the_batch_gradient_is_the_mean_of_the_per_sample_gradients(case):
    m = case.X.shape[1]
    cache, batch = manual_gradients(case, case.X, case.Y)
    batch_tol = tolerances(case, cache, batch)
    for key in [k for k in batch if k[0] in "WB"]:
        per_sample, per_sample_tol = [], []
        for j in range(m):
            X_j, Y_j = case.X[:, j : j + 1], case.Y[:, j : j + 1]
            cache_j, grads_j = manual_gradients(case, X_j, Y_j)
            case_j = Case.of(case.params, X_j, Y_j, case.activations, case.loss)
            tol_j = tolerances(case_j, cache_j, grads_j)
            per_sample.append(grads_j[key].astype(np.float64))
            per_sample_tol.append(tol_j.grads[key])
        mean = np.mean(per_sample, axis=0)
        # Both sides round: the batch within its bound, each sample within its
        # own, and the mean of m terms adds at most m u sum |terms| / m.
        allowed = (
            batch_tol.grads[key]
            + np.mean(per_sample_tol, axis=0)
            + m * batch_tol.unit * np.mean(np.abs(per_sample), axis=0)
        )
        error = np.abs(batch[key].astype(np.float64) - mean)
        assert np.all(error <= allowed), (key, np.max(error - allowed))


@examples(0.5)
@given(networks(max_depth=3, max_width=8, max_batch=8))
def test_grads_cache_and_params_keep_the_dtype_and_shapes(case):
    out, cache = forward(case.params, case.X, case.net)
    grads = backward(cache, case.Y, case.net, input_gradient=True)
    for key, value in {**cache, **grads}.items():
        assert value.dtype == case.dtype, key
    for key, value in grads.items():
        assert value.shape == (case.params[key] if key[0] in "WB" else cache[key]).shape, key
    assert np.asarray(batch_loss(case.params, case.X, case.Y, case.net)).dtype == case.dtype
    assert out.shape == (case.layer_sizes[-1], case.X.shape[1])


@examples(0.3)
@given(networks(max_depth=3, max_width=8, max_batch=8, regularization=True), st.integers(1, 8))
def test_no_public_function_changes_its_inputs(case, batch_size):
    # Writable copies (a case's own arrays are read-only, which would hide a write).
    params = {key: value.copy() for key, value in case.params.items()}
    X, Y = case.X.copy(), case.Y.copy()
    masks = {key: value.copy() for key, value in case.masks.items()}
    originals = copy.deepcopy((params, X, Y, masks))

    regularized = dict(l2=case.l2, dropout=list(case.dropout[:-1]) or None)
    net = DNN(case.layer_sizes, case.activations, case.loss, seed=0, dtype=case.dtype,
              **regularized)  # fmt: skip
    net.params = params
    out, cache = net.forward(X)
    cache_before = copy.deepcopy(cache)
    net.predict(X)
    net.loss(X, Y)
    grads = net.compute_gradients(out, cache, Y, input_gradient=True)
    grads_before = copy.deepcopy(grads)
    net.step(grads, 0.1)
    # A fit that diverges (an identity net on |X| ~ 100 can) must not change its inputs either.
    with contextlib.suppress(TrainingDiverged):
        net.fit(X, Y, epochs=2, learning_rate=0.01, batch_size=batch_size)
    with contextlib.suppress(TrainingDiverged):
        net.fit(X, Y, epochs=1, batch_size=batch_size, optimizer=Adam(0.01))

    dropped = {"masks": masks} if case.dropout else {}
    _, functional_cache = forward(params, X, case.net, **dropped)
    functional_grads = backward(functional_cache, Y, case.net)
    batch_loss(params, X, Y, case.net, **dropped)
    sgd_step(params, functional_grads, 0.1)
    adam = Adam(0.01)
    adam.update({key: functional_grads[key] for key in params}, adam.init(params), params)
    with contextlib.suppress(TrainingDiverged):
        fit(params, X, Y, case.net, 0.01, Schedule(1, batch_size, np.random.default_rng(0)))
    init_params(case.layer_sizes, case.activations, 0, case.dtype)

    for before, after in zip(originals, (params, X, Y, masks), strict=True):
        np.testing.assert_equal(before, after)
    np.testing.assert_equal(cache_before, cache)
    np.testing.assert_equal(grads_before, grads)


@examples(0.3)
@given(networks())
def test_no_two_gradients_share_memory(case):
    """Each gradient is an array of its own, so writing into one changes no other."""
    _, cache = forward(case.params, case.X, case.net)
    grads = backward(cache, case.Y, case.net, input_gradient=True)
    arrays = list(grads.items()) + list(cache.items())
    for i, (key, gradient) in enumerate(grads.items()):
        for other, array in arrays[i + 1 :]:
            assert not np.shares_memory(gradient, array), f"grads[{key!r}] and {other!r}"


def test_assigned_params_are_copied_and_the_nets_own_are_read_only():
    net = DNN([2, 3, 1], seed=0)
    mine = {key: value.copy() for key, value in net.params.items()}
    net.params = mine
    mine["W1"][0, 0] = 123.0
    assert net.params["W1"][0, 0] != 123.0
    assert not net.params["W1"].flags.writeable


def test_step_replaces_params_and_leaves_an_earlier_cache_valid():
    net = DNN([2, 3, 1], seed=0)
    X, Y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[1.0, 0.0]])
    out, cache = net.forward(X)
    W1_before = net.params["W1"]
    grads = net.compute_gradients(out, cache, Y)
    net.step(grads, 0.5)
    np.testing.assert_allclose(net.params["W1"], W1_before - 0.5 * grads["W1"], rtol=0, atol=0)
    np.testing.assert_equal(net.compute_gradients(out, cache, Y), grads)


def test_input_gradient_is_returned_only_when_asked_and_matches_the_oracle():
    from manual_bp_reference.oracle import oracle_gradients

    net = DNN([3, 4, 2], ["tanh", "softmax"], "cross_entropy", seed=0)
    X = np.array([[0.5, -1.0], [2.0, 0.0], [0.0, 1.0]])
    Y = np.array([[1.0, 0.25], [0.0, 0.75]])
    out, cache = net.forward(X)
    assert "A0" not in net.compute_gradients(out, cache, Y)
    grads = net.compute_gradients(out, cache, Y, input_gradient=True)
    oracle = oracle_gradients(Case.of_network(net, X, Y), input_gradient=True)
    np.testing.assert_allclose(grads["A0"], oracle.grads["A0"], rtol=1e-12, atol=1e-15)
