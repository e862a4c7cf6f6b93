"""``manual-bp demo`` (also ``python -m manual_bp demo``): the main job.

The demo trains the seed's network (2 inputs, two sigmoid hidden layers of 3,
one sigmoid output, binary cross-entropy) on a generated 2-D data set with
the hand-written gradients.  On ``blobs`` (several classes) the output layer
has one softmax unit per class, with cross-entropy.  Every ``--check-every``
epochs it checks every gradient against ``jax.grad`` of the same forward
function and prints a table.  The check needs the ``oracle`` extra (jax):
without it the demo stops at once with one line naming the install (or
``--check-every 0``, which trains without the check).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from manual_bp.cli.arguments import SEED_LAYER_SIZES, add_training_arguments, help_formatter
from manual_bp.cli.extras import ExtraMissingError, require
from manual_bp.cli.progress import progress
from manual_bp.data import DATASETS
from manual_bp.model import DNN
from manual_bp.training import accuracy

DESCRIPTION = """\
Train the seed's network (2 inputs, two sigmoid hidden layers of 3, a sigmoid
output, binary cross-entropy) on a generated 2-D data set with the hand-written
gradients, and check every gradient against jax.grad every --check-every
epochs (0: never, and jax is not needed), one table per check.  On blobs
(3 classes) the output layer is a softmax of 3 units with cross-entropy."""

EXAMPLES = """\
examples:
  manual-bp demo                                  # xor, 200 samples, 300 epochs
  manual-bp demo --dataset moons --epochs 1000 --check-every 250
  manual-bp demo --dataset blobs --lr 0.5         # softmax output, 3 classes
  manual-bp demo --check-every 0 --quiet          # train only: no jax, no progress bar

A progress bar goes to stderr when it is a terminal (not with --quiet).
Exit status: 0 if every gradient check matched, 1 if not, 2 on bad arguments.
"""


def _load_comparison() -> Callable[[DNN, np.ndarray, np.ndarray], Any]:
    """``(net, X, Y) -> Comparison`` with the oracle; without the oracle extra, an
    ``ExtraMissingError`` that also names ``--check-every 0`` (training alone)."""
    try:
        Case = require("oracle", "manual_bp_reference.cases", "demo").Case
        compare = require("oracle", "manual_bp_reference.compare", "demo").compare
        one_network = require("oracle", "manual_bp_reference.oracle", "demo").one_network
    except ExtraMissingError as error:
        raise ExtraMissingError(f"{error} (or --check-every 0: train without the check)") from None

    def compared(net, X, Y):  # one network: its oracle compiled by it, not by a bucket
        with one_network():
            return compare(Case.of_network(net, X, Y))

    return compared


def demo(args: argparse.Namespace) -> int:
    compare = _load_comparison() if args.check_every else None
    X, Y = DATASETS[args.dataset](args.samples, noise=args.noise, seed=args.seed)
    # The seed's hidden layers; the output sized to the data (1 unit, or 1 per class).
    net = DNN([*SEED_LAYER_SIZES[:-1], Y.shape[0]], seed=args.seed)
    print(
        f"{net}\ntraining on {args.dataset} ({args.samples} samples), {args.epochs} epochs, "
        f"batch size {args.batch_size}, learning rate {args.learning_rate}"
    )
    all_match = True
    epoch = 0
    with progress(args.epochs, "training", "epoch", args.quiet) as bar:

        def advance(_epoch: int, loss: float) -> None:
            bar.advance(1, loss=f"{loss:.4g}")

        while True:
            if compare is not None and (epoch % args.check_every == 0 or epoch == args.epochs):
                check = compare(net, X, Y)
                all_match &= check.ok
                bar.print(
                    f"\nepoch {epoch}: loss {net.loss(X, Y):.6f}; manual vs jax.grad (float64), "
                    f"tolerance per entry from the rounding-error bound",
                    check.table(),
                )
            if epoch == args.epochs:
                break
            steps = min(args.check_every or args.epochs, args.epochs - epoch)
            net.fit(X, Y, steps, args.learning_rate, args.batch_size, callback=advance)
            epoch += steps
    fraction = accuracy(net.predict(X), Y)
    print(f"\nfinal loss {net.loss(X, Y):.6f}; training accuracy {100 * fraction:.1f}%")
    if compare is not None:
        print("every gradient matched jax.grad" if all_match else "GRADIENT MISMATCH")
    return 0 if all_match else 1


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "demo",
        help="train the seed's network and check its gradients",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    add_training_arguments(
        run,
        dataset="xor",
        noise=0.1,
        learning_rate=1.0,
        check_every=100,
        zero_checks="none at all, and jax is not needed",
    )
    run.set_defaults(handler=demo)
