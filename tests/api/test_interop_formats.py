"""The interop formats that need no stored participant: the protocol as a FHIR R4
PlanDefinition, the CSV cells, and the ODM document of an empty site (each checked by its own
reader: fhir.resources, fhirclient, the csv module, lxml against the ODM 1.3.2 XSD)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.activitydefinition import ActivityDefinition
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.plandefinition import PlanDefinition
from fhirclient.models.plandefinition import PlanDefinition as ClientPlanDefinition
from hypothesis import HealthCheck, assume, given, settings
from lxml import etree

from api.http.csv_export import BOM, COLUMNS, csv_body, safe_cell
from api.http.fhir import (
    OFFSET_RANGE,
    TIMINGS,
    fhir_id,
    kind_title,
    participant_bundle,
    plan_definition,
)
from api.http.odm import ODM, odm_document, visit_kinds
from api.persistence.records import StoredParticipant
from scheduler import ScheduleInputError, compute_schedule, load_protocol, load_site
from scheduler.history import Enrolment
from scheduler.model import ParticipantFacts, Recovery
from scheduler.outcomes import on_day
from scheduler.protocol import available_versions, protocol_version
from tests.api.conftest import TODAY
from tests.conftest import PROTOCOL, SITE
from tests.fhir_bindings import unbound_codes
from tests.unit.test_properties import participants as generated_participants

SCHEMAS = Path(__file__).parent.parent / "schemas" / "odm-1.3.2"
VERSIONS = available_versions()


def odm_schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


EXTENDED_ODM = odm_schema("trial-schedule-extension.xsd")


# --- FHIR: the protocol as a PlanDefinition -------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_protocol_plan_definition_is_valid_r4_and_round_trips(client, version):
    response = client.get(f"/v1/protocol/fhir?version={version}")
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    parsed = PlanDefinition.model_validate(body)
    assert json.loads(parsed.model_dump_json()) == body
    assert unbound_codes(parsed) == []
    for contained in body["contained"]:
        assert json.loads(ActivityDefinition.model_validate(contained).model_dump_json()) == \
            contained
    assert parsed.version == version
    # A second, independent reader (SMART on FHIR's models, strict about unknown elements).
    assert ClientPlanDefinition(body, strict=True).as_json()["action"] == body["action"]


def test_every_action_names_its_activity_and_every_related_action_an_action(client):
    body = client.get("/v1/protocol/fhir").get_json()
    contained = {resource["id"] for resource in body["contained"]}
    actions = {action["id"] for action in body["action"]}
    for action in body["action"]:
        assert action["definitionCanonical"].removeprefix("#") in contained
        for related in action.get("relatedAction", []):
            assert related["actionId"] in actions


def test_plan_definition_carries_the_protocols_timing():
    protocol = protocol_version(VERSIONS[-1])
    actions = {a["id"]: a for a in plan_definition(protocol)["action"]}
    activities = {a["id"]: a for a in plan_definition(protocol)["contained"]}
    cycle = protocol.rule("serplulimab").params
    assert activities["infusion"]["timingTiming"] == {"repeat": {
        "frequency": 1, "period": cycle["cycle_length_days"], "periodUnit": "d",
        "count": cycle["max_cycles"]}}
    eot = protocol.rule("end-of-treatment").params
    [related] = actions["end-of-treatment"]["relatedAction"]
    assert related["actionId"] == "infusion" and related["relationship"] == "after-end"
    assert related["offsetDuration"]["value"] == eot["days_after_last_dose"]
    [window] = related["extension"]
    assert window["url"] == OFFSET_RANGE
    assert (window["valueRange"]["low"]["value"], window["valueRange"]["high"]["value"]) == \
        (-eot["window_days"], eot["window_days"])
    [screening] = actions["screening-labs"]["relatedAction"]
    assert screening["relationship"] == "before-start"
    assert screening["extension"][0]["valueRange"]["high"]["value"] == \
        protocol.rule("screening-labs").params["days_before_first_dose"]
    assert actions["infusion"]["title"] == "Serplulimab 300 mg IV, cycle n"
    [first_dose] = actions["infusion"]["relatedAction"]  # never before recovery is confirmed
    assert (first_dose["actionId"], first_dose["offsetDuration"]["value"]) == \
        ("recovery-check", 0)
    assert first_dose["extension"][0]["valueRange"]["low"]["value"] == 0
    assert first_dose["extension"][0]["valueRange"]["high"]["value"] == \
        protocol.rule("dose-window").params["days_after"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_visit_kind_the_engine_plans_has_an_action_under_its_rule(version):
    """TIMINGS is the FHIR and ODM view of which rule places each kind: hold it to what the
    engine plans for a participant treated to the end."""
    protocol = protocol_version(version)
    facts = ParticipantFacts(dt.date(2026, 3, 2), Recovery("recovered", dt.date(2026, 3, 9)),
                             childbearing_potential=True)
    schedule = compute_schedule(protocol, facts, load_site())
    planned = {visit.kind for visit in schedule.visits}
    assert planned <= set(TIMINGS)
    for kind in planned:
        assert protocol.has(TIMINGS[kind].rule), kind
    rules_of = {visit.kind: visit.rule.id for visit in schedule.visits
                if visit.kind != "infusion"}  # infusions carry first-dose / cycle-chaining
    for kind, rule_id in rules_of.items():
        assert TIMINGS[kind].rule == rule_id, kind
    actions = {a["id"] for a in plan_definition(protocol)["action"]}
    assert {fhir_id(kind) for kind in planned} <= actions


def test_protocol_fhir_answers_304_to_its_etag_and_404_to_an_unknown_version(client):
    first = client.get("/v1/protocol/fhir")
    again = client.get("/v1/protocol/fhir", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    missing = client.get("/v1/protocol/fhir?version=1999-01-01.1")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert "1999-01-01.1" in missing.get_json()["detail"]


def test_protocol_fhir_rejects_an_unknown_query_parameter(client):
    response = client.get("/v1/protocol/fhir?format=xml")
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"format"}


def test_a_code_outside_its_required_value_set_is_found():
    """The binding check can fail: a status FHIR does not define is reported."""
    plan = plan_definition(load_protocol())
    plan["status"] = "live"
    plan["action"][1]["relatedAction"][0]["relationship"] = "soon-after"
    assert sorted(unbound_codes(PlanDefinition.model_validate(plan))) == [
        ".action.1.relatedAction.0.relationship: soon-after", ".status: live"]


def test_kind_title_leaves_the_number_open_and_fills_the_criteria():
    protocol = load_protocol()
    assert kind_title(protocol, "response-imaging") == \
        f"Response imaging n ({protocol.response_criteria})"


# --- CSV -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx",
                                  "=HYPERLINK(\"http://example.org\")"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["ZS-001", "2026-03-09", "", "a=b", "中文标题"])
def test_a_plain_cell_is_left_as_it_is(text):
    assert safe_cell(text) == text


def test_csv_body_is_utf8_with_bom_crlf_and_reads_back_cell_for_cell():
    rows = [["-ZS-9", "id", "C1D1", "infusion", "Serplulimab, cycle 1 \"quoted\"",
             "2026-03-09", "2026-03-09", "2026-03-12", "planned", "first-dose"],
            ["ZS-2", "id", "CRYO", "cryoablation", "冷冻消融", "", "", "", "held", "x\ny"]]
    body = csv_body(rows)
    assert body.startswith(BOM.encode("utf-8"))
    text = body.decode("utf-8").removeprefix(BOM)
    assert text.count("\r\n") == 3  # header and two rows; the cell's own "\n" stays quoted
    read = list(csv.reader(io.StringIO(text, newline="")))
    assert read[0] == list(COLUMNS)
    assert read[1][0] == "'-ZS-9" and read[1][4] == "Serplulimab, cycle 1 \"quoted\""
    assert read[2][4] == "冷冻消融" and read[2][9] == "x\ny"


# --- ODM -------------------------------------------------------------------------------------

def test_odm_of_a_site_without_participants_is_valid_odm_132():
    protocol = load_protocol()
    body = odm_document({protocol.version: protocol}, [], dt.date(2026, 11, 25),
                        dt.datetime(2026, 11, 25, tzinfo=dt.UTC), "0" * 64)
    document = etree.fromstring(body)
    assert document.get("ODMVersion") == "1.3.2"
    for name in ("ODM1-3-2.xsd", "trial-schedule-extension.xsd"):
        schema = odm_schema(name)
        assert schema.validate(document), schema.error_log
    defs = document.findall(f".//{{{ODM}}}StudyEventDef")
    assert [d.get("Name") for d in defs] == [name for _, name in visit_kinds(protocol)]
    assert document.find(f"{{{ODM}}}ClinicalData") is None


# --- Over many generated participants ------------------------------------------------------

FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FEW
@given(generated_participants())
def test_every_generated_schedule_exports_as_valid_fhir_and_odm(facts):
    """Whatever the statuses (held, cancelled, skipped, provisional, due, overdue, done), the
    bundle validates as R4 and the ODM document against the ODM 1.3.2 XSD."""
    try:
        schedule = compute_schedule(PROTOCOL, facts, SITE)
    except ScheduleInputError:
        assume(False)
    if facts.as_of is not None:
        schedule = on_day(schedule, facts.as_of)
    when = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    participant = StoredParticipant("0b6f3c1e-4a57-4f0e-9a51-8c1f5d2e7a10",
                                    Enrolment("ZS-001", facts.cryoablation_date), 1, when,
                                    "test", when, protocol_version=PROTOCOL.version)
    body = json.loads(json.dumps(participant_bundle(participant, schedule, PROTOCOL)))
    bundle = Bundle.model_validate(body)
    assert json.loads(bundle.model_dump_json()) == body
    assert unbound_codes(bundle) == []
    document = etree.fromstring(odm_document({PROTOCOL.version: PROTOCOL},
                                             [(participant, schedule)], TODAY, when, "0" * 64))
    assert EXTENDED_ODM.validate(document), EXTENDED_ODM.error_log
