"""A whole network's forward and backward, checked as the deeplearning.ai
course writes them.

The course splits backprop in two functions whose arguments it names:
``L_model_forward(X, parameters) -> (AL, caches)`` and
``L_model_backward(AL, Y, caches) -> grads``; in its regularization
assignment ``forward_propagation_with_dropout(X, parameters, keep_prob)`` and
``backward_propagation_with_dropout(X, Y, cache, keep_prob)``, or
``backward_propagation_with_regularization(X, Y, cache, lambd)``.
``ForwardBackward`` is what a check runs in their place: called like a
batch backprop, ``(params, X, Y)``, it calls the forward, then the backward
with the forward's output and cache, each argument passed by its name
(``ARGUMENTS``).  With dropout it also returns the masks the forward drew,
found in its cache (``find_masks``), so the oracle applies the same ones.

It runs where the user's code runs (``manual_bp_reference.isolation``), so
it imports NumPy alone.

>>> import numpy as np

from manual_bp_reference.user_functions import loaded_once
>>> def forward(X, parameters):
...     Z = parameters["W1"] @ X + parameters["b1"]
...     return Z, (X, Z)
>>> def backward(AL, Y, cache):
...     X, _ = cache
...     dZ = (AL - Y) / X.shape[1]
...     return {"dW1": dZ @ X.T, "db1": dZ.sum(axis=1, keepdims=True)}
>>> pair = ForwardBackward(forward, backward)
>>> grads = pair({"W1": np.ones((1, 2)), "b1": np.zeros((1, 1))}, np.ones((2, 3)), np.zeros((1, 3)))
>>> sorted(grads), grads["dW1"].tolist()
(['dW1', 'db1'], [[2.0, 2.0]])
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from manual_bp_reference.user_functions import loaded_once

# What each of the functions' arguments may be called, by what it receives:
# the data, the parameters, the forward's cache and output, the keep
# probability of dropout and the L2 strength (the course's lambd).
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "X": ("x",),
    "Y": ("y",),
    "parameters": ("parameters", "params", "param", "theta"),
    "cache": ("cache", "caches"),
    "keep_prob": ("keep_prob", "keepprob", "keep"),
    "lambd": ("lambd", "lambda_", "lam", "reg", "l2"),
}
# The forward's output: AL, A3, a2, yhat, out, ...
OUTPUT = re.compile(r"^(a(l|\d+)|y_?hat|out(put)?|probs|scores)$", re.IGNORECASE)
# Keys of what ``ForwardBackward`` returns with dropout (never a gradient's name).
GRADS, MASKS, KEEP = "__grads__", "__masks__", "__keep_prob__"


def _receives(name: str) -> str | None:
    """Which value an argument called ``name`` receives, or None."""
    lowered = name.lower()
    for value, names in ARGUMENTS.items():
        if lowered in names:
            return value
    return "out" if OUTPUT.match(name) else None


# What to declare when a function takes a value the check was not given.
_DECLARE = {
    "keep_prob": "the net has no dropout: give its hidden layers dropout=1 - keep_prob "
    "(Dense(..., dropout=...); --dropout)",
    "lambd": "no L2 is declared: Conventions(l2=lambd, l2_divided_by_m=True) "
    "(--l2 LAMBD --l2-divided-by-m)",
}


def unfilled(parameters: list[tuple[str, bool]], role: str, available: Collection[str]) -> None:
    """A TypeError naming the first argument (``(name, has_default)``) of the
    ``role`` function that no available value fills, and what to declare."""
    for name, has_default in parameters:
        value = _receives(name)
        if has_default or (value is not None and value in available):
            continue
        if value in _DECLARE:
            raise TypeError(f"{role}: it takes {name!r}, but {_DECLARE[value]}")
        known = ", ".join(
            "the forward's output (AL, A3, ...)" if value == "out" else value for value in available
        )
        raise TypeError(
            f"{role}: cannot tell what to pass as its argument {name!r} "
            f"(it is given, by name: {known})"
        )


def _parameters(function: Callable[..., object]) -> list[tuple[str, bool]]:
    return [
        (p.name, p.default is not p.empty)
        for p in inspect.signature(function).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def parameters_of(source: Callable[..., object] | str, role: str) -> list[tuple[str, bool]] | None:
    """``(name, has_default)`` of each argument of a function, read without
    running the user's code: its signature, or for ``"FILE.py:NAME"`` the
    file's ``def NAME`` (a ``ValueError`` naming ``role`` when the file
    defines no such name at all); None when it cannot be read."""
    if callable(source):
        try:
            return _parameters(source)
        except (TypeError, ValueError):  # no signature to read: it is called and judged
            return None
    where, _, name = source.rpartition(":")
    if not where.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(where).read_text(), where)
    except (SyntaxError, ValueError, OSError):  # loading it says what is wrong, as a verdict
        return None
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            defaults = len(args.defaults)
            found = [(a.arg, i >= len(positional) - defaults) for i, a in enumerate(positional)]
            found += [
                (a.arg, d is not None)
                for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
            ]
            return found
        for inner in ast.walk(node):  # any name the file may bind, however it binds it
            if isinstance(inner, ast.Name):
                defined.add(inner.id)
            elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(inner.name)
            elif isinstance(inner, ast.Import | ast.ImportFrom):
                defined |= {alias.asname or alias.name for alias in inner.names}
    if name.split(".")[0] not in defined:  # "net.backprop": the object net
        raise ValueError(f"{role}: {where!r} has no function {name!r}")
    return None


def arguments(function: Callable[..., object], role: str, available: Mapping[str, object]) -> dict:
    """The keyword arguments of ``function`` by name, from ``available``; an
    argument without a default that names nothing available is a TypeError
    naming it (``role``: ``forward`` or ``backward``)."""
    parameters = _parameters(function)
    unfilled(parameters, role, list(available))
    chosen = {}
    for name, _ in parameters:
        value = _receives(name)
        if value is not None and value in available:
            chosen[name] = available[value]
    return chosen


def _arrays(value: object) -> list[np.ndarray]:
    """Every array in a cache, in the order it holds them (tuples, lists, dicts)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, Mapping):
        return [a for item in value.values() for a in _arrays(item)]
    if isinstance(value, list | tuple):
        return [a for item in value for a in _arrays(item)]
    return []


