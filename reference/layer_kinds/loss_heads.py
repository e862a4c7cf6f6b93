"""The loss heads, named by their loss: ``loss(x, y) -> (loss, dx)`` with the
loss's canonical activation (cs231n's ``softmax_loss(x, y)``).

``cross_entropy`` (softmax), ``binary_cross_entropy`` (sigmoid, one unit),
``mse`` (identity, ``(1/(2m)) sum (x - y)^2``); ``dx`` of the batch mean.
There is no ``forward`` and no ``dout``: the targets ``y`` take their place.
"""

from __future__ import annotations

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.kind import LayerKind, register
from manual_bp_reference.layer_tolerance import loss_tolerances


def _loss_head(name: str) -> LayerKind:
    activation = ACTIVATIONS[LOSSES[name].canonical_activation]
    return LayerKind(
        name, "loss", ("x", "y"), ("loss", "dx"),
        definition=lambda x, y: LOSSES[name].value(x, activation.forward(x, jnp), y, jnp),
        tolerance=lambda inputs, dout, dtype: loss_tolerances(
            name, inputs["x"], inputs["y"], dtype
        ),
        min_width=2 if name == "cross_entropy" else 1,
        width=1 if name == "binary_cross_entropy" else None,
        mixes_features=True,
        # A padded sample of binary cross-entropy would add softplus(0) = log 2.
        mixes_samples=name == "binary_cross_entropy",
    )  # fmt: skip


LOSS_HEADS = {name: register(_loss_head(name)) for name in LOSSES}
