"""Compare manual gradients with the oracle, entry by entry, and report.

Every entry passes when ``|manual - oracle| <= tolerance`` with the per-entry
tolerance of ``reference.tolerance``.  The *ratio* of a variable is the
largest ``|manual - oracle| / tolerance`` over its entries: below 1 it
matches, and its size says how close it came.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from manual_bp.network import backward, forward, gradient_keys, loss_from_cache
from reference.diagnosis import Diagnosis, diagnose
from reference.finite_diff import finite_difference_gradients, supported_side
from reference.oracle import OracleResult, oracle_gradients
from reference.tolerance import Tolerances, tolerances

Array = np.ndarray


@dataclass(frozen=True)
class VariableCheck:
    """How one gradient ``grads[key]`` compares with the oracle."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_diff: float
    ratio: float
    failing: int
    worst_index: tuple[int, ...]
    manual: float
    oracle: float
    tolerance: float
    problem: str = ""
    finite_differences: str = ""
    # Frobenius norms of the whole manual and oracle gradients, in float64,
    # and the oracle's largest magnitude (the scale of a relative error).
    manual_norm: float = np.nan
    oracle_norm: float = np.nan
    oracle_max: float = np.nan

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0


def _error_ratio(error: Array, tolerance: Array) -> Array:
    """``error / tolerance``, with 0/0 = 0, x/0 = inf and NaN errors = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / tolerance)
    return np.where(np.isnan(ratio), np.inf, ratio)


def _max_abs(gradient: Array) -> float:
    """``max |gradient|`` in float64 (0 for an empty array)."""
    return float(np.max(np.abs(gradient), initial=0.0))


def _norm(gradient: Array) -> float:
    """``||gradient||_F`` in float64, scaled by the largest entry so that huge but
    finite gradients do not overflow in the sum of squares."""
    values = np.asarray(gradient, dtype=np.float64)
    scale = float(np.max(np.abs(values), initial=0.0))
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(values / scale))


def _unusable(
    key: str, shape: tuple, dtype: str, oracle: Array, problem: str, manual_norm: float = np.nan
) -> VariableCheck:
    """A gradient that cannot be compared entry by entry fails as a whole."""
    return VariableCheck(
        key, shape, dtype, np.inf, np.inf, oracle.size, (), np.nan, np.nan, np.nan, problem,
        manual_norm=manual_norm, oracle_norm=_norm(oracle), oracle_max=_max_abs(oracle),
    )  # fmt: skip


def compare_variable(
    key: str, manual: object, oracle: Array, tolerance: Array, expected_dtype: np.dtype
) -> VariableCheck:
    """Compare one gradient array with the oracle's."""
    if manual is None:
        return _unusable(key, oracle.shape, "-", oracle, "missing from grads")
    manual = np.asarray(manual)
    if manual.shape != oracle.shape:
        problem = f"shape {manual.shape}, expected {oracle.shape}"
        return _unusable(key, manual.shape, str(manual.dtype), oracle, problem, _norm(manual))
    error = np.abs(manual.astype(np.float64) - oracle)
    ratio = _error_ratio(error, tolerance)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
    problem = ""
    worst_ratio = float(ratio[worst])
    if manual.dtype != expected_dtype:
        problem, worst_ratio = f"dtype {manual.dtype}, expected {expected_dtype}", np.inf
    return VariableCheck(
        key,
        manual.shape,
        str(manual.dtype),
        float(np.nanmax(error)),
        worst_ratio,
        int(np.sum(ratio > 1.0)),
        worst,
        float(manual[worst]),
        float(oracle[worst]),
        float(tolerance[worst]),
        problem,
        manual_norm=_norm(manual),
        oracle_norm=_norm(oracle),
        oracle_max=_max_abs(oracle),
    )


