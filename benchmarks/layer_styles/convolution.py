"""cs231n assignment 2's convolution layer as students write it (NCHW, cs231n's
cache tuples, loops), correct styles and named bugs.

``conv_param = {'stride': s, 'pad': p}``; ``x (N, C, H, W)``, ``w (F, C, HH, WW)``,
``b (F,)``.  Correct styles, each in cs231n's exact signature
``conv_forward_*(x, w, b, conv_param) -> (out, cache)``,
``conv_backward_*(dout, cache) -> (dx, dw, db)`` (suffix = the style):

* ``conv_forward_naive/conv_backward_naive``: the notebook's nested loops over
  (n, f, i, j), ``np.pad``, cache ``(x, w, b, conv_param)``.
* ``_position_loop``: loops over the output positions (i, j) only, vectorised
  over samples and filters with ``np.tensordot``/``np.einsum``; cache the same.
* ``_im2col``: cs231n's ``im2col.py`` index arrays (``get_im2col_indices``),
  one matmul, ``np.add.at`` for col2im; cache ``(x, w, b, conv_param, x_cols)``.

Bugs, one line each in the function's docstring, named
``conv_backward_naive__BUG`` (its forward ``conv_forward_naive__BUG`` is the
correct naive forward): ``flipped_kernel``, ``padding_cropped_wrong_side``,
``stride_ignored``, ``db_averaged_over_n``, ``dw_first_sample_only``.

``STYLES`` and ``BUGS`` list the ``(forward, backward)`` pairs by name.  Only
numpy is imported.
"""

# Students unpack whole shapes and caches and use part of them: kept as written.
# ruff: noqa: RUF059

import numpy as np

# --------------------------------------------------------------------------------------
# The notebook's naive loops


def conv_forward_naive(x, w, b, conv_param):
    out = None
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x_pad[n, :, h0 : h0 + HH, w0 : w0 + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    dx, dw, db = None, None, None
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x_pad[n, :, h0 : h0 + HH, w0 : w0 + WW]
                    dw[f] += window * dout[n, f, i, j]
                    dx_pad[n, :, h0 : h0 + HH, w0 : w0 + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


# --------------------------------------------------------------------------------------
# Loops over output positions only, vectorised over samples and filters


def conv_forward_position_loop(x, w, b, conv_param):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            # (N, C, HH, WW) x (F, C, HH, WW) -> (N, F)
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_position_loop(dout, cache):
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            window = x_pad[:, :, hs : hs + HH, ws : ws + WW]
            d = dout[:, :, i, j]  # (N, F)
            dw += np.einsum("nf,nchw->fchw", d, window)
            dx_pad[:, :, hs : hs + HH, ws : ws + WW] += np.einsum("nf,fchw->nchw", d, w)
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


# --------------------------------------------------------------------------------------
# im2col with index arrays (cs231n's im2col.py) and np.add.at


def get_im2col_indices(x_shape, field_height, field_width, padding=1, stride=1):
    N, C, H, W = x_shape
    out_height = (H + 2 * padding - field_height) // stride + 1
    out_width = (W + 2 * padding - field_width) // stride + 1
    i0 = np.repeat(np.arange(field_height), field_width)
    i0 = np.tile(i0, C)
    i1 = stride * np.repeat(np.arange(out_height), out_width)
    j0 = np.tile(np.arange(field_width), field_height * C)
    j1 = stride * np.tile(np.arange(out_width), out_height)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), field_height * field_width).reshape(-1, 1)
    return (k, i, j)


def im2col_indices(x, field_height, field_width, padding=1, stride=1):
    p = padding
    x_padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="constant")
    k, i, j = get_im2col_indices(x.shape, field_height, field_width, padding, stride)
    cols = x_padded[:, k, i, j]
    C = x.shape[1]
    cols = cols.transpose(1, 2, 0).reshape(field_height * field_width * C, -1)
    return cols


def col2im_indices(cols, x_shape, field_height=3, field_width=3, padding=1, stride=1):
    N, C, H, W = x_shape
    H_padded, W_padded = H + 2 * padding, W + 2 * padding
    x_padded = np.zeros((N, C, H_padded, W_padded), dtype=cols.dtype)
    k, i, j = get_im2col_indices(x_shape, field_height, field_width, padding, stride)
    cols_reshaped = cols.reshape(C * field_height * field_width, -1, N)
    cols_reshaped = cols_reshaped.transpose(2, 0, 1)
    np.add.at(x_padded, (slice(None), k, i, j), cols_reshaped)
    if padding == 0:
        return x_padded
    return x_padded[:, :, padding:-padding, padding:-padding]


