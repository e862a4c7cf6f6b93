"""The oracle: ``jax.grad`` of manual_bp's own forward function, in float64.

There is no second copy of the model here.  ``manual_bp.network.forward``
and the loss are written over an array namespace; the oracle calls them with
``jax.numpy``.
To obtain dL/dZl and dL/dAl, the forward adds zero "taps" to every ``Zl``
(l = 1..L) and ``Al`` (l = 1..L-1); the gradient with respect to a tap is
the gradient with respect to the variable it is added to.  ``A0`` is the
gradient with respect to ``X`` itself.

Whatever the dtype of the manual computation, the oracle casts the same
values (exactly) to float64 and differentiates there.

By default a small case (widths up to 64, batch up to 256) is zero-padded to
a bucket shape first (``reference.padding``), so that one compiled function
serves every network of the bucket instead of one compilation per shape;
larger cases compile their own shapes.  ``padded=True`` or ``False`` forces
the choice, as ``property_tests/test_padded_oracle.py`` and
``benchmarks/throughput.py`` do to compare the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from manual_bp.network import forward, loss_from_cache  # noqa: E402
from reference.padding import layer_sizes, padded_oracle, worth_padding  # noqa: E402


@dataclass(frozen=True)
class OracleResult:
    """The float64 loss and its gradients, keyed as ``manual_bp`` keys them.

    ``Z`` holds the oracle's own forward ``Zl``: where one lies on the other
    side of a kink than the manual ``Zl``, the two sides legitimately take
    different one-sided derivatives.
    """

    loss: float
    grads: dict[str, np.ndarray]
    Z: dict[str, np.ndarray]


@partial(jax.jit, static_argnames=("activations", "loss"))
def _value_and_grads(params, X, Y, activations, loss):
    depth, m = len(activations), X.shape[1]
    taps = {}
    for l in range(1, depth + 1):
        taps[f"Z{l}"] = jnp.zeros((params[f"W{l}"].shape[0], m))
        if l < depth:
            taps[f"A{l}"] = jnp.zeros((params[f"W{l}"].shape[0], m))

    def objective(params, taps, X):
        _, cache = forward(params, X, activations, xp=jnp, taps=taps)
        Zs = {f"Z{l}": cache[f"Z{l}"] for l in range(1, depth + 1)}
        return loss_from_cache(cache, Y, loss, depth, xp=jnp), Zs

    (value, Zs), grads = jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True)(
        params, taps, X
    )
    return value, Zs, grads


def oracle_gradients(
    params: Mapping[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    activations: Sequence[str],
    loss: str,
    input_gradient: bool = False,
    padded: bool | None = None,
) -> OracleResult:
    """``jax.value_and_grad`` of manual_bp's forward and loss, in float64.

    Returns the loss, the gradient for every key ``manual_bp.backward``
    returns (``Wl``, ``Bl``, ``Zl`` for l = 1..L, ``Al`` for l = 1..L-1 and,
    with ``input_gradient``, ``A0``) and the oracle's forward ``Zl``.
    ``padded=True`` runs the case in its bucket (``reference.padding``),
    ``False`` compiles the case's own shapes, ``None`` pads small cases only
    (``reference.padding.worth_padding``).
    """
    if padded is None:
        padded = worth_padding(layer_sizes(params, X, len(activations)), np.shape(X)[1])
    if padded:
        value, grads, Zs = padded_oracle(params, X, Y, activations, loss)
        if not input_gradient:
            del grads["A0"]
        return OracleResult(value, grads, Zs)
    as64 = {key: np.asarray(value, dtype=np.float64) for key, value in params.items()}
    X64, Y64 = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    result = _value_and_grads(as64, X64, Y64, tuple(activations), loss)
    value, Zs, (d_params, d_taps, d_X) = jax.device_get(result)
    grads = {**d_params, **d_taps}
    if input_gradient:
        grads["A0"] = d_X
    return OracleResult(float(value), grads, Zs)
