"""The hot paths' single-row reads, each one prepared statement on a driver connection each
thread keeps (sqlite3, or libpq through psycopg): a feed token with its participant's version,
an API key, an API key with a participant's version, and a participant's version.

A feed request does nothing else with the database when the client is up to date or the
rendered feed is cached, and every API request reads its key, so these reads are most of what
those requests cost: SQLAlchemy's connection checkout and execution path cost several times the
statement itself. Each call reads the committed row (autocommit), so a write through any worker
or instance is seen by the next request: nothing is cached.

The webhook waker's thread sends its NOTIFY the same way, for the same reason (`notify`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.persistence.records import ApiKey, utc

# Each statement names its parameters by position ({0}, {1}): `?n` for sqlite3, `$n` for libpq,
# `:pn` for SQLAlchemy, numbered from 1.
_FEED_KEY = ("SELECT t.kind, t.participant_id, t.digest, t.revoked_at, p.version, p.updated_at, "
             "p.subject_code FROM feed_tokens t LEFT JOIN participants p "
             "ON p.id = t.participant_id WHERE t.id = {0}")
_API_KEY = "SELECT id, name, scope, digest, created_at, revoked_at FROM api_keys WHERE id = {0}"
# An API key with one participant's version, in one round trip: what a cached schedule needs
# to authorise a request and to know the participant has not changed since it was computed.
_KEY_AND_VERSION = ("SELECT id, name, scope, digest, created_at, revoked_at, "
                    "(SELECT version FROM participants WHERE id = {1}) FROM api_keys "
                    "WHERE id = {0}")
_VERSION = "SELECT version FROM participants WHERE id = {0}"
_PLACEHOLDERS = {"sqlite": "?{}", "psycopg": "${}", "sqlalchemy": ":p{}"}  # numbered from 1


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

    __slots__ = ("__weakref__", "connection", "pid", "prepared")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.pid = os.getpid()
        self.prepared: set[bytes] = set()  # the statements prepared on this connection (libpq)
        weakref.finalize(self, _close_quietly, connection, self.pid)


def _close_quietly(connection: Any, pid: int) -> None:
    if pid == os.getpid():  # a forked worker leaves its parent's connections alone
        with contextlib.suppress(Exception):
            connection.close()


def _text(value: Any) -> Any:
    """A column as sqlite3 and SQLAlchemy give it; libpq's text format as str."""
    return value.decode() if isinstance(value, bytes) else value


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class _Statement:
    sql: str
    name: bytes  # its name as a prepared statement on a libpq connection


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
        placeholder = _PLACEHOLDERS[self.kind]
        self.feed_key_sql, self.api_key_sql, self.key_and_version_sql, self.version_sql = (
            _Statement(sql.format(placeholder.format(1), placeholder.format(2)), name)
            for sql, name in ((_FEED_KEY, b"ts_feed_key"), (_API_KEY, b"ts_api_key"),
                              (_KEY_AND_VERSION, b"ts_key_and_version"),
                              (_VERSION, b"ts_version")))
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
        return FeedKey(_text(kind), _text(participant_id), _text(digest),
                       revoked_at is not None, _int(version), _timestamp(_text(updated_at)),
                       _text(subject_code))

    def api_key(self, key_id: str) -> ApiKey | None:
        """An API key by id."""
        row = self._row(self.api_key_sql, key_id)
        return None if row is None else _api_key(row)

    def api_key_and_version(self, key_id: str, participant_id: str) \
            -> tuple[ApiKey, int | None] | None:
        """An API key by id and, in the same statement, a participant's version (None when
        there is no such participant); None when there is no such key."""
        row = self._row(self.key_and_version_sql, key_id, participant_id)
        return None if row is None else (_api_key(row[:6]), _int(row[6]))

    def version(self, participant_id: str) -> int | None:
        """A participant's version; None when there is no such participant."""
        row = self._row(self.version_sql, participant_id)
        return None if row is None else _int(row[0])

    def notify(self, channel: str) -> None:
        """`NOTIFY channel` in a transaction of its own (the connection is in autocommit), on
        this thread's connection: the webhook waker's (api/persistence/webhooks.py), whose
        thread sends one now and then. PostgreSQL only."""
        command = f"NOTIFY {channel}"
        if self.kind != "psycopg":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql(command)
            return
        from psycopg import pq

        self._on_libpq(command, (), lambda pgconn, _holder: _check(
            pgconn.exec_(command.encode()), pq.ExecStatus.COMMAND_OK))

    def _row(self, statement: _Statement, *values: str) -> Any:
        if any("\x00" in value for value in values):
            return None  # no stored id holds NUL, and PostgreSQL refuses it in a text value
        if self.kind == "sqlite":
            try:
                return self._sqlite().execute(statement.sql, values).fetchone()
            except sqlite3.Error as error:
                self._drop()
                raise sa.exc.OperationalError(statement.sql, values, error) from error
        if self.kind == "psycopg":
            return self._libpq_row(statement, values)
        with self.engine.connect() as connection:
            return connection.execute(sa.text(statement.sql),
                                      {f"p{n}": value for n, value in enumerate(values, 1)}).first()

    def _holder(self) -> _Held | None:
        holder: _Held | None = getattr(self.local, "held", None)
        if holder is not None and holder.pid == os.getpid():
            return holder
        return None

    def _sqlite(self) -> sqlite3.Connection:
        holder = self._holder()
        if holder is not None:
            connection: sqlite3.Connection = holder.connection
            return connection
        # Autocommit: each SELECT is its own read transaction and sees the last commit.
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                     cached_statements=16)
        connection.execute("PRAGMA query_only=ON")
        self._hold(connection)
        return connection

    def _libpq_row(self, statement: _Statement, values: tuple[str, ...]) -> Any:
        """One row through libpq itself (psycopg's `pq` layer): a prepared statement executed
        by name, its columns left as text. psycopg's cursor (converting the query, adapting each
        parameter, building a row) cost as much as the round trip on this path."""
        from psycopg import pq

        def row(pgconn: Any, holder: _Held) -> Any:
            if statement.name not in holder.prepared:
                _check(pgconn.prepare(statement.name, statement.sql.encode()),
                       pq.ExecStatus.COMMAND_OK)
                holder.prepared.add(statement.name)
            result = _check(pgconn.exec_prepared(
                statement.name, [value.encode() for value in values]), pq.ExecStatus.TUPLES_OK)
            if result.ntuples == 0:
                return None
            return tuple(result.get_value(0, column) for column in range(result.nfields))

        return self._on_libpq(statement.sql, values, row)

    def _on_libpq(self, sql: str, values: tuple[str, ...], work: Callable[..., Any]) -> Any:
        """`work(pgconn, holder)` on this thread's libpq connection, opened when it has none; a
        connection the server dropped is opened again, once."""
        import psycopg

        for attempt in (1, 2):
            holder = self._holder()
            try:
                if holder is None:
                    connection = psycopg.connect(self.conninfo, autocommit=True)
                    # Timestamps come back as ISO 8601 text in UTC, for fromisoformat.
                    connection.execute("SET DateStyle = ISO; SET TimeZone = 'UTC'")
                    holder = self._hold(connection)
                pgconn = holder.connection.pgconn
                return work(pgconn, holder)
            except psycopg.OperationalError as error:
                # The server restarted or dropped the connection: one fresh try, then the
                # error goes up as SQLAlchemy's, like every other database failure.
                self._drop()
                if attempt == 2:
                    raise sa.exc.OperationalError(sql, values, error) from error
        raise AssertionError("unreachable")

    def _hold(self, connection: Any) -> _Held:
        holder = _Held(connection)
        self.local.held = holder
        with self.lock:
            self.opened.add(holder)
        return holder

    def _drop(self) -> None:
        holder = getattr(self.local, "held", None)
        self.local.held = None
        if holder is not None:
            with self.lock:
                self.opened.discard(holder)
            _close_quietly(holder.connection, holder.pid)


def _check(result: Any, wanted: Any) -> Any:
    """A libpq result that is what was wanted, or psycopg's OperationalError with the server's
    message (a lost connection, a restarted server)."""
    import psycopg

    if result.status != wanted:
        message = (result.error_message or b"").decode(errors="replace").strip()
        raise psycopg.OperationalError(message or f"libpq result status {result.status}")
    return result


def _api_key(row: Any) -> ApiKey:
    key_id, name, scope, digest, created_at, revoked_at = row
    created = _timestamp(_text(created_at))
    assert created is not None
    return ApiKey(_text(key_id), _text(name), _text(scope), _text(digest), created,
                  _timestamp(_text(revoked_at)))
