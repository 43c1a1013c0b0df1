"""Where the sign-in limit counts: in each process's memory by default, or in Redis
(`TRIAL_SCHEDULE_RATELIMIT_STORAGE_URI=redis://…`), shared by every process and node.

The Redis test needs a server on 127.0.0.1:6379; without one it skips and says so, or fails
with REQUIRE_ALL_READERS=1 (as CI sets, where Redis runs)."""

from __future__ import annotations

import os
import secrets
import socket

import pytest

from api import create_app
from api.http.context import container
from tests.db.conftest import SITE_TODAY
from tests.web.conftest import token_of

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URI = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def redis_answer() -> str | None:
    """Why Redis cannot be used here, or None when it answers PING."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            reply = connection.recv(64)
    except OSError as error:
        return f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT} ({error})"
    if not reply.startswith(b"+PONG"):
        return f"Redis on {REDIS_HOST}:{REDIS_PORT} answered PING with {reply!r}"
    return None


@pytest.fixture
def redis_uri() -> str:
    reason = redis_answer()
    if reason is not None:
        if os.environ.get("REQUIRE_ALL_READERS") == "1":
            pytest.fail(f"{reason} (required: REQUIRE_ALL_READERS is 1)")
        pytest.skip(reason)
    return REDIS_URI


@pytest.fixture
def make_app(database_url, tmp_path):
    """Apps over one database, as two nodes of one site would be."""
    made = []

    def build(storage: str):
        app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                          "SITE_FEED_DIR": str(tmp_path), "FEED_SECRET": "test-feed-secret",
                          "TODAY": SITE_TODAY, "RATELIMIT_STORAGE_URI": storage,
                          "LOGIN_RATE_LIMIT": "3 per minute"})
        made.append(app)
        return app

    yield build
    for app in made:
        container(app).engine.dispose()


def attempt(app, address: str) -> int:
    """One wrong sign-in from `address`; its status (401, or 429 once limited)."""
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": "viewer@site.example", "password": "wrong",
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address}).status_code


def fresh_address() -> str:
    """An address no earlier run has counted against (the counts outlive a run in Redis)."""
    return "2001:db8::" + ":".join(secrets.token_hex(2) for _ in range(4))


def test_by_default_each_process_counts_on_its_own(make_app):
    first, second = make_app("memory://"), make_app("memory://")
    address = fresh_address()
    assert [attempt(first, address) for _ in range(3)] == [401, 401, 401]
    assert attempt(second, address) == 401
    assert attempt(first, address) == 429


def test_with_redis_the_attempts_on_one_node_count_on_the_other(make_app, redis_uri):
    first, second = make_app(redis_uri), make_app(redis_uri)
    address = fresh_address()
    assert [attempt(first, address), attempt(first, address)] == [401, 401]
    assert attempt(second, address) == 401  # the third attempt, wherever it lands
    assert attempt(second, address) == 429
    assert attempt(first, address) == 429
    assert attempt(first, fresh_address()) == 401  # counted per address


def test_while_redis_is_unreachable_sign_in_still_answers_and_is_limited(make_app, caplog):
    from tests.servers import free_port

    app = make_app(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    address = fresh_address()
    assert [attempt(app, address) for _ in range(4)] == [401, 401, 401, 429]
    assert "falling back to in-memory storage" in caplog.text
