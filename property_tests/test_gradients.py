"""The main law: every manual gradient and the loss match jax.grad of the same forward."""

import pytest
from hypothesis import given, settings, target

from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from manual_bp_reference.strategies import networks, seed_networks
from property_tests.budget import examples


def assert_matches_oracle(case: Case, *, explain: bool = True):
    """``explain=False``: the failure message without the diagnosis and the
    finite differences (a mutation test only needs the failure)."""
    check = compare(case, input_gradient=True, explain=explain)
    # Long runs (the thorough profile) steer toward the worst-conditioned cases.
    target(min(check.worst_ratio, 1e6), label="error/tolerance")
    # The report is built only on failure (it costs more than the comparison).
    assert check.ok, check.report()


@examples(1.0)
@given(networks())
def test_every_gradient_and_the_loss_match_the_oracle(case):
    assert_matches_oracle(case)


@examples(0.5)
@given(networks(regularization=True))
def test_weight_decay_and_dropout_match_the_oracle(case):
    """The main law on cases with a weight decay and dropout masks."""
    assert_matches_oracle(case)


@examples(0.3)
@given(seed_networks())
def test_the_seed_network_matches_the_oracle(case):
    assert_matches_oracle(case)


# The deep suite's long runs (pytest -m deep): the same laws over 10^4 and
# 2 * 10^3 examples, as the false-alarm benchmarks measure them, so that CI
# sees the statistics a contributor's quick run cannot.
@pytest.mark.deep
@settings(max_examples=10_000)
@given(networks())
def test_every_gradient_and_the_loss_match_the_oracle_over_ten_thousand_examples(case):
    assert_matches_oracle(case)


@pytest.mark.deep
@settings(max_examples=2_000)
@given(networks(regularization=True))
def test_weight_decay_and_dropout_match_the_oracle_over_two_thousand_examples(case):
    assert_matches_oracle(case)
