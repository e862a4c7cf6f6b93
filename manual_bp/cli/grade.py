"""``manual-bp grade``: a class's submissions, scored by a spec.

Every folder of SUBMISSIONS is one submission (its name is the student's).
Each is graded by the checks and points of ``--spec`` (TOML, or YAML with
PyYAML), its code in its own process, in a temporary copy of its folder,
under the spec's time and memory limits (and, on Linux with Landlock,
confined to that folder), on a local Dask cluster of ``--workers``
processes or on the cluster of ``--scheduler``.  Writes, under ``--out``:
``gradebook.csv``, ``index.html`` (the class), ``results/NAME.json``
(Gradescope's format), ``reports/NAME.html`` and ``graded/NAME.json`` (what
a rerun resumes from: it grades only the submissions not graded yet under
this spec).  ``--gradescope`` grades the one submission in SUBMISSIONS in
this process and writes its ``results.json`` (a Gradescope
``run_autograder`` step).  It needs the ``grade`` extra.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from manual_bp.cli.arguments import add_quiet_argument, help_formatter, positive_int
from manual_bp.cli.extras import require
from manual_bp.cli.progress import progress

EXAMPLES = """\
examples:
  manual-bp grade submissions/ --spec assignment.toml            # -> grades/
  manual-bp grade submissions/ --spec assignment.toml --out hw2 --workers 8
  manual-bp grade submissions/ --spec assignment.toml --scheduler tcp://10.0.0.5:8786
  manual-bp grade /autograder/submission --spec /autograder/source/assignment.toml \\
      --gradescope                      # -> /autograder/results/results.json

Rerun the same command after an interruption: graded submissions are kept.
Exit status: 0 when every submission is graded (whatever the scores), 2 on
bad arguments or a spec that cannot be used.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "grade",
        help="grade a class's submissions by a spec: gradebook, Gradescope JSON, HTML summary",
        description=__doc__.split("\n\n")[1],
        epilog=EXAMPLES,
        formatter_class=help_formatter,
    )
    parser.add_argument(
        "submissions", type=Path, metavar="SUBMISSIONS",
        help="a folder of submission folders (with --gradescope: one submission's folder; "
        "required, no default)",
    )  # fmt: skip
    parser.add_argument(
        "--spec", type=Path, required=True,
        help="the checks and their points: a .toml (or .yaml) file (required, no default)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path("grades"),
        help="where the gradebook, reports and results go (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=positive_int,
        help="worker processes of the local cluster; 1 grades here, one after the other "
        "(default: one per core)",
    )  # fmt: skip
    parser.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of an existing Dask scheduler (default: a local cluster)",
    )
    parser.add_argument(
        "--gradescope", action="store_true",
        help="grade the one submission SUBMISSIONS here and write --results (default: a class)",
    )  # fmt: skip
    parser.add_argument(
        "--results", type=Path, default=None,
        help="with --gradescope: where results.json goes "
        "(default: /autograder/results/results.json, Gradescope's)",
    )  # fmt: skip
    add_quiet_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("--workers, --scheduler: give one (a local cluster, or a scheduler)")
    if args.results is not None and not args.gradescope:
        raise ValueError("--results: only with --gradescope (a class's results go to --out)")
    if not args.submissions.is_dir():
        raise ValueError(f"SUBMISSIONS: expected a folder, got {str(args.submissions)!r}")
    grading = require("grade", "manual_bp_reference.grading", "grade")
    try:
        assignment = grading.load_spec(args.spec)
    except grading.SpecError as error:
        raise ValueError(f"--{error}") from None
    if args.gradescope:
        graded = grading.grade_submission(assignment, args.submissions)
        results = args.results or Path("/autograder/results/results.json")
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(graded.gradescope(), indent=1), encoding="utf-8")
        print(f"{graded.submission}: {graded.score:g} / {graded.max_score:g}")
        print(graded.feedback())
        print(f"wrote {results}")
        return 0
    count = len(grading.engine.submissions_in(args.submissions))
    with progress(count, "grading", "submission", args.quiet) as bar:

        def graded_one(graded: object) -> None:
            bar.advance()

        book = grading.grade(
            assignment, args.submissions, args.out, workers=args.workers,
            scheduler=args.scheduler, on_graded=graded_one,
        )  # fmt: skip
    scores = list(book.scores.values())
    print(
        f"{len(scores)} submissions ({book.new} graded now, {len(scores) - book.new} kept), "
        f"max score {assignment.max_score:g}"
        + (f", median {statistics.median(scores):g}" if scores else "")
    )
    for name in ("gradebook.csv", "index.html", "results/", "reports/"):
        print(f"  {args.out}/{name}")
    for warning in grading.summary.warnings_of(book.graded, assignment):
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.flush()
    return 0
