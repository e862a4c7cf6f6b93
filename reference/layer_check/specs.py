"""The layer functions ``check_layer`` takes (``LAYERS``: every registered
``manual_bp_reference.layer_kinds.LayerKind``), and the two layouts."""

from __future__ import annotations

import numpy as np

from manual_bp_reference.layer_kinds import LayerKind, kind_of, layers
from manual_bp_reference.layer_kinds.normalization import NORMALIZATION_LAYERS

Array = np.ndarray
LAYOUTS = ("rows", "columns")
TARGETS = ("labels", "one_hot")

__all__ = ["LAYOUTS", "NORMALIZATION_LAYERS", "TARGETS", "LayerKind", "kind_of", "layers"]


LAYERS: tuple[str, ...] = layers()  # the built-in kinds (``layers()`` has any added since)


def _vectors(layer: str) -> set[str]:
    """The inputs of ``layer`` (and their gradients) that are ``(d,)`` in rows and
    ``(d, 1)`` in ours."""
    names = set(kind_of(layer).vectors)
    return names | {f"d{name}" for name in names}


def to_user(name: str, value: Array, layout: str, *, layer: str) -> Array:
    """Our array ``name`` of ``layer`` (columns layout) in the user's ``layout``
    (a fresh copy).  A shaped kind's arrays are the user's already."""
    value = np.array(value)
    if kind_of(layer).shapes is not None:
        return value
    if name in _vectors(layer):
        return value.reshape(-1) if layout == "rows" else value.reshape(-1, 1)
    if layout == "rows" and value.ndim == 2:
        return value.T.copy()
    return value


def to_ours(name: str, value: Array, layout: str, *, layer: str) -> Array:
    """The user's array ``name`` of ``layer`` in our columns layout, float64."""
    value = np.asarray(value, dtype=np.float64)
    if kind_of(layer).shapes is not None:
        return value
    if name in _vectors(layer):
        return value.reshape(-1, 1)
    return value.T if (layout == "rows" and value.ndim == 2) else value
