"""The SQL repositories and unit of work (SQLAlchemy Core): domain values in and out, rows
stay in here."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from api.persistence.batch import (
    EVENT_CLAUSE,
    PARTICIPANT_CLAUSE,
    RENDERED_CLAUSE,
    Batch,
    Clause,
    for_psycopg,
    on_driver,
)
from api.persistence.records import (
    ApiKey,
    DatedVisit,
    FeedToken,
    ListedVisit,
    StoredParticipant,
    StoredResponse,
    utc,
)
from api.persistence.tables import (
    api_keys,
    events,
    feed_tokens,
    idempotency_keys,
    participants,
    rendered_feeds,
    visit_states,
)
from api.persistence.unit_of_work import UnitOfWork
from api.persistence.webhooks import SqlWebhooks, Waker
from scheduler.history import LOOKBACK_DATES, LOOKBACK_NAMES, Enrolment, Event
from scheduler.model import Lookbacks
from scheduler.outcomes import NOT_A_VISIT, OPEN
from scheduler.subscription import VisitState


def _lookbacks_json(lookbacks: Lookbacks) -> dict[str, Any]:
    values = {name: getattr(lookbacks, name) for name in LOOKBACK_NAMES}
    return {name: value.isoformat() if name in LOOKBACK_DATES and value else value
            for name, value in values.items()}


def _lookbacks(data: dict[str, Any]) -> Lookbacks:
    values: dict[str, Any] = {
        name: (dt.date.fromisoformat(data[name]) if data.get(name) else None)
        if name in LOOKBACK_DATES else data.get(name) for name in LOOKBACK_NAMES}
    return Lookbacks(**values)


def _unstorable(key: str) -> bool:
    """A key holding NUL: no stored text has one (PostgreSQL cannot store it, and psycopg
    refuses to send it), so a lookup by it finds nothing on either database."""
    return "\x00" in key


def _participant(row: Mapping[Any, Any]) -> StoredParticipant:
    enrolment = Enrolment(row["subject_code"], row["cryoablation_date"],
                          row["childbearing_potential"], _lookbacks(row["lookbacks"]),
                          row["screening_date"])
    return StoredParticipant(row["id"], enrolment, row["version"], utc(row["enrolled_at"]),
                             row["enrolled_by"], utc(row["updated_at"]),
                             row["protocol_version"])


def _event(row: RowMapping) -> Event:
    return Event(id=row["id"], seq=row["seq"], type=row["type"],
                 recorded_by=row["recorded_by"], recorded_at=utc(row["recorded_at"]),
                 date=row["date"], cycle=row["cycle"], reason=row["reason"],
                 description=row["description"], corrects=row["corrects"],
                 changes=tuple(row["changes"] or ()), reason_code=row["reason_code"],
                 version=row["protocol_version"], visit_id=row["visit_id"],
                 purpose=row["purpose"], note=row["note"])


# The write path's statements, built once: `.values(...)` on each write built a new statement
# whose cache key SQLAlchemy then had to generate from every value.
_INSERT_PARTICIPANT = participants.insert()
_UPDATE_PARTICIPANT = participants.update().where(participants.c.id == sa.bindparam("pid"))
_INSERT_EVENT = events.insert()
# And its reads: a select built per call spent more CPU composing and keying itself than the
# database spent answering it.
_PARTICIPANT = sa.select(participants).where(participants.c.id == sa.bindparam("pid"))
# The lock also reads the participant's rendered site events, so a write re-renders only the
# events it changed (feeds.SiteEventsWriter). Only the participant's row is locked; the
# rendered row read with it may predate a write the lock waited for, which is harmless: the
# writer reuses an event's bytes only where they are what it would render.
_PARTICIPANT_FOR_UPDATE = sa.select(
    participants, rendered_feeds.c.tag.label("rendered_tag"),
    rendered_feeds.c.body.label("rendered_body"), rendered_feeds.c.marks.label("rendered_marks"),
).outerjoin(rendered_feeds, rendered_feeds.c.participant_id == participants.c.id).where(
    participants.c.id == sa.bindparam("pid")).with_for_update(of=participants)
# On PostgreSQL the lock also reads the active webhook endpoints, which the write's outbox
# hook asks for (api/usecases/webhooks.py WebhookOutbox): one round trip less a write. They
# are what the lock's statement saw, as a read just after it would be, the endpoints not being
# tied to the participant (an endpoint registered or deleted while the write runs may or may
# not be told of it, either way).
_PG_PARTICIPANT_FOR_UPDATE = _PARTICIPANT_FOR_UPDATE.add_columns(sa.literal_column(
    "(SELECT json_agg(json_build_array(id, url, secret, event_types, status, created_at, "
    "disabled_at)) FROM webhook_endpoints WHERE status = 'active')", sa.JSON).label(
    "active_endpoints"))
# After the lock, on PostgreSQL: the participant's history and its stored visit states in one
# round trip (UNION ALL of both, the columns of the other left NULL; `part` tells them apart).
_STATE_COLUMNS_READ = [c for c in visit_states.c if c.name != "participant_id"]
_HISTORY_AND_STATES = sa.union_all(
    sa.select(sa.literal_column("0").label("part"), *events.c,
              *[sa.null().cast(c.type).label(f"v_{c.name}") for c in _STATE_COLUMNS_READ])
    .where(events.c.participant_id == sa.bindparam("pid")),
    sa.select(sa.literal_column("1"), *[sa.null().cast(c.type) for c in events.c],
              *_STATE_COLUMNS_READ)
    .where(visit_states.c.participant_id == sa.bindparam("pid")),
).order_by(sa.literal_column("part"), sa.literal_column("seq"))
# The write path's two reads on PostgreSQL, run past SQLAlchemy's execution layer
# (batch.on_driver).
_PG_PARTICIPANT_FOR_UPDATE_SQL = for_psycopg(_PG_PARTICIPANT_FOR_UPDATE)
_HISTORY_AND_STATES_SQL = for_psycopg(_HISTORY_AND_STATES)
_EVENTS = sa.select(events).where(events.c.participant_id == sa.bindparam("pid")).order_by(
    events.c.seq)


def _participant_values(participant: StoredParticipant) -> dict[str, Any]:
    """The columns a correction or any write may change."""
    enrolment = participant.enrolment
    return {"subject_code": enrolment.subject_code,
            "cryoablation_date": enrolment.cryoablation_date,
            "childbearing_potential": enrolment.childbearing_potential,
            "lookbacks": _lookbacks_json(enrolment.lookbacks), "version": participant.version,
            "updated_at": participant.updated_at,
            "protocol_version": participant.protocol_version,
            "screening_date": enrolment.screening_date}


class SqlParticipants:
    """`batch`, `rendered`, `states` and `hooks`: the unit of work's, which a write's lock and
    history read fill on PostgreSQL, so the write does not read them again."""

    def __init__(self, connection: Connection, batch: Batch | None = None,
                 rendered: SqlRenderedFeeds | None = None,
                 states: SqlVisitStates | None = None, hooks: SqlWebhooks | None = None) \
            -> None:
        self.connection = connection
        self.batch = batch
        self.rendered = rendered
        self.states = states
        self.hooks = hooks
        self.locked: set[str] = set()
        self.postgresql = connection.dialect.name == "postgresql"

    def add(self, participant: StoredParticipant) -> None:
        self.connection.execute(_INSERT_PARTICIPANT, {
            **_participant_values(participant), "id": participant.id,
            "enrolled_at": participant.enrolled_at, "enrolled_by": participant.enrolled_by})

    def get(self, participant_id: str, for_update: bool = False) -> StoredParticipant | None:
        if _unstorable(participant_id):
            return None
        # PostgreSQL locks the row until commit; SQLite already holds the write lock.
        query = _PARTICIPANT if not for_update else \
            _PG_PARTICIPANT_FOR_UPDATE if self.postgresql and self.hooks is not None \
            else _PARTICIPANT_FOR_UPDATE
        if query is _PG_PARTICIPANT_FOR_UPDATE:
            row = on_driver(self.connection, _PG_PARTICIPANT_FOR_UPDATE_SQL,
                            {"pid": participant_id}).fetchone()
        else:
            row = self.connection.execute(query, {"pid": participant_id}).mappings().first()
        if row is None:
            return None
        if for_update:
            self.locked.add(participant_id)
            if self.rendered is not None and row["rendered_body"] is not None:
                self.rendered.held[participant_id] = (
                    row["rendered_tag"], bytes(row["rendered_body"]), row["rendered_marks"])
            if query is _PG_PARTICIPANT_FOR_UPDATE and self.hooks is not None:
                self.hooks.read_with_lock(row["active_endpoints"])
        return _participant(row)

    def by_subject_code(self, subject_code: str) -> StoredParticipant | None:
        if _unstorable(subject_code):
            return None
        row = self.connection.execute(sa.select(participants).where(
            participants.c.subject_code == subject_code)).mappings().first()
        return _participant(row) if row else None

    def page(self, after: tuple[dt.datetime, str] | None, limit: int) \
            -> list[StoredParticipant]:
        query = sa.select(participants).order_by(participants.c.enrolled_at,
                                                 participants.c.id).limit(limit)
        if after is not None:
            when, participant_id = after
            query = query.where(sa.or_(
                participants.c.enrolled_at > when,
                sa.and_(participants.c.enrolled_at == when, participants.c.id > participant_id)))
        return [_participant(row) for row in self.connection.execute(query).mappings()]

    def update(self, participant: StoredParticipant) -> None:
        values = {**_participant_values(participant), "pid": participant.id}
        if self.batch is not None and self.batch.keeps():
            self.batch.add(PARTICIPANT_CLAUSE, values)
            return
        self.connection.execute(_UPDATE_PARTICIPANT, values)

    def listing(self) -> list[StoredParticipant]:
        """Every participant in enrolment order."""
        return [_participant(row) for row in self.connection.execute(sa.select(
            participants).order_by(participants.c.enrolled_at, participants.c.id)).mappings()]

    def events_of_many(self, participant_ids: list[str]) -> dict[str, list[Event]]:
        found: dict[str, list[Event]] = {pid: [] for pid in participant_ids}
        rows = self.connection.execute(sa.select(events).where(
            events.c.participant_id.in_(participant_ids)).order_by(
            events.c.participant_id, events.c.seq)).mappings()
        for row in rows:
            found[row["participant_id"]].append(_event(row))
        return found

    def events(self, participant_id: str) -> list[Event]:
        if self.postgresql and self.states is not None and participant_id in self.locked:
            # A write's: its visit states come in the same round trip, kept for its next
            # `visit_states.of`.
            found: list[Event] = []
            states: dict[str, VisitState] = {}
            for row in on_driver(self.connection, _HISTORY_AND_STATES_SQL,
                                 {"pid": participant_id}):
                if row["part"] == 0:
                    found.append(_event(row))
                else:
                    states[row["v_visit_id"]] = _visit_state(row, "v_")
            self.states.read[participant_id] = states
            return found
        rows = self.connection.execute(_EVENTS, {"pid": participant_id}).mappings()
        return [_event(row) for row in rows]

    def append(self, participant_id: str, event: Event) -> None:
        values = dict(
            id=event.id, participant_id=participant_id, seq=event.seq, type=event.type,
            date=event.date, cycle=event.cycle, reason=event.reason,
            description=event.description, corrects=event.corrects,
            changes=list(event.changes) or None, recorded_by=event.recorded_by,
            recorded_at=event.recorded_at, reason_code=event.reason_code,
            protocol_version=event.version, visit_id=event.visit_id, purpose=event.purpose,
            note=event.note)
        if self.batch is not None and self.batch.keeps():
            self.batch.add(EVENT_CLAUSE, values)
            return
        self.connection.execute(_INSERT_EVENT, values)


class SqlApiKeys:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, key: ApiKey) -> None:
        self.connection.execute(api_keys.insert().values(
            id=key.id, name=key.name, scope=key.scope, digest=key.digest,
            created_at=key.created_at, revoked_at=key.revoked_at))

    def get(self, key_id: str) -> ApiKey | None:
        if _unstorable(key_id):
            return None
        row = self.connection.execute(sa.select(api_keys).where(
            api_keys.c.id == key_id)).mappings().first()
        return _api_key(row) if row else None

    def by_name(self, name: str) -> ApiKey | None:
        row = self.connection.execute(sa.select(api_keys).where(
            api_keys.c.name == name)).mappings().first()
        return _api_key(row) if row else None

    def revoke(self, key: ApiKey, when: dt.datetime) -> None:
        self.connection.execute(api_keys.update().where(api_keys.c.id == key.id).values(
            revoked_at=when))

    def count(self) -> int:
        return int(self.connection.execute(
            sa.select(sa.func.count()).select_from(api_keys)).scalar_one())

    def listing(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""
        return [_api_key(row) for row in self.connection.execute(sa.select(api_keys).order_by(
            api_keys.c.created_at, api_keys.c.name)).mappings()]


def _api_key(row: RowMapping) -> ApiKey:
    revoked = row["revoked_at"]
    return ApiKey(row["id"], row["name"], row["scope"], row["digest"], utc(row["created_at"]),
                  utc(revoked) if revoked else None)


class SqlIdempotency:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def get(self, key_id: str, key: str) -> StoredResponse | None:
        row = self.connection.execute(sa.select(idempotency_keys).where(
            idempotency_keys.c.api_key_id == key_id,
            idempotency_keys.c.key == key)).mappings().first()
        if row is None:
            return None
        return StoredResponse(row["fingerprint"], row["status"], row["body"],
                              dict(row["headers"]))

    def add(self, key_id: str, key: str, response: StoredResponse, when: dt.datetime) -> None:
        self.connection.execute(idempotency_keys.insert().values(
            api_key_id=key_id, key=key, fingerprint=response.fingerprint,
            status=response.status, body=response.body, headers=response.headers,
            created_at=when))


# The feed hot path: a token and its participant in one round trip, the statement built once.
_TOKEN_AND_PARTICIPANT = sa.select(
    feed_tokens, *[column.label(f"p_{column.name}") for column in participants.c]
).outerjoin(participants, participants.c.id == feed_tokens.c.participant_id).where(
    feed_tokens.c.id == sa.bindparam("token_id"))


class SqlFeedTokens:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def with_participant(self, token_id: str) -> tuple[FeedToken, StoredParticipant | None] \
            | None:
        if _unstorable(token_id):
            return None
        row = self.connection.execute(_TOKEN_AND_PARTICIPANT, {"token_id": token_id}
                                      ).mappings().first()
        if row is None:
            return None
        token = _feed_token(row)
        if row["p_id"] is None:
            return token, None
        own = {name[2:]: value for name, value in row.items() if name.startswith("p_")}
        return token, _participant(own)

    def add(self, token: FeedToken) -> None:
        self.connection.execute(feed_tokens.insert().values(
            id=token.id, kind=token.kind, participant_id=token.participant_id,
            digest=token.digest, created_at=token.created_at))

    def active(self, kind: str, participant_id: str | None = None) -> FeedToken | None:
        query = sa.select(feed_tokens).where(feed_tokens.c.kind == kind,
                                             feed_tokens.c.revoked_at.is_(None))
        if participant_id is not None:
            query = query.where(feed_tokens.c.participant_id == participant_id)
        row = self.connection.execute(query).mappings().first()
        return _feed_token(row) if row else None

    def active_for_participants(self, participant_ids: list[str] | None = None) \
            -> dict[str, FeedToken]:
        query = sa.select(feed_tokens).where(
            feed_tokens.c.kind == "participant", feed_tokens.c.revoked_at.is_(None))
        if participant_ids is not None:  # a page of a list: its own rows only
            query = query.where(feed_tokens.c.participant_id.in_(participant_ids))
        rows = self.connection.execute(query).mappings()
        return {row["participant_id"]: _feed_token(row) for row in rows}

    def revoke(self, token_id: str, when: dt.datetime) -> None:
        self.connection.execute(feed_tokens.update().where(feed_tokens.c.id == token_id).values(
            revoked_at=when))

    def lock_feed(self, kind: str, participant_id: str | None) -> None:
        """Hold this feed's rotation lock until the transaction ends. PostgreSQL: an advisory
        lock, since the site feed has no row to lock before its first token; SQLite's writer
        already holds the database's one write lock (BEGIN IMMEDIATE)."""
        if self.connection.dialect.name != "postgresql":
            return
        name = f"feed-token:{kind}:{participant_id or ''}".encode()
        key = int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)
        self.connection.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    def revoke_live(self, kind: str, participant_id: str | None, when: dt.datetime) -> None:
        """Revoke every live token of one feed."""
        owner = feed_tokens.c.participant_id
        self.connection.execute(feed_tokens.update().where(
            feed_tokens.c.kind == kind, feed_tokens.c.revoked_at.is_(None),
            owner.is_(None) if participant_id is None else owner == participant_id,
        ).values(revoked_at=when))


