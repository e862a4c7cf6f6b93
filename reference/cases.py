"""The case record the oracle side passes around.

``Case`` is one network and batch: ``params``, ``X``, ``Y``, the activation
names and the loss, with the dtype of the manual computation (that of
``W1``).  It is frozen, and so are its arrays: ``Case`` copies what it is
given into read-only arrays, so no step of the oracle side can change a case
or a caller's arrays.  Every function of ``reference/`` that needs a case
takes one.  The Hypothesis strategies that draw cases are in
``manual_bp_reference.strategies``; the limits they draw within are here.

>>> import numpy as np
>>> case = Case({"W1": np.ones((1, 2)), "B1": np.zeros((1, 1))}, np.ones((2, 3)),
...             np.ones((1, 3)), ["sigmoid"], "binary_cross_entropy")
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
from typing import Any

import numpy as np

from manual_bp.architecture import layer_sizes_of, param_shapes
from manual_bp.dropout import check_masks
from manual_bp.dropout import resolve as resolve_dropout
from manual_bp.losses import LOSSES
from manual_bp.model import DNN
from manual_bp.net import Net
from manual_bp.network import dense_layers
from manual_bp.normalization import resolve
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
    """One network and batch, as the oracle side passes it around.

    Every array is copied and made read-only; the shapes must chain
    (``ValueError`` naming the array otherwise).  ``dtype`` is the dtype of the
    manual computation, that of ``W1``.  The repr is exact and pasteable: it
    is what a failing property prints.

    Parameters
    ----------
    params : Mapping[str, ndarray]
        ``Wl`` (nl, n(l-1)) and ``Bl`` (nl, 1) for l = 1..L.
    X : ndarray
        (n0, m) inputs, one sample per column.
    Y : ndarray
        (nL, m) targets.
    activations : tuple[str, ...]
        L activation names.
    loss : str
        The loss name.
    normalization : tuple[str | None, ...], keyword only
        ``()`` (none) or one entry per layer, ``None``, ``"batch"`` or
        ``"layer"``, the output layer's ``None`` (``manual_bp.normalization``);
        then ``params`` also holds ``gammal``, ``betal`` of each normalized
        layer.  The oracle side differentiates the training mode (the
        batch's statistics).
    l2 : float, keyword only
        The weight decay in the loss, ``l2 / 2 * sum ||Wl||^2``
        (``manual_bp.losses.l2_penalty``); 0 (default): none.
    dropout : tuple[float, ...], keyword only
        ``()`` (none) or one drop probability per layer, the output layer's 0
        (``manual_bp.dropout.resolve``), with ``masks``.
    masks : Mapping[str, ndarray], keyword only
        ``Ml`` (nl, m), zeros and ones, for every layer with a drop
        probability above 0: the mask is part of the case, so the oracle
        differentiates the same forward with the same mask.
    """

    params: Mapping[str, Array]
    X: Array
    Y: Array
    activations: Sequence[str]
    loss: str
    normalization: tuple[str | None, ...] = field(default=(), kw_only=True)
    l2: float = field(default=0.0, kw_only=True)
    dropout: tuple[float, ...] = field(default=(), kw_only=True)
    masks: Mapping[str, Array] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params: expected a dict of arrays, got {type(self.params).__name__}")
        activations = tuple(check_activations(list(self.activations), len(self.activations)))
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {self.loss!r}")
        X, Y = _frozen(self.X, "X"), _frozen(self.Y, "Y")
        depth = len(activations)
        if not all(f"W{l}" in self.params for l in range(1, depth + 1)):
            raise ValueError(
                f"params: expected keys W1..W{depth} and B1..B{depth}, got "
                f"{sorted(map(str, self.params))}"
            )
        sizes = layer_sizes_of(self.params, X, depth)
        normalization = self.normalization
        if normalization:
            normalization = resolve(list(normalization)[:-1], depth) if depth > 1 else (None,)
            if tuple(self.normalization) != normalization:
                raise ValueError(
                    "normalization: expected one entry per layer, the output layer's None, "
                    f"got {self.normalization!r}"
                )
            normalization = normalization if any(normalization) else ()
        object.__setattr__(self, "normalization", normalization)
        expected = param_shapes(sizes, normalization=normalization)
        if set(self.params) != set(expected):
            raise ValueError(
                f"params: expected keys {sorted(expected)}, got {sorted(map(str, self.params))}"
            )
        params = {key: _frozen(self.params[key], f"params[{key!r}]") for key in expected}
        for key, shape in expected.items():
            check_shape(params[key], f"params[{key!r}]", shape)
        check_shape(Y, "Y", (sizes[-1], X.shape[1]))
        l2 = self.l2
        if isinstance(l2, bool) or not isinstance(l2, int | float) or not 0 <= l2 < np.inf:
            raise ValueError(f"l2: expected a finite number >= 0, got {l2!r}")
        object.__setattr__(self, "l2", float(l2))
        dropout = self.dropout
        if dropout:
            dropout = resolve_dropout(list(dropout)[:-1], depth) if depth > 1 else (0.0,)
            if tuple(self.dropout) != dropout:
                raise ValueError(
                    "dropout: expected one drop probability per layer, the output layer's 0, "
                    f"got {self.dropout!r}"
                )
            dropout = dropout if any(dropout) else ()
        masks = check_masks(self.masks, sizes, X.shape[1], dropout)
        frozen_masks = {
            key: _frozen(mask.astype(params["W1"].dtype), f"masks[{key!r}]")
            for key, mask in masks.items()
        }
        object.__setattr__(self, "dropout", dropout)
        object.__setattr__(self, "masks", MappingProxyType(frozen_masks))
        object.__setattr__(self, "params", MappingProxyType(params))
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)
        object.__setattr__(self, "activations", activations)

    @classmethod
    def of_network(
        cls, net: DNN, X: object, Y: object, *, masks: Mapping[str, Array] | None = None
    ) -> Case:
        """The case of a ``DNN`` on one batch: its params, activations, loss and
        weight decay; ``X`` and ``Y`` in the net's dtype.  With ``masks`` (one
        ``Ml`` per dropped layer, ``manual_bp.dropout.draw_masks``) its dropout
        too; without, the net as inference runs it."""
        X, Y = np.asarray(X, dtype=net.dtype), np.asarray(Y, dtype=net.dtype)
        normalization = net.normalization if any(net.normalization) else ()
        dropped: dict[str, Any] = {"dropout": net.dropout, "masks": masks} if masks else {}
        return cls(
            net.params, X, Y, net.activations, net.loss_name, normalization=normalization,
            l2=net.l2, **dropped,
        )  # fmt: skip

    @property
    def forward_options(self) -> dict[str, Any]:
        """The keywords of ``manual_bp.network.forward`` this case needs
        (its dropout and masks; empty without dropout)."""
        return {"dropout": self.dropout, "masks": dict(self.masks)} if self.dropout else {}

    @property
    def backward_options(self) -> dict[str, Any]:
        """The keywords of ``manual_bp.network.backward`` this case needs
        (its dropout and weight decay, the decayed ``Wl`` from ``params``)."""
        options: dict[str, Any] = {"dropout": self.dropout} if self.dropout else {}
        if self.l2:
            options.update(l2=self.l2, params=self.params)
        return options

    @property
    def regularized(self) -> bool:
        """Whether the case has weight decay or dropout."""
        return bool(self.l2 or self.dropout)

    @property
    def depth(self) -> int:
        """L, the number of layers with weights."""
        return len(self.activations)

    @property
    def m(self) -> int:
        """The batch size."""
        return self.X.shape[1]

    @property
    def layer_sizes(self) -> list[int]:
        """``[n0, n1, ..., nL]``."""
        return layer_sizes_of(self.params, self.X, self.depth)

    @property
    def dtype(self) -> str:
        """The dtype of the manual computation: that of ``W1``."""
        return self.params["W1"].dtype.name

    @property
    def net(self) -> Net:
        """The case's network as one value (``manual_bp.Net``): its sizes,
        activations, normalization, drop probabilities, loss and decay; the
        rest of the case is data (``params``, ``X``, ``Y``, ``masks``).  A case
        may pair a loss with an output a ``Net`` refuses (the oracle side
        differentiates any pair): then ``ValueError``, as ``Net`` says."""
        layers = dense_layers(self.layer_sizes, self.activations, self.normalization, self.dropout)
        return Net(self.layer_sizes[0], layers, self.loss, self.l2)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """Hypothesis prints a falsifying case with this: exact, pasteable values."""
        printer.text(repr(self))

    def __repr__(self) -> str:
        literal = array_literal
        params = ",\n".join(f"        {key!r}: {literal(v)}" for key, v in self.params.items())
        return (
            f"Case(  # layer_sizes={self.layer_sizes}, dtype={self.dtype!r}, m={self.m}\n"
            f"    params={{\n{params},\n    }},\n"
            f"    X={literal(self.X)},\n    Y={literal(self.Y)},\n"
            f"    activations={self.activations!r},\n    loss={self.loss!r},\n"
            + (f"    normalization={self.normalization!r},\n" if self.normalization else "")
            + (f"    l2={self.l2!r},\n" if self.l2 else "")
            + (f"    dropout={self.dropout!r},\n" if self.dropout else "")
            + (
                "    masks={"
                + ", ".join(f"{key!r}: {literal(v)}" for key, v in self.masks.items())
                + "},\n"
                if self.masks
                else ""
            )
            + ")"
        )
