"""The README's participant walkthrough, run as written against gunicorn on each database:
what a newcomer copies must work."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from api import create_app
from api.http.context import container
from tests.servers import ROOT, start_gunicorn

MARKER = "<!-- walkthrough -->"


def walkthrough() -> str:
    """The shell block right after the README's walkthrough marker."""
    text = (ROOT / "README.md").read_text()
    found = re.search(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found, "README.md has no walkthrough block"
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
