"""Compare gradients with the oracle, entry by entry, and report.

``compare(case, grads)`` is the one call that does it: ``grads`` are
anyone's gradients of ``case`` (by default manual_bp's own backward pass),
the oracle is ``jax.grad`` of manual_bp's forward (``manual_bp_reference.oracle``), and
every entry passes when ``|manual - oracle| <= tolerance`` with the per-entry
tolerance of ``manual_bp_reference.tolerance``.  The *ratio* of a variable is the
largest ``|manual - oracle| / tolerance`` over its entries: below 1 it
matches, and its size says how close it came.  On a mismatch the result also
carries the diagnosis (``manual_bp_reference.diagnosis``) and, for small networks,
which side finite differences support (``manual_bp_reference.finite_diff``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from manual_bp.architecture import gradient_keys
from manual_bp.losses import l2_penalty, l2_penalty_gradient
from manual_bp.network import loss_from_cache
from manual_bp_reference import html_report
from manual_bp_reference.cases import Case
from manual_bp_reference.conventions import REDUCTIONS
from manual_bp_reference.diagnosis import Diagnosis, diagnose
from manual_bp_reference.finite_diff import finite_difference_gradients, supported_side
from manual_bp_reference.oracle import OracleResult, oracle_gradients
from manual_bp_reference.tolerance import SAFETY, Tolerances, tolerances

Array = np.ndarray
# How a report names and shapes a key: (key, shape, index) -> (name, shape, index).
Index = tuple[int, ...] | None
View = Callable[[str, tuple[int, ...], Index], tuple[str, tuple[int, ...], Index]]


def _ours(key: str, shape: tuple[int, ...], index: Index) -> tuple[str, tuple[int, ...], Index]:
    return key, shape, index


# ``timer(stage)`` returns a context manager around each stage of ``compare``:
# "manual forward", "manual backward", "oracle", "tolerance", "comparison",
# "explanation".  Benchmarks pass one to time the stages.
Timer = Callable[[str], AbstractContextManager[object]]


def _untimed(stage: str) -> AbstractContextManager[object]:
    return nullcontext()


@dataclass(frozen=True)
class VariableComparison:
    """How one gradient ``grads[key]`` compares with the oracle."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_diff: float
    ratio: float
    failing: int
    worst_index: tuple[int, ...]
    manual: float
    oracle: float
    tolerance: float
    problem: str = ""
    finite_differences: str = ""
    # Frobenius norms of the whole manual and oracle gradients, in float64,
    # and the oracle's largest magnitude (the scale of a relative error).
    manual_norm: float = np.nan
    oracle_norm: float = np.nan
    oracle_max: float = np.nan
    # Entries whose tolerance reaches the oracle's largest magnitude: any value
    # of the gradient's size would pass there, so the check cannot decide them.
    undecided: int = 0

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0

    def ratio_text(self) -> str:
        """This variable's err/tol as what it means (``ratio_text``)."""
        return ratio_text(self.ratio, tolerance=self.tolerance, problem=self.problem)

    def diff_text(self) -> str:
        """This variable's max |diff| for a table (``diff_text``)."""
        return diff_text(self.max_abs_diff, problem=self.problem)


def ratio_text(ratio: float, *, tolerance: float = np.nan, problem: str = "") -> str:
    """An err/tol as what it means: ``-`` where nothing was compared (a missing
    or misshapen array), ``inf (tol 0)`` where the oracle's value is exact,
    ``>1e15`` where a tolerance near 0 makes the quotient meaningless."""
    if problem and not np.isfinite(ratio):
        return "-"
    if np.isnan(ratio):
        return "nan"
    if ratio == np.inf:
        return "inf (tol 0)" if tolerance == 0 else "inf"
    return ">1e15" if ratio >= 1e15 else f"{ratio:.2e}"


def diff_text(difference: float, *, problem: str = "") -> str:
    """A max |diff| for a table: ``-`` where nothing was compared."""
    return "-" if problem and not np.isfinite(difference) else f"{difference:.3e}"


