"""``manual-bp check FILE.py:FUNCTION``: property-check your own backprop.

Loads ``FUNCTION`` from a Python file (or ``package.module:FUNCTION``), a
callable ``backprop(params, X, Y) -> grads``, and runs
``manual_bp_reference.check.check_gradients`` on it with the conventions given as
flags.  With ``--layer NAME`` it checks one layer function instead
(``manual_bp_reference.layer_check.check_layer``): ``backward(dout, cache)``, its
``--forward`` (whose cache the backward reads), or a loss head
``loss(x, y) -> (loss, dx)``.  Without ``--layer``, ``--forward`` makes
``FUNCTION`` the backward of a forward/backward pair as the deeplearning.ai
course writes them (arguments passed by name; ``--dropout`` for a forward
that drops units, its masks read from its cache).  The user's code runs in a child process
(``manual_bp_reference.isolation``): ``--timeout`` seconds per call, an optional
``--memory-limit``, its output captured; ``--no-isolation`` runs it here.
``--quantity`` checks a research quantity instead of the batch gradient
(``QUANTITIES``, one entry each: the check it runs and the options it takes):
``per_example_gradients`` and ``per_example_norms``
(``manual_bp_reference.per_example_check.check_per_example``: ``FUNCTION(params,
X, Y)`` in the declared conventions) and ``dp_sgd``
(``manual_bp_reference.dp_check.check_dp_step``: ``FUNCTION(per_example,
noise)`` with ``--clip``, ``--noise-multiplier`` and ``--clip-eps``), ``hvp`` and ``ggn``
(``manual_bp_reference.hvp_check.check_hvp``: ``FUNCTION(params, X, Y, V)``,
``H V`` or ``G V``, in the declared conventions, the decay ``--l2``).  An option the chosen
quantity does not take is refused, naming it: nothing is silently ignored.
Exit 0 on a pass, 1 on any other verdict (wrong, raised, timed out, ended
the process, correct maths but unstable numerics), 2 on bad arguments, 130
on Ctrl-C.  ``--json`` prints the verdict as JSON and nothing else on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manual_bp.activations import ACTIVATIONS
from manual_bp.cli.arguments import (
    _naming_the_option,
    add_convention_arguments,
    add_isolation_arguments,
    add_network_arguments,
    add_quiet_argument,
    conventions_from_arguments,
    help_formatter,
    network_from_arguments,
    non_negative_int,
    probability_list,
)
from manual_bp.cli.extras import require
from manual_bp.losses import LOSSES

EXAMPLES = """\
examples:
  manual-bp check my_net.py:backprop --layers 2,3,1 --activations tanh,sigmoid
      course style: columns as samples, W1/B1, mean over the batch
  manual-bp check two_layer.py:loss_grads --layers 4,10,3 --activations relu,softmax \\
      --layout rows --names W1/b1 --targets labels --l2 0.1
      cs231n style: rows as samples, W (n_in, n_out), b (n,), integer labels,
      its loss adding 0.5 * reg * sum W*W with reg 0.1
  manual-bp check nielsen.py:backprop --layers 2,3,1 --container list --reduction sum
      parameters and gradients as lists [W1, B1, W2, B2], summed over the batch
  manual-bp check layers.py:affine_backward --layer affine --forward layers.py:affine_forward
      one cs231n layer function: rows as samples, w (d_in, d_out), b (d_out,)
  manual-bp check layers.py:batchnorm_backward --layer batchnorm \\
      --forward layers.py:batchnorm_forward
      batch norm, cs231n signatures; a classic bug is named
  manual-bp check layers.py:softmax_loss --layer cross_entropy
      a loss head loss(x, y) -> (loss, dx) with integer labels
  manual-bp check per_example.py:grads --quantity per_example_gradients \\
      --layers 3,5,4 --activations relu,softmax --layout rows --names W1/b1 --targets labels
      each example's gradient, cs231n style: W1 (m, n0, n1), b1 (m, n1)
  manual-bp check dp.py:step --quantity dp_sgd --clip 1.0 --noise-multiplier 1.1
      a DP-SGD step(per_example, noise): clipped per-example mean plus noise
  manual-bp check curvature.py:hvp --quantity hvp --layers 3,4,1 --activations tanh,sigmoid \\
      --l2 0.1
      a Hessian-vector product hvp(params, X, Y, V) -> H V, our conventions (columns,
      W1/B1); --quantity ggn for the Gauss-Newton product G V
  manual-bp check curvature.py:hvp --quantity hvp --layers 3,5,4 --activations tanh,softmax \\
      --layout rows --names W1/b1 --targets labels
      the same, cs231n style: V and H V shaped as the params, W1 (n0, n1), flat b1
