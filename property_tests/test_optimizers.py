"""Optimizers: every step's params and state match optax's step from the same
inputs, under the rounding-derived tolerance; conventions are diagnosed."""

from functools import partial

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st

from manual_bp.optimizers import (
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    Momentum,
    RMSProp,
    make_optimizer,
)
from manual_bp_reference.optimizer_cases import OptimizerCase, all_optimizers, optimizer_cases
from manual_bp_reference.optimizer_check import (
    OptimizerMismatch,
    check_optimizer,
    compare_step,
    run_case,
)
from manual_bp_reference.optimizer_oracle import oracle_step, tree_oracle_step
from manual_bp_reference.optimizer_tolerance import step_tolerances
from manual_bp_reference.settings import Settings
from property_tests.budget import examples


def assert_steps_match_optax(case: OptimizerCase) -> None:
    """Every step of the hand-written optimizer against optax, from its own inputs."""
    params, state = case.params, case.state
    worst = 0.0
    for grads in case.gradients:
        new_params, new_state = case.optimizer.update(grads, state, params)
        comparison = compare_step(case.optimizer, grads, state, params, new_params, new_state)
        worst = max(worst, comparison.worst_ratio)
        assert comparison.ok, f"{case!r}\n{comparison.report()}"
        params, state = new_params, new_state
    # Long runs (the thorough profile) steer toward the worst-conditioned steps.
    target(min(worst, 1e6), label="error/tolerance")


@examples(0.5)
@given(optimizer_cases())
def test_every_step_of_every_optimizer_matches_optax(case):
    assert_steps_match_optax(case)


# Each new tree shape compiles optax's jitted pieces: few examples, small trees.
@examples(0.05)
@given(optimizer_cases(max_steps=2, max_depth=1, max_width=2))
def test_the_flat_compiled_oracle_equals_optax_on_the_tree(case):
    """``oracle_step`` runs optax on the tree flattened into padded vectors,
    compiled; ``tree_oracle_step`` runs it on the tree itself, op by op.  XLA
    may fuse a multiply-add, so they agree up to float64 rounding."""
    params, state = case.params, case.state
    for grads in case.gradients:
        flat, tree = (
            f(case.optimizer, grads, state, params) for f in (oracle_step, tree_oracle_step)
        )
        params_tol, slots_tol = step_tolerances(case.optimizer, grads, state, params, np.float64)
        for key in params:
            assert np.all(np.abs(flat[0][key] - tree[0][key]) <= params_tol[key]), key
            for slot in case.optimizer.SLOTS:
                difference = np.abs(flat[1][slot][key] - tree[1][slot][key])
                assert np.all(difference <= slots_tol[slot][key]), (slot, key)
        assert flat[1].get("t") == tree[1].get("t")
        params, state = case.optimizer.update(grads, state, params)


@examples(0.2)
@given(
    st.sampled_from((0.5, 0.9, 0.99)),
    st.sampled_from((0.1, 0.5, 0.9, 1.0)),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
)
def test_dampening_scales_the_momentum_by_one_minus_tau(mu, tau, steps, seed):
    """The hand-derived property behind the dampening oracle (optax has no
    dampening): ``m`` is linear in the gradients, so from ``m = 0`` the damped
    ``m_t = (1 - τ) Σ μ^(t-s) g_s`` is ``(1 - τ)`` times the undamped one.
    Each step rounds at most 3 times, in both runs: ``6 t eps`` of the sum of
    magnitudes (the undamped run on ``|g|``) bounds the difference."""
    rng = np.random.default_rng(seed)
    params = {"W1": rng.standard_normal((3, 2)), "B1": np.zeros((3, 1))}
    damped, plain, magnitude = (
        Momentum(0.1, mu, dampening=tau),
        Momentum(0.1, mu),
        Momentum(0.1, mu),
    )
    states = [opt.init(params) for opt in (damped, plain, magnitude)]
    for t in range(1, steps + 1):
        grads = {
            k: rng.standard_normal(v.shape) * 10.0 ** rng.uniform(-3, 3) for k, v in params.items()
        }
        states[0] = damped.update(grads, states[0], params)[1]
        states[1] = plain.update(grads, states[1], params)[1]
        states[2] = magnitude.update({k: np.abs(g) for k, g in grads.items()}, states[2], params)[1]
        for key in params:
            bound = 6 * t * np.finfo(np.float64).eps * states[2]["m"][key]
            difference = np.abs(states[0]["m"][key] - (1 - tau) * states[1]["m"][key])
            assert np.all(difference <= bound), (t, key)


