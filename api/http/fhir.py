"""HL7 FHIR R4 views of the protocol and of a participant's schedule, for hospital systems and
research platforms that read FHIR rather than this API's JSON.

- `GET /v1/participants/{id}/fhir`: a `Bundle` of type `collection` (FHIR R4 §Bundle): the
  participant as a pseudonymous `Patient` (an identifier, the subject code, and nothing else),
  the trial's `ResearchStudy`, a `ResearchSubject` tying the two, a `CarePlan` whose activities
  reference one `ServiceRequest` per visit (its window as `occurrencePeriod`, the rule that
  placed it as a note) and one `MedicationAdministration` per dose given.
- `GET /v1/protocol/fhir`: the protocol as a `PlanDefinition` (type `clinical-protocol`) with one
  contained `ActivityDefinition` per visit kind, each action related to the action it is
  counted from (`relatedAction.offsetDuration`) and its window in the HL7 Vulcan Schedule of
  Activities extension `AcceptableOffsetRangeSoa`, as that IG (STU1, on R4) models a study's
  schedule of activities.

The resources are R4 (4.0.1) JSON; the suite validates them with `fhir.resources.R4B`, whose
models of these resources accept and produce R4's (R4B changed none of them). References inside
the bundle are `urn:uuid:` full URLs (FHIR R4 §Bundle.entry.fullUrl), derived from the
participant and visit ids, so the same schedule gives the same bytes and the same ETag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import NotFound as NotFoundError
from werkzeug.wrappers import Response as BaseResponse

from api.http.auth import requires
from api.http.context import container, site_today
from api.http.problems import problem_answers
from api.http.schemas import ProtocolQuerySchema
from api.persistence.records import StoredParticipant
from scheduler import Protocol, Schedule
from scheduler.model import Visit
from scheduler.outcomes import NOT_A_VISIT

blp = Blueprint("fhir", __name__, url_prefix="/v1",
                description="HL7 FHIR R4: a participant's schedule as a Bundle, the protocol as "
                            "a PlanDefinition. A participant's needs `Authorization: Bearer "
                            "<api key>`; the protocol's needs none.")

FHIR_JSON = "application/fhir+json"
# The trial registry the protocol id is a number of (ClinicalTrials.gov NCT numbers).
REGISTRY = "https://clinicaltrials.gov"
# This service's own naming systems and extensions: URNs, since it publishes no canonical site.
SUBJECT_CODE = "urn:trial-schedule:subject-code"
VISIT_IDENTIFIER = "urn:trial-schedule:visit"  # value: "<participant id>/<visit id>"
VISIT_KIND = "urn:trial-schedule:visit-kind"
RULE = "urn:trial-schedule:rule"
VISIT_STATUS_EXTENSION = "urn:trial-schedule:fhir:StructureDefinition/visit-status"
VISIT_DATE_EXTENSION = "urn:trial-schedule:fhir:StructureDefinition/visit-date"
ACTUAL_DATE_EXTENSION = "urn:trial-schedule:fhir:StructureDefinition/actual-date"
RULE_SOURCE_EXTENSION = "urn:trial-schedule:fhir:StructureDefinition/rule-source"
OFFSET_RANGE = "http://hl7.org/fhir/uv/vulcan-schedule/StructureDefinition/AcceptableOffsetRangeSoa"
UCUM = "http://unitsofmeasure.org"
PLAN_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
# The namespace of the bundle's urn:uuid full URLs (RFC 9562 §5.5, name-based).
BUNDLE_NAMESPACE = uuid.UUID("8f0b8f7e-6a0e-5b5e-9a36-54c1d8f2c7a1")

# A visit's status as a ServiceRequest's (FHIR R4 request-status): what is still to be done is
# active (provisional dates, before recovery is confirmed, are a draft); done is completed; what
# will not be done (missed, skipped, cancelled) is revoked; a held dose is on hold. The exact
# status travels beside it in the visit-status extension.
REQUEST_STATUS = {"planned": "active", "due": "active", "overdue": "active",
                  "provisional": "draft", "done": "completed", "missed": "revoked",
                  "skipped": "revoked", "cancelled": "revoked", "held": "on-hold"}
# The schedule's state as the ResearchSubject's (FHIR R4 research-subject-status) and the
# CarePlan's (request-status).
SUBJECT_STATUS = {"provisional": "on-study", "on_hold": "on-study",
                  "scheduled": "on-study-intervention", "discontinued": "follow-up",
                  "completed": "follow-up", "off_study": "off-study"}
PLAN_STATUS = {"provisional": "active", "on_hold": "on-hold", "scheduled": "active",
               "discontinued": "active", "completed": "active", "off_study": "revoked"}


def full_url(*names: str) -> str:
    """A stable urn:uuid for a resource of the bundle, named by what it stands for."""
    return f"urn:uuid:{uuid.uuid5(BUNDLE_NAMESPACE, '/'.join(names))}"


def fhir_id(name: str) -> str:
    """A name as a FHIR `id` (R4 §2.24.0.1: letters, digits, `-` and `.`): response_imaging
    becomes response-imaging."""
    return name.replace("_", "-")


def _ref(url: str, display: str | None = None) -> dict[str, str]:
    return {"reference": url, **({"display": display} if display else {})}


def _days(value: int, unit: str = "d") -> dict[str, Any]:
    names = {"d": "days", "wk": "weeks", "mo": "months"}
    return {"value": value, "unit": names[unit], "system": UCUM, "code": unit}


def _ext(url: str, kind: str, value: Any) -> dict[str, Any]:
    return {"url": url, kind: value}


def _entry(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A bundle entry; the resource's id is its full URL's UUID, so no two participants'
    resources share an id when a server loads several bundles."""
    return {"fullUrl": url, "resource": {"resourceType": resource["resourceType"],
                                         "id": url.removeprefix("urn:uuid:"), **resource}}


