"""Backprop written one sample at a time, checked as written.

Nielsen's ``Network.backprop(self, x, y)`` takes one sample, reads the
parameters from ``self.weights`` and ``self.biases``, and returns ``(nabla_b,
nabla_w)``, the gradient of that sample's cost; his ``update_mini_batch``
sums them.  ``OneSampleAtATime`` is what a check runs in its place: called
like a batch backprop, ``(params, X, Y)``, it calls the user's function on
each sample and returns their gradients summed, or averaged (the gradient of
the batch's mean loss), in the user's own container.  The loop over samples
is the user's calling convention, not our backprop's: ``manual_bp`` loops
over layers only.

It runs where the user's code runs (``manual_bp_reference.isolation``), so
it imports NumPy alone.

>>> import numpy as np

from manual_bp_reference.user_functions import loaded_once
>>> class Network:  # Nielsen's, the quadratic cost, one hidden layer
...     def __init__(self):
...         self.weights, self.biases = [], []
...     def backprop(self, x, y):
...         z1 = self.weights[0] @ x + self.biases[0]; a1 = 1 / (1 + np.exp(-z1))
...         z2 = self.weights[1] @ a1 + self.biases[1]; a2 = 1 / (1 + np.exp(-z2))
...         delta2 = (a2 - y) * a2 * (1 - a2)
...         delta1 = (self.weights[1].T @ delta2) * a1 * (1 - a1)
...         return [delta1, delta2], [delta1 @ x.T, delta2 @ a1.T]
>>> per_sample = OneSampleAtATime(Network().backprop, "columns", average=True)
>>> params = ([np.zeros((3, 1)), np.zeros((1, 1))], [np.ones((3, 2)), np.ones((1, 3))])
>>> nabla_b, nabla_w = per_sample(params, np.zeros((2, 4)), np.ones((1, 4)))
>>> print(*(w.shape for w in nabla_w))
(3, 2) (1, 3)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from manual_bp_reference.user_functions import loaded_once


def holds_its_network(function: object) -> bool:
    """A method ``backprop(x, y)`` of an object with ``weights`` and ``biases``
    lists: Nielsen's ``Network.backprop``, which takes no params argument."""
    if not inspect.ismethod(function):
        return False
    owner = function.__self__
    if not (hasattr(owner, "weights") and hasattr(owner, "biases")):
        return False
    try:
        inspect.signature(function).bind(None, None)
    except (TypeError, ValueError):
        return False
    return True


def interleaved(biases: list[Any], weights: list[Any]) -> list[Any]:
    """Nielsen's ``(biases, weights)`` lists as one list ``W1, B1, W2, B2, ...``."""
    return [array for pair in zip(weights, biases, strict=True) for array in pair]


def _in_order(params: object) -> list[Any]:
    """The parameter arrays in the order ``W1, B1, W2, B2, ...``, from a dict or
    a list in that order, or from Nielsen's ``(biases, weights)`` tuple (what
    ``Conventions.to_user`` gives each container)."""
    if isinstance(params, Mapping):
        return list(params.values())
    if isinstance(params, tuple):  # the "nabla" container
        biases, weights = cast(tuple[list[Any], list[Any]], params)
        return interleaved(biases, weights)
    return list(cast(list[Any], params))


def _added(total: Any, value: Any) -> Any:
    """``total + value`` through lists, tuples and dicts of arrays."""
    if isinstance(value, Mapping):
        return {key: _added(total[key], value[key]) for key in value}
    if isinstance(value, list | tuple):
        return type(value)(_added(t, v) for t, v in zip(total, value, strict=True))
    return np.asarray(total) + np.asarray(value)


def _scaled(total: Any, factor: float) -> Any:
    if isinstance(total, Mapping):
        return {key: _scaled(value, factor) for key, value in total.items()}
    if isinstance(total, list | tuple):
        return type(total)(_scaled(value, factor) for value in total)
    return np.asarray(total) * factor


@dataclass(frozen=True)
class OneSampleAtATime:
    """A batch backprop ``(params, X, Y)`` made of a per-sample one.

    ``function``: Nielsen's ``backprop(x, y)`` method (its object's
    ``weights`` and ``biases`` set from ``params`` first, and its
    ``num_layers`` and ``sizes`` where it has them) or a function
    ``backprop(params, x, y)``; ``"FILE.py:NAME"`` is loaded at the first
    call, where the code runs.  Sample ``k`` is column ``k`` of ``X`` and
    ``Y`` (``(n0, 1)``, ``(C, 1)``; an integer label is ``Y[k]``), or row ``k``
    with ``layout="rows"``.  The per-sample returns, which must share one
    structure, are summed, and divided by ``m`` when ``average``.
    """

    function: Callable[..., object] | str
    layout: str
    average: bool

    def __call__(self, params: object, X: np.ndarray, Y: np.ndarray) -> object:
        function = loaded_once(self.function, argument="backprop")
        network = holds_its_network(function)
        if network:
            arrays = _in_order(params)
            owner = function.__self__  # type: ignore[attr-defined]
            owner.weights, owner.biases = list(arrays[0::2]), list(arrays[1::2])
            # The book's backprop loops over range(2, self.num_layers): the
            # object's depth and sizes are the checked net's, not its own.
            if hasattr(owner, "num_layers"):
                owner.num_layers = len(owner.weights) + 1
            if hasattr(owner, "sizes"):
                owner.sizes = [owner.weights[0].shape[1], *(w.shape[0] for w in owner.weights)]
        rows = self.layout == "rows"
        m = X.shape[0] if rows else X.shape[1]
        total: Any = None
        for k in range(m):
            x = X[k : k + 1, :] if rows else X[:, k : k + 1]
            if Y.ndim == 1:
                y: Any = Y[k]
            else:
                y = Y[k : k + 1, :] if rows else Y[:, k : k + 1]
            result = function(x, y) if network else function(params, x, y)
            # A copy of the first: code may hand back the same arrays every call.
            total = _scaled(result, 1.0) if total is None else _added(total, result)
        return _scaled(total, 1.0 / m) if self.average else total
