"""False-alarm rate of the rounding-error tolerance on the correct code.

What it measures
----------------
``manual_bp_reference.tolerance`` gives every gradient entry its own tolerance,
``SAFETY * u * E``, from a first-order rounding-error bound.  A bound that is
too tight shows up as a *false alarm*: ``compare`` reporting a mismatch
(``worst_ratio > 1``) although the manual backward pass is correct.  This
script runs many random examples through ``manual_bp_reference.compare.compare``
on the unmodified ``manual_bp`` and reports the distribution of the
per-example worst ``|manual - oracle| / tolerance``:

* the largest ratio per dtype and overall, with the variable, the activation
  and the loss that produced it, and the median, 90th, 99th, 99.9th and
  99.99th percentiles of the per-example worst ratio;
* the largest ratio per loss and per activation of the worst variable's layer
  (``Wl``, ``Bl``, ``Zl`` and ``A(l-1)`` are all made from ``dZl``, so they are
  charged to ``f_l``; the loss value to the output activation);
* the time spent per example in the oracle (``jax.grad``), in the tolerance
  and in the rest (the manual forward/backward and the comparison), as wall
  and as CPU time, and the one-off jax compilations.

Every ratio above 1 is a false alarm, and so is ``compare`` raising;
when it raises (its diagnosis step runs only after a mismatch), the example
is run again without the diagnosis so that its ratios are still measured.
The smallest false alarm (fewest array entries) is printed in full with
``precision=17`` together with its ``check.report()``, and saved with
``numpy.savez`` (see ``--save``); for every group of alarms (dtype, loss,
activation, variable kind) the failing lines of its smallest case are listed.

How the examples are drawn
--------------------------
jax compiles the oracle once per (shapes, activations, loss), about 0.5 s,
so a pool of architectures is drawn first (``--architectures``, depth 1-6,
widths 1-32, batch 1-64, hidden activations uniform over
``manual_bp.activations.ACTIVATIONS``, a loss from ``manual_bp.losses.LOSSES``
with an output activation it accepts, by the rules of
``manual_bp_reference.strategies.networks``) and many value sets are drawn for each.  The dtype
alternates between float64 and float32 within an architecture (the oracle
always runs in float64, so both share one compilation).

Values mirror ``manual_bp_reference.cases``: each array is either one repeated
value, a repeated fill with some entries replaced, a mixture with random
weights, or all from one category, where the categories are exact zeros
(``+-0``), uniform ``[-1, 1]``, uniform ``[-bound, bound]``, ``+-bound``,
``+-1``, tiny values (log-uniform down to the smallest subnormal, including
the smallest subnormal and the smallest normal exactly) and small multiples of
1/2 (exact cancellations).  ``bound`` is ``PARAM_BOUND`` for ``W``/``B`` and
``INPUT_BOUND`` for ``X`` and mse targets.  Targets lie in the loss's domain:
binary cross-entropy in ``[0, 1]`` including exact 0, 1/2 and 1; cross-entropy
one-hot or normalised soft columns; mse reals.

Architecture ``i`` draws its values from ``default_rng([seed, i])``, so the
results do not depend on the number of worker processes.

Usage
-----
From the repository root::

    python -m benchmarks.false_alarms                 # 100,000 examples
    python -m benchmarks.false_alarms --quick         # 2,000-example smoke run
    python -m benchmarks.false_alarms --seed 1 --examples 20000 --workers 2
    python -m benchmarks.false_alarms --scheduler tcp://HOST:8786   # a Dask cluster

The architectures run on the campaign's engine (``manual_bp_reference.campaign.dask_client``):
a local Dask cluster of ``--workers`` single-threaded processes, or the workers of
``--scheduler``.  For runs past what one report should print (10^6 and up, resumable,
failures in a Hypothesis database), use ``manual-bp campaign``, which draws the same
kind of examples (``manual_bp_reference.draws``, shared with this script), one architecture
per example.

The exit status is 1 when a false alarm (or an exception) occurred, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import resource
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from manual_bp.cli.progress import progress
from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from manual_bp_reference.draws import (
    DTYPES,
    DrawnNet,
    draw_network,
    draw_normalized_network,
    draw_values,
)

PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
QUICK_EXAMPLES = 2_000
QUICK_ARCHITECTURES = 40


# --- timing of the oracle and the tolerance inside compare ---------------------------

# Wall-clock and CPU (``time.process_time``, all threads of the process) seconds.
_TIMERS = {"oracle": 0.0, "tolerance": 0.0, "oracle_cpu": 0.0, "tolerance_cpu": 0.0}


@contextlib.contextmanager
def _timer(stage: str):
    """``compare``'s timing hook: adds the oracle's and the tolerance's seconds."""
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        if stage in ("oracle", "tolerance"):
            _TIMERS[stage] += time.perf_counter() - start
            _TIMERS[f"{stage}_cpu"] += time.process_time() - start_cpu


