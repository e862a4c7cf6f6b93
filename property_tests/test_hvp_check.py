"""``check_hvp``: correct Hessian- and GGN-vector products pass, every
catalogued bug is caught and named, bad arguments are refused.

The correct implementations are ``manual_bp.curvature``'s and a student's
independent R-operator (``benchmarks.hvp_styles``: its own activation
formulas, ``np.dot``, a plain loop).  The buggy ones are that student's code
with one classic bug each (``BUGGY``), not the catalogue's formula: the
diagnosis must recognise the code's output.

The oracle (``oracle_product``) is proven against ``jax.hessian`` of the whole
loss (``H V``) and against ``J^T H_out J`` built from ``jax.jacrev`` of the
network's output and ``jax.hessian`` of the loss at it (``G V``), on small
nets of every activation and loss, in both of its compilations.  The rounding
model's constants (``sup |f'''|``, the rounding of ``f''``) are checked on a
fine grid against jax.

Speed: the checks run in this process (``isolate=False``; one isolated run of
a ``FILE.py:NAME``), with few examples, on a short list of nets.
"""

from __future__ import annotations

import re
import textwrap
from functools import partial

import numpy as np
import pytest

from benchmarks.hvp_styles import BUGGY, activation, buggy, student_ggn, student_hvp
from manual_bp.activations import ACTIVATIONS
from manual_bp.curvature import ggn_vector_product, hessian_vector_product
from manual_bp.losses import LOSSES
from manual_bp.net import Net
from manual_bp.network import forward_xp
from manual_bp_reference.cases import Case
from manual_bp_reference.conventions import Conventions
from manual_bp_reference.hvp_check import (
    BUG_NAMES,
    BUGS,
    KINK_NOTE,
    HVPCase,
    HVPMismatch,
    HVPReport,
    check_hvp,
    compare_hvp,
    diagnose_hvp,
    hvp_oracle,
    oracle_product,
)
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.settings import Settings
from manual_bp_reference.tolerance.activation import ERROR_MODELS
from manual_bp_reference.tolerance.curvature import (
    THIRD_DERIVATIVE,
    Variant,
    curvature_bounds,
    second_derivative_error,
)

NETS = {
    "tanh-softmax": Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", l2=0.1),
    "silu-gelu-sigmoid": Net.of(
        [2, 3, 3, 1], ["silu", "gelu", "sigmoid"], "binary_cross_entropy", l2=0.5
    ),
    "elu-softplus-mse": Net.of([2, 3, 2], ["elu", "softplus"], "mse", l2=0.3),
    "relu-leaky-identity": Net.of([2, 3, 3, 2], ["relu", "leaky_relu", "identity"], "mse"),
    "softmax-sigmoid-mse": Net.of([2, 3, 2], ["softmax", "sigmoid"], "mse", l2=0.2),
}
SETTINGS = Settings(max_examples=5, isolate=False, max_batch=5)
# The bug tests' draws: values that keep tanh and softmax off saturation, where
# several formulas coincide (f' = f'' = 0 makes the GGN equal the R-op missing
# any one of its terms).
BUG_SETTINGS = Settings(max_examples=5, isolate=False, max_batch=5, param_bound=2.0,
                        input_bound=2.0, shrink=False)  # fmt: skip


def ours(net: Net, product: str):
    function = hessian_vector_product if product == "hessian" else ggn_vector_product

    def product_of(params, X, Y, V):
        return function(params, X, Y, net, V)

    return product_of


def student(net: Net, product: str):
    function = student_hvp if product == "hessian" else student_ggn

    def product_of(params, X, Y, V):
        return function(params, X, Y, V, net)

    return product_of


def small_case(net: Net, seed: int, m: int = 3, dtype: str = "float64") -> HVPCase:
    rng = np.random.default_rng(seed)
    sizes = net.layer_sizes
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])).astype(dtype)
        params[f"B{l}"] = (rng.choice([-1, 1], (sizes[l], 1)) * rng.uniform(0.2, 1, (sizes[l], 1))
                           ).astype(dtype)  # fmt: skip
    X = rng.standard_normal((sizes[0], m)).astype(dtype)
    if net.loss == "mse":
        Y = rng.standard_normal((sizes[-1], m))
    else:
        Y = rng.uniform(0, 1, (sizes[-1], m))
        if net.loss == "cross_entropy":
            Y /= Y.sum(axis=0, keepdims=True)
    V = {key: rng.standard_normal(value.shape).astype(dtype) for key, value in params.items()}
    return HVPCase(Case(net, params, X, Y.astype(dtype)), V)


