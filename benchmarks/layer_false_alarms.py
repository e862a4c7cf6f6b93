"""False-alarm count of ``check_layer``'s per-layer bound on correct layer functions.

Correct layer functions written several ways (different summation orders and
algebraic forms of the same maths) are run on cases drawn by
``manual_bp_reference.layer_check.layer_cases`` (both layouts where the style has one,
float64 and float32, no shrinking) and compared with the oracle by
``compare_layer``.  They are correct, so every call whose worst
``|yours - oracle| / tolerance`` exceeds 1 is a false alarm.  Reported: the
calls, the false alarms and the worst ratio per implementation and dtype.

The styles: affine as a matrix product, a per-sample loop and ``einsum``;
every activation through manual_bp's own NumPy backward (cache ``x`` and
``out``); softmax cross-entropy max-shifted and unshifted, binary
cross-entropy from the logits and through ``log(sigmoid)``, mse; batch and
layer norm with the staged and the closed backward, the two-pass and the
one-pass (``E[x^2] - mu^2``) variance, in rows and columns.

Usage (from the repository root)::

    python -m benchmarks.layer_false_alarms                 # 2,000 calls per style and dtype
    python -m benchmarks.layer_false_alarms --calls 100     # a quick look
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.layer_check import compare_layer, layer_cases, run_user

ROUND = 500  # examples per Hypothesis run


# --- affine, rows --------------------------------------------------------------------------


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_matmul(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_loop(dout, cache):
    x, w, _ = cache
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(w.shape[1], dtype=w.dtype)
    for i in range(x.shape[0]):
        dx[i] = w @ dout[i]
        dw += np.outer(x[i], dout[i])
        db += dout[i]
    return dx, dw, db


def affine_einsum(dout, cache):
    x, w, _ = cache
    return (
        np.einsum("mo,io->mi", dout, w),
        np.einsum("mi,mo->io", x, dout),
        np.einsum("mo->o", dout),
    )


# --- activations, either layout --------------------------------------------------------------


def activation(name: str, layout: str) -> tuple[Callable, Callable]:
    act = ACTIVATIONS[name]

    def flip(a):
        return a.T if layout == "rows" else a

    def forward(x):
        out = flip(act.forward(flip(x), np))
        return out, (x, out)

    def backward(dout, cache):
        x, out = cache
        return flip(act.backward(flip(dout), flip(x), flip(out)))

    return forward, backward


# --- loss heads, rows ------------------------------------------------------------------------


def softmax_shifted(x, y):
    m = x.shape[0]
    s = x - x.max(axis=1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    dx = np.exp(log_p)
    dx[np.arange(m), y] -= 1
    return -log_p[np.arange(m), y].sum() / m, dx / m


def softmax_unshifted(x, y):
    m = x.shape[0]
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(m), y]))
    p[np.arange(m), y] -= 1
    return loss, p / m


def bce_logits(x, y):
    z, t, m = x[:, 0], y.astype(x.dtype), x.shape[0]
    loss = np.mean(t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z))
    return loss, ((1 / (1 + np.exp(-z)) - t) / m)[:, None]


def bce_direct(x, y):
    z, t, m = x[:, 0], y.astype(x.dtype), x.shape[0]
    a = 1 / (1 + np.exp(-z))
    loss = -np.mean(t * np.log(a) + (1 - t) * np.log(1 - a))
    return loss, ((a - t) / m)[:, None]


def mse(x, y):
    m = x.shape[0]
    return np.sum((x - y) ** 2) / (2 * m), (x - y) / m


# --- normalization ---------------------------------------------------------------------------


def norm_forward(axis: int, samples: int, one_pass: bool) -> Callable:
    """Statistics over ``axis``; ``dgamma``, ``dbeta`` over the ``samples`` axis."""

    def forward(x, gamma, beta, param):
        eps = param["eps"]
        mu = x.mean(axis=axis, keepdims=True)
        if one_pass:
            var = (x * x).mean(axis=axis, keepdims=True) - mu * mu
        else:
            var = ((x - mu) ** 2).mean(axis=axis, keepdims=True)
        inv_std = 1 / np.sqrt(var + eps)
        xhat = (x - mu) * inv_std
        return gamma * xhat + beta, (x, mu, inv_std, xhat, gamma, axis, samples)

    return forward


def norm_staged(dout, cache):
    x, mu, inv_std, xhat, gamma, axis, keep = cache
    k = x.shape[axis]
    D = x - mu
    dxhat = dout * gamma
    dvar = (dxhat * D).sum(axis=axis, keepdims=True) * -0.5 * inv_std**3
    dmu = -dxhat.sum(axis=axis, keepdims=True) * inv_std
    dx = dxhat * inv_std + dvar * 2 * D / k + dmu / k
    shape = gamma.shape
    dgamma = (dout * xhat).sum(axis=keep).reshape(shape)
    return dx, dgamma, dout.sum(axis=keep).reshape(shape)


def norm_closed(dout, cache):
    x, _, inv_std, xhat, gamma, axis, keep = cache
    k = x.shape[axis]
    g = dout * gamma
    dx = inv_std / k * (k * g - g.sum(axis=axis, keepdims=True)
                        - xhat * (g * xhat).sum(axis=axis, keepdims=True))  # fmt: skip
    shape = gamma.shape
    return dx, (dout * xhat).sum(axis=keep).reshape(shape), dout.sum(axis=keep).reshape(shape)


# --- dropout ---------------------------------------------------------------------------------


def dropout_cs231n(x, dropout_param):
    """cs231n's ``dropout_forward`` (train mode): the recipe, the mask holding 1/p."""
    p = dropout_param["p"]
    np.random.seed(dropout_param["seed"])  # noqa: NPY002 (the assignment's own recipe)
    mask = (np.random.rand(*x.shape) < p) / p  # noqa: NPY002
    return (x * mask).astype(x.dtype, copy=False), (dropout_param, mask)


