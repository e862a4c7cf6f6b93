"""``check_gradients``: property-check anyone's hand-written backprop against the oracle.

Give it your own backward pass as a callable ``backprop(params, X, Y) -> grads``
for one architecture, and declare the conventions your code uses instead of
gluing them to ours (``manual_bp_reference.conventions``): ``layout`` (``"columns"``:
``X`` ``(n0, m)``; ``"rows"``: cs231n's ``X`` ``(m, n0)``, ``W`` ``(n_in,
n_out)``), ``names`` (``"W1/B1"``, ``"W1/b1"`` or a mapping), ``bias_shape``,
``container`` (``"dict"`` or ``"list"``), ``targets`` (``"soft"``,
``"one_hot"``, ``"labels"``), ``reduction`` (``"mean"``, ``"sum"``) and
``l2`` (``l2 / 2 * sum ||Wl||^2`` in your loss; ``l2_divided_by_m``:
``l2 / (2 m) * sum ||Wl||^2``, the deeplearning.ai course's ``lambd``).  ``grads`` must hold the
``W`` and ``B`` gradients and may hold ``Zl`` and ``Al`` (our names).

Hypothesis generates networks of that architecture, batches and targets, and
every entry is compared with ``jax.grad`` of manual_bp's forward under the
rounding-error tolerance.  Pre-activations of relu and leaky_relu units are
kept farther from the kink than any summation order's rounding
(``manual_bp_reference.kinks``), but for exact zeros, which check the kink convention.
A pass returns a ``CheckReport``; a mismatch raises ``GradientMismatch`` with
the minimal case's table, a non-degenerate failing case's table and the
likely bug; an exception in ``backprop`` is reported the same way with its
traceback.

>>> import numpy as np
>>> from manual_bp import Net, backward, forward
>>> net = Net.of([3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
>>> def my_backprop(params, X, Y):
...     _, cache = forward(params, X, net)
...     return backward(cache, Y, net)
>>> from manual_bp_reference.settings import Settings
>>> report = check_gradients(my_backprop, net, settings=Settings(max_examples=5))
>>> report.examples
5

One case at a time, ``manual_bp_reference.compare.compare(case, grads)`` compares any
gradients with the oracle; ``check_gradients`` is the property check that
draws the cases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from manual_bp.architecture import gradient_keys
from manual_bp.losses import LOSSES
from manual_bp.net import Net
from manual_bp_reference import html_report
from manual_bp_reference.cases import Case
from manual_bp_reference.check_run import (
    DEFAULT_SEED,
    CaseProperty,
    check_function,
    check_settings,
    in_notebook,
    open_sandbox,
    progress,
    quiet_storage,
    run_property,
    run_until_failure,
    seeded,
    stopped_line,
)
from manual_bp_reference.compare import (
    Comparison,
    VariableComparison,
    View,
    closeness,
    compare,
    decay_coefficient,
)
from manual_bp_reference.conventions import (
    NAMINGS,
    Conventions,
    GradsTypeError,
    convention_fields,
)
from manual_bp_reference.diagnosis import Diagnosis
from manual_bp_reference.inference import Auto, Inferred, as_auto, candidates, infer
from manual_bp_reference.isolation import (
    NO_OUTPUT,
    Output,
    Sandbox,
    Source,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
    UserFunction,
)
from manual_bp_reference.kinks import away_from_kinks
from manual_bp_reference.network_pair import (
    Dropped,
    ForwardBackward,
    parameters_of,
    unfilled,
    unwrap,
)
from manual_bp_reference.oracle import compile_ahead, one_network, oracle_gradients
from manual_bp_reference.settings import Settings, from_old_keywords
from manual_bp_reference.strategies import networks

Backprop = Callable[..., object]


def record_worst(worst: dict[str, float], variables: Mapping[str, VariableComparison]) -> None:
    """Raise ``worst[key]`` to each variable's err/tol (``Comparison.variables``)."""
    for key, v in variables.items():
        worst[key] = max(worst.get(key, 0.0), v.ratio)


def batch_span(batch_sizes: set[int]) -> str:
    """``"1..8"``: the smallest and largest batch size run (``"-"`` for none)."""
    batches = sorted(batch_sizes)
    return f"{batches[0]}..{batches[-1]}" if batches else "-"


def worst_text(worst: dict[str, float]) -> str:
    """``"W1 0.01, B1 0.2"``: the worst err/tol per key, for a pass report."""
    return ", ".join(f"{key} {ratio:.2g}" for key, ratio in worst.items())


@dataclass
class CheckReport:
    """What a passing check ran: examples, shapes covered, worst err/tol per key."""

    examples: int = 0
    layer_sizes: list[int] = field(default_factory=list)
    batch_sizes: set[int] = field(default_factory=set)
    worst: dict[str, float] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)
    # Examples with entries no check can decide (``Comparison.undecided``).
    undecided: int = 0
    # The seed that draws these cases again, and where the user's code ran.
    seed: int = DEFAULT_SEED
    isolation: str = ""
    # What the first call that printed anything printed.
    output: Output = NO_OUTPUT
    # The conventions the code was checked in, when they were inferred ("auto").
    conventions: Conventions | None = None
    # Each key as the user's code names it (b1 for our B1), where it differs.
    names: dict[str, str] = field(default_factory=dict)

    def add(self, case: Case, comparison: Comparison) -> None:
        self.examples += 1
        self.layer_sizes = case.layer_sizes
        self.batch_sizes.add(case.m)
        self.undecided += comparison.undecided > 0
        record_worst(self.worst, comparison.variables)

    def __str__(self) -> str:
        lines = [
            f"PASS: {self.examples} examples, layer sizes {self.layer_sizes}, "
            f"batch sizes {batch_span(self.batch_sizes)} ({len(self.batch_sizes)} distinct)",
            f"worst error/tolerance per key: {worst_text(self.named_worst())}",
        ]
        lines += self._notes()
        lines += printed_lines(self.output, "the first call that printed anything")
        lines.append(run_line(self.seed, self.isolation))
        return "\n".join(lines)

    def named_worst(self) -> dict[str, float]:
        """``worst`` with each key as the user's code names it."""
        return {self.names.get(key, key): ratio for key, ratio in self.worst.items()}

    def _notes(self) -> list[str]:
        """The undecided examples, then the notes."""
        lines = []
        if self.undecided:
            lines.append(
                f"undecided: {self.undecided} of {self.examples} examples had entries whose "
                "tolerance reaches the gradient's scale (a kink or a forward that rounds too "
                "much): those entries were not judged"
            )
        return lines + [f"note: {note}" for note in sorted(self.notes)]

    def _repr_html_(self) -> str:
        """The report for Jupyter (``manual_bp_reference.html_report``)."""
        title = str(self).split("\n", 1)[0]
        run = run_line(self.seed, self.isolation)
        return html_report.passed(title, self.named_worst(), self._notes(), self.output, run)