def _feed_token(row: RowMapping) -> FeedToken:
    revoked = row["revoked_at"]
    return FeedToken(row["id"], row["kind"], row["participant_id"], row["digest"],
                     utc(row["created_at"]), utc(revoked) if revoked else None)


def _visit_state(row: RowMapping, prefix: str = "") -> VisitState:
    return VisitState(row[prefix + "visit_id"], row[prefix + "date"], row[prefix + "earliest"],
                      row[prefix + "latest"], row[prefix + "status"], row[prefix + "present"],
                      row[prefix + "sequence"], utc(row[prefix + "changed_at"]),
                      row[prefix + "kind"], row[prefix + "title"], row[prefix + "rule"])


# The columns in ListedVisit's order, so a row becomes one with no lookups by name; rows
# stored before kind, title and rule were kept read as empty until the next write.
_VISIT_ROWS = sa.select(
    visit_states.c.participant_id, participants.c.subject_code, visit_states.c.visit_id,
    sa.func.coalesce(visit_states.c.kind, ""),
    sa.func.coalesce(visit_states.c.title, visit_states.c.visit_id),
    sa.func.coalesce(visit_states.c.rule, ""), visit_states.c.date,
    visit_states.c.earliest, visit_states.c.latest, visit_states.c.status,
).join(participants, participants.c.id == visit_states.c.participant_id).where(
    visit_states.c.present.is_(True))
