"""A small CNN trained by hand: convolution, ReLU, max pooling, affine, softmax cross-entropy.

The network classifies 8x8 images of a short bar in four orientations
(``manual_bp.data.stripes``), in cs231n's layout (a batch of images is
``(N, C, H, W)``, a batch of features ``(N, D)``, one sample per row)::

    X (N, 1, 8, 8)
    1. convolution, 4 filters 3x3, pad 1   Z1 (N, 4, 8, 8)    manual_bp.convolution
    2. ReLU                                A1 (N, 4, 8, 8)    manual_bp.activations.relu
    3. max pooling 2x2, stride 2           P1 (N, 4, 4, 4)    manual_bp.pooling
    4. flatten                             H  (N, 64)
    5. affine, one sample per row          S  (N, 4)          S = H W2 + b2
    6. softmax cross-entropy               L  = -(1/N) sum_n log softmax(S[n])[y[n]]

``forward`` is written once over an array namespace ``xp``; ``backward`` is
the chain rule written out step by step, from ``dL/dS`` back to ``dL/dw1``.
Training is plain mini-batch SGD.  Every few epochs the hand-written gradients
are compared with ``jax.grad`` of the same ``forward`` run with
``xp=jax.numpy``; the script prints, per parameter, the worst difference
relative to the largest gradient entry (rounding: about 1e-16).  At the end
it draws the learned filters next to a few input images and their feature
maps.

Run from the repository root::

    .venv/bin/python examples/cnn_walkthrough.py                 # 10 epochs, docs/cnn-filters.png
    .venv/bin/python examples/cnn_walkthrough.py --epochs 3 --seed 1 --out /tmp/filters.png
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manual_bp import activations, convolution, pooling
from manual_bp.data import STRIPE_CLASSES, stripes

Array = np.ndarray
Params = dict[str, Array]

SIZE = 8  # the images are SIZE x SIZE, one channel
FILTERS = 4  # convolution: 4 filters of 3x3, stride 1, zero padding 1 (the size is kept)
KERNEL = 3
PAD = 1
POOL = 2  # max pooling: 2x2 windows, stride 2 (the size is halved)
CLASSES = len(STRIPE_CLASSES)
FEATURES = FILTERS * (SIZE // POOL) ** 2  # 4 * 4 * 4 = 64 inputs to the affine layer

TRAIN, TEST = 1000, 400  # samples
BATCH = 16
LEARNING_RATE = 0.3
NOISE = 0.25
CHECK_EVERY = 3  # epochs between gradient checks (and the last epoch)
CHECK_SAMPLES = 64
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "cnn-filters.png"


def init_params(rng: np.random.Generator) -> Params:
    """He initialisation for the filters (fan-in 3x3), small weights for the scores."""
    return {
        "w1": rng.standard_normal((FILTERS, 1, KERNEL, KERNEL)) * np.sqrt(2 / KERNEL**2),
        "b1": np.zeros(FILTERS),
        "W2": rng.standard_normal((FEATURES, CLASSES)) * np.sqrt(1 / FEATURES),
        "b2": np.zeros(CLASSES),
    }


# --- forward: the definition, over numpy or jax.numpy ------------------------------------


def forward(params: Params, X: Array, xp: ModuleType = np) -> tuple[Array, dict[str, Any]]:
    """The scores ``S (N, 4)`` and the cache the backward reads."""
    N = X.shape[0]
    # 1. convolution, 4 filters 3x3, pad 1: (N, 1, 8, 8) -> (N, 4, 8, 8)
    Z1, conv_cache = convolution.forward(X, params["w1"], params["b1"], stride=1, pad=PAD, xp=xp)
    # 2. ReLU, entry by entry
    A1 = activations.relu(Z1, xp)
    # 3. max pooling, 2x2 windows, stride 2: (N, 4, 8, 8) -> (N, 4, 4, 4)
    P1, pool_cache = pooling.max_forward(A1, height=POOL, width=POOL, stride=POOL, xp=xp)
    # 4. flatten: (N, 64), one sample per row
    H = P1.reshape(N, FEATURES)
    # 5. affine: (N, 64) @ (64, 4) + (4,) -> the scores (N, 4)
    S = H @ params["W2"] + params["b2"]
    cache = {"conv": conv_cache, "Z1": Z1, "A1": A1, "pool": pool_cache, "H": H, "W2": params["W2"]}
    return S, cache


def softmax_loss(S: Array, y: Array, xp: ModuleType = np) -> tuple[Array, Array]:
    """``(L, log_probs)``: the mean cross-entropy, from a max-shifted log-softmax (stable)."""
    shifted = S - xp.max(S, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    loss = -xp.mean(log_probs[np.arange(S.shape[0]), y])
    return loss, log_probs


# --- backward: the chain rule, one step per layer, last layer first ------------------------


def backward(log_probs: Array, y: Array, cache: dict[str, Any]) -> Params:
    """``dL/dparams`` from the loss's ``log_probs`` and the forward's cache."""
    N = log_probs.shape[0]
    # 6. softmax cross-entropy: dL/dS = (softmax(S) - onehot(y)) / N
    dS = np.exp(log_probs)
    dS[np.arange(N), y] -= 1
    dS /= N
    # 5. affine S = H W2 + b2: each weight meets every row, so the rows are summed
    dW2 = cache["H"].T @ dS  # (64, 4)
    db2 = dS.sum(axis=0)  # (4,)
    dH = dS @ cache["W2"].T  # (N, 64)
    # 4. flatten: only the shape changes back
    dP1 = dH.reshape(cache["A1"].shape[0], FILTERS, SIZE // POOL, SIZE // POOL)
    # 3. max pooling: each window's gradient goes to its maximum
    dA1 = pooling.max_backward(dP1, cache["pool"])
    # 2. ReLU: passes the gradient where Z1 > 0, blocks it elsewhere
    dZ1 = dA1 * (cache["Z1"] > 0)
    # 1. convolution: dw1 correlates dZ1 with the input, db1 sums dZ1 (dX is not needed)
    _, dw1, db1 = convolution.backward(dZ1, cache["conv"])
    return {"w1": dw1, "b1": db1, "W2": dW2, "b2": db2}


def loss_and_gradients(params: Params, X: Array, y: Array) -> tuple[float, Params]:
    """One forward and one backward pass over the batch ``(X, y)``."""
    S, cache = forward(params, X)
    loss, log_probs = softmax_loss(S, y)
    return float(loss), backward(log_probs, y, cache)


def accuracy(params: Params, X: Array, y: Array) -> float:
    """The fraction of samples whose largest score is their class."""
    return float(np.mean(np.argmax(forward(params, X)[0], axis=1) == y))


# --- the check: jax.grad of the same forward ----------------------------------------------


@functools.cache
def jax_gradients() -> Callable[[Params, Array, Array], dict[str, Any]]:
    """``jax.grad`` of the loss composed from the same ``forward`` with ``xp=jax.numpy``.

    Compiled (``jax.jit``) once per batch shape: one compilation of the whole
    pass instead of one per operation.
    """
    from manual_bp_reference.jax_setup import jax, jnp

    def loss(params: Params, X: Array, y: Array) -> Array:
        return softmax_loss(forward(params, X, jnp)[0], y, jnp)[0]

    return jax.jit(jax.grad(loss))


def gradient_check(params: Params, X: Array, y: Array) -> dict[str, float]:
    """Per parameter: ``max |manual - jax.grad| / max |jax.grad|`` on the batch ``(X, y)``."""
    manual = loss_and_gradients(params, X, y)[1]
    oracle = jax_gradients()(params, X, y)
    worst = {}
    for name, grad in manual.items():
        expected = np.asarray(oracle[name])
        worst[name] = float(np.max(np.abs(grad - expected)) / np.max(np.abs(expected)))
    return worst


# --- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What a run printed: accuracies, gradient checks (epoch, worst per parameter), the figure."""

    train_accuracy: list[float]
    test_accuracy: float
    gradient_checks: list[tuple[int, dict[str, float]]]
    out: Path
    seconds: float

    @property
    def worst_difference(self) -> float:
        """The largest relative difference of every check and parameter."""
        return max(max(worst.values()) for _, worst in self.gradient_checks)


