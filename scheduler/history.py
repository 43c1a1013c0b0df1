"""A participant's append-only history, folded into the facts the engine schedules from.

Nothing recorded is edited or deleted: a mistake is fixed by a `correction` event that voids
the event it names. The schedule is always recomputed from the whole history.

An event that contradicts the history (a second record of a cycle, anything after
discontinuation, correcting a correction) raises `HistoryConflict` (HTTP 409); one whose facts
the protocol rules out raises the engine's `ScheduleInputError` (HTTP 422).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, get_type_hints

from scheduler.errors import FactError, ScheduleInputError
from scheduler.model import (
    Discontinuation,
    DoseRecord,
    Lookbacks,
    ParticipantFacts,
    Recovery,
)
from scheduler.model import (
    OffStudy as OffStudyFact,
)
from scheduler.outcomes import (
    OffStudyOutcome,
    OffStudyReason,
    Outcomes,
    UnscheduledOutcome,
    VisitDoneOutcome,
    VisitMissedOutcome,
)
from scheduler.protocol import Protocol
from scheduler.validation import validate_facts

EventType = Literal["recovery_confirmed", "complication", "dose_given", "dose_skipped",
                    "discontinued", "correction", "enrolment_corrected", "cryoablation_done",
                    "visit_done", "visit_missed", "unscheduled_visit", "off_study",
                    "protocol_version_changed"]

# The look-back names, read off the Lookbacks type: every field, and the ones that are dates.
LOOKBACK_NAMES: tuple[str, ...] = tuple(item.name for item in fields(Lookbacks))
LOOKBACK_DATES: tuple[str, ...] = tuple(
    name for name, kind in get_type_hints(Lookbacks).items() if kind == (dt.date | None))


# What a caller may record, one value type per event type; a field with a default may be left
# out.
# `enrolment_corrected` is not among them: the service writes it itself when enrolment data
# is corrected, so that the history shows it too.
@dataclass(frozen=True)
class RecoveryConfirmed:
    type: ClassVar[EventType] = "recovery_confirmed"
    date: dt.date


@dataclass(frozen=True)
class Complication:
    type: ClassVar[EventType] = "complication"
    date: dt.date
    description: str


@dataclass(frozen=True)
class DoseGiven:
    type: ClassVar[EventType] = "dose_given"
    cycle: int
    date: dt.date


@dataclass(frozen=True)
class DoseSkipped:
    type: ClassVar[EventType] = "dose_skipped"
    cycle: int
    reason: str


@dataclass(frozen=True)
class Discontinued:
    """`reason_code` is one of the protocol's discontinuation reasons (rule discontinuation);
    `other` when absent, so a request written before revision 2 stays valid."""

    type: ClassVar[EventType] = "discontinued"
    date: dt.date
    reason: str
    reason_code: str = "other"


@dataclass(frozen=True)
class Correction:
    """Voids the event `event_id` names."""

    type: ClassVar[EventType] = "correction"
    event_id: str
    reason: str


@dataclass(frozen=True)
class ProtocolVersionChanged:
    """Moves the participant to another version of the protocol: from this event on, the
    schedule is computed under `version`. Nothing else ever changes a participant's version,
    so an upgrade of the service moves no participant's dates."""

    type: ClassVar[EventType] = "protocol_version_changed"
    version: str
    reason: str


@dataclass(frozen=True)
class CryoablationDone:
    type: ClassVar[EventType] = "cryoablation_done"
    date: dt.date


@dataclass(frozen=True)
class VisitDone:
    """Any visit but an infusion, the cryoablation or the recovery check took place."""

    type: ClassVar[EventType] = "visit_done"
    visit_id: str
    date: dt.date


@dataclass(frozen=True)
class VisitMissed:
    type: ClassVar[EventType] = "visit_missed"
    visit_id: str
    reason: str


@dataclass(frozen=True)
class UnscheduledVisit:
    """A visit outside the schedule; listed as UNS-n, it moves no planned visit."""

    type: ClassVar[EventType] = "unscheduled_visit"
    date: dt.date
    purpose: str


