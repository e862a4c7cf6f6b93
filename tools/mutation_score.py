"""The mutation score per module, from a mutmut run's ``mutants/`` folder.

Usage (after ``mutmut run``, from the repository's root)::

    .venv/bin/python tools/mutation_score.py [MODULE ...] [--survivors]

prints a Markdown table (killed, survived, timeout, not checked, ... per
module of ``manual_bp``; every module with mutants when none is named) and,
with ``--survivors``, the name of every survivor, one per line, for
``mutmut show NAME``.  The statuses are mutmut's own (``mutmut.stats``'s
``status_by_exit_code``): the table adds up to ``mutmut results``' counts.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

COLUMNS = ("killed", "survived", "timeout", "suspicious", "no tests", "not checked")


def statuses(mutants: Path, module: str) -> dict[str, str]:
    """``{mutant name: status}`` of ``manual_bp/<module>.py``'s mutants."""
    meta = json.loads((mutants / "manual_bp" / f"{module}.py.meta").read_text())
    return {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}


def table(mutants: Path, modules: list[str]) -> str:
    rows = ["| module | mutants | " + " | ".join(COLUMNS) + " | other |",
            "|---" * (len(COLUMNS) + 3) + "|"]  # fmt: skip
    total: Counter[str] = Counter()
    for module in modules:
        counts = Counter(statuses(mutants, module).values())
        total.update(counts)
        other = sum(n for status, n in counts.items() if status not in COLUMNS)
        rows.append(f"| {module} | {sum(counts.values())} | "
                    + " | ".join(str(counts[c]) for c in COLUMNS) + f" | {other} |")  # fmt: skip
    other = sum(n for status, n in total.items() if status not in COLUMNS)
    rows.append(f"| **all** | {sum(total.values())} | "
                + " | ".join(str(total[c]) for c in COLUMNS) + f" | {other} |")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="modules of manual_bp (default: all)")
    parser.add_argument("--mutants", type=Path, default=Path("mutants"), help="mutmut's folder")
    parser.add_argument("--survivors", action="store_true", help="list every survivor")
    args = parser.parse_args(argv)
    folder = args.mutants / "manual_bp"
    if not folder.is_dir():
        parser.error(f"--mutants: no manual_bp/ in {args.mutants} (run mutmut first)")
    found = sorted(p.name.removesuffix(".py.meta") for p in folder.glob("*.py.meta"))
    modules = args.modules or [m for m in found if statuses(args.mutants, m)]
    unknown = [m for m in modules if m not in found]
    if unknown:
        parser.error(f"modules: no mutants of {', '.join(unknown)} in {folder}")
    print(table(args.mutants, modules))
    if args.survivors:
        for module in modules:
            for name, status in statuses(args.mutants, module).items():
                if status == "survived":
                    print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
