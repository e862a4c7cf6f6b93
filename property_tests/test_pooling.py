"""manual_bp.pooling against jax.vjp of the same forward run with xp=jax.numpy:
max pooling with ties drawn on purpose (jax splits a window's gradient equally
among its tied maxima, and so does max_backward), overlapping and non-square
windows, trailing rows; average pooling; float32 kept, inputs unchanged, bad
input named; the cs231n styles of benchmarks/layer_styles/pooling.py equal to it
off ties, and their named bugs differ from it."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.layer_styles import pooling as styles
from manual_bp import pooling
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

# A max's gradient is dout / t (t <= 16 ties) summed over at most 16 overlapping windows;
# an average's dout / (hp wp) likewise: at most ~17 roundings of terms bounded by the
# magnitude (the same on |dout|), ~2e-15 of it.  1e-12 leaves room; a bug is off by O(1).
RELATIVE = 1e-12

FORWARDS = {"max": pooling.max_forward, "average": pooling.average_forward}
BACKWARDS = {"max": pooling.max_backward, "average": pooling.average_backward}


@st.composite
def pool_cases(draw, dtype=np.float64, ties=None):
    """``(x, dout, geometry)`` over the whole legal space; ``ties``: values from a
    small integer set (many tied maxima), else drawn (``None``) or continuous."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    height = draw(st.integers(1, 4))
    width = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    H = draw(st.integers(height, 7))
    W = draw(st.integers(width, 7))
    Ho, Wo = 1 + (H - height) // stride, 1 + (W - width) // stride
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tied = draw(st.booleans()) if ties is None else ties
    if tied:
        x = rng.integers(-1, 2, size=(N, C, H, W)).astype(dtype)
    else:
        x = rng.permutation(N * C * H * W).reshape(N, C, H, W).astype(dtype)  # all distinct
        x = x + rng.uniform(0, 0.5, size=x.shape).astype(dtype)
    dout = rng.normal(size=(N, C, Ho, Wo)).astype(dtype)
    return x, dout, {"height": height, "width": width, "stride": stride}


@functools.cache
def compiled_vjp(kind, height, width, stride):
    """jax.vjp of the definition, compiled once per shape (eager jax compiles each of the
    forward's primitives per shape: seconds a case)."""
    forward = FORWARDS[kind]

    def vjp(x, dout):
        out, pullback = jax.vjp(
            lambda x: forward(x, height=height, width=width, stride=stride, xp=jnp)[0], x
        )
        return out, pullback(dout)[0], pullback(jnp.abs(dout))[0]

    return jax.jit(vjp)


def assert_close(name, manual, expected, magnitude, relative=RELATIVE):
    assert manual.shape == expected.shape, f"{name}: shape {manual.shape} != {expected.shape}"
    error = np.abs(manual.astype(np.float64) - expected)
    bound = relative * magnitude
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (
        f"{name}: |manual - oracle| = {error[worst]:.3g} > {bound[worst]:.3g} at {worst}"
    )


@pytest.mark.parametrize("kind", ["max", "average"])
@examples(0.15)
@given(case=pool_cases())
def test_forward_and_backward_equal_jax_vjp_of_the_same_forward(kind, case):
    """(1) the backward, ties included, and (2) the NumPy forward against jax."""
    x, dout, geometry = case
    out, cache = FORWARDS[kind](x, **geometry)
    dx = BACKWARDS[kind](dout, cache)
    out_jax, dx_jax, magnitude = compiled_vjp(kind, *geometry.values())(x, dout)
    out_magnitude = FORWARDS[kind](np.abs(x), **geometry)[0]
    assert_close("out", out, np.asarray(out_jax), out_magnitude)
    assert_close("dx", dx, np.asarray(dx_jax), np.asarray(magnitude))


def test_ties_split_equally_as_jax_does():
    grad = jax.grad(lambda v: v.max())(jnp.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(grad), [0.0, 0.5, 0.5])
    x = np.array([[[[3.0, 3.0, 1.0], [3.0, 0.0, 3.0]]]])
    _out, cache = pooling.max_forward(x, height=2, width=2, stride=1)
    dx = pooling.max_backward(np.array([[[[6.0, 4.0]]]]), cache)
    # window 1: three 3s share 6; window 2: two 3s share 4; (0, 1) is in both
    np.testing.assert_array_equal(dx, [[[[2.0, 2.0 + 2.0, 0.0], [2.0, 0.0, 2.0]]]])


@pytest.mark.parametrize("kind", ["max", "average"])
@examples(0.3)
@given(case=pool_cases(dtype=np.float32))
def test_float32_in_float32_out(kind, case):
    x, dout, geometry = case
    out, cache = FORWARDS[kind](x, **geometry)
    dx = BACKWARDS[kind](dout, cache)
    assert out.dtype == dx.dtype == np.float32
    out64, cache64 = FORWARDS[kind](x.astype(np.float64), **geometry)
    dx64 = BACKWARDS[kind](dout.astype(np.float64), cache64)
    magnitude = BACKWARDS[kind](np.abs(dout.astype(np.float64)), cache64)
    assert_close("out", out, out64, FORWARDS[kind](np.abs(x.astype(np.float64)), **geometry)[0],
                 relative=1e-5)  # fmt: skip
    assert_close("dx", dx, dx64, magnitude, relative=1e-5)