def _error_ratio(error: Array, tolerance: Array) -> Array:
    """``error / tolerance``, with 0/0 = 0, x/0 = inf and NaN errors = inf."""
    # A huge error over a tiny tolerance overflows to inf: a failure, as meant.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(error == 0, 0.0, error / tolerance)
    return np.where(np.isnan(ratio), np.inf, ratio)


def bound_ratio(
    values: Mapping[str, Any], expected: Mapping[str, Array], bound: Mapping[str, Array]
) -> float:
    """The largest ``|values - expected| / bound`` over ``expected``'s keys
    (inf for a key missing or misshapen): how far a user's values lie from a
    formula's, in that formula's bound (the catalogued checks' diagnoses)."""
    worst = 0.0
    for key, target in expected.items():
        value = values.get(key)
        if value is None or np.shape(value) != target.shape:
            return np.inf
        error = np.abs(np.asarray(value, np.float64) - target)
        worst = max(worst, float(np.max(_error_ratio(error, bound[key]), initial=0.0)))
    return worst


def decay_coefficient(differences: Sequence[Array], weights: Sequence[Array]) -> float:
    """The least-squares ``c`` of ``differences ≈ c weights``, pair by pair
    (each weight broadcast to its difference's shape: one ``Wl`` for every
    example), in float64; NaN where every weight is 0."""
    dot = square = 0.0
    for difference, weight in zip(differences, weights, strict=True):
        difference = np.asarray(difference, np.float64)
        weight = np.broadcast_to(np.asarray(weight, np.float64), difference.shape)
        dot += float(np.sum(difference * weight))
        square += float(np.sum(weight * weight))
    return dot / square if square > 0 else np.nan


@dataclass(frozen=True)
class FittedDecay:
    """A decay the user's values hold that the declared one is not: the
    weights' part is ``(l2 + c) term`` where ``l2 term`` is right (a
    catalogued checks' bug with a fitted parameter: ``name``, ``formula``)."""

    name: str
    formula: str
    c: float
    l2: float


def _decay_named(c: float, l2: float, words: tuple[str, str]) -> FittedDecay | None:
    """The words for a decay of ``l2 + c`` where ``l2`` is declared (None: a
    negative undeclared decay, no decay's gradient)."""
    symbol, term = words
    if l2 == 0:
        if c <= 0:
            return None
        return FittedDecay(
            f"a decay of l2 = {c:.6g} the net does not declare",
            f"{symbol} + {c:.6g} {term}, from a decay {c:.6g}/2 sum ||Wl||^2 in the loss: "
            f"declare it, Net(..., l2={c:.6g}) or the conventions' l2 (--l2 {c:.6g}); cs231n's "
            f"reg * sum(W**2) is l2 = 2 reg",
            c, l2,
        )  # fmt: skip
    k = (l2 + c) / l2
    halved = abs(k - 0.5) < 1e-6
    return FittedDecay(
        f"the decay scaled by {k:.6g}" + (" (halved)" if halved else ""),
        f"{k:.6g} l2 {term} where the loss's l2/2 sum ||Wl||^2 gives l2 {term}"
        + (": cs231n's reg * W for the loss reg * sum(W**2), whose gradient is 2 reg W"
           if halved else ""),
        c, l2,
    )  # fmt: skip


