"""Operations: liveness, readiness and the committed OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from api.http import metrics
from api.http.context import container

blp = Blueprint("ops", __name__)

OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi.yaml"


@blp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return Response('{"status": "ok"}', mimetype="application/json")


@blp.get("/readyz")
def readyz() -> Response:
    """The service can answer: protocol and site loaded, database reachable."""
    services = container()
    services.protocol.rule("study-period")
    try:
        with services.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as error:
        metrics.database_error(type(getattr(error, "orig", None) or error).__name__)
        return Response('{"status": "database unreachable"}', status=503,
                        mimetype="application/json")
    return Response('{"status": "ready"}', mimetype="application/json")


@blp.get("/openapi.yaml")
def openapi_yaml() -> BaseResponse:
    """The committed OpenAPI document, served as it is."""
    body = OPENAPI_FILE.read_bytes()
    response = Response(body, mimetype="application/yaml")
    response.add_etag()
    return response.make_conditional(request)
