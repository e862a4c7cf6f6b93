"""A second, independent oracle: central finite differences in float64.

Where ``manual_bp_reference.oracle`` asks ``jax.grad`` for the derivative, this module
only evaluates the loss, in NumPy, and never imports jax.  It differentiates
the same function, the float64 batch-mean loss of ``manual_bp.network``
(``batch_loss``, evaluated as ``forward`` then ``loss_from_cache`` so that
the forward cache is at hand for kink detection).

Notation (from the seed): the batch is stored as columns, ``A0 = X`` is
``(n0, m)``, ``Wl`` is ``(nl, n(l-1))``, ``Bl`` is ``(nl, 1)`` and ``Zl``,
``Al`` are ``(nl, m)``.  Every key that ``manual_bp.network.backward`` returns
is differentiated: ``Wl``, ``Bl``, ``Zl`` (l = 1..L), ``Al`` (l = 1..L-1) and,
with ``input_gradient``, ``A0``.  ``Zl`` and ``Al`` are reached through the
``taps`` of ``forward``: a zero array added to the variable, one entry of
which is perturbed; ``A0`` is reached by perturbing ``X`` itself.

Step size
---------
For an entry ``v`` of any variable the step is::

    h = cbrt(eps64) * max(1, |v|)          cbrt(eps64) = 6.06e-6

(for a tap, ``v`` is the value of ``Zl`` or ``Al`` at that entry in the forward
cache).  The central difference ``D(h) = (f(v + h) - f(v - h)) / (2h)`` has two
errors: truncation ``h^2 |f'''| / 6`` and rounding ``delta / h``, where
``delta`` bounds the rounding error of one evaluation of ``f``.  With
``delta ~ eps |f|`` and ``f''' ~ f`` on the scale of ``v``, their sum is
smallest at ``h ~ cbrt(3 eps)``, where both are ``~ eps^(2/3) ~ 4e-11``
relative.  The factor ``max(1, |v|)`` makes the step relative for large
entries (a step of ``6e-6`` is below the spacing of floats beyond about
``3e10``) and absolute near zero.

The step actually taken is the one the rounded perturbed value realises:
with ``v+ = fl(v + h)`` and ``v- = fl(v - h)`` the denominator is
``v+ - v-``, not ``2h``, so the representation error of ``v + h`` (relative
size ``eps |v| / h``) does not enter the quotient.  Taps realise the same
values, since ``forward`` computes ``fl(Zl + tap)`` from the very same ``Zl``.

Error estimate
--------------
Every entry gets an error estimate::

    error = 2 |D(h) - D(2h)|  +  delta_v / h  +  |f''| |shift|  +  4 eps |D(h)|

* truncation: the leading term of ``D(h) - f'`` is ``h^2 f''' / 6`` and that
  of ``D(2h) - f'`` four times as much, so ``|D(h) - D(2h)|`` is three times
  the truncation error of ``D(h)`` when ``f`` is smooth, and exactly once it
  when ``f''`` jumps inside the stencil (``elu`` at 0, where the error is
  ``O(h)``); the factor 2 gives room in that case too.
* rounding of the loss: ``delta_v`` bounds the rounding error of one
  evaluation of the loss near ``v``.  It is a first-order bound ``delta`` at
  ``v`` (the rounding of each ``Zl = Wl A(l-1) + Bl``, ``Al = f_l(Zl)`` and of
  the loss sum, each weighted by the finite-difference gradient of the loss
  with respect to that quantity, i.e. the tap gradients computed here; plus
  an absolute ``tiny`` per operation for underflow; doubled), plus the
  loss-sum term again at the largest ``|f|`` evaluated for the entry, since
  near a minimum ``f(v +- h)`` can dwarf ``f(v)``.  Two evaluations differ by
  at most ``2 delta_v``, over a denominator ``2h``.
* rounding of the stencil: the chord from ``v-`` to ``v+`` has the slope of
  ``f'`` at its midpoint, which the rounding of ``v +- h`` moves off ``v`` by
  ``shift = -(e+ + e-) / 2`` (``e+-`` the rounding errors, exact by TwoSum).
  It matters when ``|v|`` is tiny beside ``h``: for ``f = z^2 / 2`` at
  ``z = 1e-288``, ``fl(z +- h) = +-h`` and ``D(h) = 0``.  ``|f''|`` is taken
  from the second differences at ``h`` and ``2h`` (plus their rounding).
* the final subtraction and division: ``4 eps |D(h)|``.

It is an estimate, not a proof: when several second-derivative jumps (``elu``
at 0) or higher-order terms lie inside ``2h`` with opposite signs, they can
cancel in ``D(h) - D(2h)`` but not in ``D(h)``.  ``delta`` is a bound, and
loose: the measured ``|D(h) - jax.grad|`` is typically far below it
(``benchmarks/RESULTS.md``).

Cost: four forward passes per entry (``v +- h`` for the difference, ``v +- 2h``
for its error), plus one for the unperturbed point; the two passes of the
difference itself are the ones at ``v +- h``.  A network with ``N``
parameters, ``H`` hidden units, ``nL`` outputs and batch ``m`` has
``N + (2H + nL) m`` entries (``+ n0 m`` with ``A0``): keep it to small
networks (``benchmarks/RESULTS.md`` has a timing).

Kinks
-----
``relu`` and ``leaky_relu`` are not differentiable at ``Z = 0``.  An entry is
*at a kink* when perturbing it by ``+h`` or ``-h`` moves any ``relu``
pre-activation across ``Z > 0`` or any ``leaky_relu`` one across ``Z >= 0``
(the patterns of the forward caches at ``v + h`` and ``v - h`` are compared
with the unperturbed one).  There the central difference estimates no
derivative.  Instead the one-sided differences::

    forward  = (f(v+) - f(v)) / (v+ - v)       backward = (f(v) - f(v-)) / (v - v-)

are returned with their own error estimates (``2 |F(h) - F(2h)| + 2 delta_v / h
+ 4 eps |F(h)|``, the same argument with an ``O(h)`` leading term).  When exactly one
pre-activation crosses (``crossings == 1``), the analytic gradient under any
convention for ``f'(0)`` is one of the two one-sided derivatives, so it lies
between the two differences, within their errors.  When several cross at
once, a chain-rule gradient can lie outside that interval (with
``relu'(0) = 0``, ``relu(v) - relu(-v) = v`` has derivative 0 at ``v = 0``),
and ``crossings`` lets a caller skip such entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import gradient_keys, tap_shapes
from manual_bp.net import Net
from manual_bp.network import forward, loss_from_cache
from manual_bp_reference.cases import Case
from manual_bp_reference.tolerance import ERROR_MODELS, loss_terms, normalization_forward_errors

Array = np.ndarray
Index = tuple[int, ...]

EPS64 = float(np.finfo(np.float64).eps)
CBRT_EPS64 = float(np.cbrt(EPS64))
TINY64 = float(np.finfo(np.float64).tiny)
# First-order rounding bounds drop O(eps^2) terms; a factor 2 covers them.
ROUNDING_SAFETY = 2.0
# |D(h) - D(2h)| is 3x the truncation error of D(h) for smooth f and 1x where
# f'' jumps inside the stencil; twice it covers both.
TRUNCATION_SAFETY = 2.0


@dataclass(frozen=True)
class FiniteDifferenceResult:
    """Finite-difference gradients, keyed as ``manual_bp.network.backward`` keys them.

    Every dict maps a key (``Wl``, ``Bl``, ``Zl``, ``Al``, ``A0``) to an array of
    the shape of that variable (``Wl``: ``(nl, n(l-1))``, ``Bl``: ``(nl, 1)``,
    ``Zl``, ``Al``: ``(nl, m)``, ``A0``: ``(n0, m)``), all float64.

    Attributes
    ----------
    grads : dict of arrays
        Central differences ``(f(v+) - f(v-)) / (v+ - v-)``.
    error : dict of arrays
        Estimated bound on ``|grads - true gradient|`` (truncation + rounding),
        valid where ``at_kink`` is False.
    at_kink : dict of bool arrays
        True where a step of ``+-h`` moves a relu / leaky_relu pre-activation
        across its kink.
    one_sided : dict of ``(forward, backward)`` array pairs
        ``(f(v+) - f(v)) / (v+ - v)`` and ``(f(v) - f(v-)) / (v - v-)``, for
        every entry; they matter where ``at_kink`` is True.
    one_sided_error : dict of ``(forward, backward)`` array pairs
        Estimated error bounds of the two one-sided differences.
    crossings : dict of int arrays
        How many relu / leaky_relu pre-activation entries a step of ``+h`` or
        ``-h`` moves across their kink (0 where ``at_kink`` is False).
    step : dict of arrays
        The step ``h`` of each entry.
    loss : float
        The float64 loss at the unperturbed point.
    rounding : float
        ``delta``, the bound on the rounding error of one loss evaluation.
    """

    grads: dict[str, Array]
    error: dict[str, Array]
    at_kink: dict[str, Array]
    one_sided: dict[str, tuple[Array, Array]]
    one_sided_error: dict[str, tuple[Array, Array]]
    crossings: dict[str, Array]
    step: dict[str, Array]
    loss: float
    rounding: float

    def interval(self, key: str, index: Index) -> tuple[float, float]:
        """The range of values that finite differences support at one entry.

        Away from a kink, ``grads +- error``.  At a kink, the hull of the two
        one-sided differences, each widened by its error estimate.
        """
        index = tuple(index)
        if not self.at_kink[key][index]:
            centre, radius = self.grads[key][index], self.error[key][index]
            return float(centre - radius), float(centre + radius)
        forward_diff, backward_diff = (d[index] for d in self.one_sided[key])
        forward_error, backward_error = (e[index] for e in self.one_sided_error[key])
        low = min(forward_diff - forward_error, backward_diff - backward_error)
        high = max(forward_diff + forward_error, backward_diff + backward_error)
        return float(low), float(high)

    def supports(self, key: str, index: Index, value: float) -> bool:
        """Whether ``value`` lies in ``interval(key, index)`` (NaN never does)."""
        low, high = self.interval(key, index)
        return bool(low <= value <= high)


class _Loss:
    """``v -> (f, kink pattern)`` for one variable, all other inputs fixed."""

    def __init__(
        self,
        params: dict[str, Array],
        X: Array,
        Y: Array,
        net: Net,
        taps: dict[str, Array],
    ) -> None:
        self.params, self.X, self.Y, self.taps = params, X, Y, taps
        self.net, self.activations, self.loss, self.depth = (
            net,
            net.activations,
            net.loss,
            net.depth,
        )
        normalization = net.normalization
        # Which side of its kink each relu-like input (Zl, or Nl where
        # normalized) lies on.
        self.kinked = [
            (f"{'N' if normalization and normalization[l - 1] else 'Z'}{l}", side)
            for l, name in enumerate(self.activations, start=1)
            if (side := ACTIVATIONS[name].kink_side) is not None
        ]

    def evaluate(
        self, params: Mapping[str, Array], X: Array, taps: Mapping[str, Array]
    ) -> tuple[float, Array, dict[str, Array]]:
        """The loss, the side of every relu-like pre-activation, and the cache."""
        _, cache = forward(params, X, self.net, np, taps)
        value = float(loss_from_cache(cache, self.Y, self.loss, self.depth, np))
        sides = [side(cache[key]).ravel() for key, side in self.kinked]
        pattern = np.concatenate(sides) if sides else np.zeros(0, dtype=bool)
        return value, pattern, cache

    def at(self, key: str, index: Index, base: float, offset: float) -> tuple[float, Array]:
        """Evaluate with entry ``index`` of variable ``key`` moved to ``fl(base + offset)``.

        For ``Wl``, ``Bl`` and ``A0`` the entry is set to ``base + offset``; for a
        tap, the tap entry is set to ``offset`` and ``forward`` computes
        ``fl(Zl + offset)`` from the very same ``Zl == base``: the same value.
        """
        params, X, taps = self.params, self.X, self.taps
        if key == "A0":
            X = X.copy()
            X[index] = base + offset
        elif key in params:
            params = dict(params)
            params[key] = params[key].copy()
            params[key][index] = base + offset
        else:
            taps = dict(taps)
            taps[key] = taps[key].copy()
            taps[key][index] = offset
        f, pattern, _ = self.evaluate(params, X, taps)
        return f, pattern


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth)."""
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def _value_error(name: str, Z: Array, A: Array) -> Array:
    """Bound, in units of eps64, on the rounding of ``A = f(Z)`` (doubled for room)."""
    return 2 * ERROR_MODELS[name].value_error(Z, A)


