"""The layer functions ``check_layer`` takes (``LAYERS``: every registered
``reference.layer_kinds.LayerKind``), and the two layouts."""

from __future__ import annotations

import numpy as np

from reference.layer_kinds import FAMILIES, LAYER_KINDS, LayerKind, kind_of
from reference.layer_kinds.normalization import NORMALIZATION_LAYERS

Array = np.ndarray
LAYOUTS = ("rows", "columns")
TARGETS = ("labels", "one_hot")

__all__ = ["LAYOUTS", "NORMALIZATION_LAYERS", "TARGETS", "LayerKind", "kind_of", "layers"]


def layers() -> tuple[str, ...]:
    """Every registered layer kind: affine, the activations, the loss heads,
    the normalizations, then any other, each family in registration order."""
    return tuple(sorted(LAYER_KINDS, key=lambda name: FAMILIES.index(LAYER_KINDS[name].family)))


LAYERS: tuple[str, ...] = layers()  # the built-in kinds (``layers()`` has any added since)


def _vectors() -> set[str]:
    """The inputs (and their gradients) that are ``(d,)`` in rows and ``(d, 1)`` in ours."""
    names = {name for kind in LAYER_KINDS.values() for name in kind.vectors}
    return names | {f"d{name}" for name in names}


def to_user(name: str, value: Array, layout: str) -> Array:
    """Our array ``name`` (columns layout) in the user's ``layout`` (a fresh copy)."""
    value = np.array(value)
    if name in _vectors():
        return value.reshape(-1) if layout == "rows" else value.reshape(-1, 1)
    if layout == "rows" and value.ndim == 2:
        return value.T.copy()
    return value


def to_ours(name: str, value: Array, layout: str) -> Array:
    """The user's array ``name`` in our columns layout, float64."""
    value = np.asarray(value, dtype=np.float64)
    if name in _vectors():
        return value.reshape(-1, 1)
    return value.T if (layout == "rows" and value.ndim == 2) else value
