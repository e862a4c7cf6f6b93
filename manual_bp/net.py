"""The network spec: one frozen value that says what a network is.

::

    Net(2, [Dense(3, "tanh", norm="batch", dropout=0.1), Dense(1, "sigmoid")],
        loss="binary_cross_entropy", l2=1e-3)

is the network ``[n0, n1, n2] = [2, 3, 1]``: its input size, its layers
(``manual_bp.layers.Dense``, each with its units, activation,
normalization and drop probability), its loss and its weight decay
``l2 / 2 sum ||Wl||^2``.  It is validated once, when it is made; the
seed's parallel lists (``layer_sizes``, ``activations``, a normalization
and a drop probability per layer) are read off it, and ``Net.of`` makes one
from them, with ``DNN``'s defaults.

>>> net = Net.of([2, 3, 1], ["tanh", "sigmoid"])
>>> net
Net(inputs=2, layers=(Dense(units=3, activation='tanh', norm=None, dropout=0.0), \
Dense(units=1, activation='sigmoid', norm=None, dropout=0.0)), loss='binary_cross_entropy', l2=0.0)
>>> net.layer_sizes, net.activations
([2, 3, 1], ('tanh', 'sigmoid'))
>>> Net.of([4, 8, 8, 3], normalization="batch", dropout=0.5).normalization
('batch', 'batch', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from manual_bp.dropout import resolve as resolve_dropout
from manual_bp.layers import Dense
from manual_bp.losses import LOSSES
from manual_bp.normalization import resolve as resolve_normalization
from manual_bp.validation import (
    check_activations,
    check_l2,
    check_layer_sizes,
    check_loss_pair,
    check_positive_int,
)


@dataclass(frozen=True)
class Net:
    """A network: ``inputs`` (``n0``), ``layers`` (``Dense``, l = 1..L), ``loss``, ``l2``.

    ``loss`` defaults as ``DNN``'s: binary cross-entropy for one output,
    cross-entropy for more.  The output layer takes no normalization and no
    dropout, and its activation must suit the loss (``ValueError`` naming
    what is wrong otherwise).
    """

    inputs: int
    layers: tuple[Dense, ...]
    loss: str = ""
    l2: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int(self.inputs, "inputs")
        layers = self.layers
        if isinstance(layers, (str, bytes, Dense)) or not isinstance(layers, Sequence):
            raise TypeError(
                f"layers: expected a list of manual_bp.Dense, got {type(layers).__name__}"
            )
        if not layers:
            raise ValueError("layers: expected at least the output layer, got none")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise TypeError(
                    f"layers[{index}]: expected a manual_bp.Dense, got {type(layer).__name__} "
                    f"{layer!r}"
                )
        output = layers[-1]
        if output.norm is not None or output.dropout:
            raise ValueError(
                "layers[-1]: the output layer takes no normalization and no dropout, got "
                f"{output!r}"
            )
        loss = self.loss or ("binary_cross_entropy" if output.units == 1 else "cross_entropy")
        check_loss_pair(loss, output.activation, output.units)
        object.__setattr__(self, "layers", tuple(layers))
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "l2", check_l2(self.l2))

    @classmethod
    def of(
        cls,
        layer_sizes: Sequence[int],
        activations: Sequence[str] | None = None,
        loss: str | None = None,
        *,
        normalization: str | Sequence[str | None] | None = None,
        dropout: float | Sequence[float] | None = None,
        l2: float = 0.0,
    ) -> Net:
        """The network of the seed's lists, with ``DNN``'s defaults.

        ``activations`` defaults to sigmoid hidden layers and the loss's
        canonical output (``loss`` to binary cross-entropy for one output,
        cross-entropy for more); ``normalization`` and ``dropout`` are one
        value for every hidden layer or one per hidden layer
        (``manual_bp.normalization.resolve``, ``manual_bp.dropout.resolve``).
        """
        sizes = check_layer_sizes(layer_sizes)
        depth = len(sizes) - 1
        if loss is None:
            loss = "binary_cross_entropy" if sizes[-1] == 1 else "cross_entropy"
        if activations is None:
            if loss not in LOSSES:
                raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {loss!r}")
            activations = ["sigmoid"] * (depth - 1) + [LOSSES[loss].canonical_activation]
        names = check_activations(activations, depth)
        check_loss_pair(loss, names[-1], sizes[-1])
        kinds = resolve_normalization(normalization, depth)
        rates = resolve_dropout(dropout, depth)
        layers = tuple(
            Dense(n, name, kind, rate)
            for n, name, kind, rate in zip(sizes[1:], names, kinds, rates, strict=True)
        )
        return cls(sizes[0], layers, loss, l2)

    @property
    def depth(self) -> int:
        """``L``, the number of layers."""
        return len(self.layers)

    @property
    def layer_sizes(self) -> list[int]:
        """``[n0, n1, ..., nL]``."""
        return [self.inputs, *(layer.units for layer in self.layers)]

    @property
    def activations(self) -> tuple[str, ...]:
        """``f_l``, l = 1..L, by name."""
        return tuple(layer.activation for layer in self.layers)

    @property
    def normalization(self) -> tuple[str | None, ...]:
        """Each layer's normalization, ``None``, ``"batch"`` or ``"layer"``."""
        return tuple(layer.norm for layer in self.layers)

    @property
    def dropout(self) -> tuple[float, ...]:
        """Each layer's drop probability, the output layer's 0."""
        return tuple(layer.dropout for layer in self.layers)

    @property
    def normalized(self) -> bool:
        """Whether any layer is normalized."""
        return any(layer.norm for layer in self.layers)

    @property
    def dropped(self) -> bool:
        """Whether any layer drops units (a training forward then needs masks)."""
        return any(layer.dropout for layer in self.layers)

    def with_l2(self, l2: float) -> Net:
        """The same net with the weight decay ``l2 / 2 sum ||Wl||^2``."""
        return replace(self, l2=l2)

    def with_dropout(self, rates: Sequence[float]) -> Net:
        """The same net with drop probabilities ``rates``, one per layer (the
        output layer's 0)."""
        if len(rates) != self.depth:
            raise ValueError(
                f"rates: expected one drop probability per layer ({self.depth}), got {rates!r}"
            )
        layers = tuple(
            replace(layer, dropout=rate) for layer, rate in zip(self.layers, rates, strict=True)
        )
        return Net(self.inputs, layers, self.loss, self.l2)

    def without_dropout(self) -> Net:
        """The same net with every drop probability 0: the net as inference
        (``predict``, an epoch's loss) runs it."""
        return self.with_dropout((0.0,) * self.depth) if self.dropped else self
