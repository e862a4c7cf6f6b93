"""The optional extras of the commands, imported only when a command needs them.

``jax`` (the ``oracle`` extra) and ``matplotlib`` (the ``plots`` extra) are
not dependencies of the core.  A command that needs one imports it through
``require``: a missing extra becomes ``ExtraMissingError``, which ``main``
reports as one line naming the install command, with exit status 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# What each extra provides, and the module that tells whether it is installed.
EXTRAS = {"oracle": "jax", "plots": "matplotlib"}


class ExtraMissingError(ImportError):
    """An optional extra that a command needs is not installed."""


def require(extra: str, module: str, command: str) -> ModuleType:
    """``import module``, which needs ``extra``; ``ExtraMissingError`` names the fix.

    >>> require("oracle", "reference.compare", "compare").__name__
    'reference.compare'
    """
    try:
        importlib.import_module(EXTRAS[extra])
        return importlib.import_module(module)
    except ImportError as error:
        if isinstance(error, ExtraMissingError):
            raise
        raise ExtraMissingError(
            f"{command} needs {EXTRAS[extra]}, which is not installed ({error}); "
            f"install it with: pip install 'manual-bp[{extra}]'"
        ) from None
