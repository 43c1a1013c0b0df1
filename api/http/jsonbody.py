"""Request bodies parsed strictly: whatever the bytes, the answer is a value or `BadJson` (a
400), never an exception the service did not expect.

Python's own `json.loads` takes the last of two equal keys, recurses once per level of
nesting (RecursionError a little under 1,000 levels), raises a plain ValueError for an
integer of more than 4,300 digits and accepts `NaN` and `Infinity`. None of that reaches a view.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
# Strings are skipped whole, so a bracket inside one does not count as nesting.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class BadJson(ValueError):
    """The body is not JSON this service reads; the message says why, for the client."""


def _number(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadJson(f"A number in the body is longer than {MAX_NUMBER_CHARS} characters.")


def _int(text: str) -> int:
    _number(text)
    return int(text)


def _float(text: str) -> float:
    _number(text)
    return float(text)


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON number.")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise BadJson(f"The key {json.dumps(key)} appears twice in one object.")
        found[key] = value
    return found


def depth(data: bytes) -> int:
    """How deep arrays and objects nest in `data`, counted without recursion.

    >>> depth(b'{"a": [1, {"b": "[[["}]}')
    3
    """
    deepest = level = 0
    for match in _STRING_OR_BRACKET.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        elif token in (b"]", b"}"):
            level -= 1
    return deepest


def loads(data: bytes) -> Any:
    """The JSON value in `data`; BadJson if it is not JSON, nests deeper than MAX_DEPTH, holds
    a number longer than MAX_NUMBER_CHARS, NaN or Infinity, or repeats a key in one object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadJson("The request body is not UTF-8.") from error
    if depth(data) > MAX_DEPTH:
        raise BadJson(f"The body nests arrays and objects deeper than {MAX_DEPTH} levels.")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_int=_int,
                           parse_float=_float, parse_constant=_constant)
    except BadJson:
        raise
    except (ValueError, RecursionError) as error:
        raise BadJson("Invalid JSON body.") from error
    if "\\u" in text:
        try:  # an escaped lone surrogate (\ud800) is no character: no store or answer takes it
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as error:
            raise BadJson("The body holds a lone surrogate escape, which is no character.") \
                from error
    return value
