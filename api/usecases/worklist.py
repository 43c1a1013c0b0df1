"""The site's questions across all participants: what is due this week, what is overdue, and
which visits broke their rule.

Both read the stored visit states in one query: every write keeps them current, with each
visit's window and recorded status, and the day's part (due, overdue) is derived here from the
window and the site's today by the same rule a schedule uses (`scheduler.outcomes`), so a new
day changes the answer without any write.

One thing the day changes besides statuses: while a dose is held past its window (protocol
revision 3, rule held-dose-projection), the dates after it are projected from the site's today.
The stored states hold that projection as of the participant's last write, so the rows of a
participant with a held dose are recomputed for today (`reproject`) before they are read:
the few held participants cost a schedule each, everyone else stays one query.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from api.persistence.records import DatedVisit, ListedVisit
from api.persistence.unit_of_work import UnitOfWorkFactory
from scheduler.history import outcomes_of
from scheduler.outcomes import (
    NOT_A_VISIT,
    OPEN,
    PROVES_CRYOABLATION,
    counting_ids,
    day_status,
)
from scheduler.subscription import VisitState
from scheduler.visit_order import OrderKey, order_keys

# The rule a dose given out of its window breaks (the engine warns by it too).
DOSE_WINDOW_RULE = "dose-window"
# Every dated visit of each participant named, as its schedule for the day has them.
Reprojection = Callable[[list[str], dt.date], Mapping[str, list[DatedVisit]]]


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


def unproved(found: list[tuple[ListedVisit, str]],
             read_states: Callable[[list[str]], Mapping[str, Mapping[str, VisitState]]]) \
        -> list[tuple[ListedVisit, str]]:
    """`found` (rows with their day statuses) without an overdue cryoablation that a later
    fact proves happened (a recovery or complication recorded, a dose given: rule
    cryoablation, `scheduler.outcomes.counting_ids`). The proof may lie outside the rows a
    read selects (the worklist reads open visits only), so the few participants with an
    overdue cryoablation are read whole, with `read_states`."""
    suspects = sorted({row.participant_id for row, status in found
                       if row.kind == "cryoablation" and status == "overdue"})
    if not suspects:
        return found
    proved = {pid for pid, own in read_states(suspects).items()
              if any(s.present and s.kind in PROVES_CRYOABLATION and s.status in ("done", "held")
                     and s.date is not None for s in own.values())}
    return [(row, row.status if row.kind == "cryoablation" and status == "overdue"
             and row.participant_id in proved else status) for row, status in found]


def held_participants(rows: list[ListedVisit] | list[DatedVisit], today: dt.date) -> list[str]:
    """Participants with an infusion whose window closed before `today` with nothing recorded:
    a held dose, from which a revision 3 schedule projects the rest of the chain."""
    return sorted({row.participant_id for row in rows
                   if row.kind == "infusion" and row.status in OPEN and row.latest is not None
                   and row.latest < today})


def for_today(rows: list[DatedVisit], today: dt.date, wanted: Callable[[DatedVisit], bool],
              reproject: Reprojection | None) -> list[DatedVisit]:
    """`rows` with every held participant's rows replaced by its schedule's for `today`,
    those of them `wanted` (what the stored read that gave `rows` selects)."""
    held = held_participants(rows, today)
    if not held or reproject is None:
        return rows
    current = reproject(held, today)
    replaced = set(current)
    return [row for row in rows if row.participant_id not in replaced] + [
        row for pid in replaced for row in current[pid] if wanted(row)]


def listed_for_today(rows: list[ListedVisit], today: dt.date,
                     wanted: Callable[[DatedVisit], bool],
                     reproject: Reprojection | None) -> list[ListedVisit]:
    """`for_today` of rows that all have a window."""
    dated = [DatedVisit(r.participant_id, r.subject_code, r.visit_id, r.kind, r.title,
                        r.rule, r.date, r.earliest, r.latest, r.status) for r in rows]
    current = for_today(dated, today, wanted, reproject)
    if current is dated:
        return rows
    return [listed for listed in (row.listed() for row in current) if listed is not None]


def worklist_rows(start: dt.date, end: dt.date, today: dt.date) -> Callable[[DatedVisit], bool]:
    """What the stored worklist read selects: open visits whose window has opened by the range's
    end (or today), dated in the range, or opened by today (a visit, not a date marker)."""
    opened = max(today, end)
    return lambda row: (
        row.status in OPEN and row.earliest is not None and row.earliest <= opened
        and (start <= row.date <= end or (row.earliest <= today
                                            and row.kind not in NOT_A_VISIT)))


def _deviating(today: dt.date) -> Callable[[DatedVisit], bool]:
    """What the stored deviations read: done or missed, or open with the window closed."""
    return lambda row: row.status in ("done", "missed") or (
        row.status in OPEN and row.latest is not None and row.latest < today)


def _order(kinds: tuple[str, ...]) -> Callable[[ListedVisit], tuple[dt.date, str, OrderKey]]:
    """By day, subject, then the protocol's same-day order (`scheduler.visit_order`)."""
    key = order_keys(kinds)
    return lambda row: (row.date, row.subject_code, key(row.date, row.kind, row.visit_id))


