"""``net.save(path)`` / ``DNN.load(path)``: a plain .npz, exact round trip, validated loading."""

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import DNN
from manual_bp.model_file import FORMAT_VERSION, ModelFileError
from property_tests.budget import examples
from property_tests.test_normalization import normalized_nets
from reference.cases import networks


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bytes: tells -0.0 from 0.0 and one NaN payload from another."""
    return np.ascontiguousarray(array).view(np.uint8)


@examples(0.3)
@given(networks(max_depth=4, max_width=8, max_batch=2), st.none() | st.integers(0, 2**63 - 1))
def test_a_saved_network_loads_back_bit_for_bit(case, seed):
    net = DNN(case.layer_sizes, case.activations, case.loss, seed=seed, dtype=case.dtype)
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
    assert sorted(entries) == sorted([*architecture, "W1", "B1", "W2", "B2"])
    assert int(entries["format_version"]) == 1  # as before normalization: old readers load it
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
        (_set("format_version", np.array(FORMAT_VERSION + 1)), r"format version 3 is newer than"),
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


def normalized_net(case) -> DNN:
    """The ``DNN`` of a normalized case, its running statistics moved by one batch."""
    net = DNN(case.layer_sizes, case.activations, case.loss, dtype=case.dtype,
              normalization=list(case.normalization[:-1]))  # fmt: skip
    net.params = case.params
    net.forward(case.X)
    return net


@examples(0.2)
@given(normalized_nets(dtypes=("float64", "float32"), stability=True))
def test_a_normalized_network_loads_back_bit_for_bit(case):
    """gamma, beta, the running statistics and the normalization itself survive
    a round trip exactly, and the loaded net predicts (by the running
    statistics) and trains as the saved one."""
    net = normalized_net(case)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        net.save(path)
        loaded = DNN.load(path)
    assert repr(loaded) == repr(net) and loaded.normalization == net.normalization
    assert list(loaded.params) == list(net.params)
    for saved, back in ((net.params, loaded.params), (net.running, loaded.running)):
        assert sorted(back) == sorted(saved)
        for key, value in saved.items():
            assert back[key].dtype == value.dtype, key
            assert np.array_equal(bits(back[key]), bits(value)), key
            assert not back[key].flags.writeable, key
    assert np.array_equal(bits(loaded.predict(case.X)), bits(net.predict(case.X)))
    assert loaded.loss(case.X, case.Y) == net.loss(case.X, case.Y)


def _normalized_file(tmp_path: Path) -> Path:
    net = DNN([2, 3, 3, 1], ["tanh", "relu", "sigmoid"], normalization=["batch", "layer"])
    net.forward(np.ones((2, 4)) + np.arange(4))
    net.save(tmp_path / "good.npz")
    return tmp_path / "good.npz"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_delete("running_var1"), r"missing \['running_var1'\]"),
        (_delete("gamma2"), r"missing \['gamma2'\]"),
        (_set("running_mean2", np.zeros((3, 1))), r"extra \['running_mean2'\]"),
        (_set("format_version", np.array(1)), r"'normalization' needs format version 2, .* 1"),
        (_set("normalization", np.array(["batch", "norm", ""])), r"normalization: expected"),
        (_set("normalization", np.array(["", "", "batch"])), r"not the output layer"),
        (_set("normalization", np.array(["batch", "layer"])), r"should be 3 strings"),
        (_set("running_var1", np.full((3, 1), -1.0)), r"'running_var1' should be finite"),
        (_set("running_mean1", np.zeros((3, 1), np.float32)), r"'running_mean1' should be float64"),
        (_set("beta1", np.zeros((1, 3))), r"params\['beta1'\]: expected shape \(3, 1\)"),
    ],
)
def test_a_bad_normalized_model_file_is_refused_by_name(tmp_path, change, message):
    bad = rewrite(_normalized_file(tmp_path), tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=rf"^model file '{bad}': .*{message}"):
        DNN.load(bad)


def test_a_version_1_file_still_loads(tmp_path):
    """A file written before normalization (version 1, no normalization entry)."""
    path = tmp_path / "old.npz"
    W1, W2 = np.arange(6.0).reshape(3, 2), np.ones((1, 3))
    with path.open("wb") as file:
        np.savez(file, format_version=np.array(1), layer_sizes=np.array([2, 3, 1]),
                 activations=np.array(["tanh", "sigmoid"]), loss=np.array("binary_cross_entropy"),
                 dtype=np.array("float64"), seed=np.array(-1), W1=W1, B1=np.zeros((3, 1)),
                 W2=W2, B2=np.zeros((1, 1)))  # fmt: skip
    net = DNN.load(path)
    assert net.normalization == (None, None) and net.running == {} and net.seed is None
    np.testing.assert_array_equal(net.params["W1"], W1)
