"""The optional extras of the commands, imported only when a command needs them.

``jax`` (the ``oracle`` extra) and ``matplotlib`` (the ``plots`` extra) are
not dependencies of the core.  A command that needs one imports it through
``require``: a missing extra becomes ``ExtraMissingError``, which ``main``
reports as one line naming the install command, with exit status 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# What each extra provides: the modules that tell whether it is installed.
EXTRAS = {
    "oracle": ("jax", "optax", "hypothesis", "cloudpickle"),
    "plots": ("matplotlib",),
    "campaign": ("distributed", "jax", "matplotlib", "tqdm"),
}


class ExtraMissingError(ImportError):
    """An optional extra that a command needs is not installed."""


def require(extra: str, module: str, command: str) -> ModuleType:
    """``import module``, which needs ``extra``; ``ExtraMissingError`` names the fix.

    >>> require("oracle", "manual_bp_reference.compare", "compare").__name__
    'manual_bp_reference.compare'
    """
    try:
        for name in EXTRAS[extra]:
            importlib.import_module(name)
        return importlib.import_module(module)
    except ImportError as error:
        if isinstance(error, ExtraMissingError):
            raise
        missing = getattr(error, "name", None) or str(error)
        raise ExtraMissingError(
            f"{command} needs {missing}, which is not installed (the {extra!r} extra); "
            f"install it with: pip install 'manual-bp[{extra}]'"
        ) from None
