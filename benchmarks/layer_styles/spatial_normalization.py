"""Spatial batch norm and group norm the way cs231n students write them (assignment 2).

Signatures exactly as the assignment's ``layers.py``::

    spatial_batchnorm_forward(x, gamma, beta, bn_param) -> (out, cache)
    spatial_batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)
    spatial_groupnorm_forward(x, gamma, beta, G, gn_param) -> (out, cache)
    spatial_groupnorm_backward(dout, cache) -> (dx, dgamma, dbeta)

``x`` is ``(N, C, H, W)``; spatial batch norm's ``gamma``, ``beta`` are ``(C,)``,
group norm's ``(1, C, 1, 1)``.  The assignment's own ``batchnorm_forward``,
``batchnorm_backward`` (through the graph) and ``batchnorm_backward_alt``
(simplified on paper), rows as samples, are here too: the first spatial style
calls them.

Correct styles (``STYLES``):

* ``spatial_batchnorm_forward`` / ``_backward``: the notebook's hint, transpose
  to ``(N*H*W, C)`` and reuse ``batchnorm_forward`` / ``batchnorm_backward``;
* ``spatial_batchnorm_forward_axes`` / ``_backward_axes``: direct, every sum
  over the axes ``(0, 2, 3)`` with ``keepdims``, the simplified ``dx``;
* ``spatial_groupnorm_forward`` / ``_backward``: ``x.reshape(N*G, -1).T``, the
  layernorm-as-transposed-batchnorm trick, then the simplified ``dx``;
* ``spatial_groupnorm_forward_5d`` / ``_backward_5d``: ``x.reshape(N, G, C//G, H, W)``,
  statistics over the axes ``(2, 3, 4)``, ``dx`` through the graph
  (``dvar``, ``dmean``).

Buggy pairs (``BUGS``: name -> forward, backward, the bug in one line), named
``<correct name>__<bug>``; a pair whose bug is only in the backward has the
correct forward under the bug's name.  Only NumPy is imported.
"""

# Students unpack every shape and cache tuple and format with %: kept as written.
# ruff: noqa: RUF059, UP031

import numpy as np

# ---------------------------------------------------------------- assignment 2's batchnorm


