"""A whole network's forward and backward as the deeplearning.ai course writes
them, checked as written: ``check_gradients(backward, net, forward=forward)``,
arguments passed by name, dropout with the masks the forward drew."""

# The course's code as written: its legacy np.random and its full cache unpacking.
# ruff: noqa: NPY002, RUF059

from pathlib import Path

import numpy as np
import pytest

from manual_bp import Dense, Net
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.network_pair import find_masks
from manual_bp_reference.settings import Settings

COURSE = Conventions(names="W1/b1")
FEW = Settings(max_examples=25)


def relu(x):
    s = np.maximum(0, x)
    return s


def sigmoid(x):
    s = 1 / (1 + np.exp(-x))
    return s


def forward_propagation_with_dropout(X, parameters, keep_prob=0.5):
    np.random.seed(1)
    W1 = parameters["W1"]
    b1 = parameters["b1"]
    W2 = parameters["W2"]
    b2 = parameters["b2"]
    W3 = parameters["W3"]
    b3 = parameters["b3"]
    Z1 = np.dot(W1, X) + b1
    A1 = relu(Z1)
    D1 = np.random.rand(A1.shape[0], A1.shape[1])
    D1 = (D1 < keep_prob).astype(int)
    A1 = A1 * D1
    A1 = A1 / keep_prob
    Z2 = np.dot(W2, A1) + b2
    A2 = relu(Z2)
    D2 = np.random.rand(A2.shape[0], A2.shape[1])
    D2 = (D2 < keep_prob).astype(int)
    A2 = A2 * D2
    A2 = A2 / keep_prob
    Z3 = np.dot(W3, A2) + b3
    A3 = sigmoid(Z3)
    cache = (Z1, D1, A1, W1, b1, Z2, D2, A2, W2, b2, Z3, A3, W3, b3)
    return A3, cache


def backward_propagation_with_dropout(X, Y, cache, keep_prob):
    m = X.shape[1]
    (Z1, D1, A1, W1, b1, Z2, D2, A2, W2, b2, Z3, A3, W3, b3) = cache
    dZ3 = A3 - Y
    dW3 = 1.0 / m * np.dot(dZ3, A2.T)
    db3 = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3)
    dA2 = dA2 * D2
    dA2 = dA2 / keep_prob
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1.0 / m * np.dot(dZ2, A1.T)
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dA1 = dA1 * D1
    dA1 = dA1 / keep_prob
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
    gradients = {
        "dZ3": dZ3,
        "dW3": dW3,
        "db3": db3,
        "dA2": dA2,
        "dZ2": dZ2,
        "dW2": dW2,
        "db2": db2,
        "dA1": dA1,
        "dZ1": dZ1,
        "dW1": dW1,
        "db1": db1,
    }
    return gradients


def backward_no_keep_scaling(X, Y, cache, keep_prob):
    m = X.shape[1]
    (Z1, D1, A1, W1, b1, Z2, D2, A2, W2, b2, Z3, A3, W3, b3) = cache
    dZ3 = A3 - Y
    dW3 = 1.0 / m * np.dot(dZ3, A2.T)
    db3 = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3) * D2
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1.0 / m * np.dot(dZ2, A1.T)
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2) * D1
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T)
    db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dW3": dW3, "db3": db3, "dW2": dW2, "db2": db2, "dW1": dW1, "db1": db1}


# Week 4's dnn_app_utils: the L-layer model's forward and backward.
def linear_activation_forward(A_prev, W, b, activation):
    Z = np.dot(W, A_prev) + b
    A = sigmoid(Z) if activation == "sigmoid" else relu(Z)
    return A, ((A_prev, W, b), Z)


def L_model_forward(X, parameters):
    caches = []
    A = X
    L = len(parameters) // 2
    for l in range(1, L):
        A_prev = A
        A, cache = linear_activation_forward(
            A_prev, parameters["W" + str(l)], parameters["b" + str(l)], activation="relu"
        )
        caches.append(cache)
    AL, cache = linear_activation_forward(A, parameters["W" + str(L)], parameters["b" + str(L)],
                                          activation="sigmoid")  # fmt: skip
    caches.append(cache)
    return AL, caches


def linear_backward(dZ, cache):
    A_prev, W, b = cache
    m = A_prev.shape[1]
    dW = 1.0 / m * np.dot(dZ, A_prev.T)
    db = 1.0 / m * np.sum(dZ, axis=1, keepdims=True)
    dA_prev = np.dot(W.T, dZ)
    return dA_prev, dW, db


