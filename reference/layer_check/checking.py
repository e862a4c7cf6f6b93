"""``check_layer``: the property check of one layer function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given

from manual_bp_reference.check import (
    Mismatch,
    nonfinite,
    not_loaded,
)
from manual_bp_reference.check_run import (
    check_function,
    check_settings,
    open_sandbox,
    progress,
    quiet_storage,
    run_until_failure,
    seeded,
)
from manual_bp_reference.isolation import (
    NO_OUTPUT,
    Output,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
    UserFunction,
)
from manual_bp_reference.layer_check.calls import run_user
from manual_bp_reference.layer_check.cases import LayerCase, layer_cases
from manual_bp_reference.layer_check.comparison import LayerComparison, compare_layer
from manual_bp_reference.layer_check.diagnosis import (
    diagnose,
    kink_note,
    larger_failure,
    reshape_note,
)
from manual_bp_reference.layer_check.report import LayerMismatch, LayerReport
from manual_bp_reference.layer_check.specs import LAYOUTS, TARGETS, kind_of, layers
from manual_bp_reference.settings import Settings, from_old_keywords


def _check_arguments(layer, forward, layout, targets_as) -> str:
    """Check the layer and what goes with it (the functions are checked already)."""
    if layer not in layers():
        raise ValueError(f"layer: expected one of {list(layers())}, got {layer!r}")
    kind = kind_of(layer)
    if kind.returns_loss and forward is not None:
        call = ", ".join(kind.forward_arguments) if kind.shapes is not None else "x, y"
        raise ValueError(
            f"forward: a loss head {layer!r} is one function loss({call}) -> (loss, dx), "
            "passed as backward; got a forward too"
        )
    if not kind.returns_loss and kind.default_cache is None and forward is None:
        raise ValueError(
            f"forward: {layer!r} needs your forward ({', '.join(kind.forward_arguments)}) -> "
            "(out, cache): its cache is what your backward reads"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    if kind.shapes is not None and layout != "rows":
        raise ValueError(
            f"layout: {layer!r} is checked in cs231n's layout, samples first ('rows'), "
            f"got {layout!r}"
        )
    if targets_as is None:
        return "labels"
    if layer not in ("cross_entropy", "binary_cross_entropy"):
        raise ValueError(
            f"targets: only for the cross-entropy loss heads, got {targets_as!r} for {layer!r}"
        )
    if targets_as not in TARGETS:
        raise ValueError(f"targets: expected one of {list(TARGETS)}, got {targets_as!r}")
    return targets_as


def check_layer(
    backward: Callable[..., object] | str,
    layer: str,
    *,
    forward: Callable[..., object] | str | None = None,
    layout: str = "rows",
    targets: str | None = None,
    settings: Settings | None = None,
    **old_keywords: Any,
) -> LayerReport:
    """Return a ``LayerReport`` on a pass; raise ``LayerMismatch`` otherwise.

    ``backward(dout, cache)`` (a loss head: ``loss(x, y)``) and ``forward`` as
    in the module notes, callables or ``"FILE.py:NAME"``; ``layer`` one of
    ``layers()`` (every registered ``manual_bp_reference.layer_kinds.LayerKind``);
    ``layout`` ``"rows"`` (cs231n) or ``"columns"``; ``targets``
    ``"labels"`` (default) or ``"one_hot"`` for the cross-entropy heads.
    ``settings``: a ``manual_bp_reference.settings.Settings`` (examples,
    dtype, ``max_batch``, ``max_width``, ``input_bound`` bounding every drawn
    value, shrinking, the stability rerun, seed, timeout, isolation), as for
    ``check_gradients``; the 0.1 keywords still work, with a ``FutureWarning``.
    """
    backward = check_function(backward, "backward", "(dout, cache) -> ...")
    if forward is not None:
        forward = check_function(forward, "forward", "(...) -> (out, cache)")
    targets_as = _check_arguments(layer, forward, layout, targets)
    settings, _ = from_old_keywords("check_layer", settings, old_keywords)
    chosen = settings.resolved("check_layer")
    dtype, max_examples, max_batch = chosen.dtype, chosen.max_examples, chosen.max_batch
    max_width, input_bound, shrink = chosen.max_width, chosen.input_bound, chosen.shrink
    kind = kind_of(layer)
    if max_batch < kind.min_batch:
        raise ValueError(
            f"settings.max_batch: {layer} is drawn with m >= {kind.min_batch}, got {max_batch}"
        )
    if max_width < kind.min_width:
        raise ValueError(
            f"settings.max_width: {layer} needs at least {kind.min_width} features, got {max_width}"
        )
    seed, limits = chosen.seed, chosen.isolation
    kind = kind_of(layer)
    backward_args = (
        ("x", "y") if kind.family == "loss"
        else kind.forward_arguments if kind.returns_loss
        else (*(f"d{name}" for name in kind.outputs), "cache")
    )  # fmt: skip
    functions = (
        {"backward": backward} if forward is None else {"forward": forward, "backward": backward}
    )

    def run(user: tuple[UserFunction, UserFunction | None], bound: float) -> LayerReport:
        strategy = layer_cases(
            layer, layout=layout, dtype=dtype, targets_as=targets_as,
            max_batch=max_batch, max_width=max_width, bound=float(bound),
        )  # fmt: skip
        return _run(*user, strategy, (max_examples, shrink, targets_as, seed, chosen.progress))

    with quiet_storage():
        try:
            sandbox = open_sandbox(functions, limits)
        except (UserCodeLoadError, UserCodeStopped) as error:
            raise LayerMismatch(None, None, **not_loaded(error)).with_context(
                seed=seed, isolation=limits.describe()
            ) from None
        with sandbox:
            user = (
                sandbox.function("backward", backward_args),
                None
                if forward is None
                else sandbox.function(
                    "forward",
                    kind.forward_arguments,
                    may_write=_param_dicts(kind),  # bn_param's stats
                ),
            )
            try:
                report = _stability_checked(
                    run, user, chosen.stability_check, input_bound, max_examples
                )
            except LayerMismatch as mismatch:
                raise mismatch.with_context(
                    notes=sandbox.notes(), seed=seed, isolation=limits.describe()
                ) from None
            report.notes |= set(sandbox.notes())
            report.output = sandbox.first_output()
    report.seed, report.isolation = seed, limits.describe()
    return report


def _stability_checked(run, user, stability_check: bool, bound: float, max_examples: int):
    """``run`` at ``bound``; NaN/inf in the user's outputs reruns it with every
    value bounded by 1 to tell unstable numerics from wrong maths."""
    try:
        return run(user, bound)
    except LayerMismatch as mismatch:
        if not (stability_check and mismatch.verdict == "unstable"):
            raise
        try:
            run(user, 1.0)
            verdict, extra = (
                "correct maths, unstable numerics",
                [
                    f"with every value bounded by 1, {max_examples} examples pass: the formulas "
                    "are right, their evaluation overflows or divides by 0 at larger inputs"
                ],
            )
            diagnosis: list[str] = []  # right formulas: no classic bug to name
        except LayerMismatch as bounded:
            if bounded.verdict in Mismatch.STOPPED:  # the rerun hung or died: that
                raise bounded from None
            verdict, extra = (
                "wrong",
                [
                    f"with every value bounded by 1 it fails too ({bounded.summary()}): not only a "
                    "matter of large inputs"
                ],
            )
            diagnosis = mismatch.diagnosis
        raise LayerMismatch(
            mismatch.comparison, mismatch.case, verdict=verdict,
            details=mismatch.details + extra, diagnosis=diagnosis,
            typical=mismatch.typical, output=mismatch.output, others=mismatch.others,
        ) from None  # fmt: skip


def _run(
    backward, forward, strategy, options: tuple[int, bool, str, int, bool | None]
) -> LayerReport:
    max_examples, shrink, targets_as, seed, shown = options
    report = LayerReport()
    first: list[tuple[LayerComparison | None, LayerCase]] = []
    bar = progress(max_examples, "check_layer", shown)

    @seeded(seed)
    @check_settings(max_examples, shrink)
    @given(strategy)
    @bar.counted
    def matches_the_oracle(case: LayerCase) -> None:
        try:
            outputs, problems = run_user(backward, forward, case)
        except UserCodeError as error:
            if not first:
                first.append((None, case))
            raise LayerMismatch(
                None, case, verdict="raised", user_traceback=error.record.traceback,
                output=error.record.output,
            ) from None  # fmt: skip
        except UserCodeStopped as stopped:
            stopped.context = case
            raise
        comparison = compare_layer(case, outputs, problems)
        if comparison.ok:
            report.add(case, comparison)
            return
        if not first:
            first.append((comparison, case))
        broken = [f"{name}: {count} entries" for name, (count, _) in nonfinite(outputs).items()]
        details = list(comparison.notes)
        verdict = "wrong"
        if broken:
            verdict = "unstable"
            details.append(
                "NaN/inf in your outputs where the oracle's are finite ("
                + "; ".join(broken)
                + "): an exp overflows or a division by 0 (a variance of 0, a saturated sigmoid)"
            )
        raise LayerMismatch(
            comparison, case, verdict=verdict, details=details, output=last_output(backward)
        )

    failure = run_until_failure(
        matches_the_oracle, LayerMismatch,
        lambda stopped, line: LayerMismatch(
            None, stopped.context, verdict=stopped.verdict,  # type: ignore[arg-type]  # a case
            output=stopped.record.output, details=[line],
        ),
        progress=bar,
    )  # fmt: skip
    if failure is None:
        return report
    mismatch, others = failure
    mismatch.others = tuple(other.summary() for other in others)
    assert mismatch.case is not None  # every failure inside the run is of a case
    if mismatch.verdict in Mismatch.STOPPED:  # calling it again could hang again
        raise mismatch.with_traceback(None) from None
    typical = larger_failure(backward, forward, mismatch.case, first, targets_as)
    if mismatch.comparison is None:
        mismatch.typical = typical
        raise mismatch.with_traceback(None) from None
    details = mismatch.details + kink_note(mismatch.case, mismatch.comparison)
    diagnosis = reshape_note(backward, forward, mismatch.case)
    if not diagnosis and kind_of(mismatch.case.layer).bugs:
        diagnosis = diagnose(backward, forward, mismatch.case)
    raise LayerMismatch(
        mismatch.comparison, mismatch.case, verdict=mismatch.verdict,
        details=details, diagnosis=diagnosis, typical=typical, output=mismatch.output,
        others=mismatch.others,
    ) from None  # fmt: skip


def last_output(function: object) -> Output:
    """What the last call of a ``UserFunction`` printed (nothing for a plain callable)."""
    last = getattr(function, "last", None)
    return last.output if last is not None else NO_OUTPUT


def _param_dicts(kind) -> tuple[str, ...]:
    """The forward's param dicts, which it may write into (bn_param's running statistics)."""
    if kind.shapes is None:
        return ("param",)
    return tuple(name for name in kind.shapes.call if name.endswith("_param"))
