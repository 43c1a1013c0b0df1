"""The unit of work in memory, for use-case tests that need no database: each unit works on a
copy of the store and puts it back on commit; writers take turns."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from dataclasses import dataclass, field, replace
from typing import Self

from api.persistence.records import (
    ApiKey,
    DatedVisit,
    FeedToken,
    ListedVisit,
    StoredParticipant,
    StoredResponse,
)
from api.persistence.unit_of_work import UnitOfWork
from scheduler.history import Event
from scheduler.outcomes import OPEN
from scheduler.subscription import VisitState


@dataclass
class MemoryState:
    participants: dict[str, StoredParticipant] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], StoredResponse] = field(default_factory=dict)
    feed_tokens: dict[str, FeedToken] = field(default_factory=dict)
    visit_states: dict[str, dict[str, VisitState]] = field(default_factory=dict)
    # (version, tag, body, marks) by participant.
    rendered_feeds: dict[str, tuple[int, str, bytes, str]] = field(default_factory=dict)


def _in_order(found: list[StoredParticipant]) -> list[StoredParticipant]:
    return sorted(found, key=lambda p: (p.enrolled_at, p.id))


class MemoryParticipants:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def add(self, participant: StoredParticipant) -> None:
        self.state.participants[participant.id] = participant
        self.state.events[participant.id] = []

    def get(self, participant_id: str, for_update: bool = False) -> StoredParticipant | None:
        return self.state.participants.get(participant_id)

    def by_subject_code(self, subject_code: str) -> StoredParticipant | None:
        return next((p for p in self.state.participants.values()
                     if p.enrolment.subject_code == subject_code), None)

    def page(self, after: tuple[dt.datetime, str] | None, limit: int) \
            -> list[StoredParticipant]:
        listed = self.listing()
        if after is not None:
            listed = [p for p in listed if (p.enrolled_at, p.id) > after]
        return listed[:limit]

    def update(self, participant: StoredParticipant) -> None:
        self.state.participants[participant.id] = participant

    def listing(self) -> list[StoredParticipant]:
        return _in_order(list(self.state.participants.values()))

    def events_of_many(self, participant_ids: list[str]) -> dict[str, list[Event]]:
        return {pid: self.events(pid) for pid in participant_ids}

    def events(self, participant_id: str) -> list[Event]:
        return sorted(self.state.events.get(participant_id, []), key=lambda e: e.seq)

    def append(self, participant_id: str, event: Event) -> None:
        self.state.events[participant_id].append(event)


class MemoryApiKeys:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def add(self, key: ApiKey) -> None:
        self.state.api_keys[key.id] = key

    def get(self, key_id: str) -> ApiKey | None:
        return self.state.api_keys.get(key_id)

    def by_name(self, name: str) -> ApiKey | None:
        return next((k for k in self.state.api_keys.values() if k.name == name), None)

    def revoke(self, key: ApiKey, when: dt.datetime) -> None:
        self.state.api_keys[key.id] = replace(key, revoked_at=when)

    def count(self) -> int:
        return len(self.state.api_keys)

    def listing(self) -> list[ApiKey]:
        return sorted(self.state.api_keys.values(), key=lambda k: (k.created_at, k.name))


class MemoryIdempotency:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def get(self, key_id: str, key: str) -> StoredResponse | None:
        return self.state.idempotency.get((key_id, key))

    def add(self, key_id: str, key: str, response: StoredResponse, when: dt.datetime) -> None:
        self.state.idempotency[key_id, key] = response


class MemoryFeedTokens:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def with_participant(self, token_id: str) -> tuple[FeedToken, StoredParticipant | None] \
            | None:
        token = self.state.feed_tokens.get(token_id)
        if token is None:
            return None
        return token, self.state.participants.get(token.participant_id or "")

    def add(self, token: FeedToken) -> None:
        self.state.feed_tokens[token.id] = token

    def active(self, kind: str, participant_id: str | None = None) -> FeedToken | None:
        return next((t for t in self.state.feed_tokens.values() if t.kind == kind
                     and t.revoked_at is None
                     and (participant_id is None or t.participant_id == participant_id)), None)

    def active_for_participants(self, participant_ids: list[str] | None = None) \
            -> dict[str, FeedToken]:
        wanted = None if participant_ids is None else set(participant_ids)
        return {t.participant_id: t for t in self.state.feed_tokens.values()
                if t.kind == "participant" and t.revoked_at is None and t.participant_id
                and (wanted is None or t.participant_id in wanted)}

    def revoke(self, token_id: str, when: dt.datetime) -> None:
        token = self.state.feed_tokens[token_id]
        self.state.feed_tokens[token_id] = replace(token, revoked_at=when)

    def lock_feed(self, kind: str, participant_id: str | None) -> None:
        """Writers already take turns on the store."""

    def revoke_live(self, kind: str, participant_id: str | None, when: dt.datetime) -> None:
        for token in list(self.state.feed_tokens.values()):
            if token.kind == kind and token.participant_id == participant_id \
                    and token.revoked_at is None:
                self.revoke(token.id, when)


class MemoryVisitStates:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def of(self, participant_id: str) -> dict[str, VisitState]:
        return dict(self.state.visit_states.get(participant_id, {}))

    def of_many(self, participant_ids: list[str]) -> dict[str, dict[str, VisitState]]:
        return {pid: self.of(pid) for pid in participant_ids}

    def save(self, participant_id: str, states: list[VisitState], known: set[str]) -> None:
        kept = self.state.visit_states.setdefault(participant_id, {})
        for state in states:
            kept[state.visit_id] = state

    def _listed(self) -> list[tuple[VisitState, ListedVisit]]:
        found = []
        for participant_id, states in self.state.visit_states.items():
            code = self.state.participants[participant_id].enrolment.subject_code
            for s in states.values():
                if s.present and s.date and s.earliest and s.latest:
                    found.append((s, ListedVisit(
                        participant_id, code, s.visit_id, s.kind or "", s.title or s.visit_id,
                        s.rule or "", s.date, s.earliest, s.latest, s.status)))
        return found

    def worklist(self, start: dt.date, end: dt.date, today: dt.date) -> list[ListedVisit]:
        return [listed for s, listed in self._listed() if s.status in OPEN and (
            start <= listed.date <= end or listed.earliest <= today)]

    def deviating(self, today: dt.date) -> list[ListedVisit]:
        return [listed for s, listed in self._listed() if s.status in ("done", "missed") or (
            s.status in OPEN and listed.latest < today)]

    def dated(self, start: dt.date, end: dt.date) -> list[DatedVisit]:
        found = []
        for participant_id, states in self.state.visit_states.items():
            code = self.state.participants[participant_id].enrolment.subject_code
            for s in states.values():
                if s.present and s.date and (start <= s.date <= end or (
                        s.status in OPEN and s.date < start)):
                    found.append(DatedVisit(
                        participant_id, code, s.visit_id, s.kind or "", s.title or s.visit_id,
                        s.rule or "", s.date, s.earliest, s.latest, s.status))
        return found


class MemoryRenderedFeeds:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def put(self, participant_id: str, version: int, tag: str, body: bytes,
            marks: str) -> None:
        self.state.rendered_feeds[participant_id] = (version, tag, body, marks)

    def of_many(self, participant_ids: list[str]) -> dict[str, tuple[int, str, bytes]]:
        return {pid: self.state.rendered_feeds[pid][:3] for pid in participant_ids
                if pid in self.state.rendered_feeds}

    def last(self, participant_id: str) -> tuple[str, bytes, str | None] | None:
        found = self.state.rendered_feeds.get(participant_id)
        return None if found is None else found[1:]


class MemoryUnitOfWork(UnitOfWork):
    def __init__(self, store: MemoryStore, readonly: bool = False) -> None:
        self.store = store
        self.readonly = readonly

    def __enter__(self) -> Self:
        if not self.readonly:
            self.store.writer.acquire()
        self.state = copy.deepcopy(self.store.state)
        self.participants = MemoryParticipants(self.state)
        self.api_keys = MemoryApiKeys(self.state)
        self.idempotency = MemoryIdempotency(self.state)
        self.feed_tokens = MemoryFeedTokens(self.state)
        self.visit_states = MemoryVisitStates(self.state)
        self.rendered_feeds = MemoryRenderedFeeds(self.state)
        return self

    def commit(self) -> None:
        if self.readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.store.state = self.state

    def __exit__(self, *_: object) -> None:
        if not self.readonly:
            self.store.writer.release()


class MemoryStore:
    """Everything stored, in memory; call it to open a unit of work."""

    def __init__(self) -> None:
        self.state = MemoryState()
        self.writer = threading.Lock()

    def __call__(self, readonly: bool = False) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self, readonly)