"""


# The network-check options and their defaults; --layer refuses them when given,
# and every convention but the two a layer check has (--layout, --targets).
NETWORK_DEFAULTS = {
    "layers": None, "activations": None, "loss": None, "param_bound": 10.0, "dropout": None,
    "conventions": None,
}  # fmt: skip
LAYER_CONVENTIONS = ("layout", "targets")
# A check's arguments and the flags that set them (the rest are in arguments._OPTIONS).
_FLAGS = {
    "backprop": "FUNCTION",
    "backward": "FUNCTION",
    "forward": "--forward",
    "layer": "--layer",
    "function": "FUNCTION",
    "clip": "--clip",
    "noise_multiplier": "--noise-multiplier",
    "clip_eps": "--clip-eps",
    "conventions": "--conventions",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _as_flag(error: Exception) -> Exception:
    """An argument's error under its flag: ``backprop`` is ``FUNCTION``,
    ``max_examples`` is ``--examples``, a convention its own flag."""
    from manual_bp_reference.conventions import convention_fields

    argument = str(error).split(":", 1)[0]
    flags = {**_FLAGS, **{f.name: _flag(f.name) for f in convention_fields()}}
    if argument in flags:
        return type(error)(f"{flags[argument]}{str(error)[len(argument) :]}")
    return _naming_the_option(error)


def _function(spec: str, flag: str) -> str:
    """A ``FILE.py:NAME`` / ``MODULE:NAME`` argument, checked before anything runs:
    its form, and that the file exists (the code itself is loaded where it runs)."""
    where, colon, name = spec.rpartition(":")
    if not (colon and where and name):
        raise ValueError(f"{flag}: expected FILE.py:NAME or MODULE:NAME, got {spec!r}")
    if where.endswith(".py") and not Path(where).is_file():
        raise ValueError(f"{flag}: no file {where!r}")
    return spec


def _start_ahead(args: argparse.Namespace) -> None:
    """Start the child that will run the user's code now: its Python and NumPy
    start while this process imports jax (``manual_bp_reference.isolation.start_ahead``)."""
    if args.isolate:
        with contextlib.suppress(ImportError):  # the missing extra is named just after
            from manual_bp_reference.isolation import start_ahead

            start_ahead()


def _settings(args: argparse.Namespace, **chosen: Any) -> Any:
    """The check's ``Settings``: the flags every check takes (dtype, examples,
    seed, isolation) and ``chosen``, the ones this check adds."""
    settings = require("oracle", "manual_bp_reference.settings", "check").Settings
    return settings(
        dtype=args.dtype, max_examples=args.examples, seed=args.seed, timeout=args.timeout,
        memory_limit=args.memory_limit, isolate=args.isolate,
        progress=False if args.quiet else None, **chosen,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    quantity = QUANTITIES[args.quantity]
    _refuse_options(args, args.quantity, quantity)
    return quantity.run(args)


def run_gradients(args: argparse.Namespace) -> int:
    """``--quantity gradients`` (the default): a backprop, or with ``--layer`` a layer."""
    if args.layer is not None:
        return run_layer(args)
    for name, default in NETWORK_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    net = network_from_arguments(args)
    backprop = _function(args.function, "FUNCTION")
    forward = None if args.forward is None else _function(args.forward, "--forward")
    if args.dropout is not None and forward is None:
        raise ValueError("--dropout: only with --forward (a forward that draws its own masks)")
    spec = net.net
    if args.dropout is not None:
        from manual_bp.net import Net

        try:
            spec = Net.of(net.layer_sizes, net.activations, net.loss_name, dropout=args.dropout)
        except (TypeError, ValueError) as error:
            raise ValueError(f"--dropout: {str(error).split(': ', 1)[-1]}") from None
    conventions = conventions_from_arguments(args)
    if args.conventions != "declared":  # auto, the default
        from manual_bp_reference.conventions import convention_fields
        from manual_bp_reference.inference import Auto

        given = {f.name: getattr(args, f.name) for f in convention_fields()}
        conventions = Auto({name: value for name, value in given.items() if value is not None})
    _start_ahead(args)
    try:  # the flags' own errors before jax is imported
        settings = _settings(args, param_bound=args.param_bound, input_bound=args.input_bound)
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    check = require("oracle", "manual_bp_reference.check", "check")
    _count_compiles(args)
    try:
        report = check.check_gradients(
            backprop, spec, forward=forward, conventions=conventions, settings=settings
        )
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    except check.GradientMismatch as mismatch:
        diagnosis = mismatch.comparison.diagnosis if mismatch.comparison else None
        inferred = (
            {"conventions": mismatch.conventions.as_dict()}
            if args.conventions != "declared" and mismatch.conventions is not None
            else {}
        )
        return _failed(args, mismatch, {
            "bug_class": diagnosis.bug_class if diagnosis else None,
            "first_wrong": diagnosis.key if diagnosis else None, **inferred,
        })  # fmt: skip
    inferred = {"conventions": report.conventions.as_dict()} if report.conventions else {}
    return _passed(args, report, undecided_examples=report.undecided, **inferred)


def _json(value: object) -> str:
    """``value`` as strict JSON: an infinite or NaN number is written as the string
    ``"inf"``, ``"-inf"`` or ``"nan"`` (strict parsers refuse bare ``Infinity``)."""

    def finite(item: object) -> object:
        if isinstance(item, float) and not math.isfinite(item):
            return str(item)
        if isinstance(item, dict):
            return {key: finite(v) for key, v in item.items()}
        if isinstance(item, list | tuple):
            return [finite(v) for v in item]
        return item

    return json.dumps(finite(value), indent=2, allow_nan=False)


def _count_compiles(args: argparse.Namespace) -> None:
    """Start counting the check's compilations (``jax_setup.compiles``)."""
    args.compiles_before = require("oracle", "manual_bp_reference.jax_setup", "check").compiles()


