"""The layer kinds ``check_layer`` knows: one ``LayerKind`` value each, registered.

A layer kind carries every fact the check needs about one cs231n-style layer
function pair, ``forward(*inputs[, param]) -> (out, cache)`` and
``backward(dout, cache) -> grads`` (or a loss head ``loss(x, y) -> (loss,
dx)``), side by side:

* its signature: the forward's ``inputs`` and the backward's ``grads``, in
  order (``("x", "w", "b")`` and ``("dx", "dw", "db")``), the ``param`` dict a
  forward also takes, and the cache a missing forward gives (cs231n's ``(x, w,
  b)``);
* its **definition** over ``jax.numpy``, in our columns layout: the function
  ``jax.vjp`` differentiates (``manual_bp_reference.layer_check.oracle``);
* its **rounding model**: ``tolerance(inputs, dout, dtype)``, per-entry bounds
  of every output;
* its **draws**: the shapes of its parameters given ``x`` ``(n, m)`` and its
  output rows (``parameters``), the least batch and width it needs, and the
  axes its entries mix over (which the padded oracle must not pad);
* its **bug catalogue**: ``Bug`` values whose outputs ``check_layer`` runs
  against a failing user's, to name the one they match.

The families built in (``affine``, the ten activations, the three loss heads,
batch and layer norm, dropout; and the shaped ones, whose arrays keep their N-D
shapes: convolution and pooling, spatial batch and group norm, the RNN and the
LSTM, the embedding and the temporal layers, ``shaped``) register themselves in
the modules of this package; a new kind is one ``register(LayerKind(...))``
(``docs/adding-a-layer.md``).

>>> print(*sorted(LAYER_KINDS)[:3])
affine avg_pool batchnorm
>>> LAYER_KINDS["affine"].inputs, LAYER_KINDS["affine"].grads
(('x', 'w', 'b'), ('dx', 'dw', 'db'))
"""

# The families built in register themselves on import (``layers()`` orders
# them by family: affine, activations, loss heads, normalizations, others).
from manual_bp_reference.layer_kinds import (
    activations,
    affine,
    convolution,
    dropout,
    loss_heads,
    normalization,
    pooling,
    recurrent,
    sequence,
    spatial_normalization,
)
from manual_bp_reference.layer_kinds.kind import (
    FAMILIES,
    LAYER_KINDS,
    Bug,
    LayerKind,
    kind_of,
    layers,
    register,
    unregister,
)

__all__ = [
    "FAMILIES", "LAYER_KINDS", "Bug", "LayerKind", "activations", "affine", "convolution",
    "dropout", "kind_of", "layers", "loss_heads", "normalization", "pooling", "recurrent",
    "register", "sequence", "spatial_normalization", "unregister",
]  # fmt: skip
