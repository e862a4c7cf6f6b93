"""Compare an optimizer step with optax, say which convention explains a
difference, and property-check anyone's update rule (``check_optimizer``).

A step is compared from its own inputs: the oracle (``optax``, through
``manual_bp_reference.optimizer_oracle``) starts from the same params, state and
gradients as the hand-written step, so each entry's tolerance
(``manual_bp_reference.optimizer_tolerance``) is one step's rounding, however many
steps came before.

Examples
--------
>>> import numpy as np
>>> from manual_bp.optimizers import RMSProp
>>> def my_rmsprop(grads, state, params):  # eps outside the sqrt, as in the course
...     v = {k: 0.9 * state["v"][k] + 0.1 * grads[k] ** 2 for k in params}
...     new = {k: params[k] - 0.01 * grads[k] / (np.sqrt(v[k]) + 1e-8) for k in params}
...     return new, {"t": state["t"] + 1, "v": v}
>>> from manual_bp_reference.settings import Settings
>>> check_optimizer(my_rmsprop, RMSProp(learning_rate=0.01), settings=Settings(max_examples=10))
Traceback (most recent call last):
...
manual_bp_reference.optimizer_check.OptimizerMismatch: ... eps outside the sqrt: √v̂ + ε ...
...
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import given

from manual_bp.optimizers import Optimizer
from manual_bp_reference import html_report
from manual_bp_reference.check import Mismatch, nonfinite, not_loaded, printed_lines, run_line
from manual_bp_reference.check_run import (
    DEFAULT_SEED,
    check_function,
    check_settings,
    open_sandbox,
    progress,
    quiet_storage,
    run_until_failure,
    seeded,
)
from manual_bp_reference.conventions import describe_value
from manual_bp_reference.isolation import (
    NO_OUTPUT,
    Output,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
)
from manual_bp_reference.optimizer_cases import OptimizerCase, optimizer_cases
from manual_bp_reference.optimizer_oracle import oracle_step
from manual_bp_reference.optimizer_styles import (
    STYLES,
    NotAStepError,
    StyledStep,
    course_arguments,
    course_hyperparameters,
    course_step,
    cs231n_step,
    hyperparameters,
)
from manual_bp_reference.optimizer_tolerance import step_tolerances
from manual_bp_reference.settings import Settings, from_old_keywords

Array = np.ndarray
Update = Callable[[dict, dict, dict], tuple[Mapping[str, Array], Mapping[str, Any]]]


@dataclass(frozen=True)
class ArrayComparison:
    """One array of a step (``params['W1']``, ``state['v']['W1']``) against optax."""

    name: str
    ratio: float  # max |mine - optax| / tolerance over the entries; <= 1 matches
    failing: int
    undecided: int  # entries whose tolerance is infinite: cannot be decided
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0

    @property
    def key(self) -> str:
        """The array's name, as ``VariableComparison.key`` names a gradient."""
        return self.name


@dataclass(frozen=True)
class StepComparison:
    """Every new parameter and accumulator of one step, compared with optax."""

    arrays: tuple[ArrayComparison, ...]
    notes: tuple[str, ...] = ()  # arrays returned in another dtype, judged in the params'

    @property
    def worst_ratio(self) -> float:
        return max((a.ratio for a in self.arrays), default=0.0)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.arrays)

    @property
    def undecided(self) -> int:
        return sum(a.undecided for a in self.arrays)

    def failures(self) -> list[ArrayComparison]:
        return [a for a in self.arrays if not a.ok]

    def rows(self) -> list[html_report.Row]:
        """One row per array, for the HTML report (the problem, if any, in
        the difference's column)."""
        return [
            html_report.Row(a.name, "", a.problem, a.ratio, f"{a.ratio:.3g}", a.ok)
            for a in self.arrays
        ]

    def details(self) -> list[str]:
        """Nothing after the table: every array is one row of it."""
        return []

    def report(self) -> str:
        lines = []
        for a in self.arrays:
            verdict = "ok" if a.ok else "MISMATCH"
            extra = f" ({a.problem})" if a.problem else ""
            lines.append(
                f"  {a.name:<18} error/tolerance {a.ratio:.3g}, {a.failing} entries off"
                f"{extra}: {verdict}"
            )
        return "\n".join(lines)


