"""Max pooling and average pooling (cs231n's ``max_pool``), forward and backward, by hand.

Layout NCHW; each channel of each image is pooled on its own, with windows
of ``height x width`` (``hp x wp`` below) moved by ``stride`` ``s``, no padding::

    x (N, C, H, W)        out (N, C, Ho, Wo)
    Ho = 1 + (H - hp) // s        Wo = 1 + (W - wp) // s      (floor, as convolution)
    win[n,c,i,j] = x[n, c, s i : s i + hp, s j : s j + wp]     the window of (i, j)

Forward and backward, side by side (``dout = dL/dout``, ``(N, C, Ho, Wo)``)::

    forward                              backward: dx (N, C, H, W), every window adds
    max:     out[n,c,i,j] = max win      dx[window position q] += dout[n,c,i,j] / t
                                             for each q with win[q] == out[n,c,i,j],
                                             t = how many entries of the window tie
    average: out[n,c,i,j] = sum win      dx[each position of the window] +=
                             / (hp wp)       dout[n,c,i,j] / (hp wp)

Windows may overlap (``s < hp`` or ``s < wp``): an input entry in several
windows collects from each (the backward adds, never assigns).  Trailing rows
and columns that no window reaches get gradient 0.  Windows may be non-square.

**Ties in max pooling, defined deliberately.**  The max has a kink where two
entries of a window are equal; its gradient there is a choice.  manual_bp
takes jax's: the upstream gradient of a window is split *equally* among its
tied maxima (``jax.grad(lambda v: v.max())`` of ``[1, 3, 3]`` is
``[0, .5, .5]``), so the forward's ``xp.max`` over the window axis and this
backward define the same kink on both sides.  Off ties it is the usual
"all of ``dout`` to the argmax".  (A student's ``mask = window == max`` sends
the full ``dout`` to *each* tied maximum, ``np.argmax`` to the first only:
both equal this one off ties.)

The windows are read as convolution's im2col reads them
(``manual_bp.convolution.windows``: one strided slice per offset, stacked),
the forward written once over ``xp``; the backward scatters each offset's
share back with ``convolution.add_windows``.

The caches: ``x``, ``windows`` (max only, ``(N, C, hp wp, Ho, Wo)``), ``out``
(max only), and ``height``, ``width``, ``stride`` (ints).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from manual_bp.convolution import (
    POSITIVE,
    add_windows,
    check_gradient,
    check_images,
    output_size,
    read_cache,
    windows,
)
from manual_bp.validation import check_positive_int

Array = np.ndarray
Cache = dict[str, Any]

DERIVATION = """\
Pooling, layout NCHW, windows hp x wp, stride s, no padding.

  x (N, C, H, W)   out (N, C, Ho, Wo)
  Ho = 1 + (H - hp) // s,  Wo = 1 + (W - wp) // s   (floor: trailing rows ignored)
  win[n,c,i,j] = x[n, c, s*i : s*i + hp, s*j : s*j + wp]   the window of (i, j)

Max pooling.
  Forward:   out[n,c,i,j] = max(win[n,c,i,j])
  The max is locally one of its arguments: d out / d x[q] = 1 for the maximum q
  of the window and 0 for the others.  At a tie (t > 1 entries equal to the
  max) the max is not differentiable; manual_bp defines the gradient as jax
  does, the mean of the one-sided choices: each tied maximum gets 1/t.
  Backward:  dx[q] = sum over the windows (n,c,i,j) that contain q, where
                     x[q] == out[n,c,i,j], of dout[n,c,i,j] / t[n,c,i,j]

Average pooling.
  Forward:   out[n,c,i,j] = sum(win[n,c,i,j]) / (hp * wp)
  Backward:  dx[q] = sum over the windows (n,c,i,j) that contain q
                     of dout[n,c,i,j] / (hp * wp)

