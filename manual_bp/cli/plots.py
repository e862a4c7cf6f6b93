"""The PNG plots of ``manual-bp train`` and ``manual-bp audit`` (matplotlib).

matplotlib is an optional extra (``pip install manual-bp[plots]``) and is
imported only when a plot is drawn.  The figures are ``matplotlib.figure.Figure``
objects saved directly, never through ``pyplot``: no window, no global backend
state, so the plots work headless (the Agg renderer writes the PNG).

Every figure has a fixed size in inches and ``DPI`` dots per inch, and is saved
without tight cropping, so a PNG is exactly ``FIGURE_SIZES[name] * DPI`` pixels:
``loss.png`` 800 x 500, ``boundary.png`` 600 x 540, ``gradient_check.png``
800 x 450 and ``audit.png`` 1100 x 450 per activation swept (width x height).

Each ``x_figure(...)`` draws a ``Figure`` (tests read its legends and
titles) and ``save(figure, path)`` writes it.  On the log axes a value of exactly
0 cannot be drawn; it is never dropped: it is marked at the bottom of the
axis with a hollow downward triangle, whose legend entry says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from manual_bp.cli.extras import require
from manual_bp.net import Net
from manual_bp.network import forward

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from manual_bp_reference.sweep import AuditRow

DPI = 100
FIGURE_SIZES = {
    "loss": (8.0, 5.0),
    "boundary": (6.0, 5.4),
    "gradient_check": (8.0, 4.5),
    "audit": (11.0, 4.5),
}
# Ratios of exactly 0 (bit-identical gradients) cannot sit on a log axis.
SMALLEST_PLOTTED_RATIO = 1e-8
ZERO_LABEL = "exactly 0 (marked at the bottom)"
ZERO_MARKER: dict[str, Any] = {
    "marker": "v",
    "markerfacecolor": "none",
    "linestyle": "none",
    "markersize": 7,
}


def _figure(name: str, size: tuple[float, float] | None = None) -> Figure:
    Figure = require("plots", "matplotlib.figure", "the plots").Figure

    return Figure(figsize=size or FIGURE_SIZES[name], dpi=DPI)


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` as a PNG of its exact size (no tight cropping)."""
    figure.savefig(path, dpi=DPI, format="png")
    return path


def zero_floor(values: np.ndarray) -> float:
    """Where exact zeros are marked on a log axis: a decade below the smallest
    positive value (1e-17 if there is none, below any float64 rounding error)."""
    positive = values[np.isfinite(values) & (values > 0)]
    return float(positive.min() / 10) if positive.size else 1e-17