def _compare_array(name: str, mine: object, oracle: Array, tolerance: Array) -> ArrayComparison:
    if mine is None:
        return ArrayComparison(name, np.inf, oracle.size, 0, "missing")
    mine = np.asarray(mine)
    if mine.shape != oracle.shape:
        return ArrayComparison(
            name, np.inf, oracle.size, 0, f"shape {mine.shape}, expected {oracle.shape}"
        )
    error = np.abs(mine.astype(np.float64) - oracle)
    undecided = ~np.isfinite(tolerance)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / tolerance)
    ratio = np.where(np.isnan(ratio) | (np.isnan(error) & ~undecided), np.inf, ratio)
    ratio = np.where(undecided, 0.0, ratio)
    return ArrayComparison(
        name, float(np.max(ratio, initial=0.0)), int(np.sum(ratio > 1)), int(np.sum(undecided))
    )


def compare_step(
    optimizer: Optimizer,
    grads: Mapping[str, Array],
    state: Mapping[str, Any],
    params: Mapping[str, Array],
    new_params: Mapping[str, Array],
    new_state: Mapping[str, Any],
) -> StepComparison:
    """Compare one step ``(new_params, new_state)`` taken from ``(grads, state,
    params)`` with optax's step from the same inputs.

    ``t`` must be counted exactly.  A new param or accumulator in another
    float dtype than ``params`` (code whose ``np.power(beta1, t)`` is a
    float64 scalar turns float32 params into float64) is judged in the
    params' dtype, with a note: the maths is right, the dtype changes.
    """
    oracle_params, oracle_state = oracle_step(optimizer, grads, state, params)
    dtype = next(iter(params.values())).dtype
    params_tol, slots_tol = step_tolerances(optimizer, grads, state, params, dtype)
    arrays, notes = [], []

    def add(name: str, mine: object, oracle: Array, tolerance: Array) -> None:
        found = None if mine is None else np.asarray(mine)
        if found is not None and found.dtype != dtype and found.dtype.kind == "f":
            notes.append(
                f"{name}: dtype {found.dtype} returned for {dtype} params (judged in {dtype}; "
                f"in a training loop the params would become {found.dtype})"
            )
            mine = found.astype(dtype)
        arrays.append(_compare_array(name, mine, oracle, tolerance))

    for key in params:
        add(f"params[{key!r}]", new_params.get(key), oracle_params[key], params_tol[key])
    for slot in optimizer.SLOTS:
        mine = new_state.get(slot, {})
        for key in params:
            name = f"state[{slot!r}][{key!r}]"
            add(name, mine.get(key), oracle_state[slot][key], slots_tol[slot][key])
    if optimizer.counts_steps:
        t = new_state.get("t")
        ratio = 0.0 if t == oracle_state["t"] else np.inf
        problem = "" if ratio == 0 else f"t = {t!r}, expected {oracle_state['t']}"
        arrays.append(ArrayComparison("state['t']", ratio, int(ratio > 0), 0, problem))
    return StepComparison(tuple(arrays), tuple(notes))


# --- convention diagnosis ------------------------------------------------------------


def candidates(optimizer: Optimizer) -> list[tuple[Optimizer, list[tuple[str, object]]]]:
    """Every combination of conventions, with the ``(keyword, value)`` pairs that
    differ from ``optimizer``'s, fewest changes first (``optimizer`` itself first)."""
    options = optimizer.alternatives()
    found = []
    for choice in itertools.product(*options.values()):
        changes: dict[str, object] = {}
        differing = []
        for keyword, (value, fields) in zip(options, choice, strict=True):
            changes.update(fields)
            if (value, fields) != options[keyword][0]:
                differing.append((keyword, value))
        try:
            found.append((optimizer.replace(**changes), differing))
        except ValueError:  # e.g. Nesterov with dampening
            continue
    return sorted(found, key=lambda pair: len(pair[1]))


def diagnose_step(
    optimizer: Optimizer,
    grads: Mapping[str, Array],
    state: Mapping[str, Any],
    params: Mapping[str, Array],
    new_params: Mapping[str, Array],
    new_state: Mapping[str, Any],
) -> list[str]:
    """Sentences naming the conventions that explain a step, fewest changes first.

    Each candidate convention is run by the hand-written optimizers from the
    same inputs; the user's step is compared with it under its own tolerance.
    Empty when no combination of conventions explains the step.
    """
    explained = []
    t, expected = new_state.get("t"), state.get("t", 0) + 1
    if optimizer.counts_steps and isinstance(t, int) and t != expected:
        explained.append(
            f"your {optimizer.name} counts the steps off by {t - expected:+d}: t is {t} after "
            f"step {expected} (t counts the steps taken: 0 before the first, incremented "
            "before use)"
        )
    for candidate, differing in candidates(optimizer)[1:]:
        try:
            ours = candidate.update(grads, state, params)
        except (TypeError, ValueError):
            continue
        if _same_step(candidate, grads, state, params, ours, new_params, new_state):
            words = " and ".join(optimizer.describe(k, v) for k, v in differing)
            explained.append(f"your {optimizer.name} {words}")
            if len(explained) == 3:
                break
    return explained


