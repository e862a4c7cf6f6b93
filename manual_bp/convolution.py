"""A 2-D convolution layer (cs231n's ``conv_forward``), forward and backward, by hand.

Layout NCHW, as cs231n: a batch of ``N`` images of ``C`` channels, ``F`` filters
of size ``HH x WW``, stride ``s``, zero padding ``p`` on every side::

    x   (N, C, H, W)        w (F, C, HH, WW)       b (F,)
    Ho = 1 + (H + 2p - HH) // s                    Wo = 1 + (W + 2p - WW) // s
    out (N, F, Ho, Wo)

Forward and backward, side by side (``xpad``: ``x`` with ``p`` zeros around
each image, ``(N, C, H + 2p, W + 2p)``; ``k, l`` run over the kernel offsets)::

    forward                                           backward, dout = dL/dout (N, F, Ho, Wo)
    out[n,f,i,j] = b[f]                               db[f]       = sum_{n,i,j} dout[n,f,i,j]
      + sum_{c,k,l} w[f,c,k,l] xpad[n,c,s i+k,s j+l]  dw[f,c,k,l] = sum_{n,i,j} dout[n,f,i,j]
                                                                     xpad[n,c,s i+k,s j+l]
                                                      dxpad[n,c,s i+k,s j+l] += sum_f
                                                                     dout[n,f,i,j] w[f,c,k,l]
                                                      dx = dxpad[:, :, p:p+H, p:p+W]

It is a cross-correlation (the kernel is not flipped), as in cs231n and every
framework.  The output size is the floor of the division (``output_size``):
trailing rows and columns that no window reaches are ignored, and their
gradient is 0.

**The computation: im2col.**  The window of every output position is read at
once: for each kernel offset ``(k, l)``, the strided slice
``xpad[:, :, k : k + s (Ho-1) + 1 : s, l : ...]`` holds the input each output
position sees through that offset.  Stacked, the slices are the columns
``cols (N, C HH WW, Ho Wo)`` (``windows``), and the layer is one product::

    out[n] = w.reshape(F, C HH WW) @ cols[n] + b       (F, Ho Wo) per sample
    dw     = sum_n dout[n] @ cols[n]^T                 (F, C HH WW)
    dcols  = w.reshape(F, C HH WW)^T @ dout[n]         (C HH WW, Ho Wo) per sample

and ``dx`` is col2im (``add_windows``): each offset's slice of ``dcols`` is
added back onto the strided slice of ``dxpad`` it was read from (one loop
over the ``HH WW`` offsets: within one offset the positions are distinct, so a
sliced ``+=`` adds every term; overlapping windows meet across offsets), and
the padding is cropped.  The forward is written once over an array namespace
``xp`` (strided slices, ``stack``, ``pad``, ``matmul``): ``xp=jax.numpy`` is
the definition the oracle differentiates.

The cache: ``x``, ``w`` and ``cols`` (arrays), ``stride`` and ``pad`` (ints).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from manual_bp.validation import (
    check_cache,
    check_float_array,
    check_positive_int,
    check_same_dtype,
    check_shape,
)

Array = np.ndarray
Cache = dict[str, Any]

DERIVATION = """\
Convolution (cross-correlation), layout NCHW, stride s, zero padding p.

  x (N, C, H, W)   w (F, C, HH, WW)   b (F,)   out (N, F, Ho, Wo)
  Ho = 1 + (H + 2p - HH) // s,  Wo = 1 + (W + 2p - WW) // s  (floor)
  xpad = x with p zeros on each side of every image   (N, C, H + 2p, W + 2p)

Forward:
  out[n,f,i,j] = b[f] + sum_{c,k,l} w[f,c,k,l] * xpad[n,c, s*i + k, s*j + l]

Each output entry is affine in b[f], in each w[f,c,k,l] and in each input entry
it sees, so with dout = dL/dout (N, F, Ho, Wo) the chain rule sums over every
output entry that used the variable:

  db[f] = sum_{n,i,j} dout[n,f,i,j]                       d out[n,f,i,j]/d b[f] = 1

  dw[f,c,k,l] = sum_{n,i,j} dout[n,f,i,j] * xpad[n,c, s*i + k, s*j + l]
      (the same window product as the forward, summed over samples and positions)

  dxpad[n,c,y,z] = sum over f and over the (i, j, k, l) with s*i + k = y and
                   s*j + l = z of dout[n,f,i,j] * w[f,c,k,l]
      (each input entry collects from every window that covered it: windows
      overlap when s < HH, and entries no window reaches get 0)

  dx = dxpad[:, :, p : p + H, p : p + W]        (the padding is not an input)

