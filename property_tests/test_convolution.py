"""manual_bp.convolution against jax.vjp of the same forward run with xp=jax.numpy,
over every stride, padding, non-square input and filter, overlapping windows and
trailing rows no window reaches; float32 kept, inputs unchanged, bad input named;
the cs231n styles of benchmarks/layer_styles/convolution.py equal to it, and their
named bugs differ from it."""

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.layer_styles import convolution as styles
from manual_bp import convolution
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

# Each gradient entry is a sum of at most N Ho Wo <= 3 * 49 (dw), F HH WW <= 48 (dx) or
# C HH WW + 1 <= 49 (out) products: its first-order rounding bound is at most
# 2 * 147 * 2^-53 ~ 3e-14 times the same sum over absolute values (the magnitude, from
# jax on |x|, |w|, |b|, |dout|).  1e-12 leaves room, and a wrong gradient is off by O(1).
RELATIVE = 1e-12


@st.composite
def conv_cases(draw, dtype=np.float64, max_size=7):
    """``(x, w, b, dout, stride, pad)``: the whole legal space of small layers."""
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    F = draw(st.integers(1, 3))
    HH = draw(st.integers(1, 4))
    WW = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 2))
    H = draw(st.integers(max(1, HH - 2 * pad), max_size))
    W = draw(st.integers(max(1, WW - 2 * pad), max_size))
    Ho = convolution.output_size(H, HH, stride, pad)
    Wo = convolution.output_size(W, WW, stride, pad)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "integers", "wide"]))

    def values(shape):
        if kind == "integers":  # exact sums, zeros and repeated values
            return rng.integers(-2, 3, size=shape).astype(dtype)
        scale = 10.0 ** rng.uniform(-3, 3, size=shape) if kind == "wide" else 1.0
        return (rng.normal(size=shape) * scale).astype(dtype)

    return (
        values((N, C, H, W)),
        values((F, C, HH, WW)),
        values((F,)),
        values((N, F, Ho, Wo)),
        stride,
        pad,
    )


def jax_forward(stride, pad):
    return lambda x, w, b: convolution.forward(x, w, b, stride=stride, pad=pad, xp=jnp)[0]


@functools.cache
def compiled_vjp(stride, pad):
    """``(out, (dx, dw, db))`` of jax.vjp of the definition, compiled once per shape.

    Compiled, not eager: eager jax compiles each of the forward's ~40 primitives
    (one slice per kernel offset) per shape, 5-10 s a case with the persistent
    compilation cache on (1-3 s off); one compiled vjp is ~0.5 s a shape, and
    its magnitude run (the same shapes) reuses it.
    """

    def vjp(x, w, b, dout):
        out, pullback = jax.vjp(jax_forward(stride, pad), x, w, b)
        return out, pullback(dout)

    return jax.jit(vjp)


def oracle(x, w, b, dout, stride, pad):
    """jax.vjp of the definition and the same on absolute values (the magnitudes)."""
    run = compiled_vjp(stride, pad)
    out, grads = run(x, w, b, dout)
    out_abs, magnitudes = run(np.abs(x), np.abs(w), np.abs(b), np.abs(dout))
    return (
        np.asarray(out),
        [np.asarray(g) for g in grads],
        np.asarray(out_abs),
        [np.asarray(m) for m in magnitudes],
    )


def assert_close(name, manual, expected, magnitude, relative=RELATIVE):
    assert manual.shape == expected.shape, f"{name}: shape {manual.shape} != {expected.shape}"
    error = np.abs(manual.astype(np.float64) - expected)
    bound = relative * magnitude
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (
        f"{name}: |manual - oracle| = {error[worst]:.3g} > {bound[worst]:.3g} at {worst}"
    )


@examples(0.2)
@given(conv_cases())
def test_forward_and_backward_equal_jax_vjp_of_the_same_forward(case):
    """(1) the backward and (2) the NumPy forward against jax on the xp=jnp forward."""
    x, w, b, dout, stride, pad = case
    out, cache = convolution.forward(x, w, b, stride=stride, pad=pad)
    manual = convolution.backward(dout, cache)
    out_jax, grads, out_abs, magnitudes = oracle(x, w, b, dout, stride, pad)
    assert_close("out", out, out_jax, out_abs)
    named = zip(("dx", "dw", "db"), manual, grads, magnitudes, strict=True)
    for name, mine, theirs, magnitude in named:
        assert_close(name, mine, theirs, magnitude)


