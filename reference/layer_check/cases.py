"""``LayerCase``: one drawn call, in the user's layout; ``layer_cases`` draws
them, ``probe_case`` is a generic one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from manual_bp_reference.layer_check.specs import Array, kind_of, to_ours, to_user
from manual_bp_reference.layer_kinds.shaped import Drawn, ProbeDraws
from manual_bp_reference.strategies import matrices, targets


@dataclass(frozen=True, eq=False)
class LayerCase:
    """One drawn call: the user's inputs and ``dout``, in the user's layout.

    ``inputs`` holds ``x``, ``w``, ``b`` / ``x`` / ``x``, ``y`` / ``x``, ``gamma``,
    ``beta``; ``dout`` is None for a loss head; ``param`` the forward's param
    dict when drawn per case (dropout's ``p``, ``mode``, ``seed``), else None
    (the kind's own).  A shaped kind's (``LayerKind.shapes``): its arrays,
    constants included, one ``dout`` per output (a tuple when it has several),
    and ``param`` its drawn scalars.  The repr is exact and pasteable.
    """

    layer: str
    layout: str
    inputs: Mapping[str, Array]
    dout: Array | tuple[Array, ...] | None
    dtype: str
    param: Mapping[str, object] | None = None

    @property
    def douts(self) -> tuple[Array, ...]:
        """The upstream gradients, one per output (none for a loss)."""
        if self.dout is None:
            return ()
        return self.dout if isinstance(self.dout, tuple) else (self.dout,)

    def forward_arguments(self) -> list[object]:
        """Fresh copies of what the user's forward is called with, in order."""
        kind = kind_of(self.layer)
        args: list[object] = [np.array(self.inputs[k]) for k in kind.inputs]
        if kind.shapes is not None:
            rest = kind.shapes.arguments(self.param or {})
            return [np.array(self.inputs[k]) if k in self.inputs else rest[k]
                    for k in kind.shapes.call]  # fmt: skip
        param = self.forward_param()  # a fresh dict per call: a forward may store in it
        return args if param is None else [*args, param]

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

    def ours(self) -> tuple[dict[str, Array], Array | tuple[Array, ...] | None]:
        """The inputs and ``dout`` in our columns layout, float64; ``y`` one-hot ``(C, m)``.

        A shaped kind's are the user's own, float64 but for its constants
        (labels, masks), with its drawn scalars among the inputs."""
        kind = kind_of(self.layer)
        if kind.shapes is not None:
            shaped: dict[str, object] = {
                k: np.array(v) if k in kind.shapes.constants else np.asarray(v, dtype=np.float64)
                for k, v in self.inputs.items()
            }
            shaped.update(self.param or {})
            douts = tuple(np.asarray(d, dtype=np.float64) for d in self.douts)
            dout = None if not douts else douts if len(douts) > 1 else douts[0]
            return shaped, dout  # type: ignore[return-value]  # scalars among the arrays
        inputs = {
            k: to_ours(k, v, self.layout, layer=self.layer)
            for k, v in self.inputs.items()
            if k != "y"
        }
        if "y" in self.inputs:
            inputs["y"] = _targets_to_ours(self, inputs["x"].shape)
        dout = (
            None
            if self.dout is None
            else to_ours("out", self.douts[0], self.layout, layer=self.layer)
        )
        return inputs, dout

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        def literal(value: Array) -> str:
            return f"np.array({value.tolist()!r}, dtype={value.dtype.name!r})"

        inputs = ",\n".join(f"        {k!r}: {literal(v)}" for k, v in self.inputs.items())
        dout = "None" if self.dout is None else literal(self.douts[0])
        if isinstance(self.dout, tuple):
            dout = "(" + ", ".join(literal(d) for d in self.dout) + ",)"
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
    if kind.shapes is not None:
        drawn = kind.shapes.draw(_HypothesisDraws(draw, dtype, max_batch, max_width, bound))
        return _shaped_case(layer, drawn, dtype)
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
    if kind.shapes is not None:
        return _shaped_case(layer, kind.shapes.draw(ProbeDraws(dtype, rng=rng)), dtype)
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


def _shaped_case(layer: str, drawn: Drawn, dtype: str) -> LayerCase:
    dout = None if not drawn.douts else drawn.douts if len(drawn.douts) > 1 else drawn.douts[0]
    return LayerCase(layer, "rows", dict(drawn.arrays), dout, dtype, dict(drawn.statics))


class _HypothesisDraws:
    """A shaped kind's ``Draws`` in a check: Hypothesis draws every choice."""

    def __init__(self, draw, dtype: str, max_batch: int, max_width: int, bound: float) -> None:
        self._draw, self.dtype, self.bound = draw, dtype, bound
        self.max_batch, self.max_width = max_batch, max_width

    def integer(self, low: int, high: int, *, probe: int) -> int:
        return int(self._draw(st.integers(low, max(low, high))))

    def choice(self, options, *, probe: int = 0):
        return self._draw(st.sampled_from(list(options)))

    def values(self, shape: tuple[int, ...], *, ties: bool = False) -> Array:
        value = _flushed(self._draw(matrices(shape, self.bound, self.dtype)), self.dtype)
        if ties and self._draw(st.booleans()):  # a few integers: equal entries likely
            step = self.bound / 3
            value = (np.round(value / step) * step).astype(self.dtype)
        return value

    def labels(self, shape: tuple[int, ...], high: int) -> Array:
        if self._draw(st.booleans()):  # one word everywhere: every index repeated
            return np.full(shape, self._draw(st.integers(0, high - 1)), dtype=np.int64)
        seed = self._draw(st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.int64)

    def mask(self, shape: tuple[int, ...]) -> Array:
        how = self._draw(st.sampled_from(("all", "none", "some")))
        if how != "some":
            return np.full(shape, how == "all")
        seed = self._draw(st.integers(0, 2**32 - 1))
        return np.random.default_rng(seed).random(size=shape) < 0.6
