"""What calendar subscribers have been told of each visit, and what changes tell them next.

A visit's SEQUENCE starts at 0 and rises whenever its date, window or status changes, or it
leaves or comes back to the feed (RFC 5546 §2.1.4); its DTSTAMP and LAST-MODIFIED are the time
of that change. So the same schedule always renders to the same bytes, and a recomputation
that moves a visit makes every client update it in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.ical import FeedEvent, visit_uid
from scheduler.model import Schedule, Visit


@dataclass(frozen=True)
class VisitState:
    visit_id: str
    date: dt.date | None
    earliest: dt.date | None
    latest: dt.date | None
    status: str
    present: bool
    sequence: int
    changed_at: dt.datetime
    # What the worklist lists besides the dates and status: None on rows stored before them.
    kind: str | None = None
    title: str | None = None
    rule: str | None = None

    def shows(self, visit: Visit) -> bool:
        """True when subscribers already have this visit as it now is."""
        return self.present and (self.date, self.earliest, self.latest, self.status) == \
            _fields(visit) and (self.kind, self.title, self.rule) == _listed(visit)


def _fields(visit: Visit) -> tuple[dt.date | None, dt.date | None, dt.date | None, str]:
    window = visit.window
    return (visit.date, window.earliest if window else None, window.latest if window else None,
            visit.status)


def _listed(visit: Visit) -> tuple[str, str, str]:
    return visit.kind, visit.title, visit.rule.id


def in_feed(schedule: Schedule) -> list[Visit]:
    """Visits a feed shows: those with a date (held and cancelled visits have none)."""
    return [visit for visit in schedule.visits if visit.date is not None]


def changed_states(old: Mapping[str, VisitState], schedule: Schedule, now: dt.datetime) \
        -> list[VisitState]:
    """The states to store after a recomputation: new, changed and removed visits only."""
    changes: list[VisitState] = []
    shown = in_feed(schedule)
    for visit in shown:
        before = old.get(visit.id)
        if before is not None and before.shows(visit):
            continue
        sequence = 0 if before is None else before.sequence + 1
        if before is not None and before.kind is None and before.present and \
                (before.date, before.earliest, before.latest, before.status) == _fields(visit):
            # A state stored before the worklist columns existed: only what the worklist lists
            # is filled in; subscribers already have the visit as it is, so SEQUENCE stays.
            sequence = before.sequence
        changes.append(VisitState(visit.id, *_fields(visit), True, sequence, now,
                                  *_listed(visit)))
    kept = {visit.id for visit in shown}
    for state in old.values():
        if state.present and state.visit_id not in kept:
            changes.append(VisitState(state.visit_id, state.date, state.earliest, state.latest,
                                      state.status, False, state.sequence + 1, now,
                                      state.kind, state.title, state.rule))
    return changes


def feed_events(schedule: Schedule, states: Mapping[str, VisitState], calendar_key: str,
                subject_code: str | None) -> list[FeedEvent]:
    """The schedule's dated visits as feed events, with their stored SEQUENCE and change time.

    Raises KeyError when a visit's stored state is missing or stale: the caller must bring the
    states up to date first (`changed_states`).
    """
    events = []
    for visit in in_feed(schedule):
        state = states[visit.id]
        if not state.shows(visit):
            raise KeyError(visit.id)
        events.append(FeedEvent(visit_uid(calendar_key, visit.id), visit, state.changed_at,
                                state.sequence, subject_code))
    return events
