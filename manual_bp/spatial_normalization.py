"""Spatial batch normalization and group normalization of images, by hand.

``x`` is a batch of images ``(N, C, H, W)``, as in cs231n.  Both layers are
``normalization.normalize`` (the one definition of the maths: two-pass
variance, ``eps = EPS = 1e-5`` inside the square root) applied to ``x``
reshaped into its columns layout, and both backwards are
``normalization.closed_backward`` through the same reshape.  They differ only
in which entries share a mean and a variance.

Spatial batch normalization: one mean and variance per channel, over the
batch and every position; ``gamma``, ``beta`` per channel, ``(C,)``::

    forward                                   backward
    Z    = x as channel rows   (C, N·H·W)     dN     = dout as channel rows   (C, N·H·W)
    mu   = mean of a row       (C, 1)         dbeta  = sum of a row of dN      (C,)
    var  = mean of (Z - mu)^2  (C, 1)         dgamma = sum of dN · Zhat        (C,)
    s    = 1/sqrt(var + eps)   (C, 1)         dZhat  = gamma · dN              (C, N·H·W)
    Zhat = (Z - mu) · s        (C, N·H·W)     dZ = (s/k) (k dZhat - sum dZhat
    out  = gamma·Zhat + beta   (N, C, H, W)          - Zhat · sum(dZhat·Zhat))
                                              k = N·H·W; dx = dZ as (N, C, H, W)

Group normalization with ``G = groups``: one mean and variance per sample
and per group of ``C / G`` consecutive channels, over those channels and
every position; ``gamma``, ``beta`` per channel, shaped ``(1, C, 1, 1)`` as
in cs231n's notebook (and ``dgamma``, ``dbeta`` returned in that shape)::

    forward                                   backward
    Z    = x as group columns  (C/G·H·W, N·G) dbeta  = sum over N, H, W of dout (1, C, 1, 1)
    mu   = mean of a column    (1, N·G)       dgamma = sum over N, H, W of
    var  = mean of (Z - mu)^2  (1, N·G)                dout · xhat               (1, C, 1, 1)
    s    = 1/sqrt(var + eps)   (1, N·G)       dZhat  = gamma · dout as columns (C/G·H·W, N·G)
    Zhat = (Z - mu) · s        (C/G·H·W, N·G) dZ = (s/k) (k dZhat - sum dZhat
    xhat = Zhat as an image    (N, C, H, W)          - Zhat · sum(dZhat·Zhat))
    out  = gamma·xhat + beta   (N, C, H, W)   k = C/G·H·W; dx = dZ as (N, C, H, W)

(column ``n·G + g`` of the group layout holds group ``g`` of sample ``n``: the
``C/G`` consecutive channels ``g·C/G, ..., (g+1)·C/G - 1`` at every position)

Spatial batch normalization is ``normalize(..., "batch")`` (statistics per
row) of the channel layout; group normalization is ``normalize(..., "layer")``
(statistics per column) of the group layout, with ``gamma`` and ``beta``
broadcast to the full image first, because one group's column holds several
channels.  ``G = 1`` is layer normalization of the image, ``G = C`` instance
normalization.

``eps`` is not a parameter: ``normalize`` adds its fixed ``EPS``.  One
entry per statistic (``N·H·W = 1``, or ``C/G·H·W = 1``) is defined, not
refused: ``Zhat = 0``, ``out = beta`` and ``dx = 0`` exactly (as in
``normalization``).  Training mode only: no running statistics.

The caches (read by the backwards; ``xhat`` is ``Zhat`` in ``x``'s shape):

* spatial batch normalization: ``xhat`` ``(N, C, H, W)``; ``mu``, ``var``,
  ``inv_std``, ``gamma`` ``(C,)``;
* group normalization: ``xhat`` ``(N, C, H, W)``; ``mu``, ``var``,
  ``inv_std`` ``(N, G)``; ``gamma`` ``(1, C, 1, 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import cast

import numpy as np

from manual_bp import normalization
from manual_bp.validation import (
    check_cache,
    check_float_array,
    check_positive_int,
    check_same_dtype,
    check_shape,
)

Array = np.ndarray

DERIVATION = """\
Spatial batch normalization and group normalization, x of shape (N, C, H, W).

Both are the normalization step of manual_bp.normalization applied to x laid out
as columns; only the entries that share a mean and a variance differ.

