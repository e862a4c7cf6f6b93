"""The network spec (``manual_bp.Net``, ``manual_bp.Dense``): validated once,
the same network as the seed's lists, taken by ``DNN`` and ``check_gradients``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import manual_bp
from manual_bp import DNN, Dense, Net, backward, forward
from manual_bp.dropout import resolve as resolve_dropout
from manual_bp.normalization import resolve as resolve_normalization
from manual_bp.training import Schedule
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.settings import Settings
from manual_bp_reference.strategies import networks

HIDDEN = ["relu", "tanh", "sigmoid"]


@st.composite
def spec_lists(draw: st.DrawFn) -> dict:
    """The seed's lists of a random network, normalization and dropout included."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
    depth = len(sizes) - 1
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1))
    output, loss = ("sigmoid", "binary_cross_entropy") if sizes[-1] == 1 else ("identity", "mse")
    norms = draw(st.lists(st.sampled_from([None, "batch", "layer"]), min_size=depth - 1,
                          max_size=depth - 1))  # fmt: skip
    rates = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=depth - 1,
                          max_size=depth - 1))  # fmt: skip
    l2 = draw(st.sampled_from([0.0, 0.01]))
    return {"layer_sizes": sizes, "activations": [*hidden, output], "loss": loss,
            "normalization": norms, "dropout": rates, "l2": l2}  # fmt: skip


def _net_of(lists: dict) -> Net:
    return Net.of(lists["layer_sizes"], lists["activations"], lists["loss"],
                  normalization=lists["normalization"], dropout=lists["dropout"],
                  l2=lists["l2"])  # fmt: skip


@given(spec_lists())
def test_a_net_of_the_lists_gives_them_back(lists):
    net = _net_of(lists)
    depth = len(lists["layer_sizes"]) - 1
    assert net.layer_sizes == lists["layer_sizes"] and net.depth == depth
    assert net.activations == tuple(lists["activations"]) and net.loss == lists["loss"]
    assert net.normalization == resolve_normalization(lists["normalization"], depth)
    assert net.dropout == resolve_dropout(lists["dropout"], depth)
    assert net.l2 == lists["l2"]
    # The same value, written out layer by layer.
    layers = [Dense(n, f, k, p) for n, f, k, p in zip(
        lists["layer_sizes"][1:], lists["activations"], net.normalization, net.dropout,
        strict=True)]  # fmt: skip
    assert net == Net(lists["layer_sizes"][0], layers, lists["loss"], lists["l2"])


@given(spec_lists())
def test_a_dnn_of_a_net_is_the_dnn_of_its_lists(lists):
    net = _net_of(lists)
    of_net = DNN(net, seed=3)
    of_lists = DNN(lists["layer_sizes"], lists["activations"], lists["loss"], seed=3,
                   normalization=lists["normalization"], dropout=lists["dropout"],
                   l2=lists["l2"])  # fmt: skip
    assert of_net.net == of_lists.net == net
    assert of_net.params.keys() == of_lists.params.keys()
    for key in of_net.params:
        np.testing.assert_array_equal(of_net.params[key], of_lists.params[key])
    X = np.random.default_rng(0).standard_normal((lists["layer_sizes"][0], 4))
    out_a, _ = of_net.forward(X)
    out_b, _ = of_lists.forward(X)
    np.testing.assert_array_equal(out_a, out_b)  # same generator: same dropout masks


def test_a_saved_net_loads_with_its_spec(tmp_path):
    net = Net(2, [Dense(3, "tanh", norm="batch", dropout=0.25), Dense(1, "sigmoid")], l2=0.5)
    DNN(net).save(tmp_path / "n.npz")
    assert DNN.load(tmp_path / "n.npz").net == net


