"""What the catalogued checks' false-alarm benchmarks share
(``per_example_false_alarms``, ``hvp_false_alarms``): their flags and a
``Tally`` of the comparisons, per implementation and dtype, printed in one form.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # (implementation, dtype)


def parser(description: str, cases: int) -> argparse.ArgumentParser:
    """``--cases`` (default ``cases``), ``--seed``, and the drawn networks'
    ``--width`` and ``--batch``."""
    made = argparse.ArgumentParser(description=description)
    made.add_argument("--cases", type=int, default=cases, help=f"drawn cases (default {cases})")
    made.add_argument("--seed", type=int, default=0)
    made.add_argument("--width", type=int, default=8)
    made.add_argument("--batch", type=int, default=8)
    return made


@dataclass
class Tally:
    """Per ``(implementation, dtype)``: the calls, the false alarms (a line
    each) and the worst err/tol; with ``kinks``, also the worst over the cases
    with no entry excused at a kink; and the calls with undecided entries."""

    kinks: bool = False
    calls: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    alarms: dict[Key, list[str]] = field(default_factory=lambda: defaultdict(list))
    worst: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    clear: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    undecided: int = 0

    def add(self, key: Key, run: Any, described: str, *, excused: bool = False) -> None:
        """One comparison (a check's ``CaseRun``) of the case ``described``;
        ``excused``: the oracle excused entries at a kink."""
        self.calls[key] += 1
        ratio = run.comparison.worst_ratio
        self.worst[key] = max(self.worst[key], ratio)
        if not excused:
            self.clear[key] = max(self.clear[key], ratio)
        self.undecided += run.comparison.undecided > 0
        if ratio > 1 or run.details:
            self.alarms[key].append(f"{described}: {ratio:.3g} {run.details}")

    def report(self, cases: int, seconds: float, *, name_width: int) -> int:
        """The table and the totals; 1 if any false alarm, else 0."""
        total_calls = sum(self.calls.values())
        total_alarms = sum(len(a) for a in self.alarms.values())
        for key in sorted(self.calls):
            off = f" ({self.clear[key]:.3g} off the kinks)" if self.kinks else ""
            print(
                f"{key[0]:{name_width}} {key[1]:8} {self.calls[key]:6} calls, "
                f"{len(self.alarms[key])} false alarms, worst err/tol {self.worst[key]:.3g}{off}"
            )
            for line in self.alarms[key][:5]:
                print(f"    {line}")
        print(
            f"total: {cases} cases, {total_calls} calls, {total_alarms} false alarms, "
            f"{self.undecided} calls with undecided entries, {seconds:.0f} s"
        )
        return 1 if total_alarms else 0
