"""The JSON answers (api/http/json_answers.py): orjson writes them, and they mean what Flask's
own provider wrote, value for value."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from api.http.json_answers import JsonAnswers


def flasks_own(app: Flask, value: object) -> object:
    """What Flask's provider, as the service had it (key order kept), made of `value`."""
    provider = DefaultJSONProvider(app)
    provider.sort_keys = False
    return json.loads(provider.dumps(value))


@dataclasses.dataclass
class Point:
    x: int
    day: dt.date


def test_a_recorded_doses_answer_is_compact_json_with_flasks_values(db_app, client, writer,
                                                                   participant):
    events = f"/v1/participants/{participant['id']}/events"
    assert client.post(events, headers=writer, json={
        "type": "recovery_confirmed", "date": "2026-03-09"}).status_code == 201
    answer = client.post(events, headers=writer,
                         json={"type": "dose_given", "cycle": 1, "date": "2026-03-16"})
    assert answer.status_code == 201, answer.get_json()
    assert answer.mimetype == "application/json"
    body = answer.get_data()
    assert body.endswith(b"}\n") and b'": ' not in body and b'", "' not in body
    with db_app.app_context():
        assert json.loads(body) == flasks_own(db_app, answer.get_json())
    # The schemas' key order, as Flask's provider kept it with sort_keys off.
    assert list(json.loads(body)) == ["event", "schedule"]
    assert list(json.loads(body)["event"])[:2] == ["id", "seq"]


def test_values_orjson_leaves_to_flask_are_written_as_flask_writes_them(db_app):
    awkward = {
        "date": dt.date(2026, 3, 2),  # Flask: an HTTP date
        "time": dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.UTC),
        "point": Point(1, dt.date(2026, 3, 9)),
        "chinese": "冷冻消融后第 21 天",
        1: "an integer key",
        "huge": 2**70,  # beyond orjson's 64 bits: the standard library writes it
        "surrogate": "\ud800",  # not UTF-8: the standard library writes it escaped
    }
    with db_app.app_context():
        provider = JsonAnswers(db_app)
        for key, value in awkward.items():
            written = provider.response({key: value}).get_data()
            assert written.endswith(b"\n")
            assert json.loads(written) == flasks_own(db_app, {key: value}), key
    # Text outside ASCII in UTF-8, not as \u escapes; escaped when the standard library
    # writes the answer (here, for the integer beyond 64 bits).
    assert provider.encode({"chinese": awkward["chinese"]}) == \
        '{"chinese":"冷冻消融后第 21 天"}\n'.encode()
    assert b"\\u51b7" in provider.encode(awkward)


def test_debug_answers_are_indented_by_flasks_provider(db_app):
    with db_app.app_context():
        provider = JsonAnswers(db_app)
        provider.compact = False
        assert provider.response({"a": [1]}).get_data() == b'{\n  "a": [\n    1\n  ]\n}\n'
