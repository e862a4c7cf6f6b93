"""The ten activations as layers, ``out = f(x)`` (cs231n's ``relu_forward(x)``).

``dx = f'(x)^T dout`` (elementwise but for softmax, over each sample's
features).  The definition and the rounding model are those of
``manual_bp.activations`` and ``manual_bp_reference.tolerance.activation``.
"""

from __future__ import annotations

from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.kind import LayerKind, register
from manual_bp_reference.layer_tolerance import activation_tolerances


def _activation(name: str) -> LayerKind:
    return LayerKind(
        name, "activation", ("x",), ("dx",),
        definition=lambda x: ACTIVATIONS[name].forward(x, jnp),
        tolerance=lambda inputs, dout, dtype: activation_tolerances(
            name, inputs["x"], dout, dtype
        ),
        default_cache=lambda args: args[0],  # cs231n's cache: x
        mixes_features=name == "softmax",
    )  # fmt: skip


ACTIVATION_LAYERS = {name: register(_activation(name)) for name in ACTIVATIONS}
