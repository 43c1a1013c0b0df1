"""The stateless calculator: the protocol, and schedules computed from facts in the request."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import replace
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.exceptions import NotModified  # type: ignore[import-untyped]
from marshmallow import fields, validate
from werkzeug.exceptions import NotFound as NotFoundError

from api.http import example_responses as answers
from api.http import examples
from api.http.context import container, site_today
from api.http.feeds import calendar, documented
from api.http.problems import PROBLEM_JSON, ProblemSchema, domain_problem
from api.http.schemas import (
    RECOVERY_STATUSES,
    FullMatch,
    IsoDate,
    ProtocolQuerySchema,
    ProtocolSchema,
    ScheduleRequestSchema,
    ScheduleSchema,
    lookback_fields,
    lookbacks_from,
    outcomes_from,
)
from api.usecases.feeds import Feed
from api.usecases.schedules import Question, Schedules
from scheduler import ScheduleInputError
from scheduler.history import LOOKBACK_NAMES
from scheduler.ical import render_calendar, schedule_events
from scheduler.model import (
    Discontinuation,
    DoseRecord,
    ParticipantFacts,
    Recovery,
)
from scheduler.notation import parse_dose_given
from scheduler.outcomes import NO_OUTCOMES, OFF_STUDY_REASONS


class WeakEtagBlueprint(Blueprint):
    """flask-smorest's ETag check, with If-None-Match's weak comparison (RFC 9110 §13.1.2):
    `W/"x"` matches `"x"`."""

    def _check_not_modified(self, etag: str) -> None:
        if request.method in ("GET", "HEAD") and request.if_none_match.contains_weak(etag):
            raise NotModified


blp = WeakEtagBlueprint("calculator", __name__, url_prefix="/v1",
                description="Compute schedules from facts in the request; nothing is stored.")

JSON_ERRORS = {
    400: ("Bad Request", "The request body is not valid JSON."),
    413: ("Request Entity Too Large", "The request body is larger than 64 KiB."),
    415: ("Unsupported Media Type", "The request body must be application/json."),
}


def service() -> Schedules:
    return container().schedules


def document_json_errors(view: Any) -> Any:
    """Document the errors any JSON-body endpoint can answer."""
    for status, (title, detail) in JSON_ERRORS.items():
        view = blp.alt_response(status, description=title, schema=ProblemSchema,
                                content_type=PROBLEM_JSON,
                                example=examples.http_problem(status, title, detail))(view)
    return document_invalid_input(view)


def document_invalid_input(view: Any) -> Any:
    return blp.alt_response(422, description="Invalid input, or facts the protocol rules out",
                            schema=ProblemSchema, content_type=PROBLEM_JSON,
                            examples={"invalid-input": {"value": examples.INVALID_INPUT},
                                      "protocol-rule": {"value": examples.PROTOCOL_RULE}})(view)


@blp.route("/protocol")
class ProtocolView(MethodView):
    @blp.etag
    @blp.arguments(ProtocolQuerySchema, location="query")
    @blp.response(200, ProtocolSchema, example=answers.PROTOCOL)
    @blp.alt_response(404, description="No such protocol version", schema=ProblemSchema,
                      content_type=PROBLEM_JSON)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The current protocol definition (or the version `?version=` names), every rule
        with its provenance, and every version participants may be pinned to

        Each timing rule as data: its id, parameters, source (`record`, `label`, `typical`
        or `assumed`) and the sentence of the protocol it comes from. The example shows two
        of the rules. New enrolments are pinned to the version marked `current`. Open to
        everyone; answers 304 to a matching If-None-Match.
        """
        protocols = container().protocols
        version = query.get("version", protocols.current.version)
        if version not in protocols:
            raise NotFoundError(f"No protocol version {version!r}; available: "
                                f"{', '.join(protocols.versions)}.")
        protocol = protocols.get(version)
        return {"id": protocol.id, "version": protocol.version, "title": protocol.title,
                "response_criteria": protocol.response_criteria,
                "study_start": protocol.study_start,
                "study_completion": protocol.study_completion,
                "rules": list(protocol.rules.values()),
                "versions": [{"version": p.version, "revision": p.revision,
                              "modified": p.modified, "current": p is protocols.current}
                             for p in protocols.by_version.values()]}


# One instance for every request: webargs builds a schema (and, lazily, each nested one, with
# a deep copy of its fields) per request when given the class.
SCHEDULE_REQUEST = ScheduleRequestSchema()


