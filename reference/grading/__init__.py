"""``manual-bp grade``: a class's submissions, each checked in isolation, scored
by a spec, with a gradebook, Gradescope's ``results.json`` and an HTML summary.

* ``spec``: the ``Assignment`` a TOML (or YAML) spec describes: checks, points,
  partial credit by verdict, limits (``load_spec``);
* ``submission``: ``grade_submission(assignment, folder)``, one submission in a
  temporary copy of its folder, its code confined there (``Graded``);
* ``summary``: the gradebook CSV and the teacher's HTML page;
* ``engine``: ``grade(assignment, submissions, out)``, every submission on Dask
  workers (local or a scheduler), resumable.
"""

from manual_bp_reference.grading.engine import Gradebook, grade
from manual_bp_reference.grading.spec import Assignment, CheckSpec, SpecError, load_spec, parse_spec
from manual_bp_reference.grading.submission import CheckResult, Graded, grade_submission

__all__ = [
    "Assignment",
    "CheckResult",
    "CheckSpec",
    "Gradebook",
    "Graded",
    "SpecError",
    "grade",
    "grade_submission",
    "load_spec",
    "parse_spec",
]
