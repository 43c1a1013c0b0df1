"""The site's schedules as a CDISC ODM 1.3.2 snapshot (`GET /v1/odm`), for an EDC such as
OpenClinica or LibreClinica.

- Study metadata: one `MetaDataVersion` per protocol version a participant is pinned to, each
  with one `StudyEventDef` per visit kind (ODM 1.3.2 §3.1.6: OID, Name, Repeating, Type) listed
  in its `Protocol` by `StudyEventRef`. The number of infusions, scans and survival calls
  depends on each participant's dates, so those kinds are repeating events (`Repeating="Yes"`)
  rather than one definition per visit id.
- Clinical data: one `ClinicalData` per protocol version, a `SubjectData` per participant (the
  subject code as `SubjectKey`) and a `StudyEventData` per visit, its `StudyEventRepeatKey`
  the cycle for infusions and pre-dose labs, else the visit's rank among its kind.

ODM 1.3.2 has no element for a planned date, a window or a status (timings come only in ODM
2.0), so they travel as vendor-extension attributes on `StudyEventData` (ODM 1.3.2 §2.6
"Vendor Extensions"): OpenClinica's own `OpenClinica:StartDate` and `OpenClinica:Status`, which
OpenClinica 3 writes and reads, and this service's `ts:VisitID`, `ts:WindowStart`,
`ts:WindowEnd` and `ts:Status` (the exact status). Everything else is plain ODM 1.3.2; the suite
validates the document against the published ODM 1.3.2 XSD with an extension schema declaring
exactly these attributes (tests/schemas/odm-1.3.2/).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import xml.etree.ElementTree as ET
from collections import Counter

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.wrappers import Response as BaseResponse

from api.http.auth import requires
from api.http.context import container, site_today
from api.http.fhir import TIMINGS, kind_title
from api.http.problems import problem_answers
from api.persistence.records import StoredParticipant
from api.usecases.exports import schedules_of, site_participants
from api.usecases.feeds import feeds_protocol_tag
from scheduler import Protocol, Schedule
from scheduler.model import Visit
from scheduler.outcomes import NOT_A_VISIT, UNSCHEDULED_RULE

blp = Blueprint("odm", __name__, url_prefix="/v1",
                description="CDISC ODM 1.3.2: every participant's visits, for an EDC. Needs "
                            "`Authorization: Bearer <api key>`.")

ODM = "http://www.cdisc.org/ns/odm/v1.3"
OPENCLINICA = "http://www.openclinica.org/ns/odm_ext_v130/v3.1"
TRIAL_SCHEDULE = "urn:trial-schedule:odm"
# Prefixes for serialising (process-wide, and only for these namespaces): ODM's is the default.
ET.register_namespace("", ODM)
ET.register_namespace("OpenClinica", OPENCLINICA)
ET.register_namespace("ts", TRIAL_SCHEDULE)
ODM_XML = "application/xml"
# Raise it whenever the document's shape changes (elements, attributes, mappings), so no
# client keeps a snapshot of the old shape under a current ETag.
ODM_SHAPE = "odm-1.3.2.1"

# Visit kinds that occur more than once in a schedule (a test holds this to the engine's).
REPEATING = frozenset({"infusion", "predose_labs", "response_imaging", "survival_follow_up",
                       "pregnancy_test", "unscheduled"})
# Events a participant may never have: the pregnancy test (only with childbearing potential)
# and unscheduled visits.
OPTIONAL = frozenset({"pregnancy_test", "unscheduled"})
# A visit's status as OpenClinica names an event's (subject event status): still to come is
# scheduled, done is completed, not done is skipped, no longer planned is not scheduled.
OPENCLINICA_STATUS = {"planned": "scheduled", "provisional": "scheduled", "due": "scheduled",
                      "overdue": "scheduled", "done": "completed", "missed": "skipped",
                      "skipped": "skipped", "cancelled": "not scheduled",
                      "held": "not scheduled"}


def event_oid(kind: str) -> str:
    """The StudyEventDef OID of a visit kind: SE.INFUSION, SE.RESPONSE_IMAGING."""
    return f"SE.{kind.upper()}"


def study_oid(protocol: Protocol) -> str:
    return f"S.{protocol.id}"


def metadata_oid(version: str) -> str:
    return f"MDV.{version}"


def visit_kinds(protocol: Protocol) -> list[tuple[str, str]]:
    """Each visit kind of this protocol version with its name: the planned kinds in protocol
    order, then unscheduled visits."""
    kinds = [(kind, kind_title(protocol, timing.rule)) for kind, timing in TIMINGS.items()
             if kind not in NOT_A_VISIT and protocol.has(timing.rule)]
    return [*kinds, ("unscheduled", UNSCHEDULED_RULE.text)]


def _sub(parent: ET.Element, tag: str, attributes: dict[str, str] | None = None,
         text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ODM}}}{tag}", attributes or {})
    element.text = text
    return element


def metadata_version(study: ET.Element, protocol: Protocol) -> None:
    """The protocol version's events: a StudyEventRef and a StudyEventDef per visit kind."""
    version = _sub(study, "MetaDataVersion", {
        "OID": metadata_oid(protocol.version),
        "Name": f"{protocol.id} protocol version {protocol.version}"})
    kinds = visit_kinds(protocol)
    refs = _sub(version, "Protocol")
    for order, (kind, _) in enumerate(kinds, start=1):
        _sub(refs, "StudyEventRef", {"StudyEventOID": event_oid(kind),
                                     "OrderNumber": str(order),
                                     "Mandatory": "No" if kind in OPTIONAL else "Yes"})
    for kind, name in kinds:
        _sub(version, "StudyEventDef", {
            "OID": event_oid(kind), "Name": name,
            "Repeating": "Yes" if kind in REPEATING else "No",
            "Type": "Unscheduled" if kind == "unscheduled" else "Scheduled"})


