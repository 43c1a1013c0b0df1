"""Every kind of bad input gets a problem+json naming the field; none gets a 5xx."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.http.context import container
from tests.api.conftest import REFERENCE

PROBLEM = "application/problem+json"


def post(client, body, **kwargs):
    return client.post("/v1/schedules", json=body, **kwargs)


def problem_of(response, status):
    assert response.status_code == status
    assert response.content_type == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(("body", "fields"), [
    ({}, ["cryoablation_date"]),
    ({"cryoablation_date": "2026-02-30"}, ["cryoablation_date"]),
    ({"cryoablation_date": "2026-03-02", "surname": "Wang"}, ["surname"]),
    ({**REFERENCE, "recovery": {"status": "recovered"}}, ["recovery.date"]),
    ({**REFERENCE, "recovery": {"status": "fine", "date": "2026-03-09"}}, ["recovery.status"]),
    ({**REFERENCE, "doses": [{"cycle": "1", "status": "given", "date": "2026-03-09"}]},
     ["doses.0.cycle"]),
    ({**REFERENCE, "doses": [{"cycle": 1, "status": "given", "date": "2026-03-09"},
                             {"cycle": 2, "status": "given"}]}, ["doses.1.date"]),
    ({**REFERENCE, "childbearing_potential": "yes"}, ["childbearing_potential"]),
    ({**REFERENCE, "childbearing_potential": 0}, ["childbearing_potential"]),
    ({**REFERENCE, "lookbacks": {"other_trial_half_life_days": -1}},
     ["lookbacks.other_trial_half_life_days"]),
    ({**REFERENCE, "lookbacks": {"smallpox": "2026-01-01"}}, ["lookbacks.smallpox"]),
])
def test_invalid_input_is_422_naming_each_field(client, body, fields):
    problem = problem_of(post(client, body), 422)
    assert problem["type"] == "urn:trial-schedule:problem:invalid-input"
    assert sorted(problem["errors"]) == sorted(fields)


@pytest.mark.parametrize(("body", "field", "rule"), [
    ({"cryoablation_date": "2025-10-30"}, "cryoablation_date", "study-period"),
    ({"cryoablation_date": "2027-10-01"}, "cryoablation_date", "study-period"),
    ({**REFERENCE, "recovery": {"status": "recovered", "date": "2026-03-01"}}, "recovery.date",
     "recovery-gate"),
    ({**REFERENCE, "doses": [{"cycle": 1, "status": "given", "date": "2026-03-08"}]},
     "doses.0.date", "recovery-gate"),
    ({**REFERENCE, "doses": [{"cycle": 7, "status": "given", "date": "2026-03-09"}]},
     "doses.0.cycle", "serplulimab"),
    ({**REFERENCE, "doses": [{"cycle": 1, "status": "given", "date": "2026-03-09"},
                             {"cycle": 1, "status": "given", "date": "2026-03-30"}]},
     "doses.1.cycle", "serplulimab"),
    ({**REFERENCE, "doses": [{"cycle": 1, "status": "given", "date": "2026-03-20"}],
      "discontinuation": {"date": "2026-03-15"}}, "doses.0.date", "discontinuation"),
])
def test_facts_the_protocol_rules_out_are_422_naming_field_and_rule(client, body, field, rule):
    problem = problem_of(post(client, body), 422)
    assert problem["type"] == "urn:trial-schedule:problem:protocol-rule"
    assert list(problem["errors"]) == [field]
    assert problem["errors"][field][0].endswith(f"(rule {rule})")


def test_malformed_json_is_400(client):
    response = client.post("/v1/schedules", data="{", content_type="application/json")
    assert problem_of(response, 400)["detail"] == "Invalid JSON body."


def test_a_body_that_is_not_an_object_is_422(client):
    assert problem_of(post(client, [1, 2]), 422)["errors"]


def test_not_json_is_415(client):
    response = client.post("/v1/schedules", data="cryoablation_date=2026-03-02",
                           content_type="application/x-www-form-urlencoded")
    problem_of(response, 415)


def test_body_over_64_kib_is_413(client):
    body = json.dumps({**REFERENCE, "pad": "x" * 70_000})
    response = client.post("/v1/schedules", data=body, content_type="application/json")
    assert problem_of(response, 413)["detail"] == "The request body is larger than 65536 bytes."


def test_unknown_path_is_404(client):
    problem_of(client.get("/v1/nothing"), 404)


def test_wrong_method_is_405_and_keeps_allow(client):
    response = client.delete("/v1/schedules")
    problem_of(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


def test_an_undeclared_method_is_405_even_with_a_body(client):
    response = client.put("/v1/protocol", data="x", content_type="text/plain")
    problem_of(response, 405)


def test_an_unexpected_error_is_a_500_problem_not_a_traceback(app, monkeypatch):
    service = container(app).schedules

    def broken(_facts):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "encoded", broken)
    response = app.test_client().post("/v1/schedules", json=REFERENCE)
    body = problem_of(response, 500)
    assert "boom" not in json.dumps(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.dates().map(str),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

field_names = st.sampled_from(["cryoablation_date", "recovery", "childbearing_potential",
                               "doses", "discontinuation", "lookbacks", "as_of", "status",
                               "date", "cycle", "reason", "live_vaccine",
                               "other_trial_half_life_days"])
shaped = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats()
    | st.sampled_from(["given", "skipped", "pending", "recovered", "complication"])
    | st.dates().map(str),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(field_names, children, max_size=6),
    max_leaves=20)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, st.dictionaries(field_names, shaped, max_size=7)))
def test_no_body_gives_a_server_error(app, body):
    response = app.test_client().post("/v1/schedules", json=body)
    assert response.status_code in (200, 400, 415, 422), response.get_data(as_text=True)
    if response.status_code != 200:
        assert response.content_type == PROBLEM
