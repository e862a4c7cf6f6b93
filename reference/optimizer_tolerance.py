"""Per-entry tolerances of one optimizer step, from a rounding-error bound.

The optimizer's own rule (``manual_bp.optimizers``, written once over
``ops``) is run again on ``Bounded`` numbers: a float64 value with a bound on
the absolute rounding error that a computation in unit roundoff ``u`` may
have accumulated in it.  Each operation rounds once more (the standard model
``fl(x op y) = (x op y)(1 + δ)``, ``|δ| <= u``) and carries its operands'
errors forward to first order::

    x ± y    e = ex + ey + u |x ± y|
    x · y    e = |x| ey + |y| ex + ex ey + u |x y|
    x / y    e = (ex + |x / y| ey) / (|y| − ey) + u |x / y|     (inf if |y| <= ey)
    √x       e = min(ex / (√x + √max(x − ex, 0)), √ex) + u √x

A Python-float constant (a hyperparameter, ``1 − β``) enters with ``u |c|``:
the hand-written side rounds it into its dtype.  The bias correction
``1 − β^t`` enters with ``4 eps64 β^t + u |1 − β^t|``: ``β^t`` is rounded by
both sides' ``pow`` in float64 (a few ulps), and that absolute error is
what ``1 − β^t`` keeps when β is near 1.  Every operation also adds the
dtype's smallest normal number once, for underflow.

The tolerance of an entry is ``SAFETY (E(u_dtype) + E(eps64))``: the bound of
the hand-written side in its dtype plus that of the oracle in float64, both
started from the same inputs (``u`` is the machine epsilon, twice the unit
roundoff, as in ``manual_bp_reference.tolerance``).  An entry whose bound is infinite
(a denominator within its own error of 0) cannot be decided, and is counted
as such instead of passing or failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from manual_bp.optimizers import Optimizer

Array = np.ndarray
EPS64 = float(np.finfo(np.float64).eps)
# First-order bounds drop O(u^2) terms, and a hand-written rule may order its
# operations differently from optax's; a factor 2 covers both (measured:
# benchmarks/optimizer_false_alarms.py, 0 false alarms, see RESULTS.md).
SAFETY = 2.0
# |fl(β^t) − β^t| <= POW_ULPS eps64 β^t for libm's and XLA's pow.
POW_ULPS = 4.0


@dataclass(frozen=True)
class Rounding:
    """The unit ``u`` and the underflow floor ``tiny`` of one side's dtype."""

    unit: float
    tiny: float

    @classmethod
    def of(cls, dtype: np.dtype) -> Rounding:
        info = np.finfo(dtype)
        return cls(float(info.eps), float(info.tiny))


class Bounded:
    """A float64 value with a bound on its rounding error, elementwise."""

    __array_priority__ = 1000  # numpy scalars defer to our operators

    def __init__(self, value: Any, error: Any, rounding: Rounding) -> None:
        self.value = np.asarray(value, dtype=np.float64)
        self.error = np.asarray(error, dtype=np.float64)
        self.rounding = rounding

    def _new(self, value: Array, error: Array) -> Bounded:
        r = self.rounding
        return Bounded(value, error + r.unit * np.abs(value) + r.tiny, r)

    def _lift(self, other: Any) -> Bounded:
        if isinstance(other, Bounded):
            return other
        c = np.asarray(other, dtype=np.float64)
        return Bounded(c, self.rounding.unit * np.abs(c), self.rounding)

    def __add__(self, other: Any) -> Bounded:
        o = self._lift(other)
        return self._new(self.value + o.value, self.error + o.error)

    __radd__ = __add__

    def __neg__(self) -> Bounded:
        return Bounded(-self.value, self.error, self.rounding)

    def __sub__(self, other: Any) -> Bounded:
        return self + (-self._lift(other))

    def __rsub__(self, other: Any) -> Bounded:
        return self._lift(other) + (-self)

    def __mul__(self, other: Any) -> Bounded:
        o = self._lift(other)
        error = np.abs(self.value) * o.error + np.abs(o.value) * self.error + self.error * o.error
        return self._new(self.value * o.value, error)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Bounded:
        o = self._lift(other)
        with np.errstate(divide="ignore", invalid="ignore"):
            quotient = self.value / o.value
            margin = np.abs(o.value) - o.error
            error = np.where(margin > 0, (self.error + np.abs(quotient) * o.error) / margin, np.inf)
        # 0 / y with an exact 0 (a zero gradient) is exactly 0 on both sides.
        error = np.where((self.value == 0) & (self.error == 0) & (o.value != 0), 0.0, error)
        return self._new(np.nan_to_num(quotient, nan=0.0), error)

    def __rtruediv__(self, other: Any) -> Bounded:
        return self._lift(other) / self


