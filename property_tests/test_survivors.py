"""Small focused tests that kill the mutants mutmut found alive (issue 29).

Each test pins one behaviour no other test looked at closely enough:

- one step of every optimizer option from a known state (``t = 0 -> 1`` from
  ``init``, and ``t = 2 -> 3`` from a given state) against the docstring's
  formulas written again here in NumPy, never through the product's rule;
- float32 kept end to end by batch-normalized and dropout nets: the
  functions that build their arrays, training, predicting, save and load;
- seeds: a seed gives the same draw twice and another seed another draw,
  seed 0 is a seed, bools and NumPy integers are refused;
- the edges of every validated interval, just outside refused, at and just
  inside accepted.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from manual_bp import DNN
from manual_bp import dropout as dropout_step
from manual_bp import normalization as normalization_step
from manual_bp.activations import ACTIVATIONS
from manual_bp.network import init_params
from manual_bp.optimizers import SGD, Adam, AdamW, Momentum, RMSProp

BELOW_ONE = math.nextafter(1.0, 0.0)
ABOVE_ONE = math.nextafter(1.0, 2.0)
BELOW_ZERO = -5e-324

# --- one step of every option, against the formulas --------------------------------

LR = 0.1
THETA = {
    "W1": np.array([[0.5, -1.5, 2.0], [0.25, 0.0, -3.0]]),
    "B1": np.array([[1.0], [-2.0]]),
}
GRADS = {
    "W1": np.array([[0.3, -2.0, 0.01], [4.0, -0.5, 1.0]]),
    "B1": np.array([[-0.7], [0.2]]),
}


# The documented defaults, written here rather than read from the optimizer:
# the expected step depends only on what the test asked for.
DEFAULTS = {
    SGD: {},
    Momentum: {"momentum": 0.9, "nesterov": False, "dampening": 0.0},
    RMSProp: {"decay": 0.9, "eps": 1e-8, "eps_in_sqrt": True, "initial_scale": 0.0,
              "bias_correction": False},
    Adam: {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "bias_correction": True},
    AdamW: {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "bias_correction": True,
            "weight_decay": 1e-4, "decay_biases": True, "decay_scaled_by_lr": True},
}  # fmt: skip


# The accumulators each keeps (Adam's and AdamW's m and v), and which count steps.
SLOTS = {SGD: (), Momentum: ("m",), RMSProp: ("v",), Adam: ("m", "v"), AdamW: ("m", "v")}
COUNTS_STEPS = (RMSProp, Adam, AdamW)


def expected_step(cls, options, g, theta, slots, t, key):
    """One parameter's step from the module docstring's formulas, by hand."""
    h = {**DEFAULTS[cls], **options}
    a = LR
    if cls is SGD:
        return theta - a * g, {}
    if cls is Momentum:
        mu, tau = h["momentum"], h["dampening"]
        m = mu * slots["m"] + (1 - tau) * g
        direction = g + mu * m if h["nesterov"] else m
        return theta - a * direction, {"m": m}
    if cls is RMSProp:
        rho, eps = h["decay"], h["eps"]
        v = rho * slots["v"] + (1 - rho) * g**2
        v_hat = v / (1 - rho**t) if h["bias_correction"] else v
        if h["eps_in_sqrt"]:
            return theta - a * g / np.sqrt(v_hat + eps), {"v": v}
        return theta - a * g / (np.sqrt(v_hat) + eps), {"v": v}
    # Adam and AdamW
    b1, b2 = h["b1"], h["b2"]
    m = b1 * slots["m"] + (1 - b1) * g
    v = b2 * slots["v"] + (1 - b2) * g**2
    m_hat, v_hat = m, v
    if h["bias_correction"]:
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    direction = m_hat / (np.sqrt(v_hat + h["eps_root"]) + h["eps"])
    if cls is Adam:
        return theta - a * direction, {"m": m, "v": v}
    # AdamW: the keys decayed are written out here, from the docstring: every
    # key, or with decay_biases=False those not starting with "B".
    decayed = h["decay_biases"] or not key.startswith("B")
    lam = h["weight_decay"] if decayed else 0.0
    if h["decay_scaled_by_lr"]:
        return theta - a * (direction + lam * theta), {"m": m, "v": v}
    return theta - a * direction - lam * theta, {"m": m, "v": v}


# Every option, with large eps and extreme decays, so that each choice moves the
# step.  (class, keywords): built in the test, so that a constructor that raises
# fails these tests rather than their collection.
ADAM = {"b1": 0.6, "b2": 0.8, "eps": 0.125}
OPTIONS = [
    (SGD, {}),
    (Momentum, {}),
    (Momentum, {"momentum": 0.8}),
    (Momentum, {"momentum": 0.8, "nesterov": True}),
    (Momentum, {"momentum": 0.8, "dampening": 0.3}),
    (Momentum, {"momentum": 0.8, "dampening": 1.0}),
    (RMSProp, {}),
    *[
        (RMSProp, {"decay": 0.7, "eps": 0.25, "eps_in_sqrt": inside, "bias_correction": bias,
                   "initial_scale": scale})
        for inside in (True, False)
        for bias in (True, False)
        for scale in (0.0, 1.5)
    ],
    (Adam, {}),
    *[
        (Adam, {**ADAM, "eps_root": root, "bias_correction": bias})
        for root in (0.0, 0.5)
        for bias in (True, False)
    ],
    (AdamW, {}),
    *[
        (AdamW, {**ADAM, "weight_decay": 0.3, "decay_biases": biases,
                 "decay_scaled_by_lr": scaled, "bias_correction": bias})
        for biases in (True, False)
        for scaled in (True, False)
        for bias in (True, False)
    ],
    (AdamW, {**ADAM, "weight_decay": 0.0, "decay_biases": False}),
]  # fmt: skip
OPTION_IDS = [
    f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in options.items())})"
    for cls, options in OPTIONS
]


def assert_step(cls, options, state, t):
    """``update`` from ``state`` (step ``t - 1`` taken) equals the formulas' step ``t``."""
    new_params, new_state = cls(LR, **options).update(GRADS, state, THETA)
    assert set(new_params) == set(THETA)
    assert set(new_state) == set(SLOTS[cls]) | ({"t"} if cls in COUNTS_STEPS else set())
    for key in THETA:
        slots = {slot: state[slot][key] for slot in SLOTS[cls]}
        theta, updated = expected_step(cls, options, GRADS[key], THETA[key], slots, t, key)
        np.testing.assert_allclose(new_params[key], theta, rtol=1e-13, atol=0, err_msg=key)
        for slot in SLOTS[cls]:
            np.testing.assert_allclose(
                new_state[slot][key], updated[slot], rtol=1e-13, atol=0, err_msg=f"{slot} {key}"
            )
    if cls in COUNTS_STEPS:
        assert new_state["t"] == t


