"""Each request observed once: its request id, its metrics, and (when wanted) its access record.

A WSGI middleware around the Flask app, so that the time counted includes every hook, and an
`after_request` hook that tells it what only Flask knows: the route *template* the request
matched (`/v1/participants/<participant_id>`, never the path, which may carry a feed
token) and the name of the API key it was authenticated with (never the key).

- `X-Request-ID`: a client's (or nginx's) id is kept when it is a short run of safe characters
  (letters, digits, `.`, `_`, `:`, `-`, at most 64), otherwise a new one is made; either way it
  is echoed on the response and carried in the access record, so one request can be followed
  from the client through nginx to the log.
- The access record goes to the `trial_schedule.access` logger, when that logger is enabled
  for INFO (`api.logs` enables it with `TRIAL_SCHEDULE_LOG_FORMAT=json`, where it replaces
  gunicorn's text access log): request id, method, route, status, duration, API key name and
  the client address. No query string, body, header value or free text.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, request

from api.http import metrics

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
ROUTE = "trial_schedule.route"
KEY_NAME = "trial_schedule.api_key"
REQUEST_ID_KEY = "trial_schedule.request_id"
# Methods a client may send are unbounded; as a label, anything else is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
access_log = logging.getLogger("trial_schedule.access")
# Each (method, route, status)'s counter and histogram, looked up once: `labels()` takes a lock
# and builds a key on every call. Bounded: methods and routes are the few above, statuses the
# app's own.
_series: dict[tuple[str, str, str], tuple[Any, Any]] = {}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def request_id_of(given: str | None) -> str:
    """The request id: the one given when it is safe to echo and log, otherwise a new one.

    >>> request_id_of("abc-123"), len(request_id_of("bad id\\r\\n")), len(request_id_of(None))
    ('abc-123', 32, 32)
    """
    if given and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class Observed:
    """The WSGI app with each request timed, counted, given an id and (maybe) logged."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) \
            -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = request_id_of(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID_KEY] = request_id
        seen: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            seen.append(status[:3])
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, *exc_info)

        body = self.app(environ, start)
        seconds = time.perf_counter() - started
        method = environ.get("REQUEST_METHOD", "")
        method = method if method in METHODS else "other"
        route = environ.get(ROUTE, metrics.UNMATCHED)
        status = seen[0] if seen else "500"
        series = _series.get((method, route, status))
        if series is None:
            series = _series[method, route, status] = (
                metrics.REQUESTS.labels(method, route, status),
                metrics.LATENCY.labels(method, route, status))
        series[0].inc()
        series[1].observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("request", extra={
                "request_id": request_id, "method": method, "route": route,
                "status": int(status) if status.isdigit() else 0,
                "duration_ms": round(seconds * 1000, 3),
                "api_key": environ.get(KEY_NAME),
                "remote_addr": environ.get("REMOTE_ADDR")})
        return body


def _note(response: Response) -> Response:
    """Tell the middleware the route template and the API key's name."""
    rule = request.url_rule
    environ = request.environ
    environ[ROUTE] = rule.rule if rule is not None else metrics.UNMATCHED
    key = g.get("api_key")
    if key is not None:
        environ[KEY_NAME] = key.name
    return response


def init_app(app: Flask) -> None:
    """Observe every request `app` answers, and serve `/metrics`."""
    metrics.init_app(app)
    app.after_request(_note)
    app.wsgi_app = Observed(app.wsgi_app)  # type: ignore[method-assign]