# --- the oracle against jax.hessian -------------------------------------------------------


def _explicit(case: HVPCase):
    """``H V`` and ``G V`` from the whole matrices: ``jax.hessian`` of the loss
    over the flattened params, and ``J^T H_out J`` from ``jax.jacrev``."""
    inner = case.case
    as64 = {key: np.asarray(value, np.float64) for key, value in inner.params.items()}
    V = {key: np.asarray(value, np.float64) for key, value in case.V.items()}
    X, Y = np.asarray(inner.X, np.float64), np.asarray(inner.Y, np.float64)
    return jax.device_get(_explicit_products(as64, X, Y, V, inner.net))


@partial(jax.jit, static_argnames=("net",))
def _explicit_products(params, X, Y, V, net):
    from jax.flatten_util import ravel_pytree

    theta, unravel = ravel_pytree(params)
    v, _ = ravel_pytree(V)
    depth, loss = net.depth, LOSSES[net.loss]
    canonical = net.activations[-1] == loss.canonical_activation
    decay = ravel_pytree({k: jnp.full(p.shape, net.l2 if k[0] == "W" else 0.0)
                          for k, p in params.items()})[0]  # fmt: skip

    def outputs(flat):
        _, cache = forward_xp(unravel(flat), X, net, xp=jnp)
        return cache[f"Z{depth}"], cache[f"A{depth}"]

    def objective(flat):
        return loss.value(*outputs(flat), Y, jnp) + jnp.sum(decay * flat * flat) / 2

    def output(flat):
        Z, A = outputs(flat)
        return Z if canonical else A

    def output_loss(o):
        A = ACTIVATIONS[net.activations[-1]].forward(o, jnp) if canonical else o
        return loss.value(o, A, Y, jnp)

    H = jax.hessian(objective)(theta)
    J = jax.jacrev(output)(theta)  # (nL, m, P)
    n, m = J.shape[:2]
    H_out = jax.hessian(output_loss)(output(theta)).reshape(n * m, n * m)
    Jm = J.reshape(n * m, -1)
    G = Jm.T @ H_out @ Jm + jnp.diag(decay)
    return unravel(H @ v), unravel(G @ v)


@pytest.mark.parametrize("name", NETS)
def test_the_oracle_is_jax_hessian_times_v(name):
    net = NETS[name]
    for seed in (0,):
        case = small_case(net, seed)
        explicit = dict(zip(("hessian", "ggn"), _explicit(case), strict=True))
        for product, expected in explicit.items():
            tolerance = curvature_bounds(
                case.case, case.V, variant=Variant(product=product)
            ).tolerances
            for compiled in ("network", "bucket"):
                got = oracle_product(case, product=product, compiled=compiled)
                for key, value in got.items():
                    error = np.abs(value - np.asarray(expected[key]))
                    assert (error <= tolerance[key]).all(), (name, product, compiled, key)


def test_the_bounds_own_values_are_the_oracles():
    """The bounded R-operator computes the product too (its values are what the
    bug formulas change): they agree with the oracle within the tolerance."""
    for net in NETS.values():
        case = small_case(net, 7, dtype="float32")
        for product in ("hessian", "ggn"):
            bounds = curvature_bounds(case.case, case.V, variant=Variant(product=product))
            oracle = oracle_product(case, product=product)
            for key, value in oracle.items():
                assert (np.abs(bounds.values[key] - value) <= bounds.tolerances[key]).all()


# --- the rounding model's constants -------------------------------------------------------

GRID = np.linspace(-40, 40, 160_001)


