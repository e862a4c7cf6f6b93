"""The seed's calls as written, and no write or wrong cache silently ignored."""

import copy

import numpy as np
import pytest

import manual_bp.network
from manual_bp import DNN, Net, forward

X = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
Y = np.array([[1.0, 0.0, 1.0]])


def test_the_seeds_two_calls_run_as_written():
    net = DNN([2, 3, 3, 1], seed=0)
    out, cache = net.forward(X, Y)
    grads = net.compute_gradients(out, cache)
    np.testing.assert_equal(grads, net.compute_gradients(*net.forward(X), Y))
    assert cache["Y"] is not None and np.array_equal(cache["Y"], Y)


def test_y_given_both_ways_must_agree():
    net = DNN([2, 3, 1], seed=0)
    out, cache = net.forward(X, Y)
    np.testing.assert_equal(
        net.compute_gradients(out, cache, Y.copy()), net.compute_gradients(out, cache)
    )
    with pytest.raises(ValueError, match=r"^Y: differs from the Y given to forward"):
        net.compute_gradients(out, cache, 1 - Y)


def test_y_given_neither_way_is_an_error_naming_both_ways():
    net = DNN([2, 3, 1], seed=0)
    out, cache = net.forward(X)
    with pytest.raises(
        TypeError, match=r"^Y: expected the targets \(1, 3\), either here.*forward\(X, Y\)"
    ):
        net.compute_gradients(out, cache)


def test_forward_checks_y_before_anything():
    with pytest.raises(
        ValueError, match=r"^Y: expected shape \(1, 3\), got \(3, 1\); did you mean Y.T\?$"
    ):
        DNN([2, 3, 1], seed=0).forward(X, Y.T)


def test_a_cache_from_another_network_of_the_same_shape_is_refused():
    net, twin = DNN([2, 3, 1], seed=0), DNN([2, 3, 1], seed=0)
    out, cache = twin.forward(X, Y)
    with pytest.raises(
        ValueError,
        match=r"^cache: expected the cache of this network's forward, got one that another ne",
    ):
        net.compute_gradients(out, cache)
    # copies of a cache keep their network (copy.copy, deepcopy), a step keeps the net's
    own_out, own_cache = net.forward(X, Y)
    net.step(net.compute_gradients(own_out, own_cache), 0.1)
    for kept in (own_cache, copy.copy(own_cache), copy.deepcopy(own_cache)):
        net.compute_gradients(own_out, kept)
    with pytest.raises(ValueError, match="another network"):
        net.compute_gradients(out, copy.deepcopy(cache))


def test_a_plain_dict_cache_is_accepted_only_with_this_networks_shapes():
    net = DNN([2, 3, 1], seed=0)
    out, cache = forward(net.params, X, net.net)  # the functional core's plain dict
    np.testing.assert_equal(
        net.compute_gradients(out, cache, Y), net.compute_gradients(*net.forward(X), Y)
    )
    other = DNN([2, 4, 1], seed=0)
    out, cache = forward(other.params, X, other.net)
    with pytest.raises(
        ValueError, match=r"^cache\['W1'\]: expected a float64 array of shape \(3, 2\)"
    ):
        net.compute_gradients(out, cache, Y)
    out, cache = forward(
        {k: v.astype(np.float32) for k, v in net.params.items()}, X.astype(np.float32), net.net
    )
    with pytest.raises(ValueError, match=r"^cache\['W1'\]: expected a float64 array"):
        net.compute_gradients(out, cache, Y)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.__setitem__("W1", np.zeros((3, 2))),
        lambda p: p.update(W1=np.zeros((3, 2))),
        lambda p: p.pop("W1"),
        lambda p: p.__delitem__("B1"),
        lambda p: p.setdefault("W9", 0),
        lambda p: p.clear(),
    ],
)
def test_writing_into_params_raises_and_names_the_supported_way(write):
    net = DNN([2, 3, 1], seed=0)
    before = dict(net.params)
    with pytest.raises(
        TypeError,
        match=r"net.params is a read-only snapshot.*net.params = \{\*\*net.params, 'W1': new_W1\}",
    ):
        write(net.params)
    np.testing.assert_equal(net.params, before)


