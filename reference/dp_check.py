"""``check_dp_step``: property-check anyone's DP-SGD step (clip, average, add noise).

The user's ``function(per_example, noise)`` takes

* ``per_example``: a dict of ``(m, *shape)`` arrays, ``g_i[θ]`` (keys like
  ``W1``, ``B1``, ...; one float dtype; ``manual_bp.per_example``'s layout);
* ``noise``: a dict of standard normal draws ``ξ_θ`` of each parameter's
  ``shape``, in the same dtype (the check controls the randomness);

and returns the privatised mean gradient, a dict of ``shape`` arrays
(``manual_bp.dp_sgd``'s definition, with the check's ``C = clip`` and
``σ = noise_multiplier``)::

    ||g_i||^2 = sum_θ ||g_i[θ]||_F^2                  every parameter together
    s_i       = min(1, C / (||g_i|| + ε)) = C / max(||g_i|| + ε, C)
    g~[θ]     = (1/m) sum_i s_i g_i[θ]  +  (σ C / m) ξ_θ

``ε = clip_eps`` is the clip denominator's stabiliser, 0 by default (then
``s_i = C / max(||g_i||, C)`` exactly); Opacus writes ``C / (||g|| + 1e-6)``
(declare ``clip_eps=1e-6``).  The clipped norm stays ``<= C`` either way.

The oracle is the same formula in ``jax.numpy``, float64, compiled once per
set of shapes.  Cases are drawn with Hypothesis: a few parameter layouts,
``m`` from 1 to ``max_batch``, each example's norm a multiple of ``C`` from
``0`` (a zero gradient) through far below, exactly ``C``, to far above
(``NORM_RATIOS``, or any in between), float64 or float32 (``Settings.dtype``).
The largest norm drawn is ``1e3 C``: its squares must fit the dtype
(``C`` below about ``1e16`` in float32).

Tolerance, entry by entry, from a first-order rounding model (``u`` =
``eps(dtype) + eps(float64)``, ``unit_roundoff``; ``P`` the parameter count)::

    the norm          (P + 2) u ||g_i||       (P squares summed, the root)
    the scale         (P + 8) u s_i           (the norm's error, the division, the min;
                                               a per-key then whole norm: a few u more)
                      + 2 u s_i when ε > 0    (the sum ||g_i|| + ε rounded, ε rounded
                                               to the dtype)
    the mean          (m + 1) u (1/m) sum_i s_i |g_i[θ]|  (the products, the sum, the 1/m)
    the noise term    4 u |σ C / m ξ_θ|       (σ C, / m, · ξ, C rounded to the dtype)
    the final sum     u |g~[θ]|

summed (the scale's error enters as ``(1/m) sum_i δs_i |g_i[θ]|``), times
``SAFETY``, plus the dtype's smallest normal number (an underflow to 0).

The kink at ``||g_i|| = C``: ``min(1, C / ||g||)`` is not differentiable
there but is continuous, and its value is all this check compares: a norm
rounded across ``C`` moves ``s_i`` by no more than the norm's own relative
error.  So no undecided region is needed (unlike a gradient's kink).

On a mismatch, the diagnosis names the first bug of the catalogue (``BUGS``)
whose formula, evaluated in float64 on the case, the user's values match
within ``BUG_TOLERANCES`` of that formula's own tolerance plus
``BUG_ROUNDING (P + m) u`` of its value; a formula that gives the right
answer on the case (``σ = 0`` for the noise bugs, ``C = 1`` for ``σ``
instead of ``σ C``, no example above ``C`` for the clipping bugs) is not
named.  The formulas use the declared ``ε``; the convention entries ``ε in
the clip denominator`` (one per conventional ``ε`` of ``CLIP_EPS_CANDIDATES``)
and ``no ε in the clip denominator`` name an ``ε`` not declared or declared
but absent, and when nothing matches, each bug is tried again with each
conventional ``ε`` (a per-parameter clip written Opacus's way).  A step whose
values differ from the noiseless clipped mean by noise of about ``σ C / m``,
but not the check's ``ξ``, gets a hint: it draws its own noise.

>>> import numpy as np
>>> from manual_bp.dp_sgd import clipped_mean
>>> from manual_bp_reference.settings import Settings
>>> def step(per_example, noise):
...     m = next(iter(per_example.values())).shape[0]
...     mean = clipped_mean(per_example, 1.5)
...     return {k: mean[k] + 0.7 * 1.5 / m * noise[k] for k in mean}
>>> report = check_dp_step(step, clip=1.5, noise_multiplier=0.7,
...                        settings=Settings(max_examples=5, isolate=False))
>>> report.examples
5
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from manual_bp_reference.check import (
    CataloguedMismatch,
    CheckReport,
    batch_span,
    nonfinite,
    printed_lines,
    record_worst,
    run_catalogued,
    run_line,
    worst_text,
)
from manual_bp_reference.check_run import CaseProperty, CaseRun, check_function
from manual_bp_reference.compare import Comparison, bound_ratio, compare_variable
from manual_bp_reference.conventions import describe_value
from manual_bp_reference.jax_setup import jax, jnp
from manual_bp_reference.settings import COMMON, Settings
from manual_bp_reference.tolerance import SAFETY
from manual_bp_reference.tolerance.rounding import unit_roundoff

Array = np.ndarray
Grads = dict[str, Array]

# The parameter layouts drawn (a dense net's W, B shapes), smallest first.
LAYOUTS: tuple[dict[str, tuple[int, ...]], ...] = (
    {"W1": (1, 2), "B1": (1, 1)},
    {"W1": (2, 3), "B1": (2, 1)},
    {"W1": (3, 2), "B1": (3, 1), "W2": (1, 3), "B2": (1, 1)},
)
# Each example's norm as a multiple of C: zero, far below, exactly C, far above.
NORM_RATIOS = (0.0, 1e-3, 0.1, 0.5, 1.0, 1.5, 10.0, 1e3)
MAX_BATCH = 6
# A catalogued formula matches within this many of its own tolerances ...
BUG_TOLERANCES = 4.0
# ... plus this many units of rounding per parameter and example of its value.
BUG_ROUNDING = 64.0
# The ε people put in the clip denominator, most common first (Opacus: 1e-6).
CLIP_EPS_CANDIDATES = (1e-6, 1e-8, 1e-5, 1e-7, 1e-10, 1e-12)
# A residual this close to the noise's scale σ C / m (a factor, either way) is
# taken for noise the step drew itself.
OWN_NOISE_FACTOR = 3.0
# The settings this check reads (the others are refused): Settings' common
# fields and these.
USED = ("max_examples", "max_batch", "shrink")


# --- the case ------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class DPCase:
    """One drawn call: ``per_example`` (``(m, *shape)`` arrays), ``noise``
    (``shape`` arrays), the check's ``clip``, ``noise_multiplier`` and
    ``clip_eps`` (``ε``); arrays copied and read-only."""

    per_example: dict[str, Array]
    noise: dict[str, Array]
    clip: float
    noise_multiplier: float
    clip_eps: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_eps", _check_clip_eps(self.clip_eps))
        for name in ("per_example", "noise"):
            frozen = {}
            for key, value in getattr(self, name).items():
                array = np.array(value)
                array.flags.writeable = False
                frozen[key] = array
            object.__setattr__(self, name, frozen)

    @property
    def m(self) -> int:
        return int(next(iter(self.per_example.values())).shape[0])

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.per_example.values())).dtype

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: tuple(value.shape[1:]) for key, value in self.per_example.items()}

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.shapes.values())

    def __repr__(self) -> str:
        def arrays(values: Mapping[str, Array]) -> str:
            return "{" + ", ".join(
                f"{key!r}: np.array({value.tolist()!r}, dtype=np.{value.dtype})"
                for key, value in values.items()
            ) + "}"  # fmt: skip

        eps = f", clip_eps={self.clip_eps!r}" if self.clip_eps else ""
        return (
            f"DPCase(per_example={arrays(self.per_example)}, noise={arrays(self.noise)}, "
            f"clip={self.clip!r}, noise_multiplier={self.noise_multiplier!r}{eps})"
        )


@st.composite
def dp_cases(
    draw: st.DrawFn,
    *,
    clip: float,
    noise_multiplier: float,
    dtype: str,
    max_batch: int,
    clip_eps: float = 0.0,
) -> DPCase:
    """A ``DPCase``: a layout of ``LAYOUTS``, ``m`` in ``1..max_batch``, each
    example's norm ``r C`` (``r`` from ``NORM_RATIOS`` or in ``[0, 1e3]``)
    along a drawn direction, and standard normal noise."""
    shapes = draw(st.sampled_from(LAYOUTS))
    m = draw(st.integers(1, max_batch))
    P = sum(int(np.prod(shape)) for shape in shapes.values())
    unit = st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False)
    rows = []
    for _ in range(m):
        direction = np.array(draw(st.lists(unit, min_size=P, max_size=P)))
        ratio = draw(st.sampled_from(NORM_RATIOS) | st.floats(0.0, 1e3))
        length = float(np.linalg.norm(direction))
        row = direction / length * (ratio * clip) if length > 0 and ratio > 0 else 0 * direction
        rows.append(row)
    flat = np.array(rows).astype(dtype)  # (m, P)
    per_example, start = {}, 0
    for key, shape in shapes.items():
        size = int(np.prod(shape))
        per_example[key] = flat[:, start : start + size].reshape(m, *shape)
        start += size
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    noise = {key: rng.standard_normal(shape).astype(dtype) for key, shape in shapes.items()}
    return DPCase(per_example, noise, clip, noise_multiplier, clip_eps)


# --- the oracle and the tolerance ----------------------------------------------------------


@jax.jit
def _oracle(per_example, noise, clip, sigma, eps):
    """``(1/m) sum_i s_i g_i + (σ C / m) ξ`` in ``jax.numpy`` (float64),
    ``s_i = C / max(||g_i|| + ε, C)`` (``min(1, C / (||g_i|| + ε))``)."""
    m = next(iter(per_example.values())).shape[0]
    squared = sum(jnp.sum(g.reshape(m, -1) ** 2, axis=1) for g in per_example.values())
    scale = clip / jnp.maximum(jnp.sqrt(squared) + eps, clip)
    return {
        key: jnp.tensordot(scale, g, axes=(0, 0)) / m + sigma * clip / m * noise[key]
        for key, g in per_example.items()
    }


def dp_oracle(case: DPCase) -> Grads:
    """The oracle's privatised mean of ``case``, float64 (``jax.numpy``)."""
    f64 = {k: np.asarray(v, np.float64) for k, v in case.per_example.items()}
    xi = {k: np.asarray(v, np.float64) for k, v in case.noise.items()}
    out = jax.device_get(_oracle(f64, xi, case.clip, case.noise_multiplier, case.clip_eps))
    return {key: np.asarray(value, np.float64) for key, value in out.items()}


