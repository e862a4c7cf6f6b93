"""Hypothesis profiles, selected with HYPOTHESIS_PROFILE.

* ``ci`` (the default): derandomized and without the example database, so the
  README's plain ``pytest`` draws the same examples every run and its verdict
  cannot change between runs (issue 22: a random default once failed a fresh
  clone on a property that passed 2 of 12 reruns).
* ``explore``: random, with the example database in ``.hypothesis/``: a
  contributor's hunt for new failures (saved failures replay first).
* ``thorough``: random, 40 times the examples, for long campaigns.
"""

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

BASE_EXAMPLES = 100
_common = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "ci", max_examples=BASE_EXAMPLES, derandomize=True, database=None, print_blob=True, **_common
)
settings.register_profile("explore", max_examples=BASE_EXAMPLES, **_common)
settings.register_profile("thorough", max_examples=40 * BASE_EXAMPLES, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")

# Each pytest-xdist worker gets one BLAS thread for the whole process (the
# oracle's and the tests' own NumPy products too): two workers on two cores,
# not two workers each spinning two threads (manual_bp/threads.py).
if os.environ.get("PYTEST_XDIST_WORKER"):
    from manual_bp import threads

    threads.pin_blas_threads(1)


# --- mutmut: a mutant that breaks a test module's import is killed -----------------------
# mutmut records pytest's exit status 2 ("errors during collection") as "interrupted by
# user", not as a kill.  A test module that builds product objects at import (a
# parametrize list of optimizers, a module-level Net) fails to import under a mutant
# that makes those constructors raise: the mutant broke behaviour a test relies on, so
# under mutmut that session counts as failed (exit 1).  The clean run (no mutant)
# still reports a collection error as one (docs/testing.md, "mutmut").
_collection_failed = False
_stats_run = False  # mutmut's stats run: every test, in collection order


def _under_a_mutant() -> bool:
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    global _collection_failed
    if report.failed:
        _collection_failed = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _under_a_mutant() and _collection_failed and exitstatus == pytest.ExitCode.INTERRUPTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under mutmut's stats run, processes the tests start (the isolation's
    children, the CLI run as a command) run the unmutated code.

    mutmut marks the run with ``MUTANT_UNDER_TEST=stats`` in the environment
    *and* in this process (``set_mutant_under_test``).  A child inherits the
    variable, and the mutated package it imports then reads mutmut's
    configuration from the child's working directory at its first call: a
    child started in a test's temporary folder has none and exits with
    ``FileNotFoundError`` ("Could not figure out where the code to mutate
    is"), so the stats run failed.  What a child calls is not recorded anyway
    (another process), and this process keeps its own copy of the mark.
    """
    global _collection_failed, _stats_run
    _collection_failed = False  # a fork inherits the server's collection's flag
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        del os.environ["MUTANT_UNDER_TEST"]
        _stats_run = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under a mutant, the fastest tests first, and with
    ``MANUAL_BP_MUTMUT_MAX_SECONDS`` set, only the quick ones.

    mutmut runs a mutant's tests with ``-x`` (the first failure kills it) in
    the order of a set; the duration of each test in its stats run
    (``mutants/mutmut-stats.json``) puts a quick test that kills the mutant
    before a minute-long property that would too.

    A survivor runs every test that reaches its function, minutes of
    properties for the network's own functions.  ``MANUAL_BP_MUTMUT_MAX_SECONDS=S``
    deselects, in mutmut's clean and mutant runs, each test whose stats run
    took more than ``S`` seconds: a quick first pass, whose kills are kills
    and whose survivors still need the whole selection (docs/testing.md,
    "mutmut").  A mutant left with no test at all is mutmut's "no tests".
    """
    stats = Path(__file__).resolve().parent.parent / "mutmut-stats.json"
    # Not in the stats run nor in mutmut's listing of the tests ("list_all_tests"):
    # a test left out there would be dropped from mutmut's map and re-timed later.
    clean_or_mutant = os.environ.get("MUTANT_UNDER_TEST", "") == "" or _under_a_mutant()
    if _stats_run or not clean_or_mutant or not stats.is_file():
        return
    durations = json.loads(stats.read_text()).get("duration_by_test", {})
    limit = os.environ.get("MANUAL_BP_MUTMUT_MAX_SECONDS")
    if limit:
        seconds = float(limit)
        slow = {item for item in items if durations.get(item.nodeid, math.inf) > seconds}
        if slow:
            config.hook.pytest_deselected(items=list(slow))
            items[:] = [item for item in items if item not in slow]
    items.sort(key=lambda item: durations.get(item.nodeid, math.inf))