def _compiles(args: argparse.Namespace) -> dict[str, object]:
    """The JSON's ``compiles``: XLA compilations since ``_count_compiles``,
    ``compiled`` new and ``from_cache`` loaded from the persistent cache."""
    from manual_bp_reference.jax_setup import compiles

    return (compiles() - args.compiles_before).as_dict()


def _failed(args: argparse.Namespace, mismatch: Any, fields: dict[str, object]) -> int:
    """Print a mismatch (any check's), as JSON with ``--json``; exit status 1."""
    if args.json:
        print(_json({
            "verdict": mismatch.verdict, **fields,
            "failing": [v.key for v in mismatch.comparison.failures()]
            if mismatch.comparison else [],
            "others": list(mismatch.others), "notes": list(mismatch.notes),
            "output": {"text": mismatch.output.text, "lines": mismatch.output.lines,
                       "characters": mismatch.output.chars},
            "seed": mismatch.seed, "isolation": mismatch.isolation,
            "compiles": _compiles(args), "report": str(mismatch),
        }))  # fmt: skip
    else:
        print(mismatch)
    return 1


def _passed(args: argparse.Namespace, report: Any, **extra: object) -> int:
    """Print a passing report (``CheckReport`` or ``LayerReport``), as JSON with ``--json``."""
    if args.json:
        print(_json({
            "verdict": "pass", "examples": report.examples,
            "batch_sizes": sorted(report.batch_sizes), "worst": report.worst,
            "notes": sorted(report.notes), **extra,
            "output": {"text": report.output.text, "lines": report.output.lines,
                       "characters": report.output.chars},
            "seed": report.seed, "isolation": report.isolation, "compiles": _compiles(args),
        }))  # fmt: skip
    else:
        print(report)
    return 0


