"""Stored participants through the API, on every configured database."""

from __future__ import annotations

import logging

import pytest

from api.http.context import container
from tests.db.conftest import bearer

ENROL = {"subject_code": "ZS-001", "cryoablation_date": "2026-03-02"}




def record(client, writer, participant, body, **headers):
    return client.post(f"/v1/participants/{participant['id']}/events", json=body,
                       headers={**writer, **headers})


def state_of(client, writer, participant):
    """Everything a write could change: the participant and its whole history."""
    path = f"/v1/participants/{participant['id']}"
    return (client.get(path, headers=writer).get_json(),
            client.get(f"{path}/events", headers=writer).get_json())


def test_enrol_record_correct_and_read_the_recomputed_schedule(client, writer, participant):
    path = f"/v1/participants/{participant['id']}"
    assert participant["version"] == 1 and participant["enrolled_by"] == "write-key"
    assert participant["links"]["schedule"] == f"{path}/schedule"
    assert client.get(f"{path}/schedule", headers=writer).get_json()["state"] == "provisional"

    assert record(client, writer, participant,
                  {"type": "recovery_confirmed", "date": "2026-03-09"}).status_code == 201
    assert record(client, writer, participant,
                  {"type": "dose_given", "cycle": 1, "date": "2026-03-09"}).status_code == 201
    wrong = record(client, writer, participant,
                   {"type": "dose_given", "cycle": 2, "date": "2026-04-03"})
    assert wrong.status_code == 201
    assert wrong.get_json()["schedule"]["visits"]
    correction = record(client, writer, participant, {
        "type": "correction", "event_id": wrong.get_json()["event"]["id"],
        "reason": "date entered wrongly"})
    assert correction.status_code == 201
    assert record(client, writer, participant,
                  {"type": "dose_given", "cycle": 2, "date": "2026-04-01"}).status_code == 201

    schedule = client.get(f"{path}/schedule", headers=writer).get_json()
    assert schedule["state"] == "scheduled"
    dates = {v["id"]: v["date"] for v in schedule["visits"]}
    assert (dates["C2D1"], dates["C3D1"]) == ("2026-04-01", "2026-04-22")

    history = client.get(f"{path}/events", headers=writer).get_json()["items"]
    assert [(e["seq"], e["type"]) for e in history] == [
        (1, "recovery_confirmed"), (2, "dose_given"), (3, "dose_given"), (4, "correction"),
        (5, "dose_given")]
    assert history[2]["voided_by"] == history[3]["id"]
    assert history[3]["event_id"] == history[2]["id"]
    assert history[3]["reason"] == "date entered wrongly"
    assert all(e["recorded_by"] == "write-key" and e["recorded_at"] for e in history)
    assert client.get(path, headers=writer).get_json()["version"] == 6


@pytest.mark.parametrize("body", [
    {"type": "dose_given", "cycle": 1, "date": "2026-03-09"},          # before recovery
    {"type": "recovery_confirmed", "date": "2026-03-01"},              # before cryoablation
    {"type": "recovery_confirmed", "date": "2027-10-01"},              # after the study
    {"type": "dose_given", "cycle": 9, "date": "2026-03-20"},          # no such cycle
    {"type": "correction", "event_id": "nope", "reason": "x"},         # no such event
])
def test_facts_the_protocol_rules_out_are_422_and_change_nothing(client, writer, participant,
                                                                 body):
    before = state_of(client, writer, participant)
    response = record(client, writer, participant, body)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "rule " in next(iter(response.get_json()["errors"].values()))[0]
    assert state_of(client, writer, participant) == before


def test_contradictions_of_the_history_are_409_and_change_nothing(client, writer, participant):
    record(client, writer, participant, {"type": "recovery_confirmed", "date": "2026-03-09"})
    record(client, writer, participant, {"type": "dose_given", "cycle": 1, "date": "2026-03-09"})
    before = state_of(client, writer, participant)
    twice = record(client, writer, participant,
                   {"type": "dose_given", "cycle": 1, "date": "2026-03-10"})
    assert twice.status_code == 409
    assert twice.get_json()["errors"]["cycle"][0].endswith("(rule serplulimab)")
    assert state_of(client, writer, participant) == before
    record(client, writer, participant,
           {"type": "discontinued", "date": "2026-03-20", "reason": "progression"})
    after_stop = record(client, writer, participant,
                        {"type": "dose_skipped", "cycle": 2, "reason": "x"})
    assert after_stop.status_code == 409
    assert "(rule discontinuation)" in after_stop.get_json()["detail"]


def test_event_fields_must_fit_the_event_type(client, writer, participant):
    response = record(client, writer, participant,
                      {"type": "dose_given", "cycle": 1, "reason": "x", "color": "red"})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"date", "reason", "color"}