def loss_figure(
    manual: Sequence[float],
    autodiff: Sequence[float],
    title: str,
    labels: tuple[str, str] = ("hand-written gradients", "jax.grad"),
) -> Figure:
    """The two loss curves, overlaid (named by ``labels``), and their relative
    difference below.

    ``manual[e]`` and ``autodiff[e]`` are the mean training losses after epoch
    ``e`` (``e = 0`` is the common start).  The lower panel shows
    ``|manual - autodiff| / |autodiff|`` per epoch on a log scale; epochs where
    the two are bit-identical (a difference of exactly 0) are marked at the
    bottom.
    """
    from matplotlib.ticker import MaxNLocator

    manual_curve, autodiff_curve = np.asarray(manual, float), np.asarray(autodiff, float)
    epochs = np.arange(len(manual_curve))
    figure = _figure("loss")
    curves, difference = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curves.plot(epochs, manual_curve, color="tab:blue", linewidth=3, label=labels[0])
    curves.plot(
        epochs, autodiff_curve, color="tab:orange", linestyle="--", linewidth=1.5, label=labels[1]
    )
    curves.set_ylabel("mean training loss")
    curves.set_yscale("log")
    curves.set_title(title)
    curves.legend()
    curves.grid(alpha=0.3)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(manual_curve - autodiff_curve) / np.abs(autodiff_curve)
    shown, zero = relative > 0, relative == 0
    difference.set_yscale("log")
    if shown.any():
        difference.plot(
            epochs[shown], relative[shown], ".", color="tab:gray", markersize=3, label="above 0"
        )
    if zero.any():
        floor = zero_floor(relative)
        difference.plot(
            epochs[zero], np.full(zero.sum(), floor), color="tab:gray", label=ZERO_LABEL,
            **ZERO_MARKER,
        )  # fmt: skip
        difference.legend(fontsize="x-small", loc="best")
    difference.set_ylabel("relative\ndifference")
    difference.set_xlabel("epoch")
    difference.xaxis.set_major_locator(MaxNLocator(integer=True))
    difference.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def normalization_figure(
    normalized: Sequence[float], plain: Sequence[float], kind: str, title: str
) -> Figure:
    """The loss curves of one net trained with and without ``kind`` normalization.

    Both start from the same weights and see the same mini-batches; each
    value is the mean training loss after an epoch (epoch 0: the start).  A
    curve that stops early diverged.
    """
    from matplotlib.ticker import MaxNLocator

    figure = _figure("loss")
    axes = figure.subplots()
    for values, label, color in (
        (normalized, f"with {kind} normalization", "tab:green"),
        (plain, "without normalization", "tab:gray"),
    ):
        curve = np.asarray(values, float)
        label += f" (final loss {curve[-1]:.3g})"
        axes.plot(np.arange(len(curve)), curve, color=color, linewidth=2, label=label)
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("mean training loss")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(title)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def boundary_figure(
    params: Mapping[str, np.ndarray],
    net: Net,
    X: np.ndarray,
    Y: np.ndarray,
    title: str,
    resolution: int = 200,
    *,
    running: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """The decision regions of the network ``net`` over the plane, with the data.

    The net is evaluated as ``predict`` does, in inference mode: no dropout,
    and batch normalization by its ``running`` statistics.

    ``X`` is (2, m) and ``Y`` (nL, m).  With one output (``nL = 1``) the
    background is ``P(class 1) = AL`` from blue (0) to red (1), with a colour
    bar, and the boundary is the black line ``AL = 0.5``; with several it is
    coloured by the predicted class ``argmax AL``.  The legend names each
    class's points (and region) and the boundary line.
    """
    from matplotlib.lines import Line2D

    figure = _figure("boundary")
    axes = figure.subplots()
    margin = 0.5
    x_grid, y_grid = np.meshgrid(
        np.linspace(X[0].min() - margin, X[0].max() + margin, resolution),
        np.linspace(X[1].min() - margin, X[1].max() + margin, resolution),
    )
    grid = np.stack([x_grid.ravel(), y_grid.ravel()]).astype(params["W1"].dtype)
    out, _ = forward(params, grid, net.without_dropout(), running=running or None)
    if Y.shape[0] == 1:
        probability = out[0].reshape(x_grid.shape)
        regions = axes.contourf(
            x_grid, y_grid, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6
        )
        figure.colorbar(regions, ax=axes, label="P(class 1) = AL", fraction=0.05, pad=0.02)
        axes.contour(x_grid, y_grid, probability, levels=[0.5], colors="black", linewidths=1.5)
        labels = Y[0].astype(int)
        colors = np.array(["tab:blue", "tab:red"])
        names = ["class 0 (Y = 0)", "class 1 (Y = 1)"]
        extra = [Line2D([], [], color="black", linewidth=1.5, label="boundary AL = 0.5")]
        legend_title = None
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
        names = [f"class {k}" for k in range(classes)]
        extra = []
        legend_title = "points: Y, regions: argmax AL"
    axes.scatter(X[0], X[1], c=colors[labels], s=14, edgecolors="white", linewidths=0.5)
    handles = [
        Line2D([], [], linestyle="none", marker="o", markersize=6, color=color,
               markeredgecolor="white", label=name)
        for color, name in zip(colors, names, strict=True)
    ] + extra  # fmt: skip
    axes.legend(
        handles=handles, title=legend_title, loc="best", fontsize="small",
        title_fontsize="small", framealpha=0.85,
    )  # fmt: skip
    axes.set_xlabel("x1 (X[0])")
    axes.set_ylabel("x2 (X[1])")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def gradient_check_figure(ratios: Mapping[str, float], title: str) -> Figure:
    """One bar per variable: the worst ``|manual - oracle| / tolerance``.

        Log scale; the line at 1 is the tolerance, so a bar above it (hatched) is
        a mismatch.  The bars of one layer (``Wl``, ``Bl``, ``Zl``, ``Al``, and a
    normalized layer's ``gammal``, ``betal``, ``Zhatl``, ``Nl``) share a
        colour, named in the legend; a ratio of exactly 0 has no bar on a log
        axis and is marked at the bottom instead.
    """
    from matplotlib.patches import Patch

    keys = list(ratios)
    values = np.array([ratios[key] for key in keys], dtype=float)
    heights = np.where(np.isfinite(values), values, 1e3)
    zero = heights == 0
    floor = min(SMALLEST_PLOTTED_RATIO, zero_floor(heights))
    # The layer is the key's number: W2, Zhat2 and gamma2 are all layer 2's.
    layers = [int(key[len(key.rstrip("0123456789")) :]) for key in keys]
    figure = _figure("gradient_check")
    axes = figure.subplots()
    bars = axes.bar(keys, np.where(zero, np.nan, heights), color=[f"C{l % 10}" for l in layers])
    for bar, value in zip(bars, values, strict=True):
        if value > 1:
            bar.set_hatch("//")
            bar.set_edgecolor("black")
    tolerance = axes.axhline(1.0, color="tab:red", linestyle="--", label="tolerance")
    handles: list[Any] = [
        Patch(color=f"C{l % 10}", label=f"layer {l}" if l else "input (A0)")
        for l in sorted(set(layers))
    ]
    handles.append(tolerance)
    if zero.any():
        (marks,) = axes.plot(
            np.flatnonzero(zero), np.full(zero.sum(), floor * 1.5), color="black",
            label=ZERO_LABEL, **ZERO_MARKER,
        )  # fmt: skip
        handles.append(marks)
    if (values > 1).any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="mismatch"))
    axes.set_yscale("log")
    shown = heights[~zero]
    axes.set_ylim(
        min(0.5, floor, shown.min() / 3 if shown.size else 1.0),
        max(1e3, shown.max() * 30 if shown.size else 1e3),  # room for the legend above 1
    )
    axes.set_ylabel("max |manual - jax.grad| / tolerance")
    axes.set_xlabel("gradient")
    if len(keys) > 16:  # deep or normalized nets: upright names that do not overlap
        axes.tick_params(axis="x", labelrotation=90, labelsize="x-small")
    axes.set_title(title)
    axes.legend(handles=handles, loc="upper right", fontsize="small", ncol=4)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def audit_figure(rows: Sequence[AuditRow]) -> Figure:
    """The relative agreement error against depth (left) and width (right).

    One row of two panels per activation of the sweep, so the PNG is
    ``FIGURE_SIZES["audit"]`` tall per activation.  One line per (width,
    dtype) on the left and per (depth, dtype) on the right; float32 solid with
    circles, float64 dashed with squares.  Log scales; an error of exactly 0
    is marked at the bottom with a hollow triangle of its line's colour.  The
    title names the dtypes drawn; the oracle is always float64.
    """
    activations = list(dict.fromkeys(row.activation for row in rows))
    dtypes = sorted({row.dtype for row in rows})
    floor = zero_floor(np.array([row.max_rel_error for row in rows], dtype=float))
    width, height = FIGURE_SIZES["audit"]
    figure = _figure("audit", (width, height * len(activations)))
    panels = figure.subplots(len(activations), 2, squeeze=False)
    for (by_depth, by_width), activation in zip(panels, activations, strict=True):
        _plot_audit_row(by_depth, by_width, [r for r in rows if r.activation == activation], floor)
        by_depth.set_title(f"{activation} hidden layers", loc="left")
    figure.suptitle(
        f"hand-written gradients in {' and '.join(dtypes)} vs jax.grad in float64: relative error"
    )
    figure.tight_layout()
    return figure