@examples(0.3)
@given(conv_cases(dtype=np.float32))
def test_float32_in_float32_out(case):
    x, w, b, dout, stride, pad = case
    out, cache = convolution.forward(x, w, b, stride=stride, pad=pad)
    single = (out, *convolution.backward(dout, cache))
    assert [a.dtype for a in single] == [np.float32] * 4
    # and the numbers are the float64 ones (the same inputs, exact in float64) to float32's
    # rounding: at most 147 terms, 147 * 2^-24 ~ 9e-6 of the magnitude
    wide = [a.astype(np.float64) for a in (x, w, b, dout)]
    out64, cache64 = convolution.forward(*wide[:3], stride=stride, pad=pad)
    double = (out64, *convolution.backward(wide[3], cache64))
    abs_out, abs_cache = convolution.forward(*[np.abs(a) for a in wide[:3]], stride=stride, pad=pad)
    magnitudes = (abs_out, *convolution.backward(np.abs(wide[3]), abs_cache))
    named = zip(("out", "dx", "dw", "db"), single, double, magnitudes, strict=True)
    for name, a, reference, magnitude in named:
        assert_close(name, a, reference, magnitude, relative=2e-5)


@examples(0.3)
@given(conv_cases())
def test_the_callers_arrays_are_unchanged(case):
    x, w, b, dout, stride, pad = case
    arrays = (x, w, b, dout)
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False  # a write would raise
    _out, cache = convolution.forward(x, w, b, stride=stride, pad=pad)
    convolution.backward(dout, cache)
    convolution.backward(dout, cache)  # the cache is not consumed either
    for original, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_output_size_is_the_floor_of_the_windows_that_fit():
    assert convolution.output_size(32, 3, 1, 1) == 32
    assert convolution.output_size(7, 3, 2, 0) == 3
    assert convolution.output_size(6, 3, 2, 0) == 2  # the trailing row is ignored
    assert convolution.output_size(1, 3, 5, 1) == 1
    for size in range(1, 9):
        for window in range(1, 6):
            for stride in range(1, 4):
                for pad in range(3):
                    if size + 2 * pad < window:
                        with pytest.raises(ValueError, match="window"):
                            convolution.output_size(size, window, stride, pad)
                        continue
                    count = convolution.output_size(size, window, stride, pad)
                    last_start = (count - 1) * stride
                    assert last_start + window <= size + 2 * pad < last_start + stride + window


def test_a_hand_computed_case_with_stride_padding_and_a_trailing_row():
    x = np.arange(1.0, 1 + 2 * 5 * 4).reshape(1, 2, 5, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]], [[0.0, 2.0], [1.0, 0.0]]]])
    b = np.array([0.5])
    out, cache = convolution.forward(x, w, b, stride=2, pad=1)
    x_padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.array(
        [[(x_padded[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] * w[0]).sum() + 0.5
          for j in range(3)] for i in range(3)]
    )  # fmt: skip
    np.testing.assert_array_equal(out[0, 0], expected)
    dx, _dw, _db = convolution.backward(np.ones_like(out), cache)
    assert (dx[0, :, 4, :] != 0).any()  # padded to 7 rows, windows at 0, 2, 4: all reached
    out, cache = convolution.forward(x, w, b, stride=2)  # no padding: windows at rows 0, 2
    assert out.shape == (1, 1, 2, 2)
    dx, _dw, _db = convolution.backward(np.ones_like(out), cache)
    assert (dx[0, :, 4, :] == 0).all() and (dx[0, :, :4, :] != 0).any()  # the trailing row


