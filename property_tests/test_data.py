"""The built-in 2-D data sets: shapes, labels, balance, geometry, determinism."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp.data import DATASETS, blobs, circles, spirals, two_moons, xor
from property_tests.budget import examples

BINARY = ["moons", "circles", "xor", "spirals"]
BALANCED = ["moons", "circles", "spirals", "blobs"]  # xor draws its corners at random


def labels(Y: np.ndarray) -> np.ndarray:
    """The class of each column: the label for one row, the one-hot index for several."""
    return Y[0].astype(int) if Y.shape[0] == 1 else np.argmax(Y, axis=0)


@examples(0.3)
@given(st.sampled_from(sorted(DATASETS)), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_shapes_dtype_and_valid_labels(name, m, seed):
    X, Y = DATASETS[name](m, seed=seed)
    assert X.shape == (2, m) and X.dtype == np.float64 and np.all(np.isfinite(X))
    assert Y.dtype == np.float64
    assert set(np.unique(Y)) <= {0.0, 1.0}
    if name == "blobs":
        assert Y.shape == (3, m)
        np.testing.assert_array_equal(Y.sum(axis=0), np.ones(m))  # one-hot columns
    else:
        assert Y.shape == (1, m)


@examples(0.3)
@given(st.sampled_from(BALANCED), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_classes_are_balanced_up_to_one_sample(name, m, seed):
    Y = DATASETS[name](m, seed=seed)[1]
    counts = np.bincount(labels(Y), minlength=Y.shape[0] if Y.shape[0] > 1 else 2)
    assert counts.max() - counts.min() <= 1, counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_classes_are_balanced_ish(seed):
    # Binomial(200, 1/2) has standard deviation ~7; 70 is more than 4 of them away from 100.
    counts = np.bincount(labels(xor(200, seed=seed)[1]), minlength=2)
    assert counts.min() >= 70, counts


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(name):
    first, again, other = (DATASETS[name](50, seed=seed) for seed in (4, 4, 5))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_moons_and_xor_keep_their_exact_values():
    # The training tests' accuracy figures were measured on exactly these data.
    X, Y = two_moons(4, seed=0)
    np.testing.assert_allclose(
        X[:, 0], [-0.47069026225469196, 0.8384763715021923], rtol=1e-15, atol=0
    )
    np.testing.assert_array_equal(Y, [[0.0, 0.0, 1.0, 1.0]])
    X, Y = xor(4, seed=0)
    np.testing.assert_allclose(
        X[:, 0], [0.9464330626838889, -1.0703735235806993], rtol=1e-15, atol=0
    )
    np.testing.assert_array_equal(Y, [[1.0, 1.0, 1.0, 0.0]])


def test_without_noise_each_data_set_lies_on_its_shape():
    m = 101
    X, Y = circles(m, noise=0.0, seed=0)
    np.testing.assert_allclose(np.hypot(*X), np.where(Y[0] == 1, 0.5, 1.0), rtol=1e-12)

    X, Y = spirals(m, noise=0.0, seed=0)
    radius = np.hypot(*X)
    # radius = 2 t / (3 pi) with t the turning angle; class 1 is turned by pi.
    turn = 3 * np.pi * radius / 2
    expected = np.exp(1j * (turn + np.pi * Y[0]))
    np.testing.assert_allclose((X[0] + 1j * X[1]) / radius, expected, atol=1e-12)
    assert radius.max() <= 2

    X, Y = blobs(100, noise=0.0, seed=0, classes=4)
    assert Y.shape == (4, 100)
    for k in range(4):
        centre = 2.0 * np.array([np.cos(np.pi * k / 2), np.sin(np.pi * k / 2)])
        np.testing.assert_allclose(X[:, Y[k] == 1], centre[:, None] + np.zeros((2, 25)), atol=1e-12)

    X, Y = xor(m, noise=0.0, seed=0)
    assert set(np.unique(X)) == {-1.0, 1.0}
    np.testing.assert_array_equal(Y[0], X[0] != X[1])

    X, Y = two_moons(m, noise=0.0, seed=0)
    upper, lower = X[:, Y[0] == 0], X[:, Y[0] == 1]
    np.testing.assert_allclose(np.hypot(*upper), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.hypot(lower[0] - 1, lower[1] - 0.5), 1.0, rtol=1e-12)
    assert upper[1].min() >= 0 and lower[1].max() <= 0.5


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"m": 0}, ValueError, "m: expected an int >= 1, got 0"),
        ({"m": 2.5}, TypeError, "m: expected an int >= 1"),
        ({"noise": -0.1}, ValueError, "noise: expected a finite float >= 0, got -0.1"),
        ({"noise": float("nan")}, ValueError, "noise: expected a finite float >= 0, got nan"),
        ({"noise": "0.1"}, TypeError, "noise: expected a finite float >= 0, got str '0.1'"),
        ({"seed": -1}, ValueError, "seed: expected an int >= 0, got -1"),
    ],
)
def test_bad_arguments_name_the_argument(name, kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        DATASETS[name](**{"m": 10, **kwargs})


@pytest.mark.parametrize("classes, error", [(1, ValueError), (True, TypeError), (2.0, TypeError)])
def test_blobs_needs_two_or_more_classes(classes, error):
    with pytest.raises(error, match="classes: expected an int >= 2"):
        blobs(10, classes=classes)
