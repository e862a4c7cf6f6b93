"""The CNN walkthrough (examples/cnn_walkthrough.py) and its data, ``manual_bp.data.stripes``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp.data import STRIPE_CLASSES, stripes
from property_tests.budget import examples

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "cnn_walkthrough.py"


def load_script() -> ModuleType:
    """The example, read by path (``examples/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("cnn_walkthrough", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the dataclass looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def walkthrough() -> ModuleType:
    return load_script()


# --- the data set -----------------------------------------------------------------------


@examples(0.3)
@given(st.integers(1, 120), st.integers(3, 12), st.integers(0, 2**32 - 1))
def test_stripes_shapes_dtype_and_balanced_labels(m, size, seed):
    X, labels = stripes(m, seed=seed, size=size)
    assert X.shape == (m, 1, size, size) and X.dtype == np.float64
    assert np.all(np.isfinite(X))
    assert labels.shape == (m,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=4)
    assert counts.max() - counts.min() <= 1, counts
    np.testing.assert_array_equal(labels, np.arange(m) % 4)


@examples(0.3)
@given(st.integers(1, 60), st.integers(3, 12), st.integers(0, 2**32 - 1))
def test_without_noise_each_image_is_one_bar_of_its_class(m, size, seed):
    X, labels = stripes(m, noise=0.0, seed=seed, size=size)
    length = (size + 1) // 2 + 1
    assert set(np.unique(X)) <= {0.0, 1.0}
    for image, label in zip(X[:, 0], labels, strict=True):
        rows, cols = np.nonzero(image)  # row-major: rows ascending
        assert len(rows) == length, (STRIPE_CLASSES[label], image)
        step = np.arange(length)
        expected = {
            0: (np.full(length, rows[0]), cols[0] + step),  # horizontal
            1: (rows[0] + step, np.full(length, cols[0])),  # vertical
            2: (rows[0] + step, cols[0] + step),  # diagonal, down to the right
            3: (rows[0] + step, cols[0] - step),  # anti-diagonal, down to the left
        }[int(label)]
        np.testing.assert_array_equal(rows, expected[0])
        np.testing.assert_array_equal(cols, expected[1])


def test_stripes_the_same_seed_gives_the_same_images_and_another_seed_others():
    first, again, other = (stripes(40, seed=seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_stripes_bars_move_and_noise_has_its_standard_deviation():
    X, _ = stripes(400, noise=0.0, seed=0)
    assert len({image.tobytes() for image in X[::4, 0]}) > 10  # horizontal bars at many places
    noisy, _ = stripes(400, noise=0.5, seed=0)
    assert abs(np.std(noisy - X) - 0.5) < 0.02  # the same positions: the same draws first


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"m": 0}, ValueError, "m: expected an int >= 1, got 0"),
        ({"m": 2.5}, TypeError, "m: expected an int >= 1"),
        ({"size": 2}, ValueError, "size: expected an int >= 3, got 2"),
        ({"size": True}, TypeError, "size: expected an int >= 3, got bool True"),
        ({"noise": -0.1}, ValueError, "noise: expected a finite float >= 0, got -0.1"),
        ({"noise": "0.1"}, TypeError, "noise: expected a finite float >= 0, got str '0.1'"),
        ({"seed": -1}, ValueError, "seed: expected an int >= 0, got -1"),
    ],
)
def test_stripes_bad_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        stripes(**{"m": 10, **kwargs})


# --- the walkthrough --------------------------------------------------------------------


def test_hand_gradients_match_jax_grad_of_the_same_forward(walkthrough):
    X, y = stripes(24, seed=5)
    params = walkthrough.init_params(np.random.default_rng(5))
    worst = walkthrough.gradient_check(params, X, y)
    assert set(worst) == {"w1", "b1", "W2", "b2"}
    assert max(worst.values()) < 1e-13, worst


def test_sgd_steps_lower_the_loss(walkthrough):
    X, y = stripes(64, seed=2)
    params = walkthrough.init_params(np.random.default_rng(2))
    first, _ = walkthrough.loss_and_gradients(params, X, y)
    for _ in range(20):
        _, grads = walkthrough.loss_and_gradients(params, X, y)
        for name in params:
            params[name] -= 0.3 * grads[name]
    assert walkthrough.loss_and_gradients(params, X, y)[0] < 0.8 * first


def test_the_script_trains_checks_and_draws(walkthrough, tmp_path, capsys):
    out = tmp_path / "filters.png"
    run = walkthrough.main(["--epochs", "3", "--seed", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert [epoch for epoch, _ in run.gradient_checks] == [3]
    assert run.worst_difference < 1e-13, run.gradient_checks
    assert len(run.train_accuracy) == 3 and run.train_accuracy[-1] > 0.6  # chance: 0.25
    assert run.test_accuracy > 0.6
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "gradient check vs jax.grad" in printed and "epoch  3" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "argument --epochs: expected an int >= 1, got 0"),
        (["--epochs", "two"], "argument --epochs: expected an int >= 1, got 'two'"),
        (["--seed", "-1"], "argument --seed: expected an int >= 0, got -1"),
        (["--out", "filters.svg"], "argument --out: expected a path ending in .png"),
        (["--out", "/no/such/folder/f.png"], "argument --out: expected an existing folder"),
        (["--learning-rate", "1"], "unrecognized arguments: --learning-rate"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(walkthrough, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        walkthrough.main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
