"""``check_per_example(..., conventions=)``: per-example gradients and norms
written in other people's conventions.

Two correct functions as their authors write them: cs231n's (rows as samples,
``W1`` ``(n0, n1)``, flat ``b1``, integer labels; each example's gradient an
outer product ``x_i dh_i^T``, ``W1`` of shape ``(m, n0, n1)``) and the
deeplearning.ai course's (columns, ``W1``/``b1`` with column biases, the
gradients keyed ``dW1``/``db1``, the decay as ``lambd / m``).  Both pass;
the same code with a classic bug is caught and the bug named, the report in
the author's names and shapes; a wrong layout is named; what has no
per-example meaning (``"auto"``, a summed reduction, one sample at a time)
is refused.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from manual_bp.net import Net
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.per_example_check import (
    PerExampleMismatch,
    PerExampleReport,
    check_per_example,
)
from manual_bp_reference.settings import Settings

SETTINGS = Settings(max_examples=10, isolate=False, max_batch=5)

# cs231n: a two-layer net, relu then softmax, integer labels.
CS231N_NET = Net.of([3, 5, 4], ["relu", "softmax"], "cross_entropy")
CS231N = Conventions(layout="rows", names="W1/b1", targets="labels")


def cs231n_per_example(params, X, y, *, kept_mean=False):
    """Each example's gradient, cs231n's layout: ``W1`` ``(m, n0, n1)``, ``b1`` ``(m, n1)``."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    m = X.shape[0]
    h = np.maximum(X @ W1 + b1, 0)
    scores = h @ W2 + b2
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(m), y] -= 1
    ds = p / m if kept_mean else p  # the bug: the batch mean's 1/m kept
    dh = (ds @ W2.T) * (h > 0)
    return {
        "W1": X[:, :, None] * dh[:, None, :],
        "b1": dh,
        "W2": h[:, :, None] * ds[:, None, :],
        "b2": ds,
    }


def cs231n_norms(params, X, y):
    grads = cs231n_per_example(params, X, y)
    return np.sqrt(sum(np.sum(g.reshape(len(X), -1) ** 2, axis=1) for g in grads.values()))


def cs231n_mean_kept(params, X, y):
    return cs231n_per_example(params, X, y, kept_mean=True)


