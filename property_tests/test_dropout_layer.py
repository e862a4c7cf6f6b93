"""``check_layer(..., "dropout")``: cs231n's ``dropout_forward/backward`` and the
course's dropout step as written, against ``jax.vjp`` of manual_bp's inverted
dropout with the mask held fixed; the classic bugs named."""

import ast
import dataclasses

import numpy as np
import pytest

from manual_bp_reference.layer_check import LayerMismatch, check_layer
from manual_bp_reference.layer_check.cases import LayerCase
from manual_bp_reference.layer_kinds.dropout import MIN_SWAP_ENTRIES, recipe_mask
from manual_bp_reference.settings import Settings

FEW = Settings(max_examples=30)


# cs231n assignment 2, layers.py, as a student fills it in.
def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])  # noqa: NPY002

    mask = None
    out = None

    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p  # noqa: NPY002
        out = x * mask
    elif mode == "test":
        out = x

    cache = (dropout_param, mask)
    out = out.astype(x.dtype, copy=False)

    return out, cache


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    mode = dropout_param["mode"]

    dx = None
    if mode == "train":
        dx = dout * mask
    elif mode == "test":
        dx = dout
    return dx


def test_cs231n_dropout_passes_as_written():
    report = check_layer(dropout_backward, "dropout", forward=dropout_forward, settings=FEW)
    assert report.examples == 30 and not report.notes


def test_the_course_step_passes_in_columns_and_float32():
    def forward(A1, dropout_param):
        keep_prob = dropout_param["p"]
        np.random.seed(dropout_param["seed"])  # noqa: NPY002
        D1 = np.random.rand(A1.shape[0], A1.shape[1])  # noqa: NPY002
        D1 = (D1 < keep_prob).astype(int)
        A1 = A1 * D1
        A1 = A1 / keep_prob
        return A1, (D1, keep_prob)

    def backward(dA1, cache):
        D1, keep_prob = cache
        dA1 = dA1 * D1
        dA1 = dA1 / keep_prob
        return dA1

    for dtype in ("float64", "float32"):
        settings = dataclasses.replace(FEW, dtype=dtype)
        report = check_layer(backward, "dropout", forward=forward, layout="columns",
                             settings=settings)  # fmt: skip
        assert report.examples == 30


def test_a_mask_from_another_generator_is_checked_as_applied_with_a_note():
    """Never a false alarm for a correct dropout that draws its own way, even on
    cases too small to tell a swapped mask from another generator's."""

    def forward(x, dropout_param):
        rng = np.random.default_rng(dropout_param["seed"])
        mask = (rng.random(x.shape) < dropout_param["p"]) / dropout_param["p"]
        return x * mask, mask

    def backward(dout, mask):
        return dout * mask

    small = Settings(max_examples=200, max_batch=2, max_width=3)
    report = check_layer(backward, "dropout", forward=forward, settings=small)
    (note,) = report.notes
    assert "your dropout mask is not cs231n's" in note and "out != 0" in note


def _swapped(x, dropout_param):
    p = dropout_param["p"]
    np.random.seed(dropout_param["seed"])  # noqa: NPY002
    mask = (np.random.rand(*x.shape) >= p) / p  # noqa: NPY002
    return x * mask, (dropout_param, mask)


def _unscaled(x, dropout_param):
    np.random.seed(dropout_param["seed"])  # noqa: NPY002
    mask = np.random.rand(*x.shape) < dropout_param["p"]  # noqa: NPY002
    return x * mask, (dropout_param, mask)


def _as_drop_probability(x, dropout_param):
    p = dropout_param["p"]
    np.random.seed(dropout_param["seed"])  # noqa: NPY002
    mask = (np.random.rand(*x.shape) < 1 - p) / (1 - p)  # noqa: NPY002
    return x * mask, (dropout_param, mask)


def _backward_without_mask(dout, cache):
    dropout_param, _ = cache
    return dout / dropout_param["p"]


def _backward_unscaled(dout, cache):
    _, mask = cache
    return dout * (mask != 0)


@pytest.mark.parametrize(
    ("forward", "backward", "named"),
    [
        (_swapped, dropout_backward, "keep and drop swapped"),
        (_unscaled, dropout_backward, "no 1/p rescaling"),
        (_as_drop_probability, dropout_backward, "p taken as the drop probability"),
        (dropout_forward, _backward_without_mask, "mask not applied in the backward"),
        (dropout_forward, _backward_unscaled, "1/p missing in the backward"),
    ],
    ids=["swapped", "unscaled", "drop probability", "no mask in backward", "unscaled backward"],
)
def test_the_classic_dropout_bugs_are_caught_and_named(forward, backward, named):
    with pytest.raises(LayerMismatch) as raised:
        check_layer(backward, "dropout", forward=forward, settings=FEW)
    assert raised.value.verdict == "wrong"
    assert any(line.startswith(f"likely: {named}:") for line in raised.value.diagnosis), (
        raised.value.diagnosis
    )


def test_the_recipe_is_cs231ns_and_the_case_carries_its_param():
    param = {"p": 0.6, "mode": "train", "seed": 3}
    np.random.seed(3)  # noqa: NPY002
    assert np.array_equal(recipe_mask((4, 5), param), np.random.rand(4, 5) < 0.6)  # noqa: NPY002
    case = LayerCase("dropout", "rows", {"x": np.ones((2, 3))}, np.ones((2, 3)), "float64", param)
    text = repr(case)
    assert "param={'p': 0.6, 'mode': 'train', 'seed': 3}" in text
    rebuilt = eval(text, {"LayerCase": LayerCase, "np": np})  # the repr is pasteable
    assert rebuilt.param == param and case.forward_param() is not case.param
    assert MIN_SWAP_ENTRIES >= 20  # (1/2)^20 < 1e-6: a chance complement is negligible
    assert ast.parse(text)