def train(epochs: int, seed: int, out: Path) -> Run:
    """Train, check the gradients every ``CHECK_EVERY`` epochs, draw the figure into ``out``."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    X, y = stripes(TRAIN, noise=NOISE, seed=seed)
    X_test, y_test = stripes(TEST, noise=NOISE, seed=seed + 1)
    params = init_params(rng)
    print(f"train {X.shape}, test {X_test.shape}: classes {', '.join(STRIPE_CLASSES)}")
    train_accuracy: list[float] = []
    checks: list[tuple[int, dict[str, float]]] = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(TRAIN)
        losses = []
        for first in range(0, TRAIN, BATCH):
            batch = order[first : first + BATCH]
            loss, grads = loss_and_gradients(params, X[batch], y[batch])
            for name in params:  # plain SGD
                params[name] -= LEARNING_RATE * grads[name]
            losses.append(loss)
        train_accuracy.append(accuracy(params, X, y))
        print(
            f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  train accuracy {train_accuracy[-1]:.3f}"
        )
        if epoch % CHECK_EVERY == 0 or epoch == epochs:
            worst = gradient_check(params, X[:CHECK_SAMPLES], y[:CHECK_SAMPLES])
            checks.append((epoch, worst))
            print(
                "  gradient check vs jax.grad, max|manual - jax| / max|jax|:  "
                + "  ".join(f"{name} {value:.1e}" for name, value in worst.items())
            )
    test_accuracy = accuracy(params, X_test, y_test)
    print(f"test accuracy {test_accuracy:.3f}")
    draw(params, X_test, y_test, out)
    shown = out.resolve()
    print(f"wrote {shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown}")
    return Run(train_accuracy, test_accuracy, checks, out, time.perf_counter() - start)


# --- the figure ----------------------------------------------------------------------------


def draw(params: Params, X: Array, y: Array, out: Path) -> None:
    """The learned filters (top row) and, per class, an input image and its 4 feature maps."""
    from matplotlib.figure import Figure  # no pyplot: no global state, headless (Agg)

    samples = [int(np.flatnonzero(y == label)[0]) for label in range(CLASSES)]
    S, cache = forward(params, X[samples])
    maps = cache["A1"]  # after the ReLU, (4 samples, 4 filters, 8, 8)
    predicted = np.argmax(S, axis=1)
    w1 = params["w1"][:, 0]
    w_limit = float(np.max(np.abs(w1)))
    map_limit = float(np.max(maps))

    fig = Figure(figsize=(9.5, 10.5))
    axes = fig.subplots(CLASSES + 1, FILTERS + 1, gridspec_kw={"hspace": 0.45})
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    corner = axes[0, 0]
    corner.axis("off")
    corner.text(
        0.5,
        0.5,
        "learned\n3x3 filters\n(red +, blue -)",
        ha="center",
        va="center",
        fontsize=11,
        transform=corner.transAxes,
    )
    for f in range(FILTERS):
        ax = axes[0, f + 1]
        ax.imshow(w1[f], cmap="RdBu_r", vmin=-w_limit, vmax=w_limit)
        for (k, l), value in np.ndenumerate(w1[f]):
            color = "white" if abs(value) > 0.6 * w_limit else "black"
            ax.text(l, k, f"{value:.1f}", ha="center", va="center", fontsize=8, color=color)
        ax.set_title(f"filter {f + 1}", fontsize=11)
    for row, sample in enumerate(samples):
        ax = axes[row + 1, 0]
        ax.imshow(X[sample, 0], cmap="gray")
        truth, guess = STRIPE_CLASSES[y[sample]], STRIPE_CLASSES[predicted[row]]
        ax.set_title(f"input: {truth}", fontsize=10)
        ax.set_xlabel(f"predicted: {guess}", fontsize=9)
        for f in range(FILTERS):
            ax = axes[row + 1, f + 1]
            image = ax.imshow(maps[row, f], cmap="magma", vmin=0, vmax=map_limit)
            ax.set_title(f"filter {f + 1} map", fontsize=9)
    fig.colorbar(image, ax=axes[1:, 1:], shrink=0.6, label="ReLU(conv) activation")
    fig.suptitle(
        "A small CNN on 8x8 bars, trained by hand (examples/cnn_walkthrough.py)\n"
        "top: the 4 learned 3x3 filters;  each row below: a test image "
        f"(noise σ = {NOISE}) and its 4 feature maps ReLU(conv)",
        fontsize=11,
        y=0.95,
    )
    fig.savefig(out, dpi=110, bbox_inches="tight")


# --- the command line ----------------------------------------------------------------------


def _count(text: str) -> int:
    """``--epochs``: an int >= 1 (argparse names the flag and exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    """``--seed``: an int >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnn_walkthrough.py",
        description="Train a tiny CNN by hand on 8x8 bars, check its gradients against "
        "jax.grad and draw its learned filters.",
    )
    parser.add_argument("--epochs", type=_count, default=10, help="epochs of SGD (default 10)")
    parser.add_argument("--seed", type=_seed, default=0, help="data and weights (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="the PNG to write (default: docs/cnn-filters.png in the repository)",
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
    return train(args.epochs, args.seed, out)


if __name__ == "__main__":
    run = main()
    print(f"{run.seconds:.1f} s")
    sys.exit(0)