def dropout_cs231n_backward(dout, cache):
    _, mask = cache
    return dout * mask


def dropout_course(A, dropout_param):
    """The course's ``forward_propagation_with_dropout`` step: a 0/1 mask ``D``,
    then ``A * D / keep_prob``."""
    keep_prob = dropout_param["p"]
    np.random.seed(dropout_param["seed"])  # noqa: NPY002 (the assignment's own recipe)
    D = (np.random.rand(A.shape[0], A.shape[1]) < keep_prob).astype(int)  # noqa: NPY002
    return A * D / keep_prob, (D, keep_prob)


def dropout_course_backward(dA, cache):
    D, keep_prob = cache
    return dA * D / keep_prob


def dropout_own_rng(x, dropout_param):
    """A mask of its own generator: checked against the mask it applied."""
    rng = np.random.default_rng(dropout_param["seed"])
    keep = rng.random(x.shape) < dropout_param["p"]
    return np.where(keep, x / dropout_param["p"], 0).astype(x.dtype), (keep, dropout_param["p"])


def dropout_own_rng_backward(dout, cache):
    keep, p = cache
    return np.where(keep, dout / p, 0)


def styles() -> list[tuple[str, str, str, Callable, Callable | None]]:
    """``(label, layer, layout, backward, forward)`` for every correct implementation."""
    found: list[tuple[str, str, str, Callable, Callable | None]] = [
        ("affine matmul", "affine", "rows", affine_matmul, affine_forward),
        ("affine loop", "affine", "rows", affine_loop, affine_forward),
        ("affine einsum", "affine", "rows", affine_einsum, affine_forward),
        ("softmax shifted", "cross_entropy", "rows", softmax_shifted, None),
        ("softmax unshifted", "cross_entropy", "rows", softmax_unshifted, None),
        ("bce logits", "binary_cross_entropy", "rows", bce_logits, None),
        ("bce direct", "binary_cross_entropy", "rows", bce_direct, None),
        ("mse", "mse", "rows", mse, None),
        ("dropout cs231n", "dropout", "rows", dropout_cs231n_backward, dropout_cs231n),
        ("dropout course", "dropout", "columns", dropout_course_backward, dropout_course),
        ("dropout own generator", "dropout", "rows", dropout_own_rng_backward, dropout_own_rng),
    ]
    for name in ACTIVATIONS:
        for layout in ("rows", "columns"):
            forward, backward = activation(name, layout)
            found.append((f"{name} {layout}", name, layout, backward, forward))
    for layer, axes in (("batchnorm", {"rows": 0, "columns": 1}),
                        ("layernorm", {"rows": 1, "columns": 0})):  # fmt: skip
        for layout, axis in axes.items():
            for one_pass in (False, True):
                for backward in (norm_staged, norm_closed):
                    label = (f"{layer} {layout} {'one-pass' if one_pass else 'two-pass'} "
                             f"{backward.__name__.split('_')[1]}")  # fmt: skip
                    samples = 0 if layout == "rows" else 1
                    forward = norm_forward(axis, samples, one_pass)
                    found.append((label, layer, layout, backward, forward))
    return found


def run(calls: int, dtype: str, style) -> tuple[int, int, float, str]:
    """``(calls, false alarms, worst ratio, worst report)`` of one style and dtype."""
    _, layer, layout, backward, forward = style
    seen = {"calls": 0, "alarms": 0, "worst": 0.0, "report": ""}

    @settings(
        max_examples=min(ROUND, calls), deadline=None, database=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(layer_cases(layer, layout=layout, dtype=dtype))
    def one(case) -> None:
        if seen["calls"] >= calls:
            return
        with np.errstate(all="ignore"):
            outputs, problems = run_user(backward, forward, case)
        comparison = compare_layer(case, outputs, problems)
        seen["calls"] += 1
        if comparison.worst_ratio > seen["worst"]:
            seen["worst"], seen["report"] = comparison.worst_ratio, f"{comparison}\n{case!r}"
        seen["alarms"] += not comparison.ok

    while seen["calls"] < calls:
        one()
    return seen["calls"], seen["alarms"], seen["worst"], seen["report"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="per style and dtype")
    parser.add_argument("--layers", default="", help="comma-separated layers to run (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    total = alarms = 0
    worst = (0.0, "")
    print("| implementation | dtype | calls | false alarms | worst ratio |")
    print("|---|---|---|---|---|")
    chosen = set(args.layers.split(",")) if args.layers else None
    for style in styles():
        if chosen is not None and style[1] not in chosen:
            continue
        for dtype in ("float64", "float32"):
            n, a, ratio, report = run(args.calls, dtype, style)
            total, alarms = total + n, alarms + a
            worst = max(worst, (ratio, report), key=lambda pair: pair[0])
            print(f"| {style[0]} | {dtype} | {n} | {a} | {ratio:.3g} |", flush=True)
    wall = time.perf_counter() - started
    print(f"\n{total} calls, {alarms} false alarms ({wall:.0f} s wall)")
    if alarms:
        print(f"worst (ratio {worst[0]:.3g}):\n{worst[1]}")


if __name__ == "__main__":
    main()