def linear_activation_backward(dA, cache, activation, bug=False):
    linear_cache, Z = cache
    if activation == "relu":
        dZ = np.array(dA, copy=True)
        if not bug:
            dZ[Z <= 0] = 0
    else:
        s = 1 / (1 + np.exp(-Z))
        dZ = dA * s * (1 - s)
    return linear_backward(dZ, linear_cache)


def L_model_backward(AL, Y, caches, bug=False):
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    current_cache = caches[L - 1]
    grads["dA" + str(L - 1)], grads["dW" + str(L)], grads["db" + str(L)] = (
        linear_activation_backward(dAL, current_cache, activation="sigmoid")
    )
    for l in reversed(range(L - 1)):
        current_cache = caches[l]
        dA_prev_temp, dW_temp, db_temp = linear_activation_backward(
            grads["dA" + str(l + 1)], current_cache, activation="relu", bug=bug
        )
        grads["dA" + str(l)] = dA_prev_temp
        grads["dW" + str(l + 1)] = dW_temp
        grads["db" + str(l + 1)] = db_temp
    return grads


# The regularization assignment's L2 backward: lambd/m * W on every dW.
def forward_propagation(X, parameters):
    W1, b1, W2, b2 = parameters["W1"], parameters["b1"], parameters["W2"], parameters["b2"]
    Z1 = np.dot(W1, X) + b1
    A1 = relu(Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = sigmoid(Z2)
    return A2, (Z1, A1, W1, b1, Z2, A2, W2, b2)


def backward_propagation_with_regularization(X, Y, cache, lambd):
    m = X.shape[1]
    (Z1, A1, W1, b1, Z2, A2, W2, b2) = cache
    dZ2 = A2 - Y
    dW2 = 1.0 / m * np.dot(dZ2, A1.T) + lambd / m * W2
    db2 = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1.0 / m * np.dot(dZ1, X.T) + lambd / m * W1
    db1 = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dZ2": dZ2, "dW2": dW2, "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}


def dropped() -> Net:  # built when a test runs, not at import (docs/testing.md, "mutmut")
    return Net(2, [Dense(5, "relu", dropout=0.14), Dense(3, "relu", dropout=0.14),
                   Dense(1, "sigmoid")], "binary_cross_entropy")  # fmt: skip


def test_the_course_dropout_pair_passes_with_its_own_masks():
    report = check_gradients(backward_propagation_with_dropout, dropped(),
                             forward=forward_propagation_with_dropout, conventions=COURSE,
                             settings=FEW)  # fmt: skip
    assert report.examples == 25
    assert any("'dW1' for W1" in note for note in report.notes)


def test_a_backward_that_forgets_keep_prob_is_wrong():
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(backward_no_keep_scaling, dropped(),
                        forward=forward_propagation_with_dropout, conventions=COURSE)  # fmt: skip
    assert raised.value.verdict == "wrong"
    # The pasteable case calls the user's two functions as the check did.
    keep = 1 - 0.14
    text = str(raised.value)
    assert (f"AL, cache = forward_propagation_with_dropout(X=X, parameters=params, "
            f"keep_prob={keep!r})") in text  # fmt: skip
    assert (f"grads = backward_no_keep_scaling(X=X, Y=Y, cache=cache, keep_prob={keep!r})"
            in text)  # fmt: skip


def test_the_l_layer_model_pair_passes_and_its_bug_is_named():
    """Within bounds where its dAL = -(Y/AL - (1-Y)/(1-AL)) does not saturate
    (beyond, the verdict is "correct maths, unstable numerics")."""
    sizes, activations = [3, 4, 3, 1], ["relu", "relu", "sigmoid"]
    small = Settings(max_examples=25, param_bound=1.0, input_bound=1.0)
    report = check_gradients(L_model_backward, sizes, activations, "binary_cross_entropy",
                             forward=L_model_forward, conventions=COURSE,
                             settings=small)  # fmt: skip
    assert report.examples == 25
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(lambda AL, Y, caches: L_model_backward(AL, Y, caches, bug=True), sizes,
                        activations, "binary_cross_entropy", forward=L_model_forward,
                        conventions=COURSE)  # fmt: skip
    assert raised.value.verdict == "wrong"
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(L_model_backward, sizes, activations, "binary_cross_entropy",
                        forward=L_model_forward, conventions=COURSE)  # fmt: skip
    assert raised.value.verdict == "correct maths, unstable numerics"


