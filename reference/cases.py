"""The case record the oracle side passes around.

``Case`` is one network and batch: the network's spec (a ``manual_bp.Net``)
plus data, ``params``, ``X``, ``Y`` (and dropout masks), with the dtype of
the manual computation (that of ``W1``).  It is frozen, and so are its
arrays: ``Case`` copies what it is given into read-only arrays, so no step
of the oracle side can change a case or a caller's arrays.  Every function
of ``reference/`` that needs a case
takes one.  The Hypothesis strategies that draw cases are in
``manual_bp_reference.strategies``; the limits they draw within are here.

>>> import numpy as np
>>> case = Case.of({"W1": np.ones((1, 2)), "B1": np.zeros((1, 1))}, np.ones((2, 3)),
...                np.ones((1, 3)), ["sigmoid"], "binary_cross_entropy")
>>> case.layer_sizes, case.dtype, case.m
([2, 1], 'float64', 3)
>>> case.X.flags.writeable
False
>>> case.net.layer_sizes, case.net.loss
([2, 1], 'binary_cross_entropy')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from manual_bp.architecture import layer_sizes_of, param_shapes
from manual_bp.dropout import check_masks
from manual_bp.layers import Dense
from manual_bp.model import DNN
from manual_bp.net import Net
from manual_bp.network import backward, forward
from manual_bp.validation import check_activations, check_shape

MAX_DEPTH = 6
MAX_WIDTH = 32
MAX_BATCH = 64
PARAM_BOUND = 10.0
INPUT_BOUND = 100.0
DTYPES = ("float64", "float32")

Array = np.ndarray


def array_literal(value: Array) -> str:
    """``value`` as exact, pasteable Python: ``np.array([...], dtype='float64')``."""
    return f"np.array({value.tolist()!r}, dtype={value.dtype.name!r})"


def _frozen(value: object, name: str) -> Array:
    """A read-only copy: the case owns it, and the caller's array stays theirs."""
    array = np.array(value, copy=True)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got shape {array.shape}")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Case:
    """One network and batch, as the oracle side passes it around: a spec
    (``net``) plus data (``params``, ``X``, ``Y``, dropout ``masks``).

    Every array is copied and made read-only; the arrays must have the net's
    shapes (``ValueError`` naming the array otherwise).  ``dtype`` is the
    dtype of the manual computation, that of ``W1``.  The repr is exact and
    pasteable: it is what a failing property prints.  ``Case.of`` makes one
    from the seed's per-layer lists.

    Parameters
    ----------
    net : manual_bp.Net
        The network: its layers (activation, normalization, drop
        probability), loss and weight decay ``l2 / 2 * sum ||Wl||^2``.  The
        oracle side differentiates the training mode (the batch's statistics).
    params : Mapping[str, ndarray]
        ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1) for l = 1..L, and ``gammal``,
        ``betal`` (nl, 1) of each normalized layer.
    X : ndarray
        (n0, m) inputs, one sample per column.
    Y : ndarray
        (nL, m) targets.
    masks : Mapping[str, ndarray], keyword only
        ``Ml`` (nl, m), zeros and ones, for every layer with a drop
        probability above 0: the mask is part of the case, so the oracle
        differentiates the same forward with the same mask.
    """

    net: Net
    params: Mapping[str, Array]
    X: Array
    Y: Array
    masks: Mapping[str, Array] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        net = self.net
        if not isinstance(net, Net):
            raise TypeError(
                f"net: expected a manual_bp.Net, got {type(net).__name__}; for the per-layer "
                "lists use Case.of(params, X, Y, activations, loss)"
            )
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params: expected a dict of arrays, got {type(self.params).__name__}")
        X, Y = _frozen(self.X, "X"), _frozen(self.Y, "Y")
        sizes = net.layer_sizes
        expected = param_shapes(sizes, normalization=net.normalization)
        if set(self.params) != set(expected):
            raise ValueError(
                f"params: expected keys {sorted(expected)}, got {sorted(map(str, self.params))}"
            )
        params = {key: _frozen(self.params[key], f"params[{key!r}]") for key in expected}
        for key, shape in expected.items():
            check_shape(params[key], f"params[{key!r}]", shape)
        check_shape(X, "X", (sizes[0], X.shape[1]))
        check_shape(Y, "Y", (sizes[-1], X.shape[1]))
        masks = check_masks(self.masks, sizes, X.shape[1], self.dropout)
        frozen_masks = {
            key: _frozen(mask.astype(params["W1"].dtype), f"masks[{key!r}]")
            for key, mask in masks.items()
        }
        object.__setattr__(self, "masks", MappingProxyType(frozen_masks))
        object.__setattr__(self, "params", MappingProxyType(params))
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)

    @classmethod
    def of(
        cls,
        params: Mapping[str, Array],
        X: object,
        Y: object,
        activations: Sequence[str],
        loss: str,
        *,
        normalization: Sequence[str | None] = (),
        l2: float = 0.0,
        dropout: Sequence[float] = (),
        masks: Mapping[str, Array] | None = None,
    ) -> Case:
        """The case of the seed's per-layer lists: the layer sizes read from
        ``params`` and ``X``; ``normalization`` ``()`` or one entry per
        layer, ``None``, ``"batch"`` or ``"layer"``, the output layer's
        ``None``; ``dropout`` ``()`` or one drop probability per layer, the
        output layer's 0, with ``masks``."""
        if not isinstance(params, Mapping):
            raise TypeError(f"params: expected a dict of arrays, got {type(params).__name__}")
        names = tuple(check_activations(list(activations), len(activations)))
        depth = len(names)
        if not all(f"W{l}" in params for l in range(1, depth + 1)):
            raise ValueError(
                f"params: expected keys W1..W{depth} and B1..B{depth}, got "
                f"{sorted(map(str, params))}"
            )
        for name, given in (("normalization", normalization), ("dropout", dropout)):
            if given and len(tuple(given)) != depth:
                raise ValueError(
                    f"{name}: expected one entry per layer ({depth}), the output layer's "
                    f"{'None' if name == 'normalization' else '0'}, got {tuple(given)!r}"
                )
        sizes = layer_sizes_of(params, np.asarray(X), depth)
        kinds, rates = tuple(normalization) or (None,) * depth, tuple(dropout) or (0.0,) * depth
        layers = tuple(map(Dense, sizes[1:], names, kinds, rates))
        net = Net(sizes[0], layers, loss, l2)
        return cls(net, params, np.asarray(X), np.asarray(Y), masks=masks or {})

    @classmethod
    def of_network(
        cls, net: DNN, X: object, Y: object, *, masks: Mapping[str, Array] | None = None
    ) -> Case:
        """The case of a ``DNN`` on one batch: its network and params; ``X``
        and ``Y`` in the net's dtype.  With ``masks`` (one ``Ml`` per dropped
        layer, ``manual_bp.dropout.draw_masks``) its dropout too; without, the
        net as inference runs it."""
        X, Y = np.asarray(X, dtype=net.dtype), np.asarray(Y, dtype=net.dtype)
        spec = net.net if masks else net.net.without_dropout()
        return cls(spec, net.params, X, Y, masks=masks or {})

    @property
    def activations(self) -> tuple[str, ...]:
        """``f_l``, l = 1..L, by name."""
        return self.net.activations

    @property
    def loss(self) -> str:
        """The loss name."""
        return self.net.loss

    @property
    def l2(self) -> float:
        """The weight decay in the loss, ``l2 / 2 * sum ||Wl||^2``; 0: none."""
        return self.net.l2

    @property
    def normalization(self) -> tuple[str | None, ...]:
        """``()`` (none) or each layer's normalization, the output layer's ``None``."""
        return self.net.normalization if self.net.normalized else ()

    @property
    def dropout(self) -> tuple[float, ...]:
        """``()`` (none) or each layer's drop probability, the output layer's 0."""
        return self.net.dropout if self.net.dropped else ()

    @property
    def regularized(self) -> bool:
        """Whether the case has weight decay or dropout."""
        return bool(self.l2 or self.dropout)

    @property
    def depth(self) -> int:
        """L, the number of layers with weights."""
        return self.net.depth

    @property
    def m(self) -> int:
        """The batch size."""
        return self.X.shape[1]

    @property
    def layer_sizes(self) -> list[int]:
        """``[n0, n1, ..., nL]``."""
        return self.net.layer_sizes

    @property
    def dtype(self) -> str:
        """The dtype of the manual computation: that of ``W1``."""
        return self.params["W1"].dtype.name

    def forward(self) -> tuple[Array, dict[str, Array]]:
        """``manual_bp.network.forward`` of the case (with its masks)."""
        return forward(self.params, self.X, self.net, masks=dict(self.masks) or None)

    def backward(
        self, cache: Mapping[str, Array], *, input_gradient: bool = False
    ) -> dict[str, Array]:
        """``manual_bp.network.backward`` of the case from its ``cache`` (the
        decayed ``Wl`` read from ``params``)."""
        return backward(cache, self.Y, self.net, input_gradient=input_gradient, params=self.params)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """Hypothesis prints a falsifying case with this: exact, pasteable values."""
        printer.text(repr(self))

    def __repr__(self) -> str:
        literal = array_literal
        params = ",\n".join(f"        {key!r}: {literal(v)}" for key, v in self.params.items())
        masks = ", ".join(f"{key!r}: {literal(v)}" for key, v in self.masks.items())
        return (
            f"Case(  # layer_sizes={self.layer_sizes}, dtype={self.dtype!r}, m={self.m}\n"
            f"    net={self.net!r},\n"
            f"    params={{\n{params},\n    }},\n"
            f"    X={literal(self.X)},\n    Y={literal(self.Y)},\n"
            + (f"    masks={{{masks}}},\n" if self.masks else "")
            + ")"
        )
