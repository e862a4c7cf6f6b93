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

The shaped kinds (issue 27: conv, max_pool, avg_pool, spatial_batchnorm,
spatial_groupnorm, rnn_step, rnn, lstm_step, lstm, word_embedding,
temporal_affine, temporal_softmax_loss): every correct student style of
``benchmarks/layer_styles`` (``STYLES``) and manual_bp's own functions wrapped
in cs231n's signatures (label ``<layer> manual_bp``), in cs231n's layout.

A call whose code raises counts as a false alarm too (the code is correct).
``--bound`` draws the values in ``[-bound, bound]`` (10 by default, as the
checks do; 1e3 and more for adversarial magnitudes); ``--failures FILE``
appends each false alarm's report and pasteable case to ``FILE``.

Usage (from the repository root)::

    python -m benchmarks.layer_false_alarms                 # 2,000 calls per style and dtype
    python -m benchmarks.layer_false_alarms --calls 100     # a quick look
    python -m benchmarks.layer_false_alarms --families recurrent --shaped \
        --family-calls 10000                                # 10,000 calls over the family
    python -m benchmarks.layer_false_alarms --layers conv,max_pool --bound 1e3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

from benchmarks.layer_styles import convolution as conv_styles
from benchmarks.layer_styles import pooling as pool_styles
from benchmarks.layer_styles import recurrent as recurrent_styles
from benchmarks.layer_styles import spatial_normalization as spatial_styles
from benchmarks.layer_styles import temporal as temporal_styles
from manual_bp import convolution, embedding, pooling, recurrent, spatial_normalization, temporal
from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.layer_check import compare_layer, layer_cases, run_user
from manual_bp_reference.layer_check.specs import kind_of

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


# --- shaped kinds (issue 27): manual_bp's own functions in cs231n's signatures -----------


def conv_forward_manual_bp(x, w, b, conv_param):
    return convolution.forward(x, w, b, stride=conv_param["stride"], pad=conv_param["pad"])


def max_pool_forward_manual_bp(x, pool_param):
    height, width = pool_param["pool_height"], pool_param["pool_width"]
    return pooling.max_forward(x, height=height, width=width, stride=pool_param["stride"])


def avg_pool_forward_manual_bp(x, pool_param):
    height, width = pool_param["pool_height"], pool_param["pool_width"]
    return pooling.average_forward(x, height=height, width=width, stride=pool_param["stride"])


def spatial_batchnorm_forward_manual_bp(x, gamma, beta, bn_param):
    # eps: manual_bp's EPS = 1e-5, the value check_layer passes in bn_param
    return spatial_normalization.spatial_batchnorm_forward(x, gamma, beta)


def spatial_groupnorm_forward_manual_bp(x, gamma, beta, G, gn_param):
    return spatial_normalization.group_norm_forward(x, gamma, beta, G)


def temporal_softmax_loss_manual_bp(x, y, mask):
    return temporal.softmax_loss(x, y, mask)


MANUAL_BP: dict[str, tuple[Callable, Callable] | Callable] = {
    "conv": (conv_forward_manual_bp, convolution.backward),
    "max_pool": (max_pool_forward_manual_bp, pooling.max_backward),
    "avg_pool": (avg_pool_forward_manual_bp, pooling.average_backward),
    "spatial_batchnorm": (
        spatial_batchnorm_forward_manual_bp,
        spatial_normalization.spatial_batchnorm_backward,
    ),
    "spatial_groupnorm": (
        spatial_groupnorm_forward_manual_bp,
        spatial_normalization.group_norm_backward,
    ),
    "rnn_step": (recurrent.rnn_step_forward, recurrent.rnn_step_backward),
    "rnn": (recurrent.rnn_forward, recurrent.rnn_backward),
    "lstm_step": (recurrent.lstm_step_forward, recurrent.lstm_step_backward),
    "lstm": (recurrent.lstm_forward, recurrent.lstm_backward),
    "word_embedding": (embedding.forward, embedding.backward),
    "temporal_affine": (temporal.affine_forward, temporal.affine_backward),
    "temporal_softmax_loss": temporal_softmax_loss_manual_bp,
}

STUDENT_STYLES = (conv_styles, pool_styles, spatial_styles, recurrent_styles, temporal_styles)

Style = tuple[str, str, str, Callable, Callable | None]
# Correct maths whose exp overflows (|a| > 88 in float32): check_layer's verdict for
# them is "correct maths, unstable numerics", from its rerun this benchmark does not
# make; they witness that a hand-written tanh is judged to u absolutely (the tests).
OVERFLOWING = {"exp_tanh"}


def shaped_styles() -> list[Style]:
    """The shaped kinds' correct implementations: the students' ``STYLES``, then manual_bp's."""
    found: list[Style] = []
    layers: dict[str, dict[str, object]] = {}
    for module in STUDENT_STYLES:
        for layer, by_style in module.STYLES.items():
            layers.setdefault(layer, {}).update(by_style)
    for layer, by_style in layers.items():
        for name, pair in [*by_style.items(), ("manual_bp", MANUAL_BP[layer])]:
            if name in OVERFLOWING:
                continue
            if isinstance(pair, tuple):
                forward, backward = pair
                found.append((f"{layer} {name}", layer, "rows", backward, forward))
            else:  # a loss: one function -> (loss, dx)
                found.append((f"{layer} {name}", layer, "rows", pair, None))  # type: ignore[arg-type]
    return found


