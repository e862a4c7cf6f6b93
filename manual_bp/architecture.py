"""Layer bookkeeping: which arrays a network of given sizes has, and their shapes.

One home for what every other module needs to know about the layers: the
parameter shapes, the cache keys, the gradient keys in forward and backward
order, and the shapes of the oracle's taps.  (Which side of a kink counts is
a property of the activation: ``Activation.kink_side``.)

Notation (from the seed), for layer sizes ``[n0, n1, ..., nL]`` and batch ``m``::

    Wl: (nl, n(l-1))    Bl: (nl, 1)    Zl, Al: (nl, m)    A0 = X: (n0, m)

A layer with a normalization step (``manual_bp.normalization``; the
``normalization`` keyword: one entry per layer, ``None``, ``"batch"`` or
``"layer"``) adds ``gammal``, ``betal``: (nl, 1); ``Zhatl``, ``Nl``: (nl, m);
and the statistics ``mul``, ``varl``, ``inv_stdl``: (nl, 1) for batch, (1, m)
for layer normalization.  Without it every function here is as in the seed.

A layer with dropout (``manual_bp.dropout``; the ``dropout`` keyword: one
drop probability per layer, the output layer's 0) caches ``Fl = f_l(Zl)``,
the activation before the mask, and the mask ``Ml`` (both (nl, m)) before
``Al = Fl ⊙ Ml / (1 − pl)``; it adds no gradient key and no tap.

>>> cache_keys(2, dropout=(0.5, 0.0))
['A0', 'W1', 'Z1', 'F1', 'M1', 'A1', 'W2', 'Z2', 'A2']

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
>>> param_shapes([2, 3, 1], normalization=("batch", None))
{'W1': (3, 2), 'B1': (3, 1), 'gamma1': (3, 1), 'beta1': (3, 1), 'W2': (1, 3), 'B2': (1, 1)}
>>> gradient_keys(2, normalization=("batch", None))
['W1', 'B1', 'Z1', 'Zhat1', 'gamma1', 'beta1', 'N1', 'A1', 'W2', 'B2', 'Z2']
>>> gradient_keys(2, normalization=("layer", None), staged=True)
['W1', 'B1', 'Z1', 'mu1', 'var1', 'Zhat1', 'gamma1', 'beta1', 'N1', 'A1', 'W2', 'B2', 'Z2']
>>> backward_order(2, normalization=("batch", None))
['Z2', 'W2', 'B2', 'A1', 'N1', 'gamma1', 'beta1', 'Zhat1', 'Z1', 'W1', 'B1']
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

Shape = tuple[int, int]
Normalization = Sequence[str | None]


def _kind(normalization: Normalization, l: int) -> str | None:
    return normalization[l - 1] if normalization else None


def statistic_shape(kind: str, n: int, m: int) -> Shape:
    """``mul``, ``varl``, ``inv_stdl``: ``(nl, 1)`` per unit (batch normalization),
    ``(1, m)`` per sample (layer normalization)."""
    return (n, 1) if kind == "batch" else (1, m)


def param_shapes(
    layer_sizes: Sequence[int], *, normalization: Normalization = ()
) -> dict[str, Shape]:
    """``Wl: (nl, n(l-1))`` and ``Bl: (nl, 1)`` for l = 1..L, in that order,
    with ``gammal``, ``betal``: ``(nl, 1)`` after ``Bl`` of a normalized layer."""
    shapes = {}
    for l in range(1, len(layer_sizes)):
        shapes[f"W{l}"] = (layer_sizes[l], layer_sizes[l - 1])
        shapes[f"B{l}"] = (layer_sizes[l], 1)
        if _kind(normalization, l):
            shapes[f"gamma{l}"] = shapes[f"beta{l}"] = (layer_sizes[l], 1)
    return shapes


def layer_sizes_of(params: Mapping[str, Any], X: Any, depth: int) -> list[int]:
    """``[n0, n1, ..., nL]`` read off ``X`` (n0, m) and ``Wl`` (nl, n(l-1))."""
    return [np.shape(X)[0]] + [np.shape(params[key.W])[0] for key in layer_keys(depth)]


def cache_keys(
    depth: int, *, normalization: Normalization = (), dropout: Sequence[float] = ()
) -> list[str]:
    """What ``forward`` caches: ``A0``, then ``Wl``, ``Zl``, ``Al`` for l = 1..L.

    The backward pass reads ``Zl`` and ``Al`` (for ``f_l'``), ``A(l-1)`` (for
    ``dWl``) and ``Wl`` (for ``dA(l-1)``); ``Bl`` is not needed.  A normalized
    layer also caches ``gammal``, ``mul``, ``varl``, ``inv_stdl``, ``Zhatl``
    and ``Nl`` (between ``Zl`` and ``Al``); ``f_l'`` then reads ``Nl``.  A
    layer with dropout caches ``Fl`` (``f_l`` before the mask, which ``f_l'``
    then reads) and the mask ``Ml`` (which the backward multiplies by again).
    """
    keys = ["A0"]
    for l in range(1, depth + 1):
        keys += [f"W{l}", f"Z{l}"]
        if _kind(normalization, l):
            keys += [f"{name}{l}" for name in ("gamma", "mu", "var", "inv_std", "Zhat", "N")]
        if dropout and dropout[l - 1]:
            keys += [f"F{l}", f"M{l}"]
        keys.append(f"A{l}")
    return keys


def _normalization_gradient_keys(l: int, staged: bool) -> list[str]:
    """Forward order: the statistics (staged form only), ``Zhatl``, ``gammal``,
    ``betal``, ``Nl``."""
    return ([f"mu{l}", f"var{l}"] if staged else []) + [
        f"Zhat{l}",
        f"gamma{l}",
        f"beta{l}",
        f"N{l}",
    ]


def gradient_keys(
    depth: int,
    input_gradient: bool = False,
    *,
    normalization: Normalization = (),
    staged: bool = False,
) -> list[str]:
    """The keys ``backward`` returns, in forward order: ``A0`` (with
    ``input_gradient``), then ``W1, B1, Z1, A1, W2, ...``; ``AL`` is not one.

    A normalized layer adds ``Zhatl, gammal, betal, Nl`` after ``Zl`` (and
    ``mul, varl`` before them with the ``staged`` backward)."""
    keys = ["A0"] if input_gradient else []
    for l in range(1, depth + 1):
        keys += [f"W{l}", f"B{l}", f"Z{l}"]
        if _kind(normalization, l):
            keys += _normalization_gradient_keys(l, staged)
        keys += [f"A{l}"] if l < depth else []
    return keys


def backward_order(
    depth: int,
    input_gradient: bool = False,
    *,
    normalization: Normalization = (),
    staged: bool = False,
) -> list[str]:
    """The same keys in the order the backward pass computes them:
    ``ZL, WL, BL, A(L-1), Z(L-1), ...`` (and ``A0`` last with ``input_gradient``);
    a normalized layer starts with ``Nl, gammal, betal, Zhatl`` (``varl, mul``)."""
    keys = []
    for l in range(depth, 0, -1):
        if _kind(normalization, l):
            names = _normalization_gradient_keys(l, staged)
            keys += names[-1:] + names[-3:-1] + names[-4:-3] + names[:-4][::-1]
        keys += [f"Z{l}", f"W{l}", f"B{l}"]
        if l > 1 or input_gradient:
            keys.append(f"A{l - 1}")
    return keys


def gradient_shapes(
    layer_sizes: Sequence[int],
    m: int,
    input_gradient: bool = False,
    *,
    normalization: Normalization = (),
    staged: bool = False,
) -> dict[str, Shape]:
    """The shape of every gradient, keyed and ordered as ``backward_order``."""
    shapes = {
        **param_shapes(layer_sizes, normalization=normalization),
        **tap_shapes(layer_sizes, m, normalization=normalization),
    }
    shapes["A0"] = (layer_sizes[0], m)
    order = backward_order(
        len(layer_sizes) - 1, input_gradient, normalization=normalization, staged=staged
    )
    return {key: shapes[key] for key in order}


def tap_shapes(
    layer_sizes: Sequence[int], m: int, *, normalization: Normalization = ()
) -> dict[str, Shape]:
    """The oracle's zero taps: ``Zl`` for l = 1..L and ``Al`` for l = 1..L-1, each ``(nl, m)``;
    a normalized layer adds ``mul``, ``varl`` (``statistic_shape``), ``Zhatl``, ``Nl``.

    Added to the variable of the same name, a tap changes no value; the
    gradient with respect to it is the gradient with respect to the variable.
    """
    depth = len(layer_sizes) - 1
    shapes = {}
    for l in range(1, depth + 1):
        shapes[f"Z{l}"] = (layer_sizes[l], m)
        kind = _kind(normalization, l)
        if kind:
            shapes[f"mu{l}"] = shapes[f"var{l}"] = statistic_shape(kind, layer_sizes[l], m)
            shapes[f"Zhat{l}"] = shapes[f"N{l}"] = (layer_sizes[l], m)
        if l < depth:
            shapes[f"A{l}"] = (layer_sizes[l], m)
    return shapes


class LayerKeys(NamedTuple):
    """Layer l's number and dict keys: ``Wl``, ``Bl``, ``Zl``, ``Al`` and ``A(l-1)``."""

    l: int
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
        LayerKeys(l, f"W{l}", f"B{l}", f"Z{l}", f"A{l}", f"A{l - 1}") for l in range(1, depth + 1)
    )