_LISTED = _VISIT_ROWS.where(
    visit_states.c.date.is_not(None), visit_states.c.earliest.is_not(None),
    visit_states.c.latest.is_not(None))
# A visit's date lies in its window, so one dated in the range has a window opened by the range's
# end: `earliest <= opened` (the later of today and the end) holds for every row wanted and lets
# the index on (status, earliest) find them. A date marker (the contraception end) is never
# due, so only its date in the range brings it.
_WORKLIST = _LISTED.where(
    visit_states.c.status.in_(OPEN),
    visit_states.c.earliest <= sa.bindparam("opened"),
    sa.or_(visit_states.c.date.between(sa.bindparam("start"), sa.bindparam("end")),
           sa.and_(visit_states.c.earliest <= sa.bindparam("today"),
                   sa.func.coalesce(visit_states.c.kind, "").not_in(NOT_A_VISIT))))
_DEVIATING = _LISTED.where(sa.or_(
    visit_states.c.status.in_(("done", "missed")),
    sa.and_(visit_states.c.status.in_(OPEN), visit_states.c.latest < sa.bindparam("today"))))

# The export's: every dated visit in the range, whatever its status and with or without a window
# (a held recovery check has none), and the open ones before it, which decide what is due.
_DATED = _VISIT_ROWS.where(
    sa.or_(visit_states.c.date.between(sa.bindparam("start"), sa.bindparam("end")),
           sa.and_(visit_states.c.status.in_(OPEN),
                   visit_states.c.date < sa.bindparam("start"))))


