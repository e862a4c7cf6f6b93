"""Every report renders as HTML in a notebook, says what its text says, and
never lets the user's code write HTML into it.

``_repr_html_`` is what Jupyter shows for ``report`` or ``display(mismatch)``
(``manual_bp_reference.html_report``).  These tests read the HTML as a
browser would (``html.parser``): the verdict, every key with the err/tol the
text prints, the likely bug, the pasteable case, and the per-layer picture's
red cell where the gradient is wrong.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from manual_bp import DNN, Net
from manual_bp.optimizers import SGD
from manual_bp_reference import html_report
from manual_bp_reference.cases import Case
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.compare import compare
from manual_bp_reference.layer_check import LayerMismatch, check_layer
from manual_bp_reference.optimizer_check import OptimizerMismatch, check_optimizer
from manual_bp_reference.settings import Settings

NET = Net.of([2, 3, 1], ["tanh", "sigmoid"])
FEW = Settings(max_examples=20)


def backprop(params, X, Y, *, bug=False, shout=""):
    """The course's two-layer backprop; ``bug``: tanh' written as 1 - A."""
    if shout:
        print(shout)
    W1, b1, W2, b2 = params["W1"], params["B1"], params["W2"], params["B2"]
    m = X.shape[1]
    A1 = np.tanh(W1 @ X + b1)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
    dZ2 = (A2 - Y) / m
    dZ1 = (W2.T @ dZ2) * ((1 - A1) if bug else (1 - A1**2))
    return {"W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True)}  # fmt: skip


def buggy(params, X, Y):
    return backprop(params, X, Y, bug=True, shout="<script>alert('x')</script> & <b>bold</b>")


class Page(HTMLParser):
    """The tags, the visible text, and every SVG cell's title and colour."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.cells: dict[str, str] = {}
        self._fill: str | None = None
        self._in_title = False
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "rect":
            self._fill = dict(attrs)["fill"]
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title and self._fill is not None:
            self.cells.setdefault(data.split(":")[0], self._fill)  # the first picture

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def is_red(fill: str) -> bool:
    red, green = int(fill[1:3], 16), int(fill[3:5], 16)
    return red > green


@pytest.fixture(scope="module")
def mismatch() -> GradientMismatch:
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(buggy, NET, settings=FEW)
    return caught.value


def test_a_passing_check_shows_its_verdict_and_each_keys_worst_ratio():
    report = check_gradients(backprop, NET, settings=FEW)
    page = Page(report._repr_html_())
    assert "PASS: 20 examples" in page.visible
    for key, ratio in report.worst.items():
        assert f"{key} {ratio:.2g}" in page.visible
        assert not is_red(page.cells[key]), f"{key} passed, its cell must not be red"
    assert "seed 0" in page.visible
    assert "script" not in page.tags and "style" not in page.tags


def test_a_mismatch_shows_verdict_table_likely_bug_picture_and_pasteable_case(mismatch):
    page = Page(mismatch._repr_html_())
    text = str(mismatch)
    assert "verdict: wrong" in page.visible
    assert "wrong activation derivative" in page.visible  # the likely bug
    # Every err/tol the text's minimal-case table prints is in the HTML's.
    table = text.split("minimal case:", 1)[1]
    ratios = re.findall(r"^(W1|B1|W2|B2) .* ([0-9.]+e[+-]\d+) +(?:yes|NO)$", table, re.M)[:4]
    assert [key for key, _ in ratios] == ["W1", "B1", "W2", "B2"]
    for key, ratio in ratios:
        assert ratio in page.visible, key
    failing = [v.key for v in mismatch.comparison.failures()]
    assert failing and all(is_red(page.cells[key]) for key in failing)
    assert all(not is_red(page.cells[k]) for k in page.cells if k not in failing)
    assert repr(mismatch.case).split("(", 1)[0] in page.visible  # the pasteable case
    assert "details" in page.tags  # collapsible sections