BAD = [
    (dict(x=np.zeros((2, 3, 5))), ValueError, "x: expected a 4-D array"),
    (dict(x=np.zeros((1, 3, 5, 5), dtype=int)), TypeError, "x: expected dtype float32"),
    (dict(x=[[[[1.0]]]]), TypeError, "x: expected an array, got list"),
    (dict(w=np.zeros((2, 4, 3, 3))), ValueError, "w: expected 3 input channels"),
    (dict(w=np.zeros((2, 3, 3))), ValueError, "w: expected a 4-D array"),
    (dict(w=np.zeros((2, 3, 3, 3), dtype=np.float32)), TypeError, "w: expected dtype float64"),
    (dict(b=np.zeros(3)), ValueError, r"b: expected shape \(2,\)"),
    (dict(b=np.zeros((2, 1))), ValueError, "b: expected a 1-D array"),
    (dict(stride=0), ValueError, "stride: expected a positive int, got 0"),
    (dict(stride=1.0), TypeError, "stride: expected an int"),
    (dict(stride=True), TypeError, "stride: expected an int"),
    (dict(pad=-1), ValueError, "pad: expected an int >= 0, got -1"),
    (dict(w=np.zeros((2, 3, 8, 3))), ValueError, "HH: the window"),
    (dict(w=np.zeros((2, 3, 3, 9)), pad=1), ValueError, "WW: the window"),
    (dict(x=np.zeros((0, 3, 5, 5))), ValueError, "x: expected no empty dimension"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD)
def test_bad_input_is_refused_by_name(change, error, message):
    arguments = dict(x=np.zeros((1, 3, 5, 5)), w=np.zeros((2, 3, 3, 3)), b=np.zeros(2))
    arguments.update(change)
    keywords = {key: arguments.pop(key) for key in ("stride", "pad") if key in arguments}
    with pytest.raises(error, match=message):
        convolution.forward(arguments["x"], arguments["w"], arguments["b"], **keywords)


BAD_DOUT = [
    (np.zeros((1, 2, 5, 4)), ValueError, r"dout: expected shape \(1, 2, 5, 5\)"),
    (np.zeros((1, 2, 5, 5), dtype=np.float32), TypeError, "dout: expected dtype float64"),
    ([[0.0]], TypeError, "dout: expected a numpy array"),
]


@pytest.mark.parametrize(("dout", "error", "message"), BAD_DOUT)
def test_bad_dout_is_refused_by_name(dout, error, message):
    _out, cache = convolution.forward(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)),
                                      np.zeros(2), pad=1)  # fmt: skip
    with pytest.raises(error, match=message):
        convolution.backward(dout, cache)
    with pytest.raises(ValueError, match="cache: expected the forward's keys"):
        convolution.backward(np.zeros((1, 2, 5, 5)), {"x": np.zeros((1, 3, 5, 5))})


def test_the_derivation_is_text_a_student_reads():
    assert convolution.DERIVATION.startswith("Convolution")
    assert all(len(line) <= 88 for line in convolution.DERIVATION.splitlines())


# --------------------------------------------------------------------------------------
# Students' styles (benchmarks/layer_styles/convolution.py)


def as_cs231n(case):
    x, w, b, dout, stride, pad = case
    return x, w, b, dout, {"stride": stride, "pad": pad}


@pytest.mark.parametrize("style", sorted(styles.STYLES["conv"]))
@examples(0.2)
@given(case=conv_cases(max_size=6))
def test_the_correct_student_styles_equal_manual_bp(style, case):
    x, w, b, dout, conv_param = as_cs231n(case)
    forward, backward = styles.STYLES["conv"][style]
    out, cache = forward(x, w, b, conv_param)
    theirs = backward(dout, cache)
    mine_out, mine_cache = convolution.forward(x, w, b, **conv_param)
    mine = convolution.backward(dout, mine_cache)
    abs_out, abs_cache = convolution.forward(np.abs(x), np.abs(w), np.abs(b), **conv_param)
    magnitudes = convolution.backward(np.abs(dout), abs_cache)
    assert_close("out", out, mine_out, abs_out)
    for name, a, bb, magnitude in zip(("dx", "dw", "db"), theirs, mine, magnitudes, strict=True):
        assert_close(name, a, bb, magnitude)


# A case where every bug shows: stride 2 with overlapping 3x3 windows (stride < 3),
# padding 1, two samples, an asymmetric kernel, and a trailing row (H = 8: 1 + 7 // 2 = 4
# windows reach rows 0..8 of the 10 padded rows).
BUG_CASE = (
    np.random.default_rng(1).normal(size=(2, 2, 8, 7)),
    np.random.default_rng(2).normal(size=(3, 2, 3, 3)),
    np.random.default_rng(3).normal(size=3),
    {"stride": 2, "pad": 1},
)


@pytest.mark.parametrize("bug", sorted(styles.BUGS["conv"]))
def test_each_named_student_bug_differs_from_the_correct_style(bug):
    x, w, b, conv_param = BUG_CASE
    forward, backward = styles.BUGS["conv"][bug]
    out, cache = forward(x, w, b, conv_param)
    dout = np.random.default_rng(4).normal(size=out.shape)
    buggy = backward(dout, cache)
    correct = styles.conv_backward_naive(dout, styles.conv_forward_naive(x, w, b, conv_param)[1])
    assert [a.shape for a in buggy] == [a.shape for a in correct]
    differing = [name for name, a, c in zip(("dx", "dw", "db"), buggy, correct, strict=True)
                 if not np.allclose(a, c, rtol=1e-6, atol=1e-9)]  # fmt: skip
    expected = {
        "flipped_kernel": ["dx"],
        "padding_cropped_wrong_side": ["dx"],
        "stride_ignored": ["dx", "dw"],
        "db_averaged_over_n": ["db"],
        "dw_first_sample_only": ["dw"],
    }[bug]
    assert differing == expected
    assert backward.__doc__ and len(backward.__doc__.splitlines()) == 1
