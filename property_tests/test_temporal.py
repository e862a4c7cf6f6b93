"""manual_bp.temporal: the temporal affine backward against ``jax.vjp`` and the
temporal softmax loss's ``dx`` against ``jax.grad`` of ``softmax_loss_value``, both
the same definitions run with ``xp=jax.numpy``; NumPy and jax forwards agree;
dtypes kept; inputs untouched; bad input named; cs231n students' styles agree and
their named bugs differ."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmarks.layer_styles import temporal as styles
from manual_bp import temporal
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

# jax compiles every primitive once per shape (eager: about 25 compilations, 1.5 s, for a
# new shape of the loss's grad), so the properties that run jax draw their shapes from
# a few that hold every edge (size 1 on each axis, non-square, a length-1 sequence, a
# batch of 1); the NumPy-only properties draw every size.
AFFINE_ORACLE_SHAPES = ((1, 1, 1, 1), (1, 4, 3, 2), (3, 1, 2, 4), (2, 3, 4, 1))
LOSS_ORACLE_SHAPES = ((1, 1, 1), (1, 4, 3), (3, 1, 5), (2, 3, 2))

# Every entry is a short sum (D, M, N*T <= 12 terms) or a softmax of V <= 6
# scores: its rounding is a few tens of eps of its magnitude, far below 1e-12 of
# it, and a wrong gradient is off by O(magnitude).
RTOL = 1e-12
FLOATS = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)
SCORES = st.floats(-60, 60, allow_nan=False, allow_subnormal=False)


def floats(dtype, shape, elements=FLOATS):
    return arrays(dtype, shape, elements=elements.map(dtype))


# --------------------------------------------------------------------------------------
# Temporal affine


@st.composite
def affine_cases(draw, dtype=np.float64, shapes=None):
    """``(x, w, b, dout)``, every size from 1 (batches of 1, one step, M = 1), or
    ``(N, T, D, M)`` from ``shapes``."""
    if shapes is None:
        N, T, D, M = (draw(st.integers(1, top)) for top in (3, 4, 4, 4))
    else:
        N, T, D, M = draw(st.sampled_from(shapes))
    return (
        draw(floats(dtype, (N, T, D))),
        draw(floats(dtype, (D, M))),
        draw(floats(dtype, (M,))),
        draw(floats(dtype, (N, T, M))),
    )


def affine_magnitudes(x, w, dout):
    """The backward run on absolute values: each gradient's sum of |terms|."""
    x, w, dout = np.abs(x), np.abs(w), np.abs(dout)
    return (
        np.einsum("ntm,dm->ntd", dout, w),
        np.einsum("ntd,ntm->dm", x, dout),
        dout.sum(axis=(0, 1)),
    )


@given(affine_cases(shapes=AFFINE_ORACLE_SHAPES))
@examples(1)
def test_affine_backward_equals_the_vjp_of_the_same_forward(case):
    x, w, b, dout = case
    _, cache = temporal.affine_forward(x, w, b)
    grads = temporal.affine_backward(dout, cache)
    _, vjp = jax.vjp(
        lambda x, w, b: temporal.affine_forward(x, w, b, xp=jnp)[0],
        *map(jnp.asarray, (x, w, b)),
    )
    oracle = vjp(jnp.asarray(dout))
    for name, grad, expected, magnitude, like in zip(
        ("dx", "dw", "db"), grads, oracle, affine_magnitudes(x, w, dout), (x, w, b), strict=True
    ):
        assert grad.shape == like.shape, name
        assert np.all(np.abs(grad - np.asarray(expected)) <= RTOL * (1 + magnitude)), name


@given(affine_cases(shapes=AFFINE_ORACLE_SHAPES))
@examples(0.5)
def test_affine_forward_numpy_equals_forward_jax(case):
    x, w, b, _ = case
    out, _ = temporal.affine_forward(x, w, b)
    out_jax, _ = temporal.affine_forward(*map(jnp.asarray, (x, w, b)), xp=jnp)
    magnitude = np.einsum("ntd,dm->ntm", np.abs(x), np.abs(w)) + np.abs(b)
    assert out.shape == (*x.shape[:2], w.shape[1])
    assert np.all(np.abs(out - np.asarray(out_jax)) <= RTOL * (1 + magnitude))
    # and it is x w + b at every step
    for t in range(x.shape[1]):
        assert np.all(np.abs(out[:, t] - (x[:, t] @ w + b)) <= RTOL * (1 + magnitude[:, t]))


