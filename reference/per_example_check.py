"""``check_per_example``: property-check anyone's per-example gradients or their norms.

Notation (the seed's: the batch as columns, ``manual_bp.network``)::

    A0 = X (n0, m),   Zl = Wl A(l-1) + Bl (nl, m),   Al = f_l(Zl) (nl, m)
    l_i = loss of column i alone (a batch of one)  +  l2/2 sum_l ||Wl||^2
    g_i = dl_i/dθ:    g_i[Wl] (nl, n(l-1)),  g_i[Bl] (nl, 1)

so that the batch gradient ``network.backward`` returns is ``(1/m) sum_i
g_i``, decay included (``manual_bp.per_example``'s definition).  The user's
``function(params, X, Y)`` takes our conventions (``params`` keyed ``W1``,
``B1``, ...; ``X`` (n0, m); ``Y`` (nL, m)) and returns, for
``quantity="gradients"``, a dict of ``(m, *param.shape)`` arrays (``W1`` of
shape ``(m, n1, n0)``, ``B1`` of shape ``(m, n1, 1)``) and, for
``quantity="norms"``, an ``(m,)`` array of ``||g_i||`` over every parameter
together (weights and biases of every layer).

``conventions=`` (``manual_bp_reference.conventions.Conventions``, as for
``check_gradients``) declares another layout: with cs231n's
``Conventions(layout="rows", names="W1/b1")`` the function takes ``X``
``(m, n0)``, ``W1`` ``(n0, n1)``, a flat ``b1`` ``(n1,)`` and returns ``W1``
of shape ``(m, n0, n1)`` and ``b1`` of shape ``(m, n1)``; the course's
``dW1``, ``db1`` keys are read as ``W1``, ``b1`` (as ``check_gradients``
reads them), and the targets, the container (a list, Nielsen's ``(nabla_b,
nabla_w)``) and the L2 term (``l2``, ``l2_divided_by_m``: the decay in each
example's loss is ``l2_for(m)``) are the conventions'.  The norms are the
same in every layout, but the function still takes ``params``, ``X``, ``Y``
in its own.  Conventions are declared, never inferred (``"auto"`` is
refused: ``manual_bp_reference.inference`` probes a batch backprop, and
with square weights a per-example gradient transposed by a bug would read as
the other layout), and ``reduction="sum"`` and ``per_sample`` are
refused: each example's gradient is its own, with no batch reduction, and
the function takes the whole batch.  A mismatch's tables, names, shapes and
pasteable call are the user's.

The oracle (``per_example_oracle``) is ``jax.vmap(jax.grad(l_i))`` of
manual_bp's own ``forward_xp`` over ``jax.numpy``, in float64: per network
(``manual_bp_reference.oracle``'s ``_value_and_grads`` of one column, mapped
over the columns of the batch padded to ``bucket(m, MIN_BATCH)``) inside
``one_network()`` (what a check opens), or per padding bucket
(``manual_bp_reference.padding``'s ``lax.scan`` forward: one compilation for
every small network), as ``oracle_gradients`` chooses.

The tolerance of example ``i``'s gradient, entry by entry, is the network
tolerance of the case restricted to column ``i`` as a batch of one
(``manual_bp_reference.tolerance.tolerances`` and the decay's
``compare.with_objective``): any correct computation of ``g_i`` is one
backward pass of a batch of one, in some summation order.  The norm's::

    | ||ĝ_i|| - ||g_i|| |  <=  ||tol_i||_2                       (the entries' errors)
                            +  SAFETY u (P + 2) ||g_i||           (the sum of P squares, the root)
                            +  min(E_i / (2 ||g_i||), sqrt(E_i))  (an expanded square, below)

``P`` the parameter count, ``u`` the unit roundoff of the case's dtype (and
float64's).  The last term covers norms computed without forming ``g_i``
(Goodfellow's ``||z a^T||^2 = ||z||^2 ||a||^2``, ``manual_bp.per_example``):
with decay the expansion ``||z a^T + l2 W||^2 = ||z||^2 ||a||^2 + 2 l2 z^T W a
+ l2^2 ||W||^2`` can cancel, so the squared norm's rounding is relative to
``S_i = sum_l ||(|z| + tol_z)(|a|^T, 1) + l2 (|Wl|, |Bl|)||^2`` (``z`` the
example's ``dZl``, ``a`` its ``A(l-1)``), ``E_i = SAFETY (P + 2) (u S_i +
tiny)`` (``tiny`` the dtype's smallest normal number: a square below it may
underflow to 0, so a norm below about ``sqrt(P tiny)``, 1e-153 in float64 and
1e-18 in float32, is not judged finer than that), and a square root moves by
at most ``min(E / (2 sqrt s), sqrt E)`` when its argument moves by ``E``.

Kinks: as ``check_gradients``, relu and leaky_relu pre-activations are kept
farther from 0 than any summation order's rounding
(``manual_bp_reference.kinks.away_from_kinks``; ``Settings(kinks="as drawn")``
leaves them), and the oracle's own ``Zl`` locate the kinks for the tolerance.

On a mismatch the diagnosis names the first bug of the catalogue
(``BUGS``) whose formula, evaluated on the oracle's ``g_i``, the user's
outputs match within that formula's own tolerance (the correct tolerance
carried through the formula, 4 times, plus ``64 (P + m) u`` of its value):

* per-example gradients divided by m: ``g_i / m`` (the batch mean's ``1/m``
  kept, ``dZL = (AL - Y) / m``);
* the batch-mean gradient repeated: ``(1/m) sum_j g_j`` for every ``i``; the
  batch-sum gradient repeated: ``sum_j g_j``;
* the decay missing: ``g_i - l2 Wl``; added m times: ``g_i + (m - 1) l2 Wl``;
  divided by m (the course's ``lambd / m``): ``g_i - (1 - 1/m) l2 Wl``;
* (norms only) the squared norm: ``||g_i||^2`` (the square root forgotten);
  squared twice: ``||g_i||^4`` (the sum of squares squared again, e.g.
  ``np.sum(g**2) ** 2`` or the squares of per-layer squared norms summed as
  if norms: ``(sum_l ||g_l||^2)^2``); the bias gradients left out:
  ``sqrt(sum_l ||g_i[Wl]||^2)``; the per-layer norms summed: ``sum_l
  sqrt(||g_i[Wl]||^2 + ||g_i[Bl]||^2)``; the per-parameter norms summed:
  ``sum_key ||g_i[key]||``.

A formula that gives the right answer on the case (``m = 1`` for the ``1/m``
bugs, ``l2 = 0`` for the decay's) is not named.

>>> from manual_bp import Net
>>> from manual_bp.per_example import per_example_norms
>>> from manual_bp_reference.settings import Settings
>>> net = Net.of([3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy", l2=0.1)
>>> def norms(params, X, Y):
...     return per_example_norms(params, X, Y, net)
>>> report = check_per_example(norms, net, quantity="norms",
...                            settings=Settings(max_examples=5, isolate=False))
>>> report.examples
5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from hypothesis import strategies as st

from manual_bp.architecture import param_shapes
from manual_bp.net import Net
from manual_bp_reference.cases import Case
from manual_bp_reference.check import (
    CataloguedMismatch,
    LabelledReport,
    convention_hints,
    declared_conventions,
    nonfinite,
    run_catalogued,
    unreadable,
)
from manual_bp_reference.check_run import (
    CaseProperty,
    CaseRun,
    check_choice,
    check_function,
    check_plain_net,
)
from manual_bp_reference.compare import (
    Comparison,
    FittedDecay,
    as_float,
    bound_ratio,
    compare_variable,
    fitted_decay,
    with_objective,
)
from manual_bp_reference.conventions import (
    Conventions,
    GradsTypeError,
    _gradient_names,
    describe_value,
)
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.kinks import away_from_kinks
from manual_bp_reference.oracle import (
    OracleResult,
    _value_and_grads,
    choose_compiled,
    one_network,
)
from manual_bp_reference.padding import (
    MIN_BATCH,
    _padded_forward,
    _padded_loss,
    bucket,
    pad_case,
    padded_inputs,
)
from manual_bp_reference.settings import Settings
from manual_bp_reference.strategies import networks
from manual_bp_reference.tolerance import SAFETY, tolerances
from manual_bp_reference.tolerance.rounding import unit_roundoff

Array = np.ndarray
QUANTITIES = ("gradients", "norms")
# The norms' row in the tables.
NORMS = "norms"
# A catalogued formula matches within this many of its own tolerances ...
BUG_TOLERANCES = 4.0
# ... plus this many units of rounding per parameter and sample of its value.
BUG_ROUNDING = 64.0


# --- the oracle ----------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("net",))
def _network_per_example(params, X, Y, net):
    """``jax.vmap`` over the columns of ``X``, ``Y`` of ``_value_and_grads`` of
    that column alone (``forward_xp`` and the loss of a batch of one): every
    example's loss, ``Zl`` and gradients w.r.t. ``(params, taps, x)``."""

    def one(x, y):
        return _value_and_grads(params, x[:, None], y[:, None], net)

    return jax.vmap(one, in_axes=(1, 1))(X, Y)


