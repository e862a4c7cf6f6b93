"""A user's function by name: ``path/to/file.py:NAME`` or ``package.module:NAME``;
``NAME`` may be dotted (``net.backprop``: the method of an object the file makes).

What ``manual-bp check`` and ``manual-bp campaign --target`` load; a
campaign's workers load it again by the same name, so a file path must be
valid on every worker (an absolute path, on a shared file system).

>>> load_function("manual_bp:backward").__name__
'backward'
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path


def load_function(spec: str, *, argument: str = "FUNCTION") -> Callable[..., object]:
    """The callable ``spec`` names; a ``ValueError`` naming ``argument`` if there is none."""
    if not isinstance(spec, str):
        raise TypeError(f"{argument}: expected FILE.py:NAME or MODULE:NAME, got {spec!r}")
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(f"{argument}: expected FILE.py:NAME or MODULE:NAME, got {spec!r}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"{argument}: no file {where!r}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"{argument}: {where!r} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.pop(0)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"{argument}: cannot import module {where!r} ({error})") from None
    # A dotted name reaches an attribute: "net.backprop" is the method of the
    # module's object net (Nielsen's Network, made at the file's top level).
    function: object = module
    for part in name.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        raise ValueError(f"{argument}: {where!r} has no function {name!r}")
    return function


# Functions loaded by ``loaded_once``: the spec and its file's state, to the function.
_LOADED: dict[tuple[str, tuple[int, int] | None], Callable[..., object]] = {}


def loaded_once(
    source: Callable[..., object] | str, *, argument: str = "FUNCTION"
) -> Callable[..., object]:
    """A callable ``source`` itself, or ``load_function(source)``, loaded again
    only when its file changed (its modification time or size): what a
    wrapper calling the user's function on every case loads it with, where
    the code runs."""
    if callable(source):
        return source
    spec = source
    where = spec.rpartition(":")[0]
    state = None
    if where.endswith(".py") and Path(where).is_file():
        stat = Path(where).stat()
        state = (stat.st_mtime_ns, stat.st_size)
    key = (spec, state)
    if key not in _LOADED:
        _LOADED[key] = load_function(spec, argument=argument)
    return _LOADED[key]
