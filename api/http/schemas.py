"""The wire format (docs/api-decisions.md) as marshmallow schemas: requests in, schedules out.

Unknown fields are rejected (marshmallow's default, `RAISE`). Request schemas load into the
engine's plain values; response schemas dump the engine's values.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, get_args

import marshmallow as ma
from marshmallow import fields, validate

from api.http.context import container
from scheduler.history import (
    EVENT_TYPES,
    LOOKBACK_DATES,
    LOOKBACK_NAMES,
    RECORDABLE,
    Enrolment,
    EventType,
    NewEvent,
    event_fields,
    event_optional_fields,
)
from scheduler.model import (
    Discontinuation,
    DoseRecord,
    DoseStatus,
    Lookbacks,
    ParticipantFacts,
    Recovery,
    RecoveryStatus,
    Schedule,
    State,
    Visit,
    VisitStatus,
)
from scheduler.notation import parse_date
from scheduler.protocol import DISCONTINUATION_REASONS, SOURCES, VISIT_KINDS
from scheduler.validation import MAX_HALF_LIFE_DAYS

TEXT_LIMIT = 500
RECOVERY_STATUSES: tuple[str, ...] = get_args(RecoveryStatus)
# C0 control characters and DEL: a person types none of them but tab and newline, and a
# calendar reader may refuse a whole feed over one.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(value: Any, limit: int = 40) -> str:
    """A value as JSON, cut short, for a message that quotes what was sent."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class IsoDate(fields.Date):
    """Exactly YYYY-MM-DD: not the basic form 20260302, not a week date 2026-W10-1, both of
    which Python's date.fromisoformat reads."""

    default_error_messages = {  # noqa: RUF012 (as marshmallow has it)
        "invalid": "{input} is not a date in the form YYYY-MM-DD."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if isinstance(value, str):
            try:
                return parse_date(value)
            except ValueError:
                pass
        raise self.make_error("invalid", input=shown(value))


class Text(fields.String):
    """Free text a person types: no control character but tab and newline (none at all when
    `single_line`)."""

    def __init__(self, *args: Any, single_line: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused = LINE_CONTROL if single_line else CONTROL
        self.allowed = "none" if single_line else "only tab and newline"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        found = self.refused.search(text)
        if found:
            raise ma.ValidationError(f"Contains the control character "
                                     f"U+{ord(found.group()):04X}; {self.allowed} allowed.")
        return text


def _date(description: str, **kwargs: Any) -> fields.Date:
    return IsoDate(metadata={"description": description}, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true and false: `"yes"`, `1` or `0` are not a clinical answer."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _strict_bool(description: str) -> fields.Boolean:
    return StrictBoolean(metadata={"description": description})


class RecoverySchema(ma.Schema):
    status = fields.String(required=True, validate=validate.OneOf(RECOVERY_STATUSES),
                           metadata={"description": "Recovery after cryoablation"})
    date = _date("Date recovery was confirmed (required when recovered), or the complication "
                 "was observed", allow_none=True)

    @ma.validates_schema
    def _date_when_recovered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("status") == "recovered" and data.get("date") is None:
            raise ma.ValidationError("Required when status is 'recovered'.", "date")
        if data.get("status") == "pending" and data.get("date") is not None:
            raise ma.ValidationError("Must be omitted while recovery is pending.", "date")

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> Recovery:
        return Recovery(data["status"], data.get("date"))


class DoseSchema(ma.Schema):
    cycle = fields.Integer(required=True, strict=True, validate=validate.Range(1, 99),
                           metadata={"description": "Cycle number, from 1"})
    status = fields.String(required=True, validate=validate.OneOf(get_args(DoseStatus)))
    date = _date("Date given (required when given; a skipped dose has none)", allow_none=True)
    reason = Text(validate=validate.Length(max=TEXT_LIMIT), allow_none=True)

    @ma.validates_schema
    def _date_when_given(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("status") == "given" and data.get("date") is None:
            raise ma.ValidationError("Required when status is 'given'.", "date")
        if data.get("status") == "skipped" and data.get("date") is not None:
            raise ma.ValidationError("A skipped dose has no date.", "date")

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> DoseRecord:
        return DoseRecord(data["cycle"], data["status"], data.get("date"), data.get("reason"))


class DiscontinuationSchema(ma.Schema):
    date = _date("Date treatment was permanently stopped", required=True)
    reason = Text(validate=validate.Length(max=TEXT_LIMIT), allow_none=True)
    reason_code = fields.String(
        validate=validate.OneOf(DISCONTINUATION_REASONS), load_default="other",
        metadata={"description": "Why treatment stopped (rule discontinuation-reason); "
                                 "`other` when absent, so a v1 request stays valid"})

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> Discontinuation:
        return Discontinuation(data["date"], data.get("reason"), data["reason_code"])


# What each look-back date is the date of, in the order of the Lookbacks type.
LOOKBACK_EVENTS = {
    "live_vaccine": "Last live or attenuated vaccine",
    "major_surgery": "Last major surgery",
    "systemic_antimicrobials_end": "End of systemic antimicrobial therapy",
    "radical_radiotherapy": "Last radical radiotherapy",
    "myocardial_infarction": "Last myocardial infarction",
    "other_trial_last_dose": "Last dose in another interventional trial",
    "prior_malignancy": "Last treatment of, or freedom from, another malignancy",
}


def lookback_fields(allow_none: bool) -> dict[str, fields.Field[Any]]:
    """The look-back dates; nullable in JSON, plain in a query string (which has no null)."""
    declared: dict[str, fields.Field[Any]] = {
        name: _date(description, allow_none=allow_none)
        for name, description in LOOKBACK_EVENTS.items()}
    declared["other_trial_half_life_days"] = fields.Float(
        allow_none=allow_none, allow_nan=False,
        validate=validate.Range(min=0, max=MAX_HALF_LIFE_DAYS, min_inclusive=False),
        metadata={"description": "Half-life of that trial's drug, in days",
                  "exclusiveMinimum": 0})
    return declared


if tuple(LOOKBACK_EVENTS) != LOOKBACK_DATES:
    raise RuntimeError("LOOKBACK_EVENTS must describe every look-back date, in order")


def lookbacks_from(data: dict[str, Any]) -> Lookbacks:
    """Take the look-back values out of loaded data."""
    return Lookbacks(**{name: data.pop(name) for name in LOOKBACK_NAMES if name in data})


class LookbacksSchema(ma.Schema.from_dict(lookback_fields(allow_none=True))):  # type: ignore[misc]
    """Dates of past events that exclusion criteria bound in time."""

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> Lookbacks:
        return lookbacks_from(data)


SCREENING_DATE = ("Date of consent and screening; the other-trial and prior-malignancy "
                  "look-backs count to it")


class ScheduleRequestSchema(ma.Schema):
    """A participant's facts, for the stateless calculator."""

    cryoablation_date = _date("Cryoablation date; inside the study period", required=True)
    recovery = fields.Nested(RecoverySchema, metadata={"description": "Pending if omitted"})
    childbearing_potential = _strict_bool("Schedules a serum pregnancy test when true")
    doses = fields.List(fields.Nested(DoseSchema), validate=validate.Length(max=24))
    discontinuation = fields.Nested(DiscontinuationSchema, allow_none=True)
    lookbacks = fields.Nested(LookbacksSchema)
    as_of = _date("Compute as of this date (the site's today); only decides whether an "
                  "unrecorded dose is overdue beyond the hold limit")
    screening_date = _date(SCREENING_DATE, allow_none=True)

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> ParticipantFacts:
        return ParticipantFacts(
            cryoablation_date=data["cryoablation_date"],
            recovery=data.get("recovery") or Recovery("pending"),
            childbearing_potential=data.get("childbearing_potential", False),
            doses=tuple(data.get("doses") or ()),
            discontinuation=data.get("discontinuation"),
            lookbacks=data.get("lookbacks") or Lookbacks(),
            as_of=data.get("as_of"),
            screening_date=data.get("screening_date"),
        )


class WindowSchema(ma.Schema):
    earliest = fields.Date(required=True)
    latest = fields.Date(required=True)


class RuleRefSchema(ma.Schema):
    id = fields.String(required=True, metadata={"description": "Protocol rule id"})
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    text = fields.String(required=True, metadata={"description": "The sentence it comes from"})
    anchor = fields.String(required=True, metadata={"description": "What the date counts from"})
    shifted_from = fields.Date(required=True, allow_none=True,
                               metadata={"description": "Target date before a working-day move"})
    shift_reason = fields.String(required=True, allow_none=True)


class VisitSchema(ma.Schema):
    id = fields.String(required=True, metadata={"description": "Stable visit id, e.g. C1D1"})
    kind = fields.String(required=True, validate=validate.OneOf(VISIT_KINDS))
    title = fields.String(required=True)
    cycle = fields.Integer(required=True, allow_none=True)
    date = fields.Date(required=True, allow_none=True,
                       metadata={"description": "Null for a held or cancelled visit"})
    window = fields.Nested(WindowSchema, required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(get_args(VisitStatus)))
    rule = fields.Nested(RuleRefSchema, required=True)


class WarningSchema(ma.Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    visit_id = fields.String(required=True, allow_none=True)


class ProtocolRefSchema(ma.Schema):
    id = fields.String(required=True)
    version = fields.String(required=True)


class ScheduleSchema(ma.Schema):
    """A computed schedule (docs/api-decisions.md); `schedule_dict` is its fast twin."""

    protocol = fields.Nested(ProtocolRefSchema, required=True)
    state = fields.String(required=True, validate=validate.OneOf(get_args(State)))
    first_dose_date = fields.Date(required=True, allow_none=True)
    visits = fields.List(fields.Nested(VisitSchema), required=True)
    warnings = fields.List(fields.Nested(WarningSchema), required=True)

    @ma.pre_dump
    def _from_domain(self, schedule: Schedule, **_: Any) -> dict[str, Any]:
        return {"protocol": {"id": schedule.protocol_id, "version": schedule.protocol_version},
                "state": schedule.state, "first_dose_date": schedule.first_dose_date,
                "visits": schedule.visits, "warnings": schedule.warnings}


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    """What `ScheduleSchema().dump(schedule)` gives (a test holds the two equal), built by
    hand at a twentieth of the cost: the hot path of every schedule answer."""
    return {
        "protocol": {"id": schedule.protocol_id, "version": schedule.protocol_version},
        "state": schedule.state,
        "first_dose_date": _iso(schedule.first_dose_date),
        "visits": [_visit_dict(visit) for visit in schedule.visits],
        "warnings": [{"code": w.code, "message": w.message, "visit_id": w.visit_id}
                     for w in schedule.warnings],
    }


def schedule_json(schedule: Schedule) -> bytes:
    """The schedule as a JSON body."""
    return json.dumps(schedule_dict(schedule), ensure_ascii=False).encode()


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def _visit_dict(visit: Visit) -> dict[str, Any]:
    window = None
    if visit.window is not None:
        window = {"earliest": _iso(visit.window.earliest), "latest": _iso(visit.window.latest)}
    rule = visit.rule
    return {"id": visit.id, "kind": visit.kind, "title": visit.title, "cycle": visit.cycle,
            "date": _iso(visit.date), "window": window, "status": visit.status,
            "rule": {"id": rule.id, "source": rule.source, "text": rule.text,
                     "anchor": rule.anchor, "shifted_from": _iso(rule.shifted_from),
                     "shift_reason": rule.shift_reason}}


class RuleSchema(ma.Schema):
    id = fields.String(required=True)
    source = fields.String(required=True)
    text = fields.String(required=True)
    params = fields.Dict(required=True)


class ProtocolVersionSchema(ma.Schema):
    version = fields.String(required=True)
    revision = fields.Integer(required=True, metadata={
        "description": "The protocol file's schema revision (2: the clinical review's "
                       "corrections)"})
    modified = fields.AwareDateTime(required=True, format="iso")
    current = fields.Boolean(required=True, metadata={
        "description": "New enrolments are pinned to it; the calculator computes under it"})


class ProtocolSchema(ma.Schema):
    """A protocol definition (the current one unless `?version=` names another), every rule
    with its provenance, and every version the service computes under."""

    id = fields.String(required=True)
    version = fields.String(required=True)
    title = fields.String(required=True)
    response_criteria = fields.String(required=True)
    study_start = fields.Date(required=True)
    study_completion = fields.Date(required=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True)
    versions = fields.List(fields.Nested(ProtocolVersionSchema), required=True, metadata={
        "description": "Every loaded version, oldest first. A stored participant stays on "
                       "the version it was enrolled under until a protocol_version_changed "
                       "event moves it"})


class ProtocolQuerySchema(ma.Schema):
    version = fields.String(validate=validate.Length(min=1, max=32), metadata={
        "description": "A version from `versions`; the current one when omitted"})


class FullMatch(validate.Regexp):
    """A pattern the whole value must match: `re.match` with `$` lets a trailing newline
    through ("ZS-DUP\\n"). The pattern keeps `^...$` for the OpenAPI document."""

    def __call__(self, value: str) -> str:  # type: ignore[override]
        if not isinstance(value, str) or re.fullmatch(str(self.regex.pattern), value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


SUBJECT_CODE = FullMatch(r"^[A-Za-z0-9_-]{1,32}$", error=(
    "1 to 32 letters, digits, '-' or '_': a pseudonymous code, never a name."))


def _subject_code(**kwargs: Any) -> fields.String:
    return fields.String(validate=SUBJECT_CODE, metadata={
        "description": "Pseudonymous subject code (1-32 letters, digits, - and _)"}, **kwargs)


class EnrolmentSchema(ma.Schema):
    """Enrol a participant."""

    subject_code = _subject_code(required=True)
    cryoablation_date = _date("Cryoablation date; inside the study period", required=True)
    childbearing_potential = _strict_bool("Schedules a serum pregnancy test when true")
    lookbacks = fields.Nested(LookbacksSchema)
    screening_date = _date(SCREENING_DATE, allow_none=True)

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> Enrolment:
        return Enrolment(data["subject_code"], data["cryoablation_date"],
                         data.get("childbearing_potential", False),
                         data.get("lookbacks") or Lookbacks(), data.get("screening_date"))


class EnrolmentPatchSchema(ma.Schema):
    """Correct enrolment data; the history records the change and the reason."""

    subject_code = _subject_code()
    cryoablation_date = _date("Cryoablation date; inside the study period")
    childbearing_potential = _strict_bool("Schedules a serum pregnancy test when true")
    lookbacks = fields.Nested(LookbacksSchema, metadata={"description": "Replaces all of them"})
    screening_date = _date(SCREENING_DATE, allow_none=True)
    reason = Text(required=True, validate=validate.Length(min=1, max=TEXT_LIMIT),
                  metadata={"description": "Why the data is corrected"})

    @ma.validates_schema
    def _something_to_change(self, data: dict[str, Any], **_: Any) -> None:
        if not set(data) - {"reason"}:
            raise ma.ValidationError("Name at least one field to correct.", "_schema")


class FeedLinksSchema(ma.Schema):
    https = fields.String(required=True, metadata={"description": "For Google and Outlook"})
    webcal = fields.String(required=True, metadata={"description": "For Apple and Thunderbird"})


class LinksSchema(ma.Schema):
    self = fields.String(required=True)
    schedule = fields.String(required=True)
    events = fields.String(required=True)


class LookbacksOutSchema(ma.Schema.from_dict(lookback_fields(allow_none=True))):  # type: ignore[misc]
    pass


class ParticipantSchema(ma.Schema):
    """A stored participant."""

    id = fields.String(required=True)
    subject_code = fields.String(required=True)
    cryoablation_date = fields.Date(required=True)
    childbearing_potential = fields.Boolean(required=True)
    lookbacks = fields.Nested(LookbacksOutSchema, required=True)
    screening_date = fields.Date(required=True, allow_none=True)
    protocol = fields.Nested(ProtocolRefSchema, required=True, metadata={
        "description": "The protocol version the schedule is computed under: the one the "
                       "participant was enrolled under, until a protocol_version_changed "
                       "event moves it"})
    version = fields.Integer(required=True, metadata={"description": "Raised by every change"})
    enrolled_at = fields.AwareDateTime(required=True, format="iso")
    enrolled_by = fields.String(required=True, metadata={"description": "API key name"})
    updated_at = fields.AwareDateTime(required=True, format="iso")
    links = fields.Nested(LinksSchema, required=True)
    feed = fields.Nested(FeedLinksSchema, required=True, allow_none=True, metadata={
        "description": "The participant's calendar feed: subscribe once, it follows every "
                       "change"})

    @ma.pre_dump
    def _from_domain(self, shown: Any, **_: Any) -> dict[str, Any]:
        participant, feed = shown
        enrolment = participant.enrolment
        path = f"/v1/participants/{participant.id}"
        return {"id": participant.id, "subject_code": enrolment.subject_code,
                "cryoablation_date": enrolment.cryoablation_date,
                "childbearing_potential": enrolment.childbearing_potential,
                "lookbacks": enrolment.lookbacks, "version": participant.version,
                "screening_date": enrolment.screening_date,
                "protocol": {"id": _protocol_id(), "version": participant.protocol_version},
                "enrolled_at": participant.enrolled_at, "enrolled_by": participant.enrolled_by,
                "updated_at": participant.updated_at, "feed": feed,
                "links": {"self": path, "schedule": f"{path}/schedule",
                          "events": f"{path}/events"}}


class ParticipantPageSchema(ma.Schema):
    items = fields.List(fields.Nested(ParticipantSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={
        "description": "Pass as `cursor` for the next page; null on the last"})


class PageQuerySchema(ma.Schema):
    cursor = Text(single_line=True, validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class EventInSchema(ma.Schema):
    """What happened: `recovery_confirmed` {date}, `complication` {date, description},
    `dose_given` {cycle, date}, `dose_skipped` {cycle, reason}, `discontinued` {date, reason},
    `correction` {event_id, reason}, `protocol_version_changed` {version, reason}."""

    type = fields.String(required=True, validate=validate.OneOf(RECORDABLE))
    date = IsoDate()
    cycle = fields.Integer(strict=True, validate=validate.Range(1, 99))
    reason = Text(validate=validate.Length(min=1, max=TEXT_LIMIT))
    description = Text(validate=validate.Length(min=1, max=TEXT_LIMIT))
    event_id = Text(single_line=True, validate=validate.Length(max=36))
    reason_code = fields.String(validate=validate.OneOf(DISCONTINUATION_REASONS), metadata={
        "description": "discontinued: why treatment stopped (rule discontinuation); `other` "
                       "when absent"})
    version = Text(single_line=True, validate=validate.Length(min=1, max=32), metadata={
        "description": "protocol_version_changed: the protocol version to move to, one of "
                       "GET /v1/protocol's `versions`"})

    @ma.validates_schema(skip_on_field_errors=False, pass_original=True)
    def _fields_of_the_type(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        kind = data.get("type")
        if kind not in EVENT_TYPES:
            return
        required = event_fields(kind)
        sent = original if isinstance(original, dict) else {}
        errors: dict[str, list[str]] = {}
        for name in required:
            if name not in sent:  # sent but not valid: its own message says why
                errors[name] = [f"Required for a {kind} event."]
        for name in set(data) - {"type", *required, *event_optional_fields(kind)}:
            errors[name] = [f"Not a field of a {kind} event."]
        if errors:
            raise ma.ValidationError(errors)

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> NewEvent:
        kind = EVENT_TYPES[data.pop("type")]
        return kind(**data)


class EventSchema(ma.Schema):
    """One recorded event, with who recorded it and when."""

    id = fields.String(required=True)
    seq = fields.Integer(required=True, metadata={"description": "Order of recording"})
    type = fields.String(required=True, validate=validate.OneOf(get_args(EventType)))
    date = fields.Date(allow_none=True)
    cycle = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True, attribute="corrects",
                             metadata={"description": "The event a correction voids"})
    reason_code = fields.String(allow_none=True, metadata={
        "description": "For discontinued: why treatment stopped"})
    version = fields.String(allow_none=True, metadata={
        "description": "For protocol_version_changed: the protocol version moved to"})
    changes = fields.List(fields.String(), metadata={
        "description": "For enrolment_corrected: field: old -> new; for "
                       "protocol_version_changed: the versions, then each visit moved, "
                       "added or removed"})
    recorded_by = fields.String(required=True)
    recorded_at = fields.AwareDateTime(required=True, format="iso")
    voided_by = fields.String(required=True, allow_none=True, metadata={
        "description": "The correction that voids this event, if any"})


class EventListSchema(ma.Schema):
    items = fields.List(fields.Nested(EventSchema), required=True)


class DateChangeSchema(ma.Schema):
    visit_id = fields.String(required=True)
    old_date = fields.Date(required=True, allow_none=True)
    new_date = fields.Date(required=True, allow_none=True)


class VisitDateSchema(ma.Schema):
    visit_id = fields.String(required=True)
    date = fields.Date(required=True, allow_none=True)


class VersionChangeSchema(ma.Schema):
    """What moving the participant to another protocol version changed."""

    old_version = fields.String(required=True)
    new_version = fields.String(required=True)
    moved = fields.List(fields.Nested(DateChangeSchema), required=True, metadata={
        "description": "Visits in both schedules whose date changed"})
    added = fields.List(fields.Nested(VisitDateSchema), required=True, metadata={
        "description": "Visits only the new version schedules"})
    removed = fields.List(fields.Nested(VisitDateSchema), required=True, metadata={
        "description": "Visits only the old version scheduled"})


class RecordedSchema(ma.Schema):
    event = fields.Nested(EventSchema, required=True)
    schedule = fields.Nested(ScheduleSchema, required=True)
    protocol_change = fields.Nested(VersionChangeSchema, metadata={
        "description": "Only for a protocol_version_changed event: every visit date it "
                       "changed"})


def _protocol_id() -> str:
    """The id of the protocol the service schedules (every loaded version shares it)."""
    return container().protocol.id
