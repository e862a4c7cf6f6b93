"""``manual-bp compare``: manual vs autodiff gradients, one row per variable.

For one network and one batch it computes the hand-written gradients
(``DNN.forward`` and ``compute_gradients``, with ``dA0``) and compares every
entry with ``jax.grad`` of the same forward function under the rounding-error
tolerance of ``manual_bp_reference.compare`` (the ``oracle`` extra).  Each row shows the
formula the manual side used (from ``manual_bp.derivation``), the Frobenius
norms of both gradients, the largest absolute difference and the largest
``|manual - autodiff| / tolerance`` over the entries (below 1 it matches).

``--finite-diff`` adds a third, independent opinion: central finite
differences of the float64 loss (``manual_bp_reference.finite_diff``).  Its columns
count the entries whose manual value finite differences support (the value
lies within the finite-difference error estimate, widened by the entry's
manual-vs-autodiff tolerance, which covers float32 rounding of the manual
side) and give the largest ``|finite difference - manual|`` away from relu
kinks.  It is informational: the exit code depends on the autodiff
comparison only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from manual_bp.architecture import gradient_keys
from manual_bp.cli.arguments import (
    add_batch_argument,
    add_model_argument,
    add_network_arguments,
    add_out_argument,
    help_formatter,
    network_from_arguments,
    non_negative_int,
    output_folder,
)
from manual_bp.cli.extras import require
from manual_bp.derivation import derive
from manual_bp.model import DNN
from manual_bp.network import loss_from_cache
from manual_bp.validation import SUPPORTED_DTYPES, check_inputs, check_targets

if TYPE_CHECKING:  # reference imports jax, an optional extra
    from manual_bp_reference.cases import Case
    from manual_bp_reference.compare import Comparison

Array = np.ndarray
DEFAULT_BATCH = 8
# X and Y come from their own stream of the seed, apart from the weights'.
DATA_STREAM = 1

EXAMPLES = """\
examples:
  manual-bp compare
      the seed's network (2,3,3,1, sigmoid, binary cross-entropy), a batch of 8, float64
  manual-bp compare --layers 2,4,3 --activations tanh --loss cross_entropy --dtype float32
      softmax output, float32 manual gradients
  manual-bp compare --layers 2,3,1 --activations relu,tanh --loss mse --finite-diff
      with the finite-difference columns
  manual-bp compare --data batch.npz --json > compare.json
      your own X (n0, m) and Y (nL, m) from an .npz file, as JSON
  manual-bp compare --model model.npz
      the trained network that manual-bp train --save model.npz wrote

exit status: 0 when every gradient and the loss match, 1 on a mismatch, 2 on bad
arguments.  Writes <out>/compare.json too.
"""


def draw_targets(loss: str, shape: tuple[int, int], rng: np.random.Generator) -> Array:
    """Targets in the loss's domain: labels {0, 1}, one-hot columns, or normal reals."""
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    if loss == "cross_entropy":
        return np.eye(shape[0])[:, rng.integers(0, shape[0], size=shape[1])]
    if loss == "mse":
        return rng.standard_normal(shape)
    raise ValueError(f"--loss: no targets can be drawn for {loss!r}; give them with --data")


