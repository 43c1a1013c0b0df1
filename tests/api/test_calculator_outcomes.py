"""The stateless calculator takes the same visit outcomes a stored participant records, and a
v1 request without them stays valid."""

from __future__ import annotations

from tests.api.conftest import REFERENCE

WITH_OUTCOMES = {
    **REFERENCE, "as_of": "2026-03-12",
    "doses": [{"cycle": 1, "status": "given", "date": "2026-03-09"}],
    "cryoablation_done": {"date": "2026-03-02"},
    "visits_done": [{"visit_id": "SCREEN-LABS", "date": "2026-03-01"}],
    "visits_missed": [{"visit_id": "BASELINE-IMAGING", "reason": "scanner down"}],
    "unscheduled_visits": [{"date": "2026-03-11", "purpose": "rash"}],
}


def visits(body):
    return {v["id"]: (v["status"], v["actual_date"], v["timing"]) for v in body["visits"]}


def test_outcomes_in_the_body_give_the_statuses(client):
    response = client.post("/v1/schedules", json=WITH_OUTCOMES)
    assert response.status_code == 200
    shown = visits(response.get_json())
    assert {k: shown[k] for k in ("CRYO", "SCREEN-LABS", "BASELINE-IMAGING", "C1D1", "UNS-1",
                                  "RECOVERY")} == {
        "CRYO": ("done", "2026-03-02", "in_window"),
        "SCREEN-LABS": ("done", "2026-03-01", "in_window"),
        "BASELINE-IMAGING": ("missed", None, None),
        "C1D1": ("done", "2026-03-09", "in_window"),
        "UNS-1": ("done", "2026-03-11", "in_window"),
        "RECOVERY": ("done", "2026-03-09", "in_window")}


def test_without_outcomes_nothing_is_done_that_was_not_recorded(client):
    body = {**REFERENCE, "as_of": "2026-03-12",
            "doses": [{"cycle": 1, "status": "given", "date": "2026-03-09"}]}
    answer = client.post("/v1/schedules", json=body).get_json()
    shown = visits(answer)
    # The dose given proves the cryoablation happened: not overdue, but not done either,
    # since nothing records it; the schedule asks for the record.
    assert (shown["CRYO"], shown["SCREEN-LABS"], shown["BASELINE-IMAGING"]) == (
        ("planned", None, None), ("overdue", None, None), ("overdue", None, None))
    assert [w["message"] for w in answer["warnings"] if w["code"] == "procedure-not-recorded"] \
        == ["CRYO (CT-guided cryoablation) is not recorded as done, but RECOVERY recorded on "
            "2026-03-09 shows it happened: record cryoablation_done"]


def test_off_study_cancels_every_later_visit(client):
    body = {**WITH_OUTCOMES, "off_study": {"date": "2026-03-12", "reason": "death"}}
    answer = client.post("/v1/schedules", json=body).get_json()
    assert answer["state"] == "off_study"
    later = [v for v in answer["visits"] if v["rule"]["id"] == "off-study"]
    assert {v["id"] for v in later} >= {"C2D1", "EOT", "OS-1Y", "IMG-1"}
    assert {(v["status"], v["date"]) for v in later} == {("cancelled", None)}


def test_an_unknown_visit_is_a_422_naming_the_field(client):
    body = {**REFERENCE, "visits_done": [{"visit_id": "IMG-99", "date": "2026-03-01"}],
            "as_of": "2026-03-12"}
    response = client.post("/v1/schedules", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"visits_done.0.visit_id": [
        "IMG-99 is not a visit of this participant's schedule (rule schedule)"]}


def test_an_off_study_reason_outside_the_list_is_a_422(client):
    body = {**REFERENCE, "off_study": {"date": "2026-03-12", "reason": "moved away"}}
    response = client.post("/v1/schedules", json=body)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["off_study.reason"]


def test_the_calendar_link_takes_the_outcomes_as_query_parameters(client):
    url = ("/v1/schedules.ics?cryoablation_date=2026-03-02&recovery_status=recovered"
           "&recovery_date=2026-03-09&as_of=2026-03-12&cryoablation_done=2026-03-02"
           "&visit_done=SCREEN-LABS:2026-03-01&unscheduled_visit=2026-03-11")
    text = client.get(url).get_data(as_text=True)
    assert "X-TRIAL-VISIT-ID:UNS-1\r\nX-TRIAL-VISIT-STATUS:done" in text
    assert "X-TRIAL-VISIT-ID:SCREEN-LABS\r\nX-TRIAL-VISIT-STATUS:done" in text
    unknown = client.get(url.replace("SCREEN-LABS", "IMG-99"))
    assert unknown.status_code == 422
    assert list(unknown.get_json()["errors"]) == ["visit_done"]


def test_a_pregnancy_test_done_early_is_repeated_before_the_first_dose(client):
    # Planned for 02-28, nine days before C1D1 on 03-09: no repeat. Done on 02-17, twenty days
    # before it: the protocol (revision 2) repeats it within 14 days before C1D1.
    body = {**REFERENCE, "as_of": "2026-03-12", "childbearing_potential": True}
    planned = client.post("/v1/schedules", json=body).get_json()
    assert "PREGNANCY-C1" not in {v["id"] for v in planned["visits"]}
    done = {**body, "visits_done": [{"visit_id": "PREGNANCY", "date": "2026-02-17"}]}
    answer = client.post("/v1/schedules", json=done)
    assert answer.status_code == 200
    repeat = next(v for v in answer.get_json()["visits"] if v["id"] == "PREGNANCY-C1")
    assert (repeat["date"], repeat["window"]) == (
        "2026-03-09", {"earliest": "2026-02-23", "latest": "2026-03-09"})
    assert "after the test done on 2026-02-17" in repeat["rule"]["anchor"]
