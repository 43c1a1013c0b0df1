"""Protocol versions, the screening date and discontinuation reason codes through the API."""

from __future__ import annotations

import pytest

V1, V2, V3 = "2025-09-15.1", "2026-11-25.2", "2026-12-04.3"
ENROL = {"subject_code": "ZS-001", "cryoablation_date": "2026-03-02",
         "screening_date": "2026-02-20"}


@pytest.fixture
def enrol_body():
    return ENROL


def events_of(participant):
    return f"/v1/participants/{participant['id']}/events"


def test_a_participant_shows_its_protocol_version_and_screening_date(client, writer,
                                                                   participant):
    assert participant["protocol"] == {"id": "NCT07064876", "version": V3}
    assert participant["screening_date"] == "2026-02-20"
    listed = client.get("/v1/participants", headers=writer).get_json()["items"]
    assert [p["protocol"]["version"] for p in listed] == [V3]


def test_patch_corrects_the_screening_date(client, writer, participant):
    response = client.patch(f"/v1/participants/{participant['id']}", headers={
        **writer, "If-Match": '"v1"'}, json={"screening_date": "2026-02-18", "reason": "CRF"})
    assert response.status_code == 200
    assert response.get_json()["screening_date"] == "2026-02-18"
    history = client.get(events_of(participant), headers=writer).get_json()["items"]
    assert history[-1]["changes"] == ["screening_date: 2026-02-20 -> 2026-02-18"]


def test_discontinued_takes_a_reason_code_defaulting_to_other(client, writer, participant):
    for body in ({"type": "recovery_confirmed", "date": "2026-03-09"},
                 {"type": "dose_given", "cycle": 1, "date": "2026-03-09"}):
        assert client.post(events_of(participant), json=body, headers=writer).status_code == 201
    bad = client.post(events_of(participant), headers=writer, json={
        "type": "discontinued", "date": "2026-03-20", "reason": "rash", "reason_code": "bored"})
    assert bad.status_code == 422
    assert list(bad.get_json()["errors"]) == ["reason_code"]
    plain = client.post(events_of(participant), headers=writer, json={
        "type": "discontinued", "date": "2026-03-20", "reason": "rash"})
    assert plain.status_code == 201
    assert plain.get_json()["event"]["reason_code"] == "other"
    listed = client.get(events_of(participant), headers=writer).get_json()["items"]
    assert listed[-1]["reason_code"] == "other"


def test_a_progression_code_is_stored_and_read_back(client, writer, participant):
    for body in ({"type": "recovery_confirmed", "date": "2026-03-09"},
                 {"type": "dose_given", "cycle": 1, "date": "2026-03-09"},
                 {"type": "discontinued", "date": "2026-04-20", "reason": "CT",
                  "reason_code": "progression"}):
        assert client.post(events_of(participant), json=body, headers=writer).status_code == 201
    listed = client.get(events_of(participant), headers=writer).get_json()["items"]
    assert listed[-1]["reason_code"] == "progression"


def test_a_version_change_needs_its_fields_and_a_known_version(client, writer, participant):
    missing = client.post(events_of(participant), headers=writer,
                          json={"type": "protocol_version_changed", "reason": "amendment"})
    assert missing.status_code == 422
    assert missing.get_json()["errors"] == {
        "version": ["Required for a protocol_version_changed event."]}
    unknown = client.post(events_of(participant), headers=writer, json={
        "type": "protocol_version_changed", "version": "2099-01-01.9", "reason": "typo"})
    assert unknown.status_code == 422
    assert list(unknown.get_json()["errors"]) == ["version"]
    same = client.post(events_of(participant), headers=writer, json={
        "type": "protocol_version_changed", "version": V3, "reason": "again"})
    assert same.status_code == 409
    moved = client.post(events_of(participant), headers=writer, json={
        "type": "protocol_version_changed", "version": V1, "reason": "site stays on v1"})
    assert moved.status_code == 201
    assert moved.get_json()["schedule"]["protocol"]["version"] == V1
    assert moved.headers["ETag"] == '"v2"'
    shown = client.get(f"/v1/participants/{participant['id']}", headers=writer).get_json()
    assert shown["protocol"]["version"] == V1
