"""Stochastic gradient descent: one step, mini-batches, and a training loop.

Everything here is a pure function: parameters come in and new parameters go
out; no array is written in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from manual_bp.network import backward, batch_loss, forward

Array = np.ndarray
# (params, X, Y, activations, loss) -> grads with at least every key of params.
GradientFunction = Callable[[Mapping[str, Array], Array, Array, Sequence[str], str], Mapping]


def backprop_gradients(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    *,
    normalization: Sequence[str | None] | None = None,
) -> dict[str, Array]:
    """The hand-written gradients of one batch: ``forward``, then ``backward``."""
    _, cache = forward(params, X, activations, normalization=normalization)
    return backward(cache, Y, activations, loss, normalization=normalization)


def sgd_step(
    params: Mapping[str, Array], grads: Mapping[str, Array], learning_rate: float
) -> dict[str, Array]:
    """``Wl <- Wl - lr dWl`` and ``Bl <- Bl - lr dBl`` (and ``gammal``, ``betal``
    of a normalized net), as new arrays."""
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


class TrainingDiverged(FloatingPointError):  # noqa: N818  (reads as an event)
    """Training produced a NaN or inf; ``params`` and ``history`` are the last finite ones."""

    def __init__(self, epoch: int, learning_rate: float, params: dict, history: list[float]):
        super().__init__(
            f"fit: the loss or a parameter became NaN or inf in epoch {epoch} "
            f"(learning_rate={learning_rate}); the parameters are left as they were after "
            f"epoch {epoch - 1}. A smaller learning_rate usually helps."
        )
        self.epoch, self.params, self.history = epoch, params, history


def _all_finite(params: Mapping[str, Array], loss: float) -> bool:
    return bool(np.isfinite(loss)) and all(np.all(np.isfinite(v)) for v in params.values())


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
    gradients: GradientFunction | None = None,
    *,
    normalization: Sequence[str | None] | None = None,
    on_batch: Callable[[Mapping[str, Array]], None] | None = None,
) -> tuple[dict[str, Array], list[float]]:
    """Mini-batch SGD on the hand-written gradients (or on ``gradients``:
    ``reference.autodiff_training`` passes jax.grad's, so both nets train alike).

    Returns the trained parameters and, for each epoch, the mean loss over the
    whole of ``(X, Y)`` at the end of that epoch.  Raises ``TrainingDiverged``
    if an epoch ends with a non-finite loss or parameter.

    A normalized net (``normalization``, as ``forward`` takes it) trains on
    each mini-batch's own statistics, and its epoch loss uses those of the
    whole ``(X, Y)``.  ``on_batch``, if given, is called with each
    mini-batch's training-mode cache before the step (``DNN.fit`` updates its
    running statistics there); ``gradients`` then gets ``normalization=``.
    """
    gradients = gradients or backprop_gradients
    normalized = {"normalization": normalization} if normalization and any(normalization) else {}
    params = dict(params)
    history = []
    for epoch in range(1, epochs + 1):
        start = params
        for columns in minibatch_indices(X.shape[1], batch_size, rng):
            X_batch, Y_batch = X[:, columns], Y[:, columns]
            if on_batch is not None:
                on_batch(forward(params, X_batch, activations, **normalized)[1])
            grads = gradients(params, X_batch, Y_batch, activations, loss, **normalized)
            params = sgd_step(params, grads, learning_rate)
        with np.errstate(over="ignore", invalid="ignore"):
            epoch_loss = float(batch_loss(params, X, Y, activations, loss, **normalized))
        if not _all_finite(params, epoch_loss):
            raise TrainingDiverged(epoch, learning_rate, start, history)
        history.append(epoch_loss)
    return params, history