@pytest.mark.parametrize("name", sorted(THIRD_DERIVATIVE))
def test_third_and_second_derivative_bounds(name):
    """``THIRD_DERIVATIVE`` bounds ``|f'''|`` and ``ERROR_MODELS``' curvature
    ``|f''|``; ``second_derivative_error`` bounds the float32 rounding of
    ``f''`` both as manual_bp and as the student write it."""
    forward = ACTIVATIONS[name].forward
    second = jax.vmap(jax.grad(jax.grad(lambda z: forward(z, jnp))))
    third = jax.vmap(jax.grad(jax.grad(jax.grad(lambda z: forward(z, jnp)))))
    z = jnp.asarray(GRID)
    exact = np.asarray(second(z))
    assert np.max(np.abs(np.asarray(third(z)))) <= THIRD_DERIVATIVE[name]
    assert np.max(np.abs(exact)) <= ERROR_MODELS[name].curvature
    Z32 = GRID.astype(np.float32)
    Z64 = Z32.astype(np.float64)
    exact32 = np.asarray(second(jnp.asarray(Z64)))
    u = float(np.finfo(np.float32).eps)
    bound = u * second_derivative_error(name, Z64)
    A32 = ACTIVATIONS[name].forward(Z32, np)
    mine = ACTIVATIONS[name].second_derivative(Z32, A32)  # type: ignore[misc]
    with np.errstate(all="ignore"):
        theirs = activation(name, Z32)[2]
    away = np.abs(Z64) > 0 if name == "elu" else np.ones(Z64.shape, bool)  # elu's jump at 0
    for computed in (mine, theirs):
        error = np.abs(np.asarray(computed, np.float64) - exact32)
        assert (error[away] <= bound[away]).all(), (name, float(np.max(error / bound)))


# --- correct code passes -------------------------------------------------------------------


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("product", ["hessian", "ggn"])
def test_ours_and_a_students_pass(name, product):
    net = NETS[name]
    for make in (ours, student):
        report = check_hvp(make(net, product), net, product=product, settings=SETTINGS)
        assert isinstance(report, HVPReport) and report.examples == SETTINGS.max_examples
        assert str(report).startswith(f"PASS ({'H V' if product == 'hessian' else 'G V'})")


def test_float32_passes():
    net = NETS["silu-gelu-sigmoid"]
    settings = Settings(max_examples=8, isolate=False, dtype="float32", max_batch=4)
    check_hvp(student(net, "hessian"), net, settings=settings)
    check_hvp(ours(net, "ggn"), net, product="ggn", settings=settings)


@pytest.mark.parametrize("name", ["elu", "relu", "leaky_relu"])
def test_a_kink_is_excused_with_a_note_never_failed(name):
    """Every ``Z1`` exactly 0 (``W1 = 0``, ``B1 = 0``): elu's ``f''`` (relu's,
    leaky_relu's ``f'``) is one thing on one side and another on the other.
    The product on either side passes, undecided where the jump reaches, with
    the note; the other side's is the product at ``B1 = +-1e-300`` (every ``Z1``
    across the kink, the rest equal to rounding)."""
    net = Net.of([2, 2, 1], [name, "identity"], "mse")
    params = {"W1": np.zeros((2, 2)), "B1": np.zeros((2, 1)), "W2": np.array([[1.0, -2.0]]),
              "B2": np.array([[0.5]])}  # fmt: skip
    X, Y = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([[0.3, -1.0]])
    V = {key: np.full(value.shape, 0.7) for key, value in params.items()}
    case = HVPCase(Case(net, params, X, Y), V)
    this_side = hessian_vector_product(params, X, Y, net, V)
    side = ACTIVATIONS[name].kink_side
    across = -1e-300 if side is not None and side(np.zeros(1))[0] else 1e-300
    other_side = hessian_vector_product({**params, "B1": np.full((2, 1), across)}, X, Y, net, V)
    assert any(not np.allclose(this_side[k], other_side[k]) for k in this_side)
    for returned in (this_side, other_side):
        run = compare_hvp(case, returned)
        assert run.comparison.ok and KINK_NOTE in run.notes, run.comparison.report()
        assert run.comparison.undecided > 0


# --- bugs ----------------------------------------------------------------------------------


def _bug_net(name: str) -> Net:
    if name == "cross-entropy's output Hessian without p p^T":
        return Net.of([2, 3, 3], ["softplus", "softmax"], "cross_entropy", l2=0.1)
    return Net.of([2, 3, 3, 1], ["softplus", "tanh", "sigmoid"], "binary_cross_entropy", l2=0.1)