def test_patch_needs_if_match_and_answers_412_when_stale(client, writer, participant):
    path = f"/v1/participants/{participant['id']}"
    body = {"childbearing_potential": True, "reason": "CRF reviewed"}
    assert client.patch(path, json=body, headers=writer).status_code == 428
    assert client.patch(path, json=body, headers={**writer, "If-Match": '"v7"'}).status_code \
        == 412
    etag = client.get(path, headers=writer).headers["ETag"]
    patched = client.patch(path, json=body, headers={**writer, "If-Match": etag})
    assert patched.status_code == 200
    assert patched.get_json()["childbearing_potential"] is True
    assert patched.headers["ETag"] == '"v2"'
    audit = client.get(f"{path}/events", headers=writer).get_json()["items"][-1]
    assert (audit["type"], audit["changes"], audit["reason"]) == (
        "enrolment_corrected", ["childbearing_potential: False -> True"], "CRF reviewed")
    schedule = client.get(f"{path}/schedule", headers=writer).get_json()
    assert "PREGNANCY" in {v["id"] for v in schedule["visits"]}


def test_patch_with_if_match_star_corrects_whatever_is_current(client, writer, participant):
    path = f"/v1/participants/{participant['id']}"
    record(client, writer, participant, {"type": "recovery_confirmed", "date": "2026-03-09"})
    patched = client.patch(path, json={"childbearing_potential": True, "reason": "CRF"},
                           headers={**writer, "If-Match": "*"})
    assert patched.status_code == 200
    assert patched.headers["ETag"] == '"v3"'


def test_patch_that_breaks_the_history_is_refused(client, writer, participant):
    path = f"/v1/participants/{participant['id']}"
    record(client, writer, participant, {"type": "recovery_confirmed", "date": "2026-03-09"})
    etag = client.get(path, headers=writer).headers["ETag"]
    response = client.patch(path, json={"cryoablation_date": "2026-03-20", "reason": "CRF"},
                            headers={**writer, "If-Match": etag})
    assert response.status_code == 422
    assert response.get_json()["type"] == "urn:trial-schedule:problem:protocol-rule"
    assert client.get(path, headers=writer).headers["ETag"] == etag


def test_get_answers_304_to_its_etag(client, writer, participant):
    path = f"/v1/participants/{participant['id']}"
    for url in (path, f"{path}/schedule", f"{path}/events"):
        etag = client.get(url, headers=writer).headers["ETag"]
        assert client.get(url, headers={**writer, "If-None-Match": etag}).status_code == 304


def test_keys_and_scopes(client, keys, participant):
    assert client.get("/v1/participants").status_code == 401
    assert client.get("/v1/participants", headers=bearer("ts_0_bogus")).status_code == 401
    assert client.get("/v1/participants", headers=bearer(keys["read"])).status_code == 200
    enrol = client.post("/v1/participants", json={**ENROL, "subject_code": "ZS-002"},
                        headers=bearer(keys["read"]))
    assert enrol.status_code == 403
    assert client.get(f"/v1/participants/{participant['id']}",
                      headers=bearer(keys["admin"])).status_code == 200


def test_revoked_key_stops_working(db_app, client):
    issued = container(db_app).api_keys
    key = issued.create("temp", "read")
    assert client.get("/v1/participants", headers=bearer(key)).status_code == 200
    assert issued.revoke("temp")
    assert client.get("/v1/participants", headers=bearer(key)).status_code == 401


def test_keys_are_stored_only_as_digests(db_app, keys):
    import sqlalchemy as sa

    with container(db_app).engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT * FROM api_keys")).all()
    flat = repr(stored)
    assert len(stored) == 3 and all(secret not in flat for secret in keys.values())