def run_layer(args: argparse.Namespace) -> int:
    """``manual-bp check FILE.py:NAME --layer LAYER``: one layer function."""
    from manual_bp_reference.conventions import convention_fields

    refused = [*NETWORK_DEFAULTS, *(f.name for f in convention_fields())]
    given = [
        _flag(name)
        for name in refused
        if name not in LAYER_CONVENTIONS and getattr(args, name) is not None
    ]
    if given:
        raise ValueError(f"{given[0]}: not a layer check's option (drop it, or drop --layer)")
    backward = _function(args.function, "FUNCTION")
    forward = None if args.forward is None else _function(args.forward, "--forward")
    _start_ahead(args)
    try:  # the flags' own errors before jax is imported
        settings = _settings(args, input_bound=args.input_bound)
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    layer_check = require("oracle", "manual_bp_reference.layer_check", "check --layer")
    _count_compiles(args)
    try:
        report = layer_check.check_layer(
            backward, args.layer, forward=forward, layout=args.layout or "rows",
            targets=args.targets, settings=settings,
        )  # fmt: skip
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    except layer_check.LayerMismatch as mismatch:
        return _failed(args, mismatch, {"diagnosis": mismatch.diagnosis})
    return _passed(args, report)


def run_per_example(args: argparse.Namespace) -> int:
    """``--quantity per_example_gradients`` / ``per_example_norms``: ``check_per_example``
    in the declared conventions."""
    quantity = args.quantity.removeprefix("per_example_")
    conventions = _declared(args)
    net = _plain_net(args)
    function = _function(args.function, "FUNCTION")
    return _run_catalogued(
        args, "per_example_check", "PerExampleMismatch",
        lambda check, settings: check.check_per_example(
            function, net, quantity=quantity, conventions=conventions, settings=settings
        ),
        param_bound=args.param_bound, input_bound=args.input_bound,
    )  # fmt: skip


def run_dp_sgd(args: argparse.Namespace) -> int:
    """``--quantity dp_sgd``: ``check_dp_step`` with ``--clip``, ``--noise-multiplier``
    and ``--clip-eps`` (default 0)."""
    function = _function(args.function, "FUNCTION")
    eps = 0.0 if args.clip_eps is None else args.clip_eps
    return _run_catalogued(
        args, "dp_check", "DPStepMismatch",
        lambda check, settings: check.check_dp_step(
            function, clip=args.clip, noise_multiplier=args.noise_multiplier, clip_eps=eps,
            settings=settings,
        ),
    )  # fmt: skip


def run_hvp(args: argparse.Namespace) -> int:
    """``--quantity hvp`` / ``ggn``: ``check_hvp`` of ``FUNCTION(params, X, Y, V)`` in
    the declared conventions, the decay ``--l2`` (its loss adds L/2 sum ||Wl||^2, or
    L/(2m) with ``--l2-divided-by-m``)."""
    product = "hessian" if args.quantity == "hvp" else "ggn"
    conventions = _declared(args)
    net = _plain_net(args)
    function = _function(args.function, "FUNCTION")
    return _run_catalogued(
        args, "hvp_check", "HVPMismatch",
        lambda check, settings: check.check_hvp(
            function, net, product=product, conventions=conventions, settings=settings
        ),
        param_bound=args.param_bound, input_bound=args.input_bound,
    )  # fmt: skip


