"""How close hand-written gradients stay to ``jax.grad`` as networks grow: a sweep.

``manual-bp audit`` runs this sweep over depth, width and dtype.  For each configuration it
builds a seeded network, draws a seeded batch, runs ``manual_bp``'s forward
and backward in that dtype, and compares every gradient with the float64
oracle through ``manual_bp_reference.compare.compare`` (the same per-entry tolerances as every
other check).  On top of the tolerance verdict it records plain error sizes,
so that float32 and float64 can be compared as numbers:

* ``max_abs_error``: ``max |manual - oracle|`` over every entry of every variable;
* ``max_rel_error``: for each variable ``v``, ``max |manual_v - oracle_v| / max |oracle_v|``,
  then the largest over the variables;
* ``worst_ratio``: the largest ``|manual - oracle| / tolerance`` (``ok`` when <= 1).

The network: ``depth`` hidden layers of ``width`` units between ``n0 = 4``
inputs and a softmax output of ``nL = 2`` classes with cross-entropy, so
``L = depth + 1`` weight layers.  ``X`` is standard normal, ``Y`` one-hot
with random classes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from manual_bp.network import init_params
from manual_bp.validation import check_activations, check_dtype, check_positive_int
from manual_bp_reference.cases import Case
from manual_bp_reference.compare import compare

AUDIT_INPUTS = 4
AUDIT_CLASSES = 2
AUDIT_LOSS = "cross_entropy"
AUDIT_OUTPUT_ACTIVATION = "softmax"

CSV_COLUMNS = (
    "depth",
    "width",
    "dtype",
    "activation",
    "batch",
    "max_abs_error",
    "max_rel_error",
    "worst_ratio",
    "ok",
)


@dataclass(frozen=True)
class AuditRow:
    """The agreement of one configuration (the worst over its repeats)."""

    depth: int
    width: int
    dtype: str
    activation: str
    batch: int
    max_abs_error: float
    max_rel_error: float
    worst_ratio: float
    ok: bool

    def csv_values(self) -> list[str]:
        """The values in ``CSV_COLUMNS`` order; floats with every digit (``repr``)."""
        return [str(getattr(self, column)) for column in CSV_COLUMNS]


def audit_case(depth: int, width: int, dtype: str, activation: str, batch: int, seed: int) -> Case:
    """The seeded network and batch of one configuration.

    ``W1`` has shape (width, 4), ..., ``WL`` shape (2, width), all in
    ``dtype``; ``X`` is (4, batch) standard normal, ``Y`` one-hot (2, batch),
    and there are ``L = depth + 1`` activations.
    """
    sizes = [AUDIT_INPUTS] + [width] * depth + [AUDIT_CLASSES]
    activations = [activation] * depth + [AUDIT_OUTPUT_ACTIVATION]
    params = init_params(sizes, activations, seed, dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((AUDIT_INPUTS, batch)).astype(dtype)
    classes = rng.integers(0, AUDIT_CLASSES, size=batch)
    Y = (np.arange(AUDIT_CLASSES)[:, None] == classes[None, :]).astype(dtype)
    return Case.of(params, X, Y, activations, AUDIT_LOSS)


def relative_error(max_abs_error: float, oracle_max: float) -> float:
    """``max |manual - oracle| / max |oracle|`` of one variable (0 when both are
    0, inf when only the oracle is)."""
    if max_abs_error == 0:
        return 0.0
    return max_abs_error / oracle_max if oracle_max > 0 else float("inf")


def audit_config(
    depth: int, width: int, dtype: str, activation: str, batch: int, seed: int
) -> AuditRow:
    """Compare the manual gradients of one configuration with the oracle.

    Every gradient ``backward`` returns is compared: ``Wl``, ``Bl``, ``Zl``
    and ``Al`` (l < L).
    """
    case = audit_case(depth, width, dtype, activation, batch, seed)
    comparison = compare(case, input_gradient=False)
    variables = comparison.variables.values()
    return AuditRow(
        depth=depth,
        width=width,
        dtype=np.dtype(dtype).name,
        activation=activation,
        batch=batch,
        max_abs_error=max(v.max_abs_diff for v in variables),
        max_rel_error=max(relative_error(v.max_abs_diff, v.oracle_max) for v in variables),
        worst_ratio=comparison.worst_ratio,
        ok=comparison.ok,
    )


def worst_of(rows: Sequence[AuditRow]) -> AuditRow:
    """One row for several seeds of the same configuration: the largest errors."""
    first = rows[0]
    return AuditRow(
        first.depth,
        first.width,
        first.dtype,
        first.activation,
        first.batch,
        max(row.max_abs_error for row in rows),
        max(row.max_rel_error for row in rows),
        max(row.worst_ratio for row in rows),
        all(row.ok for row in rows),
    )


def sweep(
    depths: Sequence[int],
    widths: Sequence[int],
    dtypes: Sequence[str],
    activations: Sequence[str],
    batch: int,
    *,
    seed: int = 0,
    repeats: int = 1,
    callback: Callable[[AuditRow], object] | None = None,
) -> list[AuditRow]:
    """``audit_config`` for every (activation, depth, width, dtype), in that nesting order.

    Each configuration runs with seeds ``seed, seed + 1, ..., seed + repeats - 1``
    and keeps the worst of them (``worst_of``).  The arguments are checked
    first, so a bad value fails before any work is done.  ``callback(row)``,
    if given, is called after each configuration (a progress bar).
    """
    # Each message starts with the parameter's name, which is also the flag of
    # ``manual-bp audit`` (``--depths`` for ``depths``).
    for name, values in (("depths", depths), ("widths", widths)):
        if not values:
            raise ValueError(f"{name}: expected at least one value, got none")
        for value in values:
            check_positive_int(value, name)
    if not dtypes or not activations:
        raise ValueError("dtypes, activations: expected at least one name each, got none")
    try:
        dtype_names = [check_dtype(dtype).name for dtype in dtypes]
    except TypeError as error:
        raise TypeError(f"dtypes: {error}") from None
    try:
        check_activations(list(activations), len(activations))
    except ValueError as error:
        raise ValueError(f"activations: {error}") from None
    batch = check_positive_int(batch, "batch")
    repeats = check_positive_int(repeats, "repeats")
    seed = check_positive_int(seed, "seed", minimum=0)
    rows = []
    for activation, depth, width, dtype in itertools.product(
        activations, depths, widths, dtype_names
    ):
        rows.append(
            worst_of(
                [
                    audit_config(depth, width, dtype, activation, batch, seed + repeat)
                    for repeat in range(repeats)
                ]
            )
        )
        if callback is not None:
            callback(rows[-1])
    return rows
