"""The service under gunicorn, as `make run` starts it, answers on loopback."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.api.conftest import migrated_app
from tests.servers import start_gunicorn


class Served(str):
    log_file: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    migrated_app(folder)  # creates and migrates api.sqlite3 there
    log = folder / "gunicorn.log"
    with log.open("wb") as output:
        server, base = start_gunicorn({"DATABASE_URL": f"sqlite:///{folder / 'api.sqlite3'}"},
                                      output)
        served = Served(base)
        served.log_file = log
        try:
            yield served
        finally:
            server.terminate()
            server.wait(timeout=15)


def test_gunicorn_serves_the_readme_request(served):
    body = json.dumps({"cryoablation_date": "2026-03-02",
                       "recovery": {"status": "recovered", "date": "2026-03-09"}}).encode()
    request = urllib.request.Request(f"{served}/v1/schedules", data=body,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        schedule = json.load(response)
    assert schedule["first_dose_date"] == "2026-03-09"
    assert schedule["state"] == "scheduled"


def test_gunicorn_answers_errors_as_problems(served):
    request = urllib.request.Request(f"{served}/v1/schedules", data=b"{",
                                     headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    with caught.value as answer:
        assert answer.code == 400
        assert answer.headers["Content-Type"] == "application/problem+json"


def test_feed_tokens_never_reach_the_access_log(served):
    token = "0123456789abcdef0123456789abcdef.SECRETPART"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{served}/feeds/{token}.ics", timeout=10)
    caught.value.close()
    assert caught.value.code == 404
    deadline = time.monotonic() + 10
    while "/feeds/[token].ics" not in served.log_file.read_text():
        assert time.monotonic() < deadline, served.log_file.read_text()
        time.sleep(0.1)
    log = served.log_file.read_text()
    assert "SECRETPART" not in log and "0123456789abcdef" not in log


def test_access_log_redaction():
    from api.logs import redact

    line = '127.0.0.1 "GET /feeds/abc.SECRET.ics" 200 "GET /feeds/site/x.Y.ics?x=1"'
    assert redact(line) == ('127.0.0.1 "GET /feeds/[token].ics" 200 '
                            '"GET /feeds/site/[token].ics?x=1"')
