"""Alembic builds exactly the schema the code declares, on each database."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from api.persistence.database import create_db_engine
from api.persistence.migrate import alembic_config, upgrade
from api.persistence.tables import metadata


def test_migrated_schema_matches_the_tables_in_code(database_url):
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def test_upgrade_twice_changes_nothing(database_url):
    engine = create_db_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert version == head(engine)


def head(engine: sa.Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_sqlite_runs_with_foreign_keys_and_wal(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