def batchnorm_forward(x, gamma, beta, bn_param):
    """cs231n's batchnorm_forward: x (N, D), gamma and beta (D,)."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)

    N, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    out, cache = None, None
    if mode == "train":
        sample_mean = np.mean(x, axis=0)
        sample_var = np.var(x, axis=0)
        x_hat = (x - sample_mean) / np.sqrt(sample_var + eps)
        out = gamma * x_hat + beta
        cache = (x, x_hat, sample_mean, sample_var, gamma, beta, eps)
        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var
    elif mode == "test":
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * x_hat + beta
    else:
        raise ValueError('Invalid forward batchnorm mode "%s"' % mode)

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward(dout, cache):
    """cs231n's batchnorm_backward: through the computational graph, stage by stage."""
    x, x_hat, sample_mean, sample_var, gamma, beta, eps = cache
    N = x.shape[0]

    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    std = np.sqrt(sample_var + eps)
    dvar = np.sum(dx_hat * (x - sample_mean), axis=0) * -0.5 * std**-3
    dmean = np.sum(-dx_hat / std, axis=0) + dvar * np.mean(-2 * (x - sample_mean), axis=0)
    dx = dx_hat / std + dvar * 2 * (x - sample_mean) / N + dmean / N
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """cs231n's batchnorm_backward_alt: the gradient simplified on paper."""
    x, x_hat, sample_mean, sample_var, gamma, beta, eps = cache
    N = x.shape[0]

    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    inv_std = 1.0 / np.sqrt(sample_var + eps)
    dx_hat = dout * gamma
    dx = (inv_std / N) * (N * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------- spatial batchnorm


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Style 1: transpose to (N*H*W, C) and reuse the vanilla batchnorm."""
    N, C, H, W = x.shape
    x_flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out_flat, cache = batchnorm_forward(x_flat, gamma, beta, bn_param)
    out = out_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return out, cache


def spatial_batchnorm_backward(dout, cache):
    """Style 1: transpose dout the same way and reuse the vanilla backward."""
    N, C, H, W = dout.shape
    dout_flat = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dx_flat, dgamma, dbeta = batchnorm_backward(dout_flat, cache)
    dx = dx_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return dx, dgamma, dbeta


def spatial_batchnorm_forward_axes(x, gamma, beta, bn_param):
    """Style 2: statistics directly over the axes (0, 2, 3)."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    N, C, H, W = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(C, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(C, dtype=x.dtype))

    g = gamma.reshape(1, C, 1, 1)
    b = beta.reshape(1, C, 1, 1)
    if mode == "train":
        mu = x.mean(axis=(0, 2, 3), keepdims=True)
        var = x.var(axis=(0, 2, 3), keepdims=True)
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = (x - mu) * inv_std
        out = g * x_hat + b
        cache = (x_hat, g, inv_std)
        running_mean = momentum * running_mean + (1 - momentum) * mu.ravel()
        running_var = momentum * running_var + (1 - momentum) * var.ravel()
    else:
        x_hat = (x - running_mean.reshape(1, C, 1, 1)) / np.sqrt(
            running_var.reshape(1, C, 1, 1) + eps
        )
        out = g * x_hat + b
        cache = None
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def spatial_batchnorm_backward_axes(dout, cache):
    """Style 2: the simplified dx, every sum over the axes (0, 2, 3)."""
    x_hat, g, inv_std = cache
    N, C, H, W = dout.shape
    M = N * H * W
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx_hat = dout * g
    dx = (inv_std / M) * (
        M * dx_hat
        - dx_hat.sum(axis=(0, 2, 3), keepdims=True)
        - x_hat * (dx_hat * x_hat).sum(axis=(0, 2, 3), keepdims=True)
    )
    return dx, dgamma, dbeta


def spatial_batchnorm_forward__per_position(x, gamma, beta, bn_param):
    """Bug: statistics over N only, one mean per (c, h, w) position, not over (N, H, W)."""
    eps = bn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    mu = x.mean(axis=0, keepdims=True)
    var = x.var(axis=0, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    g = gamma.reshape(1, C, 1, 1)
    out = g * x_hat + beta.reshape(1, C, 1, 1)
    return out, (x_hat, g, inv_std)


def spatial_batchnorm_backward__per_position(dout, cache):
    """Bug: the per-position backward that goes with it (sums over N only)."""
    x_hat, g, inv_std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx_hat = dout * g
    dx = (inv_std / N) * (
        N * dx_hat
        - dx_hat.sum(axis=0, keepdims=True)
        - x_hat * (dx_hat * x_hat).sum(axis=0, keepdims=True)
    )
    return dx, dgamma, dbeta


spatial_batchnorm_forward__no_mean_term = spatial_batchnorm_forward_axes


def spatial_batchnorm_backward__no_mean_term(dout, cache):
    """Bug: dx = dx_hat * inv_std only, as if the mean and variance were constants."""
    x_hat, g, inv_std = cache
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx = dout * g * inv_std
    return dx, dgamma, dbeta


def spatial_batchnorm_forward__ddof1(x, gamma, beta, bn_param):
    """Bug: the unbiased variance, np.var(..., ddof=1), in the normalization."""
    eps = bn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True, ddof=1)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    g = gamma.reshape(1, C, 1, 1)
    out = g * x_hat + beta.reshape(1, C, 1, 1)
    return out, (x_hat, g, inv_std)


spatial_batchnorm_backward__ddof1 = spatial_batchnorm_backward_axes


# ---------------------------------------------------------------- spatial groupnorm


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Style 1: the layernorm trick, (N*G, -1) transposed so the stats are over axis 0."""
    eps = gn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    x_group = x.reshape(N * G, -1).T  # (C//G*H*W, N*G)
    mean = x_group.mean(axis=0)
    var = x_group.var(axis=0)
    std = np.sqrt(var + eps)
    x_hat_group = (x_group - mean) / std
    x_hat = x_hat_group.T.reshape(N, C, H, W)
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, std, G)
    return out, cache


def spatial_groupnorm_backward(dout, cache):
    """Style 1: dgamma, dbeta over (0, 2, 3); dx simplified, in the transposed layout."""
    x_hat, gamma, std, G = cache
    N, C, H, W = dout.shape
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)

    dx_hat = (dout * gamma).reshape(N * G, -1).T
    x_hat_group = x_hat.reshape(N * G, -1).T
    M = x_hat_group.shape[0]
    dx_group = (1.0 / (M * std)) * (
        M * dx_hat - np.sum(dx_hat, axis=0) - x_hat_group * np.sum(dx_hat * x_hat_group, axis=0)
    )
    dx = dx_group.T.reshape(N, C, H, W)
    return dx, dgamma, dbeta


def spatial_groupnorm_forward_5d(x, gamma, beta, G, gn_param):
    """Style 2: x.reshape(N, G, C//G, H, W), statistics over the axes (2, 3, 4)."""
    eps = gn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    xg = x.reshape(N, G, C // G, H, W)
    mu = np.mean(xg, axis=(2, 3, 4), keepdims=True)
    var = np.var(xg, axis=(2, 3, 4), keepdims=True)
    xg_hat = (xg - mu) / np.sqrt(var + eps)
    x_hat = xg_hat.reshape(N, C, H, W)
    out = x_hat * gamma + beta
    cache = (x, xg, mu, var, x_hat, gamma, eps, G)
    return out, cache


def spatial_groupnorm_backward_5d(dout, cache):
    """Style 2: dx through the graph, dvar and dmean per (sample, group)."""
    x, xg, mu, var, x_hat, gamma, eps, G = cache
    N, C, H, W = x.shape
    M = (C // G) * H * W
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)

    dxg_hat = (dout * gamma).reshape(N, G, C // G, H, W)
    dvar = np.sum(dxg_hat * (xg - mu), axis=(2, 3, 4), keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = np.sum(-dxg_hat / np.sqrt(var + eps), axis=(2, 3, 4), keepdims=True) + dvar * np.mean(
        -2.0 * (xg - mu), axis=(2, 3, 4), keepdims=True
    )
    dxg = dxg_hat / np.sqrt(var + eps) + dvar * 2.0 * (xg - mu) / M + dmu / M
    dx = dxg.reshape(N, C, H, W)
    return dx, dgamma, dbeta


def spatial_groupnorm_forward__instance_norm(x, gamma, beta, G, gn_param):
    """Bug: the wrong axes, statistics per channel over (H, W) (instance norm), not per group."""
    eps = gn_param.get("eps", 1e-5)
    mu = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    out = gamma * x_hat + beta
    return out, (x_hat, gamma, std)


def spatial_groupnorm_backward__instance_norm(dout, cache):
    """Bug: the instance-norm backward that goes with it (sums over (H, W))."""
    x_hat, gamma, std = cache
    M = dout.shape[2] * dout.shape[3]
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)
    dx_hat = dout * gamma
    dx = (1.0 / (M * std)) * (
        M * dx_hat
        - dx_hat.sum(axis=(2, 3), keepdims=True)
        - x_hat * (dx_hat * x_hat).sum(axis=(2, 3), keepdims=True)
    )
    return dx, dgamma, dbeta


def spatial_groupnorm_forward__over_groups(x, gamma, beta, G, gn_param):
    """Bug: the wrong axis of the 5-d reshape, statistics over the groups axis 1."""
    eps = gn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    xg = x.reshape(N, G, C // G, H, W)
    mu = xg.mean(axis=1, keepdims=True)
    var = xg.var(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    xg_hat = (xg - mu) / std
    x_hat = xg_hat.reshape(N, C, H, W)
    out = gamma * x_hat + beta
    return out, (xg_hat, x_hat, gamma, std, G)


def spatial_groupnorm_backward__over_groups(dout, cache):
    """Bug: the backward that goes with it (sums over the groups axis 1)."""
    xg_hat, x_hat, gamma, std, G = cache
    N, C, H, W = dout.shape
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)
    dxg_hat = (dout * gamma).reshape(N, G, C // G, H, W)
    dxg = (1.0 / (G * std)) * (
        G * dxg_hat
        - dxg_hat.sum(axis=1, keepdims=True)
        - xg_hat * (dxg_hat * xg_hat).sum(axis=1, keepdims=True)
    )
    return dxg.reshape(N, C, H, W), dgamma, dbeta


spatial_groupnorm_forward__dgamma_per_sample = spatial_groupnorm_forward


def spatial_groupnorm_backward__dgamma_per_sample(dout, cache):
    """Bug: dgamma and dbeta summed over (H, W) only, kept per sample: (N, C, 1, 1)."""
    dx, _, _ = spatial_groupnorm_backward(dout, cache)
    x_hat = cache[0]
    dbeta = np.sum(dout, axis=(2, 3), keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=(2, 3), keepdims=True)
    return dx, dgamma, dbeta


spatial_groupnorm_forward__no_mean_term = spatial_groupnorm_forward


def spatial_groupnorm_backward__no_mean_term(dout, cache):
    """Bug: dx = dx_hat / std only, as if each group's mean and variance were constants."""
    x_hat, gamma, std, G = cache
    N, C, H, W = dout.shape
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)
    dx_hat = (dout * gamma).reshape(N * G, -1).T
    dx = (dx_hat / std).T.reshape(N, C, H, W)
    return dx, dgamma, dbeta


def spatial_groupnorm_forward__ddof1(x, gamma, beta, G, gn_param):
    """Bug: the unbiased variance, np.var(..., ddof=1), per group."""
    eps = gn_param.get("eps", 1e-5)
    N, C, H, W = x.shape
    x_group = x.reshape(N * G, -1).T
    mean = x_group.mean(axis=0)
    var = x_group.var(axis=0, ddof=1)
    std = np.sqrt(var + eps)
    x_hat = ((x_group - mean) / std).T.reshape(N, C, H, W)
    out = gamma * x_hat + beta
    return out, (x_hat, gamma, std, G)


spatial_groupnorm_backward__ddof1 = spatial_groupnorm_backward


STYLES = {
    "spatial_batchnorm": {
        "transposed": (spatial_batchnorm_forward, spatial_batchnorm_backward),
        "axes": (spatial_batchnorm_forward_axes, spatial_batchnorm_backward_axes),
    },
    "spatial_groupnorm": {
        "transposed": (spatial_groupnorm_forward, spatial_groupnorm_backward),
        "5d": (spatial_groupnorm_forward_5d, spatial_groupnorm_backward_5d),
    },
}

BUGS = {
    "spatial_batchnorm": {
        "per_position": (
            spatial_batchnorm_forward__per_position,
            spatial_batchnorm_backward__per_position,
            "statistics over N only (per position), not over (N, H, W)",
        ),
        "no_mean_term": (
            spatial_batchnorm_forward__no_mean_term,
            spatial_batchnorm_backward__no_mean_term,
            "dx = dx_hat * inv_std: the mean and variance terms dropped",
        ),
        "ddof1": (
            spatial_batchnorm_forward__ddof1,
            spatial_batchnorm_backward__ddof1,
            "the variance with ddof=1",
        ),
    },
    "spatial_groupnorm": {
        "instance_norm": (
            spatial_groupnorm_forward__instance_norm,
            spatial_groupnorm_backward__instance_norm,
            "normalised per channel (instance norm), not per group of C/G channels",
        ),
        "over_groups": (
            spatial_groupnorm_forward__over_groups,
            spatial_groupnorm_backward__over_groups,
            "normalised over the groups axis of (N, G, C//G, H, W)",
        ),
        "dgamma_per_sample": (
            spatial_groupnorm_forward__dgamma_per_sample,
            spatial_groupnorm_backward__dgamma_per_sample,
            "dgamma, dbeta summed over (H, W) only: (N, C, 1, 1), kept per sample",
        ),
        "no_mean_term": (
            spatial_groupnorm_forward__no_mean_term,
            spatial_groupnorm_backward__no_mean_term,
            "dx = dx_hat / std: the mean and variance terms dropped",
        ),
        "ddof1": (
            spatial_groupnorm_forward__ddof1,
            spatial_groupnorm_backward__ddof1,
            "the variance with ddof=1",
        ),
    },
}
