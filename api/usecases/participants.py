"""The stored-participant use cases: enrol, correct enrolment data, record what happened, read
the recomputed schedule.

Every write happens in one unit of work with the participant locked, so concurrent writers
queue and each sees the history the one before it left. `before_commit` lets the caller store
an idempotent response in that same unit of work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from sys import intern
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from api.persistence.records import Cursor, DatedVisit, StoredParticipant, bumped
from api.persistence.unit_of_work import UnitOfWork, UnitOfWorkFactory
from api.usecases.common import (
    AlreadyEnrolled,
    Lru,
    NotFound,
    NothingToChange,
    StaleVersion,
    now,
)
from api.usecases.protocols import Protocols, VersionChange, version_change
from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.engine import schedule_state
from scheduler.history import (
    OUTCOME_TYPES,
    Enrolment,
    Event,
    HistoryConflict,
    NewEvent,
    ProtocolVersionChanged,
    check_append,
    check_enrolment,
    fold,
    outcomes_of,
    recorded,
)
from scheduler.model import State, Visit, Window
from scheduler.outcomes import (
    NOT_A_VISIT,
    OPEN,
    apply_outcomes,
    check_outcome,
    counting_ids,
    day_status,
    facts_with_outcomes,
    on_day,
)
from scheduler.subscription import VisitState, changed_states
from scheduler.visit_order import order_keys

Hook = Callable[[UnitOfWork, Any], None]
# Issues a participant's first feed token inside the enrolment's unit of work.
FeedTokenIssuer = Callable[[UnitOfWork, str], None]
# Told of every participant written, inside the write's unit of work (the feeds keep their
# rendered events current with it).
SavedHook = Callable[[UnitOfWork, StoredParticipant, Schedule, Mapping[str, VisitState]], None]


@dataclass(frozen=True)
class Written:
    """One write of a participant as the change hook is told of it: the event recorded (None
    for the enrolment) and the stored visit states before and after it."""

    participant: StoredParticipant
    event: Event | None
    before: Mapping[str, VisitState]
    after: Mapping[str, VisitState]


# Told of every write, inside its unit of work, after the saved hook (the webhook outbox
# records its messages with it, so a write that rolls back sends nothing).
WrittenHook = Callable[[UnitOfWork, Written], None]


@dataclass(frozen=True)
class Recorded:
    event: Event
    participant: StoredParticipant
    schedule: Schedule
    # For a protocol_version_changed event: every visit date the move changed.
    version_change: VersionChange | None = None


@dataclass(frozen=True, slots=True)
class ListedVisit:
    """A visit as a list of participants shows it: what its stored state holds, with its
    status on the day (due, overdue)."""

    id: str
    kind: str
    title: str
    date: dt.date | None
    window: Window | None
    status: str


@dataclass(frozen=True)
class Standing:
    """Where a participant stands on one day: the schedule's state and its dated visits in
    schedule order, each with its status on that day. (Held and cancelled visits have no date:
    they are never the next visit nor overdue, and no stored state keeps them.)"""

    state: State
    visits: tuple[ListedVisit, ...]


@dataclass(frozen=True)
class Summary:
    """Where a participant stands: the schedule's state and the next visit to see to."""

    state: State
    next_visit: ListedVisit | None


VisitLike = TypeVar("VisitLike", Visit, ListedVisit)


def next_visit(visits: Sequence[VisitLike]) -> VisitLike | None:
    """The visit to see to next: the earliest overdue or due one, else the earliest open one."""
    open_ = [v for v in visits if v.date is not None and v.kind not in NOT_A_VISIT
             and v.status in ("planned", "provisional", "due", "overdue")]
    pressing = [v for v in open_ if v.status in ("overdue", "due")]
    first = pressing or open_
    return first[0] if first else None


def standing_of(schedule: Schedule) -> Standing:
    """A computed schedule (as of its day) as a list shows it."""
    return Standing(schedule.state, tuple(
        ListedVisit(v.id, v.kind, v.title, v.date, v.window, v.status) for v in schedule.visits
        if v.date is not None))