def _same_step(candidate, grads, state, params, ours, new_params, new_state) -> bool:
    """The user's step matches ``candidate``'s within the candidate step's tolerance."""
    dtype = next(iter(params.values())).dtype
    params_tol, slots_tol = step_tolerances(candidate, grads, state, params, dtype)
    pairs = [(new_params.get(k), ours[0][k], params_tol[k]) for k in params]
    for slot in candidate.SLOTS:
        mine = new_state.get(slot)
        if not isinstance(mine, Mapping):
            continue  # a layout the candidate does not share: judged on params
        pairs += [(mine.get(k), ours[1][slot][k], slots_tol[slot][k]) for k in params]
    return all(
        _compare_array("", mine, np.asarray(theirs, dtype=np.float64), tol).ok
        for mine, theirs, tol in pairs
    )


# --- check_optimizer ---------------------------------------------------------------------


class OptimizerMismatch(Mismatch):
    """A user's step disagrees with optax (or raised, timed out, ended its
    process, or returned something that is no step).

    ``.comparison`` (a ``StepComparison``; None when the code did not return
    a step) and ``.diagnosis`` say how.  ``step`` 0 is the initial state
    (``init``); ``inputs`` are the step's ``(grads, state, params,
    new_params, new_state)``.  ``diagnosis`` is None until ``diagnosed()``
    runs the candidate conventions (``check_optimizer`` does it once, on the
    minimal case, not on every case Hypothesis shrinks).  ``.verdict``,
    ``.traceback``, ``.output``, ``.others``, ``.seed`` as in
    ``manual_bp_reference.check.GradientMismatch``.
    """

    raised_on = "update raised on the minimal case:"

    def __init__(
        self,
        comparison: StepComparison | None,
        step: int,
        case: OptimizerCase | None,
        inputs: tuple = (),
        diagnosis: list[str] | None = None,
        *,
        verdict: str = "wrong",
        details: Sequence[str] = (),
        user_traceback: str = "",
        output: Output = NO_OUTPUT,
        others: Sequence[str] = (),
    ) -> None:
        self.comparison, self.step, self.case = comparison, step, case
        self.inputs, self.diagnosis, self.verdict = inputs, diagnosis, verdict
        self.details, self.typical, self.traceback = list(details), None, user_traceback
        self.output, self.others = output, tuple(others)
        super().__init__(self._verdict_line())

    def _where(self) -> str:
        name = "" if self.case is None else f" of {self.case.optimizer.name}"
        return ("init" if self.step == 0 else f"step {self.step}") + name

    def _verdict_line(self) -> str:
        if self.comparison is not None:
            return f"verdict: {self.verdict} ({self._where()} disagrees with optax)"
        return f"verdict: {self.verdict}" + ("" if self.case is None else f" ({self._where()})")

    def _explanation(self) -> list[str]:
        if self.comparison is None:
            return self.details
        if self.diagnosis is None:
            explained = ["  (conventions not diagnosed yet)"]
        elif self.diagnosis:
            explained = [f"  likely: {sentence}" for sentence in self.diagnosis]
        else:
            explained = [
                "  no known convention explains it (a bug, or a convention manual_bp lacks)"
            ]
        return explained + self.details

    def _describe(self, case: OptimizerCase) -> str:
        return f"{case.optimizer.name}, {len(case.gradients)} steps"

    _row_name = "array"

    def _likely_bug(self) -> list[str]:
        return list(self.diagnosis or [])

    def _html_explanation(self) -> list[str]:
        if self.comparison is not None and self.diagnosis == []:
            unexplained = "no known convention explains it (a bug, or a convention manual_bp lacks)"
            return [unexplained, *self.details]
        return self.details

    def diagnosed(self) -> OptimizerMismatch:
        """The same mismatch with the conventions that explain it."""
        if self.comparison is None or self.case is None:
            return self
        optimizer = self.case.optimizer
        if self.step == 0:
            diagnosis = diagnose_init(optimizer, self.inputs[1])
        else:
            diagnosis = diagnose_step(optimizer, *self.inputs)
        return OptimizerMismatch(
            self.comparison, self.step, self.case, self.inputs, diagnosis,
            verdict=self.verdict, details=self.details, output=self.output, others=self.others,
        )  # fmt: skip