# --- one architecture ----------------------------------------------------------------------


@dataclass
class Alarm:
    """A false alarm (or an exception): the whole case and what the check said."""

    arch: DrawnNet
    dtype: str
    example: int
    ratio: float
    key: str
    params: dict[str, np.ndarray]
    X: np.ndarray
    Y: np.ndarray
    report: str

    @property
    def size(self) -> int:
        return sum(v.size for v in self.params.values()) + self.X.size + self.Y.size


@dataclass
class ArchitectureResult:
    arch: DrawnNet
    ratios: np.ndarray
    is_float32: np.ndarray
    keys: list[str]
    seconds: dict[str, float]
    # Examples with an undecided entry (Comparison.undecided: its tolerance
    # reaches the largest |oracle| of its gradient, where no check can decide).
    undecided: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    alarms: int = 0
    smallest_alarm: Alarm | None = None
    warnings: list[str] = field(default_factory=list)
    max_rss_mb: float = 0.0
    # Tracebacks of compare raising (the first few are kept in full).
    exceptions: list[str] = field(default_factory=list)
    # "dtype loss activation variable" -> [count, worst ratio, entries, smallest's summary]
    alarm_groups: dict[str, list] = field(default_factory=dict)


def _worst_key(check) -> str:
    key, ratio = "loss", check.loss_ratio
    for variable in check.variables.values():
        if variable.ratio > ratio:
            key, ratio = variable.key, variable.ratio
    return key


def _alarm_group(arch: DrawnNet, dtype: str, key: str) -> str:
    kind = key.rstrip("0123456789")
    return f"{dtype} {arch.net.loss} {_layer_activation(arch, key)} {kind}"


def _failure_lines(report: str) -> str:
    lines = [
        line
        for line in report.splitlines()
        if "entries fail" in line or line.startswith(("loss:", "Traceback", "  File"))
    ]
    return "\n".join(lines[-6:])


def _retry_without_explanation(case: Case, result) -> object | None:
    """After ``compare`` raised: record why, and retry without its explanation step.

    ``compare`` diagnoses a mismatch only after the comparison, so when the
    diagnosis is what raised, the ratios are still measured.  Returns
    ``None`` when the retry raises too.
    """
    result.exceptions.append(traceback.format_exc())
    try:
        return compare(case, explain=False, timer=_timer)
    except Exception:
        result.exceptions.append(traceback.format_exc())
        return None


