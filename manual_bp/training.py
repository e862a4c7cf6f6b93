"""Training: one SGD step, mini-batches, and a training loop with any optimizer.

Everything here is a pure function: parameters (and the optimizer's state)
come in and new ones go out; no array is written in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from manual_bp.dropout import draw_masks
from manual_bp.net import Net
from manual_bp.network import backward, batch_loss, forward
from manual_bp.optimizers import SGD, State
from manual_bp.validation import check_positive_int

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


# (params, X, Y, net, masks=...) -> grads with at least every key of params.
GradientFunction = Callable[..., Mapping[str, Array]]


def backprop_gradients(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    net: Net,
    *,
    masks: Mapping[str, Array] | None = None,
) -> dict[str, Array]:
    """The hand-written gradients of one batch: ``forward``, then ``backward``
    (with the batch's dropout ``masks``; the net's weight decay included)."""
    _, cache = forward(params, X, net, masks=masks)
    return backward(cache, Y, net)


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


@dataclass(frozen=True)
class Schedule:
    """How ``fit`` goes through the data: ``epochs`` passes, each in
    mini-batches of ``batch_size`` columns (``None``: the whole batch, one
    step an epoch) shuffled by ``rng``, which also draws the dropout masks,
    so its state fixes every step."""

    epochs: int
    batch_size: int | None
    rng: np.random.Generator

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs", minimum=0)
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        if not isinstance(self.rng, np.random.Generator):
            raise TypeError(
                "rng: expected a numpy.random.Generator (np.random.default_rng(seed)), "
                f"got {type(self.rng).__name__}"
            )


@dataclass(frozen=True)
class Hooks:
    """Where ``fit`` calls out, each optional.

    ``gradients(params, X, Y, net, masks=...)`` replaces the hand-written
    gradients (``manual_bp_reference.autodiff_training`` passes jax.grad's,
    so both nets train alike); ``on_batch(cache)`` gets each mini-batch's
    training-mode cache before the step (``DNN.fit`` updates its running
    statistics there); ``on_epoch(epoch, loss)`` is called after each finite
    epoch (a progress bar, a log line).
    """

    gradients: GradientFunction | None = None
    on_batch: Callable[[Mapping[str, Array]], None] | None = None
    on_epoch: Callable[[int, float], object] | None = None


def fit(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    net: Net,
    optimizer: UpdateRule | float,
    schedule: Schedule,
    *,
    state: State | None = None,
    hooks: Hooks = Hooks(),  # frozen: one shared empty value is safe
) -> tuple[dict[str, Array], list[float], State]:
    """Mini-batch training of ``net`` on the hand-written gradients.

    ``optimizer`` is a ``manual_bp.optimizers`` optimizer (or anything with
    its ``init``, ``update`` and ``learning_rate``), or a learning rate for
    plain SGD.  ``schedule`` says the epochs, the batch size and the
    generator; ``state`` is the optimizer's state to continue from
    (default: ``optimizer.init(params)``).  Returns the trained parameters,
    for each epoch the mean loss over the whole of ``(X, Y)`` at its end, and
    the optimizer's final state.  Raises ``TrainingDiverged`` if an epoch ends
    with a non-finite loss or parameter.  ``hooks`` replace the gradients or
    are told of each batch and epoch; this module itself prints nothing.

    A normalized net trains on each mini-batch's own statistics, and its
    epoch loss uses those of the whole ``(X, Y)``.  Every step's gradients
    and the epoch losses include the net's weight decay ``net.l2``
    (``batch_loss``).  A net with dropout trains each mini-batch on masks
    drawn from ``schedule.rng`` (``manual_bp.dropout.draw_masks``, after that
    epoch's shuffle), so the generator's state fixes every mask; the
    gradients get them as ``masks=``.  The epoch loss is taken without masks
    (``net.without_dropout()``).
    """
    rule: UpdateRule = SGD(optimizer) if isinstance(optimizer, (int, float)) else optimizer
    gradients = hooks.gradients or backprop_gradients
    rng = schedule.rng
    inference = net.without_dropout()
    sizes = net.layer_sizes
    params = dict(params)
    state = rule.init(params) if state is None else state
    history: list[float] = []
    for epoch in range(1, schedule.epochs + 1):
        start, start_state = params, state
        for columns in minibatch_indices(X.shape[1], schedule.batch_size, rng):
            X_batch, Y_batch = X[:, columns], Y[:, columns]
            masked: dict[str, Any] = {}
            if net.dropped:
                masked["masks"] = draw_masks(sizes, X_batch.shape[1], net.dropout, rng, X.dtype)
            if hooks.on_batch is not None:
                hooks.on_batch(forward(params, X_batch, net, **masked)[1])
            grads = gradients(params, X_batch, Y_batch, net, **masked)
            params, state = rule.update({key: grads[key] for key in params}, state, params)
        with np.errstate(over="ignore", invalid="ignore"):
            epoch_loss = float(batch_loss(params, X, Y, inference))
        if not _all_finite(params, epoch_loss):
            raise TrainingDiverged(epoch, rule.learning_rate, start, history, start_state)
        history.append(epoch_loss)
        if hooks.on_epoch is not None:
            hooks.on_epoch(epoch, epoch_loss)
    return params, history, state
