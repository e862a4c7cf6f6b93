"""The affine layer, ``out = W x + B`` (cs231n's ``affine_forward(x, w, b)``).

Ours: ``x`` ``(n, m)``, ``w`` ``(o, n)``, ``b`` ``(o, 1)``, ``dout`` ``(o, m)``::

    dx = w^T dout       dw = dout x^T       db = sum of the columns of dout

Its rounding (``manual_bp_reference.layer_tolerance.affine_tolerances``): ``(k + 1) u``
times the sum of the magnitudes of every k-term sum.  Its classic bugs
(``AFFINE_BUGS``): ``db`` averaged over the batch instead of summed, and
``dw``, ``db`` divided by the batch size a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_tolerance import affine_tolerances


def _bug(
    name: str, description: str, db: Callable[[Array], Array], dw_scale: Callable[[Array], float]
) -> Bug:
    """An affine layer whose ``db`` is ``db(dout)`` and whose ``dw`` is scaled
    by ``dw_scale(dout)``; ``out`` and ``dx`` right."""

    def outputs(inputs: Mapping[str, Array], dout: Array | None) -> dict[str, Array]:
        assert dout is not None  # an affine layer always has one
        x, w, b = (np.asarray(inputs[k], dtype=np.float64) for k in ("x", "w", "b"))
        return {"out": w @ x + b, "dx": w.T @ dout, "dw": dw_scale(dout) * (dout @ x.T),
                "db": db(dout)}  # fmt: skip

    return Bug(name, description, outputs)


# Ours: columns are samples, so cs231n's "over the batch" is axis 1 here.
AFFINE_BUGS = (
    _bug("db averaged over the batch", "db = mean of dout over the samples, not the sum",
         lambda dout: dout.mean(axis=1, keepdims=True), lambda dout: 1.0),
    _bug("dw and db divided by the batch size", "dw, db carry a 1/N the upstream dout already has",
         lambda dout: dout.sum(axis=1, keepdims=True) / dout.shape[1],
         lambda dout: 1.0 / dout.shape[1]),
)  # fmt: skip

AFFINE = register(
    LayerKind(
        "affine", "affine", ("x", "w", "b"), ("dx", "dw", "db"),
        definition=lambda x, w, b: w @ x + b,
        tolerance=lambda inputs, dout, dtype: affine_tolerances(
            inputs["w"], inputs["x"], inputs["b"], dout, dtype
        ),
        parameters=lambda n, rows: {"w": (rows, n), "b": (rows, 1)},
        rows=lambda n, draw: draw(1, None),  # None: up to the case's largest width
        vectors=("b",),
        default_cache=tuple,  # cs231n's cache (x, w, b)
        bugs=AFFINE_BUGS,
    )
)  # fmt: skip