def run_architecture(task: tuple[DrawnNet, int, int]) -> ArchitectureResult:
    """Run ``count`` value sets of one architecture, alternating the dtype."""
    arch, count, seed = task
    rng = np.random.default_rng([seed, arch.index])
    ratios = np.empty(count)
    is_float32 = np.zeros(count, dtype=bool)
    keys: list[str] = []
    names = ("compile", "verify", "verify_cpu", "generate")
    seconds = dict.fromkeys(names + tuple(_TIMERS), 0.0)
    result = ArchitectureResult(arch, ratios, is_float32, keys, seconds)
    result.undecided = np.zeros(count, dtype=bool)
    for j in range(count):
        dtype = DTYPES[j % 2]
        is_float32[j] = dtype == "float32"
        start = time.perf_counter()
        params, X, Y = draw_values(rng, arch, dtype)
        seconds["generate"] += time.perf_counter() - start
        before = dict(_TIMERS)
        start, start_cpu = time.perf_counter(), time.process_time()
        report = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            case = Case(arch.net, params, X, Y)
            try:
                check = compare(case, timer=_timer)
            except Exception:  # an exception on correct code is a false alarm too
                check = _retry_without_explanation(case, result)
            if check is None:
                ratio, key, report = math.inf, "exception", result.exceptions[-1]
            else:
                ratio, key = check.worst_ratio, _worst_key(check)
                result.undecided[j] = check.undecided > 0
                if not ratio <= 1.0:
                    report = check.report()
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if j == 0:  # the first call of an architecture compiles
            seconds["compile"] += _TIMERS["oracle"] - before["oracle"]
        else:
            seconds["verify"] += elapsed
            seconds["verify_cpu"] += elapsed_cpu
            for name in _TIMERS:
                seconds[name] += _TIMERS[name] - before[name]
        for w in caught:
            if len(result.warnings) < 5:
                result.warnings.append(f"{w.category.__name__}: {w.message} ({dtype})")
        ratios[j] = ratio
        keys.append(key)
        if report:
            result.alarms += 1
            alarm = Alarm(arch, dtype, j, ratio, key, params, X, Y, report)
            if result.smallest_alarm is None or alarm.size < result.smallest_alarm.size:
                result.smallest_alarm = alarm
            group = result.alarm_groups.setdefault(
                _alarm_group(arch, dtype, key), [0, 0.0, math.inf, ""]
            )
            group[0] += 1
            group[1] = max(group[1], ratio)
            if alarm.size < group[2]:
                group[2] = alarm.size
                group[3] = (
                    f"{arch.describe()}, example {j} of architecture {arch.index}:\n"
                    f"{_failure_lines(report)}"
                )
    result.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


# --- reporting -------------------------------------------------------------------------------


