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

from api.persistence.records import DatedVisit, ListedVisit
from api.persistence.unit_of_work import UnitOfWorkFactory
from scheduler.history import outcomes_of
from scheduler.outcomes import counting_ids, day_status
from scheduler.visit_order import OrderKey, order_key

# The rule a dose given out of its window breaks (the engine warns by it too).
DOSE_WINDOW_RULE = "dose-window"


@dataclass(frozen=True)
class WorklistVisit:
    visit: ListedVisit
    status: str  # as of the day: planned, provisional, due or overdue


@dataclass(frozen=True)
class ExportedVisit:
    visit: DatedVisit
    status: str  # as of the day


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


def _day_statuses(rows: list[ListedVisit], today: dt.date) -> list[tuple[ListedVisit, str]]:
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


def _order(row: ListedVisit, kinds: tuple[str, ...]) -> tuple[dt.date, str, OrderKey]:
    """By day, subject, then the protocol's same-day order (`scheduler.visit_order`)."""
    return row.date, row.subject_code, order_key(kinds, row.date, row.kind, row.visit_id)


@dataclass
class Worklist:
    units: UnitOfWorkFactory
    # The kinds' order on one day (rule same-day-order) of the current protocol.
    order: tuple[str, ...] = ()

    def visits(self, start: dt.date, end: dt.date, today: dt.date) -> list[WorklistVisit]:
        """Visits due or overdue today, whatever their date, and those planned in [start, end],
        in date order."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.worklist(start, end, today)
        listed = [WorklistVisit(row, status) for row, status in _day_statuses(rows, today)
                  if status in ("due", "overdue") or start <= row.date <= end]
        return sorted(listed, key=lambda item: _order(item.visit, self.order))

    def dated(self, start: dt.date, end: dt.date, today: dt.date) -> list[ExportedVisit]:
        """Every visit dated in [start, end], whatever its status (a site's export), with its
        status on `today` (counted with the participant's earlier open visits, as a schedule
        counts it), by date, subject code and visit."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.dated(start, end)
        windowed = [listed for listed in (row.listed() for row in rows) if listed is not None]
        on_day = {(row.participant_id, row.visit_id): status
                  for row, status in _day_statuses(windowed, today)}
        found = [ExportedVisit(row, on_day.get((row.participant_id, row.visit_id), row.status))
                 for row in rows if start <= row.date <= end]
        return sorted(found, key=lambda item: (item.visit.date, item.visit.subject_code,
                                               item.visit.visit_id))

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
        for row, status in _day_statuses(rows, today):
            if row.status == "done" and not row.earliest <= row.date <= row.latest:
                rule = DOSE_WINDOW_RULE if row.kind == "infusion" else row.rule
                found.append(Deviation(row, "out_of_window", rule, status))
            elif row.status == "missed":
                found.append(Deviation(row, "missed", row.rule, status,
                                       reasons.get((row.participant_id, row.visit_id))))
            elif status == "overdue":
                found.append(Deviation(row, "overdue", row.rule, status))
        return sorted(found, key=lambda d: (d.visit.subject_code,
                                            _order(d.visit, self.order)))