def _listed(row: Any) -> ListedVisit:
    return ListedVisit(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                       row[9])


_UPDATE_VISIT_STATE = visit_states.update().where(
    visit_states.c.participant_id == sa.bindparam("pid"),
    visit_states.c.visit_id == sa.bindparam("vid"))


_VISIT_STATES = sa.select(visit_states).where(
    visit_states.c.participant_id == sa.bindparam("pid"))


class SqlVisitStates:
    def __init__(self, connection: Connection, batch: Batch | None = None) -> None:
        self.connection = connection
        self.batch = batch
        # States read with a locked participant's history (SqlParticipants.events), until
        # they are asked for or written.
        self.read: dict[str, dict[str, VisitState]] = {}

    def of(self, participant_id: str) -> dict[str, VisitState]:
        known = self.read.pop(participant_id, None)
        if known is not None:
            return known
        rows = self.connection.execute(_VISIT_STATES, {"pid": participant_id}).mappings()
        return {row["visit_id"]: _visit_state(row) for row in rows}

    def of_many(self, participant_ids: list[str]) -> dict[str, dict[str, VisitState]]:
        found: dict[str, dict[str, VisitState]] = {pid: {} for pid in participant_ids}
        rows = self.connection.execute(sa.select(visit_states).where(
            visit_states.c.participant_id.in_(participant_ids))).mappings()
        for row in rows:
            found[row["participant_id"]][row["visit_id"]] = _visit_state(row)
        return found

    def save(self, participant_id: str, states: list[VisitState], known: set[str]) -> None:
        """Insert new visits' states and update the ones in `known`. On PostgreSQL all of them
        go as one INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE: a recomputation
        that moves thirty visits costs one round trip, not thirty, in one prepared statement.
        SQLite runs in process, where an executemany of each kind is cheapest."""
        self.read.pop(participant_id, None)
        if not states:
            return
        if self.connection.dialect.name == "postgresql":
            lists: dict[str, list[Any]] = {name: [] for name in ("visit_id", *_STATE_COLUMNS)}
            for state in states:
                lists["visit_id"].append(state.visit_id)
                for name, value in _state_values(state).items():
                    lists[name].append(value)
            columns = {name: _array_literal(values) for name, values in lists.items()}
            if self.batch is not None and self.batch.keeps():
                self.batch.add(_UPSERT_CLAUSE, {"pid": participant_id, **columns})
                return
            self.connection.execute(_UPSERT_VISIT_STATES, {"pid": participant_id, **columns})
            return
        new, changed = [], []
        for state in states:
            values = _state_values(state)
            if state.visit_id in known:
                changed.append({"pid": participant_id, "vid": state.visit_id, **values})
            else:
                new.append({"participant_id": participant_id, "visit_id": state.visit_id,
                            **values})
        if new:
            self.connection.execute(visit_states.insert(), new)
        if changed:
            self.connection.execute(_UPDATE_VISIT_STATE, changed)

    def worklist(self, start: dt.date, end: dt.date, today: dt.date) -> list[ListedVisit]:
        rows = self.connection.execute(_WORKLIST, {"start": start, "end": end, "today": today,
                                                   "opened": max(today, end)})
        return [_listed(row) for row in rows.all()]

    def deviating(self, today: dt.date) -> list[ListedVisit]:
        rows = self.connection.execute(_DEVIATING, {"today": today})
        return [_listed(row) for row in rows.all()]

    def dated(self, start: dt.date, end: dt.date) -> list[DatedVisit]:
        rows = self.connection.execute(_DATED, {"start": start, "end": end})
        return [DatedVisit(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                           row[8], row[9]) for row in rows.all()]