def plan_url(protocol: Protocol) -> str:
    """The canonical URL of the protocol's PlanDefinition; with `|version` it names one
    version (FHIR R4 §2.31.0.2, canonical references)."""
    return f"urn:trial-schedule:PlanDefinition/{protocol.id}"


def research_study(protocol: Protocol) -> dict[str, Any]:
    """The trial, as the ResearchStudy a ResearchSubject belongs to."""
    return {"resourceType": "ResearchStudy",
            "identifier": [{"system": REGISTRY, "value": protocol.id}],
            "title": protocol.title, "status": "active"}


def service_request(participant_id: str, patient: str, visit: Visit) -> dict[str, Any]:
    """One visit: the window in which it must happen as `occurrencePeriod`, the rule that
    placed it (its sentence, provenance and anchor) as a note."""
    rule = visit.rule
    extensions = [_ext(VISIT_STATUS_EXTENSION, "valueCode", visit.status)]
    if visit.date is not None:
        extensions.append(_ext(VISIT_DATE_EXTENSION, "valueDate", visit.date.isoformat()))
    if visit.actual_date is not None:
        extensions.append(_ext(ACTUAL_DATE_EXTENSION, "valueDate",
                               visit.actual_date.isoformat()))
    moved = (f"; moved from {rule.shifted_from.isoformat()}: {rule.shift_reason}"
             if rule.shifted_from else "")
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest", "extension": extensions,
        "identifier": [{"system": VISIT_IDENTIFIER, "value": f"{participant_id}/{visit.id}"}],
        "status": REQUEST_STATUS[visit.status], "intent": "plan",
        "code": {"coding": [{"system": VISIT_KIND, "code": visit.kind}], "text": visit.title},
        "subject": _ref(patient)}
    if visit.window is not None:
        resource["occurrencePeriod"] = {"start": visit.window.earliest.isoformat(),
                                        "end": visit.window.latest.isoformat()}
    resource["note"] = [{"text": f"{rule.text} (rule {rule.id}, {rule.source}; "
                                 f"{rule.anchor}{moved})"}]
    return resource


def medication_administration(protocol: Protocol, patient: str, visit: Visit,
                              request_url: str) -> dict[str, Any]:
    """A dose given: serplulimab on the day it was recorded (rule serplulimab)."""
    assert visit.actual_date is not None
    dose = str(protocol.rule("serplulimab").params.get("dose", ""))
    return {"resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": {"text": "serplulimab"},
            "subject": _ref(patient), "effectiveDateTime": visit.actual_date.isoformat(),
            "supportingInformation": [_ref(request_url, visit.id)],
            "dosage": {"text": f"{dose} IV, cycle {visit.cycle}",
                       "route": {"text": "intravenous"}}}


