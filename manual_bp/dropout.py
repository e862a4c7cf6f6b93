"""Inverted dropout on hidden layers, forward and backward, by hand.

An optional step after a hidden layer's activation, with drop probability
``pl`` (``0 <= pl < 1``) and a mask ``Ml`` of zeros and ones (the course's
``D1``; each entry is 1, "kept", with probability ``1 - pl``)::

    Fl = f_l(Zl)                       (nl, m)   the activation, before the mask
    Al = Fl ⊙ Ml / (1 − pl)            (nl, m)   what layer l + 1 reads

Dividing by the keep probability ``1 − pl`` ("inverted" dropout) keeps the
expected value of ``Al`` that of ``Fl``, so inference (no mask) needs no
rescaling.  The backward pass multiplies by the *same* mask::

    dFl = dAl ⊙ Ml / (1 − pl)
    dZl = f_l'(Zl)^T dFl              f_l' reads Fl, not the masked Al

The mask is an input of the forward pass, never drawn inside it: the cache
holds it (``Ml``, with ``Fl``), the backward reads it from there, and the
oracle differentiates the same ``forward_xp`` with the same mask.
``draw_masks`` draws masks from a seeded ``numpy.random.Generator`` (or a
seed), so a run is reproducible; ``DNN`` draws them from its own generator,
one set per training step.  The output layer has no dropout.

Rounding: ``Fl ⊙ Ml`` is exact (each entry is kept or zeroed) and the
division by ``1 − pl`` rounds once; both sides compute ``(Fl ⊙ Ml) / (1 − pl)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import cast

import numpy as np

from manual_bp.validation import check_shape

Array = np.ndarray
Rates = tuple[float, ...]


def resolve(dropout: object, depth: int) -> Rates:
    """One drop probability per layer, the output layer's 0.0.

    ``dropout`` is ``None`` (none), one probability for every hidden layer,
    or a sequence of ``L - 1`` of them, one per hidden layer, each in [0, 1).

    >>> resolve(0.5, 3)
    (0.5, 0.5, 0.0)
    >>> resolve([0.0, 0.25], 3)
    (0.0, 0.25, 0.0)
    >>> resolve(None, 2)
    (0.0, 0.0)
    """
    if dropout is None:
        rates: list[object] = [0.0] * (depth - 1)
    elif isinstance(dropout, Real) and not isinstance(dropout, bool):
        rates = [dropout] * (depth - 1)
    elif isinstance(dropout, Sequence) and not isinstance(dropout, str):
        rates = list(dropout)
        if len(rates) != depth - 1:
            raise ValueError(
                f"dropout: expected one probability per hidden layer ({depth - 1}), "
                f"got {len(rates)}: {rates!r}"
            )
    else:
        raise TypeError(
            "dropout: expected None, a drop probability in [0, 1) or a list of them per "
            f"hidden layer, got {type(dropout).__name__} {dropout!r}"
        )
    checked = []
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, Real) or not 0 <= float(rate) < 1:
            raise ValueError(f"dropout: expected drop probabilities in [0, 1), got {rate!r}")
        checked.append(float(rate))
    return (*checked, 0.0)


def check_rates(dropout: Sequence[float], depth: int) -> Rates:
    """``dropout`` as the functional core takes it: one drop probability per
    layer, each in [0, 1), the output layer's 0 (``ValueError`` otherwise)."""
    rates = tuple(dropout)
    if len(rates) != depth or rates[-1] != 0 or resolve(list(rates[:-1]), depth) != rates:
        raise ValueError(
            f"dropout: expected one drop probability in [0, 1) per layer ({depth}), the "
            f"output layer's 0 (manual_bp.dropout.resolve), got {list(rates)!r}"
        )
    return rates


def rate_of(dropout: Sequence[float] | None, l: int) -> float:
    """Layer ``l``'s drop probability (0.0 without dropout)."""
    return float(dropout[l - 1]) if dropout else 0.0


def mask_shapes(layer_sizes: Sequence[int], m: int, dropout: Sequence[float]) -> dict[str, tuple]:
    """``Ml: (nl, m)`` for every layer with a drop probability above 0."""
    return {
        f"M{l}": (layer_sizes[l], m) for l in range(1, len(layer_sizes)) if rate_of(dropout, l) > 0
    }


def draw_masks(
    layer_sizes: Sequence[int],
    m: int,
    dropout: Sequence[float],
    rng: np.random.Generator | int,
    dtype: np.dtype | str = "float64",
) -> dict[str, Array]:
    """A mask ``Ml`` of zeros and ones per dropped layer: 1 with probability ``1 − pl``.

    ``rng`` is a ``numpy.random.Generator`` (advanced by the draw) or a seed.
    The same generator state gives the same masks.

    >>> draw_masks([2, 4, 1], 3, (0.5, 0.0), rng=0)["M1"]
    array([[1., 0., 0.],
           [0., 1., 1.],
           [1., 1., 1.],
           [1., 1., 0.]])
    """
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, bool) or not isinstance(rng, int) or rng < 0:
            raise TypeError(f"rng: expected a numpy.random.Generator or a seed >= 0, got {rng!r}")
        rng = np.random.default_rng(rng)
    return {
        key: (rng.random(shape) >= rate_of(dropout, int(key[1:]))).astype(dtype)
        for key, shape in mask_shapes(layer_sizes, m, dropout).items()
    }


def check_masks(
    masks: Mapping[str, object] | None,
    layer_sizes: Sequence[int],
    m: int,
    dropout: Sequence[float],
    *,
    values: bool = True,
) -> dict[str, Array]:
    """The masks a forward pass with ``dropout`` needs: every ``Ml``, of shape
    ``(nl, m)``, zeros and ones only, and no other key (``ValueError`` naming
    the mask otherwise).

    ``values=False`` checks the keys and the shapes only, and returns the
    masks as given: jax's traced masks have a shape but no values to read.
    """
    if dropout:
        check_rates(dropout, len(layer_sizes) - 1)
    expected = mask_shapes(layer_sizes, m, dropout)
    given = {} if masks is None else dict(masks)
    if set(given) != set(expected):
        raise ValueError(
            f"masks: expected {sorted(expected)} for dropout={list(dropout)!r} "
            "(draw them with manual_bp.dropout.draw_masks; inference drops nothing: "
            f"net.without_dropout()), got {sorted(map(str, given))}"
        )
    checked = {}
    for key, shape in expected.items():
        mask = np.asarray(given[key]) if values else cast(Array, given[key])  # a jax array
        check_shape(mask, f"masks[{key!r}]", shape)  # with a transposition hint
        if values and not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"masks[{key!r}]: expected zeros and ones only")
        checked[key] = mask
    return checked


def apply(F: Array, M: Array, rate: float) -> Array:
    """``Al = Fl ⊙ Ml / (1 − pl)`` (over any array namespace: operators only)."""
    return (F * M) / (1 - rate)


def backward(dA: Array, M: Array, rate: float) -> Array:
    """``dFl = dAl ⊙ Ml / (1 − pl)``: the same mask, the same scaling."""
    return (dA * M) / (1 - rate)
