"""Seeded random verification examples, drawn with NumPy: the campaign's generator.

An example is a network (layer sizes, activations, loss, batch size), a dtype
and its values ``(params, X, Y)``.  ``draw_example(seed, index)`` draws
example ``index`` from ``numpy.random.default_rng([seed, index])`` alone, so
any example of any run is rebuilt from its two numbers, whichever process or
machine drew it first.

The rules mirror ``manual_bp_reference.cases``: architectures of depth
``1..limits.depth``, widths ``1..limits.width`` and batch ``1..limits.batch``
with extra weight on the small end and the edges; a loss with an output
activation it accepts.  Values: each array is either one repeated value, a
repeated fill with some entries replaced, a mixture with random weights, or
all from one category, where the categories are exact zeros (``+-0``),
uniform ``[-1, 1]``, uniform ``[-bound, bound]``, ``+-bound``, ``+-1``, tiny
values (log-uniform down to the smallest subnormal, including the smallest
subnormal and the smallest normal exactly) and small multiples of 1/2 (exact
cancellations).  ``bound`` is ``PARAM_BOUND`` for ``W``/``B`` and
``INPUT_BOUND`` for ``X`` and mse targets.  Targets lie in the loss's domain:
binary cross-entropy in ``[0, 1]`` including exact 0, 1/2 and 1;
cross-entropy one-hot or normalised soft columns; mse reals.

>>> example = draw_example(0, 7)
>>> again = draw_example(0, 7)
>>> example.arch == again.arch and bool((example.X == again.X).all())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from manual_bp.activations import ACTIVATIONS
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


@dataclass(frozen=True)
class Limits:
    """The largest depth, width (every ``nl``) and batch size ``m`` drawn."""

    depth: int = MAX_DEPTH
    width: int = MAX_WIDTH
    batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        for name in ("depth", "width", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limits.{name}: expected a positive int, got {value!r}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class DrawnNet:
    """The network (a ``manual_bp.Net``) and batch size ``m`` drawn for
    example ``index``: one jax compilation."""

    index: int
    net: Net
    m: int

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(n0, n1, ..., nL)``: with ``m``, what the padded oracle's bucket reads."""
        return tuple(self.net.layer_sizes)

    def describe(self) -> str:
        net = self.net
        normalized = f", normalization={list(net.normalization)}" if net.normalized else ""
        return (
            f"layer_sizes={list(self.sizes)}, activations={list(net.activations)}, "
            f"loss={net.loss!r}, m={self.m}{normalized}"
        )


def _draw_size(rng: np.random.Generator, largest: int) -> int:
    """Mostly uniform in ``1..largest``, with extra weight on the small end and the edges."""
    kind = rng.random()
    if kind < 0.6:
        return int(rng.integers(1, largest + 1))
    if kind < 0.8:
        return int(rng.integers(1, min(4, largest) + 1))
    return int(rng.choice([1, 2, largest]))


def _drawn(index: int, sizes, activations, loss: str, m: int, normalization=()) -> DrawnNet:
    """``normalization``: ``()`` or one entry per layer, the output layer's ``None``."""
    hidden = tuple(normalization)[:-1] or None
    return DrawnNet(index, Net.of(sizes, activations, loss, normalization=hidden), m)


def draw_network(
    rng: np.random.Generator, index: int, *, limits: Limits = DEFAULT_LIMITS
) -> DrawnNet:
    """A network and batch size by the rules of ``manual_bp_reference.strategies.networks``."""
    depth = int(rng.integers(1, limits.depth + 1))
    sizes = [_draw_size(rng, limits.width) for _ in range(depth + 1)]
    loss = str(rng.choice(sorted(LOSSES)))
    spec = LOSSES[loss]
    sizes[-1] = max(sizes[-1], spec.min_outputs)
    hidden = [str(rng.choice(sorted(ACTIVATIONS))) for _ in range(depth - 1)]
    output = str(rng.choice(sorted(spec.output_activations)))
    return _drawn(index, sizes, (*hidden, output), loss, _draw_size(rng, limits.batch))


def check_plain(net: object, *, name: str = "network") -> Net:
    """``net`` if it is a plain ``manual_bp.Net`` (no normalization, dropout or
    decay): the one network a campaign or a check draws values for."""
    if not isinstance(net, Net):
        raise TypeError(f"{name}: expected a manual_bp.Net, got {type(net).__name__} {net!r}")
    if net.l2 or net.normalized or net.dropped:
        raise ValueError(
            f"{name}: expected a plain Net (no normalization, dropout or l2), got {net!r}"
        )
    return net


def draw_batch(rng: np.random.Generator, index: int, net: Net, limits: Limits) -> DrawnNet:
    """One fixed network (what ``check_gradients`` checks): example ``index``
    draws only its batch size ``m`` (``1..limits.batch``) and the values."""
    return DrawnNet(index, net, _draw_size(rng, limits.batch))