def _rounding_bound(
    params: Mapping[str, Array],
    cache: Mapping[str, Array],
    Y: Array,
    activations: Sequence[str],
    loss: str,
    grads: Mapping[str, Array],
) -> float:
    """``delta``: a first-order bound on the rounding error of one loss evaluation.

    Each locally rounded quantity contributes its rounding bound times the
    (finite-difference) derivative of the loss with respect to it::

        Zl = Wl A(l-1) + Bl:   |dL/dZl| (n(l-1) + 1) (|Wl| |A(l-1)| + |Bl|)
        Al = f_l(Zl):          |dL/dAl| V_f(Zl, Al)          (l < L)
        AL (mse only):         |AL - Y| / m V_f(ZL, AL)
        the loss sum:          (nL m + 8) sum(|terms|) / m

    plus an absolute ``TINY64`` per operation for underflow.
    """
    depth = len(activations)
    m = Y.shape[1]
    total = 0.0
    for l in range(1, depth + 1):
        W, A_prev = params[f"W{l}"], cache[f"A{l - 1}"]
        magnitude = np.abs(W) @ np.abs(A_prev) + np.abs(params[f"B{l}"])
        total += float(np.sum(np.abs(grads[f"Z{l}"]) * (A_prev.shape[0] + 1) * magnitude))
        if l < depth:
            value_error = _value_error(activations[l - 1], cache[f"Z{l}"], cache[f"A{l}"])
            total += float(np.sum(np.abs(grads[f"A{l}"]) * value_error))
    Z_L, A_L = cache[f"Z{depth}"], cache[f"A{depth}"]
    if loss == "mse":
        residual = np.abs(A_L - Y)
        total += float(np.sum(residual * _value_error(activations[-1], Z_L, A_L))) / m
    total += (Y.size + 8) * float(np.sum(loss_terms(loss, Z_L, A_L, Y))) / m
    # Underflow: an operation whose result is below the smallest normal number
    # errs by up to TINY64 absolutely, not relatively.  Count the operations
    # (about n(l-1) + 10 per entry of Zl and Al, and 8 per entry of the loss);
    # they reach the loss with weight at most max(1, |dL/dZl|, |dL/dAl|).
    weight = max([1.0] + [float(np.max(np.abs(g), initial=0.0)) for g in grads.values()])
    operations = Y.size * 8 + sum(
        (params[f"W{l}"].shape[1] + 10) * cache[f"Z{l}"].size for l in range(1, depth + 1)
    )
    return ROUNDING_SAFETY * (EPS64 * total + TINY64 * operations * weight)


