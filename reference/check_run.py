"""What every check of a user's code shares: how Hypothesis runs it, the seed,
the user's code in a ``manual_bp_reference.isolation.Sandbox``, and one failure in the end.

* ``check_settings``: no deadline, no example database, nothing printed, no
  shrinking unless asked;
* ``seeded(seed)``: the same seed draws the same cases, so the same check of
  the same code gives the same verdict (``DEFAULT_SEED`` unless given);
* ``quiet_storage()``: Hypothesis keeps its cache of constants under the
  user's cache folder, never in the working directory;
* ``isolation(...)``, ``open_sandbox(...)``: the user's functions loaded where
  they run, a load problem named as the argument's error or as a verdict;
* ``one_failure(group)``: Hypothesis reports distinct failures as an
  exception group; a check raises one mismatch, the most informative, and
  names the others in it;
* ``progress(...)``: a bar over the examples, in a notebook or on a terminal;
* ``run_property(user, strategy, chosen, spec)``: the property loop of a check
  with a catalogue of bugs (``check_per_example``, ``check_dp_step``,
  ``check_hvp``), what differs between them a ``CaseProperty``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from manual_bp.net import Net
from manual_bp_reference.cache import cache_folder
from manual_bp_reference.isolation import (
    NO_OUTPUT,
    Isolation,
    Sandbox,
    Source,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
    UserFunction,
    can_isolate,
)

if TYPE_CHECKING:  # the comparison's module imports jax: not at this module's import
    from manual_bp_reference.compare import Comparison

# The seed of a check unless one is given: a check is a function call whose
# verdict must not change from run to run.
DEFAULT_SEED = 0
SEED_BOUND = 2**32


def check_settings(max_examples: int, shrink: bool) -> settings:
    """The Hypothesis settings of a check: no deadline and no database (a check
    is a function call, not a test run), quiet, no shrinking unless ``shrink``,
    and no explain phase (its notes name lines of the checker, not the user's)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        verbosity=Verbosity.quiet,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # Hypothesis's explain phase names lines of our own code: no user's business.
        phases=(Phase.explicit, Phase.reuse, Phase.generate)
        + ((Phase.target, Phase.shrink) if shrink else ()),
    )


# A check that ends within this many seconds draws no bar at all.
PROGRESS_DELAY = 1.0


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ``ZMQInteractiveShell``)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_shown(setting: bool | None) -> bool:
    """``Settings.progress``: ``None`` shows a bar in a notebook or on a terminal."""
    if setting is not None:
        return setting
    isatty = getattr(sys.stderr, "isatty", None)
    return in_notebook() or bool(isatty and isatty())


class Progress:
    """A bar over a check's examples (``tqdm.auto``), or nothing."""

    def __init__(self, bar: Any = None) -> None:
        self.bar = bar

    def counted(self, test: Callable[..., None]) -> Callable[..., None]:
        """``test`` advancing the bar by one at each example it runs (under
        ``@given``: Hypothesis sees ``test``'s own signature)."""
        bar = self.bar
        if bar is None:
            return test

        @functools.wraps(test)
        def counting(*args: Any, **kwargs: Any) -> None:
            bar.update(1)
            test(*args, **kwargs)

        return counting

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress(total: int, description: str, setting: bool | None) -> Progress:
    """A bar over ``total`` examples: ``@given(...)`` over ``@bar.counted``, and
    ``run_until_failure(..., progress=bar)`` closes it.  The bar is
    ``tqdm.auto``'s (a widget in Jupyter, text on stderr elsewhere), appears
    only once the check has run ``PROGRESS_DELAY`` seconds, and is gone when
    it ends; without ``tqdm`` (the ``progress`` extra) there is none."""
    if not progress_shown(setting):
        return Progress()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress extra is not installed: no bar
        return Progress()
    return Progress(tqdm(total=total, desc=description, unit="example", delay=PROGRESS_DELAY,
                         leave=False, file=sys.stderr))  # fmt: skip


