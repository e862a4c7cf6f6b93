"""The optimizer oracle shares no decision with the product: which keys AdamW
decays, whether it decays the biases and whether the decay is scaled by the
learning rate come from the declared fields, by the oracle's own rule, so a
product whose ``decays`` (or ``decay_groups``) is wrong, or whose switches are
stored as something other than a bool, is caught (issue 29)."""

import numpy as np
import pytest

from manual_bp.optimizers import Adam, AdamW, Optimizer
from manual_bp_reference.optimizer_check import OptimizerMismatch, check_optimizer, compare_step
from manual_bp_reference.optimizer_oracle import decayed_keys, oracle_step, tree_oracle_step
from manual_bp_reference.settings import Settings

KEYS = ["W1", "B1", "gamma1", "beta1", "W2", "B2"]


def _tree(seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    shapes = {"W1": (3, 2), "B1": (3, 1), "gamma1": (3, 1), "beta1": (3, 1)}
    shapes |= {"W2": (2, 3), "B2": (2, 1)}
    params = {key: rng.uniform(0.5, 2.0, shape) for key, shape in shapes.items()}
    grads = {key: rng.normal(size=shape) for key, shape in shapes.items()}
    return params, grads


def _product_step(optimizer: Optimizer, seed: int = 0):
    params, grads = _tree(seed)
    state = optimizer.init(params)
    new_params, new_state = optimizer.update(grads, state, params)
    return compare_step(optimizer, grads, state, params, new_params, new_state)


# The survivors of issue 29: the product's decays turned into another rule.
def _weights_only_when_biases_decayed(self, key):
    return self.weight_decay > 0 and self.decay_biases and not key.startswith("B")


def _biases_always_decayed(self, key):
    return (self.weight_decay > 0 and (self.decay_biases or not key.startswith("B"))) or (
        key.startswith("B")
    )


def _groups_of(decays):
    def decay_groups(self, keys):
        return {
            "decayed": [key for key in keys if decays(self, key)],
            "kept": [key for key in keys if not decays(self, key)],
        }

    return decay_groups


WRONG_RULES = [
    (_weights_only_when_biases_decayed, True, ["params['B1']", "params['B2']"]),
    (_biases_always_decayed, False, ["params['B1']", "params['B2']"]),
]


def test_the_oracles_decayed_keys_follow_the_declared_conventions():
    """Its own rule: every key with decay_biases, else every key but ``B*``
    (``gammal``, ``betal`` are decayed, as the documented convention says);
    none without weight decay, none for Adam."""
    assert decayed_keys(AdamW(0.1, weight_decay=0.1), KEYS) == KEYS
    weights = ["W1", "gamma1", "beta1", "W2"]
    assert decayed_keys(AdamW(0.1, weight_decay=0.1, decay_biases=False), KEYS) == weights
    assert decayed_keys(AdamW(0.1, weight_decay=0.0), KEYS) == []
    assert decayed_keys(Adam(0.1), KEYS) == []


@pytest.mark.parametrize("decay_biases", [True, False])
@pytest.mark.parametrize("scaled", [True, False])
def test_the_product_agrees_with_the_independent_oracle(decay_biases, scaled):
    """The control: the product as shipped passes on the tree the tests below use."""
    optimizer = AdamW(0.01, weight_decay=0.1, decay_biases=decay_biases, decay_scaled_by_lr=scaled)
    comparison = _product_step(optimizer)
    assert comparison.ok, comparison.report()


@pytest.mark.parametrize(("wrong", "decay_biases", "failing"), WRONG_RULES)
def test_a_wrong_decays_rule_is_caught(monkeypatch, wrong, decay_biases, failing):
    """``decays`` and ``decay_groups`` broken on purpose: the oracle's step
    does not move, and the product's step disagrees with it on the biases."""
    optimizer = AdamW(0.01, weight_decay=0.1, decay_biases=decay_biases)
    params, grads = _tree(1)
    state = optimizer.init(params)
    before = oracle_step(optimizer, grads, state, params)
    monkeypatch.setattr(AdamW, "decays", wrong)
    monkeypatch.setattr(AdamW, "decay_groups", _groups_of(wrong))
    after = oracle_step(optimizer, grads, state, params)
    tree = tree_oracle_step(optimizer, grads, state, params)
    for key in params:
        np.testing.assert_array_equal(after[0][key], before[0][key])
        np.testing.assert_allclose(tree[0][key], before[0][key], rtol=1e-14)
    new_params, new_state = optimizer.update(grads, state, params)
    comparison = compare_step(optimizer, grads, state, params, new_params, new_state)
    assert not comparison.ok
    assert sorted(a.name for a in comparison.failures()) == failing, comparison.report()


@pytest.mark.parametrize(("wrong", "decay_biases", "failing"), WRONG_RULES)
def test_check_optimizer_reports_a_wrong_decays_rule(monkeypatch, wrong, decay_biases, failing):
    """The same through ``check_optimizer``: the product's own ``update`` (its
    rule reads the broken ``decays``) checked against its declaration fails."""
    optimizer = AdamW(0.01, weight_decay=0.1, decay_biases=decay_biases)
    monkeypatch.setattr(AdamW, "decays", wrong)
    monkeypatch.setattr(AdamW, "decay_groups", _groups_of(wrong))
    settings = Settings(max_examples=10, isolate=False)
    with pytest.raises(OptimizerMismatch, match="params\\['B1'\\]"):
        check_optimizer(optimizer.update, optimizer, settings=settings)


@pytest.mark.parametrize("switch", ["decay_biases", "decay_scaled_by_lr"])
@pytest.mark.parametrize("stored", [None, 0, 1, "False"])
def test_a_switch_stored_as_a_non_bool_is_refused(switch, stored):
    """A switch stored as ``None`` (or any non-bool) is not read as a truth
    value: the product would take ``None`` as False, the oracle refuses it."""
    optimizer = AdamW(0.01, weight_decay=0.1)
    object.__setattr__(optimizer, switch, stored)
    params, grads = _tree(2)
    state = {"t": 0, "m": {k: 0 * v for k, v in params.items()}}
    state["v"] = {k: 0 * v for k, v in params.items()}
    with pytest.raises(TypeError, match=switch):
        oracle_step(optimizer, grads, state, params)
    with pytest.raises(TypeError, match=switch):
        tree_oracle_step(optimizer, grads, state, params)


@pytest.mark.parametrize("switch", ["decay_biases", "decay_scaled_by_lr"])
def test_the_declared_switches_are_stored_as_given(switch):
    """``AdamW`` stores what was declared (default True, optax's), the value
    the oracle reads; ``None`` stored in place of True would change the step."""
    assert getattr(AdamW(0.01), switch) is True
    assert getattr(AdamW(0.01, **{switch: False}), switch) is False
    declared = AdamW(0.01, weight_decay=0.1)
    stored_none = AdamW(0.01, weight_decay=0.1)
    object.__setattr__(stored_none, switch, None)
    params, grads = _tree(3)
    state = declared.init(params)
    mine = stored_none.update(grads, state, params)
    comparison = compare_step(declared, grads, state, params, *mine)
    assert not comparison.ok, comparison.report()
