"""A client generated from openapi.yaml by openapi-python-client runs the README's participant
walkthrough against gunicorn: the document is complete enough to program against."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api import create_app
from api.http.context import container
from tests.api.conftest import migrated_app
from tests.servers import ROOT, start_gunicorn

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def client_package(tmp_path_factory):
    """The generated package, importable; the generator runs no formatter (post hooks need
    ruff on PATH and change nothing that matters here)."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "config.yaml").write_text("post_hooks: []\n")
    run = subprocess.run([str(GENERATOR), "generate", "--path", str(ROOT / "openapi.yaml"),
                          "--meta", "none", "--config", str(folder / "config.yaml"),
                          "--output-path", str(folder / "trial_schedule_client")],
                         cwd=folder, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{GENERATOR.parent}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout, run.stdout
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("trial_schedule_client")
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.startswith("trial_schedule_client")]:
            del sys.modules[name]


def test_the_generated_client_runs_the_participant_walkthrough(client_package, tmp_path):
    migrated_app(tmp_path)
    url = f"sqlite:///{tmp_path / 'api.sqlite3'}"
    services = container(create_app({"DATABASE_URL": url, "TESTING": True,
                                     "SITE_FEED_DIR": str(tmp_path),
                                     "FEED_SECRET": "test-feed-secret"}))
    key = services.api_keys.create("edc", "write")
    services.engine.dispose()
    api = importlib.import_module("trial_schedule_client.api.participants")
    models = importlib.import_module("trial_schedule_client.models")
    post_participants = importlib.import_module(f"{api.__name__}.post_participants")
    get_participants = importlib.import_module(f"{api.__name__}.get_participants")
    get_participant = importlib.import_module(f"{api.__name__}.get_participant")
    post_events = importlib.import_module(f"{api.__name__}.post_participant_events")
    get_events = importlib.import_module(f"{api.__name__}.get_participant_events")
    patch_participant = importlib.import_module(f"{api.__name__}.patch_participant")
    get_schedule = importlib.import_module(f"{api.__name__}.get_participant_schedule")

    with (tmp_path / "gunicorn.log").open("wb") as output:
        server, base = start_gunicorn({"DATABASE_URL": url}, output)
        try:
            with client_package.AuthenticatedClient(
                    base_url=base, token=key, raise_on_unexpected_status=True) as client:
                enrolled = post_participants.sync_detailed(client=client, body=models.Enrolment(
                    subject_code="ZS-001", cryoablation_date=_date("2026-03-02")))
                assert enrolled.status_code == 201
                participant = enrolled.parsed
                assert isinstance(participant, models.Participant)
                assert participant.feed.https.endswith(".ics")
                page = get_participants.sync(client=client, limit=50)
                assert [p.id for p in page.items] == [participant.id]
                assert get_participant.sync_detailed(participant.id, client=client).headers[
                    "ETag"] == '"v1"'

                recovery = post_events.sync_detailed(participant.id, client=client,
                                                     body=models.EventIn.from_dict({
                                                         "type": "recovery_confirmed",
                                                         "date": "2026-03-09"}))
                assert recovery.status_code == 201
                dose = post_events.sync_detailed(participant.id, client=client,
                                                 body=models.EventIn.from_dict({
                                                     "type": "dose_given", "cycle": 1,
                                                     "date": "2026-03-09"}),
                                                 if_match=recovery.headers["ETag"],
                                                 idempotency_key="zs-001-dose-1")
                assert dose.status_code == 201
                patched = patch_participant.sync_detailed(
                    participant.id, client=client, if_match=dose.headers["ETag"],
                    body=models.EnrolmentPatch.from_dict({"childbearing_potential": True,
                                                          "reason": "CRF reviewed"}))
                assert patched.status_code == 200 and patched.parsed.childbearing_potential is True
                history = get_events.sync(participant.id, client=client)
                assert [e.to_dict()["type"] for e in history.items] == [
                    "recovery_confirmed", "dose_given", "enrolment_corrected"]
                schedule = get_schedule.sync(participant.id, client=client)
                assert str(schedule.state) == "scheduled"
                assert "PREGNANCY" in {visit.id for visit in schedule.visits}
        finally:
            server.terminate()
            server.wait(timeout=15)


def _date(text: str):
    import datetime as dt

    return dt.date.fromisoformat(text)
