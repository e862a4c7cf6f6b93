"""Training with ``jax.grad`` gradients instead of the hand-written ones.

The second net of ``manual-bp train``: the same mini-batch SGD as
``manual_bp.training.fit`` (the same ``minibatch_indices`` and ``sgd_step``,
so the same order of mini-batches for the same generator state), except that
each step's ``dWl`` and ``dBl`` come from the oracle, ``jax.grad`` of
``manual_bp``'s own forward and loss, in float64.  Started from the same
parameters, the two loss curves must coincide up to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from manual_bp.network import batch_loss
from manual_bp.training import minibatch_indices, sgd_step
from reference.oracle import oracle_gradients

Array = np.ndarray


def autodiff_parameter_gradients(
    params: Mapping[str, Array], X: Array, Y: Array, activations: Sequence[str], loss: str
) -> dict[str, Array]:
    """dL/dWl and dL/dBl for l = 1..L from ``jax.grad`` (float64).

    ``X`` is ``(n0, m)`` and ``Y`` is ``(nL, m)``; the result has the keys and
    shapes of ``params``.
    """
    grads = oracle_gradients(params, X, Y, activations, loss).grads
    return {key: grads[key] for key in params}


def autodiff_epoch(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    learning_rate: float,
    batch_size: int | None,
    rng: np.random.Generator,
) -> dict[str, Array]:
    """One epoch of mini-batch SGD on ``jax.grad`` gradients; returns the new params.

    The mini-batches are those of ``manual_bp.training.minibatch_indices`` for
    ``rng``, and each step is ``sgd_step``: ``Wl <- Wl - lr dWl``.
    """
    params = dict(params)
    for columns in minibatch_indices(X.shape[1], batch_size, rng):
        grads = autodiff_parameter_gradients(
            params, X[:, columns], Y[:, columns], activations, loss
        )
        params = sgd_step(params, grads, learning_rate)
    return params


def autodiff_fit(
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
    """``manual_bp.training.fit`` with ``jax.grad`` gradients.

    Returns the trained parameters and the mean loss over ``(X, Y)`` after
    each epoch, computed by ``manual_bp.network.batch_loss`` as ``fit`` does,
    so the two histories differ only through the gradients.

    Examples
    --------
    >>> from manual_bp.data import xor
    >>> from manual_bp.network import init_params
    >>> from manual_bp.training import fit
    >>> X, Y = xor(24, seed=0)
    >>> start = init_params([2, 3, 1], ["tanh", "sigmoid"], seed=0)
    >>> args = (X, Y, ["tanh", "sigmoid"], "binary_cross_entropy", 3, 0.5, 8)
    >>> _, manual = fit(start, *args, np.random.default_rng(0))
    >>> _, autodiff = autodiff_fit(start, *args, np.random.default_rng(0))
    >>> bool(np.allclose(manual, autodiff, rtol=1e-12, atol=0))
    True
    """
    history = []
    for _ in range(epochs):
        params = autodiff_epoch(params, X, Y, activations, loss, learning_rate, batch_size, rng)
        history.append(float(batch_loss(params, X, Y, activations, loss)))
    return dict(params), history
