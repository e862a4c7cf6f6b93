"""A prepared batch gives exactly the gradients of ``compute_gradients(*forward(X, Y))``.

``DNN.prepare(X, Y)`` checks ``X`` and ``Y`` once and then runs its own loop
over the layers (``manual_bp.prepared``).  The main property proves
``compute_gradients`` against ``jax.grad``; these laws prove the prepared
loop bitwise equal to it, so that the main property speaks for it too, and
that it reads the network's parameters of the moment, never the caller's
arrays after ``prepare``, and never hands out an array it writes again.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import DNN, Net
from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from manual_bp_reference.strategies import networks
from property_tests.budget import examples
from property_tests.test_fast_path import assert_same_numbers


def twins(case: Case, l2: float = 0.0, seed: int = 3) -> tuple[DNN, DNN]:
    """Two DNNs of the case's net (with the decay ``l2`` if it has none) and
    parameters, with the same seed (so the same dropout masks, drawn in the
    same order)."""
    net = case.net if case.net.l2 else case.net.with_l2(l2)
    pair = []
    for _ in range(2):
        dnn = DNN(net, seed=seed, dtype=case.dtype)
        dnn.params = case.params
        pair.append(dnn)
    return pair[0], pair[1]


def assert_same_gradients(prepared: dict, general: dict) -> None:
    assert list(prepared) == list(general), "the keys, in compute_gradients' order"
    for key in general:
        assert_same_numbers(prepared[key], general[key], key)


@examples(0.5)
@given(
    st.one_of(networks(), networks(regularization=True)),
    st.sampled_from([0.0, 0.01, 1.0]),
    st.integers(1, 3),
)
def test_prepared_gradients_equal_compute_gradients_of_forward(case, l2, steps):
    """Plain nets with and without decay, dropout, float32 and float64, over
    several steps of SGD (each step's parameters read afresh)."""
    fast, slow = twins(case, l2)
    batch = fast.prepare(case.X, case.Y)
    for _ in range(steps):
        with np.errstate(all="ignore"):
            prepared = batch.compute_gradients()
            general = slow.compute_gradients(*slow.forward(case.X, case.Y))
        assert_same_gradients(prepared, general)
        if not all(np.isfinite(g).all() for g in general.values()):
            break  # a step with them would be refused by check_params
        fast.step(prepared, 0.1)
        slow.step(general, 0.1)


@pytest.mark.parametrize("normalization", ["batch", "layer"])
def test_a_normalized_net_takes_the_general_path_and_its_running_statistics(normalization):
    X = np.random.default_rng(0).standard_normal((3, 6))
    Y = np.eye(2)[:, [0, 1, 1, 0, 1, 0]]
    fast, slow = (DNN([3, 4, 2], ["relu", "softmax"], normalization=normalization) for _ in "ab")
    batch = fast.prepare(X, Y)
    for _ in range(2):
        general = slow.compute_gradients(*slow.forward(X, Y))
        assert_same_gradients(batch.compute_gradients(), general)
    for key, value in slow.running.items():
        assert_same_numbers(fast.running[key], value, key)


def test_the_threaded_path_gives_the_same_gradients():
    """Above the thread policy's crossover the products go through
    ``threads.gemms`` (``_threaded``); the numbers are those of ``forward``."""
    rng = np.random.default_rng(1)
    net = Net.of([64, 128, 10], ["relu", "softmax"])
    X = rng.standard_normal((64, 512))
    Y = np.eye(10)[:, rng.integers(0, 10, 512)]
    fast, slow = DNN(net), DNN(net)
    batch = fast.prepare(X, Y)
    assert batch._threaded
    assert_same_gradients(batch.compute_gradients(), slow.compute_gradients(*slow.forward(X), Y))


def test_the_prepared_gradients_agree_with_the_oracle():
    net = DNN([2, 3, 3, 1], ["relu", "tanh", "sigmoid"], seed=1)
    X = np.random.default_rng(2).standard_normal((2, 8))
    Y = np.array([[0.0, 1, 1, 0, 1, 0, 0, 1]])
    grads = net.prepare(X, Y).compute_gradients()
    assert compare(Case(net.net, net.params, X, Y), grads).ok


def test_the_batch_is_a_copy_the_caller_cannot_change():
    X = np.random.default_rng(0).standard_normal((2, 5))
    Y = np.array([[0.0, 1, 1, 0, 1]])
    net = DNN([2, 3, 1], ["tanh", "sigmoid"])
    before = {"X": X.copy(), "Y": Y.copy()}
    batch = net.prepare(X, Y)
    first = batch.compute_gradients()
    X[:] = 100.0  # the caller reuses their arrays
    Y[:] = 0.0
    again = batch.compute_gradients()
    assert_same_gradients(again, first)
    assert not batch.X.flags.writeable and not batch.Y.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        batch.X[0, 0] = 1.0
    assert np.array_equal(before["X"], net.prepare(before["X"], before["Y"]).X)


def test_returned_gradients_are_new_arrays_each_call():
    X = np.random.default_rng(0).standard_normal((2, 5))
    Y = np.array([[0.0, 1, 1, 0, 1]])
    net = DNN([2, 3, 3, 1], ["relu", "relu", "sigmoid"])
    batch = net.prepare(X, Y)
    first = batch.compute_gradients()
    kept = {key: value.copy() for key, value in first.items()}
    net.step(first, 1.0)
    second = batch.compute_gradients()
    for key, value in first.items():
        assert np.array_equal(value, kept[key]), f"{key} was written by the next call"
        assert not np.shares_memory(value, second[key])
    assert not np.array_equal(first["W1"], second["W1"]), "the new parameters were read"


def test_float32_stays_float32():
    net = DNN([2, 3, 1], ["relu", "sigmoid"], dtype="float32")
    batch = net.prepare(np.ones((2, 4)), np.array([[0.0, 1, 0, 1]]))
    assert batch.X.dtype == batch.Y.dtype == np.float32
    assert {g.dtype for g in batch.compute_gradients().values()} == {np.dtype("float32")}


@pytest.mark.parametrize(
    ("X", "Y", "error", "match"),
    [
        (np.ones((3, 4)), np.ones((1, 4)), ValueError, "X"),
        (np.ones((2, 4)), np.ones((1, 5)), ValueError, "Y"),
        (np.ones((2, 4)), np.full((1, 4), 2.0), ValueError, "Y"),
        (np.ones((2, 4)), None, TypeError, "Y"),
        ("data", np.ones((1, 4)), TypeError, "X"),
        (np.full((2, 4), np.nan), np.ones((1, 4)), ValueError, "X"),
    ],
)
def test_bad_batches_are_refused_at_prepare(X, Y, error, match):
    with pytest.raises(error, match=match):
        DNN([2, 3, 1]).prepare(X, Y)
