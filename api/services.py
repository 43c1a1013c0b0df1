"""Use cases of the stored participants: plain values in, a unit of work, domain rules applied.

Every write happens in one transaction with the participant row locked, so concurrent writers
queue and each sees the history the one before it left. `before_commit` lets the caller store
an idempotent response in that same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Engine

from api.persistence.repository import (
    ApiKey,
    Cursor,
    SqlUnitOfWork,
    StoredParticipant,
    bumped,
)
from scheduler import Protocol, Schedule, SiteCalendar, compute_schedule
from scheduler.history import (
    Enrolment,
    Event,
    HistoryConflict,
    check_append,
    check_enrolment,
    fold,
)
from scheduler.subscription import changed_states

SCOPES = ("read", "write", "admin")
KEY_PREFIX = "ts"

Hook = Callable[[SqlUnitOfWork, Any], None]


class NotFound(Exception):
    """No participant with that id."""


class StaleVersion(Exception):
    """The caller's If-Match names a version that is no longer current."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Recorded:
    event: Event
    participant: StoredParticipant
    schedule: Schedule


@dataclass
class Participants:
    """The stored-participant use cases, over one database."""

    engine: Engine
    protocol: Protocol
    site: SiteCalendar
    # Issues a participant's first feed token inside the enrolment transaction.
    issue_feed_token: Callable[[SqlUnitOfWork, str], Any] | None = None

    def unit(self, readonly: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, readonly)

    def lock(self, uow: SqlUnitOfWork, participant_id: str) -> StoredParticipant:
        """The participant, locked for writing until the unit of work ends."""
        return _found(uow.participants.get(participant_id, for_update=True))

    def compute(self, enrolment: Enrolment, events: list[Event],
                as_of: dt.date | None = None) -> Schedule:
        return compute_schedule(self.protocol, fold(enrolment, events, as_of), self.site)

    def _sync_visits(self, uow: SqlUnitOfWork, participant_id: str, schedule: Schedule,
                     when: dt.datetime) -> None:
        """Tell subscribers what changed: raise SEQUENCE of each changed visit."""
        old = uow.visit_states.of(participant_id)
        uow.visit_states.save(participant_id, changed_states(old, schedule, when), set(old))

    def enrol(self, enrolment: Enrolment, actor: str,
              before_commit: Hook | None = None) -> StoredParticipant:
        with self.unit() as uow:
            participant = self.enrol_in(uow, enrolment, actor)
            if before_commit:
                before_commit(uow, participant)
            uow.commit()
        return participant

    def enrol_in(self, uow: SqlUnitOfWork, enrolment: Enrolment, actor: str) \
            -> StoredParticipant:
        """Enrol inside the caller's unit of work, which commits (several at once, say)."""
        check_enrolment(self.protocol, enrolment, [])
        when = now()
        participant = StoredParticipant(str(uuid.uuid4()), enrolment, 1, when, actor, when)
        if uow.participants.by_subject_code(enrolment.subject_code) is not None:
            raise HistoryConflict("subject_code", "enrolment",
                                  "a participant with this subject code is enrolled")
        uow.participants.add(participant)
        self._sync_visits(uow, participant.id, self.compute(enrolment, []), when)
        if self.issue_feed_token:
            self.issue_feed_token(uow, participant.id)
        return participant

    def get(self, participant_id: str) -> StoredParticipant:
        with self.unit(readonly=True) as uow:
            return _found(uow.participants.get(participant_id))

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
        return participant, self.compute(participant.enrolment, events, as_of)

    def record(self, participant_id: str, fields: dict[str, Any], actor: str, as_of: dt.date,
               expected_version: int | None = None,
               before_commit: Hook | None = None) -> Recorded:
        """Append one event, if the history and the protocol allow it."""
        with self.unit() as uow:
            recorded = self.record_in(uow, participant_id, fields, actor, as_of,
                                      expected_version)
            if before_commit:
                before_commit(uow, recorded)
            uow.commit()
        return recorded

    def record_in(self, uow: SqlUnitOfWork, participant_id: str, fields: dict[str, Any],
                  actor: str, as_of: dt.date | None,
                  expected_version: int | None = None) -> Recorded:
        """Append one event inside the caller's unit of work, which commits."""
        participant = self.lock(uow, participant_id)
        _check_version(participant, expected_version)
        events = uow.participants.events(participant_id)
        when = now()
        event = Event(id=str(uuid.uuid4()), seq=len(events) + 1, recorded_by=actor,
                      recorded_at=when, **fields)
        check_append(self.protocol, participant.enrolment, events, event, today=as_of)
        uow.participants.append(participant_id, event)
        participant = bumped(participant, when)
        uow.participants.update(participant)
        schedule = self.compute(participant.enrolment, [*events, event], as_of)
        self._sync_visits(uow, participant_id, schedule, when)
        return Recorded(event, participant, schedule)

    def correct_enrolment(self, participant_id: str, changes: dict[str, Any], reason: str | None,
                          actor: str, expected_version: int | None) -> StoredParticipant:
        """Correct enrolment data; the history records what changed, from what, to what."""
        with self.unit() as uow:
            participant = self.lock(uow, participant_id)
            _check_version(participant, expected_version)
            corrected = replace(participant.enrolment, **changes)
            code = changes.get("subject_code")
            if code and code != participant.enrolment.subject_code and \
                    uow.participants.by_subject_code(code) is not None:
                raise HistoryConflict("subject_code", "enrolment",
                                      "a participant with this subject code is enrolled")
            events = uow.participants.events(participant_id)
            check_enrolment(self.protocol, corrected, events)
            when = now()
            described = tuple(f"{name}: {getattr(participant.enrolment, name)!s} -> "
                              f"{getattr(corrected, name)!s}" for name in sorted(changes)
                              if getattr(participant.enrolment, name) != getattr(corrected, name))
            uow.participants.append(participant_id, Event(
                id=str(uuid.uuid4()), seq=len(events) + 1, type="enrolment_corrected",
                recorded_by=actor, recorded_at=when, reason=reason, changes=described))
            participant = bumped(participant, when, enrolment=corrected)
            uow.participants.update(participant)
            self._sync_visits(uow, participant_id, self.compute(corrected, events), when)
            uow.commit()
        return participant