@pytest.mark.parametrize(
    ("make", "error", "names"),
    [
        (lambda: Dense(0, "relu"), ValueError, "units: expected an int >= 1, got 0"),
        (lambda: Dense(2.5, "relu"), TypeError, "units: expected an int >= 1"),
        (lambda: Dense(3, "Relu"), ValueError, "activation: expected one of ["),
        (lambda: Dense(3, "relu", norm="group"), ValueError, "norm: expected None or one of"),
        (lambda: Dense(3, "relu", dropout=1.0), ValueError, "dropout: expected a drop"),
        (lambda: Dense(3, "relu", dropout=True), ValueError, "dropout: expected a drop"),
        (lambda: Net(0, [Dense(1, "sigmoid")]), ValueError, "inputs: expected an int >= 1"),
        (lambda: Net(2, []), ValueError, "layers: expected at least the output layer"),
        (lambda: Net(2, Dense(1, "sigmoid")), TypeError, "layers: expected a list of"),
        (lambda: Net(2, [3, Dense(1, "sigmoid")]), TypeError, "layers[0]: expected a manual"),
        (lambda: Net(2, [Dense(1, "sigmoid", norm="layer")]), ValueError, "layers[-1]: the"),
        (lambda: Net(2, [Dense(1, "relu")]), ValueError, "loss: binary_cross_entropy needs"),
        (lambda: Net(2, [Dense(1, "sigmoid")], l2=-1.0), ValueError, "l2: expected"),
        (lambda: Net(2, [Dense(1, "sigmoid")], loss="hinge"), ValueError, "loss: expected"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(make, error, names):
    with pytest.raises(error) as raised:
        make()
    assert str(raised.value).startswith(names), str(raised.value)


def test_a_net_is_frozen_and_hashable():
    net = Net(2, [Dense(3, "relu"), Dense(1, "sigmoid")])
    with pytest.raises(AttributeError):
        net.l2 = 1.0  # type: ignore[misc]
    assert hash(net) == hash(Net(2, (Dense(3, "relu"), Dense(1, "sigmoid"))))


def test_dnn_refuses_a_net_and_its_lists_together():
    net = Net(2, [Dense(3, "relu"), Dense(1, "sigmoid")])
    for extra in ({"activations": ["relu", "sigmoid"]}, {"l2": 0.1}, {"dropout": 0.5}):
        with pytest.raises(ValueError, match="the Net already says them"):
            DNN(net, **extra)


def _backprop(params, X, Y):
    net = Net.of([3, 4, 1], ["tanh", "sigmoid"])
    _, cache = forward(params, X, net)
    return backward(cache, Y, net)


def _backprop_decayed(params, X, Y):
    grads = _backprop(params, X, Y)
    return {key: value + 0.1 * params[key] if key[0] == "W" else value
            for key, value in grads.items()}  # fmt: skip


def test_check_gradients_takes_a_net():
    net = Net(3, [Dense(4, "tanh"), Dense(1, "sigmoid")])
    assert (
        check_gradients(_backprop, net, settings=Settings(max_examples=5, isolate=False)).examples
        == 5
    )
    # The Net's decay is the check's: code without it is wrong, code with it passes.
    decayed = Net(3, [Dense(4, "tanh"), Dense(1, "sigmoid")], l2=0.1)
    with pytest.raises(GradientMismatch):
        check_gradients(_backprop, decayed, settings=Settings(max_examples=5, isolate=False))
    assert check_gradients(
        _backprop_decayed, decayed, settings=Settings(max_examples=5, isolate=False)
    ).examples
    # ... also beside a Conventions object, which holds no decay of its own.
    conventions = Conventions(names="W1/b1")
    renamed = _renamed(_backprop_decayed)
    assert check_gradients(
        renamed, decayed, conventions=conventions, settings=Settings(max_examples=5, isolate=False)
    ).examples


def _renamed(backprop):
    def with_b(params, X, Y):
        ours = {key.replace("b", "B"): value for key, value in params.items()}
        return {key.replace("B", "b"): value for key, value in backprop(ours, X, Y).items()}

    return with_b


def plain() -> Net:  # built when drawn, not at import (docs/testing.md, "mutmut")
    return Net(2, [Dense(3, "relu"), Dense(1, "sigmoid")])


@given(networks(net=st.builds(plain)))
def test_the_strategy_draws_cases_of_its_net(case):
    assert case.net == plain()


def test_the_strategy_refuses_a_net_it_would_draw_only_in_part():
    dropped = Net(2, [Dense(3, "relu", dropout=0.5), Dense(1, "sigmoid")])

    @given(networks(net=st.just(dropped)))
    def draw(case):
        pass

    with pytest.raises(ValueError, match="net: expected a plain Net"):
        draw()


def test_check_gradients_refuses_what_a_plain_backprop_cannot_have():
    dropped = Net(3, [Dense(4, "tanh", dropout=0.5), Dense(1, "sigmoid")])
    with pytest.raises(ValueError, match=r"net.layers\[0\]: check_gradients checks plain"):
        check_gradients(_backprop, dropped)
    net = Net(3, [Dense(4, "tanh"), Dense(1, "sigmoid")], l2=0.1)
    with pytest.raises(ValueError, match="the Net already says them"):
        check_gradients(_backprop, net, ["tanh", "sigmoid"])
    with pytest.raises(ValueError, match="give the decay in one of them"):
        check_gradients(_backprop, net, conventions=Conventions(l2=0.1))
    with pytest.raises(TypeError, match="activations, loss: required"):
        check_gradients(_backprop, [3, 4, 1])


def test_the_functional_core_takes_a_net_and_names_what_else_arrived():
    net = Net.of([2, 3, 1], ["tanh", "sigmoid"])
    params = manual_bp.init_params([2, 3, 1], ["tanh", "sigmoid"])
    X, Y = np.ones((2, 4)), np.ones((1, 4))
    with pytest.raises(TypeError, match=r"net: expected a manual_bp.Net, got list.*Net.of"):
        forward(params, X, ["tanh", "sigmoid"])
    _, cache = forward(params, X, net)
    with pytest.raises(TypeError, match=r"net: expected a manual_bp\.Net"):
        backward(cache, Y, "binary_cross_entropy")
    # A net of other sizes than the params is refused, never broadcast.
    other = Net.of([2, 4, 1], ["tanh", "sigmoid"])
    with pytest.raises(ValueError, match=r"net.layer_sizes \[2, 4, 1\].*\[2, 3, 1\]"):
        forward(params, X, other)
    with pytest.raises(ValueError, match=r"net.layer_sizes \[2, 4, 1\]"):
        backward(cache, Y, other)
    with pytest.raises(ValueError, match=r"net.layer_sizes \[2, 4, 1\]"):
        manual_bp.batch_loss(params, X, Y, other)


def test_a_net_with_dropout_needs_masks_and_without_dropout_is_inference():
    net = Net.of([2, 3, 1], ["tanh", "sigmoid"], dropout=0.5)
    params = manual_bp.init_params([2, 3, 1], ["tanh", "sigmoid"])
    X = np.ones((2, 4))
    with pytest.raises(ValueError, match=r"masks: expected \['M1'\].*without_dropout"):
        forward(params, X, net)
    plain = net.without_dropout()
    assert plain.dropout == (0.0, 0.0) and plain.without_dropout() is plain
    assert net.with_dropout((0.0, 0.0)) == plain and plain.with_dropout(net.dropout) == net
    np.testing.assert_array_equal(
        forward(params, X, plain)[0],
        forward(params, X, Net.of([2, 3, 1], ["tanh", "sigmoid"]))[0],
    )
    with pytest.raises(ValueError, match=r"rates: expected one drop probability per layer \(2\)"):
        net.with_dropout((0.5,))
    assert net.with_l2(0.25).l2 == 0.25 and net.with_l2(0.25).dropout == net.dropout
    with pytest.raises(ValueError, match="l2"):
        net.with_l2(-1.0)


def test_a_schedule_refuses_what_fit_cannot_use():
    rng = np.random.default_rng(0)
    for epochs in (-1, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="epochs"):
            Schedule(epochs, None, rng)
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        Schedule(1, 0, rng)
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator"):
        Schedule(1, None, 0)
