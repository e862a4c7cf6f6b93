"""``manual-bp train``: train on a 2-D data set, check the gradients, plot.

Two copies of one network start from the same parameters and see the same
mini-batches in the same order:

* the *manual* net is trained by ``DNN.fit`` on the hand-written gradients;
* the *autodiff* net is trained by ``manual_bp_reference.autodiff_training`` on
  ``jax.grad`` gradients of the same forward function (float64), each step
  taken by optax (``manual_bp_reference.optimizer_oracle.OptaxOptimizer``).

``--normalization batch|layer`` puts a normalization step in every hidden
layer, and a third net, the same without it (same start, same mini-batches),
is trained by hand beside it: ``normalization.png`` shows both loss curves.

``--optimizer`` picks the rule (``sgd``, ``momentum``, ``rmsprop``, ``adam``,
``adamw``, with conventions as ``rmsprop:eps_in_sqrt=false``): the manual net
steps with the hand-written ``manual_bp.optimizers`` one, the other with
optax's.

Their loss curves must coincide up to rounding.  Every ``--check-every``
epochs the manual net's gradients are also compared entry by entry with the
oracle (``manual_bp_reference.compare.compare``).  The command writes
``history.csv``, ``loss.png``, ``boundary.png`` and ``gradient_check.png``
into ``--out``.  It needs the ``oracle`` (jax) and ``plots`` (matplotlib)
extras.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manual_bp.cli.arguments import (
    add_out_argument,
    add_regularization_arguments,
    add_training_arguments,
    check_save_path,
    help_formatter,
    int_list,
    name_list,
    network_from_arguments,
    output_folder,
    positive_int,
)
from manual_bp.cli.extras import require
from manual_bp.cli.progress import Progress, progress
from manual_bp.data import DATASETS
from manual_bp.dropout import draw_masks
from manual_bp.losses import LOSSES
from manual_bp.model import DNN
from manual_bp.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from manual_bp.training import Schedule, TrainingDiverged, accuracy

DATA_INPUTS = 2  # every built-in data set is 2-D
DEFAULT_HIDDEN_ACTIVATION = "tanh"
DEFAULT_HIDDEN = [16, 16]
# The two curves differ only by rounding in the gradients, a few ulps per step,
# but training can amplify a difference exponentially (measured in
# benchmarks/RESULTS.md).  So the curve comparison is reported, and the exit
# status rests on the gradient checks, which compare each gradient with its
# own rounding-error tolerance.
CURVES_COINCIDE = 1e-6

DESCRIPTION = """\
Train a network on a built-in 2-D data set with the hand-written gradients,
and a second copy from the same start, on the same mini-batches, with jax.grad
gradients: the two loss curves must coincide.  Every --check-every epochs each
gradient of the manual net is checked against jax.grad entry by entry."""

EXAMPLES = """\
examples:
  manual-bp train                              # moons, 2-16-16-1 tanh net, 300 epochs
  manual-bp train --dataset spirals --layers 2,32,32,1 --epochs 1000 --learning-rate 0.3
  manual-bp train --dataset blobs --classes 4  # softmax output, cross-entropy
  manual-bp train --dataset xor --layers 2,8,1 --activations relu --check-every 20 --out xor-run
  manual-bp train --optimizer adam             # hand-written Adam against optax.adam
  manual-bp train --optimizer rmsprop:eps_in_sqrt=false,decay=0.99 --learning-rate 0.005
  manual-bp train --layers 2,16,16,16,16,16,1 --normalization batch --learning-rate 0.1
                                               # a deeper net with and without batch norm
  manual-bp train --save model.npz             # keep the trained net: DNN.load("model.npz"),
                                               # manual-bp compare --model model.npz

Writes into --out: history.csv (epoch, manual_loss, autodiff_loss), loss.png
(the manual curve over the jax.grad one, and their relative difference),
boundary.png (decision regions with the data) and gradient_check.png (worst
error/tolerance per gradient over all checks; 1 is the tolerance); with
--normalization also normalization.png (the loss curves with and without it).  With
--save FILE also the trained manual net (DNN.save: a plain .npz).  A progress
bar goes to stderr when it is a terminal (not with --quiet).
Exit status: 0 if every gradient check matched, 1 if not, 2 on bad arguments.
"""


def _load_dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (2, m) and ``Y`` (nL, m) of the chosen data set."""
    options = {}
    if args.noise is not None:
        options["noise"] = args.noise
    if args.classes is not None:
        if args.dataset != "blobs":
            raise ValueError(
                f"--classes: only the blobs data set has a number of classes, "
                f"got --classes {args.classes} with --dataset {args.dataset}"
            )
        options["classes"] = args.classes
    try:
        return DATASETS[args.dataset](args.samples, seed=args.seed, **options)
    except (TypeError, ValueError) as error:
        # "noise: ...", "seed: ...", "classes: ...": the flags without "--".
        raise type(error)(f"--{error}") from None


