"""One round trip for a write's statements on PostgreSQL.

Recording an event runs up to six writes that answer nothing: append the event, update the
participant, upsert its visit states, store its rendered site events, and put a webhook message
and its deliveries in the outbox, each a round trip of its own before. Inside
`SqlUnitOfWork.batched()` they are kept and sent as one statement of data-modifying WITH
clauses (PostgreSQL documentation, "Data-Modifying Statements in WITH"): each runs exactly once
and to completion whether or not the statement reads its output, all on the statement's
snapshot, and foreign keys are checked at the statement's end, when every row is there. What a
batch keeps is not visible to the unit of work until it is sent: the caller reads nothing it
batched before leaving `batched()` (the record path reads the participant, its history, its
visit states and the active endpoints before writing any of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from api.persistence.tables import events, participants


@dataclass(frozen=True)
class Clause:
    """One data-modifying statement, its parameters written `:{p}name` so that one statement can
    hold several clauses of the same kind; `types` names the parameters whose values SQLAlchemy
    converts (JSON), by column type."""

    key: str
    sql: str
    types: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = ()


def columns_clause(key: str, table: sa.Table, names: tuple[str, ...]) -> Clause:
    """An INSERT of these columns, each from the parameter of its name."""
    return Clause(key, f"INSERT INTO {table.name} (" + ", ".join(names) + ") VALUES ("
                   + ", ".join(f":{{p}}{name}" for name in names) + ")",
                   tuple((name, table.c[name].type) for name in names
                         if isinstance(table.c[name].type, sa.JSON)))


_EVENT_COLUMNS = tuple(column.name for column in events.c)
EVENT_CLAUSE = columns_clause("event", events, _EVENT_COLUMNS)
_PARTICIPANT_COLUMNS = ("subject_code", "cryoablation_date", "childbearing_potential",
                        "lookbacks", "version", "updated_at", "protocol_version",
                        "screening_date")
PARTICIPANT_CLAUSE = Clause(
    "participant", "UPDATE participants SET "
    + ", ".join(f"{name} = :{{p}}{name}" for name in _PARTICIPANT_COLUMNS)
    + " WHERE id = :{p}pid", (("lookbacks", participants.c.lookbacks.type),))
RENDERED_CLAUSE = Clause(
    "rendered", "INSERT INTO rendered_feeds (participant_id, version, tag, body, marks) "
    "VALUES (:{p}participant_id, :{p}version, :{p}tag, :{p}body, :{p}marks) "
    "ON CONFLICT (participant_id) DO UPDATE SET version = EXCLUDED.version, "
    "tag = EXCLUDED.tag, body = EXCLUDED.body, marks = EXCLUDED.marks")


# `$n` parameters, as PostgreSQL itself takes them: psycopg's raw cursor sends the text as it is.
_PSYCOPG = postgresql.psycopg.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DriverStatement:
    """A statement as `on_driver` runs it: its text with `$n` parameters, and the name each
    number stands for, in order."""

    sql: str
    names: tuple[str, ...]


def for_psycopg(statement: sa.ClauseElement) -> DriverStatement:
    """A SQLAlchemy statement compiled once for `on_driver`."""
    compiled: Any = statement.compile(dialect=_PSYCOPG)  # a SQLCompiler: its positiontup
    return DriverStatement(str(compiled), tuple(compiled.positiontup or ()))


def on_driver(connection: Connection, statement: DriverStatement, params: dict[str, Any]) -> Any:
    """Run `statement` (`for_psycopg`) on the unit of work's own connection and transaction,
    past SQLAlchemy's execution layer, and return psycopg's cursor, its rows as dicts keyed by
    column name. On the write path SQLAlchemy's per-statement work (execution context,
    parameter processing, result wrapping) cost more CPU than psycopg's. The cursor is
    psycopg's raw one: the text goes to the server as compiled, where the default cursor
    parses `%(name)s` out of it on every call once it is over 4,096 characters or 50
    parameters (a dose that moves visits, with a webhook message, is both). Nothing else
    changes: `before_cursor_execute` listeners are told of the statement as of any other,
    and a failure goes up as SQLAlchemy's own exception through SQLAlchemy's own handling (a
    lost connection invalidates it in the pool). PostgreSQL only."""
    import psycopg
    from psycopg.rows import dict_row

    driver = connection.connection.driver_connection
    assert driver is not None
    values = [params[name] for name in statement.names]
    cursor: Any = psycopg.RawCursor(driver, row_factory=dict_row)
    for listener in connection.dispatch.before_cursor_execute:
        listener(connection, cursor, statement.sql, values, None, False)
    try:
        cursor.execute(statement.sql, values)
    except Exception as error:  # wrapped and raised by SQLAlchemy, as for its own statements
        connection._handle_dbapi_exception(error, statement.sql, values, cursor, None)
    return cursor


@dataclass(frozen=True)
class _Batched:
    statement: DriverStatement
    # Parameters SQLAlchemy's column types convert (JSON), with their converters.
    processors: tuple[tuple[str, Any], ...]


@lru_cache(maxsize=64)
def _batched_statement(clauses: tuple[Clause, ...]) -> _Batched:
    """The clauses as one statement: `WITH w0 AS (...), w1 AS (...) SELECT 1`. Its text depends
    only on the kinds of clause in it, so the few there are stay prepared."""
    parts, binds = [], []
    for number, clause in enumerate(clauses):
        prefix = f"w{number}_"
        parts.append(f"w{number} AS ({clause.sql.replace('{p}', prefix)})")
        binds += [sa.bindparam(prefix + name, type_=kind) for name, kind in clause.types]
    statement = sa.text("WITH " + ", ".join(parts) + " SELECT 1").bindparams(*binds)
    processors = ((bind.key, bind.type.dialect_impl(_PSYCOPG).bind_processor(_PSYCOPG))
                  for bind in binds)
    return _Batched(for_psycopg(statement),
                    tuple((name, call) for name, call in processors if call is not None))


class Batch:
    """The data-modifying statements a unit of work keeps to send at once (PostgreSQL, inside
    `SqlUnitOfWork.batched()`); elsewhere, and on SQLite, each runs at once."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.open = False
        self.clauses: list[tuple[Clause, dict[str, Any]]] = []

    def keeps(self) -> bool:
        """True when a write should be kept (`add`) rather than executed now."""
        return self.open

    def add(self, clause: Clause, values: dict[str, Any]) -> None:
        self.clauses.append((clause, values))

    def send(self) -> None:
        """Run what was kept, as one statement, in one round trip."""
        kept, self.clauses = self.clauses, []
        if not kept:
            return
        params: dict[str, Any] = {}
        for number, (_, values) in enumerate(kept):
            params.update({f"w{number}_{name}": value for name, value in values.items()})
        statement = _batched_statement(tuple(clause for clause, _ in kept))
        for name, convert in statement.processors:
            params[name] = convert(params[name])
        on_driver(self.connection, statement.statement, params).close()
