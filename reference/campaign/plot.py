"""The histogram's picture."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from manual_bp_reference.campaign.histogram import KINDS, LOG_EDGES
from manual_bp_reference.draws import DTYPES


def plot_histogram(path: Path, summary: Mapping) -> Path:
    """Step histograms of log10(err/tol), one panel per dtype, one line per key kind."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    # Mathtext's tick labels ask for fonts this machine may lack; the fallback is fine.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    totals = summary["totals"]
    figure, axes = plt.subplots(1, len(DTYPES), figsize=(11, 4.2), sharey=True)
    centres = (LOG_EDGES[:-1] + LOG_EDGES[1:]) / 2
    step = LOG_EDGES[1] - LOG_EDGES[0]
    # The underflow and overflow bins are drawn one step beyond each end.
    xs = np.concatenate([[LOG_EDGES[0] - step], centres, [LOG_EDGES[-1] + step / 2]])
    for axis, dtype in zip(axes, DTYPES, strict=True):
        for kind in KINDS:
            counts = np.asarray(totals["histogram"][dtype][kind])
            if counts.sum() == 0:
                continue
            ys = np.where(counts[1:] > 0, counts[1:], np.nan)
            label = f"{kind} ({counts[0]} exact)" if counts[0] else kind
            axis.step(xs, ys, where="mid", label=label)
        axis.axvline(0.0, color="black", linestyle="--", linewidth=1)
        axis.text(-0.1, 0.97, "tolerance", transform=axis.get_xaxis_transform(), va="top",
                  ha="right")  # fmt: skip
        axis.set_xlim(LOG_EDGES[0] - 2 * step, LOG_EDGES[-1] + step)
        axis.set_xticks([*range(-12, 3, 2)])
        axis.set_yscale("log")
        axis.set_xlabel(
            "log10(|manual - oracle| / tolerance) per gradient\n"
            "(the left- and rightmost steps: below 1e-12, at least 1e2)"
        )
        n = totals["examples_by_dtype"][dtype]
        axis.set_title(f"{dtype}: {n} examples")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(title="key kind", fontsize=8, loc="upper left")
        else:  # a campaign of one dtype
            axis.text(0.5, 0.5, f"no {dtype} examples", transform=axis.transAxes, ha="center")
    axes[0].set_ylabel("gradients")
    # Headroom above the highest step for the legends.
    highest = max(
        max(np.max(c[1:]) for c in kinds.values()) for kinds in totals["histogram"].values()
    )
    axes[0].set_ylim(0.5, max(highest, 1) * 3e3)
    config = summary["config"]
    target = Path(config["target"]).name  # a file's name without its folders
    network = config.get("network")
    on = f" on {list(network['layer_sizes'])}" if network else ""
    figure.suptitle(
        f"campaign seed {config['seed']}, target {target}{on}: "
        f"{totals['examples']} examples, {totals['failures']} failing"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
