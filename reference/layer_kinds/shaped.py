"""Kinds whose arrays keep their own shapes: ``Shapes``, and the ``Draws`` they draw with.

The dense kinds (affine, the activations, the loss heads, batch and layer
norm, dropout) are 2-D: ``x`` is ``(n, m)`` in our columns layout and its
transpose in cs231n's rows, and ``check_layer`` draws ``n``, ``m`` and the
parameters' shapes from them.  A convolution's ``x`` is ``(N, C, H, W)``, an
RNN's ``(N, T, D)``, an embedding's an integer ``(N, T)``: each such kind
draws its own shapes and its own scalars (stride, padding, window, groups),
and is checked in cs231n's layout only, the one every student writes it in
(there is no transposing to do: our arrays are the user's).

``Shapes`` says how such a kind is called and drawn:

* ``call``: the forward's arguments in order, arrays then the rest
  (``("x", "w", "b", "conv_param")``, ``("x", "gamma", "beta", "G",
  "gn_param")``); ``arguments(statics)`` gives the values of the rest from
  the drawn scalars (``{"conv_param": {"stride": 2, "pad": 1}}``);
* ``outputs``: what the forward returns before its cache (``("out",)``,
  ``("next_h", "next_c")``) and so the upstream gradients the backward takes
  before the cache (``dnext_h, dnext_c``);
* ``constants``: arrays the forward takes that have no gradient (an
  embedding's word indices, a loss's labels and mask); the kind's ``inputs``
  are the differentiable ones;
* ``loss``: the kind is one function ``loss(*arrays) -> (loss, dx)``, as a
  loss head;
* ``draw(draws)``: one case, ``Drawn`` (the arrays in the user's layout, the
  scalars, the upstream gradients), from a ``Draws``: Hypothesis's in a
  check, a seeded generator's for the probe the diagnosis runs.

The definition takes the differentiable arrays positionally and the
constants and scalars by keyword (``definition(x, w, b, *, stride, pad)``);
the tolerance and the bugs see all of them in one mapping.  The oracle is
``jax.vjp`` of the definition, compiled for each case's exact shapes and
scalars, unless the kind gives its own ``oracle(inputs, douts)``: a jax
definition proven equal to it, compiled for few shapes (the convolution's:
one ``lax.conv`` of stride 1 on inputs embedded in zeros), or a way to embed
a case in zeros of few shapes, where the definition gives the same values
(``padded``: the recurrent layers' samples, steps, inputs and hidden units).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Array = np.ndarray


class Draws(Protocol):
    """What a shaped kind draws a case with (Hypothesis's, or the probe's generator)."""

    max_batch: int
    max_width: int
    dtype: str

    def integer(self, low: int, high: int, *, probe: int) -> int:
        """An int in ``[low, high]`` (the probe takes ``probe``, clipped there)."""
        ...

    def choice(self, options: Sequence[Any], *, probe: int = 0) -> Any:
        """One of ``options`` (the probe takes ``options[probe]``)."""
        ...

    def values(self, shape: tuple[int, ...], *, ties: bool = False) -> Array:
        """Floats of ``shape`` in the check's bound and dtype; ``ties``: also
        drawn from a few integers, so that equal entries occur (max pooling)."""
        ...

    def labels(self, shape: tuple[int, ...], high: int) -> Array:
        """Integers in ``[0, high)`` (int64), repeats likely."""
        ...

    def mask(self, shape: tuple[int, ...]) -> Array:
        """Booleans, all-True and all-False among them."""
        ...


@dataclass(frozen=True)
class Drawn:
    """One drawn case of a shaped kind: ``arrays`` (the user's layout and
    dtype, constants included), ``statics`` (the drawn scalars) and the
    upstream gradients ``douts`` (one per output; empty for a loss)."""

    arrays: dict[str, Array]
    statics: dict[str, Any]
    douts: tuple[Array, ...] = ()


@dataclass(frozen=True)
class Shapes:
    """How a shaped kind is called and drawn (see the module notes)."""

    call: tuple[str, ...]
    draw: Callable[[Draws], Drawn]
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda statics: {})
    outputs: tuple[str, ...] = ("out",)
    constants: tuple[str, ...] = ()
    loss: bool = False
    oracle: Callable[[Mapping[str, Any], tuple[Array, ...]], dict[str, Array]] | None = None
    padded: Callable[[Mapping[str, Any], tuple[Array, ...]], Padded] | None = None


@dataclass(frozen=True)
class Padded:
    """A case embedded in zeros of bucket shapes (``Shapes.padded``): its
    ``inputs`` and ``douts``, and ``crop(results)``, which takes the oracle's
    outputs and gradients there back to the case's own shapes."""

    inputs: dict[str, Any]
    douts: tuple[Array, ...]
    crop: Callable[[dict[str, Array]], dict[str, Array]]


def bucket(size: int, *, least: int = 4) -> int:
    """The padded size: a power of two, at least ``least`` (few shapes, few compilations)."""
    return max(least, 1 << (size - 1).bit_length())


def embedded(value: Array, shape: tuple[int, ...]) -> Array:
    """``value`` in the corner of a float64 array of zeros of ``shape``."""
    out = np.zeros(shape)
    out[tuple(slice(0, n) for n in np.shape(value))] = value
    return out


@dataclass
class ProbeDraws:
    """The probe's ``Draws``: seeded normal values, the kind's probe choices."""

    dtype: str
    max_batch: int = 8
    max_width: int = 8
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def integer(self, low: int, high: int, *, probe: int) -> int:
        return int(min(max(probe, low), high))

    def choice(self, options: Sequence[Any], *, probe: int = 0) -> Any:
        return options[probe]

    def values(self, shape: tuple[int, ...], *, ties: bool = False) -> Array:
        return self.rng.normal(size=shape).astype(self.dtype)

    def labels(self, shape: tuple[int, ...], high: int) -> Array:
        return self.rng.integers(0, high, size=shape).astype(np.int64)

    def mask(self, shape: tuple[int, ...]) -> Array:
        mask = self.rng.random(size=shape) < 0.7
        mask.flat[0] = True  # something to count
        return mask
