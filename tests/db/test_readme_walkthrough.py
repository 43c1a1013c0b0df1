"""The README's participant walkthrough and its operations routine, run as written against
gunicorn on each database: what a newcomer copies must work."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess

import pytest

from api import create_app
from api.http.context import container
from api.persistence.migrate import current, head
from scheduler.history import Enrolment
from tests.feed_readers import need
from tests.servers import ROOT, start_gunicorn

MARKER = "<!-- walkthrough -->"
OPERATIONS = "<!-- operations -->"


def walkthrough(marker: str = MARKER) -> str:
    """The shell block right after one of the README's markers."""
    text = (ROOT / "README.md").read_text()
    found = re.search(re.escape(marker) + r"\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found, f"README.md has no block after {marker}"
    return found.group(1)


def test_the_readme_walkthrough_runs_as_written(database_url, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    env = {"DATABASE_URL": database_url, "TRIAL_SCHEDULE_FEED_SECRET": "test-feed-secret",
           "TRIAL_SCHEDULE_SITE_FEED_DIR": str(tmp_path)}
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        server, base = start_gunicorn(env, output)
        try:
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough()], cwd=ROOT,
                                 env={**os.environ, **env, "BASE": base}, capture_output=True,
                                 text=True, timeout=120)
        finally:
            server.terminate()
            server.wait(timeout=15)
    assert run.returncode == 0, run.stdout + run.stderr

    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret"})
    service = container(app)
    [participant] = service.participants.page(None, 10)[0]
    _, events = service.participants.history(participant.id)
    assert [e.type for e in events] == ["recovery_confirmed", "dose_given",
                                        "enrolment_corrected"]
    assert participant.enrolment.childbearing_potential is True
    [key] = service.api_keys.listing()
    assert (key.name, key.scope, key.revoked_at is not None) == ("edc", "write", True)
    assert key.digest not in run.stdout
    service.engine.dispose()


def test_the_readme_operations_routine_runs_as_written(database_url, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    if database_url.startswith("postgresql"):
        need(shutil.which("pg_dump") is not None, "pg_dump is not installed (make test "
                                                  "installs Debian's postgresql-client)")
    env = {"DATABASE_URL": database_url, "TRIAL_SCHEDULE_FEED_SECRET": "test-feed-secret",
           "TRIAL_SCHEDULE_SITE_FEED_DIR": str(tmp_path)}
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret"})
    service = container(app)
    enrolled = service.participants.enrol(Enrolment("ZS-OPS", dt.date(2026, 3, 2)), "edc")
    service.engine.dispose()
    with (tmp_path / "gunicorn.log").open("wb") as output:
        server, base = start_gunicorn(env, output)
        try:
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough(OPERATIONS)],
                                 cwd=tmp_path, env={
                                     **os.environ, **env, "BASE": base,
                                     "TS": str(ROOT / ".venv" / "bin" / "trial-schedule"),
                                     "BACKUPS": str(tmp_path / "backups")},
                                 capture_output=True, text=True, timeout=120)
        finally:
            server.terminate()
            server.wait(timeout=15)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "trial_schedule_visits_overdue " in run.stdout
    assert re.search(r"^x-request-id: ops-check-1", run.stdout, re.I | re.M)
    assert [p.suffix for p in (tmp_path / "backups").iterdir()] == [".backup"]
    assert "now run: trial-schedule db upgrade" in run.stdout
    # After the round trip (backup, downgrade, upgrade, restore) the data is what it was.
    [participant] = service.participants.page(None, 10)[0]
    assert (participant.id, participant.enrolment.subject_code) == (enrolled.id, "ZS-OPS")
    assert current(service.engine) == head()
    service.engine.dispose()
