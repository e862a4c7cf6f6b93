"""Training with ``jax.grad`` gradients instead of the hand-written ones.

The second net of ``manual-bp train``: ``manual_bp.training.fit`` itself (the
same mini-batches for the same generator state, the same optimizer, the
same divergence check), except that each step's ``dWl`` and ``dBl`` come
from the oracle, ``jax.grad`` of
``manual_bp``'s own forward and loss, in float64.  Started from the same
parameters, the two loss curves must coincide up to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from manual_bp.losses import l2_penalty_gradient
from manual_bp.net import Net
from manual_bp.optimizers import State
from manual_bp.training import Hooks, Schedule, UpdateRule, fit
from manual_bp_reference.cases import Case
from manual_bp_reference.oracle import oracle_gradients

Array = np.ndarray


def autodiff_parameter_gradients(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    net: Net,
    *,
    masks: Mapping[str, Array] | None = None,
) -> dict[str, Array]:
    """dL/dWl and dL/dBl (and ``gammal``, ``betal``) for l = 1..L of ``net``
    from ``jax.grad`` (float64), with the dropout ``masks`` and the weight
    decay ``l2 Wl`` (``manual_bp.losses.l2_penalty_gradient``) as ``fit``
    gives them.

    ``X`` is ``(n0, m)`` and ``Y`` is ``(nL, m)``; the result has the keys and
    shapes of ``params``, and their dtype, as the hand-written gradients have
    (the optimizers refuse mixed dtypes rather than upcast silently).
    """
    case = Case(net, params, X, Y, masks=masks or {})
    grads = oracle_gradients(case).grads
    for key in grads:
        if key[0] == "W" and key[1:].isdigit() and net.l2:
            grads[key] = grads[key] + l2_penalty_gradient(
                np.asarray(params[key], np.float64), net.l2
            )
    return {key: grads[key].astype(np.asarray(params[key]).dtype) for key in params}


def autodiff_fit(
    params: Mapping[str, Array],
    X: Array,
    Y: Array,
    net: Net,
    optimizer: UpdateRule | float,
    schedule: Schedule,
    *,
    state: State | None = None,
) -> tuple[dict[str, Array], list[float], State]:
    """``manual_bp.training.fit`` with ``jax.grad`` gradients (the same
    masks for the same generator state).

    ``optimizer`` is a ``manual_bp.optimizers`` optimizer (or
    ``manual_bp_reference.optimizer_oracle.OptaxOptimizer``, optax's step), or a
    learning rate for plain SGD.  Returns the trained parameters, the mean
    loss over ``(X, Y)`` after each epoch and the optimizer's state, as
    ``fit`` does, so the two histories differ only through the gradients
    (and the optimizer's implementation).  Raises ``TrainingDiverged`` as
    ``fit`` does.

    Examples
    --------
    >>> from manual_bp import Net
    >>> from manual_bp.data import xor
    >>> from manual_bp.network import init_params
    >>> from manual_bp.optimizers import Adam
    >>> X, Y = xor(24, seed=0)
    >>> net = Net.of([2, 3, 1], ["tanh", "sigmoid"])
    >>> start = init_params([2, 3, 1], ["tanh", "sigmoid"], seed=0)
    >>> schedule = lambda: Schedule(epochs=3, batch_size=8, rng=np.random.default_rng(0))
    >>> _, manual, _ = fit(start, X, Y, net, Adam(0.05), schedule())
    >>> _, autodiff, _ = autodiff_fit(start, X, Y, net, Adam(0.05), schedule())
    >>> bool(np.allclose(manual, autodiff, rtol=1e-12, atol=0))
    True
    """
    hooks = Hooks(gradients=autodiff_parameter_gradients)
    return fit(params, X, Y, net, optimizer, schedule, state=state, hooks=hooks)
