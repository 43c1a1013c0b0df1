"""Worklist table bodies, built in Python: the worklist of a thousand participants has
thousands of rows, and a template macro per row costs ten times as much."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from markupsafe import Markup, escape

from api.web.backend import WorkRow

MORE_AFTER = 4


def badges(labels: dict[str, str]) -> dict[str, Markup]:
    """The status badge of each status, once per page (shape and word, not colour alone)."""
    return {status: Markup('<span class="status status-{0}"><span class="shape" '
                           'aria-hidden="true"></span>{1}</span>').format(status, label)
            for status, label in labels.items()}


def _window(row: WorkRow) -> str:
    return f"{row.earliest.isoformat()} \u2013 {row.latest.isoformat()}"


def visit_rows(rows: Iterable[WorkRow], link: Callable[[str], str],
               day: Callable[[dt.date | None], str], badge: dict[str, Markup]) -> Markup:
    """One row per visit: subject, visit, planned day, window, status."""
    parts = []
    for row in rows:
        parts.append(
            f'<tr><td class="nowrap"><a href="{escape(link(row.participant_id))}">'
            f'{escape(row.subject_code)}</a></td><td><span class="visit-id">'
            f'{escape(row.visit_id)}</span> <span lang="en">{escape(row.title)}</span></td>'
            f'<td class="nowrap">{escape(day(row.date))}</td>'
            f'<td class="nowrap">{escape(_window(row))}</td>'
            f'<td>{badge.get(row.status, escape(row.status))}</td></tr>')
    return Markup("".join(parts))


def overdue_rows(rows: Iterable[WorkRow], link: Callable[[str], str],
                 day: Callable[[dt.date | None], str], badge: dict[str, Markup],
                 more: Callable[[int], str]) -> Markup:
    """One row per participant with overdue visits, the oldest first: subject, the visits
    (the first few by id and planned day), the oldest planned day, how many."""
    by_participant: dict[str, list[WorkRow]] = {}
    for row in rows:
        by_participant.setdefault(row.participant_id, []).append(row)
    parts = []
    groups = sorted(by_participant.values(), key=lambda group: (
        min(r.date for r in group), group[0].subject_code))
    for group in groups:
        first = group[0]
        shown = ", ".join(
            f'<span class="visit-id">{escape(r.visit_id)}</span> {escape(day(r.date))}'
            for r in group[:MORE_AFTER])
        if len(group) > MORE_AFTER:
            shown += f" {escape(more(len(group) - MORE_AFTER))}"
        oldest = min(r.date for r in group)
        parts.append(
            f'<tr><td class="nowrap"><a href="{escape(link(first.participant_id))}">'
            f'{escape(first.subject_code)}</a></td><td>{shown}</td>'
            f'<td class="nowrap">{escape(day(oldest))}</td>'
            f'<td class="nowrap">{len(group)} {badge["overdue"]}</td></tr>')
    return Markup("".join(parts))