@pytest.mark.parametrize("cls, options", OPTIONS, ids=OPTION_IDS)
def test_the_cold_step_of_every_option_follows_the_formulas(cls, options):
    state = cls(LR, **options).init(THETA)
    assert set(state) == set(SLOTS[cls]) | ({"t"} if cls in COUNTS_STEPS else set())
    if cls in COUNTS_STEPS:
        assert state["t"] == 0
    fill = options.get("initial_scale", 0.0)  # v starts at initial_scale, the rest at 0
    for slot in SLOTS[cls]:
        for key, value in THETA.items():
            assert state[slot][key].dtype == value.dtype
            assert np.array_equal(state[slot][key], np.full(value.shape, fill)), (slot, key)
    assert_step(cls, options, state, 1)


@pytest.mark.parametrize("cls, options", OPTIONS, ids=OPTION_IDS)
def test_a_warm_step_of_every_option_follows_the_formulas(cls, options):
    rng = np.random.default_rng(5)
    state = {
        slot: {key: rng.uniform(0.1, 2.0, value.shape) for key, value in THETA.items()}
        for slot in SLOTS[cls]
    }
    if cls in COUNTS_STEPS:
        state["t"] = 2
    assert_step(cls, options, state, 3)


def test_rmsprop_bias_correction_divides_v_and_eps_outside_the_root_adds():
    """The two RMSProp options the issue names, with numbers small enough to read:
    g = 2, ρ = 0.5, ε = 1 from v = 0: v = 2, v̂ = 2 / 0.5 = 4."""
    params, grads = {"W1": np.array([[1.0]])}, {"W1": np.array([[2.0]])}
    outside = RMSProp(1.0, decay=0.5, eps=1.0, eps_in_sqrt=False, bias_correction=True)
    new, state = outside.update(grads, outside.init(params), params)
    assert new["W1"][0, 0] == 1.0 - 2.0 / (2.0 + 1.0)  # √4 + 1
    assert state["v"]["W1"][0, 0] == 2.0 and state["t"] == 1
    inside = RMSProp(1.0, decay=0.5, eps=5.0, eps_in_sqrt=True, bias_correction=True)
    new, _ = inside.update(grads, inside.init(params), params)
    assert new["W1"][0, 0] == 1.0 - 2.0 / 3.0  # √(4 + 5)


# --- float32 end to end ------------------------------------------------------------

F32 = np.dtype("float32")


def assert_float32(arrays, what):
    for key, value in arrays.items():
        assert value.dtype == F32, f"{what}[{key!r}] is {value.dtype}"