def repeat_keys(schedule: Schedule) -> dict[str, str]:
    """Each repeating visit's StudyEventRepeatKey: the cycle of an infusion or its pre-dose
    labs (stable whatever happens to other cycles), else its rank among the visits of its kind
    in the schedule's order (IMG-3 is the third scan)."""
    seen: Counter[str] = Counter()
    keys = {}
    for visit in schedule.visits:
        if visit.kind not in REPEATING:
            continue
        seen[visit.kind] += 1
        keys[visit.id] = str(visit.cycle if visit.cycle is not None else seen[visit.kind])
    return keys


def _ts(name: str) -> str:
    return f"{{{TRIAL_SCHEDULE}}}{name}"


def event_data(subject: ET.Element, visit: Visit, repeat_key: str | None) -> None:
    """One visit: its day as OpenClinica:StartDate (the day it was done, once done), its
    status, and its window."""
    attributes = {"StudyEventOID": event_oid(visit.kind)}
    if repeat_key is not None:
        attributes["StudyEventRepeatKey"] = repeat_key
    day = visit.actual_date or visit.date
    if day is not None:
        attributes[f"{{{OPENCLINICA}}}StartDate"] = day.isoformat()
    attributes[f"{{{OPENCLINICA}}}Status"] = OPENCLINICA_STATUS[visit.status]
    attributes[_ts("VisitID")] = visit.id
    if visit.window is not None:
        attributes[_ts("WindowStart")] = visit.window.earliest.isoformat()
        attributes[_ts("WindowEnd")] = visit.window.latest.isoformat()
    attributes[_ts("Status")] = visit.status
    _sub(subject, "StudyEventData", attributes)


def snapshot_tag(protocol_tag: str, today: dt.date,
                 listed: list[StoredParticipant]) -> str:
    """What the snapshot is a function of, as a digest: the document's shape (ODM_SHAPE), the
    protocol versions and holiday data (`protocol_tag`, as the feeds use it), the site's day
    (due and overdue), and every participant's version (raised by every write). A client
    holding it is answered 304 before any history is read."""
    versions = ",".join(f"{p.id}:{p.version}" for p in listed)
    return hashlib.sha256(
        f"{ODM_SHAPE}|{protocol_tag}|{today.isoformat()}|{versions}".encode()).hexdigest()


