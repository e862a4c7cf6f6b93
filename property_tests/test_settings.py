"""``Settings``: one value for how the three checks draw cases and run code;
a field a check does not use is an error, and the 0.1 keywords still work
with a ``FutureWarning`` naming their new place."""

import dataclasses

import numpy as np
import pytest

from manual_bp import Net, backward, forward
from manual_bp.optimizers import SGD
from manual_bp_reference.check import check_gradients
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.layer_check import check_layer
from manual_bp_reference.optimizer_check import check_optimizer
from manual_bp_reference.settings import DEFAULTS, Settings

ARCH = ([2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy")


def _backprop(params, X, Y):
    net = Net.of(*ARCH)
    _, cache = forward(params, X, net)
    return backward(cache, Y, net)


def _rows_backprop(params, X, Y):
    """cs231n's layout: X (m, n0), W (n_in, n_out), flat biases."""
    m = X.shape[0]
    A1 = np.tanh(X @ params["W1"] + params["B1"])
    A2 = 1 / (1 + np.exp(-(A1 @ params["W2"] + params["B2"])))
    dZ2 = (A2 - Y) / m
    dZ1 = (dZ2 @ params["W2"].T) * (1 - A1**2)
    return {"W1": X.T @ dZ1, "B1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "B2": dZ2.sum(axis=0)}


def _affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def _sgd(grads, state, params):
    return {k: params[k] - 0.1 * grads[k] for k in params}, state


def test_a_check_fills_its_own_defaults():
    for check, defaults in DEFAULTS.items():
        resolved = Settings().resolved(check)
        for name, value in defaults.items():
            assert getattr(resolved, name) == value, (check, name)
    assert Settings(max_examples=7).resolved("check_layer").max_examples == 7


@pytest.mark.parametrize(
    ("check", "field"),
    [("check_gradients", "max_width"), ("check_layer", "param_bound"),
     ("check_optimizer", "max_batch"), ("check_optimizer", "stability_check"),
     ("check_layer", "kinks"), ("check_gradients", "max_steps")],
)  # fmt: skip
def test_a_field_the_check_does_not_use_is_an_error_not_ignored(check, field):
    value = {"kinks": "avoid", "stability_check": False}.get(field, 4)
    with pytest.raises(ValueError, match=rf"^settings\.{field}: {check} draws"):
        Settings(**{field: value}).resolved(check)


@pytest.mark.parametrize(
    ("fields", "error", "name"),
    [({"max_examples": 0}, ValueError, "max_examples"), ({"dtype": "int8"}, TypeError, "dtype"),
     ({"input_bound": np.inf}, ValueError, "input_bound"), ({"kinks": "skip"}, ValueError, "kinks"),
     ({"shrink": 1}, TypeError, "shrink"), ({"seed": -1}, ValueError, "seed"),
     ({"timeout": 0}, ValueError, "timeout"), ({"max_steps": 2.5}, TypeError, "max_steps")],
)  # fmt: skip
def test_bad_settings_name_the_field(fields, error, name):
    with pytest.raises(error, match=f"^{name}: "):
        Settings(**fields)


def test_settings_are_a_frozen_value():
    settings = Settings(max_examples=3, dtype=np.float32)
    assert settings.dtype == "float32"  # a NumPy dtype is read as its name
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 1  # type: ignore[misc]


def test_every_check_takes_settings_or_its_old_keywords_with_a_warning():
    few = Settings(max_examples=3, isolate=False)
    assert check_gradients(_backprop, *ARCH, settings=few).examples == 3
    with pytest.warns(
        FutureWarning, match=r"write settings=Settings\(max_examples=3, isolate=False\)"
    ):
        assert check_gradients(_backprop, *ARCH, max_examples=3, isolate=False).examples == 3
    rows = pytest.warns(FutureWarning, match=r"conventions=Conventions\(layout='rows'\)")
    with rows:
        report = check_gradients(_rows_backprop, *ARCH, layout="rows", settings=few)
    assert report.examples == 3
    assert check_layer(_affine_backward, "affine", settings=few).examples == 3
    with pytest.warns(FutureWarning, match="check_layer"):
        assert check_layer(_affine_backward, "affine", max_examples=3).examples == 3
    assert check_optimizer(_sgd, SGD(0.1), settings=few).examples == 3
    with pytest.warns(FutureWarning, match="check_optimizer"):
        assert check_optimizer(_sgd, SGD(0.1), max_examples=3).examples == 3


def test_old_keywords_beside_settings_or_unknown_ones_are_errors():
    with pytest.raises(ValueError, match=r"^settings: give Settings or its old keywords"):
        check_gradients(_backprop, *ARCH, settings=Settings(), max_examples=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_example'"):
        check_gradients(_backprop, *ARCH, max_example=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'layot'"):
        check_layer(_affine_backward, "affine", layot="rows")  # layout is its own keyword
    with pytest.raises(TypeError, match=r"^settings: expected a Settings"):
        check_optimizer(_sgd, SGD(0.1), settings={"max_examples": 3})
    with pytest.raises(TypeError, match=r"^conventions: expected a Conventions"):
        check_gradients(_backprop, *ARCH, conventions={"layout": "rows"})
    assert Conventions().layout == "columns"