@pytest.mark.parametrize("name", sorted(BUGGY))
def test_every_catalogued_bug_is_caught_and_named(name):
    net = _bug_net(name)
    product = BUGGY[name][0]
    with pytest.raises(HVPMismatch) as caught:
        check_hvp(buggy(name, net), net, product=product, settings=BUG_SETTINGS)
    mismatch = caught.value
    assert mismatch.verdict == "wrong"
    assert mismatch.bug == name, (mismatch.bug, str(mismatch))
    assert f"likely bug: {name}" in str(mismatch)
    assert mismatch.html()


@pytest.mark.parametrize("index", [3268, 1755, 2373])
def test_the_measured_false_alarms_stay_fixed(index):
    """``benchmarks/hvp_false_alarms.py``'s first run (seed 0) failed the
    student's correct code on these: its elu is ``exp(z) - 1``, which errs by
    ``u`` absolutely near 0 where ``expm1`` errs by ``u |A|`` (example 3268: a
    ``Z`` of ``-2.2e-160`` gave ``A = 0``, and the next layer's ``Z`` crossed
    elu's jump of ``f''``).  The model now allows it
    (``tolerance.curvature._naive_value_error``)."""
    from benchmarks.hvp_false_alarms import draw_case
    from manual_bp_reference.draws import Limits

    case, _ = draw_case(0, index, Limits(depth=3, width=8, batch=8))
    inner = case.case
    for product in ("hessian", "ggn"):
        with np.errstate(all="ignore"):
            returned = student(inner.net, product)(dict(inner.params), np.array(inner.X),
                                                   np.array(inner.Y), dict(case.V))  # fmt: skip
        run = compare_hvp(case, returned, product=product)
        assert run.comparison.ok and not run.details, run.comparison.report()


def test_the_bugs_are_the_catalogue():
    assert set(BUGGY) == set(BUG_NAMES) and len(BUGS) == len(set(BUG_NAMES)) == 13
    for bug in BUGS:
        assert bug.formula and bug.name and bug.products


def test_a_formula_this_case_cannot_tell_from_correct_code_is_never_named():
    """A linear net at ``l2 = 0``: no f'' term, no decay; values off by 2
    tolerances fail, and neither the second-derivative nor the decay bugs are
    named for them (nor anything else)."""
    net = Net.of([2, 3, 1], ["identity", "identity"], "mse")
    case = small_case(net, 3)
    oracle = hvp_oracle(case)
    off = {key: value + 2 * oracle.tolerances[key] for key, value in oracle.values.items()}
    assert not compare_hvp(case, off, oracle=oracle).comparison.ok
    assert diagnose_hvp(case, off, oracle=oracle) == []


def test_an_unknown_bug_fails_unnamed_and_a_raising_function_is_reported():
    net = NETS["tanh-softmax"]
    correct = ours(net, "hessian")

    def doubled_bias(params, X, Y, V):
        return {k: 2 * v if k == "B1" else v for k, v in correct(params, X, Y, V).items()}

    with pytest.raises(HVPMismatch) as caught:
        check_hvp(doubled_bias, net, settings=SETTINGS)
    assert caught.value.bug is None and "none of the catalogued" in str(caught.value)

    def raises(params, X, Y, V):
        raise RuntimeError("no R-operator yet")

    with pytest.raises(HVPMismatch) as caught:
        check_hvp(raises, net, settings=SETTINGS)
    assert caught.value.verdict == "raised" and "no R-operator yet" in str(caught.value)


def test_what_is_no_product_is_named():
    net = NETS["tanh-softmax"]
    correct = ours(net, "hessian")
    with pytest.raises(HVPMismatch, match="function returned"):
        check_hvp(lambda p, X, Y, V: [1.0, 2.0], net, settings=SETTINGS)

    def squeezed_bias(params, X, Y, V):  # B1 as (n1,): read as check_gradients reads it
        return {k: v[:, 0] if k[0] == "B" else v for k, v in correct(params, X, Y, V).items()}

    report = check_hvp(squeezed_bias, net, settings=SETTINGS)
    assert any("B1: gradient returned with shape (4,)" in note for note in report.notes)

    def transposed(params, X, Y, V):  # W1 as (n0, n1): a shape, named
        return {k: v.T if k == "W1" else v for k, v in correct(params, X, Y, V).items()}

    with pytest.raises(HVPMismatch, match=r"W1: shape \(3, 4\), expected \(4, 3\)"):
        check_hvp(transposed, net, settings=SETTINGS)

    def missing(params, X, Y, V):
        out = correct(params, X, Y, V)
        del out["W2"]
        return out

    with pytest.raises(HVPMismatch, match="W2"):
        check_hvp(missing, net, settings=SETTINGS)


