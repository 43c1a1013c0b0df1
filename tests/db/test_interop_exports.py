"""The FHIR, CDISC ODM and CSV exports of stored participants, on each database: each read by
its own reader (fhir.resources and fhirclient; lxml against the ODM 1.3.2 XSD; the csv module)
and held to the participant's schedule as the JSON API gives it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhirclient.models.bundle import Bundle as ClientBundle
from lxml import etree

from api.http import odm
from api.http.context import container
from api.http.csv_export import BOM, COLUMNS
from api.http.fhir import REQUEST_STATUS, VISIT_KIND
from api.http.odm import ODM, OPENCLINICA, OPENCLINICA_STATUS, TRIAL_SCHEDULE, event_oid
from scheduler.outcomes import NOT_A_VISIT
from scheduler.protocol import available_versions
from tests.db.conftest import SITE_TODAY, bearer
from tests.fhir_bindings import unbound_codes

SCHEMAS = Path(__file__).parent.parent / "schemas" / "odm-1.3.2"
CRYO = "2026-06-01"
SCREENED = "2026-05-20"  # ZS-002's consent and screening


def day(offset: int) -> str:
    return (dt.date.fromisoformat(CRYO) + dt.timedelta(days=offset)).isoformat()


RECOVERED = [{"type": "cryoablation_done", "date": CRYO},
             {"type": "recovery_confirmed", "date": day(7)}]
# Participants at different stages (the site's today is 2026-11-25), by subject code.
HISTORIES: dict[str, list[dict[str, object]]] = {
    "ZS-001": [],
    "ZS-002": [*RECOVERED, {"type": "visit_done", "visit_id": "SCREEN-LABS", "date": day(1)},
               {"type": "dose_given", "cycle": 1, "date": day(7)}],
    # The second dose out of its window; the baseline scan missed.
    "ZS-003": [*RECOVERED, {"type": "visit_missed", "visit_id": "BASELINE-IMAGING",
                            "reason": "=scanner down"},
               {"type": "dose_given", "cycle": 1, "date": day(7)},
               {"type": "dose_given", "cycle": 2, "date": day(35)}],
    "ZS-004": [{"type": "cryoablation_done", "date": CRYO},
               {"type": "complication", "date": day(2), "description": "haemorrhage"}],
    "ZS-005": [*RECOVERED, {"type": "dose_given", "cycle": 1, "date": day(8)},
               {"type": "dose_skipped", "cycle": 2, "reason": "grade 3 rash"},
               {"type": "discontinued", "date": day(40), "reason": "toxicity"},
               {"type": "off_study", "date": day(50), "reason": "withdrawal_of_consent"}],
    # A code a spreadsheet would read as a formula, on the first protocol version.
    "-ZS-9": [{"type": "unscheduled_visit", "date": day(-3), "purpose": "questions"},
              *RECOVERED, {"type": "protocol_version_changed",
                           "version": available_versions()[0], "reason": "amendment"}],
}


@pytest.fixture
def site(client, writer):
    """Every participant of HISTORIES enrolled and its history recorded: code -> id."""
    ids = {}
    for code, events in HISTORIES.items():
        response = client.post("/v1/participants", headers=writer,
                               json={"subject_code": code, "cryoablation_date": CRYO,
                                     "childbearing_potential": code == "ZS-002",
                                     **({"screening_date": SCREENED} if code == "ZS-002"
                                        else {})})
        assert response.status_code == 201, response.get_json()
        ids[code] = response.get_json()["id"]
        for event in events:
            recorded = client.post(f"/v1/participants/{ids[code]}/events", json=event,
                                   headers=writer)
            assert recorded.status_code == 201, (code, event, recorded.get_json())
    return ids


@pytest.fixture
def reader(keys):
    return bearer(keys["read"])


def schedule_of(client, reader, participant_id):
    response = client.get(f"/v1/participants/{participant_id}/schedule", headers=reader)
    assert response.status_code == 200
    return response.get_json()


# --- FHIR ------------------------------------------------------------------------------------

def test_each_participants_bundle_is_valid_r4_round_trips_and_reads_in_fhirclient(
        client, site, reader):
    for participant_id in site.values():
        response = client.get(f"/v1/participants/{participant_id}/fhir", headers=reader)
        assert response.status_code == 200
        assert response.mimetype == "application/fhir+json"
        body = response.get_json()
        bundle = Bundle.model_validate(body)  # every entry validated as its own resource type
        assert json.loads(bundle.model_dump_json()) == body
        assert unbound_codes(bundle) == []  # every status a code FHIR R4 defines
        assert [e["resource"]["id"] for e in body["entry"]] == \
            [e["fullUrl"].removeprefix("urn:uuid:") for e in body["entry"]]
        assert {type(e.resource).__name__ for e in bundle.entry} >= {
            "Patient", "ResearchStudy", "ResearchSubject", "CarePlan", "ServiceRequest"}
        read = ClientBundle(body, strict=True)
        assert [e.resource.resource_type for e in read.entry] == \
            [e["resource"]["resourceType"] for e in body["entry"]]


def _by_type(body):
    found: dict[str, list[tuple[str, dict]]] = {}
    for entry in body["entry"]:
        found.setdefault(entry["resource"]["resourceType"], []).append(
            (entry["fullUrl"], entry["resource"]))
    return found


def test_bundle_holds_one_service_request_per_visit_as_the_schedule_has_it(
        client, site, reader):
    for code, participant_id in site.items():
        schedule = schedule_of(client, reader, participant_id)
        body = client.get(f"/v1/participants/{participant_id}/fhir", headers=reader).get_json()
        resources = _by_type(body)
        [(patient_url, patient)] = resources["Patient"]
        [(study_url, _)] = resources["ResearchStudy"]
        [(_, subject)] = resources["ResearchSubject"]
        [(_, plan)] = resources["CarePlan"]
        assert patient["identifier"][0]["value"] == code
        assert "name" not in patient  # pseudonymous: the code and nothing else
        assert subject["identifier"][0]["value"] == code
        assert subject["study"]["reference"] == study_url
        assert subject["individual"]["reference"] == patient_url
        assert subject["period"] == {"start": SCREENED if code == "ZS-002" else CRYO}
        protocol = schedule["protocol"]
        plan_definition = client.get(f"/v1/protocol/fhir?version={protocol['version']}")
        assert plan["instantiatesCanonical"] == \
            [f"{plan_definition.get_json()['url']}|{protocol['version']}"]
        requests = dict(resources["ServiceRequest"])
        assert [a["reference"]["reference"] for a in plan["activity"]] == list(requests)
        visits = [v for v in schedule["visits"] if v["kind"] not in NOT_A_VISIT]
        assert len(requests) == len(visits)
        for visit, request in zip(visits, requests.values(), strict=True):
            assert request["code"]["coding"] == [{"system": VISIT_KIND, "code": visit["kind"]}]
            assert request["status"] == REQUEST_STATUS[visit["status"]]
            assert request["subject"]["reference"] == patient_url
            window = visit["window"]
            assert request.get("occurrencePeriod") == (
                {"start": window["earliest"], "end": window["latest"]} if window else None)
            assert request["note"][0]["text"].startswith(visit["rule"]["text"])
            assert f"rule {visit['rule']['id']}" in request["note"][0]["text"]
        given = [v for v in schedule["visits"] if v["kind"] == "infusion"
                 and v["status"] == "done"]
        doses = [r for _, r in resources.get("MedicationAdministration", [])]
        assert [d["effectiveDateTime"] for d in doses] == [v["actual_date"] for v in given]


def test_bundle_maps_the_schedules_statuses(client, site, reader):
    def statuses(code):
        body = client.get(f"/v1/participants/{site[code]}/fhir", headers=reader).get_json()
        resources = _by_type(body)
        requests = {r["identifier"][0]["value"].split("/")[1].lower(): r["status"]
                    for _, r in resources["ServiceRequest"]}
        return resources["ResearchSubject"][0][1]["status"], \
            resources["CarePlan"][0][1]["status"], requests
    subject, plan, requests = statuses("ZS-003")
    assert (subject, plan) == ("on-study-intervention", "active")
    assert requests["c1d1"] == requests["c2d1"] == "completed"
    assert requests["baseline-imaging"] == "revoked"  # recorded as missed
    subject, plan, requests = statuses("ZS-001")  # recovery never recorded: provisional
    assert (subject, plan, requests["c1d1"]) == ("on-study", "active", "active")  # overdue
    subject, plan, requests = statuses("ZS-004")
    assert plan == "on-hold" and requests["c1d1"] == "on-hold"
    subject, plan, requests = statuses("ZS-005")
    assert (subject, plan) == ("off-study", "revoked")
    assert requests["c2d1"] == "revoked"  # skipped


def test_bundle_answers_304_to_its_etag_until_the_history_changes(client, site, reader,
                                                                  writer):
    url = f"/v1/participants/{site['ZS-002']}/fhir"
    first = client.get(url, headers=reader)
    tag = first.headers["ETag"]
    assert client.get(url, headers={**reader, "If-None-Match": tag}).status_code == 304
    assert client.post(f"/v1/participants/{site['ZS-002']}/events", headers=writer,
                       json={"type": "dose_given", "cycle": 2, "date": day(28)}).status_code \
        == 201
    changed = client.get(url, headers={**reader, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag


def test_participant_exports_need_a_key_and_a_known_participant(client, site, reader):
    pid = site["ZS-001"]
    for path in (f"/v1/participants/{pid}/fhir", f"/v1/participants/{pid}/schedule.csv",
                 "/v1/odm", "/v1/visits.csv"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.mimetype == "application/problem+json"
    for path in ("/v1/participants/00000000-0000-4000-8000-000000000000/fhir",
                 "/v1/participants/00000000-0000-4000-8000-000000000000/schedule.csv"):
        assert client.get(path, headers=reader).status_code == 404, path


# --- ODM -------------------------------------------------------------------------------------

def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def _odm(client, reader):
    response = client.get("/v1/odm", headers=reader)
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    return response, etree.fromstring(response.data)


def _without_extensions(document):
    stripped = etree.fromstring(etree.tostring(document))
    for element in stripped.iter():
        for name in [n for n in element.attrib if n.startswith("{")]:
            del element.attrib[name]
    return stripped


def test_odm_is_valid_against_the_odm_132_xsd(client, site, reader):
    _, document = _odm(client, reader)
    extended = _schema("trial-schedule-extension.xsd")
    assert extended.validate(document), extended.error_log
    published = _schema("ODM1-3-2.xsd")
    # Undeclared attributes are refused by the published schema alone; everything but the
    # declared extension attributes is plain ODM 1.3.2.
    assert not published.validate(document)
    assert published.validate(_without_extensions(document)), published.error_log


def test_odm_validation_refuses_what_the_schema_does_not_allow(client, site, reader):
    _, document = _odm(client, reader)
    extended = _schema("trial-schedule-extension.xsd")
    event = document.find(f".//{{{ODM}}}StudyEventData")
    event.set(f"{{{OPENCLINICA}}}Status", "postponed")
    assert not extended.validate(document)
    event.set(f"{{{OPENCLINICA}}}Status", "scheduled")
    assert extended.validate(document)
    del document.find(f".//{{{ODM}}}StudyEventDef").attrib["Repeating"]
    assert not extended.validate(document)


def test_odm_holds_each_participants_visits_as_the_schedule_has_them(client, site, reader):
    _, document = _odm(client, reader)
    subjects = {s.get("SubjectKey"): s for s in document.iter(f"{{{ODM}}}SubjectData")}
    assert set(subjects) == set(HISTORIES)
    ts = f"{{{TRIAL_SCHEDULE}}}"
    in_use = set()
    for code, participant_id in site.items():
        schedule = schedule_of(client, reader, participant_id)
        in_use.add(f"MDV.{schedule['protocol']['version']}")
        clinical = subjects[code].getparent()
        assert clinical.get("MetaDataVersionOID") == \
            f"MDV.{schedule['protocol']['version']}"
        events = subjects[code].findall(f"{{{ODM}}}StudyEventData")
        visits = [v for v in schedule["visits"] if v["kind"] not in NOT_A_VISIT]
        assert [e.get(f"{ts}VisitID") for e in events] == [v["id"] for v in visits]
        for event, visit in zip(events, visits, strict=True):
            assert event.get("StudyEventOID") == event_oid(visit["kind"])
            assert event.get(f"{{{OPENCLINICA}}}StartDate") == \
                (visit["actual_date"] or visit["date"])
            assert event.get(f"{{{OPENCLINICA}}}Status") == OPENCLINICA_STATUS[visit["status"]]
            assert event.get(f"{ts}Status") == visit["status"]
            window = visit["window"] or {}
            assert (event.get(f"{ts}WindowStart"), event.get(f"{ts}WindowEnd")) == \
                (window.get("earliest"), window.get("latest"))
            if visit["kind"] == "infusion":
                assert event.get("StudyEventRepeatKey") == str(visit["cycle"])
    metadata = {m.get("OID") for m in document.iter(f"{{{ODM}}}MetaDataVersion")}
    # One MetaDataVersion per protocol version some participant is pinned to.
    assert metadata == in_use
    assert metadata <= {f"MDV.{v}" for v in available_versions()}
    clinical_versions = [c.get("MetaDataVersionOID")
                         for c in document.iter(f"{{{ODM}}}ClinicalData")]
    assert sorted(clinical_versions) == sorted(metadata)


def test_odm_answers_304_to_its_etag_and_dates_itself_by_the_latest_change(
        client, site, reader, monkeypatch):
    first, document = _odm(client, reader)
    changed = max(dt.datetime.fromisoformat(client.get(
        f"/v1/participants/{pid}", headers=reader).get_json()["updated_at"])
        for pid in site.values())
    # The histories were recorded after the start of the site's (frozen) day.
    assert dt.datetime.fromisoformat(document.get("CreationDateTime")) == \
        changed.replace(microsecond=0)
    assert document.get("FileOID").startswith(f"trial-schedule.{SITE_TODAY}.")
    tag = first.headers["ETag"]

    def never(*_):
        raise AssertionError("a revalidation computed the schedules")
    monkeypatch.setattr(odm, "schedules_of", never)  # answered from the versions alone
    again = client.get("/v1/odm", headers={**reader, "If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag


def test_odm_etag_moves_with_any_write_and_with_the_site_day(db_app, client, site, reader,
                                                            writer):
    tag = client.get("/v1/odm", headers=reader).headers["ETag"]
    assert client.post(f"/v1/participants/{site['ZS-002']}/events", headers=writer,
                       json={"type": "dose_given", "cycle": 2, "date": day(28)}).status_code \
        == 201
    written = client.get("/v1/odm", headers={**reader, "If-None-Match": tag})
    assert written.status_code == 200 and written.headers["ETag"] != tag
    event = etree.fromstring(written.data).find(
        f".//{{{ODM}}}SubjectData[@SubjectKey='ZS-002']/{{{ODM}}}StudyEventData"
        f"[@{{{TRIAL_SCHEDULE}}}VisitID='C2D1']")
    assert event.get(f"{{{OPENCLINICA}}}StartDate") == day(28)
    container(db_app).clock.freeze(dt.date.fromisoformat(SITE_TODAY) + dt.timedelta(days=1))
    next_day = client.get("/v1/odm", headers={**reader,
                                              "If-None-Match": written.headers["ETag"]})
    assert next_day.status_code == 200


# --- CSV -------------------------------------------------------------------------------------

def _rows(response):
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv; charset=utf-8")
    assert response.data.startswith(BOM.encode("utf-8"))
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8").removeprefix(BOM),
                                           newline="")))
    return rows


def test_schedule_csv_lists_every_visit_of_the_schedule_formula_safe(client, site, reader):
    for code, participant_id in site.items():
        response = client.get(f"/v1/participants/{participant_id}/schedule.csv",
                              headers=reader)
        rows = _rows(response)
        assert list(rows[0]) == list(COLUMNS)
        visits = schedule_of(client, reader, participant_id)["visits"]
        assert [(r["visit_id"], r["date"], r["status"], r["rule"]) for r in rows] == \
            [(v["id"], v["date"] or "", v["status"], v["rule"]["id"]) for v in visits]
        shown = "'" + code if code.startswith("-") else code
        assert {r["subject_code"] for r in rows} == {shown}
        tag = response.headers["ETag"]
        assert client.get(f"/v1/participants/{participant_id}/schedule.csv",
                          headers={**reader, "If-None-Match": tag}).status_code == 304


@pytest.mark.parametrize(("start", "end"), [
    ("2026-06-01", "2026-08-31"),
    # After open visits that decide whether a later chained one is due.
    ("2026-07-15", "2026-10-31")])
def test_visits_csv_lists_every_dated_visit_in_the_range(client, site, reader, start, end):
    rows = _rows(client.get(f"/v1/visits.csv?from={start}&to={end}", headers=reader))
    expected = set()
    for code, participant_id in site.items():
        shown = "'" + code if code.startswith("-") else code
        for visit in schedule_of(client, reader, participant_id)["visits"]:
            if visit["date"] and start <= visit["date"] <= end:
                expected.add((shown, visit["id"], visit["date"], visit["status"]))
    assert {(r["subject_code"], r["visit_id"], r["date"], r["status"]) for r in rows} == \
        expected
    assert len(rows) == len(expected) > 10
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)


def test_visits_csv_defaults_to_the_coming_week(client, site, reader):
    rows = _rows(client.get("/v1/visits.csv", headers=reader))
    assert all(SITE_TODAY <= r["date"] <= "2026-12-02" for r in rows)


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-08-01&to=2026-07-01", "to"),
    ("from=2026-13-01", "from"),
    ("to=yesterday", "to"),
    ("to=2026-01-01", "to"),  # before the site's today, the default 'from'
    ("from=2026-01-01&to=2027-06-01", "to"),  # more than 366 days
    ("format=xlsx", "format"),
])
def test_visits_csv_refuses_a_bad_range_naming_the_field(client, site, reader, query, field):
    response = client.get(f"/v1/visits.csv?{query}", headers=reader)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert list(response.get_json()["errors"]) == [field]
