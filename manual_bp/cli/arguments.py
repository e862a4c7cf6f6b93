"""Arguments that several commands share, parsed the same way everywhere.

Every command's parser is a ``Parser``: a bad argument is one line on stderr,
``manual-bp <command>: error: argument --flag: ...``, and exit status 2,
before any work.  Options follow one rule for short forms: any unambiguous
prefix works (``--learn`` for ``--learning-rate``, argparse's abbreviations),
and the aliases in ``ALIASES`` (``--lr`` for ``--learning-rate``) exist in
every command that has the option.  An unknown option gets a suggestion.
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np

from manual_bp.losses import LOSSES
from manual_bp.model import DNN
from manual_bp.net import Net
from manual_bp.validation import check_activations, check_dtype

DEFAULT_OUT = Path("manual-bp-out")
Number = TypeVar("Number", int, float)
DATASET_OWN = "the data set's own"
# The one alias table: added wherever the option is, by Parser.add_argument.
ALIASES = {"--learning-rate": ("--lr",)}


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors and the ``ALIASES``."""

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        aliases = [alias for name in names for alias in ALIASES.get(name, ())]
        if aliases and isinstance(kwargs.get("help"), str):
            kwargs["help"] = f"{kwargs['help']}; also {', '.join(aliases)}"
        action = super().add_argument(*names, **kwargs)
        # The alias parses like the option, while errors name the option itself.
        for alias in aliases:
            self._option_string_actions[alias] = action
        return action

    def error(self, message: str) -> NoReturn:
        """One line, the usage left to ``--help``."""
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def unrecognized(self, extras: Sequence[str]) -> NoReturn:
        """The error for unknown arguments, with the closest option when one is close."""
        options = [option for option in self._option_string_actions if option.startswith("--")]
        hints = []
        for extra in extras:
            if not extra.startswith("-"):
                continue
            name = extra.split("=", 1)[0]
            close = difflib.get_close_matches(name.replace("_", "-"), options, n=1, cutoff=0.6)
            if close:
                hints.append(f"{name}: did you mean {close[0]}?")
        self.error(
            f"unrecognized arguments: {' '.join(extras)}"
            + (f" ({'; '.join(hints)})" if hints else "")
        )


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
    counts = sorted({1, depth - 1, depth} - {0})
    choices = " or ".join(map(str, counts))
    raise ValueError(
        f"--activations: expected {choices} names for --layers' {depth} layer"
        f"{'s' if depth > 1 else ''} (1: every hidden layer; {depth}: every layer), "
        f"got {len(names)}: {','.join(names)}"
    )


def _number(
    text: str, kind: Callable[[str], Number], accept: Callable[[Number], bool], expected: str
) -> Number:
    """``kind(text)`` if ``accept`` takes it, else the argparse error ``expected ..., got TEXT``."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    """``"8"`` -> ``8``; zero, negatives and non-integers are refused (an argparse ``type``)."""
    return _number(text, int, lambda value: value >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """``"0"`` -> ``0``; negatives and non-integers are refused (an argparse ``type``)."""
    return _number(text, int, lambda value: value >= 0, "an int >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0, such as a learning rate (an argparse ``type``)."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0, such as a noise level (an argparse ``type``)."""
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite float >= 0")


def probability_list(text: str) -> float | list[float]:
    """``"0.5"`` -> ``0.5``, ``"0.5,0.2"`` -> ``[0.5, 0.2]`` (each a number; their
    range is ``DNN``'s to check, an argparse ``type``)."""
    values = [
        _number(part.strip(), float, math.isfinite, "finite numbers") for part in text.split(",")
    ]
    return values[0] if len(values) == 1 else values


