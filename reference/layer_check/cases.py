"""``LayerCase``: one drawn call, in the user's layout; ``layer_cases`` draws
them, ``probe_case`` is a generic one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from manual_bp_reference.layer_check.specs import Array, kind_of, to_ours, to_user
from manual_bp_reference.strategies import matrices, targets


@dataclass(frozen=True, eq=False)
class LayerCase:
    """One drawn call: the user's inputs and ``dout``, in the user's layout.

    ``inputs`` holds ``x``, ``w``, ``b`` / ``x`` / ``x``, ``y`` / ``x``, ``gamma``,
    ``beta``; ``dout`` is None for a loss head; ``param`` the forward's param
    dict when drawn per case (dropout's ``p``, ``mode``, ``seed``), else None
    (the kind's own).  The repr is exact and pasteable.
    """

    layer: str
    layout: str
    inputs: Mapping[str, Array]
    dout: Array | None
    dtype: str
    param: Mapping[str, object] | None = None

    def forward_param(self) -> dict[str, object] | None:
        """A fresh copy of the param dict the forward takes (None: it takes none)."""
        if self.param is not None:
            return dict(self.param)
        kind = kind_of(self.layer)
        return None if kind.param is None else kind.param()

    @property
    def m(self) -> int:
        """The batch size."""
        x = self.inputs["x"]
        return int(x.shape[0] if self.layout == "rows" else x.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``x``."""
        return tuple(self.inputs["x"].shape)

    def ours(self) -> tuple[dict[str, Array], Array | None]:
        """The inputs and ``dout`` in our columns layout, float64; ``y`` one-hot ``(C, m)``."""
        inputs = {
            k: to_ours(k, v, self.layout, layer=self.layer)
            for k, v in self.inputs.items()
            if k != "y"
        }
        if "y" in self.inputs:
            inputs["y"] = _targets_to_ours(self, inputs["x"].shape)
        dout = (
            None if self.dout is None else to_ours("out", self.dout, self.layout, layer=self.layer)
        )
        return inputs, dout

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        def literal(value: Array) -> str:
            return f"np.array({value.tolist()!r}, dtype={value.dtype.name!r})"

        inputs = ",\n".join(f"        {k!r}: {literal(v)}" for k, v in self.inputs.items())
        dout = "None" if self.dout is None else literal(self.dout)
        param = "" if self.param is None else f"    param={dict(self.param)!r},\n"
        return (
            f"LayerCase(  # x shape {self.shape}, m={self.m}\n"
            f"    layer={self.layer!r}, layout={self.layout!r}, dtype={self.dtype!r},\n"
            f"    inputs={{\n{inputs},\n    }},\n    dout={dout},\n{param})"
        )


def _targets_to_ours(case: LayerCase, shape: tuple[int, ...]) -> Array:
    y = np.asarray(case.inputs["y"])
    if y.dtype.kind in "iu":  # labels (m,)
        if case.layer == "cross_entropy":
            return np.eye(shape[0])[:, y]
        return y.reshape(1, -1).astype(np.float64)
    return to_ours("y", y, case.layout, layer=case.layer)


def _flushed(value: Array, dtype: str) -> Array:
    """Values below ``1024 * tiny`` set to 0 (see the module notes)."""
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    return np.where(np.abs(value) < 1024 * tiny, 0.0, value).astype(dtype)


@st.composite
def layer_cases(
    draw,
    layer: str,
    *,
    layout: str = "rows",
    dtype: str = "float64",
    targets_as: str = "labels",
    max_batch: int = 8,
    max_width: int = 8,
    bound: float = 10.0,
) -> LayerCase:
    """Cases of ``layer`` in ``layout``: shapes, inputs in ``[-bound, bound]``, ``dout``."""
    kind = kind_of(layer)
    m = draw(st.integers(kind.min_batch, max_batch))
    n = draw(st.integers(kind.min_width, max_width))
    if kind.width is not None:
        n = kind.width

    def values(shape: tuple[int, ...], nonzero: bool = False) -> Array:
        value = _flushed(draw(matrices(shape, bound, dtype)), dtype)
        # A zero would hide what the layer does to its entry (dropout's mask).
        return np.where(value == 0, np.asarray(bound / 2, dtype), value) if nonzero else value

    def integer(low: int, high: int | None) -> int:
        return draw(st.integers(low, max_width if high is None else high))

    ours: dict[str, Array] = {"x": values((n, m), "x" in kind.nonzero)}
    rows = kind.rows(n, integer)
    for name, shape in kind.parameters(n, rows).items():
        ours[name] = values(shape, name in kind.nonzero)
    inputs = {k: to_user(k, v, layout, layer=layer) for k, v in ours.items()}
    dout = None
    if kind.family == "loss":
        Y = draw(targets(layer, (n, m), dtype, hard=layer != "mse", bound=bound))
        if layer == "mse":
            inputs["y"] = to_user("y", _flushed(Y, dtype), layout, layer=layer)
        elif targets_as == "labels":
            labels = np.argmax(Y, axis=0) if layer == "cross_entropy" else Y[0]
            inputs["y"] = labels.astype(np.int64)
        else:
            inputs["y"] = to_user("y", Y, layout, layer=layer)
    else:
        dout = to_user("out", values((rows, m)), layout, layer=layer)
    param = None if kind.param_draws is None else draw(kind.param_draws)
    return LayerCase(layer, layout, inputs, dout, dtype, param)


def probe_case(layer: str, layout: str, dtype: str, *, targets_as: str = "labels") -> LayerCase:
    """A generic case of ``layer``: seeded normal values of its ``probe_shape`` (3
    features, 5 samples unless the kind says otherwise; an affine layer has 2
    outputs), labels drawn at random.  No symmetry there hides a bug or lets
    two classic bugs give the same outputs."""
    rng = np.random.default_rng(0)
    kind = kind_of(layer)
    n, m = kind.probe_shape
    n = kind.width or n
    ours = {"x": rng.normal(size=(n, m))}
    rows = kind.rows(n, lambda low, high: 2)
    for name, shape in kind.parameters(n, rows).items():
        ours[name] = rng.normal(size=shape)
    user = {k: to_user(k, v, layout, layer=layer).astype(dtype) for k, v in ours.items()}
    dout = None
    if layer == "mse":
        user["y"] = to_user("y", rng.normal(size=(n, m)), layout, layer=layer).astype(dtype)
    elif kind.family == "loss":
        labels = rng.integers(0, max(n, 2), size=m)
        one_hot = np.eye(n)[:, labels] if layer == "cross_entropy" else labels[None, :]
        user["y"] = labels if targets_as == "labels" else to_user("y", one_hot, layout, layer=layer)
        user["y"] = user["y"].astype(np.int64 if targets_as == "labels" else dtype)
    else:
        dout = to_user("out", rng.normal(size=(rows, m)), layout, layer=layer).astype(dtype)
    return LayerCase(layer, layout, user, dout, dtype)
