"""The OpenAPI document, generated from the views (`trial-schedule openapi`, `make openapi`).

flask-smorest documents the views; `finish` adds what it leaves out and two linters ask for
(`@redocly/cli lint`, `@stoplight/spectral-cli lint` with spectral:oas, both run by the test
suite): a server, an operationId on every operation, `security: []` on the open ones, the
conditional-request headers of every operation that can answer 304, and no unused components.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import yaml
from flask import Flask

from api import http

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SERVERS = [{"url": "http://127.0.0.1:8000",
            "description": "`make run` on this machine; behind a proxy, the site's address"}]
IF_NONE_MATCH = {"in": "header", "name": "If-None-Match", "required": False,
                 "description": "The ETag of a copy the client holds: 304 if it is current",
                 "schema": {"type": "string"}}
IF_MODIFIED_SINCE = {"in": "header", "name": "If-Modified-Since", "required": False,
                     "description": "The Last-Modified of a copy the client holds: 304 if "
                                    "nothing changed since",
                     "schema": {"type": "string"}}


def render_openapi() -> str:
    """The spec as YAML, keys in the order the code declares them. Documenting needs the views
    only: no database, feed secret or instance files."""
    app = Flask("api")
    app.config.from_mapping(http.DEFAULTS)
    api = http.install(app, None)
    with app.app_context():
        document = finish(api.spec.to_dict())
    header = "# Generated from the code by `make openapi`; a test fails when it drifts.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def operation_id(method: str, path: str) -> str:
    """A stable name from the method and path: a collection followed by an id is one item of
    it, `.ics` is a calendar, and a feed is named after whose it is.

    >>> operation_id("post", "/v1/participants/{participant_id}/events")
    'postParticipantEvents'
    >>> operation_id("get", "/v1/schedules.ics"), operation_id("get", "/feeds/site/{token}.ics")
    ('getSchedulesCalendar', 'getSiteFeed')
    """
    segments = [segment for segment in path.split("/") if segment and segment != "v1"]
    words: list[str] = []
    for index, segment in enumerate(segments):
        segment = re.sub(r"\{[^}]*\}\.ics$", "", segment).replace(".ics", ".calendar")
        if not segment or segment.startswith("{"):
            continue
        following = segments[index + 1] if index + 1 < len(segments) else ""
        if following.startswith("{") and segment.endswith("s"):
            segment = segment[:-1]  # /participants/{id}: one participant
        words += [word for word in re.split(r"[-_.]", segment) if word]
    if words[:2] == ["feeds", "site"]:
        words = ["site", "feed"]
    elif words[:1] == ["feeds"]:
        words = ["feed", *words[1:]]
    return method + "".join(word[:1].upper() + word[1:] for word in words)


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """Add servers, operationIds, `security: []` and conditional headers; drop components
    nothing refers to."""
    document = {key: value for key, value in document.items() if key != "servers"}
    ordered: dict[str, Any] = {}
    for key, value in document.items():
        ordered[key] = value
        if key == "info":
            ordered["servers"] = copy.deepcopy(SERVERS)
    seen: set[str] = set()
    for path, operations in ordered["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            name = operation_id(method, path)
            if name in seen:
                raise RuntimeError(f"two operations named {name}")
            seen.add(name)
            operation["operationId"] = name
            operation.setdefault("security", [])
            if "304" in operation.get("responses", {}):
                _conditional(operation, ordered.get("components", {}))
    _drop_unused(ordered)
    _one_lower_bound(ordered)
    return ordered


def _conditional(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """Declare If-None-Match, and If-Modified-Since where the answer has a Last-Modified."""
    parameters = operation.setdefault("parameters", [])
    names = set()
    for parameter in parameters:
        if "$ref" in parameter:
            parameter = components.get("parameters", {}).get(
                parameter["$ref"].rsplit("/", 1)[-1], {})
        names.add(parameter.get("name"))
    wanted = [IF_NONE_MATCH]
    ok = operation["responses"].get("200", {})
    if "Last-Modified" in ok.get("headers", {}):
        wanted.append(IF_MODIFIED_SINCE)
    parameters.extend(copy.deepcopy(header) for header in wanted if header["name"] not in names)


def _one_lower_bound(node: Any) -> None:
    """A schema with exclusiveMinimum keeps no `minimum` beside it (marshmallow's Range gives
    both for a bound that is not inclusive; the exclusive one is the true bound)."""
    if isinstance(node, dict):
        if "exclusiveMinimum" in node and "minimum" in node:
            del node["minimum"]
        for value in node.values():
            _one_lower_bound(value)
    elif isinstance(node, list):
        for value in node:
            _one_lower_bound(value)


REF = re.compile(r'"#/components/(\w+)/([^"]+)"')


def _drop_unused(document: dict[str, Any]) -> None:
    """Remove the components nothing outside `components` reaches, directly or through other
    components (flask-smorest adds some of its own, such as PaginationMetadata)."""
    components = document.get("components", {})
    outside = json.dumps({key: value for key, value in document.items() if key != "components"})
    pending = list(set(REF.findall(outside)))
    reached = set(pending)
    while pending:
        kind, name = pending.pop()
        for found in REF.findall(json.dumps(components.get(kind, {}).get(name, {}))):
            if found not in reached:
                reached.add(found)
                pending.append(found)
    for kind, entries in list(components.items()):
        if kind == "securitySchemes":
            continue
        for name in [name for name in entries if (kind, name) not in reached]:
            del entries[name]
        if not entries:
            del components[kind]