def _declared(args: argparse.Namespace) -> Any:
    """The conventions of the flags, for a quantity whose function's conventions
    are declared, never inferred: ``--conventions auto`` refused."""
    if args.conventions == "auto":
        raise ValueError(
            f"--conventions: auto is not available with --quantity {args.quantity}: its "
            "function's conventions are declared (--layout, --names, ...), never inferred "
            "(default: declared)"
        )
    return conventions_from_arguments(args)


def _plain_net(args: argparse.Namespace) -> Any:
    """The ``Net`` of the network flags (the seed's network where none is given)."""
    for name, default in NETWORK_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return network_from_arguments(args).net


def _run_catalogued(
    args: argparse.Namespace,
    module: str,
    mismatch: str,
    check: Callable[[Any, Any], Any],
    **chosen: Any,
) -> int:
    """Run a check diagnosed by a bug catalogue: ``check(module, settings)``,
    ``module`` a ``manual_bp_reference`` module imported after the flags' own
    errors (``chosen``: the settings this check adds), its ``mismatch``
    printed with the bugs it matches."""
    _start_ahead(args)
    try:  # the flags' own errors before jax is imported
        settings = _settings(args, **chosen)
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    checks = require("oracle", f"manual_bp_reference.{module}", f"check --quantity {args.quantity}")
    _count_compiles(args)
    try:
        report = check(checks, settings)
    except (TypeError, ValueError) as error:
        raise _as_flag(error) from None
    except getattr(checks, mismatch) as found:
        return _failed(args, found, _catalogued(args, found))
    return _passed(args, report, quantity=args.quantity)


def _catalogued(args: argparse.Namespace, mismatch: Any) -> dict[str, object]:
    """The JSON fields of a check diagnosed by a bug catalogue: the bugs matched."""
    return {"quantity": args.quantity, "bug": mismatch.bug,
            "bugs": [bug.name for bug in mismatch.bugs]}  # fmt: skip


@dataclass(frozen=True)
class Quantity:
    """One ``--quantity``: the check it runs, the options it takes beyond every
    check's (``FUNCTION``, ``--dtype``, ``--examples``, ``--seed``, the
    isolation flags, ``--json``, ``--quiet``), as argument names (``CONVENTIONS``:
    every convention flag but those in ``without``), those it needs, and its
    ``--help`` line."""

    run: Callable[[argparse.Namespace], int]
    options: tuple[str, ...]
    help: str
    required: tuple[str, ...] = ()
    without: tuple[str, ...] = ()


