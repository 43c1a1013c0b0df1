"""Errors as `application/problem+json` (RFC 9457), whatever raised them.

Validation problems carry `errors`: an object from field path (`recovery.date`,
`doses.1.date`) to messages. Engine domain errors become 422 naming the protocol rule.
"""

from __future__ import annotations

import http
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import marshmallow as ma
from flask import Flask, Response, current_app
from flask_smorest import Api, Blueprint
from flask_smorest.spec import prepare_response
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeout
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException, InternalServerError

from api.http import jsonbody, metrics
from api.usecases.common import AlreadyEnrolled, NotFound, NothingToChange, StaleVersion
from scheduler import ScheduleInputError
from scheduler.history import HistoryConflict

PROBLEM_JSON = "application/problem+json"
INVALID_INPUT = "urn:trial-schedule:problem:invalid-input"
PROTOCOL_RULE = "urn:trial-schedule:problem:protocol-rule"
HISTORY_CONFLICT = "urn:trial-schedule:problem:history-conflict"
RETRY_AFTER_SECONDS = 5


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem detail."""

    type = ma.fields.String(required=True, metadata={
        "description": "A URI naming the kind of problem; `about:blank` for plain HTTP errors"})
    title = ma.fields.String(required=True, metadata={"description": "Short summary"})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status"})
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong here"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Field path (`recovery.date`, `doses.1.date`) to messages"})
    existing_id = ma.fields.String(metadata={
        "description": "On a duplicate enrolment: the participant already enrolled (see the "
                       "Location header)"})


View = TypeVar("View", bound=Callable[..., Any])


def problem_answers(blueprint: Blueprint, descriptions: Mapping[int, str]) \
        -> Callable[..., Callable[[View], View]]:
    """`errors(401, 404)`: a decorator documenting the problem answers (RFC 9457) a view of
    `blueprint` can give, each with its description from `descriptions`."""
    def errors(*statuses: int) -> Callable[[View], View]:
        def decorate(view: View) -> View:
            for status in statuses:
                view = blueprint.alt_response(status, description=descriptions[status],
                                              schema=ProblemSchema,
                                              content_type=PROBLEM_JSON)(view)
            return view
        return decorate
    return errors


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict as flat field paths.

    >>> flatten({"recovery": {"date": ["Not a valid date."]}, "doses": {1: {"cycle": ["x"]}}})
    {'recovery.date': ['Not a valid date.'], 'doses.1.cycle': ['x']}
    """
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten(value, path))
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_body": list(messages)}
    return {prefix or "_body": [str(messages)]}


def detail_of(errors: Mapping[str, list[str]]) -> str:
    """One sentence naming every field and what is wrong with it, each message once, joined
    without doubled punctuation.

    >>> detail_of({"a": ["Unknown field."], "b": ["Too long.", "Not a code."]})
    'a: Unknown field; b: Too long; b: Not a code'
    """
    return "; ".join(f"{path}: {message.rstrip('.')}" for path, messages in errors.items()
                     for message in messages)