@dataclass
class LabelledReport(CheckReport):
    """A ``CheckReport`` whose PASS line says what was checked (``_label``:
    ``check_per_example``'s quantity, ``check_hvp``'s product)."""

    def _label(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        lines = super().__str__().split("\n")
        lines[0] = lines[0].replace("PASS:", f"PASS ({self._label()}):", 1)
        return "\n".join(lines)


def printed_lines(output: Output, what: str) -> list[str]:
    """``what`` and the output, truncated, for a report (nothing when empty)."""
    if not output:
        return []
    return [f"{what} printed {output.lines:,} lines:", output.shown()]


def run_line(seed: int | None, where: str) -> str:
    """The last line of every report: the seed that draws its cases again, and
    where the user's code ran."""
    again = f"seed {seed} (seed={seed} / --seed {seed} draws these cases again)"
    parts = [] if seed is None else [again]
    return "; ".join([*parts, where] if where else parts)


class Mismatch(AssertionError):  # noqa: N818  (it is an assertion, not an error)
    """What ``GradientMismatch`` and ``LayerMismatch`` say, in one order: the
    verdict, the user's traceback, the minimal case's table, the details, a
    larger failing case's table, what the user's code printed on the case,
    the other failures found, the notes, the minimal case, pasteable, and the
    seed.  A subclass sets ``.comparison``, ``.case``, ``.verdict``,
    ``.details``, ``.typical``, ``.traceback`` and says how its cases are
    described; ``.output`` (what the failing call printed), ``.others`` (one
    line per other distinct failure), ``.notes``, ``.seed`` and ``.isolation``
    are set by the check.  ``case`` is None when the code failed to load."""

    comparison: Any
    case: Any
    verdict: str
    details: list[str]
    typical: tuple[Any, Any] | None
    traceback: str
    output: Output = NO_OUTPUT
    others: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    seed: int | None = None
    isolation: str = ""
    raised_on = "backprop raised on the minimal case:"
    # Verdicts that end a check at the first case (no shrinking).
    STOPPED = ("timed out", "ended the process")

    def _verdict_line(self) -> str:
        return f"verdict: {self.verdict}"

    def _explanation(self) -> list[str]:
        return self.details

    def _view(self) -> Any:
        """How the tables name and shape the keys (None: ours)."""
        return None

    def _larger_case(self, case: Any) -> str:
        return (
            f"{self._another(case)} failing case (layer sizes {case.layer_sizes}, m = {case.m}) "
            "shows which gradients the bug really breaks:"
        )

    def _another(self, case: Any) -> str:
        """``a larger`` when ``case`` has more samples than the minimal one."""
        return "a larger" if self.case is not None and case.m > self.case.m else "another"

    def _as_the_user_calls_it(self) -> list[str]:
        """The case as the user's own call, in the user's conventions (none here)."""
        return []

    def _describe(self, case: Any) -> str:
        """A case in a few words, for the line naming another failure."""
        return f"layer sizes {case.layer_sizes}, m = {case.m}"

    def summary(self) -> str:
        """One line: the verdict, what failed and on which case."""
        if self.comparison is not None:
            view = self._view()
            failing = [v.key if view is None else view(v.key, tuple(v.shape), None)[0]
                       for v in self.comparison.failures()]  # fmt: skip
            what = f"{', '.join(failing) or 'the report'} wrong"
        else:
            what = (self.traceback.strip().splitlines() or [self.verdict])[-1]
        where = "" if self.case is None else f" ({self._describe(self.case)})"
        return f"{self.verdict}: {what}{where}"

    def with_context(
        self, *, notes: Sequence[str] = (), seed: int | None = None, isolation: str = ""
    ) -> Mismatch:
        """The same mismatch with the check's notes, seed and isolation line."""
        self.notes, self.seed, self.isolation = tuple(notes), seed, isolation
        return self

    def __str__(self) -> str:
        return self._message()

    def _message(self) -> str:
        lines = [self._verdict_line()]
        if self.traceback:
            loading = "your code raised while loading:"
            lines += [self.raised_on if self.case is not None else loading, self.traceback.rstrip()]
        view = self._view()
        if self.comparison is not None:
            where = "" if view is None else " (names, shapes and indices as your code has them)"
            report = self.comparison.report() if view is None else self.comparison.report(view=view)
            lines += [f"minimal case{where}:", report]
        lines += self._explanation()
        typical, case = self.typical if self.typical is not None else (None, self.case)
        if typical is not None:
            lines += [
                self._larger_case(case),
                typical.table() if view is None else typical.table(view=view),
            ]
        lines += printed_lines(self.output, "your code, on this case,")
        if self.others:
            lines += ["other failures found (fix this one first, then check again):"]
            lines += [f"  {other}" for other in self.others]
        lines += [f"note: {note}" for note in self.notes]
        if self.case is not None:
            stopped = self.verdict in self.STOPPED
            lines += [
                "the case it stopped on, pasteable:" if stopped else "the minimal case, pasteable:",
                repr(self.case),
                *self._as_the_user_calls_it(),
            ]
        if self.seed is not None or self.isolation:
            lines.append(run_line(self.seed, self.isolation))
        return "\n".join(lines)

    # The HTML report (Jupyter shows it for ``mismatch`` or ``display(mismatch)``):
    # what the text says, laid out by ``html_report``.
    _row_name = "key"

    def _likely_bug(self) -> list[str]:
        """The diagnosis's sentences, for the HTML's box (none: no box)."""
        diagnosis = getattr(self.comparison, "diagnosis", None)
        return [] if diagnosis is None else [html_report.diagnosis_text(diagnosis)]

    def _html_explanation(self) -> list[str]:
        """``_explanation`` but the likely bug, which the HTML shows in its box."""
        return self._explanation()

    def _repr_html_(self) -> str:
        return self.html()

    def _render_traceback_(self) -> list[str]:
        """What IPython shows when a check raises this in a cell: in a Jupyter
        kernel the HTML report, displayed, then the one-line summary as the
        error; in a terminal IPython the text report.  Either way, not the
        checker's own frames (the user's traceback is in the report)."""
        title = f"{type(self).__name__}: "
        if in_notebook():
            if not getattr(self, "_shown", False):  # IPython may ask twice for one error
                from IPython.display import display

                display(self)
                self._shown = True
            return [title + self.summary()]
        return (title + str(self)).splitlines()

    def html(self) -> str:
        """The report as HTML (``manual_bp_reference.html_report``)."""
        h = html_report
        view = self._view()
        parts = [
            h.banner(
                h.verdict_kind(self.verdict),
                self._verdict_line(),
                subtitle=self.summary().removeprefix(f"{self.verdict}: "),
            ),
            h.likely_bug(self._likely_bug()),
        ]
        if self.comparison is not None:
            ours = view is None
            rows = self.comparison.rows() if ours else self.comparison.rows(view=view)
            details = self.comparison.details() if ours else self.comparison.details(view=view)
            where = "" if ours else " (names, shapes and indices as your code has them)"
            parts += [
                h.heading(f"minimal case{where}"),
                h.table_and_picture(rows, name=self._row_name),
                h.paragraphs(details),
            ]
        parts.append(h.paragraphs(self._html_explanation()))
        if self.traceback:
            title = self.raised_on if self.case is not None else "your code raised while loading:"
            parts.append(h.section(title, h.code(self.traceback.rstrip()), open_=True))
        typical, case = self.typical if self.typical is not None else (None, self.case)
        if typical is not None:
            rows = typical.rows() if view is None else typical.rows(view=view)
            parts.append(h.section(self._larger_case(case),
                                   h.table_and_picture(rows, name=self._row_name)))  # fmt: skip
        printed = printed_lines(self.output, "your code, on this case,")
        if printed:
            parts.append(h.section(printed[0], h.code(printed[1])))
        if self.others:
            title = "other failures found (fix this one first, then check again)"
            parts.append(h.section(title, h.bullets(self.others), open_=True))
        parts.append(h.paragraphs(f"note: {note}" for note in self.notes))
        if self.case is not None:
            stopped = self.verdict in self.STOPPED
            title = f"the {'case it stopped on' if stopped else 'minimal case'}, pasteable"
            user = self._as_the_user_calls_it()
            pasteable = h.code(repr(self.case))
            if user:  # the heading, then the call in the user's conventions
                pasteable += h.paragraphs(user[:1]) + h.code(user[1])
            parts.append(h.section(title, pasteable))
        if self.seed is not None or self.isolation:
            parts.append(h.small(run_line(self.seed, self.isolation)))
        return h.page(*parts)


class CataloguedMismatch(Mismatch):
    """A ``Mismatch`` of a check whose diagnosis is a catalogue of bug
    formulas (``check_per_example``, ``check_dp_step``): ``.values`` what the
    user's function returned on the minimal case, ``.bugs`` the catalogued
    bugs they match, best first (``.bug`` the first's name), each with a
    ``name`` and a ``formula``.  A subclass names its ``catalogue`` and says
    how its verdict line and its cases read."""

    raised_on = "function raised on the minimal case:"
    catalogue = ""  # "per-example", "DP-SGD": what the "none matches" line says

    def __init__(
        self,
        comparison: Any,
        case: Any,
        *,
        verdict: str = "wrong",
        details: Sequence[str] = (),
        typical: tuple[Any, Any] | None = None,
        user_traceback: str = "",
        output: Output = NO_OUTPUT,
        others: Sequence[str] = (),
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self.comparison, self.case, self.verdict = comparison, case, verdict
        self.details, self.typical, self.traceback = list(details), typical, user_traceback
        self.output, self.others = output, tuple(others)
        self.values = dict(values or {})
        self.bugs: tuple[Any, ...] = ()
        # What the function returned on the typical case (set by the check).
        self.typical_values: dict[str, Any] = {}
        self.function = "function"
        super().__init__(self._verdict_line())

    @property
    def bug(self) -> str | None:
        """The name of the catalogued bug the values match best (None: none)."""
        return self.bugs[0].name if self.bugs else None

    def _verdict_line(self) -> str:
        raise NotImplementedError

    def _bug_lines(self) -> list[str]:
        if self.comparison is None:
            return []
        if not self.bugs:
            return [f"likely bug: none of the catalogued {self.catalogue} bugs matches",
                    *closeness(self.comparison, view=self._view())]  # fmt: skip
        first, *rest = self.bugs
        lines = [f"likely bug: {first.name}: your values match {first.formula}"]
        if rest:
            lines.append(f"  (also consistent with: {', '.join(b.name for b in rest)})")
        return lines

    def _explanation(self) -> list[str]:
        return self._bug_lines() + self.details

    def _likely_bug(self) -> list[str]:
        return [f"{bug.name}: your values match {bug.formula}" for bug in self.bugs[:1]]

    def _html_explanation(self) -> list[str]:
        return self.details

    def _diagnose(self, case: Any, values: Mapping[str, Any]) -> list[Any]:
        """The catalogued bugs whose formula ``values`` match on ``case``, best first."""
        raise NotImplementedError

    def diagnosed(self) -> Self:
        """The same mismatch with the catalogued bugs its values match on the
        minimal case, best first."""
        if self.comparison is None or self.case is None:
            return self
        bugs = self._diagnose(self.case, self.values)
        if len(bugs) > 1 and self.typical is not None and self.typical_values:
            # Formulas that coincide on a degenerate minimal case (zeros shrunk
            # into it): the larger failing case tells them apart.
            larger = self._diagnose(self.typical[1], self.typical_values)
            bugs = [bug for bug in bugs if bug in larger] or bugs
        self.bugs = tuple(bugs)
        return self


def run_catalogued(
    source: Source,
    arguments: tuple[str, ...],
    strategy: st.SearchStrategy[Any],
    chosen: Any,
    spec: CaseProperty[Any],
) -> Any:
    """A catalogued check's run of the user's ``source`` (called with
    ``arguments``, by these names) in a sandbox of ``chosen.isolation``, over
    ``strategy``'s cases (``run_property`` under the resolved settings
    ``chosen``): the mismatch to raise (a ``spec.kind``, its function named,
    the check's notes, seed and isolation line in it), or None on a pass,
    ``spec.report`` then holding the sandbox's notes and the first output.
    Code that does not load raises its mismatch at once."""
    seed, limits = chosen.seed, chosen.isolation
    with quiet_storage():
        try:
            sandbox = open_sandbox({"function": source}, limits)
        except (UserCodeLoadError, UserCodeStopped) as error:
            raise spec.kind(None, None, **spec.keywords, **not_loaded(error)).with_context(
                seed=seed, isolation=limits.describe()
            ) from None
        with sandbox:
            mismatch = run_property(sandbox.function("function", arguments), strategy, chosen, spec)
            if mismatch is not None:
                mismatch.function = function_name(source, default="function")
                return mismatch.with_context(
                    notes=sandbox.notes(), seed=seed, isolation=limits.describe()
                )
            spec.report.notes |= set(sandbox.notes())
            spec.report.output = sandbox.first_output()
    return None


class GradientMismatch(Mismatch):
    """A user's backprop disagrees with the oracle (or raised, timed out, or
    ended its process).

    ``.comparison`` and ``.case``: the minimal failing case (``comparison``
    None when the code did not return; ``case`` None when it failed to
    load); ``.typical``: a non-degenerate failing ``(comparison, case)`` (the
    first one found); ``.verdict``: ``"wrong"``, ``"raised"``, ``"correct
    maths, unstable numerics"``, ``"timed out"`` or ``"ended the process"``;
    ``.traceback``: the user's traceback when it raised; ``.output``: what it
    printed on the case; ``.others``: the other distinct failures found.
    """

    def __init__(
        self,
        comparison: Comparison | None,
        case: Case | None,
        *,
        verdict: str = "wrong",
        details: Sequence[str] = (),
        typical: tuple[Comparison | None, Case] | None = None,
        user_traceback: str = "",
        output: Output = NO_OUTPUT,
        others: Sequence[str] = (),
    ) -> None:
        self.comparison, self.case, self.verdict = comparison, case, verdict
        self.details, self.typical, self.traceback = list(details), typical, user_traceback
        self.output, self.others = output, tuple(others)
        self.conventions: Conventions | None = None  # set by check_gradients
        self.call: str | None = None  # how the user's functions are called, if not backprop
        self.function = "backprop"  # the user's function's name, in the pasteable call
        super().__init__(self._verdict_line())

    def _view(self) -> View | None:
        """Names, shapes and indices in the user's conventions, where they differ."""
        if self.conventions is None or not self.conventions.reshapes():
            return None
        return self.conventions.view

    def _as_the_user_calls_it(self) -> list[str]:
        if self.conventions is None or self.case is None:
            return []
        return ["in your conventions (paste it next to your function):",
                self.conventions.pasteable(self.case, function=self.function,
                                           call=self.call)]  # fmt: skip


_TOP_LEVEL = (
    "a file's top-level code runs when it is loaded: keep training and tests under "
    "if __name__ == '__main__':"
)


def not_loaded(error: UserCodeLoadError | UserCodeStopped) -> dict[str, Any]:
    """The keywords of a mismatch of code that did not load (its import raised,
    hung or exited): no comparison, no case."""
    if isinstance(error, UserCodeLoadError):
        # The hint is for code that ran at import, not for a file that does not parse.
        parsed = not error.problem.split(" raised ", 1)[-1].startswith(
            ("SyntaxError", "IndentationError", "TabError")
        )
        return {"verdict": "raised", "details": [error.problem, *[_TOP_LEVEL] * parsed],
                "user_traceback": error.traceback, "output": error.output}  # fmt: skip
    return {
        "verdict": error.verdict, "output": error.record.output,
        "details": [f"{error.record.call}: {error.verdict} ({error.detail})", _TOP_LEVEL],
    }  # fmt: skip


def nonfinite(values: Mapping[str, object]) -> dict[str, list]:
    """Keys with NaN/inf entries: the count and the first index (values that are
    not numeric arrays are skipped: their problem is reported elsewhere)."""
    found = {}
    for key, value in values.items():
        try:
            bad = ~np.isfinite(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            continue
        if bad.any():
            found[key] = [int(bad.sum()), tuple(int(i) for i in np.argwhere(bad)[0])]
    return found


def unreadable(
    variables: Mapping[str, VariableComparison], problems: Mapping[str, str]
) -> dict[str, VariableComparison]:
    """``variables`` with each key of ``problems`` (why the user's array could
    not be read: missing, a shape in the user's terms) a failed row that says so."""
    out = dict(variables)
    for key, problem in problems.items():
        shape = out[key].shape if not problem.startswith("shape") else ()
        out[key] = VariableComparison(
            key, shape, "-", np.inf, np.inf, 0, (), np.nan, np.nan, np.nan, problem
        )
    return out


def _likely_instability(case: Case) -> str:
    """Why a correct formula can give NaN/inf on ``case``."""
    _, cache = case.forward()
    A_L = np.asarray(cache[f"A{case.depth}"])
    if case.loss in ("binary_cross_entropy", "cross_entropy") and np.any((A_L == 0) | (A_L == 1)):
        return (
            "dA computed from a saturated output (A rounds to exactly 0 or 1, so Y/A or "
            "(1-Y)/(1-A) divides by 0); the fused (A - Y)/m is finite"
        )
    largest = max(float(np.max(np.abs(cache[f"Z{l}"]), initial=0.0))
                  for l in range(1, case.depth + 1))  # fmt: skip
    if largest < 30:  # nothing here overflows an exp: the code makes the NaN itself
        return (
            f"not the inputs' size (every |Z| <= {largest:.3g}, no output saturated): the code "
            "itself makes a NaN or inf (0/0, log(0), a NaN constant)"
        )
    return "an intermediate overflows (exp of a large Z, or a division by a tiny value)"


@dataclass(frozen=True)
class _Options:
    conventions: Conventions
    kinks: str
    progress: bool | None = None


class BackpropRun(NamedTuple):
    """``compare_backprop``'s answer: the comparison, the failure details it adds
    (a return value that is no gradients), the notes (dtype differences, how
    the return value was read, keys not checked), and the user's gradients
    in our convention."""

    comparison: Comparison
    details: list[str]
    notes: set[str]
    grads: dict[str, np.ndarray]


def compare_backprop(
    backprop: Backprop,
    case: Case,
    *,
    conventions: Conventions | None = None,
    explain: bool = True,
) -> BackpropRun:
    """Run ``backprop`` on ``case`` in the user's ``conventions`` and compare.

    Raises what ``backprop`` raises (a ``manual_bp_reference.isolation.UserFunction``:
    ``UserCodeError``, ``UserCodeStopped``).  ``explain``: diagnose a
    mismatch (``compare(explain=)``).
    """
    conventions = conventions or Conventions()
    params, X, Y = conventions.to_user(case)
    raw, dropped = unwrap(backprop(params, X, Y))
    notes, details = set(), []
    try:
        if dropped is not None:
            case = _with_their_masks(case, dropped)
        grads, problems, extra, read = conventions.from_user(raw, case)
        notes.update(read)
    except GradsTypeError as error:  # not a container of gradients at all, or no mask
        grads, extra = {}, []
        why = (
            "not compared: no dropout mask"
            if isinstance(error, MissingMaskError)
            else "not returned"
        )
        problems = {key: why for key in gradient_keys(case.depth) if key[0] in "WB"}
        details.append(str(error))
    judged = _computed_in(case, grads, notes)
    for key, value in list(grads.items()):
        if value.dtype != np.dtype(judged.dtype):
            notes.add(
                f"{key}: dtype {value.dtype} returned for a {case.dtype} net "
                f"(values judged in {judged.dtype})"
            )
            grads[key] = value.astype(judged.dtype)
    case = judged
    for key, problem in problems.items():
        if problem.startswith("shape"):  # the diagnosis reads a wrong shape's pattern
            raw_array = conventions.raw_array(raw, key, case.depth)
            if raw_array is not None:
                grads[key] = raw_array
    keys = [k for k in gradient_keys(case.depth) if k[0] in "WB" or k in grads or k in problems]
    comparison = compare(
        conventions.judged(case), grads, input_gradient=False, keys=keys,
        reduction=conventions.reduction, explain=explain,
    )  # fmt: skip
    if problems:
        variables = dict(comparison.variables)
        for key, problem in problems.items():
            v = variables[key]
            shape = v.shape if ("missing" in problem or problem.startswith("not ")) else ()
            variables[key] = VariableComparison(
                key, shape, "-", np.inf, np.inf, 0, (), np.nan, np.nan, np.nan, problem
            )
        missing = [key for key, problem in problems.items() if "missing" in problem]
        diagnosis = None if details else comparison.diagnosis
        if missing:
            diagnosis = Diagnosis(
                int(missing[0][1:]), missing[0], "missing key",
                f"{', '.join(missing)} not in grads; extra keys: {extra or 'none'}",
            )  # fmt: skip
            layers = {key[1:] for key in missing}
            if len(layers) == 1 and {key[0] for key in missing} == {"W", "B"} and not extra:
                l = int(layers.pop())
                if l in (1, case.depth):
                    where = "stops before layer 1" if l == 1 else f"starts below layer {l}"
                    diagnosis = Diagnosis(
                        l, f"W{l}", "off by one layer",
                        f"W{l}, B{l} not in grads: the loop over the layers {where}",
                    )  # fmt: skip
        comparison = dataclasses.replace(comparison, variables=variables, diagnosis=diagnosis)
    if extra:
        notes.add(f"keys in grads that are no gradient this check knows, not checked: {extra}")
    only_params = not any(key[0] in "ZA" for key in grads)
    if explain and not comparison.ok and only_params and not problems:
        comparison, advice = _probe_diagnosis(backprop, case, conventions, comparison)
        details += advice
    return BackpropRun(comparison, details, notes, grads)


# Bug classes a whole batch names reliably from W and B alone; the others are
# located with batch-size-1 probes.
_SEEN_FROM_PARAMS = {"missing 1/m", "extra 1/m", "sign flip", "bias sum axis", "transposed matrix"}
_RETURN_Z_ADVICE = (
    "to get a diagnosis, return the gradients of the pre-activations too "
    "(grads['Z1'] ... grads['ZL'], dL/dZl in your layout): they show where the chain "
    "rule first breaks"
)


def _probe_diagnosis(
    backprop: Backprop, case: Case, conventions: Conventions, comparison: Comparison
) -> tuple[Comparison, list[str]]:
    """Locate a bug from ``W`` and ``B`` alone with batch-size-1 probes.

    At ``m = 1``, ``dBl = dZl``: the user's bias gradients are their ``dZl``,
    and the diagnosis reads them as such.  A missing ``1/m`` is invisible at
    ``m = 1``, so the whole batch's diagnosis is kept for the classes it names
    reliably (``_SEEN_FROM_PARAMS``).
    """
    found = comparison.diagnosis
    if found is not None and found.bug_class in _SEEN_FROM_PARAMS:
        return comparison, []
    for k in range(case.m):
        probe = Case(case.net.without_dropout(), case.params, case.X[:, k : k + 1],
                     case.Y[:, k : k + 1])  # fmt: skip
        params, X, Y = conventions.to_user(probe)
        try:
            raw, dropped = unwrap(backprop(params, X, Y))
            if dropped is not None:  # the probe drops the units the forward dropped on it
                probe = _with_their_masks(probe, dropped)
            grads, problems, _, _ = conventions.from_user(raw, probe)
        except (Exception, UserCodeStopped):  # the whole case's report already stands
            break
        if problems:
            break
        grads = {key: value.astype(probe.dtype) for key, value in grads.items()}
        for l in range(1, probe.depth + 1):
            grads[f"Z{l}"] = grads[f"B{l}"]
        keys = [key for key in gradient_keys(probe.depth) if key[0] in "WBZ"]
        probed = compare(
            conventions.judged(probe), grads, input_gradient=False, keys=keys,
            reduction=conventions.reduction,
        )  # fmt: skip
        if probed.ok:
            continue
        if probed.diagnosis is not None and probed.diagnosis.bug_class != "unclassified":
            diagnosis = dataclasses.replace(
                probed.diagnosis,
                evidence=f"{probed.diagnosis.evidence}; from a batch-size-1 probe "
                f"(sample {k}), where dB = dZ",
            )
            return dataclasses.replace(comparison, diagnosis=diagnosis), []
        break
    if found is None or found.bug_class == "unclassified":
        return comparison, [_RETURN_Z_ADVICE]
    return comparison, []


class MissingMaskError(GradsTypeError):
    """A dropout mask the check needs is not in the user's forward's cache."""


def _with_their_masks(case: Case, dropped: Dropped) -> Case:
    """``case`` with the dropout the user's forward ran: its keep probability
    and the masks found in its cache (a ``GradsTypeError`` naming a layer whose
    mask is not there: without it no gradient can be compared)."""
    missing = [key for key, mask in dropped.masks.items() if mask is None]
    if missing:
        layers = ", ".join(f"{key[1:]} ({case.layer_sizes[int(key[1:])]} x m)" for key in missing)
        raise MissingMaskError(
            f"dropout: no mask of layer {layers} in the forward's cache; the check applies "
            "your forward's own masks: keep each in the cache, an array of 0s and 1s "
            "(the course's D1, D2)"
        )
    rate = 1.0 - dropped.keep_prob
    dropout = tuple(rate if f"M{l}" in dropped.masks else 0.0 for l in range(1, case.depth + 1))
    return Case(case.net.with_dropout(dropout), case.params, case.X, case.Y, masks=dropped.masks)


def check_gradients(
    backprop: Backprop | str,
    layer_sizes: Sequence[int] | Net,
    activations: Sequence[str] | None = None,
    loss: str | None = None,
    *,
    forward: Callable[..., object] | str | None = None,
    conventions: Conventions | Auto | str | None = None,
    settings: Settings | None = None,
    **old_keywords: Any,
) -> CheckReport:
    """Return a ``CheckReport`` on a pass; raise ``GradientMismatch`` otherwise.

    ``backprop``: a callable, or ``"FILE.py:NAME"`` / ``"MODULE:NAME"`` (loaded
    in the process that runs it).  The network: ``layer_sizes``,
    ``activations`` and ``loss`` (the seed's lists), or one ``manual_bp.Net``
    of plain ``Dense`` layers in place of the three (its ``l2`` is then the
    decay in the user's loss).  With ``forward``, ``backprop`` is the
    backward of a forward/backward pair as the deeplearning.ai course writes
    them (``L_model_forward(X, parameters) -> (AL, caches)``,
    ``L_model_backward(AL, Y, caches)``; ``..._with_dropout(..., keep_prob)``,
    ``..._with_regularization(..., lambd)``), their arguments passed by name
    (``manual_bp_reference.network_pair``); the Net may then have dropout (one
    keep probability), and the masks the forward drew, found in its cache,
    are the oracle's.  ``conventions``: how the code lays out its
    arrays (``manual_bp_reference.conventions.Conventions``: layout, names,
    bias shape, container, targets, reduction, L2), or ``"auto"``, the
    default: the structural ones inferred from what the code accepts and
    returns, the reduction and L2 ours (``manual_bp_reference.inference``;
    ``Auto({...})`` declares some and infers the rest); the report names what
    was inferred.
    ``settings``: how the cases are drawn and the code run
    (``manual_bp_reference.settings.Settings``: examples, dtype, bounds,
    kinks, shrinking, the stability rerun, seed, timeout, isolation).

    The same check gives the same verdict every run (``Settings.seed``,
    default 0).  ``backprop`` runs in a child process with a time limit per
    call: a call that hangs, exits or crashes gets the verdict ``"timed out"``
    or ``"ended the process"``; what it prints is captured and reported.
    The 0.1 keywords (``layout=``, ``max_examples=``, ...) still work, with a
    ``FutureWarning`` naming their new place.
    """
    backprop = check_function(backprop, "backprop", "(params, X, Y) -> grads")
    if forward is not None:
        forward = check_function(forward, "forward", "(X, parameters) -> (AL, cache)")
    spec = _plain_net(layer_sizes, activations, loss, dropout=forward is not None)
    keep_prob = _keep_probability(spec)
    # The layers whose masks the forward's cache must hold: those the Net drops.
    masked = tuple(
        (f"M{l}", layer.units) for l, layer in enumerate(spec.layers, 1) if layer.dropout
    )
    # The cases are drawn plain: the forward draws its own masks.
    plain = tuple(dataclasses.replace(layer, dropout=0.0) for layer in spec.layers)
    spec = dataclasses.replace(spec, layers=plain)
    sizes, loss = spec.layer_sizes, spec.loss
    settings, declared = from_old_keywords(
        "check_gradients", settings, old_keywords, conventions=[f.name for f in convention_fields()]
    )
    chosen = settings.resolved("check_gradients")
    auto = as_auto(conventions)
    if conventions is not None and auto is None and not isinstance(conventions, Conventions):
        raise TypeError(f"conventions: expected a Conventions or 'auto', got {conventions!r}")
    if conventions is not None and declared:
        raise ValueError(
            "conventions: give the Conventions or its old keywords "
            f"({', '.join(declared)}=), not both"
        )
    if conventions is None and not declared:  # inferred: the default
        auto = Auto()
    if auto is not None:  # the declared ones now; the structural ones inferred below
        conventions = Conventions(**auto.declared)
    conventions = Conventions(**declared) if conventions is None else conventions
    assert isinstance(conventions, Conventions)
    if spec.l2:  # the decay is the user's convention from here on
        if conventions.l2:
            raise ValueError(
                f"l2: the Net says l2={spec.l2!r} and the conventions l2={conventions.l2!r}; "
                "give the decay in one of them"
            )
        conventions = dataclasses.replace(conventions, l2=spec.l2)
        spec = dataclasses.replace(spec, l2=0.0)
        if auto is not None:
            auto = Auto({**auto.declared, "l2": conventions.l2})
    dtype, max_examples, max_batch = chosen.dtype, chosen.max_examples, chosen.max_batch
    seed, limits = chosen.seed, chosen.isolation
    pair = (forward, keep_prob, masked) if forward is not None else None
    if auto is None:
        conventions.check_targets(loss, sizes[-1])
        runnables = {"backprop": _runnable(backprop, conventions, pair)}
    else:  # a declared per_sample pair is refused by _runnable
        runnables = {
            _runnable_name(each, pair is not None): _runnable(backprop, each, pair)
            for each in _representatives(auto, spec, forward is not None)
        }

    inferred = None
    # One network: its oracle compiled by the network, while the child starts.
    with one_network(), quiet_storage():
        compile_ahead(spec, m=max_batch)
        try:
            sandbox = open_sandbox(runnables, limits)
        except (UserCodeLoadError, UserCodeStopped) as error:
            raise GradientMismatch(None, None, **not_loaded(error)).with_context(
                seed=seed, isolation=limits.describe()
            ) from None
        with sandbox:
            name = "backprop"
            if auto is not None:
                try:
                    inferred = _inferred(sandbox, auto, spec, pair=forward is not None)
                except UserCodeStopped as stopped:  # on the probe case: the verdict
                    mismatch = _stopped(stopped, stopped_line(stopped))
                    mismatch.conventions = stopped.conventions  # type: ignore[assignment]  # set by infer
                    raise mismatch.with_context(
                        notes=sandbox.notes(), seed=seed, isolation=limits.describe()
                    ) from None
                conventions, name = inferred.conventions, inferred.function
            runnable = runnables[name]
            user = sandbox.function(name, ("params", "X", "Y"))
            judged = conventions
            assert judged is not None

            def run(user: UserFunction, bounds: tuple[float, float]) -> CheckReport:
                return _run(
                    user, spec, _Options(judged, chosen.kinks, chosen.progress),
                    dtype=dtype, max_examples=max_examples, max_batch=max_batch,
                    hard=judged.targets != "soft", bounds=bounds, shrink=chosen.shrink,
                    seed=seed,
                )  # fmt: skip

            try:
                report = _stability_checked(
                    run, user, chosen.stability_check, sizes, max_examples,
                    (chosen.param_bound, chosen.input_bound),
                )  # fmt: skip
            except GradientMismatch as mismatch:
                notes = sandbox.notes() + ([inferred.note()] if inferred is not None else [])
                mismatch.conventions = conventions
                mismatch.function = function_name(backprop)
                if isinstance(runnable, ForwardBackward):
                    mismatch.call = runnable.call_text()
                raise mismatch.with_context(
                    notes=notes, seed=seed, isolation=limits.describe()
                ) from None
            report.notes |= set(sandbox.notes())
            report.names = {key: conventions.user_key(key) for key in report.worst
                            if conventions.user_key(key) != key}  # fmt: skip
            if inferred is not None:
                report.notes.add(inferred.note())
                report.conventions = conventions
            report.output = sandbox.first_output()
    report.seed, report.isolation = seed, limits.describe()
    return report


def function_name(source: Source, *, default: str = "backprop") -> str:
    """The name the user calls their function by: ``NAME`` of ``FILE.py:NAME``
    (a method's own name when dotted), else the callable's ``__name__``;
    ``default`` where neither is an identifier (every check's pasteable call)."""
    if isinstance(source, str):
        name = source.rpartition(":")[2].rpartition(".")[2]
    else:
        name = getattr(source, "__name__", default)
    return name if name.isidentifier() else default


def _runnable(backprop: Source, conventions: Conventions, pair: tuple | None) -> Source:
    """What the sandbox runs for ``backprop`` in ``conventions``: itself, its
    one-sample-at-a-time batch, or with ``pair`` (forward, keep probability,
    masked layers) the course's forward/backward pair."""
    if pair is None:
        return conventions.runnable(backprop)
    if conventions.per_sample:
        raise ValueError("forward: a forward/backward pair takes the batch, not one sample")
    forward, keep_prob, masked = pair
    runnable = ForwardBackward(
        forward, backprop, keep_prob, conventions.l2 or None, masked, conventions.layout
    )
    _check_names(runnable)
    return runnable


def _runnable_name(conventions: Conventions, pair: bool = False) -> str:
    """The sandbox's name of the runnable ``conventions`` call: ``backprop``
    for the function itself (first, so a load error names the argument)."""
    if conventions.per_sample:
        return f"backprop_per_sample_{conventions.layout}"
    return "backprop_rows" if pair and conventions.layout == "rows" else "backprop"


def _representatives(auto: Auto, net: Net, pair: bool) -> list[Conventions]:
    """One declaration per runnable inference may call."""
    found: dict[str, Conventions] = {}
    for each in candidates(auto, net, pair=pair):
        found.setdefault(_runnable_name(each, pair), each)
    return list(found.values())


def _inferred(sandbox: Sandbox, auto: Auto, net: Net, *, pair: bool) -> Inferred:
    """``manual_bp_reference.inference.infer`` on the sandbox's runnables."""
    users: dict[str, UserFunction] = {}

    def attempt(name: str, case: Case, conventions: Conventions) -> tuple[bool, bool]:
        if name not in users:
            users[name] = sandbox.function(name, ("params", "X", "Y"))
        comparison, details, _, _ = compare_backprop(
            users[name], case, conventions=conventions, explain=False
        )
        unreadable = any(
            v.problem and not v.problem.startswith("dtype")
            for v in comparison.variables.values()
            if v.key[0] in "WB"
        )
        return not unreadable, comparison.ok and not details and not unreadable

    return infer(attempt, lambda each: _runnable_name(each, pair), auto, net, pair=pair)


def declared_conventions(
    conventions: object, net: Net, *, check: str, returns: str, summed: str
) -> Conventions:
    """The ``Conventions`` declared to a check of a function that takes the
    whole batch in one call (``check_per_example``, ``check_hvp``; None:
    ours), refusing ``"auto"`` (such a check never infers), ``per_sample``
    (the function ``returns`` a batch's quantity), ``reduction="sum"`` (why
    not: ``summed``), a decay given both in the Net and in the conventions,
    and targets the loss has none of."""
    if conventions is None:
        return Conventions()
    if isinstance(conventions, str) or as_auto(conventions) is not None:
        raise ValueError(
            f"conventions: {check} does not infer conventions (got {conventions!r}): "
            "declare yours, e.g. Conventions(layout='rows', names='W1/b1') for cs231n-style "
            "code (rows as samples, W1 (n0, n1), flat b1); the default, None, is ours "
            "(columns, W1/B1, column biases)"
        )
    if not isinstance(conventions, Conventions):
        raise TypeError(f"conventions: expected a Conventions or None, got {conventions!r}")
    if conventions.per_sample:
        raise ValueError(
            f"per_sample: {check}'s function takes the whole batch and returns {returns}; "
            "one sample at a time is check_gradients' convention"
        )
    if conventions.reduction != "mean":
        raise ValueError(f"reduction: {summed} (got {conventions.reduction!r}); leave it 'mean'")
    if conventions.l2 and net.l2:
        raise ValueError(
            f"l2: the Net says l2={net.l2!r} and the conventions l2={conventions.l2!r}; "
            "give the decay in one of them"
        )
    conventions.check_targets(net.loss, net.layer_sizes[-1])
    return conventions


def convention_hints(exception: str, conventions: Conventions, case: Case) -> list[str]:
    """What a convention left undeclared would look like when the user's code
    raises ``exception`` (``"KeyError: 'b1'"``): a line naming the declaration,
    or none.  A hint, not a verdict: the verdict stays ``raised``."""
    kind, _, message = exception.partition(": ")
    if kind == "KeyError":
        wanted = message.strip("'\"")
        for naming in NAMINGS:
            if naming == conventions.names:
                continue
            # A fresh declaration: replace() would keep a names mapping's lookup.
            other = Conventions(**{**conventions.as_dict(), "names": naming})
            if wanted in {other.user_key(key) for key in case.params}:
                return [
                    f"your code looks up {message} in the params, which are keyed "
                    f"{sorted(conventions.user_key(key) for key in case.params)}: declare "
                    f"names={naming!r} (--names {naming})"
                ]
        return []
    layout_words = ("matmul", "not aligned", "broadcast", "mismatch in its core dimension")
    if kind == "ValueError" and any(word in message for word in layout_words):
        flipped = "rows" if conventions.layout == "columns" else "columns"
        shapes = "X (m, n0), W (n_in, n_out)" if flipped == "rows" else "X (n0, m), W (n_out, n_in)"
        return [
            f"a shape error: if your code takes samples as {flipped} ({shapes}), declare "
            f"layout={flipped!r} (--layout {flipped})"
        ]
    if kind == "IndexError" and conventions.targets != "labels" and case.loss != "mse":
        return [
            "an index error: if your code takes integer class labels Y (m,), declare "
            "targets='labels' (--targets labels)"
        ]
    return []


def _keep_probability(net: Net) -> float | None:
    """The one keep probability of a net's dropped layers (None without dropout)."""
    rates = {layer.dropout for layer in net.layers if layer.dropout}
    if len(rates) > 1:
        raise ValueError(
            f"net.layers: a forward takes one keep_prob, the layers drop with {sorted(rates)}"
        )
    return 1.0 - rates.pop() if rates else None


def _check_names(pair: ForwardBackward) -> None:
    """Before anything runs: a TypeError naming the argument (and what to
    declare) when the forward or the backward has one the pair cannot fill
    by its name, and a ValueError when a file defines no such function; read
    from the signature, or from the file without running it."""
    given = ["X", "parameters"]
    if pair.keep_prob is not None:
        given.append("keep_prob")
    if pair.lambd is not None:
        given.append("lambd")
    for role, function in (("forward", pair.forward), ("backward", pair.backward)):
        parameters = parameters_of(function, role)
        if parameters is not None:
            unfilled(parameters, role, given)
        given += ["Y", "out", "cache"]


def _plain_net(
    net: Net | Sequence[int],
    activations: Sequence[str] | None,
    loss: str | None,
    *,
    dropout: bool = False,
) -> Net:
    """``check_gradients``' network: a ``Net``, or the seed's lists (layer
    sizes, activations and loss, all three).  A user's ``backprop(params, X,
    Y)`` has plain layers: a ``Net`` with normalization, or with dropout
    unless ``dropout`` (a forward that draws its own masks), is refused."""
    if not isinstance(net, Net):
        if activations is None or loss is None:
            missing = [name for name, value in (("activations", activations), ("loss", loss))
                       if value is None]  # fmt: skip
            raise TypeError(
                f"{', '.join(missing)}: required with a list of layer sizes (or give a "
                "manual_bp.Net)"
            )
        return Net.of(net, activations, loss)
    if activations is not None or loss is not None:
        raise ValueError(
            "activations, loss: the Net already says them; give a Net or the lists, not both"
        )
    for index, layer in enumerate(net.layers):
        if layer.norm or (layer.dropout and not dropout):
            raise ValueError(
                f"net.layers[{index}]: check_gradients checks plain layers (a backprop(params, "
                f"X, Y) has no normalization or dropout), got {layer!r}"
            )
    return net


def _stability_checked(
    run: Callable[[UserFunction, tuple[float, float]], CheckReport],
    user: UserFunction,
    stability_check: bool,
    sizes: list[int],
    max_examples: int,
    bounds: tuple[float, float],
) -> CheckReport:
    """``run`` at ``bounds``; NaN/inf in the user's gradients reruns it with
    pre-activations bounded by 1 to tell unstable numerics from wrong maths."""
    try:
        return run(user, bounds)
    except GradientMismatch as mismatch:
        if not (stability_check and mismatch.verdict == "unstable"):
            raise
        # Rerun with |Z| <= 1 in every layer: |W|, |B| <= 1 / (fan-in + 1), |X| <= 1.
        bounded = 1.0 / (max(sizes) + 1)
        comparison = mismatch.comparison
        try:
            run(user, (bounded, 1.0))
            verdict, extra = (
                "correct maths, unstable numerics",
                [
                    f"with pre-activations bounded by 1 (|W|, |B| <= {bounded:.3g}, |X| <= 1) "
                    f"{max_examples} examples pass: the formulas are right, their evaluation "
                    "overflows or divides by 0 at large inputs"
                ],
            )
            # Right formulas: no bug class (the diagnosis read NaN as a wrong formula).
            if comparison is not None:
                comparison = dataclasses.replace(comparison, diagnosis=None)
        except GradientMismatch as bounded_mismatch:
            if bounded_mismatch.verdict in Mismatch.STOPPED:  # the rerun hung or died: that
                raise bounded_mismatch from None
            verdict = "wrong"
            extra = [
                "with pre-activations bounded by 1 it fails too "
                f"({bounded_mismatch.summary()}): not only a matter of large inputs"
            ]
        raise GradientMismatch(
            comparison, mismatch.case, verdict=verdict, details=mismatch.details + extra,
            typical=mismatch.typical, output=mismatch.output, others=mismatch.others,
        ) from None  # fmt: skip


def _run(
    backprop: UserFunction,
    net: Net,
    options: _Options,
    *,
    dtype: str,
    max_examples: int,
    max_batch: int,
    hard: bool,
    bounds: tuple[float, float],
    shrink: bool = True,
    seed: int = DEFAULT_SEED,
) -> CheckReport:
    report = CheckReport()
    first_failure: list[tuple[Comparison | None, Case]] = []
    strategy = networks(
        net=st.just(net), dtypes=(dtype,), max_batch=max_batch,
        hard_targets=hard, param_bound=bounds[0], input_bound=bounds[1],
    )  # fmt: skip

    bar = progress(max_examples, "check_gradients", options.progress)

    @seeded(seed)
    @check_settings(max_examples, shrink)
    @given(strategy)
    @bar.counted
    def matches_the_oracle(case: Case) -> None:
        if options.kinks == "avoid":
            case = away_from_kinks(case)
        try:
            # Explained once, on the minimal and the typical case (below):
            # diagnosing every shrinking step would cost far more than comparing.
            comparison, details, notes, grads = compare_backprop(
                backprop, case, conventions=options.conventions, explain=False
            )
        except UserCodeError as error:
            if not first_failure:
                first_failure.append((None, case))
            raise GradientMismatch(
                None, case, verdict="raised", user_traceback=error.record.traceback,
                output=error.record.output,
                details=convention_hints(error.record.exception, options.conventions, case),
            ) from None  # fmt: skip
        except UserCodeStopped as stopped:
            stopped.context = case
            raise
        if comparison.ok and not details:
            report.add(case, comparison)
            report.notes |= notes
            return
        if not first_failure:
            first_failure.append((comparison, case))
        typical = first_failure[0] if first_failure[0][1] is not case else None
        verdict = "wrong"
        broken = nonfinite(grads)
        if broken:
            verdict = "unstable"
            where = "; ".join(f"{k}: {n} entries, first at {i}" for k, (n, i) in broken.items())
            details = [
                *details,
                f"NaN/inf in the user's gradients where the oracle's are finite ({where})",
                f"likely cause: {_likely_instability(case)}",
            ]
        output = backprop.last.output if backprop.last is not None else NO_OUTPUT
        raise GradientMismatch(
            comparison, case, verdict=verdict, details=details + sorted(notes), typical=typical,
            output=output,
        )  # fmt: skip

    failure = run_until_failure(matches_the_oracle, GradientMismatch, _stopped, progress=bar)
    if failure is None:
        return report
    mismatch, others = failure
    named = [other.summary() for other in others]
    if mismatch.comparison is None:  # it raised or stopped: nothing to compare or shrink further
        mismatch.others = tuple(named)
        raise mismatch.with_traceback(None) from None
    assert mismatch.case is not None  # a comparison is always of a case
    case = _fewer_samples(backprop, mismatch.case, options.conventions)
    grads: dict[str, np.ndarray] = {}
    try:
        comparison, details, _, grads = compare_backprop(
            backprop, case, conventions=options.conventions
        )
        output = backprop.last.output if backprop.last is not None else NO_OUTPUT
    except (UserCodeError, UserCodeStopped):  # code that changed its mind: the first answer
        case, comparison, details, output = mismatch.case, mismatch.comparison, [], mismatch.output
    if mismatch.verdict == "wrong":
        details = details + _another_declaration(backprop, case, options.conventions, grads)
        details = details + _float32_precision(case, grads, options.conventions)
    raise GradientMismatch(
        comparison, case, verdict=mismatch.verdict,
        details=list(dict.fromkeys(mismatch.details + details)), typical=mismatch.typical,
        output=output, others=named,
    ) from None  # fmt: skip


def _stopped(stopped: UserCodeStopped, line: str) -> GradientMismatch:
    """The verdict of a call that timed out or ended its process, on the case
    it was running (``stopped.context``), ``line`` saying so."""
    return GradientMismatch(
        None, stopped.context, verdict=stopped.verdict,  # type: ignore[arg-type]  # a case
        output=stopped.record.output, details=[line],
    )  # fmt: skip


def _rounded_to_float32(case: Case) -> Case:
    """``case`` with its arrays rounded to float32: the point float32 code computes at."""
    params = {key: value.astype(np.float32) for key, value in case.params.items()}
    return Case(
        case.net, params, case.X.astype(np.float32), case.Y.astype(np.float32),
        masks=dict(case.masks),
    )  # fmt: skip


def _float32_precision(
    case: Case, grads: Mapping[str, np.ndarray], conventions: Conventions
) -> list[str]:
    """A line when float64 gradients that fail are float32-accurate: the
    code computes partly in float32 (its params cast, its targets not)."""
    if case.dtype != "float64" or not grads:
        return []
    if any(key not in grads for key in gradient_keys(case.depth) if key[0] in "WB"):
        return []  # a gradient missing or misshapen: no rounding explains that
    rounded = _rounded_to_float32(case)
    keys = [key for key in gradient_keys(case.depth) if key in grads]
    comparison = compare(
        conventions.judged(rounded),
        {key: value.astype(np.float32) for key, value in grads.items() if key in keys},
        input_gradient=False, keys=keys, reduction=conventions.reduction, explain=False,
    )  # fmt: skip
    if not comparison.ok:
        return []
    return [
        "these gradients are right to float32's rounding (against the case rounded to "
        "float32): your code seems to compute partly in float32; cast everything alike "
        "(params, X and Y) or compute in float64"
    ]


def _computed_in(case: Case, grads: Mapping[str, np.ndarray], notes: set[str]) -> Case:
    """The case to judge ``grads`` against: ``case``, or, when every gradient
    came back float32 from a float64 case (code that casts what it is given,
    a class whose default dtype is float32), the case rounded to float32.  Its
    oracle is taken at the rounded point and its tolerance is float32's, with
    a note: float32 rounding is not a bug."""
    dtypes = {value.dtype for value in grads.values()}
    if case.dtype != "float64" or dtypes != {np.dtype("float32")}:
        return case
    notes.add(
        "your code computes in float32 (every gradient came back float32 for a float64 "
        "net): judged against the case rounded to float32, with float32's rounding"
    )
    return _rounded_to_float32(case)


def _declarations(conventions: Conventions) -> list[tuple[Conventions, str]]:
    """Other declarations a user may have meant, each with its flags: the other
    reduction, and with a decay, half or twice it or the other division by m."""
    found = []
    other = "sum" if conventions.reduction == "mean" else "mean"
    found.append((dataclasses.replace(conventions, reduction=other), f"--reduction {other}"))
    if conventions.l2:
        for factor in (0.5, 2.0):
            l2 = conventions.l2 * factor
            found.append((dataclasses.replace(conventions, l2=l2), f"--l2 {l2!r}"))
        divided = not conventions.l2_divided_by_m
        flag = "--l2-divided-by-m" if divided else "without --l2-divided-by-m"
        found.append((dataclasses.replace(conventions, l2_divided_by_m=divided), flag))
    return found


def _decay_declarations(
    case: Case, grads: Mapping[str, np.ndarray], conventions: Conventions
) -> list[tuple[Conventions, str]]:
    """With no L2 declared: the L2 term the gradients hold, if ``dWl`` minus
    the oracle's (of either reduction) is one ``c Wl`` across the layers (least
    squares), as ``l2=c`` and as the course's ``lambd / m`` (``l2=c m``,
    divided by m)."""
    keys = [f"W{l}" for l in range(1, case.depth + 1)]
    if conventions.l2 or any(
        key not in grads or np.shape(grads[key]) != np.shape(case.params[key]) for key in keys
    ):
        return []  # a misshapen dWl is a shape problem, named as such, not a decay
    W = [case.params[key] for key in keys]
    if not any(np.any(w) for w in W):
        return []  # no weight to fit a decay to
    oracle = oracle_gradients(case).grads
    found = []
    for reduction in dict.fromkeys((conventions.reduction, "mean", "sum")):
        scale = case.m if reduction == "sum" else 1
        extra = [np.asarray(grads[key], np.float64) - scale * oracle[key] for key in keys]
        c = decay_coefficient(extra, W)
        if not (np.isfinite(c) and c > 0):
            continue
        flags = "" if reduction == conventions.reduction else f" --reduction {reduction}"
        c, divided = float(f"{c:.6g}"), float(f"{c * case.m:.6g}")
        found.append(
            (dataclasses.replace(conventions, reduction=reduction, l2=c), f"--l2 {c!r}{flags}")
        )
        found.append((
            dataclasses.replace(conventions, reduction=reduction, l2=divided,
                                l2_divided_by_m=True),
            f"--l2 {divided!r} --l2-divided-by-m{flags}",
        ))  # fmt: skip
    return found


def _another_declaration(
    backprop: Backprop,
    case: Case,
    conventions: Conventions,
    grads: Mapping[str, np.ndarray] | None = None,
) -> list[str]:
    """A line naming another declaration under which the failing ``case``
    passes, or none.  The verdict stands: a convention changes every gradient
    by one known map, so code that is right under another one is either
    declared wrong or has exactly the bug that map describes."""
    declarations = _declarations(conventions)
    if grads:
        declarations += _decay_declarations(case, grads, conventions)
    for declared, flag in declarations:
        try:
            comparison, details, _, _ = compare_backprop(
                backprop, case, conventions=declared, explain=False
            )
        except (UserCodeError, UserCodeStopped):
            return []
        if comparison.ok and not details:
            return [
                f"passes on this case with {flag} ({_keywords(declared, conventions)}): did "
                "you mean it?  If not, the difference is the bug"
            ]
    for loss in sorted(set(LOSSES) - {case.loss}):
        try:  # the same output layer and targets under another loss, where both fit
            other = dataclasses.replace(case, net=dataclasses.replace(case.net, loss=loss))
            comparison, details, _, _ = compare_backprop(
                backprop, other, conventions=conventions, explain=False
            )
        except (ValueError, TypeError):  # a loss this output or these targets do not take
            continue
        except (UserCodeError, UserCodeStopped):
            return []
        if comparison.ok and not details:
            return [
                f"passes on this case with --loss {loss} (loss={loss!r}): did you mean it?  "
                "If not, the difference is the bug"
            ]
    return []


def _keywords(declared: Conventions, conventions: Conventions) -> str:
    """The keyword arguments in which ``declared`` differs, as Python."""
    changed = {
        name: value
        for name, value in declared.as_dict().items()
        if value != conventions.as_dict()[name]
    }
    return ", ".join(f"{name}={value!r}" for name, value in changed.items())


def _fewer_samples(backprop: Backprop, case: Case, conventions: Conventions) -> Case:
    """The smallest run of consecutive samples of ``case`` that still fails.

    Hypothesis shrinks the bytes it drew, and the batch size is drawn before
    the arrays whose sizes it sets, so a shrunk case can keep more samples
    than the bug needs; this finishes the job on the samples themselves.
    """
    for size in range(1, case.m):
        for start in range(case.m - size + 1):
            columns = slice(start, start + size)
            fewer = Case(case.net.without_dropout(), case.params, case.X[:, columns],
                         case.Y[:, columns])  # fmt: skip
            try:
                comparison, details, _, _ = compare_backprop(
                    backprop, fewer, conventions=conventions, explain=False
                )
            except UserCodeError:
                continue
            except UserCodeStopped:
                return case
            if not comparison.ok or details:
                return fewer
    return case