_MEASUREMENTS = ("D1", "D2", "F1", "F2", "B1", "B2", "C1", "C2", "half", "h", "shift", "fmax")


def _normalization_rounding_bound(
    cache: Mapping[str, Array], normalization: Sequence[str | None], grads: Mapping[str, Array]
) -> float:
    """The normalization steps' share of ``delta``: the local rounding of
    ``Zhatl`` (``manual_bp_reference.tolerance.normalization_forward_errors`` with an
    exact ``Zl``) times ``|dL/dZhatl|``, and of ``Nl`` times ``|dL/dNl|``."""
    total = 0.0
    for l, kind in enumerate(normalization, start=1):
        if kind:
            Z = cache[f"Z{l}"]
            errors = normalization_forward_errors(kind, l, cache, np.zeros_like(Z), EPS64, 0.0)
            Zhat_rounding = ROUNDING_SAFETY * EPS64 * errors.EZhat
            N_rounding = np.abs(cache[f"gamma{l}"] * cache[f"Zhat{l}"]) + np.abs(cache[f"N{l}"])
            total += float(np.sum(np.abs(grads[f"Zhat{l}"]) * Zhat_rounding))
            total += ROUNDING_SAFETY * EPS64 * float(np.sum(np.abs(grads[f"N{l}"]) * N_rounding))
    return total