def participant_bundle(participant: StoredParticipant, schedule: Schedule,
                       protocol: Protocol) -> dict[str, Any]:
    """The participant's schedule as a FHIR R4 collection Bundle (see the module's text).
    Date markers (the end of required contraception) are not visits, and are left out."""
    pid, code = participant.id, participant.enrolment.subject_code
    patient, study, subject, plan = (full_url(pid, "Patient"), full_url(protocol.id),
                                     full_url(pid, "ResearchSubject"), full_url(pid, "CarePlan"))
    visits = [v for v in schedule.visits if v.kind not in NOT_A_VISIT]
    requests = [(full_url(pid, "visit", v.id), v) for v in visits]
    doses = [(full_url(pid, "dose", v.id), url, v) for url, v in requests
             if v.kind == "infusion" and v.status == "done" and v.actual_date is not None]
    # Participation starts at consent and screening when it is recorded, else at the
    # cryoablation, the first thing the protocol does.
    enrolment = participant.enrolment
    started = enrolment.screening_date or enrolment.cryoablation_date
    dated = [v.window for v in visits if v.window is not None]
    care_plan: dict[str, Any] = {
        "resourceType": "CarePlan", "status": PLAN_STATUS[schedule.state],
        # The protocol version it follows: GET /v1/protocol/fhir?version=… answers it.
        "instantiatesCanonical": [f"{plan_url(protocol)}|{protocol.version}"],
        "intent": "plan", "title": f"{protocol.id} visit schedule ({schedule.state})",
        "subject": _ref(patient),
        "activity": [{"reference": _ref(url, v.title)} for url, v in requests]}
    if dated:
        care_plan["period"] = {"start": min(w.earliest for w in dated).isoformat(),
                               "end": max(w.latest for w in dated).isoformat()}
    entries = [
        _entry(patient, {"resourceType": "Patient",
                         "identifier": [{"system": SUBJECT_CODE, "value": code}]}),
        _entry(study, research_study(protocol)),
        _entry(subject, {"resourceType": "ResearchSubject",
                         "identifier": [{"system": SUBJECT_CODE, "value": code}],
                         "status": SUBJECT_STATUS[schedule.state],
                         "period": {"start": started.isoformat()},
                         "study": _ref(study, protocol.id), "individual": _ref(patient, code)}),
        _entry(plan, care_plan),
        *(_entry(url, service_request(pid, patient, v)) for url, v in requests),
        *(_entry(url, medication_administration(protocol, patient, v, request_url))
          for url, request_url, v in doses)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


class Timing(NamedTuple):
    """How the protocol places one kind of visit: the rule, the kind it is counted from (with
    FHIR's action-relationship-type), the offset and the window around it, each a parameter of
    a rule (rule id, parameter name), and a period for a kind that repeats."""

    rule: str
    anchor: str | None = None
    relationship: str = "after-end"
    offset: tuple[str, str, str] | None = None  # rule, parameter, UCUM unit
    window_before: tuple[str, str] | None = None
    window_after: tuple[str, str] | None = None
    every: tuple[str, str, str] | None = None  # rule, parameter, UCUM unit
    cycles: tuple[str, str] | None = None  # rule, parameter: how many times at most


# Each visit kind the engine plans, with the rule that places it (a test holds this table to the
# engine's schedules and to every packaged protocol version). Look-back visits (screening labs,
# pregnancy test, baseline imaging, pre-dose labs) must happen within so many days before the
# dose they qualify, so their window is 0 to N days before the infusion.
TIMINGS: dict[str, Timing] = {
    "cryoablation": Timing("cryoablation"),
    "recovery_check": Timing("recovery-gate", "cryoablation", "after-end",
                             ("pending-recovery-projection",
                              "assumed_recovery_days_after_cryoablation", "d")),
    "screening_labs": Timing("screening-labs", "infusion", "before-start",
                             window_after=("screening-labs", "days_before_first_dose")),
    "pregnancy_test": Timing("pregnancy-test", "infusion", "before-start",
                             window_after=("pregnancy-test", "days_before")),
    "baseline_imaging": Timing("baseline-imaging", "infusion", "before-start",
                               window_after=("baseline-imaging", "days_before_first_dose")),
    # The first dose: from the day recovery is confirmed to so many days after (later
    # cycles chain every cycle length, each with the dose window around it).
    "infusion": Timing("serplulimab", "recovery_check", "after-end",
                       window_after=("dose-window", "days_after"),
                       every=("serplulimab", "cycle_length_days", "d"),
                       cycles=("serplulimab", "max_cycles")),
    "predose_labs": Timing("predose-labs", "infusion", "before-start",
                           window_after=("predose-labs", "days_before_dose")),
    "response_imaging": Timing("response-imaging", "infusion", "after-start",
                               ("response-imaging", "on_treatment_every_weeks", "wk"),
                               ("response-imaging", "on_treatment_window_days"),
                               ("response-imaging", "on_treatment_window_days"),
                               ("response-imaging", "on_treatment_every_weeks", "wk")),
    "end_of_treatment": Timing("end-of-treatment", "infusion", "after-end",
                               ("end-of-treatment", "days_after_last_dose", "d"),
                               ("end-of-treatment", "window_days"),
                               ("end-of-treatment", "window_days")),
    "safety_follow_up": Timing("safety-follow-up", "infusion", "after-end",
                               ("safety-follow-up", "days_after_last_dose", "d"),
                               ("safety-follow-up", "window_days"),
                               ("safety-follow-up", "window_days")),
    "survival_follow_up": Timing("survival-follow-up", "safety_follow_up", "after-start",
                                 ("survival-follow-up", "every_weeks", "wk"),
                                 ("survival-follow-up", "window_days"),
                                 ("survival-follow-up", "window_days"),
                                 ("survival-follow-up", "every_weeks", "wk")),
    "os_landmark": Timing("os-landmark", "cryoablation", "after-start",
                          ("os-landmark", "months", "mo"), ("os-landmark", "window_days"),
                          ("os-landmark", "window_days")),
    "contraception_end": Timing("contraception", "infusion", "after-end",
                                ("contraception", "months_after_last_dose", "mo")),
}


def _param(protocol: Protocol, ref: tuple[str, ...] | None) -> int | None:
    """A rule's numeric parameter; None when this protocol version has no such rule or
    parameter (the action then says less, never something wrong)."""
    if ref is None or not protocol.has(ref[0]):
        return None
    value = protocol.rule(ref[0]).params.get(ref[1])
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "n"


def kind_title(protocol: Protocol, rule_id: str) -> str:
    """The rule's visit title with its numbers left open: "Serplulimab 300 mg IV, cycle n"."""
    rule = protocol.rule(rule_id)
    values = _Blank({name: str(value) for name, value in rule.params.items()})
    values["criteria"] = protocol.response_criteria
    return (rule.title or rule_id).format_map(values)


def _related(protocol: Protocol, timing: Timing) -> list[dict[str, Any]]:
    if timing.anchor is None:
        return []
    related: dict[str, Any] = {"actionId": fhir_id(timing.anchor),
                               "relationship": timing.relationship}
    offset = _param(protocol, timing.offset)
    related["offsetDuration"] = _days(offset or 0, timing.offset[2] if timing.offset else "d")
    before, after = _param(protocol, timing.window_before), _param(protocol, timing.window_after)
    if before is not None or after is not None:
        low, high = -(before or 0), after or 0
        if timing.relationship == "before-start":  # so many days before, at most
            low, high = 0, after or 0
        related["extension"] = [_ext(OFFSET_RANGE, "valueRange", {
            "low": _days(low), "high": _days(high)})]
    return [related]


def activity_definition(protocol: Protocol, kind: str, timing: Timing) -> dict[str, Any]:
    """One visit kind: what is done, and, for a kind that repeats, how often."""
    rule = protocol.rule(timing.rule)
    resource: dict[str, Any] = {
        "resourceType": "ActivityDefinition", "id": fhir_id(kind), "status": "active",
        "name": kind, "title": kind_title(protocol, timing.rule),
        "description": rule.text, "kind": "ServiceRequest",
        "code": {"coding": [{"system": VISIT_KIND, "code": kind}]}}
    every = _param(protocol, timing.every)
    if every is not None and timing.every is not None:
        repeat: dict[str, Any] = {"frequency": 1, "period": every,
                                  "periodUnit": timing.every[2]}
        count = _param(protocol, timing.cycles)
        if count is not None:
            repeat["count"] = count
        resource["timingTiming"] = {"repeat": repeat}
    return resource


def plan_definition(protocol: Protocol) -> dict[str, Any]:
    """The protocol's schedule of activities as a FHIR R4 PlanDefinition (see the module's
    text). Kinds whose rule this protocol version lacks are left out."""
    kinds = {kind: timing for kind, timing in TIMINGS.items() if protocol.has(timing.rule)}
    actions = []
    for kind, timing in kinds.items():
        rule = protocol.rule(timing.rule)
        action: dict[str, Any] = {
            "id": fhir_id(kind), "title": kind_title(protocol, timing.rule),
            "description": rule.text,
            "code": [{"coding": [{"system": RULE, "code": rule.id}]}],
            "reason": [{"extension": [_ext(RULE_SOURCE_EXTENSION, "valueCode", rule.source)],
                        "text": f"provenance: {rule.source}"}],
            "definitionCanonical": f"#{fhir_id(kind)}"}
        related = [r for r in _related(protocol, timing) if timing.anchor in kinds]
        if related:
            action["relatedAction"] = related
        actions.append(action)
    return {"resourceType": "PlanDefinition",
            "id": f"{protocol.id}-{protocol.version}", "url": plan_url(protocol),
            "identifier": [{"system": REGISTRY, "value": protocol.id}],
            "version": protocol.version, "name": protocol.id, "title": protocol.title,
            "type": {"coding": [{"system": PLAN_TYPE, "code": "clinical-protocol"}]},
            "status": "active",
            "date": protocol.modified.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "description": f"The visit schedule of trial {protocol.id}, protocol version "
                           f"{protocol.version}: each visit kind, the rule that places it and "
                           f"the window it must fall in.",
            "contained": [activity_definition(protocol, kind, timing)
                          for kind, timing in kinds.items()],
            "action": actions}


@lru_cache(maxsize=16)
def plan_definition_json(protocol: Protocol) -> bytes:
    """The PlanDefinition's bytes, once per protocol version (protocols never change)."""
    return json.dumps(plan_definition(protocol), ensure_ascii=False).encode()


def fhir_response(body: bytes) -> BaseResponse:
    """FHIR JSON with its ETag (a digest of the bytes); 304 to a matching If-None-Match."""
    response = Response(body, mimetype=FHIR_JSON)
    response.set_etag(hashlib.sha256(body).hexdigest())
    return response.make_conditional(request)


FHIR_DOC: Mapping[str, Any] = {"type": "object", "description": "A FHIR R4 resource",
                               "additionalProperties": True}
BUNDLE_EXAMPLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"fullUrl": "urn:uuid:5c0f1c52-4d0b-5d3e-8a0e-0e6a5b0c9d11",
     "resource": {"resourceType": "ServiceRequest", "id": "5c0f1c52-4d0b-5d3e-8a0e-0e6a5b0c9d11",
                  "status": "completed",
                  "intent": "plan", "code": {"text": "Serplulimab 300 mg IV, cycle 1"},
                  "subject": {"reference": "urn:uuid:0b1f0d44-9a51-5e7c-8f0d-3d4a7e2c6b10"},
                  "occurrencePeriod": {"start": "2026-03-09", "end": "2026-03-12"}}}]}
