"""How a user's function travels to the child: by name, or pickled by value
with cloudpickle, with the files and lines of its code (so that a traceback
in the child shows them)."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from manual_bp_reference.isolation.records import ORACLE_ROOT, PRODUCT_ROOT, PROTOCOL

Source = Callable[..., object] | str  # a function, or "file.py:NAME" / "module:NAME"


def sendable(function: Source, cloudpickle: Any) -> tuple[str, object]:
    """How a function travels to the child: by name, or pickled by value."""
    if isinstance(function, str):
        return ("spec", function)
    functions = list(_functions_of(function))
    # The user's modules of every function it runs (a wrapper of ours holds
    # the user's function): by value, so the child never imports them (a
    # test module or a notebook's helper may import jax).
    names = {getattr(item, "__module__", None) or "" for item in [function, *functions]}
    modules = {
        module.__name__: module
        for module in map(sys.modules.get, names)
        if module is not None and _is_users(module)
    }
    with _PICKLE_LOCK:
        for module in modules.values():
            cloudpickle.register_pickle_by_value(module)
        try:
            data = cloudpickle.dumps(function, protocol=PROTOCOL)
            return ("pickled", (data, *_code_places(functions)))
        except Exception as error:
            raise TypeError(
                f"cannot send {getattr(function, '__name__', function)!r} to the child process "
                f"that runs it ({type(error).__name__}: {error}); pass isolate=False to run "
                "it in this process, without the time and memory limits"
            ) from None
        finally:
            for module in modules.values():
                cloudpickle.unregister_pickle_by_value(module)


_PICKLE_LOCK = threading.Lock()

# cloudpickle names every code object it sends by value "<dynamic-code>"; a
# traceback in the child would then show no file and no line of the user's.
# The file of each code object and the source lines go along, put back there.
_DYNAMIC = "<dynamic-code>"
CodeKey = tuple[str, int]  # (co_name, co_firstlineno)


def _functions_of(root: object) -> Iterator[types.FunctionType]:
    """The Python functions a callable runs: itself (a bound method's function,
    a callable object's class and attributes), and the functions and classes
    its globals and closures name, recursively."""
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types.MethodType):
            stack += [item.__func__, type(item.__self__)]
        elif isinstance(item, types.FunctionType):
            yield item
            code_names = set(_names(item.__code__))
            stack += [v for k, v in item.__globals__.items() if k in code_names]
            stack += [c.cell_contents for c in item.__closure__ or () if _has_contents(c)]
        elif isinstance(item, type) and item.__module__ not in ("builtins",):
            stack += list(vars(item).values())
        elif isinstance(item, staticmethod | classmethod):
            stack.append(item.__func__)
        elif callable(item) and not isinstance(item, type):
            # A callable object (a wrapper of ours) and what it holds.
            stack += [type(item), *getattr(item, "__dict__", {}).values()]


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018  (an empty cell raises)
    except ValueError:
        return False
    return True


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _code_places(
    functions: list[types.FunctionType],
) -> tuple[dict[CodeKey, str], dict[str, list[str]]]:
    """Where each code object of ``functions`` (what a function runs,
    ``_functions_of``) was written, and those files' lines."""
    import linecache

    places: dict[CodeKey, str] = {}
    for item in functions:
        for code in _codes(item.__code__):
            places[(code.co_name, code.co_firstlineno)] = code.co_filename
    sources = {}
    for filename in set(places.values()):
        lines = linecache.getlines(filename)
        if lines and sum(map(len, lines)) < 2**22:  # not a huge generated file
            sources[filename] = lines
    return places, sources


def put_back_places(
    function: object, places: Mapping[CodeKey, str], sources: Mapping[str, list[str]]
) -> None:
    """In the child: the files of ``function``'s code objects, and their lines."""
    import linecache

    for filename, lines in sources.items():
        linecache.cache[filename] = (sum(map(len, lines)), None, list(lines), filename)
    for item in _functions_of(function):
        if item.__code__.co_filename == _DYNAMIC:
            item.__code__ = _placed(item.__code__, places)


def _placed(code: types.CodeType, places: Mapping[CodeKey, str]) -> types.CodeType:
    consts = tuple(
        _placed(c, places) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    filename = places.get((code.co_name, code.co_firstlineno), code.co_filename)
    return code.replace(co_filename=filename, co_consts=consts)


def _is_users(module: Any) -> bool:
    """A module of the user's (pickled by value, so the child need not import
    it): not ``__main__`` (cloudpickle sends that by value anyway), nor from an
    installed package or the standard library."""
    path = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or path is None:
        return False
    path = str(Path(path).resolve())
    installed = ("site-packages", "dist-packages")
    stdlib = str(Path(os.__file__).resolve().parent)
    ours = tuple(os.path.join(root, "") for root in (ORACLE_ROOT, PRODUCT_ROOT))
    return not (any(part in path for part in installed) or path.startswith((stdlib, *ours)))
