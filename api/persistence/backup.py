"""Backups of the whole database, and restoring one: `trial-schedule backup` / `restore`.

- SQLite: the online backup API (https://sqlite.org/backup.html), through Python's
  `sqlite3.Connection.backup`: a consistent copy of the database taken while the service keeps
  serving (writers wait for the moment the copy takes), and restoring copies a backup back
  into the live file the same way, page by page, so every open connection sees it whole.
- PostgreSQL: `pg_dump --format=custom` (a consistent snapshot, taken while the service
  serves) and `pg_restore --single-transaction` into the emptied schema.

A backup is written to a temporary file beside its destination and renamed into place when
complete, so a file at the destination is always a whole backup. Restoring checks first that
the file is a backup of this service (it holds the `alembic_version` table), then replaces
everything: stop the service (web and worker) while restoring, then run `trial-schedule db
upgrade` to bring an older backup's schema up to date.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

MARKER_TABLE = "alembic_version"


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why, and nothing was
    changed."""


def backup(engine: Engine, destination: Path) -> None:
    """Write a backup of the database `engine` points at to `destination`."""
    with _written_atomically(destination) as partial:
        if engine.dialect.name == "sqlite":
            _sqlite_backup(engine, partial)
        elif engine.dialect.name == "postgresql":
            _pg_run(engine, ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                             "--file", str(partial)])
        else:  # pragma: no cover - the service runs on these two only
            raise BackupError(f"no backup for {engine.dialect.name} databases")


def restore(engine: Engine, source: Path) -> None:
    """Replace everything in the database `engine` points at with the backup in `source`."""
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    if engine.dialect.name == "sqlite":
        _sqlite_restore(engine, source)
    elif engine.dialect.name == "postgresql":
        _pg_restore(engine, source)
    else:  # pragma: no cover
        raise BackupError(f"no restore for {engine.dialect.name} databases")


@contextmanager
def _written_atomically(destination: Path) -> Iterator[Path]:
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, 0o600)  # the history is clinical data
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def _sqlite_backup(engine: Engine, partial: Path) -> None:
    raw = engine.raw_connection()
    try:
        target = sqlite3.connect(partial)
        try:
            raw.driver_connection.backup(target)  # type: ignore[union-attr]
            # The copy is in WAL mode like the live database; as one self-contained file it
            # is easier to keep, and reading it leaves no -wal and -shm files beside it.
            target.execute("PRAGMA journal_mode=DELETE").close()
        finally:
            target.close()
    finally:
        raw.close()


def _sqlite_restore(engine: Engine, source: Path) -> None:
    try:
        backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            found = backup_db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                      "AND name = ?", (MARKER_TABLE,)).fetchone()
        except sqlite3.DatabaseError as error:
            backup_db.close()
            raise BackupError(f"{source}: not a SQLite database ({error})") from error
    except sqlite3.Error as error:
        raise BackupError(f"{source}: cannot be read ({error})") from error
    try:
        if found is None:
            raise BackupError(f"{source}: not a backup of this service (no {MARKER_TABLE})")
        raw = engine.raw_connection()
        try:
            backup_db.backup(raw.driver_connection)  # type: ignore[arg-type]
        finally:
            raw.close()
    finally:
        backup_db.close()
    engine.dispose()  # no pooled connection keeps a page cache from before


def _pg_restore(engine: Engine, source: Path) -> None:
    listing = _pg_run(engine, ["pg_restore", "--list", str(source)], database=False)
    if f"TABLE public {MARKER_TABLE} " not in listing and \
            f"TABLE DATA public {MARKER_TABLE} " not in listing:
        raise BackupError(f"{source}: not a backup of this service (no {MARKER_TABLE})")
    # Empty the schema first: every table there now, also one a later migration added that the
    # backup does not know. (One transaction; pg_restore then runs in one of its own.)
    existing = sa.MetaData()
    existing.reflect(engine)
    with engine.begin() as connection:
        existing.drop_all(connection)
    engine.dispose()
    _pg_run(engine, ["pg_restore", "--single-transaction", "--exit-on-error", "--no-owner",
                     "--no-privileges", str(source)])


def _pg_run(engine: Engine, command: list[str], database: bool = True) -> str:
    """Run a PostgreSQL client tool against the engine's database: the connection as a libpq
    URI, the password in PGPASSWORD (not on a command line anyone can read in ps)."""
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (Debian: apt-get install "
                          "postgresql-client)")
    url = engine.url
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    libpq = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    arguments = [*command, "--dbname", libpq] if database else command
    run = subprocess.run(arguments, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise BackupError(f"{command[0]} failed: {run.stderr.strip()}")
    return run.stdout
