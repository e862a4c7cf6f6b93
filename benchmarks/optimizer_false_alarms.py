"""False-alarm count of the optimizer-step tolerance on the correct optimizers.

Every step of ``manual_bp.optimizers`` (SGD, momentum, RMSProp, Adam, AdamW,
every convention, float32 and float64, extreme hyperparameters: the cases of
``manual_bp_reference.optimizer_cases.optimizer_cases``) is compared with optax's step
from the same inputs by ``manual_bp_reference.optimizer_check.compare_step``.  The
hand-written optimizers are correct, so every step whose worst
``|mine - optax| / tolerance`` exceeds 1 is a false alarm.  Reported: the
number of steps, the false alarms, the entries that could not be decided
(infinite tolerance), and the worst ratio per optimizer and dtype with its
percentiles.

Usage (from the repository root)::

    python -m benchmarks.optimizer_false_alarms              # at least 100,000 steps
    python -m benchmarks.optimizer_false_alarms --steps 2000 # a quick look
    python -m benchmarks.optimizer_false_alarms --processes 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

from manual_bp_reference.optimizer_cases import OptimizerCase, optimizer_cases
from manual_bp_reference.optimizer_check import compare_step

MAX_STEPS = 8  # gradient steps per drawn case
ROUND = 1000  # examples per Hypothesis run
PROGRESS = 5000  # steps between progress lines on stderr


def run(target_steps: int) -> dict:
    """Draw cases with Hypothesis (in rounds of ``ROUND`` examples, no shrinking)
    until ``target_steps`` steps were compared."""
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    alarms: list[tuple[float, OptimizerCase, str]] = []
    counts = {"steps": 0, "undecided": 0, "cases": 0}

    @settings(
        max_examples=ROUND,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(optimizer_cases(max_steps=MAX_STEPS))
    def one_case(case: OptimizerCase) -> None:
        if counts["steps"] >= target_steps:
            return
        counts["cases"] += 1
        params, state = case.params, case.state
        for grads in case.gradients:
            new_params, new_state = case.optimizer.update(grads, state, params)
            comparison = compare_step(case.optimizer, grads, state, params, new_params, new_state)
            counts["steps"] += 1
            if counts["steps"] % PROGRESS == 0:
                print(
                    f"{counts['steps']} steps: {len(alarms)} false alarms so far",
                    file=sys.stderr,
                    flush=True,
                )
            counts["undecided"] += comparison.undecided
            ratios[(case.optimizer.name, case.dtype.name)].append(comparison.worst_ratio)
            if not comparison.ok:
                alarms.append((comparison.worst_ratio, case, comparison.report()))
            params, state = new_params, new_state

    while counts["steps"] < target_steps:
        one_case()
    return {"ratios": ratios, "alarms": alarms, **counts}


def _worker(target_steps: int) -> dict:
    result = run(target_steps)
    # Cases are not needed across processes: keep the reports of the alarms.
    result["alarms"] = [(ratio, repr(case), report) for ratio, case, report in result["alarms"]]
    result["ratios"] = dict(result["ratios"])
    result["cpu"] = time.process_time()
    return result


def _merge(results: list[dict]) -> dict:
    merged: dict = {"ratios": defaultdict(list), "alarms": [], "cpu": 0.0}
    for key in ("steps", "undecided", "cases"):
        merged[key] = sum(result[key] for result in results)
    for result in results:
        merged["alarms"] += result["alarms"]
        merged["cpu"] += result["cpu"]
        for group, values in result["ratios"].items():
            merged["ratios"][group] += values
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="(default: 100000)")
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes, each drawing its own cases"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    share = -(-args.steps // args.processes)
    if args.processes == 1:
        result = _merge([_worker(share)])
    else:
        # spawn: jax is multithreaded, and a forked child of it can deadlock.
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            result = _merge(pool.map(_worker, [share] * args.processes))
    wall, cpu = time.perf_counter() - started, result["cpu"]
    print(
        f"{result['steps']} optimizer steps in {result['cases']} cases "
        f"({wall:.0f} s wall, {cpu:.0f} s CPU, {1e3 * wall / result['steps']:.1f} ms a step)"
    )
    print(f"false alarms: {len(result['alarms'])}; undecided entries: {result['undecided']}")
    print("\n| optimizer | dtype | steps | worst ratio | 99.9th pct | 99th pct | median |")
    print("|---|---|---|---|---|---|---|")
    for (name, dtype), values in sorted(result["ratios"].items()):
        v = np.array(values)
        print(
            f"| {name} | {dtype} | {v.size} | {v.max():.3g} | {np.percentile(v, 99.9):.3g} "
            f"| {np.percentile(v, 99):.3g} | {np.median(v):.3g} |"
        )
    if result["alarms"]:
        ratio, case, report = max(result["alarms"], key=lambda alarm: alarm[0])
        print(f"\nworst false alarm (ratio {ratio:.3g}):\n{case}\n{report}")


if __name__ == "__main__":
    main()