# Stands for every convention flag (``Conventions``' fields) in ``Quantity.options``.
CONVENTIONS = "*conventions"
_NETWORK = ("layers", "activations", "loss", "param_bound", "input_bound")
# The conventions a per-example or curvature quantity has no use for: each example's
# gradient is its own (no reduction over the batch), a curvature product is the batch
# mean's, and the function takes the whole batch.
_WHOLE_BATCH = ("reduction", "per_sample")
# What --quantity may check, named as ``manual-bp explain --quantity`` names it but
# for the curvature products, whose checks are ``hvp`` and ``ggn`` (explain's
# ``hessian_vector_product`` and ``ggn_vector_product`` get a did-you-mean): a new
# quantity is one entry (its check's module imported by its ``run``).
QUANTITIES: dict[str, Quantity] = {
    "gradients": Quantity(
        run_gradients,
        (*_NETWORK, "conventions", CONVENTIONS, "layer", "forward", "dropout"),
        "a backprop's batch gradient (or with --layer one layer function's)",
    ),
    "per_example_gradients": Quantity(
        run_per_example,
        (*_NETWORK, "conventions", CONVENTIONS),
        "FUNCTION(params, X, Y) -> each example's gradient, {W1: (m, *W1.shape), ...} in "
        "your layout (not --per-sample, which is one sample at a time for gradients)",
        without=_WHOLE_BATCH,
    ),
    "per_example_norms": Quantity(
        run_per_example,
        (*_NETWORK, "conventions", CONVENTIONS),
        "FUNCTION(params, X, Y) -> (m,) array of each example's gradient norm",
        without=_WHOLE_BATCH,
    ),
    "dp_sgd": Quantity(
        run_dp_sgd,
        ("clip", "noise_multiplier", "clip_eps"),
        "a DP-SGD step FUNCTION(per_example, noise) -> the clipped mean plus noise, with "
        "--clip and --noise-multiplier (and --clip-eps)",
        required=("clip", "noise_multiplier"),
    ),
    "hvp": Quantity(
        run_hvp,
        (*_NETWORK, "conventions", CONVENTIONS),
        "FUNCTION(params, X, Y, V) -> H V, the Hessian of the mean loss plus L/2 sum "
        "||Wl||^2 (--l2 L) times the direction V, shaped as the params, all in your "
        "declared conventions (--layout, --names, ...)",
        without=_WHOLE_BATCH,
    ),
    "ggn": Quantity(
        run_hvp,
        (*_NETWORK, "conventions", CONVENTIONS),
        "FUNCTION(params, X, Y, V) -> G V, the Gauss-Newton matrix (J^T H_out J + L I on "
        "the weights) times V, as hvp",
        without=_WHOLE_BATCH,
    ),
}


def _options(quantity: Quantity) -> list[str]:
    """``quantity.options`` with ``CONVENTIONS`` expanded (``Conventions``' fields)."""
    from manual_bp_reference.conventions import convention_fields

    names = []
    for name in quantity.options:
        if name != CONVENTIONS:
            names.append(name)
        else:
            names += [f.name for f in convention_fields() if f.name not in quantity.without]
    return names


def _refuse_options(args: argparse.Namespace, name: str, quantity: Quantity) -> None:
    """``ValueError`` naming the first option given that ``quantity`` does not
    take (every quantity's options default to None), or the first it needs
    that is missing."""
    from manual_bp_reference.conventions import convention_fields

    every = dict.fromkeys(
        [option for each in QUANTITIES.values() for option in _options(each)]
        + [f.name for f in convention_fields()]
    )
    taken = _options(quantity)
    for option in every:
        if option not in taken and getattr(args, option, None) is not None:
            others = [other for other, each in QUANTITIES.items() if option in _options(each)]
            hint = f", or use --quantity {' or '.join(others)}" if others else ""
            raise ValueError(f"{_flag(option)}: not an option of --quantity {name} (drop it{hint})")
    for option in quantity.required:
        if getattr(args, option, None) is None:
            raise ValueError(f"{_flag(option)}: required with --quantity {name}")


