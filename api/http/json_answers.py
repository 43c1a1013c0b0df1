"""The JSON answers of the API, written by orjson (Flask's JSON provider, `app.json`).

Every write answers with the participant's whole schedule (about 16 kB), and the standard
library's encoder took about 100 µs a write for it; orjson takes under 10. The answers mean
what they meant, written the same compact way as Flask's (no spaces, key order kept, one
newline at the end) with two differences, both plain JSON (RFC 8259): text outside ASCII is
sent as UTF-8 rather than as `\\u` escapes, and a number is written in orjson's shortest form
(`1e16` where the standard library wrote `1e+16`). What orjson leaves to Flask goes to Flask:
dates and times (`default`: an HTTP date, as before), dataclasses, and any value it cannot
write (an integer beyond 64 bits, text with a lone surrogate), which the standard library
writes as it did. In debug mode the answers are indented, by Flask's own provider.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

OPTIONS = (orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
           | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)


class JsonAnswers(DefaultJSONProvider):
    """Flask's provider, with orjson writing the compact answers."""

    sort_keys = False  # the order the schemas give, as every answer has had it

    def encode(self, value: Any) -> bytes:
        """`value` as the body of an answer: compact JSON and a newline, in UTF-8."""
        try:
            return orjson.dumps(value, default=self.default, option=OPTIONS)
        except orjson.JSONEncodeError:
            text = json.dumps(value, default=self.default, ensure_ascii=True,
                              separators=(",", ":"))
            return f"{text}\n".encode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)  # type: ignore[return-value]
        # The service's Flask app answers with flask's Response (no response_class of its own).
        return Response(self.encode(self._prepare_response_obj(args, kwargs)),
                        mimetype=self.mimetype)