def fitted_decay(
    values: Mapping[str, Any],
    correct: Mapping[str, Array],
    tolerance: Mapping[str, Array],
    weights: Mapping[str, Array],
    l2: float,
    *,
    slack: float,
    words: tuple[str, str] = ("g", "Wl"),
) -> FittedDecay | None:
    """The decay ``values`` hold beyond the declared ``l2``, or None: when
    ``values - correct`` is ``c weights[key]`` on every weight key (one ``c``,
    least squares over them all) and 0 on the others, within ``tolerance``
    plus ``slack`` of the formula's magnitude, where neither the formula nor
    ``values`` are ``correct`` itself within that bound (a ``c`` of rounding
    size is no bug: it would fit an error of a few tolerances).  ``words``:
    the correct value's symbol and the decay's term, for the formula
    (``("g_i", "Wl")``, ``("H V", "VWl")``)."""
    keys = [key for key in correct if key in weights]
    if not keys or any(np.shape(values.get(key, ())) != correct[key].shape for key in keys):
        return None
    c = decay_coefficient(
        [np.asarray(values[key], np.float64) - correct[key] for key in keys],
        [weights[key] for key in keys],
    )
    if not np.isfinite(c):
        return None
    expected = {key: correct[key] + c * np.asarray(weights[key], np.float64) if key in weights
                else correct[key] for key in correct}  # fmt: skip
    bound = {key: tolerance[key] + slack * np.abs(value) for key, value in expected.items()}
    near = {key: tolerance[key] + slack * np.abs(value) for key, value in correct.items()}
    if (bound_ratio(correct, expected, bound) <= 1.0 or bound_ratio(values, correct, near) <= 1.0
            or bound_ratio(values, expected, bound) > 1.0):  # fmt: skip
        return None
    return _decay_named(c, l2, words)


def as_float(value: object, key: str, dtype: np.dtype, notes: set[str]) -> Any:
    """A user's returned ``value`` as an array; a float array of another dtype
    cast to ``dtype`` with a note (anything else is left for the comparison to
    name)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return value
    if array.dtype.kind == "f" and array.dtype != dtype:
        notes.add(f"{key}: dtype {array.dtype} returned for a {dtype} net (judged in {dtype})")
        return array.astype(dtype)
    return array


def _max_abs(gradient: Array) -> float:
    """``max |gradient|`` in float64 (0 for an empty array)."""
    return float(np.max(np.abs(gradient), initial=0.0))


def _norm(gradient: Array) -> float:
    """``||gradient||_F`` in float64, scaled by the largest entry so that huge but
    finite gradients do not overflow in the sum of squares."""
    values = np.asarray(gradient, dtype=np.float64)
    scale = float(np.max(np.abs(values), initial=0.0))
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(values / scale))


def _unusable(
    key: str, shape: tuple, dtype: str, oracle: Array, problem: str, manual_norm: float = np.nan
) -> VariableComparison:
    """A gradient that cannot be compared entry by entry fails as a whole."""
    return VariableComparison(
        key, shape, dtype, np.inf, np.inf, oracle.size, (), np.nan, np.nan, np.nan, problem,
        manual_norm=manual_norm, oracle_norm=_norm(oracle), oracle_max=_max_abs(oracle),
    )  # fmt: skip


def compare_variable(
    key: str, manual: object, oracle: Array, tolerance: Array, expected_dtype: np.dtype
) -> VariableComparison:
    """Compare one gradient array with the oracle's."""
    if manual is None:
        return _unusable(key, oracle.shape, "-", oracle, "missing from grads")
    manual = np.asarray(manual)
    if manual.shape != oracle.shape:
        problem = f"shape {manual.shape}, expected {oracle.shape}"
        return _unusable(key, manual.shape, str(manual.dtype), oracle, problem, _norm(manual))
    error = np.abs(manual.astype(np.float64) - oracle)
    ratio = _error_ratio(error, tolerance)
    oracle_max = _max_abs(oracle)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
    problem = ""
    worst_ratio = float(ratio[worst])
    if manual.dtype != expected_dtype:
        problem, worst_ratio = f"dtype {manual.dtype}, expected {expected_dtype}", np.inf
    return VariableComparison(
        key,
        manual.shape,
        str(manual.dtype),
        float(np.max(error, initial=0.0)),  # NaN where the manual value is NaN
        worst_ratio,
        int(np.sum(ratio > 1.0)),
        worst,
        float(manual[worst]),
        float(oracle[worst]),
        float(tolerance[worst]),
        problem,
        manual_norm=_norm(manual),
        oracle_norm=_norm(oracle),
        oracle_max=oracle_max,
        undecided=int(np.sum(tolerance >= oracle_max)) if oracle_max > 0 else 0,
    )