def draw_normalized_network(
    rng: np.random.Generator, index: int, *, limits: Limits = DEFAULT_LIMITS
) -> DrawnNet:
    """A network of depth >= 2 with a normalization step in some hidden layers.

    Each hidden layer is batch-normalized, layer-normalized or not (at least
    one is), by the rules of ``draw_network`` otherwise; the batch size is 1
    in one network of eight (batch normalization of one sample, whose
    behaviour ``manual_bp.normalization`` defines).
    """
    if limits.depth < 2:
        raise ValueError(f"limits.depth: a normalized net needs depth >= 2, got {limits.depth}")
    while True:
        arch = draw_network(rng, index, limits=limits)
        if arch.net.depth >= 2:
            break
    hidden = [
        str(k) if k else None for k in rng.choice(["batch", "layer", ""], len(arch.sizes) - 2)
    ]
    if not any(hidden):
        hidden[int(rng.integers(len(hidden)))] = str(rng.choice(["batch", "layer"]))
    m = 1 if rng.random() < 0.125 else arch.m
    return _drawn(index, arch.sizes, arch.net.activations, arch.net.loss, m, (*hidden, None))


# Stability cases of a normalized net, each in one example of eight: near-constant
# inputs (every column one column plus noise 1e-6 times smaller), and a huge
# offset (1e6) on a normalized layer's bias, which makes its features
# 1e6 + (small noise).
HUGE_OFFSET = 1e6


def _stability_case(
    rng: np.random.Generator, arch: DrawnNet, params: dict, X: np.ndarray, dtype: str
) -> np.ndarray:
    """Applies the stability cases (in place on ``params``) and returns ``X``."""
    kind = rng.random()
    if kind < 0.125:
        noise = rng.standard_normal(X.shape) * 1e-6
        X = (X[:, :1].astype(np.float64) * (1 + noise)).astype(dtype)
    elif kind < 0.25:
        for l, normalized in enumerate(arch.net.normalization, start=1):
            if normalized:
                params[f"B{l}"] = (params[f"B{l}"] + HUGE_OFFSET).astype(dtype)
    return X


# --- values ------------------------------------------------------------------------------


def _tiny(rng: np.random.Generator, size: int, dtype: str) -> np.ndarray:
    """Positive tiny magnitudes: the smallest subnormal, the smallest normal, log-uniform."""
    info = np.finfo(np.dtype(dtype))
    smallest = float(info.smallest_subnormal)
    exponent = rng.uniform(math.log2(smallest), 0.0, size)
    out = np.exp2(exponent)
    kind = rng.random(size)
    out = np.where(kind < 0.25, smallest, out)
    return np.where((kind >= 0.25) & (kind < 0.5), float(info.tiny), out)


def _signed_candidates(rng: np.random.Generator, size: int, bound: float, dtype: str) -> np.ndarray:
    """One row per category: zero, [-1,1], [-bound,bound], +-bound, +-1, tiny, k/2."""
    sign = rng.choice([-1.0, 1.0], size)
    simple = rng.integers(-4, 5, size) / 2.0
    return np.stack(
        [
            sign * 0.0,
            rng.uniform(-1.0, 1.0, size),
            rng.uniform(-bound, bound, size),
            sign * bound,
            sign,
            sign * _tiny(rng, size, dtype),
            simple,
        ]
    )


# Default category weights: the four branches of manual_bp_reference.strategies.decode_values,
# plus tiny and k/2.
_SIGNED_WEIGHTS = np.array([0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])


def _binary_candidates(rng: np.random.Generator, size: int, dtype: str) -> np.ndarray:
    """Rows: 0, 1, 1/2, uniform [0, 1], tiny (the BCE target domain)."""
    return np.stack(
        [
            np.zeros(size),
            np.ones(size),
            np.full(size, 0.5),
            rng.uniform(0.0, 1.0, size),
            _tiny(rng, size, dtype),
        ]
    )


_BINARY_WEIGHTS = np.array([0.2, 0.2, 0.2, 0.3, 0.1])