def test_the_normalization_builders_keep_float32():
    sizes, kinds = (3, 4, 5, 2), ("batch", "layer", None)
    params = normalization_step.init_normalization_params(sizes, kinds, "float32")
    assert sorted(params) == ["beta1", "beta2", "gamma1", "gamma2"]
    assert_float32(params, "params")
    running = normalization_step.init_running(sizes, kinds, "float32")
    assert sorted(running) == ["running_mean1", "running_var1"]
    assert_float32(running, "running")
    # A float64 batch's moments still update float32 running statistics as float32.
    for cache_dtype in ("float32", "float64"):
        cache = {
            "mu1": np.full((4, 1), 2.0, cache_dtype),
            "var1": np.full((4, 1), 3.0, cache_dtype),
        }
        new = normalization_step.update_running(running, cache, kinds)
        assert_float32(new, f"update_running from {cache_dtype}")
        np.testing.assert_allclose(new["running_mean1"], 0.1 * 2.0)
        np.testing.assert_allclose(new["running_var1"], 0.9 + 0.1 * 3.0)


def test_draw_masks_keeps_its_dtype():
    masks = dropout_step.draw_masks([3, 6, 5, 1], 4, (0.5, 0.25, 0.0), rng=1, dtype="float32")
    assert sorted(masks) == ["M1", "M2"]
    assert_float32(masks, "masks")
    default = dropout_step.draw_masks([3, 6, 1], 4, (0.5, 0.0), rng=1)
    assert default["M1"].dtype == np.float64


def train_and_round_trip(net, tmp_path):
    X = np.linspace(-1.0, 1.0, 3 * 8).reshape(3, 8)
    Y = np.eye(2)[:, [0, 1, 1, 0, 1, 0, 0, 1]]
    out, cache = net.forward(X, Y)
    assert out.dtype == F32
    assert_float32({k: v for k, v in cache.items() if isinstance(v, np.ndarray)}, "cache")
    grads = net.compute_gradients(out, cache, Y)
    assert_float32(grads, "grads")
    net.step(grads, 0.05)
    assert_float32(net.params, "params after step")
    history = net.fit(X, Y, epochs=2, batch_size=4, optimizer=Adam(0.01))
    assert all(np.isfinite(history))
    assert_float32(net.params, "params after fit")
    assert_float32(net.running, "running after fit")
    assert_float32(net.optimizer_state["m"], "optimizer m")
    predictions = net.predict(X)
    assert predictions.dtype == F32
    net.save(tmp_path / "net.npz")
    loaded = DNN.load(tmp_path / "net.npz")
    assert loaded.dtype == F32
    assert_float32(loaded.params, "loaded params")
    assert_float32(loaded.running, "loaded running")
    loaded_predictions = loaded.predict(X)
    assert loaded_predictions.dtype == F32
    assert np.array_equal(loaded_predictions, predictions)
    return cache


def test_a_float32_batch_normalized_net_stays_float32(tmp_path):
    net = DNN([3, 4, 2], ["relu", "softmax"], seed=2, dtype="float32", normalization="batch")
    assert_float32(net.params, "params")
    assert sorted(net.running) == ["running_mean1", "running_var1"]
    assert_float32(net.running, "running")
    train_and_round_trip(net, tmp_path)


def test_a_float32_layer_normalized_net_stays_float32(tmp_path):
    net = DNN([3, 4, 2], ["tanh", "softmax"], seed=2, dtype="float32", normalization="layer")
    assert {"gamma1", "beta1"} <= set(net.params)
    train_and_round_trip(net, tmp_path)


def test_a_float32_dropout_net_stays_float32(tmp_path):
    net = DNN([3, 5, 2], ["relu", "softmax"], seed=2, dtype="float32", dropout=0.5)
    cache = train_and_round_trip(net, tmp_path)
    assert cache["M1"].dtype == F32


# --- seeds ---------------------------------------------------------------------------

SIZES, M, RATES = [4, 30, 20, 1], 25, (0.5, 0.5, 0.0)


def draw(rng):
    return dropout_step.draw_masks(SIZES, M, RATES, rng=rng)


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_a_seed_gives_the_same_masks_twice_and_numpys_draw(seed):
    first, second = draw(seed), draw(seed)
    assert same(first, second)
    # The seed is the generator's seed: the masks are default_rng(seed)'s draw.
    assert same(first, draw(np.random.default_rng(seed)))
    assert not same(first, draw(seed + 1))


def test_a_generator_is_advanced_by_the_draw():
    rng = np.random.default_rng(3)
    first, second = draw(rng), draw(rng)
    assert not same(first, second)
    replay = np.random.default_rng(3)
    assert same(first, draw(replay)) and same(second, draw(replay))


@pytest.mark.parametrize("seed", [True, False, np.int64(3), 3.0, -1, "3", None])
def test_draw_masks_refuses_what_is_not_a_seed(seed):
    with pytest.raises(TypeError, match=r"rng: expected a numpy\.random\.Generator or a seed"):
        draw(seed)