@dataclass(frozen=True)
class Comparison:
    """The result of comparing a manual backward pass with the oracle."""

    variables: dict[str, VariableComparison]
    loss_manual: float
    loss_oracle: float
    loss_tolerance: float
    unit: float
    diagnosis: Diagnosis | None = None
    # The per-entry tolerances the check used (None when built by hand).
    tolerances: Tolerances | None = None
    # Whether a manual loss was compared (a user's gradients come without one).
    loss_compared: bool = True

    @property
    def loss_ratio(self) -> float:
        error = abs(self.loss_manual - self.loss_oracle)
        return float(_error_ratio(np.array(error), np.array(self.loss_tolerance)))

    @property
    def worst_ratio(self) -> float:
        return max([self.loss_ratio] + [v.ratio for v in self.variables.values()])

    @property
    def ok(self) -> bool:
        return self.worst_ratio <= 1.0

    @property
    def undecided(self) -> int:
        """Entries the check cannot decide (``VariableComparison.undecided``)."""
        return sum(v.undecided for v in self.variables.values())

    def failures(self) -> list[VariableComparison]:
        return [v for v in self.variables.values() if not v.ok]

    def table(self, *, view: View | None = None) -> str:
        """One line per variable: key, shape, max |diff|, error/tolerance, match.
        ``view(key, shape, index) -> (name, shape, index)``: each key as the
        user's code has it (``Conventions.view``); default ours."""
        view = view or _ours
        lines = [f"{'key':<5} {'shape':<10} {'max |diff|':>11} {'err/tol':>11}  match"]
        for v in self.variables.values():
            name, shown, _ = view(v.key, tuple(v.shape), None)
            shape = "x".join(map(str, shown))
            lines.append(
                f"{name:<5} {shape:<10} {v.diff_text():>11} "
                f"{v.ratio_text():>11}  {'yes' if v.ok else 'NO'}"
            )
        if self.loss_compared:
            lines.append(
                f"{'loss':<5} {'':<10} {abs(self.loss_manual - self.loss_oracle):>11.3e} "
                f"{ratio_text(self.loss_ratio, tolerance=self.loss_tolerance):>11}  "
                f"{'yes' if self.loss_ratio <= 1 else 'NO'}"
            )
        return "\n".join(lines)

    def status(self) -> str:
        """The first line of the report: whether every gradient matches."""
        status = "all gradients match" if self.ok else "MISMATCH"
        if self.ok and self.undecided:
            status = "no gradient fails, but some entries are undecided"
        return f"{status} (worst error/tolerance {ratio_text(self.worst_ratio)})"

    def report(self, *, view: View | None = None) -> str:
        """The table, then the worst entry of each failing variable (``view``:
        names, shapes and indices as the user's code has them; see ``table``)."""
        lines = [self.status(), self.table(view=view), *self.details(view=view)]
        if self.diagnosis is not None:
            lines.insert(len(lines) - (self.loss_ratio > 1), str(self.diagnosis))
        return "\n".join(lines)

    __str__ = report

    def _repr_html_(self) -> str:
        """The report for Jupyter (``manual_bp_reference.html_report``)."""
        return self.html()

    def html(self, *, view: View | None = None) -> str:
        """The report as HTML: verdict, likely bug, the err/tol table with its
        per-layer picture, the failing entries."""
        kind = "pass" if self.ok and not self.undecided else "fail" if not self.ok else "undecided"
        bug = [] if self.diagnosis is None else [html_report.diagnosis_text(self.diagnosis)]
        return html_report.page(
            html_report.banner(kind, self.status()),
            html_report.likely_bug(bug),
            html_report.table_and_picture(self.rows(view=view)),
            html_report.paragraphs(self.details(view=view)),
        )

    def rows(self, *, view: View | None = None) -> list[html_report.Row]:
        """The table's rows as data (``html_report.Row``), the loss last."""
        rows = html_report.variable_rows(self.variables.values(), view=view)
        if self.loss_compared:
            difference = abs(self.loss_manual - self.loss_oracle)
            rows.append(html_report.Row(
                "loss", "", f"{difference:.3e}", self.loss_ratio,
                ratio_text(self.loss_ratio, tolerance=self.loss_tolerance), self.loss_ratio <= 1,
            ))  # fmt: skip
        return rows

    def details(self, *, view: View | None = None) -> list[str]:
        """The report's lines after the table but the diagnosis: each failing
        variable's worst entry (or problem), the undecided entries, the loss."""
        view = view or _ours
        lines = []
        for v in self.failures():
            index = tuple(v.worst_index) if v.worst_index is not None and not v.problem else None
            name, shape, index = view(v.key, tuple(v.shape), index)
            if v.problem:  # nothing compared entry by entry: the problem says it all
                lines.append(f"{name}: {v.problem}")
                continue
            detail = (
                f"worst at {index}: manual {v.manual:.17g}, oracle {v.oracle:.17g}, "
                f"tolerance {v.tolerance:.3g}, error/tolerance {v.ratio_text()}"
            )
            if v.finite_differences:
                detail += f"; finite differences support: {v.finite_differences}"
            lines.append(
                f"{name} {shape} {v.dtype}: {v.failing} of {int(np.prod(v.shape))} "
                f"entries fail; {detail}"
            )
        if self.undecided:
            counts = ", ".join(
                f"{v.key} {v.undecided} of {int(np.prod(v.shape))}"
                for v in self.variables.values()
                if v.undecided
            )
            lines.append(
                f"undecided entries ({counts}): their tolerance reaches the gradient's largest "
                "entry, so no check can tell a right value from a wrong one there: the two "
                "sides' rounding may put a pre-activation on either side of a kink, or the "
                "forward rounds too much (huge pre-activations, values near underflow)"
            )
        if self.loss_ratio > 1:
            lines.append(f"loss: manual {self.loss_manual!r}, oracle {self.loss_oracle!r}")
        return lines


