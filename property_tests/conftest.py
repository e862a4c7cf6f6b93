"""Hypothesis profiles, selected with HYPOTHESIS_PROFILE.

* ``ci`` (the default): derandomized and without the example database, so the
  README's plain ``pytest`` draws the same examples every run and its verdict
  cannot change between runs (issue 22: a random default once failed a fresh
  clone on a property that passed 2 of 12 reruns).
* ``explore``: random, with the example database in ``.hypothesis/``: a
  contributor's hunt for new failures (saved failures replay first).
* ``thorough``: random, 40 times the examples, for long campaigns.
"""

import os

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