def test_a_net_seed_gives_the_same_params_and_masks_twice():
    def masks_of(seed):
        net = DNN([4, 30, 1], ["relu", "sigmoid"], seed=seed, dropout=0.5)
        _, cache = net.forward(np.ones((4, 25)))
        return dict(net.params), {"M1": cache["M1"]}

    for seed in (0, 7):
        (p1, m1), (p2, m2) = masks_of(seed), masks_of(seed)
        assert same(p1, p2) and same(m1, m2)
    (p0, m0), (p7, m7) = masks_of(0), masks_of(7)
    assert not same(p0, p7) and not same(m0, m7)


@pytest.mark.parametrize("seed", [True, np.int64(3), 3.0])
def test_a_net_refuses_a_seed_of_the_wrong_type(seed):
    with pytest.raises(TypeError, match="seed: expected an int >= 0 or None"):
        DNN([2, 3, 1], seed=seed)


def test_a_net_refuses_a_negative_seed():
    with pytest.raises(ValueError, match="seed: expected an int >= 0 or None"):
        DNN([2, 3, 1], seed=-1)


# --- the edges of every validated interval --------------------------------------------

# (class, keyword, values accepted, values refused with ValueError)
INTERVALS = [
    (Momentum, "momentum", [0.0, BELOW_ONE], [BELOW_ZERO, 1.0, math.nan]),
    (Momentum, "dampening", [0.0, 1.0, 0.5], [BELOW_ZERO, ABOVE_ONE, 1.5, math.nan]),
    (RMSProp, "decay", [0.0, BELOW_ONE], [BELOW_ZERO, 1.0, math.nan]),
    (RMSProp, "eps", [0.0, 1e300], [BELOW_ZERO, math.inf, math.nan]),
    (RMSProp, "initial_scale", [0.0, 1e300], [BELOW_ZERO, math.inf, math.nan]),
    (Adam, "b1", [0.0, BELOW_ONE], [BELOW_ZERO, 1.0, math.nan]),
    (Adam, "b2", [0.0, BELOW_ONE], [BELOW_ZERO, 1.0, math.nan]),
    (Adam, "eps", [0.0, 1e300], [BELOW_ZERO, math.inf, math.nan]),
    (Adam, "eps_root", [0.0, 1e300], [BELOW_ZERO, math.inf, math.nan]),
    (AdamW, "b2", [0.0, BELOW_ONE], [1.0]),
    (AdamW, "weight_decay", [0.0, 1e300], [BELOW_ZERO, math.inf, math.nan]),
]


@pytest.mark.parametrize(
    "cls, keyword, good, bad", INTERVALS, ids=[f"{c.__name__}-{k}" for c, k, _, _ in INTERVALS]
)
def test_the_edges_of_every_interval(cls, keyword, good, bad):
    for value in good:
        optimizer = cls(0.1, **{keyword: value})
        stored = getattr(optimizer, keyword)
        assert stored == value and type(stored) is float, (keyword, value)
    for value in bad:
        with pytest.raises(ValueError, match=f"{keyword}: expected a finite float in"):
            cls(0.1, **{keyword: value})


@pytest.mark.parametrize("value", ["0.9", True, None, 1j])
@pytest.mark.parametrize(
    "cls, keyword", [(Adam, "b1"), (Adam, "b2"), (RMSProp, "decay"), (Momentum, "dampening")]
)
def test_a_hyperparameter_that_is_not_a_real_number_is_refused(cls, keyword, value):
    with pytest.raises(TypeError, match=f"{keyword}: expected a float"):
        cls(0.1, **{keyword: value})


def test_the_pinned_edge_cases_of_the_issue():
    for make in (
        lambda: Adam(0.1, b2=1.0),
        lambda: RMSProp(0.1, decay=1.0),
        lambda: Momentum(0.1, dampening=1.5),
    ):
        with pytest.raises(ValueError):
            make()
    with pytest.raises(TypeError):
        Adam(0.1, b1="0.9")


@pytest.mark.parametrize("rate", [5e-324, 1e300])
def test_learning_rates_above_zero_are_accepted(rate):
    assert SGD(rate).learning_rate == rate


@pytest.mark.parametrize("rate", [0.0, -0.1, math.inf, math.nan])
def test_learning_rates_not_above_zero_are_refused(rate):
    for cls in (SGD, Momentum, RMSProp, Adam, AdamW):
        with pytest.raises(ValueError, match="learning_rate: expected a finite float > 0"):
            cls(rate)