def _array_literal(values: list[Any]) -> str:
    """A PostgreSQL array literal of these values, each double-quoted (backslash before a
    quote or backslash) or NULL, for `CAST(... AS type[])` to parse (PostgreSQL documentation,
    "Array Value Input"). psycopg's list adaptation inspected every element of every list in
    Python, half a millisecond a write for eleven short lists; this is a join."""
    return "{" + ",".join(
        "NULL" if value is None
        else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values) + "}"


def _state_values(state: VisitState) -> dict[str, Any]:
    return {"date": state.date, "earliest": state.earliest, "latest": state.latest,
            "status": state.status, "present": state.present, "sequence": state.sequence,
            "changed_at": state.changed_at, "kind": state.kind, "title": state.title,
            "rule": state.rule}


_STATE_COLUMNS = ("date", "earliest", "latest", "status", "present", "sequence", "changed_at",
                  "kind", "title", "rule")
# All of a recomputation's visit states as one statement whose text never changes: each column
# travels as one array and unnest() turns them back into rows. (A multi-row VALUES has a text of
# its own for each number of rows, too long for psycopg to cache, and converting it cost more
# than the round trips it saved.)
_ARRAY_TYPES = {"visit_id": "text", "date": "date", "earliest": "date", "latest": "date",
                "status": "text", "present": "boolean", "sequence": "integer",
                "changed_at": "timestamptz", "kind": "text", "title": "text", "rule": "text"}