Windows overlap when s < hp or s < wp: an entry in several windows collects
from each (add, never assign).  Entries no window reaches get 0.
"""


def max_forward(
    x: Array, *, height: int, width: int, stride: int, xp: ModuleType = np
) -> tuple[Array, Cache]:
    """``(out, cache)``: the max of each ``height x width`` window, ``out (N, C, Ho, Wo)``.

    >>> x = np.array([[[[1.0, 3.0, 2.0], [0.0, 5.0, 4.0]]]])
    >>> max_forward(x, height=2, width=2, stride=1)[0]
    array([[[[5., 5.]]]])
    """
    x_windows, geometry = _windows(x, height, width, stride, xp)
    out = xp.max(x_windows, axis=2)
    return out, {"x": x, "windows": x_windows, "out": out, **geometry}


def max_backward(dout: Array, cache: Mapping[str, Any]) -> Array:
    """``dx (N, C, H, W)``: each window's ``dout`` split equally among its tied maxima.

    >>> x = np.array([[[[1.0, 3.0, 3.0]]]])
    >>> out, cache = max_forward(x, height=1, width=3, stride=1)
    >>> max_backward(np.ones((1, 1, 1, 1)), cache)
    array([[[[0. , 0.5, 0.5]]]])
    """
    x, x_windows, out, height, width, stride = read_cache(
        cache, ("x", "windows", "out", "height", "width", "stride")
    )
    check_gradient(dout, out.shape, x.dtype)
    is_max = x_windows == out[:, :, None]
    ties = is_max.sum(axis=2).astype(dout.dtype)  # >= 1: the max is one of the window's entries
    share = dout / ties
    d_windows = is_max * share[:, :, None]
    return add_windows(d_windows, x.shape, height, width, stride)


def average_forward(
    x: Array, *, height: int, width: int, stride: int, xp: ModuleType = np
) -> tuple[Array, Cache]:
    """``(out, cache)``: the mean of each ``height x width`` window, ``out (N, C, Ho, Wo)``.

    >>> x = np.array([[[[1.0, 3.0, 2.0], [0.0, 5.0, 4.0]]]])
    >>> average_forward(x, height=2, width=2, stride=1)[0]
    array([[[[2.25, 3.5 ]]]])
    """
    x_windows, geometry = _windows(x, height, width, stride, xp)
    out = xp.sum(x_windows, axis=2) / (height * width)
    return out, {"x": x, **geometry}


def average_backward(dout: Array, cache: Mapping[str, Any]) -> Array:
    """``dx (N, C, H, W)``: ``dout / (height width)`` added to every entry of each window."""
    x, height, width, stride = read_cache(cache, ("x", "height", "width", "stride"))
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, height, stride, 0), output_size(W, width, stride, 0)
    check_gradient(dout, (N, C, Ho, Wo), x.dtype)
    share = dout / (height * width)
    d_windows = np.broadcast_to(share[:, :, None], (N, C, height * width, Ho, Wo))
    return add_windows(d_windows, x.shape, height, width, stride)


def _windows(
    x: Array, height: int, width: int, stride: int, xp: ModuleType
) -> tuple[Array, dict[str, int]]:
    """The checked windows ``(N, C, height width, Ho, Wo)`` and the geometry for the cache."""
    height = check_positive_int(height, "height", too_small=POSITIVE)
    width = check_positive_int(width, "width", too_small=POSITIVE)
    stride = check_positive_int(stride, "stride", too_small=POSITIVE)
    check_images(x)
    _, _, H, W = x.shape
    for name, window, size, axis in (("height", height, H, "H"), ("width", width, W, "W")):
        if window > size:
            raise ValueError(
                f"{name}: expected a window of at most x's {axis} = {size} "
                f"(no padding), got {window}"
            )
    Ho, Wo = output_size(H, height, stride, 0), output_size(W, width, stride, 0)
    x_windows = windows(x, height, width, stride, Ho, Wo, xp)
    return x_windows, {"height": height, "width": width, "stride": stride}