@jax.jit
def _bucket_per_example(W, B, X, Y, codes, widths, loss_code, gamma, beta, norm_codes):
    """The same over a padded case (``padding.pad_case``): one compilation for
    every network of the bucket.  Each column is a batch of one (``m = 1``)."""

    def one(x, y):
        taps = jnp.zeros((2, W.shape[0], x.shape[0], 1))

        def objective(W, B, taps):
            norm = (gamma, beta, norm_codes, 1.0)
            A_L, Z = _padded_forward(W, B, x[:, None], codes, widths, taps, norm)
            return _padded_loss(Z[-1], A_L, y[:, None], loss_code, widths[-1], 1.0), Z

        (value, Z), grads = jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True)(
            W, B, taps
        )
        return value, Z, grads

    return jax.vmap(one, in_axes=(1, 1))(X, Y)


def _one_column_results(case: Case, compiled: str) -> list[OracleResult]:
    """Each example's ``OracleResult`` (loss without decay, grads ``Wl``,
    ``Bl``, ``Zl``, ``Al``, oracle ``Zl``) as a batch of one."""
    m, sizes, depth = case.m, case.layer_sizes, case.depth
    results = []
    if compiled == "bucket":
        padded = pad_case(case)
        Y = np.array(padded.Y)
        Y[:, m:] = Y[:, :1]  # each padded column a copy of the first example
        value, Z, (dW, dB, d_taps) = jax.device_get(
            _bucket_per_example(
                padded.W, padded.B, padded.X, Y, padded.codes, padded.widths,
                padded.loss_code, padded.gamma, padded.beta, padded.norm_codes,
            )
        )  # fmt: skip
        for i in range(m):
            grads, Zs = {}, {}
            for l in range(1, depth + 1):
                k, n, n_prev = padded.offset + l - 1, sizes[l], sizes[l - 1]
                grads[f"W{l}"] = dW[i, k, :n, :n_prev]
                grads[f"B{l}"] = dB[i, k, :n]
                grads[f"Z{l}"] = d_taps[i, 0, k, :n]
                if l < depth:
                    grads[f"A{l}"] = d_taps[i, 1, k, :n]
                Zs[f"Z{l}"] = Z[i, k, :n]
            results.append(OracleResult(float(value[i]), grads, Zs))
        return results
    net = dataclasses.replace(case.net, l2=0.0)
    M = m if compiled == "exact" else bucket(m, MIN_BATCH)
    X = padded_inputs(case.X, sizes[0], M)
    Y = np.empty((sizes[-1], M))
    Y[:, :m], Y[:, m:] = case.Y, np.asarray(case.Y, np.float64)[:, :1]
    params = {key: np.asarray(value, np.float64) for key, value in case.params.items()}
    value, Zs_all, (d_params, d_taps, _) = jax.device_get(_network_per_example(params, X, Y, net))
    for i in range(m):
        grads = {key: g[i] for key, g in d_params.items()}
        grads.update({key: g[i] for key, g in d_taps.items()})
        results.append(OracleResult(float(value[i]), grads, {k: z[i] for k, z in Zs_all.items()}))
    return results