@given(affine_cases(np.float32))
@examples(0.3)
def test_affine_float32_in_gives_float32_out(case):
    x, w, b, dout = case
    out, cache = temporal.affine_forward(x, w, b)
    assert out.dtype == np.float32
    assert all(grad.dtype == np.float32 for grad in temporal.affine_backward(dout, cache))


@given(affine_cases())
@examples(0.3)
def test_affine_leaves_the_callers_arrays_unchanged(case):
    copies = [a.copy() for a in case]
    x, w, b, dout = case
    _, cache = temporal.affine_forward(x, w, b)
    temporal.affine_backward(dout, cache)
    for before, after in zip(copies, case, strict=True):
        np.testing.assert_array_equal(before, after)


X = np.ones((2, 3, 4))
WEIGHTS = np.ones((4, 5))
BIAS = np.ones(5)


@pytest.mark.parametrize(
    ("x", "w", "b", "error", "words"),
    [
        (X[0], WEIGHTS, BIAS, ValueError, ["x:", "(N, T, D)", "(3, 4)"]),
        (X.astype(int), WEIGHTS, BIAS, TypeError, ["x:", "float", "int64"]),
        (X.tolist(), WEIGHTS, BIAS, TypeError, ["x:", "float", "list"]),
        (X, WEIGHTS.T, BIAS, ValueError, ["w:", "D = 4", "(5, 4)"]),
        (X, WEIGHTS[None], BIAS, ValueError, ["w:", "(D, M)", "(1, 4, 5)"]),
        (X, WEIGHTS.astype(np.float32), BIAS, TypeError, ["w:", "float64", "float32"]),
        (X, WEIGHTS, BIAS[None], ValueError, ["b:", "(M,)", "(1, 5)"]),  # would broadcast
        (X, WEIGHTS, BIAS[:4], ValueError, ["b:", "(5,)", "(4,)"]),
        (X, WEIGHTS, BIAS.astype(np.float32), TypeError, ["b:", "float64", "float32"]),
    ],
)
def test_bad_affine_input_is_named(x, w, b, error, words):
    with pytest.raises(error) as raised:
        temporal.affine_forward(x, w, b)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize(
    ("dout", "error", "words"),
    [
        (np.ones((2, 3, 4)), ValueError, ["dout:", "(2, 3, 5)", "(2, 3, 4)"]),
        (np.ones((3, 2, 5)), ValueError, ["dout:", "(2, 3, 5)", "(3, 2, 5)"]),
        (np.ones((6, 5)), ValueError, ["dout:", "(N, T, M)", "(6, 5)"]),
        (np.ones((2, 3, 5), np.float32), TypeError, ["dout:", "float64", "float32"]),
    ],
)
def test_bad_affine_dout_is_named(dout, error, words):
    _, cache = temporal.affine_forward(X, WEIGHTS, BIAS)
    with pytest.raises(error) as raised:
        temporal.affine_backward(dout, cache)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize("style", sorted(styles.STYLES["temporal_affine"]))
@given(case=affine_cases())
@examples(0.2)
def test_students_correct_affine_styles_agree(style, case):
    x, w, b, dout = case
    forward, backward = styles.STYLES["temporal_affine"][style]
    out, cache = forward(x, w, b)
    expected_out, our_cache = temporal.affine_forward(x, w, b)
    out_magnitude = np.einsum("ntd,dm->ntm", np.abs(x), np.abs(w)) + np.abs(b)
    assert np.all(np.abs(out - expected_out) <= RTOL * (1 + out_magnitude))
    for grad, expected, magnitude in zip(
        backward(dout, cache),
        temporal.affine_backward(dout, our_cache),
        affine_magnitudes(x, w, dout),
        strict=True,
    ):
        assert grad.shape == expected.shape
        assert np.all(np.abs(grad - expected) <= RTOL * (1 + magnitude))


