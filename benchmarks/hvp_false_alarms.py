"""False alarms of ``check_hvp``'s comparison on correct second-order products.

Each drawn case (``manual_bp_reference.draws.draw_example``: depth 1-3,
widths and batch up to ``--width`` / ``--batch``, every activation and loss,
values from exact zeros and subnormals to ``|W|, |B| <= 10``, ``|X| <= 100``;
even indices float64, odd float32), with a direction ``V`` drawn the same way
(``|V| <= 10``) and a decay ``l2`` in ``(0, 0.1, 1)`` by its index, is moved
off its kinks as the check moves them (but one case in five is left as drawn:
its ``Z`` near a kink must be excused, not failed) and compared
(``compare_hvp``, the bucket-compiled oracle: one compilation per bucket)
with four correct implementations:

* ``curvature-H``, ``curvature-G``: ``manual_bp.curvature``'s
  ``hessian_vector_product`` and ``ggn_vector_product``;
* ``student-H``, ``student-G``: ``benchmarks.hvp_styles``' independent,
  straightforward R-operator (its own activation formulas, ``np.dot``).

A false alarm is an err/tol above 1 (or a detail: NaN where the oracle is
finite).  Printed: calls, false alarms, the worst err/tol per implementation
and dtype (and over the cases with no ``Z`` within rounding of a kink), the
calls with undecided entries (a kink, or a tolerance that reaches the
product's scale), and the wall time.

Measured figures are in ``benchmarks/RESULTS.md`` ("Issue 28: ``check_hvp``'s false
alarms").  Its first run found 9 (the student's elu ``exp(z) - 1``, outside the
shared elu model: ``tolerance.curvature._naive_value_error``, and the
regression tests of ``property_tests/test_hvp_check.py``).

Usage::

    python -m benchmarks.hvp_false_alarms [--cases 2500] [--seed 0] [--width 8] [--batch 8]
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.environment import print_environment
from benchmarks.false_alarm_tally import Tally, parser
from benchmarks.hvp_styles import student_ggn, student_hvp
from manual_bp.curvature import ggn_vector_product, hessian_vector_product
from manual_bp_reference.cases import Case
from manual_bp_reference.draws import Limits, draw_example, signed_array
from manual_bp_reference.hvp_check import DIRECTION_BOUND, HVPCase, compare_hvp, hvp_oracle
from manual_bp_reference.kinks import away_from_kinks

L2S = (0.0, 0.1, 1.0)
AS_DRAWN = 5  # every fifth case keeps its kinks
# Each called as (params, X, Y, V, net).
IMPLEMENTATIONS = {
    "curvature-H": ("hessian", lambda p, X, Y, V, net: hessian_vector_product(p, X, Y, net, V)),
    "curvature-G": ("ggn", lambda p, X, Y, V, net: ggn_vector_product(p, X, Y, net, V)),
    "student-H": ("hessian", student_hvp),
    "student-G": ("ggn", student_ggn),
}


def draw_case(seed: int, index: int, limits: Limits) -> tuple[HVPCase, str]:
    """Case ``index``: the drawn example, its decay, a direction, its kinks
    moved (but every ``AS_DRAWN``-th); and its description."""
    example = draw_example(seed, index, limits=limits)
    drawn = example.case if index % AS_DRAWN == AS_DRAWN - 1 else away_from_kinks(example.case)
    case = Case(drawn.net.with_l2(L2S[index % len(L2S)]), drawn.params, drawn.X, drawn.Y)
    rng = np.random.default_rng([seed, index, 1])
    V = {key: signed_array(rng, value.shape, DIRECTION_BOUND, case.dtype)
         for key, value in case.params.items()}  # fmt: skip
    return HVPCase(case, V), f"{example.describe()} l2={case.l2}"


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0], 2500).parse_args(argv)
    print_environment("Hessian- and GGN-vector products, false alarms")
    limits = Limits(depth=3, width=args.width, batch=args.batch)
    # The worst also over the cases with no Z within rounding of a kink.
    tally = Tally(kinks=True)
    start = time.perf_counter()
    for index in range(args.cases):
        case, described = draw_case(args.seed, index, limits)
        inner = case.case
        oracles = {product: hvp_oracle(case, product=product, compiled="bucket")
                   for product in ("hessian", "ggn")}  # fmt: skip
        for name, (product, function) in IMPLEMENTATIONS.items():
            with np.errstate(all="ignore"):
                returned = function(dict(inner.params), np.array(inner.X), np.array(inner.Y),
                                    dict(case.V), inner.net)  # fmt: skip
            run = compare_hvp(case, returned, product=product, oracle=oracles[product])
            tally.add((name, inner.dtype), run, described,
                      excused=oracles[product].bounds.excused)  # fmt: skip
    return tally.report(args.cases, time.perf_counter() - start, name_width=12)


if __name__ == "__main__":
    raise SystemExit(main())
