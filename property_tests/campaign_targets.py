"""Backprop targets for ``property_tests/test_campaign.py``, loaded by name
(``property_tests.campaign_targets:slow``) in Dask worker processes.

Conventions of ``reference.campaign.load_target``:
``backprop(params, X, Y, activations, loss) -> grads``.
"""

from __future__ import annotations

import os
import time

from manual_bp.network import backward, forward

# Long enough that a chunk of a few examples is still running when the test kills its worker.
SLOW_SECONDS = 0.1


# While the file this names exists, ``slow`` waits: the test holds every chunk mid-way.
HOLD = "MANUAL_BP_TEST_HOLD"


def slow(params, X, Y, activations, loss):
    """manual_bp's correct backward pass, slowly, and held while the hold file exists."""
    time.sleep(SLOW_SECONDS)
    while os.path.exists(os.environ.get(HOLD, "")):
        time.sleep(0.01)
    _, cache = forward(params, X, activations)
    return backward(cache, Y, activations, loss)


def wrong_bias(params, X, Y, activations, loss):
    """A classic bug: dB is the batch sum, not the mean (off by a factor m)."""
    _, cache = forward(params, X, activations)
    grads = backward(cache, Y, activations, loss)
    m = X.shape[1]
    for key in [k for k in grads if k.startswith("B")]:
        grads[key] = grads[key] * m
    return grads