@dataclass(frozen=True)
class OffStudy:
    """The participant leaves the study: every later visit is cancelled (protocol-defaults
    rule 23)."""

    type: ClassVar[EventType] = "off_study"
    date: dt.date
    reason: OffStudyReason
    note: str | None = None


NewEvent = RecoveryConfirmed | Complication | DoseGiven | DoseSkipped | Discontinued \
    | Correction | ProtocolVersionChanged | CryoablationDone | VisitDone | VisitMissed \
    | UnscheduledVisit | OffStudy
EVENT_TYPES: dict[str, type[NewEvent]] = {kind.type: kind for kind in (
    RecoveryConfirmed, Complication, DoseGiven, DoseSkipped, Discontinued, Correction,
    ProtocolVersionChanged, CryoablationDone, VisitDone, VisitMissed, UnscheduledVisit,
    OffStudy)}
RECORDABLE: tuple[str, ...] = tuple(EVENT_TYPES)
# Events that record what happened at a visit rather than change the treatment.
OUTCOME_TYPES: tuple[str, ...] = ("cryoablation_done", "visit_done", "visit_missed",
                                  "unscheduled_visit", "off_study")


def event_fields(kind: str) -> tuple[str, ...]:
    """The required fields of an event of this recordable type.

    >>> event_fields("dose_given")
    ('cycle', 'date')
    """
    return tuple(item.name for item in fields(EVENT_TYPES[kind])
                 if item.default is MISSING)


def event_optional_fields(kind: str) -> tuple[str, ...]:
    """The fields an event of this type may leave out.

    >>> event_optional_fields("discontinued")
    ('reason_code',)
    """
    return tuple(item.name for item in fields(EVENT_TYPES[kind])
                 if item.default is not MISSING)


@dataclass(frozen=True)
class Enrolment:
    """What is known at enrolment; corrected by PATCH, never by events."""

    subject_code: str
    cryoablation_date: dt.date
    childbearing_potential: bool = False
    lookbacks: Lookbacks = field(default_factory=Lookbacks)
    screening_date: dt.date | None = None


@dataclass(frozen=True)
class Event:
    """One recorded event: what happened, who recorded it and when."""

    id: str
    seq: int
    type: EventType
    recorded_by: str
    recorded_at: dt.datetime
    date: dt.date | None = None
    cycle: int | None = None
    reason: str | None = None
    description: str | None = None
    corrects: str | None = None
    changes: tuple[str, ...] = ()
    reason_code: str | None = None
    version: str | None = None  # the protocol version a protocol_version_changed moves to
    visit_id: str | None = None
    purpose: str | None = None
    note: str | None = None


def recorded(new: NewEvent, id: str, seq: int, recorded_by: str,
             recorded_at: dt.datetime) -> Event:
    """`new` as the history keeps it: numbered, and saying who recorded it and when."""
    values: dict[str, Any] = {item.name: getattr(new, item.name) for item in fields(new)}
    if "event_id" in values:
        values["corrects"] = values.pop("event_id")
    return Event(id=id, seq=seq, type=new.type, recorded_by=recorded_by,
                 recorded_at=recorded_at, **values)


class HistoryConflict(Exception):
    """The event contradicts what is already recorded; nothing was changed."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message} (rule {rule})")
        self.error = FactError(field, rule, message)


def voided_by(events: list[Event]) -> dict[str, str]:
    """Each voided event's id, with the id of the correction that voids it."""
    return {e.corrects: e.id for e in events if e.type == "correction" and e.corrects}


def voided_ids(events: list[Event]) -> set[str]:
    return set(voided_by(events))


def active_events(events: list[Event]) -> list[Event]:
    """The events still in force, in recording order: corrections and voided events left out."""
    voided = voided_ids(events)
    return sorted((e for e in events if e.id not in voided and e.type not in (
        "correction", "enrolment_corrected")), key=lambda e: e.seq)