Forward, over one set S of k entries that share their statistics:
    mu   = (1/k) sum_S x                      s = 1 / sqrt(var + eps), eps = 1e-5
    var  = (1/k) sum_S (x - mu)^2             (biased: divided by k, not k - 1)
    xhat = (x - mu) s
    out  = gamma_c xhat + beta_c              gamma, beta: one value per channel c

    spatial batch norm: S = one channel c, over n, h, w      k = N H W
    group norm (G groups): S = one sample n and one group g of C/G channels,
                           over those channels and h, w      k = (C/G) H W

Gradient of gamma and beta: gamma_c and beta_c touch every entry of channel c.
    dbeta_c  = sum over n, h, w of dout
    dgamma_c = sum over n, h, w of dout xhat

Gradient of x.  Let dxhat = gamma_c dout.  Within S, xhat depends on every x
through mu and var:
    d xhat_i / d x_j = s (delta_ij - 1/k - xhat_i xhat_j / k)
so that
    dx_i = sum_{j in S} dxhat_j s (delta_ij - 1/k - xhat_i xhat_j / k)
         = (s / k) (k dxhat_i - sum_S dxhat - xhat_i sum_S dxhat xhat)

In spatial batch norm gamma_c is constant over S and factors out; in group norm
S holds C/G channels with different gamma_c, so gamma stays inside both sums.
One entry per set (k = 1): xhat = 0, out = beta, dx = 0.
"""

SpatialCache = dict[str, Array]


def _check_array(value: object, name: str, shape: tuple[int, ...] | int) -> Array:
    """A float32 or float64 array (NumPy's or the oracle's) of exactly ``shape``.

    ``shape`` an int: any shape of that many axes, none of them empty.
    """
    check_float_array(value, name)
    array = cast(Array, value)
    got = tuple(array.shape)
    if isinstance(shape, int):
        if len(got) != shape:
            raise ValueError(f"{name}: expected {shape} dimensions, got shape {got}")
        if 0 in got:
            raise ValueError(f"{name}: expected no empty axis, got shape {got}")
    else:
        check_shape(array, name, shape)
    return array


def _check_parameters(x: object, gamma: object, beta: object, shape: str) -> Array:
    """``x`` ``(N, C, H, W)``; ``gamma``, ``beta`` ``(C,)`` or ``(1, C, 1, 1)``, ``x``'s dtype."""
    image = _check_array(x, "x", 4)
    C = image.shape[1]
    expected = (C,) if shape == "(C,)" else (1, C, 1, 1)
    for value, name in ((gamma, "gamma"), (beta, "beta")):
        check_same_dtype(_check_array(value, name, expected).dtype, name, image.dtype)
    return image


def _check_backward(dout: object, cache: object, shape: str) -> tuple[Array, Mapping[str, Array]]:
    """``dout`` and the forward's cache, ``gamma`` shaped ``shape``: as the forward made them."""
    made_by = "spatial_batchnorm_forward" if shape == "(C,)" else "group_norm_forward"
    cache = check_cache(cache, ("xhat", "inv_std", "gamma"), made_by)
    xhat = _check_array(cache["xhat"], "cache['xhat']", 4)
    N, C = xhat.shape[:2]
    if shape == "(C,)":
        inv_std = _check_array(cache["inv_std"], "cache['inv_std']", (C,))
    else:
        inv_std = _check_array(cache["inv_std"], "cache['inv_std']", 2)
        if inv_std.shape[0] != N or C % inv_std.shape[1]:
            raise ValueError(
                f"cache['inv_std']: expected (N, G) = ({N}, a divisor of C = {C}), "
                f"got {inv_std.shape}"
            )
    _check_parameters(xhat, cache["gamma"], cache["gamma"], shape)
    check_same_dtype(inv_std.dtype, "cache['inv_std']", xhat.dtype)
    array = _check_array(dout, "dout", tuple(xhat.shape))
    check_same_dtype(array.dtype, "dout", xhat.dtype)
    return array, cache


