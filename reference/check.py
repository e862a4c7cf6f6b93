"""``check_gradients``: test anyone's hand-written backprop against the oracle.

Give it your own backward pass as a callable ``backprop(params, X, Y) -> grads``
(``params`` holds ``W1..WL``, ``B1..BL``; ``X`` is ``(n0, m)``; ``Y`` is
``(nL, m)``; ``grads`` must hold ``W1..WL`` and ``B1..BL`` and may hold any of
``Zl`` and ``Al``) for one architecture.  Hypothesis generates networks of
that architecture, batches and targets, and every entry is compared with
``jax.grad`` of manual_bp's forward under the rounding-error tolerance.  On a
mismatch, Hypothesis shrinks to a minimal case and ``GradientMismatch`` is
raised with the report and the likely bug.

>>> import numpy as np
>>> from manual_bp import backward, forward
>>> def my_backprop(params, X, Y):
...     _, cache = forward(params, X, ["tanh", "sigmoid"])
...     return backward(cache, Y, ["tanh", "sigmoid"], "binary_cross_entropy")
>>> check_gradients(my_backprop, [3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy",
...                 max_examples=5)

One case at a time, ``reference.compare.compare(case, grads)`` compares any
gradients with the oracle; ``check_gradients`` is the property check that
draws the cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manual_bp.architecture import gradient_keys
from manual_bp.validation import (
    check_activations,
    check_dtype,
    check_layer_sizes,
    check_loss_pair,
    check_positive_int,
)
from reference.cases import Case, networks
from reference.compare import Comparison, compare

Backprop = Callable[[dict, np.ndarray, np.ndarray], Mapping[str, np.ndarray]]


class GradientMismatch(AssertionError):  # noqa: N818  (it is an assertion, not an error)
    """A user's gradients disagree with the oracle; ``.comparison`` has the details."""

    def __init__(self, comparison: Comparison, case: Case) -> None:
        super().__init__(f"{comparison.report()}\nminimal case:\n{case!r}")
        self.comparison = comparison
        self.case = case


def _compare_backprop(backprop: Backprop, case: Case) -> Comparison:
    """Compare ``backprop`` with the oracle on one case (the loss is not compared).

    ``backprop`` gets writable copies of the case's arrays.  ``Wl`` and ``Bl``
    must be in the result; ``Zl`` and ``Al`` are compared when present.
    """
    copies = ({k: v.copy() for k, v in case.params.items()}, case.X.copy(), case.Y.copy())
    grads = dict(backprop(*copies))
    keys = [key for key in gradient_keys(case.depth) if key[0] in "WB" or key in grads]
    return compare(case, grads, input_gradient=False, keys=keys)


def check_gradients(
    backprop: Backprop,
    layer_sizes: Sequence[int],
    activations: Sequence[str],
    loss: str,
    *,
    dtype: str = "float64",
    max_examples: int = 100,
    max_batch: int = 16,
) -> None:
    """Pass silently, or raise ``GradientMismatch`` on the minimal failing case."""
    if not callable(backprop):
        raise TypeError(f"backprop: expected a callable (params, X, Y) -> grads, got {backprop!r}")
    sizes = check_layer_sizes(layer_sizes)
    names = check_activations(activations, len(sizes) - 1)
    check_loss_pair(loss, names[-1], sizes[-1])
    dtype = check_dtype(dtype).name
    max_examples = check_positive_int(max_examples, "max_examples")
    max_batch = check_positive_int(max_batch, "max_batch")
    architecture = st.just((sizes, names, loss))

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(networks(architecture=architecture, dtypes=(dtype,), max_batch=max_batch))
    def matches_the_oracle(case: Case) -> None:
        comparison = _compare_backprop(backprop, case)
        if not comparison.ok:
            raise GradientMismatch(comparison, case)

    matches_the_oracle()
