"""Layer bookkeeping: which arrays a network of given sizes has, and their shapes.

One home for what every other module needs to know about the layers: the
parameter shapes, the cache keys, the gradient keys in forward and backward
order, and the shapes of the oracle's taps.  (Which side of a kink counts is
a property of the activation: ``Activation.kink_side``.)

Notation (from the seed), for layer sizes ``[n0, n1, ..., nL]`` and batch ``m``::

    Wl: (nl, n(l-1))    Bl: (nl, 1)    Zl, Al: (nl, m)    A0 = X: (n0, m)

>>> param_shapes([2, 3, 1])
{'W1': (3, 2), 'B1': (3, 1), 'W2': (1, 3), 'B2': (1, 1)}
>>> cache_keys(2)
['A0', 'W1', 'Z1', 'A1', 'W2', 'Z2', 'A2']
>>> gradient_keys(2, input_gradient=True)
['A0', 'W1', 'B1', 'Z1', 'A1', 'W2', 'B2', 'Z2']
>>> backward_order(2)
['Z2', 'W2', 'B2', 'A1', 'Z1', 'W1', 'B1']
>>> tap_shapes([2, 3, 1], m=5)
{'Z1': (3, 5), 'A1': (3, 5), 'Z2': (1, 5)}
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

Shape = tuple[int, int]


def param_shapes(layer_sizes: Sequence[int]) -> dict[str, Shape]:
    """``Wl: (nl, n(l-1))`` and ``Bl: (nl, 1)`` for l = 1..L, in that order."""
    shapes = {}
    for l in range(1, len(layer_sizes)):
        shapes[f"W{l}"] = (layer_sizes[l], layer_sizes[l - 1])
        shapes[f"B{l}"] = (layer_sizes[l], 1)
    return shapes


def layer_sizes_of(params: Mapping[str, object], X: object, depth: int) -> list[int]:
    """``[n0, n1, ..., nL]`` read off ``X`` (n0, m) and ``Wl`` (nl, n(l-1))."""
    return [np.shape(X)[0]] + [np.shape(params[f"W{l}"])[0] for l in range(1, depth + 1)]


def cache_keys(depth: int) -> list[str]:
    """What ``forward`` caches: ``A0``, then ``Wl``, ``Zl``, ``Al`` for l = 1..L.

    The backward pass reads ``Zl`` and ``Al`` (for ``f_l'``), ``A(l-1)`` (for
    ``dWl``) and ``Wl`` (for ``dA(l-1)``); ``Bl`` is not needed.
    """
    return ["A0"] + [f"{name}{l}" for l in range(1, depth + 1) for name in "WZA"]


def gradient_keys(depth: int, input_gradient: bool = False) -> list[str]:
    """The keys ``backward`` returns, in forward order: ``A0`` (with
    ``input_gradient``), then ``W1, B1, Z1, A1, W2, ...``; ``AL`` is not one."""
    keys = ["A0"] if input_gradient else []
    for l in range(1, depth + 1):
        keys += [f"W{l}", f"B{l}", f"Z{l}"] + ([f"A{l}"] if l < depth else [])
    return keys


def backward_order(depth: int, input_gradient: bool = False) -> list[str]:
    """The same keys in the order the backward pass computes them:
    ``ZL, WL, BL, A(L-1), Z(L-1), ...`` (and ``A0`` last with ``input_gradient``)."""
    keys = []
    for l in range(depth, 0, -1):
        keys += [f"Z{l}", f"W{l}", f"B{l}"]
        if l > 1 or input_gradient:
            keys.append(f"A{l - 1}")
    return keys


def gradient_shapes(
    layer_sizes: Sequence[int], m: int, input_gradient: bool = False
) -> dict[str, Shape]:
    """The shape of every gradient, keyed and ordered as ``backward_order``."""
    shapes = {**param_shapes(layer_sizes), **tap_shapes(layer_sizes, m)}
    shapes["A0"] = (layer_sizes[0], m)
    return {key: shapes[key] for key in backward_order(len(layer_sizes) - 1, input_gradient)}


def tap_shapes(layer_sizes: Sequence[int], m: int) -> dict[str, Shape]:
    """The oracle's zero taps: ``Zl`` for l = 1..L and ``Al`` for l = 1..L-1, each ``(nl, m)``.

    Added to the variable of the same name, a tap changes no value; the
    gradient with respect to it is the gradient with respect to the variable.
    """
    depth = len(layer_sizes) - 1
    shapes = {}
    for l in range(1, depth + 1):
        shapes[f"Z{l}"] = (layer_sizes[l], m)
        if l < depth:
            shapes[f"A{l}"] = (layer_sizes[l], m)
    return shapes


class LayerKeys(NamedTuple):
    """The dict keys of layer l: ``Wl``, ``Bl``, ``Zl``, ``Al`` and ``A(l-1)``."""

    W: str
    B: str
    Z: str
    A: str
    A_prev: str


@functools.cache
def layer_keys(depth: int) -> tuple[LayerKeys, ...]:
    """The keys of layers 1..L, built once per depth (formatting them on every
    call cost about 4 µs of a 45 µs step of the seed's network)."""
    return tuple(
        LayerKeys(f"W{l}", f"B{l}", f"Z{l}", f"A{l}", f"A{l - 1}") for l in range(1, depth + 1)
    )