# The course: tanh then sigmoid, binary cross-entropy, lambd / m decay.
COURSE_NET = Net.of([3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
LAMBD = 0.7
COURSE = Conventions(names="W1/b1", l2=LAMBD, l2_divided_by_m=True)


def course_per_example(parameters, X, Y):
    """Each example's ``dW1`` ``(m, n1, n0)``, ``db1`` ``(m, n1, 1)``, ..."""
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    m = X.shape[1]
    A1 = np.tanh(W1 @ X + b1)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
    dZ2 = A2 - Y
    dZ1 = (W2.T @ dZ2) * (1 - A1**2)
    return {
        "dW1": np.einsum("im,jm->mij", dZ1, X) + LAMBD / m * W1,
        "db1": dZ1.T[:, :, None],
        "dW2": np.einsum("im,jm->mij", dZ2, A1) + LAMBD / m * W2,
        "db2": dZ2.T[:, :, None],
    }


def test_a_cs231n_style_function_passes():
    report = check_per_example(
        cs231n_per_example, CS231N_NET, conventions=CS231N, settings=SETTINGS
    )
    assert isinstance(report, PerExampleReport) and report.examples == 10
    assert "b1" in str(report) and "B1" not in str(report)  # the report names b1 as the code


def test_cs231n_style_norms_pass_in_rows():
    report = check_per_example(
        cs231n_norms, CS231N_NET, quantity="norms", conventions=CS231N, settings=SETTINGS
    )
    assert report.examples == 10


def test_a_course_style_function_passes_with_its_d_keys_and_decay():
    report = check_per_example(
        course_per_example, COURSE_NET, conventions=COURSE, settings=SETTINGS
    )
    assert report.examples == 10
    assert any("'dW1' for W1" in note for note in report.notes)


def test_a_course_style_list_of_gradients_passes():
    def as_list(parameters, X, Y):
        params = dict(zip(("W1", "b1", "W2", "b2"), parameters, strict=True))
        grads = course_per_example(params, X, Y)
        return [grads[k] for k in ("dW1", "db1", "dW2", "db2")]

    listed = Conventions(names="W1/b1", container="list", l2=LAMBD, l2_divided_by_m=True)
    report = check_per_example(as_list, COURSE_NET, conventions=listed, settings=SETTINGS)
    assert report.examples == 10


def test_a_bug_in_cs231n_style_code_is_named_in_its_names_and_shapes():
    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(cs231n_mean_kept, CS231N_NET, conventions=CS231N, settings=SETTINGS)
    mismatch = caught.value
    assert mismatch.bug == "per-example gradients divided by m"
    text = str(mismatch)
    assert "names, shapes and indices as your code has them" in text
    m, (n0, n1) = mismatch.case.m, CS231N_NET.layer_sizes[:2]
    table = text.split("the minimal case, pasteable:")[0]
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[3:7]}
    assert rows["W1"] == f"{m}x{n0}x{n1}" and rows["b1"] == f"{m}x{n1}"  # rows, flat
    assert "B1" not in table
    # The call as the user makes it: rows, flat biases, integer labels.
    call = text.split("in your conventions (paste it next to your function):")[1]
    assert re.search(r"'b1': np\.array\(\[[-0-9]", call) and "dtype='int64')" in call
    assert "per_example = cs231n_mean_kept(params, X, Y)" in call


def test_a_bug_in_course_style_code_is_named():
    def decay_missing(parameters, X, Y):
        m = X.shape[1]
        grads = course_per_example(parameters, X, Y)
        for key in ("dW1", "dW2"):
            grads[key] = grads[key] - LAMBD / m * parameters[key[1:]]
        return grads

    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(decay_missing, COURSE_NET, conventions=COURSE, settings=SETTINGS)
    assert caught.value.bug == "the decay missing from each example"


def test_a_wrong_layout_declaration_is_named():
    # cs231n code declared with columns (its names and labels right): X @ W1 fails.
    columns = Conventions(names="W1/b1", targets="labels")
    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(cs231n_per_example, CS231N_NET, conventions=columns, settings=SETTINGS)
    assert caught.value.verdict == "raised"
    assert "declare layout='rows' (--layout rows)" in str(caught.value)
    # The course's code declared with rows: W1 @ X fails.
    rows = Conventions(layout="rows", names="W1/b1", bias_shape="column")
    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(
            course_per_example, COURSE_NET.with_l2(0.0), conventions=rows, settings=SETTINGS
        )
    assert "declare layout='columns' (--layout columns)" in str(caught.value)


def test_gradients_in_the_other_layouts_shapes_are_named():
    def transposed(params, X, y):  # rows in, each example's W as (n_out, n_in)
        grads = cs231n_per_example(params, X, y)
        return {k: np.swapaxes(v, 1, 2) if k[0] == "W" else v for k, v in grads.items()}

    with pytest.raises(PerExampleMismatch) as caught:
        check_per_example(transposed, CS231N_NET, conventions=CS231N, settings=SETTINGS)
    text = str(caught.value)
    assert "W1: shape (" in text and "the shapes of samples as columns" in text


def test_what_has_no_per_example_meaning_is_refused():
    with pytest.raises(ValueError, match="does not infer conventions"):
        check_per_example(cs231n_per_example, CS231N_NET, conventions="auto")
    with pytest.raises(ValueError, match=r"^reduction: "):
        check_per_example(cs231n_per_example, CS231N_NET, conventions=Conventions(reduction="sum"))
    with pytest.raises(ValueError, match=r"^per_sample: "):
        check_per_example(cs231n_per_example, CS231N_NET, conventions=Conventions(per_sample=True))
    with pytest.raises(ValueError, match=r"^l2: the Net says"):
        check_per_example(
            course_per_example, COURSE_NET.with_l2(0.1), conventions=Conventions(l2=0.1)
        )
    with pytest.raises(TypeError, match=r"^conventions: expected a Conventions"):
        check_per_example(cs231n_per_example, CS231N_NET, conventions={"layout": "rows"})
    with pytest.raises(ValueError, match=r"^targets: "):
        mse = Net.of([2, 1], ["identity"], "mse")
        check_per_example(cs231n_per_example, mse, conventions=Conventions(targets="labels"))