# Below this largest relative error a wrong answer is "close": an approximation
# or a nearly right formula, not a dropped term.  Central finite differences
# err by about u^(2/3) at their best step (4e-11 in float64, 2.5e-5 in
# float32) and sqrt(u) for a forward difference (1.5e-8, 3.5e-4), up to a few
# hundred times that with a poorly chosen step; a dropped term or a wrong factor
# moves the largest entry by a fraction of itself, rarely below 1e-3.
CLOSE = {"float64": 1e-5, "float32": 1e-2}


def relative_error(comparison: Comparison) -> tuple[float, str]:
    """The largest ``max |values - oracle| / max |oracle|`` over the compared
    variables (each relative to its own largest oracle entry: finite
    differences err relative to the scale, not entry by entry) and its key;
    NaN and ``""`` where nothing was compared or a value is not finite."""
    worst, where = np.nan, ""
    for v in comparison.variables.values():
        if v.problem:
            continue
        if not np.isfinite(v.max_abs_diff):
            return np.nan, ""
        error = v.max_abs_diff / v.oracle_max if v.oracle_max > 0 else (
            0.0 if v.max_abs_diff == 0 else np.inf
        )  # fmt: skip
        if np.isnan(worst) or error > worst:
            worst, where = error, v.key
    return float(worst), where


def closeness(comparison: Comparison, *, view: View | None = None) -> list[str]:
    """The largest relative error of a mismatch no catalogued bug names, and
    when it is below ``CLOSE`` (by the comparison's unit roundoff: float64's
    or float32's) the hint that the values approximate the right ones."""
    error, key = relative_error(comparison)
    if not np.isfinite(error):
        return []
    name = (view or _ours)(key, tuple(comparison.variables[key].shape), None)[0]
    lines = [
        f"largest relative error: {error:.2g} ({name}: max |yours - oracle| over its largest "
        "oracle entry)"
    ]
    dtype = "float64" if comparison.unit < 1e-10 else "float32"
    if error < CLOSE[dtype]:
        lines.append(
            f"your values agree with the oracle to about {error:.0e} relative: an "
            "approximation (finite differences?) or a different formula that is nearly "
            "right; the check is exact to rounding"
        )
    return lines


