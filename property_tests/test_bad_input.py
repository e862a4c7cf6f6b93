"""Generated wrong shapes and bad values always raise, and change nothing."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from manual_bp import DNN
from property_tests.budget import examples

SIZES = [3, 4, 2]


def net_and_batch(m: int, loss: str = "binary_cross_entropy"):
    output = "sigmoid" if loss == "binary_cross_entropy" else "identity"
    net = DNN(SIZES, ["tanh", output], loss, seed=0)
    rng = np.random.default_rng(m)
    return net, rng.standard_normal((SIZES[0], m)), rng.random((SIZES[-1], m))


def assert_raises_and_keeps_params(net, call, error, fragment):
    before = net.params
    with pytest.raises(error, match=fragment):
        call()
    np.testing.assert_equal(net.params, before)


shapes = st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple)


@examples(0.5)
@given(st.integers(1, 5), shapes)
def test_an_input_of_the_wrong_shape_is_refused(m, shape):
    net, _, _ = net_and_batch(m)
    assume(len(shape) != 2 or shape[0] != SIZES[0] or shape[1] == 0)
    bad = np.ones(shape)
    assert_raises_and_keeps_params(net, lambda: net.forward(bad), ValueError, "^X: ")
    assert_raises_and_keeps_params(net, lambda: net.fit(bad, bad, 1, 0.1), ValueError, "^X: ")


@examples(0.5)
@given(st.integers(1, 5), shapes)
def test_targets_of_the_wrong_shape_never_broadcast(m, shape):
    net, X, _ = net_and_batch(m)
    assume(shape != (SIZES[-1], m))
    Y = np.full(shape, 0.5)
    out, cache = net.forward(X)
    for call in (
        lambda: net.loss(X, Y),
        lambda: net.compute_gradients(out, cache, Y),
        lambda: net.fit(X, Y, 1, 0.1),
    ):
        assert_raises_and_keeps_params(net, call, ValueError, "^Y: ")


@examples(0.5)
@given(
    st.integers(1, 5),
    st.sampled_from(["X", "Y", "W1", "B2"]),
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.integers(0, 10**6),
)
def test_nan_and_inf_are_refused_wherever_they_are(m, where, bad_value, position):
    net, X, Y = net_and_batch(m, loss="mse")
    arrays = {"X": X.copy(), "Y": Y.copy(), **{k: v.copy() for k, v in net.params.items()}}
    target = arrays[where]
    target.flat[position % target.size] = bad_value
    if where in ("X", "Y"):
        call = lambda: net.fit(arrays["X"], arrays["Y"], 1, 0.1)  # noqa: E731
    else:
        call = lambda: setattr(net, "params", {k: arrays[k] for k in net.params})  # noqa: E731
    assert_raises_and_keeps_params(net, call, ValueError, "finite")


@examples(0.5)
@given(st.integers(1, 5), st.one_of(st.floats(max_value=-1e-300), st.floats(min_value=1.0000001)))
def test_binary_targets_outside_0_1_are_refused(m, value):
    assume(np.isfinite(value))
    net, X, Y = net_and_batch(m)
    Y = Y.copy()
    Y[0, 0] = value
    assert_raises_and_keeps_params(net, lambda: net.fit(X, Y, 1, 0.1), ValueError, r"\[0, 1\]")


@examples(0.5)
@given(st.one_of(st.floats(max_value=0.0), st.just(np.nan), st.just(np.inf)))
def test_learning_rates_that_are_not_finite_and_positive_are_refused(learning_rate):
    net, X, Y = net_and_batch(3)
    assert_raises_and_keeps_params(
        net, lambda: net.fit(X, Y, 1, learning_rate), ValueError, "learning_rate"
    )


@pytest.mark.parametrize(
    "bad",
    [np.ones((3, 2), dtype=complex), np.array([["a", "b"]] * 3), np.array([[None, 1]] * 3)],
    ids=["complex", "str", "object"],
)
def test_non_real_arrays_are_a_type_error(bad):
    net, _, _ = net_and_batch(2)
    assert_raises_and_keeps_params(net, lambda: net.forward(bad), TypeError, "^X: ")


def test_lists_bools_and_ints_are_converted():
    net, _, _ = net_and_batch(2)
    as_list = [[1, 0], [0, 1], [1, 1]]
    out_list, _ = net.forward(as_list)
    out_bool, _ = net.forward(np.array(as_list, dtype=bool))
    out_float, _ = net.forward(np.array(as_list, dtype=float))
    np.testing.assert_equal(out_list, out_float)
    np.testing.assert_equal(out_bool, out_float)


def test_a_column_target_for_one_output_is_an_error_not_an_m_by_m_broadcast():
    net = DNN([2, 1], seed=0)
    X, Y = np.ones((2, 4)), np.ones((4, 1))
    with pytest.raises(ValueError, match=r"Y: expected shape \(1, 4\), got \(4, 1\)"):
        net.loss(X, Y)
    with pytest.raises(ValueError, match=r"Y.reshape\(1, -1\)"):
        net.loss(X, np.ones(4))


def test_zero_epochs_is_a_no_op():
    net, X, Y = net_and_batch(3)
    before = net.params
    assert net.fit(X, Y, 0, 0.1) == []
    np.testing.assert_equal(net.params, before)
