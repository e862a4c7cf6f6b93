"""``check_layer``: property-check ONE hand-written layer function, cs231n style.

The most-used course has students write backprop one layer at a time::

    out, cache = affine_forward(x, w, b)        dx, dw, db = affine_backward(dout, cache)
    out, cache = relu_forward(x)                dx = relu_backward(dout, cache)
    loss, dx = softmax_loss(x, y)
    out, cache = batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

``check_layer(backward, layer, forward=...)`` draws shapes, inputs and upstream
gradients ``dout`` with Hypothesis, runs the user's forward (its cache is what
the user's backward reads) and backward, and compares every entry of every
output with ``jax.vjp`` of manual_bp's own definition of that layer in float64
(``Z = W A + B``; ``manual_bp.activations``; the loss with its canonical
activation from ``manual_bp.losses``; ``manual_bp.normalization.normalize``),
under a per-entry rounding bound (``reference.layer_tolerance``).  The
forward's ``out`` is compared too.

Layers (``LAYERS``) and the signatures taken, exactly cs231n's:

* ``"affine"``: ``forward(x, w, b) -> (out, cache)``, ``backward(dout, cache)
  -> (dx, dw, db)``;
* an activation (``"relu"``, ``"sigmoid"``, ... all ten of
  ``manual_bp.activations``; ``"softmax"`` over each sample's features):
  ``forward(x) -> (out, cache)``, ``backward(dout, cache) -> dx``;
* ``forward=None`` for these two: the cache is cs231n's ``(x, w, b)`` or ``x``;
* a loss head, named by its loss: ``"cross_entropy"`` (softmax),
  ``"binary_cross_entropy"`` (sigmoid), ``"mse"`` (identity,
  ``(1/(2m)) sum (x - y)^2``): ``backward`` is ``loss(x, y) -> (loss, dx)``
  and there is no ``forward``; ``targets="labels"`` (integer class indices
  ``(m,)``, the default) or ``"one_hot"`` (an array shaped like ``x``);
* ``"batchnorm"``, ``"layernorm"``: ``forward(x, gamma, beta, param) -> (out,
  cache)`` with ``param = {"mode": "train", "eps": 1e-5}`` (a fresh dict per
  call, so a forward that stores running statistics in it may), ``backward(dout,
  cache) -> (dx, dgamma, dbeta)``.  The statistics are the batch's (training
  mode); eps is ``manual_bp.normalization.EPS``.  Batch norm is drawn with
  ``m >= 2``, layer norm with at least 2 features.

``layout="rows"`` (default): cs231n's, ``x`` ``(m, d)``, ``w`` ``(d_in, d_out)``,
``b``, ``gamma``, ``beta`` ``(d,)``.  ``layout="columns"``: the seed's, ``x``
``(d, m)``, ``w`` ``(d_out, d_in)``, ``b``, ``gamma``, ``beta`` ``(d, 1)``.

Drawn values are exact in ``dtype``; values below ``1024 * tiny`` are drawn as
0 (XLA flushes subnormals to 0, and a relu slope times one underflows), so an
input exactly 0 checks the kink convention (relu'(0) = 0, leaky_relu'(0) = 1)
and every other input lies on its side of a kink by no matter of rounding.

A pass returns a ``LayerReport``.  A mismatch raises ``LayerMismatch`` with the
minimal case's table, a larger failing case's table, the wrong, missing or
misshapen outputs named (a shape mismatch gives both shapes), the user's
traceback if it raised, and for batch and layer norm the classic bug whose
formula the outputs match (``reference.normalization_bugs``).

>>> import numpy as np
>>> def affine_forward(x, w, b):
...     return x @ w + b, (x, w, b)
>>> def affine_backward(dout, cache):
...     x, w, b = cache
...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
>>> report = check_layer(affine_backward, "affine", forward=affine_forward, max_examples=5)
>>> report.examples
5
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from manual_bp.activations import ACTIVATIONS, LEAKY_RELU_SLOPE
from manual_bp.losses import LOSSES
from manual_bp.normalization import EPS, normalize
from manual_bp.validation import check_dtype, check_positive_int
from reference.cases import ACTIVATION_ORDER, LOSS_ORDER, matrices, targets
from reference.check import (
    Mismatch,
    batch_span,
    nonfinite,
    not_loaded,
    record_worst,
    run_line,
    worst_text,
)
from reference.check_run import (
    DEFAULT_SEED,
    check_function,
    check_seed,
    check_settings,
    isolation,
    open_sandbox,
    quiet_storage,
    run_until_failure,
    seeded,
)
from reference.compare import VariableComparison, compare_variable, ratio_text
from reference.isolation import (
    DEFAULT_TIMEOUT,
    NO_OUTPUT,
    Output,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
    UserFunction,
)
from reference.jax_setup import jax, jnp
from reference.layer_tolerance import tolerances_for
from reference.normalization_bugs import NORMALIZATION_BUGS, normalization_layer

Array = np.ndarray
LAYOUTS = ("rows", "columns")
TARGETS = ("labels", "one_hot")
NORMALIZATION_LAYERS = {"batchnorm": "batch", "layernorm": "layer"}


@dataclass(frozen=True)
class LayerSpec:
    """What one layer function takes and returns."""

    kind: str  # "affine", "activation", "loss", "normalization"
    inputs: tuple[str, ...]  # the forward's arrays, in call order
    grads: tuple[str, ...]  # what the backward returns, in order


def _spec(layer: str) -> LayerSpec:
    if layer == "affine":
        return LayerSpec("affine", ("x", "w", "b"), ("dx", "dw", "db"))
    if layer in ACTIVATIONS:
        return LayerSpec("activation", ("x",), ("dx",))
    if layer in LOSSES:
        return LayerSpec("loss", ("x", "y"), ("loss", "dx"))
    return LayerSpec("normalization", ("x", "gamma", "beta"), ("dx", "dgamma", "dbeta"))


LAYERS: tuple[str, ...] = ("affine", *ACTIVATION_ORDER, *LOSS_ORDER, *NORMALIZATION_LAYERS)


# --- layouts -----------------------------------------------------------------------------


def _to_user(name: str, value: Array, layout: str) -> Array:
    """Our array ``name`` (columns layout) in the user's ``layout`` (a fresh copy)."""
    value = np.array(value)
    if name in ("b", "gamma", "beta", "db", "dgamma", "dbeta"):
        return value.reshape(-1) if layout == "rows" else value.reshape(-1, 1)
    if layout == "rows" and value.ndim == 2:
        return value.T.copy()
    return value


