"""Max and average pooling as cs231n's students write them: ``max_pool_forward_naive(x,
pool_param) -> (out, cache)`` and ``max_pool_backward_naive(dout, cache) -> dx``
(``avg_pool_...`` the same), ``pool_param = {"pool_height": hp, "pool_width":
wp, "stride": s}``.

The definitions are ``manual_bp.pooling``'s forwards over ``jax.numpy``.
Drawn: every window that fits the input (non-square, up to the whole input),
strides 1 to 3 (overlapping windows when ``s < hp``, trailing rows no window
reaches when ``(H - hp) % s != 0``), inputs up to 6x6; max pooling's inputs
are often drawn from a few values, so that windows hold ties.

**Ties are undecided.**  Where a window's maximum is taken by several
entries, the max has a kink: manual_bp (as jax) splits the window's ``dout``
equally among them, a student's ``mask = window == max`` gives all of it to
each, ``np.argmax`` to the first.  Any of these is a valid choice at the kink,
so at a tied maximum the tolerance admits any routing: it adds ``|dout|`` of
every tied window the entry is a maximum of.  Off ties the gradient is
decided, and only rounding is allowed.

The rounding model: a maximum is exact; ``dx`` adds ``dout / t`` over at most
``K = ceil(hp/s) ceil(wp/s)`` windows (``(K + 1) u`` of the magnitudes).  An
average sums ``hp wp`` entries and divides: ``(hp wp + 2) u`` of the mean of
``|x|``; its ``dx`` adds ``dout / (hp wp)`` over ``K`` windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual_bp import pooling
from manual_bp.convolution import add_windows
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.convolution import units
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_kinds.shaped import (
    Drawn,
    Draws,
    Padded,
    Shapes,
    bucket,
    embedded,
)
from manual_bp_reference.tolerance import SAFETY

MAX_SIDE = 6
MAX_STRIDE = 3


def _geometry(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {"height": inputs["pool_height"], "width": inputs["pool_width"],
            "stride": inputs["stride"]}  # fmt: skip


def _draw(ties: bool):
    def draw(d: Draws) -> Drawn:
        N = d.integer(1, min(3, d.max_batch), probe=2)
        C = d.integer(1, min(3, d.max_width), probe=2)
        H = d.integer(1, MAX_SIDE, probe=5)
        W = d.integer(1, MAX_SIDE, probe=4)
        height = d.integer(1, H, probe=2)
        width = d.integer(1, W, probe=3)
        stride = d.integer(1, MAX_STRIDE, probe=1)
        Ho, Wo = 1 + (H - height) // stride, 1 + (W - width) // stride
        statics = {"pool_height": height, "pool_width": width, "stride": stride}
        return Drawn({"x": d.values((N, C, H, W), ties=ties)}, statics,
                     (d.values((N, C, Ho, Wo)),))  # fmt: skip

    return draw


def _pool_param(statics: Mapping[str, Any]) -> dict[str, Any]:
    """cs231n's ``pool_param``: the drawn scalars, named as cs231n names them."""
    return dict(statics)


