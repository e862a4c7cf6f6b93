"""Examples per second of the main gradient-match property, naive vs padded oracle.

What it measures
----------------
The main property (``property_tests.test_gradients.assert_matches_oracle``:
manual forward and backward, the oracle, the tolerance, the comparison) is
run by Hypothesis over ``networks(max_depth, max_width, max_batch)`` --
depth <= 4, widths <= 16, batch <= 32 by default, a random shape per example
-- once with the naive oracle (``oracle_gradients(..., padded=False)``: one
``jax.jit`` compilation per new shape and activation list) and once with the
padded one (``reference.padding``: one compilation per bucket).

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

    python benchmarks/throughput.py                  # 400 examples per pass
    python benchmarks/throughput.py --examples 100 --oracle fast
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypothesis import HealthCheck, Phase, given, seed, settings

import reference.compare as compare_module
from property_tests.strategies import networks
from property_tests.test_gradients import assert_matches_oracle
from reference import oracle, padding

_SECONDS: dict[str, float] = defaultdict(float)
# The functions verify_network calls, looked up in reference.compare at call time.
_PHASES = {
    "manual forward": "forward",
    "manual backward": "backward",
    "oracle": "oracle_gradients",
    "tolerance": "tolerances",
    "comparison": "compare",
}


def _timed(phase: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _SECONDS[phase] += time.perf_counter() - start

    return wrapper


def _install(padded: bool) -> dict[str, Callable]:
    """Time every phase, and choose the oracle; returns the originals to restore."""
    originals = {name: getattr(compare_module, name) for name in _PHASES.values()}
    for phase, name in _PHASES.items():
        function = originals[name]
        if name == "oracle_gradients":
            function = functools.partial(function, padded=padded)
        setattr(compare_module, name, _timed(phase, function))
    return originals


def _compilations() -> int:
    """Compiled variants of both oracles so far (jit cache entries)."""
    return oracle._value_and_grads._cache_size() + padding.padded_value_and_grads._cache_size()


def run_pass(examples: int, hypothesis_seed: int, max_depth: int, max_width: int, max_batch: int):
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
    @given(networks(max_depth=max_depth, max_width=max_width, max_batch=max_batch))
    def main_property(case):
        nonlocal count
        start = time.perf_counter()
        count += 1
        assert_matches_oracle(case)
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
    phases["verify_network, rest"] = seconds.get("property", 0.0) - sum(phases.values())
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
    kinds = {"naive": False, "fast": True}
    for kind in ["naive", "fast"] if args.oracle == "both" else [args.oracle]:
        originals = _install(padded=kinds[kind])
        try:
            for name, hypothesis_seed in [("cold", 1), ("warm", 2)]:
                print(report(f"{kind} {name}", *run_pass(args.examples, hypothesis_seed, *bounds)))
        finally:
            for name, function in originals.items():
                setattr(compare_module, name, function)


if __name__ == "__main__":
    main()
