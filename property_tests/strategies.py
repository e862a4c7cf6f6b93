"""Hypothesis strategies, named after what they generate.

``networks()`` draws a whole case: depth 1-6, widths 1-32, batch size 1-64,
an activation per layer, a loss that accepts the output activation, a dtype,
and finite parameters, inputs and targets.  Values include exact zeros,
repeated values (Hypothesis fills arrays with one value by default) and
moderately large magnitudes, bounded so that float32 cannot overflow:
with ``|W|, |B| <= 10`` and ``|X| <= 100``, ``|ZL| <= (32 * 10 + 10)^6 * 100``,
about ``1e17``, whose square summed over a batch stays below float32's max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES

MAX_DEPTH = 6
MAX_WIDTH = 32
MAX_BATCH = 64
PARAM_BOUND = 10.0
INPUT_BOUND = 100.0
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Case:
    """One network and batch; its repr is what a failing property prints."""

    layer_sizes: list[int]
    activations: list[str]
    loss: str
    dtype: str
    params: dict[str, np.ndarray]
    X: np.ndarray
    Y: np.ndarray

    @property
    def depth(self) -> int:
        return len(self.activations)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """Hypothesis prints a falsifying case with this: exact, pasteable values."""
        printer.text(repr(self))

    def __repr__(self) -> str:
        with np.printoptions(precision=17, threshold=200, linewidth=100):
            arrays_text = "\n".join(
                f"  {key} = np.array({value.tolist()!r}, dtype={self.dtype!r})"
                for key, value in {**self.params, "X": self.X, "Y": self.Y}.items()
            )
        return (
            f"Case(layer_sizes={self.layer_sizes}, activations={self.activations}, "
            f"loss={self.loss!r}, dtype={self.dtype!r}, m={self.X.shape[1]})\n{arrays_text}"
        )


def values(bound: float, dtype: str) -> st.SearchStrategy[float]:
    """Finite floats exactly representable in ``dtype``: zeros, small and large."""
    width = 32 if dtype == "float32" else 64
    return st.one_of(
        st.just(0.0),
        st.floats(-1.0, 1.0, width=width),
        st.floats(-bound, bound, width=width),
        st.sampled_from([bound, -bound, 1.0, -1.0]),
    )


def matrices(shape: tuple[int, int], bound: float, dtype: str) -> st.SearchStrategy[np.ndarray]:
    return arrays(dtype, shape, elements=values(bound, dtype))


# Simplest first: Hypothesis shrinks a sampled_from toward its first element.
ACTIVATION_ORDER = [
    "identity",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softplus",
    "elu",
    "silu",
    "gelu",
    "softmax",
]
LOSS_ORDER = ["mse", "binary_cross_entropy", "cross_entropy"]
assert sorted(ACTIVATION_ORDER) == sorted(ACTIVATIONS) and sorted(LOSS_ORDER) == sorted(LOSSES)


@st.composite
def targets(draw, loss: str, shape: tuple[int, int], dtype: str) -> np.ndarray:
    """Targets in the loss's domain: labels in [0, 1], probability columns, or reals."""
    if loss == "binary_cross_entropy":
        elements = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0))
        return draw(arrays(np.float64, shape, elements=elements)).astype(dtype)
    if loss == "cross_entropy":
        if draw(st.booleans()):
            labels = draw(arrays(np.int64, (shape[1],), elements=st.integers(0, shape[0] - 1)))
            return np.eye(shape[0], dtype=dtype)[:, labels]
        weights = draw(arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
        weights[0, weights.sum(axis=0) == 0] = 1.0
        return (weights / weights.sum(axis=0)).astype(dtype)
    return draw(matrices(shape, INPUT_BOUND, dtype))


@st.composite
def params_for(draw, sizes: list[int], dtype: str) -> dict[str, np.ndarray]:
    """``W1..WL`` and ``B1..BL`` for ``sizes``."""
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = draw(matrices((sizes[l], sizes[l - 1]), PARAM_BOUND, dtype))
        params[f"B{l}"] = draw(matrices((sizes[l], 1), PARAM_BOUND, dtype))
    return params


def output_activations(loss: str) -> list[str]:
    """The output activations ``loss`` accepts, simplest first."""
    return [name for name in ACTIVATION_ORDER if name in LOSSES[loss].output_activations]


@st.composite
def networks(
    draw,
    max_depth: int = MAX_DEPTH,
    max_width: int = MAX_WIDTH,
    max_batch: int = MAX_BATCH,
    dtypes: tuple[str, ...] = DTYPES,
    architecture: st.SearchStrategy | None = None,
) -> Case:
    """A whole case: architecture, dtype, parameters, inputs ``X`` and targets ``Y``.

    Without a fixed ``architecture`` (a strategy for ``(layer_sizes,
    activations, loss)``), each layer's width, activation, ``Wl`` and ``Bl``
    are drawn together, so that shrinking can delete a whole hidden layer.
    """
    dtype = draw(st.sampled_from(dtypes))
    m = draw(st.integers(1, max_batch))
    if architecture is not None:
        sizes, activations, loss = draw(architecture)
        params = draw(params_for(sizes, dtype))
    else:
        loss = draw(st.sampled_from(LOSS_ORDER))
        sizes, activations, params = [draw(st.integers(1, max_width))], [], {}

        def add_layer(width: int, activation: str) -> None:
            l = len(sizes)
            params[f"W{l}"] = draw(matrices((width, sizes[-1]), PARAM_BOUND, dtype))
            params[f"B{l}"] = draw(matrices((width, 1), PARAM_BOUND, dtype))
            sizes.append(width)
            activations.append(activation)

        # Another hidden layer with probability 3/4 (so about 3 on average);
        # the flag shrinks to 0, which ends the network there.
        while len(activations) < max_depth - 1 and draw(st.integers(0, 3)) > 0:
            add_layer(draw(st.integers(1, max_width)), draw(st.sampled_from(ACTIVATION_ORDER)))
        width = max(draw(st.integers(1, max_width)), LOSSES[loss].min_outputs)
        add_layer(width, draw(st.sampled_from(output_activations(loss))))
    X = draw(matrices((sizes[0], m), INPUT_BOUND, dtype))
    Y = draw(targets(loss, (sizes[-1], m), dtype))
    return Case(list(sizes), list(activations), loss, dtype, params, X, Y)


def seed_networks(max_batch: int = MAX_BATCH) -> st.SearchStrategy[Case]:
    """The seed's network: 2 inputs, two sigmoid hidden layers of 3, a sigmoid output."""
    seed = st.just(([2, 3, 3, 1], ["sigmoid"] * 3, "binary_cross_entropy"))
    return networks(max_batch=max_batch, architecture=seed)
