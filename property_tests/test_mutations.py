"""Mutation self-test: the main property catches every bug in the catalog, and
the optax step property every bug in the optimizer catalog.

Each bug is injected by patching (see ``property_tests.mutations``) and the
main property is run with the ``ci`` profile's settings: derandomized, the
same example budget, no shrinking (detection is what is measured here).
"""

import functools

import pytest
from hypothesis import Phase, given, settings

from manual_bp_reference.optimizer_cases import all_optimizers, optimizer_cases
from manual_bp_reference.strategies import networks
from property_tests.mutations import CATALOG, OPTIMIZER_CATALOG, REGULARIZATION_CATALOG, inject
from property_tests.test_gradients import assert_matches_oracle
from property_tests.test_optimizers import assert_steps_match_optax

CI_BUDGET = settings.get_profile("ci").max_examples
# Caught is what counts here, not the report: no diagnosis or finite
# differences on the failing example (they took half of these tests' time).
caught_by_the_main_law = functools.partial(assert_matches_oracle, explain=False)


def assert_caught(mutation, strategy, check, *, budget: int, expected=AssertionError) -> None:
    """Run ``check`` on cases of ``strategy`` under the ``ci`` profile (derandomized,
    ``budget`` examples, no shrinking) and require it to fail; print how soon."""
    examples_run = 0

    @settings(
        settings.get_profile("ci"),
        max_examples=budget,
        phases=[Phase.generate],
        database=None,
        print_blob=False,
    )
    @given(strategy)
    def run(case):
        nonlocal examples_run
        examples_run += 1
        check(case)

    with pytest.raises(expected):
        run()
    print(f"{mutation.name}: caught after {examples_run} examples")


def test_the_catalog_has_at_least_20_bugs_of_every_class():
    assert len(CATALOG) >= 20
    assert len({mutation.name for mutation in CATALOG}) == len(CATALOG)


@pytest.mark.parametrize("mutation", CATALOG, ids=[mutation.name for mutation in CATALOG])
def test_the_main_property_catches_the_bug(mutation, monkeypatch):
    inject(mutation, monkeypatch)
    # A crash counts as caught.
    assert_caught(
        mutation, networks(), caught_by_the_main_law, budget=CI_BUDGET, expected=Exception
    )


@pytest.mark.parametrize(
    "mutation", REGULARIZATION_CATALOG, ids=[mutation.name for mutation in REGULARIZATION_CATALOG]
)
def test_the_main_property_catches_the_decay_or_dropout_bug(mutation, monkeypatch):
    """The main property on cases with decay and dropout, under the budget it
    runs with in the suite (test_gradients.py: half the profile's examples)."""
    inject(mutation, monkeypatch)
    strategy = networks(regularization=True)
    assert_caught(mutation, strategy, caught_by_the_main_law, budget=max(5, CI_BUDGET // 2))


def test_the_optimizer_catalog_has_the_four_named_bugs():
    names = {mutation.name for mutation in OPTIMIZER_CATALOG}
    assert len(names) == len(OPTIMIZER_CATALOG) >= 4
    for bug in (
        "Adam without bias correction",
        "momentum with the wrong sign",
        "RMSProp squared-gradient average with the wrong decay",
        "AdamW couples the decay into the gradient",
    ):
        assert bug in names


@pytest.mark.parametrize(
    "mutation", OPTIMIZER_CATALOG, ids=[mutation.name for mutation in OPTIMIZER_CATALOG]
)
def test_the_optax_step_property_catches_the_optimizer_bug(mutation, monkeypatch):
    """The step property of test_optimizers.py, on the broken optimizer's cases,
    under the ci budget it runs with in the suite (half the profile's examples)."""
    inject(mutation, monkeypatch)
    strategy = optimizer_cases(optimizers=all_optimizers(kinds=[mutation.kind]))
    assert_caught(mutation, strategy, assert_steps_match_optax, budget=max(5, CI_BUDGET // 2))
