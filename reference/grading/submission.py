"""Grading one submission: every check of the spec on a copy of its folder.

``grade_submission(assignment, folder)`` copies the submission's files into a
new temporary folder (regular files only: a link could point at another
student's files), and runs each check there with the spec's limits: the
student's code in its own child process, that folder its working directory,
``timeout`` seconds per call, ``memory_limit`` bytes, and, where Linux
Landlock is available, confined to that folder (``Settings.confine``: it
reads and writes only there and reads Python's files).  The checks run one
after the other until the submission's ``time_limit`` is used up; a check
not run for lack of time scores 0 and says so.

Nothing a submission does ends the grading: a mismatch is a verdict with its
feedback, a missing file or function is a verdict, and a failure of the
checker itself is recorded as ``"grader error"`` with its message (and
scores 0, so that a teacher sees it).  The result, ``Graded``, is plain
data: JSON for the resume record, Gradescope's ``results.json``, and the
student's HTML report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from manual_bp_reference import html_report
from manual_bp_reference.grading.spec import Assignment, CheckSpec
from manual_bp_reference.isolation import confinement

# Gradescope shows each test's output as text; a report is cut there.
OUTPUT_LIMIT = 20_000


@dataclass(frozen=True)
class CheckResult:
    """One check of one submission: its score, verdict and feedback."""

    name: str
    score: float
    max_score: float
    verdict: str  # "pass", a check's verdict, "missing", "error", "time limit", "grader error"
    feedback: str  # one line
    bug: str  # the likely bug's class ("" when none is named)
    output: str  # the check's text report
    html: str  # the check's HTML report
    visibility: str = "visible"


@dataclass(frozen=True)
class Graded:
    """A graded submission: what ``grade`` records, resumes from and reports."""

    submission: str  # the folder's name
    digest: str  # of the submission's files: a changed submission is graded again
    spec: str  # ``Assignment.digest()``: a changed spec grades everything again
    checks: tuple[CheckResult, ...]
    confined: bool  # whether Landlock kept the code in its folder
    seconds: float

    @property
    def score(self) -> float:
        return sum(check.score for check in self.checks)

    @property
    def max_score(self) -> float:
        return sum(check.max_score for check in self.checks)

    def feedback(self) -> str:
        """One line per check: its name, verdict, score and why."""
        return "\n".join(
            f"{c.name}: {c.score:g}/{c.max_score:g}, {c.feedback}" for c in self.checks
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Graded:
        data = json.loads(text)
        checks = tuple(CheckResult(**check) for check in data.pop("checks"))
        return cls(checks=checks, **data)

    def gradescope(self) -> dict[str, Any]:
        """Gradescope's ``results.json``: the score and one test per check."""
        return {
            "score": round(self.score, 6),
            "execution_time": round(self.seconds, 3),
            # What every student sees: the checks hidden until later are left out.
            "output": "\n".join(
                line
                for line, check in zip(self.feedback().split("\n"), self.checks, strict=True)
                if check.visibility == "visible"
            ),
            "tests": [
                {
                    "name": check.name,
                    "score": round(check.score, 6),
                    "max_score": check.max_score,
                    "status": "passed" if check.verdict == "pass" else "failed",
                    "output": check.output[:OUTPUT_LIMIT],
                    "visibility": check.visibility,
                }
                for check in self.checks
            ],
        }

    def report_html(self, assignment: str) -> str:
        """The student's report: the score, then each check's HTML report."""
        h = html_report
        parts = [
            f"<h1>{h.escape(assignment)}: {h.escape(self.submission)}</h1>",
            f"<p><b>Score: {self.score:g} / {self.max_score:g}</b></p>",
        ]
        for check in self.checks:
            parts.append(f"<h2>{h.escape(check.name)}: {check.score:g} / {check.max_score:g}</h2>")
            parts.append(check.html or h.paragraphs([check.feedback]))
        return standalone(f"{assignment}: {self.submission}", "".join(parts))


def standalone(title: str, body: str) -> str:
    """A whole HTML page around ``body`` (the reports are fragments)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html_report.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-family: system-ui, sans-serif; margin: 24px; max-width: 1100px">'
        f"{body}</body></html>\n"
    )


# What an upload carries beside the submission: never copied, never digested.
LEFT_OUT = ("__MACOSX", "__pycache__")


def submitted_files(folder: Path) -> list[Path]:
    """The submission's regular files: no links, nothing under a hidden folder
    (``.ipynb_checkpoints``, ``.git``) or ``LEFT_OUT``, no hidden file."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") or part in LEFT_OUT for part in parts):
            continue
        if path.is_file() and not path.is_symlink():
            files.append(path)
    return files


def submission_root(folder: Path, assignment: Assignment) -> Path:
    """Where the spec's files are: ``folder``, or its one subfolder that holds
    them when the upload nests everything in a folder (``hw3/backprop.py``)."""

    def has_files(place: Path) -> bool:
        return any((place / check.file).is_file() for check in assignment.checks)

    if has_files(folder):
        return folder
    nested = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
              and p.name not in LEFT_OUT and has_files(p)]  # fmt: skip
    return nested[0] if len(nested) == 1 else folder