def finite_difference_gradients(
    case: Case, *, input_gradient: bool = False
) -> FiniteDifferenceResult:
    """Central finite differences of the float64 batch-mean loss, entry by entry.

    Parameters
    ----------
    case : the network and batch (``Wl`` (nl, n(l-1)), ``Bl`` (nl, 1),
        ``X`` (n0, m), ``Y`` (nL, m)); everything is cast to float64 first,
        whatever the case's dtype
    input_gradient : also differentiate with respect to ``A0 = X``

    Returns
    -------
    FiniteDifferenceResult
        For every key ``manual_bp.network.backward`` returns: the central
        differences, their error estimates, the kink mask with the one-sided
        differences, and the step sizes.

    Notes
    -----
    Costs ``4 * (number of entries) + 1`` forward passes (see the module
    docstring); meant for networks of a few dozen parameters.
    """
    params64 = {key: np.asarray(value, dtype=np.float64) for key, value in case.params.items()}
    X64 = np.asarray(case.X, dtype=np.float64)
    Y64 = np.asarray(case.Y, dtype=np.float64)
    normalization = case.normalization
    shapes = tap_shapes(case.layer_sizes, case.m, normalization=normalization)
    taps = {key: np.zeros(shape) for key, shape in shapes.items()}
    objective = _Loss(params64, X64, Y64, case.net.without_dropout(), taps)
    f0, pattern0, cache = objective.evaluate(params64, X64, taps)

    raw, crossings = {}, {}
    for key in gradient_keys(case.depth, input_gradient, normalization=normalization):
        if key == "A0":
            base_values = X64
        elif key in params64:
            base_values = params64[key]
        else:
            base_values = cache[key]
        raw[key], crossings[key] = _measure(objective, key, base_values, f0, pattern0)

    grads = {key: r["D1"] for key, r in raw.items()}
    delta = _rounding_bound(params64, cache, Y64, case.activations, case.loss, grads)
    delta += _normalization_rounding_bound(cache, normalization, grads)
    error, one_sided, one_sided_error = _error_estimates(raw, delta, Y64.size)
    return FiniteDifferenceResult(
        grads,
        error,
        {key: count > 0 for key, count in crossings.items()},
        one_sided,
        one_sided_error,
        crossings,
        {key: r["h"] for key, r in raw.items()},
        f0,
        delta,
    )


