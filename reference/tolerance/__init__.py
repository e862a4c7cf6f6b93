"""Per-entry tolerances from a first-order rounding-error bound.

A fixed rtol/atol either cries wolf when a gradient cancels to about zero
(the bias gradient of a symmetric batch) or lets a real bug through.  Here
every entry of every gradient gets its own bound, derived from the unit
roundoff ``u`` and from the magnitudes of the numbers that were summed to
make it.  The bound is the backward recursion run again on magnitudes and
error terms, beside a forward recursion that bounds the rounding error of the
cached forward values.

Units: every ``E*`` array below is in units of ``u = eps(dtype) + eps(float64)``
(the manual side's and the oracle's unit roundoff; for float32 the second is
negligible, for float64 both sides round).  The tolerance is
``SAFETY * u * E``.

Forward (l = 1..L), with ``|.|`` elementwise and ``n = n(l-1)``::

    EZl = (n + 1) (|Wl| |A(l-1)| + |Bl|) + |Wl| EA(l-1)       EA0 = 0
    EAl = |f'(Zl)| EZl + c_f u EZl^2 / 2 + V_f(Zl, Al)
    softmax:  EAl = max(|J| EZl, |Al| expm1(2d) / u) + V,   d = u max EZl per column

Output::

    fused pair:  EdZL = (EAL + (nL + 2)(|AL| + |Y|) + O) / m
                 O = (|ZL| + 8)(|Y| sigmoid(-ZL) + |1 - Y| sigmoid(ZL)) for BCE, else 0
    mse + f:     EdAL = (EAL + 2 |AL - Y|) / m, then the activation step below

Backward (l = L..1), magnitudes ``|dZl|`` etc. taken from the oracle::

    EdZl = |f'| EdAl + |dAl| (c_f EZl + D_f(Zl, Al)) + |dZl|  (+ kink term)
    EdWl = EdZl |A(l-1)|^T + |dZl| EA(l-1)^T + m |dZl| |A(l-1)|^T
    EdBl = sum_columns EdZl + m sum_columns |dZl|
    EdA(l-1) = |Wl|^T EdZl + nl |Wl|^T |dZl|

``c_f`` bounds ``|f''|`` (a derivative taken at a slightly wrong ``z`` is off
by at most ``c_f`` times the error in ``z``, and Taylor's remainder of ``f``
is at most ``c_f d^2 / 2``, so both hold for any size of error); ``V_f`` and
``D_f`` bound the rounding of evaluating ``f`` and ``f'``, on either side
(the oracle's softplus' errs by ``u (|z| + 5)`` relatively: jax differentiates
``logaddexp`` as ``exp(z - lse)``).  softmax has no bounded curvature, but a
logit error of at most ``d`` moves each probability by a factor within
``exp(+-2d)``: float32 logits near 1e7 round by O(1), where ``|J| EZ`` fails.

Dropout (``manual_bp.dropout``): a dropped layer's ``EAl`` is that of
``Fl = f_l(Zl)`` times ``Ml / (1 − p)`` plus ``2 |Al|`` (``1 − p`` rounded to
the dtype and the division); backward, ``dFl = dAl ⊙ Ml / (1 − p)`` the same
way, then ``f_l'`` at ``Fl``.  The weight decay is added by
``manual_bp_reference.compare.with_objective``.

Second order: where ``f'`` and ``dA`` both round to 0 (``tanh(-13.3)`` is
exactly -1 in float32, and so is the target) every first-order term vanishes,
so ``u EdA (c_f EZ + D_f)`` and ``u EdZ EA(l-1)^T`` are added.

Kinks (relu, leaky_relu): the oracle reports its own forward ``Zl``.  Where
it lies on the other side of 0 than ours, the two sides legitimately take
different one-sided derivatives: the kink term allows ``|dA| * jump`` there,
and the slope is bounded by 1.  Everywhere else, ``Z`` exactly 0 included,
the kink convention itself is checked.  (Without the oracle's ``Z``, every
``|Z|`` within its error bound of 0 is excused.)

The ``(n + 1)`` and ``m`` factors are the classical worst-case bound
``|fl(sum) - sum| <= (k - 1) u sum |terms|`` for a k-term sum.

Normalization (``manual_bp.normalization``): a normalized layer feeds ``Nl``
and its bound to ``f_l``, and its backward takes ``EdNl`` to ``EdZl``
(``normalization_forward_errors``, ``normalization_backward_errors``, which
derive their terms).  The bound on ``inv_std`` is exact rather than first
order, so a variance lost to rounding gives a huge, sound tolerance: the
entry is undecided, not a false alarm.

Underflow: relative bounds fail for results near the smallest normal number
``tiny`` (and XLA flushes float64 subnormals to zero, so the oracle may return
0 where NumPy returns ``1e-308``).  Every step therefore also adds
``k * tiny`` absolutely, ``k`` the number of its summands, a subnormal input
counts entirely as error, and the recursion carries both forward like any
other error.

The package, by layer kind: ``activation``, ``loss``, ``affine``, ``dropout``,
``normalization`` (each its one-step model), ``network`` (the recursions
through a network), ``rounding`` (the units).
"""

from manual_bp_reference.tolerance.activation import ERROR_MODELS, ErrorModel
from manual_bp_reference.tolerance.loss import loss_terms
from manual_bp_reference.tolerance.network import (
    Tolerances,
    forward_bounds,
    forward_errors,
    tolerances,
)
from manual_bp_reference.tolerance.normalization import (
    NormalizationErrors,
    normalization_backward_errors,
    normalization_forward_errors,
)
from manual_bp_reference.tolerance.rounding import EPS64, SAFETY, TINY64, unit_roundoff

__all__ = [
    "EPS64", "ERROR_MODELS", "SAFETY", "TINY64", "ErrorModel", "NormalizationErrors",
    "Tolerances", "forward_bounds", "forward_errors", "loss_terms",
    "normalization_backward_errors", "normalization_forward_errors", "tolerances",
    "unit_roundoff",
]  # fmt: skip
