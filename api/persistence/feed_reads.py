"""The hot paths' single-row reads, each one prepared statement on a driver connection each
thread keeps (sqlite3 or psycopg directly): a feed token with its participant's version, and an
API key.

A feed request does nothing else with the database when the client is up to date or the
rendered feed is cached, and every API request reads its key, so these reads are most of what
those requests cost: SQLAlchemy's connection checkout and execution path cost several times the
statement itself. Each call reads the committed row (autocommit), so a write through any worker
or instance is seen by the next request: nothing is cached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.persistence.records import ApiKey, utc

_FEED_KEY = ("SELECT t.kind, t.participant_id, t.digest, t.revoked_at, p.version, p.updated_at, "
             "p.subject_code FROM feed_tokens t LEFT JOIN participants p "
             "ON p.id = t.participant_id WHERE t.id = {}")
_API_KEY = "SELECT id, name, scope, digest, created_at, revoked_at FROM api_keys WHERE id = {}"


@dataclass(frozen=True, slots=True)
class FeedKey:
    """What a feed request needs to authorise itself and to answer 304: the token's row and,
    for a participant's feed, that participant's version."""

    kind: str
    participant_id: str | None
    digest: str
    revoked: bool
    version: int | None
    updated_at: dt.datetime | None
    subject_code: str | None


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite keeps SQLAlchemy's DateTime as ISO text
        value = dt.datetime.fromisoformat(value)
    return utc(value)


class _Held:
    """A thread's connection. When the thread ends (or the reader is dropped) the holder goes
    and a finalizer closes the connection, so no connection outlives its thread."""

    __slots__ = ("__weakref__", "connection", "pid")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.pid = os.getpid()
        weakref.finalize(self, _close_quietly, connection, self.pid)


def _close_quietly(connection: Any, pid: int) -> None:
    if pid == os.getpid():  # a forked worker leaves its parent's connections alone
        with contextlib.suppress(Exception):
            connection.close()


class FeedReads:
    """Reads on a connection held per thread (and per process: a forked worker never uses its
    parent's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        url = engine.url
        self.kind = "sqlite" if url.get_backend_name() == "sqlite" else (
            "psycopg" if url.get_driver_name() == "psycopg" else "sqlalchemy")
        if self.kind == "sqlite" and (url.database in (None, "", ":memory:") or url.query):
            self.kind = "sqlalchemy"  # an in-memory database is private to its connection
        placeholder = {"sqlite": "?", "psycopg": "%s", "sqlalchemy": ":id"}[self.kind]
        self.feed_key_sql = _FEED_KEY.format(placeholder)
        self.api_key_sql = _API_KEY.format(placeholder)
        if self.kind == "sqlite":
            self.path = str(url.database)
        elif self.kind == "psycopg":
            self.conninfo = url.set(drivername="postgresql").render_as_string(
                hide_password=False)
        self.local = threading.local()
        self.opened: weakref.WeakSet[_Held] = weakref.WeakSet()  # every live thread's
        self.lock = threading.Lock()
        sa.event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def close(self) -> None:
        """Close every thread's connection (when the engine is disposed)."""
        with self.lock:
            held = list(self.opened)
            self.opened.clear()
        for holder in held:
            _close_quietly(holder.connection, holder.pid)

    def key(self, token_id: str) -> FeedKey | None:
        """A feed token's row, with its participant's version and subject code."""
        row = self._row(self.feed_key_sql, token_id)
        if row is None:
            return None
        kind, participant_id, digest, revoked_at, version, updated_at, subject_code = row
        return FeedKey(kind, participant_id, digest, revoked_at is not None, version,
                       _timestamp(updated_at), subject_code)

    def api_key(self, key_id: str) -> ApiKey | None:
        row = self._row(self.api_key_sql, key_id)
        if row is None:
            return None
        key_id, name, scope, digest, created_at, revoked_at = row
        created = _timestamp(created_at)
        assert created is not None
        return ApiKey(key_id, name, scope, digest, created, _timestamp(revoked_at))

    def _row(self, sql: str, value: str) -> Any:
        if self.kind == "sqlite":
            try:
                return self._sqlite().execute(sql, (value,)).fetchone()
            except sqlite3.Error as error:
                self._drop()
                raise sa.exc.OperationalError(sql, (value,), error) from error
        if self.kind == "psycopg":
            return self._psycopg_row(sql, value)
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), {"id": value}).first()

    def _held(self) -> Any:
        holder = getattr(self.local, "held", None)
        if holder is not None and holder.pid == os.getpid():
            return holder.connection
        return None

    def _sqlite(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = self._held()
        if connection is None:
            # Autocommit: each SELECT is its own read transaction and sees the last commit.
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                         cached_statements=16)
            connection.execute("PRAGMA query_only=ON")
            self._hold(connection)
        return connection

    def _psycopg_row(self, sql: str, value: str) -> Any:
        import psycopg

        for attempt in (1, 2):
            connection = self._held()
            try:
                if connection is None:
                    connection = psycopg.connect(self.conninfo, autocommit=True,
                                                 prepare_threshold=0)
                    self._hold(connection)
                return connection.execute(sql, (value,), prepare=True).fetchone()
            except psycopg.OperationalError as error:
                # The server restarted or dropped the connection: one fresh try, then the
                # error goes up as SQLAlchemy's, like every other database failure.
                self._drop()
                if attempt == 2:
                    raise sa.exc.OperationalError(sql, (value,), error) from error
        raise AssertionError("unreachable")

    def _hold(self, connection: Any) -> None:
        holder = _Held(connection)
        self.local.held = holder
        with self.lock:
            self.opened.add(holder)

    def _drop(self) -> None:
        holder = getattr(self.local, "held", None)
        self.local.held = None
        if holder is not None:
            with self.lock:
                self.opened.discard(holder)
            _close_quietly(holder.connection, holder.pid)
