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


# --- Hostile bodies: each a 400 problem, never a 5xx --------------------------------------------

def raw_post(client, text):
    return client.post("/v1/schedules", data=text, content_type="application/json")


@pytest.mark.parametrize("depth", [33, 1_000, 30_000])
def test_json_nested_deeper_than_32_levels_is_400(client, depth):
    body = '{"cryoablation_date": "2026-03-02", "x": ' + "[" * depth + "]" * depth + "}"
    assert problem_of(raw_post(client, body), 400)["detail"] == (
        "The body nests arrays and objects deeper than 32 levels.")


def test_brackets_inside_strings_are_not_nesting(client):
    body = json.dumps({**REFERENCE, "doses": [{"cycle": 1, "status": "skipped",
                                                "reason": "[" * 100}]})
    assert raw_post(client, body).status_code == 200


@pytest.mark.parametrize("number", ["1" * 4_301, "1" * 41, "1." + "0" * 5_000, "1e" + "9" * 50])
def test_a_number_longer_than_40_characters_is_400(client, number):
    body = '{"cryoablation_date": "2026-03-02", "doses": [{"cycle": ' + number + "}]}"
    assert problem_of(raw_post(client, body), 400)["detail"] == (
        "A number in the body is longer than 40 characters.")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_so_400(client, constant):
    body = '{"cryoablation_date": "2026-03-02", "lookbacks": {"other_trial_half_life_days": ' \
        + constant + "}}"
    assert problem_of(raw_post(client, body), 400)["detail"] == (
        f"{constant} is not a JSON number.")


def test_a_duplicate_key_is_400_naming_it(client):
    body = '{"cryoablation_date": "2026-03-02", "cryoablation_date": "2026-03-09"}'
    assert problem_of(raw_post(client, body), 400)["detail"] == (
        'The key "cryoablation_date" appears twice in one object.')


def test_a_duplicate_key_in_a_nested_object_is_400(client):
    body = ('{"cryoablation_date": "2026-03-02", "recovery": {"status": "recovered", '
            '"date": "2026-03-09", "date": "2026-03-10"}}')
    assert problem_of(raw_post(client, body), 400)["detail"] == (
        'The key "date" appears twice in one object.')


def test_a_body_that_is_not_utf8_is_400(client):
    response = client.post("/v1/schedules", data=b'{"cryoablation_date": "\xff"}',
                           content_type="application/json")
    assert problem_of(response, 400)["detail"] == "The request body is not UTF-8."


# --- Dates: exactly YYYY-MM-DD, and the message says so -----------------------------------------

@pytest.mark.parametrize("text", ["20260302", "2026-W10-1", "2026-061", "2026-03-02T00:00",
                                  "02/03/2026", "2026-3-2", "2026-02-30",
                                  "\uff12\uff10\uff12\uff16-03-02"])
def test_only_yyyy_mm_dd_is_a_date_and_the_message_says_the_form(client, text):
    problem = problem_of(post(client, {"cryoablation_date": text}), 422)
    message = f'"{text}" is not a date in the form YYYY-MM-DD.'
    assert problem["errors"] == {"cryoablation_date": [message]}
    assert problem["detail"] == f"cryoablation_date: {message[:-1]}"


def test_a_date_that_is_not_a_string_says_the_form(client):
    problem = problem_of(post(client, {"cryoablation_date": 20260302}), 422)
    assert problem["errors"] == {
        "cryoablation_date": ["20260302 is not a date in the form YYYY-MM-DD."]}


def test_a_nested_date_names_its_path_and_the_form(client):
    problem = problem_of(post(client, {**REFERENCE, "doses": [
        {"cycle": 1, "status": "given", "date": "9.3.2026"}]}), 422)
    assert problem["errors"] == {
        "doses.0.date": ['"9.3.2026" is not a date in the form YYYY-MM-DD.']}


def test_the_detail_joins_messages_without_doubled_punctuation(client):
    problem = problem_of(post(client, {"cryoablation_date": "2026-03-02", "surname": "W",
                                       "childbearing_potential": "yes"}), 422)
    assert ".;" not in problem["detail"] and not problem["detail"].endswith(".")
    assert problem["detail"] == ("childbearing_potential: Not a valid boolean; "
                                 "surname: Unknown field")


def test_a_control_character_in_a_calculator_reason_is_422(client):
    problem = problem_of(post(client, {**REFERENCE, "doses": [
        {"cycle": 1, "status": "skipped", "reason": "fever\x1b"}]}), 422)
    assert problem["errors"] == {"doses.0.reason": [
        "Contains the control character U+001B; only tab and newline allowed."]}


# --- The calendar link's query ----------------------------------------------------------------

def ics(client, **query):
    return client.get("/v1/schedules.ics", query_string={"cryoablation_date": "2026-03-02",
                                                         **query})


def test_recovery_date_without_recovery_status_says_to_send_the_status(client):
    problem = problem_of(ics(client, recovery_date="2026-03-09"), 422)
    assert problem["errors"] == {"recovery_status": [
        "Send recovery_status (recovered or complication) with recovery_date."]}


def test_the_query_takes_cycle_equals_date_as_an_alias(client):
    colon = ics(client, recovery_status="recovered", recovery_date="2026-03-09",
                dose_given="1:2026-03-09")
    equals = ics(client, recovery_status="recovered", recovery_date="2026-03-09",
                 dose_given="1=2026-03-09")
    assert colon.status_code == equals.status_code == 200
    assert colon.data == equals.data


@pytest.mark.parametrize(("given", "message"), [
    ("0:2026-03-09", "'0:2026-03-09': cycles count from 1"),
    ("1:20260309", "'1:20260309' is not CYCLE:YYYY-MM-DD (cycle from 1)"),
    ("1:2026-02-30", "'1:2026-02-30': '2026-02-30' is not a date in the form YYYY-MM-DD"),
])
def test_a_malformed_dose_in_the_query_says_the_syntax(client, given, message):
    problem = problem_of(ics(client, recovery_status="recovered", recovery_date="2026-03-09",
                             dose_given=given), 422)
    assert problem["errors"] == {"dose_given.0": [message]}


def test_a_query_date_says_the_form(client):
    problem = problem_of(ics(client, as_of="20260302"), 422)
    assert problem["errors"] == {"as_of": ['"20260302" is not a date in the form YYYY-MM-DD.']}