@dataclass(frozen=True)
class PerExampleOracle:
    """The oracle's per-example gradients and norms of a case, with tolerances.

    ``grads[key]`` ``(m, *shape)``: ``g_i`` in float64, decay included;
    ``tolerances[key]`` the same shape: the per-entry bound of example ``i``
    (the case's column ``i`` as a batch of one); ``norms`` ``(m,)``:
    ``||g_i||``; ``norm_tolerances`` ``(m,)`` (the module's notes);
    ``losses`` ``(m,)``: ``l_i`` without the decay; ``unit``: ``u``.
    """

    grads: dict[str, Array]
    tolerances: dict[str, Array]
    norms: Array
    norm_tolerances: Array
    losses: Array
    unit: float

    @property
    def parameters(self) -> int:
        """``P``: the number of parameters."""
        return sum(int(np.prod(value.shape[1:])) for value in self.grads.values())


def per_example_oracle(case: Case, *, compiled: str | None = None) -> PerExampleOracle:
    """``jax.vmap(jax.grad(l_i))`` of ``case`` (a plain net; its ``l2`` is in
    every ``l_i``), in float64, with each example's tolerances.

    ``compiled``: ``"network"`` (the case's net, the batch padded),
    ``"bucket"`` (``padding``'s bucket: one compile for many nets) or
    ``"exact"`` (the case's own shapes); ``None`` chooses as
    ``oracle.choose_compiled`` (the network inside ``one_network()``).
    """
    if not isinstance(case, Case):
        raise TypeError(f"case: expected a manual_bp_reference Case, got {type(case).__name__}")
    _check_plain(case.net, "case.net")
    if compiled is None:
        compiled = choose_compiled(case.net, case.m)
    elif compiled not in ("network", "bucket", "exact"):
        raise ValueError(
            f"compiled: expected one of ['network', 'bucket', 'exact'] or None, got {compiled!r}"
        )
    l2, m = case.l2, case.m
    results = _one_column_results(case, compiled)
    keys = list(param_shapes(case.layer_sizes))
    grads = {key: np.empty((m, *case.params[key].shape)) for key in keys}
    bounds = {key: np.empty((m, *case.params[key].shape)) for key in keys}
    plain = case.net.with_l2(0.0)
    for i, result in enumerate(results):
        column = Case(plain, case.params, case.X[:, i : i + 1], case.Y[:, i : i + 1])
        _, cache = column.forward()
        tol = tolerances(column, cache, result.grads, oracle_Z=result.Z)
        with_decay, tol = with_objective(column, result, tol, reduction="mean", l2=l2)
        for key in keys:
            grads[key][i] = with_decay.grads[key]
            bounds[key][i] = tol.grads[key]
    u = unit_roundoff(case.dtype)
    norms, norm_bounds = _norm_and_tolerance(case, grads, bounds, u)
    losses = np.array([result.loss for result in results])
    return PerExampleOracle(grads, bounds, norms, norm_bounds, losses, u)


