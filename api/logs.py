"""Logs as text (the default, what `make run` prints) or as one JSON object per line.

`TRIAL_SCHEDULE_LOG_FORMAT=json` is for a log shipper (journald to Loki, Elasticsearch, ...):
every record, gunicorn's own and the app's, is one JSON object on one line with `time` (RFC
3339, UTC), `level`, `logger` and `message`, and the per-request record of
`trial_schedule.access` (`api.http.observe`) adds `request_id`, `method`, `route`, `status`,
`duration_ms`, `api_key` (the key's name) and `remote_addr`. It replaces gunicorn's text
access log, which cannot know the route or the key.

What must never be logged stays out in both formats: a token (feed paths are redacted by
`api.gunicorn_logging.redact`, and the access record names the route template, not the
path), an API key (only its name), free text from a request (no body or query string is
logged). JSON escapes every control character, so no value can forge a line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from api.gunicorn_logging import redact

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