@pytest.mark.parametrize("bug", sorted(styles.BUGS["temporal_affine"]))
def test_students_named_affine_bugs_differ(bug):
    rng = np.random.default_rng(0)
    x, w, b, dout = (rng.standard_normal(s) for s in ((3, 4, 5), (5, 2), (2,), (3, 4, 2)))
    forward, backward = styles.BUGS["temporal_affine"][bug]
    _, cache = forward(x, w, b)
    _, our_cache = temporal.affine_forward(x, w, b)
    grads = backward(dout, cache)
    expected = temporal.affine_backward(dout, our_cache)
    assert any(
        g.shape != e.shape or not np.allclose(g, e) for g, e in zip(grads, expected, strict=True)
    )


# --------------------------------------------------------------------------------------
# Temporal softmax loss


@st.composite
def loss_cases(draw, dtype=np.float64, scores=SCORES, shapes=None):
    """``(x, y, mask, normalize)``: all-false and all-true masks, V = 1, T = 1
    included; the labels at masked-out steps are sometimes out of range (-1).
    ``(N, T, V)`` from ``shapes`` if given."""
    if shapes is None:
        N, T, V = (draw(st.integers(1, top)) for top in (3, 4, 6))
    else:
        N, T, V = draw(st.sampled_from(shapes))
    x = draw(floats(dtype, (N, T, V), scores))
    y = draw(arrays(np.int64, (N, T), elements=st.integers(0, V - 1)))
    mask = draw(arrays(np.bool_, (N, T)))
    if draw(st.booleans()):
        y = np.where(mask, y, -1)  # a padding label where nothing reads it
    return x, y, mask, draw(st.sampled_from(temporal.NORMALIZATIONS))


def normaliser(mask, normalize):
    return mask.shape[0] if normalize == "batch" else max(int(mask.sum()), 1)


@given(loss_cases(shapes=LOSS_ORACLE_SHAPES))
@examples(1)
def test_loss_dx_equals_the_grad_of_the_same_loss_value(case):
    """|dx| <= 2 mask / K entrywise, so the bound is relative to 1 + that."""
    x, y, mask, normalize = case
    _, dx = temporal.softmax_loss(x, y, mask, normalize=normalize)
    dx_jax = jax.grad(
        lambda x: temporal.softmax_loss_value(x, y, mask, normalize=normalize, xp=jnp)
    )(jnp.asarray(x))
    assert dx.shape == x.shape
    magnitude = 2 * mask[..., None] / normaliser(mask, normalize)
    assert np.all(np.abs(dx - np.asarray(dx_jax)) <= RTOL * (1 + magnitude))


@given(loss_cases(shapes=LOSS_ORACLE_SHAPES))
@examples(0.5)
def test_loss_numpy_equals_loss_jax_and_the_definition(case):
    """Both against each other and against a plain statement of the definition.

    Each log p rounds within a few eps of ``|x - m| + log sum exp``, at most
    ``2 max|x| + log V``; the loss sums N*T of them over K."""
    x, y, mask, normalize = case
    loss, _ = temporal.softmax_loss(x, y, mask, normalize=normalize)
    value = temporal.softmax_loss_value(x, y, mask, normalize=normalize)
    value_jax = temporal.softmax_loss_value(jnp.asarray(x), y, mask, normalize=normalize, xp=jnp)
    loss_jax, _ = temporal.softmax_loss(x, y, mask, normalize=normalize, xp=jnp)
    N, T, V = x.shape
    shifted = x - x.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, np.where(mask, y, 0)[..., None], -1)[..., 0]
    definition = -np.sum(picked[mask]) / normaliser(mask, normalize)
    bound = RTOL * (1 + N * T * (2 * np.abs(x).max() + np.log(V) + 1) / normaliser(mask, normalize))
    assert loss == value  # the same code
    for other in (value_jax, loss_jax, definition):
        assert abs(loss - float(other)) <= bound


