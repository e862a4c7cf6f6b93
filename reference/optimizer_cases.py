"""Hypothesis strategies for optimizer steps: parameter trees, gradient
sequences, optimizers with their conventions and extreme hyperparameters.

An ``OptimizerCase`` is the optimizer, the starting params and state, and
the gradients of several steps.  Values are drawn on a logarithmic scale
(``10^-8`` to ``10^4``) with exact zeros among them, in float32 or float64;
hyperparameters include the extremes where conventions and rounding matter
most: β and ρ of 0 and within 1e-9 of 1, ε down to 1e-30.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from manual_bp.optimizers import SGD, Adam, AdamW, Momentum, Optimizer, RMSProp

Array = np.ndarray

LEARNING_RATES = (1e-4, 1e-3, 0.01, 0.1, 0.5, 1.0)
DECAYS = (0.0, 0.5, 0.9, 0.99, 0.999, 1 - 1e-6, 1 - 1e-9)
EPSILONS = (1e-30, 1e-12, 1e-8, 1e-6, 1e-3)
INITIAL_SCALES = (0.0, 0.1, 1.0)
WEIGHT_DECAYS = (0.0, 1e-4, 0.01, 0.1, 1.0)


@dataclass(frozen=True)
class OptimizerCase:
    """``optimizer`` run from ``params`` and ``state`` over ``gradients`` (one dict per step)."""

    optimizer: Optimizer
    params: dict[str, Array]
    state: dict[str, Any]
    gradients: tuple[dict[str, Array], ...]

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.params.values())).dtype

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints a falsifying case with this: exact, pasteable values."""
        printer.text(repr(self))

    def __repr__(self) -> str:
        with np.printoptions(precision=17, threshold=50):
            return (
                f"OptimizerCase(optimizer={self.optimizer!r},\n  params={self.params!r},\n"
                f"  state={self.state!r},\n  gradients={self.gradients!r})"
            )


def _values(rng: np.random.Generator, shape: tuple[int, ...], low: int, high: int) -> Array:
    """``± 10^uniform(low, high)``, about one entry in six an exact 0."""
    magnitude = 10.0 ** rng.uniform(low, high, size=shape)
    values = np.where(rng.random(shape) < 0.5, -magnitude, magnitude)
    return np.where(rng.random(shape) < 1 / 6, 0.0, values)


def all_optimizers(*, kinds: Sequence[str] | None = None) -> st.SearchStrategy[Optimizer]:
    """Every optimizer with every convention, hyperparameters from the grids above."""
    lr = st.sampled_from(LEARNING_RATES)
    decay, eps = st.sampled_from(DECAYS), st.sampled_from(EPSILONS)
    flag = st.booleans()
    momentum = st.builds(
        lambda lr, mu, nesterov, damp: Momentum(lr, mu, nesterov, 0.0 if nesterov else damp),
        lr,
        decay,
        flag,
        st.sampled_from((0.0, 0.0, 0.5, 0.9, 1.0)),
    )
    adam = dict(b1=decay, b2=decay, eps=eps, eps_root=st.sampled_from((0.0, 0.0, 1e-12, 1e-6)))
    choices = {
        "sgd": st.builds(SGD, lr),
        "momentum": momentum,
        "rmsprop": st.builds(
            RMSProp,
            lr,
            decay=decay,
            eps=eps,
            eps_in_sqrt=flag,
            initial_scale=st.sampled_from(INITIAL_SCALES),
            bias_correction=flag,
        ),
        "adam": st.builds(Adam, lr, **adam, bias_correction=flag),
        "adamw": st.builds(
            AdamW,
            lr,
            **adam,
            bias_correction=flag,
            weight_decay=st.sampled_from(WEIGHT_DECAYS),
            decay_biases=flag,
            decay_scaled_by_lr=flag,
        ),
    }
    return st.one_of([choices[kind] for kind in (kinds or choices)])


def parameter_trees(
    draw: st.DrawFn, dtype: np.dtype, rng: np.random.Generator, max_depth: int, max_width: int
) -> dict[str, Array]:
    """``W1, B1, ..., WL, BL`` of a random network, 1 <= L <= max_depth, widths
    1 to ``max_width``."""
    sizes = draw(st.lists(st.integers(1, max_width), min_size=2, max_size=max_depth + 1))
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = _values(rng, (sizes[l], sizes[l - 1]), -3, 1).astype(dtype)
        params[f"B{l}"] = _values(rng, (sizes[l], 1), -3, 1).astype(dtype)
    return params


def _warm_state(
    optimizer: Optimizer, params: dict[str, Array], rng: np.random.Generator
) -> dict[str, Any]:
    """A state as if some steps had been taken: ``t`` up to 1000, ``m`` any sign,
    ``v >= 0``."""
    state = optimizer.init(params)
    if "t" in state:
        state["t"] = int(rng.integers(0, 1000))
    for slot in optimizer.SLOTS:
        for key, value in params.items():
            drawn = _values(rng, value.shape, -8, 4)
            state[slot][key] = (np.abs(drawn) ** 2 if slot == "v" else drawn).astype(value.dtype)
    return state


@st.composite
def optimizer_cases(
    draw: st.DrawFn,
    *,
    optimizers: st.SearchStrategy[Optimizer] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    max_steps: int = 4,
    warm: bool = True,
    max_depth: int = 3,
    max_width: int = 4,
) -> OptimizerCase:
    """An optimizer (from ``optimizers``, default every one), a parameter tree,
    a starting state (``init``'s, or with ``warm`` sometimes a warm one) and 1
    to ``max_steps`` steps of gradients."""
    optimizer = draw(optimizers if optimizers is not None else all_optimizers())
    dtype = np.dtype(draw(st.sampled_from(tuple(dtypes))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = parameter_trees(draw, dtype, rng, max_depth, max_width)
    if warm and draw(st.booleans()):
        state = _warm_state(optimizer, params, rng)
    else:
        state = optimizer.init(params)
    steps = draw(st.integers(1, max_steps))
    gradients = tuple(
        {key: _values(rng, value.shape, -8, 4).astype(dtype) for key, value in params.items()}
        for _ in range(steps)
    )
    return OptimizerCase(optimizer, params, state, gradients)