def odm_document(protocols: dict[str, Protocol],
                 schedules: list[tuple[StoredParticipant, Schedule]],
                 today: dt.date, created: dt.datetime, tag: str) -> bytes:
    """The snapshot: study metadata for every protocol version in use (the current one at
    least), then each version's participants. `created` is the file's CreationDateTime, `tag`
    its snapshot_tag (named in the FileOID)."""
    current = next(iter(protocols.values()))
    by_version = {version: [item for item in schedules
                            if item[1].protocol_version == version] for version in protocols}
    root = ET.Element(f"{{{ODM}}}ODM", {
        "FileType": "Snapshot", "Granularity": "All",
        "FileOID": f"trial-schedule.{today.isoformat()}.{tag[:16]}",
        "CreationDateTime": created.isoformat(timespec="seconds"),
        "ODMVersion": "1.3.2", "Originator": "trial-schedule", "SourceSystem": "trial-schedule"})
    study = _sub(root, "Study", {"OID": study_oid(current)})
    variables = _sub(study, "GlobalVariables")
    _sub(variables, "StudyName", text=current.id)
    _sub(variables, "StudyDescription", text=current.title)
    _sub(variables, "ProtocolName", text=current.id)
    for protocol in protocols.values():
        metadata_version(study, protocol)
    for version, items in by_version.items():
        if not items:
            continue
        clinical = _sub(root, "ClinicalData", {"StudyOID": study_oid(current),
                                               "MetaDataVersionOID": metadata_oid(version)})
        for participant, schedule in items:
            subject = _sub(clinical, "SubjectData",
                           {"SubjectKey": participant.enrolment.subject_code})
            keys = repeat_keys(schedule)
            for visit in schedule.visits:
                if visit.kind not in NOT_A_VISIT:
                    event_data(subject, visit, keys.get(visit.id))
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def _versions_in_use(schedules: list[tuple[StoredParticipant, Schedule]]) -> dict[str, Protocol]:
    """The current protocol first, then every other version a participant is pinned to."""
    protocols = container().protocols
    used = {protocols.current.version: protocols.current}
    for version in sorted({schedule.protocol_version for _, schedule in schedules}):
        used.setdefault(version, protocols.get(version))
    return used


ODM_EXAMPLE = """<?xml version='1.0' encoding='utf-8'?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" \
xmlns:OpenClinica="http://www.openclinica.org/ns/odm_ext_v130/v3.1" \
xmlns:ts="urn:trial-schedule:odm" FileType="Snapshot" ODMVersion="1.3.2" …>
  <ClinicalData StudyOID="S.NCT07064876" MetaDataVersionOID="MDV.2026-11-25.2">
    <SubjectData SubjectKey="ZS-001">
      <StudyEventData StudyEventOID="SE.INFUSION" StudyEventRepeatKey="1" \
OpenClinica:StartDate="2026-03-09" OpenClinica:Status="completed" ts:VisitID="C1D1" \
ts:WindowStart="2026-03-09" ts:WindowEnd="2026-03-12" ts:Status="done" />
    </SubjectData>
  </ClinicalData>
</ODM>
"""


@blp.route("/odm")
class OdmView(MethodView):
    @requires("read")
    @blp.response(200, {"type": "string", "description": "A CDISC ODM 1.3.2 XML document"},
                  content_type=ODM_XML, example=ODM_EXAMPLE,
                  description="A CDISC ODM 1.3.2 snapshot",
                  headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Not modified")
    @problem_answers(blp, {401: "No valid API key",
                           403: "The API key's scope is too small"})(401, 403)
    def get(self) -> BaseResponse:
        """Every participant's visits as CDISC ODM 1.3.2

        Study metadata (a StudyEventDef per visit kind, per protocol version in use) and
        ClinicalData with a StudyEventData per participant visit: its date and OpenClinica
        status as `OpenClinica:StartDate` / `OpenClinica:Status`, the visit id, window and
        exact status as `ts:` attributes. Valid against the ODM 1.3.2 XSD with those
        extension attributes declared. Conditional GET with ETag."""
        today = site_today()
        service = container().participants
        listed = site_participants(service)
        tag = snapshot_tag(feeds_protocol_tag(container().protocols), today, listed)
        if request.if_none_match.contains_weak(tag):
            not_modified = Response(status=304)
            not_modified.set_etag(tag)
            return not_modified
        schedules = schedules_of(service, listed, today)
        # What the file shows was fixed by the latest change or by the site's day starting
        # (due and overdue change with the day), whichever came last: the same data on the
        # same day give the same bytes.
        day_began = dt.datetime.combine(today, dt.time(), tzinfo=container().clock.zone)
        created = max([day_began, *(p.updated_at for p in listed)]).astimezone(dt.UTC)
        body = odm_document(_versions_in_use(schedules), schedules, today, created, tag)
        response = Response(body, mimetype=ODM_XML)
        response.set_etag(tag)
        return response.make_conditional(request)
