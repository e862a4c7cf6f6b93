"""The vanilla RNN and the LSTM (manual_bp.recurrent), step and sequence, against jax.

Properties, each for the four layers (``rnn_step``, ``rnn``, ``lstm_step``, ``lstm``):

1. the manual backward equals ``jax.vjp`` of the same forward run with ``xp=jnp``
   in float64, entry by entry, within ``BOUND * (1 + magnitude)``;
2. the NumPy forward equals the ``jax.numpy`` forward, within the same kind of bound;
3. float32 in gives float32 out: every output, every cache entry, every gradient;
4. the caller's arrays (inputs and upstream gradients) are unchanged, and so is the
   cache after the backward;
5. bad input raises ``ValueError`` / ``TypeError`` naming the argument.

Plus a law (a sequence of length 1 is one step, bitwise), and the students'
styles of ``benchmarks.layer_styles.recurrent``: each correct style agrees with
manual_bp, each named bug differs from the correct code.

The bound.  A gradient's rounding error has two parts: the backward's own, of the
order of ``magnitude``, the same backward run on absolute values (``|dout|`` and every
cached array's ``|.|``: every factor it multiplies by is then non-negative, as
``1 − h²``, ``σ(1 − σ)``, ``1 − g²`` already are, so it is, entry by entry, the sum of
the absolute values of the terms the gradient adds up), and the forward's, since the
two sides differentiate at their own forward values, whose error scales with the
affine part ``A = |x| |Wx| + |h_prev| |Wh| + |b|`` (and ``|c|`` for the LSTM; tanh and
σ are 1-Lipschitz).  So a gradient must be within ``BOUND (1 + magnitude) (1 + A)`` and
an output within ``BOUND (1 + A)``.  ``BOUND = 1e-12`` is about 4500 ulps: far above
the few ulps per step that the two sides' summation orders and libms produce (the
largest ratios seen are written down at ``BOUND``), far below any real mistake, which
is of the size of the gradient itself.

The oracle is compiled (``jax.jit``) once, for one bucket shape: every case is embedded
in ``(N, T, D, H) = (3, 4, 3, 3)`` with zeros (the LSTM's four gate blocks each padded
to 3), so jax compiles it once.  Padding is exact: padded samples and
units get a zero upstream gradient and padded hidden units stay 0 (their weights are
0), so they add exact zeros to every real gradient; padded trailing time steps get
``dh = 0`` and send nothing back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.layer_styles import recurrent as styles
from manual_bp import recurrent
from manual_bp_reference.jax_setup import jax, jnp
from property_tests.budget import examples

# The largest |manual − jax| / tolerance·BOUND seen over 8 000 random cases (2 200 to
# 3 000 per layer, 430 LSTM sequences): gradients 6.5e-15 (an RNN sequence), outputs
# 3.6e-16.  BOUND leaves a factor of 150.
BOUND = 1e-12
BUCKET = {"N": 3, "T": 4, "D": 3, "H": 3}


@dataclass(frozen=True)
class Layer:
    """A layer's functions and the axes of its arrays (``G`` = the gates' ``gates * H``)."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    inputs: tuple[tuple[str, str], ...]  # (name, axes)
    outputs: tuple[str, ...]  # the axes of each output, so of each upstream gradient
    gates: int


_WEIGHTS = (("Wx", "DG"), ("Wh", "HG"), ("b", "G"))
LAYERS = {
    "rnn_step": Layer(
        recurrent.rnn_step_forward,
        recurrent.rnn_step_backward,
        (("x", "ND"), ("prev_h", "NH"), *_WEIGHTS),
        ("NH",),
        1,
    ),
    "rnn": Layer(
        recurrent.rnn_forward,
        recurrent.rnn_backward,
        (("x", "NTD"), ("h0", "NH"), *_WEIGHTS),
        ("NTH",),
        1,
    ),
    "lstm_step": Layer(
        recurrent.lstm_step_forward,
        recurrent.lstm_step_backward,
        (("x", "ND"), ("prev_h", "NH"), ("prev_c", "NH"), *_WEIGHTS),
        ("NH", "NH"),
        4,
    ),
    "lstm": Layer(
        recurrent.lstm_forward,
        recurrent.lstm_backward,
        (("x", "NTD"), ("h0", "NH"), *_WEIGHTS),
        ("NTH",),
        4,
    ),
}
KINDS = list(LAYERS)