def conv_forward_im2col(x, w, b, conv_param):
    N, C, H, W = x.shape
    num_filters, _, filter_height, filter_width = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    out_height = (H + 2 * pad - filter_height) // stride + 1
    out_width = (W + 2 * pad - filter_width) // stride + 1
    x_cols = im2col_indices(x, filter_height, filter_width, pad, stride)
    res = w.reshape((w.shape[0], -1)).dot(x_cols) + b.reshape(-1, 1)
    out = res.reshape(w.shape[0], out_height, out_width, x.shape[0])
    out = out.transpose(3, 0, 1, 2)
    cache = (x, w, b, conv_param, x_cols)
    return out, cache


def conv_backward_im2col(dout, cache):
    x, w, b, conv_param, x_cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    db = np.sum(dout, axis=(0, 2, 3))
    num_filters, _, filter_height, filter_width = w.shape
    dout_reshaped = dout.transpose(1, 2, 3, 0).reshape(num_filters, -1)
    dw = dout_reshaped.dot(x_cols.T).reshape(w.shape)
    dx_cols = w.reshape(num_filters, -1).T.dot(dout_reshaped)
    dx = col2im_indices(dx_cols, x.shape, filter_height, filter_width, pad, stride)
    return dx, dw, db


# --------------------------------------------------------------------------------------
# Bugs: the naive backward with one mistake each (the forward is the correct one)


def conv_backward_naive__flipped_kernel(dout, cache):
    """dx uses the kernel flipped (a true convolution) instead of the correlation's w."""
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    w_flipped = w[:, :, ::-1, ::-1]
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x_pad[n, :, h0 : h0 + HH, w0 : w0 + WW]
                    dw[f] += window * dout[n, f, i, j]
                    dx_pad[n, :, h0 : h0 + HH, w0 : w0 + WW] += w_flipped[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


def conv_backward_naive__padding_cropped_wrong_side(dout, cache):
    """dx crops 2*pad at the end (dx_pad[:, :, :H, :W]) instead of pad on each side."""
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x_pad[n, :, h0 : h0 + HH, w0 : w0 + WW]
                    dw[f] += window * dout[n, f, i, j]
                    dx_pad[n, :, h0 : h0 + HH, w0 : w0 + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, :H, :W]
    return dx, dw, db


def conv_backward_naive__stride_ignored(dout, cache):
    """The backward walks the windows with stride 1, whatever conv_param['stride'] is."""
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    pad = conv_param["pad"]
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i : i + HH, j : j + WW]
                    dw[f] += window * dout[n, f, i, j]
                    dx_pad[n, :, i : i + HH, j : j + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


def conv_backward_naive__db_averaged_over_n(dout, cache):
    """db is the mean of dout over the batch (divided by N) instead of its sum."""
    dx, dw, _ = conv_backward_naive(dout, cache)
    N = dout.shape[0]
    db = np.sum(dout, axis=(0, 2, 3)) / N
    return dx, dw, db


def conv_backward_naive__dw_first_sample_only(dout, cache):
    """dw sums over the positions of sample 0 only, missing the sum over samples."""
    x, w, b, conv_param = cache
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    dx_pad[n, :, h0 : h0 + HH, w0 : w0 + WW] += w[f] * dout[n, f, i, j]
    for f in range(F):
        for i in range(H_out):
            for j in range(W_out):
                h0, w0 = i * stride, j * stride
                dw[f] += x_pad[0, :, h0 : h0 + HH, w0 : w0 + WW] * dout[0, f, i, j]
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


conv_forward_naive__flipped_kernel = conv_forward_naive
conv_forward_naive__padding_cropped_wrong_side = conv_forward_naive
conv_forward_naive__stride_ignored = conv_forward_naive
conv_forward_naive__db_averaged_over_n = conv_forward_naive
conv_forward_naive__dw_first_sample_only = conv_forward_naive

STYLES = {
    "conv": {
        "naive": (conv_forward_naive, conv_backward_naive),
        "position_loop": (conv_forward_position_loop, conv_backward_position_loop),
        "im2col": (conv_forward_im2col, conv_backward_im2col),
    },
}

BUGS = {
    "conv": {
        "flipped_kernel": (
            conv_forward_naive__flipped_kernel,
            conv_backward_naive__flipped_kernel,
        ),
        "padding_cropped_wrong_side": (
            conv_forward_naive__padding_cropped_wrong_side,
            conv_backward_naive__padding_cropped_wrong_side,
        ),
        "stride_ignored": (
            conv_forward_naive__stride_ignored,
            conv_backward_naive__stride_ignored,
        ),
        "db_averaged_over_n": (
            conv_forward_naive__db_averaged_over_n,
            conv_backward_naive__db_averaged_over_n,
        ),
        "dw_first_sample_only": (
            conv_forward_naive__dw_first_sample_only,
            conv_backward_naive__dw_first_sample_only,
        ),
    },
}