def _overlaps(inputs: Mapping[str, Any]) -> int:
    """``K``: the most windows one entry lies in."""
    s = inputs["stride"]
    return -(-inputs["pool_height"] // s) * -(-inputs["pool_width"] // s)


def _max_tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
    u, tiny = units(dtype)
    x = np.asarray(inputs["x"])
    out, cache = pooling.max_forward(x, **_geometry(inputs))
    magnitude = pooling.max_backward(np.abs(dout), cache)
    is_max = cache["windows"] == out[:, :, None]
    tied = is_max & (is_max.sum(axis=2) > 1)[:, :, None]
    undecided = add_windows(tied * np.abs(dout)[:, :, None], x.shape, inputs["pool_height"],
                            inputs["pool_width"], inputs["stride"])  # fmt: skip
    K = _overlaps(inputs)
    return {
        "out": np.full(out.shape, SAFETY * tiny),
        "dx": SAFETY * ((K + 1) * u * magnitude + (K + 2) * tiny) + undecided,
    }


def _average_tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
    u, tiny = units(dtype)
    out, cache = pooling.average_forward(np.abs(inputs["x"]), **_geometry(inputs))
    magnitude = pooling.average_backward(np.abs(dout), cache)
    k, K = inputs["pool_height"] * inputs["pool_width"], _overlaps(inputs)
    return {
        "out": SAFETY * ((k + 2) * u * out + (k + 2) * tiny),
        "dx": SAFETY * ((K + 2) * u * magnitude + (K + 2) * tiny),
    }


TIES_NOTE = (
    "some windows had tied maxima: there any split of the window's dout among the tied "
    "entries is accepted (a kink: manual_bp, as jax, splits it equally; a mask sends all of "
    "it to each, argmax to the first), so those entries are undecided, not checked"
)


def _ties(
    inputs: Mapping[str, Any], param: Mapping[str, object], layout: str, out: Array | None
) -> tuple[dict[str, Any], list[str]]:
    """No arrays to fix; a note when the case has a window with tied maxima."""
    pooled, cache = pooling.max_forward(np.asarray(inputs["x"]), **_geometry(inputs))
    tied = ((cache["windows"] == pooled[:, :, None]).sum(axis=2) > 1).any()
    return {}, [TIES_NOTE] if tied else []


def _padded(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> Padded:
    """Samples and channels padded with zeros, and the input's last rows and
    columns: the windows of the real outputs read only real entries, and the
    extra windows get ``dout = 0``."""
    x, (dout,) = np.asarray(inputs["x"]), douts
    N, C, H, W = x.shape
    Hb, Wb = bucket(H, least=8), bucket(W, least=8)
    s = inputs["stride"]
    Ho, Wo = 1 + (Hb - inputs["pool_height"]) // s, 1 + (Wb - inputs["pool_width"]) // s
    big = (bucket(N), bucket(C))
    padded = {**inputs, "x": embedded(x, (*big, Hb, Wb))}

    def crop(result: dict[str, Array]) -> dict[str, Array]:
        return {"out": result["out"][:N, :C, : dout.shape[2], : dout.shape[3]],
                "dx": result["dx"][:N, :C, :H, :W]}  # fmt: skip

    return Padded(padded, (embedded(dout, (*big, Ho, Wo)),), crop)


def _loops(inputs: Mapping[str, Any], dout: Array, *, stride: int, route: str) -> Array:
    """A max-pool backward written with loops over positions (a catalogue formula):
    windows read at ``stride``, ``dout`` routed to each max (``"mask"``),
    assigned at the first one (``"assign"``), or added where the flat argmax
    split by the window's height points (``"by height"``)."""
    x = np.asarray(inputs["x"])
    hp, wp = inputs["pool_height"], inputs["pool_width"]
    dx = np.zeros_like(x)
    N, C = x.shape[:2]
    for n in range(N):
        for c in range(C):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    r, q = i * stride, j * stride
                    window = x[n, c, r : r + hp, q : q + wp]
                    if route == "mask":
                        mask = window == window.max()
                        dx[n, c, r : r + hp, q : q + wp] += mask * dout[n, c, i, j]
                    elif route == "assign":
                        a, b = np.unravel_index(np.argmax(window), window.shape)
                        dx[n, c, r + a, q + b] = dout[n, c, i, j]
                    else:  # "by height": the flat index split with the window's height
                        a, b = divmod(int(np.argmax(window)), hp)
                        if a < hp and b < wp:
                            dx[n, c, r + a, q + b] += dout[n, c, i, j]
    return dx


def _max_bug(dx):
    def outputs(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
        out = pooling.max_forward(np.asarray(inputs["x"]), **_geometry(inputs))[0]
        return {"out": out, "dx": dx(inputs, np.asarray(dout))}

    return outputs


def _spread(inputs: Mapping[str, Any], dout: Array) -> Array:
    """``dout`` added to every entry of its window, undivided."""
    hp, wp, s = inputs["pool_height"], inputs["pool_width"], inputs["stride"]
    N, C, Ho, Wo = dout.shape
    spread = np.broadcast_to(dout[:, :, None], (N, C, hp * wp, Ho, Wo))
    return add_windows(spread, np.shape(inputs["x"]), hp, wp, s)


MAX_POOL_BUGS = (
    Bug("gradient to the whole window", "sends each window's dout to every entry of the "
        "window: only its maximum gets it", _max_bug(_spread)),
    Bug("gradient assigned, not added", "sets dx at a window's maximum (=) instead of adding "
        "(+=): where windows overlap, one window's gradient overwrites another's",
        _max_bug(lambda i, d: _loops(i, d, stride=i["stride"], route="assign"))),
    Bug("stride ignored in the backward", "reads the window of (i, j) at (i, j) instead of "
        "(stride i, stride j) in the backward",
        _max_bug(lambda i, d: _loops(i, d, stride=1, route="mask"))),
    Bug("argmax unravelled with the window's height", "splits np.argmax's flat index as "
        "(idx // pool_height, idx % pool_height): a window is pool_width wide, so the "
        "gradient lands on the wrong entry of non-square windows (np.unravel_index(idx, "
        "window.shape) is right)",
        _max_bug(lambda i, d: _loops(i, d, stride=i["stride"], route="by height"))),
)  # fmt: skip


def _undivided(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
    out = pooling.average_forward(np.asarray(inputs["x"]), **_geometry(inputs))[0]
    return {"out": out, "dx": _spread(inputs, np.asarray(dout))}


AVG_POOL_BUGS = (
    Bug("dout not divided by the window size", "adds dout to every entry of the window "
        "without dividing by pool_height * pool_width", _undivided),
)  # fmt: skip


MAX_POOL = register(
    LayerKind(
        "max_pool", "convolution", ("x",), ("dx",),
        definition=lambda x, *, pool_height, pool_width, stride: pooling.max_forward(
            x, height=pool_height, width=pool_width, stride=stride, xp=jnp)[0],
        tolerance=_max_tolerance,
        fixed=_ties,
        shapes=Shapes(call=("x", "pool_param"), draw=_draw(ties=True),
                      arguments=lambda statics: {"pool_param": _pool_param(statics)},
                      padded=_padded),
        bugs=MAX_POOL_BUGS,
    )
)  # fmt: skip

AVG_POOL = register(
    LayerKind(
        "avg_pool", "convolution", ("x",), ("dx",),
        definition=lambda x, *, pool_height, pool_width, stride: pooling.average_forward(
            x, height=pool_height, width=pool_width, stride=stride, xp=jnp)[0],
        tolerance=_average_tolerance,
        shapes=Shapes(call=("x", "pool_param"), draw=_draw(ties=False),
                      arguments=lambda statics: {"pool_param": _pool_param(statics)},
                      padded=_padded),
        bugs=AVG_POOL_BUGS,
    )
)  # fmt: skip
