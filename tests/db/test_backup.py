"""Backups and upgrades, as README's operations section has an operator run them: back up, write
more, restore, and the history is exactly the backed-up one; migrate, roll back one step, and
migrate again with nothing lost. On SQLite (online backup API) and PostgreSQL (pg_dump)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from api.cli import main
from api.http.context import container
from api.persistence.migrate import current, head
from api.persistence.tables import metadata
from tests.db.conftest import bearer
from tests.feed_readers import need

EVENTS = [{"type": "recovery_confirmed", "date": "2026-03-09"},
          {"type": "dose_given", "cycle": 1, "date": "2026-03-09"},
          {"type": "dose_skipped", "cycle": 2, "reason": "grade 2 pneumonitis"}]


@pytest.fixture
def cli(database_url, monkeypatch):
    """`trial-schedule` against the test's database, as an operator runs it."""
    if database_url.startswith("postgresql"):
        need(shutil.which("pg_dump") is not None and shutil.which("pg_restore") is not None,
             "pg_dump and pg_restore are not installed (make test installs Debian's "
             "postgresql-client when run as root)")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TRIAL_SCHEDULE_FEED_SECRET", "test-feed-secret")

    def run(*arguments: str) -> str:
        result = CliRunner().invoke(main, list(arguments), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output
    return run


def everything(database_url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: what a restore must bring back exactly."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {table.name: sorted(map(tuple, connection.execute(table.select()).all()),
                                       key=repr)
                    for table in metadata.sorted_tables}
    finally:
        engine.dispose()


def enrol(client, writer, code: str) -> str:
    answer = client.post("/v1/participants", json={
        "subject_code": code, "cryoablation_date": "2026-03-02"}, headers=writer)
    assert answer.status_code == 201
    return answer.get_json()["id"]


def test_restore_brings_back_exactly_the_backed_up_history(db_app, client, keys, database_url,
                                                           cli, tmp_path):
    writer = bearer(keys["write"])
    kept = enrol(client, writer, "ZS-001")
    for event in EVENTS[:2]:
        assert client.post(f"/v1/participants/{kept}/events", json=event,
                           headers=writer).status_code == 201
    history = client.get(f"/v1/participants/{kept}/events", headers=writer).get_json()
    backed_up = everything(database_url)

    assert "backup written" in cli("backup", str(tmp_path / "backups" / "one.backup"))
    assert (tmp_path / "backups" / "one.backup").stat().st_mode & 0o077 == 0
    # Written after the backup: another event, another participant, a revoked key.
    assert client.post(f"/v1/participants/{kept}/events", json=EVENTS[2],
                       headers=writer).status_code == 201
    later = enrol(client, writer, "ZS-002")
    assert container(db_app).api_keys.revoke("read-key")
    assert everything(database_url) != backed_up

    assert "now run: trial-schedule db upgrade" in cli(
        "restore", "--yes", str(tmp_path / "backups" / "one.backup"))
    cli("db", "upgrade")
    assert everything(database_url) == backed_up
    # The running service (its pooled connections) serves the restored history at once.
    assert client.get(f"/v1/participants/{kept}/events", headers=writer).get_json() == history
    assert client.get(f"/v1/participants/{later}", headers=writer).status_code == 404
    assert client.get("/v1/participants", headers=bearer(keys["read"])).status_code == 200


def test_a_file_that_is_not_a_backup_is_refused_and_nothing_changes(db_app, client, keys,
                                                                     database_url, tmp_path):
    enrol(client, bearer(keys["write"]), "ZS-001")
    before = everything(database_url)
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a backup\n" * 100)
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    for source in (junk, other, tmp_path / "missing.backup"):
        result = CliRunner().invoke(main, ["restore", "--yes", str(source)],
                                    env={"DATABASE_URL": database_url})
        assert result.exit_code == 1, result.output
        assert "Error:" in result.output
    assert everything(database_url) == before


def test_restore_asks_before_replacing_anything(db_app, database_url, tmp_path, cli):
    cli("backup", str(tmp_path / "b.backup"))
    result = CliRunner().invoke(main, ["restore", str(tmp_path / "b.backup")], input="n\n",
                                env={"DATABASE_URL": database_url})
    assert result.exit_code == 1 and "Aborted" in result.output


def test_upgrade_roll_back_one_step_and_upgrade_again_loses_nothing(db_app, client, keys,
                                                                    database_url, cli):
    writer = bearer(keys["write"])
    pid = enrol(client, writer, "ZS-001")
    assert client.post(f"/v1/participants/{pid}/events", json=EVENTS[0],
                       headers=writer).status_code == 201
    before = everything(database_url)
    engine = container(db_app).engine
    assert current(engine) == head()
    assert f"this release's head is {head()}" in cli("db", "current")
    cli("db", "downgrade")
    assert current(engine) not in (None, head())
    cli("db", "upgrade")
    assert current(engine) == head()
    after = everything(database_url)
    # The head (0009) adds the rendered events' marks, a cache of what rendering read: rolled
    # back, the marks are gone, and the next write renders the events afresh (tested in
    # tests/db/test_write_path.py). Everything else comes back as it was.
    marks = [c.name for c in metadata.tables["rendered_feeds"].columns].index("marks")
    assert [row[marks] for row in after["rendered_feeds"]] == [None]
    assert [row[marks] for row in before["rendered_feeds"]] != [None]
    for rows in (before, after):
        rows["rendered_feeds"] = [row[:marks] + row[marks + 1:] for row in rows["rendered_feeds"]]
    assert after == before
