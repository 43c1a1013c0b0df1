"""The cached schedule and the hot reads before Flask (api/http/hot.py,
api/usecases/schedule_documents.py), on every configured database: the same bytes and headers
as the views give, never a stale body or a wrong 304 after a write (through this app or
another instance on the same database), a new ETag when a new day changes a status, and every
request the hot path does not know how to answer left to the views."""

from __future__ import annotations

import datetime as dt
import io
import sys
from typing import Any

import pytest
from flask import Flask
from werkzeug.http import parse_date

from api import create_app
from api.http.context import container
from api.http.hot import HotReads
from api.http.participants import schedule_body
from tests.db.conftest import SITE_TODAY, bearer

RECOVERED = {"type": "recovery_confirmed", "date": "2026-03-09"}


def hot(app: Flask) -> HotReads:
    """The hot reads in the app's WSGI chain (the observing middleware wraps them)."""
    middleware: Any = app.wsgi_app
    while not isinstance(middleware, HotReads):
        middleware = middleware.app
    return middleware


class Counting:
    """The Flask app behind the hot path, counting the requests that reach it."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        self.calls += 1
        return self.app(environ, start_response)


@pytest.fixture
def views(db_app):
    """How many requests went past the hot path to the views."""
    middleware = hot(db_app)
    counting = Counting(middleware.app)
    middleware.app = counting
    return counting


def call(app: Any, path: str, **headers: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """One WSGI request, as gunicorn makes it; status, headers and body as written."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
               "HTTP_HOST": "127.0.0.1"}
    for name, value in headers.items():
        environ[name] = value
    written: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        written.update(status=status, headers=headers)

    body = b"".join(app(environ, start_response))
    return written["status"], list(written["headers"]), body


