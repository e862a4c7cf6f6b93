"""manual_bp.embedding: the word embedding's hand-written backward against ``jax.vjp``
of the same forward run with ``xp=jax.numpy``; NumPy and jax forwards agree; dtypes
kept; inputs untouched; bad input named; cs231n students' styles agree and their
named bug differs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmarks.layer_styles import temporal as styles
from manual_bp import embedding
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

# A sum of at most N*T <= 12 terms rounds by at most 12 eps of the sum of their
# magnitudes; 1e-12 leaves room, and any wrong gradient is off by O(magnitude).
RTOL = 1e-12
FLOATS = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)


@st.composite
def cases(draw, dtype=np.float64):
    """``(x, W, dout)``: V = 1 (every index repeated) and batches of 1 included."""
    N = draw(st.integers(1, 3))
    T = draw(st.integers(1, 4))
    V = draw(st.integers(1, 6))
    D = draw(st.integers(1, 4))
    index_dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8]))
    x = draw(arrays(index_dtype, (N, T), elements=st.integers(0, V - 1)))
    W = draw(arrays(dtype, (V, D), elements=FLOATS.map(dtype)))
    dout = draw(arrays(dtype, (N, T, D), elements=FLOATS.map(dtype)))
    return x, W, dout


def scatter_add(x, dout, V):
    """Every occurrence adds its row: np.add.at, the independent statement of dW."""
    dW = np.zeros((V, dout.shape[-1]), dout.dtype)
    np.add.at(dW, x, dout)
    return dW


@given(cases())
@examples(1)
def test_backward_equals_the_vjp_of_the_same_forward(case):
    x, W, dout = case
    _, cache = embedding.forward(x, W)
    dW = embedding.backward(dout, cache)
    _, vjp = jax.vjp(lambda W: embedding.forward(x, W, xp=jnp)[0], jnp.asarray(W))
    (dW_jax,) = vjp(jnp.asarray(dout))
    magnitude = scatter_add(x, np.abs(dout), W.shape[0])
    assert dW.shape == W.shape
    assert np.all(np.abs(dW - np.asarray(dW_jax)) <= RTOL * (1 + magnitude))


@given(cases())
@examples(0.5)
def test_forward_numpy_equals_forward_jax(case):
    """A gather: both are exact copies of W's rows."""
    x, W, _ = case
    out, _ = embedding.forward(x, W)
    out_jax, _ = embedding.forward(x, jnp.asarray(W), xp=jnp)
    assert out.shape == (*x.shape, W.shape[1])
    np.testing.assert_array_equal(out, np.asarray(out_jax))
    np.testing.assert_array_equal(out, W[x])


@given(cases(np.float32))
@examples(0.3)
def test_float32_in_gives_float32_out(case):
    x, W, dout = case
    out, cache = embedding.forward(x, W)
    dW = embedding.backward(dout, cache)
    assert out.dtype == np.float32 and dW.dtype == np.float32
    np.testing.assert_allclose(dW, scatter_add(x, dout, W.shape[0]), rtol=1e-5, atol=1e-4)


@given(cases())
@examples(0.3)
def test_the_callers_arrays_are_unchanged(case):
    x, W, dout = case
    copies = [a.copy() for a in case]
    _, cache = embedding.forward(x, W)
    embedding.backward(dout, cache)
    for before, after in zip(copies, (x, W, dout), strict=True):
        np.testing.assert_array_equal(before, after)
        assert before.dtype == after.dtype


def test_a_word_seen_k_times_gets_the_sum_of_its_k_rows():
    x = np.array([[2, 2, 0], [2, 1, 1]])
    dout = np.arange(1.0, 19.0).reshape(2, 3, 3)
    _, cache = embedding.forward(x, np.zeros((4, 3)))
    dW = embedding.backward(dout, cache)
    np.testing.assert_array_equal(dW[2], dout[0, 0] + dout[0, 1] + dout[1, 0])
    np.testing.assert_array_equal(dW[1], dout[1, 1] + dout[1, 2])
    np.testing.assert_array_equal(dW[3], np.zeros(3))  # never seen


