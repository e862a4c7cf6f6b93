"""False alarms of ``check_dp_step``'s comparison on correct DP-SGD steps.

Cases are drawn by ``manual_bp_reference.dp_check.dp_cases`` (a parameter
layout, ``m`` up to ``--batch``, each example's norm ``r C`` with ``r`` from
0, 1e-3, ..., exactly 1, ..., 1e3 or anywhere in ``[0, 1e3]``, standard
normal noise), for several clip bounds ``C``, noise multipliers ``σ`` and
clip denominators' ``ε`` (``clip_eps``: 0, or Opacus's 1e-6), in float64 and
float32, and compared (``compare_dp_step``) with the correct steps:

* ``product``: ``manual_bp.dp_sgd.clipped_mean`` plus ``σ C / m · noise`` (ε = 0 only);
* ``loop``: a loop over the examples, each scaled by ``min(1, C / (||g_i|| + ε))``;
* ``flat``: the examples flattened into one ``(m, P)`` matrix, ``np.linalg.norm``;
* ``opacus``: Opacus's ``(C / (norms + ε)).clamp(max=1.0)`` on the flattened
  examples, their sum, then ``(sum + σ C noise) / m`` (ε > 0 only).

A false alarm is an err/tol above 1 (or NaN where the oracle is finite).

Usage::

    python -m benchmarks.dp_false_alarms [--cases 12000] [--batch 6]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.environment import print_environment
from manual_bp.dp_sgd import clipped_mean
from manual_bp_reference.dp_check import compare_dp_step, dp_cases

# (C, σ, ε): a small and a large bound, no noise and DP-SGD's usual multipliers,
# without ε and with Opacus's.
SETTINGS = ((1.0, 1.1, 0.0), (0.01, 0.0, 0.0), (5.0, 4.0, 0.0), (1e3, 0.5, 0.0),
            (1.0, 1.1, 1e-6), (0.01, 0.0, 1e-6), (5.0, 4.0, 1e-6))  # fmt: skip
ROUND = 500  # cases per Hypothesis run


def product(per_example, noise, clip, sigma, eps):
    m = next(iter(per_example.values())).shape[0]
    mean = clipped_mean(per_example, clip)
    return {k: mean[k] + sigma * clip / m * noise[k] for k in mean}


def loop(per_example, noise, clip, sigma, eps):
    keys = list(per_example)
    m = per_example[keys[0]].shape[0]
    total = {k: np.zeros_like(per_example[k][0]) for k in keys}
    for i in range(m):
        norm = np.sqrt(sum(float((per_example[k][i] ** 2).sum()) for k in keys))
        scale = min(1.0, clip / (norm + eps)) if norm + eps > 0 else 1.0
        for k in keys:
            total[k] = total[k] + per_example[k][i] * scale
    return {k: total[k] / m + sigma * clip / m * noise[k] for k in keys}


def flat(per_example, noise, clip, sigma, eps):
    keys = list(per_example)
    m = per_example[keys[0]].shape[0]
    G = np.concatenate([per_example[k].reshape(m, -1) for k in keys], axis=1)
    norms = np.linalg.norm(G, axis=1)
    scale = clip / np.maximum(norms + eps, clip)
    mean = (G * scale[:, None]).mean(axis=0)
    out, start = {}, 0
    for k in keys:
        size = per_example[k][0].size
        out[k] = mean[start : start + size].reshape(per_example[k].shape[1:]) + (
            sigma * clip / m * noise[k]
        )
        start += size
    return out


def opacus(per_example, noise, clip, sigma, eps):
    keys = list(per_example)
    m = per_example[keys[0]].shape[0]
    G = np.concatenate([per_example[k].reshape(m, -1) for k in keys], axis=1)
    factor = np.minimum(clip / (np.linalg.norm(G, axis=1) + eps), 1.0)
    summed = np.einsum("i,ij->j", factor.astype(G.dtype), G)
    out, start = {}, 0
    for k in keys:
        size = per_example[k][0].size
        total = summed[start : start + size].reshape(per_example[k].shape[1:])
        out[k] = (total + sigma * clip * noise[k]) / m
        start += size
    return out


STEPS = {"product": product, "loop": loop, "flat": flat, "opacus": opacus}
# The steps that implement each convention: product has no ε, opacus always one.
WITHOUT_EPS, WITH_EPS = ("product", "loop", "flat"), ("loop", "flat", "opacus")


Counts = dict[tuple[str, str, str], float]


def run_setting(clip: float, sigma: float, eps: float, dtype: str, cases: int, batch: int,
                counts: tuple[Counts, Counts, Counts]) -> None:  # fmt: skip
    """``cases`` drawn cases of one ``(C, σ, ε, dtype)``, every step of that
    convention compared on each."""
    calls, alarms, worst = counts
    strategy = dp_cases(clip=clip, noise_multiplier=sigma, dtype=dtype, max_batch=batch,
                        clip_eps=eps)  # fmt: skip
    names = WITH_EPS if eps > 0 else WITHOUT_EPS
    for seed in range(-(-cases // ROUND)):

        @settings(max_examples=min(ROUND, cases), database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(strategy, st.just(seed))
        def one(case, _seed) -> None:
            for name in names:
                returned = STEPS[name](dict(case.per_example), dict(case.noise), clip, sigma, eps)
                run = compare_dp_step(case, returned)
                key = (name, dtype, f"{eps:g}")
                calls[key] += 1
                worst[key] = max(worst[key], run.comparison.worst_ratio)
                if run.comparison.worst_ratio > 1 or run.details:
                    alarms[key] += 1

        one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12_000, help="drawn cases in all")
    parser.add_argument("--batch", type=int, default=6)
    args = parser.parse_args(argv)
    if args.cases < 1 or args.batch < 1:
        parser.error("--cases and --batch: expected positive ints")
    print_environment()
    counts: tuple[Counts, Counts, Counts] = (defaultdict(float), defaultdict(float),
                                             defaultdict(float))  # fmt: skip
    start = time.perf_counter()
    per_setting = -(-args.cases // (2 * len(SETTINGS)))
    for dtype in ("float64", "float32"):
        for clip, sigma, eps in SETTINGS:
            run_setting(clip, sigma, eps, dtype, per_setting, args.batch, counts)
    calls, alarms, worst = counts
    print("| step | dtype | ε | calls | false alarms | worst err/tol |")
    print("|---|---|---|---|---|---|")
    for key in sorted(calls):
        print(f"| {key[0]} | {key[1]} | {key[2]} | {calls[key]:.0f} | {alarms[key]:.0f} "
              f"| {worst[key]:.3g} |")  # fmt: skip
    print(f"\n{sum(calls.values()):.0f} calls, {sum(alarms.values()):.0f} false alarms "
          f"({time.perf_counter() - start:.0f} s wall)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
