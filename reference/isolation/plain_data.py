"""What a user's call returns, as plain data (``plain``) and unpickled by an
allow-list (``loads_plain``): no object of the user's ever runs code in the
checker."""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# A returned structure deeper than this comes back as an ``Opaque``.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Opaque:
    """A returned object that is not plain data, by what it was."""

    type_name: str
    text: str

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


def type_name(value: object) -> str:
    """``value``'s type as a user would name it (an ``Opaque``'s original type)."""
    return value.type_name if isinstance(value, Opaque) else type(value).__name__


def plain(value: object, *, depth: int = 0) -> object:
    """``value`` as plain data: dicts, lists, tuples, arrays, numbers, strings, None.

    Mappings become dicts, sequences lists or tuples (a namedtuple a tuple),
    anything with ``__array__`` (a jax or torch array, ``np.matrix``) an
    ``np.ndarray``, an object array of numbers a float array; anything else an
    ``Opaque``.  Runs where the user's code runs.
    """
    if depth > MAX_DEPTH:
        return Opaque(type_name(value), "nested too deeply")
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    for base in (bool, int, float, complex, str, bytes):  # an IntEnum, a str subclass
        if isinstance(value, base):
            try:
                return base(value)  # type: ignore[arg-type]  # each base its own kind
            except Exception:
                return Opaque(type_name(value), _safe_repr(value))
    if isinstance(value, np.generic):
        return value if value.dtype.kind in "biufc" else Opaque(type_name(value), repr(value))
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception as error:  # a mapping of the user's that cannot be read
            return Opaque(type_name(value), f"its items() raised {type(error).__name__}")
        return {plain(k, depth=depth + 1): plain(v, depth=depth + 1) for k, v in items}
    if isinstance(value, list):
        return [plain(v, depth=depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v, depth=depth + 1) for v in value)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        try:
            array = np.array(value)  # a base-class copy
        except Exception as error:
            return Opaque(type_name(value), f"not an array ({error})")
        if array.dtype.kind == "O":
            try:
                return array.astype(np.float64)
            except (TypeError, ValueError):
                return Opaque(type_name(value), "an array of objects")
        if array.dtype.kind not in "biufc":
            return Opaque(type_name(value), f"an array of dtype {array.dtype}")
        return np.asarray(array)
    text = _safe_repr(value)
    return Opaque(type_name(value), text)


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as error:  # a repr that raises says so
        text = f"repr raised {type(error).__name__}"
    return text if len(text) <= 200 else text[:200] + "..."


# What the checker unpickles: plain data only (no user class, no code).
_ALLOWED = {
    ("builtins", "complex"), ("builtins", "slice"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    (__name__, "Opaque"),
}  # fmt: skip


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def loads_plain(data: bytes) -> Any:
    """Unpickle what a child sent: plain data only."""
    return _PlainUnpickler(io.BytesIO(data)).load()