def files_digest(folder: Path) -> str:
    """A fingerprint of a submission: every submitted file's path and bytes."""
    digest = hashlib.sha256()
    for path in submitted_files(folder):
        digest.update(os.fsencode(path.relative_to(folder)) + b"\0")  # any name, any encoding
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _copy(folder: Path, work: Path) -> None:
    """The submission's files into ``work`` (``submitted_files``)."""
    for path in submitted_files(folder):
        target = work / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def grade_submission(assignment: Assignment, folder: str | Path) -> Graded:
    """Every check of ``assignment`` on the submission in ``folder`` (see the module notes)."""
    folder = Path(folder)
    with warnings.catch_warnings():
        # A Dask worker's own threads touch the random module while Hypothesis
        # draws, which Hypothesis warns of: about the worker, not the submission.
        warnings.filterwarnings("ignore", "Do not use the `random` module", FutureWarning)
        return _graded(assignment, folder)


def _graded(assignment: Assignment, folder: Path) -> Graded:
    start = time.monotonic()
    confined = confinement.abi_version() > 0
    digest = files_digest(folder)  # before the copy: a file changed later is graded again
    results = []
    with tempfile.TemporaryDirectory(prefix="manual-bp-grade-") as work:
        _copy(submission_root(folder, assignment), Path(work))
        for check in assignment.checks:
            if time.monotonic() - start > assignment.time_limit:
                results.append(check_result(check, "time limit", f"not run: the submission's "
                                       f"{assignment.time_limit:g} s were used up"))  # fmt: skip
                continue
            results.append(run_check(check, assignment, Path(work), confined))
    return Graded(folder.name, digest, assignment.digest(), tuple(results), confined,
                  time.monotonic() - start)  # fmt: skip


def run_check(check: CheckSpec, assignment: Assignment, work: Path, confined: bool) -> CheckResult:
    """One check on the submission copied into ``work``."""
    from manual_bp_reference.check import Mismatch
    from manual_bp_reference.settings import Settings

    if not (work / check.file).is_file():
        return check_result(check, "missing", f"{check.file} is not in the submission")
    settings = Settings(
        max_examples=check.examples, seed=assignment.seed, timeout=assignment.timeout,
        memory_limit=assignment.memory_limit, folder=str(work), confine=confined, progress=False,
    )  # fmt: skip
    try:
        report = _run(check, work, settings)
    except Mismatch as mismatch:
        verdict = mismatch.verdict
        bug = _bug_class(mismatch)
        feedback = mismatch.summary() + (f"; likely bug: {bug}" if bug else "")
        return CheckResult(check.name, check.credit(verdict), check.points, verdict, feedback,
                           bug, str(mismatch), mismatch.html(), check.visibility)  # fmt: skip
    except (TypeError, ValueError) as error:  # the function is missing or takes other arguments
        # The student's relative path, not the temporary copy's.
        return check_result(check, "error", str(error).replace(f"{work}/", ""))
    except Exception as error:  # the checker failed: recorded, scored 0, for the teacher to see
        return check_result(check, "grader error", f"the grader failed: {error!r}")
    title = str(report).split("\n", 1)[0]
    return CheckResult(check.name, check.points, check.points, "pass", title, "", str(report),
                       report._repr_html_(), check.visibility)  # fmt: skip


def _run(check: CheckSpec, work: Path, settings: Any) -> Any:
    """The check of ``check.kind``, on the functions in ``work``."""
    options = check.options

    function = str(work / check.function)

    def here(spec: str | None) -> str | None:
        return None if spec is None else str(work / spec)

    if check.kind == "gradients":
        from manual_bp import Net
        from manual_bp_reference.check import check_gradients
        from manual_bp_reference.conventions import Conventions

        net = Net.of(options["layers"], options["activations"], options["loss"])
        conventions = options.get("conventions", "auto")
        if isinstance(conventions, dict):
            conventions = Conventions(**conventions)
        return check_gradients(function, net, forward=here(options.get("forward")),
                               conventions=conventions, settings=settings)  # fmt: skip
    if check.kind == "layer":
        from manual_bp_reference.layer_check import check_layer

        return check_layer(function, options["layer"],
                           forward=here(options.get("forward")),
                           layout=options.get("layout", "rows"), targets=options.get("targets"),
                           settings=settings)  # fmt: skip
    from manual_bp.optimizers import make_optimizer
    from manual_bp_reference.optimizer_check import check_optimizer

    hyperparameters = dict(options.get("hyperparameters", {}))
    learning_rate = hyperparameters.pop("learning_rate", 1e-3)
    optimizer = make_optimizer(options["optimizer"], learning_rate, **hyperparameters)
    return check_optimizer(function, optimizer, init=here(options.get("init")),
                           style=options.get("style", "step"), settings=settings)  # fmt: skip


def _bug_class(mismatch: Any) -> str:
    """The class of bug the diagnosis names ("" when it names none)."""
    diagnosis = getattr(mismatch.comparison, "diagnosis", None)
    if diagnosis is not None:
        return "" if diagnosis.bug_class == "unclassified" else str(diagnosis.bug_class)
    lines = mismatch._likely_bug()
    return lines[0] if lines and not lines[0].startswith("no ") else ""


def check_result(check: CheckSpec, verdict: str, feedback: str) -> CheckResult:
    """A check that gave no report: 0 points (or partial credit for its verdict)."""
    return CheckResult(check.name, check.credit(verdict), check.points, verdict, feedback, "",
                       feedback, "", check.visibility)  # fmt: skip
