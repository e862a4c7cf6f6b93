"""Keep drawn pre-activations of kinked units off their kinks, unless exactly on them.

relu and leaky_relu take one slope for ``Z < 0`` and another for ``Z > 0``
(``Activation.kink_side`` says which side 0 itself takes).  Which side a
``Z`` within rounding error of 0 lands on depends on the order its sum was
added in: a per-sample loop may give ``1e-16`` where a matrix product gives
exactly 0.  No checker can know the user's order, so a property check must
not decide there: ``away_from_kinks`` moves the bias of every kinked unit
with such a ``Z`` so that all its ``Z`` lie farther from 0 than ``margin``
times the forward's rounding bound for *any* summation order
(``manual_bp_reference.tolerance.forward_bounds``).

It keeps the ``Z`` that are *provably* 0 in every order: a unit whose
weights see only zeros (``|Wl| |A(l-1)| + |Bl| = 0`` with every
``A(l-1)`` entry it reads provably 0).  Those check the kink convention
itself (``relu'(0) = 0``, ``leaky_relu'(0) = 1``) with exact zeros, as the
silenced units of ``manual_bp_reference.cases`` produce them.

>>> import numpy as np
>>> from manual_bp_reference.cases import Case
>>> case = Case.of({"W1": np.array([[1.0, -1.0]]), "B1": np.zeros((1, 1)),
...                 "W2": np.ones((1, 1)), "B2": np.zeros((1, 1))},
...                np.array([[0.1], [0.1]]), np.ones((1, 1)), ["relu", "identity"], "mse")
>>> moved = away_from_kinks(case)
>>> float(moved.params["B1"][0, 0]) != 0.0
True
"""

from __future__ import annotations

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.cases import Case
from manual_bp_reference.tolerance import forward_bounds

Array = np.ndarray
# How many forward rounding bounds a kinked Z keeps from 0.
MARGIN = 4.0
# Rounds of moving biases before giving up (one suffices but for float32
# rounding of the moved bias itself).
_ROUNDS = 8


def _provably_zero(case: Case, cache: dict, EZ: dict, margin: float) -> dict[int, Array]:
    """``Zl`` entries that are exactly 0 in every summation order."""
    unsure_A = np.zeros(case.X.shape)  # the inputs are given exactly
    provable = {}
    for l, name in enumerate(case.activations, start=1):
        # Count the nonzero products W_ij A_jk rather than add their sizes: a
        # product that underflows to 0 in float64 is nonzero in a wider
        # accumulator (long double), and its Z is not 0 there.
        W = (np.asarray(case.params[f"W{l}"]) != 0).astype(np.float64)
        B = np.asarray(case.params[f"B{l}"]) != 0
        A_prev = (np.asarray(cache[f"A{l - 1}"]) != 0).astype(np.float64)
        provable[l] = ((W @ (A_prev + unsure_A)) == 0) & ~B
        Z, A = np.asarray(cache[f"Z{l}"], dtype=np.float64), cache[f"A{l}"]
        safely_negative = (name == "relu") & (Z < -margin * EZ[l])
        zero_A = (A == 0) & ((provable[l] & ACTIVATIONS[name].zero_at_zero) | safely_negative)
        # An A of 0 that is not provably 0 may be tiny elsewhere: it counts as 1.
        unsure_A = ((A == 0) & ~zero_A).astype(np.float64)
    return provable


def _shift(Z_row: Array, bound_row: Array, spacing: float) -> float:
    """The smallest ``delta`` (in steps of ``step``) keeping every ``Z + delta``
    farther than twice its bound from 0."""
    step = max(4 * float(np.max(bound_row)), 4 * spacing)
    for j in range(1, 4 * Z_row.size + 8):
        for delta in (j * step, -j * step):
            if np.all(np.abs(Z_row + delta) > 2 * bound_row):
                return delta
    raise AssertionError("unreachable: 2m + 1 candidates cover m excluded intervals")


def away_from_kinks(case: Case, *, margin: float = MARGIN) -> Case:
    """``case`` with the biases of kinked units moved so that no ``Z`` of theirs
    lies within ``margin`` forward rounding bounds of the kink, but for
    provably exact zeros.  A case already clear of kinks is returned as is."""
    for _ in range(_ROUNDS):
        _, cache = case.forward()
        EZ, _ = forward_bounds(case, cache)
        provable = _provably_zero(case, cache, EZ, margin)
        for l, name in enumerate(case.activations, start=1):
            if ACTIVATIONS[name].kink_side is None:
                continue
            Z = np.asarray(cache[f"Z{l}"], dtype=np.float64)
            bound = margin * EZ[l]
            bad = (np.abs(Z) <= bound) & ~provable[l]
            if bad.any():
                break
        else:
            return case
        params = dict(case.params)
        B = np.array(params[f"B{l}"])
        for i in np.flatnonzero(bad.any(axis=1)):
            magnitude = np.abs(B[i, 0]) + np.max(np.abs(Z[i]))
            spacing = float(np.spacing(np.asarray(magnitude, dtype=B.dtype)))
            B[i, 0] = B[i, 0] + _shift(Z[i], bound[i], spacing)
        params[f"B{l}"] = B
        case = Case(case.net, params, case.X, case.Y, masks=case.masks)
    raise ValueError("away_from_kinks: could not move every Z off its kink")
