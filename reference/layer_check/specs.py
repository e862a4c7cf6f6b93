"""What one layer function takes and returns (``LayerSpec``, ``LAYERS``), and the two layouts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES
from reference.strategies import ACTIVATION_ORDER, LOSS_ORDER

Array = np.ndarray
LAYOUTS = ("rows", "columns")
TARGETS = ("labels", "one_hot")
NORMALIZATION_LAYERS = {"batchnorm": "batch", "layernorm": "layer"}


@dataclass(frozen=True)
class LayerSpec:
    """What one layer function takes and returns."""

    kind: str  # "affine", "activation", "loss", "normalization"
    inputs: tuple[str, ...]  # the forward's arrays, in call order
    grads: tuple[str, ...]  # what the backward returns, in order


def spec_of(layer: str) -> LayerSpec:
    if layer == "affine":
        return LayerSpec("affine", ("x", "w", "b"), ("dx", "dw", "db"))
    if layer in ACTIVATIONS:
        return LayerSpec("activation", ("x",), ("dx",))
    if layer in LOSSES:
        return LayerSpec("loss", ("x", "y"), ("loss", "dx"))
    return LayerSpec("normalization", ("x", "gamma", "beta"), ("dx", "dgamma", "dbeta"))


LAYERS: tuple[str, ...] = ("affine", *ACTIVATION_ORDER, *LOSS_ORDER, *NORMALIZATION_LAYERS)


def to_user(name: str, value: Array, layout: str) -> Array:
    """Our array ``name`` (columns layout) in the user's ``layout`` (a fresh copy)."""
    value = np.array(value)
    if name in ("b", "gamma", "beta", "db", "dgamma", "dbeta"):
        return value.reshape(-1) if layout == "rows" else value.reshape(-1, 1)
    if layout == "rows" and value.ndim == 2:
        return value.T.copy()
    return value


def to_ours(name: str, value: Array, layout: str) -> Array:
    """The user's array ``name`` in our columns layout, float64."""
    value = np.asarray(value, dtype=np.float64)
    if name in ("b", "gamma", "beta", "db", "dgamma", "dbeta"):
        return value.reshape(-1, 1)
    return value.T if (layout == "rows" and value.ndim == 2) else value