def test_the_l2_pair_gets_lambd_by_name():
    declared = Conventions(names="W1/b1", l2=0.7, l2_divided_by_m=True)
    report = check_gradients(backward_propagation_with_regularization, [2, 3, 1],
                             ["relu", "sigmoid"], "binary_cross_entropy",
                             forward=forward_propagation, conventions=declared,
                             settings=FEW)  # fmt: skip
    assert report.examples == 25


def test_an_argument_the_pair_cannot_fill_is_named():
    def backward(AL, Y, caches, learning_rate):
        return L_model_backward(AL, Y, caches)

    with pytest.raises(
        TypeError, match=r"^backward: cannot tell what to pass as its argument 'learning_rate'"
    ):
        check_gradients(backward, [3, 1], ["sigmoid"], "binary_cross_entropy",
                        forward=L_model_forward, conventions=COURSE)  # fmt: skip


def test_dropout_without_masks_in_the_cache_says_so():
    def forward(X, parameters, keep_prob):
        A3, cache = forward_propagation_with_dropout(X, parameters, keep_prob)
        return A3, cache[2:6] + cache[7:]  # D1, D2 left out

    def backward(X, Y, cache, keep_prob):
        return {"dW1": 0}

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(backward, dropped(), forward=forward, conventions=COURSE)
    assert "dropout: no mask of layer 1 (5 x m), 2 (3 x m) in the forward's cache" in str(
        raised.value
    )


def test_the_masks_are_found_in_order_integers_first():
    D1, D2 = np.array([[1, 0], [0, 1]]), np.array([[0, 1], [1, 1]])
    A1 = np.array([[0.5, 0.0], [0.0, 0.5]])  # scaled activations: zeros and one value too
    found = find_masks((A1, D1, {"D2": D2}), {"M1": (2, 2), "M2": (2, 2)})
    assert np.array_equal(found["M1"], D1) and np.array_equal(found["M2"], D2)
    scaled = find_masks([np.array([[2.0, 0.0]])], {"M1": (1, 2)}, keep_prob=0.5)
    assert scaled["M1"].tolist() == [[1.0, 0.0]]
    assert find_masks((np.array([[0.3, 1.0]]),), {"M1": (1, 2)}) == {}
    # Activations with one value, or none, are no mask (a relu layer at a small batch).
    assert find_masks((np.array([[0.0, 0.7]]), np.zeros((1, 2))), {"M1": (1, 2)}) == {}


def test_the_cli_checks_a_pair_and_names_its_flags(tmp_path, capsys):
    from manual_bp.cli import main

    source = Path(__file__).read_text()
    course = source[source.index("def relu(") : source.index("# Week 4's dnn_app_utils")]
    (tmp_path / "dnn.py").write_text("import numpy as np\n\n\n" + course)
    common = ["--layers", "2,5,3,1", "--activations", "relu,relu,sigmoid",
              "--loss", "binary_cross_entropy", "--names", "W1/b1", "--examples", "10"]  # fmt: skip
    argv = ["check", f"{tmp_path}/dnn.py:backward_propagation_with_dropout",
            "--forward", f"{tmp_path}/dnn.py:forward_propagation_with_dropout",
            "--dropout", "0.14", *common]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().out
    assert "PASS: 10 examples" in capsys.readouterr().out
    alone = ["check", f"{tmp_path}/dnn.py:backward_propagation_with_dropout", "--dropout", "0.14"]
    assert main([*alone, *common]) == 2
    assert "--dropout: only with --forward" in capsys.readouterr().err


def test_set_up_mistakes_are_named_before_anything_runs(tmp_path):
    """Read from the signature, or from the file without running it: exit 2 at
    the command line, not a verdict on the user's code."""
    with pytest.raises(TypeError, match=r"^backward: it takes 'keep_prob', but the net has no"):
        check_gradients(backward_propagation_with_dropout, [2, 5, 3, 1],
                        ["relu", "relu", "sigmoid"], "binary_cross_entropy",
                        forward=forward_propagation_with_dropout)  # fmt: skip
    with pytest.raises(TypeError, match=r"^backward: it takes 'lambd', but no L2 is declared"):
        check_gradients(backward_propagation_with_regularization, [2, 3, 1], ["relu", "sigmoid"],
                        "binary_cross_entropy", forward=forward_propagation)  # fmt: skip
    (tmp_path / "dnn.py").write_text("def forward(X, parameters):\n    return X, X\n")
    with pytest.raises(ValueError, match=r"^backward: '.*dnn.py' has no function 'backwrd'"):
        check_gradients(f"{tmp_path}/dnn.py:backwrd", [2, 1], ["sigmoid"],
                        "binary_cross_entropy", forward=f"{tmp_path}/dnn.py:forward")  # fmt: skip