@dataclass(frozen=True)
class Case:
    kind: str
    inputs: tuple[np.ndarray, ...]
    upstream: tuple[np.ndarray, ...]


def _shape(axes: str, sizes: dict[str, int], gates: int) -> tuple[int, ...]:
    return tuple(gates * sizes["H"] if axis == "G" else sizes[axis] for axis in axes)


def make_case(
    kind: str,
    sizes: dict[str, int],
    seed: int,
    input_scale: float = 1.0,
    weight_scale: float = 1.0,
    zero_state: bool = False,
    upstream: str = "dense",
    dtype: type = np.float64,
) -> Case:
    """Normal draws, scaled (4.0 saturates tanh and σ); ``upstream`` dense, last step
    only (many-to-one), or with random zeros."""
    layer = LAYERS[kind]
    rng = np.random.default_rng(seed)
    inputs = []
    for name, axes in layer.inputs:
        scale = weight_scale if name in ("Wx", "Wh", "b") else input_scale
        array = scale * rng.standard_normal(_shape(axes, sizes, layer.gates))
        if zero_state and name in ("h0", "prev_h", "prev_c"):
            array = np.zeros_like(array)
        inputs.append(array.astype(dtype))
    douts = []
    for axes in layer.outputs:
        dout = rng.standard_normal(_shape(axes, sizes, layer.gates))
        if upstream == "last" and "T" in axes:
            dout[:, :-1] = 0
        elif upstream == "sparse":
            dout = dout * (rng.random(dout.shape) < 0.5)
        douts.append(dout.astype(dtype))
    return Case(kind, tuple(inputs), tuple(douts))


@st.composite
def cases(draw: st.DrawFn, kind: str) -> Case:
    sizes = {
        "N": draw(st.integers(1, BUCKET["N"])),
        "T": draw(st.integers(1, BUCKET["T"])),
        "D": draw(st.integers(1, BUCKET["D"])),
        "H": draw(st.integers(1, BUCKET["H"])),
    }
    scales = st.sampled_from([1.0, 0.1, 4.0])
    return make_case(
        kind,
        sizes,
        seed=draw(st.integers(0, 2**32 - 1)),
        input_scale=draw(scales),
        weight_scale=draw(scales),
        zero_state=draw(st.booleans()),
        upstream=draw(st.sampled_from(["dense", "last", "sparse"])),
    )


def run_manual(case: Case) -> tuple[tuple[np.ndarray, ...], dict, tuple[np.ndarray, ...]]:
    """(outputs, cache, gradients) of manual_bp."""
    layer = LAYERS[case.kind]
    *outputs, cache = layer.forward(*case.inputs)
    grads = layer.backward(*case.upstream, cache)
    return tuple(outputs), cache, tuple(grads)


def magnitude(case: Case, cache: dict) -> tuple[np.ndarray, ...]:
    """The backward on absolute values: per entry, the sum of |terms| of the gradient."""
    absolute = {key: np.abs(value) for key, value in cache.items()}
    upstream = [np.abs(dout) for dout in case.upstream]
    return tuple(LAYERS[case.kind].backward(*upstream, absolute))


def forward_scale(case: Case, outputs: tuple[np.ndarray, ...], cache: dict) -> float:
    """The affine part's scale ``|x| |Wx| + |h_prev| |Wh| + |b|`` (and ``|c|``)."""
    x, Wx, Wh = (np.abs(cache[key]) for key in ("x", "Wx", "Wh"))
    b = np.abs(case.inputs[-1])
    if "h" in cache:  # a sequence: the previous states are h0, h[:, :-1]
        previous = np.concatenate([cache["h0"][:, None, :], cache["h"][:, :-1, :]], axis=1)
    else:
        previous = cache["prev_h"]
    affine = x @ Wx + np.abs(previous) @ Wh + b
    cells = cache.get("c", outputs[-1] if case.kind == "lstm_step" else np.zeros(1))
    return float(affine.max() + np.abs(cells).max())


# --- the oracle: jax.vjp of the same forward, compiled, on the bucket shape ---------


