"""``check_layer``: property-check ONE hand-written layer function, cs231n style.

The most-used course has students write backprop one layer at a time::

    out, cache = affine_forward(x, w, b)        dx, dw, db = affine_backward(dout, cache)
    out, cache = relu_forward(x)                dx = relu_backward(dout, cache)
    loss, dx = softmax_loss(x, y)
    out, cache = batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

``check_layer(backward, layer, forward=...)`` draws shapes, inputs and upstream
gradients ``dout`` with Hypothesis, runs the user's forward (its cache is what
the user's backward reads) and backward, and compares every entry of every
output with ``jax.vjp`` of manual_bp's own definition of that layer in float64
(``Z = W A + B``; ``manual_bp.activations``; the loss with its canonical
activation from ``manual_bp.losses``; ``manual_bp.normalization.normalize``),
under a per-entry rounding bound (``manual_bp_reference.layer_tolerance``).  The
forward's ``out`` is compared too.

Layers (``LAYERS``) and the signatures taken, exactly cs231n's:

* ``"affine"``: ``forward(x, w, b) -> (out, cache)``, ``backward(dout, cache)
  -> (dx, dw, db)``;
* an activation (``"relu"``, ``"sigmoid"``, ... all ten of
  ``manual_bp.activations``; ``"softmax"`` over each sample's features):
  ``forward(x) -> (out, cache)``, ``backward(dout, cache) -> dx``;
* ``forward=None`` for these two: the cache is cs231n's ``(x, w, b)`` or ``x``;
* a loss head, named by its loss: ``"cross_entropy"`` (softmax),
  ``"binary_cross_entropy"`` (sigmoid), ``"mse"`` (identity,
  ``(1/(2m)) sum (x - y)^2``): ``backward`` is ``loss(x, y) -> (loss, dx)``
  and there is no ``forward``; ``targets="labels"`` (integer class indices
  ``(m,)``, the default) or ``"one_hot"`` (an array shaped like ``x``);
* ``"batchnorm"``, ``"layernorm"``: ``forward(x, gamma, beta, param) -> (out,
  cache)`` with ``param = {"mode": "train", "eps": 1e-5}`` (a fresh dict per
  call, so a forward that stores running statistics in it may), ``backward(dout,
  cache) -> (dx, dgamma, dbeta)``.  The statistics are the batch's (training
  mode); eps is ``manual_bp.normalization.EPS``.  Batch norm is drawn with
  ``m >= 2``, layer norm with at least 2 features.

``layout="rows"`` (default): cs231n's, ``x`` ``(m, d)``, ``w`` ``(d_in, d_out)``,
``b``, ``gamma``, ``beta`` ``(d,)``.  ``layout="columns"``: the seed's, ``x``
``(d, m)``, ``w`` ``(d_out, d_in)``, ``b``, ``gamma``, ``beta`` ``(d, 1)``.

Drawn values are exact in ``dtype``; values below ``1024 * tiny`` are drawn as
0 (XLA flushes subnormals to 0, and a relu slope times one underflows), so an
input exactly 0 checks the kink convention (relu'(0) = 0, leaky_relu'(0) = 1)
and every other input lies on its side of a kink by no matter of rounding.

A pass returns a ``LayerReport``.  A mismatch raises ``LayerMismatch`` with the
minimal case's table, a larger failing case's table, the wrong, missing or
misshapen outputs named (a shape mismatch gives both shapes), the user's
traceback if it raised, and for batch and layer norm the classic bug whose
formula the outputs match (``manual_bp_reference.normalization_bugs``).

>>> import numpy as np
>>> def affine_forward(x, w, b):
...     return x @ w + b, (x, w, b)
>>> def affine_backward(dout, cache):
...     x, w, b = cache
...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
>>> from manual_bp_reference.settings import Settings
>>> report = check_layer(affine_backward, "affine", forward=affine_forward,
...                      settings=Settings(max_examples=5))
>>> report.examples
5
"""

from manual_bp_reference.layer_check.calls import run_user
from manual_bp_reference.layer_check.cases import LayerCase, layer_cases, probe_case
from manual_bp_reference.layer_check.checking import check_layer
from manual_bp_reference.layer_check.comparison import LayerComparison, compare_layer
from manual_bp_reference.layer_check.diagnosis import normalization_diagnosis
from manual_bp_reference.layer_check.oracle import layer_oracle
from manual_bp_reference.layer_check.report import LayerMismatch, LayerReport
from manual_bp_reference.layer_check.specs import (
    LAYERS,
    LAYOUTS,
    NORMALIZATION_LAYERS,
    TARGETS,
    LayerKind,
    kind_of,
    layers,
)

__all__ = [
    "LAYERS",
    "LAYOUTS",
    "NORMALIZATION_LAYERS",
    "TARGETS",
    "LayerCase",
    "LayerComparison",
    "LayerKind",
    "LayerMismatch",
    "LayerReport",
    "check_layer",
    "compare_layer",
    "kind_of",
    "layer_cases",
    "layer_oracle",
    "layers",
    "normalization_diagnosis",
    "probe_case",
    "run_user",
]  # fmt: skip
