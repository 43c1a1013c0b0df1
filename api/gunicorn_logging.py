"""gunicorn's logger, with feed tokens cut out of access log lines: the URL is the credential."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

FEED_TOKEN = re.compile(r"(/feeds/(?:site/)?)[^/?\s\"]+(\.ics)")


def redact(text: str) -> str:
    """>>> redact("GET /feeds/site/abc.def.ics HTTP/1.1")
    'GET /feeds/site/[token].ics HTTP/1.1'
    """
    return FEED_TOKEN.sub(r"\1[token]\2", text)


class RedactingLogger(Logger):  # type: ignore[misc]
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "q", "f"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name])
        return atoms
