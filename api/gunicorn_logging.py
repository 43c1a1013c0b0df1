"""gunicorn's logger, with credentials cut out and control characters escaped in every value.

The URL of a feed is its credential, so it must never reach a log: anything under `/feeds/`
(also `/feeds//TOKEN.ics` and other typos) and any long token-shaped path segment anywhere (a
token pasted under the wrong path) is logged as `[token]`. Paths are logged decoded, so `%0d%0a`
arrives as CR LF: every control character is written as `\\xNN`, so no value can forge a log
line or drive a terminal.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from gunicorn.glogging import Logger

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


class _CleanRecords(logging.Filter):
    """Applies `clean` to the error log's messages (gunicorn quotes bad request lines there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = clean(record.getMessage()), None
        return True


class RedactingLogger(Logger):  # type: ignore[misc]
    logged: frozenset[str] = frozenset()

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The atoms the access log format writes: only those need cleaning (each request
        # carries dozens of atoms, one per header and environ variable).
        named = re.findall(r"%\(([^)]+)\)", cfg.access_log_format or "")
        self.logged = frozenset(named + [name.lower() for name in named])  # {Header}i: any case
        if not any(isinstance(f, _CleanRecords) for f in self.error_log.filters):
            self.error_log.addFilter(_CleanRecords())
        from api import logs  # here: api.logs imports this module's redact

        if logs.log_format(os.environ) == "json":
            # gunicorn's own records as JSON lines too, and the app's through the root logger.
            for handler in self.error_log.handlers:
                handler.setFormatter(logs.json_formatter())
            logs.configure(os.environ)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name in self.logged & atoms.keys():
            if isinstance(atoms[name], str):
                atoms[name] = clean(atoms[name])
        return atoms
