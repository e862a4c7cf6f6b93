"""The PNG plots of ``manual-bp train`` and ``manual-bp audit`` (matplotlib).

matplotlib is an optional extra (``pip install manual-bp[plots]``) and is
imported only when a plot is drawn.  The figures are ``matplotlib.figure.Figure``
objects saved directly, never through ``pyplot``: no window, no global backend
state, so the plots work headless (the Agg renderer writes the PNG).

Every figure has a fixed size in inches and ``DPI`` dots per inch, and is saved
without tight cropping, so a PNG is exactly ``FIGURE_SIZES[name] * DPI`` pixels:
``loss.png`` 800 x 500, ``boundary.png`` 600 x 540, ``gradient_check.png``
800 x 450 and ``audit.png`` 1100 x 450 per activation swept (width x height).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from manual_bp.cli.extras import require
from manual_bp.network import forward

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from reference.sweep import AuditRow

DPI = 100
FIGURE_SIZES = {
    "loss": (8.0, 5.0),
    "boundary": (6.0, 5.4),
    "gradient_check": (8.0, 4.5),
    "audit": (11.0, 4.5),
}
# Ratios of exactly 0 (bit-identical gradients) cannot sit on a log axis.
SMALLEST_PLOTTED_RATIO = 1e-8


def _figure(name: str, size: tuple[float, float] | None = None) -> Figure:
    Figure = require("plots", "matplotlib.figure", "the plots").Figure

    return Figure(figsize=size or FIGURE_SIZES[name], dpi=DPI)


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, format="png")
    return path


def plot_loss(path: Path, manual: Sequence[float], autodiff: Sequence[float], title: str) -> Path:
    """The two loss curves, overlaid, and their relative difference below.

    ``manual[e]`` and ``autodiff[e]`` are the mean training losses after epoch
    ``e`` (``e = 0`` is the common start).  The lower panel shows
    ``|manual - autodiff| / |autodiff|`` per epoch on a log scale (epochs
    where the two are bit-identical are left out).
    """
    manual, autodiff = np.asarray(manual, float), np.asarray(autodiff, float)
    epochs = np.arange(len(manual))
    figure = _figure("loss")
    curves, difference = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curves.plot(epochs, manual, color="tab:blue", linewidth=3, label="hand-written gradients")
    curves.plot(
        epochs, autodiff, color="tab:orange", linestyle="--", linewidth=1.5, label="jax.grad"
    )
    curves.set_ylabel("mean training loss")
    curves.set_yscale("log")
    curves.set_title(title)
    curves.legend()
    curves.grid(alpha=0.3)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(manual - autodiff) / np.abs(autodiff)
    shown = relative > 0
    difference.semilogy(epochs[shown], relative[shown], ".", color="tab:gray", markersize=3)
    difference.set_ylabel("relative\ndifference")
    difference.set_xlabel("epoch")
    difference.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def plot_boundary(
    path: Path,
    params: Mapping[str, np.ndarray],
    activations: Sequence[str],
    X: np.ndarray,
    Y: np.ndarray,
    title: str,
    resolution: int = 200,
) -> Path:
    """The decision regions of the network over the plane, with the data.

    ``X`` is (2, m) and ``Y`` (nL, m).  With one output (``nL = 1``) the
    background is ``P(class 1) = AL`` from blue (0) to red (1) and the
    boundary is the line ``AL = 0.5``; with several it is coloured by the
    predicted class ``argmax AL``.
    """
    figure = _figure("boundary")
    axes = figure.subplots()
    margin = 0.5
    x_grid, y_grid = np.meshgrid(
        np.linspace(X[0].min() - margin, X[0].max() + margin, resolution),
        np.linspace(X[1].min() - margin, X[1].max() + margin, resolution),
    )
    grid = np.stack([x_grid.ravel(), y_grid.ravel()]).astype(params["W1"].dtype)
    out, _ = forward(params, grid, activations)
    if Y.shape[0] == 1:
        probability = out[0].reshape(x_grid.shape)
        axes.contourf(
            x_grid, y_grid, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6
        )
        axes.contour(x_grid, y_grid, probability, levels=[0.5], colors="black", linewidths=1.5)
        labels = Y[0].astype(int)
        colors = np.array(["tab:blue", "tab:red"])
    else:
        from matplotlib.colors import ListedColormap

        classes = Y.shape[0]
        palette = [f"C{k % 10}" for k in range(classes)]
        predicted = np.argmax(out, axis=0).reshape(x_grid.shape)
        axes.contourf(
            x_grid,
            y_grid,
            predicted,
            levels=np.arange(classes + 1) - 0.5,
            cmap=ListedColormap(palette),
            alpha=0.3,
        )
        labels = np.argmax(Y, axis=0)
        colors = np.array(palette)
    axes.scatter(X[0], X[1], c=colors[labels], s=14, edgecolors="white", linewidths=0.5)
    axes.set_xlabel("x1 (X[0])")
    axes.set_ylabel("x2 (X[1])")
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_gradient_check(path: Path, ratios: Mapping[str, float], title: str) -> Path:
    """One bar per variable: the worst ``|manual - oracle| / tolerance``.

    Log scale; the line at 1 is the tolerance, so a bar above it is a
    mismatch.  The bars of one layer (``Wl``, ``Bl``, ``Zl``, ``Al``) share a
    colour; ratios of 0 are drawn at ``SMALLEST_PLOTTED_RATIO``.
    """
    keys = list(ratios)
    values = np.array([ratios[key] for key in keys], dtype=float)
    heights = np.clip(values, SMALLEST_PLOTTED_RATIO, None)
    heights = np.where(np.isfinite(heights), heights, 1e3)
    layers = [int(key[1:]) for key in keys]
    figure = _figure("gradient_check")
    axes = figure.subplots()
    bars = axes.bar(keys, heights, color=[f"C{layer % 10}" for layer in layers])
    for bar, value in zip(bars, values, strict=True):
        if value > 1:
            bar.set_hatch("//")
            bar.set_edgecolor("black")
    axes.axhline(1.0, color="tab:red", linestyle="--", label="tolerance (error / tolerance = 1)")
    axes.set_yscale("log")
    axes.set_ylim(min(0.5, heights.min() / 3), max(10.0, heights.max() * 3))
    axes.set_ylabel("max |manual - jax.grad| / tolerance")
    axes.set_xlabel("gradient (colour: layer)")
    axes.set_title(title)
    axes.legend(loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def plot_audit(path: Path, rows: Sequence[AuditRow]) -> Path:
    """The relative agreement error against depth (left) and width (right).

    One row of two panels per activation of the sweep, so the PNG is
    ``FIGURE_SIZES["audit"]`` tall per activation.  One line per (width,
    dtype) on the left and per (depth, dtype) on the right; float32 solid with
    circles, float64 dashed with squares.  Log scales; errors of exactly 0
    are left out.
    """
    activations = list(dict.fromkeys(row.activation for row in rows))
    width, height = FIGURE_SIZES["audit"]
    figure = _figure("audit", (width, height * len(activations)))
    panels = figure.subplots(len(activations), 2, squeeze=False)
    for (by_depth, by_width), activation in zip(panels, activations, strict=True):
        _plot_audit_row(by_depth, by_width, [r for r in rows if r.activation == activation])
        by_depth.set_title(f"{activation} hidden layers", loc="left")
    figure.suptitle("hand-written gradients vs jax.grad (float64)")
    figure.tight_layout()
    return _save(figure, path)


def _plot_audit_row(by_depth: Axes, by_width: Axes, rows: Sequence[AuditRow]) -> None:
    styles = {"float32": ("-", "o"), "float64": ("--", "s")}
    for axes, x_name, line_name in ((by_depth, "depth", "width"), (by_width, "width", "depth")):
        line_values = sorted({getattr(row, line_name) for row in rows})
        for index, line_value in enumerate(line_values):
            for dtype, (linestyle, marker) in styles.items():
                points = sorted(
                    (getattr(row, x_name), row.max_rel_error)
                    for row in rows
                    if getattr(row, line_name) == line_value and row.dtype == dtype
                )
                points = [(x, error) for x, error in points if error > 0]
                if not points:
                    continue
                x_values, errors = zip(*points, strict=True)
                axes.plot(
                    x_values,
                    errors,
                    linestyle=linestyle,
                    marker=marker,
                    color=f"C{index % 10}",
                    label=f"{line_name} {line_value}, {dtype}",
                )
        axes.set_xscale("log", base=2)
        x_values = sorted({getattr(row, x_name) for row in rows})
        axes.set_xticks(x_values, [str(x) for x in x_values])
        axes.set_xticks([], minor=True)
        axes.set_yscale("log")
        axes.set_xlabel(
            "depth (hidden layers)" if x_name == "depth" else "width (units per hidden layer)"
        )
        axes.set_ylabel("max |manual - jax.grad| / max |jax.grad|")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small", ncol=2)
