"""The optional extras of the commands, imported only when a command needs them.

``jax`` (the ``oracle`` extra) and ``matplotlib`` (the ``plots`` extra) are
not dependencies of the core.  A command that needs one imports it through
``require``: a missing extra becomes ``ExtraMissingError``, which ``main``
reports as one line naming the install command, with exit status 2.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

# What each extra provides: the modules that tell whether it is installed.
EXTRAS = {
    "oracle": ("jax", "optax", "hypothesis", "cloudpickle"),
    "plots": ("matplotlib",),
    "campaign": ("distributed", "jax", "matplotlib", "tqdm"),
    "grade": ("distributed", "jax", "yaml"),
}


class ExtraMissingError(ImportError):
    """An optional extra that a command needs is not installed."""


def _installed(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (optax alone takes
    a tenth of a second); a module set to None in ``sys.modules`` cannot."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


@contextlib.contextmanager
def _without_collection() -> Iterator[None]:
    """No garbage collection while the extras import: jax's import alone
    allocates enough objects to trigger a full collection several times, a
    sixth of its time (``benchmarks/RESULTS.md``), and import-time objects
    are kept for the life of the command anyway.  What exists afterwards is
    frozen (``gc.freeze``): later collections skip it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def require(extra: str, module: str, command: str) -> ModuleType:
    """``import module``, which needs ``extra``; ``ExtraMissingError`` names the fix.

    >>> require("oracle", "manual_bp_reference.compare", "compare").__name__
    'manual_bp_reference.compare'
    """
    try:
        for name in EXTRAS[extra]:
            if not _installed(name):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        with _without_collection():
            return importlib.import_module(module)
    except ImportError as error:
        if isinstance(error, ExtraMissingError):
            raise
        missing = getattr(error, "name", None) or str(error)
        raise ExtraMissingError(
            f"{command} needs {missing}, which is not installed (the {extra!r} extra); "
            f"install it with: pip install 'manual-bp[{extra}]'"
        ) from None
