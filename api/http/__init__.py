"""The HTTP entry point: views that turn requests into use-case calls and answers into JSON,
problem details or calendars. `install` puts it on a Flask app with its container."""

from __future__ import annotations

from typing import Any

from flask import Flask, has_request_context, request
from werkzeug.exceptions import UnsupportedMediaType

from api.http import (
    auth,
    calculator,
    context,
    feeds,
    hot,
    ops,
    participants,
    problems,
    webhooks,
    worklist,
)
from api.http.csv_export import blp as csv_blp
from api.http.fhir import blp as fhir_blp
from api.http.json_answers import JsonAnswers
from api.http.odm import blp as odm_blp
from api.usecases.container import Container

MAX_BODY_BYTES = 64 * 1024

DEFAULTS: dict[str, Any] = {
    "API_TITLE": "trial-schedule",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.1.0",
    "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
    "API_SPEC_OPTIONS": {
        "info": {"description": "Dosing and visit schedules for trial NCT07064876: "
                                "cryoablation followed by serplulimab. Errors are "
                                "application/problem+json (RFC 9457).",
                 # Who answers for this service: the site team, not a published address.
                 "contact": {"name": "NCT07064876 study team, Zhongshan Hospital, Shanghai"}},
    },
}


def install(app: Flask, container: Container | None) -> problems.ProblemApi:
    """Register the views, error handlers and request checks on `app`, and `container` as
    what they call (None only to document the API, never to serve it)."""
    app.json = JsonAnswers(app)
    if container is not None:
        context.register(app, container)
    problems.init_app(app)
    api = problems.ProblemApi(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(calculator.blp)
    api.register_blueprint(participants.blp)
    api.register_blueprint(feeds.blp)
    api.register_blueprint(feeds.admin)
    api.register_blueprint(worklist.blp)
    for interop in (fhir_blp, odm_blp, csv_blp):  # FHIR, CDISC ODM and CSV exports
        api.register_blueprint(interop)
    api.register_blueprint(webhooks.blp)
    app.register_blueprint(ops.blp)
    app.before_request(api_checks)
    if container is not None:
        # The hot reads (a cached schedule, a feed's 304 or cached body) are answered before
        # Flask; everything else, and every miss, goes on to the views.
        app.wsgi_app = hot.HotReads(app.wsgi_app, container)  # type: ignore[method-assign]
    return api


def api_checks() -> None:
    """The API's checks before a view: its API key, then its body. The feeds need neither
    (the URL is the credential, a GET has no body), and skip them."""
    if request.endpoint in feeds.LEAN_ENDPOINTS:
        return
    auth.authenticate()
    require_json_body()


def request_base_url() -> str | None:
    """The scheme and host the current request came to (a trusted proxy's X-Forwarded-* when
    the deployment trusts one, applied to the environ by ProxyFix), for links; None outside a
    request. A feed asks for it on every request (its SOURCE and ETag name its own URL), and
    werkzeug builds `host_url` afresh each time (tens of microseconds, a third of a 304), so
    it is kept by what it is made of (`hot.BASES`, which the hot reads look in)."""
    if not has_request_context():
        return None
    environ = request.environ
    found = hot.BASES.get(environ)
    if found is None:
        found = request.host_url
        hot.BASES.put(environ, found)
    return found


def require_json_body() -> None:
    """A body sent to the API must be JSON: anything else is 415, before any parsing. (A
    POST without a body, such as rotating a feed token, needs no content type.)"""
    if request.routing_exception is not None:
        return  # 404 and 405 come first: there is no endpoint to send a body to
    sends_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "")
    if sends_body and request.path.startswith("/v1/") and not request.is_json:
        raise UnsupportedMediaType("The request body must be application/json.")