def _to_ours(name: str, value: Array, layout: str) -> Array:
    """The user's array ``name`` in our columns layout, float64."""
    value = np.asarray(value, dtype=np.float64)
    if name in ("b", "gamma", "beta", "db", "dgamma", "dbeta"):
        return value.reshape(-1, 1)
    return value.T if (layout == "rows" and value.ndim == 2) else value


# --- cases -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LayerCase:
    """One drawn call: the user's inputs and ``dout``, in the user's layout.

    ``inputs`` holds ``x``, ``w``, ``b`` / ``x`` / ``x``, ``y`` / ``x``, ``gamma``,
    ``beta``; ``dout`` is None for a loss head.  The repr is exact and pasteable.
    """

    layer: str
    layout: str
    inputs: Mapping[str, Array]
    dout: Array | None
    dtype: str

    @property
    def m(self) -> int:
        """The batch size."""
        x = self.inputs["x"]
        return int(x.shape[0] if self.layout == "rows" else x.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``x``."""
        return tuple(self.inputs["x"].shape)

    def ours(self) -> tuple[dict[str, Array], Array | None]:
        """The inputs and ``dout`` in our columns layout, float64; ``y`` one-hot ``(C, m)``."""
        inputs = {k: _to_ours(k, v, self.layout) for k, v in self.inputs.items() if k != "y"}
        if "y" in self.inputs:
            inputs["y"] = _targets_to_ours(self, inputs["x"].shape)
        dout = None if self.dout is None else _to_ours("out", self.dout, self.layout)
        return inputs, dout

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        def literal(value: Array) -> str:
            return f"np.array({value.tolist()!r}, dtype={value.dtype.name!r})"

        inputs = ",\n".join(f"        {k!r}: {literal(v)}" for k, v in self.inputs.items())
        dout = "None" if self.dout is None else literal(self.dout)
        return (
            f"LayerCase(  # x shape {self.shape}, m={self.m}\n"
            f"    layer={self.layer!r}, layout={self.layout!r}, dtype={self.dtype!r},\n"
            f"    inputs={{\n{inputs},\n    }},\n    dout={dout},\n)"
        )


def _targets_to_ours(case: LayerCase, shape: tuple[int, ...]) -> Array:
    y = np.asarray(case.inputs["y"])
    if y.dtype.kind in "iu":  # labels (m,)
        if case.layer == "cross_entropy":
            return np.eye(shape[0])[:, y]
        return y.reshape(1, -1).astype(np.float64)
    return _to_ours("y", y, case.layout)


def _flushed(value: Array, dtype: str) -> Array:
    """Values below ``1024 * tiny`` set to 0 (see the module notes)."""
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    return np.where(np.abs(value) < 1024 * tiny, 0.0, value).astype(dtype)


@st.composite
def layer_cases(
    draw,
    layer: str,
    *,
    layout: str = "rows",
    dtype: str = "float64",
    targets_as: str = "labels",
    max_batch: int = 8,
    max_width: int = 8,
    bound: float = 10.0,
) -> LayerCase:
    """Cases of ``layer`` in ``layout``: shapes, inputs in ``[-bound, bound]``, ``dout``."""
    spec = _spec(layer)
    m = draw(st.integers(2 if layer == "batchnorm" else 1, max_batch))
    n = draw(st.integers(2 if layer in ("layernorm", "cross_entropy") else 1, max_width))
    if layer in ("binary_cross_entropy",):
        n = 1

    def values(shape: tuple[int, ...]) -> Array:
        return _flushed(draw(matrices(shape, bound, dtype)), dtype)

    ours: dict[str, Array] = {"x": values((n, m))}
    out_rows = n
    if spec.kind == "affine":
        out_rows = draw(st.integers(1, max_width))
        ours["w"], ours["b"] = values((out_rows, n)), values((out_rows, 1))
    elif spec.kind == "normalization":
        ours["gamma"], ours["beta"] = values((n, 1)), values((n, 1))
    inputs = {k: _to_user(k, v, layout) for k, v in ours.items()}
    dout = None
    if spec.kind == "loss":
        Y = draw(targets(layer, (n, m), dtype, hard=layer != "mse", bound=bound))
        if layer == "mse":
            inputs["y"] = _to_user("y", _flushed(Y, dtype), layout)
        elif targets_as == "labels":
            labels = np.argmax(Y, axis=0) if layer == "cross_entropy" else Y[0]
            inputs["y"] = labels.astype(np.int64)
        else:
            inputs["y"] = _to_user("y", Y, layout)
    else:
        dout = _to_user("out", values((out_rows, m)), layout)
    return LayerCase(layer, layout, inputs, dout, dtype)


# --- the oracle --------------------------------------------------------------------------


def _definition(layer: str) -> Callable[..., object]:
    """manual_bp's definition of ``layer`` over ``jax.numpy``, in our layout."""
    spec = _spec(layer)
    if spec.kind == "affine":
        return lambda x, w, b: w @ x + b
    if spec.kind == "activation":
        return lambda x: ACTIVATIONS[layer].forward(x, jnp)
    if spec.kind == "normalization":
        kind = NORMALIZATION_LAYERS[layer]
        return lambda x, gamma, beta: normalize(x, gamma, beta, kind, jnp)["N"]
    activation = ACTIVATIONS[LOSSES[layer].canonical_activation]
    return lambda x, y: LOSSES[layer].value(x, activation.forward(x, jnp), y, jnp)


@functools.partial(jax.jit, static_argnames=("layer",))
def _vjp(layer: str, arrays: tuple, dout: object) -> tuple:
    out, vjp = jax.vjp(_definition(layer), *arrays)
    return out, vjp(dout)


@functools.partial(jax.jit, static_argnames=("layer",))
def _value_and_grad(layer: str, x: object, y: object) -> tuple:
    return jax.value_and_grad(_definition(layer))(x, y)


def _bucket(size: int) -> int:
    """The padded size: a power of two, at least 4 (few shapes, few compilations)."""
    return max(4, 1 << (size - 1).bit_length())


def _padded(value: Array, rows: int, columns: int) -> Array:
    out = np.zeros((rows, columns))
    out[: value.shape[0], : value.shape[1]] = value
    return out


def layer_oracle(layer: str, inputs: Mapping[str, Array], dout: Array | None) -> dict[str, Array]:
    """``out`` (or ``loss``) and the gradients of ``layer`` at ``inputs``, ``dout``
    (our layout, float64): ``jax.vjp`` of manual_bp's definition.

    Each call is padded with zeros to a bucket shape along the axes its entries
    do not mix over, so that one compiled function serves many shapes: every
    axis of an affine layer or an elementwise activation; the features of batch
    norm; the samples of layer norm, softmax and the loss heads (whose zero
    target columns add exactly 0, and whose mean is rescaled from the padded
    batch to the real one).
    """
    spec = _spec(layer)
    x = inputs["x"]
    (n, m) = x.shape
    mixes_features = layer in ("softmax", "layernorm") or spec.kind == "loss"
    # A padded sample of binary cross-entropy would add softplus(0) = log 2.
    mixes_samples = layer in ("batchnorm", "binary_cross_entropy")
    N = n if mixes_features else _bucket(n)
    M = m if mixes_samples else _bucket(m)
    if spec.kind == "loss":
        y = _padded(inputs["y"], N, M)
        loss, dx = _value_and_grad(layer, jnp.asarray(_padded(x, N, M)), jnp.asarray(y))
        scale = M / m  # the padded mean divided by M, the definition by m
        return {"loss": np.asarray(loss) * scale, "dx": np.asarray(dx)[:n, :m] * scale}
    assert dout is not None  # every layer but a loss head has one
    padded = {"x": _padded(x, N, M)}
    o = n
    if spec.kind == "affine":
        o, O = inputs["w"].shape[0], _bucket(inputs["w"].shape[0])
        padded["w"], padded["b"] = _padded(inputs["w"], O, N), _padded(inputs["b"], O, 1)
    elif spec.kind == "normalization":
        padded["gamma"], padded["beta"] = (_padded(inputs[k], N, 1) for k in ("gamma", "beta"))
    rows = O if spec.kind == "affine" else N
    arrays = tuple(jnp.asarray(padded[k]) for k in spec.inputs)
    out, grads = _vjp(layer, arrays, jnp.asarray(_padded(dout, rows, M)))
    result = {"out": np.asarray(out)[:o, :m]}
    for k, g in zip(spec.inputs, grads, strict=True):
        result[f"d{k}"] = np.asarray(g)[tuple(slice(0, size) for size in inputs[k].shape)]
    return result


# --- running the user's code -------------------------------------------------------------


def _forward_args(spec: LayerSpec) -> tuple[str, ...]:
    """The names of a forward's arguments: the arrays, and a normalization's param dict."""
    return (*spec.inputs, "param") if spec.kind == "normalization" else spec.inputs


def _param(layer: str) -> dict[str, object]:
    return {"mode": "train", "eps": EPS} if layer == "batchnorm" else {"eps": EPS}


def run_user(
    backward: Callable[..., object], forward: Callable[..., object] | None, case: LayerCase
) -> tuple[dict[str, object], dict[str, str]]:
    """The user's outputs on ``case`` as returned (user layout), keyed ``out``,
    ``dx``, ... and the problems of what could not be read.  Raises what the
    user's code raises.  The user gets copies: our arrays stay ours.  With
    ``reference.isolation.UserFunction``s the forward's cache stays where the
    code runs and reaches the backward as it was returned."""
    spec = _spec(case.layer)
    inputs = {k: np.array(v) for k, v in case.inputs.items()}
    outputs: dict[str, object] = {}
    problems: dict[str, str] = {}
    if spec.kind == "loss":
        result = backward(inputs["x"], inputs["y"])
        returned = _unpack(result, spec.grads, "loss(x, y)", problems)
        outputs.update(returned)
        return outputs, problems
    args: list[object] = [inputs[k] for k in spec.inputs]
    if spec.kind == "normalization":
        args.append(_param(case.layer))
    if forward is None:
        cache: object = tuple(args) if spec.kind == "affine" else args[0]
    else:
        result = forward(*args)
        if not (isinstance(result, tuple) and len(result) == 2):
            problems["out"] = (
                f"forward returned {type(result).__name__}, expected a pair (out, cache)"
            )
            return outputs, problems
        outputs["out"], cache = result
        if isinstance(forward, UserFunction):
            cache = forward.keep(1)
    result = backward(np.array(case.dout), cache)
    outputs.update(_unpack(result, spec.grads, "backward(dout, cache)", problems))
    return outputs, problems


def _unpack(
    result: object, names: Sequence[str], call: str, problems: dict[str, str]
) -> dict[str, object]:
    """``result`` as ``{name: value}``: a tuple/list in order (a bare array for one
    name) or a dict keyed by the names; what is missing goes to ``problems``."""
    if len(names) == 1 and not isinstance(result, tuple | list | Mapping):
        return {names[0]: result}
    if isinstance(result, Mapping):
        found = {name: result[name] for name in names if name in result}
        extra = [str(k) for k in result if k not in names]
        for name in names:
            if name not in found:
                problems[name] = f"missing: {call} returned keys {sorted(map(str, result))}"
        if extra:
            problems.setdefault(names[0], f"extra keys returned by {call}: {extra}")
        return found
    if not isinstance(result, tuple | list):
        for name in names:
            problems[name] = (
                f"missing: {call} returned {type(result).__name__}, expected ({', '.join(names)})"
            )
        return {}
    found = dict(zip(names, result, strict=False))
    for name in names[len(result) :]:
        problems[name] = (
            f"missing: {call} returned {len(result)} values, expected {len(names)} "
            f"({', '.join(names)})"
        )
    if len(result) > len(names):
        problems[names[-1]] = (
            f"{call} returned {len(result)} values, expected {len(names)} ({', '.join(names)})"
        )
    return found


# --- comparing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerComparison:
    """Every output of one call compared with the oracle (``VariableComparison`` each)."""

    variables: dict[str, VariableComparison]
    notes: tuple[str, ...] = ()

    @property
    def worst_ratio(self) -> float:
        return max((v.ratio for v in self.variables.values()), default=0.0)

    @property
    def ok(self) -> bool:
        return self.worst_ratio <= 1.0

    def failures(self) -> list[VariableComparison]:
        return [v for v in self.variables.values() if not v.ok]

    def table(self) -> str:
        """One line per output: name, shape, max |diff|, error/tolerance, match."""
        lines = [f"{'output':<7} {'shape':<10} {'max |diff|':>11} {'err/tol':>11}  match"]
        for v in self.variables.values():
            shape = "x".join(map(str, v.shape)) or "scalar"
            lines.append(
                f"{v.key:<7} {shape:<10} {v.diff_text():>11} "
                f"{v.ratio_text():>11}  {'yes' if v.ok else 'NO'}"
            )
        return "\n".join(lines)

    def report(self) -> str:
        """The table, then the worst entry (or the problem) of each failing output."""
        status = "all outputs match" if self.ok else "MISMATCH"
        lines = [f"{status} (worst error/tolerance {ratio_text(self.worst_ratio)})", self.table()]
        for v in self.failures():
            if v.problem:  # a shape, a missing output: no entries to count
                lines.append(f"{v.key}: {v.problem}")
                continue
            lines.append(
                f"{v.key} {v.shape}: {v.failing} of {int(np.prod(v.shape))} entries fail; "
                f"worst at {v.worst_index}: yours {v.manual:.17g}, oracle {v.oracle:.17g}, "
                f"tolerance {v.tolerance:.3g}, error/tolerance {v.ratio_text()}"
            )
        return "\n".join(lines)

    __str__ = report


def compare_layer(
    case: LayerCase, outputs: Mapping[str, object], problems: Mapping[str, str]
) -> LayerComparison:
    """Compare the user's ``outputs`` on ``case`` with the oracle, entry by entry."""
    spec = _spec(case.layer)
    inputs, dout = case.ours()
    oracle = layer_oracle(case.layer, inputs, dout)
    tolerance = tolerances_for(spec.kind, case.layer, inputs, dout, case.dtype)
    expected = np.dtype(case.dtype)
    names = [
        n
        for n in ("out", *spec.grads)
        if n in oracle and (n != "out" or n in outputs or n in problems)
    ]
    variables, notes = {}, []
    for name in names:
        ndim = oracle[name].ndim
        expected_value = _to_user(name, oracle[name], case.layout) if ndim else oracle[name]
        tol = _to_user(name, tolerance[name], case.layout) if ndim else tolerance[name]
        if name in problems:
            variables[name] = VariableComparison(
                name, tuple(expected_value.shape), "-", np.inf, np.inf,
                max(expected_value.size, 1), (), np.nan, np.nan, np.nan, problems[name],
            )  # fmt: skip
            continue
        value = outputs.get(name)
        if value is not None:
            try:
                array = np.asarray(value)
            except Exception as error:  # a ragged list: say what arrived
                variables[name] = VariableComparison(
                    name, (), "-", np.inf, np.inf, max(expected_value.size, 1), (),
                    np.nan, np.nan, np.nan,
                    f"not an array: {type(value).__name__} ({error})",
                )  # fmt: skip
                continue
            if np.issubdtype(array.dtype, np.floating) and array.dtype != expected:
                notes.append(f"{name}: dtype {array.dtype} returned for {expected} inputs "
                             f"(values judged in {expected})")  # fmt: skip
                array = array.astype(expected)
            value = array
        with np.errstate(over="ignore"):  # err/tol beyond 1e308 is inf, as it should be
            variables[name] = compare_variable(name, value, expected_value, tol, expected)
    return LayerComparison(variables, tuple(notes))


# --- the diagnosis -----------------------------------------------------------------------


def normalization_diagnosis(case: LayerCase, outputs: Mapping[str, object]) -> list[str]:
    """The classic bugs (``reference.normalization_bugs``) whose outputs the user's match
    on ``case``, as sentences; empty when none does."""
    kind = NORMALIZATION_LAYERS[case.layer]
    inputs, dout = case.ours()
    assert dout is not None  # a normalization layer always has one
    tolerance = tolerances_for("normalization", case.layer, inputs, dout, case.dtype)
    found = []
    for bug in NORMALIZATION_BUGS:
        theirs = normalization_layer(
            kind, inputs["x"], inputs["gamma"], inputs["beta"], dout, formula=bug.formula
        )
        if _all_match(case, outputs, theirs, tolerance):
            found.append(f"likely: {bug.name}: your {case.layer} {bug.description}")
    return found


def _all_match(
    case: LayerCase, outputs: Mapping[str, object], theirs: Mapping[str, Array], tol: Mapping
) -> bool:
    """Every output the user returned equals ``theirs`` within ``tol`` (and one differs
    from nothing: at least one output compared)."""
    compared = 0
    for name, value in outputs.items():
        try:
            mine = _to_ours(name, np.asarray(value), case.layout)
        except (TypeError, ValueError):
            return False
        if mine.shape != theirs[name].shape:
            return False
        with np.errstate(invalid="ignore"):
            if not np.all(np.abs(mine - theirs[name]) <= tol[name]):
                return False
        compared += 1
    return compared > 0


def _kink_note(case: LayerCase, comparison: LayerComparison) -> list[str]:
    """relu/leaky_relu failing only where x is exactly 0: the kink convention."""
    if case.layer not in ("relu", "leaky_relu") or "dx" not in comparison.variables:
        return []
    v = comparison.variables["dx"]
    if v.problem or v.ok:
        return []
    x = np.asarray(case.inputs["x"])
    if x[v.worst_index] != 0:
        return []
    ours = "relu'(0) = 0" if case.layer == "relu" else "leaky_relu'(0) = 1"
    theirs = "relu'(0) = 1" if case.layer == "relu" else f"leaky_relu'(0) = {LEAKY_RELU_SLOPE}"
    return [
        f"the worst entry has x exactly 0: your kink convention looks like {theirs}; "
        f"manual_bp (as jax.nn) takes {ours}"
    ]


# --- the report and the mismatch ---------------------------------------------------------


@dataclass
class LayerReport:
    """What a passing ``check_layer`` ran: examples, shapes, worst err/tol per output."""

    layer: str = ""
    layout: str = ""
    examples: int = 0
    shapes: set[tuple[int, ...]] = field(default_factory=set)
    batch_sizes: set[int] = field(default_factory=set)
    worst: dict[str, float] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)
    # The seed that draws these cases again, and where the user's code ran.
    seed: int = DEFAULT_SEED
    isolation: str = ""

    def add(self, case: LayerCase, comparison: LayerComparison) -> None:
        self.layer, self.layout = case.layer, case.layout
        self.examples += 1
        self.shapes.add(case.shape)
        self.batch_sizes.add(case.m)
        self.notes |= set(comparison.notes)
        record_worst(self.worst, comparison.variables)

    def __str__(self) -> str:
        lines = [
            f"PASS: {self.layer} ({self.layout}), {self.examples} examples, "
            f"{len(self.shapes)} shapes of x, batch sizes {batch_span(self.batch_sizes)}",
            f"worst error/tolerance per output: {worst_text(self.worst)}",
        ]
        lines += [f"note: {note}" for note in sorted(self.notes)]
        return "\n".join([*lines, run_line(self.seed, self.isolation)])


