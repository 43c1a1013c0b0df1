"""Operations: liveness, readiness and the committed OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, request

blp = Blueprint("ops", __name__)

OPENAPI_FILE = Path(__file__).resolve().parent.parent / "openapi.yaml"


@blp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return Response('{"status": "ok"}', mimetype="application/json")


@blp.get("/readyz")
def readyz() -> Response:
    """The service can answer: protocol and site loaded."""
    current_app.extensions["trial_schedule"].protocol.rule("study-period")
    return Response('{"status": "ready"}', mimetype="application/json")


@blp.get("/openapi.yaml")
def openapi_yaml() -> Response:
    """The committed OpenAPI document, served as it is."""
    body = OPENAPI_FILE.read_bytes()
    response = Response(body, mimetype="application/yaml")
    response.add_etag()
    return response.make_conditional(request)
