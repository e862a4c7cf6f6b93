"""``LayerReport`` (a pass) and ``LayerMismatch`` (a failure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from manual_bp_reference import html_report
from manual_bp_reference.check import (
    Mismatch,
    batch_span,
    printed_lines,
    record_worst,
    run_line,
    worst_text,
)
from manual_bp_reference.check_run import (
    DEFAULT_SEED,
)
from manual_bp_reference.isolation import (
    NO_OUTPUT,
    Output,
)
from manual_bp_reference.layer_check.cases import LayerCase
from manual_bp_reference.layer_check.comparison import LayerComparison


@dataclass
class LayerReport:
    """What a passing ``check_layer`` ran: examples, shapes, worst err/tol per output."""

    layer: str = ""
    layout: str = ""
    examples: int = 0
    shapes: set[tuple[int, ...]] = field(default_factory=set)
    batch_sizes: set[int] = field(default_factory=set)
    worst: dict[str, float] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)
    # The seed that draws these cases again, and where the user's code ran.
    seed: int = DEFAULT_SEED
    isolation: str = ""
    # What the first call that printed anything printed.
    output: Output = NO_OUTPUT

    def add(self, case: LayerCase, comparison: LayerComparison) -> None:
        self.layer, self.layout = case.layer, case.layout
        self.examples += 1
        self.shapes.add(case.shape)
        self.batch_sizes.add(case.m)
        self.notes |= set(comparison.notes)
        record_worst(self.worst, comparison.variables)

    def __str__(self) -> str:
        lines = [
            f"PASS: {self.layer} ({self.layout}), {self.examples} examples, "
            f"{len(self.shapes)} shapes of x, batch sizes {batch_span(self.batch_sizes)}",
            f"worst error/tolerance per output: {worst_text(self.worst)}",
        ]
        lines += [f"note: {note}" for note in sorted(self.notes)]
        lines += printed_lines(self.output, "the first call that printed anything")
        return "\n".join([*lines, run_line(self.seed, self.isolation)])

    def _repr_html_(self) -> str:
        """The report for Jupyter (``manual_bp_reference.html_report``)."""
        title = str(self).split("\n", 1)[0]
        notes = [f"note: {note}" for note in sorted(self.notes)]
        run = run_line(self.seed, self.isolation)
        return html_report.passed(title, self.worst, notes, self.output, run, name="output")


class LayerMismatch(Mismatch):
    """A user's layer function disagrees with the oracle (or raised).

    The sibling of ``manual_bp_reference.check.GradientMismatch``: ``.comparison`` and
    ``.case`` are the minimal failing case (``comparison`` None when the code
    raised); ``.typical`` a larger failing ``(comparison, case)``; ``.verdict``
    ``"wrong"``, ``"raised"``, ``"unstable"`` or ``"correct maths, unstable
    numerics"``; ``.diagnosis`` the sentences naming a classic bug;
    ``.traceback`` the user's traceback.
    """

    def __init__(
        self,
        comparison: LayerComparison | None,
        case: LayerCase | None,
        *,
        verdict: str = "wrong",
        details: Sequence[str] = (),
        diagnosis: Sequence[str] = (),
        typical: tuple[LayerComparison | None, LayerCase] | None = None,
        user_traceback: str = "",
        output: Output = NO_OUTPUT,
        others: Sequence[str] = (),
    ) -> None:
        self.comparison, self.case, self.verdict = comparison, case, verdict
        self.details, self.diagnosis = list(details), list(diagnosis)
        self.typical, self.traceback = typical, user_traceback
        self.output, self.others = output, tuple(others)
        super().__init__(self._verdict_line())

    @property
    def failing(self) -> list[str]:
        """The outputs that do not match on the minimal case."""
        return [v.key for v in self.comparison.failures()] if self.comparison else []

    raised_on = "your code raised on the minimal case:"

    def _verdict_line(self) -> str:
        if self.case is None:
            return f"verdict: {self.verdict}"
        return f"verdict: {self.verdict} ({self.case.layer}, layout {self.case.layout!r})"

    def _describe(self, case: LayerCase) -> str:
        return f"x shape {case.shape}, m = {case.m}"

    def _explanation(self) -> list[str]:
        return self.details + self.diagnosis

    _row_name = "output"

    def _likely_bug(self) -> list[str]:
        return self.diagnosis

    def _html_explanation(self) -> list[str]:
        return self.details

    def _larger_case(self, case: LayerCase) -> str:
        return (
            f"{self._another(case)} failing case (x shape {case.shape}, m = {case.m}) shows which "
            "outputs the bug really breaks:"
        )
