"""The oracle: ``jax.grad`` of manual_bp's own forward function, in float64.

There is no second copy of the model here.  ``manual_bp.network.batch_loss``
is written over an array namespace; the oracle calls it with ``jax.numpy``.
To obtain dL/dZl and dL/dAl, the forward adds zero "taps" to every ``Zl``
(l = 1..L) and ``Al`` (l = 1..L-1); the gradient with respect to a tap is
the gradient with respect to the variable it is added to.  ``A0`` is the
gradient with respect to ``X`` itself.

Whatever the dtype of the manual computation, the oracle casts the same
values (exactly) to float64 and differentiates there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from manual_bp.network import batch_loss  # noqa: E402


@dataclass(frozen=True)
class OracleResult:
    """The float64 loss and its gradients, keyed as ``manual_bp`` keys them."""

    loss: float
    grads: dict[str, np.ndarray]


def _tap_shapes(params: Mapping[str, np.ndarray], m: int, depth: int) -> dict[str, tuple]:
    shapes = {}
    for l in range(1, depth + 1):
        n_l = params[f"W{l}"].shape[0]
        shapes[f"Z{l}"] = (n_l, m)
        if l < depth:
            shapes[f"A{l}"] = (n_l, m)
    return shapes


@partial(jax.jit, static_argnames=("activations", "loss"))
def _value_and_grads(params, taps, X, Y, activations, loss):
    def objective(params, taps, X):
        return batch_loss(params, X, Y, activations, loss, xp=jnp, taps=taps)

    return jax.value_and_grad(objective, argnums=(0, 1, 2))(params, taps, X)


def oracle_gradients(
    params: Mapping[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    activations: Sequence[str],
    loss: str,
    input_gradient: bool = False,
) -> OracleResult:
    """``jax.value_and_grad`` of ``batch_loss`` in float64.

    Returns the loss and the gradient for every key ``manual_bp.backward``
    returns: ``Wl``, ``Bl``, ``Zl`` (l = 1..L), ``Al`` (l = 1..L-1) and, with
    ``input_gradient``, ``A0``.
    """
    depth = len(activations)
    as64 = {key: jnp.asarray(np.asarray(value, dtype=np.float64)) for key, value in params.items()}
    X64 = jnp.asarray(np.asarray(X, dtype=np.float64))
    Y64 = jnp.asarray(np.asarray(Y, dtype=np.float64))
    taps = {key: jnp.zeros(shape) for key, shape in _tap_shapes(as64, X64.shape[1], depth).items()}
    value, (d_params, d_taps, d_X) = _value_and_grads(
        as64, taps, X64, Y64, tuple(activations), loss
    )
    grads = {key: np.asarray(g) for key, g in {**d_params, **d_taps}.items()}
    if input_gradient:
        grads["A0"] = np.asarray(d_X)
    return OracleResult(float(value), grads)
