"""Stochastic gradient descent: one step, mini-batches, and a training loop.

Everything here is a pure function: parameters come in and new parameters go
out; no array is written in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from manual_bp.network import backward, batch_loss, forward

Array = np.ndarray


def sgd_step(
    params: Mapping[str, Array], grads: Mapping[str, Array], learning_rate: float
) -> dict[str, Array]:
    """``Wl <- Wl - lr dWl`` and ``Bl <- Bl - lr dBl``, as new arrays."""
    return {key: value - learning_rate * grads[key] for key, value in params.items()}


def minibatch_indices(
    m: int, batch_size: int | None, rng: np.random.Generator
) -> Iterator[Array | slice]:
    """Column indices of each mini-batch of one epoch.

    ``batch_size=None`` (or ``>= m``) gives the whole batch, unshuffled, as one
    slice.  Otherwise the columns are shuffled by ``rng`` and cut into batches
    of ``batch_size``; the last one holds the remainder.
    """
    if batch_size is None or batch_size >= m:
        yield slice(None)
        return
    order = rng.permutation(m)
    for start in range(0, m, batch_size):
        yield order[start : start + batch_size]


def fit(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    epochs: int,
    learning_rate: float,
    batch_size: int | None,
    rng: np.random.Generator,
) -> tuple[dict[str, Array], list[float]]:
    """Mini-batch SGD on the hand-written gradients.

    Returns the trained parameters and, for each epoch, the mean loss over the
    whole of ``(X, Y)`` at the end of that epoch.
    """
    params = dict(params)
    history = []
    for _ in range(epochs):
        for columns in minibatch_indices(X.shape[1], batch_size, rng):
            Y_batch = Y[:, columns]
            _, cache = forward(params, X[:, columns], activations)
            params = sgd_step(params, backward(cache, Y_batch, activations, loss), learning_rate)
        history.append(float(batch_loss(params, X, Y, activations, loss)))
    return params, history
