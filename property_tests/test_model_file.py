"""``net.save(path)`` / ``DNN.load(path)``: a plain .npz, exact round trip, validated loading."""

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import DNN
from manual_bp.data import two_moons
from manual_bp.model_file import FORMAT_VERSION, ModelFileError
from manual_bp.optimizers import Adam, Momentum, RMSProp
from manual_bp_reference.strategies import networks
from property_tests.budget import examples


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bytes: tells -0.0 from 0.0 and one NaN payload from another."""
    return np.ascontiguousarray(array).view(np.uint8)


@examples(0.3)
@given(
    networks(max_depth=4, max_width=8, max_batch=2, regularization=True),
    st.none() | st.integers(0, 2**63 - 1),
)
def test_a_saved_network_loads_back_bit_for_bit(case, seed):
    dropout = list(case.dropout[:-1]) or None
    net = DNN(case.layer_sizes, case.activations, case.loss, seed=seed, dtype=case.dtype,
              l2=case.l2, dropout=dropout)  # fmt: skip
    net.params = case.params  # subnormals, zeros, -0.0, large values: Hypothesis's
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        net.save(path)
        loaded = DNN.load(path)
    assert repr(loaded) == repr(net)
    assert (loaded.layer_sizes, loaded.activations, loaded.loss_name, loaded.seed) == (
        net.layer_sizes, net.activations, net.loss_name, net.seed,
    )  # fmt: skip
    assert loaded.dtype == net.dtype
    assert (loaded.l2, loaded.dropout) == (net.l2, net.dropout)
    assert list(loaded.params) == list(net.params)
    for key, value in net.params.items():
        assert loaded.params[key].dtype == value.dtype, key
        assert np.array_equal(bits(loaded.params[key]), bits(value)), key
        assert not loaded.params[key].flags.writeable, key


def test_the_file_is_a_plain_npz_without_pickles(tmp_path):
    net = DNN([2, 3, 1], ["tanh", "sigmoid"], seed=3, dtype="float32")
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    architecture = ["format_version", "layer_sizes", "activations", "loss", "dtype", "seed"]
    training = ["l2", "dropout", "rng_state", "optimizer", "optimizer_t"]
    assert sorted(entries) == sorted([*architecture, *training, "W1", "B1", "W2", "B2"])
    assert int(entries["format_version"]) == FORMAT_VERSION
    assert entries["layer_sizes"].tolist() == [2, 3, 1]
    assert entries["activations"].tolist() == ["tanh", "sigmoid"]
    assert str(entries["loss"]) == "binary_cross_entropy" and str(entries["dtype"]) == "float32"
    assert int(entries["seed"]) == 3 and entries["W1"].dtype == np.float32


def test_a_loaded_network_trains_and_predicts_like_the_saved_one(tmp_path):
    X = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, -0.5]])
    net = DNN([2, 3, 1], seed=0)
    net.save(tmp_path / "net.npz")
    loaded = DNN.load(tmp_path / "net.npz")
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    out, cache = net.forward(X)
    with pytest.raises(ValueError, match="another network"):  # a new network, a new identity
        loaded.compute_gradients(out, cache, np.array([[1.0, 0.0, 1.0]]))


def rewrite(source: Path, target: Path, change) -> Path:
    with np.load(source, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    change(entries)
    with target.open("wb") as file:
        np.savez(file, **entries)
    return target


def _set(key, value):
    return lambda entries: entries.__setitem__(key, value)


def _delete(key):
    return lambda entries: entries.pop(key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set("format_version", np.array(FORMAT_VERSION + 1)),
            rf"format version {FORMAT_VERSION + 1} is newer than",
        ),
        (_delete("format_version"), r"no 'format_version' entry, not a model written by DNN"),
        (_delete("B2"), r"missing \['B2'\], extra \[\]"),
        (_set("W3", np.zeros((1, 1))), r"missing \[\], extra \['W3'\]"),
        (_delete("loss"), r"missing entries \['loss'\]"),
        (_set("W1", np.zeros((2, 3))), r"params\['W1'\]: expected shape \(3, 2\), got \(2, 3\)"),
        (_set("B1", np.full((3, 1), np.nan)), r"params\['B1'\]: expected finite values"),
        (_set("W2", np.ones((1, 3), np.float32)), r"params\['W2'\]: expected dtype float64"),
        (_set("loss", np.array("cross_entropy")), r"loss: cross_entropy needs an output"),
        (_set("layer_sizes", np.array([2.0, 3.0, 1.0])), r"'layer_sizes' should be a 1-D integ"),
        (_set("activations", np.array(["relu", "swish"])), r"activations\[1\] \(layer 2\)"),
        (_set("dtype", np.array("float16")), r"dtype: expected one of"),
        (_set("seed", np.array("zero")), r"'seed' should be a single integer"),
        (_delete("rng_state"), r"missing entries \['rng_state'\]"),
        (_set("l2", np.array(-1.0)), r"entry 'l2' should be a float >= 0"),
        (_set("dropout", np.array([0.5])), r"entry 'dropout' should be 2 float64 drop"),
        (
            _set("dropout", np.array([1.5, 0.0])),
            r"dropout: expected drop probabilities in \[0, 1\)",
        ),
        (_set("dropout", np.array([0.5, 0.5])), r"the output layer has none"),
        (_set("optimizer", np.array('{"name": "adagrad", "fields": {}}')), r"KeyError: 'adagrad'"),
        (_set("rng_state", np.array("{")), r"JSONDecodeError"),
    ],
)
def test_a_bad_model_file_is_refused_by_name(tmp_path, change, message):
    DNN([2, 3, 1], seed=0).save(tmp_path / "good.npz")
    bad = rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=rf"^model file '{bad}': .*{message}"):
        DNN.load(bad)


def test_a_missing_truncated_or_foreign_file_is_refused_by_name(tmp_path):
    with pytest.raises(ModelFileError, match=r"'.*nothing.npz': no such file$"):
        DNN.load(tmp_path / "nothing.npz")
    DNN([2, 3, 1], seed=0).save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 10):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match=r"cannot read it as an .npz archive, truncated"):
            DNN.load(tmp_path / "cut.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="got a single array"):
        DNN.load(tmp_path / "one.npy")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ModelFileError, match="no 'format_version' entry"):
        DNN.load(tmp_path / "other.npz")
    assert issubclass(ModelFileError, ValueError)


def test_an_optimizer_state_that_does_not_fit_is_refused_by_name(tmp_path):
    X, Y = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, -0.5]]), np.array([[1.0, 0.0, 1.0]])
    net = DNN([2, 3, 1], seed=0)
    net.fit(X, Y, epochs=1, optimizer=Adam(0.01))
    net.save(tmp_path / "good.npz")
    bad = rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", _delete("optimizer.v.W1"))
    with pytest.raises(ModelFileError, match=r"optimizer state: expected the entries"):
        DNN.load(bad)
    bad = rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", _set("optimizer_t", np.array(-5)))
    with pytest.raises(ModelFileError, match=r"state\['t'\]: expected the step count"):
        DNN.load(bad)


def test_a_version_1_file_still_loads(tmp_path):
    """Written before the training entries existed: no decay, no dropout, no
    optimizer, and the generator seeded from the seed."""
    net = DNN([2, 3, 1], seed=4)
    net.save(tmp_path / "new.npz")

    def version_1(entries):
        entries["format_version"] = np.array(1)
        for key in ("l2", "dropout", "rng_state", "optimizer", "optimizer_t"):
            del entries[key]

    old = DNN.load(rewrite(tmp_path / "new.npz", tmp_path / "old.npz", version_1))
    assert repr(old) == repr(net) and old.optimizer is None
    assert (old.l2, old.dropout) == (0.0, (0.0, 0.0))
    for key, value in net.params.items():
        assert np.array_equal(bits(old.params[key]), bits(value)), key
    assert old._rng.bit_generator.state == np.random.default_rng(4).bit_generator.state


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [
        (Adam(0.01), {}),
        (Momentum(0.05, nesterov=True), {"l2": 0.01}),
        (Adam(0.01), {"dropout": 0.3, "l2": 1e-3}),
        (RMSProp(0.01), {"dropout": [0.5, 0.0]}),
    ],
    ids=["adam", "momentum+decay", "adam+dropout+decay", "rmsprop+dropout"],
)
def test_training_resumes_exactly_after_save_and_load(tmp_path, optimizer, options):
    """k epochs, save, load, k more: bit for bit the 2k epochs of one run, the
    optimizer's moments, the mini-batch shuffles and the dropout masks included."""
    X, Y = two_moons(40, seed=1)
    run = dict(epochs=3, optimizer=optimizer, batch_size=16)

    def fresh():
        return DNN([2, 5, 4, 1], ["relu", "tanh", "sigmoid"], seed=7, **options)

    uninterrupted = fresh()
    whole = uninterrupted.fit(X, Y, **{**run, "epochs": 6})
    first = fresh()
    history = first.fit(X, Y, **run)
    first.save(tmp_path / "half.npz")
    resumed = DNN.load(tmp_path / "half.npz")
    assert resumed.optimizer == optimizer
    history += resumed.fit(X, Y, **run)
    assert history == whole
    for key, value in uninterrupted.params.items():
        assert np.array_equal(bits(resumed.params[key]), bits(value)), key
    state, expected = resumed.optimizer_state, uninterrupted.optimizer_state
    assert state.get("t") == expected.get("t")
    for slot in optimizer.SLOTS:
        for key in expected[slot]:
            assert np.array_equal(bits(state[slot][key]), bits(expected[slot][key])), (slot, key)


