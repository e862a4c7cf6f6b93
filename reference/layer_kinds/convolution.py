"""The convolution layer as cs231n's students write it: ``conv_forward_naive(x, w,
b, conv_param) -> (out, cache)`` and ``conv_backward_naive(dout, cache) -> (dx,
dw, db)``, ``conv_param = {"stride": s, "pad": p}``.

The definition is ``manual_bp.convolution.forward`` over ``jax.numpy``.  The
draws cover the whole legal space: one to three samples, channels and
filters; inputs up to 7x7, not square; padding 0 to 2; every filter size
that fits the padded input (non-square, up to the whole input); stride 1 to
3, including strides that leave trailing rows no window reaches (the floor of
``(H + 2p - HH) / s``, as cs231n's integer division).

The rounding model: each output entry is a sum of ``K = C HH WW`` products
and a bias, each ``dx`` entry of at most ``F HH WW`` products, each ``dw``
entry of ``N Ho Wo``, each ``db`` of ``N Ho Wo`` terms; in any order a
``k``-term sum is within ``k u sum |terms|`` of the exact one.  The sums of
magnitudes are manual_bp's own forward and backward run on ``|x|``, ``|w|``,
``|b|``, ``|dout|``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual_bp import convolution
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_kinds.shaped import Drawn, Draws, Shapes, bucket
from manual_bp_reference.tolerance import SAFETY, unit_roundoff

MAX_SIDE = 7  # the largest input side drawn
MAX_STRIDE = 3
MAX_PAD = 2


def units(dtype: str) -> tuple[float, float]:
    """``u``: the user's rounding and the oracle's (float64); ``tiny``: the underflow floor."""
    return unit_roundoff(dtype) + unit_roundoff("float64"), float(np.finfo(np.dtype(dtype)).tiny)


def _draw(d: Draws) -> Drawn:
    N = d.integer(1, min(3, d.max_batch), probe=2)
    C = d.integer(1, min(3, d.max_width), probe=2)
    F = d.integer(1, min(3, d.max_width), probe=3)
    pad = d.integer(0, MAX_PAD, probe=1)
    stride = d.integer(1, MAX_STRIDE, probe=2)
    H = d.integer(1, MAX_SIDE, probe=5)
    W = d.integer(1, MAX_SIDE, probe=4)
    HH = d.integer(1, H + 2 * pad, probe=3)
    WW = d.integer(1, W + 2 * pad, probe=2)
    Ho = convolution.output_size(H, HH, stride, pad)
    Wo = convolution.output_size(W, WW, stride, pad)
    arrays = {"x": d.values((N, C, H, W)), "w": d.values((F, C, HH, WW)), "b": d.values((F,))}
    return Drawn(arrays, {"stride": stride, "pad": pad}, (d.values((N, F, Ho, Wo)),))


def _magnitudes(inputs: Mapping[str, Any], dout: Array) -> tuple[Array, ...]:
    """manual_bp's conv run on magnitudes: ``(out, dx, dw, db)`` of ``|x|, |w|, |b|, |dout|``."""
    out, cache = convolution.forward(
        np.abs(inputs["x"]), np.abs(inputs["w"]), np.abs(inputs["b"]),
        stride=inputs["stride"], pad=inputs["pad"],
    )  # fmt: skip
    return (out, *convolution.backward(np.abs(dout), cache))


def _tolerance(inputs: Mapping[str, Any], dout: Array | None, dtype: str) -> dict[str, Array]:
    assert dout is not None
    u, tiny = units(dtype)
    N, C, _, _ = inputs["x"].shape
    F, _, HH, WW = inputs["w"].shape
    positions = N * dout.shape[2] * dout.shape[3]
    out, dx, dw, db = _magnitudes(inputs, dout)

    def bound(terms: int, magnitude: Array) -> Array:
        return SAFETY * ((terms + 1) * u * magnitude + (terms + 2) * tiny)

    return {
        "out": bound(C * HH * WW + 1, out),
        "dx": bound(F * HH * WW, dx),
        "dw": bound(positions, dw),
        "db": bound(positions, db),
    }


def _correct(inputs: Mapping[str, Any], dout: Array) -> dict[str, Array]:
    out, cache = convolution.forward(
        inputs["x"], inputs["w"], inputs["b"], stride=inputs["stride"], pad=inputs["pad"]
    )
    dx, dw, db = convolution.backward(dout, cache)
    return {"out": out, "dx": dx, "dw": dw, "db": db}


def _flipped(inputs: Mapping[str, Any], dout: Array | None) -> dict[str, Array]:
    assert dout is not None
    flipped = {**inputs, "w": np.asarray(inputs["w"])[:, :, ::-1, ::-1]}
    return {**_correct(inputs, dout), "dx": _correct(flipped, dout)["dx"]}


def _cropped(crop):
    """``dx`` cropped from the padded input's gradient by ``crop(dxpad, pad, H, W)``."""

    def outputs(inputs: Mapping[str, Any], dout: Array | None) -> dict[str, Array]:
        assert dout is not None
        p = inputs["pad"]
        padded = {**inputs, "x": np.pad(inputs["x"], ((0, 0), (0, 0), (p, p), (p, p))), "pad": 0}
        dxpad = _correct(padded, dout)["dx"]
        return {**_correct(inputs, dout), "dx": crop(dxpad, p, *np.shape(inputs["x"])[2:])}

    return outputs


