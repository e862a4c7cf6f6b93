"""``manual-bp demo`` (also ``python -m manual_bp demo``): the main job.

The demo trains the seed's network (2 inputs, two sigmoid hidden layers of 3,
one sigmoid output, binary cross-entropy) on a generated 2-D data set with
the hand-written gradients.  Every ``--check-every`` epochs it checks every
gradient against ``jax.grad`` of the same forward function and prints a table.
The check needs the ``oracle`` extra (jax); the training itself does not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from manual_bp.cli.arguments import SEED_LAYER_SIZES
from manual_bp.cli.extras import ExtraMissingError, require
from manual_bp.data import DATASETS
from manual_bp.model import DNN


def _load_comparison() -> Callable[[DNN, np.ndarray, np.ndarray], Any] | None:
    """``(net, X, Y) -> Comparison`` with the oracle, or None (and a note) without
    the oracle extra: the demo trains without it."""
    try:
        Case = require("oracle", "reference.cases", "the gradient check").Case
        compare = require("oracle", "reference.compare", "the gradient check").compare
    except ExtraMissingError as error:
        print(f"gradient check skipped: {error}", file=sys.stderr)
        return None
    return lambda net, X, Y: compare(Case.of_network(net, X, Y))


def demo(args: argparse.Namespace) -> int:
    X, Y = DATASETS[args.dataset](args.samples, noise=args.noise, seed=args.seed)
    net = DNN(SEED_LAYER_SIZES, seed=args.seed)
    print(
        f"{net}\ntraining on {args.dataset} ({args.samples} samples), {args.epochs} epochs, "
        f"batch size {args.batch_size}, learning rate {args.learning_rate}"
    )
    compare = _load_comparison() if args.check_every else None
    all_match = True
    epoch = 0
    while True:
        if compare is not None and (epoch % args.check_every == 0 or epoch == args.epochs):
            check = compare(net, X, Y)
            all_match &= check.ok
            print(
                f"\nepoch {epoch}: loss {net.loss(X, Y):.6f}; manual vs jax.grad (float64), "
                f"tolerance per entry from the rounding-error bound"
            )
            print(check.table())
        if epoch == args.epochs:
            break
        steps = min(args.check_every or args.epochs, args.epochs - epoch)
        net.fit(X, Y, epochs=steps, learning_rate=args.learning_rate, batch_size=args.batch_size)
        epoch += steps
    accuracy = float(np.mean((net.predict(X) > 0.5) == (Y > 0.5)))
    print(f"\nfinal loss {net.loss(X, Y):.6f}; training accuracy {100 * accuracy:.1f}%")
    if compare is not None:
        print("every gradient matched jax.grad" if all_match else "GRADIENT MISMATCH")
    return 0 if all_match else 1


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("demo", help="train the seed's network and check its gradients")
    run.add_argument("--dataset", choices=sorted(DATASETS), default="xor")
    run.add_argument("--samples", type=int, default=200)
    run.add_argument("--noise", type=float, default=0.1)
    run.add_argument("--epochs", type=int, default=300)
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--learning-rate", type=float, default=1.0)
    run.add_argument(
        "--check-every", type=int, default=100, help="epochs between gradient checks (0: never)"
    )
    run.add_argument("--seed", type=int, default=0)
    run.set_defaults(handler=demo)