def fold(enrolment: Enrolment, events: list[Event], as_of: dt.date | None = None,
         protocol: Protocol | None = None) -> ParticipantFacts:
    """The facts the whole history amounts to; the latest recovery or complication wins.

    "Latest" is by date (rule fact-order, protocol revision 2 and the default): a
    complication dated before the confirmed recovery does not reopen the hold, whichever was
    entered first. Under a protocol without that rule (revision 1) it is the latest entered.
    """
    recovery = Recovery("pending")
    doses: list[DoseRecord] = []
    stop: Discontinuation | None = None
    leave: OffStudyFact | None = None
    active = active_events(events)
    by_date = protocol is None or protocol.has("fact-order")
    gate = [e for e in active if e.type in ("recovery_confirmed", "complication")]
    if by_date:
        gate.sort(key=lambda e: (e.date or dt.date.min, e.seq))
    for event in gate:
        if event.type == "recovery_confirmed":
            recovery = Recovery("recovered", event.date)
        else:
            recovery = Recovery("complication", event.date)
    for event in active:
        if event.type in ("recovery_confirmed", "complication"):
            continue
        elif event.type == "dose_given" and event.cycle is not None:
            doses.append(DoseRecord(event.cycle, "given", event.date))
        elif event.type == "dose_skipped" and event.cycle is not None:
            doses.append(DoseRecord(event.cycle, "skipped", reason=event.reason))
        elif event.type == "discontinued" and event.date is not None:
            stop = Discontinuation(event.date, event.reason, event.reason_code or "other")
        elif event.type == "off_study" and event.date is not None:
            leave = OffStudyFact(event.date, event.reason or "other")
    recorded = tuple(e.visit_id for e in active
                     if e.type in ("visit_done", "visit_missed") and e.visit_id)
    return ParticipantFacts(enrolment.cryoablation_date, recovery,
                            enrolment.childbearing_potential, tuple(doses), stop,
                            enrolment.lookbacks, as_of, enrolment.screening_date, leave,
                            recorded_visits=recorded)


def outcomes_of(events: list[Event]) -> Outcomes:
    """The visit outcomes the history records. Unscheduled visits are numbered over every one
    ever recorded, voided or not, so a correction never renumbers the others."""
    active = {event.id for event in active_events(events)}
    cryoablation: dt.date | None = None
    done: list[VisitDoneOutcome] = []
    missed: list[VisitMissedOutcome] = []
    unscheduled: list[UnscheduledOutcome] = []
    left: OffStudyOutcome | None = None
    number = 0
    for event in sorted(events, key=lambda e: e.seq):
        if event.type == "unscheduled_visit":
            number += 1
        if event.id not in active:
            continue
        if event.type == "cryoablation_done" and event.date is not None:
            cryoablation = event.date
        elif event.type == "visit_done" and event.visit_id and event.date is not None:
            done.append(VisitDoneOutcome(event.visit_id, event.date))
        elif event.type == "visit_missed" and event.visit_id:
            missed.append(VisitMissedOutcome(event.visit_id, event.reason))
        elif event.type == "unscheduled_visit" and event.date is not None:
            unscheduled.append(UnscheduledOutcome(number, event.date, event.purpose))
        elif event.type == "off_study" and event.date is not None:
            left = OffStudyOutcome(event.date, event.reason or "other", event.note)
    return Outcomes(cryoablation, tuple(done), tuple(missed), tuple(unscheduled), left)


def check_append(protocol: Protocol, enrolment: Enrolment, events: list[Event],
                 new: Event, today: dt.date | None = None) -> None:
    """Raise unless `new` may be appended to `events`; `today` is the site's today (rule
    future-facts refuses a fact dated after it)."""
    if new.type == "correction":
        _check_correction(events, new)
    else:
        _check_against_history(events, new)
    facts = fold(enrolment, [*events, new], protocol=protocol)
    try:
        validate_facts(protocol, facts, today)
    except ScheduleInputError as error:
        raise _as_event_fields(error, new, len(facts.doses) - 1) from None


def check_enrolment(protocol: Protocol, enrolment: Enrolment, events: list[Event]) -> None:
    """Raise unless the recorded history still holds under corrected enrolment data."""
    validate_facts(protocol, fold(enrolment, events, protocol=protocol))