def stored_standing(protocol: Protocol, participant: StoredParticipant, events: list[Event],
                    states: Mapping[str, VisitState], today: dt.date) -> Standing | None:
    """Where the participant stands on `today`, from what every write stores, without
    computing the schedule: the visits from their stored states (the recorded schedule of the
    last write: dates, windows, recorded statuses, kinds and titles), made due or overdue by
    the day as `outcomes.on_day` makes them, in the order `outcomes.apply_outcomes` leaves;
    the state from the folded history and the infusions' statuses (`schedule_state`), or off
    study when the history records it. (An infusion with no date, held or cancelled, is not
    stored, but it exists only on hold, discontinued or off study, states decided before the
    infusions' statuses are read.) Like the worklist, it trusts the stored states to be the
    schedule's: every write stores them, and a feed read brings them up to date after the
    protocol text or the holiday data changed. None when a state stored before the kinds and
    titles were kept (migration 0004) leaves nothing to go on, or when a dose is held past its
    window, whose later dates a revision 3 schedule projects from the day (rule
    held-dose-projection): the caller computes."""
    rows = [state for state in states.values() if state.present]
    if not rows or any(state.kind is None or state.title is None for state in rows):
        return None
    if any(state.kind == "infusion" and state.status in OPEN and state.latest is not None
           and state.latest < today for state in rows):
        return None
    key = order_keys(protocol.visit_order)
    rows.sort(key=lambda state: key(state.date, state.kind or "", state.visit_id))
    counting = counting_ids((r.visit_id, r.kind or "", r.status, r.date) for r in rows)
    visits = []
    for row in rows:
        window = Window(row.earliest, row.latest) \
            if row.earliest is not None and row.latest is not None else None
        status = row.status
        if row.visit_id in counting and window is not None:
            status = day_status(status, window.earliest, window.latest, today)
        # Interned: ids, kinds and titles repeat across every participant a list keeps.
        visits.append(ListedVisit(intern(row.visit_id), intern(row.kind or ""),
                                  intern(row.title or ""), row.date, window, status))
    facts = fold(participant.enrolment, events, protocol=protocol)
    state: State = "off_study" if outcomes_of(events).off_study is not None else \
        schedule_state(protocol, facts, [v.status for v in visits if v.kind == "infusion"])
    return Standing(state, tuple(visits))


def sync_visits(uow: UnitOfWork, participant_id: str, schedule: Schedule,
                when: dt.datetime, old: Mapping[str, VisitState] | None = None) \
        -> dict[str, VisitState]:
    """Bring the stored visit states up to `schedule`, raising the SEQUENCE of each visit that
    changed, so calendar subscribers see what moved (docs/feeds.md); returns them all. `old`:
    the stored states, when the caller has read them."""
    old = uow.visit_states.of(participant_id) if old is None else old
    changes = changed_states(old, schedule, when)
    uow.visit_states.save(participant_id, changes, set(old))
    return {**old, **{state.visit_id: state for state in changes}}