def _is_mask(array: np.ndarray, keep_prob: float) -> bool:
    """A mask: booleans, integers 0 and 1, or floats each 0, 1 or ``1/keep_prob``
    (a mask already scaled), with at least one float that is not 0 (an
    all-zero float array may as well be activations)."""
    if array.dtype == bool:
        return True
    if array.dtype.kind in "iu":
        return bool(np.all((array == 0) | (array == 1)))
    if array.dtype.kind != "f":
        return False
    kept = array[array != 0]
    if kept.size == 0:
        return False
    return bool(np.all(np.isclose(kept, 1.0, rtol=1e-6, atol=0) |
                       np.isclose(kept, 1.0 / keep_prob, rtol=1e-6, atol=0)))  # fmt: skip


def find_masks(
    cache: object, shapes: Mapping[str, tuple[int, int]], *, keep_prob: float = 0.5
) -> dict[str, np.ndarray]:
    """The dropout masks in ``cache``, by our key (``M1``, ...): for each layer in
    order, the first array not taken yet of that layer's shape that holds a
    mask (``_is_mask``), integer or boolean ones first (the course's ``D1 =
    (... < keep_prob).astype(int)``); as 0/1 floats.  A layer whose mask is
    not found is left out."""
    found: dict[str, np.ndarray] = {}
    taken: set[int] = set()
    candidates = _arrays(cache)
    for key, shape in shapes.items():
        fits = [
            a
            for a in candidates
            if id(a) not in taken and a.shape == shape and _is_mask(a, keep_prob)
        ]
        fits.sort(key=lambda a: a.dtype.kind == "f")  # integer and boolean masks first
        if fits:
            taken.add(id(fits[0]))
            found[key] = (fits[0] != 0).astype(np.float64)
    return found


