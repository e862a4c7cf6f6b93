"""The docstring examples of the oracle side, run under the name it is installed as.

pytest's ``--doctest-modules`` imports a file by its path, and a file of the
folder ``reference/`` would come in as a second copy of the package under the
name ``reference`` (a second jax setup, a second layer-kind registry).  So the
oracle side's examples run here, from the modules ``manual_bp_reference``
imports; ``manual_bp``'s still run through ``--doctest-modules``.
"""

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import manual_bp_reference

# pytest's own default for its doctests (doctest_optionflags = ELLIPSIS).
FLAGS = doctest.ELLIPSIS


def _with_examples() -> list[str]:
    found = pkgutil.walk_packages(manual_bp_reference.__path__, "manual_bp_reference.")
    names = ["manual_bp_reference", *(info.name for info in found)]
    return sorted(
        name
        for name in names
        if ">>>" in Path(importlib.util.find_spec(name).origin).read_text()  # type: ignore[union-attr]
    )


@pytest.mark.parametrize("name", _with_examples())
def test_the_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, report=True)
    assert result.attempted > 0, f"{name}: no example was found"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_examples_are_found_where_the_folder_has_them():
    """Every file of ``reference/`` with an example is a module tested above."""
    folder = Path(manual_bp_reference.__file__).parent
    files = {path for path in folder.rglob("*.py") if ">>>" in path.read_text()}
    tested = {Path(importlib.util.find_spec(name).origin) for name in _with_examples()}  # type: ignore[union-attr]
    assert files == tested