def _layer_sizes(args: argparse.Namespace, n_outputs: int) -> list[int]:
    """``--layers``, checked against the data: ``n0 = 2`` and ``nL`` = rows of ``Y``."""
    if args.layers is None:
        return [DATA_INPUTS, *DEFAULT_HIDDEN, n_outputs]
    sizes = args.layers
    if len(sizes) < 2:
        raise ValueError(f"--layers: expected at least an input and an output size, got {sizes}")
    if sizes[0] != DATA_INPUTS:
        raise ValueError(
            f"--layers: the data sets are 2-D, so the first size n0 must be {DATA_INPUTS}, "
            f"got {sizes[0]} (in {','.join(map(str, sizes))})"
        )
    if sizes[-1] != n_outputs:
        what = (
            "binary labels, Y of shape (1, m)"
            if n_outputs == 1
            else (f"{n_outputs} classes, one-hot Y of shape ({n_outputs}, m)")
        )
        raise ValueError(
            f"--layers: {args.dataset} has {what}, so the last size nL must be {n_outputs}, "
            f"got {sizes[-1]} (in {','.join(map(str, sizes))})"
        )
    return sizes


def build_network(args: argparse.Namespace, n_outputs: int) -> DNN:
    """The manual net: sizes from ``--layers`` (checked against the data) or
    ``2,16,16,nL``; activations and loss as ``network_from_arguments`` reads them;
    ``--normalization`` in every hidden layer."""
    sizes = _layer_sizes(args, n_outputs)
    activations = args.activations
    if activations is None:  # tanh hidden layers (none when L = 1), the loss's own output
        activations = [DEFAULT_HIDDEN_ACTIVATION] * (len(sizes) - 2) or None
    net = network_from_arguments(
        argparse.Namespace(**{**vars(args), "layers": sizes, "activations": activations}),
        l2=args.l2,
        dropout=args.dropout,
    )
    if args.normalization is None:
        return net
    if len(sizes) < 3:
        raise ValueError(
            f"--normalization: the step sits in the hidden layers, and --layers "
            f"{','.join(map(str, sizes))} has none"
        )
    return with_normalization(net, args.normalization)


def with_normalization(net: DNN, normalization: str | None) -> DNN:
    """A net of ``net``'s layers, activations, loss, dtype and seed with the
    ``normalization`` given: the same ``Wl``, ``Bl`` at the start (``gammal =
    1``, ``betal = 0``), since the weights are drawn before the normalization."""
    dropout = list(net.dropout[:-1]) if any(net.dropout) else None
    return DNN(list(net.layer_sizes), list(net.activations), net.loss_name, seed=net.seed,
               dtype=net.dtype, normalization=normalization, l2=net.l2,
               dropout=dropout)  # fmt: skip


def sizes_text(sizes: tuple[int, ...] | list[int]) -> str:
    """``2-16-16-16-16-1`` as ``2-16x4-1``: runs of three or more equal sizes shortened.

    >>> sizes_text([2, 16, 16, 16, 16, 1]), sizes_text([2, 16, 16, 1])
    ('2-16x4-1', '2-16-16-1')
    """
    parts, i = [], 0
    while i < len(sizes):
        j = i
        while j < len(sizes) and sizes[j] == sizes[i]:
            j += 1
        parts += [f"{sizes[i]}x{j - i}"] if j - i >= 3 else [str(sizes[i])] * (j - i)
        i = j
    return "-".join(parts)


def max_relative_difference(manual: list[float], autodiff: list[float]) -> float:
    """``max_e |manual[e] - autodiff[e]| / |autodiff[e]|`` over the epochs."""
    difference = np.abs(np.array(manual) - np.array(autodiff))
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 counts as 0
        relative = np.where(difference == 0, 0.0, difference / np.abs(np.array(autodiff)))
    return float(np.max(relative))


