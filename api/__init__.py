"""The HTTP service: `create_app()` builds it; views translate HTTP to engine calls."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import auth, calculator, ops, participants, problems
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
    app.extensions["trial_schedule_participants"] = Participants(engine, service.protocol,
                                                                 service.site)
    app.extensions["trial_schedule_keys"] = ApiKeys(engine)
    problems.init_app(app)
    api = problems.ProblemApi(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(calculator.blp)
    api.register_blueprint(participants.blp)
    app.register_blueprint(ops.blp)
    app.before_request(auth.authenticate)
    app.before_request(require_json_body)
    app.extensions["trial_schedule_api"] = api
    return app


def require_json_body() -> None:
    """A body sent to the API must be JSON: anything else is 415, before any parsing."""
    from flask import request
    from werkzeug.exceptions import UnsupportedMediaType

    if request.routing_exception is not None:
        return  # 404 and 405 come first: there is no endpoint to send a body to
    sends_body = request.method in ("POST", "PUT", "PATCH")
    if sends_body and request.path.startswith("/v1/") and not request.is_json:
        raise UnsupportedMediaType("The request body must be application/json.")
