"""The research checks' diagnoses beyond their catalogues (``compare.fitted_decay``,
``compare.closeness``): a decay the net does not declare, or the declared one
scaled, named with its fitted ``l2`` in ``check_per_example`` and ``check_hvp``;
a wrong answer no bug names told how close it is, and, when it is within an
approximation's error (a finite-difference ``H V``), that it is one.

Speed: the checks run in this process (``isolate=False``) with few examples.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from manual_bp import network
from manual_bp.curvature import hessian_vector_product
from manual_bp.net import Net
from manual_bp.per_example import per_example_gradients
from manual_bp_reference.compare import CLOSE, fitted_decay
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.hvp_check import HVPMismatch, check_hvp, diagnose_hvp, hvp_oracle
from manual_bp_reference.per_example_check import (
    PerExampleMismatch,
    check_per_example,
    diagnose_per_example,
    per_example_oracle,
)
from manual_bp_reference.settings import Settings
from property_tests.test_hvp_check import small_case

SETTINGS = Settings(max_examples=5, isolate=False, max_batch=5)
PLAIN = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy")
DECAYED = PLAIN.with_l2(0.1)


def per_example_with(computed: Net, extra: float = 0.0):
    """Per-example gradients of ``computed`` (its decay), plus ``extra Wl``."""

    def gradients(params, X, Y):
        g = per_example_gradients(params, X, Y, computed)
        return {k: v + extra * params[k] if k[0] == "W" else v for k, v in g.items()}

    return gradients


def hvp_with(computed: Net):
    def product(params, X, Y, V):
        return hessian_vector_product(params, X, Y, computed, V)

    return product


# --- a decay the net does not declare, or the declared one scaled -------------------------


def test_a_forgotten_decay_is_named_with_its_l2_per_example():
    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(per_example_with(DECAYED), PLAIN, settings=SETTINGS)
    mismatch = caught.value
    assert mismatch.bug == "a decay of l2 = 0.1 the net does not declare"
    assert mismatch.bugs[0].c == pytest.approx(0.1, rel=1e-9)
    assert "Net(..., l2=0.1)" in str(mismatch) and "l2 = 2 reg" in str(mismatch)


def test_a_forgotten_decay_is_named_with_its_l2_in_the_hvp():
    with pytest.raises(HVPMismatch) as caught:
        check_hvp(hvp_with(PLAIN.with_l2(0.25)), PLAIN, settings=SETTINGS)
    assert caught.value.bug == "a decay of l2 = 0.25 the net does not declare"
    assert "H V + 0.25 VWl" in str(caught.value)


def _cs231n_per_example(reg: float):
    """cs231n's rows, its ``W1``/``b1`` and labels, and ``reg * W`` for the
    loss ``reg * sum(W**2)`` (whose gradient is ``2 reg W``)."""
    plain = PLAIN

    def grads(params, X, y):
        ours = {"W1": params["W1"].T, "B1": params["b1"][:, None],
                "W2": params["W2"].T, "B2": params["b2"][:, None]}  # fmt: skip
        Y = np.eye(2)[y].T
        g = per_example_gradients(ours, X.T, Y, plain)
        return {
            "W1": np.swapaxes(g["W1"], 1, 2) + reg * params["W1"],
            "b1": g["B1"][:, :, 0],
            "W2": np.swapaxes(g["W2"], 1, 2) + reg * params["W2"],
            "b2": g["B2"][:, :, 0],
        }

    return grads


def test_cs231n_halved_decay_is_named():
    cs231n = Conventions(layout="rows", names="W1/b1", targets="labels")
    with pytest.raises(PerExampleMismatch) as caught:  # reg = 0.05 is l2 = 0.1
        check_per_example(_cs231n_per_example(0.05), DECAYED, conventions=cs231n,
                          settings=SETTINGS)  # fmt: skip
    assert caught.value.bug == "the decay scaled by 0.5 (halved)"
    assert "cs231n's reg * W for the loss reg * sum(W**2)" in str(caught.value)
    with pytest.raises(HVPMismatch) as caught:
        check_hvp(hvp_with(PLAIN.with_l2(0.15)), PLAIN.with_l2(0.3), settings=SETTINGS)
    assert caught.value.bug == "the decay scaled by 0.5 (halved)"


def test_the_declared_decay_scaled_by_another_factor_is_named():
    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(per_example_with(DECAYED, extra=0.2), DECAYED, settings=SETTINGS)
    assert caught.value.bug == "the decay scaled by 3"


def test_correct_code_with_a_decay_passes_and_nothing_is_named_for_it():
    for net in (DECAYED, Net.of([2, 3, 1], ["relu", "sigmoid"], "binary_cross_entropy", l2=2.0)):
        check_per_example(per_example_with(net), net, settings=SETTINGS)
        check_hvp(hvp_with(net), net, settings=SETTINGS)
    case = small_case(DECAYED, 1)
    oracle = per_example_oracle(case.case)
    assert diagnose_per_example(case.case, oracle.grads, oracle=oracle) == []
    hvp = hvp_oracle(case)
    assert diagnose_hvp(case, hvp.values, oracle=hvp) == []
    # Off by a few tolerances everywhere: failing, but no decay fits it.
    off = {k: v + 2 * oracle.tolerances[k] for k, v in oracle.grads.items()}
    assert diagnose_per_example(case.case, off, oracle=oracle) == []
    # c = 0 is no decay (and diagnoses run on failing values only).
    assert fitted_decay(hvp.values, hvp.values, hvp.tolerances, case.V, 0.1, slack=0.0) is None


def test_a_decay_with_a_bias_wrong_is_not_named_a_decay():
    case = small_case(PLAIN, 2)
    oracle = hvp_oracle(case)
    values = {k: v + 0.1 * case.V[k] if k[0] == "W" else v for k, v in oracle.values.items()}
    assert [bug.name for bug in diagnose_hvp(case, values, oracle=oracle)] == [
        "a decay of l2 = 0.1 the net does not declare"
    ]
    values["B1"] = 1.5 * values["B1"]
    assert diagnose_hvp(case, values, oracle=oracle) == []


# --- close, not exact ----------------------------------------------------------------------


def _gradient(params, X, Y, net):
    _, cache = network.forward(params, X, net)
    return network.backward(cache, Y, net)


def finite_difference_hvp(net: Net, eps: float = 1e-5):
    def product(params, X, Y, V):
        plus = {k: params[k] + eps * V[k] for k in params}
        minus = {k: params[k] - eps * V[k] for k in params}
        gp, gm = _gradient(plus, X, Y, net), _gradient(minus, X, Y, net)
        return {k: (gp[k] - gm[k]) / (2 * eps) for k in params}

    return product


def _relative(text: str) -> float:
    found = re.search(r"largest relative error: (\S+) ", text)
    assert found, text
    return float(found.group(1))


def test_a_finite_difference_hvp_is_told_it_is_an_approximation():
    with pytest.raises(HVPMismatch) as caught:
        check_hvp(finite_difference_hvp(DECAYED), DECAYED, settings=SETTINGS)
    text = str(caught.value)
    assert caught.value.bug is None and "none of the catalogued" in text
    assert 0 < _relative(text) < CLOSE["float64"]
    assert "an approximation (finite differences?)" in text


def test_a_genuinely_wrong_hvp_gets_its_error_but_no_approximation_hint():
    correct = hvp_with(DECAYED)

    def wrong_bias(params, X, Y, V):  # no catalogued bug: one layer's biases doubled
        return {k: 2 * v if k == "B2" else v for k, v in correct(params, X, Y, V).items()}

    with pytest.raises(HVPMismatch) as caught:
        check_hvp(wrong_bias, DECAYED, settings=SETTINGS)
    text = str(caught.value)
    assert caught.value.bug is None and _relative(text) > CLOSE["float64"]
    assert "approximation" not in text
