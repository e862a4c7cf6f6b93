"""Batch normalization and layer normalization, forward and backward, by hand.

An optional step between a hidden layer's ``Zl`` and its activation::

    Zl   = Wl A(l-1) + Bl                       (nl, m)
    mul  = mean of Zl over the axis             (nl, 1) batch, (1, m) layer
    varl = mean of (Zl - mul)^2 over the axis   biased: divided by k, not k - 1
    sl   = 1 / sqrt(varl + eps)                 "inv_std", sigma^-1
    Zhatl = (Zl - mul) * sl                     (nl, m)
    Nl   = gammal * Zhatl + betal               gammal, betal: (nl, 1)
    Al   = f_l(Nl)

* **batch** normalization takes the statistics of each unit over the batch
  (the columns, ``axis=1``, ``k = m``); **layer** normalization those of
  each sample over the units (the rows, ``axis=0``, ``k = nl``).  Both scale
  and shift each unit by its own ``gammal``, ``betal`` (``(nl, 1)``, keyed
  ``gamma1``, ``beta1``, ... as in the course; initialised to 1 and 0).
* ``eps = EPS = 1e-5`` is added to the variance *inside* the square root
  (as in PyTorch and cs231n).
* The variance is taken in two passes, the mean first and then the mean of
  the squared deviations, never as ``E[Z^2] - E[Z]^2``: that difference
  cancels catastrophically for near-constant features (``1e6 + noise``) and
  in float32 (``property_tests/test_normalization.py``).
* **Inference.**  Batch normalization in training mode uses the batch's
  statistics; in inference mode (``running`` given) it uses the running
  statistics ``running_meanl``, ``running_varl`` (``(nl, 1)``, initialised
  to 0 and 1), which every training step updates as
  ``running <- MOMENTUM * running + (1 - MOMENTUM) * batch statistic`` with
  ``MOMENTUM = 0.9`` and the *biased* batch variance (cs231n's convention;
  PyTorch's ``momentum=0.1`` weighs the other way and keeps the unbiased
  variance).  Layer normalization has no running statistics: each sample
  is its own batch.
* **One sample (m = 1) in batch normalization** is defined, not refused:
  the mean is the sample, the variance 0, so ``Zhatl = 0``, ``Nl = betal``,
  and ``dZl = 0`` exactly (the closed form's bracket is
  ``dN - dN - 0``); ``dgammal = 0`` and ``dbetal = dNl``.  The same holds for
  layer normalization of a one-unit layer.  A network trained on batches
  of one learns nothing through ``Wl`` of a batch-normalized layer.

The cache keys of a normalized layer ``l`` (besides ``Wl``, ``Zl``, ``Al``):
``mul``, ``varl``, ``inv_stdl`` (the statistics, ``(nl, 1)`` or ``(1, m)``),
``Zhatl`` and ``Nl`` (``(nl, m)``) and ``gammal`` (read by the backward).

The backward, with ``dN = dL/dNl`` (from ``f_l'``) and each sum over the axis::

    dgamma = sum over the batch of dN * Zhat     (nl, 1)    always over columns
    dbeta  = sum over the batch of dN            (nl, 1)
    dZhat  = gamma * dN

staged, through the graph (``staged_backward``)::

    dvar = sum(dZhat * (Z - mu)) * (-1/2) s^3
    dmu  = -sum(dZhat) * s + dvar * (-2/k) sum(Z - mu)     (the last sum is 0)
    dZ   = dZhat * s + dvar * 2 (Z - mu) / k + dmu / k

and closed (``closed_backward``), the same collapsed::

    dZ = (s / k) * (k dZhat - sum(dZhat) - Zhat * sum(dZhat * Zhat))

For batch normalization gamma is constant along the sum, which gives the
course's ``dZ = (gamma s / m) (m dN - sum dN - Zhat sum(dN Zhat))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np

Array = np.ndarray

NORMALIZATIONS = ("batch", "layer")
EPS = 1e-5
MOMENTUM = 0.9
# The axis each kind takes its statistics over: batch over the columns
# (samples), layer over the rows (units).
AXIS = {"batch": 1, "layer": 0}


def resolve(normalization: object, depth: int) -> tuple[str | None, ...]:
    """One entry per layer (``None``: no normalization); the output layer's is ``None``.

    ``normalization`` is ``None``, ``"batch"`` or ``"layer"`` (every hidden
    layer) or a sequence of ``L - 1`` of these, one per hidden layer.

    >>> resolve("batch", 3)
    ('batch', 'batch', None)
    >>> resolve([None, "layer"], 3)
    (None, 'layer', None)
    >>> resolve(None, 2)
    (None, None)
    """
    if normalization is None or isinstance(normalization, str):
        kinds = [normalization] * (depth - 1)
    elif isinstance(normalization, Sequence):
        kinds = list(normalization)
        if len(kinds) != depth - 1:
            raise ValueError(
                f"normalization: expected one entry per hidden layer ({depth - 1}), "
                f"got {len(kinds)}: {kinds!r}"
            )
    else:
        raise TypeError(
            "normalization: expected None, 'batch', 'layer' or a list of them per hidden "
            f"layer, got {type(normalization).__name__}"
        )
    for kind in kinds:
        if kind is not None and kind not in NORMALIZATIONS:
            raise ValueError(f"normalization: expected None, 'batch' or 'layer', got {kind!r}")
    return (*kinds, None)


def kind_of(normalization: Sequence[str | None] | None, l: int) -> str | None:
    """The normalization of layer ``l`` (1-based) of a resolved tuple, or ``None``."""
    return normalization[l - 1] if normalization else None


def init_normalization_params(
    layer_sizes: Sequence[int], normalization: Sequence[str | None], dtype: np.dtype | str
) -> dict[str, Array]:
    """``gammal = 1`` and ``betal = 0``, ``(nl, 1)``, for every normalized layer."""
    params = {}
    for l, kind in enumerate(normalization, start=1):
        if kind is not None:
            params[f"gamma{l}"] = np.ones((layer_sizes[l], 1), dtype=dtype)
            params[f"beta{l}"] = np.zeros((layer_sizes[l], 1), dtype=dtype)
    return params


def init_running(
    layer_sizes: Sequence[int], normalization: Sequence[str | None], dtype: np.dtype | str
) -> dict[str, Array]:
    """``running_meanl = 0`` and ``running_varl = 1``, ``(nl, 1)``, per batch-normalized layer."""
    running = {}
    for l, kind in enumerate(normalization, start=1):
        if kind == "batch":
            running[f"running_mean{l}"] = np.zeros((layer_sizes[l], 1), dtype=dtype)
            running[f"running_var{l}"] = np.ones((layer_sizes[l], 1), dtype=dtype)
    return running


def normalize(
    Z: Array,
    gamma: Array,
    beta: Array,
    kind: str,
    xp: ModuleType = np,
    *,
    statistics: tuple[Array, Array] | None = None,
    taps: Mapping[str, Array] | None = None,
) -> dict[str, Array]:
    """The normalization step over the array namespace ``xp``: the definition.

    Returns ``mu``, ``var``, ``inv_std``, ``Zhat`` and ``N`` (the module
    notes give the formulas).  ``statistics=(mean, var)`` replaces the
    batch's own (inference mode); they are returned as ``running_mean`` and
    ``running_var`` instead of ``mu`` and ``var``, so that an inference
    cache cannot pass for a training one (the backward needs ``mu``).
    ``taps`` (zero arrays keyed ``mu``, ``var``, ``Zhat``, ``N``) are added
    to the matching variables, for the oracle's ``jax.grad``; added to
    ``mu`` before the deviations, the tap on
    ``mu`` carries the gradient through ``var`` too, as the staged form's
    ``dmu`` does.
    """
    axis = AXIS[kind]

    def tapped(name: str, value: Array) -> Array:
        return value + taps[name] if taps is not None else value

    if statistics is None:
        mu = tapped("mu", xp.mean(Z, axis=axis, keepdims=True))
        D = Z - mu
        var = tapped("var", xp.mean(D * D, axis=axis, keepdims=True))
        moments = {"mu": mu, "var": var}
    else:
        mu, var = statistics
        D = Z - mu
        moments = {"running_mean": mu, "running_var": var}
    inv_std = 1 / xp.sqrt(var + EPS)
    Zhat = tapped("Zhat", D * inv_std)
    N = tapped("N", gamma * Zhat + beta)
    return {**moments, "inv_std": inv_std, "Zhat": Zhat, "N": N}


def update_running(
    running: Mapping[str, Array],
    cache: Mapping[str, Array],
    normalization: Sequence[str | None],
    momentum: float = MOMENTUM,
) -> dict[str, Array]:
    """New running statistics after one training-mode batch (new arrays).

    ``running_meanl <- momentum * running_meanl + (1 - momentum) * mul`` and
    the same for ``running_varl`` from ``varl`` (the biased batch variance),
    for every batch-normalized layer ``l``.
    """
    new = dict(running)
    for l, kind in enumerate(normalization, start=1):
        if kind == "batch":
            for name, moment in (("running_mean", "mu"), ("running_var", "var")):
                new[f"{name}{l}"] = momentum * running[f"{name}{l}"] + (1 - momentum) * cache[
                    f"{moment}{l}"
                ].astype(running[f"{name}{l}"].dtype, copy=False)
    return new


def parameter_gradients(dN: Array, Zhat: Array) -> tuple[Array, Array]:
    """``dgamma = sum over the batch of dN * Zhat`` and ``dbeta = sum of dN``, ``(nl, 1)``.

    Over the batch (the columns) for both kinds: gamma and beta are per unit.
    """
    return (dN * Zhat).sum(axis=1, keepdims=True), dN.sum(axis=1, keepdims=True)


def closed_backward(
    dN: Array, cache: Mapping[str, Array], l: int, kind: str
) -> tuple[Array, dict[str, Array]]:
    """``dZ = (s / k) * (k dZhat - sum(dZhat) - Zhat * sum(dZhat * Zhat))``, ``dZhat = gamma dN``.

    Reads ``gammal``, ``Zhatl`` and ``inv_stdl`` from the cache; each sum is
    over the kind's axis and ``k`` is the number of entries summed.  Returns
    ``dZ`` and the one intermediate gradient it forms, dL/dZhatl.
    """
    axis = AXIS[kind]
    Zhat, inv_std = cache[f"Zhat{l}"], cache[f"inv_std{l}"]
    dZhat = cache[f"gamma{l}"] * dN
    k = Zhat.shape[axis]
    bracket = k * dZhat
    bracket -= dZhat.sum(axis=axis, keepdims=True)
    bracket -= Zhat * (dZhat * Zhat).sum(axis=axis, keepdims=True)
    return (inv_std / k) * bracket, {"Zhat": dZhat}


def staged_backward(
    dN: Array, cache: Mapping[str, Array], l: int, kind: str
) -> tuple[Array, dict[str, Array]]:
    """``dZ`` through the graph, stage by stage; also returns ``Zhat``, ``var``, ``mu``.

    Reads ``gammal``, ``Zl``, ``mul``, ``inv_stdl`` from the cache (the module
    notes give the formulas).  The intermediate gradients are dL/dZhatl,
    dL/dvarl and dL/dmul, each the shape of its variable.
    """
    axis = AXIS[kind]
    Z, mu, inv_std = cache[f"Z{l}"], cache[f"mu{l}"], cache[f"inv_std{l}"]
    k = Z.shape[axis]
    D = Z - mu
    dZhat = cache[f"gamma{l}"] * dN
    dvar = (dZhat * D).sum(axis=axis, keepdims=True) * (-0.5 * inv_std**3)
    dmu = -dZhat.sum(axis=axis, keepdims=True) * inv_std + dvar * (-2 / k) * D.sum(
        axis=axis, keepdims=True
    )
    dZ = dZhat * inv_std + dvar * (2 / k) * D + dmu / k
    return dZ, {"Zhat": dZhat, "var": dvar, "mu": dmu}