@pytest.mark.parametrize(
    "keyword, cls",
    [
        ("nesterov", Momentum),
        ("eps_in_sqrt", RMSProp),
        ("bias_correction", RMSProp),
        ("bias_correction", Adam),
        ("decay_biases", AdamW),
        ("decay_scaled_by_lr", AdamW),
    ],
)
def test_a_flag_must_be_a_bool(keyword, cls):
    for value in (True, False):
        assert getattr(cls(0.1, **{keyword: value}), keyword) is value
    for value in (1, 0, "True", None, np.bool_(True)):
        with pytest.raises(TypeError, match=f"{keyword}: expected True or False"):
            cls(0.1, **{keyword: value})


def test_which_keys_adamw_decays():
    """Written out from the docstring, not read from the optimizer: every key, or
    with decay_biases=False the keys not starting with B; none when λ = 0."""
    keys = ["W1", "B1", "gamma1", "beta1", "W2", "B2"]
    weights = ["W1", "gamma1", "beta1", "W2"]
    for biases, decayed in ((True, keys), (False, weights)):
        adamw = AdamW(0.1, weight_decay=0.01, decay_biases=biases)
        assert [key for key in keys if adamw.decays(key)] == decayed
        assert adamw.decay_groups(keys) == {
            "decayed": decayed,
            "kept": [key for key in keys if key not in decayed],
        }
        none = AdamW(0.1, weight_decay=0.0, decay_biases=biases)
        assert not any(none.decays(key) for key in keys)
        assert none.decay_groups(keys) == {"decayed": [], "kept": keys}
    for other in (SGD(0.1), Momentum(0.1), RMSProp(0.1), Adam(0.1)):
        assert other.decay_groups(keys) == {"decayed": [], "kept": keys}


def test_nesterov_refuses_dampening():
    with pytest.raises(ValueError, match="Nesterov momentum needs dampening=0"):
        Momentum(0.1, nesterov=True, dampening=0.5)
    assert Momentum(0.1, nesterov=True, dampening=0.0).nesterov is True


@pytest.mark.parametrize("t", [1.5, -1, True, "1", None, 2.0])
def test_a_step_count_that_is_not_an_int_at_least_zero_is_refused(t):
    optimizer = Adam(0.1)
    state = {**optimizer.init(THETA), "t": t}
    with pytest.raises(ValueError, match=r"state\['t'\]: expected the step count"):
        optimizer.update(GRADS, state, THETA)


@pytest.mark.parametrize("t", [0, 2, np.int64(2)])
def test_a_step_count_that_is_an_int_at_least_zero_is_accepted(t):
    optimizer = RMSProp(0.1, bias_correction=True)
    _, new_state = optimizer.update(GRADS, {**optimizer.init(THETA), "t": t}, THETA)
    assert new_state["t"] == t + 1 and type(new_state["t"]) is int


@pytest.mark.parametrize(
    "rates, depth", [((0.0, 0.0), 2), ((BELOW_ONE, 0.0), 2), ((0.5, 0.25, 0.0), 3)]
)
def test_check_rates_accepts_probabilities_in_zero_one(rates, depth):
    assert dropout_step.check_rates(rates, depth) == rates


@pytest.mark.parametrize(
    "rates, depth",
    [
        ((1.0, 0.0), 2),
        ((BELOW_ZERO, 0.0), 2),
        ((0.5, 0.1), 2),
        ((0.5, 0.0), 3),
        ((0.5, 0.0, 0.0), 2),
        ((math.nan, 0.0), 2),
        ((True, 0.0), 2),
        ((False, 0.0), 2),
    ],
)
def test_check_rates_refuses_what_is_outside(rates, depth):
    with pytest.raises(ValueError, match="dropout: expected"):
        dropout_step.check_rates(rates, depth)


@pytest.mark.parametrize("rate", [1.0, BELOW_ZERO, math.nan, [0.5, 1.0], [True, 0.5], [False, 0.5]])
def test_resolve_refuses_a_drop_probability_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"dropout: expected drop probabilities in \[0, 1\)"):
        dropout_step.resolve(rate, 3)


def test_resolve_accepts_the_edges_and_refuses_a_bool():
    assert dropout_step.resolve(BELOW_ONE, 3) == (BELOW_ONE, BELOW_ONE, 0.0)
    assert dropout_step.resolve(0, 3) == (0.0, 0.0, 0.0)
    with pytest.raises(TypeError, match="dropout: expected None, a drop probability"):
        dropout_step.resolve(True, 3)


# --- what a disagreeing step is retried with ------------------------------------------


@pytest.mark.parametrize(
    ("eps", "eps_root", "offered"),
    [(1e-8, 0.0, True), (0.0, 0.0, False), (0.0, 1e-8, False), (1e-8, 1e-8, False)],
)
def test_adam_offers_the_eps_placement_only_for_eps_alone(eps, eps_root, offered):
    """``optimizer_check`` retries a disagreeing step with eps moved inside the root
    only when the optimizer has an ``eps`` outside and none inside: with both set,
    "inside" would silently drop the user's ``eps_root``."""
    options = Adam(1e-3, eps=eps, eps_root=eps_root).alternatives()
    assert ("eps_placement" in options) is offered
    if offered:
        assert options["eps_placement"] == [
            ("outside", {}),
            ("inside", {"eps": 0.0, "eps_root": eps}),
        ]


