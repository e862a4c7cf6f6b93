"""The layer-kind registry: a kind carries its facts, and one kind cannot break another."""

import numpy as np
import pytest

from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_check import check_layer, layer_oracle, layers
from manual_bp_reference.layer_kinds import LAYER_KINDS, LayerKind, kind_of, register, unregister
from manual_bp_reference.layer_tolerance import activation_tolerances
from manual_bp_reference.settings import Settings


def _scale(name: str = "test_scale", factor: float = 2.0, **changes) -> LayerKind:
    options = dict(
        definition=lambda x: factor * x,
        tolerance=lambda inputs, dout, dtype: {
            "out": 4e-16 * np.abs(factor * inputs["x"]) + 1e-300,
            "dx": 4e-16 * np.abs(factor * dout) + 1e-300,
        },
        default_cache=lambda args: args[0],
    )
    options.update(changes)
    return LayerKind(name, "other", ("x",), ("dx",), **options)


@pytest.fixture
def registered():
    names: list[str] = []

    def add(kind: LayerKind) -> LayerKind:
        names.append(kind.name)
        return register(kind)

    yield add
    for name in names:
        if name in LAYER_KINDS:
            unregister(name)


def test_a_kind_names_the_gradient_of_each_input_in_order():
    with pytest.raises(ValueError, match=r"^grads: expected"):
        LayerKind("bad", "other", ("x", "g"), ("dx", "dgain"), lambda x, g: g * x,
                  lambda inputs, dout, dtype: {})  # fmt: skip


def test_only_the_built_in_losses_are_loss_heads():
    kind = LayerKind("hinge", "loss", ("x", "y"), ("loss", "dx"), lambda x, y: x,
                     lambda inputs, dout, dtype: {})  # fmt: skip
    with pytest.raises(ValueError, match="loss family holds the built-in heads"):
        register(kind)


def test_a_kind_registered_again_under_its_name_is_checked_against_its_new_definition(
    registered,
):
    x, dout = np.ones((2, 3)), np.ones((2, 3))
    registered(_scale(factor=2.0))
    assert np.allclose(layer_oracle("test_scale", {"x": x}, dout)["out"], 2.0)
    unregister("test_scale")
    registered(_scale(factor=3.0))
    assert np.allclose(layer_oracle("test_scale", {"x": x}, dout)["out"], 3.0)


def test_one_kinds_vectors_do_not_change_another_kinds_layout(registered):
    def affine_forward(x, w, b):
        return x @ w + b, (x, w, b)

    def affine_backward(dout, cache):
        x, w, _ = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    registered(_scale(vectors=("w",)))  # a "w" that is a vector in this kind only
    report = check_layer(
        affine_backward, "affine", forward=affine_forward, settings=Settings(max_examples=10)
    )
    assert report.examples == 10


def test_a_kind_that_mixes_its_own_output_rows_is_not_padded_there(registered):
    def definition(x, w):
        return jnp.exp(w @ x) / jnp.sum(jnp.exp(w @ x), axis=0, keepdims=True)

    registered(LayerKind(
        "test_softmax_affine", "other", ("x", "w"), ("dx", "dw"), definition,
        lambda inputs, dout, dtype: {}, parameters=lambda n, rows: {"w": (rows, n)},
        rows=lambda n, draw: 2, mixes_features=True,
    ))  # fmt: skip
    rng = np.random.default_rng(0)
    x, w, dout = rng.normal(size=(3, 2)), rng.normal(size=(2, 3)), rng.normal(size=(2, 2))
    z = w @ x
    expected = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
    assert np.allclose(layer_oracle("test_softmax_affine", {"x": x, "w": w}, dout)["out"],
                       expected)  # fmt: skip


def test_the_registry_lists_and_names_kinds_in_one_order(registered):
    registered(_scale())
    assert layers()[0] == "affine" and layers()[-1] == "test_scale"
    with pytest.raises(ValueError) as caught:
        kind_of("nosuch")
    assert str(caught.value).startswith("layer: expected one of ['affine', 'identity'")


def test_a_new_kind_is_checked_end_to_end(registered):
    """The smallest kind: its check passes a right pair and fails a wrong one."""
    registered(_scale(tolerance=lambda inputs, dout, dtype: {
        "out": activation_tolerances("identity", 2 * inputs["x"], 2 * dout, dtype)["out"],
        "dx": activation_tolerances("identity", 2 * inputs["x"], 2 * dout, dtype)["dx"],
    }))  # fmt: skip
    report = check_layer(lambda dout, x: 2 * dout, "test_scale", settings=Settings(max_examples=10))
    assert report.examples == 10
    from manual_bp_reference.layer_check import LayerMismatch

    with pytest.raises(LayerMismatch):
        check_layer(lambda dout, x: 3 * dout, "test_scale", settings=Settings(max_examples=10))