def _measure(
    objective: _Loss, key: str, base_values: Array, f0: float, pattern0: Array
) -> tuple[dict[str, Array], Array]:
    """The raw differences of every entry of one variable, named as in the
    module notes, and how many kinked pre-activations a step of ``+-h`` moves."""
    shape = base_values.shape
    r = {name: np.empty(shape) for name in _MEASUREMENTS}
    count = np.zeros(shape, dtype=np.int64)
    for index in np.ndindex(*shape):
        base = float(base_values[index])
        h = CBRT_EPS64 * max(1.0, abs(base))
        # The realised values v[k] = fl(v + k h), their rounding errors
        # e[k] = (v + k h) - v[k] (exact, by TwoSum), and the loss at each.
        v, e, f = {0: base}, {}, {0: f0}
        moved = np.zeros(pattern0.shape, dtype=bool)
        for k in (1, -1, 2, -2):
            v[k], e[k] = _two_sum(base, k * h)
            f[k], pattern = objective.at(key, index, base, k * h)
            if abs(k) == 1:
                moved |= pattern != pattern0
        r["D1"][index] = (f[1] - f[-1]) / (v[1] - v[-1])
        r["D2"][index] = (f[2] - f[-2]) / (v[2] - v[-2])
        r["F1"][index] = (f[1] - f0) / (v[1] - base)
        r["F2"][index] = (f[2] - f0) / (v[2] - base)
        r["B1"][index] = (f0 - f[-1]) / (base - v[-1])
        r["B2"][index] = (f0 - f[-2]) / (base - v[-2])
        # Second differences, ~ f''(v), at steps h and 2h.
        r["C1"][index] = (r["F1"][index] - r["B1"][index]) / ((v[1] - v[-1]) / 2)
        r["C2"][index] = (r["F2"][index] - r["B2"][index]) / ((v[2] - v[-2]) / 2)
        r["half"][index] = (v[1] - v[-1]) / 2
        r["h"][index] = h
        # The chord from v[-1] to v[1] has the slope of f' at its midpoint,
        # which rounding moved from v by -(e[1] + e[-1]) / 2.
        r["shift"][index] = abs(e[1] + e[-1]) / 2
        r["fmax"][index] = max(abs(value) for value in f.values())
        count[index] = int(np.count_nonzero(moved))
    return r, count


