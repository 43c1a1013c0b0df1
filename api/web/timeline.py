"""A participant's schedule as an SVG picture, drawn on the server (no script).

One row each for the procedure, the treatment cycles, the scans and the follow-up. Each window
is a band, each visit a mark at its date; done, missed, overdue, planned and skipped visits have
marks that differ in shape as well as colour, so the picture reads without colour too. A dashed
line marks today.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from api.web.backend import VisitRow

ROWS: tuple[tuple[str, frozenset[str]], ...] = (
    ("procedure", frozenset({"cryoablation", "recovery_check", "screening_labs",
                             "pregnancy_test"})),
    ("cycles", frozenset({"infusion", "predose_labs"})),
    ("scans", frozenset({"baseline_imaging", "response_imaging"})),
    ("follow_up", frozenset({"end_of_treatment", "safety_follow_up", "survival_follow_up",
                             "os_landmark", "contraception_end", "unscheduled"})),
)

# Shape and colour per status shown. Colours keep at least 3:1 against white.
MARKS = {
    "done": ("square", "#1a7f37"),
    "missed": ("cross", "#b42318"),
    "overdue": ("triangle", "#b54708"),
    "due": ("ring", "#1f4fbf"),
    "planned": ("circle", "#1f4fbf"),
    "provisional": ("circle", "#5b6b82"),
    "skipped": ("diamond", "#5b6b82"),
    "cancelled": ("diamond", "#5b6b82"),
    "held": ("diamond", "#5b6b82"),
}

WIDTH = 1000
LABEL_WIDTH = 120
ROW_HEIGHT = 46
TOP = 34
RIGHT_PAD = 16


@dataclass(frozen=True)
class Labels:
    """The words in the picture, in the page's language."""

    title: str
    rows: dict[str, str]
    statuses: dict[str, str]
    today: str
    window: str
    month: Callable[[dt.date], str]


def row_of(kind: str) -> str:
    for name, kinds in ROWS:
        if kind in kinds:
            return name
    return "follow_up"


def _mark(shape: str, colour: str, x: float, y: float) -> str:
    if shape == "square":
        return (f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12" '
                f'fill="{colour}"/>')
    if shape == "cross":
        return (f'<path d="M{x - 6:.1f} {y - 6:.1f}L{x + 6:.1f} {y + 6:.1f}M{x + 6:.1f} '
                f'{y - 6:.1f}L{x - 6:.1f} {y + 6:.1f}" stroke="{colour}" stroke-width="3"/>')
    if shape == "triangle":
        return (f'<path d="M{x:.1f} {y - 8:.1f}L{x + 7:.1f} {y + 6:.1f}L{x - 7:.1f} '
                f'{y + 6:.1f}Z" fill="{colour}"/>')
    if shape == "diamond":
        return (f'<path d="M{x:.1f} {y - 7:.1f}L{x + 7:.1f} {y:.1f}L{x:.1f} {y + 7:.1f}'
                f'L{x - 7:.1f} {y:.1f}Z" fill="#fff" stroke="{colour}" stroke-width="2"/>')
    if shape == "ring":
        return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#fff" stroke="{colour}" '
                f'stroke-width="4"/>')
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#fff" stroke="{colour}" '
            f'stroke-width="2"/>')


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    first = dt.date(start.year, start.month, 1)
    found = []
    while first <= end:
        if first >= start:
            found.append(first)
        first = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return found