def _compose(
    rng: np.random.Generator, shape: tuple[int, ...], candidates: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Pick one candidate per entry: one repeated value, a fill, a mixture or one category."""
    k, size = candidates.shape
    columns = np.arange(size)
    mode = rng.random()
    if mode < 0.15:  # one repeated value (Hypothesis fills arrays this way)
        category = rng.choice(k, p=weights)
        return np.full(shape, candidates[category, 0])
    if mode < 0.30:  # a repeated fill with some entries replaced
        out = np.full(size, candidates[rng.choice(k, p=weights), 0])
        replace = rng.random(size) < rng.uniform(0.0, 0.5)
        picked = candidates[rng.choice(k, size=size, p=weights), columns]
        out[replace] = picked[replace]
        return out.reshape(shape)
    if mode < 0.80:  # a mixture with random category weights
        mixture = rng.dirichlet(np.ones(k))
        return candidates[rng.choice(k, size=size, p=mixture), columns].reshape(shape)
    return candidates[rng.choice(k, p=weights)].reshape(shape)  # one category


def signed_array(
    rng: np.random.Generator, shape: tuple[int, ...], bound: float, dtype: str
) -> np.ndarray:
    """Finite values in ``[-bound, bound]`` as ``manual_bp_reference.strategies.matrices``,
    exact in ``dtype``."""
    size = math.prod(shape)
    candidates = _signed_candidates(rng, size, bound, dtype)
    return _compose(rng, shape, candidates, _SIGNED_WEIGHTS).astype(dtype)


def draw_targets(
    rng: np.random.Generator, loss: str, shape: tuple[int, int], dtype: str, *, hard: bool = False
):
    """Targets in the loss's domain, as ``manual_bp_reference.strategies.targets``; ``hard``:
    labels only (0 or 1, one-hot columns), what code written for labels takes."""
    size = math.prod(shape)
    if hard and loss == "binary_cross_entropy":
        return rng.integers(0, 2, shape).astype(dtype)
    if hard and loss == "cross_entropy":
        return np.eye(shape[0], dtype=dtype)[:, rng.integers(0, shape[0], shape[1])]
    if loss == "binary_cross_entropy":
        candidates = _binary_candidates(rng, size, dtype)
        return _compose(rng, shape, candidates, _BINARY_WEIGHTS).astype(dtype)
    if loss == "cross_entropy":
        n, m = shape
        if rng.random() < 0.5:
            if rng.random() < 0.2:
                labels = np.full(m, rng.integers(0, n))
            else:
                labels = rng.integers(0, n, m)
            return np.eye(n, dtype=dtype)[:, labels]
        weights = np.abs(signed_array(rng, shape, 1.0, "float64"))
        weights[0, weights.sum(axis=0) == 0] = 1.0
        return (weights / weights.sum(axis=0)).astype(dtype)
    return signed_array(rng, shape, INPUT_BOUND, dtype)


def draw_values(
    rng: np.random.Generator, arch: DrawnNet, dtype: str, *, hard_targets: bool = False
):
    """``(params, X, Y)`` for ``arch`` in ``dtype`` (with ``gammal``, ``betal`` and
    the stability cases of a normalized ``arch``); ``hard_targets``: labels only."""
    params = {}
    for l in range(1, len(arch.sizes)):
        params[f"W{l}"] = signed_array(rng, (arch.sizes[l], arch.sizes[l - 1]), PARAM_BOUND, dtype)
        params[f"B{l}"] = signed_array(rng, (arch.sizes[l], 1), PARAM_BOUND, dtype)
        if arch.net.normalization[l - 1]:
            params[f"gamma{l}"] = signed_array(rng, (arch.sizes[l], 1), PARAM_BOUND, dtype)
            params[f"beta{l}"] = signed_array(rng, (arch.sizes[l], 1), PARAM_BOUND, dtype)
    X = signed_array(rng, (arch.sizes[0], arch.m), INPUT_BOUND, dtype)
    Y = draw_targets(rng, arch.net.loss, (arch.sizes[-1], arch.m), dtype, hard=hard_targets)
    if arch.net.normalized:
        X = _stability_case(rng, arch, params, X, dtype)
    return params, X, Y


@dataclass(frozen=True)
class Example:
    """Example ``index`` of the run seeded ``seed``: everything ``verify`` needs."""

    seed: int
    index: int
    arch: DrawnNet
    dtype: str
    params: dict[str, np.ndarray]
    X: np.ndarray
    Y: np.ndarray

    def describe(self) -> str:
        return f"seed {self.seed}, example {self.index}: {self.dtype}, {self.arch.describe()}"

    @property
    def case(self) -> Case:
        """The network and batch, as the oracle side takes them."""
        return Case(self.arch.net, self.params, self.X, self.Y)


def draw_example(
    seed: int,
    index: int,
    *,
    limits: Limits = DEFAULT_LIMITS,
    network: Net | None = None,
    dtypes: tuple[str, ...] = DTYPES,
    hard_targets: bool = False,
) -> Example:
    """Example ``index`` of the run seeded ``seed``, from ``default_rng([seed, index])``.

    The network is drawn (``draw_network``), or is ``network`` (a plain
    ``manual_bp.Net``) with a drawn batch size.  Its dtype is ``dtypes[index % len(dtypes)]``: by
    default even indices are float64, odd ones float32.  ``hard_targets``:
    labels only (``draw_targets``).
    """
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    if network is None:
        arch = draw_network(rng, int(index), limits=limits)
    else:
        arch = draw_batch(rng, int(index), network, limits)
    dtype = dtypes[int(index) % len(dtypes)]
    params, X, Y = draw_values(rng, arch, dtype, hard_targets=hard_targets)
    return Example(int(seed), int(index), arch, dtype, params, X, Y)
