"""The classic batch-norm and layer-norm bugs, as formulas to run against a user's outputs.

``check_layer`` names a normalization bug the way ``manual_bp_reference.optimizer_check``
names an optimizer convention: it runs each candidate wrong formula on the
failing case and reports the ones whose outputs the user's match within the
layer's tolerance.  Every candidate is one change to ``normalization_layer``,
a staged forward and backward in our columns layout (``x`` ``(n, m)``; the
statistics over the batch axis 1 for batch norm, over the features axis 0
for layer norm; ``dgamma`` and ``dbeta`` always summed over the batch)::

    mu = mean(x)   D = x - mu   var = sum(D^2) / (k - ddof)   s = 1 / sqrt(var + eps)
    xhat = D s     out = gamma xhat + beta
    dxhat = gamma dout
    dvar = sum(dxhat D) (-1/2) s^3          dmu = -sum(dxhat) s
    dx = dxhat s + dvar 2 D / (k - ddof) + dmu / k

With no change it is the definition (``property_tests/test_layer_check.py``
proves it equal to ``jax.vjp`` of ``manual_bp.normalization.normalize``).

>>> first = NORMALIZATION_BUGS[0]
>>> first.name, first.formula.mean_path_divided
('missing 1/m in the mean path', False)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from manual_bp.normalization import AXIS, EPS

Array = np.ndarray


@dataclass(frozen=True)
class Formula:
    """What one candidate changes (the defaults are the definition)."""

    ddof_forward: int = 0  # the forward's variance divides by k - ddof_forward
    ddof_backward: int = 0  # the backward's variance path divides by k - ddof_backward
    mean_path_divided: bool = True  # dmu / k (False: the 1/m forgotten)
    eps_inside: bool = True  # sqrt(var + eps) (False: sqrt(var) + eps)
    gamma_in_dx: bool = True  # dxhat = gamma * dout (False: dout)
    dgamma_factor: str = "xhat"  # dgamma = sum(dout * xhat); "none": sum(dout); "x": sum(dout * x)
    swap_axis: bool = False  # the statistics over the other axis


@dataclass(frozen=True)
class NormalizationBug:
    """A classic bug: its name, what the user's code does, the formula it gives."""

    name: str
    description: str
    formula: Formula = field(default_factory=Formula)


NORMALIZATION_BUGS: tuple[NormalizationBug, ...] = (
    NormalizationBug(
        "missing 1/m in the mean path",
        "adds dmu to dx instead of dmu / m (the mean's 1/m forgotten)",
        Formula(mean_path_divided=False),
    ),
    NormalizationBug(
        "unbiased variance (m - 1)",
        "uses the unbiased variance sum(D^2) / (m - 1), forward and backward; "
        "the definition divides by m",
        Formula(ddof_forward=1, ddof_backward=1),
    ),
    NormalizationBug(
        "biased/unbiased variance mix-up (backward)",
        "takes the biased variance in the forward but divides by m - 1 in the backward's "
        "variance path (dvar * 2 D / (m - 1))",
        Formula(ddof_backward=1),
    ),
    NormalizationBug(
        "biased/unbiased variance mix-up (forward)",
        "takes the unbiased variance (m - 1) in the forward but the biased one's "
        "2 D / m in the backward",
        Formula(ddof_forward=1),
    ),
    NormalizationBug(
        "forgotten gamma in dx",
        "drops gamma on the path through x-hat: dxhat = dout instead of gamma * dout",
        Formula(gamma_in_dx=False),
    ),
    NormalizationBug(
        "dgamma without x-hat",
        "forgets the x-hat factor of dgamma: dgamma = sum(dout) instead of sum(dout * xhat)",
        Formula(dgamma_factor="none"),
    ),
    NormalizationBug(
        "dgamma with x instead of x-hat",
        "takes dgamma = sum(dout * x) instead of sum(dout * xhat)",
        Formula(dgamma_factor="x"),
    ),
    NormalizationBug(
        "eps outside the sqrt",
        "puts eps outside the sqrt: (x - mu) / (sqrt(var) + eps) instead of "
        "(x - mu) / sqrt(var + eps)",
        Formula(eps_inside=False),
    ),
    NormalizationBug(
        "statistics over the wrong axis",
        "takes the mean and variance over the other axis (layer norm's features for "
        "batch norm, the batch for layer norm)",
        Formula(swap_axis=True),
    ),
)


def normalization_layer(
    kind: str, x: Array, gamma: Array, beta: Array, dout: Array, *, formula: Formula = Formula()
) -> dict[str, Array]:
    """``out``, ``dx``, ``dgamma``, ``dbeta`` of ``formula`` (ours, float64).

    ``kind``: ``"batch"`` or ``"layer"``; ``gamma``, ``beta`` ``(n, 1)``.
    """
    axis = AXIS[kind] if not formula.swap_axis else 1 - AXIS[kind]
    k = x.shape[axis]

    def total(V: Array) -> Array:
        return np.sum(V, axis=axis, keepdims=True)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mu = total(x) / k
        D = x - mu
        var = total(D * D) / (k - formula.ddof_forward)
        root = np.sqrt(var + EPS) if formula.eps_inside else np.sqrt(var) + EPS
        s = 1 / root
        xhat = D * s
        out = gamma * xhat + beta
        dxhat = gamma * dout if formula.gamma_in_dx else dout
        # d s / d var: -1/2 s^3 inside; -s^2 / (2 sqrt(var)) outside.
        ds_dvar = -0.5 * s**3 if formula.eps_inside else -(s**2) / (2 * np.sqrt(var))
        dvar = total(dxhat * D) * ds_dvar
        dmu = -total(dxhat) * s
        dx = dxhat * s + dvar * 2 * D / (k - formula.ddof_backward)
        dx = dx + (dmu / k if formula.mean_path_divided else dmu)
        factor = {"xhat": xhat, "none": np.ones_like(x), "x": x}[formula.dgamma_factor]
        return {
            "out": out,
            "dx": dx,
            "dgamma": np.sum(dout * factor, axis=1, keepdims=True),
            "dbeta": np.sum(dout, axis=1, keepdims=True),
        }
