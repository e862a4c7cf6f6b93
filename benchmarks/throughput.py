"""Examples per second of the main gradient-match property, naive vs padded oracle.

What it measures
----------------
The main property (as ``property_tests/test_gradients.py`` states it:
``manual_bp_reference.compare.compare`` of manual_bp's forward and backward with the
oracle, the tolerance, the comparison, and ``target`` on the worst ratio) is
run by Hypothesis over ``networks(max_depth, max_width, max_batch)`` --
depth <= 4, widths <= 16, batch <= 32 by default, a random shape per example
-- once with the naive oracle (``oracle_gradients(..., compiled="exact")``: one
``jax.jit`` compilation per new shape and activation list) and once with the
padded one (``manual_bp_reference.padding``: one compilation per bucket).

Each oracle runs two passes of ``--examples`` examples with different
Hypothesis seeds, in this process:

* **cold**: the first pass, including every one-off compilation;
* **warm**: a second pass over fresh random examples.  The padded oracle has
  compiled its buckets by then; the naive one still meets new shapes.

For each pass it prints examples/second (wall clock), the CPU seconds of the
process (all threads; on a shared machine a wall figure far above it means
the process waited for a core) and where the wall time went: Hypothesis
(drawing the example, and its engine), the manual forward and backward, the
oracle, the tolerance, the comparison, the rest of the property (its report
and ``target``), and the number of compilations of the oracle.

Usage
-----
From the repository root::

    python -m benchmarks.throughput                  # 400 examples per pass
    python -m benchmarks.throughput --examples 100 --oracle fast
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import defaultdict

from hypothesis import HealthCheck, Phase, given, seed, settings, target

from manual_bp_reference import oracle, padding
from manual_bp_reference.compare import compare
from manual_bp_reference.strategies import networks

_SECONDS: dict[str, float] = defaultdict(float)
# The stages of ``compare`` that its timing hook reports.
_PHASES = ("manual forward", "manual backward", "oracle", "tolerance", "comparison")


@contextlib.contextmanager
def _timer(stage: str):
    """``compare``'s timing hook: wall seconds per stage."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _SECONDS[stage] += time.perf_counter() - start


def _compilations() -> int:
    """Compiled variants of both oracles so far (jit cache entries)."""
    return oracle._value_and_grads._cache_size() + padding._padded_value_and_grads._cache_size()


def run_pass(
    compiled: str, examples: int, hypothesis_seed: int, bounds: tuple[int, int, int]
) -> tuple[int, float, float, dict[str, float], int]:
    """Run the main property over ``examples`` examples; return (count, wall, phases, compiles)."""
    _SECONDS.clear()
    count = 0

    @seed(hypothesis_seed)
    @settings(
        max_examples=examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(networks(max_depth=bounds[0], max_width=bounds[1], max_batch=bounds[2]))
    def main_property(case):
        nonlocal count
        start = time.perf_counter()
        count += 1
        check = compare(case, input_gradient=True, compiled=compiled, timer=_timer)
        target(min(check.worst_ratio, 1e6), label="error/tolerance")
        assert check.ok, check.report()
        _SECONDS["property"] += time.perf_counter() - start

    compiled = _compilations()
    start, start_cpu = time.perf_counter(), time.process_time()
    main_property()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return count, wall, cpu, dict(_SECONDS), _compilations() - compiled


def report(
    label: str, count: int, wall: float, cpu: float, seconds: dict[str, float], compiles: int
) -> str:
    phases = {name: seconds.get(name, 0.0) for name in _PHASES}
    phases["compare, rest"] = seconds.get("property", 0.0) - sum(phases.values())
    phases["hypothesis"] = wall - seconds.get("property", 0.0)
    detail = ", ".join(f"{name} {1e3 * value / count:.2f}" for name, value in phases.items())
    return (
        f"{label:<11} {count:>5} examples {wall:>7.2f} s {count / wall:>7.1f} examples/s "
        f"(CPU {cpu:>6.2f} s) {compiles:>4} compilations\n{'':<11} wall ms per example: {detail}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=400, help="examples per pass")
    parser.add_argument("--oracle", choices=["naive", "fast", "both"], default="both")
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--max-width", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=32)
    args = parser.parse_args()
    bounds = (args.max_depth, args.max_width, args.max_batch)
    print(
        f"main property, networks(max_depth={bounds[0]}, max_width={bounds[1]}, "
        f"max_batch={bounds[2]}), {os.cpu_count()} cores"
    )
    kinds = {"naive": "exact", "fast": "bucket"}
    for kind in ["naive", "fast"] if args.oracle == "both" else [args.oracle]:
        for name, hypothesis_seed in [("cold", 1), ("warm", 2)]:
            result = run_pass(kinds[kind], args.examples, hypothesis_seed, bounds)
            print(report(f"{kind} {name}", *result))


if __name__ == "__main__":
    main()
