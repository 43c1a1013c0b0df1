"""The webhook repository on SQL (SQLAlchemy Core): endpoints, the outbox and each delivery's
state. One schema on both databases, so a delivery reads the same on either; PostgreSQL adds
SKIP LOCKED to the claim (several workers) and NOTIFY, after the write commits, to wake them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
import uuid
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from api.persistence.batch import Batch, Clause
from api.persistence.feed_reads import FeedReads
from api.persistence.records import (
    ClaimedDelivery,
    Outcome,
    OverdueVisit,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    utc,
)
from api.persistence.tables import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_messages,
    webhook_overdue,
)

# The channel workers LISTEN on (PostgreSQL); the NOTIFY is sent once the write has committed
# (`Waker`), so a worker never wakes for a message it cannot yet see.
CHANNEL = "trial_schedule_webhooks"
log = logging.getLogger("trial_schedule.webhooks")
_OVERDUE_LOCK = int.from_bytes(hashlib.sha256(b"webhook-overdue-scan").digest()[:8], "big",
                               signed=True)

_DELIVERY_COLUMNS = (*webhook_deliveries.c, webhook_messages.c.type.label("event_type"))
_DELIVERIES = sa.select(*_DELIVERY_COLUMNS).join(
    webhook_messages, webhook_messages.c.id == webhook_deliveries.c.message_id)
_DUE = sa.select(webhook_deliveries.c.id).join(
    webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id).where(
    webhook_deliveries.c.state == "pending",
    webhook_deliveries.c.next_attempt_at <= sa.bindparam("now"),
    webhook_endpoints.c.status == "active",
).order_by(webhook_deliveries.c.next_attempt_at).limit(sa.bindparam("limit"))


def _claim(due: sa.Select[Any]) -> sa.Update:
    """One statement: count one more attempt on each due delivery, put its next one off by
    the lease, and return what sending it needs (UPDATE ... FROM ... RETURNING)."""
    return webhook_deliveries.update().where(
        webhook_deliveries.c.id.in_(due),
        webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id,
        webhook_messages.c.id == webhook_deliveries.c.message_id,
    ).values(attempts=webhook_deliveries.c.attempts + 1,
             last_attempt_at=sa.bindparam("now"),
             next_attempt_at=sa.bindparam("lease")).returning(
        webhook_deliveries.c.id, webhook_deliveries.c.attempts,
        webhook_deliveries.c.endpoint_id, webhook_endpoints.c.url, webhook_endpoints.c.secret,
        webhook_deliveries.c.message_id, webhook_messages.c.body)


# PostgreSQL: rows another worker has claimed and not committed are skipped, not waited for.
_PG_CLAIM = _claim(_DUE.with_for_update(of=webhook_deliveries, skip_locked=True))
# SQLite's RETURNING names only the table updated: the claimed ids, then what to send.
_CLAIM = webhook_deliveries.update().where(webhook_deliveries.c.id.in_(_DUE)).values(
    attempts=webhook_deliveries.c.attempts + 1, last_attempt_at=sa.bindparam("now"),
    next_attempt_at=sa.bindparam("lease")).returning(webhook_deliveries.c.id)
_CLAIMED = sa.select(
    webhook_deliveries.c.id, webhook_deliveries.c.attempts, webhook_deliveries.c.endpoint_id,
    webhook_endpoints.c.url, webhook_endpoints.c.secret, webhook_deliveries.c.message_id,
    webhook_messages.c.body,
).join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id).join(
    webhook_messages, webhook_messages.c.id == webhook_deliveries.c.message_id).where(
    webhook_deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
# An attempt's outcome, recorded only if the delivery is still at the attempt claimed (a
# worker whose lease ran out does not overwrite the one that took the delivery over).
_SETTLE = webhook_deliveries.update().where(
    webhook_deliveries.c.id == sa.bindparam("did"),
    webhook_deliveries.c.state == "pending",
    webhook_deliveries.c.attempts == sa.bindparam("tries"),
).values(state=sa.bindparam("new_state"), last_status=sa.bindparam("status"),
         last_error=sa.bindparam("error"), next_attempt_at=sa.bindparam("next_at"),
         delivered_at=sa.bindparam("delivered"))
_INSERT_MESSAGE = webhook_messages.insert()
# The message and a delivery to each endpoint in one statement. The deliveries' foreign key is
# checked at the end of the statement, when the message is there.
_PG_ADD_MESSAGE = sa.text(
    "WITH message AS (INSERT INTO webhook_messages (id, type, participant_id, body, "
    "created_at) VALUES (:id, :type, :pid, :body, :at)) "
    "INSERT INTO webhook_deliveries (id, message_id, endpoint_id, state, attempts, "
    "next_attempt_at, created_at) "
    "SELECT target.id, :id, target.endpoint_id, 'pending', 0, :at, :at "
    "FROM unnest(CAST(:delivery_ids AS text[]), CAST(:endpoint_ids AS text[])) "
    "AS target(id, endpoint_id)")
# The same as two clauses of a batched write (api/persistence/batch.py), which holds every
# data-modifying statement at its top level.
_MESSAGE_CLAUSE = Clause(
    "message", "INSERT INTO webhook_messages (id, type, participant_id, body, created_at) "
    "VALUES (:{p}id, :{p}type, :{p}pid, :{p}body, :{p}at)")
_DELIVERIES_CLAUSE = Clause(
    "deliveries", "INSERT INTO webhook_deliveries (id, message_id, endpoint_id, state, attempts, "
    "next_attempt_at, created_at) "
    "SELECT target.id, :{p}message_id, target.endpoint_id, 'pending', 0, :{p}at, :{p}at "
    "FROM unnest(CAST(:{p}delivery_ids AS text[]), CAST(:{p}endpoint_ids AS text[])) "
    "AS target(id, endpoint_id)")
_INSERT_DELIVERY = webhook_deliveries.insert()
_ACTIVE = sa.select(webhook_endpoints).where(webhook_endpoints.c.status == "active")


def _endpoint(row: RowMapping) -> WebhookEndpoint:
    types = row["event_types"]
    disabled = row["disabled_at"]
    return WebhookEndpoint(row["id"], row["url"], row["secret"],
                           tuple(types) if types is not None else None, row["status"],
                           utc(row["created_at"]), utc(disabled) if disabled else None)


def _when(value: dt.datetime | None) -> dt.datetime | None:
    return utc(value) if value is not None else None


def _delivery(row: RowMapping) -> WebhookDelivery:
    return WebhookDelivery(
        row["id"], row["message_id"], row["endpoint_id"], row["event_type"], row["state"],
        row["attempts"], utc(row["next_attempt_at"]), _when(row["last_attempt_at"]),
        row["last_status"], row["last_error"], _when(row["delivered_at"]),
        utc(row["created_at"]))


class SqlWebhooks:
    def __init__(self, connection: Connection, batch: Batch | None = None) -> None:
        self.connection = connection
        self.batch = batch
        # The active endpoints as a participant's lock read them (api/persistence/sql.py),
        # until they are asked for or an endpoint is written.
        self.locked_read: list[WebhookEndpoint] | None = None
        # Whether the workers are to be woken once this transaction commits (`Waker`).
        self.woken = False

    def read_with_lock(self, found: Any) -> None:
        """Keep the active endpoints a participant's lock read (JSON arrays of the columns:
        id, url, secret, event types, status, created and disabled at) for `active`."""
        rows = json.loads(found) if isinstance(found, str) else found or []
        self.locked_read = [WebhookEndpoint(
            row[0], row[1], row[2], tuple(row[3]) if row[3] is not None else None, row[4],
            utc(dt.datetime.fromisoformat(row[5])),
            utc(dt.datetime.fromisoformat(row[6])) if row[6] else None) for row in rows]

    @property
    def _postgresql(self) -> bool:
        return self.connection.dialect.name == "postgresql"

    def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self.locked_read = None
        self.connection.execute(webhook_endpoints.insert().values(
            id=endpoint.id, url=endpoint.url, secret=endpoint.secret,
            event_types=list(endpoint.event_types) if endpoint.event_types is not None
            else None, status=endpoint.status, created_at=endpoint.created_at))

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        if "\x00" in endpoint_id:
            return None
        row = self.connection.execute(sa.select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.status != "deleted")).mappings().first()
        return _endpoint(row) if row else None

    def endpoints(self) -> list[WebhookEndpoint]:
        rows = self.connection.execute(sa.select(webhook_endpoints).where(
            webhook_endpoints.c.status != "deleted").order_by(
            webhook_endpoints.c.created_at, webhook_endpoints.c.id)).mappings()
        return [_endpoint(row) for row in rows]

    def active(self) -> list[WebhookEndpoint]:
        known, self.locked_read = self.locked_read, None
        if known is not None:
            return known
        return [_endpoint(row) for row in self.connection.execute(_ACTIVE).mappings()]

    def set_status(self, endpoint_id: str, status: str, when: dt.datetime) -> None:
        self.locked_read = None
        self.connection.execute(webhook_endpoints.update().where(
            webhook_endpoints.c.id == endpoint_id).values(status=status, disabled_at=when))

    def bury_pending(self, endpoint_id: str, error: str, when: dt.datetime) -> None:
        self.connection.execute(webhook_deliveries.update().where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.state == "pending").values(state="dead", last_error=error))

    def add_message(self, message: WebhookMessage, endpoint_ids: list[str]) -> None:
        """On PostgreSQL one statement (two clauses of a batched write); the workers are woken
        after the commit."""
        self.woken = self.woken or bool(endpoint_ids)
        if self._postgresql and endpoint_ids and self.batch is not None and self.batch.keeps():
            self.batch.add(_MESSAGE_CLAUSE, {
                "id": message.id, "type": message.type, "pid": message.participant_id,
                "body": message.body, "at": message.created_at})
            self.batch.add(_DELIVERIES_CLAUSE, {
                "message_id": message.id, "at": message.created_at,
                "delivery_ids": [str(uuid.uuid4()) for _ in endpoint_ids],
                "endpoint_ids": endpoint_ids})
            return
        if self._postgresql and endpoint_ids:
            self.connection.execute(_PG_ADD_MESSAGE, {
                "id": message.id, "type": message.type, "pid": message.participant_id,
                "body": message.body, "at": message.created_at,
                "delivery_ids": [str(uuid.uuid4()) for _ in endpoint_ids],
                "endpoint_ids": endpoint_ids})
            return
        self.connection.execute(_INSERT_MESSAGE, {
            "id": message.id, "type": message.type, "participant_id": message.participant_id,
            "body": message.body, "created_at": message.created_at})
        if endpoint_ids:
            self.connection.execute(_INSERT_DELIVERY, [{
                "id": str(uuid.uuid4()), "message_id": message.id, "endpoint_id": endpoint_id,
                "state": "pending", "attempts": 0, "next_attempt_at": message.created_at,
                "created_at": message.created_at} for endpoint_id in endpoint_ids])

    def wake(self) -> None:
        self.woken = True

    def has_due(self, when: dt.datetime) -> bool:
        return self.connection.execute(_DUE, {"now": when, "limit": 1}).first() is not None

    def claim(self, when: dt.datetime, lease_until: dt.datetime, limit: int) \
            -> list[ClaimedDelivery]:
        values = {"now": when, "limit": limit, "lease": lease_until}
        if self._postgresql:
            rows = self.connection.execute(_PG_CLAIM, values).all()
        else:
            ids = list(self.connection.execute(_CLAIM, values).scalars())
            rows = self.connection.execute(_CLAIMED, {"ids": ids}).all() if ids else []
        return [ClaimedDelivery(*row) for row in rows]

    def settle(self, outcomes: list[Outcome]) -> None:
        if outcomes:
            self.connection.execute(_SETTLE, [{
                "did": o.delivery_id, "tries": o.attempts, "new_state": o.state,
                "status": o.status, "error": o.error[:200] if o.error else None,
                "next_at": o.next_attempt_at, "delivered": o.delivered_at} for o in outcomes])

    def deliveries(self, endpoint_id: str, state: str | None, limit: int) \
            -> list[WebhookDelivery]:
        query = _DELIVERIES.where(webhook_deliveries.c.endpoint_id == endpoint_id).order_by(
            webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id).limit(limit)
        if state is not None:
            query = query.where(webhook_deliveries.c.state == state)
        return [_delivery(row) for row in self.connection.execute(query).mappings()]

    def redeliver(self, endpoint_id: str, delivery_id: str, when: dt.datetime) \
            -> WebhookDelivery | None:
        if "\x00" in delivery_id:
            return None
        self.connection.execute(webhook_deliveries.update().where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.endpoint_id == endpoint_id).values(
            state="pending", attempts=0, next_attempt_at=when, delivered_at=None))
        row = self.connection.execute(_DELIVERIES.where(
            webhook_deliveries.c.id == delivery_id,
            webhook_deliveries.c.endpoint_id == endpoint_id)).mappings().first()
        return _delivery(row) if row else None

    def outbox(self) -> tuple[dict[str, int], int]:
        """Deliveries by state, and the attempts that failed: every attempt of a delivery but
        the one that succeeded, of those that have failed at least once (an attempt in flight
        after a failure counts until it is settled)."""
        states = {state: count for state, count in self.connection.execute(
            sa.select(webhook_deliveries.c.state, sa.func.count())
            .group_by(webhook_deliveries.c.state))}
        failed = self.connection.execute(sa.select(sa.func.coalesce(sa.func.sum(sa.case(
            (webhook_deliveries.c.state == "delivered", webhook_deliveries.c.attempts - 1),
            else_=webhook_deliveries.c.attempts)), 0)).where(sa.or_(
                webhook_deliveries.c.last_error.is_not(None),
                webhook_deliveries.c.state == "dead"))).scalar_one()
        return {state: states.get(state, 0) for state in ("pending", "delivered", "dead")}, \
            int(failed)

    def announced(self, participant_ids: list[str]) -> set[tuple[str, str, dt.date]]:
        """(participant, visit, window's last day) of every overdue visit announced."""
        if not participant_ids:
            return set()
        rows = self.connection.execute(sa.select(
            webhook_overdue.c.participant_id, webhook_overdue.c.visit_id,
            webhook_overdue.c.latest).where(
            webhook_overdue.c.participant_id.in_(participant_ids)))
        return {(pid, vid, latest) for pid, vid, latest in rows}

    def announce_overdue(self, visit: OverdueVisit, when: dt.datetime) -> None:
        self.connection.execute(webhook_overdue.insert().values(
            participant_id=visit.participant_id, visit_id=visit.visit_id, latest=visit.latest,
            announced_at=when))

    def lock_overdue_scan(self) -> None:
        """One scan at a time (PostgreSQL: an advisory lock; SQLite's writer already holds the
        database's write lock)."""
        if self._postgresql:
            self.connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_OVERDUE_LOCK)))


