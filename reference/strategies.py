"""The Hypothesis strategies that draw cases (``manual_bp_reference.cases.Case``).

``networks()`` draws a whole case: depth 1-6, widths 1-32, batch size 1-64,
an activation per layer, a loss that accepts the output activation, a dtype,
and finite parameters, inputs and targets.  Values include exact zeros,
repeated values (most arrays repeat one fill value) and
moderately large magnitudes, bounded so that float32 cannot overflow:
with ``|W|, |B| <= 10`` and ``|X| <= 100``, ``|ZL| <= (32 * 10 + 10)^6 * 100``,
about ``1e17``, whose square summed over a batch stays below float32's max.

Each array is one Hypothesis draw of bytes (``matrices``): a fill value and,
for every entry, whether it keeps the fill and which kind of value it takes
if not; in some layers whole units are silenced (zero weights and bias), so
their ``Z`` is exactly 0 on both sides and the kink conventions are checked.
Drawing each entry separately (as ``hypothesis.extra.numpy.arrays`` does)
costs far more per choice and made generation the slowest step of the main
property (``benchmarks/RESULTS.md``).  Hypothesis still shrinks the bytes:
each shrinks toward 0, which turns an entry back into the fill value and the
fill into 0.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import param_shapes
from manual_bp.losses import LOSSES
from manual_bp.net import Net
from manual_bp_reference.cases import (
    DTYPES,
    INPUT_BOUND,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_WIDTH,
    PARAM_BOUND,
    Case,
)

# Strategies are built once per argument: building and validating one costs
# more than drawing from it.
integers = functools.cache(st.integers)
sampled_from = functools.cache(st.sampled_from)


@functools.cache
def byte_strings(size: int) -> st.SearchStrategy[bytes]:
    """Exactly ``size`` bytes."""
    return st.binary(min_size=size, max_size=size)


# How many entries leave the fill value, by the first byte % 8 (the share of
# code bytes at or above the threshold): as many as hypothesis.extra.numpy
# draws, about max(10, sqrt(size)) (4 of 8), none, half or all; or (mode 7)
# every entry is +-fill.  Mostly-fill and +-fill arrays have rows and columns
# of one magnitude, whose exact cancellations put Z exactly on the relu kinks
# with a nonzero gradient flowing through them.
SIGNED_FILL = 7


def fresh_threshold(mode: int, size: int) -> float:
    """Code bytes at or above this leave the fill."""
    if mode < 4:
        return 256 * (1 - min(0.9, max(10, np.sqrt(size)) / size))
    return (256, 128, 0, 256)[mode - 4]


# Header bytes: the threshold, the fill's code and word, the entries' seed.
_HEADER = 1 + 1 + 4 + 8
# The kind of each value, by its code byte % 16 (indices into the kinds of
# decode_values): 0 in 3 of 16, +-1 in 2, +-bound in 1, +-fill in 2, uniform
# in [-1, 1] in 5, uniform in [-bound, bound], multiples of 1/2 and tiny in 1
# each.  The fill: 0 in 3 of 16, never +-fill.
_KINDS = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 4, 4, 4, 4, 5, 6, 7])
_FILL_KINDS = np.array([0, 0, 0, 1, 1, 2, 2, 4, 4, 4, 4, 4, 5, 5, 6, 7])
# Bits kept in a uniform fraction, by the code's high bits.
_FRACTION_BITS = np.array([1, 2, 3, 4, 8, 31, 31, 31])


def decode_values(
    codes: np.ndarray,
    words: np.ndarray,
    bound: float,
    *,
    fill: float = 0.0,
    kinds_by_code: np.ndarray = _KINDS,
) -> np.ndarray:
    """Values in ``[-bound, bound]`` (float64) from a code byte and a 32-bit word each.

    The code picks the kind (``kinds_by_code``): 0, +-1, +-bound, +-fill (a sum of
    the fill with both signs cancels exactly, as do the other repeated
    magnitudes: that is how ``Z`` lands exactly on a kink), uniform in
    [-1, 1], uniform in [-bound, bound], multiples of 1/2 up to 4 and tiny
    ``2^-k`` with k up to 1074 (subnormals, which XLA flushes to 0).  The
    word's lowest bit is the sign and its other 31 bits the fraction: a zero
    word gives 0.
    """
    sign = np.where(words & 1, -1.0, 1.0)
    # The fraction keeps 1, 2, 3, 4 or 8 bits in half the cases (the code's
    # high bits choose): short fractions multiply and add exactly, and their
    # exact cancellations put Z exactly on the relu kinks.
    precision = _FRACTION_BITS[(codes >> 4) % 8]
    fraction = np.floor((words >> 1) / 2.0 ** (31 - precision)) / 2.0**precision
    kinds = [
        np.zeros(words.shape),
        sign,
        sign * bound,
        sign * fill,
        sign * fraction,
        sign * fraction * bound,
        sign * np.minimum((words >> 1) % 9 / 2, bound),
        sign * np.ldexp(1.0, -np.ceil(fraction * 1074).astype(np.int64)),
    ]
    return np.choose(kinds_by_code[codes % 16], kinds)


@functools.cache
def matrices(shape: tuple[int, ...], bound: float, dtype: str) -> st.SearchStrategy[np.ndarray]:
    """Finite values in ``[-bound, bound]``, exactly representable in ``dtype``.

    One Hypothesis draw of ``14 + size`` bytes: how many entries leave the
    fill value, the fill's code and word, a seed, then one code byte per
    entry, which keeps the fill (below the threshold) or picks the kind of a
    fresh value whose word comes from ``numpy.random`` with that seed.  (Five
    Hypothesis bytes per entry cost five times as much: Hypothesis draws
    bytes one at a time.)  All zero bytes give all zeros.
    """
    size = int(np.prod(shape))

    def decode(raw: bytes) -> np.ndarray:
        header, codes = raw[:_HEADER], np.frombuffer(raw[_HEADER:], dtype=np.uint8)
        threshold = fresh_threshold(header[0] % 8, size)
        fill_code = np.frombuffer(header[1:2], dtype=np.uint8)
        fill_word = np.frombuffer(header[2:6], dtype="<u4")
        fill = decode_values(fill_code, fill_word, bound, kinds_by_code=_FILL_KINDS)[0]
        rng = np.random.default_rng(int.from_bytes(header[6:], "little"))
        words = rng.integers(0, 2**32, size, dtype=np.uint32)
        fresh = decode_values(codes, words, bound, fill=fill)
        out = np.where(codes >= threshold, fresh, fill)
        if header[0] % 8 == SIGNED_FILL:
            out = np.where(codes & 1, -fill, fill)
        return out.astype(dtype).reshape(shape)

    return byte_strings(_HEADER + size).map(decode)


# Simplest first: Hypothesis shrinks a sampled_from toward its first element.
ACTIVATION_ORDER = list(ACTIVATIONS)  # simplest first, as manual_bp lists them
LOSS_ORDER = list(LOSSES)


def _unit_interval(draw, shape: tuple[int, int]) -> np.ndarray:
    """Values in [0, 1]: exact 0 and 1, uniform fractions and tiny ones, float64."""
    return np.abs(draw(matrices(tuple(shape), 1.0, "float64")))


@functools.cache
@st.composite
def targets(
    draw,
    loss: str,
    shape: tuple[int, int],
    dtype: str,
    hard: bool = False,
    bound: float = INPUT_BOUND,
) -> np.ndarray:
    """Targets in the loss's domain: labels in [0, 1], probability columns, or reals.

    ``hard``: only hard labels, 0 or 1 for binary cross-entropy and one-hot
    columns for cross-entropy (what code written for integer labels takes).
    """
    if loss == "binary_cross_entropy":
        if hard:
            raw = draw(byte_strings(shape[0] * shape[1]))
            bits = np.frombuffer(raw, dtype=np.uint8) % 2
            return bits.reshape(shape).astype(dtype)
        return _unit_interval(draw, shape).astype(dtype)
    if loss == "cross_entropy":
        if hard or draw(st.booleans()):
            raw = draw(byte_strings(shape[1]))
            labels = np.frombuffer(raw, dtype=np.uint8) % shape[0]
            return np.eye(shape[0], dtype=dtype)[:, labels]
        weights = _unit_interval(draw, shape)
        weights[0, weights.sum(axis=0) == 0] = 1.0
        return (weights / weights.sum(axis=0)).astype(dtype)
    return draw(matrices(shape, bound, dtype))


def silence_units(raw: bytes, W: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In 1 layer of 4 (first byte % 4 == 2), zero the units whose byte is odd.

    A unit with zero weights and bias has ``Z = 0`` exactly, for every sample
    and on both sides of the comparison: the kink conventions (``relu'(0) =
    0``, ``leaky_relu'(0) = 1``) are checked wherever the next layer passes a
    gradient back to it.  All zero bytes change nothing.
    """
    if raw[0] % 4 != 2:
        return W, B
    silent = (np.frombuffer(raw[1:], dtype=np.uint8) % 2 == 1)[:, None]
    return np.where(silent, 0, W).astype(W.dtype), np.where(silent, 0, B).astype(B.dtype)


