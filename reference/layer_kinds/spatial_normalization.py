"""Spatial batch norm and group norm as cs231n's assignment 2 has students write
them: ``spatial_batchnorm_forward(x, gamma, beta, bn_param)`` (``gamma``,
``beta`` ``(C,)``) and ``spatial_groupnorm_forward(x, gamma, beta, G,
gn_param)`` (``gamma``, ``beta`` ``(1, C, 1, 1)``, as the notebook shapes
them), each ``-> (out, cache)``, and ``backward(dout, cache) -> (dx, dgamma,
dbeta)``.

The definitions are ``manual_bp.spatial_normalization``'s over
``jax.numpy``: batch norm of ``x`` laid out ``(C, N H W)`` and layer norm of
``x`` laid out ``(C/G H W, N G)``, training mode, ``eps`` 1e-5 (passed in the
param dicts).  Drawn: one to three samples (two or more for batch norm's
statistics to vary), one to four channels with every divisor as ``G``
(``G = 1``: layer norm; ``G = C``: instance norm), images up to 4x4.

The rounding model is batch and layer norm's
(``manual_bp_reference.layer_tolerance``) on those layouts, ``gamma`` and
``beta`` given per entry; ``dgamma``, ``dbeta`` sum over ``N H W`` per channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual_bp import spatial_normalization as spatial
from manual_bp.normalization import EPS
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.convolution import units
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_kinds.shaped import Drawn, Draws, Padded, Shapes, bucket, embedded
from manual_bp_reference.layer_tolerance import normalization_tolerances, normalized_errors
from manual_bp_reference.tolerance import SAFETY

MAX_SIDE = 4


def _draw(groups: bool):
    def draw(d: Draws) -> Drawn:
        N = d.integer(1 if groups else 2, min(3, max(d.max_batch, 2)), probe=2)
        C = d.integer(1, min(4, d.max_width), probe=4)
        H = d.integer(1, MAX_SIDE, probe=3)
        W = d.integer(1, MAX_SIDE, probe=2)
        shape = (1, C, 1, 1) if groups else (C,)
        arrays = {"x": d.values((N, C, H, W)), "gamma": d.values(shape), "beta": d.values(shape)}
        statics = {}
        if groups:
            divisors = [g for g in range(1, C + 1) if C % g == 0]
            statics["G"] = d.choice(divisors, probe=len(divisors) // 2)
        return Drawn(arrays, statics, (d.values((N, C, H, W)),))

    return draw


def _layouts(inputs: Mapping[str, Any]) -> tuple[str, Any, Any]:
    """The normalization kind and the layout functions of the case."""
    G = inputs.get("G")
    if G is None:
        return "batch", spatial.channel_columns, spatial.from_channel_columns
    return ("layer", lambda a: spatial.group_columns(a, G),
            spatial.from_group_columns)  # fmt: skip


def _tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
    x, gamma, beta = (np.asarray(inputs[k]) for k in ("x", "gamma", "beta"))
    kind, columns, back = _layouts(inputs)
    C = x.shape[1]
    per_entry = {k: np.broadcast_to(v.reshape(1, C, 1, 1), x.shape) for k, v in
                 (("gamma", gamma), ("beta", beta))}  # fmt: skip
    bounds = normalization_tolerances(
        kind, columns(x), columns(per_entry["gamma"]), columns(per_entry["beta"]), columns(dout),
        dtype,
    )  # fmt: skip
    xhat, Exhat = (back(v, x.shape) for v in normalized_errors(kind, columns(x), dtype))
    u, tiny = units(dtype)
    m = x.size // C  # the entries of one channel
    dout = np.abs(dout)
    axes = (0, 2, 3)
    dgamma = (dout * Exhat).sum(axis=axes) + (m + 1) * u * (dout * np.abs(xhat)).sum(axis=axes)
    dbeta = (m + 1) * u * dout.sum(axis=axes)
    return {
        "out": back(bounds["out"], x.shape),
        "dx": back(bounds["dx"], x.shape),
        "dgamma": (SAFETY * (dgamma + (m + 2) * tiny)).reshape(gamma.shape),
        "dbeta": (SAFETY * (dbeta + (m + 2) * tiny)).reshape(gamma.shape),
    }


def _padded(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> Padded:
    """Padded with zeros where the statistics do not mix: batch norm's channels
    (a zero channel normalizes to 0, apart from the others), group norm's
    samples (each its own statistics)."""
    x, (dout,) = np.asarray(inputs["x"]), douts
    N, C, H, W = x.shape
    big = (N, bucket(C)) if "G" not in inputs else (bucket(N), C)
    shape = np.shape(inputs["gamma"])
    vector = (big[1],) if len(shape) == 1 else (1, big[1], 1, 1)
    padded = {**inputs, "x": embedded(x, (*big, H, W)), "gamma": embedded(inputs["gamma"], vector),
              "beta": embedded(inputs["beta"], vector)}  # fmt: skip

    def crop(result: dict[str, Array]) -> dict[str, Array]:
        cropped = {k: result[k][:N, :C] for k in ("out", "dx")}
        for k in ("dgamma", "dbeta"):
            cropped[k] = result[k][:C] if len(shape) == 1 else result[k][:, :C]
        return cropped

    return Padded(padded, (embedded(dout, (*big, H, W)),), crop)


def _bug(name: str, description: str, formula):
    """A bug whose outputs ``(out, dx, dgamma, dbeta)`` are ``formula(x, gamma, beta, dout, G)``."""

    def outputs(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
        x, gamma, beta = (np.asarray(inputs[k], dtype=np.float64) for k in ("x", "gamma", "beta"))
        out, dx, dgamma, dbeta = formula(x, gamma, beta, np.asarray(dout), inputs.get("G"))
        return {"out": out, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}

    return Bug(name, description, outputs)


def _normalized(x: Array, axes: tuple[int, ...], ddof: int = 0) -> tuple[Array, Array]:
    mu = x.mean(axis=axes, keepdims=True)
    k = int(np.prod([x.shape[a] for a in axes]))
    with np.errstate(divide="ignore", invalid="ignore"):  # ddof = k: inf or nan, as numpy's
        var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (k - ddof)
    inv_std = 1 / np.sqrt(var + EPS)
    return (x - mu) * inv_std, inv_std


def _over(axes_of, *, ddof: int = 0, mean_term: bool = True, dgamma_per_sample: bool = False):
    """Normalization over the axes ``axes_of(x.shape, G)`` of a reshape of ``x``, as a formula."""

    def formula(x, gamma, beta, dout, G):
        C = x.shape[1]
        shape, axes = axes_of(x.shape, G)
        xhat_r, inv_std = _normalized(x.reshape(shape), axes, ddof)
        xhat = xhat_r.reshape(x.shape)
        out = gamma.reshape(1, C, 1, 1) * xhat + beta.reshape(1, C, 1, 1)
        dxhat = (dout * gamma.reshape(1, C, 1, 1)).reshape(shape)
        k = int(np.prod([shape[a] for a in axes]))
        if mean_term:
            total, moment = (v.sum(axis=axes, keepdims=True) for v in (dxhat, dxhat * xhat_r))
            dx = inv_std / k * (k * dxhat - total - xhat_r * moment)
        else:
            dx = dxhat * inv_std
        dgamma = (dout * xhat).sum(axis=(0, 2, 3)).reshape(gamma.shape)
        dbeta = dout.sum(axis=(0, 2, 3)).reshape(gamma.shape)
        if dgamma_per_sample:
            dgamma = (dout * xhat).sum(axis=(2, 3), keepdims=True)
            dbeta = dout.sum(axis=(2, 3), keepdims=True)
        return out, dx.reshape(x.shape), dgamma, dbeta

    return formula


def _channels(shape, G):
    return shape, (0, 2, 3)


def _groups(shape, G):
    N, C, H, W = shape
    return (N, G, C // G, H, W), (2, 3, 4)


SPATIAL_BATCHNORM_BUGS = (
    _bug("statistics per position", "normalizes over N only, per (c, h, w): spatial batch "
         "norm takes each channel's statistics over N, H and W",
         _over(lambda s, G: (s, (0,)))),
    _bug("the mean and variance terms dropped", "computes dx = dxhat * inv_std: the "
         "statistics depend on x too", _over(_channels, mean_term=False)),
    _bug("the variance with ddof=1", "divides the variance by k - 1: batch norm's is the "
         "biased variance (divided by k)", _over(_channels, ddof=1)),
)  # fmt: skip

SPATIAL_GROUPNORM_BUGS = (
    _bug("normalized per channel", "normalizes each channel of each sample (instance norm): "
         "group norm takes the statistics over each group of C/G channels",
         _over(lambda s, G: (s, (2, 3)))),
    _bug("normalized over the groups axis", "takes the statistics across the groups (the "
         "wrong axes of the (N, G, C/G, H, W) reshape)",
         _over(lambda s, G: ((s[0], G, s[1] // G, s[2], s[3]), (1,)))),
    _bug("dgamma kept per sample", "sums dgamma and dbeta over H and W but not over the "
         "samples: they sum over N, H and W", _over(_groups, dgamma_per_sample=True)),
    _bug("the mean and variance terms dropped", "computes dx = dxhat * inv_std: the "
         "statistics depend on x too", _over(_groups, mean_term=False)),
    _bug("the variance with ddof=1", "divides the variance by k - 1: group norm's is the "
         "biased variance (divided by k)", _over(_groups, ddof=1)),
)  # fmt: skip


SPATIAL_BATCHNORM = register(
    LayerKind(
        "spatial_batchnorm", "normalization", ("x", "gamma", "beta"), ("dx", "dgamma", "dbeta"),
        definition=lambda x, gamma, beta: spatial.spatial_batchnorm_forward(
            x, gamma, beta, xp=jnp)[0],
        tolerance=_tolerance,
        shapes=Shapes(
            call=("x", "gamma", "beta", "bn_param"), draw=_draw(False),
            arguments=lambda statics: {"bn_param": {"mode": "train", "eps": EPS}},
            padded=_padded,
        ),
        bugs=SPATIAL_BATCHNORM_BUGS,
    )
)  # fmt: skip

SPATIAL_GROUPNORM = register(
    LayerKind(
        "spatial_groupnorm", "normalization", ("x", "gamma", "beta"), ("dx", "dgamma", "dbeta"),
        definition=lambda x, gamma, beta, *, G: spatial.group_norm_forward(
            x, gamma, beta, G, xp=jnp)[0],
        tolerance=_tolerance,
        shapes=Shapes(
            call=("x", "gamma", "beta", "G", "gn_param"), draw=_draw(True),
            arguments=lambda statics: {"G": statics["G"], "gn_param": {"eps": EPS}},
            padded=_padded,
        ),
        bugs=SPATIAL_GROUPNORM_BUGS,
    )
)  # fmt: skip
