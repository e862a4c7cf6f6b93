"""Reports as HTML, for Jupyter: what ``_repr_html_`` of every report returns.

A notebook shows a report's ``_repr_html_`` instead of its text: the checks'
reports (``CheckReport``, ``LayerReport``, ``OptimizerReport``), ``compare``'s
``Comparison`` and the mismatch exceptions (``GradientMismatch``,
``LayerMismatch``, ``OptimizerMismatch``, which a notebook shows when a
check raises one and the cell ends with ``mismatch`` or
``display(mismatch)``).  The text stays the reference: every figure here is
one the text prints, laid out as

* a banner with the verdict (green: pass; red: a mismatch; amber: what no
  check can decide, such as unstable numerics or a time-out);
* the likely bug, when the diagnosis names one;
* the per-key table of err/tol, with a small per-layer picture: one cell per
  parameter and layer, coloured by err/tol on a log scale (the layer where
  the colour turns red is where the disagreement starts);
* the details, the user's traceback and output, and the minimal case,
  pasteable, in collapsible sections.

Only inline styles and inline SVG: no script, no stylesheet, nothing a
notebook's sanitizer removes, and nothing that reaches outside the output.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# The banner's colours by kind of verdict: background, border.
_COLOURS = {
    "pass": ("#e8f5e9", "#2e7d32"),
    "fail": ("#ffebee", "#c62828"),
    "undecided": ("#fff8e1", "#f9a825"),
}
_BOX = (
    "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 13px; "
    "line-height: 1.45; max-width: 980px; color: #212121"
)
_PRE = (
    "background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 4px; padding: 6px 8px; "
    "font-size: 12px; overflow-x: auto; white-space: pre; margin: 4px 0"
)
_CELL = "padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right"
_KEY = re.compile(r"^([A-Za-z_]+?)(\d+)$")


@dataclass(frozen=True)
class Row:
    """One line of the err/tol table: a key as the user names it, and its figures."""

    name: str
    shape: str
    diff: str
    ratio: float
    ratio_text: str
    ok: bool


def escape(text: object) -> str:
    """``text`` with ``<``, ``>``, ``&`` and quotes escaped."""
    return html.escape(str(text), quote=True)


def colour(ratio: float) -> str:
    """err/tol as a colour: greens up to 1 (darker nearer 1), reds above, dark
    red for inf or NaN (nothing comparable)."""
    if not math.isfinite(ratio):
        return "#7f0000"
    if ratio > 1.0:
        return "#e53935" if ratio < 1e3 else "#b71c1c"
    # 1e-4 and below: the palest green; 1: the darkest.
    shade = min(1.0, max(0.0, (math.log10(max(ratio, 1e-4)) + 4) / 4))
    light, dark = (200, 230, 201), (46, 125, 50)
    mixed = (round(a + (b - a) * shade) for a, b in zip(light, dark, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*mixed)


def layer_picture(ratios: Mapping[str, float]) -> str:
    """One cell per key and layer (``W1``: row ``W``, column 1), coloured by
    err/tol, as inline SVG; empty when fewer than two keys have a layer number."""
    cells: dict[tuple[str, int], tuple[str, float]] = {}
    for key, ratio in ratios.items():
        match = _KEY.match(key)
        if match:
            cells[(match.group(1), int(match.group(2)))] = (key, ratio)
    if len(cells) < 2:
        return ""
    rows = list(dict.fromkeys(prefix for prefix, _ in cells))
    layers = sorted({layer for _, layer in cells})
    size, left, top = 22, 8 + 9 * max(len(row) for row in rows), 16
    width, height = left + size * len(layers) + 4, top + size * len(rows) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="err/tol per parameter and layer" '
        'style="font-family: monospace; font-size: 11px">'
    ]
    for j, layer in enumerate(layers):
        x = left + j * size + size / 2
        parts.append(f'<text x="{x}" y="11" text-anchor="middle" fill="#555">{layer}</text>')
    for i, row in enumerate(rows):
        y = top + i * size
        parts.append(
            f'<text x="{left - 6}" y="{y + size / 2 + 4}" text-anchor="end">{escape(row)}</text>'
        )
        for j, layer in enumerate(layers):
            if (row, layer) not in cells:
                continue
            key, ratio = cells[(row, layer)]
            parts.append(
                f'<rect x="{left + j * size + 1}" y="{y + 1}" width="{size - 2}" '
                f'height="{size - 2}" rx="3" fill="{colour(ratio)}">'
                f"<title>{escape(key)}: err/tol {ratio:.3g}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def table(rows: Sequence[Row], *, name: str = "key") -> str:
    """The err/tol table, one row per key, with a colour swatch per err/tol."""
    # A column no row fills (a pass report's shape and difference) is left out.
    shapes, diffs = any(row.shape for row in rows), any(row.diff for row in rows)
    columns = [(name, "left", True), ("shape", "left", shapes), ("max |diff|", "right", diffs),
               ("err/tol", "right", True), ("match", "left", True)]  # fmt: skip
    head = "".join(
        f'<th style="{_CELL}; text-align: {align}">{title}</th>'
        for title, align, shown in columns
        if shown
    )
    body = []
    for row in rows:
        swatch = (
            f'<span style="display: inline-block; width: 10px; height: 10px; border-radius: 2px; '
            f'margin-right: 6px; background: {colour(row.ratio)}"></span>'
        )
        match = "yes" if row.ok else '<b style="color: #c62828">NO</b>'
        shape = f'<td style="{_CELL}; text-align: left">{escape(row.shape)}</td>' if shapes else ""
        diff = f'<td style="{_CELL}">{escape(row.diff)}</td>' if diffs else ""
        body.append(
            f'<tr><td style="{_CELL}; text-align: left"><code>{escape(row.name)}</code></td>'
            f'{shape}{diff}<td style="{_CELL}">{swatch}{escape(row.ratio_text)}</td>'
            f'<td style="{_CELL}; text-align: left">{match}</td></tr>'
        )
    return (
        '<table style="border-collapse: collapse; margin: 4px 0; font-size: 12px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def table_and_picture(rows: Sequence[Row], *, name: str = "key") -> str:
    """The table, with the per-layer picture beside it when there is one."""
    picture = layer_picture({row.name: row.ratio for row in rows})
    if not picture:
        return table(rows, name=name)
    return (
        '<div style="display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap">'
        f"<div>{table(rows, name=name)}</div>"
        f'<div><div style="color: #555; font-size: 11px">err/tol by layer</div>{picture}'
        '<div style="color: #757575; font-size: 10px">green: within the tolerance (darker '
        "nearer it); red: over it</div></div></div>"
    )


def banner(kind: str, title: str, *, subtitle: str = "") -> str:
    """The verdict: ``kind`` is ``"pass"``, ``"fail"`` or ``"undecided"``."""
    background, border = _COLOURS[kind]
    mark = {"pass": "&#10004;", "fail": "&#10008;", "undecided": "?"}[kind]
    sub = f'<div style="color: #424242">{escape(subtitle)}</div>' if subtitle else ""
    return (
        f'<div style="background: {background}; border-left: 5px solid {border}; '
        f'padding: 6px 10px; margin: 2px 0 8px 0; border-radius: 3px">'
        f'<b style="color: {border}">{mark} {escape(title)}</b>{sub}</div>'
    )


def likely_bug(lines: Sequence[str]) -> str:
    """The diagnosis (the likely bug, or that no known bug explains it), in its
    own box; nothing when there is none."""
    if not lines:
        return ""
    text = "<br>".join(escape(line) for line in lines)
    return (
        '<div style="border: 1px solid #f9a825; background: #fffde7; padding: 6px 10px; '
        f'margin: 6px 0; border-radius: 3px"><b>Diagnosis.</b> {text}</div>'
    )


def paragraphs(lines: Iterable[str]) -> str:
    return "".join(f'<p style="margin: 4px 0">{escape(line)}</p>' for line in lines if line)


def code(text: str) -> str:
    return f'<pre style="{_PRE}">{escape(text)}</pre>'


def section(title: str, body: str, *, open_: bool = False) -> str:
    """A collapsible section (``<details>``), open when ``open_``."""
    if not body:
        return ""
    state = " open" if open_ else ""
    return (
        f'<details{state} style="margin: 6px 0"><summary style="cursor: pointer; '
        f'font-weight: 600">{escape(title)}</summary>{body}</details>'
    )


def heading(text: str) -> str:
    return f'<div style="font-weight: 600; margin: 8px 0 2px 0">{escape(text)}</div>'


def bullets(items: Iterable[str]) -> str:
    entries = "".join(f"<li>{escape(item)}</li>" for item in items)
    return f'<ul style="margin: 4px 0; padding-left: 20px">{entries}</ul>' if entries else ""


def diagnosis_text(diagnosis: object) -> str:
    """A ``Diagnosis`` as the box says it: the bug class first."""
    d = diagnosis
    return (
        f"{d.bug_class}: the disagreement starts at {d.key} (layer {d.layer}); "  # type: ignore[attr-defined]
        f"{d.evidence}"  # type: ignore[attr-defined]
    )


def passed(
    title: str,
    worst: Mapping[str, float],
    lines: Sequence[str],
    output: object,
    run: str,
    *,
    name: str = "key",
) -> str:
    """A passing check's report: the banner, each key's worst err/tol over the
    examples (table and picture), the notes, what the code printed, the seed."""
    parts = [banner("pass", title)]
    if worst:
        parts += [heading(f"worst error/tolerance per {name}"),
                  table_and_picture(worst_rows(worst), name=name)]  # fmt: skip
    parts.append(paragraphs(lines))
    if output:
        shown = f"the first call that printed anything printed {output.lines:,} lines"  # type: ignore[attr-defined]
        parts.append(section(shown, code(output.shown())))  # type: ignore[attr-defined]
    parts.append(small(run))
    return page(*parts)


def small(text: str) -> str:
    return f'<div style="color: #757575; font-size: 11px; margin-top: 6px">{escape(text)}</div>'


def page(*parts: str) -> str:
    """The whole report: one ``div`` holding ``parts`` in order."""
    return f'<div class="manual-bp-report" style="{_BOX}">{"".join(parts)}</div>'


def worst_rows(worst: Mapping[str, float]) -> list[Row]:
    """A pass report's rows: each key's worst err/tol over the examples."""
    return [Row(key, "", "", ratio, f"{ratio:.2g}", ratio <= 1.0) for key, ratio in worst.items()]


def variable_rows(variables: Iterable[object], *, view: object = None) -> list[Row]:
    """Rows of ``VariableComparison``-s (``Comparison.variables``,
    ``LayerComparison.variables``), each key named and shaped by ``view``
    (``Conventions.view``: the user's names) when given."""
    rows = []
    for v in variables:
        name, shape = v.key, tuple(v.shape)  # type: ignore[attr-defined]
        if callable(view):
            name, shape, _ = view(name, shape, None)
        rows.append(
            Row(name, "x".join(map(str, shape)) or "scalar", v.diff_text(),  # type: ignore[attr-defined]
                v.ratio, v.ratio_text(), v.ok)  # type: ignore[attr-defined]
        )  # fmt: skip
    return rows


def verdict_kind(verdict: str) -> str:
    """``"undecided"`` for a verdict that says the maths is right but the
    numbers cannot be trusted (unstable numerics), else ``"fail"``."""
    return "undecided" if "unstable" in verdict else "fail"