def _loops(inputs: Mapping[str, Any], dout: Array, stride: int) -> tuple[Array, Array]:
    """``dx``, ``dw`` by the naive loops over positions, reading windows at ``stride``."""
    p, x, w = inputs["pad"], inputs["x"], inputs["w"]
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxpad, dw = np.zeros_like(xpad), np.zeros_like(w)
    _, _, HH, WW = w.shape
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            r, c = i * stride, j * stride
            window = xpad[:, :, r : r + HH, c : c + WW]
            if window.shape[2:] != (HH, WW):  # the window ran off the input: dropped
                continue
            dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], window)
            dxpad[:, :, r : r + HH, c : c + WW] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], w)
    H, W = x.shape[2:]
    return dxpad[:, :, p : p + H, p : p + W], dw


def _stride_ignored(inputs: Mapping[str, Any], dout: Array | None) -> dict[str, Array]:
    assert dout is not None
    dx, dw = _loops(inputs, dout, 1)
    return {**_correct(inputs, dout), "dx": dx, "dw": dw}


def _db_averaged(inputs: Mapping[str, Any], dout: Array | None) -> dict[str, Array]:
    assert dout is not None
    correct = _correct(inputs, dout)
    return {**correct, "db": correct["db"] / dout.shape[0]}


def _dw_first_sample(inputs: Mapping[str, Any], dout: Array | None) -> dict[str, Array]:
    assert dout is not None
    first = {**inputs, "x": inputs["x"][:1]}
    return {**_correct(inputs, dout), "dw": _correct(first, dout[:1])["dw"]}


CONV_BUGS = (
    Bug("flipped kernel", "computes dx with the kernel flipped (w[:, :, ::-1, ::-1]): a true "
        "convolution, where the forward is a cross-correlation", _flipped),
    Bug("padding cropped with a negative end", "crops dx as dx_pad[:, :, pad:-pad, pad:-pad], "
        "which is empty when pad = 0 (use pad:pad + H)",
        _cropped(lambda d, p, H, W: d[:, :, p:-p, p:-p])),
    Bug("padding cropped from one side", "crops dx as dx_pad[:, :, :H, :W], keeping the "
        "top-left padding: the input sits at dx_pad[:, :, pad:pad + H, pad:pad + W]",
        _cropped(lambda d, p, H, W: d[:, :, :H, :W])),
    Bug("stride ignored in the backward", "reads and scatters each window at (i, j) instead "
        "of (stride i, stride j) in the backward", _stride_ignored),
    Bug("db averaged over the batch", "divides db by N: the bias gradient is a sum over "
        "samples and positions", _db_averaged),
    Bug("dw from the first sample only", "computes dw from x[0] and dout[0]: dw sums over "
        "every sample", _dw_first_sample),
)  # fmt: skip


def _definition(x: Any, w: Any, b: Any, *, stride: int, pad: int) -> Any:
    return convolution.forward(x, w, b, stride=stride, pad=pad, xp=jnp)[0]


CONV = register(
    LayerKind(
        "conv", "convolution", ("x", "w", "b"), ("dx", "dw", "db"),
        definition=_definition,
        tolerance=_tolerance,
        shapes=Shapes(
            call=("x", "w", "b", "conv_param"),
            draw=_draw,
            arguments=lambda statics: {"conv_param": dict(statics)},
            oracle=lambda inputs, douts: conv_oracle(inputs, douts),
        ),
        bugs=CONV_BUGS,
    )
)  # fmt: skip


# The oracle: one compiled lax.conv of stride 1 serves every stride and padding.


@jax.jit
def _stride_one_vjp(x: Any, w: Any, b: Any, dout: Any) -> tuple:
    def conv(x: Any, w: Any, b: Any) -> Any:
        out = jax.lax.conv_general_dilated(
            x, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        return out + b[None, :, None, None]

    out, vjp = jax.vjp(conv, x, w, b)
    return out, vjp(dout)


def conv_oracle(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> dict[str, Array]:
    """``out`` and ``dx``, ``dw``, ``db``: ``jax.vjp`` of a stride-1 ``lax.conv`` on
    the case embedded in zeros, equal to the definition's (a test proves it).

    The padding is written into a zero array whose sides are powers of two
    (``x`` at ``[p : p + H, p : p + W]``), the filters into zero ``(4^k)``-sized
    ones, samples, channels and filters padded to 4 or more: zeros add exact
    zeros to every sum.  Stride ``s`` takes every ``s``-th output of the stride-1
    convolution, so ``dout`` enters at those positions and zeros elsewhere.
    """
    x, w, b, (dout,) = inputs["x"], inputs["w"], inputs["b"], douts
    s, p = int(inputs["stride"]), int(inputs["pad"])
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, Ho, Wo = dout.shape
    Kh, Kw = bucket(HH), bucket(WW)
    Hb = bucket(max(H + 2 * p, s * (Ho - 1) + Kh), least=8)
    Wb = bucket(max(W + 2 * p, s * (Wo - 1) + Kw), least=8)
    Nb, Cb, Fb = bucket(N), bucket(C), bucket(F)
    xe = np.zeros((Nb, Cb, Hb, Wb))
    xe[:N, :C, p : p + H, p : p + W] = x
    we = np.zeros((Fb, Cb, Kh, Kw))
    we[:F, :C, :HH, :WW] = w
    be = np.zeros(Fb)
    be[:F] = b
    de = np.zeros((Nb, Fb, Hb - Kh + 1, Wb - Kw + 1))
    taken = (slice(0, N), slice(0, F), slice(0, s * Ho, s), slice(0, s * Wo, s))
    de[taken] = dout
    out, (dx, dw, db) = _stride_one_vjp(xe, we, be, de)
    return {
        "out": np.asarray(out)[taken],
        "dx": np.asarray(dx)[:N, :C, p : p + H, p : p + W],
        "dw": np.asarray(dw)[:F, :C, :HH, :WW],
        "db": np.asarray(db)[:F],
    }