def render(rows: Sequence[VisitRow], today: dt.date, labels: Labels) -> Markup:
    """The picture, as markup to put in the page."""
    dated = [row for row in rows if row.visit.date is not None]
    days = [today]
    for row in dated:
        assert row.visit.date is not None
        days.append(row.visit.date)
        if row.visit.window:
            days += [row.visit.window.earliest, row.visit.window.latest]
    start, end = min(days) - dt.timedelta(days=3), max(days) + dt.timedelta(days=3)
    span = max((end - start).days, 1)
    plot = WIDTH - LABEL_WIDTH - RIGHT_PAD
    height = TOP + ROW_HEIGHT * len(ROWS) + 44

    def x_of(day: dt.date) -> float:
        return LABEL_WIDTH + plot * (day - start).days / span

    parts = [f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-labelledby="timeline-title" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="timeline-title">{escape(labels.title)}</title>']
    for month in _months(start, end):
        x = x_of(month)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" '
                     f'y2="{TOP + ROW_HEIGHT * len(ROWS)}" stroke="#d0d5dd"/>')
        if month.month in (1, 4, 7, 10) or (end - start).days < 200:
            parts.append(f'<text x="{x + 3:.1f}" y="{TOP - 10}" font-size="12" '
                         f'fill="#344054">{escape(labels.month(month))}</text>')
    for index, (name, _) in enumerate(ROWS):
        y = TOP + ROW_HEIGHT * index
        if index % 2 == 0:
            parts.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{ROW_HEIGHT}" '
                         f'fill="#f5f7fa"/>')
        parts.append(f'<text x="8" y="{y + ROW_HEIGHT / 2 + 4:.1f}" font-size="13" '
                     f'font-weight="600" fill="#101828">{escape(labels.rows[name])}</text>')
    row_index = {name: index for index, (name, _) in enumerate(ROWS)}
    for row in dated:
        assert row.visit.date is not None
        index = row_index[row_of(row.visit.kind)]
        middle = TOP + ROW_HEIGHT * index + ROW_HEIGHT / 2
        status_text = labels.statuses.get(row.status, row.status)
        window = row.visit.window
        parts.append('<g>')
        tip = f"{row.visit.id} {row.visit.date.isoformat()} {status_text}"
        if window:
            tip += f" ({labels.window} {window.earliest.isoformat()} - " \
                   f"{window.latest.isoformat()})"
            left = x_of(window.earliest)
            width = max(x_of(window.latest + dt.timedelta(days=1)) - left, 2)
            parts.append(f'<rect x="{left:.1f}" y="{middle - 9:.1f}" width="{width:.1f}" '
                         f'height="18" rx="3" fill="#c7d7f5" fill-opacity="0.7"/>')
        parts.append(f'<title>{escape(tip)}</title>')
        shape, colour = MARKS.get(row.status, MARKS["planned"])
        parts.append(_mark(shape, colour, x_of(row.visit.date), middle))
        if row.visit.kind == "infusion":
            parts.append(f'<text x="{x_of(row.visit.date):.1f}" y="{middle - 12:.1f}" '
                         f'font-size="10" text-anchor="middle" fill="#101828">'
                         f'{escape(row.visit.id.removesuffix("D1"))}</text>')
        parts.append('</g>')
    x_today = x_of(today)
    bottom = TOP + ROW_HEIGHT * len(ROWS)
    parts.append(f'<line x1="{x_today:.1f}" y1="{TOP - 4}" x2="{x_today:.1f}" y2="{bottom}" '
                 f'stroke="#b42318" stroke-width="2" stroke-dasharray="5 3"/>')
    parts.append(f'<text x="{x_today:.1f}" y="{bottom + 14}" font-size="12" '
                 f'text-anchor="middle" fill="#b42318">{escape(labels.today)}</text>')
    legend_y = bottom + 34
    x = float(LABEL_WIDTH)
    for status in ("planned", "due", "done", "overdue", "missed", "skipped"):
        shape, colour = MARKS[status]
        parts.append(_mark(shape, colour, x, legend_y - 4))
        parts.append(f'<text x="{x + 12}" y="{legend_y}" font-size="12" fill="#101828">'
                     f'{escape(labels.statuses.get(status, status))}</text>')
        x += 130
    parts.append(f'<rect x="{x - 6}" y="{legend_y - 13}" width="24" height="18" rx="3" '
                 f'fill="#c7d7f5"/><text x="{x + 24}" y="{legend_y}" font-size="12" '
                 f'fill="#101828">{escape(labels.window)}</text>')
    parts.append('</svg>')
    return Markup("".join(parts))