def _found(participant: StoredParticipant | None) -> StoredParticipant:
    if participant is None:
        raise NotFound()
    return participant


def _check_version(participant: StoredParticipant, expected: int | None) -> None:
    if expected is not None and expected != participant.version:
        raise StaleVersion()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class ApiKeys:
    """API keys: shown once when created, stored only as a SHA-256 digest."""

    engine: Engine

    def create(self, name: str, scope: str) -> str:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        key_id = secrets.token_hex(8)
        secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with SqlUnitOfWork(self.engine) as uow:
            if uow.api_keys.by_name(name) is not None:
                raise ValueError(f"an API key named {name!r} exists")
            uow.api_keys.add(ApiKey(key_id, name, scope, digest(secret), now()))
            uow.commit()
        return secret

    def revoke(self, name: str) -> bool:
        with SqlUnitOfWork(self.engine) as uow:
            key = uow.api_keys.by_name(name)
            if key is None or key.revoked_at is not None:
                return False
            uow.api_keys.revoke(key, now())
            uow.commit()
        return True

    def count(self) -> int:
        with SqlUnitOfWork(self.engine, readonly=True) as uow:
            return uow.api_keys.count()

    def authenticate(self, presented: str) -> ApiKey | None:
        """The live key behind a presented secret, compared in constant time."""
        prefix, _, rest = presented.partition("_")
        key_id, _, _ = rest.partition("_")
        if prefix != KEY_PREFIX or not key_id:
            return None
        with SqlUnitOfWork(self.engine, readonly=True) as uow:
            key = uow.api_keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return None
        if not hmac.compare_digest(digest(presented), key.digest):
            return None
        return key
