"""Batch and layer normalization as layers: ``batchnorm_forward(x, gamma, beta,
bn_param)``, ``layernorm_forward(x, gamma, beta, ln_param)``.

The definition is ``manual_bp.normalization.normalize`` (training mode: the
batch's statistics), the rounding model ``manual_bp_reference.layer_tolerance``'s, and
the bug catalogue ``manual_bp_reference.normalization_bugs``: each classic bug a
formula whose outputs ``check_layer`` runs against a failing user's.
"""

from __future__ import annotations

from collections.abc import Mapping

from manual_bp.normalization import EPS, normalize
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_tolerance import normalization_tolerances
from manual_bp_reference.normalization_bugs import NORMALIZATION_BUGS, Formula, normalization_layer

# The layer's name and the kind of normalization it is.
NORMALIZATION_LAYERS = {"batchnorm": "batch", "layernorm": "layer"}


def _bug(kind: str, name: str, description: str, formula: Formula) -> Bug:
    def outputs(inputs: Mapping[str, Array], dout: Array | None) -> dict[str, Array]:
        assert dout is not None  # a normalization layer always has one
        return normalization_layer(
            kind, inputs["x"], inputs["gamma"], inputs["beta"], dout, formula=formula
        )

    return Bug(name, description, outputs)


def _normalization(name: str) -> LayerKind:
    kind = NORMALIZATION_LAYERS[name]
    return LayerKind(
        name, "normalization", ("x", "gamma", "beta"), ("dx", "dgamma", "dbeta"),
        definition=lambda x, gamma, beta: normalize(x, gamma, beta, kind, jnp)["N"],
        tolerance=lambda inputs, dout, dtype: normalization_tolerances(
            kind, inputs["x"], inputs["gamma"], inputs["beta"], dout, dtype
        ),
        parameters=lambda n, rows: {"gamma": (n, 1), "beta": (n, 1)},
        vectors=("gamma", "beta"),
        param=lambda: {"mode": "train", "eps": EPS} if kind == "batch" else {"eps": EPS},
        min_batch=2 if kind == "batch" else 1,
        min_width=2 if kind == "layer" else 1,
        probe_shape=(5, 3) if kind == "layer" else (3, 5),
        mixes_features=kind == "layer",
        mixes_samples=kind == "batch",
        bugs=tuple(_bug(kind, b.name, b.description, b.formula) for b in NORMALIZATION_BUGS),
    )  # fmt: skip


NORMALIZATION_KINDS = {name: register(_normalization(name)) for name in NORMALIZATION_LAYERS}
