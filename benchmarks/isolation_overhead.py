"""What running a user's code in a child process costs: the README's check, before and after.

The README's example, a correct course-style ``backprop(params, X, Y)`` on
``[2, 3, 1]`` (tanh, sigmoid, binary cross-entropy), checked with the default
100 examples, five ways, interleaved in one run (round-robin, so that a
change of the machine's load falls on every variant alike):

* ``manual-bp check my_net.py:backprop --layers 2,3,1 --activations
  tanh,sigmoid`` as a new process, the wall time a student waits:
  **before** (the code at ``--baseline``, a git worktree of it, where the
  function ran in the checker's own process), **after** (a child process per
  check, the default) and after with ``--no-isolation``;
* ``check_gradients(backprop, ...)`` in one Python process: the first call
  (jax compiles the oracle, the child starts) and two more (warm), half a
  second apart, before and after;
* one call of the function: bare, through ``isolate=False`` (copies,
  capture) and through the child's pipe.

Every variant runs the same checker on the same cases, so the differences are
the isolation's: starting the child (a Python that imports NumPy), sending
the function, and one pipe round trip per call of the user's code.

Usage::

    python -m benchmarks.isolation_overhead [--repeats 5] [--baseline 873cd03]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.environment import print_environment

HOME = Path(__file__).resolve().parent.parent
# The last commit before the isolation: its checker called the function in-process.
BASELINE = "873cd03"

STUDENT = """
import numpy as np

def backprop(params, X, Y):
    m = X.shape[1]
    A1 = np.tanh(params["W1"] @ X + params["B1"])
    A2 = 1 / (1 + np.exp(-(params["W2"] @ A1 + params["B2"])))
    dZ2 = (A2 - Y) / m
    dZ1 = (params["W2"].T @ dZ2) * (1 - A1 ** 2)
    return {"W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True)}
"""

# The API timing: the first call and two more, in one fresh process, half a
# second apart (a user between two checks; the isolation starts its next child
# in that time).
API = textwrap.dedent("""
    import sys, time, json
    sys.path.insert(0, sys.argv[1])
    from my_net import backprop
    from manual_bp_reference.check import check_gradients
    times = []
    for _ in range(3):
        start = time.perf_counter()
        check_gradients(backprop, [2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
        times.append(time.perf_counter() - start)
        time.sleep(0.5)
    print(json.dumps(times))
""")

# One call of the user's function, in this process and through the child's pipe.
PER_CALL = textwrap.dedent("""
    import sys, time, json
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from my_net import backprop
    from manual_bp_reference.isolation import Isolation, Sandbox
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(3, 2)), "B1": rng.normal(size=(3, 1)),
              "W2": rng.normal(size=(1, 3)), "B2": rng.normal(size=(1, 1))}
    X, Y = rng.normal(size=(2, 16)), rng.random((1, 16))
    result = {}
    for isolate in (False, True):
        with Sandbox({"backprop": backprop}, Isolation(isolate=isolate)) as sandbox:
            call = sandbox.function("backprop", ("params", "X", "Y"))
            call(params, X, Y)
            start = time.perf_counter()
            for _ in range(1000):
                call(params, X, Y)
            result[isolate] = (time.perf_counter() - start) / 1000
    start = time.perf_counter()
    for _ in range(1000):
        backprop(params, X, Y)
    result["bare"] = (time.perf_counter() - start) / 1000
    print(json.dumps([result["bare"], result[False], result[True]]))
""")


@contextlib.contextmanager
def baseline_checkout(revision: str) -> Iterator[Path]:
    """A git worktree of ``revision`` (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="manual-bp-baseline-"))
    subprocess.run(["git", "-C", str(HOME), "worktree", "add", "-q", "--detach", str(folder),
                    revision], check=True)  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(HOME), "worktree", "remove", "--force", str(folder)],
                       check=False)  # fmt: skip


def run(command: list[str], code: Path | None, cwd: Path) -> tuple[float, str]:
    """Wall seconds and stdout of ``command``, with ``code`` first on the path."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE, help="the revision before the isolation")
    options = parser.parse_args()
    print_environment("isolation overhead")
    cli = [sys.executable, "-m", "manual_bp", "check", "my_net.py:backprop", "--layers", "2,3,1",
           "--activations", "tanh,sigmoid"]  # fmt: skip
    api = [sys.executable, "-c", API]
    with tempfile.TemporaryDirectory() as work, baseline_checkout(options.baseline) as before:
        folder = Path(work)
        (folder / "my_net.py").write_text(STUDENT)
        variants = {
            "manual-bp check, before": (cli, before),
            "manual-bp check, after (child process)": (cli, None),
            "manual-bp check, after --no-isolation": ([*cli, "--no-isolation"], None),
            "check_gradients, before": ([*api, work], before),
            "check_gradients, after (child process)": ([*api, work], None),
        }
        wall: dict[str, list[float]] = {name: [] for name in variants}
        first: dict[str, list[float]] = {name: [] for name in variants}
        warm: dict[str, list[float]] = {name: [] for name in variants}
        per_call: list[list[float]] = []
        for _ in range(options.repeats):
            for name, (command, code) in variants.items():
                seconds, out = run(command, code, folder)
                wall[name].append(seconds)
                if command[1] == "-c":
                    calls = json.loads(out)
                    first[name].append(calls[0])
                    warm[name].extend(calls[1:])
            per_call.append(json.loads(run([sys.executable, "-c", PER_CALL, work], None,
                                           folder)[1]))  # fmt: skip

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.3f} [{min(values):.3f}]"

    print(f"\nmedians of {options.repeats} interleaved runs (min in brackets), seconds")
    print(f"{'variant':<42} {'process wall':>16} {'1st call':>16} {'later calls':>16}")
    for name in variants:
        print(f"{name:<42} {cell(wall[name]):>16} {cell(first[name]):>16} {cell(warm[name]):>16}")
    for label, series, after, before_name in (
        ("manual-bp check", wall, "manual-bp check, after (child process)",
         "manual-bp check, before"),
        ("check_gradients, later calls", warm, "check_gradients, after (child process)",
         "check_gradients, before"),
    ):  # fmt: skip
        ratio = statistics.median(series[after]) / statistics.median(series[before_name])
        extra = statistics.median(series[after]) - statistics.median(series[before_name])
        print(f"{label}: after/before {ratio:.3f} ({extra * 1000:+.0f} ms)")
    bare, here, child = (statistics.median(column) * 1e6 for column in zip(*per_call, strict=True))
    print(
        f"one call of the 2-3-1 backprop (m = 16), medians of 1000: bare {bare:.0f} us, "
        f"isolate=False {here:.0f} us, child process {child:.0f} us"
    )


if __name__ == "__main__":
    main()
