"""Mutation self-test: the main property catches every bug in the catalog.

Each bug is injected by patching (see ``property_tests.mutations``) and the
main property is run with the ``ci`` profile's settings: derandomized, the
same example budget, no shrinking (detection is what is measured here).
"""

import pytest
from hypothesis import Phase, given, settings

from property_tests.mutations import CATALOG, inject
from property_tests.test_gradients import assert_matches_oracle
from reference.cases import networks

CI_BUDGET = settings.get_profile("ci").max_examples


def test_the_catalog_has_at_least_20_bugs_of_every_class():
    assert len(CATALOG) >= 20
    assert len({mutation.name for mutation in CATALOG}) == len(CATALOG)


@pytest.mark.parametrize("mutation", CATALOG, ids=[mutation.name for mutation in CATALOG])
def test_the_main_property_catches_the_bug(mutation, monkeypatch):
    inject(mutation, monkeypatch)
    examples_run = 0

    @settings(
        settings.get_profile("ci"),
        max_examples=CI_BUDGET,
        phases=[Phase.generate],
        database=None,
        print_blob=False,
    )
    @given(networks())
    def main_property(case):
        nonlocal examples_run
        examples_run += 1
        assert_matches_oracle(case)

    with pytest.raises(Exception):  # noqa: B017  (a crash counts as caught)
        main_property()
    print(f"{mutation.name}: caught after {examples_run} examples")