def quantity_name(text: str) -> str:
    """``--quantity``'s value: one of ``QUANTITIES`` (an argparse ``type``), with
    a did-you-mean (``per-example-norms``, ``dp-step``)."""
    if text in QUANTITIES:
        return text
    spelled = text.strip().lower().replace("-", "_")
    short = {"per_example": "per_example_gradients", "norms": "per_example_norms",
             "dp_step": "dp_sgd", "dpsgd": "dp_sgd", "dp": "dp_sgd", "hessian": "hvp",
             "gauss_newton": "ggn", "hessian_vector_product": "hvp",
             "ggn_vector_product": "ggn"}  # fmt: skip
    close = [spelled] if spelled in QUANTITIES else [short[spelled]] if spelled in short else (
        difflib.get_close_matches(spelled, QUANTITIES, n=1)
    )  # fmt: skip
    raise argparse.ArgumentTypeError(
        f"expected one of {', '.join(QUANTITIES)}, got {text!r}"
        + (f"; did you mean {close[0]}?" if close else "")
    )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check",
        help="property-check your own backprop function",
        description="Check a hand-written backprop(params, X, Y) -> grads on many drawn "
        "networks of one architecture against jax.grad, in the conventions it uses; with "
        "--quantity, per-example gradients or norms, a DP-SGD step, or a Hessian- or "
        "Gauss-Newton-vector product.",
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    parser.add_argument(
        "function", metavar="FUNCTION", help="FILE.py:NAME or MODULE:NAME (required, no default)"
    )
    parser.add_argument(
        "--quantity", type=quantity_name, default="gradients", metavar="QUANTITY",
        help="what FUNCTION computes: "
        + "; ".join(f"{name}: {each.help}" for name, each in QUANTITIES.items())
        + " (default: gradients)",
    )  # fmt: skip
    add_network_arguments(parser)
    parser.add_argument(
        "--dtype", default="float64", choices=["float64", "float32"], help="default: float64"
    )
    parser.add_argument("--examples", type=int, default=100, help="examples (default: 100)")
    parser.add_argument(
        "--conventions", choices=("declared", "auto"), default=None,
        help="auto: infer the layout, names, bias shape, container, targets and one sample "
        "at a time from what your function accepts and returns (the flags given stay as "
        "declared; the reduction and L2 are never inferred); declared: ours, but for the "
        "flags given (default: auto)",
    )  # fmt: skip
    add_convention_arguments(parser, layer=True)
    parser.add_argument(
        "--param-bound", type=float, default=None, help="|W|, |B| bound (default: 10)"
    )
    parser.add_argument(
        "--input-bound", type=float, default=None,
        help="|X| bound (default: 100; with --layer every drawn value's, default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--layer", default=None, metavar="LAYER",
        help="check one layer function instead of a network: affine, "
        f"{', '.join(ACTIVATIONS)}, a loss head ({', '.join(LOSSES)}), batchnorm, "
        "layernorm, dropout, conv, max_pool, avg_pool, spatial_batchnorm, spatial_groupnorm, "
        "rnn_step, rnn, lstm_step, lstm, word_embedding, temporal_affine or "
        "temporal_softmax_loss (default: none, a whole-network check)",
    )  # fmt: skip
    parser.add_argument(
        "--forward", default=None, metavar="FUNCTION",
        help="your forward, FILE.py:NAME, whose cache your backward reads: with --layer "
        "the layer's (default: cs231n's cache (x, w, b) or x; required for batchnorm, "
        "layernorm, dropout); without, the network's, FUNCTION its backward, arguments "
        "passed by name (X, parameters, Y, AL, caches, keep_prob, lambd) (default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--dropout", type=probability_list, default=None, metavar="P",
        help="with --forward: the drop probability of every hidden layer, 1 - keep_prob "
        "(default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=non_negative_int, default=0,
        help="the seed of the drawn cases: the same seed, the same cases and verdict "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--clip", type=float, default=None, metavar="C",
        help="with --quantity dp_sgd: the clipping norm C > 0 (required there, no default)",
    )  # fmt: skip
    parser.add_argument(
        "--noise-multiplier", type=float, default=None, metavar="SIGMA",
        help="with --quantity dp_sgd: the noise multiplier σ >= 0, the noise's standard "
        "deviation σ C (required there, no default)",
    )  # fmt: skip
    parser.add_argument(
        "--clip-eps", type=float, default=None, metavar="EPS",
        help="with --quantity dp_sgd: ε >= 0 added to each norm in the clip factor "
        "min(1, C / (norm + ε)), Opacus's 1e-6 (default: 0, C / max(norm, C))",
    )  # fmt: skip
    add_isolation_arguments(parser)
    parser.add_argument(
        "--json", action="store_true",
        help="print the verdict as JSON, and nothing else on stdout (default: text)",
    )  # fmt: skip
    add_quiet_argument(parser)
    parser.set_defaults(handler=run)