im2col: cols[n, (c,k,l), (i,j)] = xpad[n,c, s*i + k, s*j + l]  (N, C*HH*WW, Ho*Wo)
  out[n] = W2 @ cols[n] + b        W2 = w.reshape(F, C*HH*WW)
  dw     = sum_n dout[n] @ cols[n]^T          db = dout summed over n, i, j
  dcols  = W2^T @ dout[n], added back to the positions of xpad it was read from
"""


def output_size(size: int, window: int, stride: int, pad: int) -> int:
    """``1 + (size + 2 pad - window) // stride``: the windows that fit (floor).

    Trailing rows that do not fill a window are ignored (PyTorch's and
    cs231n's integer division).  ``ValueError`` when not even one window fits.

    >>> output_size(32, 3, 1, 1), output_size(7, 3, 2, 0), output_size(6, 3, 2, 0)
    (32, 3, 2)
    """
    size = check_positive_int(size, "size", too_small=POSITIVE)
    window = check_positive_int(window, "window", too_small=POSITIVE)
    stride = check_positive_int(stride, "stride", too_small=POSITIVE)
    pad = check_positive_int(pad, "pad", 0)
    if size + 2 * pad < window:
        raise ValueError(
            f"window: expected at most size + 2 pad = {size} + 2*{pad} = {size + 2 * pad}, "
            f"got {window} (the window does not fit in the padded input)"
        )
    return 1 + (size + 2 * pad - window) // stride


def forward(
    x: Array, w: Array, b: Array, *, stride: int = 1, pad: int = 0, xp: ModuleType = np
) -> tuple[Array, Cache]:
    """``(out, cache)``: ``out[n,f,i,j] = b[f] + sum w[f,c,k,l] xpad[n,c,s i+k,s j+l]``.

    ``x (N, C, H, W)``, ``w (F, C, HH, WW)``, ``b (F,)`` of one float dtype
    (float32 or float64, kept); ``out (N, F, Ho, Wo)``.  Written over ``xp``
    (``numpy`` or ``jax.numpy``).

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> out, cache = forward(x, np.ones((1, 1, 2, 2)), np.zeros(1), stride=2)
    >>> out
    array([[[[10., 18.],
             [42., 50.]]]])
    """
    stride = check_positive_int(stride, "stride", too_small=POSITIVE)
    pad = check_positive_int(pad, "pad", 0)
    dtype = check_images(x)
    check_float_array(w, "w", "(F, C, HH, WW)", like=dtype, nonempty=True)
    check_float_array(b, "b", "(F,)", like=dtype, nonempty=True)
    N, C, H, W = x.shape
    F, C_w, HH, WW = w.shape
    if C_w != C:
        raise ValueError(
            f"w: expected {C} input channels (x's C) in w.shape[1], got shape {w.shape}"
        )
    check_shape(b, "b", (F,), why="(one bias per filter of w)")
    Ho = _fitting(H, HH, stride, pad, "height", "HH")
    Wo = _fitting(W, WW, stride, pad, "width", "WW")
    x_padded = x if pad == 0 else xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = windows(x_padded, HH, WW, stride, Ho, Wo, xp).reshape(N, C * HH * WW, Ho * Wo)
    out = xp.matmul(w.reshape(F, C * HH * WW), cols) + b.reshape(F, 1)
    cache: Cache = {"x": x, "w": w, "cols": cols, "stride": stride, "pad": pad}
    return out.reshape(N, F, Ho, Wo), cache


def backward(dout: Array, cache: Mapping[str, Any]) -> tuple[Array, Array, Array]:
    """``(dx, dw, db)`` from ``dout (N, F, Ho, Wo)`` and the forward's cache.

    ``db`` sums ``dout`` over ``n, i, j``; ``dw`` is one product with the
    columns; ``dx`` is col2im of ``W2^T dout``, the padding cropped.
    """
    x, w, cols, stride, pad = read_cache(cache, ("x", "w", "cols", "stride", "pad"))
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = output_size(H, HH, stride, pad)
    Wo = output_size(W, WW, stride, pad)
    check_gradient(dout, (N, F, Ho, Wo), x.dtype)
    dout_columns = dout.reshape(N, F, Ho * Wo)
    db = dout.sum(axis=(0, 2, 3))
    # per sample (F, Ho Wo) @ (Ho Wo, C HH WW), then summed over n: no transposed copies
    # of the columns (tensordot over (n, position) makes two; 4x slower at N = 64, 32x32)
    dw = np.matmul(dout_columns, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, C * HH * WW).T, dout_columns)
    dx_padded = add_windows(
        dcols.reshape(N, C, HH * WW, Ho, Wo), (N, C, H + 2 * pad, W + 2 * pad), HH, WW, stride
    )
    return dx_padded[:, :, pad : pad + H, pad : pad + W], dw, db


def windows(
    x_padded: Array,
    height: int,
    width: int,
    stride: int,
    out_height: int,
    out_width: int,
    xp: ModuleType = np,
) -> Array:
    """The input each window position sees, by kernel offset: ``(N, C, height width, Ho, Wo)``.

    ``[n, c, k width + l, i, j] = x_padded[n, c, stride i + k, stride j + l]``: one
    strided slice per offset ``(k, l)``, stacked (im2col over ``xp``).
    """
    row_span = stride * (out_height - 1) + 1
    col_span = stride * (out_width - 1) + 1
    return xp.stack(
        [
            x_padded[:, :, k : k + row_span : stride, l : l + col_span : stride]
            for k in range(height)
            for l in range(width)
        ],
        axis=2,
    )


def add_windows(
    d_windows: Array, padded_shape: tuple[int, ...], height: int, width: int, stride: int
) -> Array:
    """col2im, the transpose of ``windows``: each offset's gradient added back where it was read.

    ``d_windows (N, C, height width, Ho, Wo)`` into a new ``(N, C, Hp, Wp)``
    array of zeros.  Within one offset ``(k, l)`` the positions
    ``(stride i + k, stride j + l)`` are distinct, so the sliced ``+=`` adds
    each term once; overlapping windows meet across offsets.
    """
    _, _, _, out_height, out_width = d_windows.shape
    row_span = stride * (out_height - 1) + 1
    col_span = stride * (out_width - 1) + 1
    d_x_padded = np.zeros(padded_shape, dtype=d_windows.dtype)
    for k in range(height):
        for l in range(width):
            d_x_padded[:, :, k : k + row_span : stride, l : l + col_span : stride] += d_windows[
                :, :, k * width + l
            ]
    return d_x_padded


# The checks, shared with manual_bp.pooling (the logic in manual_bp.validation):
# validate before computing, name the argument.

POSITIVE = "a positive int"  # how stride, window and size word their minimum


def check_images(x: object) -> np.dtype:
    """``x`` is a float batch of images ``(N, C, H, W)``, none empty; returns its dtype."""
    return check_float_array(x, "x", "(N, C, H, W)", nonempty=True)


def check_gradient(dout: object, expected: tuple[int, ...], dtype: np.dtype) -> None:
    """``dout`` is a NumPy array of the forward output's shape and dtype."""
    if not isinstance(dout, np.ndarray):
        raise TypeError(f"dout: expected a numpy array, got {type(dout).__name__}")
    check_shape(dout, "dout", expected, why="(the forward's out)")
    check_same_dtype(dout.dtype, "dout", dtype, "(that of the forward's x)")


def _fitting(size: int, window: int, stride: int, pad: int, axis: str, window_name: str) -> int:
    """``output_size`` along one axis, its error naming the layer's arguments."""
    if size + 2 * pad < window:
        raise ValueError(
            f"{window_name}: the window ({window}) is larger than the padded input's "
            f"{axis} ({size} + 2*{pad} = {size + 2 * pad})"
        )
    return output_size(size, window, stride, pad)


def read_cache(cache: object, keys: tuple[str, ...]) -> list[Any]:
    """The cache's entries in the order of ``keys`` (``ValueError`` naming a missing one)."""
    checked = check_cache(cache, keys, "the forward", expected=f"the forward's keys {list(keys)}")
    return [checked[key] for key in keys]
