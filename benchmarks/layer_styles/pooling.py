"""cs231n assignment 2's max pooling (and average pooling) as students write it
(NCHW, cs231n's cache tuples, loops), correct styles and named bugs.

``pool_param = {'pool_height': hp, 'pool_width': wp, 'stride': s}``,
``x (N, C, H, W)``.  Correct styles, each in cs231n's exact signature
``max_pool_forward_*(x, pool_param) -> (out, cache)``,
``max_pool_backward_*(dout, cache) -> dx``, cache ``(x, pool_param)``:

* ``max_pool_forward_naive/max_pool_backward_naive``: loops over (n, c, i, j),
  ``mask = window == window.max()``: the full ``dout`` to *each* tied maximum
  (correct off ties; at a tie it differs from jax's equal split).
* ``_argmax``: loops over (i, j), ``np.argmax`` and ``np.unravel_index`` per
  (n, c): the full ``dout`` to the *first* maximum only (correct off ties).
* ``avg_pool_forward_naive/avg_pool_backward_naive``: the mean of each window,
  ``dout / (hp wp)`` added to every entry of it.

Bugs, one line each in the function's docstring, named ``NAME__BUG`` (its
forward is the correct one of the same name): ``max_pool_backward_naive__whole_window``,
``max_pool_backward_argmax__assigned_not_added``,
``max_pool_backward_naive__stride_ignored``,
``avg_pool_backward_naive__not_divided_by_window_size``.

``STYLES`` and ``BUGS`` list the ``(forward, backward)`` pairs by name.  Only
numpy is imported.
"""

# Students unpack whole shapes and caches and use part of them: kept as written.
# ruff: noqa: RUF059

import numpy as np

# --------------------------------------------------------------------------------------
# Max pooling: naive loops with a mask


def max_pool_forward_naive(x, pool_param):
    out = None
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    stride = pool_param["stride"]
    H_out = 1 + (H - pool_height) // stride
    W_out = 1 + (W - pool_width) // stride
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width]
                    out[n, c, i, j] = np.max(window)
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    dx = None
    x, pool_param = cache
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    stride = pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width]
                    mask = window == window.max()
                    dx[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width] += mask * dout[n, c, i, j]
    return dx


# --------------------------------------------------------------------------------------
# Max pooling: argmax and unravel_index


def max_pool_forward_argmax(x, pool_param):
    N, C, H, W = x.shape
    HH, WW, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    H_out = 1 + (H - HH) // stride
    W_out = 1 + (W - WW) // stride
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_argmax(dout, cache):
    x, pool_param = cache
    N, C, H, W = x.shape
    HH, WW, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride : i * stride + HH, j * stride : j * stride + WW]
                    idx = np.argmax(window)
                    a, b = np.unravel_index(idx, window.shape)
                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]
    return dx


max_pool_forward_argmax__unravelled_by_height = max_pool_forward_argmax


def max_pool_backward_argmax__unravelled_by_height(dout, cache):
    """argmax's flat index split with the window's height: right for square windows only."""
    x, pool_param = cache
    N, C, H, W = x.shape
    HH, WW, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride : i * stride + HH, j * stride : j * stride + WW]
                    idx = np.argmax(window)
                    a, b = idx // HH, idx % HH
                    if a < HH and b < WW:
                        dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]
    return dx


# --------------------------------------------------------------------------------------
# Average pooling


def avg_pool_forward_naive(x, pool_param):
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    stride = pool_param["stride"]
    H_out = 1 + (H - pool_height) // stride
    W_out = 1 + (W - pool_width) // stride
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width]
                    out[n, c, i, j] = np.mean(window)
    cache = (x, pool_param)
    return out, cache


def avg_pool_backward_naive(dout, cache):
    x, pool_param = cache
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    stride = pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    dx[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width] += dout[n, c, i, j] / (
                        pool_height * pool_width
                    )
    return dx


# --------------------------------------------------------------------------------------
# Bugs


def max_pool_backward_naive__whole_window(dout, cache):
    """dout is sent to every position of the window, not only to its max."""
    x, pool_param = cache
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    stride = pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    dx[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width] += dout[n, c, i, j]
    return dx


def max_pool_backward_argmax__assigned_not_added(dout, cache):
    """dx at the max is assigned (=), not added (+=): overlapping windows lose gradient."""
    x, pool_param = cache
    N, C, H, W = x.shape
    HH, WW, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride : i * stride + HH, j * stride : j * stride + WW]
                    idx = np.argmax(window)
                    a, b = np.unravel_index(idx, window.shape)
                    dx[n, c, i * stride + a, j * stride + b] = dout[n, c, i, j]
    return dx


def max_pool_backward_naive__stride_ignored(dout, cache):
    """The backward walks the windows with stride 1, whatever pool_param['stride'] is."""
    x, pool_param = cache
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i : i + pool_height, j : j + pool_width]
                    mask = window == window.max()
                    dx[n, c, i : i + pool_height, j : j + pool_width] += mask * dout[n, c, i, j]
    return dx


def avg_pool_backward_naive__not_divided_by_window_size(dout, cache):
    """dout is added to every entry of the window without dividing by pool_height * pool_width."""
    x, pool_param = cache
    N, C, H, W = x.shape
    pool_height = pool_param["pool_height"]
    pool_width = pool_param["pool_width"]
    stride = pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    dx[n, c, h0 : h0 + pool_height, w0 : w0 + pool_width] += dout[n, c, i, j]
    return dx


max_pool_forward_naive__whole_window = max_pool_forward_naive
max_pool_forward_argmax__assigned_not_added = max_pool_forward_argmax
max_pool_forward_naive__stride_ignored = max_pool_forward_naive
avg_pool_forward_naive__not_divided_by_window_size = avg_pool_forward_naive

STYLES = {
    "max_pool": {
        "naive": (max_pool_forward_naive, max_pool_backward_naive),
        "argmax": (max_pool_forward_argmax, max_pool_backward_argmax),
    },
    "avg_pool": {
        "naive": (avg_pool_forward_naive, avg_pool_backward_naive),
    },
}

BUGS = {
    "max_pool": {
        "whole_window": (
            max_pool_forward_naive__whole_window,
            max_pool_backward_naive__whole_window,
        ),
        "assigned_not_added": (
            max_pool_forward_argmax__assigned_not_added,
            max_pool_backward_argmax__assigned_not_added,
        ),
        "stride_ignored": (
            max_pool_forward_naive__stride_ignored,
            max_pool_backward_naive__stride_ignored,
        ),
        "unravelled_by_height": (
            max_pool_forward_argmax__unravelled_by_height,
            max_pool_backward_argmax__unravelled_by_height,
        ),
    },
    "avg_pool": {
        "not_divided_by_window_size": (
            avg_pool_forward_naive__not_divided_by_window_size,
            avg_pool_backward_naive__not_divided_by_window_size,
        ),
    },
}
