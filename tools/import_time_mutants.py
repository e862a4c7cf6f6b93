"""Run the mutants mutmut cannot switch on: functions that run at import.

mutmut switches a mutant on in a process that has already imported
``manual_bp`` (its fork server collects the tests first).  A function called
while the module is imported, such as ``activations._elementwise`` and
``activations.elementwise_backward`` building the ``ACTIVATIONS`` registry,
has already run unmutated by then, so every one of its mutants "survives"
untested.  This script runs each named mutant in a fresh ``pytest`` process
with ``MUTANT_UNDER_TEST`` set *before* the import, from mutmut's
``mutants/`` folder and with the ``[tool.mutmut]`` pytest options::

    .venv/bin/python tools/import_time_mutants.py [--tests PATH ...] NAME_OR_PATTERN ...

(patterns as ``mutmut run`` takes them, e.g.
``"manual_bp.activations.x__elementwise__mutmut_*"``).  It first runs the
tests with no mutant and stops (exit 2) unless they pass; then it prints one
line per mutant, ``killed`` (a test failed, exit 1) or its pytest exit
status, and exits 1 if any mutant was not killed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

# The tests that exercise every activation through a network, by default.
TESTS = ("property_tests/test_activations.py", "property_tests/test_gradients.py",
         "property_tests/test_curvature.py", "property_tests/test_fast_path.py")  # fmt: skip


def mutant_names(mutants: Path, patterns: list[str]) -> list[str]:
    """Every mutant in ``mutants/``' metadata matching one of ``patterns``."""
    names = []
    for meta in sorted((mutants / "manual_bp").rglob("*.py.meta")):
        keys = json.loads(meta.read_text())["exit_code_by_key"]
        names += [key for key in keys if any(fnmatch.fnmatch(key, p) for p in patterns)]
    return names


def run(name: str, mutants: Path, tests: list[str], options: list[str]) -> int:
    """pytest's exit status with ``name`` switched on from the first import."""
    path = os.pathsep.join(filter(None, [str(mutants), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MUTANT_UNDER_TEST": name, "CI": "1", "PYTHONPATH": path}
    command = [sys.executable, "-m", "pytest", "-x", "-q", *options, *tests]
    return subprocess.run(command, cwd=mutants, env=env, capture_output=True).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="+", metavar="NAME_OR_PATTERN")
    parser.add_argument("--tests", nargs="+", default=list(TESTS), help="pytest paths")
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder")
    args = parser.parse_args(argv)
    mutants = args.mutants.resolve()
    if not (mutants / "manual_bp").is_dir():
        parser.error(f"--mutants: no manual_bp/ in {mutants} (run mutmut first)")
    names = mutant_names(mutants, args.patterns)
    if not names:
        parser.error(f"NAME_OR_PATTERN: no mutant matches {args.patterns}")
    options = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    clean = run("", mutants, args.tests, options.get("pytest_add_cli_args", []))
    if clean != 0:  # a failing test would "kill" every mutant
        print(f"the tests fail without a mutant (pytest exit {clean}): fix them first")
        return 2
    survivors = 0
    for name in names:
        status = run(name, mutants, args.tests, options.get("pytest_add_cli_args", []))
        survivors += status != 1
        print(f"{name}: {'killed' if status == 1 else f'NOT killed (pytest exit {status})'}",
              flush=True)  # fmt: skip
    print(f"{len(names) - survivors} of {len(names)} killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
