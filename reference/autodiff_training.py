"""Training with ``jax.grad`` gradients instead of the hand-written ones.

The second net of ``manual-bp train``: ``manual_bp.training.fit`` itself (the
same mini-batches for the same generator state, the same ``sgd_step``, the
same divergence check), except that each step's ``dWl`` and ``dBl`` come
from the oracle, ``jax.grad`` of
``manual_bp``'s own forward and loss, in float64.  Started from the same
parameters, the two loss curves must coincide up to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from manual_bp.training import fit
from reference.cases import Case
from reference.oracle import oracle_gradients

Array = np.ndarray


def autodiff_parameter_gradients(
    params: Mapping[str, Array], X: Array, Y: Array, activations: Sequence[str], loss: str
) -> dict[str, Array]:
    """dL/dWl and dL/dBl for l = 1..L from ``jax.grad`` (float64).

    ``X`` is ``(n0, m)`` and ``Y`` is ``(nL, m)``; the result has the keys and
    shapes of ``params``.
    """
    grads = oracle_gradients(Case(params, X, Y, activations, loss)).grads
    return {key: grads[key] for key in params}


def autodiff_fit(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int | None,
    rng: np.random.Generator,
) -> tuple[dict[str, Array], list[float]]:
    """``manual_bp.training.fit`` with ``jax.grad`` gradients.

    Returns the trained parameters and the mean loss over ``(X, Y)`` after
    each epoch, as ``fit`` does, so the two histories differ only through the
    gradients.  Raises ``TrainingDiverged`` as ``fit`` does.

    Examples
    --------
    >>> from manual_bp.data import xor
    >>> from manual_bp.network import init_params
    >>> X, Y = xor(24, seed=0)
    >>> start = init_params([2, 3, 1], ["tanh", "sigmoid"], seed=0)
    >>> args = (X, Y, ["tanh", "sigmoid"], "binary_cross_entropy")
    >>> _, manual = fit(start, *args, 3, 0.5, 8, np.random.default_rng(0))
    >>> options = dict(epochs=3, learning_rate=0.5, batch_size=8)
    >>> _, autodiff = autodiff_fit(start, *args, **options, rng=np.random.default_rng(0))
    >>> bool(np.allclose(manual, autodiff, rtol=1e-12, atol=0))
    True
    """
    return fit(
        params, X, Y, activations, loss, epochs, learning_rate, batch_size, rng,
        gradients=autodiff_parameter_gradients,
    )  # fmt: skip