def _plot_audit_row(by_depth: Axes, by_width: Axes, rows: Sequence[AuditRow], floor: float) -> None:
    styles = {"float32": ("-", "o"), "float64": ("--", "s")}
    for axes, x_name, line_name in ((by_depth, "depth", "width"), (by_width, "width", "depth")):
        line_values = sorted({getattr(row, line_name) for row in rows})
        any_zero = False
        for index, line_value in enumerate(line_values):
            for dtype, (linestyle, marker) in styles.items():
                points = sorted(
                    (getattr(row, x_name), row.max_rel_error)
                    for row in rows
                    if getattr(row, line_name) == line_value and row.dtype == dtype
                )
                if not points:
                    continue
                color = f"C{index % 10}"
                label = f"{line_name} {line_value}, {dtype}"
                drawn = [(x, error) for x, error in points if error > 0]
                if drawn:
                    x_values, errors = zip(*drawn, strict=True)
                    axes.plot(
                        x_values, errors, linestyle=linestyle, marker=marker, color=color,
                        label=label,
                    )  # fmt: skip
                zeros = [x for x, error in points if error == 0]
                if zeros:
                    any_zero = True
                    axes.plot(
                        zeros, [floor] * len(zeros), color=color,
                        label=None if drawn else label, **ZERO_MARKER,
                    )  # fmt: skip
        if any_zero:
            axes.plot([], [], color="black", label=ZERO_LABEL, **ZERO_MARKER)
        axes.set_xscale("log", base=2)
        ticks = sorted({getattr(row, x_name) for row in rows})
        axes.set_xticks(ticks, [str(x) for x in ticks])
        axes.set_xticks([], minor=True)
        axes.set_yscale("log")
        axes.set_xlabel(
            "depth (hidden layers)" if x_name == "depth" else "width (units per hidden layer)"
        )
        axes.set_ylabel("max |manual - jax.grad| / max |jax.grad|")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small", ncol=2)