def _check_correction(events: list[Event], new: Event) -> None:
    by_id = {event.id: event for event in events}
    target = by_id.get(new.corrects or "")
    if target is None:
        raise ScheduleInputError([FactError("event_id", "history",
                                            "names no event of this participant")])
    if target.type in ("correction", "enrolment_corrected"):
        raise HistoryConflict("event_id", "history",
                              f"event {target.id} is a {target.type} and cannot be voided")
    if target.type == "protocol_version_changed":
        raise HistoryConflict("event_id", "protocol-version",
                              f"event {target.id} moved the participant to protocol version "
                              f"{target.version}; record another protocol_version_changed to "
                              "move back, so that the dates it moves are shown")
    if target.id in voided_ids(events):
        raise HistoryConflict("event_id", "history", f"event {target.id} is already voided")


def _check_against_history(events: list[Event], new: Event) -> None:
    active = active_events(events)
    _check_outcome_history(active, new)
    stop = next((e for e in active if e.type == "discontinued"), None)
    if stop is not None and new.type not in (*OUTCOME_TYPES, "protocol_version_changed"):
        raise HistoryConflict("type", "discontinuation",
                              f"treatment was discontinued on {_iso(stop.date)} (event "
                              f"{stop.id}); correct that event first")
    if new.type in ("dose_given", "dose_skipped"):
        same = next((e for e in active if e.type in ("dose_given", "dose_skipped")
                     and e.cycle == new.cycle), None)
        if same is not None:
            raise HistoryConflict("cycle", "serplulimab",
                                  f"cycle {new.cycle} is already recorded as "
                                  f"{same.type.removeprefix('dose_')} (event {same.id}); "
                                  "correct that event first")
    if new.type == "complication" and any(e.type == "dose_given" for e in active):
        raise HistoryConflict("type", "complication-hold",
                              "a post-procedural complication cannot follow a dose: record "
                              "a skipped dose or a discontinuation instead")
    if new.type == "recovery_confirmed":
        last = next((e for e in reversed(active) if e.type in (
            "recovery_confirmed", "complication")), None)
        if last is not None and last.type == "recovery_confirmed":
            raise HistoryConflict("type", "recovery-gate",
                                  f"recovery is already confirmed on {_iso(last.date)} (event "
                                  f"{last.id})")


def _check_outcome_history(active: list[Event], new: Event) -> None:
    """Nothing but a correction after leaving the study; no outcome recorded twice."""
    left = next((e for e in active if e.type == "off_study"), None)
    if left is not None:
        raise HistoryConflict("type", "off-study",
                              f"the participant left the study on {_iso(left.date)} (event "
                              f"{left.id}); only a correction can follow")
    if new.type in ("visit_done", "visit_missed"):
        same = next((e for e in active if e.type in ("visit_done", "visit_missed")
                     and e.visit_id == new.visit_id), None)
        if same is not None:
            raise HistoryConflict("visit_id", "history",
                                  f"{new.visit_id} is already recorded as "
                                  f"{same.type.removeprefix('visit_')} (event {same.id}); "
                                  "correct that event first")
    if new.type == "cryoablation_done":
        same = next((e for e in active if e.type == "cryoablation_done"), None)
        if same is not None:
            raise HistoryConflict("type", "history",
                                  f"the cryoablation is already recorded done on "
                                  f"{_iso(same.date)} (event {same.id}); correct that event "
                                  "first")


def _as_event_fields(error: ScheduleInputError, new: Event, last_dose: int) \
        -> ScheduleInputError:
    """Name the new event's own fields (`date`, `cycle`) where the problem lies in them; the
    new dose is the last one folded in."""
    own_prefix = {"recovery_confirmed": "recovery.", "complication": "recovery.",
                  "discontinued": "discontinuation.", "off_study": "off_study."}.get(new.type)
    if new.type in ("dose_given", "dose_skipped"):
        own_prefix = f"doses.{last_dose}."
    renamed = [replace(item, field=item.field.removeprefix(own_prefix))
               if own_prefix and item.field.startswith(own_prefix) else item
               for item in error.errors]
    return ScheduleInputError(renamed)


def _iso(day: dt.date | None) -> str:
    return day.isoformat() if day else "an unknown date"
