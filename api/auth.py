"""Bearer API keys on everything under /v1/participants and /v1/site.

read < write < admin: GET needs read, POST and PATCH need write, the site feed token admin.
"""

from __future__ import annotations

from flask import current_app, g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from api.services import SCOPES, ApiKeys

PROTECTED = ("/v1/participants", "/v1/site")
ADMIN_PATHS = ("/v1/site",)


def required_scope() -> str:
    if request.path.startswith(ADMIN_PATHS):
        return "admin"
    return "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"


def authenticate() -> None:
    """Before any protected request: 401 without a valid key, 403 with too small a scope."""
    if request.routing_exception is not None or not request.path.startswith(PROTECTED):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    keys: ApiKeys = current_app.extensions["trial_schedule_keys"]
    key = keys.authenticate(presented.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized("A valid API key is required: Authorization: Bearer <key>.",
                           www_authenticate=WWWAuthenticate("bearer"))
    needed = required_scope()
    if SCOPES.index(key.scope) < SCOPES.index(needed):
        raise Forbidden(f"This needs an API key with scope '{needed}'; this key has "
                        f"'{key.scope}'.")
    g.api_key = key


def actor() -> str:
    """Who is recording: the API key's name."""
    return str(g.api_key.name)
