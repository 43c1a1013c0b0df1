"""Database engines: embedded SQLite by default, PostgreSQL for several workers or nodes."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine


def default_url(instance_path: str) -> str:
    """The embedded database: a file in the instance folder."""
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'trial-schedule.sqlite3'}"


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # hide_parameters: a failed statement's values (free-text reasons) stay out of errors
    # and so out of the log.
    engine = sa.create_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800,
                              hide_parameters=True)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused this long is checked with a round trip before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pessimistic disconnect handling (its `pool_pre_ping`), for connections that
    sat idle in the pool: one the server ended while it waited (a restart, a failover, an idle
    timeout) is replaced before a request uses it. A connection handed back within the last
    second is given out without the ping: under load every connection is, and the ping was a
    round trip on every request (about 2 % of a recorded dose's CPU in the worker, by
    py-spy). Were the server to end a connection within that second, the request using it
    gets SQLAlchemy's OperationalError (503, `api/http/problems.py`) and the pool drops it."""

    def _now_idle(_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    # A new connection, and one handed back, are idle from now.
    event.listen(engine, "connect", _now_idle)
    event.listen(engine, "checkin", _now_idle)

    @event.listens_for(engine, "checkout")
    def _checked_out(connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(connection)
        except Exception as error:
            # The pool discards this connection and checks out another (SQLAlchemy, "Custom /
            # Legacy Pessimistic Ping").
            raise sa.exc.DisconnectionError() from error


def _sqlite_engine(url: str) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                              hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _configure(connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below) instead of pysqlite's implicit one.
        connection.isolation_level = None
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed event survives a crash of the machine, not only of the process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # A writer takes the write lock when it starts, so two writers queue instead of
        # failing when one tries to upgrade a read lock; readers do not block.
        if connection.get_execution_options().get("readonly"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server `server_url` points at, dropped
    afterwards (for test and benchmark runs)."""
    base = sa.engine.make_url(server_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()