def positive_int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``, each >= 1 (an argparse ``type``)."""
    values = int_list(text)
    for value in values:
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value} (in {text})")
    return values


def dtype_list(text: str) -> list[str]:
    """``"float32,float64"``, each a supported dtype (an argparse ``type``)."""
    names = name_list(text)
    try:
        return [check_dtype(name).name for name in names]
    except TypeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def activation_list(text: str) -> list[str]:
    """``"tanh,relu"``, each a known activation (an argparse ``type``)."""
    names = name_list(text)
    try:
        return check_activations(names, len(names))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_training_arguments(
    parser: argparse.ArgumentParser,
    dataset: str,
    noise: float | None,
    learning_rate: float | None,
    check_every: int,
    zero_checks: str,
    learning_rate_help: str | None = None,
) -> None:
    """The options ``demo`` and ``train`` share, with each command's defaults:
    ``--dataset``, ``--samples``, ``--noise``, ``--epochs``, ``--batch-size``,
    ``--learning-rate``, ``--check-every``, ``--seed``, ``--quiet``."""
    from manual_bp.data import DATASETS

    parser.add_argument(
        "--dataset", choices=list(DATASETS), default=dataset, help=f"data set (default: {dataset})"
    )
    parser.add_argument("--samples", type=positive_int, default=200, help="m (default: 200)")
    parser.add_argument(
        "--noise",
        type=non_negative_float,
        default=noise,
        help=f"noise std (default: {DATASET_OWN if noise is None else noise})",
    )
    parser.add_argument("--epochs", type=positive_int, default=300, help="(default: 300)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="(default: 32)")
    parser.add_argument(
        "--learning-rate",
        type=positive_float,
        default=learning_rate,
        help=learning_rate_help or f"(default: {learning_rate})",
    )
    parser.add_argument(
        "--check-every",
        type=non_negative_int,
        default=check_every,
        help="epochs between gradient checks; the first and last epochs are always checked "
        f"(default: {check_every}; 0: {zero_checks})",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="data, weights, shuffling (default: 0)"
    )
    add_quiet_argument(parser)


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (default: a bar on stderr when it is a terminal)",
    )


def add_model_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help=f"{what} the network saved in FILE.npz (by manual-bp train --save or "
        "DNN.save) instead of --layers, --activations, --loss (default: none)",
    )


SEED_LAYER_SIZES = (2, 3, 3, 1)


def add_regularization_arguments(parser: argparse.ArgumentParser) -> None:
    """``--l2`` and ``--dropout``, as ``DNN(l2=, dropout=)`` takes them."""
    parser.add_argument(
        "--l2",
        type=non_negative_float,
        default=0.0,
        help="weight decay in the loss, l2/2 sum ||Wl||^2, weights only (default: 0)",
    )
    parser.add_argument(
        "--dropout",
        type=probability_list,
        default=None,
        metavar="P[,P,...]",
        help="inverted dropout: one drop probability in [0, 1) for every hidden layer, "
        "or one per hidden layer (default: none)",
    )


def add_network_arguments(parser: argparse._ActionsContainer) -> None:
    """``--layers``, ``--activations`` and ``--loss``, defaulting to the seed's network."""
    parser.add_argument(
        "--layers",
        type=int_list,
        default=None,
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


def add_convention_arguments(parser: argparse._ActionsContainer, *, layer: bool = False) -> None:
    """The conventions of a user's backprop, one flag per field of
    ``manual_bp_reference.conventions.Conventions`` (``--layout``, ``--names``,
    ``--bias-shape``, ...); all default to ``None`` (the caller fills in ours).
    ``layer``: the command also checks layer functions (``check --layer``),
    whose defaults differ."""
    from manual_bp_reference.conventions import convention_fields

    for convention in convention_fields():
        flag = "--" + convention.name.replace("_", "-")
        about = convention.metadata
        help_text = (about["for_layers"] if layer else "") or about["description"]
        if about["kind"] is bool:
            parser.add_argument(
                flag, action="store_const", const=True, default=None, help=help_text
            )
        else:
            parser.add_argument(
                flag, type=about["kind"], default=None, choices=about["choices"], help=help_text
            )


def conventions_from_arguments(args: argparse.Namespace, **defaults: object) -> Any:
    """``manual_bp_reference.conventions.Conventions`` of the convention flags given (and
    ``defaults`` for those not given), its errors under the flags' names."""
    from manual_bp_reference.conventions import Conventions, convention_fields

    given = {f.name: getattr(args, f.name) for f in convention_fields()}
    chosen = {name: value for name, value in given.items() if value is not None}
    try:
        return Conventions(**{**defaults, **chosen})
    except (TypeError, ValueError) as error:
        name = str(error).split(":", 1)[0]
        raise type(error)(f"--{name.replace('_', '-')}: {error}") from None


def timeout_seconds(text: str) -> float | None:
    """``--timeout``: seconds > 0, or ``none`` for no limit."""
    if text.strip().lower() == "none":
        return None
    return positive_float(text)


_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def memory_size(text: str) -> int:
    """``--memory-limit``: bytes, or with a unit: ``512M``, ``2G`` (powers of 1024)."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in _SIZE_UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512M or 2G, got {text!r}"
        ) from None
    if not (math.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"expected a size of at least 1 byte, got {text!r}")
    return int(value)


def add_timeout_argument(parser: argparse._ActionsContainer, past_it: str) -> None:
    """``--timeout SECONDS``: the time limit of one call of a user's code."""
    parser.add_argument(
        "--timeout", type=timeout_seconds, default=10.0, metavar="SECONDS",
        help=f"time limit of one call of your code, in seconds, or none (default: "
        f"%(default)s); {past_it}",
    )  # fmt: skip


def add_isolation_arguments(parser: argparse._ActionsContainer) -> None:
    """``--timeout``, ``--memory-limit``, ``--no-isolation``: how a user's code runs
    (``manual_bp_reference.isolation``)."""
    add_timeout_argument(parser, "past it the verdict is 'timed out'")
    parser.add_argument(
        "--memory-limit", type=memory_size, default=None, metavar="SIZE",
        help="memory your code may allocate, e.g. 512M or 2G (Linux; default: no limit)",
    )  # fmt: skip
    parser.add_argument(
        "--no-isolation", dest="isolate", action="store_false",
        help="run your code in this process: no time or memory limit, but a debugger's "
        "breakpoints work (default: a child process)",
    )  # fmt: skip


# The argument names of the validation messages, and the options that set them.
_OPTIONS = {
    "timeout": "--timeout",
    "memory_limit": "--memory-limit",
    "isolate": "--no-isolation",
    "layer_sizes": "--layers",
    "activations": "--activations",
    "loss": "--loss",
    "dtype": "--dtype",
    "seed": "--seed",
    "max_examples": "--examples",
    "param_bound": "--param-bound",
    "input_bound": "--input-bound",
    "l2": "--l2",
    "l2_divided_by_m": "--l2-divided-by-m",
    "dropout": "--dropout",
}


def _naming_the_option(error: Exception) -> Exception:
    """``"layer_sizes[1]: ..."`` -> ``"--layers: layer_sizes[1]: ..."``."""
    message = str(error)
    argument = message.split(":", 1)[0].split("[", 1)[0].split(" ", 1)[0]
    if argument in _OPTIONS:
        return type(error)(f"{_OPTIONS[argument]}: {message}")
    return error


def architecture_from_arguments(
    args: argparse.Namespace,
) -> tuple[list[int], list[str], str, np.dtype]:
    """``(layer_sizes, activations, loss, dtype)`` from ``--layers``, ``--activations``,
    ``--loss`` (and ``--dtype`` where the command has it), checked as ``DNN``
    checks them but without building a network (nothing is allocated).

    Raises ValueError or TypeError naming the option, e.g.
    ``--layers: layer_sizes[1]: expected an int >= 1, got 0``.
    """
    dtype = getattr(args, "dtype", None) or "float64"
    layers = SEED_LAYER_SIZES if args.layers is None else args.layers
    try:
        # DNN's own defaults pick the loss (and the activations when none are given).
        dtype = check_dtype(dtype)
        net = Net.of(layers, None, args.loss)
        if args.activations is not None:
            canonical = LOSSES[net.loss].canonical_activation
            names = layer_activations(args.activations, net.depth, canonical)
            net = Net.of(net.layer_sizes, names, net.loss)
    except (TypeError, ValueError) as error:
        raise _naming_the_option(error) from None
    return net.layer_sizes, list(net.activations), net.loss, dtype


def network_from_arguments(
    args: argparse.Namespace, *, l2: float = 0.0, dropout: object = None
) -> DNN:
    """The ``DNN`` that ``--layers``, ``--activations``, ``--loss`` (and ``--dtype``,
    ``--seed`` where the command has them) describe, or the one ``--model`` names;
    ``l2`` and ``dropout`` are passed to ``DNN`` (``manual-bp train``'s flags).

    Raises ValueError or TypeError naming the option, e.g.
    ``--layers: layer_sizes[1]: expected an int >= 1, got 0``.
    """
    if getattr(args, "model", None) is not None:
        return model_from_arguments(args)
    sizes, names, loss, dtype = architecture_from_arguments(args)
    try:
        return DNN(
            sizes, names, loss, seed=getattr(args, "seed", 0), dtype=dtype, l2=l2,
            dropout=dropout,  # type: ignore[arg-type]  # DNN checks it and names --dropout
        )  # fmt: skip
    except (TypeError, ValueError) as error:
        raise _naming_the_option(error) from None


def model_from_arguments(args: argparse.Namespace) -> DNN:
    """``DNN.load(--model)``, refusing options that would describe another network."""
    given = [
        option
        for option, value in (
            ("--layers", args.layers),
            ("--activations", args.activations),
            ("--loss", args.loss),
            ("--l2", getattr(args, "l2", None) or None),
            ("--dropout", getattr(args, "dropout", None)),
        )
        if value is not None
    ]
    if given:
        raise ValueError(
            f"--model: the network comes from {str(args.model)!r}; drop {', '.join(given)}"
        )
    try:
        net = DNN.load(args.model)
    except ValueError as error:
        raise ValueError(f"--model: {error}") from None
    dtype = getattr(args, "dtype", None)
    if dtype is not None and dtype != net.dtype.name:
        raise ValueError(
            f"--dtype: {dtype} differs from the model's {net.dtype.name} ({str(args.model)!r}); "
            "drop --dtype"
        )
    return net


def check_save_path(path: Path | None) -> None:
    """``--save FILE``: refused before any work if it cannot be written there."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(
            f"--save: {str(path)!r} is a folder, expected a file name such as model.npz"
        )
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"--save: the folder {str(folder)!r} of {str(path)!r} does not exist")


def output_folder(path: Path) -> Path:
    """``--out``, created if missing; a folder that cannot be made is a ValueError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out: cannot create the folder {str(path)!r} ({error})") from None
    return path