def test_the_tolerance_rejects_a_step_one_part_in_a_million_off():
    """The tolerance is rounding-sized: a step off by 1e-6 relative fails."""
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 2))}
    grads = {"W1": rng.standard_normal((3, 2))}
    for optimizer in (SGD(0.1), Momentum(0.1), RMSProp(0.01), Adam(0.01), AdamW(0.01)):
        state = optimizer.init(params)
        new_params, new_state = optimizer.update(grads, state, params)
        assert compare_step(optimizer, grads, state, params, new_params, new_state).ok
        off = {"W1": new_params["W1"] * (1 + 1e-6)}
        assert not compare_step(optimizer, grads, state, params, off, new_state).ok, optimizer


# --- purity, dtypes and bad input ---------------------------------------------------------


@examples(0.1)
@given(optimizer_cases(max_steps=1))
def test_update_writes_into_no_input_and_keeps_the_dtype(case):
    params = {k: v.copy() for k, v in case.params.items()}
    state = {k: ({kk: vv.copy() for kk, vv in v.items()} if isinstance(v, dict) else v)
             for k, v in case.state.items()}  # fmt: skip
    grads = case.gradients[0]
    for array in [*params.values(), *grads.values()] + [
        a for v in state.values() if isinstance(v, dict) for a in v.values()
    ]:
        array.flags.writeable = False
    new_params, new_state = case.optimizer.update(grads, state, params)
    for key in params:
        assert new_params[key].dtype == case.dtype
        assert not np.shares_memory(new_params[key], params[key])
        for slot in case.optimizer.SLOTS:
            assert new_state[slot][key].dtype == case.dtype


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: SGD(0.0), ValueError, "^learning_rate: "),
        (lambda: SGD("0.1"), TypeError, "^learning_rate: "),
        (lambda: Momentum(0.1, momentum=1.0), ValueError, "^momentum: "),
        (lambda: Momentum(0.1, nesterov=True, dampening=0.5), ValueError, "^dampening: "),
        (lambda: Momentum(0.1, nesterov=1), TypeError, "^nesterov: "),
        (lambda: RMSProp(0.1, eps=-1e-8), ValueError, "^eps: "),
        (lambda: RMSProp(0.1, initial_scale=np.inf), ValueError, "^initial_scale: "),
        (lambda: Adam(0.1, b2=1.5), ValueError, "^b2: "),
        (lambda: AdamW(0.1, weight_decay=-1.0), ValueError, "^weight_decay: "),
        (lambda: make_optimizer("adagrad", 0.1), ValueError, "^optimizer: "),
    ],
)
def test_bad_hyperparameters_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_steps_are_named():
    adam = Adam(0.01)
    params = {"W1": np.zeros((2, 3)), "B1": np.zeros((2, 1))}
    state = adam.init(params)
    grads = {"W1": np.ones((2, 3)), "B1": np.ones((2, 1))}
    with pytest.raises(ValueError, match=r"^grads\['B1'\]: expected shape \(2, 1\)"):
        adam.update({**grads, "B1": np.ones((1, 2))}, state, params)
    with pytest.raises(ValueError, match=r"^grads: expected the keys"):
        adam.update({"W1": grads["W1"]}, state, params)
    with pytest.raises(TypeError, match=r"^grads\['W1'\]: expected dtype float64"):
        adam.update({**grads, "W1": grads["W1"].astype(np.float32)}, state, params)
    with pytest.raises(ValueError, match=r"^state: expected the keys"):
        adam.update(grads, {"m": state["m"]}, params)
    with pytest.raises(ValueError, match=r"^state\['t'\]"):
        adam.update(grads, {**state, "t": -1}, params)


def test_every_optimizer_has_its_formula_and_conventions_documented():
    for name, cls in OPTIMIZERS.items():
        assert "θ ←" in (cls.__doc__ or ""), name
        documented = "".join(base.__doc__ or "" for base in cls.__mro__)
        for keyword in cls.CONVENTIONS:
            assert keyword in documented, (name, keyword)


