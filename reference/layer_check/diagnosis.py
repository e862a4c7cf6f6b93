"""The classic bugs a failure matches (a kind's catalogue), the kink note, a larger
failing case."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from manual_bp.activations import LEAKY_RELU_SLOPE
from manual_bp_reference.isolation import (
    UserCodeStopped,
)
from manual_bp_reference.layer_check.calls import run_user
from manual_bp_reference.layer_check.cases import LayerCase, probe_case
from manual_bp_reference.layer_check.comparison import (
    LayerComparison,
    compare_layer,
    oracle_inputs,
)
from manual_bp_reference.layer_check.oracle import layer_oracle
from manual_bp_reference.layer_check.specs import Array, kind_of, to_ours, to_user

BUG_ROUNDING = 64


def bug_diagnosis(case: LayerCase, outputs: Mapping[str, object]) -> list[str]:
    """The classic bugs of the case's layer kind (``LayerKind.bugs``) whose
    outputs the user's match on ``case``, as sentences; empty when none does."""
    kind = kind_of(case.layer)
    inputs, dout, _ = oracle_inputs(case, outputs)
    tolerance = kind.tolerance(inputs, dout, case.dtype)
    found = []
    for bug in kind.bugs:
        if _all_match(case, outputs, bug.outputs(inputs, dout), tolerance):
            found.append(f"likely: {bug.name}: your {case.layer} {bug.description}")
    return found


# The name the normalization layers' diagnosis had (their bugs are a kind's catalogue now).
normalization_diagnosis = bug_diagnosis


def _all_match(
    case: LayerCase, outputs: Mapping[str, object], theirs: Mapping[str, Array], tol: Mapping
) -> bool:
    """Every output the user returned equals ``theirs`` within ``tol`` (and one differs
    from nothing: at least one output compared)."""
    compared = 0
    for name, value in outputs.items():
        try:
            mine = to_ours(name, np.asarray(value), case.layout, layer=case.layer)
        except (TypeError, ValueError):
            return False
        if mine.shape != theirs[name].shape:
            return False
        # A formula sums in its own order: where the kind's bound is the
        # underflow floor (a max-pool entry no window routes to), its rounding
        # against the user's is allowed for, BUG_ROUNDING units of its value.
        slack = BUG_ROUNDING * float(np.finfo(np.dtype(case.dtype)).eps) * np.abs(theirs[name])
        with np.errstate(invalid="ignore"):
            if not np.all(np.abs(mine - theirs[name]) <= tol[name] + slack):
                return False
        compared += 1
    return compared > 0


def kink_note(case: LayerCase, comparison: LayerComparison) -> list[str]:
    """relu/leaky_relu failing only where x is exactly 0: the kink convention."""
    if case.layer not in ("relu", "leaky_relu") or "dx" not in comparison.variables:
        return []
    v = comparison.variables["dx"]
    if v.problem or v.ok:
        return []
    x = np.asarray(case.inputs["x"])
    if x[v.worst_index] != 0:
        return []
    ours = "relu'(0) = 0" if case.layer == "relu" else "leaky_relu'(0) = 1"
    theirs = "relu'(0) = 1" if case.layer == "relu" else f"leaky_relu'(0) = {LEAKY_RELU_SLOPE}"
    return [
        f"the worst entry has x exactly 0: your kink convention looks like {theirs}; "
        f"manual_bp (as jax.nn) takes {ours}"
    ]


def larger_failure(
    backward, forward, case: LayerCase, first: list, targets_as: str
) -> tuple[LayerComparison | None, LayerCase] | None:
    """A non-degenerate failing case: the generic probe if it fails, else the first
    failure found (None when that is the minimal case itself)."""
    probe = probe_case(case.layer, case.layout, case.dtype, targets_as=targets_as)
    try:
        comparison = compare_layer(probe, *run_user(backward, forward, probe))
    except (Exception, UserCodeStopped):  # the probe raised: the first failure found stands
        comparison = None
    if comparison is not None and not comparison.ok:
        return comparison, probe
    return first[0] if first and first[0][1] is not case else None


def reshape_note(backward, forward, case: LayerCase) -> list[str]:
    """When every failing output has the right values in another shape of the
    same size (``dgamma`` ``(1, C)`` where ``(C,)`` is expected), a sentence saying
    so; else empty: the values are what to look at then."""
    try:
        outputs, problems = run_user(backward, forward, case)
    except (Exception, UserCodeStopped):  # code that changed its mind: no note
        return []
    if problems:
        return []
    inputs, dout, _ = oracle_inputs(case, outputs)
    expected = {k: to_user(k, v, case.layout, layer=case.layer) if np.ndim(v) else v
                for k, v in layer_oracle(case.layer, inputs, dout).items()}  # fmt: skip
    reshaped, moved = dict(outputs), []
    for name, value in outputs.items():
        try:
            array = np.asarray(value)
        except Exception:  # a ragged list: no shape to compare
            return []
        want = np.shape(expected.get(name, array))
        if array.shape != want and array.size == int(np.prod(want)):
            reshaped[name] = array.reshape(want)
            moved.append(f"{name} is {array.shape}, expected {want}")
    if not moved or not compare_layer(case, reshaped, {}).ok:
        return []
    return [
        "likely: the right values in the wrong shape: your "
        + "; ".join(moved)
        + " (as the input it is the gradient of): reshape it, e.g. .reshape(x.shape)"
    ]


def diagnose(backward, forward, case: LayerCase) -> list[str]:
    """The classic bugs matching a generic probe case (those also matching the
    minimal case first), else the minimal case alone; else a sentence saying none does."""
    try:
        outputs, problems = run_user(backward, forward, case)
    except (Exception, UserCodeStopped):  # code that changed its mind: no diagnosis
        return []
    if problems:
        return []
    found = bug_diagnosis(case, outputs)
    probe = probe_case(case.layer, case.layout, case.dtype)
    try:
        probe_outputs, problems = run_user(backward, forward, probe)
    except (Exception, UserCodeStopped):  # the minimal case's answer stands
        problems = {"probe": "raised"}
    if not problems:
        probed = bug_diagnosis(probe, probe_outputs)
        found = [s for s in probed if s in found] or probed
    known = ", ".join(bug.name for bug in kind_of(case.layer).bugs)
    return found or [
        f"none of the classic {case.layer} bugs manual-bp knows explains these outputs"
        + (f" ({known})" if known else "")
        + ": compare the worst entries above with your formula"
    ]