def _layer_activation(arch: DrawnNet, key: str) -> str:
    """The activation whose ``dZl`` made the gradient ``key``."""
    depth = len(arch.net.activations)
    if key in ("loss", "exception"):
        return arch.net.activations[-1]
    layer = int(key.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
    layer += 1 if key[0] == "A" else 0
    return arch.net.activations[min(layer, depth) - 1]


def _print_case(alarm: Alarm, path: str) -> None:
    print(f"  architecture: {alarm.arch.describe()}")
    print(f"  dtype: {alarm.dtype}, example {alarm.example} of architecture {alarm.arch.index}")
    print(f"  worst ratio {alarm.ratio:.6g} in {alarm.key}; {alarm.size} array entries")
    with np.printoptions(precision=17, threshold=100_000, linewidth=100):
        for name, value in {**alarm.params, "X": alarm.X, "Y": alarm.Y}.items():
            text = f"np.{value!r}".replace("dtype=float32", "dtype=np.float32")
            print(f"  {name} = {text}".replace("\n", "\n  "))
    print("  check.report():")
    print("    " + alarm.report.replace("\n", "\n    "))
    np.savez(
        path,
        layer_sizes=np.array(alarm.arch.sizes),
        activations=np.array(alarm.arch.net.activations),
        loss=np.array(alarm.arch.net.loss),
        normalization=np.array(
            [kind or "" for kind in alarm.arch.net.normalization]
            if alarm.arch.net.normalized
            else []
        ),
        dtype=np.array(alarm.dtype),
        X=alarm.X,
        Y=alarm.Y,
        **alarm.params,
    )
    print(f"  saved to {path}")


def _summary(results: list[ArchitectureResult]) -> tuple[np.ndarray, np.ndarray, list, list]:
    ratios = np.concatenate([r.ratios for r in results])
    is_float32 = np.concatenate([r.is_float32 for r in results])
    keys = [k for r in results for k in r.keys]
    archs = [r.arch for r in results for _ in r.keys]
    return ratios, is_float32, keys, archs


def _max_line(label: str, ratios: np.ndarray, keys: list, archs: list, dtypes: list) -> str:
    i = int(np.argmax(ratios))
    return (
        f"{label}: max ratio {ratios[i]:.4g} in {keys[i]} "
        f"(activation {_layer_activation(archs[i], keys[i])}, {dtypes[i]}), "
        f"{archs[i].describe()}"
    )


def report(results: list[ArchitectureResult], args, wall: float) -> int:
    ratios, is_float32, keys, archs = _summary(results)
    dtypes = ["float32" if f else "float64" for f in is_float32]
    print()
    print("=== error/tolerance on the correct code (per example: its worst ratio) ===")
    names = ", ".join(f"p{p:g}" for p in PERCENTILES)
    for dtype, mask in (("float64", ~is_float32), ("float32", is_float32)):
        selected = np.flatnonzero(mask)
        if not selected.size:
            continue
        sub = ratios[selected]
        pct = np.percentile(sub, PERCENTILES)
        print(
            f"{dtype}: {selected.size} examples, {int(np.sum(sub > 1))} false alarms, "
            f"{int(np.sum(sub > 0.5))} above 0.5, {int(np.sum(sub > 0.1))} above 0.1"
        )
        print(f"  {names}: " + ", ".join(f"{v:.3g}" for v in pct))
        undecided = np.concatenate([r.undecided for r in results])[selected]
        print(
            f"  undecided (some tolerance reaches its gradient's scale): "
            f"{int(np.sum(undecided))} examples"
        )
        sub_keys = [keys[i] for i in selected]
        sub_archs = [archs[i] for i in selected]
        sub_dtypes = [dtypes[i] for i in selected]
        print("  " + _max_line("largest", sub, sub_keys, sub_archs, sub_dtypes))
    print(_max_line("overall", ratios, keys, archs, dtypes))

    print()
    print("largest ratio by loss / activation of the worst variable's layer / variable kind")
    groups: dict[tuple[str, str], list[float]] = {}
    for ratio, key, arch, dtype in zip(ratios, keys, archs, dtypes, strict=True):
        for group in (
            f"loss {arch.net.loss}",
            f"activation {_layer_activation(arch, key)}",
            f"variable {key.rstrip('0123456789')}",
        ):
            entry = groups.setdefault((group, dtype), [0.0, 0])
            entry[0] = max(entry[0], ratio)
            entry[1] += 1
    for group in sorted({g for g, _ in groups}):
        cells = []
        for dtype in DTYPES:
            worst, n = groups.get((group, dtype), [float("nan"), 0])
            cells.append(f"{dtype} {worst:9.3g} (n={n:6d})")
        print(f"  {group:<32} " + "   ".join(cells))

    print()
    compile_seconds = sum(r.seconds["compile"] for r in results)
    timed = max(1, sum(len(r.keys) - 1 for r in results if r.keys))

    def per_example(name: str) -> float:
        return 1e3 * sum(r.seconds[name] for r in results) / timed

    for clock, suffix in (("wall", ""), ("CPU", "_cpu")):
        verify, oracle = per_example(f"verify{suffix}"), per_example(f"oracle{suffix}")
        tolerance = per_example(f"tolerance{suffix}")
        print(
            f"{clock} time per example (excluding each architecture's first call): "
            f"compare {verify:.2f} ms = oracle {oracle:.2f} ms + tolerance "
            f"{tolerance:.2f} ms + manual forward/backward and compare "
            f"{verify - oracle - tolerance:.2f} ms"
        )
    generate = 1e3 * sum(r.seconds["generate"] for r in results) / max(len(ratios), 1)
    print(f"drawing the values: {generate:.2f} ms per example")
    print(
        f"jax compilation (first call per architecture): {compile_seconds:.1f} s in total, "
        f"{compile_seconds / max(len(results), 1):.2f} s per architecture"
    )
    caught = [w for r in results for w in r.warnings]
    if caught:
        print(f"warnings raised during compare (first {min(len(caught), 10)}):")
        for w in caught[:10]:
            print(f"  {w}")
    raised = [e for r in results for e in r.exceptions]
    if raised:
        last_lines = {}
        for text in raised:
            line = text.strip().splitlines()[-1]
            last_lines[line] = last_lines.get(line, 0) + 1
        print(
            f"compare RAISED {len(raised)} times (on mismatches, each then re-run "
            "without its diagnosis step to measure the ratios):"
        )
        for line, count in sorted(last_lines.items(), key=lambda item: -item[1]):
            print(f"  {count} x {line}")
        print("  first traceback:\n    " + raised[0].strip().replace("\n", "\n    "))
    print(f"peak worker memory {max(r.max_rss_mb for r in results):.0f} MB")

    alarms = sum(r.alarms for r in results)
    print()
    if alarms:
        smallest = min(
            (r.smallest_alarm for r in results if r.smallest_alarm is not None),
            key=lambda a: (a.size, -a.ratio),
        )
        print(f"FALSE ALARMS: {alarms} of {len(ratios)} examples have worst ratio > 1.")
        print("By dtype, loss, activation of the worst variable's layer and variable kind")
        print("(count, largest ratio, and the failing lines of the smallest case):")
        groups: dict[str, list] = {}
        for r in results:
            for name, (count, worst, size, text) in r.alarm_groups.items():
                group = groups.setdefault(name, [0, 0.0, math.inf, ""])
                group[0] += count
                group[1] = max(group[1], worst)
                if size < group[2]:
                    group[2], group[3] = size, text
        for name, (count, worst, _, text) in sorted(groups.items(), key=lambda g: -g[1][0]):
            print(f"  {name}: {count} alarms, largest ratio {worst:.3g}")
            print("      " + text.replace("\n", "\n      "))
        print()
        print("The smallest case:")
        _print_case(smallest, args.save)
    else:
        print(f"no false alarm in {len(ratios)} examples")
    print()
    print(
        f"examples: {len(ratios)} ({int(np.sum(~is_float32))} float64, "
        f"{int(np.sum(is_float32))} float32) over {len(results)} architectures; "
        f"seed {args.seed}"
    )
    print(f"cores (os.cpu_count()): {os.cpu_count()}, workers: {args.workers}")
    print(f"wall time: {wall:.1f} s")
    return 1 if alarms else 0


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the tolerance's false-alarm rate on the correct code."
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--examples", type=int, default=100_000, help="number of examples (default 100000)"
    )
    parser.add_argument(
        "--architectures",
        type=int,
        default=300,
        help="size of the architecture pool, one jax compilation each (default 300)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (shown only on a terminal)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_EXAMPLES} examples over {QUICK_ARCHITECTURES} architectures",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="local Dask worker processes (default os.cpu_count())",
    )
    parser.add_argument(
        "--save",
        default=os.path.join(tempfile.gettempdir(), "false_alarm_case.npz"),
        help="where to save the smallest false alarm (default: %(default)s)",
    )
    parser.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of a Dask scheduler whose workers run the architectures",
    )
    parser.add_argument(
        "--normalization",
        action="store_true",
        help="normalized nets: batch and layer normalization in drawn hidden layers, "
        "with near-constant inputs, 1e6 offsets and batches of one",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.architectures = QUICK_EXAMPLES, QUICK_ARCHITECTURES
    args.architectures = max(1, min(args.architectures, args.examples))
    args.workers = max(1, args.workers)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    draw = draw_normalized_network if args.normalization else draw_network
    pool = [draw(rng, i) for i in range(args.architectures)]
    base, extra = divmod(args.examples, args.architectures)
    tasks = [(arch, base + (arch.index < extra), args.seed) for arch in pool]
    # Big architectures first, so that the workers finish together.
    tasks.sort(key=lambda t: -sum(t[0].sizes) * t[0].m * len(t[0].sizes))
    print(
        f"false alarms: {args.examples} examples over {args.architectures} architectures, "
        f"seed {args.seed}, {args.workers} workers, {os.cpu_count()} cores"
        + (", normalized nets" if args.normalization else ""),
        flush=True,
    )

    results: list[ArchitectureResult] = []
    # A tqdm bar on a terminal (manual_bp.cli.progress); nothing in a log or under --quiet.
    with progress(len(tasks), "architectures", "arch", args.quiet) as bar:

        def collect(result: ArchitectureResult) -> None:
            results.append(result)
            bar.advance(
                1,
                examples=sum(len(r.keys) for r in results),
                max_ratio=f"{max(float(np.max(r.ratios, initial=0.0)) for r in results):.3g}",
                false_alarms=sum(r.alarms for r in results),
            )

        if args.workers == 1 and args.scheduler is None:
            for task in tasks:
                collect(run_architecture(task))
        else:  # on the campaign's engine: a local Dask cluster, or --scheduler's
            from distributed import as_completed

            from manual_bp_reference.campaign import dask_client

            # By name, not by value from __main__: each worker then keeps one copy of
            # this module, its timers included, across the architectures it runs.
            run = importlib.import_module("benchmarks.false_alarms").run_architecture
            workers = None if args.scheduler else args.workers
            with dask_client(scheduler=args.scheduler, workers=workers) as client:
                for future in as_completed(client.map(run, tasks, pure=False)):
                    collect(future.result())
    results.sort(key=lambda r: r.arch.index)
    return report(results, args, time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
