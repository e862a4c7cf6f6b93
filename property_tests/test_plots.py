"""The PNGs a reader sees: legends for classes, boundary and layer colours, titles
that match what is drawn, and exact zeros marked on log axes instead of dropped."""

import numpy as np
import pytest

from manual_bp import DNN
from manual_bp.cli import plots
from manual_bp_reference.sweep import AuditRow

pytest.importorskip("matplotlib")


def legend_texts(axes) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


def zero_marks(axes) -> list:
    """The lines drawn with the hollow triangle that marks exact zeros."""
    return [line for line in axes.get_lines() if line.get_marker() == "v" and len(line.get_xdata())]


def test_the_boundary_plot_names_both_classes_and_the_boundary_line():
    net = DNN([2, 3, 1], seed=0)
    X = np.array([[0.0, 1.0, -1.0, 0.5], [1.0, 0.0, 0.5, -1.0]])
    Y = np.array([[0.0, 1.0, 0.0, 1.0]])
    figure = plots.boundary_figure(net.params, net.net, X, Y, "t", resolution=20)
    axes = figure.axes[0]
    assert legend_texts(axes) == ["class 0 (Y = 0)", "class 1 (Y = 1)", "boundary AL = 0.5"]
    assert figure.axes[1].get_ylabel() == "P(class 1) = AL"  # the colour bar


def test_the_boundary_plot_names_every_class_of_a_softmax_net():
    net = DNN([2, 3, 4], seed=0)
    X = np.arange(8.0).reshape(2, 4)
    Y = np.eye(4)
    figure = plots.boundary_figure(net.params, net.net, X, Y, "t", resolution=20)
    assert legend_texts(figure.axes[0]) == [f"class {k}" for k in range(4)]
    assert "argmax AL" in figure.axes[0].get_legend().get_title().get_text()


def test_the_gradient_check_plot_names_the_layer_colours_and_marks_zeros():
    ratios = {"W1": 0.0, "B1": 0.02, "Z1": 0.0, "W2": 3.0, "B2": 1e-3, "Z2": 0.1}
    axes = plots.gradient_check_figure(ratios, "t").axes[0]
    texts = legend_texts(axes)
    assert texts[:3] == ["layer 1", "layer 2", "tolerance"]
    assert plots.ZERO_LABEL in texts and "mismatch" in texts
    (marks,) = zero_marks(axes)
    assert list(marks.get_xdata()) == [0, 2]  # W1 and Z1, whose ratio is exactly 0
    assert axes.get_ylim()[0] <= min(marks.get_ydata())


def row(depth, width, dtype, error, activation="relu"):
    return AuditRow(depth, width, dtype, activation, 16, error, error, error, True)


def test_the_audit_title_names_the_dtypes_drawn():
    both = [row(1, 2, "float32", 1e-7), row(1, 2, "float64", 1e-16)]
    assert "float32 and float64" in plots.audit_figure(both).texts[0].get_text()
    only = plots.audit_figure([row(1, 2, "float32", 1e-7)]).texts[0].get_text()
    assert "in float32 vs jax.grad in float64" in only and "float64 vs" not in only


def test_an_exact_zero_error_is_marked_on_the_audit_plot_not_dropped():
    rows = [row(1, 2, "float64", 4e-16), row(8, 2, "float64", 0.0), row(1, 8, "float64", 0.0)]
    by_depth, by_width = plots.audit_figure(rows).axes
    for axes in (by_depth, by_width):
        marks = zero_marks(axes)
        assert sum(len(line.get_xdata()) for line in marks) == 2
        assert plots.ZERO_LABEL in legend_texts(axes)
        assert all(y == pytest.approx(4e-17) for line in marks for y in line.get_ydata())


def test_epochs_with_bit_identical_losses_are_marked_on_the_loss_plot():
    _, difference = plots.loss_figure([1.0, 0.5, 0.25], [1.0, 0.5, 0.25 + 1e-16], "t").axes
    (marks,) = zero_marks(difference)
    assert list(marks.get_xdata()) == [0, 1]
    assert plots.ZERO_LABEL in legend_texts(difference)
