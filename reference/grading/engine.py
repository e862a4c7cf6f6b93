"""``grade``: a whole class's submissions, in parallel, resumable.

Every folder of ``SUBMISSIONS`` is one submission (its name is the
student's).  ``grade`` grades each on a Dask worker (``campaign.dask_client``:
a local cluster of ``workers`` processes, or the scheduler at ``scheduler``,
as campaigns do; ``workers=1``: in this process) and writes, under ``out``:

* ``graded/NAME.json``: the record of a graded submission, written (whole,
  by a rename) as soon as it is graded.  A rerun grades again only the
  submissions with no record, or one made under another spec or from other
  files: an interrupted run continues where it stopped, and the same spec
  and seed give the same scores;
* ``results/NAME.json``: Gradescope's ``results.json`` of each submission;
* ``reports/NAME.html``: each student's report;
* ``gradebook.csv`` and ``index.html``: the class (``summary``).

Nothing else is written: the submissions are read, copied into temporary
folders that are removed after each one, and never changed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from manual_bp_reference.grading.spec import Assignment
from manual_bp_reference.grading.submission import (
    Graded,
    check_result,
    files_digest,
    grade_submission,
)
from manual_bp_reference.grading.summary import gradebook, summary_page


@dataclass(frozen=True)
class Gradebook:
    """What ``grade`` did: every submission's record, and how many it graded now."""

    graded: tuple[Graded, ...]
    new: int
    out: Path

    @property
    def scores(self) -> dict[str, float]:
        return {g.submission: g.score for g in self.graded}


def submissions_in(folder: Path) -> list[Path]:
    """The submissions: every folder in ``folder`` not starting with a dot, by name."""
    if not folder.is_dir():
        raise ValueError(f"submissions: expected a folder of submissions, got {str(folder)!r}")
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all (a temporary file, renamed),
    readable as any file this process makes (the umask's, not mkstemp's 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    # A name in another encoding (a student's folder) is written with a replacement mark.
    with os.fdopen(handle, "w", encoding="utf-8", errors="replace") as file:
        file.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, path)


def _remove_stale(out: Path, names: set[str]) -> None:
    """The outputs of submissions no longer in the folder (a student removed)."""
    for part, suffix in (("results", ".json"), ("reports", ".html"), ("graded", ".json")):
        for path in (out / part).glob(f"*{suffix}"):
            if path.name.removesuffix(suffix) not in names:
                path.unlink()


def recorded(out: Path, folder: Path, assignment: Assignment) -> Graded | None:
    """The record of ``folder`` if it was graded under this spec from these files."""
    path = out / "graded" / f"{folder.name}.json"
    try:
        graded = Graded.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if graded.spec != assignment.digest() or graded.digest != files_digest(folder):
        return None
    name = folder.name
    if (
        not (out / "results" / f"{name}.json").is_file()
        or not (out / "reports" / f"{name}.html").is_file()
    ):
        return None  # its record outlived its results: graded again
    return graded


def save(out: Path, graded: Graded, assignment: Assignment) -> None:
    """A graded submission's record, results.json and report.  A submission
    the grader itself failed on gets no record, so that a rerun grades it again."""
    name = graded.submission
    write_atomic(out / "results" / f"{name}.json", json.dumps(graded.gradescope(), indent=1))
    write_atomic(out / "reports" / f"{name}.html", graded.report_html(assignment.name))
    if all(check.verdict != "grader error" for check in graded.checks):
        write_atomic(out / "graded" / f"{name}.json", graded.to_json())  # last: the resume mark


def grade(
    assignment: Assignment,
    submissions: str | Path,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    on_graded: Callable[[Graded], None] | None = None,
) -> Gradebook:
    """Grade every submission in ``submissions`` into ``out`` (see the module
    notes); ``on_graded`` is called with each newly graded one (a progress bar)."""
    submissions, out = Path(submissions), Path(out)
    if out.resolve().is_relative_to(submissions.resolve()):
        raise ValueError(
            f"out: {str(out)!r} is inside the submissions folder {str(submissions)!r}, where "
            "it would be graded as a submission (and readable by one): put it elsewhere"
        )
    folders = submissions_in(submissions)
    for part in ("results", "reports", "graded"):
        (out / part).mkdir(parents=True, exist_ok=True)
    _remove_stale(out, {folder.name for folder in folders})
    done = {folder.name: recorded(out, folder, assignment) for folder in folders}
    pending = [folder for folder in folders if done[folder.name] is None]
    for graded in _graded(assignment, pending, workers, scheduler):
        save(out, graded, assignment)
        done[graded.submission] = graded
        if on_graded is not None:
            on_graded(graded)
    every = tuple(g for g in done.values() if g is not None)
    write_atomic(out / "gradebook.csv", gradebook(every, assignment))
    write_atomic(out / "index.html", summary_page(every, assignment))
    return Gradebook(every, len(pending), out)


def _graded(
    assignment: Assignment, pending: Sequence[Path], workers: int | None, scheduler: str | None
):
    """Each pending submission graded on a Dask worker, as they finish; with
    one worker and no scheduler, in this process, one after the other (no
    cluster to start: each submission's code runs in its own child anyway)."""
    if not pending:
        return
    if workers == 1 and scheduler is None:
        for folder in pending:
            try:
                yield grade_submission(assignment, folder)
            except Exception as error:  # as a worker's failure: recorded, graded again next run
                yield _failed(assignment, folder, f"the grader failed: {error!r}")
        return
    from distributed import as_completed

    from manual_bp_reference.campaign.engine import dask_client

    with dask_client(scheduler=scheduler, workers=None if scheduler else workers) as client:
        futures = {
            client.submit(grade_submission, assignment, str(folder), pure=False,
                          key=f"grade-{folder.name}-{assignment.digest()}"): folder
            for folder in pending
        }  # fmt: skip
        for future in as_completed(futures):
            folder = futures[future]
            try:
                yield future.result()
            except Exception as error:  # a worker died: every check is the grader's failure
                yield _failed(assignment, folder, f"the grader's worker failed: {error!r}")


def _failed(assignment: Assignment, folder: Path, why: str) -> Graded:
    """Every check of a submission the grader failed on: 0, and ``why``."""
    checks = tuple(check_result(check, "grader error", why) for check in assignment.checks)
    return Graded(folder.name, files_digest(folder), assignment.digest(), checks, False, 0.0)