def test_what_the_users_code_prints_is_shown_as_text_never_as_html(mismatch):
    markup = mismatch._repr_html_()
    page = Page(markup)
    assert "<script>" not in markup and "<b>bold" not in markup and "script" not in page.tags
    assert "<script>alert('x')</script> & <b>bold</b>" in page.visible


def test_compare_renders_its_table_and_likely_bug():
    net = DNN([2, 3, 3, 1], ["relu", "tanh", "sigmoid"], seed=1)
    X = np.random.default_rng(2).standard_normal((2, 8))
    Y = np.array([[0.0, 1, 1, 0, 1, 0, 0, 1]])
    grads = net.compute_gradients(*net.forward(X, Y))
    grads["B2"] = grads["B2"] + 1.0
    comparison = compare(Case(net.net, net.params, X, Y), grads)
    page = Page(comparison._repr_html_())
    assert comparison.status() in page.visible
    assert is_red(page.cells["B2"]) and not is_red(page.cells["W3"])
    assert "Diagnosis." in page.visible and comparison.diagnosis.key in page.visible


def test_a_layer_mismatch_names_its_outputs():
    def affine_backward(dout, cache):
        x, w, _ = cache
        dx = (dout @ w.T).reshape(x.shape)
        dw = x.reshape(x.shape[0], -1).T @ dout
        return dx, dw, 2 * dout.sum(axis=0)

    with pytest.raises(LayerMismatch) as caught:
        check_layer(affine_backward, "affine", settings=FEW)
    page = Page(caught.value._repr_html_())
    assert "verdict: wrong (affine" in page.visible
    assert "output" in page.visible and "db" in page.visible


def test_an_optimizer_report_and_mismatch_render():
    def update(grads, state, params):
        return {k: params[k] - 0.1 * grads[k] for k in params}, state

    def wrong(grads, state, params):
        return {k: params[k] + 0.1 * grads[k] for k in params}, state

    report = check_optimizer(update, SGD(0.1), settings=FEW)
    assert "PASS: sgd" in Page(report._repr_html_()).visible
    with pytest.raises(OptimizerMismatch) as caught:
        check_optimizer(wrong, SGD(0.1), settings=FEW)
    page = Page(caught.value._repr_html_())
    assert "verdict: wrong" in page.visible and "params['W1']" in page.visible


@pytest.mark.parametrize(
    ("ratio", "red"), [(0.0, False), (1e-3, False), (1.0, False), (1.5, True), (np.inf, True)]
)
def test_the_colour_turns_red_exactly_above_the_tolerance(ratio, red):
    assert is_red(html_report.colour(ratio)) is red


def test_the_picture_needs_layer_numbers():
    assert html_report.layer_picture({"dx": 0.1, "dw": 2.0}) == ""
    picture = html_report.layer_picture({"W1": 0.1, "W2": 2.0, "gamma1": 0.5})
    assert Page(picture).cells.keys() == {"W1", "W2", "gamma1"}


def test_outside_a_kernel_ipython_shows_the_text_report_not_the_checkers_frames(mismatch):
    lines = mismatch._render_traceback_()
    assert lines == ("GradientMismatch: " + str(mismatch)).splitlines()


def test_reports_name_the_users_function_and_keys(mismatch, tmp_path):
    """The pasteable call is the user's own function; a pass names ``b1`` as
    the user's code does."""
    assert "grads = buggy(params, X, Y)" in str(mismatch)

    def course(parameters, X, Y):
        renamed = {"W1": parameters["W1"], "B1": parameters["b1"],
                   "W2": parameters["W2"], "B2": parameters["b2"]}  # fmt: skip
        grads = backprop(renamed, X, Y)
        return {"dW1": grads["W1"], "db1": grads["B1"], "dW2": grads["W2"], "db2": grads["B2"]}

    report = check_gradients(course, NET, settings=FEW)
    assert "b1 " in str(report).split("\n")[1] and "B1" not in str(report).split("\n")[1]
    assert "<code>b1</code>" in report._repr_html_()