# --- the initialisation each activation declares --------------------------------------

HE = ("relu", "leaky_relu", "elu", "silu", "gelu")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_init_params_draws_he_for_relu_like_layers_and_glorot_otherwise(name):
    """``Wl ~ N(0, 2 / n(l-1))`` (He) for the relu-like activations, else
    ``N(0, 2 / (n(l-1) + nl))`` (Glorot), as ``init_params`` documents: the
    sample standard deviation of 300 x 200 weights is within 1% of the
    declared one (its relative standard error is about 0.3%)."""
    fan_in, fan_out = 200, 300
    W = init_params([fan_in, fan_out], [name], seed=3)["W1"]
    expected = np.sqrt(2 / fan_in) if name in HE else np.sqrt(2 / (fan_in + fan_out))
    assert W.std() == pytest.approx(expected, rel=0.01)


# --- an activation's backward with mixed dtypes -----------------------------------------

ELEMENTWISE = sorted(name for name, a in ACTIVATIONS.items() if a.derivative is not None)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("wide", ["dA", "Z and A"])
def test_a_mixed_dtype_backward_returns_numpys_promoted_dtype(name, wide):
    """``backward(dA, Z, A)`` with one side float32 and the other float64
    returns float64 (NumPy's ``result_type``), never the narrower dtype, and
    the values of the float64 step up to float32's rounding of the narrow
    side."""
    activation = ACTIVATIONS[name]
    Z = np.linspace(-3.0, 3.0, 12).reshape(3, 4) + 0.05
    A = activation.forward(Z)
    dA = np.cos(Z)
    expected = activation.backward(dA, Z, A)
    if wide == "dA":
        Z, A = Z.astype(np.float32), A.astype(np.float32)
    else:
        dA = dA.astype(np.float32)
    dZ = activation.backward(dA, Z, A)
    assert dZ.dtype == np.float64
    np.testing.assert_allclose(dZ, expected, rtol=1e-5, atol=1e-6)


# --- hyperparameters are stored as Python floats ---------------------------------------

REAL_FIELDS = [
    (cls, field.name)
    for cls in (SGD, Momentum, RMSProp, Adam, AdamW)
    for field in dataclasses.fields(cls)
    if field.type in (float, "float")
]


@pytest.mark.parametrize(("cls", "name"), REAL_FIELDS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("given", [np.float32, int])
def test_a_hyperparameter_is_stored_as_a_python_float(cls, name, given):
    """A float32 or int hyperparameter is stored as the float it is: a NumPy
    float32 kept as given would run the step's scalar arithmetic (``1 - b1**t``)
    in float32."""
    # Valid for every field: 0.5 anywhere, an int 1 learning rate and an int 0 elsewhere.
    value = np.float32(0.5) if given is np.float32 else int(name == "learning_rate")
    if name == "learning_rate":
        optimizer = cls(value)
    else:
        optimizer = cls(0.1, **{name: value})
    stored = getattr(optimizer, name)
    assert type(stored) is float
    assert stored == float(value)


# --- exact zeros through an activation with f(0) = 0 ----------------------------------


def test_a_zero_through_tanh_keeps_the_next_relus_zero_provable():
    """``Z1 = 0`` exactly (zero weights and biases), ``A1 = tanh(0) = 0`` exactly
    (``Activation.zero_at_zero``), so the relu's ``Z2 = W2 A1 + 0`` is 0 in every
    summation order: a provable zero, where the kink convention is tested, not
    moved away (``kinks.away_from_kinks`` returns the case as is)."""
    from manual_bp_reference.cases import Case
    from manual_bp_reference.kinks import away_from_kinks

    params = {"W1": np.zeros((3, 2)), "B1": np.zeros((3, 1)),
              "W2": np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]), "B2": np.zeros((2, 1)),
              "W3": np.array([[1.0, -1.0]]), "B3": np.array([[0.1]])}  # fmt: skip
    X = np.array([[0.3, -1.2, 2.0], [1.0, 0.5, -0.7]])
    case = Case.of(params, X, np.array([[0.0, 1.0, 1.0]]), ("tanh", "relu", "sigmoid"),
                   "binary_cross_entropy")  # fmt: skip
    assert away_from_kinks(case) is case


# --- batch_loss: running statistics, taps, the decay under jax ------------------------