@functools.cache
@st.composite
def params_for(
    draw, sizes: tuple[int, ...], dtype: str, bound: float = PARAM_BOUND
) -> dict[str, np.ndarray]:
    """``W1..WL`` and ``B1..BL`` for ``sizes``, in ``[-bound, bound]``."""
    return {key: draw(matrices(shape, bound, dtype)) for key, shape in param_shapes(sizes).items()}


def output_activations(loss: str) -> list[str]:
    """The output activations ``loss`` accepts, simplest first."""
    return [name for name in ACTIVATION_ORDER if name in LOSSES[loss].output_activations]


@st.composite
def networks(
    draw,
    *,
    max_depth: int = MAX_DEPTH,
    max_width: int = MAX_WIDTH,
    max_batch: int = MAX_BATCH,
    dtypes: tuple[str, ...] = DTYPES,
    net: st.SearchStrategy[Net] | None = None,
    hard_targets: bool = False,
    param_bound: float = PARAM_BOUND,
    input_bound: float = INPUT_BOUND,
    regularization: bool = False,
) -> Case:
    """A whole case: network, dtype, parameters, inputs ``X`` and targets ``Y``.

    ``net``: a strategy for a plain ``manual_bp.Net`` (no normalization,
    dropout or ``l2``: ``ValueError``; ``regularization`` draws decay and
    dropout), e.g. ``st.just(net)``.  Without it each layer's width,
    activation, ``Wl`` and ``Bl`` are drawn together, so that shrinking can
    delete a whole hidden layer.
    ``hard_targets``: labels only (``targets(..., hard=True)``).  ``param_bound``
    and ``input_bound`` bound ``|Wl|, |Bl|`` and ``|X|`` (and mse targets).
    ``regularization``: also draw a weight decay and dropout
    (``regularizations``).
    """
    dtype = draw(sampled_from(tuple(dtypes)))
    m = draw(integers(1, max_batch))
    if net is not None:
        spec = draw(net)
        if spec.l2 or any(spec.normalization) or any(spec.dropout):
            raise ValueError(
                f"net: expected a plain Net (draw decay and dropout with regularization=True), "
                f"got {spec!r}"
            )
        sizes, activations, loss = spec.layer_sizes, list(spec.activations), spec.loss
        params = draw(params_for(tuple(sizes), dtype, param_bound))
    else:
        loss = draw(sampled_from(tuple(LOSS_ORDER)))
        sizes, activations, params = [draw(integers(1, max_width))], [], {}

        def add_layer(width: int, activation: str) -> None:
            l = len(sizes)
            W = draw(matrices((width, sizes[-1]), param_bound, dtype))
            B = draw(matrices((width, 1), param_bound, dtype))
            params[f"W{l}"], params[f"B{l}"] = silence_units(draw(byte_strings(1 + width)), W, B)
            sizes.append(width)
            activations.append(activation)

        # Another hidden layer with probability 3/4 (so about 3 on average);
        # the flag shrinks to 0, which ends the network there.
        while len(activations) < max_depth - 1 and draw(integers(0, 3)) > 0:
            add_layer(draw(integers(1, max_width)), draw(sampled_from(tuple(ACTIVATION_ORDER))))
        width = max(draw(integers(1, max_width)), LOSSES[loss].min_outputs)
        add_layer(width, draw(sampled_from(tuple(output_activations(loss)))))
    X = draw(matrices((sizes[0], m), input_bound, dtype))
    Y = draw(targets(loss, (sizes[-1], m), dtype, hard_targets, input_bound))
    options = draw(regularizations(tuple(sizes), m)) if regularization else {}
    return Case.of(params, X, Y, tuple(activations), loss, **options)


