"""Participants for the benchmark, written through the service's own use cases and checks.

Two kinds:

- `followed`: a site as it looks after a year of enrolment. Cryoablations spread from the start
  of the study period to a month ahead; every visit whose date has passed is recorded as a site
  records it (the cryoablation, the recovery, each dose on its planned date, each other visit
  done on its date), except about one visit in twenty-five left unrecorded (it is overdue) and one
  in fifty recorded missed. The worklist and the pages are measured on these.
- `awaiting_first_dose`: cryoablated nine days ago and recovered a week later, what came before
  the first dose recorded, cycle 1 due; the benchmark records their first dose, one participant
  a request.

Each participant's facts are checked as the API checks them (`check_append`, `check_outcome`),
then stored with one recomputation: the visit states and the site feed's rendered events are
those a participant recorded one event at a time would have.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from dataclasses import replace

from flask import Flask

from api.http.context import container
from api.persistence.records import StoredParticipant, bumped
from api.usecases.common import now
from api.usecases.participants import sync_visits
from scheduler.history import (
    CryoablationDone,
    DoseGiven,
    Enrolment,
    Event,
    NewEvent,
    RecoveryConfirmed,
    VisitDone,
    VisitMissed,
    check_append,
    recorded,
)
from scheduler.model import Schedule
from scheduler.outcomes import CHAINED, NOT_A_VISIT, OPEN, check_outcome

ACTOR = "bench"
BATCH = 100  # participants to a transaction
STUDY_START = dt.date(2025, 11, 3)


def _share(number: int, visit_id: str) -> int:
    """A stable number in [0, 100) for a participant's visit: which ones are left open."""
    return zlib.crc32(f"{number}:{visit_id}".encode()) % 100


def _outcome(number: int, visit_id: str, kind: str, day: dt.date) -> NewEvent | None:
    if kind == "cryoablation":
        return CryoablationDone(day)
    if kind == "recovery_check":
        return RecoveryConfirmed(day)
    if kind == "infusion":
        return DoseGiven(int(visit_id[1:].split("D", 1)[0]), day)
    share = _share(number, visit_id)
    if kind not in CHAINED and share < 4:
        return None  # not recorded: overdue once its window has passed
    if kind not in CHAINED and share < 6:
        return VisitMissed(visit_id, "participant did not attend")
    return VisitDone(visit_id, day)


_FIRST = ("cryoablation", "recovery_check")  # on their day, before what depends on them


def _past_open(schedule: Schedule, today: dt.date) -> list[tuple[dt.date, str, str]]:
    return sorted(((visit.date, visit.id, visit.kind) for visit in schedule.visits
                   if visit.status in OPEN and visit.date is not None and visit.date < today
                   and visit.kind not in NOT_A_VISIT),
                  key=lambda item: (item[0], item[2] not in _FIRST, item[1]))


def _record_past(app: Flask, number: int, participant: StoredParticipant, today: dt.date,
                 doses: bool) -> tuple[StoredParticipant, list[Event]]:
    """The events a site would have recorded for this participant by `today` (with no dose,
    unless `doses`)."""
    service = container(app).participants
    protocol = service.protocol_of(participant)
    events: list[Event] = []
    left_open: set[str] = set()
    for _ in range(32):  # a dose can open visits a schedule did not have before it
        schedule = service.recorded_schedule(participant, events)
        pending = [(day, visit_id, kind) for day, visit_id, kind in _past_open(schedule, today)
                   if visit_id not in left_open]
        if not pending:
            break
        for day, visit_id, kind in pending:
            new = _outcome(number, visit_id, kind, day)
            if new is None or (kind == "infusion" and not doses):
                left_open.add(visit_id)
                continue
            event = recorded(new, str(uuid.uuid4()), len(events) + 1, ACTOR, now())
            check_append(protocol, participant.enrolment, events, event, today=today)
            if event.type in ("visit_done", "visit_missed"):
                check_outcome(schedule, event.type, event.visit_id, event.date, today)
            events.append(event)
            participant = bumped(participant, event.recorded_at)
            if kind in ("recovery_check", "infusion"):
                break  # later dates follow from this one: compute them again
    return participant, events


def _store(app: Flask, enrolments: list[tuple[int, Enrolment]], today: dt.date,
           doses: bool) -> list[str]:
    service = container(app).participants
    ids = []
    # Participants without doses all share one cryoablation date, so one's history and
    # schedule stand for the others' (with events of their own).
    alike: dict[dt.date, tuple[list[Event], Schedule]] = {}
    with service.unit() as uow:
        for number, enrolment in enrolments:
            known = None if doses else alike.get(enrolment.cryoablation_date)
            if known is None:
                render = service.on_saved
                service.on_saved = None  # the participant is written again below
                try:
                    participant = service.enrol_in(uow, enrolment, ACTOR)
                finally:
                    service.on_saved = render
                participant, events = _record_past(app, number, participant, today, doses)
                schedule = service.recorded_schedule(participant, events)
                alike[enrolment.cryoablation_date] = events, schedule
            else:
                # Enrolled as enrol_in enrols (its checks passed for the first of them), with
                # the first's history and schedule.
                events = [replace(event, id=str(uuid.uuid4())) for event in known[0]]
                schedule = known[1]
                when = now()
                participant = StoredParticipant(
                    str(uuid.uuid4()), enrolment, 1 + len(events), when, ACTOR, when,
                    protocol_version=service.protocol.version)
                uow.participants.add(participant)
                service.issue_feed_token(uow, participant.id)
            for event in events:
                uow.participants.append(participant.id, event)
            participant = replace(participant, updated_at=now())
            uow.participants.update(participant)
            states = sync_visits(uow, participant.id, schedule, participant.updated_at)
            service.saved(uow, participant, schedule, states)
            ids.append(participant.id)
        uow.commit()
    return ids


def followed(app: Flask, start: int, count: int, today: dt.date) -> list[str]:
    """`count` participants as a site following them would have recorded them by `today`."""
    span = (today + dt.timedelta(days=30) - STUDY_START).days
    ids = []
    for first in range(start, start + count, BATCH):
        enrolments = [(n, Enrolment(f"SITE-{n:05d}",
                                    STUDY_START + dt.timedelta(days=(n * 37) % span)))
                      for n in range(first, min(first + BATCH, start + count))]
        ids += _store(app, enrolments, today, doses=True)
    return ids


def awaiting_first_dose(app: Flask, start: int, count: int, today: dt.date) -> list[str]:
    """`count` participants cryoablated nine days before `today` and recovered a week later,
    everything before the first dose recorded."""
    return _awaiting(app, start, count, today, 9, "POOL")


def moved_by_first_dose(app: Flask, start: int, count: int, today: dt.date) -> list[str]:
    """`count` participants cryoablated twelve days before `today` and recovered a week later,
    whose first dose, planned a few days ago, is not yet recorded: recorded today, it moves
    every later visit (a `schedule.changed` webhook each)."""
    return _awaiting(app, start, count, today, 12, "HOOK")


def _awaiting(app: Flask, start: int, count: int, today: dt.date, days_ago: int,
              prefix: str) -> list[str]:
    """`count` participants (subject codes `<prefix>-<n>`) cryoablated `days_ago` days before
    `today`, recovered a week later, awaiting their first dose."""
    cryoablation = today - dt.timedelta(days=days_ago)
    ids = []
    for first in range(start, start + count, BATCH * 2):
        enrolments = [(n, Enrolment(f"{prefix}-{n:05d}", cryoablation))
                      for n in range(first, min(first + BATCH * 2, start + count))]
        ids += _store(app, enrolments, today, doses=False)
    return ids