def test_only_the_declared_layers_drop_and_a_missing_mask_is_not_a_missing_gradient():
    """A forward that drops a layer the Net does not is wrong; a Net that drops
    a layer whose mask the cache lacks says so, and says the gradients were
    not compared (not that they were not returned)."""
    one = Net(2, [Dense(5, "relu", dropout=0.14), Dense(3, "relu"), Dense(1, "sigmoid")],
              "binary_cross_entropy")  # fmt: skip
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(backward_propagation_with_dropout, one,
                        forward=forward_propagation_with_dropout, conventions=COURSE)  # fmt: skip
    assert raised.value.verdict == "wrong"

    def forward(X, parameters, keep_prob):
        A3, cache = forward_propagation_with_dropout(X, parameters, keep_prob)
        return A3, (*cache[:6], cache[7], *cache[7:])  # D2 replaced by A2: no mask

    with pytest.raises(GradientMismatch) as raised:
        check_gradients(backward_propagation_with_dropout, dropped(), forward=forward,
                        conventions=COURSE)  # fmt: skip
    text = str(raised.value)
    assert "dropout: no mask of layer 2 (3 x m)" in text
    assert "not compared: no dropout mask" in text and "not returned" not in text


def test_the_dropout_bugs_of_a_backward_are_named():
    """Its 1/keep_prob forgotten (from a batch-size-1 probe, where dB = dZ)."""
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(backward_no_keep_scaling, dropped(),
                        forward=forward_propagation_with_dropout, conventions=COURSE)  # fmt: skip
    diagnosis = raised.value.comparison.diagnosis
    assert diagnosis.bug_class == "dropout: 1/keep_prob missing", diagnosis


def test_a_mask_not_applied_in_the_backward_is_named_from_the_z_gradients():
    from manual_bp_reference.cases import Case
    from manual_bp_reference.compare import compare
    from manual_bp_reference.oracle import oracle_gradients

    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(4, 2)), "B1": rng.normal(size=(4, 1)),
              "W2": rng.normal(size=(1, 4)), "B2": rng.normal(size=(1, 1))}  # fmt: skip
    mask = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 1, 1]], dtype=float)
    case = Case.of(params, rng.normal(size=(2, 3)), np.array([[0.0, 1.0, 1.0]]),
                ["tanh", "sigmoid"], "binary_cross_entropy", dropout=(0.5, 0.0),
                masks={"M1": mask})  # fmt: skip
    right = {key: np.asarray(value) for key, value in oracle_gradients(case).grads.items()}
    unmasked = dict(right)
    unmasked["Z1"] = right["Z1"] + (mask == 0) * 0.3  # wrong only where a unit is dropped
    found = compare(case, unmasked, keys=["Z2", "W2", "B2", "Z1"]).diagnosis
    assert found.bug_class == "dropout: mask not applied in the backward", found


def test_a_file_that_does_not_parse_is_a_verdict_not_a_crash(tmp_path):
    (tmp_path / "broken.py").write_text("def backward(AL, Y, caches):\n    return {\n")
    (tmp_path / "guarded.py").write_text(
        "import numpy as np\n\nif True:\n    def forward(X, parameters):\n        return X, X\n"
    )
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(f"{tmp_path}/broken.py:backward", [2, 1], ["sigmoid"],
                        "binary_cross_entropy",
                        forward=f"{tmp_path}/guarded.py:forward")  # fmt: skip
    assert raised.value.verdict == "raised" and "SyntaxError" in str(raised.value)


def test_a_backward_that_swaps_keep_and_drop_is_named():
    """``dA2 * (1 - D2)``: the units the forward kept get no gradient."""
    import inspect

    source = inspect.getsource(backward_propagation_with_dropout)
    swapped = source.replace("dA2 = dA2 * D2", "dA2 = dA2 * (1 - D2)").replace(
        "def backward_propagation_with_dropout", "def swapped_backward"
    )
    namespace = dict(globals())
    exec(swapped, namespace)  # the course's code with the one line changed
    with pytest.raises(GradientMismatch) as raised:
        check_gradients(namespace["swapped_backward"], dropped(),
                        forward=forward_propagation_with_dropout, settings=FEW)  # fmt: skip
    diagnosis = raised.value.comparison.diagnosis
    assert (diagnosis.bug_class, diagnosis.key) == ("dropout: keep and drop swapped", "Z2")