def test_the_supported_way_works_and_copies_are_plain_dicts():
    net = DNN([2, 3, 1], seed=0)
    new = {**net.params, "W1": np.zeros((3, 2))}
    net.params = new
    np.testing.assert_array_equal(net.params["W1"], np.zeros((3, 2)))
    mutable = net.params.copy()
    mutable["W1"] = np.ones((3, 2))
    assert type(mutable) is dict and type(copy.deepcopy(net.params)) is dict


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n.forward(X.T), r"got \(3, 2\) \(one sample per row\?\); did you mean X.T\?$"),
        (
            lambda n: n.loss(X, Y.T),
            r"^Y: expected shape \(1, 3\), got \(3, 1\); did you mean Y.T\?$",
        ),
        (
            lambda n: setattr(n, "params", {**n.params, "W1": n.params["W1"].T}),
            r"got \(2, 3\); did you mean params\['W1'\].T\?$",
        ),
    ],
)
def test_shape_errors_hint_at_the_transpose_when_it_fits(call, message):
    with pytest.raises(ValueError, match=message):
        call(DNN([2, 3, 1], seed=0))


def test_no_transpose_hint_when_the_transpose_would_not_fit():
    with pytest.raises(ValueError) as error:
        DNN([2, 3, 1], seed=0).forward(np.ones((3, 4)))
    assert "did you mean" not in str(error.value)


def test_fit_calls_back_with_each_epoch_and_its_loss():
    net = DNN([2, 3, 1], seed=0)
    seen = []
    history = net.fit(
        X, Y, epochs=4, learning_rate=0.5, callback=lambda e, loss: seen.append((e, loss))
    )
    assert seen == list(enumerate(history, start=1))
    with pytest.raises(TypeError, match=r"^callback: expected a function callback\(epoch, loss\)"):
        net.fit(X, Y, epochs=1, learning_rate=0.5, callback=3)


def test_decay_and_dropout_gradients_match_the_oracle_on_the_cached_mask():
    """DNN(l2=, dropout=): forward draws a mask, compute_gradients uses it and
    adds l2 Wl; jax.grad of the same forward with that mask agrees."""
    from manual_bp_reference.cases import Case
    from manual_bp_reference.compare import compare

    X = np.random.default_rng(0).standard_normal((2, 9))
    Y = (X[:1] > 0).astype(float)
    net = DNN([2, 6, 5, 1], ["tanh", "sigmoid", "sigmoid"], l2=0.3, dropout=[0.5, 0.25], seed=1)
    out, cache = net.forward(X, Y)
    grads = net.compute_gradients(out, cache)
    masks = {key: cache[key] for key in ("M1", "M2")}
    case = Case.of(net.params, X, Y, net.activations, net.loss_name, l2=0.3,
                dropout=net.dropout, masks=masks)  # fmt: skip
    comparison = compare(case, grads)
    assert comparison.ok, comparison.report()
    # Inference drops nothing; the next training forward draws another mask.
    assert set(net.forward(X, training=False)[1]).isdisjoint(masks)
    assert not np.array_equal(net.forward(X)[1]["M1"], masks["M1"])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"l2": -0.1}, ValueError, r"^l2: expected a finite float >= 0, got -0.1$"),
        ({"l2": "0.1"}, TypeError, r"^l2: expected a float >= 0, got str"),
        ({"dropout": 1.0}, ValueError, r"^dropout: expected drop probabilities in \[0, 1\)"),
        ({"dropout": [0.5]}, ValueError, r"^dropout: expected one probability per hidden layer"),
        ({"dropout": "0.5"}, TypeError, r"^dropout: expected None, a drop probability"),
    ],
)
def test_bad_decay_or_dropout_is_refused_by_name(options, error, message):
    with pytest.raises(error, match=message):
        DNN([2, 3, 3, 1], **options)


@pytest.mark.parametrize(
    ("dropout", "masks", "message"),
    [
        (0.5, {}, r"masks: expected \['M1'\].*without_dropout.*got \[\]"),
        (0.5, {"M1": np.ones((4, 3))}, r"masks\['M1'\]: expected shape \(3, 4\)"),
        (0.5, {"M1": np.full((3, 4), 0.5)}, r"masks\['M1'\]: expected zeros and ones"),
        (0.0, {"M1": np.ones((3, 4))}, r"masks: expected \[\]"),
    ],
)
def test_the_functional_forward_refuses_bad_dropout_by_name(dropout, masks, message):
    params = manual_bp.network.init_params([2, 3, 1], ["tanh", "sigmoid"])
    net = Net.of([2, 3, 1], ["tanh", "sigmoid"], dropout=dropout)
    with pytest.raises(ValueError, match=message):
        forward(params, np.ones((2, 4)), net, masks=masks)
