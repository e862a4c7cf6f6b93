"""One example's verification: its ratios by gradient key, or how the target failed."""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from manual_bp_reference.conventions import Conventions
from manual_bp_reference.draws import Example
from manual_bp_reference.isolation import (
    UserCodeError,
    UserCodeStopped,
)


@dataclass(frozen=True)
class Outcome:
    """One example's ratios by gradient key (``loss`` too), or the exception it raised."""

    ratios: dict[str, float]
    error: str = ""  # the traceback of an exception
    undecided: int = 0  # entries the check could not decide (``Comparison.undecided``)
    details: str = ""  # what else failed, as check_gradients reports it (extra keys in grads)

    @property
    def worst(self) -> tuple[float, str]:
        if self.error:
            return math.inf, "exception"
        if self.details:
            return math.inf, "grads"
        key = max(self.ratios, key=lambda k: self.ratios[k])
        return self.ratios[key], key

    @property
    def ok(self) -> bool:
        return self.worst[0] <= 1.0


def _check(example: Example, backprop: Callable | None, conventions: Conventions | None):
    """The ``Comparison`` of one example (without the explanation: a campaign only
    counts), whether the loss was compared, and any failure details."""
    from manual_bp.architecture import gradient_keys
    from manual_bp_reference.check import compare_backprop
    from manual_bp_reference.compare import compare
    from manual_bp_reference.kinks import away_from_kinks
    from manual_bp_reference.oracle import one_network

    case = example.case
    if backprop is None:
        return compare(case, explain=False), True, []
    # As check_gradients does: code that sums in another order may round a Z
    # near a kink to its other side, where neither answer is wrong.
    case = away_from_kinks(case)
    if conventions is not None:  # one network: compiled by it, as check_gradients does
        with one_network():
            comparison, details, _, _ = compare_backprop(
                backprop, case, conventions=conventions, explain=False
            )
        return comparison, False, details
    params = {k: np.array(v) for k, v in case.params.items()}  # writable copies
    grads = dict(backprop(params, np.array(case.X), np.array(case.Y), list(case.activations),
                          case.loss))  # fmt: skip
    keys = [k for k in gradient_keys(len(case.activations), True) if k[0] in "WB" or k in grads]
    return compare(case, grads, keys=keys, explain=False), False, []


def verify(
    example: Example,
    *,
    backprop: Callable | None = None,
    conventions: Conventions | None = None,
) -> Outcome:
    """Compare ``backprop`` (default manual_bp's own) with the oracle on ``example``.

    ``conventions``: call ``backprop(params, X, Y)`` in them, as
    ``check_gradients`` does (else ``backprop(params, X, Y, activations, loss)``).
    """
    try:
        comparison, with_loss, details = _check(example, backprop, conventions)
    except UserCodeError as error:  # the user's frames only
        return Outcome({}, error.record.traceback or error.record.exception)
    except UserCodeStopped as stopped:  # the next call gets a new child
        return Outcome({}, f"{stopped.record.call} {stopped.verdict} ({stopped.detail})\n")
    except Exception:
        return Outcome({}, traceback.format_exc(limit=-3))
    ratios = {key: float(v.ratio) for key, v in comparison.variables.items()}
    if with_loss:
        ratios["loss"] = float(comparison.loss_ratio)
    return Outcome(ratios, undecided=comparison.undecided, details="\n".join(details))