# --- check_optimizer and the convention diagnosis ------------------------------------------


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_check_optimizer_passes_the_hand_written_optimizers(kind):
    optimizer = make_optimizer(kind, 0.01)
    check_optimizer(optimizer.update, optimizer, settings=Settings(max_examples=5, dtype="float32"))


# Factories, not objects: built at import, a constructor that raises (a mutant)
# would be a collection error for the whole module, not one failed test.
DIAGNOSES = [
    (partial(RMSProp, 0.01), dict(eps_in_sqrt=False), "puts eps outside the sqrt"),
    (partial(RMSProp, 0.01), dict(bias_correction=True), "divides v by 1 − ρ^t"),
    (partial(Momentum, 0.1), dict(dampening=0.9), "damps the gradient"),
    (partial(Momentum, 0.1), dict(nesterov=True), "steps along g + μ m"),
    (partial(Adam, 0.01), dict(bias_correction=False), "skips the bias correction"),
    (partial(Adam, 0.01), dict(eps=0.0, eps_root=1e-8), "puts eps inside the sqrt"),
    (partial(AdamW, 0.01, weight_decay=0.1), dict(decay_biases=False), "decays the weights only"),
    (partial(AdamW, 0.01, weight_decay=0.1), dict(decay_scaled_by_lr=False), "does not multiply"),
]


def fixed_case(optimizer, steps=3):
    """A tree whose gradients span 1e-8 to 1e2, where every convention shows."""
    rng = np.random.default_rng(1)
    params = {"W1": rng.standard_normal((3, 4)), "B1": rng.standard_normal((3, 1))}
    scale = {k: 10.0 ** rng.uniform(-8, 2, v.shape) for k, v in params.items()}
    gradients = tuple(
        {k: rng.standard_normal(v.shape) * scale[k] for k, v in params.items()}
        for _ in range(steps)
    )
    return OptimizerCase(optimizer, params, optimizer.init(params), gradients)


@pytest.mark.parametrize(
    ("make_reference", "changes", "sentence"), DIAGNOSES, ids=[d[2] for d in DIAGNOSES]
)
def test_a_different_convention_is_named(make_reference, changes, sentence):
    reference = make_reference()
    user = reference.replace(**changes)
    with pytest.raises(OptimizerMismatch) as caught:
        run_case(user.update, fixed_case(reference))
    diagnosis = caught.value.diagnosed().diagnosis
    assert diagnosis, "no convention named"
    assert sentence in diagnosis[0], diagnosis  # the simplest explanation first


def test_an_initial_accumulator_of_one_is_named():
    reference, tf1 = RMSProp(0.01), RMSProp(0.01, initial_scale=1.0)
    with pytest.raises(OptimizerMismatch, match="starts the accumulator v at 1") as caught:
        check_optimizer(tf1.update, reference, init=tf1.init, settings=Settings(max_examples=5))
    assert caught.value.step == 0


def test_a_bug_that_no_convention_explains_is_said_to_be_one():
    adam = Adam(0.01)

    def sign_flipped(grads, state, params):
        new_params, new_state = adam.update(grads, state, params)
        return {k: 2 * params[k] - new_params[k] for k in params}, new_state

    with pytest.raises(OptimizerMismatch) as caught:
        run_case(sign_flipped, fixed_case(adam))
    assert "no known convention explains it" in str(caught.value.diagnosed())


def test_check_optimizer_names_its_bad_arguments():
    with pytest.raises(TypeError, match=r"^update: "):
        check_optimizer(None, SGD(0.1))
    with pytest.raises(TypeError, match=r"^optimizer: "):
        check_optimizer(SGD(0.1).update, "sgd")
    with pytest.raises(TypeError, match=r"^dtype: "):
        check_optimizer(SGD(0.1).update, SGD(0.1), settings=Settings(dtype="float16"))


def test_a_step_that_is_no_step_is_the_users_mistake_not_the_checkers():
    # What the update returned, and what was expected: a verdict, not a TypeError.
    with pytest.raises(OptimizerMismatch, match=r"update returned a dict; expected \(new_params"):
        run_case(lambda g, s, p: p, OptimizerCase(SGD(0.1), {"W1": np.zeros((1, 1))}, {},
                                                   ({"W1": np.ones((1, 1))},)))  # fmt: skip