def _scaled_mean_bound(
    g: Mapping[str, Array], scale: Mapping[str, Array], noise_term: Mapping[str, Array],
    values: Mapping[str, Array], P: int, u: float, tiny: float,
) -> Grads:  # fmt: skip
    """The module's tolerance, for scales ``scale[key]`` (``(m,)`` or broadcastable)."""
    bounds = {}
    for key, gk in g.items():
        m = gk.shape[0]
        s = scale[key].reshape(-1, *([1] * (gk.ndim - 1)))
        scaled = np.sum(s * np.abs(gk), axis=0) / m
        bound = (P + 8) * u * scaled + (m + 1) * u * scaled
        bound = bound + 4 * u * np.abs(noise_term[key]) + u * np.abs(values[key])
        bounds[key] = SAFETY * bound + tiny
    return bounds


def _norms(g: Mapping[str, Array]) -> Array:
    m = next(iter(g.values())).shape[0]
    return np.sqrt(sum(np.sum(v.reshape(m, -1) ** 2, axis=1) for v in g.values()))


def _formula(
    case: DPCase,
    *,
    clipping: str = "whole",
    noise_std: Callable[[float, float, int], float] = lambda sigma, C, m: sigma * C / m,
    eps: float | None = None,
) -> tuple[Grads, Grads]:
    """A DP step's values in float64 NumPy and their tolerance: the correct
    one (the defaults) or a catalogued bug's (``clipping``: ``"whole"``,
    ``"per-tensor"``, ``"after mean"``, ``"no min"``, ``"squared norm"``;
    ``noise_std(σ, C, m)``; ``eps`` the clip denominator's ``ε``, None: the
    case's ``clip_eps``)."""
    g = {k: np.asarray(v, np.float64) for k, v in case.per_example.items()}
    m, C, sigma = case.m, case.clip, case.noise_multiplier
    e = case.clip_eps if eps is None else eps
    if clipping == "after mean":
        g = {k: v.mean(axis=0, keepdims=True) for k, v in g.items()}
    norms = _norms(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        if clipping in ("whole", "after mean"):
            s = C / np.maximum(norms + e, C)
        elif clipping == "squared norm":
            s = C / np.maximum(norms**2 + e, C)
        elif clipping == "no min":
            s = np.where(norms > 0, C / (norms + e), 0.0)  # a zero gradient contributes 0
        else:
            s = None
    if clipping == "per-tensor":
        scale = {
            k: C / np.maximum(np.linalg.norm(v.reshape(m, -1), axis=1) + e, C) for k, v in g.items()
        }
    else:
        assert s is not None
        scale = {k: s for k in g}
    std = noise_std(sigma, C, m)
    noise_term = {k: std * np.asarray(v, np.float64) for k, v in case.noise.items()}
    values = {}
    for k, v in g.items():
        sk = scale[k].reshape(-1, *([1] * (v.ndim - 1)))
        values[k] = np.sum(sk * v, axis=0) / v.shape[0] + noise_term[k]
    u = unit_roundoff(case.dtype)
    tiny = float(np.finfo(case.dtype).tiny)
    # ε > 0: the sum ||g_i|| + ε rounded and ε rounded to the dtype, 2 u more in the scale.
    terms = case.parameters + (2 if e > 0 else 0)
    return values, _scaled_mean_bound(g, scale, noise_term, values, terms, u, tiny)


def dp_tolerance(case: DPCase) -> Grads:
    """The per-entry tolerance of ``case``'s privatised mean (the module's notes)."""
    return _formula(case)[1]


# --- the bug catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class DPBug:
    """One classic DP-SGD bug (or convention mismatch): its name, its formula
    in words, and ``_formula``'s keywords that compute it (``eps`` the clip
    denominator's ``ε``, None: the declared one)."""

    name: str
    formula: str
    clipping: str = "whole"
    noise_std: Callable[[float, float, int], float] = lambda sigma, C, m: sigma * C / m
    eps: float | None = None


def _eps_text(eps: float) -> str:
    """``1e-06`` written ``1e-6``, as people write it."""
    return f"{eps:g}".replace("e-0", "e-").replace("e+0", "e+")


def _declare(eps: float) -> str:
    text = _eps_text(eps)
    return f"declare it with clip_eps={text} (--clip-eps {text} on the command line)"


def _with(eps: float) -> str:
    """A bug's formula's ending when it matches with ``eps`` in the clip denominator."""
    if eps == 0:
        return "with no ε added to the norm (declare clip_eps=0, the default, if so)"
    return f"with {_eps_text(eps)} added to the norm: {_declare(eps)}"


EPS_NAME = "ε in the clip denominator (as Opacus's C / (‖g‖ + ε))"
NO_EPS_NAME = "no ε in the clip denominator"


BUGS: tuple[DPBug, ...] = (
    DPBug("clipping after averaging",
          "clip((1/m) sum_i g_i) + σ C/m ξ: the mean clipped, not each example",
          clipping="after mean"),
    DPBug("each parameter clipped separately",
          "s_iθ = min(1, C / ||g_i[θ]||): per-tensor norms instead of the whole gradient's",
          clipping="per-tensor"),
    DPBug("norms squared twice",
          "s_i = min(1, C / ||g_i||^2): the sum of squares used as the norm",
          clipping="squared norm"),
    DPBug("the clip factor without the min",
          "s_i = C / ||g_i||: small gradients scaled up to norm C",
          clipping="no min"),
    DPBug("noise divided by m twice",
          "noise std σ C / m^2 instead of σ C / m",
          noise_std=lambda sigma, C, m: sigma * C / m**2),
    DPBug("noise without the 1/m",
          "noise std σ C instead of σ C / m (the sum's noise added to the mean)",
          noise_std=lambda sigma, C, m: sigma * C),
    DPBug("noise std σ instead of σ C",
          "noise std σ / m: the clip norm left out of the noise",
          noise_std=lambda sigma, C, m: sigma / m),
    *(DPBug(EPS_NAME,
            f"s_i = min(1, C / (||g_i|| + {_eps_text(eps)})), a convention, not a bug: "
            f"{_declare(eps)}", eps=eps)
      for eps in CLIP_EPS_CANDIDATES),
    DPBug(NO_EPS_NAME,
          "s_i = min(1, C / ||g_i||): the declared clip_eps is not in your clip factor "
          "(declare clip_eps=0, the default, if that is your convention)", eps=0.0),
)  # fmt: skip
BUG_NAMES = tuple(dict.fromkeys(bug.name for bug in BUGS))


def diagnose_dp_step(case: DPCase, values: Mapping[str, Array]) -> list[DPBug]:
    """The catalogued bugs whose formula ``values`` match on ``case``, best
    first; a formula that gives the right answer on the case is left out."""
    correct = dp_oracle(case)
    found = _matching(case, values, correct, BUGS)
    if not found:  # a bug written with a conventional ε not declared (or declared, not used)
        found = _matching(case, values, correct, [
            dataclasses.replace(bug, eps=eps, formula=f"{bug.formula}, {_with(eps)}")
            for eps in (*CLIP_EPS_CANDIDATES, 0.0) if eps != case.clip_eps
            for bug in BUGS if bug.eps is None
        ])  # fmt: skip
    return [bug for _, bug in sorted(found, key=lambda pair: pair[0])]


def _matching(
    case: DPCase, values: Mapping[str, Array], correct: Grads, bugs: Sequence[DPBug]
) -> list[tuple[float, DPBug]]:
    """``(ratio, bug)`` for each of ``bugs`` whose formula ``values`` match on
    ``case`` and ``correct`` (the oracle's values) does not.

    A bug is invisible where its formula lies within the *verdict's*
    tolerance of the correct values (not the wider bound its match is
    judged by: in float32 that bound's slack alone hides a 1e-6 in the clip
    denominator at a norm of exactly C, the case shrinking ends on); a
    visible bug is named when ``values`` match its formula within that bound
    and lie nearer to it than to the correct values."""
    slack = BUG_ROUNDING * (case.parameters + case.m) * unit_roundoff(case.dtype)
    found = []
    for bug in bugs:
        expected, tol = _formula(case, clipping=bug.clipping, noise_std=bug.noise_std,
                                 eps=bug.eps)  # fmt: skip
        if bound_ratio(correct, expected, tol) <= 1.0:
            continue  # invisible on this case
        bound = {k: BUG_TOLERANCES * tol[k] + slack * np.abs(expected[k]) for k in expected}
        ratio = bound_ratio(values, expected, bound)
        if ratio <= 1.0 and bound_ratio(values, expected, tol) < bound_ratio(values, correct, tol):
            found.append((ratio, bug))
    return found


def own_noise(case: DPCase, values: Mapping[str, Array]) -> bool:
    """Whether ``values`` look like the noiseless clipped mean plus noise the
    step drew itself: ``σ > 0``, the residual lies at least half the norm of the
    check's ``(σ C / m) ξ`` away from it, and its root mean square is within
    ``OWN_NOISE_FACTOR`` of ``σ C / m``.  A hint, not a verdict."""
    std = case.noise_multiplier * case.clip / case.m
    if std <= 0 or any(
        k not in values or np.shape(values[k]) != v.shape for k, v in case.noise.items()
    ):
        return False
    noiseless = dataclasses.replace(case, noise_multiplier=0.0)
    mean, _ = _formula(noiseless)
    residual = np.concatenate([
        (np.asarray(values[k], np.float64) - mean[k]).ravel() for k in mean
    ])  # fmt: skip
    if not np.all(np.isfinite(residual)):
        return False
    given = np.concatenate([std * np.asarray(case.noise[k], np.float64).ravel() for k in mean])
    if np.linalg.norm(residual - given) < np.linalg.norm(given) / 2:
        return False  # mostly the check's own noise: something else is wrong
    rms = float(np.sqrt(np.mean(residual**2)))
    return std / OWN_NOISE_FACTOR <= rms <= std * OWN_NOISE_FACTOR


# --- comparing one case --------------------------------------------------------------------


@dataclass(frozen=True)
class DPRun(CaseRun):
    """``compare_dp_step``'s answer: the comparison, the failure details, the
    notes and the user's values as read."""


def compare_dp_step(case: DPCase, returned: object) -> DPRun:
    """Compare what ``function(case.per_example, case.noise)`` returned with
    the oracle, entry by entry within ``dp_tolerance(case)``."""
    expected, bounds = dp_oracle(case), dp_tolerance(case)
    dtype = case.dtype
    details: list[str] = []
    notes: set[str] = set()
    values: dict[str, Array] = {}
    if isinstance(returned, Mapping):
        for key in expected:
            if key in returned:
                try:
                    array = np.asarray(returned[key])
                except (TypeError, ValueError):
                    continue
                if array.dtype.kind == "f" and array.dtype != dtype:
                    notes.add(f"{key}: dtype {array.dtype} returned for {dtype} gradients "
                              f"(judged in {dtype})")  # fmt: skip
                    array = array.astype(dtype)
                values[key] = array
        extra = sorted(str(key) for key in returned if key not in expected)
        if extra:
            notes.add(f"keys returned that are no parameter's, not checked: {extra}")
    else:
        shapes = ", ".join(f"{key}: {shape}" for key, shape in case.shapes.items())
        details.append(f"function returned {describe_value(returned)}; expected a dict of the "
                       f"privatised mean gradient ({shapes})")  # fmt: skip
    variables = {
        key: compare_variable(key, values.get(key), expected[key], bounds[key], dtype)
        for key in expected
    }
    broken = nonfinite(values)
    if broken:
        where = "; ".join(f"{k}: {n} entries, first at {i}" for k, (n, i) in broken.items())
        details.append(f"NaN/inf in your values where the oracle's are finite ({where})")
    comparison = Comparison(variables, 0.0, 0.0, 0.0, unit_roundoff(dtype), loss_compared=False)
    return DPRun(comparison, details, notes, values)


# --- the report and the mismatch -----------------------------------------------------------


@dataclass
class DPStepReport(CheckReport):
    """What a passing ``check_dp_step`` ran: examples, batch sizes, worst
    err/tol per key, and the ``clip``, ``noise_multiplier`` and ``clip_eps`` checked."""

    clip: float = 1.0
    noise_multiplier: float = 0.0
    clip_eps: float = 0.0

    def add_run(self, case: DPCase, comparison: Comparison) -> None:
        self.examples += 1
        self.batch_sizes.add(case.m)
        record_worst(self.worst, comparison.variables)

    def __str__(self) -> str:
        eps = f", ε = {_eps_text(self.clip_eps)}" if self.clip_eps else ""
        lines = [
            f"PASS (DP step, C = {self.clip:g}, σ = {self.noise_multiplier:g}{eps}): "
            f"{self.examples} examples, batch sizes {batch_span(self.batch_sizes)} "
            f"({len(self.batch_sizes)} distinct)",
            f"worst error/tolerance per key: {worst_text(self.named_worst())}",
        ]
        lines += self._notes()
        lines += printed_lines(self.output, "the first call that printed anything")
        lines.append(run_line(self.seed, self.isolation))
        return "\n".join(lines)


class DPStepMismatch(CataloguedMismatch):
    """A user's DP step disagrees with the oracle (or raised, timed out, or
    ended its process): ``.comparison`` and ``.case`` (a ``DPCase``) the
    minimal failing case, ``.values`` what the function returned on it,
    ``.bugs`` the catalogued bugs it matches, best first (``.bug`` the
    first's name); the rest as ``manual_bp_reference.check.Mismatch``."""

    catalogue = "DP-SGD"
    bugs: tuple[DPBug, ...]

    def _verdict_line(self) -> str:
        suffix = " (DP-SGD step)" if self.comparison is not None else ""
        return f"verdict: {self.verdict}{suffix}"

    def _describe(self, case: Any) -> str:
        return f"m = {case.m}, shapes {case.shapes}"

    def _larger_case(self, case: Any) -> str:
        return f"{self._another(case)} failing case ({self._describe(case)}):"

    def _as_the_user_calls_it(self) -> list[str]:
        if self.case is None:
            return []
        return ["your function's call on it:",
                f"{self.function}(dict(case.per_example), dict(case.noise))"]  # fmt: skip

    def _diagnose(self, case: DPCase, values: Mapping[str, Array]) -> list[DPBug]:
        return diagnose_dp_step(case, values)

    def _bug_lines(self) -> list[str]:
        lines = super()._bug_lines()
        if self.comparison is not None and not self.bugs and self.case is not None:
            if own_noise(self.case, self.values):
                lines.append(
                    "hint: your step seems to draw its own noise: use the `noise` argument "
                    "the check passes (the same ξ every run), adding (σ C / m) · noise"
                )
        return lines


# --- the check -----------------------------------------------------------------------------


def _check_clip(clip: object) -> float:
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip: expected a float > 0, got {type(clip).__name__} {clip!r}")
    if not (np.isfinite(float(clip)) and float(clip) > 0):
        raise ValueError(f"clip: expected a finite float > 0, got {clip}")
    return float(clip)


def _check_sigma(sigma: object) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(
            f"noise_multiplier: expected a float >= 0, got {type(sigma).__name__} {sigma!r}"
        )
    if not (np.isfinite(float(sigma)) and float(sigma) >= 0):
        raise ValueError(f"noise_multiplier: expected a finite float >= 0, got {sigma}")
    return float(sigma)


def _check_clip_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"clip_eps: expected a float >= 0, got {type(eps).__name__} {eps!r}")
    if not (np.isfinite(float(eps)) and float(eps) >= 0):
        raise ValueError(f"clip_eps: expected a finite float >= 0, got {eps}")
    return float(eps)