def channel_columns(a: Array) -> Array:
    """``(N, C, H, W) -> (C, N·H·W)``: row ``c`` holds every entry of channel ``c``."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def from_channel_columns(Z: Array, shape: tuple[int, ...]) -> Array:
    """The inverse of ``channel_columns`` for an image batch of ``shape``."""
    N, C, H, W = shape
    return Z.reshape(C, N, H, W).transpose(1, 0, 2, 3)


def group_columns(a: Array, groups: int) -> Array:
    """``(N, C, H, W) -> (C/G·H·W, N·G)``: column ``n·G + g`` holds group ``g`` of sample ``n``."""
    return a.reshape(a.shape[0] * groups, -1).T


def from_group_columns(Z: Array, shape: tuple[int, ...]) -> Array:
    """The inverse of ``group_columns`` for an image batch of ``shape``."""
    return Z.T.reshape(shape)


def spatial_batchnorm_forward(
    x: Array, gamma: Array, beta: Array, *, xp: ModuleType = np
) -> tuple[Array, SpatialCache]:
    """Per-channel batch normalization of ``x`` ``(N, C, H, W)``, training mode.

    ``gamma``, ``beta``: ``(C,)``, ``x``'s dtype.  Returns ``out`` ``(N, C, H, W)``
    and the cache (module notes).  The statistics are those of
    ``normalize(channel_columns(x), ..., "batch")``.
    """
    _check_parameters(x, gamma, beta, "(C,)")
    C = x.shape[1]
    step = normalization.normalize(
        channel_columns(x), gamma.reshape(C, 1), beta.reshape(C, 1), "batch", xp
    )
    cache = {
        "xhat": from_channel_columns(step["Zhat"], x.shape),
        "mu": step["mu"].reshape(C),
        "var": step["var"].reshape(C),
        "inv_std": step["inv_std"].reshape(C),
        "gamma": gamma,
    }
    return from_channel_columns(step["N"], x.shape), cache


def spatial_batchnorm_backward(
    dout: Array, cache: Mapping[str, Array]
) -> tuple[Array, Array, Array]:
    """``(dx, dgamma, dbeta)``: ``(N, C, H, W)``, ``(C,)``, ``(C,)`` (module notes)."""
    dout, cache = _check_backward(dout, cache, "(C,)")
    C = dout.shape[1]
    dN, Zhat = channel_columns(dout), channel_columns(cache["xhat"])
    step_cache = {
        "Zhat1": Zhat,
        "inv_std1": cache["inv_std"].reshape(C, 1),
        "gamma1": cache["gamma"].reshape(C, 1),
    }
    dZ, _ = normalization.closed_backward(dN, step_cache, 1, "batch")
    dgamma, dbeta = normalization.parameter_gradients(dN, Zhat)
    return from_channel_columns(dZ, dout.shape), dgamma.reshape(C), dbeta.reshape(C)


def group_norm_forward(
    x: Array, gamma: Array, beta: Array, groups: int, *, xp: ModuleType = np
) -> tuple[Array, SpatialCache]:
    """Group normalization of ``x`` ``(N, C, H, W)`` with ``groups`` groups of channels.

    ``gamma``, ``beta``: ``(1, C, 1, 1)``, ``x``'s dtype; ``groups`` divides ``C``.
    Returns ``out`` ``(N, C, H, W)`` and the cache (module notes).  The
    statistics are those of ``normalize(group_columns(x), ..., "layer")``.
    """
    _check_parameters(x, gamma, beta, "(1, C, 1, 1)")
    groups = check_positive_int(groups, "groups")
    N, C = x.shape[:2]
    if C % groups:
        raise ValueError(f"groups: expected a divisor of the channels C = {C}, got {groups}")
    # gamma and beta per entry, laid out as Z: a column holds C/G channels.
    step = normalization.normalize(
        group_columns(x, groups),
        group_columns(xp.broadcast_to(gamma, x.shape), groups),
        group_columns(xp.broadcast_to(beta, x.shape), groups),
        "layer",
        xp,
    )
    cache = {
        "xhat": from_group_columns(step["Zhat"], x.shape),
        "mu": step["mu"].reshape(N, groups),
        "var": step["var"].reshape(N, groups),
        "inv_std": step["inv_std"].reshape(N, groups),
        "gamma": gamma,
    }
    return from_group_columns(step["N"], x.shape), cache


def group_norm_backward(dout: Array, cache: Mapping[str, Array]) -> tuple[Array, Array, Array]:
    """``(dx, dgamma, dbeta)``: ``(N, C, H, W)``, ``(1, C, 1, 1)``, ``(1, C, 1, 1)``."""
    dout, cache = _check_backward(dout, cache, "(1, C, 1, 1)")
    N, C = dout.shape[:2]
    groups = cache["inv_std"].shape[1]
    step_cache = {
        "Zhat1": group_columns(cache["xhat"], groups),
        "inv_std1": cache["inv_std"].reshape(1, N * groups),
        "gamma1": group_columns(np.broadcast_to(cache["gamma"], dout.shape), groups),
    }
    dZ, _ = normalization.closed_backward(group_columns(dout, groups), step_cache, 1, "layer")
    # gamma_c touches channel c of every sample: the channel layout's row sums.
    dgamma, dbeta = normalization.parameter_gradients(
        channel_columns(dout), channel_columns(cache["xhat"])
    )
    return from_group_columns(dZ, dout.shape), dgamma.reshape(1, C, 1, 1), dbeta.reshape(1, C, 1, 1)
