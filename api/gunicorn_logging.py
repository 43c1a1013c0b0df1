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

from api import logs
from api.logs import clean


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