@blp.route("/schedules")
class SchedulesView(MethodView):
    @documented(blp.arguments(ScheduleRequestSchema, example=examples.SCHEDULE_REQUEST),
                blp.response(200, ScheduleSchema, example=examples.schedule_response()),
                document_json_errors)
    def post(self) -> Response:
        """Compute a schedule from a participant's facts and visit outcomes; stores nothing

        The whole schedule under the current protocol version on the site's working days:
        every visit with its date, window, status and the rule that placed it (with the
        anchor it was counted from and any move off a weekend or holiday). Facts dated after
        the site's today (or `as_of`), other than the cryoablation, are refused. Open to
        everyone; nothing is stored.
        """
        svc = service()
        today = site_today()
        raw = request.get_data()  # kept: the parser reads it from the request again
        key = svc.answer_key(raw, today)
        answer = svc.answers.get(key)
        if answer is None:
            # The same parser as every other view (errors, unknown fields, JSON rules).
            asked = Blueprint.ARGUMENTS_PARSER.parse(SCHEDULE_REQUEST, request, location="json")
            try:
                asked = on_site_today(asked, today)
                answer = svc.encoded(asked, asked.facts.as_of)
            except ScheduleInputError as error:
                return domain_problem(error)
            # These bytes parsed to these facts: the next identical request on the same day
            # is answered without parsing them again.
            svc.answers.put(key, answer)
        # schedule_json (schemas.py) gives the ScheduleSchema shape (a test holds the two
        # equal) at a twentieth of marshmallow's dump cost, once per distinct facts.
        return Response(answer, mimetype="application/json")


def _dose_given(value: str) -> None:
    try:
        parse_dose_given(value)
    except ValueError as error:
        raise ma.ValidationError(str(error)) from error


def on_site_today(asked: Question, today: dt.date) -> Question:
    """The question as of `as_of`, or the site's today when the caller gave none. That day is
    the calculator's today (api-contract: "the stateless calculator uses `as_of` when
    given"): it decides what is due and overdue, and a fact dated after it is refused (rule
    future-facts)."""
    if asked.facts.as_of is not None:
        return asked
    return Question(replace(asked.facts, as_of=today), asked.outcomes)


VISIT_DONE = r"^[A-Z0-9-]{1,32}:\d{4}-\d{2}-\d{2}$"


