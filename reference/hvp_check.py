"""``check_hvp``: property-check anyone's Hessian-vector or Gauss-Newton-vector product.

Notation (the seed's: the batch as columns, ``manual_bp.curvature``)::

    A0 = X (n0, m),   Zl = Wl A(l-1) + Bl (nl, m),   Al = f_l(Zl) (nl, m)
    L  = mean loss over the m columns + l2/2 sum_l ||Wl||^2
    V  = a direction: VWl (nl, n(l-1)), VBl (nl, 1)

The user's ``function(params, X, Y, V)`` takes our conventions (``params``
and ``V`` keyed ``W1``, ``B1``, ...) and returns a dict of the params' shapes:
``H V`` (``product="hessian"``: the Hessian of ``L``, decay included) or ``G
V`` (``product="ggn"``: ``J^T H_out J V + l2 VWl``, the network's output at the
logits ``ZL`` for a canonical pair and at ``AL`` for mse after another
activation, as ``manual_bp.curvature`` defines it).

``conventions=`` (``manual_bp_reference.conventions.Conventions``, as for
``check_gradients`` and ``check_per_example``) declares another layout: with
cs231n's ``Conventions(layout="rows", names="W1/b1", targets="labels")`` the
function takes ``X`` ``(m, n0)``, integer labels ``y`` ``(m,)``, ``params``
and ``V`` alike (``W1`` ``(n0, n1)``, a flat ``b1`` ``(n1,)``) and returns
its product in that layout.  The product is read as ``check_gradients``
reads gradients (``Conventions.from_user``: the course's ``dW1``, ``db1``
keys, a list or Nielsen's ``(nabla_b, nabla_w)`` if the container says so, a
bias in another of the three shapes, each with a note), then compared in
ours; the L2 term is the conventions' (``l2_divided_by_m``, the course's
``lambd / m``: the decay in ``L`` is ``l2_for(m)``).  Conventions are
declared, never inferred (``"auto"`` is refused: a direction's product has
the params' shapes, so a square weight transposed by a bug would read as the
other layout); ``per_sample`` is refused (the function takes the whole
batch), and so is ``reduction="sum"``: the summed loss's ``H V`` is ``m``
times the loss part, which the oracle could scale, but the catalogue's
``1/m`` bugs are formulas of the mean and would name the wrong one.  A
mismatch's tables, names, shapes and pasteable call (``params``, ``X``,
``Y`` and ``V``) are the user's.

The oracle (``hvp_oracle``) differentiates manual_bp's own forward and loss
with jax, in float64: ``H V`` is ``jax.jvp`` of ``jax.grad``; ``G V`` is
``jax.jvp`` of the network's output, the loss's Hessian at that output applied
by ``jax.jvp`` of its ``jax.grad``, and ``jax.vjp`` of the output back.  It
runs per network (``forward_xp``, the batch padded to ``bucket(m,
MIN_BATCH)``: one compile for the whole check, inside ``one_network()``) or
per padding bucket (``padding``'s ``lax.scan`` forward: one compile for every
small network), as ``oracle_gradients`` chooses.

The tolerance, entry by entry, is ``manual_bp_reference.tolerance.curvature``'s:
the R-operator run again on bounded values, every sum bounded order-free from
its terms' magnitudes, the forward's errors moving ``f'`` and ``f''`` (by
``sup |f''|`` and ``sup |f'''|``), the rounding of ``f'`` and ``f''``
themselves, the oracle's own; magnitudes from the case, never from the user's
answer.  Kinks: as ``check_gradients``, relu and leaky_relu pre-activations
are kept farther from 0 than any summation order's rounding
(``away_from_kinks``; ``Settings(kinks="as drawn")`` leaves them); a ``Z``
still within rounding of a kink (an exact 0, or elu's jump of ``f''``) gives
the entries it reaches either side's value as tolerance: undecided, with a
note, never a failure.

On a mismatch the diagnosis names the catalogued bug (``BUGS``) whose
formula, run through the same bounded R-operator with one term dropped or one
factor changed, the user's values match within ``BUG_TOLERANCES`` of that
formula's own tolerance plus ``BUG_ROUNDING (P + m) u`` of its value; a
formula that gives the right answer on the case (``l2 = 0`` for the decay's,
``m = 1`` for the ``1/m``'s, a linear net for the second-derivative term) is
not named.

>>> from manual_bp import Net
>>> from manual_bp.curvature import hessian_vector_product
>>> from manual_bp_reference.settings import Settings
>>> net = Net.of([3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy", l2=0.1)
>>> def hvp(params, X, Y, V):
...     return hessian_vector_product(params, X, Y, net, V)
>>> report = check_hvp(hvp, net, settings=Settings(max_examples=5, isolate=False))
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

from manual_bp.activations import ACTIVATIONS
from manual_bp.losses import LOSSES, l2_penalty
from manual_bp.net import Net
from manual_bp.network import forward_xp
from manual_bp_reference.cases import Case, array_literal
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
)
from manual_bp_reference.conventions import Conventions, GradsTypeError, params_literal
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.kinks import away_from_kinks
from manual_bp_reference.oracle import choose_compiled, one_network
from manual_bp_reference.padding import (
    ACTIVATION_NAMES,
    MIN_BATCH,
    _activation,
    _padded_forward,
    _padded_loss,
    bucket,
    masked_loss,
    pad_case,
    padded_inputs,
    zero_padded,
)
from manual_bp_reference.settings import Settings
from manual_bp_reference.strategies import matrices, networks
from manual_bp_reference.tolerance.curvature import (
    PRODUCTS,
    CurvatureBounds,
    Variant,
    curvature_bounds,
)

Array = np.ndarray
# A catalogued formula matches within this many of its own tolerances ...
BUG_TOLERANCES = 4.0
# ... plus this many units of rounding per parameter and sample of its value.
BUG_ROUNDING = 64.0
# |VWl|, |VBl| <= this in the drawn directions.
DIRECTION_BOUND = 10.0
KINK_NOTE = (
    "some Z lay within rounding of a kink (relu's and leaky_relu's f' at 0, elu's f'' at 0): "
    "the entries they reach were given either side's value as tolerance (undecided, not judged)"
)


# --- the case ------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class HVPCase:
    """One drawn call: a plain ``Case`` (its net's ``l2`` in the loss) and a
    direction ``V`` keyed as its params (copied, read-only)."""

    case: Case
    V: dict[str, Array]

    def __post_init__(self) -> None:
        frozen = {}
        for key, value in self.V.items():
            array = np.array(value)
            array.flags.writeable = False
            frozen[key] = array
        object.__setattr__(self, "V", frozen)

    @property
    def m(self) -> int:
        return self.case.m

    @property
    def dtype(self) -> Any:
        return self.case.dtype

    @property
    def layer_sizes(self) -> list[int]:
        return self.case.layer_sizes

    @property
    def parameters(self) -> int:
        return sum(int(np.size(value)) for value in self.V.values())

    def __repr__(self) -> str:
        V = ",\n".join(f"        {key!r}: {array_literal(v)}" for key, v in self.V.items())
        return f"HVPCase(\n    case={self.case!r},\n    V={{\n{V},\n    }},\n)"


@st.composite
def hvp_cases(draw: st.DrawFn, net: Net, *, dtype: str, max_batch: int, param_bound: float,
              input_bound: float, hard_targets: bool = False) -> HVPCase:  # fmt: skip
    """A case of ``net`` (``networks``' draws of params, ``X``, ``Y``; one-hot
    targets with ``hard_targets``) and a direction ``V`` with entries in
    ``[-DIRECTION_BOUND, DIRECTION_BOUND]``."""
    drawn = draw(networks(
        net=st.just(net.with_l2(0.0)), dtypes=(dtype,), max_batch=max_batch,
        param_bound=param_bound, input_bound=input_bound, hard_targets=hard_targets,
    ))  # fmt: skip
    V = {key: draw(matrices(value.shape, DIRECTION_BOUND, dtype))
         for key, value in drawn.params.items()}  # fmt: skip
    return HVPCase(Case(net, drawn.params, drawn.X, drawn.Y), V)


# --- the oracle ----------------------------------------------------------------------------


def _with_decay(product: dict, V: Mapping, l2: Any) -> dict:
    return {key: g + l2 * V[key] if key[0] == "W" else g for key, g in product.items()}


@partial(jax.jit, static_argnames=("net", "product"))
def _network_product(params, X, Y, V, m, net, product):
    """``H V`` or ``G V`` of ``net`` (``forward_xp``) over a batch padded to
    ``X.shape[1]`` columns of which the first ``m`` are real."""
    depth = net.depth
    columns = jnp.arange(X.shape[1])[None, :] < m
    loss = masked_loss(net.loss)
    canonical = net.activations[-1] == LOSSES[net.loss].canonical_activation

    def outputs(p):
        _, cache = forward_xp(p, X, net, xp=jnp)
        return cache[f"Z{depth}"], cache[f"A{depth}"]

    if product == "hessian":

        def objective(p):
            return loss(*outputs(p), Y, columns, m) + l2_penalty(p, net.l2, jnp)

        return jax.jvp(jax.grad(objective), (params,), (V,))[1]

    def output(p):
        Z, A = outputs(p)
        return Z if canonical else A

    def output_loss(o):
        A = ACTIVATIONS[net.activations[-1]].forward(o, jnp) if canonical else o
        return loss(o, A, Y, columns, m)

    o, JV = jax.jvp(output, (params,), (V,))
    HJV = jax.jvp(jax.grad(output_loss), (o,), (JV,))[1]
    (ggn,) = jax.vjp(output, params)[1](HJV)
    return _with_decay(ggn, V, net.l2)


@partial(jax.jit, static_argnames=("product",))
def _bucket_product(W, B, X, Y, VW, VB, codes, widths, loss_code, m, l2, canonical, product):
    """The same over a padded case (``padding.pad_case``, ``V`` padded with
    zeros): one compilation for every network of the bucket."""
    taps = jnp.zeros((2, *W.shape[:1], *X.shape))
    zeros = jnp.zeros((W.shape[0], W.shape[1], 1))
    norm = (zeros, zeros, jnp.zeros(W.shape[0], dtype=jnp.int32), m)
    units = jnp.arange(X.shape[0])[:, None]

    def outputs(W, B):
        A_L, Z = _padded_forward(W, B, X, codes, widths, taps, norm)
        return Z[-1], A_L

    if product == "hessian":

        def objective(W, B):
            Z, A = outputs(W, B)
            return _padded_loss(Z, A, Y, loss_code, widths[-1], m) + l2 / 2 * jnp.sum(W * W)

        return jax.jvp(jax.grad(objective, argnums=(0, 1)), (W, B), (VW, VB))[1]

    def output(W, B):
        Z, A = outputs(W, B)
        return jax.lax.cond(canonical, lambda: Z, lambda: A)

    branches = [_activation(name) for name in ACTIVATION_NAMES]

    def output_loss(o):
        A = jax.lax.cond(
            canonical, lambda: jax.lax.switch(codes[-1], branches, o, units < widths[-1]),
            lambda: o,
        )  # fmt: skip
        return _padded_loss(o, A, Y, loss_code, widths[-1], m)

    o, JV = jax.jvp(output, (W, B), (VW, VB))
    HJV = jax.jvp(jax.grad(output_loss), (o,), (JV,))[1]
    dW, dB = jax.vjp(output, W, B)[1](HJV)
    return dW + l2 * VW, dB


def oracle_product(case: HVPCase, *, product: str = "hessian",
                   compiled: str | None = None) -> dict[str, Array]:  # fmt: skip
    """``H V`` or ``G V`` of ``case`` by jax (module notes), float64, keyed
    ``W1``, ``B1``, ...; ``compiled``: ``"network"`` or ``"bucket"`` (``None``:
    as ``oracle.choose_compiled``, ``"exact"`` meaning the network's)."""
    product = check_choice(product, "product", PRODUCTS)
    inner, net = case.case, case.case.net
    m, sizes, depth = inner.m, inner.layer_sizes, inner.depth
    if compiled is None:
        compiled = "bucket" if choose_compiled(net, m) == "bucket" else "network"
    if compiled == "bucket":
        padded = pad_case(inner)
        VW, VB = np.zeros_like(padded.W), np.zeros_like(padded.B)
        for l in range(1, depth + 1):
            k = padded.offset + l - 1
            VW[k, : sizes[l], : sizes[l - 1]] = case.V[f"W{l}"]
            VB[k, : sizes[l]] = case.V[f"B{l}"]
        canonical = net.activations[-1] == LOSSES[net.loss].canonical_activation
        dW, dB = jax.device_get(_bucket_product(
            padded.W, padded.B, padded.X, padded.Y, VW, VB, padded.codes, padded.widths,
            padded.loss_code, m, net.l2, canonical, product,
        ))  # fmt: skip
        out = {}
        for l in range(1, depth + 1):
            k = padded.offset + l - 1
            out[f"W{l}"] = np.asarray(dW[k, : sizes[l], : sizes[l - 1]], np.float64)
            out[f"B{l}"] = np.asarray(dB[k, : sizes[l]], np.float64)
        return out
    if compiled != "network":
        raise ValueError(f"compiled: expected 'network', 'bucket' or None, got {compiled!r}")
    M = bucket(m, MIN_BATCH)
    X = padded_inputs(inner.X, sizes[0], M)
    Y = zero_padded(inner.Y, (sizes[-1], M))
    Y[:, m:] = np.asarray(inner.Y, np.float64)[:, :1]
    params = {key: np.asarray(value, np.float64) for key, value in inner.params.items()}
    V = {key: np.asarray(value, np.float64) for key, value in case.V.items()}
    out = jax.device_get(_network_product(params, X, Y, V, m, net, product))
    return {key: np.asarray(out[key], np.float64) for key in params}


@dataclass(frozen=True)
class HVPOracle:
    """The oracle's product (``values``, float64) and the tolerances of the
    case's dtype (``bounds``: ``curvature_bounds``' of the correct formula)."""

    values: dict[str, Array]
    bounds: CurvatureBounds
    product: str

    @property
    def tolerances(self) -> dict[str, Array]:
        return self.bounds.tolerances


def hvp_oracle(case: HVPCase, *, product: str = "hessian",
               compiled: str | None = None) -> HVPOracle:  # fmt: skip
    """The oracle's ``H V`` or ``G V`` of ``case`` and its tolerances."""
    if not isinstance(case, HVPCase):
        raise TypeError(f"case: expected an HVPCase, got {type(case).__name__}")
    values = oracle_product(case, product=product, compiled=compiled)
    bounds = curvature_bounds(case.case, case.V, variant=Variant(product=product))
    return HVPOracle(values, bounds, product)


# --- comparing one case --------------------------------------------------------------------


@dataclass(frozen=True)
class HVPRun(CaseRun):
    """``compare_hvp``'s answer: the comparison, the failure details, the
    notes and the user's values as read."""

    oracle: HVPOracle


def compare_hvp(case: HVPCase, returned: object, *, product: str = "hessian",
                oracle: HVPOracle | None = None,
                conventions: Conventions | None = None) -> HVPRun:  # fmt: skip
    """Compare what ``function(params, X, Y, V)`` returned on ``case`` with
    the oracle's product, entry by entry within its tolerance; ``returned``
    is read in ``conventions`` (None: ours) as ``Conventions.from_user``
    reads gradients."""
    product = check_choice(product, "product", PRODUCTS)
    if oracle is None:
        oracle = hvp_oracle(case, product=product)
    conventions = conventions or Conventions()
    dtype = np.dtype(case.dtype)
    expected = oracle.values
    notes: set[str] = set()
    details: list[str] = []
    values: dict[str, Array] = {}
    problems: dict[str, str] = {}
    try:
        read = conventions.from_user(returned, case.case)
    except GradsTypeError as error:  # no container of products at all
        details.append(str(error).replace("backprop returned", "function returned", 1))
    else:
        notes.update(read.notes)
        for key, value in read.grads.items():
            if key in expected:
                values[key] = as_float(value, conventions.user_key(key), dtype, notes)
        problems = {key: problem for key, problem in read.problems.items() if key in expected}
        extra = read.extra + [key for key in read.grads if key not in expected]
        if extra:
            notes.add(f"keys returned that are no parameter's, not checked: {sorted(extra)}")
    if oracle.bounds.excused:
        notes.add(KINK_NOTE)
    variables = {
        key: compare_variable(key, values.get(key), expected[key], oracle.tolerances[key], dtype)
        for key in expected
    }
    variables = unreadable(variables, problems)
    broken = nonfinite(values)
    if broken:
        where = "; ".join(f"{k}: {n} entries, first at {i}" for k, (n, i) in broken.items())
        details.append(f"NaN/inf in your values where the oracle's are finite ({where})")
    comparison = Comparison(variables, 0.0, 0.0, 0.0, oracle.bounds.unit, loss_compared=False)
    return HVPRun(comparison, details, notes, values, oracle)


# --- the bug catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class HVPBug:
    """One classic bug: its name, its formula in words, the ``Variant``
    fields that compute it, and the products (and losses) it applies to."""

    name: str
    formula: str
    changes: Mapping[str, Any]
    products: tuple[str, ...] = PRODUCTS
    losses: tuple[str, ...] = tuple(LOSSES)


BUGS: tuple[HVPBug, ...] = (
    HVPBug("the second-derivative term missing",
           "R(dZl) = f'(Zl) R(dAl) without f''(Zl) dAl R(Zl) (softmax: without its own R terms)",
           {"second": False}, ("hessian",)),
    HVPBug("the GGN product returned for the Hessian",
           "G V = J^T H_out J V: no f'' terms, no dZl R(A(l-1))^T, no VWl^T dZl",
           {"product": "ggn"}, ("hessian",)),
    HVPBug("the Hessian product returned for the GGN",
           "H V: the R-operator's f'' and cross terms kept in G V",
           {"product": "hessian"}, ("ggn",)),
    HVPBug("the output Hessian of the wrong loss (mse's I/m)",
           "H_out = I / m at the output (mse's) instead of the loss's own (cross-entropy's "
           "s (diag(p) - p p^T) / m, binary cross-entropy's diag(p (1 - p)) / m)",
           {"output": "identity"}),
    HVPBug("cross-entropy's output Hessian without p p^T",
           "H_out = s diag(p) / m: the softmax Jacobian's - p p^T left out",
           {"output": "diagonal"}, PRODUCTS, ("cross_entropy",)),
    HVPBug("R(dWl) missing dZl R(A(l-1))^T",
           "R(dWl) = R(dZl) A(l-1)^T + l2 VWl: the product rule's second term left out",
           {"cross": False}, ("hessian",)),
    HVPBug("R(dA(l-1)) missing VWl^T dZl",
           "R(dA(l-1)) = Wl^T R(dZl): the direction's own weights left out of the backward",
           {"back_direction": False}, ("hessian",)),
    HVPBug("VBl left out of R(Zl)",
           "R(Zl) = VWl A(l-1) + Wl R(A(l-1)): the direction's biases ignored",
           {"bias_direction": False}),
    HVPBug("the decay missing", "no l2 VWl in the weights' product", {"decay": 0.0}),
    HVPBug("the decay doubled", "2 l2 VWl: the decay's term added twice", {"decay": 2.0}),
    HVPBug("the batch mean's 1/m missing",
           "the summed loss's product (m times the mean's), decay as it should be",
           {"mean_power": 0}),
    HVPBug("1/m applied twice", "the loss part divided by m once more (R(dZL) = R(AL) / m^2)",
           {"mean_power": 2}),
    HVPBug("the sign flipped", "-(H V): the direction's sign flipped, or the product negated",
           {"sign": -1.0}),
)  # fmt: skip
BUG_NAMES = tuple(bug.name for bug in BUGS)


def bug_values(bug: HVPBug, case: HVPCase, product: str) -> tuple[dict, dict] | None:
    """What ``bug`` computes on ``case`` and its bound (``BUG_TOLERANCES`` of
    its tolerance plus ``BUG_ROUNDING (P + m) u`` of its value), or None where
    it does not apply."""
    if product not in bug.products or case.case.loss not in bug.losses:
        return None
    variant = dataclasses.replace(Variant(product=product), **bug.changes)
    computed = curvature_bounds(case.case, case.V, variant=variant)
    slack = BUG_ROUNDING * (case.parameters + case.m) * computed.unit
    bound = {key: BUG_TOLERANCES * computed.tolerances[key] + slack * np.abs(value)
             for key, value in computed.values.items()}  # fmt: skip
    return computed.values, bound


def diagnose_hvp(case: HVPCase, values: Mapping[str, Array], *, product: str = "hessian",
                 oracle: HVPOracle | None = None) -> list[HVPBug | FittedDecay]:  # fmt: skip
    """The catalogued bugs whose formula ``values`` match on ``case``, best
    first; a formula that gives the right answer on the case is left out.
    When none matches, a product that is ``H V + c VWl`` (one fitted ``c``:
    ``compare.fitted_decay``) names a decay the net does not declare (``l2 =
    c``) or the declared one scaled (by ``(l2 + c) / l2``)."""
    product = check_choice(product, "product", PRODUCTS)
    if oracle is None:
        oracle = hvp_oracle(case, product=product)
    found = []
    for bug in BUGS:
        computed = bug_values(bug, case, product)
        if computed is None:
            continue
        expected, bound = computed
        if bound_ratio(oracle.values, expected, bound) <= 1.0:
            continue  # the bug is invisible on this case
        ratio = bound_ratio(values, expected, bound)
        if ratio <= 1.0:
            found.append((ratio, bug))
    if found:
        return [bug for _, bug in sorted(found, key=lambda pair: pair[0])]
    # No catalogued bug: a decay the net does not declare, or the declared one
    # scaled, fitted: H V + c VWl.
    decay = fitted_decay(
        values, oracle.values, {key: BUG_TOLERANCES * t for key, t in oracle.tolerances.items()},
        {key: case.V[key] for key in oracle.values if key[0] == "W"}, case.case.l2,
        slack=BUG_ROUNDING * (case.parameters + case.m) * oracle.bounds.unit,
        words=(_SYMBOLS[product], "VWl"),
    )  # fmt: skip
    return [] if decay is None else [decay]


# --- the report and the mismatch -----------------------------------------------------------

_SYMBOLS = {"hessian": "H V", "ggn": "G V"}


@dataclass
class HVPReport(LabelledReport):
    """What a passing ``check_hvp`` ran (``CheckReport``'s fields) and which ``product``."""

    product: str = "hessian"

    def _label(self) -> str:
        return _SYMBOLS[self.product]


class HVPMismatch(CataloguedMismatch):
    """A user's ``H V`` or ``G V`` disagrees with the oracle (or the function
    raised, timed out, or ended its process): ``.comparison`` and ``.case``
    (an ``HVPCase``) the minimal failing case, ``.values`` what the function
    returned on it, ``.bugs`` the catalogued bugs it matches, best first
    (``.bug`` the first's name), ``.product``, ``.conventions`` (the declared
    ``Conventions``: the tables and the pasteable call are in them); the rest
    as ``manual_bp_reference.check.Mismatch``."""

    catalogue = "second-order"
    bugs: tuple[HVPBug | FittedDecay, ...]

    def __init__(self, comparison: Comparison | None, case: HVPCase | None, *,
                 product: str = "hessian", **rest: Any) -> None:  # fmt: skip
        self.product = product  # the verdict line reads it
        self.conventions: Conventions | None = None  # set by check_hvp
        super().__init__(comparison, case, **rest)

    def _verdict_line(self) -> str:
        suffix = f" ({_SYMBOLS[self.product]})" if self.comparison is not None else ""
        return f"verdict: {self.verdict}{suffix}"

    def _view(self) -> Any:
        """Names, shapes and indices as the user's code has them, where the
        conventions differ from ours."""
        if self.conventions is None or not self.conventions.reshapes():
            return None
        return self.conventions.view

    def _as_the_user_calls_it(self) -> list[str]:
        if self.case is None:
            return []
        conventions = self.conventions
        if conventions is None or conventions == Conventions():
            return ["your function's call on it:",
                    f"{self.function}(dict(case.case.params), case.case.X, case.case.Y, "
                    "dict(case.V))"]  # fmt: skip
        inner = self.case.case
        V = params_literal(conventions.params_to_user(self.case.V, inner.layer_sizes))
        call = f"V = {V}\nproduct = {self.function}(params, X, Y, V)"
        pasteable = conventions.pasteable(inner, function=self.function, call=call)
        return ["in your conventions (paste it next to your function):", pasteable]

    def _diagnose(self, case: HVPCase, values: Mapping[str, Array]) -> list[HVPBug | FittedDecay]:
        return diagnose_hvp(case, values, product=self.product)


# --- the check -----------------------------------------------------------------------------


def _resolved(settings: object) -> Any:
    """``settings`` with ``check_gradients``' defaults (the same draws); a
    ``stability_check`` is refused, and an error names this check."""
    chosen = Settings() if settings is None else settings
    if not isinstance(chosen, Settings):
        raise TypeError(f"settings: expected a Settings, got {type(chosen).__name__} {chosen!r}")
    if chosen.stability_check is not None:
        raise ValueError("settings.stability_check: check_hvp does not rerun with bounded "
                         f"values; leave it None, got {chosen.stability_check!r}")  # fmt: skip
    try:
        return chosen.resolved("check_gradients")
    except ValueError as error:
        message = str(error).replace("check_gradients", "check_hvp", 1)
        raise ValueError(message.replace(", stability_check", "", 1)) from None


def check_hvp(
    function: Callable[..., object] | str,
    net: Net,
    *,
    product: str = "hessian",
    conventions: Conventions | None = None,
    settings: Settings | None = None,
) -> HVPReport:
    """Property-check ``function(params, X, Y, V)``'s Hessian-vector product
    (``product="hessian"``: ``H V`` of the batch-mean loss plus ``l2/2 sum
    ||Wl||^2``) or Gauss-Newton-vector product (``"ggn"``: ``G V``, as
    ``manual_bp.curvature`` defines it) against jax.

    ``function``: a callable, or ``"FILE.py:NAME"`` / ``"MODULE:NAME"``, run
    in a child process as ``check_gradients`` runs a backprop; it returns a
    dict keyed like ``params`` (``W1``, ``B1``, ...) of the params' shapes.
    ``net``: a plain ``manual_bp.Net`` (no normalization, no dropout); its
    ``l2`` is in the loss.  ``conventions``: how the function lays out
    ``params``, ``X``, ``Y``, ``V`` and its product, a
    ``manual_bp_reference.conventions.Conventions`` as for
    ``check_gradients`` (layout, names, bias shape, container, targets, L2;
    default None: ours); never inferred (``"auto"`` is refused), and
    ``reduction="sum"`` and ``per_sample`` are refused (the module's notes).
    ``settings``: as for ``check_gradients`` (examples, dtype, batch, bounds,
    kinks, shrinking, seed, timeout, isolation); ``stability_check`` is not
    used.

    Returns an ``HVPReport`` on a pass; raises ``HVPMismatch`` on the minimal
    failing case, naming the catalogued bug (``BUGS``) its values match.  The
    same check gives the same verdict every run.
    """
    source = check_function(function, "function", "(params, X, Y, V) -> product dict")
    net = check_plain_net(net, "check_hvp")
    product = check_choice(product, "product", PRODUCTS)
    declared = declared_conventions(
        conventions, net, check="check_hvp", returns="the batch's product",
        summed="check_hvp judges the product of the batch-mean loss; a summed loss's (m "
        "times its loss part) is not supported: divide your loss part by m",
    )  # fmt: skip
    chosen = _resolved(settings)
    strategy = hvp_cases(
        net, dtype=chosen.dtype, max_batch=chosen.max_batch, param_bound=chosen.param_bound,
        input_bound=chosen.input_bound, hard_targets=declared.targets != "soft",
    )  # fmt: skip
    report = HVPReport(product=product, seed=chosen.seed, isolation=chosen.isolation.describe())
    spec = _property((product, declared), chosen, report)
    with one_network():
        mismatch = run_catalogued(source, ("params", "X", "Y", "V"), strategy, chosen, spec)
    if mismatch is not None:
        mismatch.conventions = declared
        raise mismatch from None
    report.names = {key: declared.user_key(key) for key in report.worst
                    if declared.user_key(key) != key}  # fmt: skip
    return report


def _property(
    declared: tuple[str, Conventions], chosen: Any, report: HVPReport
) -> CaseProperty[HVPCase]:
    """What the property does with a drawn case (the ``product`` and the
    user's conventions ``declared``): kinks moved (unless ``chosen`` leaves
    them), the decay judged, the user's product compared, a pass added to
    ``report``."""
    product, conventions = declared

    def prepare(drawn: HVPCase) -> HVPCase:
        inner = away_from_kinks(drawn.case) if chosen.kinks == "avoid" else drawn.case
        # The decay in L: the Net's, or the conventions' for this m.
        return HVPCase(conventions.judged(inner), drawn.V)

    def arguments(case: HVPCase) -> tuple[object, ...]:
        inner = case.case
        return (*conventions.to_user(inner), conventions.params_to_user(case.V, inner.layer_sizes))

    return CaseProperty(
        "check_hvp", HVPMismatch, arguments,
        partial(compare_hvp, product=product, conventions=conventions),
        report=report, record=lambda case, comparison: report.add(case.case, comparison),
        keywords={"product": product}, prepare=prepare,
        hints=lambda exception, case: convention_hints(exception, conventions, case.case),
    )  # fmt: skip
