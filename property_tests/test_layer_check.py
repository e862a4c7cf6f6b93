"""``check_layer``: correct layer functions pass in both layouts, the catalogued bugs
are caught (the batch-norm ones named), bad arguments are refused.

The implementations below are our own small cs231n-style (rows as samples)
and column-style layer functions, each with the bug switched on by a flag.
Budgets are small (a few examples each, shapes up to 4) to keep the suite cheap:
one compiled oracle serves each shape bucket.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from manual_bp.activations import ACTIVATIONS
from manual_bp.normalization import EPS
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.layer_check import (
    LAYERS,
    LayerCase,
    LayerMismatch,
    LayerReport,
    check_layer,
    compare_layer,
    layer_oracle,
    probe_case,
    run_user,
)
from manual_bp_reference.normalization_bugs import NORMALIZATION_BUGS, normalization_layer
from manual_bp_reference.settings import SETTING_NAMES, Settings

SMALL = Settings(max_examples=15, max_batch=4, max_width=4)
# The unstable implementations below overflow and divide by 0 on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# --- cs231n style: rows as samples -------------------------------------------------------


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache, bug=None):
    x, w, _b = cache
    dw = x.T @ dout
    if bug == "transposed dw":
        dw = dw.T
    db = dout.sum() if bug == "db without axis" else dout.sum(axis=0)
    if bug == "missing db":
        return dout @ w.T, dw
    return dout @ w.T, dw, db


def affine_backward_loop(dout, cache):
    """Per-sample loop: another summation order, the same maths."""
    x, w, _b = cache
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i in range(x.shape[0]):
        dx[i] = w @ dout[i]
        dw += np.outer(x[i], dout[i])
    return dx, dw, np.einsum("ij->j", dout)


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x, bug=None):
    if bug == "mask from dout":
        return dout * (dout > 0)
    if bug == "mask x >= 0":
        return dout * (x >= 0)
    return dout * (x > 0)


def softmax_loss(x, y, bug=False):
    m = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(m), y].mean()
    dx = np.exp(log_p)
    if not bug:
        dx[np.arange(m), y] -= 1
    return loss, dx / m


def softmax_loss_naive(x, y):
    """No max shift: exp overflows for large scores (correct maths, unstable numerics)."""
    m = x.shape[0]
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(m), y]).mean()
    p[np.arange(m), y] -= 1
    return loss, p / m


def batchnorm_forward(x, gamma, beta, bn_param, ddof=0, eps_inside=True, axis=0):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=axis, keepdims=True)
    xmu = x - mu
    var = (xmu**2).sum(axis=axis, keepdims=True) / (x.shape[axis] - ddof)
    std = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
    xhat = xmu / std
    return gamma * xhat + beta, (xhat, gamma, xmu, std, var, axis)


def batchnorm_backward(dout, cache, bug=None):
    """Staged, through the graph, with one classic bug switched on by ``bug``."""
    xhat, gamma, xmu, std, var, axis = cache
    k = dout.shape[axis]
    dxhat = dout if bug == "gamma" else dout * gamma
    if bug == "eps outside":
        dvar = (dxhat * xmu).sum(axis=axis, keepdims=True) * -0.5 / (std**2 * np.sqrt(var))
    else:
        dvar = (dxhat * xmu).sum(axis=axis, keepdims=True) * -0.5 * std**-3
    dmu = -dxhat.sum(axis=axis, keepdims=True) / std
    k_var = k - 1 if bug == "unbiased" else k
    dx = dxhat / std + dvar * 2 * xmu / k_var + (dmu if bug == "1/m" else dmu / k)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_closed(dout, cache):
    xhat, gamma, _xmu, std, _var, axis = cache
    k = dout.shape[axis]
    dxhat = dout * gamma
    total = dxhat.sum(axis=axis, keepdims=True)
    dx = (k * dxhat - total - xhat * (dxhat * xhat).sum(axis=axis, keepdims=True)) / (k * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_forward(x, gamma, beta, ln_param, axis=1):
    return batchnorm_forward(x, gamma, beta, ln_param, axis=axis)


# --- column style: the seed's layout -----------------------------------------------------


def affine_forward_columns(x, w, b):
    return w @ x + b, (x, w, b)


def affine_backward_columns(dout, cache):
    x, w, _b = cache
    return w.T @ dout, dout @ x.T, dout.sum(axis=1, keepdims=True)


def batchnorm_forward_columns(x, gamma, beta, bn_param):
    return batchnorm_forward(x, gamma, beta, bn_param, axis=1)


def layernorm_forward_columns(x, gamma, beta, ln_param):
    return batchnorm_forward(x, gamma, beta, ln_param, axis=0)


def batchnorm_backward_columns(dout, cache):
    """Closed form over the columns; dgamma, dbeta (n, 1) summed over the samples."""
    xhat, gamma, _xmu, std, _var, axis = cache
    k = dout.shape[axis]
    dxhat = dout * gamma
    total = dxhat.sum(axis=axis, keepdims=True)
    dx = (k * dxhat - total - xhat * (dxhat * xhat).sum(axis=axis, keepdims=True)) / (k * std)
    return dx, (dout * xhat).sum(axis=1, keepdims=True), dout.sum(axis=1, keepdims=True)


def activation_layer(name, layout):
    """Forward and backward of activation ``name`` from manual_bp's own NumPy maths,
    in ``layout`` (their cache is ``(x, out)``)."""
    activation = ACTIVATIONS[name]
    flip = (lambda a: a.T) if layout == "rows" else (lambda a: a)

    def forward(x):
        out = flip(activation.forward(flip(x), np))
        return out, (x, out)

    def backward(dout, cache):
        x, out = cache
        return flip(activation.backward(flip(dout), flip(x), flip(out)))

    return forward, backward


# --- correct code passes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("backward", "layer", "forward", "layout"),
    [
        (affine_backward, "affine", affine_forward, "rows"),
        (affine_backward, "affine", None, "rows"),
        (affine_backward_loop, "affine", affine_forward, "rows"),
        (affine_backward_columns, "affine", affine_forward_columns, "columns"),
        (relu_backward, "relu", relu_forward, "rows"),
        (relu_backward, "relu", None, "columns"),
        (softmax_loss, "cross_entropy", None, "rows"),
        (batchnorm_backward, "batchnorm", batchnorm_forward, "rows"),
        (batchnorm_backward_closed, "batchnorm", batchnorm_forward, "rows"),
        (batchnorm_backward, "layernorm", layernorm_forward, "rows"),
        (batchnorm_backward_columns, "batchnorm", batchnorm_forward_columns, "columns"),
        (batchnorm_backward_columns, "layernorm", layernorm_forward_columns, "columns"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_correct_layer_functions_pass(backward, layer, forward, layout):
    report = check_layer(backward, layer, forward=forward, layout=layout, settings=SMALL)
    assert isinstance(report, LayerReport) and report.examples == SMALL.max_examples
    assert set(report.worst) >= {"dx"} and max(report.worst.values()) <= 1
    assert "PASS" in str(report) and layer in str(report)


@pytest.mark.parametrize("layout", ["rows", "columns"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_passes_in_both_layouts(name, layout):
    forward, backward = activation_layer(name, layout)
    check_layer(
        backward,
        name,
        forward=forward,
        layout=layout,
        settings=Settings(max_examples=5, max_width=4),
    )


def test_float32_affine_and_batchnorm_pass():
    check_layer(
        affine_backward,
        "affine",
        forward=affine_forward,
        settings=dataclasses.replace(SMALL, dtype="float32"),
    )
    check_layer(
        batchnorm_backward,
        "batchnorm",
        forward=batchnorm_forward,
        settings=dataclasses.replace(SMALL, dtype="float32"),
    )


def test_float64_outputs_of_a_float32_layer_pass_with_a_note():
    def upcast(dout, cache):
        return tuple(g.astype(np.float64) for g in affine_backward(dout, cache))

    report = check_layer(
        upcast,
        "affine",
        forward=affine_forward,
        settings=dataclasses.replace(SMALL, dtype="float32"),
    )
    assert any("dtype float64 returned for float32" in note for note in report.notes)


def test_loss_heads_in_their_target_conventions():
    def one_hot_loss(x, Y):
        return softmax_loss(x, np.argmax(Y, axis=1))

    def bce(x, y):  # x (m, 1) logits, y (m,) labels 0/1
        m, z, t = x.shape[0], x[:, 0], y.astype(float)
        loss = np.mean(np.logaddexp(0, -z) * t + np.logaddexp(0, z) * (1 - t))
        return loss, ((1 / (1 + np.exp(-z)) - t) / m)[:, None]

    def mse(x, y):
        return 0.5 * np.sum((x - y) ** 2) / x.shape[0], (x - y) / x.shape[0]

    check_layer(one_hot_loss, "cross_entropy", targets="one_hot", settings=SMALL)
    check_layer(bce, "binary_cross_entropy", settings=SMALL)
    check_layer(mse, "mse", settings=SMALL)


def test_an_output_that_underflows_is_no_false_alarm():
    """Found by benchmarks/layer_false_alarms.py: gamma * xhat = -1.8e-308, subnormal,
    which XLA flushes to -0; the bound of ``out`` lacked the underflow floor."""
    x = np.zeros((6, 1))
    x[4, 0] = -2.0522684006491881e-289
    gamma = np.array([[-1.6940658945086007e-21], [0.88], [-1.45], [2.0], [0.25], [0.0]])
    case = LayerCase("layernorm", "columns", {"x": x, "gamma": gamma, "beta": np.zeros((6, 1))},
                     np.ones((6, 1)), "float64")  # fmt: skip
    outputs, problems = run_user(batchnorm_backward_columns, layernorm_forward_columns, case)
    assert outputs["out"][0, 0] != 0 and abs(outputs["out"][0, 0]) < np.finfo(float).tiny
    assert compare_layer(case, outputs, problems).ok


def test_the_candidate_definition_is_the_oracle():
    """``normalization_layer`` with no change equals jax.vjp of manual_bp's normalize."""
    rng = np.random.default_rng(1)
    for layer, kind in (("batchnorm", "batch"), ("layernorm", "layer")):
        x, gamma, beta, dout = (rng.normal(size=s) for s in [(3, 5), (3, 1), (3, 1), (3, 5)])
        ours = normalization_layer(kind, x, gamma, beta, dout)
        oracle = layer_oracle(layer, {"x": x, "gamma": gamma, "beta": beta}, dout)
        for key in ("out", "dx", "dgamma", "dbeta"):
            np.testing.assert_allclose(ours[key], oracle[key], rtol=1e-12, atol=1e-12)