PLAN_EXAMPLE = {"resourceType": "PlanDefinition", "id": "NCT07064876-2026-11-25.2",
                "status": "active", "action": [{"id": "infusion", "relatedAction": [
                    {"actionId": "recovery-check", "relationship": "after-end",
                     "offsetDuration": _days(0)}]}]}


errors = problem_answers(blp, {401: "No valid API key",
                               403: "The API key's scope is too small",
                               404: "No participant with that id"})


@blp.route("/participants/<participant_id>/fhir")
class ParticipantFhirView(MethodView):
    @requires("read")
    @blp.response(200, FHIR_DOC, content_type=FHIR_JSON, example=BUNDLE_EXAMPLE,
                  description="A FHIR R4 Bundle of type collection",
                  headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Not modified")
    @errors(401, 403, 404)
    def get(self, participant_id: str) -> BaseResponse:
        """One participant's schedule as a FHIR R4 Bundle

        A `collection` Bundle: a pseudonymous Patient (the subject code only), the trial's
        ResearchStudy, the ResearchSubject, a CarePlan referencing one ServiceRequest per visit
        (status from the visit's, `occurrencePeriod` its window, the rule in a note) and a
        MedicationAdministration per dose given. Conditional GET with ETag."""
        service = container().participants
        participant, schedule = service.schedule(participant_id, site_today())
        bundle = participant_bundle(participant, schedule, service.protocol_of(participant))
        return fhir_response(json.dumps(bundle, ensure_ascii=False).encode())


@blp.route("/protocol/fhir")
class ProtocolFhirView(MethodView):
    @blp.arguments(ProtocolQuerySchema, location="query")
    @blp.response(200, FHIR_DOC, content_type=FHIR_JSON, example=PLAN_EXAMPLE,
                  description="A FHIR R4 PlanDefinition",
                  headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Not modified")
    @problem_answers(blp, {404: "No such protocol version"})(404)
    def get(self, query: dict[str, Any]) -> BaseResponse:
        """The protocol as a FHIR R4 PlanDefinition

        One contained ActivityDefinition per visit kind; each action names the rule that
        places it, the action it is counted from with the offset, and its window (HL7 Vulcan
        Schedule of Activities `AcceptableOffsetRangeSoa`). `?version=` gives an older
        protocol version. Needs no API key."""
        protocols = container().protocols
        version = query.get("version", protocols.current.version)
        if version not in protocols:
            raise NotFoundError(f"No protocol version {version!r}; available: "
                                f"{', '.join(protocols.versions)}.")
        return fhir_response(plan_definition_json(protocols.get(version)))
