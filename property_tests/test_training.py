"""SGD training on the built-in data sets."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from manual_bp import DNN
from manual_bp.data import DATASETS
from property_tests.budget import examples

SEED_LAYER_SIZES = [2, 3, 3, 1]


# XOR with these settings reached 100% in 100 of 100 seed pairs (measured);
# two moons gets stuck near 90% for about 1 seed in 7 with a 3-3 sigmoid
# network, so it is checked on a fixed seed only.
@examples(0.05)
@given(st.sampled_from(["xor"]), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
@example("moons", 0, 0)
def test_fit_on_the_seed_architecture_reaches_95_percent(dataset, data_seed, init_seed):
    X, Y = DATASETS[dataset](200, noise=0.1, seed=data_seed)
    net = DNN(SEED_LAYER_SIZES, seed=init_seed)
    history = net.fit(X, Y, epochs=300, learning_rate=1.0, batch_size=32)
    accuracy = np.mean((net.predict(X) > 0.5) == (Y > 0.5))
    assert accuracy >= 0.95, (dataset, data_seed, init_seed, accuracy)
    assert len(history) == 300 and history[-1] < history[0]
    assert history[-1] == pytest.approx(net.loss(X, Y), rel=1e-12)


def test_fit_is_reproducible_from_the_seed():
    X, Y = DATASETS["moons"](64, seed=3)
    runs = [DNN(SEED_LAYER_SIZES, seed=7).fit(X, Y, 5, 0.5, batch_size=10) for _ in range(2)]
    assert runs[0] == runs[1]


def test_full_batch_fit_equals_repeated_steps():
    X, Y = DATASETS["xor"](40, seed=1)
    stepped, fitted = DNN(SEED_LAYER_SIZES, seed=2), DNN(SEED_LAYER_SIZES, seed=2)
    for _ in range(3):
        out, cache = stepped.forward(X)
        stepped.step(stepped.compute_gradients(out, cache, Y), 0.3)
    fitted.fit(X, Y, epochs=3, learning_rate=0.3)
    np.testing.assert_equal(stepped.params, fitted.params)


def test_float32_training_stays_float32():
    X, Y = DATASETS["moons"](50, seed=0)
    net = DNN(SEED_LAYER_SIZES, seed=0, dtype="float32")
    net.fit(X, Y, epochs=3, learning_rate=0.5, batch_size=16)
    assert all(value.dtype == np.float32 for value in net.params.values())


def test_divergence_names_the_epoch_and_keeps_the_last_finite_params():
    X = np.array([[1e3, -1e3, 2e3]])
    Y = np.array([[1.0, -1.0, 3.0]])
    net = DNN([1, 4, 1], ["identity", "identity"], "mse", seed=0)
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(FloatingPointError, match=r"epoch \d+") as caught,
    ):
        net.fit(X, Y, epochs=200, learning_rate=10.0)
    assert all(np.all(np.isfinite(value)) for value in net.params.values())
    epoch = caught.value.epoch
    assert len(caught.value.history) == epoch - 1
    replay = DNN([1, 4, 1], ["identity", "identity"], "mse", seed=0)
    if epoch > 1:
        replay.fit(X, Y, epochs=epoch - 1, learning_rate=10.0)
    np.testing.assert_equal(replay.params, net.params)


@pytest.mark.parametrize(("m", "batch_size"), [(10, 3), (10, 5), (10, 10), (10, 11), (1, 1)])
def test_minibatches_partition_the_columns(m, batch_size):
    from manual_bp.training import minibatch_indices

    batches = list(minibatch_indices(m, batch_size, np.random.default_rng(0)))
    columns = np.concatenate([np.arange(m)[b] for b in batches])
    assert sorted(columns.tolist()) == list(range(m))
    sizes = [len(np.arange(m)[b]) for b in batches]
    assert sizes == [min(batch_size, m - start) for start in range(0, m, batch_size)]


def test_a_batch_as_large_as_the_data_is_the_full_batch():
    X, Y = DATASETS["xor"](12, seed=0)
    histories = [DNN(SEED_LAYER_SIZES, seed=1).fit(X, Y, 3, 0.5, batch_size=b) for b in (None, 12)]
    assert histories[0] == histories[1]
