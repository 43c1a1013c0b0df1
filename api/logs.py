"""Logs as text (the default, what `make run` prints) or as one JSON object per line.

`TRIAL_SCHEDULE_LOG_FORMAT=json` is for a log shipper (journald to Loki, Elasticsearch, ...):
every record, gunicorn's own and the app's, is one JSON object on one line with `time` (RFC
3339, UTC), `level`, `logger` and `message`, and the per-request record of
`trial_schedule.access` (`api.http.observe`) adds `request_id`, `method`, `route`, `status`,
`duration_ms`, `api_key` (the key's name) and `remote_addr`. It replaces gunicorn's text
access log, which cannot know the route or the key.

What must never be logged stays out in both formats: a token (feed paths are redacted by
`redact` below, and the access record names the route template, not the
path), an API key (only its name), free text from a request (no body or query string is
logged). JSON escapes every control character, so no value can forge a line.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import IO

from pythonjsonlogger.json import JsonFormatter

# A path segment under /feeds (after an optional site/), however it is spelled.
FEED_SEGMENT = re.compile(r"(/feeds(?:/+site)?/+)([^/?#\s\"]+?)(\.ics)?(?=[/?#\s\"]|$)")
# A long run of token characters filling a whole path segment. Canonical UUIDs (participant and
# event ids, which are not credentials) stay readable.
LONG_SEGMENT = re.compile(r"(?<=/)([A-Za-z0-9._~%+=-]{20,}?)(\.ics)?(?=[/?#\s\"]|$)")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _long(match: re.Match[str]) -> str:
    if UUID.fullmatch(match.group(1)):
        return match.group(0)
    return "[token]" + (match.group(2) or "")


def redact(text: str) -> str:
    """Feed tokens and long token-shaped segments replaced by `[token]`.

    >>> redact("GET /feeds/site/abc.def.ics HTTP/1.1")
    'GET /feeds/site/[token].ics HTTP/1.1'
    >>> redact("GET /feeds//abc.def.ics HTTP/1.1")
    'GET /feeds//[token].ics HTTP/1.1'
    >>> redact("/v1/0123456789abcdef0123456789abcdef.k/x")
    '/v1/[token]/x'
    >>> redact("/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/events")
    '/v1/participants/3f2b8c1e-7a4d-4e2b-9c1a-5d6e7f8a9b0c/events'
    """
    text = FEED_SEGMENT.sub(lambda m: f"{m.group(1)}[token]{m.group(3) or ''}", text)
    return LONG_SEGMENT.sub(_long, text)


def escape(text: str) -> str:
    r"""Control characters as \xNN, so a value stays on its line and inert.

    >>> print(escape("/a\r\nforged 200\x1b[2J"))
    /a\x0d\x0aforged 200\x1b[2J
    """
    return CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def clean(text: str) -> str:
    return escape(redact(text))


SETTING = "TRIAL_SCHEDULE_LOG_FORMAT"
FORMATS = ("text", "json")


def log_format(environ: Mapping[str, str]) -> str:
    """`text` (default) or `json`; anything else is refused at start-up.

    >>> log_format({}), log_format({SETTING: "JSON"})
    ('text', 'json')
    """
    value = (environ.get(SETTING) or "text").strip().lower()
    if value not in FORMATS:
        raise ValueError(f"{SETTING} must be text or json, not {value!r}")
    return value


class _Redacted(logging.Filter):
    """Feed tokens and token-shaped path segments cut out of every message (gunicorn quotes a
    refused request line in its error log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object per record: time (UTC, RFC 3339), level, logger, message, and every
    field passed in `extra`."""
    formatter = JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                              rename_fields={"asctime": "time", "levelname": "level",
                                             "name": "logger"})
    formatter.converter = time.gmtime
    formatter.default_time_format, formatter.default_msec_format = "%Y-%m-%dT%H:%M:%S", \
        "%s.%03dZ"
    return formatter


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing JSON lines to `stream` (standard error), redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(_Redacted())
    return handler


def configure(environ: Mapping[str, str], stream: IO[str] | None = None) -> str:
    """Set up the process's logging for the format `environ` asks for, and return it. For
    JSON: one handler on the root logger (so Flask adds no text handler of its own), INFO and
    above, the access record on. For text nothing changes."""
    chosen = log_format(environ)
    if chosen == "json":
        root = logging.getLogger()
        if not any(getattr(h, "trial_schedule_json", False) for h in root.handlers):
            handler = json_handler(stream)
            handler.trial_schedule_json = True  # type: ignore[attr-defined]
            root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.getLogger("trial_schedule.access").setLevel(logging.INFO)
    return chosen