def load_batch(path: Path, net: DNN, batch: int | None) -> tuple[Array, Array]:
    """``X`` (n0, m) and ``Y`` (nL, m) from an ``.npz`` file, checked against the net."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"--data {path}: cannot read it as an .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"--data {path}: expected an .npz archive holding X and Y, got one array")
    with archive:
        missing = [name for name in ("X", "Y") if name not in archive.files]
        if missing:
            raise ValueError(
                f"--data {path}: expected arrays 'X' (n0, m) and 'Y' (nL, m), missing "
                f"{missing}; the file holds {sorted(archive.files)}"
            )
        try:  # reading an array happens here, lazily (an object array fails now)
            X, Y = archive["X"], archive["Y"]
        except ValueError as error:
            raise ValueError(f"--data {path}: cannot read X and Y ({error})") from None
    try:
        X = check_inputs(X, net.layer_sizes[0], net.dtype)
        Y = check_targets(Y, (net.layer_sizes[-1], X.shape[1]), net.loss_name, net.dtype)
    except (TypeError, ValueError) as error:
        raise type(error)(f"--data {path}: {error}") from None
    if batch is not None and batch != X.shape[1]:
        raise ValueError(f"--batch: {batch} disagrees with the {X.shape[1]} columns of --data")
    return X, Y


def make_batch(net: DNN, batch: int, seed: int) -> tuple[Array, Array]:
    """Standard normal ``X`` (n0, m) and targets ``Y`` (nL, m) valid for the loss."""
    rng = np.random.default_rng([seed, DATA_STREAM])
    X = rng.standard_normal((net.layer_sizes[0], batch))
    Y = draw_targets(net.loss_name, (net.layer_sizes[-1], batch), rng)
    return (
        check_inputs(X, net.layer_sizes[0], net.dtype),
        check_targets(Y, Y.shape, net.loss_name, net.dtype),
    )


def _finite(value: float) -> float | None:
    """JSON has no inf or NaN: they become null."""
    return float(value) if math.isfinite(value) else None


def finite_difference_columns(
    case: Case, grads: dict[str, Array], comparison: Comparison
) -> dict[str, dict[str, object]]:
    """Per key: entries whose manual value finite differences support, and the
    largest ``|finite difference - manual|`` away from kinks."""
    from manual_bp_reference.compare import FINITE_DIFFERENCE_MAX_ENTRIES
    from manual_bp_reference.finite_diff import finite_difference_gradients

    entries = sum(gradient.size for gradient in grads.values())
    if entries > FINITE_DIFFERENCE_MAX_ENTRIES:
        raise ValueError(
            f"--finite-diff: {entries} gradient entries, finite differences are limited to "
            f"{FINITE_DIFFERENCE_MAX_ENTRIES} (smaller --layers or --batch)"
        )
    fd = finite_difference_gradients(case, input_gradient=True)
    columns: dict[str, dict[str, object]] = {}
    if comparison.tolerances is None:
        raise ValueError("--finite-diff: the comparison carries no tolerances")
    for key, gradient in grads.items():
        manual = gradient.astype(np.float64)
        tolerance = comparison.tolerances.grads[key]
        supported = 0
        for index in np.ndindex(*manual.shape):
            low, high = fd.interval(key, index)
            supported += bool(low - tolerance[index] <= manual[index] <= high + tolerance[index])
        smooth = ~fd.at_kink[key]
        difference = np.abs(fd.grads[key] - manual)[smooth]
        columns[key] = {
            "fd_supported": supported,
            "fd_entries": int(manual.size),
            "fd_max_abs_diff": float(difference.max()) if difference.size else math.nan,
        }
    return columns


def comparison_rows(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """The rows (one per gradient key, then the loss) and the summary."""
    net = network_from_arguments(args)  # every argument is checked before jax is imported
    if args.data is not None:
        X, Y = load_batch(args.data, net, args.batch)
    else:
        X, Y = make_batch(net, args.batch or DEFAULT_BATCH, args.seed)
    compare = require("oracle", "manual_bp_reference.compare", "compare").compare
    Case = require("oracle", "manual_bp_reference.cases", "compare").Case

    out, cache = net.forward(X)
    grads = net.compute_gradients(out, cache, Y, input_gradient=True)
    manual_loss = float(loss_from_cache(cache, Y, net.loss_name, net.depth))
    case = Case.of_network(net, X, Y)
    one_network = require("oracle", "manual_bp_reference.oracle", "compare").one_network
    with one_network():  # one network: its oracle compiled by it, not by a bucket
        check = compare(case, grads, input_gradient=True, cache=cache, manual_loss=manual_loss)
    derivation = derive(net.layer_sizes, net.activations, net.loss_name, input_gradient=True)
    fd = finite_difference_columns(case, grads, check) if args.finite_diff else {}

    rows = []
    for key in gradient_keys(net.depth, input_gradient=True):
        v = check.variables[key]
        row = {
            "key": key,
            "shape": list(v.shape),
            "formula": derivation.gradient_step(key).formula,
            "manual_norm": _finite(v.manual_norm),
            "autodiff_norm": _finite(v.oracle_norm),
            "max_abs_diff": _finite(v.max_abs_diff),
            "ratio": _finite(v.ratio),
            "failing": v.failing,
            "match": v.ok,
        }
        if key in fd:
            row.update(fd[key], fd_max_abs_diff=_finite(cast(float, fd[key]["fd_max_abs_diff"])))
        rows.append(row)
    loss_step = next(step for step in derivation.steps if step.section == "loss")
    rows.append(
        {
            "key": "loss",
            "shape": [],
            "formula": loss_step.formula,
            "manual_norm": _finite(abs(check.loss_manual)),
            "autodiff_norm": _finite(abs(check.loss_oracle)),
            "max_abs_diff": _finite(abs(check.loss_manual - check.loss_oracle)),
            "ratio": _finite(check.loss_ratio),
            "failing": int(check.loss_ratio > 1),
            "match": check.loss_ratio <= 1,
        }
    )
    summary = {
        "ok": check.ok,
        "worst_ratio": _finite(check.worst_ratio),
        "layer_sizes": list(net.layer_sizes),
        "activations": list(net.activations),
        "loss": net.loss_name,
        "dtype": net.dtype.name,
        "batch": int(X.shape[1]),
        "seed": args.seed,
        "data": None if args.data is None else str(args.data),
        "model": None if args.model is None else str(args.model),
        "finite_diff": bool(args.finite_diff),
    }
    if not check.ok:
        summary["report"] = check.report()
    return rows, summary


def _number(value: float | None, spec: str = ".3e") -> str:
    return "inf/nan" if value is None else format(value, spec)


def table(rows: list[dict], finite_diff: bool) -> str:
    """The rows as aligned text columns."""
    width = max(len(row["formula"]) for row in rows)
    header = (
        f"{'key':<5} {'shape':<8} {'formula':<{width}} {'|manual|':>10} {'|autodiff|':>10} "
        f"{'max |diff|':>10} {'err/tol':>9}  match"
    )
    if finite_diff:
        header += f"  {'FD supports':>11} {'FD max |diff|':>13}"
    lines = [header]
    for row in rows:
        shape = "x".join(map(str, row["shape"])) or "scalar"
        line = (
            f"{row['key']:<5} {shape:<8} {row['formula']:<{width}} "
            f"{_number(row['manual_norm']):>10} {_number(row['autodiff_norm']):>10} "
            f"{_number(row['max_abs_diff']):>10} {_number(row['ratio'], '.2e'):>9}  "
            f"{'yes' if row['match'] else 'NO':<5}"
        )
        if finite_diff and "fd_entries" in row:
            supports = f"{row['fd_supported']}/{row['fd_entries']}"
            line += f"  {supports:>11} {_number(row['fd_max_abs_diff']):>13}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = output_folder(args.out) / "compare.json"
    rows, summary = comparison_rows(args)
    document = {"summary": summary, "rows": rows}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        s = summary
        source = f"--data {s['data']}" if s["data"] else f"X ~ N(0, 1), seed {s['seed']}"
        if s["model"]:
            source += f"; --model {s['model']}"
        print(
            f"manual vs jax.grad: layers {s['layer_sizes']}, {', '.join(s['activations'])}, "
            f"{s['loss']}, {s['dtype']}, batch m = {s['batch']} ({source})"
        )
        print("norms are Frobenius norms; err/tol is the largest |manual - autodiff| / tolerance")
        if s["finite_diff"]:
            print(
                "FD supports: entries whose manual value float64 finite differences support "
                "(within their error estimate plus the tolerance)"
            )
        print(table(rows, s["finite_diff"]))
        verdict = "all gradients match" if s["ok"] else "MISMATCH"
        print(f"{verdict} (worst error/tolerance {_number(s['worst_ratio'], '.3g')})")
        if not s["ok"]:
            print(s["report"])
    print(f"wrote {path}", file=sys.stderr)
    return 0 if summary["ok"] else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="manual vs autodiff gradients, one row per variable",
        description="Compare every hand-written gradient of one network and batch with "
        "jax.grad of the same forward function, entry by entry, under the rounding-error "
        "tolerance.",
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    add_network_arguments(parser)
    add_batch_argument(
        parser,
        f"batch size m of the random batch (default: {DEFAULT_BATCH}; with --data, the file's)",
    )
    parser.add_argument(
        "--dtype",
        choices=SUPPORTED_DTYPES,
        default=None,
        help="dtype of the manual gradients (default: float64, or the --model's)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="the random weights (not with --model) and the random batch (default: 0)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="an .npz file with X (n0, m) and Y (nL, m) instead of a random batch (default: none)",
    )
    parser.add_argument(
        "--finite-diff",
        action="store_true",
        help="add finite-difference columns (small networks only; default: off)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of the table (default: off)"
    )
    add_model_argument(parser, "compare")
    add_out_argument(parser)
    parser.set_defaults(handler=run)