@examples(0.05)
@given(all_optimizers())
def test_make_optimizer_rebuilds_every_optimizer(optimizer):
    options = optimizer.hyperparameters()
    lr = options.pop("learning_rate")
    assert make_optimizer(optimizer.name, lr, **options) == optimizer


# --- training with an optimizer -------------------------------------------------------------


def test_fit_with_an_optimizer_continues_its_state_across_calls():
    """Ten one-epoch fits equal one ten-epoch fit: the state (t, m, v) is kept."""
    from manual_bp import DNN
    from manual_bp.data import DATASETS

    X, Y = DATASETS["moons"](64, seed=0)
    once, in_steps = DNN([2, 8, 1], seed=0), DNN([2, 8, 1], seed=0)
    history = once.fit(X, Y, 10, batch_size=16, optimizer=Adam(0.01))
    stepped = []
    for _ in range(10):
        stepped += in_steps.fit(X, Y, 1, batch_size=16, optimizer=Adam(0.01))
    assert stepped == history
    assert in_steps.optimizer_state["t"] == 40 and in_steps.optimizer == Adam(0.01)
    np.testing.assert_array_equal(once.params["W1"], in_steps.params["W1"])
    # another optimizer starts afresh
    in_steps.fit(X, Y, 1, batch_size=16, optimizer=Adam(0.02))
    assert in_steps.optimizer_state["t"] == 4


def test_fit_takes_a_learning_rate_or_an_optimizer_not_both():
    from manual_bp import DNN

    net, X, Y = DNN([2, 1]), np.zeros((2, 4)), np.zeros((1, 4))
    with pytest.raises(TypeError, match=r"^learning_rate: .* not both"):
        net.fit(X, Y, 1, 0.1, optimizer=Adam(0.1))
    with pytest.raises(TypeError, match=r"^learning_rate: .* got neither"):
        net.fit(X, Y, 1)
    with pytest.raises(TypeError, match=r"^optimizer: "):
        net.fit(X, Y, 1, optimizer="adam")


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_every_optimizer_trains_the_moons(kind):
    from manual_bp import DNN
    from manual_bp.data import DATASETS

    X, Y = DATASETS["moons"](200, seed=0)
    net = DNN([2, 16, 1], ["tanh", "sigmoid"], seed=0)
    rates = {"sgd": 0.5, "momentum": 0.1, "rmsprop": 0.01, "adam": 0.02, "adamw": 0.02}
    history = net.fit(X, Y, 60, batch_size=32, optimizer=make_optimizer(kind, rates[kind]))
    assert history[-1] < 0.5 * history[0], history[::10]


def test_a_loaded_network_trains_with_an_optimizer(tmp_path):
    """``DNN.load`` builds the net without ``__init__``: it starts without an
    optimizer, as a new net does (the file does not carry one)."""
    from manual_bp import DNN
    from manual_bp.data import DATASETS

    X, Y = DATASETS["moons"](32, seed=0)
    net = DNN([2, 4, 1], seed=0)
    net.save(tmp_path / "net.npz")
    loaded = DNN.load(tmp_path / "net.npz")
    assert loaded.optimizer is None and loaded.optimizer_state == {}
    assert loaded.fit(X, Y, 2, batch_size=16, optimizer=Adam(0.01)) == net.fit(
        X, Y, 2, batch_size=16, optimizer=Adam(0.01)
    )
    assert loaded.optimizer_state["t"] == 4


def test_a_step_that_makes_nan_says_so():
    """Adam with its eps left out divides 0 by 0 on a zero gradient."""

    def adam_without_eps(grads, state, params):
        t = state["t"] + 1
        m = {k: 0.9 * state["m"][k] + 0.1 * grads[k] for k in params}
        v = {k: 0.999 * state["v"][k] + 0.001 * grads[k] ** 2 for k in params}
        new = {k: params[k] - 1e-3 * (m[k] / (1 - 0.9**t)) / np.sqrt(v[k] / (1 - 0.999**t))
               for k in params}  # fmt: skip
        return new, {"t": t, "m": m, "v": v}

    with np.errstate(all="ignore"), pytest.raises(OptimizerMismatch) as raised:
        check_optimizer(adam_without_eps, Adam(1e-3), settings=Settings(isolate=False))
    assert raised.value.verdict == "wrong"
    assert "NaN/inf in your step where optax's is finite (params[" in str(raised.value)