_UPSERT_CLAUSE = Clause(
    "visit_states",
    "INSERT INTO visit_states (participant_id, " + ", ".join(_ARRAY_TYPES) + ") "
    "SELECT :{p}pid, * FROM unnest("
    + ", ".join(f"CAST(:{{p}}{name} AS {kind}[])" for name, kind in _ARRAY_TYPES.items())
    + ") ON CONFLICT (participant_id, visit_id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _STATE_COLUMNS))
_UPSERT_VISIT_STATES = sa.text(_UPSERT_CLAUSE.sql.replace("{p}", ""))


_RENDERED_COLUMNS = ("version", "tag", "body", "marks")
_pg_rendered = postgresql.insert(rendered_feeds)
_sqlite_rendered = sqlite.insert(rendered_feeds)
_PUT_RENDERED = {
    "postgresql": _pg_rendered.on_conflict_do_update(
        index_elements=[rendered_feeds.c.participant_id],
        set_={name: _pg_rendered.excluded[name] for name in _RENDERED_COLUMNS}),
    "sqlite": _sqlite_rendered.on_conflict_do_update(
        index_elements=[rendered_feeds.c.participant_id],
        set_={name: _sqlite_rendered.excluded[name] for name in _RENDERED_COLUMNS}),
}


class SqlRenderedFeeds:
    def __init__(self, connection: Connection, batch: Batch | None = None) -> None:
        self.connection = connection
        self.batch = batch
        # (tag, body, marks) of each participant locked in this unit of work, read with the
        # lock.
        self.held: dict[str, tuple[str, bytes, str | None]] = {}

    def last(self, participant_id: str) -> tuple[str, bytes, str | None] | None:
        """The participant's stored rendered events (tag, compressed body, marks) if the unit
        of work read them when it locked the participant; None otherwise (nothing is read for
        it)."""
        return self.held.get(participant_id)

    def put(self, participant_id: str, version: int, tag: str, body: bytes,
            marks: str) -> None:
        values = {"participant_id": participant_id, "version": version, "tag": tag,
                  "body": body, "marks": marks}
        if self.batch is not None and self.batch.keeps():
            self.batch.add(RENDERED_CLAUSE, values)
            return
        self.connection.execute(_PUT_RENDERED[self.connection.dialect.name], values)

    def of_many(self, participant_ids: list[str]) -> dict[str, tuple[int, str, bytes]]:
        rows = self.connection.execute(sa.select(
            rendered_feeds.c.participant_id, rendered_feeds.c.version, rendered_feeds.c.tag,
            rendered_feeds.c.body).where(rendered_feeds.c.participant_id.in_(participant_ids)))
        return {pid: (version, tag, bytes(body)) for pid, version, tag, body in rows}


class SqlUnitOfWork(UnitOfWork):
    """One transaction: commit explicitly, or everything is rolled back on leaving."""

    webhooks: SqlWebhooks

    def __init__(self, engine: Engine, readonly: bool = False, waker: Waker | None = None) \
            -> None:
        self.engine = engine
        self.readonly = readonly
        self.waker = waker

    def __enter__(self) -> Self:
        connection = self.engine.connect()
        if self.readonly:
            connection = connection.execution_options(readonly=True)
            if connection.dialect.name == "postgresql":
                # READ COMMITTED gives a read-only transaction no snapshot of its own, so it
                # can run in autocommit and spare the BEGIN and ROLLBACK round trips.
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        self.connection = connection
        self.transaction = connection.begin()
        self.batch = Batch(connection)
        self.rendered_feeds = SqlRenderedFeeds(connection, self.batch)
        self.visit_states = SqlVisitStates(connection, self.batch)
        self.webhooks = SqlWebhooks(connection, self.batch)
        self.participants = SqlParticipants(connection, self.batch, self.rendered_feeds,
                                            self.visit_states, self.webhooks)
        self.api_keys = SqlApiKeys(connection)
        self.idempotency = SqlIdempotency(connection)
        self.feed_tokens = SqlFeedTokens(connection)
        return self

    @contextmanager
    def batched(self) -> Iterator[None]:
        """On PostgreSQL, send the writes made inside as one statement on leaving
        (api/persistence/batch.py); on SQLite, in process, each runs as it is made."""
        if self.connection.dialect.name != "postgresql" or self.batch.open:
            yield
            return
        self.batch.open = True
        try:
            yield
        except BaseException:
            self.batch.clauses.clear()
            raise
        finally:
            self.batch.open = False
        self.batch.send()

    def commit(self) -> None:
        self.transaction.commit()
        if self.webhooks.woken and self.waker is not None:
            self.waker.ring()

    def __exit__(self, *_: object) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.connection.close()



class SqlUnits:
    """Opens units of work on one database engine; on PostgreSQL their commits that put
    webhook messages in the outbox wake the workers (`Waker`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.waker = Waker(engine) if engine.dialect.name == "postgresql" else None

    def __call__(self, readonly: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, readonly, self.waker)
