"""A schedule as a plain-text table, for the command line and for people reading a terminal."""

from __future__ import annotations

from scheduler.model import Schedule, Visit


def _cells(visit: Visit) -> list[str]:
    window = ""
    if visit.window is not None:
        window = f"{visit.window.earliest.isoformat()}..{visit.window.latest.isoformat()}"
    moved = ""
    if visit.rule.shifted_from is not None:
        moved = f" (moved from {visit.rule.shifted_from.isoformat()}: {visit.rule.shift_reason})"
    elif visit.rule.shift_reason:
        moved = f" ({visit.rule.shift_reason})"
    return [
        f"{visit.date.isoformat()} {visit.date.strftime('%a')}" if visit.date else "-",
        visit.id,
        visit.title,
        visit.status,
        window,
        f"{visit.rule.id} [{visit.rule.source}]",
        visit.rule.anchor + moved,
    ]


def render_table(schedule: Schedule) -> str:
    """The schedule as aligned columns, followed by its warnings."""
    header = ["date", "visit", "title", "status", "window", "rule [source]", "why"]
    rows = [header] + [_cells(visit) for visit in schedule.visits]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        f"Protocol {schedule.protocol_id} version {schedule.protocol_version}: "
        f"{schedule.state}, first dose "
        f"{schedule.first_dose_date.isoformat() if schedule.first_dose_date else 'not dated'}",
        "",
    ]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                     + "  " + row[-1])
    for warning in schedule.warnings:
        where = f" [{warning.visit_id}]" if warning.visit_id else ""
        lines.append(f"warning {warning.code}{where}: {warning.message}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