def write_history(path: Path, manual: list[float], autodiff: list[float]) -> Path:
    """``epoch,manual_loss,autodiff_loss``, one row per epoch from 0 (the start)."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "manual_loss", "autodiff_loss"])
        for epoch, (manual_loss, autodiff_loss) in enumerate(zip(manual, autodiff, strict=True)):
            writer.writerow([epoch, repr(manual_loss), repr(autodiff_loss)])
    return path


# --learning-rate's default for each --optimizer: rates that train the default
# moons net well (adaptive rules take far smaller steps than SGD's 0.5).
DEFAULT_LEARNING_RATES = {"sgd": 0.5, "momentum": 0.1, "rmsprop": 0.01, "adam": 0.01, "adamw": 0.01}


def optimizer_spec(text: str) -> tuple[str, dict[str, object]]:
    """``"rmsprop:eps_in_sqrt=false,decay=0.99"`` -> ``("rmsprop", {"eps_in_sqrt":
    False, "decay": 0.99})`` (an argparse ``type``); values are true/false or numbers."""
    name, _, rest = text.partition(":")
    if name not in OPTIMIZERS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(OPTIMIZERS)}, optionally with :key=value,..., got {text!r}"
        )
    options: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(f"expected key=value after {name}:, got {item!r}")
        if value.lower() in ("true", "false"):
            options[key] = value.lower() == "true"
        else:
            try:
                options[key] = float(value)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{key}: expected true, false or a number, got {value!r}"
                ) from None
    return name, options


def build_optimizer(args: argparse.Namespace) -> Optimizer:
    """``--optimizer`` with ``--learning-rate`` (or its default for that rule)."""
    name, options = args.optimizer
    lr = DEFAULT_LEARNING_RATES[name] if args.learning_rate is None else args.learning_rate
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"--learning-rate: expected a finite number > 0, got {lr}")
    try:
        return make_optimizer(name, lr, **options)
    except TypeError as error:
        if "unexpected keyword" in str(error):
            fields = dataclasses.fields(OPTIMIZERS[name])
            keywords = [f.name for f in fields if f.name != "learning_rate"]
            raise ValueError(
                f"--optimizer: {name} has the options {', '.join(keywords) or 'none'}, "
                f"got {', '.join(options)}"
            ) from None
        raise TypeError(f"--optimizer: {error}") from None
    except ValueError as error:
        raise ValueError(f"--optimizer: {error}") from None


@dataclass
class TrainingRun:
    """The two loss histories (from epoch 0) and the gradient checks of one run."""

    manual_history: list[float]
    autodiff_history: list[float]
    worst_ratios: dict[str, float] = field(default_factory=dict)
    # The same net without normalization (--normalization only), trained by hand.
    plain_history: list[float] = field(default_factory=list)
    checks: int = 0
    checks_ok: bool = True


def _check_gradients(run: TrainingRun, comparison: Any, epoch: int, bar: Progress) -> None:
    """Record one comparison of the manual gradients with the oracle, and print it."""
    run.checks += 1
    run.checks_ok &= comparison.ok
    for key, variable in comparison.variables.items():
        run.worst_ratios[key] = max(run.worst_ratios.get(key, 0.0), variable.ratio)
    verdict = "all match" if comparison.ok else "MISMATCH"
    bar.print(
        f"epoch {epoch}: gradients vs jax.grad: {verdict} ({len(comparison.variables)} "
        f"variables, worst error/tolerance {comparison.worst_ratio:.2e})"
    )
    if not comparison.ok:
        bar.print(comparison.report())


def _train_both(
    args: argparse.Namespace, net: DNN, X: np.ndarray, Y: np.ndarray, optimizer: Optimizer
) -> TrainingRun:
    """Train the manual net (hand-written gradients and ``optimizer``) and its
    jax.grad copy (stepped by optax) epoch by epoch, checking the manual
    gradients every ``--check-every`` epochs (and at the first and last)."""
    autodiff_fit = require("oracle", "manual_bp_reference.autodiff_training", "train").autodiff_fit
    oracle = require("oracle", "manual_bp_reference.optimizer_oracle", "train")
    compare = require("oracle", "manual_bp_reference.compare", "train").compare
    Case = require("oracle", "manual_bp_reference.cases", "train").Case
    one_network = require("oracle", "manual_bp_reference.oracle", "train").one_network
    autodiff_params, autodiff_state = net.params, None
    optax_optimizer = oracle.OptaxOptimizer(optimizer)
    autodiff_rng = np.random.default_rng(args.seed)  # DNN shuffles with default_rng(seed) too
    run = TrainingRun([net.loss(X, Y)], [net.loss(X, Y)])
    with progress(args.epochs, "training", "epoch", args.quiet) as bar:
        for epoch in range(args.epochs + 1):
            if epoch > 0:
                # An overflow ends in TrainingDiverged, which names the epoch: no warnings.
                with np.errstate(over="ignore", invalid="ignore"):
                    run.manual_history += net.fit(
                        X, Y, 1, batch_size=args.batch_size, optimizer=optimizer
                    )
                    autodiff_params, losses, autodiff_state = autodiff_fit(
                        autodiff_params, X, Y, net.net, optax_optimizer,
                        Schedule(1, args.batch_size, autodiff_rng), state=autodiff_state,
                    )  # fmt: skip
                run.autodiff_history += losses
                bar.advance(1, loss=f"{run.manual_history[-1]:.4g}")
            if (args.check_every and epoch % args.check_every == 0) or epoch in (0, args.epochs):
                # Masks of their own generator: the training draws stay the same.
                check_rng = np.random.default_rng([args.seed, epoch])
                masks = draw_masks(net.layer_sizes, X.shape[1], net.dropout, check_rng, net.dtype)
                case = Case.of_network(net, X, Y, masks=masks)
                with one_network():  # one network: its oracle compiled by it
                    _check_gradients(run, compare(case), epoch, bar)
    return run


def _train_plain(args: argparse.Namespace, net: DNN, X: np.ndarray, Y: np.ndarray,
                 optimizer: Optimizer) -> list[float]:  # fmt: skip
    """The loss history of ``net`` without its normalization, from the same start
    and on the same mini-batches (its generator has the same seed); a
    diverging run stops where it diverged."""
    plain = with_normalization(net, None)
    history = [plain.loss(X, Y)]
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            history += plain.fit(X, Y, args.epochs, batch_size=args.batch_size, optimizer=optimizer)
        except TrainingDiverged as diverged:
            print(f"without normalization: {diverged}")
    return history


def _report_curves(run: TrainingRun, epochs: int) -> float:
    """Print how far the two loss curves lie apart; return that difference."""
    difference = max_relative_difference(run.manual_history, run.autodiff_history)
    print(
        f"loss curves: max relative difference manual vs jax.grad + optax training "
        f"{difference:.2e} "
        f"over {epochs} epochs ("
        + (
            f"they coincide: below {CURVES_COINCIDE:.0e})"
            if difference <= CURVES_COINCIDE
            else "they DIFFER: long or unstable training amplifies rounding differences; "
            "a wrong gradient shows in the checks)"
        )
    )
    return difference


def _write_outputs(
    args: argparse.Namespace,
    net: DNN,
    X: np.ndarray,
    Y: np.ndarray,
    run: TrainingRun,
    optimizer: Optimizer,
) -> list[Path]:
    """``history.csv``, ``loss.png``, ``boundary.png``, ``gradient_check.png`` (and
    ``--save``'s model file)."""
    plots = require("plots", "manual_bp.cli.plots", "train")
    difference = max_relative_difference(run.manual_history, run.autodiff_history)
    kind = net.normalization[0]
    fraction = accuracy(net.predict(X), Y)
    title = (
        f"{args.dataset}: {sizes_text(net.layer_sizes)} {net.activations[0]} net, "
        f"{optimizer.name}"
        + (f", {kind} norm" if kind else "")
        + (f", l2 {net.l2:g}" if net.l2 else "")
        + (f", dropout {','.join(f'{p:g}' for p in net.dropout[:-1])}" if any(net.dropout) else "")
    )
    written = [
        write_history(args.out / "history.csv", run.manual_history, run.autodiff_history),
        plots.save(
            plots.loss_figure(
                run.manual_history,
                run.autodiff_history,
                f"{title}, max relative difference {difference:.1e}",
                (
                    f"hand-written gradients and {optimizer.name}",
                    f"jax.grad and optax.{optimizer.name}",
                ),
            ),
            args.out / "loss.png",
        ),
        plots.save(
            plots.boundary_figure(
                net.params,
                net.net,
                X,
                Y,
                f"{title}, accuracy {100 * fraction:.1f}%",
                running=net.running,
            ),
            args.out / "boundary.png",
        ),
        plots.save(
            plots.gradient_check_figure(
                run.worst_ratios,
                f"manual vs jax.grad: worst error/tolerance over {run.checks} checks",
            ),
            args.out / "gradient_check.png",
        ),
    ]
    if kind:
        written.append(
            plots.save(
                plots.normalization_figure(
                    run.manual_history,
                    run.plain_history,
                    kind,
                    f"{title}: the same start and mini-batches",
                ),
                args.out / "normalization.png",
            )
        )
    if args.save is not None:
        net.save(args.save)
        written.append(args.save)
    return written


def train(args: argparse.Namespace) -> int:
    # Every argument is checked before any work: the types by argparse, then these.
    check_save_path(args.save)
    optimizer = build_optimizer(args)
    X, Y = _load_dataset(args)
    net = build_network(args, Y.shape[0])
    output_folder(args.out)  # a folder that cannot be made is an error
    # The optional extras, before any work: a missing one is one line, exit 2.
    require("plots", "manual_bp.cli.plots", "train")
    require("oracle", "manual_bp_reference.compare", "train")
    require("oracle", "manual_bp_reference.optimizer_oracle", "train")
    print(
        f"{net}\ntraining on {args.dataset} ({args.samples} samples, X {X.shape}, Y {Y.shape}), "
        f"{args.epochs} epochs, batch size {args.batch_size}, {optimizer}; "
        f"a second copy trains on jax.grad gradients with optax's step from the same start"
    )
    try:
        run = _train_both(args, net, X, Y, optimizer)
    except TrainingDiverged as diverged:
        print(f"manual-bp train: {diverged}", file=sys.stderr)
        return 1
    if any(net.normalization):
        run.plain_history = _train_plain(args, net, X, Y, optimizer)
        print(
            f"{net.normalization[0]} normalization: final loss {run.manual_history[-1]:.6g} with, "
            f"{run.plain_history[-1]:.6g} without (same start, same mini-batches)"
        )
    _report_curves(run, args.epochs)
    fraction = accuracy(net.predict(X), Y)
    print(f"final loss {run.manual_history[-1]:.6g}; training accuracy {100 * fraction:.1f}%")
    for path in _write_outputs(args, net, X, Y, run, optimizer):
        print(f"wrote {path}")
    print(
        f"every gradient matched jax.grad in {run.checks} checks"
        if run.checks_ok
        else "GRADIENT MISMATCH (see the reports above)"
    )
    return 0 if run.checks_ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train on a 2-D data set with manual and jax.grad gradients; plot",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    add_training_arguments(
        parser,
        dataset="moons",
        noise=None,
        learning_rate=None,
        check_every=50,
        zero_checks="only those",
        learning_rate_help="(default: "
        + ", ".join(f"{rate} for {name}" for name, rate in DEFAULT_LEARNING_RATES.items())
        + ")",
    )
    parser.add_argument(
        "--optimizer",
        type=optimizer_spec,
        default=("sgd", {}),
        metavar="NAME[:KEY=VALUE,...]",
        help=f"{', '.join(OPTIMIZERS)}, with conventions and hyperparameters of "
        "manual_bp.optimizers, e.g. rmsprop:eps_in_sqrt=false (default: sgd)",
    )
    add_regularization_arguments(parser)
    parser.add_argument(
        "--classes", type=positive_int, default=None, help="number of classes of blobs (default: 3)"
    )
    parser.add_argument(
        "--layers",
        type=int_list,
        default=None,
        help="layer sizes n0,...,nL; n0 = 2, nL = 1 (binary) or the number of classes "
        "(default: 2,16,16,nL)",
    )
    parser.add_argument(
        "--activations",
        type=name_list,
        default=None,
        help="hidden-layer activation(s); the output gets the loss's own unless all L "
        f"are given (default: {DEFAULT_HIDDEN_ACTIVATION})",
    )
    parser.add_argument(
        "--loss",
        choices=sorted(LOSSES),
        default=None,
        help="default: binary_cross_entropy for nL = 1, else cross_entropy",
    )
    parser.add_argument(
        "--normalization",
        choices=("batch", "layer"),
        default=None,
        help="a normalization step in every hidden layer, and the same net without it "
        "trained beside it for normalization.png (default: none)",
    )
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="also write the trained manual net to FILE.npz (DNN.save; default: not saved)",
    )
    add_out_argument(parser)
    parser.set_defaults(handler=train)
