"""Training: one SGD step, mini-batches, and a training loop with any optimizer.

Everything here is a pure function: parameters (and the optimizer's state)
come in and new ones go out; no array is written in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from manual_bp.architecture import layer_sizes_of
from manual_bp.dropout import draw_masks
from manual_bp.network import backward, batch_loss, forward
from manual_bp.optimizers import SGD, State

Array = np.ndarray


class UpdateRule(Protocol):
    """What ``fit`` steps with: a ``manual_bp.optimizers`` optimizer, or
    anything with its ``learning_rate``, ``init`` and ``update``."""

    @property
    def learning_rate(self) -> float: ...

    def init(self, params: Mapping[str, Array]) -> State: ...

    def update(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array]
    ) -> tuple[dict[str, Array], State]: ...


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
    dropout: Sequence[float] | None = None,
    masks: Mapping[str, Array] | None = None,
    l2: float = 0.0,
) -> dict[str, Array]:
    """The hand-written gradients of one batch: ``forward``, then ``backward``
    (with the batch's dropout ``masks`` and the weight decay ``l2``)."""
    _, cache = forward(
        params, X, activations, normalization=normalization, dropout=dropout, masks=masks
    )
    return backward(cache, Y, activations, loss, normalization=normalization, dropout=dropout,
                    l2=l2)  # fmt: skip


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


def accuracy(out: Array, Y: Array) -> float:
    """The fraction of columns classified right: ``AL > 0.5`` against ``Y > 0.5`` for
    one output, else ``argmax AL`` against ``argmax Y`` (one class per column)."""
    if Y.shape[0] == 1:
        return float(np.mean((out > 0.5) == (Y > 0.5)))
    return float(np.mean(np.argmax(out, axis=0) == np.argmax(Y, axis=0)))


class TrainingDiverged(FloatingPointError):  # noqa: N818  (reads as an event)
    """Training produced a NaN or inf; ``params``, ``state`` (the optimizer's) and
    ``history`` are the last finite ones."""

    def __init__(
        self,
        epoch: int,
        learning_rate: float,
        params: dict,
        history: list[float],
        state: State | None = None,
    ):
        super().__init__(
            f"fit: the loss or a parameter became NaN or inf in epoch {epoch} "
            f"(learning_rate={learning_rate}); the parameters are left as they were after "
            f"epoch {epoch - 1}. A smaller learning_rate usually helps."
        )
        self.epoch, self.params, self.history = epoch, params, history
        self.state = state if state is not None else {}


def _all_finite(params: Mapping[str, Array], loss: float) -> bool:
    return bool(np.isfinite(loss)) and all(np.all(np.isfinite(v)) for v in params.values())


def fit(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    epochs: int,
    optimizer: UpdateRule | float,
    batch_size: int | None,
    rng: np.random.Generator,
    gradients: GradientFunction | None = None,
    callback: Callable[[int, float], object] | None = None,
    state: State | None = None,
    *,
    normalization: Sequence[str | None] | None = None,
    on_batch: Callable[[Mapping[str, Array]], None] | None = None,
    l2: float = 0.0,
    dropout: Sequence[float] | None = None,
) -> tuple[dict[str, Array], list[float], State]:
    """Mini-batch training on the hand-written gradients (or on ``gradients``:
    ``manual_bp_reference.autodiff_training`` passes jax.grad's, so both nets train alike).

    ``optimizer`` is a ``manual_bp.optimizers`` optimizer (or anything with
    its ``init``, ``update`` and ``learning_rate``), or a learning rate for
    plain SGD.  ``state`` is the optimizer's state to continue from
    (default: ``optimizer.init(params)``).  Returns the trained parameters,
    for each epoch the mean loss over the whole of ``(X, Y)`` at its end, and
    the optimizer's final state.  Raises ``TrainingDiverged`` if an epoch ends
    with a non-finite loss or parameter.  ``callback(epoch, loss)`` is called
    after each finite epoch (a progress bar, a log line); this module itself
    prints nothing.

    A normalized net (``normalization``, as ``forward`` takes it) trains on
    each mini-batch's own statistics, and its epoch loss uses those of the
    whole ``(X, Y)``.  ``on_batch``, if given, is called with each
    mini-batch's training-mode cache before the step (``DNN.fit`` updates its
    running statistics there); ``gradients`` then gets ``normalization=``.

    ``l2`` is the weight decay in the loss (``batch_loss``): every step's
    gradients and the epoch losses include it; ``gradients`` then gets
    ``l2=``.  ``dropout`` (one drop probability per layer, as ``forward``
    takes it) trains each mini-batch on masks drawn from ``rng``
    (``manual_bp.dropout.draw_masks``, after that epoch's shuffle), so the
    generator's state fixes every mask; ``gradients`` then gets ``dropout=``
    and ``masks=``.  The epoch loss is taken without masks.
    """
    rule: UpdateRule = SGD(optimizer) if isinstance(optimizer, (int, float)) else optimizer
    gradients = gradients or backprop_gradients
    normalized: dict[str, Any] = (
        {"normalization": normalization} if normalization and any(normalization) else {}
    )
    decayed: dict[str, Any] = {"l2": l2} if l2 else {}
    rates = tuple(dropout) if dropout is not None and any(dropout) else ()
    sizes = layer_sizes_of(params, X, len(activations))
    params = dict(params)
    state = rule.init(params) if state is None else state
    history: list[float] = []
    for epoch in range(1, epochs + 1):
        start, start_state = params, state
        for columns in minibatch_indices(X.shape[1], batch_size, rng):
            X_batch, Y_batch = X[:, columns], Y[:, columns]
            masked: dict[str, Any] = {}
            if rates:
                masks = draw_masks(sizes, X_batch.shape[1], rates, rng, X.dtype)
                masked = {"dropout": rates, "masks": masks}
            if on_batch is not None:
                on_batch(forward(params, X_batch, activations, **normalized, **masked)[1])
            grads = gradients(
                params, X_batch, Y_batch, activations, loss, **normalized, **masked, **decayed
            )
            params, state = rule.update({key: grads[key] for key in params}, state, params)
        with np.errstate(over="ignore", invalid="ignore"):
            epoch_loss = float(batch_loss(params, X, Y, activations, loss, **normalized, **decayed))
        if not _all_finite(params, epoch_loss):
            raise TrainingDiverged(epoch, rule.learning_rate, start, history, start_state)
        history.append(epoch_loss)
        if callback is not None:
            callback(epoch, epoch_loss)
    return params, history, state
