"""The HTTP service: `create_app()` builds it; views translate HTTP to engine calls."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from api import auth, calculator, feeds, ops, participants, problems, web
from api.feed_service import FeedLinks, Feeds
from api.persistence.database import create_db_engine, default_url
from api.service import Service
from api.services import ApiKeys, Participants
from scheduler import load_protocol, load_site

MAX_BODY_BYTES = 64 * 1024

DEFAULTS: dict[str, Any] = {
    "API_TITLE": "trial-schedule",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.1.0",
    "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
    "PROTOCOL_FILE": None,
    "SITE_FILE": None,
    "DATABASE_URL": None,
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    "FEED_SECRET": None,
    "SITE_FEED_DIR": None,
    "API_SPEC_OPTIONS": {
        "info": {"description": "Dosing and visit schedules for trial NCT07064876: "
                                "cryoablation followed by serplulimab. Errors are "
                                "application/problem+json (RFC 9457)."},
    },
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory. Settings come from `DEFAULTS`, then `DATABASE_URL` and
    `TRIAL_SCHEDULE_*` environment variables (e.g. `TRIAL_SCHEDULE_PROTOCOL_FILE`), then
    `config`. Without a database URL the embedded SQLite file in the instance folder is used."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    if os.environ.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
    app.config.from_prefixed_env("TRIAL_SCHEDULE")
    app.config.update(config or {})
    app.json.sort_keys = False  # type: ignore[attr-defined]
    service = Service(load_protocol(app.config["PROTOCOL_FILE"]),
                      load_site(app.config["SITE_FILE"]))
    engine = create_db_engine(app.config["DATABASE_URL"] or default_url(app.instance_path))
    app.extensions["trial_schedule"] = service
    app.extensions["trial_schedule_engine"] = engine
    stored = Participants(engine, service.protocol, service.site)
    calendars = Feeds(stored, FeedLinks(feed_secret(app), app.config["PUBLIC_BASE_URL"]))
    if app.config.get("SITE_FEED_DIR"):
        calendars.site_dir = Path(app.config["SITE_FEED_DIR"])
    stored.issue_feed_token = calendars.issue_for_enrolment
    app.extensions["trial_schedule_participants"] = stored
    app.extensions["trial_schedule_feeds"] = calendars
    app.extensions["trial_schedule_keys"] = ApiKeys(engine)
    problems.init_app(app)
    api = problems.ProblemApi(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(calculator.blp)
    api.register_blueprint(participants.blp)
    api.register_blueprint(feeds.blp)
    api.register_blueprint(feeds.admin)
    app.register_blueprint(ops.blp)
    app.before_request(auth.authenticate)
    app.before_request(require_json_body)
    app.extensions["trial_schedule_api"] = api
    web.init_app(app)  # the coordinator pages, sign-in and their extensions
    return app


def feed_secret(app: Flask) -> bytes:
    """The key feed tokens are derived under: `TRIAL_SCHEDULE_FEED_SECRET`, or a random one
    kept in the instance folder (every worker and node serving one database must share it)."""
    if app.config["FEED_SECRET"]:
        return str(app.config["FEED_SECRET"]).encode()
    path = Path(app.instance_path) / "feed-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(handle, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def require_json_body() -> None:
    """A body sent to the API must be JSON: anything else is 415, before any parsing. (A
    POST without a body, such as rotating a feed token, needs no content type.)"""
    from flask import request
    from werkzeug.exceptions import UnsupportedMediaType

    if request.routing_exception is not None:
        return  # 404 and 405 come first: there is no endpoint to send a body to
    sends_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "")
    if sends_body and request.path.startswith("/v1/") and not request.is_json:
        raise UnsupportedMediaType("The request body must be application/json.")