def test_the_oracle_pads_without_changing_a_value():
    """The padded, compiled oracle equals jax.vjp of the definition at the exact shape."""
    rng = np.random.default_rng(2)
    x, w, b, dout = (rng.normal(size=s) for s in [(3, 5), (2, 3), (2, 1), (2, 5)])
    oracle = layer_oracle("affine", {"x": x, "w": w, "b": b}, dout)
    _out, vjp = jax.vjp(lambda x, w, b: w @ x + b, jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    for key, value in zip(("dx", "dw", "db"), vjp(jnp.asarray(dout)), strict=True):
        np.testing.assert_allclose(oracle[key], np.asarray(value), rtol=1e-14)
    y = np.eye(3)[:, [0, 2, 1, 1, 0]]
    loss = layer_oracle("cross_entropy", {"x": x, "y": y}, None)
    value, grad = jax.value_and_grad(lambda z: -jnp.sum(y * jax.nn.log_softmax(z, axis=0)) / 5)(
        jnp.asarray(x)
    )
    np.testing.assert_allclose(loss["loss"], value, rtol=1e-14)
    np.testing.assert_allclose(loss["dx"], grad, rtol=1e-13, atol=1e-16)


# --- bugs are caught -----------------------------------------------------------------------


def mismatch_of(backward, layer, **options) -> LayerMismatch:
    """The mismatch ``check_layer`` raises; unshrunk unless ``shrink=True`` (cheaper:
    the diagnosis reads a generic probe, not the minimal case)."""
    with pytest.raises(LayerMismatch) as info:
        settings = {"shrink": False, **{k: options.pop(k) for k in SETTING_NAMES if k in options}}
        check_layer(backward, layer, **options, settings=dataclasses.replace(SMALL, **settings))
    return info.value


@pytest.mark.parametrize(
    ("bug", "output", "words"),
    [
        ("transposed dw", "dw", "expected"),
        ("db without axis", "db", "shape ()"),
        ("missing db", "db", "missing"),
    ],
)
def test_affine_bugs_are_caught_and_named(bug, output, words):
    mismatch = mismatch_of(
        lambda d, c: affine_backward(d, c, bug=bug), "affine", forward=affine_forward, shrink=True
    )
    assert mismatch.verdict == "wrong" and output in mismatch.failing
    assert words in str(mismatch) and "a larger failing case" in str(mismatch)
    # The larger case is the generic probe (5 samples), whatever Hypothesis shrank to.
    assert mismatch.typical is not None and mismatch.typical[1].m == 5


def test_a_transposed_dw_reports_both_shapes():
    mismatch = mismatch_of(
        lambda d, c: affine_backward(d, c, bug="transposed dw"), "affine", max_width=4,
        forward=affine_forward,
    )  # fmt: skip
    problem = mismatch.comparison.variables["dw"].problem
    if problem:  # a square w hides the shape: then the values are wrong
        assert problem.startswith("shape (") and "expected (" in problem


def test_relu_with_the_wrong_mask_is_caught():
    mismatch = mismatch_of(lambda d, x: relu_backward(d, x, bug="mask from dout"), "relu")
    assert mismatch.failing == ["dx"]


def test_a_wrong_kink_convention_is_caught_and_said():
    mismatch = mismatch_of(lambda d, x: relu_backward(d, x, bug="mask x >= 0"), "relu")
    assert "kink convention" in str(mismatch) and "relu'(0) = 0" in str(mismatch)


def test_softmax_loss_without_the_label_term_is_caught():
    mismatch = mismatch_of(lambda x, y: softmax_loss(x, y, bug=True), "cross_entropy")
    assert mismatch.failing == ["dx"]


@pytest.mark.parametrize(
    ("bug", "forward_options", "name"),
    [
        ("1/m", {}, "missing 1/m in the mean path"),
        ("unbiased", {}, "biased/unbiased variance mix-up (backward)"),
        (None, {"ddof": 1}, "biased/unbiased variance mix-up (forward)"),
        ("gamma", {}, "forgotten gamma in dx"),
        ("eps outside", {"eps_inside": False}, "eps outside the sqrt"),
    ],
)
def test_batchnorm_bugs_are_named(bug, forward_options, name):
    mismatch = mismatch_of(
        lambda d, c: batchnorm_backward(d, c, bug=bug),
        "batchnorm",
        forward=lambda x, g, b, p: batchnorm_forward(x, g, b, p, **forward_options),
    )
    assert mismatch.verdict == "wrong"
    assert len(mismatch.diagnosis) == 1 and mismatch.diagnosis[0].startswith(f"likely: {name}:")


def test_layernorm_over_the_wrong_axis_is_named():
    mismatch = mismatch_of(
        batchnorm_backward, "layernorm", forward=lambda x, g, b, p: batchnorm_forward(x, g, b, p)
    )
    assert mismatch.diagnosis[0].startswith("likely: statistics over the wrong axis")


def test_each_candidate_bug_is_told_apart_on_the_probe():
    """On the generic probe every classic bug's outputs differ from the definition's
    and from every other bug's: a match names one bug."""
    case = probe_case("batchnorm", "columns", "float64")
    (inputs, dout) = case.ours()
    args = ("batch", inputs["x"], inputs["gamma"], inputs["beta"], dout)
    right = normalization_layer(*args)
    outputs = [normalization_layer(*args, formula=bug.formula) for bug in NORMALIZATION_BUGS]
    for i, one in enumerate(outputs):
        for other in [right, *outputs[i + 1 :]]:
            assert any(not np.allclose(one[k], other[k], rtol=1e-6) for k in one)


def test_an_exception_is_reported_with_the_minimal_case_and_traceback():
    def broken(dout, cache):
        x, w, _b = cache
        last = dout[:, dout.shape[1]]  # off by one: raises for every shape (a w not
        # transposed would not: square layers multiply fine, and the verdict is "wrong")
        return dout @ w.T, x.T @ dout, dout.sum(axis=0) + last.sum()

    mismatch = mismatch_of(broken, "affine", forward=affine_forward, shrink=True)
    assert mismatch.verdict == "raised" and mismatch.comparison is None
    assert "IndexError" in mismatch.traceback and "in broken" in mismatch.traceback
    assert "LayerCase(" in str(mismatch)


def test_overflow_is_correct_maths_unstable_numerics():
    mismatch = mismatch_of(softmax_loss_naive, "cross_entropy", input_bound=1000.0)
    assert mismatch.verdict == "correct maths, unstable numerics"
    assert "NaN/inf" in str(mismatch)


# --- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"layer": "convolution"}, ValueError, "layer"),
        ({"backward": "affine_backward"}, TypeError, "backward"),
        ({"forward": 3}, TypeError, "forward"),
        ({"layout": "cols"}, ValueError, "layout"),
        ({"targets": "labels"}, ValueError, "targets"),
        ({"layer": "cross_entropy", "forward": None, "targets": "soft"}, ValueError, "targets"),
        ({"layer": "cross_entropy", "forward": affine_forward}, ValueError, "forward"),
        ({"layer": "batchnorm", "forward": None}, ValueError, "forward"),
        ({"max_examples": 0}, ValueError, "max_examples"),
        ({"dtype": "int8"}, TypeError, "dtype"),
        ({"input_bound": -1.0}, ValueError, "input_bound"),
        ({"input_bound": "big"}, TypeError, "input_bound"),
        ({"layer": "batchnorm", "max_batch": 1}, ValueError, "settings.max_batch"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, argument):
    call = {"backward": affine_backward, "layer": "affine", "forward": affine_forward, **kwargs}
    settings = {name: call.pop(name) for name in list(call) if name in SETTING_NAMES}
    with pytest.raises(error, match=f"^{argument}"):
        check_layer(call.pop("backward"), call.pop("layer"), **call,
                    settings=Settings(**settings) if settings else None)  # fmt: skip


def test_every_layer_has_a_definition():
    # affine, the activations, three loss heads, two normalizations, dropout; then the shaped
    # kinds: conv, two poolings, two spatial normalizations, four recurrent, three sequence
    assert len(LAYERS) == len(set(LAYERS)) == 1 + len(ACTIVATIONS) + 3 + 2 + 1 + 12
    assert EPS == 1e-5  # the param dict passed to the user's forward says so