def check_seed(seed: object) -> int:
    """``seed`` if it is an int in ``[0, 2**32)``, else a clear error."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if not 0 <= seed < SEED_BOUND:
        raise ValueError(f"seed: expected an int in [0, 2**32), got {seed!r}")
    return seed


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a TypeError (not a str) or
    ValueError naming ``name`` and the choices."""
    expected = " or ".join(repr(choice) for choice in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected {expected}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return value


def check_plain_net(net: object, check: str, *, name: str = "net", why: str = "") -> Net:
    """``net`` if it is a plain dense ``Net`` (no normalization, no dropout),
    else a TypeError or ValueError naming ``name`` and the ``check``, with
    ``why`` (the normalization's reason) if given."""
    if not isinstance(net, Net):
        raise TypeError(f"{name}: expected a manual_bp.Net, got {type(net).__name__} {net!r}")
    if net.normalized or net.dropped:
        normalization = f"no normalization: {why}; no dropout" if why else (
            "no normalization, no dropout"
        )  # fmt: skip
        raise ValueError(
            f"{name}: {check} checks plain dense networks ({normalization}), got "
            f"normalization {net.normalization} and dropout {net.dropout}"
        )
    return net


F = TypeVar("F", bound=Callable[..., object])


def seeded(seed: int) -> Callable[[F], F]:
    """Hypothesis's ``@seed``: the cases a check draws depend on ``seed`` alone."""
    return hypothesis_seed(seed)


@contextlib.contextmanager
def quiet_storage() -> Iterator[None]:
    """Hypothesis's files (its cache of the constants in local modules) under
    ``cache_folder()`` for the block, unless the user chose a place
    (``HYPOTHESIS_STORAGE_DIRECTORY`` or ``set_hypothesis_home_dir``)."""
    from hypothesis import configuration

    chosen = vars(configuration).get("__hypothesis_home_directory")
    if chosen is not None or os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    configuration.set_hypothesis_home_dir(cache_folder() / "hypothesis")
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(None)


def isolation(
    isolate: bool | None,
    timeout: float | None,
    memory_limit: int | None,
    *,
    folder: str | None = None,
    confine: bool = False,
) -> Isolation:
    """The ``Isolation`` of a check's keywords (``isolate=None``: where possible)."""
    chosen = can_isolate() if isolate is None else isolate
    return Isolation(isolate=chosen, timeout=timeout, memory_limit=memory_limit,
                     folder=folder, confine=confine)  # fmt: skip


def check_function(value: object, argument: str, signature: str) -> Source:
    """A callable or a ``"FILE.py:NAME"`` / ``"MODULE:NAME"`` spec, else a TypeError."""
    if callable(value):
        return value
    if isinstance(value, str) and ":" in value.strip(":"):
        where = value.rpartition(":")[0]
        if where.endswith(".py") and not Path(where).is_file():
            raise ValueError(f"{argument}: no file {where!r}")
        return value
    raise TypeError(f"{argument}: expected a callable {signature} or 'FILE.py:NAME', got {value!r}")


def open_sandbox(functions: Mapping[str, Source], settings_: Isolation) -> Sandbox:
    """A started ``Sandbox`` of ``functions``.  A function that does not exist
    is a ``ValueError``, one that cannot be sent to the child a ``TypeError``,
    both naming the argument; an import that raises, times out or ends the
    child is left to the caller (``UserCodeLoadError`` of kind ``"raised"``,
    ``UserCodeStopped``) to report as a verdict."""
    sandbox = Sandbox(functions, settings_)
    try:
        sandbox.start()
    except UserCodeLoadError as error:
        if error.kind == "raised":
            sandbox.close()
            raise
        sandbox.close()
        raise (ValueError if error.kind == "argument" else TypeError)(
            f"{error.name}: {error.problem}"
        ) from None
    except BaseException:
        sandbox.close()
        raise
    return sandbox


E = TypeVar("E", bound=BaseException)
# Which of several distinct failures a check reports in full (the others are named).
RANK = {"wrong": 3, "unstable": 2, "raised": 1}


def run_until_failure(
    test: Callable[[], None],
    kind: type[E],
    stopped: Callable[[UserCodeStopped, str], E],
    *,
    progress: Progress | None = None,
) -> tuple[E, list[E]] | None:
    """Run a check's Hypothesis test: ``None`` on a pass, else the mismatch of
    ``kind`` to report in full and the other distinct failures (``one_failure``,
    ranked by ``RANK``).  A call that timed out or ended its process stops the
    run at once; ``stopped(error, line)`` makes its mismatch, ``line`` saying so.
    ``progress``, the test's bar, is closed when the run ends."""
    try:
        return _run_test(test, kind, stopped)
    finally:
        if progress is not None:
            progress.close()


def _run_test(
    test: Callable[[], None], kind: type[E], stopped: Callable[[UserCodeStopped, str], E]
) -> tuple[E, list[E]] | None:
    try:
        test()
    except UserCodeStopped as error:
        return stopped(error, stopped_line(error)), []
    except BaseExceptionGroup as group:  # distinct failures: report the most informative
        chosen = one_failure(group, kind, lambda m: RANK.get(getattr(m, "verdict", ""), 0))
        if chosen is None:
            raise
        return chosen
    except kind as caught:
        return caught, []
    return None


def stopped_line(error: UserCodeStopped) -> str:
    """What a report says of a call that timed out or ended its process."""
    how = error.detail if error.verdict == "timed out" else f"({error.detail})"
    return f"{error.record.call} {error.verdict} {how} on this case; the check stopped there"


def one_failure(
    group: BaseExceptionGroup, kind: type[E], rank: Callable[[E], int]
) -> tuple[E, list[E]] | None:
    """The mismatch of ``kind`` with the highest ``rank`` in a group of distinct
    failures, and the others; ``None`` when the group holds anything else (an
    error of the checker itself, which must be seen as it is)."""
    found: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        error = stack.pop()
        if isinstance(error, BaseExceptionGroup):
            stack.extend(reversed(error.exceptions))
        else:
            found.append(error)
    if not found or not all(isinstance(error, kind) for error in found):
        return None
    mismatches: Sequence[E] = found  # type: ignore[assignment]  # all of kind, checked above
    best = max(mismatches, key=rank)
    return best, [error for error in mismatches if error is not best]


C = TypeVar("C")


@dataclass(frozen=True)
class CaseRun:
    """A catalogued check's comparison of one case (``compare_hvp``,
    ``compare_dp_step``, ``compare_per_example``): the ``Comparison``, the
    failure details, the notes and the user's values as read."""

    comparison: Comparison
    details: list[str]
    notes: set[str]
    values: dict[str, Any]


def _no_hints(exception: str, case: Any) -> list[str]:
    return []


def _as_drawn(drawn: Any) -> Any:
    return drawn


@dataclass(frozen=True)
class CaseProperty(Generic[C]):
    """What a catalogued check's property does with a drawn case, for
    ``run_property``: ``description`` names the bar (the check); ``kind``
    is its ``CataloguedMismatch``, made with ``keywords`` besides the
    mismatch's own (``product=``, ``quantity=``); ``prepare`` turns a drawn
    case into the one judged (kinks moved, a declared decay); ``arguments``
    are what the user's function is called with on it; ``compare`` judges
    what it returned (a ``CaseRun``); ``record(case, comparison)`` adds a
    passing case to ``report``; ``hints(exception, case)`` are the details
    of a call that raised."""

    description: str
    kind: type[Any]  # a CataloguedMismatch (check.py's, above this module)
    arguments: Callable[[C], Sequence[object]]
    compare: Callable[[C, object], CaseRun]
    report: Any
    record: Callable[[C, Any], None]
    keywords: Mapping[str, Any] = field(default_factory=dict)
    prepare: Callable[[Any], C] = _as_drawn
    hints: Callable[[str, C], list[str]] = _no_hints


def run_property(
    user: UserFunction, strategy: st.SearchStrategy[Any], chosen: Any, spec: CaseProperty[C]
) -> Any:
    """The Hypothesis property of a catalogued check over ``strategy``'s
    cases under the resolved settings ``chosen``: each case judged as
    ``spec`` says, the user's function raising, timing out or ending its
    process a verdict; the diagnosed mismatch (``spec.kind``) of the minimal
    failing case, the first failure as its typical case, the other distinct
    failures named, or None on a pass."""
    kind, keywords = spec.kind, spec.keywords
    first_failure: list[tuple[Any, C]] = []
    first_values: list[dict[str, Any]] = []
    bar = progress(chosen.max_examples, spec.description, chosen.progress)

    @seeded(chosen.seed)
    @check_settings(chosen.max_examples, chosen.shrink)
    @given(strategy)
    @bar.counted
    def matches_the_oracle(drawn: Any) -> None:
        case = spec.prepare(drawn)
        try:
            returned = user(*spec.arguments(case))
        except UserCodeError as error:
            if not first_failure:
                first_failure.append((None, case))
            raise kind(
                None, case, **keywords, verdict="raised", user_traceback=error.record.traceback,
                output=error.record.output, details=spec.hints(error.record.exception, case),
            ) from None  # fmt: skip
        except UserCodeStopped as stopped:
            stopped.context = case
            raise
        run = spec.compare(case, returned)
        if run.comparison.ok and not run.details:
            spec.record(case, run.comparison)
            spec.report.notes |= run.notes
            return
        if not first_failure:
            first_failure.append((run.comparison, case))
            first_values.append(run.values)
        typical = first_failure[0] if first_failure[0][1] is not case else None
        output = user.last.output if user.last is not None else NO_OUTPUT
        raise kind(
            run.comparison, case, **keywords, details=run.details + sorted(run.notes),
            typical=typical, output=output, values=run.values,
        )  # fmt: skip

    def stopped(error: UserCodeStopped, line: str) -> Any:
        return kind(None, error.context, **keywords, verdict=error.verdict,
                    output=error.record.output, details=[line])  # fmt: skip

    failure = run_until_failure(matches_the_oracle, kind, stopped, progress=bar)
    if failure is None:
        return None
    mismatch = failure[0]
    mismatch.others = tuple(other.summary() for other in failure[1])
    if mismatch.typical is not None and first_values:
        mismatch.typical_values = first_values[0]
    return mismatch.diagnosed()
