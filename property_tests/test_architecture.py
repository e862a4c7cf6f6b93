"""The layout's rules, as ARCHITECTURE.md states them, checked on the code itself.

* Imports run one way: ``manual_bp`` core <- ``reference`` <- ``manual_bp.cli``,
  and nothing imports the tests or the benchmarks (the import-linter
  contracts in ``pyproject.toml``).
* jax is configured in exactly one module, and no module of ``reference/``
  needs an E402 suppression for it.
* No public function of ``reference/`` takes more than 6 positional
  parameters, and its options (parameters with a default) are keyword-only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import manual_bp
import manual_bp_reference

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("manual_bp", "reference", "property_tests", "benchmarks", "docs")
MAX_POSITIONAL = 6
# Optional *data*, not options: ``compare(case)`` compares manual_bp's own
# gradients, ``compare(case, grads)`` anyone's.
OPTIONAL_DATA = {
    "manual_bp_reference.compare.compare": ["grads"],
    # The network as the seed's lists (sizes, activations, loss) or as one Net.
    "manual_bp_reference.check.check_gradients": ["activations", "loss"],
}


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def test_the_import_contracts_are_kept():
    """``lint-imports`` reads the contracts from pyproject.toml and checks every
    import of the four top-level packages, direct or through a chain."""
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
         "lint_imports_command()"],
        cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _calls_jax_config_update(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "jax.config.update":
            return True
    return False


def test_jax_is_configured_in_exactly_one_module():
    configuring = [
        str(path.relative_to(ROOT))
        for path in python_files(*SOURCE_FOLDERS)
        if _calls_jax_config_update(path)
    ]
    assert configuring == ["reference/jax_setup.py"]


def test_no_module_of_the_oracle_side_suppresses_e402():
    offending = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files("reference")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "noqa: E402" in line
    ]
    assert offending == []


def _public_functions(package=manual_bp_reference):
    """Every public function and public method defined (with ``def``) in ``package``."""

    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value
            elif inspect.isclass(value):
                for method_name, method in vars(value).items():
                    function = getattr(method, "__func__", method)
                    if not method_name.startswith("_") and inspect.isfunction(function):
                        yield f"{module.__name__}.{name}.{method_name}", function


def _unwrapped(function):
    """The Python function behind a ``jax.jit`` or ``functools`` wrapper."""
    return inspect.unwrap(function)


PUBLIC_FUNCTIONS = dict(_public_functions())


@pytest.mark.parametrize("name", sorted(PUBLIC_FUNCTIONS))
def test_public_functions_of_reference_take_few_positional_parameters(name):
    function = PUBLIC_FUNCTIONS[name]
    parameters = inspect.signature(_unwrapped(function)).parameters.values()
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls")
    ]
    assert len(positional) <= MAX_POSITIONAL, f"{name}: {len(positional)} positional parameters"
    options = [p.name for p in positional if p.default is not p.empty]
    assert options == OPTIONAL_DATA.get(name, []), f"{name}: options {options} not keyword-only"


# The checks of users' code take objects (a Net, Conventions, Settings), not
# loose keywords: the code, what it computes, how it is written, how to check.
CHECKS = [
    "manual_bp_reference.check.check_gradients",
    "manual_bp_reference.layer_check.checking.check_layer",
    "manual_bp_reference.optimizer_check.check_optimizer",
]
MAX_PARAMETERS = 8


@pytest.mark.parametrize("name", CHECKS)
def test_the_checks_take_at_most_eight_parameters(name):
    module, _, function = name.rpartition(".")
    parameters = inspect.signature(getattr(importlib.import_module(module), function)).parameters
    named = [p for p in parameters.values() if p.kind is not p.VAR_KEYWORD]
    assert len(named) <= MAX_PARAMETERS, f"{name}: {[p.name for p in named]}"
    assert "settings" in parameters


# The few public functions above MAX_PARAMETERS, each for a reason.
WIDE = {
    # The hot loop of backward calls it positionally, once per layer.
    "manual_bp.layers.Dense.backward": 9,
    # The seed's per-layer lists, one keyword each, as Net.of takes them.
    "manual_bp_reference.cases.Case.of": 9,
    # The case, the gradients, and what to compare of them (keys, input
    # gradient, reduction), plus a manual run already at hand and hooks.
    "manual_bp_reference.compare.compare": 10,
    # A Hypothesis strategy's bounds, each tuned alone by a property.
    "manual_bp_reference.strategies.networks": 10,
}


def test_no_public_function_takes_more_than_about_eight_parameters():
    """One value describes a network (``Net``), a check's settings
    (``Settings``), a user's conventions (``Conventions``) and a training
    schedule (``Schedule``): the entry points stay narrow."""
    wide = {}
    for package in (manual_bp, manual_bp_reference):
        for name, function in _public_functions(package):
            parameters = inspect.signature(_unwrapped(function)).parameters.values()
            named = [
                p.name
                for p in parameters
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in ("self", "cls")
            ]
            if len(named) > WIDE.get(name, MAX_PARAMETERS):
                wide[name] = named
    assert wide == {}


def test_nothing_imports_hypothesis_internals():
    """Hypothesis's ``hypothesis.internal`` is not a public API: it may change
    in any release.  (The tests may read it; the product and oracle do not.)"""
    offending = [
        str(path.relative_to(ROOT))
        for path in python_files("manual_bp", "reference", "benchmarks")
        if "hypothesis.internal" in path.read_text()
    ]
    assert offending == []
