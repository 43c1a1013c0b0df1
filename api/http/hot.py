"""The hot reads, answered before Flask: a stored participant's schedule that this process has
computed for the participant's current version and the site's today, and a participant feed's
304 or its body kept from an earlier 200.

Each is one prepared statement (the API key with the participant's version; the feed token with
its participant's version: `api/persistence/feed_reads.py`), so a write through any worker or
instance is seen by the next request (no stale body, no wrong 304), a hash, and the answer's
bytes. Flask's request context, URL routing and before-request hooks cost more than all of
that (a hello-world Flask request takes about 35 µs in process), so these requests skip them.

Only the plainest requests are answered here, and only when the answer is already known; every
other request (another method, a query string, a body, a condition other than If-None-Match,
a key that is missing or not live, an unknown participant, a cache miss, a database error) goes
on to the Flask views unchanged, which answer it as before and fill the caches. The headers
written here are the ones the views write for the same request (tests/db/test_hot_reads.py
holds the two equal, byte for byte).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from werkzeug.http import http_date

from api.http.feeds import calendar_headers, weak_match
from api.http.observe import KEY_NAME, ROUTE
from api.usecases.api_keys import covers
from api.usecases.container import Container

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SCHEDULE_PATH = re.compile(r"/v1/participants/([0-9A-Za-z-]{1,64})/schedule")
FEED_PATH = re.compile(r"/feeds/([0-9A-Za-z_.-]{1,200})\.ics")
# The route templates the views' requests are labelled with (api.http.observe).
SCHEDULE_ROUTE = "/v1/participants/<participant_id>/schedule"
FEED_ROUTE = "/feeds/<token>.ics"
# A request carrying any of these goes to Flask: a body (a GET with one gets the API's 415
# there), or a condition the views evaluate beyond If-None-Match (werkzeug's make_conditional:
# If-Match's 412, ranges, dates).
PASS_ON = ("CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE",
           "HTTP_IF_UNMODIFIED_SINCE", "HTTP_IF_RANGE", "HTTP_RANGE")
OK, NOT_MODIFIED = "200 OK", "304 NOT MODIFIED"  # the status lines werkzeug writes
JSON = "application/json"


class Bases:
    """The scheme and host each request shape was answered at (werkzeug's `host_url`, as a
    view built it), kept by what it is made of; bounded, since a client chooses its Host
    header. A feed's ETag names its own URL, so the hot path answers a feed only at a base a
    view has built before."""

    LIMIT = 256

    def __init__(self) -> None:
        self.known: dict[tuple[str, str | None, str | None, str | None], str] = {}
        self.lock = threading.Lock()

    @staticmethod
    def _key(environ: Mapping[str, Any]) -> tuple[str, str | None, str | None, str | None]:
        return (environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST"),
                environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))

    def get(self, environ: Mapping[str, Any]) -> str | None:
        return self.known.get(self._key(environ))

    def put(self, environ: Mapping[str, Any], base: str) -> None:
        with self.lock:
            if len(self.known) >= self.LIMIT:
                self.known.clear()
            self.known[self._key(environ)] = base


BASES = Bases()


@lru_cache(maxsize=4)
def _date(second: int) -> str:
    return http_date(second)


def _now_date() -> str:
    """The Date header werkzeug's make_conditional sets: now, to the second."""
    return _date(int(time.time()))


class HotReads:
    """WSGI middleware in front of the Flask app (`api.http.install` puts it there)."""

    def __init__(self, app: WSGIApplication, container: Container) -> None:
        self.app = app
        self.container = container

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) \
            -> Iterable[bytes]:
        answer = self._answer(environ) if self._plain(environ) else None
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return body

    @staticmethod
    def _plain(environ: WSGIEnvironment) -> bool:
        return (environ.get("REQUEST_METHOD") == "GET" and not environ.get("QUERY_STRING")
                and not any(environ.get(name) for name in PASS_ON))

    def _answer(self, environ: WSGIEnvironment) \
            -> tuple[str, list[tuple[str, str]], list[bytes]] | None:
        path = environ.get("PATH_INFO", "")
        try:
            if found := SCHEDULE_PATH.fullmatch(path):
                return self._schedule(environ, found.group(1))
            if found := FEED_PATH.fullmatch(path):
                return self._feed(environ, found.group(1))
        except sa.exc.SQLAlchemyError:
            return None  # the view reads again and answers the failure as it does (503)
        return None

    def _schedule(self, environ: WSGIEnvironment, participant_id: str) \
            -> tuple[str, list[tuple[str, str]], list[bytes]] | None:
        """A schedule this process computed for the participant's current version on the
        site's today; 304 when the client has it."""
        scheme, _, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        key, version = self.container.api_keys.authenticate_with_version(
            presented.strip(), participant_id)
        if key is None or version is None or not covers(key.scope, "read"):
            return None
        document = self.container.schedule_documents.cached(
            participant_id, version, self.container.clock.today())
        if document is None:
            return None
        # What the observing middleware labels the request with, as the view's hook would.
        environ[ROUTE], environ[KEY_NAME] = SCHEDULE_ROUTE, key.name
        tag = f'"{document.etag}"'
        if weak_match(environ.get("HTTP_IF_NONE_MATCH"), document.etag):
            return NOT_MODIFIED, [("ETag", tag), ("Date", _now_date())], []
        return OK, [("Content-Type", JSON), ("Content-Length", str(len(document.body))),
                    ("ETag", tag), ("Date", _now_date())], [document.body]

    def _feed(self, environ: WSGIEnvironment, token: str) \
            -> tuple[str, list[tuple[str, str]], list[bytes]] | None:
        """A participant feed's 304, or its body served before for this version and URL."""
        feeds = self.container.feeds
        base = BASES.get(environ)
        if base is None and feeds.links.public_base_url is None:
            return None  # no view has built this request's base yet: the ETag needs it
        feed = feeds.participant_feed(token, base)
        if feed is None:
            return None
        environ[ROUTE] = FEED_ROUTE
        headers = calendar_headers(feed.etag, feed.last_modified)
        if weak_match(environ.get("HTTP_IF_NONE_MATCH"), feed.etag):
            return NOT_MODIFIED, [pair for pair in headers
                                  if pair[0] in ("ETag", "Cache-Control")], []
        body = feeds.whole_body(feed)
        if body is None:
            return None
        return OK, [*headers, ("Content-Length", str(len(body)))], [body]

