"""``LayerKind`` and ``Bug``: the facts of one layer kind; the registry ``LAYER_KINDS``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis.strategies import SearchStrategy

from manual_bp_reference.layer_kinds.shaped import Shapes

Array = np.ndarray
# fixed(inputs, param, layout, out) -> (arrays, notes): see LayerKind.
Fixed = Callable[
    [Mapping[str, Array], Mapping[str, object], str, "Array | None"],
    tuple[dict[str, Array], list[str]],
]
FAMILIES = (
    "affine", "activation", "loss", "normalization", "convolution", "recurrent", "sequence",
    "other",
)  # fmt: skip


@dataclass(frozen=True)
class Bug:
    """A classic bug of a layer kind: its ``name``, what the user's code does
    (``description``), and the outputs it gives: ``outputs(inputs, dout)``, ours,
    float64, keyed like the kind's (``out``, ``dx``, ...)."""

    name: str
    description: str
    outputs: Callable[[Mapping[str, Array], Any], dict[str, Array]]


@dataclass(frozen=True)
class LayerKind:
    """Everything ``check_layer`` knows about one layer kind (see the module notes).

    ``definition(*inputs)``: ``out`` over ``jax.numpy`` in our layout (a loss
    head: ``definition(x, y)`` the loss).  ``tolerance(inputs, dout, dtype)``:
    the bounds of ``out`` (or ``loss``) and of every grad, absolute, ours.
    ``parameters(n, rows)``: the shapes of the inputs besides ``x`` ``(n, m)``
    for a layer of ``rows`` output rows; ``rows(n, draw)`` the output rows
    (``draw(low, high)`` an int drawn there, ``high=None`` up to the widest a
    case may be; default: ``n``).  ``vectors``: the
    inputs that are 1-D (``(d,)``) in cs231n's rows layout and ``(d, 1)`` in
    ours.  ``param()``: the dict a forward takes after its arrays (batch norm's
    ``bn_param``), or None; ``param_draws``: a strategy of that dict, drawn
    per case, when it holds values the check varies (dropout's ``p`` and
    ``seed``; ``param()`` is then the generic probe's).  ``default_cache(args)``:
    the cache a backward reads when no forward is given, or None when the
    forward is required.  ``nonzero``: inputs drawn without zeros.
    ``fixed(inputs, param, layout, out)``: arrays the definition takes after
    the inputs without differentiating them (dropout's mask), from the
    inputs and param (ours), the layout, and the user's forward output (ours,
    or None), with notes on how they were chosen; the definition, tolerance
    and bugs then see them beside the inputs.  ``shapes``: a kind whose arrays
    keep their own N-D shapes (a convolution's ``(N, C, H, W)``), drawn and
    called as ``manual_bp_reference.layer_kinds.shaped`` says; the 2-D fields
    (``parameters``, ``rows``, ``vectors``, widths) are then unused.
    """

    name: str
    family: str
    inputs: tuple[str, ...]
    grads: tuple[str, ...]
    definition: Callable[..., object]
    # tolerance(inputs, dout, dtype): dout a tuple for a shaped kind of several outputs
    tolerance: Callable[[Mapping[str, Array], Any, str], dict[str, Array]]
    parameters: Callable[[int, int], dict[str, tuple[int, int]]] = field(default=lambda n, rows: {})
    rows: Callable[[int, Callable[[int, int | None], int]], int] = field(default=lambda n, draw: n)
    vectors: tuple[str, ...] = ()
    param: Callable[[], dict[str, object]] | None = None
    param_draws: SearchStrategy[dict[str, object]] | None = None
    default_cache: Callable[[tuple], object] | None = None
    nonzero: tuple[str, ...] = ()
    fixed: Fixed | None = None
    min_batch: int = 1
    min_width: int = 1
    width: int | None = None  # every case has exactly this many features
    probe_shape: tuple[int, int] = (3, 5)  # (features, samples) of the generic probe
    mixes_features: bool = False
    mixes_samples: bool = False
    bugs: tuple[Bug, ...] = ()
    shapes: Shapes | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family: expected one of {list(FAMILIES)}, got {self.family!r}")
        if self.shapes is None and (not self.inputs or self.inputs[0] != "x"):
            raise ValueError(f"inputs: expected ('x', ...), got {self.inputs!r}")
        # The oracle names the gradient of input k "dk": another name would go unchecked.
        expected = tuple(f"d{k}" for k in self.inputs)
        if self.family == "loss":  # loss(x, y): y is a target, with no gradient
            expected = ("loss", "dx")
        elif self.returns_loss:
            expected = ("loss", *expected)
        if self.grads != expected:
            raise ValueError(
                f"grads: expected {expected} (the gradient of each input, in order), "
                f"got {self.grads!r}"
            )

    @property
    def returns_loss(self) -> bool:
        """The kind is one function ``loss(...) -> (loss, dx, ...)`` (a loss head)."""
        return self.family == "loss" or (self.shapes is not None and self.shapes.loss)

    @property
    def outputs(self) -> tuple[str, ...]:
        """What the forward returns before its cache (a loss: ``("loss",)``)."""
        if self.returns_loss:
            return ("loss",)
        return self.shapes.outputs if self.shapes is not None else ("out",)

    @property
    def forward_arguments(self) -> tuple[str, ...]:
        """The names of a forward's arguments: its arrays, and its param dict."""
        if self.shapes is not None:
            return self.shapes.call
        return (*self.inputs, "param") if self.param is not None else self.inputs


LAYER_KINDS: dict[str, LayerKind] = {}


# The loss heads' targets are drawn and converted by their loss's name.
BUILT_IN_LOSS_HEADS = ("mse", "binary_cross_entropy", "cross_entropy")


def register(kind: LayerKind) -> LayerKind:
    """Add ``kind`` to ``LAYER_KINDS`` (a name taken already is an error)."""
    if not isinstance(kind, LayerKind):
        raise TypeError(f"kind: expected a LayerKind, got {kind!r}")
    if kind.name in LAYER_KINDS:
        raise ValueError(f"kind: a layer kind named {kind.name!r} is registered already")
    if kind.family == "loss" and kind.name not in BUILT_IN_LOSS_HEADS:
        raise ValueError(
            f"kind: the loss family holds the built-in heads {list(BUILT_IN_LOSS_HEADS)} "
            f"(their targets are drawn by name); register {kind.name!r} as another family"
        )
    LAYER_KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> LayerKind:
    """Remove the kind ``name`` from ``LAYER_KINDS`` (a guide's or a test's own)."""
    if name not in LAYER_KINDS:
        raise ValueError(f"name: no layer kind {name!r} is registered")
    return LAYER_KINDS.pop(name)


def layers() -> tuple[str, ...]:
    """Every registered layer kind: affine, the activations, the loss heads,
    the normalizations, then any other, each family in registration order."""
    return tuple(sorted(LAYER_KINDS, key=lambda name: FAMILIES.index(LAYER_KINDS[name].family)))


def kind_of(layer: str) -> LayerKind:
    """The registered kind named ``layer``, or a ValueError listing them."""
    if layer not in LAYER_KINDS:
        raise ValueError(f"layer: expected one of {list(layers())}, got {layer!r}")
    return LAYER_KINDS[layer]
