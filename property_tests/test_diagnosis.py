"""Each diagnosis is tested by injecting that very bug."""

import numpy as np
import pytest

from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare
from property_tests.mutations import CATALOG, inject

BY_NAME = {mutation.name: mutation for mutation in CATALOG}

# mutation -> (hidden activation, loss, output activation, expected bug class)
EXPECTED = {
    "missing 1/m": ("tanh", "binary_cross_entropy", "sigmoid", "missing 1/m"),
    "extra 1/m in dW": ("tanh", "binary_cross_entropy", "sigmoid", "extra 1/m"),
    "output gradient sign flipped": ("tanh", "cross_entropy", "softmax", "sign flip"),
    "residual written Y - A": ("tanh", "mse", "identity", "sign flip"),
    "dW transposed": ("tanh", "mse", "identity", "transposed matrix"),
    "dA uses W instead of W^T": ("tanh", "mse", "identity", "transposed matrix"),
    "bias summed over the wrong axis": ("tanh", "mse", "identity", "bias sum axis"),
    "bias averaged instead of summed": ("tanh", "mse", "identity", "bias sum axis"),
    "bias from the first sample only": ("tanh", "mse", "identity", "bias sum axis"),
    "dW uses A_l instead of A_(l-1)": (
        "tanh",
        "mse",
        "identity",
        "cache entry from the wrong layer",
    ),
    "hidden layers skip f'": ("sigmoid", "mse", "identity", "wrong activation derivative"),
    "sigmoid' written in Z": ("sigmoid", "mse", "identity", "wrong activation derivative"),
    "tanh' = 1 - A": ("tanh", "mse", "identity", "wrong activation derivative"),
    "elu' = A below 0": ("elu", "mse", "identity", "wrong activation derivative"),
    "softplus' = sigmoid'": ("softplus", "mse", "identity", "wrong activation derivative"),
    "silu' sign inside": ("silu", "mse", "identity", "wrong activation derivative"),
    "gelu' without the product rule": ("gelu", "mse", "identity", "wrong activation derivative"),
    "derivative gets A and Z swapped": (
        "sigmoid",
        "mse",
        "identity",
        "wrong activation derivative",
    ),
    "mse keeps the 2 of the square": ("tanh", "mse", "tanh", "factor of 2 in mse"),
    "fused gradient for every pair": ("tanh", "mse", "tanh", "wrong activation derivative"),
    "softmax handled as elementwise": ("softmax", "mse", "identity", "softmax as elementwise"),
    "softmax JVP summed over the batch": ("softmax", "mse", "identity", "softmax as elementwise"),
    "loop stops before layer 1": ("tanh", "mse", "identity", "off by one layer"),
}


def square_case(hidden, loss, output, seed=0):
    """Widths 4-4-4-4 (so transposed matrices keep their shape) and m = 5."""
    rng = np.random.default_rng(seed)
    sizes, m = [4, 4, 4, 4], 5
    params = {}
    for l in range(1, 4):
        params[f"W{l}"] = rng.standard_normal((4, 4))
        params[f"B{l}"] = rng.standard_normal((4, 1))
    X = rng.standard_normal((sizes[0], m))
    if loss == "cross_entropy":
        Y = np.eye(4)[:, rng.integers(0, 4, m)]
    elif loss == "binary_cross_entropy":
        Y = rng.random((4, m))
    else:
        Y = rng.standard_normal((4, m))
    return params, X, Y, [hidden, hidden, output], loss


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_diagnosis_names_the_injected_bug(name, monkeypatch):
    hidden, loss, output, expected = EXPECTED[name]
    params, X, Y, activations, loss = square_case(hidden, loss, output)
    assert compare(Case.of(params, X, Y, activations, loss)).ok  # the case itself is fine
    inject(BY_NAME[name], monkeypatch)
    check = compare(Case.of(params, X, Y, activations, loss))
    assert not check.ok
    assert check.diagnosis is not None and check.diagnosis.bug_class == expected, check.report()
    assert "likely bug: " + expected in check.report()


def test_the_report_says_where_and_how_much():
    params, X, Y, activations, loss = square_case("tanh", "mse", "identity")
    with pytest.MonkeyPatch.context() as monkeypatch:
        inject(BY_NAME["hidden layers skip f'"], monkeypatch)
        check = compare(Case.of(params, X, Y, activations, loss))
    report = check.report()
    assert check.diagnosis.key == "Z2" and check.diagnosis.layer == 2
    assert "Z2 (4, 5) float64:" in report and "entries fail; worst at (" in report
    assert "manual " in report and "oracle " in report and "tolerance " in report
    # Smooth activations: finite differences side with the oracle.
    assert check.variables["Z2"].finite_differences == "oracle"
    assert "finite differences support: oracle" in report
