"""Arguments that several commands share, parsed the same way everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from manual_bp.losses import LOSSES
from manual_bp.model import DNN

DEFAULT_OUT = Path("manual-bp-out")


def int_list(text: str) -> list[int]:
    """``"2,3,3,1"`` -> ``[2, 3, 3, 1]`` (an argparse ``type``)."""
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 2,3,3,1, got {text!r}"
        ) from None


def name_list(text: str) -> list[str]:
    """``"relu,relu,sigmoid"`` -> ``["relu", "relu", "sigmoid"]``; one name is
    repeated by the caller for every layer."""
    names = [item.strip() for item in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """Keep the examples in an epilog as written."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the files written (default: ./{DEFAULT_OUT})",
    )


def add_batch_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--batch M``: the batch size m, an int >= 1 (default: the command's own)."""
    parser.add_argument("--batch", type=positive_int, default=None, metavar="M", help=help_text)


def layer_activations(names: list[str], depth: int, output_activation: str) -> list[str]:
    """The ``L = depth`` activation names from ``--activations``.

    ``L`` names are used as given.  One name (or ``L - 1`` names) sets the
    hidden layers, and the output layer gets ``output_activation`` (the
    loss's canonical one): ``["tanh"]`` with ``L = 3`` -> ``["tanh", "tanh",
    output_activation]``.
    """
    if len(names) == depth:
        return list(names)
    if len(names) == 1:
        return list(names) * (depth - 1) + [output_activation]
    if len(names) == depth - 1:
        return [*names, output_activation]
    raise ValueError(
        f"--activations: expected 1, {depth - 1} (hidden layers) or {depth} (every layer) "
        f"names for {depth} layers, got {len(names)}: {','.join(names)}"
    )


def positive_int(text: str) -> int:
    """``"8"`` -> ``8``; zero, negatives and non-integers are refused (an argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


SEED_LAYER_SIZES = (2, 3, 3, 1)


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """``--layers``, ``--activations`` and ``--loss``, defaulting to the seed's network."""
    parser.add_argument(
        "--layers",
        type=int_list,
        default=SEED_LAYER_SIZES,
        metavar="N0,...,NL",
        help="layer sizes, input first (default: the seed's 2,3,3,1)",
    )
    parser.add_argument(
        "--activations",
        type=name_list,
        default=None,
        metavar="NAMES",
        help="one name per layer, or one name (or L-1) for the hidden layers with the "
        "loss's canonical output activation (default: sigmoid hidden layers)",
    )
    parser.add_argument(
        "--loss",
        default=None,
        help="binary_cross_entropy, cross_entropy or mse (default: binary_cross_entropy "
        "for one output, else cross_entropy)",
    )


# The argument names of the validation messages, and the options that set them.
_OPTIONS = {
    "layer_sizes": "--layers",
    "activations": "--activations",
    "loss": "--loss",
    "dtype": "--dtype",
    "seed": "--seed",
    "max_examples": "--examples",
    "param_bound": "--param-bound",
    "input_bound": "--input-bound",
    "l2": "--l2",
}


def _naming_the_option(error: Exception) -> Exception:
    """``"layer_sizes[1]: ..."`` -> ``"--layers: layer_sizes[1]: ..."``."""
    message = str(error)
    argument = message.split(":", 1)[0].split("[", 1)[0].split(" ", 1)[0]
    if argument in _OPTIONS:
        return type(error)(f"{_OPTIONS[argument]}: {message}")
    return error


def network_from_arguments(args: argparse.Namespace) -> DNN:
    """The ``DNN`` that ``--layers``, ``--activations``, ``--loss`` (and ``--dtype``,
    ``--seed`` where the command has them) describe, checked by ``DNN`` itself.

    Raises ValueError or TypeError naming the option, e.g.
    ``--layers: layer_sizes[1]: expected an int >= 1, got 0``.
    """
    dtype, seed = getattr(args, "dtype", "float64"), getattr(args, "seed", 0)
    try:
        # DNN's own defaults pick the loss (and the activations when none are given).
        net = DNN(args.layers, loss=args.loss, seed=seed, dtype=dtype)
        if args.activations is None:
            return net
        canonical = LOSSES[net.loss_name].canonical_activation
        activations = layer_activations(args.activations, net.depth, canonical)
        return DNN(args.layers, activations, net.loss_name, seed=seed, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise _naming_the_option(error) from None


def output_folder(path: Path) -> Path:
    """``--out``, created if missing; a folder that cannot be made is a ValueError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out: cannot create the folder {str(path)!r} ({error})") from None
    return path
