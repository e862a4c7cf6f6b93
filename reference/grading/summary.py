"""What a teacher reads after grading: the gradebook CSV and one HTML page.

``gradebook(graded, assignment)`` is the CSV: one row per submission, its
total and each check's score and verdict, in the order of the submissions'
names.  ``summary_page(graded, assignment)`` is a static page (no script):
the class's mean and median, a score histogram (inline SVG), the most common
bug classes across the class, and a table linking each student's report
(``reports/NAME.html``).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Sequence
from urllib.parse import quote

from manual_bp_reference import html_report
from manual_bp_reference.grading.spec import Assignment
from manual_bp_reference.grading.submission import Graded, standalone
from manual_bp_reference.isolation import confinement

# Score bins of the histogram.
BINS = 10


def gradebook(graded: Sequence[Graded], assignment: Assignment) -> str:
    """The CSV: ``submission, score, max_score``, then ``score`` and ``verdict``
    of every check; rows in the order of the submissions' names."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [check.name for check in assignment.checks]
    columns = [f"{name}: {what}" for name in names for what in ("score", "verdict")]
    writer.writerow(["submission", "score", "max_score", *columns])
    for entry in sorted(graded, key=lambda g: g.submission):
        cells = [entry.submission, f"{entry.score:g}", f"{entry.max_score:g}"]
        for check in entry.checks:
            cells += [f"{check.score:g}", check.verdict]
        writer.writerow(cells)
    return out.getvalue()


def histogram(scores: Sequence[float], maximum: float) -> str:
    """Inline SVG: how many submissions scored in each tenth of ``maximum``
    (the last tenth holds the full score too)."""
    width, height, left, bottom = 520, 200, 36, 28
    counts = [0] * BINS
    for score in scores:
        index = BINS - 1 if maximum <= 0 else min(BINS - 1, int(BINS * score / maximum))
        counts[index] += 1
    tallest = max(counts) or 1
    bar = (width - left - 8) / BINS
    parts = [
        f'<svg id="score-histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="score histogram" '
        'style="font-family: system-ui, sans-serif; font-size: 11px">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" '
        'stroke="#999"/>',
    ]
    for i, count in enumerate(counts):
        h = (height - bottom - 16) * count / tallest
        x, y = left + i * bar, height - bottom - h
        low, high = maximum * i / BINS, maximum * (i + 1) / BINS
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar - 4:.1f}" height="{h:.1f}" '
            f'fill="#3f72af"><title>{low:g} to {high:g}: {count}</title></rect>'
        )
        if count:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">'
                         f"{count}</text>")  # fmt: skip
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" '
                     f'text-anchor="middle" fill="#555">{low:.3g}–{high:.3g}</text>')  # fmt: skip
    parts.append(f'<text x="{width - 4}" y="{height - 2}" text-anchor="end" fill="#555">'
                 f"score (max {maximum:g})</text></svg>")  # fmt: skip
    return "".join(parts)


def warnings_of(graded: Sequence[Graded], assignment: Assignment) -> list[str]:
    """What points at the spec rather than the students: a check every one of
    several submissions failed with the same error (a function's name
    misspelt in the spec, a file the assignment names otherwise)."""
    found = []
    for index, check in enumerate(assignment.checks):
        results = [g.checks[index] for g in graded]
        feedback = {result.feedback for result in results}
        if len(results) >= 2 and all(r.verdict in ("error", "missing") for r in results):
            if len(feedback) == 1:
                found.append(
                    f"every submission failed {check.name!r} the same way ({feedback.pop()}): "
                    "check the spec's function and file names"
                )
    return found


def warning_line(text: str) -> str:
    return f'<p style="color: #c62828"><b>Warning:</b> {html_report.escape(text)}</p>'


def summary_page(graded: Sequence[Graded], assignment: Assignment) -> str:
    """The teacher's page (see the module notes)."""
    h = html_report
    entries = sorted(graded, key=lambda g: g.submission)
    scores = [g.score for g in entries]
    maximum = assignment.max_score
    stats = (
        f"{len(entries)} submissions, mean {statistics.fmean(scores):.3g}, median "
        f"{statistics.median(scores):g} of {maximum:g}"
        if entries
        else "no submissions"
    )
    confined = all(g.confined for g in entries)
    where = ("each submission's code ran in its own process, confined to a temporary copy of "
             "its folder (Linux Landlock)" if confined else
             "each submission's code ran in its own process in a temporary copy of its folder; "
             "this system has no Landlock, so it could read files outside that folder")  # fmt: skip
    if confined and confinement.shortfalls():
        where += "; this kernel's Landlock cannot stop it from: " + "; ".join(
            confinement.shortfalls()
        )
    parts = [
        f"<h1>{h.escape(assignment.name)}</h1>",
        *(warning_line(w) for w in warnings_of(entries, assignment)),
        f"<p>{h.escape(stats)}; seed {assignment.seed}, spec {assignment.digest()}.</p>",
        f'<p style="color: #555">{h.escape(where)}; {assignment.timeout:g} s per call, '
        f"{assignment.time_limit:g} s per submission.</p>",
        "<h2>Scores</h2>",
        histogram(scores, maximum),
        "<h2>Most common bug classes</h2>",
        _bugs_table(entries),
        "<h2>Submissions</h2>",
        _students_table(entries, assignment),
    ]
    return standalone(f"{assignment.name}: summary", "".join(parts))


def _bugs_table(entries: Sequence[Graded]) -> str:
    counts = Counter(
        (check.name, check.bug or check.verdict)
        for entry in entries
        for check in entry.checks
        if check.verdict != "pass"
    )
    if not counts:
        return "<p>Every check of every submission passed.</p>"
    rows = "".join(
        f"<tr><td>{html_report.escape(name)}</td><td>{html_report.escape(what)}</td>"
        f'<td style="text-align: right">{count}</td></tr>'
        for (name, what), count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        '<table style="border-collapse: collapse" cellpadding="4"><thead><tr><th align="left">'
        'check</th><th align="left">bug class or verdict</th><th>submissions</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _students_table(entries: Sequence[Graded], assignment: Assignment) -> str:
    head = "".join(f"<th>{html_report.escape(check.name)}</th>" for check in assignment.checks)
    rows = []
    for entry in entries:
        link = f"reports/{quote(entry.submission, errors='surrogateescape')}.html"
        cells = "".join(
            f'<td style="color: {"#2e7d32" if c.verdict == "pass" else "#c62828"}" '
            f'title="{html_report.escape(c.feedback)}">{html_report.escape(c.verdict)} '
            f"({c.score:g})</td>"
            for c in entry.checks
        )
        rows.append(
            f'<tr><td><a href="{link}">{html_report.escape(entry.submission)}</a></td>'
            f'<td style="text-align: right">{entry.score:g}</td>{cells}</tr>'
        )
    return (
        '<table style="border-collapse: collapse" cellpadding="4"><thead><tr>'
        f'<th align="left">submission</th><th>score</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