@dataclass(frozen=True)
class ForwardBackward:
    """A batch backprop ``(params, X, Y)`` made of a forward and a backward.

    ``forward`` and ``backward`` are callables or ``"FILE.py:NAME"`` (loaded at
    the first call, where the code runs).  The forward gets, by name, ``X``,
    the parameters and ``keep_prob``, and returns ``(output, cache)``; the
    backward gets ``X``, ``Y``, the output (``AL``, ``A3``, ...), the cache,
    ``keep_prob`` and ``lambd``, and returns the gradients.  With dropout the
    masks found in the cache are returned too: ``mask_rows`` pairs our key (``M1``) with the
    layer's width, and the answer is then ``{GRADS: grads, MASKS: masks}``.
    """

    forward: Callable[..., object] | str
    backward: Callable[..., object] | str
    keep_prob: float | None = None
    lambd: float | None = None
    mask_rows: tuple[tuple[str, int], ...] = ()
    layout: str = "columns"

    def call_text(self) -> str:
        """The lines that call the user's two functions on ``params``, ``X``,
        ``Y``, arguments by name as the check passes them (for a pasteable case)."""
        values = {"X": "X", "Y": "Y", "parameters": "params", "cache": "cache", "out": "AL",
                  "keep_prob": repr(self.keep_prob), "lambd": repr(self.lambd)}  # fmt: skip
        lines = []
        for role, source, result in (("forward", self.forward, "AL, cache"),
                                     ("backward", self.backward, "grads")):  # fmt: skip
            name = (
                source.rpartition(":")[2]
                if isinstance(source, str)
                else getattr(source, "__name__", role)
            )
            parameters = parameters_of(source, role) or []
            given = [  # by keyword: exact whatever the arguments' order
                f"{argument}={values[value]}"
                for argument, _ in parameters
                if (value := _receives(argument)) is not None and values.get(value) != "None"
            ]
            lines.append(f"{result} = {name}({', '.join(given)})")
        return "\n".join(lines)

    def __call__(self, params: object, X: np.ndarray, Y: np.ndarray) -> object:
        forward = loaded_once(self.forward, argument="forward")
        backward = loaded_once(self.backward, argument="backward")
        available: dict[str, object] = {"X": X, "parameters": params}
        if self.keep_prob is not None:
            available["keep_prob"] = self.keep_prob
        if self.lambd is not None:
            available["lambd"] = self.lambd
        result = forward(**arguments(forward, "forward", available))
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                f"forward returned {type(result).__name__}, expected a pair (output, cache)"
            )
        output, cache = result
        available.update(Y=Y, out=output, cache=cache)
        grads = backward(**arguments(backward, "backward", available))
        if not self.mask_rows:
            return grads
        m = X.shape[0] if self.layout == "rows" else X.shape[1]
        shapes = {
            key: (m, rows) if self.layout == "rows" else (rows, m) for key, rows in self.mask_rows
        }
        assert self.keep_prob is not None  # masks are asked for with dropout only
        found = find_masks(cache, shapes, keep_prob=self.keep_prob)
        masks = {key: found.get(key) for key in shapes}  # None: not found
        if self.layout == "rows":
            masks = {key: None if mask is None else mask.T for key, mask in masks.items()}
        return {GRADS: grads, MASKS: masks, KEEP: self.keep_prob}


class Dropped(NamedTuple):
    """The dropout a ``ForwardBackward`` call ran: the keep probability, and
    each dropped layer's mask found in the forward's cache (ours, 0/1), or
    None where none was found."""

    keep_prob: float
    masks: dict[str, Any]


def unwrap(raw: object) -> tuple[object, Dropped | None]:
    """``(grads, dropped)`` of what a ``ForwardBackward`` returned (``dropped``
    None without dropout, and for any other function's return value)."""
    if isinstance(raw, Mapping) and GRADS in raw and MASKS in raw and KEEP in raw:
        return raw[GRADS], Dropped(float(raw[KEEP]), dict(raw[MASKS]))
    return raw, None
