"""nginx (deploy/nginx.conf) in front of gunicorn (api/gunicorn_conf.py) holds slow clients off.

gunicorn's gthread worker gives each connection a thread that reads the request itself, so a
client sending its headers a byte at a time holds a thread until it finishes. With the default
2 workers x 4 threads, 8 such clients were enough to make `/healthz` time out for everyone
(issue: "Eight slow clients stop the service"). Without the proxy it does not answer: these
same slow clients pointed at gunicorn directly (2 workers x 4 threads, this project's settings)
left 3 of 5 `/healthz` probes unanswered after 5 s with 50 clients, and 3 of 6 with 8 clients.
nginx reads every request whole, however slowly it comes, before it calls gunicorn, so here
`/healthz` through nginx must answer within 1 s all along while 50 clients send headers byte by
byte for 20 s.

Runs nginx as the current user on loopback, with a configuration generated from
deploy/nginx.conf for test ports in a temporary folder. `make test` installs Debian's nginx
when it can; without it the test skips (fails, with REQUIRE_ALL_READERS=1 as .ci/run sets).
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time

import pytest

from tests.api.conftest import migrated_app
from tests.servers import nginx_binary, start_gunicorn, start_nginx

SLOW_CLIENTS = 50
HOLD_SECONDS = 20.0
TOKEN = "0123456789abcdef0123456789abcdef.SECRETPARTsecretpart_-0123456789abcdefgh"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """gunicorn with the project's settings, and nginx in front of it, on loopback."""
    nginx = nginx_binary()
    folder = tmp_path_factory.mktemp("nginx")
    migrated_app(folder)
    gunicorn_log = folder / "gunicorn.log"
    with gunicorn_log.open("wb") as output:
        server, base = start_gunicorn({
            "DATABASE_URL": f"sqlite:///{folder / 'api.sqlite3'}", "WEB_CONCURRENCY": "2",
            "TRIAL_SCHEDULE_TRUSTED_PROXIES": "1"}, output)
    try:
        proxy, port = start_nginx(nginx, [base], folder)
        try:
            yield port, folder
        finally:
            proxy.terminate()
            proxy.wait(timeout=15)
    finally:
        server.terminate()
        server.wait(timeout=15)


def healthz(port: int) -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except OSError:
        status = 0
    finally:
        connection.close()
    return status, time.monotonic() - started


def slow_clients(port: int, count: int, seconds: float, stop: threading.Event,
                 sent: list[int]) -> None:
    """`count` connections sending a request's headers a byte at a time, never finishing them;
    a connection the server closes is opened again at once."""
    header = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 4000
    sockets: list[tuple[socket.socket | None, int]] = [(None, 0)] * count
    until = time.monotonic() + seconds
    while time.monotonic() < until and not stop.is_set():
        for index, (sock, offset) in enumerate(sockets):
            try:
                if sock is None:
                    sock, offset = socket.create_connection(("127.0.0.1", port), timeout=2), 0
                sock.send(header[offset:offset + 1])
                sockets[index] = (sock, offset + 1)
                sent[0] += 1
            except OSError:
                if sock is not None:
                    sock.close()
                sockets[index] = (None, 0)
        time.sleep(0.2)
    for sock, _ in sockets:
        if sock is not None:
            sock.close()


def test_healthz_answers_within_a_second_while_50_slow_clients_hold_connections(stack):
    port, _ = stack
    assert healthz(port)[0] == 200
    stop, sent = threading.Event(), [0]
    attack = threading.Thread(target=slow_clients,
                              args=(port, SLOW_CLIENTS, HOLD_SECONDS, stop, sent))
    attack.start()
    answers = []
    try:
        time.sleep(1.0)  # every slow client is connected and sending
        while attack.is_alive():
            answers.append(healthz(port))
            time.sleep(0.25)
    finally:
        stop.set()
        attack.join()
    assert sent[0] >= SLOW_CLIENTS * 50  # they were really sending, a byte at a time
    assert len(answers) >= 40
    assert [status for status, _ in answers] == [200] * len(answers)
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 1.0, f"slowest /healthz through nginx took {slowest:.2f} s"


def test_the_proxy_is_trusted_for_the_client_address_and_no_token_is_logged(stack):
    port, folder = stack
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", f"/feeds//{TOKEN}.ics", headers={"X-Forwarded-For": "203.0.113.9"})
    status = connection.getresponse().status
    connection.close()
    assert status in (308, 404)
    deadline = time.monotonic() + 10
    gunicorn_log = folder / "gunicorn.log"
    while "[token]" not in gunicorn_log.read_text() or \
            not (folder / "access.log").exists() or \
            "[token]" not in (folder / "access.log").read_text():
        assert time.monotonic() < deadline, gunicorn_log.read_text()
        time.sleep(0.1)
    logs = gunicorn_log.read_text() + (folder / "access.log").read_text()
    assert "SECRETPART" not in logs and "0123456789abcdef" not in logs
    # nginx overwrites X-Forwarded-For with the peer it saw; the app trusts that one hop only.
    assert re.search(r'^127\.0\.0\.1 "GET /feeds//\[token\]\.ics" ', gunicorn_log.read_text(),
                     re.M)
