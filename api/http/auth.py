"""Bearer API keys. Each view that needs one says so once, with `@requires(scope)`: that
declares its security requirement in the OpenAPI document, and `authenticate` enforces it
before the request is parsed. read < write < admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_smorest import Blueprint
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from api.http.context import container
from api.usecases.api_keys import Scope, covers

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
SCOPE_ATTRIBUTE = "required_scope"
View = TypeVar("View", bound=Callable[..., Any])


def requires(scope: Scope) -> Callable[[View], View]:
    """The view needs an API key of at least `scope`."""
    def decorate(view: View) -> View:
        documented: View = Blueprint.doc(security=SECURITY)(view)
        setattr(documented, SCOPE_ATTRIBUTE, scope)
        return documented
    return decorate


def required_scope() -> Scope | None:
    """The scope the view about to answer declares; None for an open one. HEAD is answered by
    GET. OPTIONS asks what a protected view allows: it needs `read`, or `admin` on a view
    only admin keys may use."""
    if request.endpoint is None:
        return None
    view = current_app.view_functions[request.endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return _declared(view)
    if request.method == "OPTIONS":
        declared = [s for s in (_declared(getattr(view_class, m.lower(), None))
                                for m in sorted(view_class.methods or ())) if s is not None]
        if not declared:
            return None
        return "admin" if set(declared) == {"admin"} else "read"
    handler = getattr(view_class, request.method.lower(), None)
    if handler is None and request.method == "HEAD":
        handler = getattr(view_class, "get", None)
    return _declared(handler)


def _declared(view: object) -> Scope | None:
    scope: Scope | None = getattr(view, SCOPE_ATTRIBUTE, None)
    return scope


def authenticate() -> None:
    """Before a protected view: 401 without a valid key, 403 with too small a scope."""
    if request.routing_exception is not None:
        return
    needed = required_scope()
    if needed is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    keys = container().api_keys
    key = keys.authenticate(presented.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized("A valid API key is required: Authorization: Bearer <key>.",
                           www_authenticate=WWWAuthenticate("bearer"))
    if not covers(key.scope, needed):
        raise Forbidden(f"This needs an API key with scope '{needed}'; this key has "
                        f"'{key.scope}'.")
    g.api_key = key
