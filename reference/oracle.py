"""The oracle: ``jax.grad`` of manual_bp's own forward function, in float64.

``manual_bp.network.forward_xp`` and the losses are written over an array
namespace; the oracle calls them with ``jax.numpy``.  To obtain dL/dZl and
dL/dAl, the forward adds zero "taps" to every ``Zl`` (l = 1..L) and ``Al``
(l = 1..L-1) (``manual_bp.architecture.tap_shapes``); the gradient with
respect to a tap is the gradient with respect to the variable it is added to.
``A0`` is the gradient with respect to ``X`` itself.

Whatever the dtype of the manual computation, the oracle casts the same
values (exactly) to float64 and differentiates there.

There are two copies of the forward wiring on this side (see
``manual_bp.network`` for the full list): this module differentiates the
definition itself, and by default a small case (widths up to 64, batch up to
256) goes through the padded oracle (``manual_bp_reference.padding``), the same
activations and losses in a ``lax.scan`` over a bucket shape, so that one
compiled function serves every network of the bucket instead of one
compilation per shape.  ``property_tests/test_padded_oracle.py`` proves the
two agree.  ``padded=True`` or ``False`` forces the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from manual_bp.architecture import tap_shapes
from manual_bp.network import forward_xp, loss_from_cache
from manual_bp_reference.cases import Case
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.padding import padded_oracle, worth_padding


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


@partial(jax.jit, static_argnames=("net",))
def _value_and_grads(params, X, Y, net, masks=None):
    depth = net.depth
    shapes = tap_shapes(net.layer_sizes, X.shape[1], normalization=net.normalization)
    taps = {key: jnp.zeros(shape) for key, shape in shapes.items()}

    def objective(params, taps, X):
        # The case's own masks: inputs, not differentiated.
        _, cache = forward_xp(params, X, net, xp=jnp, taps=taps, masks=masks)
        Zs = {f"Z{l}": cache[f"Z{l}"] for l in range(1, depth + 1)}
        return loss_from_cache(cache, Y, net.loss, depth, xp=jnp), Zs

    (value, Zs), grads = jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True)(
        params, taps, X
    )
    return value, Zs, grads


def oracle_gradients(
    case: Case, *, input_gradient: bool = False, padded: bool | None = None
) -> OracleResult:
    """``jax.value_and_grad`` of manual_bp's forward and loss, in float64.

    Returns the loss, the gradient for every key ``manual_bp.network.backward``
    returns (``Wl``, ``Bl``, ``Zl`` for l = 1..L, ``Al`` for l = 1..L-1 and,
    with ``input_gradient``, ``A0``) and the oracle's forward ``Zl``; a
    normalized case adds ``gammal``, ``betal`` and the taps ``mul``,
    ``varl``, ``Zhatl``, ``Nl`` (what the staged backward returns).
    A case with dropout runs ``forward_xp`` with its own masks (inputs,
    not differentiated; ``Al`` is tapped after the mask).  The weight decay
    ``case.l2`` is not in this loss: ``manual_bp_reference.compare.with_objective``
    adds its exact gradient ``l2 Wl`` and the rounding of adding it.
    ``padded=True`` runs the case in its bucket (``manual_bp_reference.padding``),
    ``False`` compiles the case's own shapes, ``None`` pads small cases only
    (``manual_bp_reference.padding.worth_padding``).
    """
    if padded is None:
        padded = worth_padding(case.layer_sizes, case.m)
    if padded:
        value, grads, Zs = padded_oracle(case)
        if not input_gradient:
            del grads["A0"]
        return OracleResult(value, grads, Zs)
    as64 = {key: np.asarray(value, dtype=np.float64) for key, value in case.params.items()}
    X64, Y64 = np.asarray(case.X, dtype=np.float64), np.asarray(case.Y, dtype=np.float64)
    masks64 = {key: np.asarray(mask, dtype=np.float64) for key, mask in case.masks.items()}
    # The decay is not in this loss: one compilation serves every l2.
    net = replace(case.net, l2=0.0)
    result = _value_and_grads(as64, X64, Y64, net, masks=masks64 or None)
    value, Zs, (d_params, d_taps, d_X) = jax.device_get(result)
    grads = {**d_params, **d_taps}
    if input_gradient:
        grads["A0"] = d_X
    return OracleResult(float(value), grads, Zs)
