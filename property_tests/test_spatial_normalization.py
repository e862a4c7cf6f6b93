"""Spatial batch normalization and group normalization against ``jax.vjp``.

The manual backwards of ``manual_bp.spatial_normalization`` against ``jax.vjp``
of the same forward run over ``jax.numpy`` (eager, float64), entry by entry
within a rounding bound; the forward over NumPy against the forward over
``jax.numpy``; float32 kept float32; the caller's arrays untouched; bad input
refused with a message naming it; and cs231n students' styles
(``benchmarks/layer_styles/spatial_normalization.py``): the correct ones agree
with ours, each named bug differs.

The rounding bound.  Each gradient entry is a sum of at most ``k`` products
(``k`` the entries that share a statistic, at most 3·5·5 = 75 for batch
norm and 6·5·5 = 150 for group norm), so two summation orders differ by a
few ``k u`` (``u = 2^-53``) times the *magnitude*: the same computation run on
absolute values, with ``|Zhat|`` taken as ``(|x| + |mu|) s`` because the
deviation ``x - mu`` cancels, and its rounding, ``u (|x| + |mu|)``, is what
``s`` scales.  ``1e-12 (1 + magnitude)`` is ~9000 ``u``: room for ``k`` and
the constants, six orders of magnitude below every bug's error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.layer_styles import spatial_normalization as styles
from manual_bp import spatial_normalization as sn
from manual_bp.normalization import EPS
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

RTOL = 1e-12
VALUES = ("normal", "ties", "constant", "offset", "tiny")


# The shapes the oracle runs on.  jax compiles every primitive of an eager
# vjp once per shape (a second or more each), so the oracle's shapes come
# from a short list chosen to cover the edges: one entry per statistic
# (k = 1), batch 1, one channel, non-square images, a width of 1, and for
# group norm G = 1 (layer norm), G = C (instance norm) and groups of 2
# channels.  The NumPy-only properties draw from every shape.
ORACLE_SHAPES = {
    "batch": [((1, 1, 1, 1), None), ((1, 3, 4, 1), None), ((3, 2, 2, 3), None)],
    "group": [((1, 4, 1, 1), 4), ((3, 3, 3, 1), 1), ((2, 6, 2, 3), 3)],
}


@st.composite
def layers(
    draw: st.DrawFn, layer: str, dtype: str = "float64", oracle: bool = False
) -> dict[str, Any]:
    """One layer call: ``x`` ``(N, C, H, W)``, ``gamma``, ``beta``, ``dout`` (and ``groups``).

    Shapes over the whole legal space at small sizes (batch and spatial sizes
    1 included, non-square images; for group norm every divisor ``G`` of
    ``C``, so ``G = 1`` (layer norm), ``G = C`` (instance norm) and groups of
    2 or 3 channels), or with ``oracle`` from ``ORACLE_SHAPES``; values
    normal, with ties (integers in -1..1: constant groups happen), all
    constant, offset by 10, or tiny (variance far below ``eps``).
    """
    if oracle:
        (N, C, H, W), groups = draw(st.sampled_from(ORACLE_SHAPES[layer]))
    else:
        N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
        C = draw(st.sampled_from([1, 2, 3] if layer == "batch" else [1, 2, 3, 4, 6]))
        groups = draw(st.sampled_from([g for g in range(1, C + 1) if C % g == 0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = draw(st.sampled_from(VALUES))
    shape = (N, C, H, W)
    if values == "ties":
        x = rng.integers(-1, 2, shape).astype(float)
    elif values == "constant":
        x = np.full(shape, rng.standard_normal())
    else:
        scale = {"normal": 2.0, "offset": 1.0, "tiny": 1e-3}[values]
        x = scale * rng.standard_normal(shape) + (10.0 if values == "offset" else 0.0)
    parameter_shape = (C,) if layer == "batch" else (1, C, 1, 1)
    case: dict[str, Any] = {
        "x": x.astype(dtype),
        "gamma": (1 + rng.standard_normal(parameter_shape)).astype(dtype),
        "beta": rng.standard_normal(parameter_shape).astype(dtype),
        "dout": rng.standard_normal(shape).astype(dtype),
    }
    if layer == "group":
        case["groups"] = groups
    return case


def forward(case: dict[str, Any], xp: Any = np, **arrays: Any) -> tuple[Any, dict[str, Any]]:
    """Our forward of ``case`` (``arrays`` replace its ``x``, ``gamma``, ``beta``)."""
    x, gamma, beta = (arrays.get(name, case[name]) for name in ("x", "gamma", "beta"))
    if "groups" in case:
        return sn.group_norm_forward(x, gamma, beta, case["groups"], xp=xp)
    return sn.spatial_batchnorm_forward(x, gamma, beta, xp=xp)


def backward(case: dict[str, Any], dout: Any, cache: Any) -> tuple[Any, Any, Any]:
    layer = sn.group_norm_backward if "groups" in case else sn.spatial_batchnorm_backward
    return layer(dout, cache)


def magnitudes(case: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every result computed on absolute values (module notes), in the result's shape.

    Written independently of the module, per entry over the set of entries
    that share a statistic (batch: axes 0, 2, 3 of the image; group: axes
    2, 3, 4 of ``(N, G, C/G, H, W)``).
    """
    x, gamma, beta, dout = case["x"], case["gamma"], case["beta"], case["dout"]
    N, C, H, W = x.shape
    G = case.get("groups")
    gamma4, beta4 = gamma.reshape(1, C, 1, 1), beta.reshape(1, C, 1, 1)
    if G is None:
        sets, axes = (lambda a: a), (0, 2, 3)
    else:
        sets, axes = (lambda a: a.reshape(N, G, C // G, H, W)), (2, 3, 4)
    xs = sets(x)
    k = xs.size // xs.mean(axis=axes).size
    mu = xs.mean(axis=axes, keepdims=True)
    s = 1 / np.sqrt(xs.var(axis=axes, keepdims=True) + EPS)
    Zabs = (np.abs(xs) + np.abs(mu)) * s
    dZhat = sets(np.abs(np.broadcast_to(gamma4, x.shape) * dout))
    dx = (s / k) * (
        k * dZhat
        + dZhat.sum(axis=axes, keepdims=True)
        + Zabs * (dZhat * Zabs).sum(axis=axes, keepdims=True)
    )
    var = ((np.abs(xs) + np.abs(mu)) ** 2).mean(axis=axes, keepdims=True)
    statistics_shape = mu.shape[1:2] if G is None else mu.shape[:2]
    Zabs = Zabs.reshape(x.shape)
    shape = gamma.shape
    return {
        "mu": np.abs(xs).mean(axis=axes).reshape(statistics_shape),
        "var": var.reshape(statistics_shape),
        "inv_std": (s**3 * var).reshape(statistics_shape),  # ds = -s^3 dvar / 2
        "xhat": Zabs,
        "out": np.abs(gamma4) * Zabs + np.abs(beta4),
        "dx": dx.reshape(x.shape),
        "dgamma": (np.abs(dout) * Zabs).sum(axis=(0, 2, 3)).reshape(shape),
        "dbeta": np.abs(dout).sum(axis=(0, 2, 3)).reshape(shape),
    }


def assert_close(name: str, manual: Any, reference: Any, magnitude: np.ndarray) -> None:
    manual, reference = np.asarray(manual), np.asarray(reference)
    assert manual.shape == reference.shape, (name, manual.shape, reference.shape)
    error = np.abs(manual - reference)
    bound = RTOL * (1 + magnitude)
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert np.all(error <= bound), (
        f"{name}: |manual - reference| = {error[worst]:.3g} > {bound[worst]:.3g} at {worst}"
    )


def jax_forward(case: dict[str, Any]) -> tuple[Any, Any, Callable[[Any], tuple[Any, ...]]]:
    """``out``, the cache and the pullback: ``jax.vjp`` of our forward over ``jax.numpy``.

    Eager, float64; both jax properties take this one path, so they share
    the primitives jax compiles for each shape.
    """
    inputs = [jnp.asarray(case[name]) for name in ("x", "gamma", "beta")]

    def f(x: Any, gamma: Any, beta: Any) -> tuple[Any, dict[str, Any]]:
        return forward(case, jnp, x=x, gamma=gamma, beta=beta)

    out, pullback, cache = jax.vjp(f, *inputs, has_aux=True)
    return out, cache, pullback


GRADIENTS = ("dx", "dgamma", "dbeta")


@pytest.mark.parametrize("layer", ["batch", "group"])
@examples(0.3)
@given(data=st.data())
def test_backward_equals_jax_vjp(layer: str, data: st.DataObject) -> None:
    case = data.draw(layers(layer, oracle=True))
    _, cache = forward(case)
    manual = backward(case, case["dout"], cache)
    _, _, pullback = jax_forward(case)
    oracle = pullback(jnp.asarray(case["dout"]))
    bounds = magnitudes(case)
    for name, ours, theirs in zip(GRADIENTS, manual, oracle, strict=True):
        assert_close(name, ours, theirs, bounds[name])


@pytest.mark.parametrize("layer", ["batch", "group"])
@examples(0.2)
@given(data=st.data())
def test_forward_numpy_equals_forward_jax(layer: str, data: st.DataObject) -> None:
    case = data.draw(layers(layer, oracle=True))
    out, cache = forward(case)
    out_jax, cache_jax, _ = jax_forward(case)
    bounds = magnitudes(case)
    assert_close("out", out, out_jax, bounds["out"])
    assert cache.keys() == cache_jax.keys()
    for name in ("xhat", "mu", "var", "inv_std"):
        assert_close(name, cache[name], cache_jax[name], bounds[name])
    assert_close("gamma", cache["gamma"], cache_jax["gamma"], np.abs(case["gamma"]))


@pytest.mark.parametrize("layer", ["batch", "group"])
@examples(0.3)
@given(data=st.data())
def test_float32_in_float32_out(layer: str, data: st.DataObject) -> None:
    case = data.draw(layers(layer, dtype="float32"))
    out, cache = forward(case)
    gradients = backward(case, case["dout"], cache)
    results = {"out": out, **cache, **dict(zip(GRADIENTS, gradients, strict=True))}
    assert {name: str(value.dtype) for name, value in results.items()} == dict.fromkeys(
        results, "float32"
    )


@pytest.mark.parametrize("layer", ["batch", "group"])
@examples(0.3)
@given(data=st.data())
def test_the_callers_arrays_are_unchanged(layer: str, data: st.DataObject) -> None:
    case = data.draw(layers(layer))
    before = copy.deepcopy(case)
    out, cache = forward(case)
    cache_before = copy.deepcopy(cache)
    dx, dgamma, dbeta = backward(case, case["dout"], cache)
    for name in ("x", "gamma", "beta", "dout"):
        assert np.array_equal(case[name], before[name]), name
    for name, value in cache_before.items():
        assert np.array_equal(cache[name], value), f"cache[{name!r}]"
    for result in (out, dx, dgamma, dbeta):
        assert not any(np.shares_memory(result, case[name]) for name in ("x", "dout"))


@pytest.mark.parametrize(
    ("layer", "shape", "groups"), [("batch", (1, 2, 1, 1), None), ("group", (3, 4, 1, 1), 4)]
)
def test_one_entry_per_statistic_is_beta_and_zero_gradient(layer, shape, groups) -> None:
    """``k = 1``: ``xhat = 0``, ``out = beta``, ``dx = 0`` exactly; ``dbeta`` sums ``dout``."""
    rng = np.random.default_rng(0)
    C = shape[1]
    parameter_shape = (C,) if layer == "batch" else (1, C, 1, 1)
    case = {
        "x": rng.standard_normal(shape),
        "gamma": rng.standard_normal(parameter_shape),
        "beta": rng.standard_normal(parameter_shape),
        "dout": rng.standard_normal(shape),
    }
    if groups:
        case["groups"] = groups
    out, cache = forward(case)
    dx, dgamma, dbeta = backward(case, case["dout"], cache)
    assert np.array_equal(out, np.broadcast_to(case["beta"].reshape(1, C, 1, 1), shape))
    assert np.array_equal(dx, np.zeros(shape)) and np.array_equal(dgamma, np.zeros_like(dgamma))
    assert np.array_equal(dbeta, case["dout"].sum(axis=(0, 2, 3)).reshape(parameter_shape))


def test_group_norm_statistics_are_per_sample_and_group() -> None:
    """The cache's statistics, against NumPy's over ``(N, G, C/G, H, W)``."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3, 2))
    _, cache = sn.group_norm_forward(x, np.ones((1, 6, 1, 1)), np.zeros((1, 6, 1, 1)), 3)
    groups = x.reshape(2, 3, -1)
    np.testing.assert_allclose(cache["mu"], groups.mean(axis=2), rtol=1e-14)
    np.testing.assert_allclose(cache["var"], groups.var(axis=2), rtol=1e-13)
    np.testing.assert_allclose(cache["inv_std"], 1 / np.sqrt(groups.var(axis=2) + EPS))


# ------------------------------------------------------------------------- bad input


def _bn(**change: Any) -> Callable[[], object]:
    arrays = {"x": np.ones((2, 3, 4, 5)), "gamma": np.ones(3), "beta": np.zeros(3)} | change
    return lambda: sn.spatial_batchnorm_forward(**arrays)


def _gn(**change: Any) -> Callable[[], object]:
    arrays = {
        "x": np.ones((2, 4, 3, 3)),
        "gamma": np.ones((1, 4, 1, 1)),
        "beta": np.zeros((1, 4, 1, 1)),
        "groups": 2,
    } | change
    return lambda: sn.group_norm_forward(**arrays)


def _backward(layer: str, **change: Any) -> Callable[[], object]:
    rng = np.random.default_rng(0)
    if layer == "batch":
        x, gamma = rng.standard_normal((2, 3, 4, 5)), np.ones(3)
        _, cache = sn.spatial_batchnorm_forward(x, gamma, np.zeros(3))
        run = sn.spatial_batchnorm_backward
    else:
        x, gamma = rng.standard_normal((2, 4, 3, 3)), np.ones((1, 4, 1, 1))
        _, cache = sn.group_norm_forward(x, gamma, np.zeros((1, 4, 1, 1)), 2)
        run = sn.group_norm_backward
    arguments = {"dout": np.ones_like(x), "cache": cache}
    for name, value in change.items():
        if name in arguments:
            arguments[name] = value
        else:
            arguments["cache"] = (
                {**cache, name: value}
                if value is not None
                else {key: v for key, v in cache.items() if key != name}
            )
    return lambda: run(**arguments)


BAD_INPUT = {
    "x not an array": (_bn(x=[[1.0]]), TypeError, "x: expected an array, got list"),
    "x 3-d": (_bn(x=np.ones((3, 4, 5))), ValueError, "x: expected 4 dimensions"),
    "x empty": (_bn(x=np.ones((0, 3, 4, 5))), ValueError, "x: expected no empty axis"),
    "x integer": (_bn(x=np.ones((2, 3, 4, 5), int)), TypeError, "x: expected dtype float32"),
    "bn gamma one too many": (_bn(gamma=np.ones(4)), ValueError, "gamma: expected shape (3,)"),
    "bn gamma as group norm's": (
        _bn(gamma=np.ones((1, 3, 1, 1))),
        ValueError,
        "gamma: expected shape (3,)",
    ),
    "bn beta (C, 1)": (_bn(beta=np.zeros((3, 1))), ValueError, "beta: expected shape (3,)"),
    "bn gamma float32 for float64 x": (
        _bn(gamma=np.ones(3, np.float32)),
        TypeError,
        "gamma: expected dtype float64 (x's), got float32",
    ),
    "gn gamma (C,)": (_gn(gamma=np.ones(4)), ValueError, "gamma: expected shape (1, 4, 1, 1)"),
    "gn beta (1, C)": (_gn(beta=np.zeros((1, 4))), ValueError, "beta: expected shape (1, 4, 1, 1)"),
    "gn groups not dividing C": (_gn(groups=3), ValueError, "groups: expected a divisor"),
    "gn groups 0": (_gn(groups=0), ValueError, "groups: expected an int >= 1, got 0"),
    "gn groups float": (_gn(groups=2.0), TypeError, "groups: expected an int >= 1, got float"),
    "gn groups bool": (_gn(groups=True), TypeError, "groups: expected an int >= 1, got bool"),
    "gn x float32, beta float64": (
        _gn(x=np.ones((2, 4, 3, 3), np.float32), gamma=np.ones((1, 4, 1, 1), np.float32)),
        TypeError,
        "beta: expected dtype float32 (x's), got float64",
    ),
    "bn dout transposed": (
        _backward("batch", dout=np.ones((2, 3, 5, 4))),
        ValueError,
        "dout: expected shape (2, 3, 4, 5), got (2, 3, 5, 4)",
    ),
    "gn dout float32": (
        _backward("group", dout=np.ones((2, 4, 3, 3), np.float32)),
        TypeError,
        "dout: expected dtype float64",
    ),
    "bn cache not a dict": (_backward("batch", cache=(1, 2)), TypeError, "cache: expected"),
    "gn cache without xhat": (_backward("group", xhat=None), ValueError, "missing ['xhat']"),
    "gn backward given batch norm's cache": (
        _backward("group", inv_std=np.ones(4)),
        ValueError,
        "cache['inv_std']: expected 2 dimensions",
    ),
    "bn backward given group norm's statistics": (
        _backward("batch", inv_std=np.ones((2, 3))),
        ValueError,
        "cache['inv_std']: expected shape (3,)",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=list(BAD_INPUT))
def test_bad_input_is_refused_with_its_name(case) -> None:
    call, error, message = case
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)


# ------------------------------------------------------------------ students' styles


def student_arguments(case: dict[str, Any]) -> tuple[Any, ...]:
    """``case``'s arguments in cs231n's signature."""
    arrays = (case["x"], case["gamma"], case["beta"])
    if "groups" in case:
        return (*arrays, case["groups"], {"eps": EPS})
    return (*arrays, {"mode": "train", "eps": EPS, "momentum": 0.9})


def student_case(layer: str, seed: int) -> dict[str, Any]:
    """A random case with every dimension above 1 and groups of 2 channels."""
    rng = np.random.default_rng(seed)
    N, C, H, W = 2, 6, 3, 2
    shape = (C,) if layer == "batch" else (1, C, 1, 1)
    case: dict[str, Any] = {
        "x": 3 * rng.standard_normal((N, C, H, W)) + 1,
        "gamma": 1 + rng.standard_normal(shape),
        "beta": rng.standard_normal(shape),
        "dout": rng.standard_normal((N, C, H, W)),
    }
    if layer == "group":
        case["groups"] = 3
    return case


def run_style(pair: tuple[Callable, ...], arguments: tuple[Any, ...], dout: Any) -> list[Any]:
    student_forward, student_backward = pair[:2]
    out, cache = student_forward(*copy.deepcopy(arguments))
    return [out, *student_backward(dout.copy(), cache)]


STYLE_LAYERS = {"spatial_batchnorm": "batch", "spatial_groupnorm": "group"}
CORRECT_STYLES = [(f, s) for f, by in styles.STYLES.items() for s in by]
BUGGY_STYLES = [(f, b) for f, by in styles.BUGS.items() for b in by]


@pytest.mark.parametrize(("family", "style"), CORRECT_STYLES)
@examples(0.2)
@given(data=st.data())
def test_students_correct_styles_agree_with_ours(
    family: str, style: str, data: st.DataObject
) -> None:
    case = data.draw(layers(STYLE_LAYERS[family]))
    theirs = run_style(styles.STYLES[family][style], student_arguments(case), case["dout"])
    out, cache = forward(case)
    ours = [out, *backward(case, case["dout"], cache)]
    bounds = magnitudes(case)
    for name, mine, student in zip(("out", *GRADIENTS), ours, theirs, strict=True):
        assert_close(name, student, mine, bounds[name])


@pytest.mark.parametrize(("family", "bug"), BUGGY_STYLES)
def test_each_students_bug_differs_from_the_correct_code(family: str, bug: str) -> None:
    case = student_case(STYLE_LAYERS[family], 0)
    arguments, dout = student_arguments(case), case["dout"]
    buggy = run_style(styles.BUGS[family][bug], arguments, dout)
    correct = run_style(styles.STYLES[family]["transposed"], arguments, dout)
    assert styles.BUGS[family][bug][2]  # its one-line description
    assert any(
        np.shape(b) != np.shape(c) or np.max(np.abs(b - c)) > 1e-6
        for b, c in zip(buggy, correct, strict=True)
    ), bug