def without_date(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers, the Date's value aside (it is the second the answer was written), and
    without the request id the observing middleware adds around both paths."""
    return [(name, "<date>" if name == "Date" else value) for name, value in headers
            if name != "X-Request-ID"]


def same_answer(fast: tuple[str, list[tuple[str, str]], bytes],
                slow: tuple[str, list[tuple[str, str]], bytes]) -> bool:
    return (fast[0], without_date(fast[1]), fast[2]) == (slow[0], without_date(slow[1]), slow[2])


def feed_path(participant: dict[str, Any]) -> str:
    return "/" + participant["feed"]["https"].split("://", 1)[1].split("/", 1)[1]


def test_the_hot_path_answers_exactly_as_the_views_do(db_app, client, writer, participant,
                                                      views):
    path = f"/v1/participants/{participant['id']}/schedule"
    auth = {"HTTP_AUTHORIZATION": writer["Authorization"]}
    first = call(db_app, path, **auth)  # computed by the view, and kept
    assert views.calls == 1 and first[0] == "200 OK"
    etag = dict(first[1])["ETag"]
    for headers in ({}, {"HTTP_IF_NONE_MATCH": etag}, {"HTTP_IF_NONE_MATCH": "W/" + etag},
                    {"HTTP_IF_NONE_MATCH": '"another"'}):
        fast = call(db_app, path, **auth, **headers)
        slow = call(views.app, path, **auth, **headers)  # the Flask app alone
        assert same_answer(fast, slow), headers
    assert views.calls == 1  # every answer above but the first came from the hot path
    written = call(db_app, path, **auth)[1]
    assert [name for name, _ in written] == ["Content-Type", "Content-Length", "ETag", "Date",
                                             "X-Request-ID"]
    assert parse_date(dict(written)["Date"]) is not None  # an HTTP date, as werkzeug writes
    assert call(db_app, path, **auth, HTTP_IF_NONE_MATCH=etag)[0] == "304 NOT MODIFIED"

    feed = feed_path(participant)
    call(db_app, feed)  # rendered by the view, and kept
    feed_etag = dict(call(db_app, feed)[1])["ETag"]
    calls = views.calls
    for headers in ({}, {"HTTP_IF_NONE_MATCH": feed_etag},
                    {"HTTP_IF_NONE_MATCH": "W/" + feed_etag}, {"HTTP_IF_NONE_MATCH": '"x"'}):
        fast = call(db_app, feed, **headers)
        slow = call(views.app, feed, **headers)
        assert (fast[0], without_date(fast[1]), fast[2]) == \
            (slow[0], without_date(slow[1]), slow[2]), headers
    assert views.calls == calls


def test_what_the_hot_path_does_not_answer_goes_to_the_views(db_app, client, keys, writer,
                                                            participant, views):
    path = f"/v1/participants/{participant['id']}/schedule"
    auth = {"HTTP_AUTHORIZATION": writer["Authorization"]}
    etag = dict(call(db_app, path, **auth)[1])["ETag"]
    calls = views.calls
    cases = [
        ({}, "401 UNAUTHORIZED"),
        ({"HTTP_AUTHORIZATION": "Bearer ts_nokey_secret"}, "401 UNAUTHORIZED"),
        ({"HTTP_AUTHORIZATION": writer["Authorization"] + "x"}, "401 UNAUTHORIZED"),
        ({"HTTP_AUTHORIZATION": "Basic abc"}, "401 UNAUTHORIZED"),
        ({**auth, "HTTP_IF_MATCH": '"stale"'}, "412 PRECONDITION FAILED"),
        ({**auth, "QUERY_STRING": "x=1"}, "200 OK"),
        ({**auth, "HTTP_IF_MODIFIED_SINCE": "Mon, 07 Dec 2026 00:00:00 GMT"}, "200 OK"),
    ]
    for headers, status in cases:
        assert call(db_app, path, **headers)[0] == status, headers
        calls += 1
        assert views.calls == calls, headers
    unknown = call(db_app, "/v1/participants/00000000-0000-0000-0000-000000000000/schedule",
                   **auth)
    assert unknown[0] == "404 NOT FOUND" and views.calls == calls + 1

    # A key revoked after the schedule was kept is refused at once.
    container(db_app).api_keys.revoke("write-key")
    refused = call(db_app, path, **auth, HTTP_IF_NONE_MATCH=etag)
    assert refused[0] == "401 UNAUTHORIZED"
    assert call(db_app, path, HTTP_AUTHORIZATION=bearer(keys["read"])["Authorization"],
                HTTP_IF_NONE_MATCH=etag)[0] == "304 NOT MODIFIED"


def test_a_write_is_a_new_body_and_etag_at_once(db_app, client, writer, participant):
    path = f"/v1/participants/{participant['id']}/schedule"
    before = client.get(path, headers=writer)
    assert client.get(path, headers={**writer, "If-None-Match": before.headers["ETag"]}) \
        .status_code == 304
    assert client.post(f"/v1/participants/{participant['id']}/events", json=RECOVERED,
                       headers=writer).status_code == 201
    after = client.get(path, headers={**writer, "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert after.get_json()["state"] == "scheduled" and before.get_json()["state"] == "provisional"
    assert after.data == fresh(db_app, participant["id"])


def fresh(app: Flask, participant_id: str) -> bytes:
    """The schedule computed now, without any cache, as the view encodes it."""
    service = container(app).participants
    stored, events = service.history(participant_id)
    with app.test_request_context():
        return schedule_body(service.compute(stored, events, container(app).clock.today()))


def test_a_new_day_that_changes_a_status_is_a_new_etag(db_app, client, writer, participant):
    path = f"/v1/participants/{participant['id']}/schedule"
    assert client.post(f"/v1/participants/{participant['id']}/events", json=RECOVERED,
                       headers=writer).status_code == 201
    clock = container(db_app).clock
    clock.freeze(dt.date(2026, 3, 10))
    early = client.get(path, headers=writer)
    first = next(v for v in early.get_json()["visits"] if v["id"] == "C1D1")
    assert first["status"] == "due" and first["window"]["latest"] > "2026-03-10"
    # The same day again: the same bytes, and 304 for their ETag.
    assert client.get(path, headers={**writer, "If-None-Match": early.headers["ETag"]}) \
        .status_code == 304
    clock.freeze(dt.date.fromisoformat(first["window"]["latest"]) + dt.timedelta(days=1))
    late = client.get(path, headers={**writer, "If-None-Match": early.headers["ETag"]})
    assert late.status_code == 200 and late.headers["ETag"] != early.headers["ETag"]
    assert next(v for v in late.get_json()["visits"] if v["id"] == "C1D1")["status"] \
        == "overdue"
    assert late.data == fresh(db_app, participant["id"])
    clock.freeze(dt.date(2026, 3, 10))  # back: the first day's answer again
    assert client.get(path, headers=writer).headers["ETag"] == early.headers["ETag"]
    clock.freeze(dt.date.fromisoformat(SITE_TODAY))


def test_a_write_through_another_instance_is_seen_at_once(database_url, db_app, client, writer,
                                                         participant, tmp_path):
    """Two apps on one database, each with its own caches (two instances): what one writes,
    the other serves at its next request, schedule and feed alike, with no wrong 304."""
    other = create_app({"DATABASE_URL": database_url, "TESTING": True,
                        "SITE_FEED_DIR": str(tmp_path / "other"),
                        "FEED_SECRET": "test-feed-secret", "TODAY": SITE_TODAY})
    try:
        reader = other.test_client()
        path = f"/v1/participants/{participant['id']}/schedule"
        feed = feed_path(participant)
        seen = reader.get(path, headers=writer)
        seen_feed = reader.get(feed)
        assert reader.get(path, headers={**writer, "If-None-Match": seen.headers["ETag"]}) \
            .status_code == 304
        assert reader.get(feed, headers={"If-None-Match": seen_feed.headers["ETag"]}) \
            .status_code == 304
        assert client.post(f"/v1/participants/{participant['id']}/events", json=RECOVERED,
                           headers=writer).status_code == 201
        now = reader.get(path, headers={**writer, "If-None-Match": seen.headers["ETag"]})
        assert now.status_code == 200 and now.get_json()["state"] == "scheduled"
        assert now.data == client.get(path, headers=writer).data == fresh(other,
                                                                          participant["id"])
        now_feed = reader.get(feed, headers={"If-None-Match": seen_feed.headers["ETag"]})
        assert now_feed.status_code == 200 and now_feed.data != seen_feed.data
        assert now_feed.data == client.get(feed).data
    finally:
        container(other).engine.dispose()


def test_the_hot_reads_reconnect_after_the_server_drops_them(end_connections, db_app, client,
                                                             writer, participant, views):
    """PostgreSQL ends every connection (a restart, a failover): the next hot read opens a
    new one and answers, with no error for the client."""
    path = f"/v1/participants/{participant['id']}/schedule"
    feed = feed_path(participant)
    etag = dict(call(db_app, path, HTTP_AUTHORIZATION=writer["Authorization"])[1])["ETag"]
    feed_etag = dict(call(db_app, feed)[1])["ETag"]  # its URL (SOURCE) is this host's
    assert end_connections()
    calls = views.calls
    assert call(db_app, path, HTTP_AUTHORIZATION=writer["Authorization"],
                HTTP_IF_NONE_MATCH=etag)[0] == "304 NOT MODIFIED"
    assert call(db_app, feed, HTTP_IF_NONE_MATCH=feed_etag)[0] == "304 NOT MODIFIED"
    assert views.calls == calls  # answered by the hot path, on a new connection


def test_hot_answers_are_counted_under_their_route_templates(db_app, client, writer,
                                                             participant):
    """The hot path answers before Flask, so it labels the request as the view's hook would:
    a schedule or feed answered from memory is counted under its route, never `unmatched`."""
    from prometheus_client.parser import text_string_to_metric_families

    def counted(route: str, status: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "trial_schedule_http_requests_total"
                   and sample.labels == {"method": "GET", "route": route, "status": status})

    schedule = "/v1/participants/<participant_id>/schedule"
    path = f"/v1/participants/{participant['id']}/schedule"
    client.get(path, headers=writer)  # the view computes and keeps it
    before = counted(schedule, "200")
    for _ in range(3):
        assert client.get(path, headers=writer).status_code == 200  # from memory
    assert counted(schedule, "200") - before == 3
