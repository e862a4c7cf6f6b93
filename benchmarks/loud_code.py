"""What capturing a user's output costs: a file that prints a million lines.

A student's file that prints ``loading i`` a million times when it loads, and
whose function prints a million lines per call, run three ways, interleaved
(round-robin, so that a change of the machine's load falls on each alike):

* **bare**: the same loop in a new Python, ``sys.stdout`` on ``/dev/null``
  (what it costs at a terminal, without the terminal);
* **before** and **after**: ``Sandbox`` loading the file in a child process
  (the import's million prints), then one call (the call's million prints),
  with the code at ``--baseline`` (a git worktree) and with this checkout.

Usage::

    python -m benchmarks.loud_code [--repeats 5] [--baseline da9dcac]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import textwrap
from pathlib import Path

from benchmarks.environment import print_environment
from benchmarks.isolation_overhead import HOME, baseline_checkout, run

# The last commit whose capture paid a Python call per write.
BASELINE = "da9dcac"

LOUD = """
for i in range(10**6):
    print("loading", i)

def f(x):
    for i in range(10**6):
        print("step", i)
    return x
"""

BARE = """
import os, sys, time
sys.stdout = open(os.devnull, "w")
start = time.perf_counter()
for i in range(10**6):
    print("loading", i)
seconds = time.perf_counter() - start
sys.stdout = sys.__stdout__
print(seconds)
"""

SANDBOX = """
import json, time
from manual_bp_reference.isolation import Isolation, Sandbox

with Sandbox({"f": "loud.py:f"}, Isolation(timeout=600, load_timeout=600)) as sandbox:
    start = time.perf_counter()
    sandbox.start()
    loaded = time.perf_counter() - start
    f = sandbox.function("f", ("x",))
    start = time.perf_counter()
    f(1)
    called = time.perf_counter() - start
    assert f.last.output.lines == 10**6, f.last.output
print(json.dumps([loaded, called]))
"""


def code_folder(checkout: Path, into: Path) -> Path:
    """A folder importing ``manual_bp`` and ``manual_bp_reference`` from ``checkout``."""
    into.mkdir()
    (into / "manual_bp").symlink_to(checkout / "manual_bp")
    (into / "manual_bp_reference").symlink_to(checkout / "reference")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE)
    options = parser.parse_args()
    print_environment()
    python = str(Path(__import__("sys").executable))
    times: dict[str, list[float]] = {
        "bare": [], "before: load": [], "before: call": [], "after: load": [], "after: call": []
    }  # fmt: skip
    with baseline_checkout(options.baseline) as old, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "loud.py").write_text(textwrap.dedent(LOUD))
        codes = {
            "before": code_folder(old, work / "before"),
            "after": code_folder(HOME, work / "after"),
        }
        for _ in range(options.repeats):
            times["bare"].append(float(run([python, "-c", BARE], None, work)[1]))
            for name, code in codes.items():
                loaded, called = json.loads(run([python, "-c", SANDBOX], code, work)[1])
                times[f"{name}: load"].append(loaded)
                times[f"{name}: call"].append(called)
    print(f"\n10^6 prints, median of {options.repeats} (min-max), seconds:\n")
    print("| run | median | range |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")


if __name__ == "__main__":
    main()
