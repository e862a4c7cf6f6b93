"""Second-order products by hand (``manual_bp.curvature``) against jax.

The oracle differentiates the shared definitions with jax: each activation's
``forward(Z, xp)`` and each loss's ``value(Z, A, Y, xp)``, wired as
``forward_xp`` wires them (``Zl = Wl A(l-1) + Bl``, ``Al = f_l(Zl)``), with
the activation and the loss chosen by ``lax.switch`` on a traced index: one
compile per architecture serves every activation and loss drawn on it
(``ARCHITECTURES``, four shapes, each compiled once and then loaded from the
persistent compilation cache).  Its loss value is compared with
``manual_bp.network.batch_loss`` on every example, which ties it to the one
definition.

* HVP: ``jax.jvp`` of ``jax.grad`` of the loss (decay included).
* GGN product: ``jax.jvp`` and ``jax.vjp`` of the network's output (``ZL``
  for a canonical pair, ``AL`` for mse with another activation) around
  ``jax.hessian`` of the loss with respect to that output, plus ``l2 VWl``.
* GGN diagonal: the diagonal of ``J^T H J`` with ``J = jax.jacrev`` of the
  output, plus ``l2``.

Tolerance: the drawn networks are small (depth 1-3, widths 1-4, m 1-5), with
weights ``N(0, 1/n(l-1))``, biases ``±[0.2, 1]``, inputs and ``V`` ``N(0, 1)``:
every term of every sum is then within about 10 of the result's largest
entry, and every entry is at most about 50 rounded operations deep, so the
float64 error is below ``50 · 10 · eps ≈ 1e-13`` of ``1 + max |oracle|``;
``RTOL = 1e-12`` leaves a factor 10 over that and 1000 over the largest error
measured (8e-16).  A formula bug (a missing term, a wrong factor) moves
entries by 1e-4 or more of that scale; the mutations reported with this file
were all caught.  Kinks: examples with a relu, leaky_relu or elu unit within
``KINK_MARGIN`` of 0 are rejected (second derivatives are undecided there).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from manual_bp import Net, network
from manual_bp.activations import ACTIVATIONS
from manual_bp.curvature import ggn_diagonal, ggn_vector_product, hessian_vector_product
from manual_bp.losses import LOSSES
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

NAMES = list(ACTIVATIONS)
LOSS_NAMES = list(LOSSES)
# (layer sizes, m): depth 1-3, widths 1-4, m 1-5, one compile each.
ARCHITECTURES = (([3, 1], 5), ([2, 3, 2], 1), ([4, 1, 3], 3), ([1, 4, 2, 3], 2))
RTOL = 1e-12
F32_RTOL = 1e-3  # float32: eps 1.2e-7 in place of 2.2e-16, the same headroom
KINK_MARGIN = 1e-8  # manual and jax Z differ by ~1e-16: far inside
KINKED = ("relu", "leaky_relu", "elu")

_ACT = [partial(lambda f, z: f(z, jnp), a.forward) for a in ACTIVATIONS.values()]
_LOSS = [partial(lambda f, Z, A, Y: f(Z, A, Y, jnp), loss.value) for loss in LOSSES.values()]


# --- the jax oracle -------------------------------------------------------------------


def _depth(params):
    return len(params) // 2


def _forward(params, X, acts):
    A = X
    for l in range(1, _depth(params) + 1):
        Z = params[f"W{l}"] @ A + params[f"B{l}"]
        A = jax.lax.switch(acts[l - 1], _ACT, Z)
    return Z, A


def _objective(params, X, Y, acts, loss, l2):
    Z, A = _forward(params, X, acts)
    penalty = sum(jnp.sum(params[f"W{l}"] ** 2) for l in range(1, _depth(params) + 1))
    return jax.lax.switch(loss, _LOSS, Z, A, Y) + l2 / 2 * penalty


def _output_loss(o, Y, acts, loss, canonical):
    """The loss of the network's output: of ``ZL`` through ``f_L`` (canonical),
    of ``AL`` itself (mse, whose value reads only ``A``)."""
    return jax.lax.cond(
        canonical,
        lambda: jax.lax.switch(loss, _LOSS, o, jax.lax.switch(acts[-1], _ACT, o), Y),
        lambda: jax.lax.switch(loss, _LOSS, o, o, Y),
    )


def _decay(tree, l2):
    return {k: (l2 * v if k.startswith("W") else jnp.zeros_like(v)) for k, v in tree.items()}


@jax.jit
def _oracle(params, X, Y, V, acts, loss, canonical, l2):
    value = _objective(params, X, Y, acts, loss, l2)
    grad = jax.grad(_objective)
    hvp = jax.jvp(lambda p: grad(p, X, Y, acts, loss, l2), (params,), (V,))[1]

    def output(p):
        Z, A = _forward(p, X, acts)
        return jnp.where(canonical, Z, A)

    o, JV = jax.jvp(output, (params,), (V,))
    H = jax.hessian(_output_loss)(o, Y, acts, loss, canonical)  # (nL, m, nL, m)
    _, vjp = jax.vjp(output, params)
    (ggn,) = vjp(jnp.einsum("abcd,cd->ab", H, JV))
    ggn = jax.tree.map(jnp.add, ggn, _decay(V, l2))
    n, m = o.shape
    Hm = H.reshape(n * m, n * m)
    diag = {
        key: jnp.einsum("ip,ij,jp->p", J.reshape(n * m, -1), Hm, J.reshape(n * m, -1)).reshape(
            params[key].shape
        )
        for key, J in jax.jacrev(output)(params).items()
    }
    diag = jax.tree.map(jnp.add, diag, _decay(jax.tree.map(jnp.ones_like, params), l2))
    return value, hvp, ggn, diag


def oracle(case):
    net, params, X, Y, V = case
    canonical = net.activations[-1] == LOSSES[net.loss].canonical_activation
    acts = np.array([NAMES.index(name) for name in net.activations])
    result = _oracle(params, X, Y, V, acts, LOSS_NAMES.index(net.loss), canonical, net.l2)
    return jax.device_get(result)


# --- the cases ---------------------------------------------------------------------------


def make_case(sizes, m, activations, loss, l2, seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    net = Net.of(sizes, activations, loss, l2=l2)
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) / np.sqrt(sizes[l - 1])
        sign = rng.choice([-1.0, 1.0], (sizes[l], 1))
        params[f"B{l}"] = sign * rng.uniform(0.2, 1.0, (sizes[l], 1))
    V = {key: rng.standard_normal(value.shape) for key, value in params.items()}
    X = rng.standard_normal((sizes[0], m))
    if loss == "mse":
        Y = rng.standard_normal((sizes[-1], m))
    else:
        Y = rng.uniform(0.0, 1.0, (sizes[-1], m))
        if loss == "cross_entropy":
            Y /= Y.sum(axis=0, keepdims=True)
    cast = {key: value.astype(dtype) for key, value in params.items()}
    return net, cast, X.astype(dtype), Y.astype(dtype), {k: v.astype(dtype) for k, v in V.items()}


@st.composite
def cases(draw, *, linear: bool = False):
    sizes, m = draw(st.sampled_from(ARCHITECTURES))
    depth = len(sizes) - 1
    losses = ["mse"] if linear else [n for n in LOSS_NAMES if LOSSES[n].min_outputs <= sizes[-1]]
    loss = draw(st.sampled_from(losses))
    if linear:
        activations = ["identity"] * depth
    else:
        hidden = [draw(st.sampled_from(NAMES)) for _ in range(depth - 1)]
        outputs = sorted(LOSSES[loss].output_activations)
        activations = [*hidden, draw(st.sampled_from(outputs))]
    l2 = draw(st.sampled_from([0.0, 0.25]))
    case = make_case(sizes, m, activations, loss, l2, draw(st.integers(0, 2**32 - 1)))
    _, cache = network.forward(case[1], case[2], case[0])
    for l, name in enumerate(activations, 1):
        if name in KINKED:
            assume(np.min(np.abs(cache[f"Z{l}"])) > KINK_MARGIN)
    return case


def assert_close(manual, expected, what, rtol=RTOL):
    scale = 1 + max(np.max(np.abs(np.asarray(v))) for v in expected.values())
    assert sorted(manual) == sorted(expected), f"{what}: keys {list(manual)} != {list(expected)}"
    for key, value in manual.items():
        want = np.asarray(expected[key])
        assert value.shape == want.shape, f"{what}[{key}]: shape {value.shape} != {want.shape}"
        error = np.max(np.abs(value.astype(np.float64) - want))
        assert error <= rtol * scale, (
            f"{what}[{key}]: error {error:.3g} > {rtol:g} * {scale:.3g}\n"
            f"manual {value}\noracle {want}"
        )


# --- against jax ------------------------------------------------------------------------


@given(cases())
@examples(0.2)  # ~4 s warm over 4 architectures; HYPOTHESIS_PROFILE=thorough draws 40x
def test_products_and_diagonal_match_jax(case):
    net, params, X, Y, V = case
    value, hvp, ggn, diag = oracle(case)
    loss = float(network.batch_loss(params, X, Y, net))
    assert abs(loss - float(value)) <= RTOL * (1 + abs(loss)), "the oracle is not batch_loss"
    assert_close(hessian_vector_product(params, X, Y, net, V), hvp, "H V")
    assert_close(ggn_vector_product(params, X, Y, net, V), ggn, "G V")
    manual_diag = ggn_diagonal(params, X, Y, net)
    assert_close(manual_diag, diag, "diag G")
    assert all(np.all(v >= 0) for v in manual_diag.values()), "diag G has a negative entry"


@pytest.mark.parametrize("name", [n for n in NAMES if ACTIVATIONS[n].second_derivative])
def test_second_derivatives_match_jax(name):
    activation = ACTIVATIONS[name]
    Z = np.linspace(-12.0, 12.0, 481) + 1e-3  # no grid point at 0: the kinks
    Z = np.concatenate([Z, [0.0]])  # and 0 itself: the convention, as jax takes it

    def first(z):
        return jax.grad(lambda u: jnp.sum(activation.forward(u, jnp)))(z)

    expected = np.asarray(jax.jit(jax.grad(lambda z: jnp.sum(first(z))))(Z))
    got = activation.second_derivative(Z, activation.forward(Z, np))
    assert got.dtype == Z.dtype
    # atol: where tanh saturates (gelu's tails) 1 - t^2 keeps only the rounding
    # of t, ~1e-16, and XLA's tanh rounds differently from NumPy's; gelu's f''
    # multiplies that by |z| u'^2 <= ~2500 for |z| <= 10: <= ~5e-13 of an f''
    # whose peak is O(1) (measured: 4.6e-13).
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    Z32 = Z.astype(np.float32)
    assert activation.second_derivative(Z32, activation.forward(Z32, np)).dtype == np.float32


# --- laws -------------------------------------------------------------------------------


def _dot(a, b):
    return sum(float(np.sum(a[k] * b[k])) for k in a), sum(
        float(np.sum(np.abs(a[k] * b[k]))) for k in a
    )


@given(cases(linear=True))
@examples(0.1)
def test_linear_network_hessian_is_its_ggn(case):
    """One identity layer and mse: the loss is quadratic in the parameters,
    ``H = G`` whatever the targets."""
    net, params, X, Y, V = case
    net = Net.of([net.inputs, net.layer_sizes[1]], ["identity"], "mse", l2=net.l2)
    params = {"W1": params["W1"], "B1": params["B1"]}
    V = {"W1": V["W1"], "B1": V["B1"]}
    Y = np.resize(Y, (net.layer_sizes[1], X.shape[1]))  # any targets
    assert_close(
        hessian_vector_product(params, X, Y, net, V),
        ggn_vector_product(params, X, Y, net, V),
        "H V vs G V",
    )


@given(cases())
@examples(0.1)
def test_hessian_is_its_ggn_at_zero_residual(case):
    """Targets equal to the outputs (``Y = AL``): ``dZL = 0``, so every
    ``dAl`` vanishes, and with them the second-derivative terms and the
    cross terms ``dZl R(A(l-1))^T``, ``VWl^T dZl``: ``H V = G V`` for every
    activation and loss."""
    net, params, X, _, V = case
    Y = network.forward(params, X, net)[0]
    assert_close(
        hessian_vector_product(params, X, Y, net, V),
        ggn_vector_product(params, X, Y, net, V),
        "H V vs G V",
    )


@given(cases(), st.integers(0, 2**32 - 1))
@examples(0.2)
def test_hessian_is_symmetric(case, seed):
    net, params, X, Y, V = case
    rng = np.random.default_rng(seed)
    W = {key: rng.standard_normal(value.shape) for key, value in V.items()}
    vHw, scale1 = _dot(V, hessian_vector_product(params, X, Y, net, W))
    wHv, scale2 = _dot(W, hessian_vector_product(params, X, Y, net, V))
    assert abs(vHw - wHv) <= RTOL * (1 + scale1 + scale2), (vHw, wHv)
    vGw, scale1 = _dot(V, ggn_vector_product(params, X, Y, net, W))
    wGv, scale2 = _dot(W, ggn_vector_product(params, X, Y, net, V))
    assert abs(vGw - wGv) <= RTOL * (1 + scale1 + scale2), (vGw, wGv)
    assert _dot(V, ggn_vector_product(params, X, Y, net, V))[0] >= -RTOL * (1 + scale2)


# --- dtype, purity, bad input ---------------------------------------------------------------


@given(cases())
@examples(0.1)
def test_float32_kept_and_inputs_unchanged(case):
    net, params, X, Y, V = case
    arrays = [*params.values(), X, Y, *V.values()]
    before = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False  # a write raises
    results64 = (
        hessian_vector_product(params, X, Y, net, V),
        ggn_vector_product(params, X, Y, net, V),
        ggn_diagonal(params, X, Y, net),
    )
    assert all(np.array_equal(a, b) for a, b in zip(arrays, before, strict=True))
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    V32 = {k: v.astype(np.float32) for k, v in V.items()}
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    if net.loss == "cross_entropy":
        Y32 = Y32 / Y32.sum(axis=0, keepdims=True)
    results32 = (
        hessian_vector_product(p32, X32, Y32, net, V32),
        ggn_vector_product(p32, X32, Y32, net, V32),
        ggn_diagonal(p32, X32, Y32, net),
    )
    for what, r32, r64 in zip(("H V", "G V", "diag G"), results32, results64, strict=True):
        assert all(v.dtype == np.float32 for v in r32.values()), f"{what}: not float32"
        assert_close(r32, r64, what + " float32", rtol=F32_RTOL)


def _valid():
    return make_case([2, 3, 2], 4, ["tanh", "softmax"], "cross_entropy", 0.0, 0)


def test_bad_direction():
    net, params, X, Y, V = _valid()
    missing = {k: v for k, v in V.items() if k != "B2"}
    with pytest.raises(ValueError, match=r"V: expected keys .*B2"):
        hessian_vector_product(params, X, Y, net, missing)
    wrong = {**V, "W1": V["W1"].T}
    with pytest.raises(ValueError, match=r"V\['W1'\]: expected shape \(3, 2\).*got \(2, 3\)"):
        ggn_vector_product(params, X, Y, net, wrong)
    with pytest.raises(TypeError, match=r"V\['W2'\]: expected dtype float64, got float32"):
        hessian_vector_product(params, X, Y, net, {**V, "W2": V["W2"].astype(np.float32)})
    with pytest.raises(TypeError, match="V: expected a dict"):
        hessian_vector_product(params, X, Y, net, [V["W1"]])
    with pytest.raises(ValueError, match="V\\['B1'\\]: expected finite"):
        hessian_vector_product(params, X, Y, net, {**V, "B1": np.full((3, 1), np.nan)})


def test_bad_network_and_batch():
    net, params, X, Y, V = _valid()
    for refused in (Net.of([2, 3, 2], dropout=0.5), Net.of([2, 3, 2], normalization="batch")):
        with pytest.raises(ValueError, match=r"net: curvature products support plain dense"):
            ggn_diagonal(params, X, Y, refused)
    with pytest.raises(TypeError, match=r"net: expected a manual_bp\.Net"):
        hessian_vector_product(params, X, Y, [2, 3, 2], V)
    with pytest.raises(ValueError, match=r"Y: expected shape \(2, 4\), got \(2, 3\)"):
        ggn_vector_product(params, X, Y[:, :3], net, V)
    with pytest.raises(ValueError, match=r"X: expected shape \(2, m\)"):
        ggn_diagonal(params, X.T, Y, net)
    with pytest.raises(ValueError, match=r"params\['W2'\]: expected shape \(2, 3\)"):
        ggn_diagonal({**params, "W2": params["W2"][:, :2]}, X, Y, net)
    with pytest.raises(ValueError, match="Y: cross_entropy expects"):
        hessian_vector_product(params, X, Y * 2, net, V)