class LayerMismatch(Mismatch):
    """A user's layer function disagrees with the oracle (or raised).

    The sibling of ``reference.check.GradientMismatch``: ``.comparison`` and
    ``.case`` are the minimal failing case (``comparison`` None when the code
    raised); ``.typical`` a larger failing ``(comparison, case)``; ``.verdict``
    ``"wrong"``, ``"raised"``, ``"unstable"`` or ``"correct maths, unstable
    numerics"``; ``.diagnosis`` the sentences naming a classic bug;
    ``.traceback`` the user's traceback.
    """

    def __init__(
        self,
        comparison: LayerComparison | None,
        case: LayerCase | None,
        *,
        verdict: str = "wrong",
        details: Sequence[str] = (),
        diagnosis: Sequence[str] = (),
        typical: tuple[LayerComparison | None, LayerCase] | None = None,
        user_traceback: str = "",
        output: Output = NO_OUTPUT,
        others: Sequence[str] = (),
    ) -> None:
        self.comparison, self.case, self.verdict = comparison, case, verdict
        self.details, self.diagnosis = list(details), list(diagnosis)
        self.typical, self.traceback = typical, user_traceback
        self.output, self.others = output, tuple(others)
        super().__init__(self._verdict_line())

    @property
    def failing(self) -> list[str]:
        """The outputs that do not match on the minimal case."""
        return [v.key for v in self.comparison.failures()] if self.comparison else []

    raised_on = "your code raised on the minimal case:"

    def _verdict_line(self) -> str:
        if self.case is None:
            return f"verdict: {self.verdict}"
        return f"verdict: {self.verdict} ({self.case.layer}, layout {self.case.layout!r})"

    def _describe(self, case: LayerCase) -> str:
        return f"x shape {case.shape}, m = {case.m}"

    def _explanation(self) -> list[str]:
        return self.details + self.diagnosis

    def _larger_case(self, case: LayerCase) -> str:
        return (
            f"{self._another(case)} failing case (x shape {case.shape}, m = {case.m}) shows which "
            "outputs the bug really breaks:"
        )