@pytest.mark.parametrize("kind", ["max", "average"])
@examples(0.3)
@given(case=pool_cases())
def test_the_callers_arrays_are_unchanged(kind, case):
    x, dout, geometry = case
    copies = (x.copy(), dout.copy())
    x.flags.writeable = dout.flags.writeable = False  # a write would raise
    _out, cache = FORWARDS[kind](x, **geometry)
    BACKWARDS[kind](dout, cache)
    BACKWARDS[kind](dout, cache)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(dout, copies[1])


BAD = [
    (dict(x=np.zeros((2, 5, 5))), ValueError, "x: expected a 4-D array"),
    (dict(x=np.zeros((1, 1, 5, 5), dtype=np.int64)), TypeError, "x: expected dtype float32"),
    (dict(x=[[[[1.0]]]]), TypeError, "x: expected an array, got list"),
    (dict(height=6), ValueError, "height: expected a window of at most x's H = 5"),
    (dict(width=7), ValueError, "width: expected a window of at most x's W = 4"),
    (dict(height=0), ValueError, "height: expected a positive int, got 0"),
    (dict(width=2.0), TypeError, "width: expected an int"),
    (dict(stride=0), ValueError, "stride: expected a positive int, got 0"),
    (dict(stride=None), TypeError, "stride: expected an int"),
]


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize(("change", "error", "message"), BAD)
def test_bad_input_is_refused_by_name(kind, change, error, message):
    arguments = dict(x=np.zeros((1, 2, 5, 4)), height=2, width=2, stride=2)
    arguments.update(change)
    with pytest.raises(error, match=message):
        FORWARDS[kind](arguments.pop("x"), **arguments)


@pytest.mark.parametrize("kind", ["max", "average"])
def test_bad_dout_is_refused_by_name(kind):
    _out, cache = FORWARDS[kind](np.zeros((1, 2, 5, 4)), height=2, width=2, stride=2)
    with pytest.raises(ValueError, match=r"dout: expected shape \(1, 2, 2, 2\)"):
        BACKWARDS[kind](np.zeros((1, 2, 2, 3)), cache)
    with pytest.raises(TypeError, match="dout: expected dtype float64"):
        BACKWARDS[kind](np.zeros((1, 2, 2, 2), dtype=np.float32), cache)
    with pytest.raises(TypeError, match="cache: expected the dict"):
        BACKWARDS[kind](np.zeros((1, 2, 2, 2)), None)


def test_the_derivation_is_text_a_student_reads():
    assert pooling.DERIVATION.startswith("Pooling")
    assert all(len(line) <= 88 for line in pooling.DERIVATION.splitlines())


# --------------------------------------------------------------------------------------
# Students' styles (benchmarks/layer_styles/pooling.py)

OURS = {"max_pool": "max", "avg_pool": "average"}


def pool_param(geometry):
    return {"pool_height": geometry["height"], "pool_width": geometry["width"],
            "stride": geometry["stride"]}  # fmt: skip


@pytest.mark.parametrize(
    ("layer", "style"),
    [(layer, style) for layer in styles.STYLES for style in styles.STYLES[layer]],
)
@examples(0.2)
@given(case=pool_cases(ties=False))
def test_the_correct_student_styles_equal_manual_bp_off_ties(layer, style, case):
    x, dout, geometry = case
    forward, backward = styles.STYLES[layer][style]
    out, cache = forward(x, pool_param(geometry))
    dx = backward(dout, cache)
    kind = OURS[layer]
    mine_out, mine_cache = FORWARDS[kind](x, **geometry)
    magnitude = BACKWARDS[kind](np.abs(dout), mine_cache)
    assert_close("out", out, mine_out, FORWARDS[kind](np.abs(x), **geometry)[0])
    assert_close("dx", dx, BACKWARDS[kind](dout, mine_cache), magnitude)


def test_at_a_tie_the_students_max_styles_differ_from_the_equal_split():
    x = np.array([[[[2.0, 2.0], [0.0, 1.0]]]])
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    dout = np.ones((1, 1, 1, 1))
    each = styles.max_pool_backward_naive(dout, styles.max_pool_forward_naive(x, param)[1])
    first = styles.max_pool_backward_argmax(dout, styles.max_pool_forward_argmax(x, param)[1])
    ours = pooling.max_backward(dout, pooling.max_forward(x, height=2, width=2, stride=2)[1])
    assert each[0, 0, 0].tolist() == [1.0, 1.0]
    assert first[0, 0, 0].tolist() == [1.0, 0.0]
    assert ours[0, 0, 0].tolist() == [0.5, 0.5]


# Overlapping 3x2 windows at stride 1 and 2 (the stride bug needs stride > 1) on distinct
# values, with a trailing column: every named bug shows.
BUG_X = np.random.default_rng(5).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 7.0


@pytest.mark.parametrize(
    ("layer", "bug"), [(layer, bug) for layer in styles.BUGS for bug in styles.BUGS[layer]]
)
def test_each_named_student_bug_differs_from_the_correct_style(layer, bug):
    forward, backward = styles.BUGS[layer][bug]
    correct_forward, correct_backward = styles.STYLES[layer]["naive"]
    for stride in (1, 2):
        param = {"pool_height": 3, "pool_width": 2, "stride": stride}
        out, cache = forward(BUG_X, param)
        dout = np.random.default_rng(6).normal(size=out.shape)
        correct = correct_backward(dout, correct_forward(BUG_X, param)[1])
        buggy = backward(dout, cache)
        assert buggy.shape == correct.shape
        if bug != "stride_ignored" or stride > 1:
            assert not np.allclose(buggy, correct), (bug, stride)
    assert backward.__doc__ and len(backward.__doc__.splitlines()) == 1