# Simplest first (each shrinks to no decay, no dropout): decay strengths from
# tiny to strong, drop probabilities from a third to 0.9 (a scale of 10).
L2_STRENGTHS = (0.0, 1e-3, 0.1, 1.0, 7.5)
DROP_PROBABILITIES = (0.0, 0.5, 1 / 3, 0.1, 0.9)


@functools.cache
@st.composite
def regularizations(
    draw,
    sizes: tuple[int, ...],
    m: int,
    probabilities: tuple[float, ...] = DROP_PROBABILITIES,
    shared: bool = False,
) -> dict[str, object]:
    """``Case`` keywords: ``l2`` and, per hidden layer, a drop probability (from
    ``probabilities``; one for every hidden layer if ``shared``, which keeps
    the number of dropout patterns, and so of oracle compilations, small) and
    its mask (one byte per entry: kept below ``256 (1 - p)``, so zero bytes
    keep every unit and shrinking drops nothing)."""
    options: dict[str, object] = {"l2": draw(sampled_from(L2_STRENGTHS))}
    hidden = len(sizes) - 2
    if shared:
        rates = [draw(sampled_from(probabilities))] * hidden
    else:
        rates = [draw(sampled_from(probabilities)) for _ in range(hidden)]
    if any(rates):
        masks = {}
        for l, rate in enumerate(rates, start=1):
            if rate:
                raw = np.frombuffer(draw(byte_strings(sizes[l] * m)), dtype=np.uint8)
                masks[f"M{l}"] = (raw < 256 * (1 - rate)).reshape(sizes[l], m).astype("float64")
        options.update(dropout=(*rates, 0.0), masks=masks)
    return options


def seed_networks(*, max_batch: int = MAX_BATCH) -> st.SearchStrategy[Case]:
    """The seed's network: 2 inputs, two sigmoid hidden layers of 3, a sigmoid output."""
    seed = Net.of([2, 3, 3, 1], ["sigmoid"] * 3, "binary_cross_entropy")
    return networks(max_batch=max_batch, net=st.just(seed))