def _error_estimates(
    raw: Mapping[str, Mapping[str, Array]], delta: float, loss_terms_count: int
) -> tuple[dict[str, Array], dict[str, tuple[Array, Array]], dict[str, tuple[Array, Array]]]:
    """The error estimates of the central and of the one-sided differences."""
    error, one_sided, one_sided_error = {}, {}, {}
    for key, r in raw.items():
        # delta bounds the rounding at v; near a minimum f(v +- h) can be far
        # larger than f(v), so the loss-sum part is also taken at the largest
        # value evaluated for this entry.
        delta_entry = delta + ROUNDING_SAFETY * EPS64 * (loss_terms_count + 8) * r["fmax"]
        rounding = delta_entry / r["half"]
        curvature = np.maximum(np.abs(r["C1"]), np.abs(r["C2"])) + 4 * delta_entry / r["h"] ** 2
        error[key] = (
            TRUNCATION_SAFETY * np.abs(r["D1"] - r["D2"])
            + rounding
            + curvature * r["shift"]
            + 4 * EPS64 * np.abs(r["D1"])
        )
        one_sided[key] = (r["F1"], r["B1"])
        one_sided_error[key] = (
            _one_sided_error(r["F1"], r["F2"], rounding),
            _one_sided_error(r["B1"], r["B2"], rounding),
        )
    return error, one_sided, one_sided_error


def _one_sided_error(D1: Array, D2: Array, rounding: Array) -> Array:
    """``2 |F(h) - F(2h)| + 2 delta_v / h + 4 eps |F(h)|``: an O(h) leading term."""
    return TRUNCATION_SAFETY * np.abs(D1 - D2) + 2 * rounding + 4 * EPS64 * np.abs(D1)


def supported_side(
    manual: float | Array,
    oracle: float | Array,
    fd_result: FiniteDifferenceResult,
    key: str,
    index: Index,
) -> str:
    """Which of two disagreeing gradient values finite differences support.

    Parameters
    ----------
    manual, oracle : the two values at entry ``index`` of gradient ``key``, or
        whole gradient arrays (of the shape of variable ``key``) to index
    fd_result : ``finite_difference_gradients`` of the same case
    key : ``Wl``, ``Bl``, ``Zl``, ``Al`` or ``A0``
    index : the entry, e.g. ``(i, j)``

    Returns
    -------
    ``"manual"``, ``"oracle"``, ``"both"`` or ``"neither"``: the values inside
    ``fd_result.interval(key, index)``, i.e. within the error estimate of the
    central difference, or at a kink between the one-sided differences
    (widened by their error estimates).  Where several pre-activations cross
    at once (``fd_result.crossings[key][index] > 1``) even a correct
    chain-rule value may lie outside, so there an answer other than
    ``"both"`` is inconclusive.
    """
    index = tuple(index)

    def entry(value: float | Array) -> float:
        value = np.asarray(value, dtype=np.float64)
        return float(value[index] if value.ndim else value)

    manual_ok = fd_result.supports(key, index, entry(manual))
    oracle_ok = fd_result.supports(key, index, entry(oracle))
    if manual_ok and oracle_ok:
        return "both"
    if manual_ok:
        return "manual"
    if oracle_ok:
        return "oracle"
    return "neither"