def _norm_and_tolerance(
    case: Case, grads: Mapping[str, Array], bounds: Mapping[str, Array], u: float
) -> tuple[Array, Array]:
    """``||g_i||`` and its tolerance (the module's notes), both ``(m,)``."""
    m = case.m
    flat = np.concatenate([grads[key].reshape(m, -1) for key in grads], axis=1)
    flat_tol = np.concatenate([bounds[key].reshape(m, -1) for key in bounds], axis=1)
    P = flat.shape[1]
    norms = _row_norms(flat)
    entries = _row_norms(flat_tol)
    _, cache = case.forward()
    S = np.zeros(m)
    for l in range(1, case.depth + 1):
        z = np.abs(grads[f"B{l}"][:, :, 0]) + bounds[f"B{l}"][:, :, 0]  # (m, nl)
        a = np.abs(np.asarray(cache[f"A{l - 1}"], np.float64)).T  # (m, n(l-1))
        W = case.l2 * np.abs(np.asarray(case.params[f"W{l}"], np.float64))
        B = case.l2 * np.abs(np.asarray(case.params[f"B{l}"], np.float64))[:, 0]
        S += np.sum((z[:, :, None] * a[:, None, :] + W) ** 2, axis=(1, 2))
        S += np.sum((z + B) ** 2, axis=1)
    # The squares' rounding, and their underflow: a square below the smallest
    # normal number may be flushed to 0 (each of the P + 2 terms loses < tiny).
    tiny = float(np.finfo(np.dtype(case.dtype)).tiny)
    E = SAFETY * (P + 2) * (u * S + tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        expanded = np.where(norms > 0, np.minimum(E / (2 * norms), np.sqrt(E)), np.sqrt(E))
    return norms, entries + SAFETY * u * (P + 2) * norms + expanded


def _row_norms(values: Array) -> Array:
    """``||row||_2`` of every row of ``(m, k)`` ``values``, scaled by the row's
    largest entry so that huge entries do not overflow (NaN and inf rows kept)."""
    values = np.asarray(values, np.float64)
    scale = np.max(np.abs(values), axis=1, initial=0.0)
    norms = scale.copy()  # a row of zeros: 0; one with NaN or inf: NaN or inf
    finite = (scale > 0) & np.isfinite(scale)
    norms[finite] = scale[finite] * np.linalg.norm(values[finite] / scale[finite, None], axis=1)
    return norms


# --- comparing one case --------------------------------------------------------------------


@dataclass(frozen=True)
class PerExampleRun(CaseRun):
    """``compare_per_example``'s answer: the comparison, the failure details (a
    return value that is no per-example quantity, NaN), the notes (dtypes,
    extra keys) and the user's values as read (float arrays, or absent)."""

    oracle: PerExampleOracle


def compare_per_example(
    case: Case,
    returned: object,
    *,
    quantity: str = "gradients",
    oracle: PerExampleOracle | None = None,
    conventions: Conventions | None = None,
) -> PerExampleRun:
    """Compare what a user's ``function(params, X, Y)`` returned on ``case``
    with the oracle's per-example ``quantity``, entry by entry.

    ``returned``: a dict ``{"W1": (m, n1, n0), "B1": (m, n1, 1), ...}``
    (``"gradients"``; in ``conventions``' layout, names, bias shape and
    container when given: ``read_per_example``) or an ``(m,)`` array
    (``"norms"``).  Float arrays of another dtype than the case's are judged
    in the case's dtype, with a note.
    """
    quantity = _check_quantity(quantity)
    if oracle is None:
        oracle = per_example_oracle(case)
    conventions = conventions or Conventions()
    dtype = np.dtype(case.dtype)
    notes: set[str] = set()
    details: list[str] = []
    values: dict[str, Array] = {}
    problems: dict[str, str] = {}
    if quantity == "gradients":
        expected = {key: oracle.grads[key] for key in oracle.grads}
        bounds = oracle.tolerances
        try:
            read, problems, extra, read_notes = read_per_example(returned, case, conventions)
        except GradsTypeError as error:  # worded for a backprop: this is the function
            details.append(str(error).replace("backprop returned", "function returned", 1))
            problems = {key: "not returned" for key in expected}
        else:
            notes.update(read_notes)
            for key, value in read.items():
                values[key] = as_float(value, conventions.user_key(key), dtype, notes)
            if extra:
                notes.add(f"keys returned that are no parameter's, not checked: {extra}")
            details += _layout_hint(problems, case, conventions)
    else:
        expected = {NORMS: oracle.norms}
        bounds = {NORMS: oracle.norm_tolerances}
        if isinstance(returned, Mapping) or returned is None:
            details.append(
                f"function returned {describe_value(returned)}; expected an array of shape "
                f"({case.m},): each example's gradient norm"
            )
        else:
            values[NORMS] = as_float(returned, NORMS, dtype, notes)
    variables = {
        key: compare_variable(key, values.get(key), expected[key], bounds[key], dtype)
        for key in expected
    }
    variables = unreadable(variables, problems)
    broken = nonfinite(values)
    if broken:
        where = "; ".join(f"{k}: {n} entries, first at {i}" for k, (n, i) in broken.items())
        details.append(f"NaN/inf in your values where the oracle's are finite ({where})")
    loss = float(np.mean(oracle.losses))
    comparison = Comparison(
        variables, loss, loss, 0.0, oracle.unit, loss_compared=False
    )  # fmt: skip
    return PerExampleRun(comparison, details, notes, values, oracle)


def read_per_example(
    returned: object, case: Case, conventions: Conventions
) -> tuple[dict[str, Array], dict[str, str], list[str], list[str]]:
    """A user's per-example gradients in our convention: ``(values, problems,
    extra, notes)``, as ``Conventions.from_user`` reads a batch gradient but
    with the leading example axis: ``values[key]`` ``(m, *shape)`` in our
    layout, ``problems[key]`` why one cannot be compared (missing, a shape,
    in the user's names and shapes), ``extra`` the user's keys that are no
    parameter's, ``notes`` how the value was read (``dW1`` keys).  Raises
    ``GradsTypeError`` for what is no container of gradients at all."""
    m, keys = case.m, list(param_shapes(case.layer_sizes))
    notes: list[str] = []
    extra: list[str] = []
    if conventions.container in ("list", "nabla"):
        items = conventions._from_nabla(returned, case.depth) if (
            conventions.container == "nabla"
        ) else returned  # fmt: skip
        if isinstance(items, Mapping) or not isinstance(items, list | tuple):
            names = [conventions.user_key(key) for key in keys]
            raise GradsTypeError(
                f"function returned {describe_value(returned)}; container="
                f"{conventions.container!r} expects a list of per-example gradients in the "
                f"order {names}"
            )
        extra = [f"item {i}" for i in range(len(keys), len(items))]
        named = dict(zip(keys, items, strict=False))
        wanted = {key: f"item {i}" for i, key in enumerate(keys)}
    else:
        if not isinstance(returned, Mapping):
            shapes = ", ".join(
                f"{conventions.user_key(key)}: "
                f"{(m, *conventions.expected_user_shape(key, case.params[key].shape))}"
                for key in keys
            )
            raise GradsTypeError(
                f"function returned {describe_value(returned)}; expected a dict of per-example "
                f"gradients ({shapes})"
            )
        wanted = {key: conventions.user_key(key) for key in keys}
        renamed = _gradient_names(wanted, keys, returned)
        if renamed:
            wanted.update(renamed)
            read = [f"{name!r} for {conventions.user_key(key)}" for key, name in renamed.items()]
            notes.append(f"gradients read from {', '.join(read)}")
        named = {key: returned[name] for key, name in wanted.items() if name in returned}
        known = set(wanted.values())
        extra = sorted(str(key) for key in returned if key not in known)
    values: dict[str, Array] = {}
    problems: dict[str, str] = {}
    for key in keys:
        if key not in named:
            problems[key] = f"missing from the returned gradients (expected {wanted[key]!r})"
            continue
        converted = _from_user_array(key, named[key], case, conventions)
        if isinstance(converted, str):
            problems[key] = converted
        else:
            values[key] = converted
    return values, problems, extra, notes


def _from_user_array(key: str, value: object, case: Case, conventions: Conventions) -> Array | str:
    """One per-example gradient ``(m, *user_shape)`` in our layout ``(m,
    *shape)``, or the problem: the declared shape is the one (a bias in
    another shape is named, not read)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # a ragged list: say what it was
        return f"not an array: {type(value).__name__} ({error})"
    m, shape = case.m, tuple(case.params[key].shape)
    declared = (m, *conventions.expected_user_shape(key, shape))
    if array.shape != declared:
        return f"shape {array.shape}, expected {declared}"
    if key[0] == "B":
        return array.reshape((m, *shape))
    return np.swapaxes(array, 1, 2) if conventions.layout == "rows" else array


def _layout_hint(problems: Mapping[str, str], case: Case, conventions: Conventions) -> list[str]:
    """A line naming the other layout when every weight's wrong shape is that
    layout's per-example shape (none when a weight is square)."""
    flipped = "rows" if conventions.layout == "columns" else "columns"
    other = Conventions(layout=flipped)
    weights = [key for key in case.params if key[0] == "W"]
    m = case.m
    for key in weights:
        shape = tuple(case.params[key].shape)
        wanted = f"shape {(m, *other.expected_user_shape(key, shape))},"
        if shape[0] == shape[1] or not problems.get(key, "").startswith(wanted):
            return []
    shape = tuple(case.params["W1"].shape)
    name = conventions.user_key("W1")
    return [
        f"your per-example weight gradients have the shapes of samples as {flipped} ({name} "
        f"{(m, *other.expected_user_shape('W1', shape))}) where layout={conventions.layout!r} "
        f"declares {(m, *conventions.expected_user_shape('W1', shape))}: transpose each "
        f"example's gradient, or, if your code takes samples as {flipped}, declare "
        f"layout={flipped!r} (--layout {flipped})"
    ]


# --- the bug catalogue ---------------------------------------------------------------------

Grads = dict[str, Array]


@dataclass(frozen=True)
class PerExampleBug:
    """One classic bug as a formula of the oracle's ``g_i``: ``gradients(g,
    tol, case)`` gives the per-example gradients the bug computes and their
    tolerances (None: the bug changes nothing the norm-only formulas read);
    ``norm``, for a norms-only bug, the norm it computes from ``g_i``
    (``(m, P)`` rows split by key) and its power."""

    name: str
    formula: str
    gradients: Callable[[Grads, Grads, Case], tuple[Grads, Grads]] | None = None
    norm: Callable[[Grads], Array] | None = None
    power: int = 1


def _scaled(factor: Callable[[int], float]) -> Callable[[Grads, Grads, Case], tuple[Grads, Grads]]:
    def apply(g: Grads, tol: Grads, case: Case) -> tuple[Grads, Grads]:
        c = factor(case.m)
        return {k: c * v for k, v in g.items()}, {k: abs(c) * v for k, v in tol.items()}

    return apply


def _repeated(total: bool) -> Callable[[Grads, Grads, Case], tuple[Grads, Grads]]:
    def apply(g: Grads, tol: Grads, case: Case) -> tuple[Grads, Grads]:
        c = case.m if total else 1
        out = {k: np.broadcast_to(c * v.mean(axis=0), v.shape) for k, v in g.items()}
        return out, {k: np.broadcast_to(c * v.max(axis=0), v.shape) for k, v in tol.items()}

    return apply


def _decay(times: Callable[[int], float]) -> Callable[[Grads, Grads, Case], tuple[Grads, Grads]]:
    """``l2 Wl`` replaced by ``times(m) l2 Wl``."""

    def apply(g: Grads, tol: Grads, case: Case) -> tuple[Grads, Grads]:
        out = dict(g)
        change = times(case.m) - 1.0
        for key in g:
            if key[0] == "W":
                penalty = case.l2 * np.asarray(case.params[key], np.float64)
                out[key] = g[key] + change * penalty
        return out, dict(tol)  # its rounding: BUG_ROUNDING of the value

    return apply


def _weights_only(g: Grads) -> Array:
    m = next(iter(g.values())).shape[0]
    return _row_norms(np.concatenate([v.reshape(m, -1) for k, v in g.items() if k[0] == "W"], 1))


def _per_layer_summed(g: Grads) -> Array:
    m = next(iter(g.values())).shape[0]
    layers = sorted({int(k[1:]) for k in g})
    return sum(
        _row_norms(np.concatenate([g[f"W{l}"].reshape(m, -1), g[f"B{l}"].reshape(m, -1)], 1))
        for l in layers
    )  # type: ignore[return-value]


def _per_key_summed(g: Grads) -> Array:
    m = next(iter(g.values())).shape[0]
    return sum(_row_norms(v.reshape(m, -1)) for v in g.values())  # type: ignore[return-value]


def _full(g: Grads) -> Array:
    m = next(iter(g.values())).shape[0]
    return _row_norms(np.concatenate([v.reshape(m, -1) for v in g.values()], 1))


BUGS: tuple[PerExampleBug, ...] = (
    PerExampleBug(
        "per-example gradients divided by m",
        "g_i / m: the batch mean's 1/m kept (dZL = (AL - Y) / m, or dW / m)",
        gradients=_scaled(lambda m: 1.0 / m),
    ),
    PerExampleBug(
        "the batch-mean gradient repeated",
        "(1/m) sum_j g_j for every example: the batch gradient, not each example's",
        gradients=_repeated(total=False),
    ),
    PerExampleBug(
        "the batch-sum gradient repeated",
        "sum_j g_j for every example: the summed batch gradient, not each example's",
        gradients=_repeated(total=True),
    ),
    PerExampleBug(
        "the decay missing from each example",
        "g_i - l2 Wl: each example's loss without l2/2 sum ||Wl||^2",
        gradients=_decay(lambda m: 0.0),
    ),
    PerExampleBug(
        "the decay added m times",
        "g_i + (m - 1) l2 Wl: m l2 Wl in each example (the batch's decay summed over it)",
        gradients=_decay(lambda m: float(m)),
    ),
    PerExampleBug(
        "the decay divided by m",
        "g_i - (1 - 1/m) l2 Wl: l2 Wl / m in each example (the course's lambd / m)",
        gradients=_decay(lambda m: 1.0 / m),
    ),
    PerExampleBug(
        "the squared norm",
        "||g_i||^2: the sum of squares without its square root",
        norm=_full,
        power=2,
    ),
    PerExampleBug(
        "norms squared twice",
        "||g_i||^4: the sum of squares squared again (np.sum(g**2) ** 2)",
        norm=_full,
        power=4,
    ),
    PerExampleBug(
        "the bias gradients left out of the norm",
        "sqrt(sum_l ||g_i[Wl]||^2): the weights' gradients only",
        norm=_weights_only,
    ),
    PerExampleBug(
        "the per-layer norms summed",
        "sum_l sqrt(||g_i[Wl]||^2 + ||g_i[Bl]||^2) instead of sqrt(sum_l ...)",
        norm=_per_layer_summed,
    ),
    PerExampleBug(
        "the per-parameter norms summed",
        "sum_key ||g_i[key]|| (W1, B1, W2, ... each) instead of sqrt(sum_key ||g_i[key]||^2)",
        norm=_per_key_summed,
    ),
)
BUG_NAMES = tuple(bug.name for bug in BUGS)


def bug_values(bug: PerExampleBug, case: Case, oracle: PerExampleOracle, quantity: str) -> tuple[
    dict[str, Array], dict[str, Array]
] | None:  # fmt: skip
    """What ``bug`` computes on ``case`` (keyed as the comparison: ``Wl``,
    ``Bl`` or ``norms``) and its tolerance, or None where it does not apply
    (a norms-only bug for gradients)."""
    m, u = case.m, oracle.unit
    slack = BUG_ROUNDING * (oracle.parameters + m) * u
    if bug.norm is not None:
        if quantity != NORMS:
            return None
        n, t = bug.norm(oracle.grads), bug.norm(oracle.tolerances) + oracle.norm_tolerances
        p = bug.power
        value = n**p
        bound = BUG_TOLERANCES * p * (n + t) ** (p - 1) * t + slack * value
        return {NORMS: value}, {NORMS: bound}
    assert bug.gradients is not None
    g, tol = bug.gradients(oracle.grads, oracle.tolerances, case)
    if quantity == NORMS:
        n, t = _full(g), _full(tol) + oracle.norm_tolerances
        return {NORMS: n}, {NORMS: BUG_TOLERANCES * t + slack * n}
    return g, {key: BUG_TOLERANCES * tol[key] + slack * np.abs(g[key]) for key in g}


def diagnose_per_example(
    case: Case,
    values: Mapping[str, Array],
    *,
    quantity: str = "gradients",
    oracle: PerExampleOracle | None = None,
) -> list[PerExampleBug | FittedDecay]:
    """The catalogued bugs (``BUGS``) whose formula the user's ``values``
    match on ``case``, best match first; a formula that gives the right
    answer on this case is left out (nothing tells it from correct code).
    When none matches, per-example gradients that are ``g_i + c Wl`` (one
    fitted ``c``: ``compare.fitted_decay``) name a decay the net does not
    declare (``l2 = c``) or the declared one scaled (by ``(l2 + c) / l2``)."""
    quantity = _check_quantity(quantity)
    if oracle is None:
        oracle = per_example_oracle(case)
    if quantity == NORMS:
        correct = {NORMS: oracle.norms}
    else:
        correct = dict(oracle.grads)
    found = []
    for bug in BUGS:
        computed = bug_values(bug, case, oracle, quantity)
        if computed is None:
            continue
        expected, bound = computed
        if bound_ratio(correct, expected, bound) <= 1.0:
            continue  # the bug is invisible on this case
        ratio = bound_ratio(values, expected, bound)
        if ratio <= 1.0:
            found.append((ratio, bug))
    if found or quantity == NORMS:
        return [bug for _, bug in sorted(found, key=lambda pair: pair[0])]
    # No catalogued bug: a decay the net does not declare, or the declared one
    # scaled (cs231n's reg W for reg sum W^2), fitted: g_i + c Wl.
    decay = fitted_decay(
        values, correct, {key: BUG_TOLERANCES * t for key, t in oracle.tolerances.items()},
        {key: case.params[key] for key in correct if key[0] == "W"}, case.l2,
        slack=BUG_ROUNDING * (oracle.parameters + case.m) * oracle.unit, words=("g_i", "Wl"),
    )  # fmt: skip
    return [] if decay is None else [decay]


# --- the report and the mismatch -----------------------------------------------------------


@dataclass
class PerExampleReport(LabelledReport):
    """What a passing ``check_per_example`` ran (``CheckReport``'s fields) and
    which ``quantity``."""

    quantity: str = "gradients"

    def _label(self) -> str:
        return f"per-example {self.quantity}"


class PerExampleMismatch(CataloguedMismatch):
    """A user's per-example gradients or norms disagree with the oracle (or the
    function raised, timed out, or ended its process).

    As ``manual_bp_reference.check.GradientMismatch``: ``.comparison`` and
    ``.case`` the minimal failing case (each example's entries in the
    comparison's ``(m, ...)`` arrays), ``.typical``, ``.verdict``,
    ``.traceback``, ``.output``, ``.others``; and ``.quantity``, ``.values``
    (what the function returned on the case, as read, in our layout),
    ``.bugs`` (the catalogued bugs it matches, best first: ``.bug`` names the
    first), ``.conventions`` (the declared ``Conventions``: the tables and
    the pasteable call are in them).
    """

    catalogue = "per-example"
    bugs: tuple[PerExampleBug | FittedDecay, ...]

    def __init__(self, comparison: Comparison | None, case: Case | None, *,
                 quantity: str = "gradients", **rest: Any) -> None:  # fmt: skip
        self.quantity = quantity  # the verdict line reads it
        self.conventions: Conventions | None = None  # set by check_per_example
        super().__init__(comparison, case, **rest)

    def _verdict_line(self) -> str:
        what = f"per-example {self.quantity}"
        return f"verdict: {self.verdict} ({what})" if self.comparison is not None else (
            f"verdict: {self.verdict}"
        )  # fmt: skip

    def _view(self) -> Any:
        """Names, shapes and indices as the user's code has them (the leading
        example axis kept), where the conventions differ from ours."""
        conventions = self.conventions
        if conventions is None or not conventions.reshapes() or self.quantity == NORMS:
            return None

        def view(key: str, shape: tuple[int, ...], index: tuple[int, ...] | None) -> tuple[
            str, tuple[int, ...], tuple[int, ...] | None
        ]:  # fmt: skip
            if not shape:  # a problem, not an array: its name only
                return conventions.view(key, shape, None)[0], shape, index
            inner = None if index is None else tuple(index[1:])
            name, user_shape, at = conventions.view(key, tuple(shape[1:]), inner)
            where = None if index is None or at is None else (index[0], *at)
            return name, (shape[0], *user_shape), where

        return view

    def _as_the_user_calls_it(self) -> list[str]:
        if self.case is None:
            return []
        if self.conventions is None or self.conventions == Conventions():
            return ["your function's call on it:",
                    f"{self.function}(dict(case.params), case.X, case.Y)"]  # fmt: skip
        result = "per_example" if self.quantity == "gradients" else "norms"
        call = f"{result} = {self.function}(params, X, Y)"
        pasteable = self.conventions.pasteable(self.case, function=self.function, call=call)
        return ["in your conventions (paste it next to your function):", pasteable]

    def _diagnose(
        self, case: Case, values: Mapping[str, Array]
    ) -> list[PerExampleBug | FittedDecay]:
        return diagnose_per_example(case, values, quantity=self.quantity)


# --- the check -----------------------------------------------------------------------------


def _check_quantity(quantity: object) -> str:
    return check_choice(quantity, "quantity", QUANTITIES)


def _check_plain(net: object, name: str = "net") -> Net:
    return check_plain_net(net, "check_per_example", name=name,
                           why="its batch statistics couple the examples")  # fmt: skip


def _resolved(settings: object) -> Any:
    """``settings`` with ``check_gradients``' defaults (the same draws);
    ``stability_check`` is not used here, and an error names this check."""
    if settings is None:
        settings = Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings: expected a Settings, got {settings!r}")
    if settings.stability_check is not None:
        raise ValueError(
            "settings.stability_check: check_per_example does not rerun with bounded values; "
            "leave it None"
        )
    try:
        return settings.resolved("check_gradients")
    except ValueError as error:
        raise ValueError(
            str(error)
            .replace("check_gradients", "check_per_example", 1)
            .replace(", stability_check", "", 1)
        ) from None


def check_per_example(
    function: Callable[..., object] | str,
    net: Net,
    *,
    quantity: str = "gradients",
    conventions: Conventions | None = None,
    settings: Settings | None = None,
) -> PerExampleReport:
    """Property-check ``function(params, X, Y)``'s per-example gradients
    (``quantity="gradients"``: a dict of ``(m, *param.shape)`` arrays) or
    their norms (``"norms"``: an ``(m,)`` array of ``||g_i||`` over every
    parameter) against ``jax.vmap(jax.grad)`` of each example's loss.

    ``function``: a callable, or ``"FILE.py:NAME"`` / ``"MODULE:NAME"``,
    run in a child process as ``check_gradients`` runs a backprop (a time
    limit per call, output captured).  ``net``: a plain ``manual_bp.Net``
    (no normalization, no dropout); its ``l2`` is in every example's loss
    (``l_i = loss of column i + l2/2 sum ||Wl||^2``).  ``settings``: as for
    ``check_gradients`` (examples, dtype, batch, bounds, kinks, shrinking,
    seed, timeout, isolation); ``stability_check`` is not used.
    ``conventions``: how the function lays out its arrays, a
    ``manual_bp_reference.conventions.Conventions`` as for
    ``check_gradients`` (layout, names, bias shape, container, targets, L2;
    default None: ours); never inferred (``"auto"`` is refused), and
    ``reduction="sum"`` and ``per_sample`` are refused (the module's notes).

    Returns a ``PerExampleReport`` on a pass; raises ``PerExampleMismatch``
    on the minimal failing case, naming the catalogued bug (``BUGS``) the
    values match.  The same check gives the same verdict every run.
    """
    source = check_function(function, "function", "(params, X, Y) -> per-example values")
    net = _check_plain(net)
    quantity = _check_quantity(quantity)
    declared = declared_conventions(
        conventions, net, check="check_per_example", returns="every example's gradient",
        summed="each example's gradient is its own, with no reduction over the batch",
    )  # fmt: skip
    chosen = _resolved(settings)
    plain = net.with_l2(0.0)
    strategy = networks(
        net=st.just(plain), dtypes=(chosen.dtype,), max_batch=chosen.max_batch,
        param_bound=chosen.param_bound, input_bound=chosen.input_bound,
        hard_targets=declared.targets != "soft",
    )  # fmt: skip
    report = PerExampleReport(
        quantity=quantity, seed=chosen.seed, isolation=chosen.isolation.describe()
    )
    spec = _property((net, declared), quantity, chosen, report)
    with one_network():
        mismatch = run_catalogued(source, ("params", "X", "Y"), strategy, chosen, spec)
    if mismatch is not None:
        mismatch.conventions = declared
        raise mismatch from None
    report.names = {key: declared.user_key(key) for key in report.worst
                    if declared.user_key(key) != key}  # fmt: skip
    return report


def _property(
    declared: tuple[Net, Conventions], quantity: str, chosen: Any, report: PerExampleReport
) -> CaseProperty[Case]:
    """What the property does with a drawn case (the Net and the user's
    conventions ``declared``): kinks moved (unless ``chosen`` leaves them),
    the decay judged, the user's values compared, a pass added to ``report``."""
    net, conventions = declared

    def prepare(drawn: Case) -> Case:
        if chosen.kinks == "avoid":
            drawn = away_from_kinks(drawn)
        # The decay in every l_i: the Net's, or the conventions' for this m.
        return conventions.judged(Case(net, drawn.params, drawn.X, drawn.Y))

    return CaseProperty(
        "check_per_example", PerExampleMismatch, conventions.to_user,
        partial(compare_per_example, quantity=quantity, conventions=conventions),
        report=report, record=report.add, keywords={"quantity": quantity}, prepare=prepare,
        hints=lambda exception, case: convention_hints(exception, conventions, case),
    )  # fmt: skip