def test_a_file_runs_isolated(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(textwrap.dedent("""
        from manual_bp import Net
        from manual_bp.curvature import ggn_vector_product

        NET = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", l2=0.1)


        def ggn(params, X, Y, V):
            return ggn_vector_product(params, X, Y, NET, V)
    """))  # fmt: skip
    settings = Settings(max_examples=4, isolate=True, max_batch=4)
    report = check_hvp(f"{source}:ggn", NETS["tanh-softmax"], product="ggn", settings=settings)
    assert report.examples == 4 and "child process" in report.isolation


def test_bad_arguments_are_named():
    net = NETS["tanh-softmax"]
    function = ours(net, "hessian")
    with pytest.raises(TypeError, match=r"net: expected a manual_bp\.Net"):
        check_hvp(function, [3, 4, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="net: check_hvp checks plain dense networks"):
        check_hvp(function, Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy",
                                   normalization="batch"))  # fmt: skip
    with pytest.raises(ValueError, match="net: check_hvp checks plain dense networks"):
        check_hvp(function, net.with_dropout([0.5, 0.0]))
    with pytest.raises(TypeError, match="product: expected 'hessian' or 'ggn', got 3"):
        check_hvp(function, net, product=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="product: expected 'hessian' or 'ggn', got 'gnn'"):
        check_hvp(function, net, product="gnn")
    with pytest.raises(TypeError, match="settings: expected a Settings"):
        check_hvp(function, net, settings={"max_examples": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"settings\.stability_check"):
        check_hvp(function, net, settings=Settings(stability_check=True))
    with pytest.raises(TypeError, match="function"):
        check_hvp(42, net)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_hvp(function, net, "ggn")  # type: ignore[misc]  # keyword-only


# --- the bounded arithmetic, one step at a time ------------------------------------------


def test_each_bounded_step_covers_a_float32_computation():
    """``dot``, ``times`` and ``plus`` of exact float32 inputs, computed in
    float32, stay within ``Rounding.rounded``'s bound (without ``SAFETY``) of
    the float64 result: every rounding of the model is there."""
    from manual_bp_reference.tolerance.curvature import Bound, Rounding, dot, plus, times

    rng = np.random.default_rng(5)
    u = float(np.finfo(np.float32).eps) + float(np.finfo(np.float64).eps)
    r = Rounding(u, float(np.finfo(np.float32).tiny))
    for _ in range(200):
        a, b, c = ((rng.standard_normal((4, 6)) * 10.0 ** rng.integers(-3, 3)).astype(np.float32)
                   for _ in range(3))  # fmt: skip
        w = rng.standard_normal((5, 4)).astype(np.float32)
        exact = [Bound(x.astype(np.float64), np.zeros(x.shape)) for x in (a, b, c, w)]
        steps = [
            (times(exact[0], exact[1], exact[2]), a * b * c),
            (dot(exact[3], exact[0]), w @ a),
            (plus(times(exact[0], exact[1]), -times(exact[2], exact[0])), a * b - c * a),
        ]
        for terms, computed in steps:
            assert computed.dtype == np.float32
            bound = r.rounded(terms)
            error = np.abs(computed.astype(np.float64) - bound.value)
            assert (error <= bound.error).all()


@pytest.mark.parametrize("name", sorted(THIRD_DERIVATIVE))
def test_the_slopes_bound_a_moved_argument(name):
    """``f'`` and ``f''`` at ``Z + d`` for ``|d| <= EZ`` stay within the
    bounds ``_slopes`` gives at ``Z`` (the ``sup|f''|`` and ``sup|f'''|`` terms)."""
    from manual_bp_reference.tolerance.curvature import Rounding, _slopes

    Z = np.linspace(-12, 12, 24_001)[None, :]
    EZ = 1e-3 * (1 + np.abs(Z))
    A = ACTIVATIONS[name].forward(Z, np)
    r = Rounding(float(np.finfo(np.float64).eps), float(np.finfo(np.float64).tiny))
    D, S = _slopes(name, Z, A, EZ, np.abs(Z) <= 2 * EZ, r)
    for d in (-EZ, EZ):
        moved = Z + d
        A_moved = ACTIVATIONS[name].forward(moved, np)
        slope = ACTIVATIONS[name].derivative(moved, A_moved)  # type: ignore[misc]
        second = ACTIVATIONS[name].second_derivative(moved, A_moved)  # type: ignore[misc]
        assert (np.abs(slope - D.value) <= D.error).all()
        assert (np.abs(second - S.value) <= S.error).all()


# --- in the user's declared conventions (issue 28) ---------------------------------------

# cs231n: rows as samples, W1 (n0, n1), flat b1, integer labels, softmax cross-entropy.
CS231N_NET = Net.of([3, 5, 4], ["tanh", "softmax"], "cross_entropy")
CS231N = Conventions(layout="rows", names="W1/b1", targets="labels")


def cs231n_hvp(params, X, y, V, *, second=True):
    """H V as a cs231n student writes it: the R-forward, then the R-backward,
    every array in rows (``X`` (m, n0), ``W1`` (n0, n1), ``b1`` (n1,))."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    m = X.shape[0]
    h = np.tanh(X @ W1 + b1)
    scores = h @ W2 + b2
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # R-forward
    r_pre = X @ V["W1"] + V["b1"]
    r_h = (1 - h**2) * r_pre
    r_scores = r_h @ W2 + h @ V["W2"] + V["b2"]
    # backward and R-backward
    dscores = p.copy()
    dscores[np.arange(m), y] -= 1
    dscores /= m
    r_dscores = (p * r_scores - p * np.sum(p * r_scores, axis=1, keepdims=True)) / m
    dh = dscores @ W2.T
    r_dh = r_dscores @ W2.T + dscores @ V["W2"].T
    r_dpre = r_dh * (1 - h**2)
    if second:  # tanh'' = -2 tanh (1 - tanh^2)
        r_dpre += dh * (-2 * h * (1 - h**2)) * r_pre
    return {
        "W1": X.T @ r_dpre,
        "b1": r_dpre.sum(axis=0),
        "W2": r_h.T @ dscores + h.T @ r_dscores,
        "b2": r_dscores.sum(axis=0),
    }


def cs231n_no_second(params, X, y, V):
    return cs231n_hvp(params, X, y, V, second=False)


# The course: columns, W1/b1 with column biases, the product keyed dW1/db1, lambd / m.
COURSE_NET = Net.of([3, 4, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
LAMBD = 0.7
COURSE = Conventions(names="W1/b1", l2=LAMBD, l2_divided_by_m=True)


def course_hvp(parameters, X, Y, V, *, lambd=LAMBD):
    """H V as the course writes it: columns, ``dW1``/``db1`` keys, ``lambd / m``."""
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    m = X.shape[1]
    A1 = np.tanh(W1 @ X + b1)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
    RZ1 = V["W1"] @ X + V["b1"]
    RA1 = (1 - A1**2) * RZ1
    RZ2 = V["W2"] @ A1 + W2 @ RA1 + V["b2"]
    dZ2 = (A2 - Y) / m
    RdZ2 = A2 * (1 - A2) * RZ2 / m
    dA1 = W2.T @ dZ2
    RdA1 = V["W2"].T @ dZ2 + W2.T @ RdZ2
    RdZ1 = RdA1 * (1 - A1**2) - 2 * A1 * (1 - A1**2) * RZ1 * dA1
    return {
        "dW1": RdZ1 @ X.T + lambd / m * V["W1"],
        "db1": np.sum(RdZ1, axis=1, keepdims=True),
        "dW2": RdZ2 @ A1.T + dZ2 @ RA1.T + lambd / m * V["W2"],
        "db2": np.sum(RdZ2, axis=1, keepdims=True),
    }


def test_a_cs231n_style_hvp_passes_in_rows():
    report = check_hvp(cs231n_hvp, CS231N_NET, conventions=CS231N, settings=SETTINGS)
    assert isinstance(report, HVPReport) and report.examples == 5
    assert "b1" in str(report) and "B1" not in str(report)  # the code's own names


def test_a_course_style_hvp_passes_with_its_d_keys_and_decay():
    report = check_hvp(course_hvp, COURSE_NET, conventions=COURSE, settings=SETTINGS)
    assert report.examples == 5
    assert any("'dW1' for W1" in note for note in report.notes)


def test_a_course_style_list_passes():
    def as_list(parameters, X, Y, V):
        names = ("W1", "b1", "W2", "b2")
        product = course_hvp(dict(zip(names, parameters, strict=True)), X, Y,
                             dict(zip(names, V, strict=True)))  # fmt: skip
        return [product["d" + name] for name in names]

    listed = Conventions(names="W1/b1", container="list", l2=LAMBD, l2_divided_by_m=True)
    assert check_hvp(as_list, COURSE_NET, conventions=listed, settings=SETTINGS).examples == 5


def test_a_bug_in_cs231n_style_code_is_named_in_its_names_and_shapes():
    with pytest.raises(HVPMismatch) as caught:
        check_hvp(cs231n_no_second, CS231N_NET, conventions=CS231N, settings=BUG_SETTINGS)
    assert caught.value.bug == "the second-derivative term missing"
    table, _, pasteable = str(caught.value).partition("the minimal case, pasteable:")
    n0, n1 = CS231N_NET.layer_sizes[:2]
    assert "names, shapes and indices as your code has them" in table and "B1" not in table
    assert re.search(rf"^\s*W1\s+{n0}x{n1}\b", table, re.M)  # rows: (n0, n1)
    assert re.search(rf"^\s*b1\s+{n1}\b", table, re.M)  # flat
    call = pasteable.split("in your conventions (paste it next to your function):")[1]
    assert re.search(r"'b1': np\.array\(\[[-0-9]", call) and "dtype='int64')" in call
    assert "V = {" in call and "product = cs231n_no_second(params, X, Y, V)" in call


def test_a_bug_in_course_style_code_is_named():
    def decay_missing(parameters, X, Y, V):
        return course_hvp(parameters, X, Y, V, lambd=0.0)

    with pytest.raises(HVPMismatch) as caught:
        check_hvp(decay_missing, COURSE_NET, conventions=COURSE, settings=BUG_SETTINGS)
    assert caught.value.bug == "the decay missing"


def test_what_the_conventions_cannot_say_is_refused():
    with pytest.raises(ValueError, match="check_hvp does not infer conventions") as caught:
        check_hvp(cs231n_hvp, CS231N_NET, conventions="auto")  # type: ignore[arg-type]
    assert "Conventions(layout='rows', names='W1/b1')" in str(caught.value)
    with pytest.raises(ValueError, match=r"^reduction: check_hvp judges"):
        check_hvp(cs231n_hvp, CS231N_NET, conventions=Conventions(reduction="sum"))
    with pytest.raises(ValueError, match=r"^per_sample: check_hvp's function"):
        check_hvp(cs231n_hvp, CS231N_NET, conventions=Conventions(per_sample=True))
    with pytest.raises(ValueError, match=r"^l2: the Net says"):
        check_hvp(course_hvp, COURSE_NET.with_l2(0.1), conventions=Conventions(l2=0.1))
    with pytest.raises(TypeError, match=r"^conventions: expected a Conventions"):
        check_hvp(cs231n_hvp, CS231N_NET, conventions={"layout": "rows"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^targets: "):
        mse = Net.of([2, 1], ["identity"], "mse")
        check_hvp(cs231n_hvp, mse, conventions=Conventions(targets="labels"))


def test_a_cs231n_style_hvp_declared_in_columns_is_hinted():
    columns = Conventions(names="W1/b1", targets="labels")  # X @ W1 fails: a shape error
    hint = r"verdict: raised(.|\n)*declare layout='rows' \(--layout rows\)"
    with pytest.raises(HVPMismatch, match=hint):
        check_hvp(cs231n_hvp, CS231N_NET, conventions=columns, settings=SETTINGS)
