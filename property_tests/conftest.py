"""Hypothesis profiles, selected with HYPOTHESIS_PROFILE.

* ``dev`` (default): random, with the example database.
* ``ci`` (default when ``CI`` is set): derandomized, so every run draws the
  same examples.
* ``thorough``: 40 times the examples, for long campaigns.
"""

import os

from hypothesis import HealthCheck, settings

BASE_EXAMPLES = 100
_common = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("dev", max_examples=BASE_EXAMPLES, **_common)
settings.register_profile(
    "ci", max_examples=BASE_EXAMPLES, derandomize=True, database=None, print_blob=True, **_common
)
settings.register_profile("thorough", max_examples=40 * BASE_EXAMPLES, **_common)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

# Each pytest-xdist worker gets one BLAS thread for the whole process (the
# oracle's and the tests' own NumPy products too): two workers on two cores,
# not two workers each spinning two threads (manual_bp/threads.py).
if os.environ.get("PYTEST_XDIST_WORKER"):
    from manual_bp import threads

    threads.pin_blas_threads(1)
