"""Per-example gradients, their norms and the gradient's variance
(``manual_bp.per_example``) against ``jax.vmap(jax.grad(...))`` of the same
forward, on small drawn nets: every activation, every loss with its
canonical output (and mse with any output), with and without decay.

The oracle is ``jax.vmap(jax.grad(l_i))``, ``l_i`` the loss of column ``i``
alone plus the decay, in float64, through ``manual_bp_reference.padding``'s
padded forward (the same activations and losses in one ``lax.scan``, proven
equal to ``forward_xp`` by ``test_padded_oracle.py``): every drawn net fits
one bucket, so the test compiles once (``jax.jit`` of each drawn net would
compile per architecture, and jax's eager ops compile per shape: minutes).

Tolerance.  The comparison is per example, in the max norm, against a magnitude computed by
running the backward on absolute values (``magnitudes``): ``DL = |AL| + |Y|``
(the residual's two terms), ``D(l-1) = (|f'(Z(l-1))| + DERIVATIVE_FLOOR) ⊙
(|Wl|^T Dl)`` (the floor: ``f'`` from ``A`` loses its digits where it is tiny; for
softmax ``A ⊙ (v + A^T v)``, the bound of its Jacobian's absolute values),
``|g_i[Wl]| <= Dl_i |A(l-1)_i|^T + l2 |Wl|``.  ``RELATIVE = 1e-12`` of it is
about 9000 units of float64 rounding: a drawn net (depth <= 3, width <= 4,
m <= 5, values <= 2.5 in size) passes each entry through at most three
layers of sums of at most five terms and one activation derivative each
(tens of roundings), and the forward's own rounding reaches the gradient
through ``f''`` (bounded by a small multiple of ``f'`` or of 1 for the ten
activations at these sizes): two orders of magnitude are left over.  A
wrong formula (a missing ``1/m`` or ``m``, a lost decay term, the wrong
outer product) is off by a factor of the size of the values themselves.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manual_bp import network
from manual_bp.activations import ACTIVATIONS
from manual_bp.layers import Dense
from manual_bp.losses import LOSSES
from manual_bp.net import Net
from manual_bp.per_example import gradient_variance, per_example_gradients, per_example_norms
from manual_bp_reference.cases import Case
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.padding import _padded_forward, _padded_loss, pad_case
from property_tests.budget import examples

RELATIVE = 1e-12  # of the absolute-value magnitude, float64: see the module notes
WIDTHS = (1, 2, 3, 4)
BATCHES = (1, 2, 3, 5)
L2S = (0.0, 0.1, 1.0)
SCALES = (0.5, 1.0, 2.5)  # the largest |W|, |B|, |X|: mild to saturating
# f' computed from A (sigmoid's A (1 - A), tanh's 1 - A^2) is off by a few units
# of rounding of 1 however small f' is (saturated units): a floor under |f'|
# that makes RELATIVE times it 8 units of float64 rounding.
DERIVATIVE_FLOOR = 8 * np.finfo(np.float64).eps / RELATIVE
KINKED = ("relu", "leaky_relu")
KINK_MARGIN = 1e-6  # a kinked unit's |Z| below this: the draw is moved


@st.composite
def cases(draw, dtype: str = "float64") -> tuple[dict, np.ndarray, np.ndarray, Net]:
    """A small plain net, its params, ``X`` and ``Y``: depth 1-3, widths 1-4, m 1-5."""
    loss = draw(st.sampled_from(list(LOSSES)))
    depth = draw(st.integers(1, 3))
    hidden = [draw(st.sampled_from(list(ACTIVATIONS))) for _ in range(depth - 1)]
    output = draw(st.sampled_from(sorted(LOSSES[loss].output_activations)))
    widths = [draw(st.sampled_from(WIDTHS)) for _ in range(depth + 1)]
    widths[-1] = max(widths[-1], LOSSES[loss].min_outputs)
    l2 = draw(st.sampled_from(L2S))
    m = draw(st.sampled_from(BATCHES))
    scale = draw(st.sampled_from(SCALES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layers = [Dense(n, name) for n, name in zip(widths[1:], [*hidden, output], strict=True)]
    net = Net(widths[0], tuple(layers), loss, l2)
    params = {}
    for l in range(1, depth + 1):
        params[f"W{l}"] = rng.uniform(-scale, scale, (widths[l], widths[l - 1]))
        params[f"B{l}"] = rng.uniform(-scale, scale, (widths[l], 1))
    X = rng.uniform(-scale, scale, (widths[0], m))
    if loss == "mse":
        Y = rng.uniform(-scale, scale, (widths[-1], m))
    elif loss == "binary_cross_entropy":
        Y = rng.uniform(0, 1, (widths[-1], m))
    else:
        Y = rng.dirichlet(np.ones(widths[-1]), m).T
    params = _off_kinks(params, X, net)
    return (
        {key: _frozen(value.astype(dtype)) for key, value in params.items()},
        _frozen(X.astype(dtype)),
        _frozen(Y.astype(dtype)),
        net,
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    """Read-only: a function that writes into its input raises."""
    array = np.array(array)
    array.flags.writeable = False
    return array


def _off_kinks(params: dict, X: np.ndarray, net: Net) -> dict:
    """Kinked units' biases moved so no ``|Z|`` lies within ``KINK_MARGIN`` of 0
    (relu, leaky_relu: the derivative jumps there, and the sides may differ)."""
    params = dict(params)
    _, cache = network.forward(params, X, net)
    for l, name in enumerate(net.activations, 1):
        if name in KINKED:
            Z = cache[f"Z{l}"]
            near = (np.abs(Z) < KINK_MARGIN).any(axis=1, keepdims=True)
            if near.any():
                params[f"B{l}"] = params[f"B{l}"] + np.where(near, 0.5, 0.0)
                return _off_kinks(params, X, net)  # later layers' Z moved too
    return params


@jax.jit
def _padded_per_example(W, B, X, Y, codes, widths, loss_code, gamma, beta, norm_codes, l2, real):
    """``jax.vmap(jax.grad(l_i))`` over the columns of a case in its padding bucket
    (``manual_bp_reference.padding``: one compile for every drawn net), ``l_i``
    the loss of column ``i`` alone plus the decay of the real layers' weights."""

    def loss_one(W, B, x, y):
        taps = jnp.zeros((2, W.shape[0], x.shape[0], 1))
        norm = (gamma, beta, norm_codes, 1.0)
        A_L, Z = _padded_forward(W, B, x[:, None], codes, widths, taps, norm)
        value = _padded_loss(Z[-1], A_L, y[:, None], loss_code, widths[-1], 1.0)
        return value + l2 / 2 * jnp.sum(real[:, None, None] * W * W)

    return jax.vmap(jax.grad(loss_one, argnums=(0, 1)), in_axes=(None, None, 1, 1))(W, B, X, Y)