def _call_update(update: Update, grads, state, params) -> tuple[dict, dict]:
    """The user's step, given copies (so it cannot change ours), checked for shape."""
    result = update(copy.deepcopy(dict(grads)), copy.deepcopy(dict(state)),
                    copy.deepcopy(dict(params)))  # fmt: skip
    if not (isinstance(result, tuple) and len(result) == 2):
        raise NotAStepError(
            f"update returned {describe_value(result)}; expected (new_params, new_state) "
            "from update(grads, state, params)"
        )
    new_params, new_state = result
    if not isinstance(new_params, Mapping) or not isinstance(new_state, Mapping):
        raise NotAStepError(
            f"update returned ({describe_value(new_params)}, {describe_value(new_state)}); "
            "expected new_params and new_state to be dicts"
        )
    return dict(new_params), dict(new_state)


def compare_init(optimizer: Optimizer, state: Mapping[str, Any], params) -> StepComparison:
    """The user's initial state against ``optimizer.init``: exactly equal."""
    expected = optimizer.init(params)
    arrays = []
    for slot in optimizer.SLOTS:
        found = state.get(slot)
        mine = found if isinstance(found, Mapping) else {}
        for key in params:
            tolerance = np.zeros(np.shape(params[key]))
            arrays.append(
                _compare_array(
                    f"state[{slot!r}][{key!r}]", mine.get(key), expected[slot][key], tolerance
                )
            )
    if optimizer.counts_steps and state.get("t") != 0:
        arrays.append(
            ArrayComparison("state['t']", np.inf, 1, 0, f"t = {state.get('t')!r}, expected 0")
        )
    return StepComparison(tuple(arrays))


def diagnose_init(optimizer: Optimizer, state: Mapping[str, Any]) -> list[str]:
    """Name the initial accumulator when the user's init fills it with one value."""
    values = [np.asarray(v) for v in (state.get("v") or {}).values()]
    if "initial_scale" in optimizer.CONVENTIONS and values:
        fills = np.unique(np.concatenate([v.ravel() for v in values]))
        if fills.size == 1:
            return [f"your {optimizer.name} init {optimizer.describe('initial_scale', fills[0])}"]
    return []


def run_case(
    update: Update,
    case: OptimizerCase,
    *,
    init: Callable | None = None,
    notes: set[str] | None = None,
) -> float:
    """Step ``update`` through ``case``'s gradients, comparing every step with optax
    from the user's own params and state; return the worst err/tol of the steps,
    or raise ``OptimizerMismatch`` at the first step that differs (not yet
    diagnosed: see ``OptimizerMismatch``).  With
    ``init``, the user's ``init(params)`` is compared with the optimizer's
    first, and the steps start from it.  A ``manual_bp_reference.isolation.UserFunction``
    that raises is a mismatch with the verdict ``"raised"``; a plain callable's
    exception propagates.  ``notes`` collects the steps' notes
    (``StepComparison.notes``)."""
    params, state = case.params, case.state
    step, worst = 0, 0.0
    try:
        if init is not None:
            state = init(copy.deepcopy(dict(params)))
            if not isinstance(state, Mapping):
                raise NotAStepError(
                    f"init returned {describe_value(state)}; expected a dict (the state)"
                )
            state = dict(state)
            comparison = compare_init(case.optimizer, state, params)
            if not comparison.ok:
                raise OptimizerMismatch(
                    comparison, 0, case, ({}, state, params, {}, state), output=_output(init)
                )  # fmt: skip
        for step, grads in enumerate(case.gradients, start=1):
            new_params, new_state = _call_update(update, grads, state, params)
            comparison = compare_step(case.optimizer, grads, state, params, new_params, new_state)
            if not comparison.ok:
                inputs = (grads, state, params, new_params, new_state)
                raise OptimizerMismatch(
                    comparison, step, case, inputs, output=_output(update),
                    details=_nonfinite_step(new_params, new_state),
                )  # fmt: skip
            worst = max(worst, comparison.worst_ratio)
            if notes is not None:
                notes.update(comparison.notes)
            # Judged in the params' dtype, and continued in it (see compare_step).
            dtype = next(iter(case.params.values())).dtype
            params, state = _in_dtype(new_params, dtype), _in_dtype(new_state, dtype)
    except UserCodeError as error:
        raise OptimizerMismatch(
            None, step, case, verdict="raised", user_traceback=error.record.traceback,
            output=error.record.output,
        ) from None  # fmt: skip
    except UserCodeStopped as stopped:
        stopped.context = (case, step)
        raise
    except NotAStepError as error:
        raise OptimizerMismatch(
            None, step, case, details=[str(error)], output=_output(update)
        ) from None
    return worst