@given(loss_cases(np.float32))
@examples(0.3)
def test_loss_float32_in_gives_float32_out(case):
    x, y, mask, normalize = case
    loss, dx = temporal.softmax_loss(x, y, mask, normalize=normalize)
    value = temporal.softmax_loss_value(x, y, mask, normalize=normalize)
    assert np.asarray(loss).dtype == np.float32 and dx.dtype == np.float32
    assert np.asarray(value).dtype == np.float32


@given(loss_cases())
@examples(0.3)
def test_loss_leaves_the_callers_arrays_unchanged(case):
    x, y, mask, normalize = case
    copies = [a.copy() for a in (x, y, mask)]
    temporal.softmax_loss(x, y, mask, normalize=normalize)
    temporal.softmax_loss_value(x, y, mask, normalize=normalize)
    for before, after in zip(copies, (x, y, mask), strict=True):
        np.testing.assert_array_equal(before, after)
        assert before.dtype == after.dtype


@given(loss_cases())
@examples(0.3)
def test_a_mask_of_zeros_and_ones_in_any_dtype_means_the_same(case):
    x, y, mask, normalize = case
    loss, dx = temporal.softmax_loss(x, y, mask, normalize=normalize)
    for as_numbers in (mask.astype(np.int64), mask.astype(np.uint8), mask.astype(np.float32)):
        other_loss, other_dx = temporal.softmax_loss(x, y, as_numbers, normalize=normalize)
        assert other_loss == loss
        np.testing.assert_array_equal(other_dx, dx)


