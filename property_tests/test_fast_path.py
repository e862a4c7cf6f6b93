"""The NumPy fast path computes what the shared definition computes.

``manual_bp.network.forward_xp`` is the forward pass jax differentiates; with
NumPy, ``forward`` runs the activations' in-place kernels instead
(``Activation.forward_into``).  These laws prove the two equal, so that the
main property (manual backward against ``jax.grad`` of ``forward_xp``) speaks
for the fast path too.

Equal means equal as numbers, NaN where NaN (``np.array_equal(...,
equal_nan=True)``), in the same dtype: no ulp tolerance.  Signed zeros are
not told apart: ``fmax(-0.0, 0)`` may give ``-0.0`` where ``where(z > 0, z,
0)`` gives ``0.0``; the two are the same number and no later step (products,
sums, the activations and losses here) turns the sign of a zero into a
different value.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from manual_bp import Net, network
from manual_bp.activations import ACTIVATIONS
from manual_bp_reference.strategies import networks
from property_tests.budget import examples

KERNELS = sorted(name for name, activation in ACTIVATIONS.items() if activation.kernel)


def special_values(dtype: str) -> np.ndarray:
    """Every kind of value: signed zeros, subnormals, the exp and tanh
    saturation points, the largest finite values, infinities and NaN."""
    info = np.finfo(dtype)
    magnitudes = [
        0.0,
        float(np.nextafter(np.zeros((), dtype), np.ones((), dtype))),  # smallest subnormal
        float(info.tiny),
        float(info.eps),
        1e-3,
        0.5,
        1.0,
        2.0,
        10.0,
        20.0,
        40.0,
        88.5,  # float32 exp overflows just above
        104.0,  # float32 exp underflows to 0 near -104
        710.0,  # float64 exp overflows just above
        746.0,  # float64 exp underflows to 0 near -745
        1e30,
        float(info.max),
        np.inf,
    ]
    finite = [m for m in magnitudes if np.isinf(m) or m <= info.max]
    signed = [m for m in finite for m in (m, -m)] + [np.nan]
    return np.array(signed, dtype=dtype).reshape(1, -1)


def assert_same_numbers(fast: np.ndarray, reference: np.ndarray, what: str) -> None:
    assert fast.dtype == reference.dtype, f"{what}: dtype {fast.dtype} != {reference.dtype}"
    assert fast.shape == reference.shape, f"{what}: shape {fast.shape} != {reference.shape}"
    differ = ~((fast == reference) | (np.isnan(fast) & np.isnan(reference)))
    assert not differ.any(), (
        f"{what}: kernel {fast[differ][:5]} != formula {reference[differ][:5]} "
        f"at {np.flatnonzero(differ)[:5]}"
    )


def kernel_and_formula(name: str, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    activation = ACTIVATIONS[name]
    before = Z.copy()
    out = np.empty_like(Z)
    with np.errstate(all="ignore"):
        fast = activation.forward_into(Z, out)
        reference = activation.forward(Z, np)
    assert fast is out, f"{name}: the kernel must return its out array"
    assert np.array_equal(Z, before, equal_nan=True), f"{name}: the kernel wrote into Z"
    return fast, np.asarray(reference, dtype=Z.dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", KERNELS)
def test_each_kernel_equals_its_formula_on_every_kind_of_value(name, dtype):
    Z = special_values(dtype)
    if name == "softmax":  # columns: every value with its neighbours in one column
        Z = np.concatenate([Z, np.roll(Z, 1), np.zeros_like(Z)], axis=0)
    fast, reference = kernel_and_formula(name, Z)
    assert_same_numbers(fast, reference, f"{name} {dtype}")


@examples(0.5)
@given(
    st.sampled_from(KERNELS),
    st.sampled_from(["float64", "float32"]).flatmap(
        lambda dtype: arrays(
            dtype,
            st.tuples(st.integers(1, 4), st.integers(1, 6)),
            elements=st.floats(width=32 if dtype == "float32" else 64),
        )
    ),
)
def test_kernels_equal_their_formulas_on_random_arrays(name, Z):
    fast, reference = kernel_and_formula(name, Z)
    assert_same_numbers(fast, reference, name)


@examples(0.5)
@given(networks())
def test_the_numpy_forward_equals_the_shared_definition(case):
    inputs = {key: value.copy() for key, value in {**case.params, "X": case.X}.items()}
    with np.errstate(all="ignore"):
        out, cache = network.forward(case.params, case.X, case.net)
        _, reference = network.forward_xp(case.params, case.X, case.net, np)
    assert sorted(cache) == sorted(reference)
    for key in reference:
        assert_same_numbers(cache[key], np.asarray(reference[key]), key)
    assert out is cache[f"A{case.depth}"]
    assert cache["A0"] is case.X and cache["W1"] is case.params["W1"]
    for key, value in {**case.params, "X": case.X}.items():
        assert np.array_equal(value, inputs[key]), f"forward wrote into {key}"


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize(
    "dtypes",  # of W1, B1, W2, B2
    [
        ("float32", "float64", "float32", "float32"),  # a float64 bias on float32 weights
        ("float32", "float32", "float64", "float64"),  # a float32 layer, then a float64 one
    ],
)
def test_mixed_dtypes_take_the_definitions_promotions(dtypes, large):
    n = 300 if large else 3  # 300 x 40 float64 arrays take the block path
    rng = np.random.default_rng(0)
    shapes = {"W1": (n, 2), "B1": (n, 1), "W2": (1, n), "B2": (1, 1)}
    params = {
        key: rng.standard_normal(shape).astype(dtype)
        for (key, shape), dtype in zip(shapes.items(), dtypes, strict=True)
    }
    X = rng.standard_normal((2, 40)).astype("float32")
    net = Net.of([2, n, 1], ["tanh", "sigmoid"])
    _, cache = network.forward(params, X, net)
    _, reference = network.forward_xp(params, X, net, np)
    for key in reference:
        assert_same_numbers(cache[key], np.asarray(reference[key]), key)


@examples(0.5)
@given(networks(), st.booleans(), st.booleans())
def test_outputs_in_one_block_equal_outputs_allocated_one_by_one(
    case, input_gradient, float64_targets
):
    """The main property's networks are below ``BLOCK_MIN_BYTES``; with the
    threshold at 0 the same networks run through the block path, which must
    give the same numbers in the same dtypes (also when ``Y``'s dtype is
    wider than the network's, as the functional core allows)."""
    Y = case.Y.astype(np.float64) if float64_targets else case.Y

    def run() -> tuple[dict, dict]:
        with np.errstate(all="ignore"):
            _, cache = network.forward(case.params, case.X, case.net)
            grads = network.backward(cache, Y, case.net, input_gradient=input_gradient)
        return cache, grads

    cache, grads = run()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(network, "BLOCK_MIN_BYTES", 0)
        block_cache, block_grads = run()
    assert block_cache["Z1"].base is not None and block_grads["W1"].base is not None
    assert sorted(block_cache) == sorted(cache) and sorted(block_grads) == sorted(grads)
    for key in cache:
        assert_same_numbers(block_cache[key], cache[key], f"cache {key}")
    for key in grads:
        assert_same_numbers(block_grads[key], grads[key], f"grads {key}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backward_into_out_equals_backward_into_a_new_array(name, dtype):
    rng = np.random.default_rng(0)
    Z = (4 * rng.standard_normal((3, 5))).astype(dtype)
    Z[0, :2] = 0.0  # the kinks
    A = np.asarray(ACTIVATIONS[name].forward(Z, np), dtype=dtype)
    dA = rng.standard_normal((3, 5)).astype(dtype)
    inputs = [Z.copy(), A.copy(), dA.copy()]
    backward = ACTIVATIONS[name].backward
    fresh = backward(dA, Z, A)
    out = np.full_like(Z, np.nan)
    assert backward(dA, Z, A, out=out) is out
    assert_same_numbers(out, fresh, name)
    for before, after in zip(inputs, [Z, A, dA], strict=True):
        assert np.array_equal(before, after), f"{name}: backward wrote into an input"


def test_new_arrays_are_disjoint_c_contiguous_views_of_one_block():
    shapes = {"a": (256, 64), "b": (64, 1), "c": (100, 200)}  # 146 KiB in float32
    arrays_ = network.new_arrays(shapes, np.dtype("float32"))
    assert {key: a.shape for key, a in arrays_.items()} == shapes
    assert all(a.flags.c_contiguous and a.dtype == np.float32 for a in arrays_.values())
    for key, value in arrays_.items():
        value[...] = ord(key)
    assert [set(a.ravel()) for a in arrays_.values()] == [{97.0}, {98.0}, {99.0}]
    assert arrays_["a"].base is arrays_["c"].base


def test_small_outputs_are_left_to_each_operation():
    slots = network.new_arrays({"a": (2, 3), "b": (3, 1)}, np.dtype("float64"))
    assert slots == {}  # out=slots.get(key) is None: each operation allocates