def _sqrt(x: Bounded) -> Bounded:
    root = np.sqrt(np.maximum(x.value, 0.0))
    lower = np.sqrt(np.maximum(x.value - x.error, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        linear = np.where(root + lower > 0, x.error / (root + lower), np.inf)
    return x._new(root, np.minimum(linear, np.sqrt(x.error)))


def _ops(rounding: Rounding) -> SimpleNamespace:
    def correction(decay: float, t: int) -> Bounded:
        power = decay**t
        value = 1.0 - power
        return Bounded(value, POW_ULPS * EPS64 * power + rounding.unit * abs(value), rounding)

    return SimpleNamespace(sqrt=_sqrt, correction=correction)


def _bounds(
    optimizer: Optimizer,
    grads: Mapping[str, Array],
    state: Mapping[str, Any],
    params: Mapping[str, Array],
    rounding: Rounding,
) -> tuple[dict[str, Array], dict[str, dict[str, Array]]]:
    """The error bounds of every new parameter and accumulator, for one side.

    The rule is elementwise, so it runs once per group of keys it treats
    alike (``decay_groups``), on their entries joined into one vector."""
    ops = _ops(rounding)
    t = int(state.get("t", 0)) + 1

    def joined(arrays: Mapping[str, Array], keys: list[str]) -> Bounded:
        values = np.concatenate([np.ravel(arrays[key]) for key in keys])
        return Bounded(values, 0.0, rounding)

    params_error: dict[str, Array] = {}
    slots_error: dict[str, dict[str, Array]] = {slot: {} for slot in optimizer.SLOTS}
    for keys in optimizer.decay_groups(list(params)).values():
        if not keys:
            continue
        slots = {slot: joined(state[slot], keys) for slot in optimizer.SLOTS}
        new_theta, new_slots = optimizer.rule(
            joined(grads, keys), joined(params, keys), slots, t, keys[0], ops
        )
        errors = [(params_error, new_theta.error)]
        errors += [(slots_error[slot], new_slots[slot].error) for slot in optimizer.SLOTS]
        for into, error in errors:
            flat = np.broadcast_to(error, (sum(np.size(params[key]) for key in keys),))
            start = 0
            for key in keys:
                size = np.size(params[key])
                into[key] = flat[start : start + size].reshape(np.shape(params[key]))
                start += size
    return params_error, slots_error


def step_tolerances(
    optimizer: Optimizer,
    grads: Mapping[str, Array],
    state: Mapping[str, Any],
    params: Mapping[str, Array],
    dtype: np.dtype,
) -> tuple[dict[str, Array], dict[str, dict[str, Array]]]:
    """``(params tolerances, {slot: tolerances})`` of one step from these inputs,
    for a hand-written side computing in ``dtype`` against the float64 oracle."""
    mine = _bounds(optimizer, grads, state, params, Rounding.of(np.dtype(dtype)))
    oracle = _bounds(optimizer, grads, state, params, Rounding.of(np.dtype(np.float64)))
    params_tol = {key: SAFETY * (mine[0][key] + oracle[0][key]) for key in params}
    slots_tol = {
        slot: {key: SAFETY * (mine[1][slot][key] + oracle[1][slot][key]) for key in params}
        for slot in optimizer.SLOTS
    }
    return params_tol, slots_tol