# --- check_layer -------------------------------------------------------------------------


def _check_arguments(layer, forward, layout, targets_as) -> str:
    """Check the layer and what goes with it (the functions are checked already)."""
    if layer not in LAYERS:
        raise ValueError(f"layer: expected one of {list(LAYERS)}, got {layer!r}")
    spec = _spec(layer)
    if spec.kind == "loss" and forward is not None:
        raise ValueError(
            f"forward: a loss head {layer!r} is one function loss(x, y) -> (loss, dx), "
            "passed as backward; got a forward too"
        )
    if spec.kind == "normalization" and forward is None:
        raise ValueError(
            f"forward: {layer!r} needs your forward (x, gamma, beta, param) -> (out, cache): "
            "its cache is what your backward reads"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    if targets_as is None:
        return "labels"
    if layer not in ("cross_entropy", "binary_cross_entropy"):
        raise ValueError(
            f"targets: only for the cross-entropy loss heads, got {targets_as!r} for {layer!r}"
        )
    if targets_as not in TARGETS:
        raise ValueError(f"targets: expected one of {list(TARGETS)}, got {targets_as!r}")
    return targets_as


def check_layer(
    backward: Callable[..., object] | str,
    layer: str,
    *,
    forward: Callable[..., object] | str | None = None,
    layout: str = "rows",
    targets: str | None = None,
    dtype: str = "float64",
    max_examples: int = 100,
    max_batch: int = 8,
    max_width: int = 8,
    input_bound: float = 10.0,
    stability_check: bool = True,
    shrink: bool = True,
    seed: int = DEFAULT_SEED,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    isolate: bool | None = None,
) -> LayerReport:
    """Return a ``LayerReport`` on a pass; raise ``LayerMismatch`` otherwise.

    ``backward(dout, cache)`` (a loss head: ``loss(x, y)``) and ``forward`` as
    in the module notes, callables or ``"FILE.py:NAME"``; ``layer`` one of
    ``LAYERS``; ``layout`` ``"rows"`` (cs231n) or ``"columns"``; ``targets``
    ``"labels"`` (default) or ``"one_hot"`` for the cross-entropy heads.
    ``input_bound`` bounds every drawn value.  When the user's outputs hold
    NaN/inf, ``stability_check`` reruns with values bounded by 1 to tell
    "correct maths, unstable numerics" from "wrong".  ``shrink=False``
    reports the first failing case unshrunk (faster).  ``seed``, ``timeout``,
    ``memory_limit`` and ``isolate`` as in ``reference.check.check_gradients``.
    """
    backward = check_function(backward, "backward", "(dout, cache) -> ...")
    if forward is not None:
        forward = check_function(forward, "forward", "(...) -> (out, cache)")
    targets_as = _check_arguments(layer, forward, layout, targets)
    dtype = check_dtype(dtype).name
    max_examples = check_positive_int(max_examples, "max_examples")
    max_batch = check_positive_int(max_batch, "max_batch")
    max_width = check_positive_int(max_width, "max_width")
    if layer == "batchnorm" and max_batch < 2:
        raise ValueError(f"max_batch: batchnorm is drawn with m >= 2, got {max_batch}")
    if layer in ("layernorm", "cross_entropy") and max_width < 2:
        raise ValueError(f"max_width: {layer} needs at least 2 features, got {max_width}")
    if isinstance(input_bound, bool) or not isinstance(input_bound, int | float):
        raise TypeError(f"input_bound: expected a number, got {input_bound!r}")
    if not (np.isfinite(input_bound) and input_bound > 0):
        raise ValueError(f"input_bound: expected a finite number > 0, got {input_bound!r}")
    seed = check_seed(seed)
    limits = isolation(isolate, timeout, memory_limit)
    spec = _spec(layer)
    backward_args = ("x", "y") if spec.kind == "loss" else ("dout", "cache")
    functions = (
        {"backward": backward} if forward is None else {"forward": forward, "backward": backward}
    )

    def run(user: tuple[UserFunction, UserFunction | None], bound: float) -> LayerReport:
        strategy = layer_cases(
            layer, layout=layout, dtype=dtype, targets_as=targets_as,
            max_batch=max_batch, max_width=max_width, bound=float(bound),
        )  # fmt: skip
        return _run(*user, strategy, (max_examples, shrink, targets_as, seed))

    with quiet_storage():
        try:
            sandbox = open_sandbox(functions, limits)
        except (UserCodeLoadError, UserCodeStopped) as error:
            raise LayerMismatch(None, None, **not_loaded(error)).with_context(
                seed=seed, isolation=limits.describe()
            ) from None
        with sandbox:
            user = (
                sandbox.function("backward", backward_args),
                None if forward is None else sandbox.function("forward", _forward_args(spec)),
            )
            try:
                report = _stability_checked(run, user, stability_check, input_bound, max_examples)
            except LayerMismatch as mismatch:
                raise mismatch.with_context(
                    notes=sandbox.notes(), seed=seed, isolation=limits.describe()
                ) from None
            report.notes |= set(sandbox.notes())
    report.seed, report.isolation = seed, limits.describe()
    return report


def _stability_checked(run, user, stability_check: bool, bound: float, max_examples: int):
    """``run`` at ``bound``; NaN/inf in the user's outputs reruns it with every
    value bounded by 1 to tell unstable numerics from wrong maths."""
    try:
        return run(user, bound)
    except LayerMismatch as mismatch:
        if not (stability_check and mismatch.verdict == "unstable"):
            raise
        try:
            run(user, 1.0)
            verdict, extra = (
                "correct maths, unstable numerics",
                [
                    f"with every value bounded by 1, {max_examples} examples pass: the formulas "
                    "are right, their evaluation overflows or divides by 0 at larger inputs"
                ],
            )
            diagnosis: list[str] = []  # right formulas: no classic bug to name
        except LayerMismatch as bounded:
            if bounded.verdict in Mismatch.STOPPED:  # the rerun hung or died: that
                raise bounded from None
            verdict, extra = (
                "wrong",
                [
                    f"with every value bounded by 1 it fails too ({bounded.summary()}): not only a "
                    "matter of large inputs"
                ],
            )
            diagnosis = mismatch.diagnosis
        raise LayerMismatch(
            mismatch.comparison, mismatch.case, verdict=verdict,
            details=mismatch.details + extra, diagnosis=diagnosis,
            typical=mismatch.typical, output=mismatch.output, others=mismatch.others,
        ) from None  # fmt: skip


def _run(backward, forward, strategy, options: tuple[int, bool, str, int]) -> LayerReport:
    max_examples, shrink, targets_as, seed = options
    report = LayerReport()
    first: list[tuple[LayerComparison | None, LayerCase]] = []

    @seeded(seed)
    @check_settings(max_examples, shrink)
    @given(strategy)
    def matches_the_oracle(case: LayerCase) -> None:
        try:
            outputs, problems = run_user(backward, forward, case)
        except UserCodeError as error:
            if not first:
                first.append((None, case))
            raise LayerMismatch(
                None, case, verdict="raised", user_traceback=error.record.traceback,
                output=error.record.output,
            ) from None  # fmt: skip
        except UserCodeStopped as stopped:
            stopped.context = case
            raise
        comparison = compare_layer(case, outputs, problems)
        if comparison.ok:
            report.add(case, comparison)
            return
        if not first:
            first.append((comparison, case))
        broken = [f"{name}: {count} entries" for name, (count, _) in nonfinite(outputs).items()]
        details = list(comparison.notes)
        verdict = "wrong"
        if broken:
            verdict = "unstable"
            details.append(
                "NaN/inf in your outputs where the oracle's are finite ("
                + "; ".join(broken)
                + "): an exp overflows or a division by 0 (a variance of 0, a saturated sigmoid)"
            )
        raise LayerMismatch(
            comparison, case, verdict=verdict, details=details, output=_last_output(backward)
        )

    failure = run_until_failure(
        matches_the_oracle, LayerMismatch,
        lambda stopped, line: LayerMismatch(
            None, stopped.context, verdict=stopped.verdict,  # type: ignore[arg-type]  # a case
            output=stopped.record.output, details=[line],
        ),
    )  # fmt: skip
    if failure is None:
        return report
    mismatch, others = failure
    mismatch.others = tuple(other.summary() for other in others)
    assert mismatch.case is not None  # every failure inside the run is of a case
    if mismatch.verdict in Mismatch.STOPPED:  # calling it again could hang again
        raise mismatch
    typical = _larger_failure(backward, forward, mismatch.case, first, targets_as)
    if mismatch.comparison is None:
        mismatch.typical = typical
        raise mismatch
    details = mismatch.details + _kink_note(mismatch.case, mismatch.comparison)
    diagnosis: list[str] = []
    if mismatch.case.layer in NORMALIZATION_LAYERS:
        diagnosis = _diagnose(backward, forward, mismatch.case)
    raise LayerMismatch(
        mismatch.comparison, mismatch.case, verdict=mismatch.verdict,
        details=details, diagnosis=diagnosis, typical=typical, output=mismatch.output,
        others=mismatch.others,
    ) from None  # fmt: skip


def _last_output(function: object) -> Output:
    """What the last call of a ``UserFunction`` printed (nothing for a plain callable)."""
    last = getattr(function, "last", None)
    return last.output if last is not None else NO_OUTPUT


def probe_case(layer: str, layout: str, dtype: str, *, targets_as: str = "labels") -> LayerCase:
    """A generic case of ``layer``: seeded normal values, 5 samples of 3 features (3 of
    5 for layer norm; an affine layer has 2 outputs), labels drawn at random.  No
    symmetry there hides a bug or lets two classic bugs give the same outputs."""
    rng = np.random.default_rng(0)
    spec = _spec(layer)
    n, m = (5, 3) if layer == "layernorm" else (3, 5)
    n = 1 if layer == "binary_cross_entropy" else n
    ours = {"x": rng.normal(size=(n, m))}
    rows = n
    if spec.kind == "affine":
        rows = 2
        ours["w"], ours["b"] = rng.normal(size=(rows, n)), rng.normal(size=(rows, 1))
    elif spec.kind == "normalization":
        ours["gamma"], ours["beta"] = rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    user = {k: _to_user(k, v, layout).astype(dtype) for k, v in ours.items()}
    dout = None
    if layer == "mse":
        user["y"] = _to_user("y", rng.normal(size=(n, m)), layout).astype(dtype)
    elif spec.kind == "loss":
        labels = rng.integers(0, max(n, 2), size=m)
        one_hot = np.eye(n)[:, labels] if layer == "cross_entropy" else labels[None, :]
        user["y"] = labels if targets_as == "labels" else _to_user("y", one_hot, layout)
        user["y"] = user["y"].astype(np.int64 if targets_as == "labels" else dtype)
    else:
        dout = _to_user("out", rng.normal(size=(rows, m)), layout).astype(dtype)
    return LayerCase(layer, layout, user, dout, dtype)


def _larger_failure(
    backward, forward, case: LayerCase, first: list, targets_as: str
) -> tuple[LayerComparison | None, LayerCase] | None:
    """A non-degenerate failing case: the generic probe if it fails, else the first
    failure found (None when that is the minimal case itself)."""
    probe = probe_case(case.layer, case.layout, case.dtype, targets_as=targets_as)
    try:
        comparison = compare_layer(probe, *run_user(backward, forward, probe))
    except (Exception, UserCodeStopped):  # the probe raised: the first failure found stands
        comparison = None
    if comparison is not None and not comparison.ok:
        return comparison, probe
    return first[0] if first and first[0][1] is not case else None


def _diagnose(backward, forward, case: LayerCase) -> list[str]:
    """The classic bugs matching a generic probe case (those also matching the
    minimal case first), else the minimal case alone; else a sentence saying none does."""
    try:
        outputs, problems = run_user(backward, forward, case)
    except (Exception, UserCodeStopped):  # code that changed its mind: no diagnosis
        return []
    if problems:
        return []
    found = normalization_diagnosis(case, outputs)
    probe = probe_case(case.layer, case.layout, case.dtype)
    try:
        probe_outputs, problems = run_user(backward, forward, probe)
    except (Exception, UserCodeStopped):  # the minimal case's answer stands
        problems = {"probe": "raised"}
    if not problems:
        probed = normalization_diagnosis(probe, probe_outputs)
        found = [s for s in probed if s in found] or probed
    return found or ["no classic bug (reference.normalization_bugs) explains these outputs"]