@dataclass(frozen=True)
class GradientCheck:
    """The result of comparing a manual backward pass with the oracle."""

    variables: dict[str, VariableCheck]
    loss_manual: float
    loss_oracle: float
    loss_tolerance: float
    unit: float
    diagnosis: Diagnosis | None = None
    # The per-entry tolerances the check used (None when built by hand).
    tolerances: Tolerances | None = None

    @property
    def loss_ratio(self) -> float:
        error = abs(self.loss_manual - self.loss_oracle)
        return float(_error_ratio(np.array(error), np.array(self.loss_tolerance)))

    @property
    def worst_ratio(self) -> float:
        return max([self.loss_ratio] + [v.ratio for v in self.variables.values()])

    @property
    def ok(self) -> bool:
        return self.worst_ratio <= 1.0

    def failures(self) -> list[VariableCheck]:
        return [v for v in self.variables.values() if not v.ok]

    def table(self) -> str:
        """One line per variable: key, shape, max |diff|, error/tolerance, match."""
        lines = [f"{'key':<5} {'shape':<10} {'max |diff|':>11} {'err/tol':>9}  match"]
        for v in self.variables.values():
            shape = "x".join(map(str, v.shape))
            lines.append(
                f"{v.key:<5} {shape:<10} {v.max_abs_diff:>11.3e} {v.ratio:>9.2e}  "
                f"{'yes' if v.ok else 'NO'}"
            )
        lines.append(
            f"{'loss':<5} {'':<10} {abs(self.loss_manual - self.loss_oracle):>11.3e} "
            f"{self.loss_ratio:>9.2e}  {'yes' if self.loss_ratio <= 1 else 'NO'}"
        )
        return "\n".join(lines)

    def report(self) -> str:
        """The table, then the worst entry of each failing variable."""
        status = "all gradients match" if self.ok else "MISMATCH"
        lines = [f"{status} (worst error/tolerance {self.worst_ratio:.3g})", self.table()]
        for v in self.failures():
            detail = v.problem or (
                f"worst at {v.worst_index}: manual {v.manual:.17g}, oracle {v.oracle:.17g}, "
                f"tolerance {v.tolerance:.3g}, error/tolerance {v.ratio:.3g}"
            )
            if v.finite_differences:
                detail += f"; finite differences support: {v.finite_differences}"
            lines.append(
                f"{v.key} {v.shape} {v.dtype}: {v.failing} of {int(np.prod(v.shape))} "
                f"entries fail; {detail}"
            )
        if self.diagnosis is not None:
            lines.append(str(self.diagnosis))
        if self.loss_ratio > 1:
            lines.append(f"loss: manual {self.loss_manual!r}, oracle {self.loss_oracle!r}")
        return "\n".join(lines)

    __str__ = report


def compare(
    manual_grads: Mapping[str, Array],
    manual_loss: float,
    oracle: OracleResult,
    tol: Tolerances,
    dtype: np.dtype | str,
    depth: int,
    input_gradient: bool = False,
) -> GradientCheck:
    """Compare every gradient the oracle has with ``manual_grads``."""
    expected_dtype = np.dtype(dtype)
    variables = {
        key: compare_variable(
            key, manual_grads.get(key), oracle.grads[key], tol.grads[key], expected_dtype
        )
        for key in gradient_keys(depth, input_gradient)
    }
    return GradientCheck(
        variables, float(manual_loss), oracle.loss, tol.loss, tol.unit, tolerances=tol
    )


def verify_network(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    input_gradient: bool = True,
) -> GradientCheck:
    """Run manual_bp's forward and backward and check them against the oracle.

    The manual side computes in the dtype of ``params``; ``X`` and ``Y`` must
    already have that dtype.
    """
    _, cache = forward(params, X, activations)
    grads = backward(cache, Y, activations, loss, input_gradient=input_gradient)
    manual_loss = float(loss_from_cache(cache, Y, loss, len(activations)))
    return check_against_oracle(
        grads, params, X, Y, activations, loss, input_gradient, cache=cache, manual_loss=manual_loss
    )


def check_against_oracle(
    grads: Mapping[str, Array],
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    input_gradient: bool = False,
    cache: Mapping[str, Array] | None = None,
    manual_loss: float | None = None,
    keys: Sequence[str] | None = None,
) -> GradientCheck:
    """Compare any ``grads`` for this case with the oracle, entry by entry.

    ``cache`` is manual_bp's forward cache (computed if not given); without
    ``manual_loss`` the loss is not compared; ``keys`` restricts the variables
    compared (default: every key ``backward`` returns).
    """
    dtype = np.asarray(params["W1"]).dtype
    if cache is None:
        _, cache = forward(params, X, activations)
    oracle = oracle_gradients(params, X, Y, activations, loss, input_gradient=input_gradient)
    tol = tolerances(params, cache, Y, activations, loss, oracle.grads, dtype, oracle.Z)
    loss_value = oracle.loss if manual_loss is None else manual_loss
    check = compare(grads, loss_value, oracle, tol, dtype, len(activations), input_gradient)
    if keys is not None:
        variables = {key: v for key, v in check.variables.items() if key in keys}
        check = dataclasses.replace(check, variables=variables)
    return explain_mismatch(check, params, X, Y, activations, loss, cache, grads, oracle)


# Finite differences cost four forward passes per entry: only small networks.
FINITE_DIFFERENCE_MAX_ENTRIES = 5000


def explain_mismatch(
    check: GradientCheck,
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    cache: Mapping[str, Array],
    manual_grads: Mapping[str, Array],
    oracle: OracleResult,
) -> GradientCheck:
    """Add the diagnosis and, for small networks, which side finite differences support."""
    if check.ok:
        return check
    failing = check.failures()
    input_gradient = "A0" in check.variables
    found = diagnose(
        [v.key for v in failing],
        manual_grads,
        oracle.grads,
        cache,
        Y,
        activations,
        loss,
        input_gradient,
    )
    variables = dict(check.variables)
    if sum(g.size for g in oracle.grads.values()) <= FINITE_DIFFERENCE_MAX_ENTRIES:
        fd = finite_difference_gradients(params, X, Y, activations, loss, input_gradient)
        for v in failing:
            if not v.problem:
                side = supported_side(v.manual, v.oracle, fd, v.key, v.worst_index)
                variables[v.key] = dataclasses.replace(v, finite_differences=side)
    return dataclasses.replace(check, variables=variables, diagnosis=found)
