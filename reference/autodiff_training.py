"""Training with ``jax.grad`` gradients instead of the hand-written ones.

The second net of ``manual-bp train``: ``manual_bp.training.fit`` itself (the
same mini-batches for the same generator state, the same optimizer, the
same divergence check), except that each step's ``dWl`` and ``dBl`` come
from the oracle, ``jax.grad`` of
``manual_bp``'s own forward and loss, in float64.  Started from the same
parameters, the two loss curves must coincide up to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from manual_bp.losses import l2_penalty_gradient
from manual_bp.optimizers import State
from manual_bp.training import UpdateRule, fit
from manual_bp_reference.cases import Case
from manual_bp_reference.oracle import oracle_gradients

Array = np.ndarray


def autodiff_parameter_gradients(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    *,
    normalization: Sequence[str | None] = (),
    dropout: Sequence[float] = (),
    masks: Mapping[str, Array] | None = None,
    l2: float = 0.0,
) -> dict[str, Array]:
    """dL/dWl and dL/dBl (and ``gammal``, ``betal``) for l = 1..L from
    ``jax.grad`` (float64), with the dropout ``masks`` and the weight decay
    ``l2 Wl`` (``manual_bp.losses.l2_penalty_gradient``) as ``fit`` gives them.

    ``X`` is ``(n0, m)`` and ``Y`` is ``(nL, m)``; the result has the keys and
    shapes of ``params``, and their dtype, as the hand-written gradients have
    (the optimizers refuse mixed dtypes rather than upcast silently).
    """
    case = Case(
        params, X, Y, activations, loss, normalization=tuple(normalization),
        dropout=tuple(dropout), masks=masks or {},
    )  # fmt: skip
    grads = oracle_gradients(case).grads
    for key in grads:
        if key[0] == "W" and key[1:].isdigit() and l2:
            grads[key] = grads[key] + l2_penalty_gradient(np.asarray(params[key], np.float64), l2)
    return {key: grads[key].astype(np.asarray(params[key]).dtype) for key in params}


def autodiff_fit(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    activations: Sequence[str],
    loss: str,
    *,
    epochs: int,
    optimizer: UpdateRule | float,
    batch_size: int | None,
    rng: np.random.Generator,
    state: State | None = None,
    normalization: Sequence[str | None] | None = None,
    l2: float = 0.0,
    dropout: Sequence[float] | None = None,
) -> tuple[dict[str, Array], list[float], State]:
    """``manual_bp.training.fit`` with ``jax.grad`` gradients (``normalization``,
    ``l2`` and ``dropout`` as ``fit`` takes them: the same masks for the same
    generator state).

    ``optimizer`` is a ``manual_bp.optimizers`` optimizer (or
    ``manual_bp_reference.optimizer_oracle.OptaxOptimizer``, optax's step), or a
    learning rate for plain SGD.  Returns the trained parameters, the mean
    loss over ``(X, Y)`` after each epoch and the optimizer's state, as
    ``fit`` does, so the two histories differ only through the gradients
    (and the optimizer's implementation).  Raises ``TrainingDiverged`` as
    ``fit`` does.

    Examples
    --------
    >>> from manual_bp.data import xor
    >>> from manual_bp.network import init_params
    >>> from manual_bp.optimizers import Adam
    >>> X, Y = xor(24, seed=0)
    >>> start = init_params([2, 3, 1], ["tanh", "sigmoid"], seed=0)
    >>> args = (X, Y, ["tanh", "sigmoid"], "binary_cross_entropy")
    >>> _, manual, _ = fit(start, *args, 3, Adam(0.05), 8, np.random.default_rng(0))
    >>> options = dict(epochs=3, optimizer=Adam(0.05), batch_size=8)
    >>> _, autodiff, _ = autodiff_fit(start, *args, **options, rng=np.random.default_rng(0))
    >>> bool(np.allclose(manual, autodiff, rtol=1e-12, atol=0))
    True
    """
    return fit(
        params, X, Y, activations, loss, epochs, optimizer, batch_size, rng,
        gradients=autodiff_parameter_gradients, state=state, normalization=normalization,
        l2=l2, dropout=dropout,
    )  # fmt: skip
