"""Every endpoint that takes JSON, a query, a path id, a token or a precondition, fed hostile
strings (NUL, control characters, lone surrogates, very long ones), deep nesting and endless
numbers, on every configured database: no answer is a 5xx, and every refusal is a problem."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.db.conftest import bearer

PROBLEM = "application/problem+json"
ENROL = {"subject_code": "ZS-HOSTILE", "cryoablation_date": "2026-03-02"}

hostile_text = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(max_codepoint=0x20), max_size=6),
    st.sampled_from(["\x00", "a\x00b", "ZS-DUP\n", "\ud800", "\udfff x", "\x1b[31m", "\u202e",
                     "2026-03-02\n", "20260302", "2026-W10-1", "0001-01-01", "9999-12-31",
                     "1:2026-03-09", "1=2026-03-09", "v1", "*", "x" * 600, "é" * 300]),
)
hostile_number = st.one_of(
    st.integers(), st.integers(min_value=-(10 ** 60), max_value=10 ** 60),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0, -1, 99, 100, 2 ** 63]),
)
scalar = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text)
field_names = st.one_of(hostile_text, st.sampled_from([
    "type", "date", "cycle", "reason", "description", "event_id", "subject_code",
    "cryoablation_date", "childbearing_potential", "lookbacks", "recovery", "doses", "status",
    "discontinuation", "as_of", "live_vaccine", "other_trial_half_life_days"]))
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(field_names, inner, max_size=5), max_leaves=15)
event_types = st.sampled_from(["recovery_confirmed", "complication", "dose_given",
                               "dose_skipped", "discontinued", "correction"])
shaped_event = st.fixed_dictionaries({"type": event_types}, optional={
    "date": st.one_of(st.dates().map(str), hostile_text, hostile_number),
    "cycle": st.one_of(st.integers(0, 8), hostile_number, hostile_text),
    "reason": hostile_text, "description": hostile_text, "event_id": hostile_text})
shaped_patch = st.fixed_dictionaries({}, optional={
    "subject_code": hostile_text, "cryoablation_date": st.one_of(st.dates().map(str),
                                                                 hostile_text),
    "childbearing_potential": scalar, "reason": hostile_text, "lookbacks": value})
shaped_enrolment = st.fixed_dictionaries({
    "subject_code": st.one_of(hostile_text, st.from_regex(r"\AZS-[0-9]{1,4}\Z")),
    "cryoablation_date": st.one_of(st.dates().map(str), hostile_text)},
    optional={"childbearing_potential": scalar, "lookbacks": value})


def nested(depth: int) -> str:
    return '{"reason": ' + "[" * depth + "]" * depth + "}"


raw_bodies = st.one_of(
    st.integers(30, 3_000).map(nested),
    st.integers(35, 6_000).map(lambda digits: '{"cycle": ' + "7" * digits + "}"),
    st.just('{"type": "dose_given", "type": "dose_given"}'),
    st.just('{"reason": NaN}'),
    st.just('{"reason": "\\ud800"}'),
    st.binary(max_size=20).map(lambda raw: raw.decode("latin-1")),
)
raw = st.builds(lambda text: ("raw", text), raw_bodies)
bodies = st.one_of(value, shaped_event, shaped_patch, shaped_enrolment, raw, raw)


def header_safe(text: str) -> str:
    """What a client can put in a header at all: latin-1, no line break."""
    return text.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace(
        "\n", "")


if_match = st.one_of(st.none(), st.just('"v' + "9" * 5_000 + '"'), st.just('W/"v1"'),
                     hostile_text.map(header_safe))
paths = st.sampled_from(["schedules", "enrol", "list", "participant", "patch", "events",
                         "history", "schedule", "rotate", "site-rotate", "feed", "site-feed",
                         "ics"])


def quoted(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


def send(client, headers: dict[str, str], participant_id: str, where: str, body: Any,
         text: str, precondition: str | None) -> Any:
    extra = dict(headers)
    if precondition is not None:
        extra["If-Match"] = precondition
    if isinstance(body, tuple):
        data = body[1].encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(body).encode()
    json_body = {"data": data, "content_type": "application/json"}
    own = f"/v1/participants/{participant_id}"
    other = f"/v1/participants/{quoted(text)}"
    if where == "schedules":
        return client.post("/v1/schedules", **json_body)
    if where == "enrol":
        return client.post("/v1/participants", headers=extra, **json_body)
    if where == "list":
        return client.get(f"/v1/participants?cursor={quoted(text)}&limit={quoted(text)}",
                          headers=extra)
    if where == "participant":
        return client.get(other, headers=extra)
    if where == "patch":
        return client.patch(own, headers=extra, **json_body)
    if where == "events":
        key = header_safe(text)[:300] or "k"
        return client.post(f"{own}/events", headers={**extra, "Idempotency-Key": key},
                           **json_body)
    if where == "history":
        return client.get(f"{other}/events", headers=extra)
    if where == "schedule":
        return client.get(f"{other}/schedule", headers=extra)
    if where == "rotate":
        return client.post(f"{other}/feed-token", headers=extra)
    if where == "site-rotate":
        return client.post("/v1/site/feed-token", headers=extra)
    if where == "feed":
        return client.get(f"/feeds/{quoted(text)}.ics")
    if where == "site-feed":
        return client.get(f"/feeds/site/{quoted(text)}.ics")
    return client.get(f"/v1/schedules.ics?cryoablation_date={quoted(text)}"
                      f"&dose_given={quoted(text)}&recovery_date={quoted(text)}")


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(where=paths, body=bodies, text=hostile_text, precondition=if_match)
def test_no_hostile_request_gets_a_server_error(db_app, keys, where, body, text, precondition):
    client = db_app.test_client()
    headers = bearer(keys["admin"])
    participant_id = getattr(db_app, "_hostile_participant", None)
    if participant_id is None:
        enrolled = client.post("/v1/participants", json=ENROL, headers=headers)
        participant_id = enrolled.get_json()["id"]
        db_app._hostile_participant = participant_id  # type: ignore[attr-defined]
    with send(client, headers, participant_id, where, body, text, precondition) as response:
        assert response.status_code < 500, (where, body, text, response.get_data(as_text=True))
        if response.status_code >= 400:
            assert response.content_type == PROBLEM, (where, response.status_code)


JSON_ENDPOINTS = ["schedules", "enrol", "patch", "events"]
HOSTILE_BODIES = {
    "nested 1,000 deep": nested(1_000),
    "an integer of 4,301 digits": '{"cycle": ' + "7" * 4_301 + "}",
    "a duplicate key": '{"reason": "a", "reason": "b"}',
    "NaN": '{"reason": NaN}',
    "a lone surrogate": '{"reason": "\\ud800"}',
}


@pytest.mark.parametrize("where", JSON_ENDPOINTS)
@pytest.mark.parametrize("kind", sorted(HOSTILE_BODIES))
def test_every_json_endpoint_answers_each_hostile_body_with_400(db_app, keys, where, kind):
    client = db_app.test_client()
    headers = bearer(keys["admin"])
    participant_id = client.post("/v1/participants", json=ENROL, headers=headers).get_json()["id"]
    response = send(client, headers, participant_id, where, ("raw", HOSTILE_BODIES[kind]), "k",
                    '"v1"')
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.content_type == PROBLEM


@pytest.mark.parametrize(("where", "body"), [
    ("schedules", {"cryoablation_date": "2026-03-02", "doses": [
        {"cycle": 1, "status": "skipped", "reason": "a\x00b"}]}),
    ("enrol", {"subject_code": "ZS\x00", "cryoablation_date": "2026-03-02"}),
    ("patch", {"childbearing_potential": True, "reason": "a\x00b"}),
    ("events", {"type": "dose_skipped", "cycle": 1, "reason": "a\x00b"}),
    ("events", {"type": "correction", "event_id": "a\x00b", "reason": "typo"}),
])
def test_nul_in_any_json_string_is_422(db_app, keys, where, body):
    client = db_app.test_client()
    headers = bearer(keys["admin"])
    participant_id = client.post("/v1/participants", json=ENROL, headers=headers).get_json()["id"]
    response = send(client, headers, participant_id, where, body, "k", '"v1"')
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