def test_normalization_dropout_and_decay_together_resume_exactly_and_match_the_oracle(tmp_path):
    """The #14 and #15 features in one net (batch norm and dropout in the same
    layer): a save in the middle of training changes nothing, and the manual
    gradients on the cached masks match jax.grad within the tolerance."""
    from manual_bp.dropout import draw_masks
    from manual_bp_reference.cases import Case
    from manual_bp_reference.compare import compare

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 7))
    Y = (rng.random((2, 7)) > 0.5).astype(float)

    def net() -> DNN:
        return DNN([3, 5, 4, 2], ["tanh", "relu", "sigmoid"], "binary_cross_entropy", seed=1,
                   normalization=["batch", "layer"], dropout=[0.5, 0.25], l2=0.01)  # fmt: skip

    straight = net()
    straight.fit(X, Y, 4, batch_size=4, optimizer=Adam(learning_rate=0.01))
    halves = net()
    halves.fit(X, Y, 2, batch_size=4, optimizer=Adam(learning_rate=0.01))
    halves.save(tmp_path / "half.npz")
    loaded = DNN.load(tmp_path / "half.npz")
    loaded.fit(X, Y, 2, batch_size=4, optimizer=Adam(learning_rate=0.01))
    for key, value in straight.params.items():
        np.testing.assert_array_equal(loaded.params[key], value, err_msg=key)
    for key, value in straight.running.items():
        np.testing.assert_array_equal(loaded.running[key], value, err_msg=key)

    masks = draw_masks(loaded.layer_sizes, X.shape[1], loaded.dropout, 3)
    comparison = compare(Case.of_network(loaded, X, Y, masks=masks))
    assert comparison.ok, comparison.report()