@given(loss_cases())
@examples(0.3)
def test_the_two_normalisations_differ_by_the_factor_n_over_k(case):
    x, y, mask, _ = case
    batch_loss, batch_dx = temporal.softmax_loss(x, y, mask)
    token_loss, token_dx = temporal.softmax_loss(x, y, mask, normalize="tokens")
    scale = x.shape[0] / normaliser(mask, "tokens")
    assert abs(token_loss - batch_loss * scale) <= 1e-12 * (1 + abs(token_loss))
    np.testing.assert_allclose(token_dx, batch_dx * scale, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("normalize", temporal.NORMALIZATIONS)
def test_an_all_false_mask_gives_zero_loss_and_zero_gradient(normalize):
    x = np.array([[[1.0, 2.0], [3.0, -1.0]]])
    mask = np.zeros((1, 2), bool)
    loss, dx = temporal.softmax_loss(x, np.array([[0, 1]]), mask, normalize=normalize)
    assert loss == 0 and not np.signbit(loss)
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    grad = jax.grad(
        lambda x: temporal.softmax_loss_value(
            x, np.array([[0, 1]]), mask, normalize=normalize, xp=jnp
        )
    )(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(grad), np.zeros_like(x))


def test_extreme_scores_stay_finite():
    """A label with probability e^-10000 costs 10000 + log 2 (never log 0 = inf);
    the scores e^10000 would overflow unshifted."""
    x = np.array([[[-1e4, 0.0, 0.0], [1e4, 0.0, 0.0]]])
    for dtype in (np.float64, np.float32):
        loss, dx = temporal.softmax_loss(x.astype(dtype), np.array([[0, 0]]), np.ones((1, 2), bool))
        assert np.isfinite(loss) and np.all(np.isfinite(dx))
        assert abs(loss - (1e4 + np.log(2))) <= 1e-3 * 1e4 * np.finfo(dtype).eps / 1e-16
        np.testing.assert_allclose(dx[0, 0], [-1, 0.5, 0.5], atol=1e-6)
        np.testing.assert_allclose(dx[0, 1], [0, 0, 0], atol=1e-6)


SCORES_X = np.zeros((2, 3, 4))
LABELS = np.zeros((2, 3), np.int64)
MASK = np.ones((2, 3), bool)


@pytest.mark.parametrize(
    ("x", "y", "mask", "normalize", "error", "words"),
    [
        (SCORES_X, LABELS, MASK, "mean", ValueError, ["normalize:", "'batch'", "'mean'"]),
        (SCORES_X, LABELS, MASK, 1, TypeError, ["normalize:", "'tokens'", "int"]),
        (SCORES_X[0], LABELS, MASK, "batch", ValueError, ["x:", "(N, T, V)", "(3, 4)"]),
        (SCORES_X.astype(int), LABELS, MASK, "batch", TypeError, ["x:", "float", "int64"]),
        (SCORES_X[:0], LABELS[:0], MASK[:0], "batch", ValueError, ["x:", "N >= 1", "(0, 3, 4)"]),
        (SCORES_X[..., :0], LABELS, MASK, "batch", ValueError, ["x:", "V >= 1", "(2, 3, 0)"]),
        (SCORES_X, LABELS.astype(float), MASK, "batch", TypeError, ["y:", "integer", "float64"]),
        (SCORES_X, LABELS.T, MASK, "batch", ValueError, ["y:", "(2, 3)", "(3, 2)"]),
        (SCORES_X, LABELS + 4, MASK, "batch", ValueError, ["y:", "[0, 4)", "got 4", "y[0, 0]"]),
        (SCORES_X, LABELS - 1, MASK, "tokens", ValueError, ["y:", "[0, 4)", "got -1"]),
        (SCORES_X, LABELS, MASK.T, "batch", ValueError, ["mask:", "(2, 3)", "(3, 2)"]),
        (SCORES_X, LABELS, MASK[0], "batch", ValueError, ["mask:", "(2, 3)", "(3,)"]),  # broadcasts
        (
            SCORES_X,
            LABELS,
            MASK * 0.5,
            "batch",
            ValueError,
            ["mask:", "0 or 1", "0.5", "mask[0, 0]"],
        ),
        (SCORES_X, LABELS, MASK * 2, "batch", ValueError, ["mask:", "0 or 1", "got 2"]),
        (SCORES_X, LABELS, MASK * np.nan, "batch", ValueError, ["mask:", "0 or 1", "nan"]),
        (SCORES_X, LABELS, MASK.astype(str), "batch", TypeError, ["mask:", "bools", "<U"]),
    ],
)
def test_bad_loss_input_is_named(x, y, mask, normalize, error, words):
    for function in (temporal.softmax_loss, temporal.softmax_loss_value):
        with pytest.raises(error) as raised:
            function(x, y, mask, normalize=normalize)
        assert all(word in str(raised.value) for word in words), str(raised.value)


def test_a_label_out_of_range_under_a_false_mask_is_never_read():
    y = np.array([[0, -100, 7]])
    mask = np.array([[True, False, False]])
    x = np.zeros((1, 3, 4))
    loss, dx = temporal.softmax_loss(x, y, mask)
    assert abs(loss - np.log(4)) <= 1e-15
    np.testing.assert_array_equal(dx[0, 1:], 0)


def test_the_derivation_reads_in_88_columns():
    assert temporal.DERIVATION.strip()
    assert max(map(len, temporal.DERIVATION.splitlines())) <= 88


@pytest.mark.parametrize("style", sorted(styles.STYLES["temporal_softmax_loss"]))
@given(case=loss_cases(scores=FLOATS))
@examples(0.2)
def test_students_correct_loss_styles_agree(style, case):
    """cs231n's style takes log of the probabilities: moderate scores only."""
    x, y, mask, _ = case
    y = np.where(mask, y, 0)  # students index with every label
    loss, dx = styles.STYLES["temporal_softmax_loss"][style](x, y, mask)
    expected_loss, expected_dx = temporal.softmax_loss(x, y, mask)
    _, T, V = x.shape
    assert abs(loss - expected_loss) <= RTOL * (1 + T * (2 * 10 + np.log(V) + 1))
    assert np.all(np.abs(dx - expected_dx) <= RTOL)


@pytest.mark.parametrize("bug", sorted(styles.BUGS["temporal_softmax_loss"]))
def test_students_named_loss_bugs_differ(bug):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5))
    y = rng.integers(0, 5, (3, 4))
    mask = np.ones((3, 4), bool)
    mask[0, 2:] = mask[2, 1:] = False
    loss, dx = styles.BUGS["temporal_softmax_loss"][bug](x, y, mask)
    expected_loss, expected_dx = temporal.softmax_loss(x, y, mask)
    assert not np.isclose(loss, expected_loss) or not np.allclose(dx, expected_dx)