# A waker's thread ends after this long with nothing to send, and starts again when needed.
WAKER_IDLE_SECONDS = 10.0
# And sends at most one NOTIFY this often: a woken worker lets GATHER_SECONDS (0.05) of
# messages join its round anyway, so under a burst of writes more would wake it for nothing.
WAKER_SPACING_SECONDS = 0.02


class Waker:
    """Wakes the workers (`NOTIFY`, PostgreSQL) after a write that put messages in the outbox
    has committed, from a thread of its own, each process its own.

    Why not `pg_notify` in the write's own transaction, as the obvious design would: PostgreSQL
    serialises the commits of every transaction that notifies (a database-wide lock from
    PreCommit_Notify until the commit's WAL is flushed), so concurrent writes with webhooks
    on would each wait for the last one's flush instead of sharing it. `bench/notify_commits.py`
    (16 connections inserting a row a transaction): 0.54 to 0.68 of the commits a second
    with the NOTIFY in the transaction, 0.93 to 0.96 with it sent after, as here.

    `ring` only flags the thread; the thread sends one NOTIFY for every ring that came since
    its last, at most one each `WAKER_SPACING_SECONDS`, so a burst of writes costs a few
    notifications, and a write never waits for one. A NOTIFY that fails (the database away)
    is logged and not retried: the worker polls every `POLL_SECONDS` as well, so a message
    is at worst delivered a poll later. So is one whose process ended between the commit
    and the NOTIFY."""

    def __init__(self, engine: Engine) -> None:
        # The thread's connection, kept while it runs and closed with the engine: a NOTIFY
        # through libpq costs a tenth of the CPU of one through SQLAlchemy's pool.
        self._reads = FeedReads(engine)
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._running_in: int | None = None  # the pid whose thread is running, if any

    def ring(self) -> None:
        with self._lock:
            self._due.set()
            if self._running_in == os.getpid():
                return
            # No thread yet, an idle one ended, or this is a forked child (gunicorn's
            # workers): the parent's thread is not here.
            self._running_in = os.getpid()
            threading.Thread(target=_wake_when_rung, args=(weakref.ref(self), self._due),
                             name="webhook-waker", daemon=True).start()

    def _idle(self) -> bool:
        """True, and the thread is to end, unless a ring came meanwhile."""
        with self._lock:
            if self._due.is_set():
                return False
            self._running_in = None
            return True

    def notify(self) -> None:
        """One NOTIFY on the channel, in a transaction of its own (autocommit: one round
        trip)."""
        self._reads.notify(CHANNEL)


def _wake_when_rung(ref: weakref.ref[Waker], due: threading.Event) -> None:
    """The waker's thread. It holds the waker weakly: an app dropped (a test's) takes its
    engine with it, and the thread ends at its next idle check."""
    while True:
        rung = due.wait(WAKER_IDLE_SECONDS)
        waker = ref()
        if waker is None or (not rung and waker._idle()):
            return
        due.clear()
        try:
            waker.notify()
        except Exception:
            log.warning("could not wake the webhook workers; they will find the messages "
                        "at their next poll", exc_info=True)
        del waker
        time.sleep(WAKER_SPACING_SECONDS)