def test_idempotency_key_replays_the_first_answer_and_records_once(client, writer, participant):
    headers = {**writer, "Idempotency-Key": "dose-1-attempt"}
    record(client, writer, participant, {"type": "recovery_confirmed", "date": "2026-03-09"})
    body = {"type": "dose_given", "cycle": 1, "date": "2026-03-09"}
    first = record(client, writer, participant, body, **headers)
    second = record(client, writer, participant, body, **headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()
    events = client.get(f"/v1/participants/{participant['id']}/events",
                        headers=writer).get_json()["items"]
    assert [e["type"] for e in events] == ["recovery_confirmed", "dose_given"]
    other = record(client, writer, participant, {**body, "date": "2026-03-10"}, **headers)
    assert other.status_code == 422


def test_idempotent_enrolment(client, writer):
    headers = {**writer, "Idempotency-Key": "enrol-zs-009"}
    body = {**ENROL, "subject_code": "ZS-009"}
    first = client.post("/v1/participants", json=body, headers=headers)
    again = client.post("/v1/participants", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json()["id"] == first.get_json()["id"]


def test_list_pages_through_every_participant_once(client, writer):
    codes = [f"ZS-{n:03d}" for n in range(1, 8)]
    for code in codes:
        client.post("/v1/participants", json={**ENROL, "subject_code": code}, headers=writer)
    seen, cursor = [], None
    while True:
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = client.get(f"/v1/participants{query}", headers=writer).get_json()
        seen += [p["subject_code"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == codes
    bad = client.get("/v1/participants?cursor=not-ours", headers=writer)
    assert bad.status_code == 422 and list(bad.get_json()["errors"]) == ["cursor"]


@pytest.mark.parametrize("code", ["", "Wang Wei", "x" * 33, "ZS/001", "张伟"])
def test_subject_code_must_be_pseudonymous(client, writer, code):
    response = client.post("/v1/participants", json={**ENROL, "subject_code": code},
                           headers=writer)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["subject_code"]


def test_duplicate_subject_code_is_409_naming_the_participant_enrolled(client, writer,
                                                                      participant):
    response = client.post("/v1/participants", json=ENROL, headers=writer)
    assert response.status_code == 409
    assert response.headers["Location"] == f"/v1/participants/{participant['id']}"
    assert response.get_json()["existing_id"] == participant["id"]


def test_visit_outcomes_are_recorded_shown_and_voided_over_http(client, writer, participant):
    done = record(client, writer, participant,
                  {"type": "visit_done", "visit_id": "SCREEN-LABS", "date": "2026-03-01"})
    assert done.status_code == 201
    event = done.get_json()["event"]
    assert (event["type"], event["visit_id"], event["date"]) == ("visit_done", "SCREEN-LABS",
                                                                 "2026-03-01")
    labs = next(v for v in done.get_json()["schedule"]["visits"] if v["id"] == "SCREEN-LABS")
    assert (labs["status"], labs["actual_date"], labs["timing"]) == ("done", "2026-03-01",
                                                                     "in_window")
    again = record(client, writer, participant,
                   {"type": "visit_missed", "visit_id": "SCREEN-LABS", "reason": "no show"})
    assert again.status_code == 409
    unknown = record(client, writer, participant,
                     {"type": "visit_done", "visit_id": "IMG-99", "date": "2026-03-01"})
    assert unknown.status_code == 422
    assert list(unknown.get_json()["errors"]) == ["visit_id"]
    bad_reason = record(client, writer, participant,
                        {"type": "off_study", "date": "2026-03-05", "reason": "bored"})
    assert list(bad_reason.get_json()["errors"]) == ["reason"]
    left = record(client, writer, participant, {"type": "off_study", "date": "2026-03-05",
                                                "reason": "lost_to_follow_up",
                                                "note": "moved abroad"})
    assert left.status_code == 201
    assert (left.get_json()["event"]["note"], left.get_json()["schedule"]["state"]) == (
        "moved abroad", "off_study")
    voided = record(client, writer, participant, {
        "type": "correction", "event_id": event["id"], "reason": "wrong participant"})
    assert voided.status_code == 201
    visits = {v["id"]: v for v in voided.get_json()["schedule"]["visits"]}
    # No longer done. The participant left before a first dose: every infusion is cancelled,
    # and the labs counted back from the first dose are listed cancelled with it, undated.
    assert (visits["SCREEN-LABS"]["status"], visits["SCREEN-LABS"]["date"]) == ("cancelled", None)
    assert {visits[f"C{n}D1"]["status"] for n in range(1, 7)} == {"cancelled"}


def test_unknown_participant_is_404(client, writer):
    assert client.get("/v1/participants/nope", headers=writer).status_code == 404
    assert client.post("/v1/participants/nope/events", json={
        "type": "recovery_confirmed", "date": "2026-03-09"}, headers=writer).status_code == 404


def test_subject_code_never_reaches_the_log(db_app, client, writer, caplog):
    caplog.set_level(logging.DEBUG)
    code = "ZS-LOGCHECK"
    created = client.post("/v1/participants", json={**ENROL, "subject_code": code},
                          headers=writer).get_json()
    client.post("/v1/participants", json={**ENROL, "subject_code": code}, headers=writer)
    client.get(f"/v1/participants/{created['id']}/schedule", headers=writer)
    assert code not in caplog.text


def scope_by_path(path, method):
    """The scope each protected request needed when it was decided by path and method: admin
    under /v1/site, read to look, write to change."""
    if path.startswith("/v1/site"):
        return "admin"
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


def test_every_protected_route_and_method_needs_the_scope_it_always_needed(
        db_app, client, keys, participant):
    order = ("read", "write", "admin")
    checked = 0
    for rule in db_app.url_map.iter_rules():
        if not rule.rule.startswith(("/v1/participants", "/v1/site")):
            continue
        path = rule.rule.replace("<participant_id>", participant["id"])
        for method in sorted(rule.methods):
            needed = scope_by_path(path, method)
            assert client.open(path, method=method).status_code == 401, (method, path)
            for scope in order:
                status = client.open(path, method=method, headers=bearer(keys[scope])).status_code
                refused = order.index(scope) < order.index(needed)
                assert (status == 403) == refused, (method, path, scope, status)
            checked += 1
    assert checked == 25  # 19, and GET, HEAD, OPTIONS of the fhir and schedule.csv exports