@dataclass
class Participants:
    """The stored-participant use cases, over one store. New enrolments are pinned to
    `protocol`; every participant is computed under the version it is pinned to, one of
    `versions` (by default every packaged version and `protocol`)."""

    units: UnitOfWorkFactory
    protocol: Protocol
    site: SiteCalendar
    issue_feed_token: FeedTokenIssuer
    versions: Protocols | None = None
    protocols: Protocols = field(init=False)

    def __post_init__(self) -> None:
        self.protocols = self.versions or Protocols.loaded(self.protocol)

    def protocol_of(self, participant: StoredParticipant) -> Protocol:
        """The protocol the participant is pinned to."""
        return self.protocols.get(participant.protocol_version)

    # Called in the unit of work of every write, after the visit states are synced (the
    # service keeps the site feed's rendered events current by it: feeds.SiteEventsWriter).
    on_saved: SavedHook | None = None
    on_written: WrittenHook | None = None
    # The site's today, for writes that are not given it (an enrolment, a correction): what
    # they store is the schedule as of that day (a held dose projects from it).
    today: Callable[[], dt.date] | None = None
    # Where listed participants stand, by (participant, version, day).
    _standings: Lru[tuple[str, int, dt.date], Standing] = field(
        default_factory=lambda: Lru(8192), repr=False)

    def saved(self, uow: UnitOfWork, participant: StoredParticipant, schedule: Schedule,
              states: Mapping[str, VisitState]) -> None:
        """Run the write hook: every write of a participant ends with it."""
        if self.on_saved is not None:
            self.on_saved(uow, participant, schedule, states)

    def write_visits(self, uow: UnitOfWork, participant: StoredParticipant, schedule: Schedule,
                     when: dt.datetime, event: Event | None,
                     before: Mapping[str, VisitState] | None = None) -> None:
        """Store the visit states of a write's schedule and run both write hooks."""
        before = uow.visit_states.of(participant.id) if before is None else before
        states = sync_visits(uow, participant.id, schedule, when, before)
        self.saved(uow, participant, schedule, states)
        if self.on_written is not None:
            self.on_written(uow, Written(participant, event, before, states))

    def _today(self) -> dt.date | None:
        return self.today() if self.today is not None else None

    def days_written(self, participant: StoredParticipant) -> list[dt.date | None]:
        """The days the stored visit states may have been computed as of, likeliest first:
        the site's today, the site day of the last write, and none (states stored before
        writes passed the day). A held dose's projection depends on the day (rule
        held-dose-projection); a reader renders from the day the states were written, so
        that reading never rewrites them."""
        written = participant.updated_at.astimezone(ZoneInfo(self.site.time_zone)).date()
        return list(dict.fromkeys([self._today(), written, None]))

    def unit(self, readonly: bool = False) -> UnitOfWork:
        return self.units(readonly)

    def lock(self, uow: UnitOfWork, participant_id: str) -> StoredParticipant:
        """The participant, locked for writing until the unit of work ends."""
        return _found(uow.participants.get(participant_id, for_update=True))

    def recorded_schedule(self, participant: StoredParticipant, events: list[Event],
                          as_of: dt.date | None = None) -> Schedule:
        """The schedule with what is recorded, under the protocol version the participant is
        pinned to, before the day makes anything due or overdue: what the stored visit states
        and the feeds hold."""
        protocol = self.protocol_of(participant)
        outcomes = outcomes_of(events)
        facts = fold(participant.enrolment, events, as_of, protocol=protocol)
        schedule = compute_schedule(protocol, facts_with_outcomes(facts, outcomes), self.site)
        return apply_outcomes(schedule, outcomes)

    def visits_for_day(self, participant_ids: list[str], today: dt.date) \
            -> dict[str, list[DatedVisit]]:
        """Every dated visit of these participants as their recorded schedule for `today` has
        them, in the stored visit states' shape: what the site-wide reads use for a
        participant whose schedule moves with the day (a held dose, rule
        held-dose-projection). Unknown ids are left out."""
        with self.unit(readonly=True) as uow:
            found = {pid: p for pid in participant_ids
                     if (p := uow.participants.get(pid)) is not None}
            histories = uow.participants.events_of_many(list(found))
        current: dict[str, list[DatedVisit]] = {}
        for pid, participant in found.items():
            schedule = self.recorded_schedule(participant, histories.get(pid, []), today)
            code = participant.enrolment.subject_code
            current[pid] = [
                DatedVisit(pid, code, v.id, v.kind, v.title, v.rule.id, v.date,
                           v.window.earliest if v.window else None,
                           v.window.latest if v.window else None, v.status)
                for v in schedule.visits if v.date is not None]
        return current

    def compute(self, participant: StoredParticipant, events: list[Event],
                as_of: dt.date | None = None) -> Schedule:
        """The schedule; as of the site's today `as_of`, if given, with due and overdue."""
        schedule = self.recorded_schedule(participant, events, as_of)
        return on_day(schedule, as_of) if as_of is not None else schedule

    def enrol(self, enrolment: Enrolment, actor: str,
              before_commit: Hook | None = None) -> StoredParticipant:
        with self.unit() as uow:
            participant = self.enrol_in(uow, enrolment, actor)
            if before_commit:
                before_commit(uow, participant)
            uow.commit()
        return participant

    def enrol_in(self, uow: UnitOfWork, enrolment: Enrolment, actor: str) \
            -> StoredParticipant:
        """Enrol inside the caller's unit of work, which commits (several at once, say)."""
        check_enrolment(self.protocol, enrolment, [])
        when = now()
        participant = StoredParticipant(str(uuid.uuid4()), enrolment, 1, when, actor, when,
                                        protocol_version=self.protocol.version)
        existing = uow.participants.by_subject_code(enrolment.subject_code)
        if existing is not None:
            raise AlreadyEnrolled(existing.id)
        uow.participants.add(participant)
        schedule = self.recorded_schedule(participant, [], self._today())
        self.issue_feed_token(uow, participant.id)
        self.write_visits(uow, participant, schedule, when, None, before={})
        return participant

    def get(self, participant_id: str) -> StoredParticipant:
        with self.unit(readonly=True) as uow:
            return _found(uow.participants.get(participant_id))

    def by_subject_code(self, subject_code: str) -> StoredParticipant | None:
        with self.unit(readonly=True) as uow:
            return uow.participants.by_subject_code(subject_code)

    def summaries(self, listed: list[StoredParticipant], today: dt.date) -> dict[str, Summary]:
        """Each listed participant's state and next visit (`standings`)."""
        found = self.standings(listed, today)
        return {pid: Summary(standing.state, next_visit(standing.visits))
                for pid, standing in found.items()}

    def known_standing(self, participant_id: str, version: int, today: dt.date) \
            -> Standing | None:
        """Where the participant stands on `today` at this version, if a list found it."""
        return self._standings.get((participant_id, version, today))

    def standings(self, listed: list[StoredParticipant], today: dt.date) \
            -> dict[str, Standing]:
        """Where each listed participant stands on `today`, without computing their schedules:
        from their stored visit states and histories, read for all of them in two queries
        (`stored_standing`); computed only for one whose stored states predate the kinds and
        titles. Kept per (participant, version, day): every write raises the version, so a
        list read again that day reads nothing."""
        found: dict[str, Standing] = {}
        missing = []
        for participant in listed:
            known = self._standings.get((participant.id, participant.version, today))
            if known is None:
                missing.append(participant)
            else:
                found[participant.id] = known
        for start in range(0, len(missing), 500):
            batch = missing[start:start + 500]
            ids = [p.id for p in batch]
            with self.unit(readonly=True) as uow:
                histories = uow.participants.events_of_many(ids)
                states = uow.visit_states.of_many(ids)
            for participant in batch:
                history = histories[participant.id]
                standing = stored_standing(self.protocol_of(participant), participant, history,
                                           states[participant.id], today)
                if standing is None:
                    standing = standing_of(on_day(
                        self.recorded_schedule(participant, history, today), today))
                self._standings.put((participant.id, participant.version, today), standing)
                found[participant.id] = standing
        return found

    def page(self, cursor: str | None, limit: int) \
            -> tuple[list[StoredParticipant], str | None]:
        """One page of participants in enrolment order, and the cursor for the next."""
        after = Cursor.decode(cursor) if cursor else None
        with self.unit(readonly=True) as uow:
            found = uow.participants.page(after, limit + 1)
        more = len(found) > limit
        return found[:limit], Cursor.encode(found[limit - 1]) if more else None

    def history(self, participant_id: str) -> tuple[StoredParticipant, list[Event]]:
        with self.unit(readonly=True) as uow:
            participant = _found(uow.participants.get(participant_id))
            return participant, uow.participants.events(participant_id)

    def schedule(self, participant_id: str, as_of: dt.date) \
            -> tuple[StoredParticipant, Schedule]:
        participant, events = self.history(participant_id)
        return participant, self.compute(participant, events, as_of)

    def record(self, participant_id: str, new: NewEvent, actor: str, as_of: dt.date,
               expected_version: int | None = None,
               before_commit: Hook | None = None) -> Recorded:
        """Append one event, if the history and the protocol allow it."""
        with self.unit() as uow:
            done = self.record_in(uow, participant_id, new, actor, as_of, expected_version)
            if before_commit:
                before_commit(uow, done)
            uow.commit()
        return done

    def record_in(self, uow: UnitOfWork, participant_id: str, new: NewEvent,
                  actor: str, as_of: dt.date | None,
                  expected_version: int | None = None) -> Recorded:
        """Append one event inside the caller's unit of work, which commits."""
        participant = self.lock(uow, participant_id)
        _check_version(participant, expected_version)
        events = uow.participants.events(participant_id)
        when = now()
        event = recorded(new, str(uuid.uuid4()), len(events) + 1, actor, when)
        change = None
        if isinstance(new, ProtocolVersionChanged):
            target = self._target(participant, new.version)
            check_append(target, participant.enrolment, events, event, today=as_of)
            before = self.recorded_schedule(participant, events, as_of)
            participant = bumped(participant, when, protocol_version=target.version)
            schedule = self.recorded_schedule(participant, [*events, event], as_of)
            change = version_change(before, schedule)
            event = replace(event, changes=change.lines())
        else:
            check_append(self.protocol_of(participant), participant.enrolment, events, event,
                         today=as_of)
            if event.type in OUTCOME_TYPES:
                check_outcome(self.recorded_schedule(participant, events, as_of), event.type,
                              event.visit_id, event.date, as_of)
            participant = bumped(participant, when)
            schedule = self.recorded_schedule(participant, [*events, event], as_of)
        # Everything below writes and reads nothing it wrote: on PostgreSQL it goes to the
        # database as one statement (UnitOfWork.batched).
        with uow.batched():
            uow.participants.append(participant_id, event)
            uow.participants.update(participant)
            self.write_visits(uow, participant, schedule, when, event)
        if as_of is not None:
            schedule = on_day(schedule, as_of)
        return Recorded(event, participant, schedule, change)

    def _target(self, participant: StoredParticipant, version: str) -> Protocol:
        target = self.protocols.target(version)
        if target.version == participant.protocol_version:
            raise HistoryConflict("version", "protocol-version",
                                  f"the participant is already on protocol version {version}")
        return target

    def correct_enrolment(self, participant_id: str, changes: dict[str, Any], reason: str | None,
                          actor: str, expected_version: int | None) -> StoredParticipant:
        """Correct enrolment data; the history records what changed, from what, to what."""
        with self.unit() as uow:
            participant = self.lock(uow, participant_id)
            _check_version(participant, expected_version)
            corrected = replace(participant.enrolment, **changes)
            code = changes.get("subject_code")
            holder = uow.participants.by_subject_code(code) if code else None
            if holder is not None and holder.id != participant.id:
                raise AlreadyEnrolled(holder.id)
            events = uow.participants.events(participant_id)
            check_enrolment(self.protocol_of(participant), corrected, events)
            when = now()
            described = tuple(f"{name}: {getattr(participant.enrolment, name)!s} -> "
                              f"{getattr(corrected, name)!s}" for name in sorted(changes)
                              if getattr(participant.enrolment, name) != getattr(corrected, name))
            if not described:
                raise NothingToChange()
            correction = Event(
                id=str(uuid.uuid4()), seq=len(events) + 1, type="enrolment_corrected",
                recorded_by=actor, recorded_at=when, reason=reason, changes=described)
            uow.participants.append(participant_id, correction)
            participant = bumped(participant, when, enrolment=corrected)
            uow.participants.update(participant)
            schedule = self.recorded_schedule(participant, events, self._today())
            self.write_visits(uow, participant, schedule, when, correction)
            uow.commit()
        return participant


def _found(participant: StoredParticipant | None) -> StoredParticipant:
    if participant is None:
        raise NotFound()
    return participant


def _check_version(participant: StoredParticipant, expected: int | None) -> None:
    if expected is not None and expected != participant.version:
        raise StaleVersion()
