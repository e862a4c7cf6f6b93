"""``compare_layer``: every output of one call against the oracle, entry by entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from manual_bp_reference import html_report
from manual_bp_reference.compare import VariableComparison, compare_variable, ratio_text
from manual_bp_reference.layer_check.cases import LayerCase
from manual_bp_reference.layer_check.oracle import layer_oracle
from manual_bp_reference.layer_check.specs import Array, kind_of, to_ours, to_user


@dataclass(frozen=True)
class LayerComparison:
    """Every output of one call compared with the oracle (``VariableComparison`` each)."""

    variables: dict[str, VariableComparison]
    notes: tuple[str, ...] = ()

    @property
    def worst_ratio(self) -> float:
        return max((v.ratio for v in self.variables.values()), default=0.0)

    @property
    def ok(self) -> bool:
        return self.worst_ratio <= 1.0

    def failures(self) -> list[VariableComparison]:
        return [v for v in self.variables.values() if not v.ok]

    def table(self) -> str:
        """One line per output: name, shape, max |diff|, error/tolerance, match."""
        lines = [f"{'output':<7} {'shape':<10} {'max |diff|':>11} {'err/tol':>11}  match"]
        for v in self.variables.values():
            shape = "x".join(map(str, v.shape)) or "scalar"
            lines.append(
                f"{v.key:<7} {shape:<10} {v.diff_text():>11} "
                f"{v.ratio_text():>11}  {'yes' if v.ok else 'NO'}"
            )
        return "\n".join(lines)

    def report(self) -> str:
        """The table, then the worst entry (or the problem) of each failing output."""
        status = "all outputs match" if self.ok else "MISMATCH"
        lines = [f"{status} (worst error/tolerance {ratio_text(self.worst_ratio)})", self.table()]
        return "\n".join([*lines, *self.details()])

    def rows(self) -> list[html_report.Row]:
        """The table's rows as data, for the HTML report."""
        return html_report.variable_rows(self.variables.values())

    def details(self) -> list[str]:
        """The report's lines after the table: each failing output's worst
        entry, or its problem."""
        lines = []
        for v in self.failures():
            if v.problem:  # a shape, a missing output: no entries to count
                lines.append(f"{v.key}: {v.problem}")
                continue
            lines.append(
                f"{v.key} {v.shape}: {v.failing} of {int(np.prod(v.shape))} entries fail; "
                f"worst at {v.worst_index}: yours {v.manual:.17g}, oracle {v.oracle:.17g}, "
                f"tolerance {v.tolerance:.3g}, error/tolerance {v.ratio_text()}"
            )
        return lines

    __str__ = report


def oracle_inputs(
    case: LayerCase, outputs: Mapping[str, object]
) -> tuple[dict[str, Array], Array | tuple[Array, ...] | None, list[str]]:
    """The case's inputs and ``dout`` in our layout, with the kind's ``fixed``
    arrays (dropout's mask, chosen given the user's forward ``out``) among the
    inputs, and the notes on that choice."""
    kind = kind_of(case.layer)
    inputs, dout = case.ours()
    if kind.fixed is None:
        return inputs, dout, []
    out = None
    name = kind.outputs[0]  # out, or a loss's value
    try:
        out = to_ours(name, np.asarray(outputs[name]), case.layout, layer=case.layer)
    except (KeyError, TypeError, ValueError):  # no forward output to read: None
        pass
    if out is not None and kind.shapes is None and out.shape != inputs["x"].shape:
        out = None
    param = case.forward_param()
    assert param is not None  # a kind with fixed arrays takes a param dict
    fixed, notes = kind.fixed(inputs, param, case.layout, out)
    return {**inputs, **fixed}, dout, notes


def compare_layer(
    case: LayerCase, outputs: Mapping[str, object], problems: Mapping[str, str]
) -> LayerComparison:
    """Compare the user's ``outputs`` on ``case`` with the oracle, entry by entry."""
    kind = kind_of(case.layer)
    inputs, dout, notes = oracle_inputs(case, outputs)
    oracle = layer_oracle(case.layer, inputs, dout)
    tolerance = kind.tolerance(inputs, dout, case.dtype)
    expected = np.dtype(case.dtype)
    # Every gradient; a forward's outputs when it ran (a missing forward's are not).
    names = [
        n
        for n in dict.fromkeys((*kind.outputs, *kind.grads))
        if n in oracle and (n in kind.grads or n in outputs or n in problems)
    ]
    variables = {}
    for name in names:
        ndim = oracle[name].ndim
        expected_value = (
            to_user(name, oracle[name], case.layout, layer=case.layer) if ndim else oracle[name]
        )
        tol = (
            to_user(name, tolerance[name], case.layout, layer=case.layer)
            if ndim
            else tolerance[name]
        )
        if name in problems:
            variables[name] = VariableComparison(
                name, tuple(expected_value.shape), "-", np.inf, np.inf,
                max(expected_value.size, 1), (), np.nan, np.nan, np.nan, problems[name],
            )  # fmt: skip
            continue
        value = outputs.get(name)
        if value is not None:
            try:
                array = np.asarray(value)
            except Exception as error:  # a ragged list: say what arrived
                variables[name] = VariableComparison(
                    name, (), "-", np.inf, np.inf, max(expected_value.size, 1), (),
                    np.nan, np.nan, np.nan,
                    f"not an array: {type(value).__name__} ({error})",
                )  # fmt: skip
                continue
            if np.issubdtype(array.dtype, np.floating) and array.dtype != expected:
                notes.append(f"{name}: dtype {array.dtype} returned for {expected} inputs "
                             f"(values judged in {expected})")  # fmt: skip
                array = array.astype(expected)
            value = array
        with np.errstate(over="ignore"):  # err/tol beyond 1e308 is inf, as it should be
            variables[name] = compare_variable(name, value, expected_value, tol, expected)
    return LayerComparison(variables, tuple(notes))
