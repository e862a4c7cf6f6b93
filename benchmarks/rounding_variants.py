"""Correct backprops that round differently from manual_bp: the false-alarm witnesses.

Each is the same maths as ``manual_bp.network.backward`` (canonical output
pairs: sigmoid + binary cross-entropy, softmax + cross-entropy, identity +
mse, whose ``dZ_L = (A_L - Y) / m``), added up in another order:

* ``"per-sample loop"``: every product and sum one sample (column) at a time;
* ``"rows as samples"``: the cs231n layout, ``Z = A W + b`` with ``X`` ``(m, n0)``
  (check it with ``layout="rows"``);
* ``"einsum"``: ``numpy.einsum`` without BLAS (``optimize=False``);
* ``"wide accumulation"``: every step in a wider float (float64 for a float32
  net, long double for a float64 one), the result returned in that wider
  dtype for float32 (a dtype note, not a failure) and cast back for float64;
* ``"1/m last"``: ``dZ_L = A_L - Y``, and ``1/m`` applied to ``dW`` and ``dB``
  at the very end.

``check_gradients`` must pass every one of them (``property_tests`` does at a
small budget, ``benchmarks/summation_orders.py`` at 10^4 examples per order).
``make_backprop(order, activations, kink_convention="right")`` gives relu'(0)
= 1, a wrong kink convention the check must still catch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from manual_bp.activations import ACTIVATIONS

Array = np.ndarray
ORDERS = ("per-sample loop", "rows as samples", "einsum", "wide accumulation", "1/m last")


def _matmul(order: str) -> Callable[[Array, Array], Array]:
    if order == "einsum":
        return lambda P, Q: np.einsum("ij,jk->ik", P, Q, optimize=False)
    if order == "per-sample loop":
        # One column of the result at a time: a matrix-vector product each.
        return lambda P, Q: np.stack([P @ Q[:, k] for k in range(Q.shape[1])], axis=1).reshape(
            P.shape[0], Q.shape[1]
        )
    return lambda P, Q: P @ Q


def _derivative(name: str, Z: Array, A: Array, kink_convention: str) -> Array:
    if name == "relu" and kink_convention == "right":
        return (Z >= 0).astype(Z.dtype)  # the bug: relu'(0) = 1
    derivative = ACTIVATIONS[name].derivative
    if derivative is None:  # the variants use elementwise hidden activations only
        raise ValueError(f"{name} has no elementwise derivative")
    return derivative(Z, A)


def _columns_backprop(
    params: dict, X: Array, Y: Array, activations: Sequence[str], order: str, kinks: str
) -> dict[str, Array]:
    """Samples as columns; ``order`` picks how products and sums are added up."""
    mm = _matmul(order)
    depth, m = len(activations), X.shape[1]
    A, cache = X, {}
    for l, name in enumerate(activations, start=1):
        Z = mm(params[f"W{l}"], A) + params[f"B{l}"]
        cache[l] = (A, Z)
        A = ACTIVATIONS[name].forward(Z, np)
    dZ = A - Y if order == "1/m last" else (A - Y) / m
    grads, dA = {}, dZ
    for l in range(depth, 0, -1):
        A_prev, Z = cache[l]
        if l < depth:
            A_l = ACTIVATIONS[activations[l - 1]].forward(Z, np)
            dZ = dA * _derivative(activations[l - 1], Z, A_l, kinks)
        grads[f"Z{l}"] = dZ
        if order == "per-sample loop":
            dW = np.zeros_like(params[f"W{l}"])
            dB = np.zeros_like(params[f"B{l}"])
            for k in range(m):
                dW += np.outer(dZ[:, k], A_prev[:, k])
                dB[:, 0] += dZ[:, k]
        elif order == "einsum":
            dW = np.einsum("ik,jk->ij", dZ, A_prev, optimize=False)
            dB = np.einsum("ik->i", dZ)[:, None]
        else:
            dW = dZ @ A_prev.T
            dB = np.sum(dZ, axis=1, keepdims=True)
        grads[f"W{l}"], grads[f"B{l}"] = dW, dB
        dA = mm(params[f"W{l}"].T, dZ)
    if order == "1/m last":
        grads = {key: value / m for key, value in grads.items()}
    return grads


def _rows_backprop(
    params: dict, X: Array, Y: Array, activations: Sequence[str], kinks: str
) -> dict[str, Array]:
    """cs231n layout: X (m, n0), W (n_in, n_out), b (n,), Y (m, nL)."""
    depth, m = len(activations), X.shape[0]
    A, cache = X, {}
    for l, name in enumerate(activations, start=1):
        Z = A @ params[f"W{l}"] + params[f"B{l}"]
        cache[l] = (A, Z)
        # Our activations act along axis 0 (softmax over each column): transpose.
        A = ACTIVATIONS[name].forward(Z.T, np).T
    dZ = (A - Y) / m
    grads, dA = {}, dZ
    for l in range(depth, 0, -1):
        A_prev, Z = cache[l]
        if l < depth:
            A_l = ACTIVATIONS[activations[l - 1]].forward(Z, np)
            dZ = dA * _derivative(activations[l - 1], Z, A_l, kinks)
        grads[f"Z{l}"] = dZ
        grads[f"W{l}"] = A_prev.T @ dZ
        grads[f"B{l}"] = dZ.sum(axis=0)
        dA = dZ @ params[f"W{l}"].T
    return grads


def make_backprop(
    order: str, activations: Sequence[str], *, kink_convention: str = "ours"
) -> Callable[[dict, Array, Array], dict[str, Array]]:
    """A correct backprop (with ``kink_convention="right"``: relu'(0) = 1) in ``order``."""
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {list(ORDERS)}, got {order!r}")
    if kink_convention not in ("ours", "right"):
        raise ValueError(f"kink_convention: expected 'ours' or 'right', got {kink_convention!r}")
    activations = list(activations)

    def backprop(params: dict, X: Array, Y: Array) -> dict[str, Array]:
        if order == "rows as samples":
            return _rows_backprop(params, X, Y, activations, kink_convention)
        if order != "wide accumulation":
            return _columns_backprop(params, X, Y, activations, order, kink_convention)
        dtype = X.dtype
        wide = np.float64 if dtype == np.float32 else np.longdouble
        widened = {key: value.astype(wide) for key, value in params.items()}
        grads = _columns_backprop(
            widened, X.astype(wide), Y.astype(wide), activations, "matrix", kink_convention
        )
        out = np.float64 if dtype == np.float32 else dtype
        return {key: value.astype(out) for key, value in grads.items()}

    return backprop