def _assemble(
    manual_grads: Mapping[str, Array],
    manual_loss: float,
    oracle: OracleResult,
    tol: Tolerances,
    case: Case,
    keys: Sequence[str],
) -> Comparison:
    """Compare ``manual_grads[key]`` with the oracle for every key."""
    expected_dtype = np.dtype(case.dtype)
    variables = {
        key: compare_variable(
            key, manual_grads.get(key), oracle.grads[key], tol.grads[key], expected_dtype
        )
        for key in keys
    }
    return Comparison(
        variables, float(manual_loss), oracle.loss, tol.loss, tol.unit, tolerances=tol
    )


def compare(
    case: Case,
    grads: Mapping[str, Array] | None = None,
    *,
    input_gradient: bool | None = None,
    keys: Sequence[str] | None = None,
    manual_loss: float | None = None,
    cache: Mapping[str, Array] | None = None,
    compiled: str | None = None,
    explain: bool = True,
    timer: Timer = _untimed,
    reduction: str = "mean",
) -> Comparison:
    """Compare the gradients of ``case`` with the oracle, entry by entry.

    The case's weight decay (``case.l2``, ``l2 / 2 * sum ||Wl||^2``,
    ``manual_bp.losses.l2_penalty``) is in the loss ``grads`` are compared
    with; a case with dropout runs with its masks.

    Parameters
    ----------
    case : the network and batch
    grads : anyone's gradients of ``case``, keyed as ``manual_bp.network.backward``
        keys them.  ``None`` runs manual_bp's own forward and backward in
        ``case.dtype`` and compares their loss too.
    input_gradient : compare ``A0 = dL/dX``.  ``None``: when there is one,
        always for manual_bp's own backward, and when ``grads`` holds it.
    keys : the variables to compare (default: every key ``backward``
        returns); a key missing from ``grads`` fails as missing.
    manual_loss : the manual loss to compare (``grads=None`` computes it;
        otherwise the loss is not compared).
    cache : manual_bp's forward cache of ``case``, if already at hand.
    compiled : how the oracle is compiled, passed to ``oracle_gradients``
        (``"network"``, ``"bucket"``, ``"exact"``; ``None`` chooses).
    explain : on a mismatch, add the diagnosis and the finite-difference verdict.
    timer : ``timer(stage)`` wraps each stage in a context manager (timing hooks).
    reduction : ``"mean"`` (manual_bp's loss) or ``"sum"``: ``grads`` are those
        of the loss summed over the batch, ``m`` times the mean's.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {list(REDUCTIONS)}, got {reduction!r}")
    l2 = case.l2
    if grads is None:
        input_gradient = True if input_gradient is None else input_gradient
        with timer("manual forward"):
            _, cache = case.forward()
        with timer("manual backward"):
            grads = case.backward(cache, input_gradient=input_gradient)
            manual_loss = float(loss_from_cache(cache, case.Y, case.loss, case.depth))
            if l2:
                manual_loss += float(l2_penalty(case.params, l2))
    elif cache is None:
        with timer("manual forward"):
            _, cache = case.forward()
    if input_gradient is None:
        input_gradient = "A0" in grads
    with timer("oracle"):
        oracle = oracle_gradients(case, input_gradient=input_gradient, compiled=compiled)
    with timer("tolerance"):
        tol = tolerances(case, cache, oracle.grads, oracle_Z=oracle.Z)
        if reduction != "mean" or l2:
            oracle, tol = with_objective(case, oracle, tol, reduction=reduction, l2=l2)
    with timer("comparison"):
        all_keys = gradient_keys(case.depth, input_gradient, normalization=case.normalization)
        if keys is None:
            chosen = all_keys
        else:  # the staged normalization backward's keys too
            every = gradient_keys(
                case.depth, input_gradient, normalization=case.normalization, staged=True
            )
            chosen = [key for key in every if key in keys]
        loss_value = oracle.loss if manual_loss is None else manual_loss
        comparison = _assemble(grads, loss_value, oracle, tol, case, chosen)
        if manual_loss is None:
            comparison = dataclasses.replace(comparison, loss_compared=False)
    if not explain or comparison.ok:
        return comparison
    with timer("explanation"):
        # Finite differences differentiate the mean loss alone, without masks.
        plain = reduction == "mean" and not l2 and not case.dropout
        return explain_mismatch(comparison, case, cache, grads, oracle, finite_differences=plain)


def with_objective(
    case: Case, oracle: OracleResult, tol: Tolerances, *, reduction: str, l2: float
) -> tuple[OracleResult, Tolerances]:
    """The oracle and tolerances of ``reduction`` over the batch plus ``l2_penalty``.

    A sum is ``m`` times the mean: every gradient, its tolerance and the loss
    scale by ``m`` (the bound of a mean, times ``m``, bounds the sum, which
    skips the rounding of the ``1/m``).  The penalty adds ``l2 Wl`` to ``dWl``
    (in float64 here); the manual side rounds that product and the sum
    ``dWl + l2 Wl``: ``SAFETY u (|dWl| + 2 |l2 Wl|)`` more per entry.
    """
    scale = case.m if reduction == "sum" else 1
    grads = {key: value * scale for key, value in oracle.grads.items()}
    bounds = {key: value * scale for key, value in tol.grads.items()}
    for key in grads:
        if key[0] == "W" and l2:
            penalty = l2_penalty_gradient(np.asarray(case.params[key], dtype=np.float64), l2)
            bounds[key] = bounds[key] + SAFETY * tol.unit * (
                np.abs(grads[key]) + 2 * np.abs(penalty)
            )
            grads[key] = grads[key] + penalty
    params64 = {key: np.asarray(value, dtype=np.float64) for key, value in case.params.items()}
    total_penalty = float(l2_penalty(params64, l2))
    loss = oracle.loss * scale + total_penalty
    # The penalty is a sum of k = (weight entries) squares: (k + 2) u of it.
    weights = sum(value.size for key, value in params64.items() if key[0] == "W")
    loss_bound = tol.loss * scale + SAFETY * tol.unit * (
        abs(loss) * 2 + (weights + 2) * total_penalty
    )
    return (
        dataclasses.replace(oracle, loss=loss, grads=grads),
        dataclasses.replace(tol, loss=loss_bound, grads=bounds),
    )


# Finite differences cost four forward passes per entry: only small networks.
FINITE_DIFFERENCE_MAX_ENTRIES = 5000


def explain_mismatch(
    comparison: Comparison,
    case: Case,
    cache: Mapping[str, Array],
    manual_grads: Mapping[str, Array],
    oracle: OracleResult,
    *,
    finite_differences: bool = True,
) -> Comparison:
    """Add the diagnosis and, for small networks (and ``finite_differences``),
    which side finite differences support."""
    if comparison.ok:
        return comparison
    failing = comparison.failures()
    input_gradient = "A0" in comparison.variables
    found = diagnose(
        case,
        [v.key for v in failing],
        manual_grads,
        oracle.grads,
        cache,
        input_gradient=input_gradient,
    )
    variables = dict(comparison.variables)
    small = sum(g.size for g in oracle.grads.values()) <= FINITE_DIFFERENCE_MAX_ENTRIES
    if finite_differences and small:
        fd = finite_difference_gradients(case, input_gradient=input_gradient)
        for v in failing:
            if not v.problem:
                side = supported_side(v.manual, v.oracle, fd, v.key, v.worst_index)
                variables[v.key] = dataclasses.replace(v, finite_differences=side)
    return dataclasses.replace(comparison, variables=variables, diagnosis=found)
