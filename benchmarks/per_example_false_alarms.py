"""False alarms of ``check_per_example``'s comparison on correct per-example code.

Each drawn case (``manual_bp_reference.draws.draw_example``: depth 1-3,
widths and batch up to ``--width`` / ``--batch``, every activation and loss,
values from exact zeros and subnormals to ``|W|, |B| <= 10``, ``|X| <= 100``;
even indices float64, odd float32), moved off its kinks as the check moves
them and given a decay ``l2`` in ``(0, 0.1, 1)`` by its index, is compared
(``compare_per_example``, the bucket-compiled oracle: one compilation) with
four correct implementations:

* ``product``: ``manual_bp.per_example.per_example_gradients`` (one
  unaveraged backward pass);
* ``loop``: ``network.backward`` on each column, a batch of one;
* ``goodfellow``: ``per_example_norms`` (norms without the gradients);
* ``loop-norms``: ``np.linalg.norm`` of the loop's gradients.

A false alarm is an err/tol above 1 (or a detail: NaN where the oracle is
finite).  Printed: calls, false alarms, the worst err/tol per
implementation and dtype, and the wall time.

Usage::

    python -m benchmarks.per_example_false_alarms [--cases 10000] [--seed 0]
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.environment import print_environment
from benchmarks.false_alarm_tally import Tally, parser
from manual_bp import network
from manual_bp.per_example import per_example_gradients, per_example_norms
from manual_bp_reference.cases import Case
from manual_bp_reference.draws import Limits, draw_example
from manual_bp_reference.kinks import away_from_kinks
from manual_bp_reference.per_example_check import compare_per_example, per_example_oracle

L2S = (0.0, 0.1, 1.0)


def looped(params, X, Y, net):
    per_sample = []
    for i in range(X.shape[1]):
        _, cache = network.forward(params, X[:, i : i + 1], net)
        per_sample.append(network.backward(cache, Y[:, i : i + 1], net))
    return {key: np.stack([g[key] for g in per_sample]) for key in params}


def looped_norms(params, X, Y, net):
    g = looped(params, X, Y, net)
    flat = np.concatenate([v.reshape(X.shape[1], -1) for v in g.values()], axis=1)
    return np.linalg.norm(flat, axis=1)


IMPLEMENTATIONS = {
    "product": ("gradients", per_example_gradients),
    "loop": ("gradients", looped),
    "goodfellow": ("norms", per_example_norms),
    "loop-norms": ("norms", looped_norms),
}


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0], 10_000).parse_args(argv)
    print_environment("per-example gradients and norms, false alarms")
    limits = Limits(depth=3, width=args.width, batch=args.batch)
    tally = Tally()
    start = time.perf_counter()
    for index in range(args.cases):
        example = draw_example(args.seed, index, limits=limits)
        drawn = away_from_kinks(example.case)
        case = Case(drawn.net.with_l2(L2S[index % len(L2S)]), drawn.params, drawn.X, drawn.Y)
        oracle = per_example_oracle(case, compiled="bucket")
        params, X, Y = dict(case.params), np.array(case.X), np.array(case.Y)
        for name, (quantity, function) in IMPLEMENTATIONS.items():
            with np.errstate(all="ignore"):
                returned = function(params, X, Y, case.net)
            run = compare_per_example(case, returned, quantity=quantity, oracle=oracle)
            tally.add((name, case.dtype), run, f"{example.describe()} l2={case.l2}")
    return tally.report(args.cases, time.perf_counter() - start, name_width=11)


if __name__ == "__main__":
    raise SystemExit(main())
