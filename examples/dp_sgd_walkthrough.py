"""DP-SGD by hand on two moons: per-example gradients, clipping, noise, next to plain SGD.

The network is ``[2, 16, 16, 1]``, tanh, tanh, sigmoid with binary
cross-entropy, the batch as columns (``X (2, m)``, ``Y (1, m)``, as
``manual_bp.network``).  Each step of DP-SGD (``manual_bp.dp_sgd.DPSGD``)::

    g_i   = dl_i/dθ, i = 1..B           manual_bp.per_example.per_example_gradients
                                        (one backward pass, dZl unaveraged, outer products)
    s_i   = min(1, C / ||g_i||)         each example's WHOLE gradient clipped to norm C
    g~    = (1/B) sum_i s_i g_i + (σ C / B) ξ,   ξ ~ N(0, I), seeded
    θ    <- θ - lr g~                   the wrapped optimizer, SGD here

Plain SGD trains a copy of the same initial weights on the same mini-batches
with the mean gradient (``network.backward``), so the two accuracy columns
differ only by the clipping and the noise.  Every ``--check-every`` steps the
hand-written per-example gradients of the current mini-batch are compared
with ``jax.vmap(jax.grad(...))`` of the same loss (``network.batch_loss``
with ``xp=jax.numpy`` on one column, vmapped over the columns): the script
prints the worst ``max |manual - jax| / max |jax|`` over the parameters
(rounding: about 1e-16).  At the end it draws the histogram of the
per-example gradient norms ``||g_i||`` over the training set, before and
after clipping, at the start and at the end of training.

Run from the repository root::

    .venv/bin/python examples/dp_sgd_walkthrough.py               # docs/dp-sgd-norms.png
    .venv/bin/python examples/dp_sgd_walkthrough.py --epochs 5 --sigma 0.5 --out /tmp/n.png
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from manual_bp import Net, network
from manual_bp.data import two_moons
from manual_bp.dp_sgd import DPSGD
from manual_bp.optimizers import SGD
from manual_bp.per_example import per_example_gradients, per_example_norms
from manual_bp.training import accuracy

Array = np.ndarray
Params = dict[str, Array]

SIZES = [2, 16, 16, 1]
ACTIVATIONS = ["tanh", "tanh", "sigmoid"]
NET = Net.of(SIZES, ACTIVATIONS, loss="binary_cross_entropy")
TRAIN, TEST = 512, 512  # samples; TRAIN is a multiple of BATCH: every batch has one shape
BATCH = 64
NOISE = 0.15  # the moons' noise
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "dp-sgd-norms.png"


# --- the check: jax.vmap(jax.grad) of the same loss ---------------------------------------


@functools.cache
def jax_per_example() -> Callable[[Params, Array, Array], dict[str, Array]]:
    """``jax.vmap(jax.grad(l))`` over the columns, ``l(θ, x, y)`` the loss of one column.

    ``l`` is ``network.batch_loss`` of the column as a batch of one, with
    ``xp=jax.numpy``: the same definition the hand-written backward differentiates.
    Compiled once per batch shape (``jax.jit``).
    """
    from manual_bp_reference.jax_setup import jax, jnp

    def one_example(params: Params, x: Array, y: Array) -> Array:
        return network.batch_loss(params, x[:, None], y[:, None], NET, xp=jnp)

    return jax.jit(jax.vmap(jax.grad(one_example), in_axes=(None, 1, 1)))


def per_example_check(params: Params, X: Array, Y: Array) -> float:
    """Worst over the parameters of ``max |manual - jax| / max |jax|``, per-example gradients."""
    manual = per_example_gradients(params, X, Y, NET)
    oracle = jax_per_example()(params, X, Y)
    worst = 0.0
    for key, grads in manual.items():
        expected = np.asarray(oracle[key])  # (B, *shape), as manual
        scale = float(np.max(np.abs(expected)))
        worst = max(worst, float(np.max(np.abs(grads - expected))) / scale if scale else 0.0)
    return worst


# --- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Norms:
    """The per-example gradient norms over the training set at one moment, and ``C``."""

    before: Array  # ||g_i||, (TRAIN,)
    clip: float

    @property
    def after(self) -> Array:
        """``||s_i g_i|| = min(||g_i||, C)``."""
        return np.minimum(self.before, self.clip)

    @property
    def clipped_fraction(self) -> float:
        return float(np.mean(self.before > self.clip))


@dataclass(frozen=True)
class Run:
    """What a run printed: accuracies per epoch, the gradient checks, the norms, the figure."""

    dp_accuracy: list[float]
    sgd_accuracy: list[float]
    dp_test_accuracy: float
    sgd_test_accuracy: float
    checks: list[tuple[int, float]] = field(default_factory=list)  # (step, worst difference)
    start: Norms | None = None
    end: Norms | None = None
    out: Path = DEFAULT_OUT
    seconds: float = 0.0

    @property
    def worst_difference(self) -> float:
        return max(worst for _, worst in self.checks)


def predict_accuracy(params: Params, X: Array, Y: Array) -> float:
    return accuracy(network.forward(params, X, NET)[0], Y)


def train(
    epochs: int, clip: float, sigma: float, lr: float, check_every: int, seed: int, out: Path
) -> Run:
    """DP-SGD and plain SGD side by side; checks every ``check_every`` steps; the figure."""
    start_time = time.perf_counter()
    X, Y = two_moons(TRAIN, noise=NOISE, seed=seed)
    X_test, Y_test = two_moons(TEST, noise=NOISE, seed=seed + 1)
    params = network.init_params(SIZES, ACTIVATIONS, seed=seed)
    dp = DPSGD(clip=clip, noise_multiplier=sigma, optimizer=SGD(learning_rate=lr))
    sgd = SGD(learning_rate=lr)
    dp_params, dp_state = params, dp.init(params, seed=seed)
    sgd_params, sgd_state = params, sgd.init(params)
    print(
        f"two moons: train {X.shape}, test {X_test.shape}; net {SIZES} "
        f"{'/'.join(ACTIVATIONS)}; batch {BATCH}, lr {lr}"
    )
    print(
        f"DP-SGD: clip C = {clip}, noise multiplier σ = {sigma} "
        f"(noise std σC/B = {sigma * clip / BATCH:.2g} per entry)"
    )
    start = Norms(per_example_norms(params, X, Y, NET), clip)
    print(
        f"start: median ||g_i|| {np.median(start.before):.3g}, "
        f"{100 * start.clipped_fraction:.0f}% of the examples above C"
    )
    print(f"{'epoch':>5}  {'DP-SGD acc':>10}  {'SGD acc':>8}")
    rng = np.random.default_rng(seed)
    dp_accuracy: list[float] = []
    sgd_accuracy: list[float] = []
    checks: list[tuple[int, float]] = []
    step = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(TRAIN)
        for first in range(0, TRAIN, BATCH):
            batch = order[first : first + BATCH]
            Xb, Yb = X[:, batch], Y[:, batch]
            per_example = per_example_gradients(dp_params, Xb, Yb, NET)
            if step % check_every == 0:
                worst = per_example_check(dp_params, Xb, Yb)
                checks.append((step, worst))
                print(
                    f"  step {step:4d}: per-example grads vs jax.vmap(jax.grad), "
                    f"max|manual - jax| / max|jax| = {worst:.1e}"
                )
            dp_params, dp_state = dp.update(per_example, dp_state, dp_params)
            grads = network.backward(network.forward(sgd_params, Xb, NET)[1], Yb, NET)
            mean = {key: grads[key] for key in sgd_params}  # backward also returns dZl, dAl
            sgd_params, sgd_state = sgd.update(mean, sgd_state, sgd_params)
            step += 1
        dp_accuracy.append(predict_accuracy(dp_params, X, Y))
        sgd_accuracy.append(predict_accuracy(sgd_params, X, Y))
        print(f"{epoch:5d}  {dp_accuracy[-1]:10.3f}  {sgd_accuracy[-1]:8.3f}")
    dp_test = predict_accuracy(dp_params, X_test, Y_test)
    sgd_test = predict_accuracy(sgd_params, X_test, Y_test)
    print(f"test accuracy: DP-SGD {dp_test:.3f}, SGD {sgd_test:.3f}")
    end = Norms(per_example_norms(dp_params, X, Y, NET), clip)
    print(
        f"end (DP-SGD's weights): median ||g_i|| {np.median(end.before):.3g}, "
        f"{100 * end.clipped_fraction:.0f}% of the examples above C"
    )
    draw(start, end, sigma, out)
    shown = out.resolve()
    print(f"wrote {shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown}")
    return Run(
        dp_accuracy,
        sgd_accuracy,
        dp_test,
        sgd_test,
        checks,
        start,
        end,
        out,
        time.perf_counter() - start_time,
    )


# --- the figure ----------------------------------------------------------------------------


def draw(start: Norms, end: Norms, sigma: float, out: Path) -> None:
    """Two panels (start, end): histograms of ``||g_i||`` before and after clipping, log x."""
    from matplotlib.figure import Figure  # no pyplot: no global state, headless (Agg)

    every = np.concatenate([start.before, end.before])
    positive = every[every > 0]
    low = max(float(positive.min()) if positive.size else 1e-6, 1e-6 * start.clip)
    high = max(float(every.max()), start.clip) * 1.5
    bins = np.geomspace(low, high, 40)
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, norms, when in zip(axes, (start, end), ("at the start", "at the end"), strict=True):
        ax.hist(
            np.maximum(norms.before, low),
            bins=bins,
            color="tab:blue",
            alpha=0.6,
            label="before clipping: ||g_i||",
        )
        ax.hist(
            np.maximum(norms.after, low),
            bins=bins,
            histtype="step",
            color="tab:red",
            linewidth=2,
            label="after clipping: min(||g_i||, C)",
        )
        ax.axvline(
            norms.clip, color="black", linestyle="--", linewidth=1.5, label=f"C = {norms.clip:g}"
        )
        ax.set_xscale("log")
        ax.set_xlabel("per-example gradient norm ||g_i|| (log scale)")
        ax.set_title(
            f"{when} of training: {100 * norms.clipped_fraction:.0f}% of examples clipped",
            fontsize=11,
        )
        ax.legend(fontsize=9, loc="upper left")
    axes[0].set_ylabel(f"examples (of {start.before.size})")
    fig.suptitle(
        f"DP-SGD on two moons, net {SIZES}: per-example gradient norms over the training set "
        f"(σ = {sigma:g})",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


# --- the command line ----------------------------------------------------------------------


def _number(kind: type, minimum: float, strict: bool) -> Callable[[str], float]:
    """An argparse type: a ``kind`` (int or float) ``> minimum`` (strict) or ``>= minimum``."""
    relation = ">" if strict else ">="
    expected = f"expected {'an int' if kind is int else 'a float'} {relation} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not np.isfinite(value) or (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"{expected}, got {value}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dp_sgd_walkthrough.py",
        description="Train a small net on two moons with DP-SGD and with plain SGD, check the "
        "per-example gradients against jax.vmap(jax.grad) and draw their norms.",
    )
    parser.add_argument("--epochs", type=_number(int, 1, False), default=30, help="default 30")
    parser.add_argument("--clip", type=_number(float, 0, True), default=1.0, help="C (default 1)")
    parser.add_argument(
        "--sigma", type=_number(float, 0, False), default=1.0, help="noise multiplier σ (default 1)"
    )
    parser.add_argument("--lr", type=_number(float, 0, True), default=0.5, help="default 0.5")
    parser.add_argument(
        "--check-every",
        type=_number(int, 1, False),
        default=64,
        help="steps between per-example gradient checks (default 64)",
    )
    parser.add_argument("--seed", type=_number(int, 0, False), default=0, help="default 0")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="the PNG to write (default: docs/dp-sgd-norms.png in the repository)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> Run:
    """Parse the flags (exit 2 on a bad one) and run."""
    cli = parser()
    args = cli.parse_args(argv)
    out: Path = args.out
    if out.suffix.lower() != ".png":
        cli.error(f"argument --out: expected a path ending in .png, got {str(out)!r}")
    if not out.parent.is_dir():
        cli.error(f"argument --out: expected an existing folder, got {str(out.parent)!r}")
    return train(args.epochs, args.clip, args.sigma, args.lr, args.check_every, args.seed, out)


if __name__ == "__main__":
    run = main()
    print(f"{run.seconds:.1f} s")
    sys.exit(0)
