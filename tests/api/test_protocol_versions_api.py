"""GET /v1/protocol lists the versions; the calculator refuses facts dated after the site's
today (rule future-facts) and takes a screening date."""

from __future__ import annotations

import pytest

from api.http.context import container
from api.http.schemas import schedule_dict
from scheduler.model import Lookbacks
from scheduler.outcomes import NO_OUTCOMES, with_outcomes
from tests.api.conftest import REFERENCE, TODAY
from tests.conftest import PROTOCOL_V1, D, schedule_for

V1, V2, V3 = "2025-09-15.1", "2026-11-25.2", "2026-12-04.3"


@pytest.fixture
def today(app):
    """Freeze the site's today on 2026-03-20 for one test, then give back the day the session
    froze (letting the clock run would make later tests depend on the hour they run at)."""
    clock = container(app).clock
    before = clock.frozen
    clock.freeze(D("2026-03-20"))
    yield D("2026-03-20")
    clock.freeze(before)


def test_protocol_lists_every_version_and_shows_the_current_one(client):
    body = client.get("/v1/protocol").get_json()
    assert body["version"] == V3
    assert [(v["version"], v["revision"], v["current"]) for v in body["versions"]] == [
        (V1, 1, False), (V2, 2, False), (V3, 3, True)]
    assert body["versions"][0]["modified"] == PROTOCOL_V1.modified.isoformat()


def test_protocol_shows_an_older_version_on_request(client):
    body = client.get(f"/v1/protocol?version={V1}").get_json()
    assert body["version"] == V1
    assert {rule["id"] for rule in body["rules"]} == set(PROTOCOL_V1.rules)
    assert [v["version"] for v in body["versions"]] == [V1, V2, V3]


def test_protocol_of_an_unknown_version_is_404_naming_the_known_ones(client):
    response = client.get("/v1/protocol?version=2099-01-01.9")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.get_json()["detail"] == (
        f"No protocol version '2099-01-01.9'; available: {V1}, {V2}, {V3}.")


def test_calculator_refuses_a_fact_dated_after_the_sites_today(client, today):
    body = {**REFERENCE, "recovery": {"status": "recovered", "date": "2026-03-09"},
            "doses": [{"cycle": 1, "status": "given", "date": "2026-03-23"}]}
    response = client.post("/v1/schedules", json=body)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["errors"] == {
        "doses.0.date": ["2026-03-23 is after the site's today 2026-03-20 (rule future-facts)"]}


def test_calculator_query_refusal_names_the_query_parameter(client, today):
    response = client.get("/v1/schedules.ics?cryoablation_date=2026-03-02"
                          "&recovery_status=recovered&recovery_date=2026-03-21")
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["recovery_date"]


def test_calculator_allows_a_cryoablation_planned_after_today(client, today):
    response = client.post("/v1/schedules", json={"cryoablation_date": "2026-04-01",
                                                  "as_of": today.isoformat()})
    assert response.status_code == 200
    cryo = next(v for v in response.get_json()["visits"] if v["id"] == "CRYO")
    assert (cryo["date"], cryo["status"]) == ("2026-04-01", "planned")


def test_calculator_counts_the_other_trial_look_back_to_the_screening_date(client):
    body = {**REFERENCE, "screening_date": "2026-02-20",
            "lookbacks": {"other_trial_last_dose": "2026-01-15"}}
    expected = schedule_for(screening_date=D("2026-02-20"), as_of=TODAY,
                            lookbacks=Lookbacks(other_trial_last_dose=D("2026-01-15")))
    without = schedule_for(lookbacks=Lookbacks(other_trial_last_dose=D("2026-01-15")))
    assert expected != without  # the screening date changes the answer
    response = client.post("/v1/schedules", json=body)
    assert response.status_code == 200
    assert response.get_json() == schedule_dict(with_outcomes(expected, NO_OUTCOMES, TODAY))
