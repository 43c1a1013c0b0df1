"""The site's questions across all participants: what is due this week, what is overdue, and
which visits broke their rule.

Both read the stored visit states in one query: every write keeps them current, with each
visit's window and recorded status, and the day's part (due, overdue) is derived here from the
window and the site's today by the same rule a schedule uses (`scheduler.outcomes`), so a new
day changes the answer without any write.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from api.persistence.records import ListedVisit
from api.persistence.unit_of_work import UnitOfWorkFactory
from scheduler.history import outcomes_of
from scheduler.outcomes import counting_ids, day_status

# The rule a dose given out of its window breaks (the engine warns by it too).
DOSE_WINDOW_RULE = "dose-window"


@dataclass(frozen=True)
class WorklistVisit:
    visit: ListedVisit
    status: str  # as of the day: planned, provisional, due or overdue


@dataclass(frozen=True)
class Deviation:
    visit: ListedVisit
    deviation: str  # out_of_window, missed or overdue
    rule: str
    status: str
    reason: str | None = None  # a missed visit's, as recorded


def _by_participant(rows: list[ListedVisit]) -> dict[str, list[ListedVisit]]:
    grouped: dict[str, list[ListedVisit]] = defaultdict(list)
    for row in rows:
        grouped[row.participant_id].append(row)
    return grouped


def day_statuses(rows: list[ListedVisit], today: dt.date) -> list[tuple[ListedVisit, str]]:
    """Each row with its status on `today`, one participant's rows at a time."""
    found = []
    for own in _by_participant(rows).values():
        counting = counting_ids((r.visit_id, r.kind, r.status, r.date) for r in own)
        for row in own:
            status = row.status
            if row.visit_id in counting:
                status = day_status(row.status, row.earliest, row.latest, today)
            found.append((row, status))
    return found


def _order(row: ListedVisit) -> tuple[dt.date, str, str]:
    return row.date, row.subject_code, row.visit_id


@dataclass
class Worklist:
    units: UnitOfWorkFactory

    def visits(self, start: dt.date, end: dt.date, today: dt.date) -> list[WorklistVisit]:
        """Visits due or overdue today, whatever their date, and those planned in [start, end],
        in date order."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.worklist(start, end, today)
        listed = [WorklistVisit(row, status) for row, status in day_statuses(rows, today)
                  if status in ("due", "overdue") or start <= row.date <= end]
        return sorted(listed, key=lambda item: _order(item.visit))

    def deviations(self, today: dt.date) -> list[Deviation]:
        """Visits done out of their window, missed, or overdue, by participant then date; a
        missed one with the reason recorded (read from the histories of the participants who
        have one, in one more query)."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.deviating(today)
            missing = sorted({row.participant_id for row in rows if row.status == "missed"})
            histories = uow.participants.events_of_many(missing) if missing else {}
        reasons = {(pid, outcome.visit_id): outcome.reason
                   for pid, events in histories.items()
                   for outcome in outcomes_of(events).missed}
        found = []
        for row, status in day_statuses(rows, today):
            if row.status == "done" and not row.earliest <= row.date <= row.latest:
                rule = DOSE_WINDOW_RULE if row.kind == "infusion" else row.rule
                found.append(Deviation(row, "out_of_window", rule, status))
            elif row.status == "missed":
                found.append(Deviation(row, "missed", row.rule, status,
                                       reasons.get((row.participant_id, row.visit_id))))
            elif status == "overdue":
                found.append(Deviation(row, "overdue", row.rule, status))
        return sorted(found, key=lambda d: (d.visit.subject_code, d.visit.date,
                                            d.visit.visit_id))