def test_a_narrow_index_dtype_does_not_wrap_the_flat_index():
    """v * D in uint8 would wrap (99 * 4 = 396 > 255) and credit the wrong word."""
    x = np.array([[99, 1]], dtype=np.uint8)
    dout = np.arange(1.0, 9.0).reshape(1, 2, 4)
    _, cache = embedding.forward(x, np.zeros((100, 4)))
    np.testing.assert_array_equal(embedding.backward(dout, cache), scatter_add(x, dout, 100))


X = np.array([[0, 1], [2, 1]])
W = np.ones((3, 2))
DOUT = np.ones((2, 2, 2))


@pytest.mark.parametrize(
    ("x", "W", "error", "words"),
    [
        (X.astype(float), W, TypeError, ["x:", "integer", "float64"]),
        (X.astype(bool), W, TypeError, ["x:", "integer", "bool"]),
        (np.array([[0, 3]]), W, ValueError, ["x:", "[0, 3)", "got 3", "x[0, 1]"]),
        (np.array([[0], [-1]]), W, ValueError, ["x:", "[0, 3)", "got -1", "x[1, 0]"]),
        (np.array([0, 1]), W, ValueError, ["x:", "(N, T)", "(2,)"]),
        (X[None], W, ValueError, ["x:", "(N, T)", "(1, 2, 2)"]),
        (X, W.astype(int), TypeError, ["W:", "float", "int64"]),
        (X, W.tolist(), TypeError, ["W:", "float", "list"]),
        (X, W[0], ValueError, ["W:", "(V, D)", "(2,)"]),
    ],
)
def test_bad_forward_input_is_named(x, W, error, words):
    with pytest.raises(error) as raised:
        embedding.forward(x, W)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize(
    ("dout", "error", "words"),
    [
        (DOUT[:, :, :1], ValueError, ["dout:", "(2, 2, 2)", "(2, 2, 1)"]),
        (DOUT.transpose(1, 0, 2)[:1], ValueError, ["dout:", "(2, 2, 2)", "(1, 2, 2)"]),
        (DOUT[0], ValueError, ["dout:", "(N, T, D)", "(2, 2)"]),
        (DOUT.astype(np.float32), TypeError, ["dout:", "float64", "float32"]),
        (DOUT.astype(int), TypeError, ["dout:", "float", "int64"]),
    ],
)
def test_bad_dout_is_named(dout, error, words):
    _, cache = embedding.forward(X, W)
    with pytest.raises(error) as raised:
        embedding.backward(dout, cache)
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_the_derivation_reads_in_88_columns():
    assert embedding.DERIVATION.strip()
    assert max(map(len, embedding.DERIVATION.splitlines())) <= 88


@pytest.mark.parametrize("style", sorted(styles.STYLES["word_embedding"]))
@given(case=cases())
@examples(0.2)
def test_students_correct_styles_agree(style, case):
    x, W, dout = case
    forward, backward = styles.STYLES["word_embedding"][style]
    out, cache = forward(x.astype(np.int64), W)
    expected_out, our_cache = embedding.forward(x, W)
    expected_dW = embedding.backward(dout, our_cache)
    np.testing.assert_array_equal(out, expected_out)
    magnitude = scatter_add(x, np.abs(dout), W.shape[0])
    assert np.all(np.abs(backward(dout, cache) - expected_dW) <= RTOL * (1 + magnitude))


@pytest.mark.parametrize("bug", sorted(styles.BUGS["word_embedding"]))
def test_students_named_bugs_differ(bug):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (3, 4))  # 12 words out of 3: repeats
    W = rng.standard_normal((3, 5))
    dout = rng.standard_normal((3, 4, 5))
    forward, backward = styles.BUGS["word_embedding"][bug]
    _, cache = forward(x, W)
    _, our_cache = embedding.forward(x, W)
    assert not np.allclose(backward(dout, cache), embedding.backward(dout, our_cache))