def _batch_normalized_case():
    from manual_bp.net import Dense, Net

    net = Net(3, [Dense(4, "tanh", norm="batch"), Dense(2, "softmax")], "cross_entropy")
    rng = np.random.default_rng(5)
    params = init_params([3, 4, 2], ["tanh", "softmax"], seed=5)
    params.update(normalization_step.init_normalization_params([3, 4, 2], ["batch", None], "f8"))
    params["gamma1"] = params["gamma1"] + 0.5
    X = rng.standard_normal((3, 6))
    Y = np.eye(2)[:, rng.integers(0, 2, 6)]
    running = {"running_mean1": rng.standard_normal((4, 1)), "running_var1": np.full((4, 1), 2.5)}
    return net, params, X, Y, running


def test_batch_loss_with_running_statistics_is_the_inference_loss():
    """``batch_loss(..., running=)`` normalizes with the running statistics (the
    loss at inference), not the batch's, and the cache names them as given."""
    from manual_bp.network import batch_loss, forward, loss_from_cache

    net, params, X, Y, running = _batch_normalized_case()
    _, cache = forward(params, X, net, running=running)
    np.testing.assert_array_equal(cache["running_mean1"], running["running_mean1"])
    np.testing.assert_array_equal(cache["running_var1"], running["running_var1"])
    expected = loss_from_cache(cache, Y, net.loss, net.depth)
    assert batch_loss(params, X, Y, net, running=running) == pytest.approx(expected, rel=1e-15)
    assert batch_loss(params, X, Y, net) != pytest.approx(expected, rel=1e-6)


def test_batch_loss_taps_give_jax_the_gradient_of_every_Z_and_its_decay_traces():
    """``jax.grad`` of ``batch_loss`` with respect to zero ``taps`` is ``dL/dZl``,
    the hand-written backward's ``dZl``; with a decay, ``batch_loss`` over
    ``jax.numpy`` traces (its penalty in ``xp`` too) and equals NumPy's value."""
    from manual_bp.net import Dense, Net
    from manual_bp.network import backward, batch_loss, forward
    from manual_bp_reference.jax_setup import jax, jnp

    net = Net(3, [Dense(4, "tanh"), Dense(2, "softmax")], "cross_entropy", l2=0.3)
    params = init_params([3, 4, 2], ["tanh", "softmax"], seed=6)
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((3, 5)), np.eye(2)[:, rng.integers(0, 2, 5)]
    taps = {"Z1": np.zeros((4, 5)), "A1": np.zeros((4, 5)), "Z2": np.zeros((2, 5))}
    tapped = jax.grad(lambda t: batch_loss(params, X, Y, net, jnp, t))(taps)
    _, cache = forward(params, X, net)
    grads = backward(cache, Y, net, params=params)
    for key in ("Z1", "Z2"):
        np.testing.assert_allclose(tapped[key], grads[key], rtol=1e-12, atol=1e-15)
    through_jax = jax.grad(lambda p: batch_loss(p, X, Y, net, jnp))(params)
    np.testing.assert_allclose(through_jax["W1"], grads["W1"], rtol=1e-12, atol=1e-15)
    assert float(batch_loss(params, X, Y, net, jnp)) == pytest.approx(
        batch_loss(params, X, Y, net), rel=1e-14
    )


# --- cross-entropy's targets: column sums off 1 within the validation's tolerance ----------


def test_cross_entropy_dZ_multiplies_by_the_column_sums_of_Y():
    """``dZ = (A ⊙ colsum(Y) − Y) / m``, the exact gradient for targets whose
    columns sum to ``s`` (accepted within ``sqrt(eps)`` of 1): ``A / s`` would
    differ by ``2 (s − 1) A``, here about 2e-9 relative."""
    from manual_bp.losses import LOSSES

    loss = LOSSES["cross_entropy"]
    A = np.array([[0.2, 0.5, 0.1], [0.3, 0.25, 0.6], [0.5, 0.25, 0.3]])
    Y = np.eye(3) * (1 + 1e-9)
    loss.check_targets(Y)  # inside the domain
    expected = (A * (1 + 1e-9) - Y) / 3
    np.testing.assert_allclose(loss.fused_dZ(A, Y), expected, rtol=1e-13, atol=0)


def test_float32_targets_normalised_in_float32_are_accepted():
    """The column-sum tolerance is the targets' dtype's ``sqrt(eps)`` (3.5e-4 in
    float32), not float64's 1.5e-8: float32 columns a float32 division
    normalised sum to 1 only within float32's rounding."""
    from manual_bp.losses import LOSSES

    Y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]], np.float32)
    Y = Y / Y.sum(axis=0, keepdims=True)
    Y[0] += np.float32(2e-7)  # still float32 rounding, far beyond float64's tolerance
    LOSSES["cross_entropy"].check_targets(Y)
    with pytest.raises(ValueError, match="Y"):
        LOSSES["cross_entropy"].check_targets(Y.astype(np.float64))