def problem(status: int, title: str, detail: str, type_: str = "about:blank",
            errors: Mapping[str, list[str]] | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = dict(errors)
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def domain_problem(error: ScheduleInputError, field_names: Mapping[str, str] | None = None) \
        -> Response:
    """Impossible facts: 422, each message naming the protocol rule it breaks."""
    errors: dict[str, list[str]] = {}
    for item in error.errors:
        path = (field_names or {}).get(item.field, item.field)
        errors.setdefault(path, []).append(f"{item.message} (rule {item.rule})")
    return problem(422, "The facts contradict the protocol", detail_of(errors), PROTOCOL_RULE,
                   errors)


class StrictParser(FlaskParser):
    """Unknown query parameters are rejected like unknown body fields (docs/api-decisions.md)."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {  # noqa: RUF012 (as webargs has it)
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": ma.RAISE, "querystring": ma.RAISE}

    def _raw_load_json(self, req: Any) -> Any:
        """The body through the strict reader (api/http/jsonbody.py): 400 for duplicate keys,
        deep nesting or endless numbers, as for any JSON that does not parse."""
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        try:
            return jsonbody.loads(data)
        except jsonbody.BadJson as error:
            abort(400, exc=error, messages={"json": [str(error)]})


Blueprint.ARGUMENTS_PARSER = StrictParser()


class ProblemApi(Api):
    """flask-smorest's Api, answering and documenting every error as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        """Document every status's error response as problem+json (flask-smorest documents
        them as application/json)."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not 100 <= status < 200 and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        default: dict[str, Any] = {"description": "Any other error", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_JSON)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:
        return http_problem(error)


def http_problem(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = {name: value for name, value in error.get_headers() if name.lower() not in (
        "content-type", "content-length")}
    headers.update(data.get("headers") or {})
    messages = data.get("errors") or data.get("messages")
    if messages is not None:
        # webargs nests messages under the request location (json, query, headers).
        if isinstance(messages, Mapping) and len(messages) == 1 and \
                next(iter(messages)) in ("json", "query", "headers", "form", "files"):
            messages = next(iter(messages.values()))
        if isinstance(messages, list):  # about the body as a whole, e.g. not JSON at all
            return problem(status, error.name, " ".join(map(str, messages)), headers=headers)
        errors = flatten(messages)
        return problem(status, "The request is not valid", detail_of(errors), INVALID_INPUT,
                       errors, headers)
    detail = data.get("message") or error.description or error.name
    if status == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        detail = f"The request body is larger than {limit} bytes."
    return problem(status, error.name, str(detail), headers=headers)


def init_app(app: Flask) -> None:
    """Errors raised outside flask-smorest's reach also answer as problems."""

    @app.errorhandler(ScheduleInputError)
    def _impossible_facts(error: ScheduleInputError) -> Response:
        return domain_problem(error)

    @app.errorhandler(HistoryConflict)
    def _conflict(error: HistoryConflict) -> Response:
        item = error.error
        message = f"{item.message} (rule {item.rule})"
        return problem(409, "The event contradicts the recorded history",
                       f"{item.field}: {message}", HISTORY_CONFLICT, {item.field: [message]})

    @app.errorhandler(AlreadyEnrolled)
    def _enrolled(error: AlreadyEnrolled) -> Response:
        """The duplicate's 409 names the participant already enrolled, and links to it."""
        item = error.error
        location = f"/v1/participants/{error.existing_id}"
        body = {"type": HISTORY_CONFLICT, "title": "The participant is already enrolled",
                "status": 409, "detail": f"{item.field}: {item.message} (rule {item.rule})",
                "errors": {item.field: [item.message]}, "existing_id": error.existing_id}
        response = Response(json.dumps(body, ensure_ascii=False), status=409,
                            mimetype=PROBLEM_JSON)
        response.headers["Location"] = location
        return response

    @app.errorhandler(NotFound)
    def _not_found(_: NotFound) -> Response:
        return problem(404, "Not Found", "No participant with that id.")

    @app.errorhandler(NothingToChange)
    def _nothing_to_change(_: NothingToChange) -> Response:
        message = "Every field sent already has that value: there is nothing to correct."
        return problem(422, "The request is not valid", message, INVALID_INPUT,
                       {"_body": [message]})

    @app.errorhandler(StaleVersion)
    def _stale(_: StaleVersion) -> Response:
        return problem(412, "Precondition Failed", "The participant changed since the ETag "
                       "in If-Match: fetch it again and retry.")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(SqlTimeout)
    def _database_unavailable(error: Exception) -> Response:
        # Only the kind of failure: a statement's text or values (free-text reasons) stay out.
        cause = getattr(error, "orig", None) or error
        app.logger.error("database unavailable: %s", type(cause).__name__)
        metrics.database_error(type(cause).__name__)
        return problem(503, "Service Unavailable", "The database cannot be reached; nothing "
                       "was changed by this request. Retry in a little while.",
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.errorhandler(IntegrityError)
    def _concurrent(_: IntegrityError) -> Response:
        return problem(409, "Conflict", "A concurrent write got there first; nothing was "
                       "changed by this request. Fetch the resource again and retry.",
                       HISTORY_CONFLICT)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return http_problem(error)
        app.logger.exception("unhandled error")
        return http_problem(InternalServerError())