def _resolved(settings: object) -> Any:
    """``settings`` with this check's defaults (``max_batch`` ``MAX_BATCH``);
    a drawing field it does not use is a ValueError naming it."""
    if settings is None:
        settings = Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings: expected a Settings, got {settings!r}")
    for field in dataclasses.fields(settings):
        if field.name not in USED and field.name not in COMMON:
            if getattr(settings, field.name) is not None:
                raise ValueError(
                    f"settings.{field.name}: check_dp_step draws per-example gradients and "
                    f"noise; its settings are {', '.join((*USED, *COMMON))}"
                )
    if settings.max_batch is None:
        settings = dataclasses.replace(settings, max_batch=MAX_BATCH)
    return settings.resolved("check_gradients")


def check_dp_step(
    function: Callable[..., object] | str,
    *,
    clip: float,
    noise_multiplier: float,
    clip_eps: float = 0.0,
    settings: Settings | None = None,
) -> DPStepReport:
    """Property-check ``function(per_example, noise) -> privatised mean``
    against the DP-SGD step ``(1/m) sum_i min(1, C/(||g_i|| + ε)) g_i + (σ C/m) ξ``.

    ``function``: a callable, or ``"FILE.py:NAME"`` / ``"MODULE:NAME"``, run
    in a child process as ``check_gradients`` runs a backprop; it takes
    ``per_example`` (a dict of ``(m, *shape)`` arrays) and ``noise`` (a dict
    of standard normal ``shape`` arrays, the same dtype) and returns a dict
    of ``shape`` arrays.  ``clip``: ``C > 0``; ``noise_multiplier``: ``σ >=
    0``.  ``clip_eps``: ``ε >= 0`` added to each norm in the clip factor
    (default 0: ``C / max(||g_i||, C)``; Opacus's ``C / (||g|| + 1e-6)`` is
    ``clip_eps=1e-6``).  ``settings``: ``max_examples``, ``max_batch`` (default 6),
    ``shrink``, ``dtype``, ``seed`` and the isolation fields.

    Returns a ``DPStepReport`` on a pass; raises ``DPStepMismatch`` on the
    minimal failing case, naming the catalogued bug (``BUGS``) its values
    match.  The same check gives the same verdict every run.
    """
    source = check_function(function, "function", "(per_example, noise) -> mean gradient dict")
    C, sigma = _check_clip(clip), _check_sigma(noise_multiplier)
    eps = _check_clip_eps(clip_eps)
    chosen = _resolved(settings)
    strategy = dp_cases(clip=C, noise_multiplier=sigma, dtype=chosen.dtype,
                        max_batch=chosen.max_batch, clip_eps=eps)  # fmt: skip
    report = DPStepReport(seed=chosen.seed, isolation=chosen.isolation.describe(), clip=C,
                          noise_multiplier=sigma, clip_eps=eps)  # fmt: skip
    spec = CaseProperty("check_dp_step", DPStepMismatch, _arguments, compare_dp_step,
                        report=report, record=report.add_run)  # fmt: skip
    mismatch = run_catalogued(source, ("per_example", "noise"), strategy, chosen, spec)
    if mismatch is not None:
        raise mismatch from None
    return report


def _arguments(case: DPCase) -> tuple[object, ...]:
    """What the user's step is called with on ``case``: copies of its arrays."""
    return ({k: np.array(v) for k, v in case.per_example.items()},
            {k: np.array(v) for k, v in case.noise.items()})  # fmt: skip