def oracle(params: dict, X: np.ndarray, Y: np.ndarray, net: Net) -> dict[str, np.ndarray]:
    """``jax.vmap(jax.grad(l_i))``, in float64, each column alone (decay included),
    sliced back to ``(m, *shape)``."""
    case = Case(net.with_l2(0.0), params, X, Y)
    padded = pad_case(case)
    real = np.zeros(padded.W.shape[0])
    real[padded.offset :] = 1.0
    dW, dB = jax.device_get(
        _padded_per_example(
            padded.W, padded.B, padded.X, padded.Y, padded.codes, padded.widths,
            padded.loss_code, padded.gamma, padded.beta, padded.norm_codes, net.l2, real,
        )
    )  # fmt: skip
    m, sizes = X.shape[1], net.layer_sizes
    grads = {}
    for l in range(1, net.depth + 1):
        i = padded.offset + l - 1
        grads[f"W{l}"] = dW[:m, i, : sizes[l], : sizes[l - 1]]
        grads[f"B{l}"] = dB[:m, i, : sizes[l]]
    return grads


def _abs_backward_step(name: str, Z: np.ndarray, A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A bound of ``|f'(Z)^T v|`` for ``v >= 0``."""
    if name == "softmax":
        return A * (v + np.sum(A * v, axis=0, keepdims=True))
    derivative = ACTIVATIONS[name].derivative
    assert derivative is not None
    return (np.abs(derivative(Z, A)) + DERIVATIVE_FLOOR) * v


def magnitudes(params: dict, X: np.ndarray, Y: np.ndarray, net: Net) -> dict[str, np.ndarray]:
    """Per-example ``|g_i|`` bounds, the backward run on absolute values (module notes):
    ``Dl`` per layer and the per-example ``Wl``, ``Bl`` magnitudes."""
    p64 = {key: np.asarray(value, np.float64) for key, value in params.items()}
    X64, Y64 = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    _, cache = network.forward(p64, X64, net)
    depth = net.depth
    D = {depth: np.abs(cache[f"A{depth}"]) + np.abs(Y64)}
    if net.activations[-1] != LOSSES[net.loss].canonical_activation:
        D[depth] = _abs_backward_step(
            net.activations[-1], cache[f"Z{depth}"], cache[f"A{depth}"], D[depth]
        )
    for l in range(depth, 1, -1):
        v = np.abs(p64[f"W{l}"]).T @ D[l]
        D[l - 1] = _abs_backward_step(net.activations[l - 2], cache[f"Z{l - 1}"],
                                      cache[f"A{l - 1}"], v)  # fmt: skip
    out = {}
    for l in range(1, depth + 1):
        A_prev = np.abs(cache[f"A{l - 1}"])
        out[f"W{l}"] = D[l].T[:, :, None] * A_prev.T[:, None, :] + net.l2 * np.abs(p64[f"W{l}"])
        out[f"B{l}"] = D[l].T[:, :, None]
        out[f"Z{l}"] = D[l]
        out[f"WA{l}"] = np.abs(p64[f"W{l}"]) @ A_prev + np.abs(p64[f"B{l}"])
    return out


def per_example_scale(mags: dict, net: Net) -> np.ndarray:
    """``(m,)``: the largest magnitude of any entry of example ``i``'s gradient."""
    keys = [f"{kind}{l}" for l in range(1, net.depth + 1) for kind in "WB"]
    return np.max([mags[key].reshape(mags[key].shape[0], -1).max(axis=1) for key in keys], axis=0)


def squared_norm_magnitude(mags: dict, params: dict, X: np.ndarray, net: Net) -> np.ndarray:
    """Goodfellow's formula on absolute values: the scale of ``||g_i||^2``'s error."""
    _, cache = network.forward({k: np.asarray(v, np.float64) for k, v in params.items()},
                               np.asarray(X, np.float64), net)  # fmt: skip
    total = np.zeros(X.shape[1])
    for l in range(1, net.depth + 1):
        D, A_prev = mags[f"Z{l}"], np.abs(cache[f"A{l - 1}"])
        W = np.asarray(params[f"W{l}"], np.float64)
        total += (D**2).sum(0) * ((A_prev**2).sum(0) + 1)
        total += 2 * net.l2 * (D * mags[f"WA{l}"]).sum(0) + net.l2**2 * (W**2).sum()
    return total


def snapshot(params: dict, X: np.ndarray, Y: np.ndarray) -> list[np.ndarray]:
    return [*(np.array(v) for v in params.values()), np.array(X), np.array(Y)]


def assert_unchanged(before: list[np.ndarray], params: dict, X, Y) -> None:
    for old, new in zip(before, [*params.values(), X, Y], strict=True):
        np.testing.assert_array_equal(old, new)


# --- the properties -----------------------------------------------------------------------


@examples(0.4)
@given(cases())
def test_per_example_gradients_match_vmap_grad(case):
    params, X, Y, net = case
    before = snapshot(params, X, Y)
    grads = per_example_gradients(params, X, Y, net)
    expected = oracle(params, X, Y, net)
    mags = magnitudes(params, X, Y, net)
    scale = per_example_scale(mags, net)
    m = X.shape[1]
    assert list(grads) == list(params)
    for key, value in grads.items():
        assert value.shape == (m, *params[key].shape) and value.dtype == np.float64
        error = np.abs(value - expected[key]).reshape(m, -1).max(axis=1)
        assert (error <= RELATIVE * scale).all(), (key, error / scale, net)
    assert_unchanged(before, params, X, Y)


@examples(0.4)
@given(cases())
def test_norms_match_vmap_grad_without_forming_the_gradients(case):
    params, X, Y, net = case
    before = snapshot(params, X, Y)
    squared = per_example_norms(params, X, Y, net, squared=True)
    expected = oracle(params, X, Y, net)
    m = X.shape[1]
    oracle_squared = sum((value.reshape(m, -1) ** 2).sum(axis=1) for value in expected.values())
    magnitude = squared_norm_magnitude(magnitudes(params, X, Y, net), params, X, net)
    assert squared.shape == (m,) and squared.dtype == np.float64
    assert (np.abs(squared - oracle_squared) <= RELATIVE * magnitude).all(), (
        squared, oracle_squared, net)  # fmt: skip
    # The norm is the square root of the squared norm, bitwise.
    np.testing.assert_array_equal(per_example_norms(params, X, Y, net), np.sqrt(squared))
    assert_unchanged(before, params, X, Y)


@examples(0.3)
@given(cases())
def test_variance_matches_vmap_grad_var(case):
    params, X, Y, net = case
    before = snapshot(params, X, Y)
    variance = gradient_variance(params, X, Y, net)
    expected = {key: value.var(axis=0) for key, value in oracle(params, X, Y, net).items()}
    mags = magnitudes(params, X, Y, net)
    # Each g_i entry is within RELATIVE * S of the oracle's (S the largest scale),
    # so each squared deviation within about 4 RELATIVE S^2.
    S = per_example_scale(mags, net).max()
    assert list(variance) == list(params)
    for key, value in variance.items():
        assert value.shape == params[key].shape and value.dtype == np.float64
        assert (np.abs(value - expected[key]) <= 4 * RELATIVE * S**2).all(), (key, net)
    assert_unchanged(before, params, X, Y)


@examples(0.3)
@given(cases())
def test_the_mean_of_the_per_example_gradients_is_backwards_gradient(case):
    """Decay included: every g_i carries l2 Wl, their mean carries it once."""
    params, X, Y, net = case
    grads = per_example_gradients(params, X, Y, net)
    _, cache = network.forward(params, X, net)
    batch = network.backward(cache, Y, net)
    S = per_example_scale(magnitudes(params, X, Y, net), net).max()
    for key, value in grads.items():
        assert np.abs(value.mean(axis=0) - batch[key]).max() <= RELATIVE * S, key


@examples(0.2)
@given(cases(dtype="float32"))
def test_float32_in_float32_out(case):
    params, X, Y, net = case
    grads = per_example_gradients(params, X, Y, net)
    norms = per_example_norms(params, X, Y, net)
    variance = gradient_variance(params, X, Y, net)
    assert norms.dtype == np.float32
    assert all(value.dtype == np.float32 for value in (*grads.values(), *variance.values()))
    # And close to the float64 result (float32's rounding, relative to the magnitude).
    p64 = {key: value.astype(np.float64) for key, value in params.items()}
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    if net.loss == "cross_entropy":  # float32 columns sum to 1 within float32's rounding
        Y64 = Y64 / Y64.sum(axis=0)
    S = per_example_scale(magnitudes(p64, X64, Y64, net), net)
    for key, value in per_example_gradients(p64, X64, Y64, net).items():
        error = np.abs(grads[key] - value).reshape(X.shape[1], -1).max(axis=1)
        assert (error <= 1e-3 * S).all(), key


def test_the_variance_does_not_depend_on_the_decay():
    params, X, Y, net = _fixed_case()
    plain = gradient_variance(params, X, Y, net)
    decayed = gradient_variance(params, X, Y, net.with_l2(0.7))
    for key in plain:
        np.testing.assert_array_equal(plain[key], decayed[key])


def test_one_example_has_zero_variance_and_its_gradient_is_the_batch_gradient():
    params, X, Y, net = _fixed_case()
    X1, Y1 = X[:, :1], Y[:, :1]
    variance = gradient_variance(params, X1, Y1, net)
    assert all((value == 0).all() for value in variance.values())
    grads = per_example_gradients(params, X1, Y1, net)
    _, cache = network.forward(params, X1, net)
    batch = network.backward(cache, Y1, net)
    for key, value in grads.items():
        np.testing.assert_allclose(value[0], batch[key], rtol=1e-14, atol=1e-15)


# --- bad input ---------------------------------------------------------------------------


@functools.cache
def _fixed() -> tuple[dict, np.ndarray, np.ndarray, Net]:
    net = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", l2=0.1)
    params = network.init_params(net.layer_sizes, net.activations, seed=3)
    params = {key: value + 0.1 for key, value in params.items()}
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 4))
    Y = np.eye(2)[:, rng.integers(0, 2, 4)]
    return params, X, Y, net


