"""The affine layer, ``out = W x + B`` (cs231n's ``affine_forward(x, w, b)``).

Ours: ``x`` ``(n, m)``, ``w`` ``(o, n)``, ``b`` ``(o, 1)``, ``dout`` ``(o, m)``::

    dx = w^T dout       dw = dout x^T       db = sum of the columns of dout

Its rounding (``reference.layer_tolerance.affine_tolerances``): ``(k + 1) u``
times the sum of the magnitudes of every k-term sum.
"""

from __future__ import annotations

from reference.layer_kinds.kind import LayerKind, register
from reference.layer_tolerance import affine_tolerances

AFFINE = register(
    LayerKind(
        "affine", "affine", ("x", "w", "b"), ("dx", "dw", "db"),
        definition=lambda x, w, b: w @ x + b,
        tolerance=lambda inputs, dout, dtype: affine_tolerances(
            inputs["w"], inputs["x"], inputs["b"], dout, dtype  # type: ignore[arg-type]
        ),
        parameters=lambda n, rows: {"w": (rows, n), "b": (rows, 1)},
        rows=lambda n, draw: draw(1, None),  # None: up to the case's largest width
        vectors=("b",),
        default_cache=tuple,  # cs231n's cache (x, w, b)
    )
)  # fmt: skip
