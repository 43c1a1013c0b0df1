"""The access log under gunicorn: no feed token however the path is mistyped, and no control
character from a path (`%0d%0a` arrives decoded) can forge a line."""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import migrated_app
from tests.servers import start_gunicorn

TOKEN = "0123456789abcdef0123456789abcdef.SECRETPARTsecretpart_-0123456789abcdefgh"


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Requests sent to gunicorn, then its whole log once it has exited."""
    folder = tmp_path_factory.mktemp("logged")
    migrated_app(folder)
    log = folder / "gunicorn.log"
    answers = {}
    with log.open("wb") as output:
        server, base = start_gunicorn({"DATABASE_URL": f"sqlite:///{folder / 'api.sqlite3'}"},
                                      output)
        try:
            address = urlsplit(base)
            for path in (f"/feeds//{TOKEN}.ics", f"/feeds/site//{TOKEN}.ics",
                         f"/feed/{TOKEN}.ics", f"/v1/participants/{TOKEN}",
                         f"/feeds/{TOKEN}",
                         "/healthz%0d%0a127.0.0.1%20%22GET%20/forged%22%20200",
                         "/x%1b%5b2J%07"):
                connection = http.client.HTTPConnection(address.hostname, address.port,
                                                        timeout=10)
                connection.request("GET", path)
                answers[path] = connection.getresponse().status
                connection.close()
            # A request line gunicorn refuses itself is quoted in its error log.
            with socket.create_connection((address.hostname, address.port), timeout=10) as raw:
                raw.sendall(b"GET /feeds/" + TOKEN.encode() + b".ics\x1b[2J\x07 HTTP/1.1\r\n\r\n")
                answers["raw"] = int(raw.recv(100).split(b" ")[1])
            deadline = time.monotonic() + 10
            while log.read_text().count('"GET ') < len(answers) - 1 or \
                    "Invalid request" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=15)
    return answers, Path(log).read_text()


def test_requests_were_answered_without_a_server_error(logged):
    answers, _ = logged
    assert answers[f"/feeds//{TOKEN}.ics"] in (308, 404)
    assert all(status < 500 for status in answers.values()), answers


def test_no_part_of_a_token_reaches_the_log_under_any_path(logged):
    _, log = logged
    assert "SECRETPART" not in log and "0123456789abcdef" not in log
    assert '"GET /feeds//[token].ics" ' in log
    assert '"GET /feeds/site//[token].ics" ' in log
    assert '"GET /feed/[token].ics" 404' in log
    assert '"GET /v1/participants/[token]" 401' in log
    assert '"GET /feeds/[token]" 404' in log


def test_control_characters_in_a_path_are_escaped_and_forge_no_line(logged):
    answers, log = logged
    assert '"GET /healthz\\x0d\\x0a127.0.0.1 \\"GET /forged\\" 200" 404' in log
    assert not any(line.startswith('127.0.0.1 "GET /forged"') for line in log.splitlines())
    assert '"GET /x\\x1b[2J\\x07" 404' in log
    assert "\x1b" not in log and "\x07" not in log
    assert answers["raw"] == 400
    assert "Invalid request from ip=127.0.0.1: " in log
