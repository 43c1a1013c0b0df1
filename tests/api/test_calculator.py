"""The stateless calculator over HTTP: the same schedule as the engine, on the wire."""

from __future__ import annotations

import json

from api.http.schemas import schedule_dict
from scheduler.model import Discontinuation, DoseRecord, Lookbacks
from scheduler.outcomes import NO_OUTCOMES, with_outcomes
from scheduler.protocol import RULE_PARAMS_V3
from tests.api.conftest import REFERENCE, TODAY
from tests.conftest import D, schedule_for


def calculated(schedule):
    """What the calculator answers for facts without outcomes, on the site's frozen today."""
    return with_outcomes(schedule, NO_OUTCOMES, TODAY)


def test_post_schedule_returns_the_engine_schedule(client):
    response = client.post("/v1/schedules", json=REFERENCE)
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == schedule_dict(calculated(schedule_for(as_of=TODAY)))


def test_schedule_with_recorded_doses_matches_the_engine(client):
    body = {**REFERENCE, "childbearing_potential": True,
            "doses": [{"cycle": 1, "status": "given", "date": "2026-03-09"},
                      {"cycle": 2, "status": "skipped", "reason": "grade 2 pneumonitis"}],
            "discontinuation": {"date": "2026-05-20", "reason": "progression"},
            "lookbacks": {"live_vaccine": "2026-02-10", "major_surgery": None}}
    expected = schedule_for(
        childbearing_potential=True,
        doses=(DoseRecord(1, "given", D("2026-03-09")),
               DoseRecord(2, "skipped", reason="grade 2 pneumonitis")),
        discontinuation=Discontinuation(D("2026-05-20"), "progression"),
        lookbacks=Lookbacks(live_vaccine=D("2026-02-10")), as_of=TODAY)
    response = client.post("/v1/schedules", json=body)
    assert response.status_code == 200
    assert response.get_json() == schedule_dict(calculated(expected))
    assert response.get_json()["state"] == "discontinued"


def test_contract_example_first_dose(client):
    # As of the day recovery was confirmed (a fact may not be dated after `as_of`): the
    # first dose's window is open, so it is due.
    asked = {**REFERENCE, "as_of": "2026-03-09"}
    visit = next(v for v in client.post("/v1/schedules", json=asked).get_json()["visits"]
                 if v["id"] == "C1D1")
    assert visit == {
        "id": "C1D1", "kind": "infusion", "title": "Serplulimab 300 mg IV, cycle 1", "cycle": 1,
        "date": "2026-03-09", "window": {"earliest": "2026-03-09", "latest": "2026-03-12"},
        "status": "due",
        "rule": {"id": "first-dose", "source": "record",
                 "text": "Serplulimab starts once no major post-procedural complications are "
                         "observed",
                 "anchor": "recovery confirmed 2026-03-09", "shifted_from": None,
                 "shift_reason": None},
        "actual_date": None, "timing": None}


def test_recovery_defaults_to_pending(client):
    response = client.post("/v1/schedules", json={"cryoablation_date": "2026-03-02"})
    assert response.get_json()["state"] == "provisional"


def test_protocol_lists_every_rule_with_provenance(client):
    response = client.get("/v1/protocol")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["version"]) == ("NCT07064876", "2026-12-04.3")
    assert (body["study_start"], body["study_completion"]) == ("2025-10-31", "2027-09-30")
    rules = {rule["id"]: rule for rule in body["rules"]}
    assert rules["serplulimab"]["params"]["cycle_length_days"] == 21
    assert rules["dose-window"]["source"] == "assumed"
    assert set(rules) == set(RULE_PARAMS_V3)


def test_protocol_answers_304_to_its_etag(client):
    etag = client.get("/v1/protocol").headers["ETag"]
    assert client.get("/v1/protocol", headers={"If-None-Match": etag}).status_code == 304


def ics_url(**params):
    query = {"cryoablation_date": "2026-03-02", "recovery_status": "recovered",
             "recovery_date": "2026-03-09", **params}
    return "/v1/schedules.ics?" + "&".join(
        f"{key}={item}" for key, value in query.items()
        for item in (value if isinstance(value, list) else [value]))


def test_schedule_as_icalendar(client):
    response = client.get(ics_url())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Last-Modified"] == "Fri, 04 Dec 2026 00:00:00 GMT"
    text = response.data.decode()
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert "DTSTART;VALUE=DATE:20260309\r\nDTEND;VALUE=DATE:20260310\r\n" in text
    # Without as_of the calculator computes as of the site's today (rule
    # held-dose-projection re-projects the doses held since March from it).
    dated = [v for v in schedule_for(as_of=TODAY).visits if v.date]
    assert text.count("BEGIN:VEVENT") == len(dated)


def test_icalendar_is_byte_identical_and_revalidates(client):
    first = client.get(ics_url())
    assert client.get(ics_url()).data == first.data
    etag = first.headers["ETag"]
    assert client.get(ics_url(), headers={"If-None-Match": etag}).status_code == 304
    assert client.get(ics_url(), headers={
        "If-Modified-Since": first.headers["Last-Modified"]}).status_code == 304


def test_icalendar_takes_doses_and_discontinuation_as_query_parameters(client):
    text = client.get(ics_url(dose_given=["1:2026-03-09", "2:2026-04-01"],
                              discontinuation_date="2026-04-10")).data.decode()
    assert "X-TRIAL-VISIT-ID:C2D1" in text
    assert "X-TRIAL-VISIT-ID:C3D1" not in text  # cancelled: no date, no event


def test_icalendar_domain_errors_name_the_query_parameter(client):
    response = client.get(ics_url(dose_given=["1:2026-03-01"]))
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert list(response.get_json()["errors"]) == ["dose_given.0"]


def test_icalendar_rejects_malformed_query_parameters(client):
    response = client.get(ics_url(dose_given=["first:2026-03-09"], recovery_status="well"))
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"dose_given.0", "recovery_status"}


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_openapi_yaml_is_the_committed_file(client):
    from api.http.ops import OPENAPI_FILE

    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.data == OPENAPI_FILE.read_bytes()


def test_json_keys_keep_the_contract_order(client):
    text = client.post("/v1/schedules", json=REFERENCE).data.decode()
    assert list(json.loads(text)) == ["protocol", "state", "first_dose_date", "visits",
                                      "warnings"]


def test_the_documented_schema_dumps_exactly_what_views_serve():
    from api.http.schemas import ScheduleSchema
    from tests.unit.test_golden_schedules import SCENARIOS

    for scenario in SCENARIOS.values():
        schedule = schedule_for(**scenario)
        assert ScheduleSchema().dump(schedule) == schedule_dict(schedule)