def test_init_params_follows_each_layers_own_activation_and_defaults_to_seed_0():
    """``W2`` after a relu layer and before a sigmoid output is Glorot (the
    layer's own activation decides, not the previous one's), and no seed is
    seed 0, as documented."""
    W = init_params([200, 300, 200], ["relu", "sigmoid"], seed=3)
    assert W["W1"].std() == pytest.approx(np.sqrt(2 / 200), rel=0.01)
    assert W["W2"].std() == pytest.approx(np.sqrt(2 / 500), rel=0.01)
    W = init_params([200, 300, 200], ["sigmoid", "relu"], seed=3)
    assert W["W2"].std() == pytest.approx(np.sqrt(2 / 300), rel=0.01)
    default, zero = (
        init_params([3, 4, 2], ["tanh", "sigmoid"]),
        init_params([3, 4, 2], ["tanh", "sigmoid"], seed=0),
    )
    assert all(np.array_equal(default[key], zero[key]) for key in zero)


# --- the counts an error message states ------------------------------------------------


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_a_normalization_list_of_the_wrong_length_names_the_count_it_expected(depth):
    """``L - 1`` entries, one per hidden layer: the message says how many,
    and how many arrived (a user counts their list against it)."""
    given = ["batch"] * depth
    with pytest.raises(
        ValueError, match=rf"one entry per hidden layer \({depth - 1}\), got {depth}:"
    ):
        normalization_step.resolve(given, depth)


# --- dropout masks under jax: refused, not ignored --------------------------------------


def test_masks_under_jax_are_checked_by_key_and_shape():
    """``forward(..., xp=jnp)`` refuses a mask for a net without dropout, a
    missing mask and a transposed one, as the NumPy path does (it cannot
    read traced values, so it checks the keys and the shapes), and runs a
    net with dropout under ``jax.grad`` with its masks."""
    from manual_bp import Dense, Net
    from manual_bp.network import backward, batch_loss, forward, init_params
    from manual_bp_reference.jax_setup import jax, jnp

    X = np.linspace(-1.0, 1.0, 8).reshape(2, 4)
    plain = Net(2, [Dense(3, "tanh"), Dense(1, "sigmoid")], "binary_cross_entropy")
    params = init_params([2, 3, 1], ["tanh", "sigmoid"], seed=1)
    mask = np.array([[1.0, 0.0, 1.0, 1.0]] * 3)
    for xp in (np, jnp):
        with pytest.raises(ValueError, match=r"masks: expected \[\]"):
            forward(params, X, plain, xp, masks={"M1": mask})
    dropped = Net(2, [Dense(3, "tanh", dropout=0.5), Dense(1, "sigmoid")], "binary_cross_entropy")
    with pytest.raises(ValueError, match=r"masks: expected \['M1'\]"):
        forward(params, X, dropped, jnp)
    with pytest.raises(ValueError, match=r"masks\['M1'\]: expected shape \(3, 4\)"):
        forward(params, X, dropped, jnp, masks={"M1": mask.T})
    Y = np.array([[0.0, 1.0, 1.0, 0.0]])
    grads = jax.grad(lambda p: batch_loss(p, X, Y, dropped, jnp, masks={"M1": mask}))(params)
    _, cache = forward(params, X, dropped, masks={"M1": mask})
    manual = backward(cache, Y, dropped)
    for key in ("W1", "B1", "W2", "B2"):
        np.testing.assert_allclose(np.asarray(grads[key]), manual[key], rtol=1e-12, atol=1e-14)
    traced = jax.jit(lambda M: batch_loss(params, X, Y, dropped, jnp, masks={"M1": M}))(mask)
    value = batch_loss(params, X, Y, dropped, np, masks={"M1": mask})
    assert float(traced) == pytest.approx(float(value), rel=1e-12)
    assert float(batch_loss(params, X, Y, dropped, jnp, masks={"M1": mask})) == pytest.approx(
        float(value), rel=1e-12
    )


def test_check_masks_reads_values_by_default():
    """The NumPy check (the default) takes nested lists as arrays and
    refuses a mask that is not zeros and ones; ``values=False`` (jax's
    traced masks) checks the keys and shapes only."""
    from manual_bp.dropout import check_masks

    listed = [[1, 0, 1], [0, 1, 1]]
    checked = check_masks({"M1": listed}, [2, 2, 1], 3, (0.5, 0.0))
    assert isinstance(checked["M1"], np.ndarray) and checked["M1"].tolist() == listed
    halves = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match=r"masks\['M1'\]: expected zeros and ones only"):
        check_masks({"M1": halves}, [2, 2, 1], 3, (0.5, 0.0))
    assert check_masks({"M1": halves}, [2, 2, 1], 3, (0.5, 0.0), values=False)["M1"] is halves