def _flat(tree: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``{"params['W1']": array, "state['m']['W1']": array, ...}`` of a tree."""
    found = {}
    for key, value in tree.items():
        name = f"{prefix}[{key!r}]"
        found.update(_flat(value, name) if isinstance(value, Mapping) else {name: value})
    return found


def _nonfinite_step(new_params: Mapping[str, Any], new_state: Mapping[str, Any]) -> list[str]:
    """A line naming the arrays of a step that hold NaN or inf, if any: the
    tolerance is finite, so optax's values there are finite."""
    broken = nonfinite({**_flat(new_params, "params"), **_flat(new_state, "state")})
    if not broken:
        return []
    where = "; ".join(f"{name}: {count} entries" for name, (count, _) in broken.items())
    return [
        f"  NaN/inf in your step where optax's is finite ({where}): a division by 0 (an "
        "eps left out of a denominator, the square root of a zero accumulator) or an "
        "overflow"
    ]


def _in_dtype(tree: Mapping[str, Any], dtype: np.dtype) -> dict[str, Any]:
    """``tree`` with every float array of another dtype cast to ``dtype``."""

    def cast(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: cast(item) for key, item in value.items()}
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.dtype != dtype:
            return array.astype(dtype)
        return value

    return {key: cast(value) for key, value in tree.items()}


def _output(function: object) -> Output:
    last = getattr(function, "last", None)
    return last.output if last is not None else NO_OUTPUT


def _stopped(stopped: UserCodeStopped, line: str) -> OptimizerMismatch:
    """The mismatch of a call that timed out or ended its process, at its step."""
    where: tuple[OptimizerCase, int] = stopped.context  # type: ignore[assignment]  # by run_case
    return OptimizerMismatch(
        None, where[1], where[0], verdict=stopped.verdict, output=stopped.record.output,
        details=[line],
    )  # fmt: skip


@dataclass
class OptimizerReport:
    """What a passing ``check_optimizer`` ran: examples, steps, notes, the seed."""

    optimizer: str
    examples: int = 0
    steps: int = 0
    worst: float = 0.0
    notes: set[str] = field(default_factory=set)
    seed: int = DEFAULT_SEED
    isolation: str = ""
    # What the first call that printed anything printed.
    output: Output = NO_OUTPUT

    def __str__(self) -> str:
        lines = [
            f"PASS: {self.optimizer}, {self.examples} examples, {self.steps} steps, every "
            f"new parameter and accumulator within its tolerance (worst error/tolerance "
            f"{self.worst:.2g})",
            *[f"note: {note}" for note in sorted(self.notes)],
            *printed_lines(self.output, "the first call that printed anything"),
            run_line(self.seed, self.isolation),
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The report for Jupyter (``manual_bp_reference.html_report``)."""
        title = str(self).split("\n", 1)[0]
        notes = [f"note: {note}" for note in sorted(self.notes)]
        run = run_line(self.seed, self.isolation)
        return html_report.passed(title, {}, notes, self.output, run)


def check_optimizer(
    update: Update | str,
    optimizer: Optimizer,
    *,
    init: Callable[[dict], Mapping[str, Any]] | str | None = None,
    style: str = "step",
    warm_start: bool = False,
    settings: Settings | None = None,
    **old_keywords: Any,
) -> OptimizerReport:
    """Property-check ``update(grads, state, params) -> (new_params, new_state)``
    against optax, the rule and hyperparameters given by ``optimizer``.

    ``state`` has ``optimizer.init``'s layout: ``{"t": int, "m": {...}, "v": {...}}``
    (the slots the rule has; see ``manual_bp.optimizers``).  Hypothesis draws
    parameter trees and several steps of gradients; every step's params and
    state are compared with optax's step from the same inputs.  Returns an
    ``OptimizerReport`` on a pass, or raises ``OptimizerMismatch`` on the
    minimal failing case, naming the conventions that would explain the
    difference.  ``init(params) -> state``, if given, is checked against
    ``optimizer.init`` (the initial accumulator) and the steps start from it.
    ``warm_start=True`` also starts from states as if after many steps.
    ``update`` and ``init`` may be ``"FILE.py:NAME"``; every argument they get
    is a fresh copy (writing into one is a note).  ``style="cs231n"``: ``update``
    is one of cs231n's ``optim.py`` rules, ``rule(w, dw, config=None) ->
    (next_w, config)``, taken as written, its own ``config.setdefault`` state
    included (``manual_bp_reference.optimizer_styles``); ``style="course"``: the
    deeplearning.ai course's ``update_parameters_with_gd``, ``..._momentum``
    or ``..._adam`` as written.  No ``init`` with either.  ``settings``: a
    ``manual_bp_reference.settings.Settings`` (examples, dtype, ``max_steps``
    per case, seed, timeout, isolation), as for ``check_gradients``; the 0.1
    keywords still work, with a ``FutureWarning``.
    """
    if style not in STYLES:
        raise ValueError(f"style: expected one of {list(STYLES)}, got {style!r}")
    if style == "cs231n" and init is not None:
        raise ValueError("init: a cs231n rule creates its own state (config.setdefault)")
    if style == "course" and init is not None:
        raise ValueError("init: the course's update functions start from zeros (no init)")
    init_source = None if init is None else check_function(init, "init", "params -> state")
    update_source = check_function(update, "update", "(grads, state, params) -> ...")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer: expected a manual_bp.optimizers optimizer such as Adam(1e-3), "
            f"got {optimizer!r}"
        )
    if style == "cs231n":
        hyperparameters(optimizer)  # the rule exists in optim.py (ValueError otherwise)
    if style == "course":
        course_hyperparameters(optimizer)  # the course writes it (ValueError otherwise)
    if not isinstance(warm_start, bool):
        raise TypeError(f"warm_start: expected True or False, got {warm_start!r}")
    settings, _ = from_old_keywords("check_optimizer", settings, old_keywords)
    chosen = settings.resolved("check_optimizer")
    dtype, max_examples, max_steps = chosen.dtype, chosen.max_examples, chosen.max_steps
    seed, limits = chosen.seed, chosen.isolation
    from hypothesis import strategies as st

    cases = optimizer_cases(
        optimizers=st.just(optimizer), dtypes=(dtype,), max_steps=max_steps, warm=warm_start
    )
    functions = {"update": update_source}
    if init_source is not None:
        functions["init"] = init_source
    report = OptimizerReport(optimizer.name, seed=seed, isolation=limits.describe())
    with quiet_storage():
        try:
            sandbox = open_sandbox(functions, limits)
        except (UserCodeLoadError, UserCodeStopped) as error:
            raise OptimizerMismatch(None, 0, None, **not_loaded(error)).with_context(
                seed=seed, isolation=limits.describe()
            ) from None
        with sandbox:
            if style == "cs231n":
                user_update: Update = cs231n_step(
                    sandbox.function("update", ("w", "dw", "config"), may_write=("config",)),
                    optimizer,
                )
            elif style == "course":
                function = sandbox.function(
                    "update", course_arguments(optimizer), may_write=("parameters", "v", "s")
                )
                user_update = course_step(function, optimizer)
            else:
                user_update = sandbox.function("update", ("grads", "state", "params"))
            user_init = None if init is None else sandbox.function("init", ("params",))

            bar = progress(max_examples, "check_optimizer", chosen.progress)

            @seeded(seed)
            @check_settings(max_examples, shrink=True)
            @given(cases)
            @bar.counted
            def matches_optax(case: OptimizerCase) -> None:
                worst = run_case(user_update, case, init=user_init, notes=report.notes)
                report.worst = max(report.worst, worst)
                report.examples += 1
                report.steps += len(case.gradients)

            failure = run_until_failure(matches_optax, OptimizerMismatch, _stopped, progress=bar)
            counter = user_update.counter_lines() if isinstance(user_update, StyledStep) else []
            if failure is None:
                # Its own count, consistently ahead: the same steps (a note, not a bug).
                report.notes |= {f"{line}; the steps are the same" for line in counter}
                report.notes |= set(sandbox.notes())
                report.output = sandbox.first_output()
                return report
            mismatch, others = failure
            mismatch = mismatch.diagnosed()
            mismatch.details = [*mismatch.details, *counter]
            mismatch.others = tuple(other.summary() for other in others)
            raise mismatch.with_context(
                notes=sandbox.notes(), seed=seed, isolation=limits.describe()
            ) from None  # fmt: skip