def run(
    calls: int, dtype: str, style: Style, bound: float = 10.0, failures: str = ""
) -> tuple[int, int, float, str]:
    """``(calls, false alarms, worst ratio, worst report)`` of one style and dtype.

    Code that raises is a false alarm (ratio inf).  ``failures``: a file each
    false alarm's report and case are appended to (the first 5 per run)."""
    label, layer, layout, backward, forward = style
    tally = _Tally()

    def record(ratio: float, report: str) -> None:
        if ratio > tally.worst or not tally.report:
            tally.worst, tally.report = ratio, report
        if ratio > 1:
            tally.alarms += 1
            if failures and tally.alarms <= 5:
                with open(failures, "a") as file:
                    file.write(f"# {label} {dtype} bound {bound:g}: ratio {ratio:.6g}\n"
                               f"{report}\n\n")  # fmt: skip

    @settings(
        max_examples=min(ROUND, calls), deadline=None, database=None,
        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(layer_cases(layer, layout=layout, dtype=dtype, bound=bound))
    def one(case) -> None:
        if tally.calls >= calls:
            return
        tally.calls += 1
        try:
            with np.errstate(all="ignore"):
                outputs, problems = run_user(backward, forward, case)
        except Exception as error:  # correct code that raises: a false alarm
            record(np.inf, f"raised {type(error).__name__}: {error}\n{case!r}")
            return
        comparison = compare_layer(case, outputs, problems)
        record(comparison.worst_ratio, f"{comparison}\n{case!r}")

    while tally.calls < calls:
        one()
    return tally.calls, tally.alarms, tally.worst, tally.report


@dataclass
class _Tally:
    calls: int = 0
    alarms: int = 0
    worst: float = 0.0
    report: str = ""


def _names(
    parser: argparse.ArgumentParser, text: str, known: set[str], flag: str
) -> set[str] | None:
    """The comma-separated names of ``flag`` (None: all); an unknown one exits 2."""
    if not text:
        return None
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - known)
    if unknown or not names:
        parser.error(
            f"{flag}: expected comma-separated names among {', '.join(sorted(known))}; got {text!r}"
        )
    return names


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not value > 0 or not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=_positive(int), default=2000,
                        help="per style and dtype (default 2000)")  # fmt: skip
    parser.add_argument("--family-calls", type=_positive(int), default=None,
                        help="instead of --calls: this many calls per family, split evenly "
                             "over its styles and both dtypes (rounded up)")  # fmt: skip
    parser.add_argument("--layers", default="", help="comma-separated layers to run (default: all)")
    parser.add_argument("--families", default="",
                        help="comma-separated kind families to run (convolution, normalization, "
                             "recurrent, sequence, ...; default: all)")  # fmt: skip
    parser.add_argument(
        "--shaped",
        action="store_true",
        help="only the shaped kinds (issue 27), not the dense 2-D ones",
    )
    parser.add_argument("--dtypes", default="float64,float32", help="comma-separated dtypes")
    parser.add_argument("--bound", type=_positive(float), default=10.0,
                        help="values drawn in [-bound, bound] (default 10)")  # fmt: skip
    parser.add_argument(
        "--failures", default="", help="a file each false alarm's report and case is appended to"
    )
    args = parser.parse_args(argv)
    every = [*styles(), *shaped_styles()]
    shaped = {style[1] for style in shaped_styles()}
    layers = _names(parser, args.layers, {style[1] for style in every}, "--layers")
    families = _names(
        parser, args.families, {kind_of(style[1]).family for style in every}, "--families"
    )
    dtypes = _names(parser, args.dtypes, {"float64", "float32"}, "--dtypes")
    chosen = [
        style for style in every
        if (layers is None or style[1] in layers)
        and (families is None or kind_of(style[1]).family in families)
        and (not args.shaped or style[1] in shaped)
    ]  # fmt: skip
    runs = [dtype for dtype in ("float64", "float32") if dtypes is None or dtype in dtypes]
    per_family: dict[str, int] = {}
    for style in chosen:
        family = kind_of(style[1]).family
        per_family[family] = per_family.get(family, 0) + len(runs)
    started = time.perf_counter()
    total = alarms = 0
    worst = (0.0, "")
    print(f"bound {args.bound:g}")
    print("| implementation | dtype | calls | false alarms | worst ratio | wall s |")
    print("|---|---|---|---|---|---|")
    for style in chosen:
        calls = args.calls
        if args.family_calls is not None:
            calls = -(-args.family_calls // per_family[kind_of(style[1]).family])
        for dtype in runs:
            began = time.perf_counter()
            n, a, ratio, report = run(calls, dtype, style, args.bound, args.failures)
            total, alarms = total + n, alarms + a
            worst = max(worst, (ratio, report), key=lambda pair: pair[0])
            print(f"| {style[0]} | {dtype} | {n} | {a} | {ratio:.3g} | "
                  f"{time.perf_counter() - began:.0f} |", flush=True)  # fmt: skip
    wall = time.perf_counter() - started
    print(f"\n{total} calls, {alarms} false alarms ({wall:.0f} s wall)")
    if alarms:
        print(f"worst (ratio {worst[0]:.3g}):\n{worst[1]}")


if __name__ == "__main__":
    main()