def _fixed_case() -> tuple[dict, np.ndarray, np.ndarray, Net]:
    params, X, Y, net = _fixed()
    return {k: _frozen(v) for k, v in params.items()}, _frozen(X), _frozen(Y), net


FUNCTIONS = [per_example_gradients, per_example_norms, gradient_variance]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_normalized_and_dropout_nets_are_refused(function):
    params, X, Y, _ = _fixed_case()
    normalized = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", normalization="batch")
    dropped = Net.of([3, 4, 2], ["tanh", "softmax"], "cross_entropy", dropout=0.5)
    for bad in (normalized, dropped):
        with pytest.raises(ValueError, match=r"^net: .*plain dense networks"):
            function(params, X, Y, bad)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bad_arguments_are_named(function):
    params, X, Y, net = _fixed_case()
    with pytest.raises(TypeError, match=r"^net: expected a manual_bp.Net"):
        function(params, X, Y, [3, 4, 2])
    with pytest.raises(ValueError, match=r"^X: expected shape \(3, m\).*X.T"):
        function(params, X.T, Y, net)
    with pytest.raises(ValueError, match=r"^Y: expected shape \(2, 4\)"):
        function(params, X, Y[:, :3], net)
    with pytest.raises(ValueError, match=r"^Y: cross_entropy expects"):
        function(params, X, 2 * Y, net)
    with pytest.raises(ValueError, match=r"^params: expected keys"):
        function({k: v for k, v in params.items() if k != "B2"}, X, Y, net)
    with pytest.raises(ValueError, match=r"^params\['W2'\]: expected shape \(2, 4\)"):
        function({**params, "W2": params["W2"].T}, X, Y, net)
    with pytest.raises(TypeError, match=r"^params\['W1'\]: expected dtype float32 or float64"):
        function({**params, "W1": params["W1"].astype(int)}, X, Y, net)
    with pytest.raises(TypeError, match=r"^params\['B1'\]: expected dtype float64"):
        function({**params, "B1": params["B1"].astype(np.float32)}, X, Y, net)
    with pytest.raises(TypeError, match=r"^params: expected a dict"):
        function(list(params.values()), X, Y, net)
    with pytest.raises(ValueError, match=r"^X: expected finite"):
        function(params, np.where(X > 0, np.nan, X), Y, net)