@functools.cache
def _compiled(kind: str) -> tuple[Callable[..., tuple], Callable[..., tuple]]:
    """The kind's forward outputs and ``(outputs, vjp(cotangent))``, each one ``jax.jit``
    (one bucket shape: one compilation each; op by op, each new shape compiled
    every small operation anew, 2 to 3 times slower here)."""
    layer = LAYERS[kind]

    def forward(*arrays: Any) -> tuple:
        *outputs, _cache = layer.forward(*arrays, xp=jnp)
        return tuple(outputs)

    def pulled(arrays: tuple, cotangent: tuple) -> tuple:
        outputs, vjp = jax.vjp(forward, *arrays)
        return outputs, vjp(cotangent)

    return jax.jit(forward), jax.jit(pulled)


def _split_gates(shape: tuple[int, ...], axes: str, gates: int) -> tuple[int, ...]:
    """The shape with its ``G`` axis split into ``(gates, H)``."""
    split: list[int] = []
    for size, axis in zip(shape, axes, strict=True):
        split += [gates, size // gates] if axis == "G" else [size]
    return tuple(split)


def embed(array: np.ndarray, axes: str, gates: int) -> np.ndarray:
    """``array`` in the top-left corner of the bucket shape (each gate block apart)."""
    bucket = _shape(axes, BUCKET, gates)
    padded = np.zeros(_split_gates(bucket, axes, gates), dtype=array.dtype)
    split = array.reshape(_split_gates(array.shape, axes, gates))
    padded[tuple(slice(0, size) for size in split.shape)] = split
    return padded.reshape(bucket)


def extract(padded: np.ndarray, axes: str, gates: int, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``embed``: the real ``shape`` out of the bucket."""
    split = padded.reshape(_split_gates(padded.shape, axes, gates))
    real = _split_gates(shape, axes, gates)
    return split[tuple(slice(0, size) for size in real)].reshape(shape)


def run_oracle(case: Case, with_gradients: bool = True) -> tuple[list, list]:
    """(outputs, gradients) of jax on the padded case, cut back to the case's shapes."""
    layer = LAYERS[case.kind]
    padded = [
        jnp.asarray(embed(array, axes, layer.gates))
        for array, (_, axes) in zip(case.inputs, layer.inputs, strict=True)
    ]

    forward, pulled = _compiled(case.kind)
    if not with_gradients:
        outputs = [
            extract(np.asarray(out), axes, layer.gates, dout.shape)
            for out, axes, dout in zip(forward(*padded), layer.outputs, case.upstream, strict=True)
        ]
        return outputs, []
    else:
        cotangent = tuple(
            jnp.asarray(embed(dout, axes, layer.gates))
            for dout, axes in zip(case.upstream, layer.outputs, strict=True)
        )
        padded_outputs, padded_grads = pulled(tuple(padded), cotangent)
    outputs = [
        extract(np.asarray(out), axes, layer.gates, dout.shape)
        for out, axes, dout in zip(padded_outputs, layer.outputs, case.upstream, strict=True)
    ]
    grads = [
        extract(np.asarray(grad), axes, layer.gates, array.shape)
        for grad, (_, axes), array in zip(padded_grads, layer.inputs, case.inputs, strict=True)
    ]
    return outputs, grads


def assert_within(name: str, manual: np.ndarray, oracle: np.ndarray, tolerance: Any) -> None:
    """``|manual − oracle| <= tolerance`` entry by entry (``tolerance`` broadcasts)."""
    assert manual.shape == oracle.shape, (name, manual.shape, oracle.shape)
    error = np.abs(manual - oracle)
    worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
    bound = np.broadcast_to(tolerance, error.shape)[worst]
    assert np.all(error <= tolerance), f"{name}: |manual - jax| = {error[worst]:.3g} > {bound:.3g}"


def gradient_names(kind: str) -> list[str]:
    """``dx, dprev_h, ...``: one gradient per array input, in the forward's order."""
    return ["d" + name for name, _ in LAYERS[kind].inputs]


# --- 1. the backward against jax.vjp ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_backward_equals_jax_vjp(kind: str) -> None:
    @examples(0.2)
    @given(cases(kind))
    def check(case: Case) -> None:
        outputs, cache, grads = run_manual(case)
        _, oracle_grads = run_oracle(case)
        assert len(grads) == len(oracle_grads) == len(case.inputs)
        forward_error = 1 + forward_scale(case, outputs, cache)
        for name, grad, oracle, size in zip(
            gradient_names(kind), grads, oracle_grads, magnitude(case, cache), strict=True
        ):
            assert_within(name, grad, oracle, BOUND * (1 + size) * forward_error)

    check()


# --- 2. the NumPy forward against the jax.numpy forward ---------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_forward_numpy_equals_jax_numpy(kind: str) -> None:
    @examples(0.2)
    @given(cases(kind))
    def check(case: Case) -> None:
        outputs, cache, _ = run_manual(case)
        oracle_outputs, _ = run_oracle(case, with_gradients=False)
        scale = forward_scale(case, outputs, cache)
        for index, (output, oracle) in enumerate(zip(outputs, oracle_outputs, strict=True)):
            assert_within(f"output {index}", output, oracle, BOUND * (1 + scale))

    check()


# --- 3. float32 in, float32 out ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_in_is_dtype_out(kind: str, dtype: type) -> None:
    @examples(0.3)
    @given(cases(kind))
    def check(case: Case) -> None:
        case = Case(
            kind,
            tuple(a.astype(dtype) for a in case.inputs),
            tuple(u.astype(dtype) for u in case.upstream),
        )
        outputs, cache, grads = run_manual(case)
        named = [*outputs, *cache.values(), *grads]
        assert all(array.dtype == dtype for array in named), [a.dtype for a in named]
        for grad, array in zip(grads, case.inputs, strict=False):
            assert grad.shape == array.shape

    check()


# --- 4. the caller's arrays are unchanged -----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@examples(0.3)
@given(data=st.data())
def test_arguments_unchanged(kind: str, data: st.DataObject) -> None:
    case = data.draw(cases(kind))
    inputs = [array.copy() for array in case.inputs]
    upstream = [array.copy() for array in case.upstream]
    layer = LAYERS[kind]
    *_, cache = layer.forward(*case.inputs)
    cached = {key: np.array(value, copy=True) for key, value in cache.items()}
    layer.backward(*case.upstream, cache)
    for before, after in zip([*inputs, *upstream], [*case.inputs, *case.upstream], strict=True):
        assert np.array_equal(before, after)
    for key, value in cached.items():
        assert np.array_equal(value, cache[key]), key


# --- a law: a sequence of length 1 is one step, bitwise ---------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@examples(0.2)
@given(data=st.data())
def test_length_one_sequence_is_one_step(cell: str, data: st.DataObject) -> None:
    case = data.draw(cases(cell))
    x, h0, Wx, Wh, b = case.inputs
    (dh,) = case.upstream
    x, dh = x[:, :1], dh[:, :1]
    sequence_forward, sequence_backward = LAYERS[cell].forward, LAYERS[cell].backward
    h, cache = sequence_forward(x, h0, Wx, Wh, b)
    grads = sequence_backward(dh, cache)
    if cell == "rnn":
        next_h, step_cache = recurrent.rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
        step_grads = recurrent.rnn_step_backward(dh[:, 0], step_cache)
    else:
        c0 = np.zeros_like(h0)
        next_h, _, step_cache = recurrent.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
        step_grads = recurrent.lstm_step_backward(dh[:, 0], np.zeros_like(h0), step_cache)
        step_grads = step_grads[:2] + step_grads[3:]  # c0 is a constant: no dc0
    assert np.array_equal(h[:, 0], next_h)
    assert np.array_equal(grads[0][:, 0], step_grads[0])
    for grad, step_grad in zip(grads[1:], step_grads[1:], strict=True):
        assert np.array_equal(grad, step_grad)


# --- 5. bad input ---------------------------------------------------------------


def _valid(kind: str) -> list[np.ndarray]:
    sizes = {"N": 2, "T": 3, "D": 3, "H": 2}
    return list(make_case(kind, sizes, seed=0).inputs)


def _call_forward(kind: str, **replaced: object) -> Callable[[], object]:
    names = [name for name, _ in LAYERS[kind].inputs]
    arguments = dict(zip(names, _valid(kind), strict=True))
    arguments.update(replaced)
    return lambda: LAYERS[kind].forward(*arguments.values())


def _call_backward(kind: str, replace: Callable[[Case, dict], tuple]) -> Callable[[], object]:
    case = make_case(kind, {"N": 2, "T": 3, "D": 3, "H": 2}, seed=0)
    *_, cache = LAYERS[kind].forward(*case.inputs)
    return lambda: LAYERS[kind].backward(*replace(case, cache))


def _sequence_backward_of(kind: str, cache_kind: str) -> Callable[[], object]:
    """``kind``'s backward given the cache of ``cache_kind``'s forward."""
    *_, cache = LAYERS[cache_kind].forward(*_valid(cache_kind))
    return lambda: LAYERS[kind].backward(np.zeros((2, 3, 2)), cache)


F32 = np.float32
BAD_INPUTS = [
    # (id, call, error, what the message says)
    (
        "x 1-D",
        _call_forward("rnn_step", x=np.zeros(3)),
        ValueError,
        "x: expected a 2-D array (N, D)",
    ),
    (
        "prev_h rows",
        _call_forward("rnn_step", prev_h=np.zeros((3, 2))),
        ValueError,
        "prev_h: expected shape (N, H) = (2, 2), got (3, 2)",
    ),
    (
        "Wx transposed",
        _call_forward("rnn_step", Wx=np.zeros((2, 3))),
        ValueError,
        "Wx: expected shape (D, H) = (3, 2), got (2, 3)",
    ),
    (
        "Wh not square",
        _call_forward("rnn_step", Wh=np.zeros((2, 3))),
        ValueError,
        "Wh: expected shape (H, H) = (2, 2)",
    ),
    (
        "b as a row",
        _call_forward("rnn_step", b=np.zeros((1, 2))),
        ValueError,
        "b: expected a 1-D array (H,)",
    ),
    (
        "b too long",
        _call_forward("rnn_step", b=np.zeros(3)),
        ValueError,
        "b: expected shape (H,) = (2,), got (3,)",
    ),
    (
        "Wx float32",
        _call_forward("rnn_step", Wx=np.zeros((3, 2), F32)),
        TypeError,
        "Wx: expected dtype float64 like x, got float32",
    ),
    (
        "x ints",
        _call_forward("rnn_step", x=np.zeros((2, 3), int)),
        TypeError,
        "x: expected a float32 or float64 array, got dtype int64",
    ),
    (
        "x text",
        _call_forward("rnn_step", x="abc"),
        TypeError,
        "x: expected a float32 or float64 array",
    ),
    (
        "no samples",
        _call_forward("rnn_step", x=np.zeros((0, 3)), prev_h=np.zeros((0, 2))),
        ValueError,
        "expected N >= 1",
    ),
    (
        "x without time",
        _call_forward("rnn", x=np.zeros((2, 3))),
        ValueError,
        "x: expected a 3-D array (N, T, D), got shape (2, 3)",
    ),
    ("empty sequence", _call_forward("rnn", x=np.zeros((2, 0, 3))), ValueError, "expected T >= 1"),
    (
        "h0 wider than Wh",
        _call_forward("rnn", h0=np.zeros((2, 3))),
        ValueError,
        "Wx: expected shape (D, H) = (3, 3), got (3, 2)",
    ),
    (
        "h0 rows",
        _call_forward("rnn", h0=np.zeros((1, 2))),
        ValueError,
        "h0: expected shape (N, H) = (2, 2), got (1, 2)",
    ),
    (
        "LSTM Wx of an RNN",
        _call_forward("lstm_step", Wx=np.zeros((3, 2))),
        ValueError,
        "Wx: expected shape (D, 4H) = (3, 8), got (3, 2)",
    ),
    (
        "LSTM Wh square",
        _call_forward("lstm_step", Wh=np.zeros((2, 2))),
        ValueError,
        "Wh: expected shape (H, 4H) = (2, 8), got (2, 2)",
    ),
    (
        "LSTM b of H",
        _call_forward("lstm_step", b=np.zeros(2)),
        ValueError,
        "b: expected shape (4H,) = (8,), got (2,)",
    ),
    (
        "prev_c wrong",
        _call_forward("lstm_step", prev_c=np.zeros((2, 3))),
        ValueError,
        "prev_c: expected shape (N, H) = (2, 2), got (2, 3)",
    ),
    (
        "prev_c float32",
        _call_forward("lstm_step", prev_c=np.zeros((2, 2), F32)),
        TypeError,
        "prev_c: expected dtype float64 like x",
    ),
    (
        "LSTM sequence Wh",
        _call_forward("lstm", Wh=np.zeros((2, 2))),
        ValueError,
        "Wh: expected shape (H, 4H)",
    ),
    (
        "x float32 alone",
        _call_forward("lstm", x=np.zeros((2, 3, 3), F32)),
        TypeError,
        "h0: expected dtype float32 like x, got float64",
    ),
    (
        "dh shape",
        _call_backward("rnn", lambda c, k: (np.zeros((2, 3, 3)), k)),
        ValueError,
        "dh: expected shape (2, 3, 2) (the forward's output), got (2, 3, 3)",
    ),
    (
        "dh float32",
        _call_backward("rnn", lambda c, k: (c.upstream[0].astype(F32), k)),
        TypeError,
        "dh: expected dtype float64 (the forward's), got float32",
    ),
    (
        "cache tuple",
        _call_backward("rnn", lambda c, k: (c.upstream[0], tuple(k.values()))),
        TypeError,
        "cache: expected the dict rnn_forward returns, got tuple",
    ),
    ("step cache", _sequence_backward_of("rnn", "rnn_step"), ValueError, "missing ['h0', 'h']"),
    (
        "dnext_c shape",
        _call_backward("lstm_step", lambda c, k: (c.upstream[0], np.zeros((2, 3)), k)),
        ValueError,
        "dnext_c: expected shape (2, 2)",
    ),
    (
        "LSTM given an RNN cache",
        _sequence_backward_of("lstm", "rnn"),
        ValueError,
        "cache: expected the dict lstm_forward returns",
    ),
    (
        "dnext_h list",
        _call_backward("rnn_step", lambda c, k: ([[1, 2], [3, 4]], k)),
        TypeError,
        "dnext_h: expected a float32 or float64 array, got dtype int64",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused(call: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value), str(raised.value)


# --- the students' styles -------------------------------------------------------


def _style_run(forward: Callable, backward: Callable, case: Case) -> tuple[list, list]:
    *outputs, cache = forward(*case.inputs)
    return outputs, list(backward(*case.upstream, cache))


@pytest.mark.parametrize(
    ("kind", "style"), [(kind, style) for kind in KINDS for style in styles.STYLES[kind]]
)
@examples(0.3)
@given(data=st.data())
def test_correct_student_styles_agree(kind: str, style: str, data: st.DataObject) -> None:
    case = data.draw(cases(kind))
    outputs, cache, grads = run_manual(case)
    style_outputs, style_grads = _style_run(*styles.STYLES[kind][style], case)
    scale = forward_scale(case, outputs, cache)
    for index, (output, theirs) in enumerate(zip(outputs, style_outputs, strict=True)):
        assert_within(f"output {index}", output, theirs, BOUND * (1 + scale))
    for name, grad, theirs, size in zip(
        gradient_names(kind), grads, style_grads, magnitude(case, cache), strict=True
    ):
        assert_within(name, grad, theirs, BOUND * (1 + size) * (1 + scale))


@pytest.mark.parametrize(
    ("kind", "bug"), [(kind, bug) for kind in styles.BUGS for bug in styles.BUGS[kind]]
)
def test_each_student_bug_differs(kind: str, bug: str) -> None:
    case = make_case(kind, {"N": 2, "T": 3, "D": 3, "H": 3}, seed=1)
    outputs, grads = _style_run(*styles.STYLES[kind]["cs231n"], case)
    forward, backward, description = styles.BUGS[kind][bug]
    assert description
    bug_outputs, bug_grads = _style_run(forward, backward, case)
    gaps = [
        np.max(np.abs(theirs - ours)) / (1 + np.max(np.abs(ours)))
        for ours, theirs in zip([*outputs, *grads], [*bug_outputs, *bug_grads], strict=True)
    ]
    assert max(gaps) > 1e-3, gaps