class ScheduleQuerySchema(ma.Schema.from_dict(lookback_fields(allow_none=False))):  # type: ignore[misc]
    """The calculator's inputs as query parameters, for a calendar link."""

    cryoablation_date = IsoDate(required=True)
    recovery_status = fields.String(load_default="pending",
                                    validate=validate.OneOf(RECOVERY_STATUSES))
    recovery_date = IsoDate()
    childbearing_potential = fields.Boolean(truthy={"true"}, falsy={"false"})
    dose_given = fields.List(fields.String(validate=_dose_given), metadata={
        "description": "A dose given, as CYCLE:YYYY-MM-DD (or CYCLE=YYYY-MM-DD), cycles "
                       "from 1; repeat for each"})
    dose_skipped = fields.List(fields.Integer(validate=validate.Range(1, 99)),
                               metadata={"description": "A skipped cycle; repeat for each"})
    discontinuation_date = IsoDate()
    screening_date = IsoDate(metadata={
        "description": "Date of consent and screening; the other-trial and prior-malignancy "
                       "look-backs count to it"})
    as_of = IsoDate()
    cryoablation_done = IsoDate(metadata={"description": "The cryoablation took place"})
    visit_done = fields.List(fields.String(validate=FullMatch(VISIT_DONE)), metadata={
        "description": "A visit done, as VISIT_ID:YYYY-MM-DD; repeat for each"})
    visit_missed = fields.List(fields.String(validate=validate.Length(1, 32)), metadata={
        "description": "A visit missed, by id; repeat for each"})
    unscheduled_visit = fields.List(IsoDate(), metadata={
        "description": "The date of an unscheduled visit; repeat for each"})
    off_study = IsoDate(metadata={"description": "The date the participant left the study"})
    off_study_reason = fields.String(load_default="other",
                                     validate=validate.OneOf(OFF_STUDY_REASONS))

    @ma.validates_schema(pass_original=True)
    def _status_with_recovery_date(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        if "recovery_date" in data and "recovery_status" not in original:
            raise ma.ValidationError("Send recovery_status (recovered or complication) with "
                                     "recovery_date.", "recovery_status")

    @ma.post_load
    def _to_domain(self, data: dict[str, Any], **_: Any) -> Any:
        lookbacks = lookbacks_from(data)
        doses = []
        dose_fields = []  # the query parameter each dose came from, in the same order
        for index, item in enumerate(data.get("dose_given", [])):
            cycle, when = parse_dose_given(item)  # validated above
            dose_fields.append(f"dose_given.{index}")
            doses.append(DoseRecord(cycle, "given", when))
        for index, cycle_number in enumerate(data.get("dose_skipped", [])):
            dose_fields.append(f"dose_skipped.{index}")
            doses.append(DoseRecord(cycle_number, "skipped"))
        stop = data.get("discontinuation_date")
        done = []
        for index, item in enumerate(data.get("visit_done", [])):
            visit_id, _, day = item.partition(":")
            try:
                done.append({"visit_id": visit_id, "date": dt.date.fromisoformat(day)})
            except ValueError as error:
                raise ma.ValidationError({"visit_done": {index: ["Not a valid date."]}}) \
                    from error
        left = data.get("off_study")
        outcomes = outcomes_from({
            "cryoablation_done": {"date": data["cryoablation_done"]}
            if "cryoablation_done" in data else None,
            "visits_done": done,
            "visits_missed": [{"visit_id": v} for v in data.get("visit_missed", [])],
            "unscheduled_visits": [{"date": d} for d in data.get("unscheduled_visit", [])],
            "off_study": {"date": left, "reason": data["off_study_reason"]} if left else None})
        facts = ParticipantFacts(
            data["cryoablation_date"], Recovery(data["recovery_status"],
                                                data.get("recovery_date")),
            data.get("childbearing_potential", False), tuple(doses),
            Discontinuation(stop) if stop else None, lookbacks, data.get("as_of"),
            data.get("screening_date"))
        return Question(facts, outcomes), dose_fields


def query_field_names(dose_fields: list[str]) -> dict[str, str]:
    """Domain field paths (doses.1.date) as the query parameters they came from."""
    names = {"recovery.date": "recovery_date", "discontinuation.date": "discontinuation_date"}
    for index, name in enumerate(dose_fields):
        for part in ("cycle", "date"):
            names[f"doses.{index}.{part}"] = name
    names.update({f"lookbacks.{n}": n for n in LOOKBACK_NAMES})
    names.update({"cryoablation_done.date": "cryoablation_done", "off_study.date": "off_study"})
    for index in range(200):
        names[f"visits_done.{index}.visit_id"] = names[f"visits_done.{index}.date"] = \
            "visit_done"
        names[f"visits_missed.{index}.visit_id"] = "visit_missed"
        names[f"unscheduled_visits.{index}.date"] = "unscheduled_visit"
    return names


def calendar_key(asked: ParticipantFacts | Question) -> str:
    """An opaque key for a calendar computed from these facts alone: the same facts give the
    same UIDs, and nothing about the participant can be read back from it. `as_of` is left
    out: it decides warnings and day statuses only, never a visit, so the events keep their
    UIDs from day to day. Facts without outcomes keep the key they had before outcomes
    existed."""
    if isinstance(asked, Question) and asked.outcomes == NO_OUTCOMES:
        asked = asked.facts
    if isinstance(asked, Question):
        asked = Question(replace(asked.facts, as_of=None), asked.outcomes)
    else:
        asked = replace(asked, as_of=None)
    canonical = json.dumps(repr(asked), sort_keys=True).encode()
    return "calc-" + hashlib.sha256(canonical).hexdigest()


@blp.route("/schedules.ics")
class ScheduleCalendarView(MethodView):
    @blp.arguments(ScheduleQuerySchema, location="query", as_kwargs=False)
    @blp.response(200, {"type": "string", "description": "An RFC 5545 iCalendar file"},
                  description="The schedule as an iCalendar file", content_type="text/calendar",
                  example=answers.CALENDAR,
                  headers={"ETag": {"schema": {"type": "string"}},
                           "Last-Modified": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Not modified since the ETag given in If-None-Match")
    @document_invalid_input
    def get(self, parsed: tuple[Question, list[str]]) -> Response:
        """The same computation as POST /v1/schedules, as a calendar file

        The facts travel as query parameters (`dose_given=CYCLE:DATE`, `dose_skipped=CYCLE`,
        ...), so the link itself can be opened or subscribed to by a calendar client. Each
        visit is an all-day event (RFC 5545) with its window and rule in the description; the
        example shows one. Open to everyone; the ETag depends on the facts alone.
        """
        facts, dose_fields = parsed
        svc = service()
        try:
            facts = on_site_today(facts, site_today())
            schedule = svc.schedule(facts, facts.facts.as_of)
        except ScheduleInputError as error:
            return domain_problem(error, query_field_names(dose_fields))
        events = schedule_events(schedule, calendar_key(facts), svc.protocol.modified)
        body = render_calendar(f"{svc.protocol.id} schedule", events)
        return calendar(Feed(iter([body]), hashlib.sha256(body).hexdigest(),
                             svc.protocol.modified), public=True)