@dataclass
class Worklist:
    units: UnitOfWorkFactory
    # The kinds' order on one day (rule same-day-order) of the current protocol.
    order: tuple[str, ...] = ()
    # Recomputes held participants' rows for the day (see the module's docstring).
    reproject: Reprojection | None = None

    def _states(self, participant_ids: list[str]) -> dict[str, dict[str, VisitState]]:
        with self.units(readonly=True) as uow:
            return uow.visit_states.of_many(participant_ids)

    def _for_today(self, rows: list[DatedVisit], today: dt.date,
                   wanted: Callable[[DatedVisit], bool]) -> list[DatedVisit]:
        return for_today(rows, today, wanted, self.reproject)

    def _listed_for_today(self, rows: list[ListedVisit], today: dt.date,
                          wanted: Callable[[DatedVisit], bool]) -> list[ListedVisit]:
        return listed_for_today(rows, today, wanted, self.reproject)

    def visits(self, start: dt.date, end: dt.date, today: dt.date) -> list[WorklistVisit]:
        """Visits due or overdue today, whatever their date, and those planned in [start, end],
        in date order."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.worklist(start, end, today)
        rows = self._listed_for_today(rows, today, worklist_rows(start, end, today))
        listed = [WorklistVisit(row, status) for row, status
                  in unproved(day_statuses(rows, today), self._states)
                  if status in ("due", "overdue") or start <= row.date <= end]
        order = _order(self.order)
        return sorted(listed, key=lambda item: order(item.visit))

    def dated(self, start: dt.date, end: dt.date, today: dt.date) -> list[ExportedVisit]:
        """Every visit dated in [start, end], whatever its status (a site's export), with its
        status on `today` (counted with the participant's earlier open visits, as a schedule
        counts it), by date, subject code and visit."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.dated(start, end)
        rows = self._for_today(rows, today, lambda row: start <= row.date <= end or (
            row.status in OPEN and row.date < start))
        windowed = [listed for listed in (row.listed() for row in rows) if listed is not None]
        on_day = {(row.participant_id, row.visit_id): status
                  for row, status in unproved(day_statuses(windowed, today), self._states)}
        found = [ExportedVisit(row, on_day.get((row.participant_id, row.visit_id), row.status))
                 for row in rows if start <= row.date <= end]
        return sorted(found, key=lambda item: (item.visit.date, item.visit.subject_code,
                                               item.visit.visit_id))

    def overdue_count(self, today: dt.date) -> int:
        """How many visits are overdue on `today`, as the worklist counts them (a chained
        visit only when it is dated by the first open infusion; a cryoablation a later fact
        proves, never), from the rows the deviations read: one read, cheap enough for every
        metrics scrape."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.deviating(today)
        rows = self._listed_for_today(rows, today, _deviating(today))
        return sum(1 for _, status in day_statuses(rows, today) if status == "overdue")

    def deviations(self, today: dt.date) -> list[Deviation]:
        """Visits done out of their window, missed, or overdue, by participant then date; a
        missed one with the reason recorded (read from the histories of the participants who
        have one, in one more query)."""
        with self.units(readonly=True) as uow:
            rows = uow.visit_states.deviating(today)
        rows = self._listed_for_today(rows, today, _deviating(today))
        with self.units(readonly=True) as uow:
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
        order = _order(self.order)
        return sorted(found, key=lambda d: (d.visit.subject_code, order(d.visit)))
