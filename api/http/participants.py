"""Stored participants: enrol, correct, record what happened, read the recomputed schedule."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import PreconditionRequired
from werkzeug.wrappers import Response as BaseResponse

from api.http import example_responses as answers
from api.http import examples
from api.http.auth import requires
from api.http.context import actor, container, site_today
from api.http.feeds import FeedTokenSchema
from api.http.idempotency import run_idempotent
from api.http.problems import INVALID_INPUT, problem, problem_answers
from api.http.schemas import (
    EnrolmentPatchSchema,
    EnrolmentSchema,
    EventInSchema,
    EventListSchema,
    EventSchema,
    PageQuerySchema,
    ParticipantPageSchema,
    ParticipantSchema,
    RecordedSchema,
    ScheduleSchema,
    VersionChangeSchema,
    schedule_dict,
)
from api.persistence.records import StoredParticipant
from api.persistence.unit_of_work import UnitOfWork
from api.usecases.feeds import Feeds
from api.usecases.participants import Participants, Recorded
from api.usecases.schedule_documents import ScheduleDocuments
from scheduler import Schedule
from scheduler.history import Enrolment, Event, NewEvent, voided_by

blp = Blueprint("participants", __name__, url_prefix="/v1/participants",
                description="Stored participants, their append-only history and schedules. "
                            "Needs `Authorization: Bearer <api key>`.")

# One instance of each schema for every request: building one (marshmallow deep-copies its
# declared fields) cost more than the dump itself. Loading and dumping keep no state on them.
PARTICIPANT, EVENT, EVENT_LIST = ParticipantSchema(), EventSchema(), EventListSchema()
VERSION_CHANGE = VersionChangeSchema()

IDEMPOTENCY_KEY = {"in": "header", "name": "Idempotency-Key", "required": False,
                   "description": "A retry with the same key gets the first answer, and nothing "
                                  "is recorded twice",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
IF_MATCH_OPTIONAL = {"in": "header", "name": "If-Match", "required": False,
                     "description": "Record only if the participant is still at this ETag",
                     "schema": {"type": "string", "minLength": 1}}
ERRORS = {401: "No valid API key", 403: "The API key's scope is too small",
          404: "No participant with that id", 409: "Contradicts the recorded history",
          412: "If-Match names a stale version", 428: "If-Match is required"}


def participants() -> Participants:
    return container().participants


def schedule_documents() -> ScheduleDocuments:
    return container().schedule_documents


def schedule_body(schedule: Schedule) -> bytes:
    """A stored participant's schedule as its GET serves it: the bytes `jsonify` gives (in the
    request being answered), kept and served again by `ScheduleDocuments`."""
    return jsonify(schedule_dict(schedule)).get_data()


def feeds() -> Feeds:
    return container().feeds


errors = problem_answers(blp, ERRORS)


# The ETags this service hands out; a longer number (say 5,000 digits) names no version.
VERSION_TAG = re.compile(r"v[0-9]{1,18}")


def etag_of(version: int) -> str:
    return f"v{version}"


def expected_version(required: bool) -> int | None:
    """The version an If-Match names; 428 when required and missing."""
    if "If-Match" in request.headers and not request.if_match:
        return -1  # not an entity tag at all: it names no current version
    if not request.if_match:
        if required:
            raise PreconditionRequired("Send If-Match with the participant's ETag.")
        return None
    if request.if_match.star_tag:
        return None
    for tag in request.if_match.as_set():
        if VERSION_TAG.fullmatch(tag):
            return int(tag[1:])
    return -1  # names no version this service handed out: stale


def shown(participants_: list[StoredParticipant]) \
        -> list[tuple[StoredParticipant, dict[str, str] | None]]:
    """Participants with their feed links, as the participant schema dumps them."""
    links = feeds().links_for([p.id for p in participants_])
    return [(p, links.get(p.id)) for p in participants_]


def listed(participants_: list[StoredParticipant]) -> list[tuple[Any, ...]]:
    """Participants with their feed links and where they stand, for a list."""
    summaries = participants().summaries(participants_, site_today())
    return [(*item, summaries[item[0].id]) for item in shown(participants_)]


def participant_response(participant: StoredParticipant, status: int = 200,
                         feed: dict[str, str] | None = None) -> Response:
    """The participant as JSON with its ETag; `feed` gives its feed links when the caller
    already has them."""
    shown_ = (participant, feed) if feed is not None else shown([participant])[0]
    response = jsonify(PARTICIPANT.dump(shown_))
    response.status_code = status
    response.set_etag(etag_of(participant.version))
    if status == 201:
        response.headers["Location"] = f"/v1/participants/{participant.id}"
    return response


def enrolled_response(uow: UnitOfWork, participant: StoredParticipant) -> Response:
    """The answer to an enrolment, inside its unit of work: the feed token issued there is
    not committed yet, and a stored answer must show it as the first answer did."""
    token = uow.feed_tokens.active("participant", participant.id)
    feed = feeds().links.participant_links(token) if token is not None else None
    return participant_response(participant, 201, feed)


def event_dicts(events: list[Event]) -> list[dict[str, Any]]:
    """Events as EventSchema dumps them, each with the correction that voids it."""
    voided = voided_by(events)
    return [{**vars(e), "changes": list(e.changes), "voided_by": voided.get(e.id)}
            for e in events]


@blp.route("")
class ParticipantsView(MethodView):
    @requires("write")
    @blp.arguments(EnrolmentSchema(), example={"subject_code": "ZS-001",
                                             "cryoablation_date": "2026-03-02"})
    @blp.response(201, ParticipantSchema, example=answers.ENROLLED)
    @blp.doc(parameters=[IDEMPOTENCY_KEY])
    @errors(401, 403, 409)
    def post(self, enrolment: Enrolment) -> Response:
        """Enrol a participant (honours Idempotency-Key)

        Stores the participant with its enrolment data, pinned to the current protocol
        version, and answers 201 with `Location`, `ETag: "v1"` and its calendar feed links.
        `subject_code` is pseudonymous and unique: enrolling it twice is a 409 naming the
        participant already enrolled. Needs a `write` key; the key's name is recorded as who
        enrolled. A retry with the same `Idempotency-Key` gets the first answer.
        """
        service = participants()
        return run_idempotent(service, lambda hook: service.enrol(enrolment, actor(), hook),
                              lambda participant: participant_response(participant, 201),
                              enrolled_response)

    @requires("read")
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, ParticipantPageSchema, example=answers.PAGE)
    @errors(401, 403)
    def get(self, query: dict[str, Any]) -> Any:
        """List participants in enrolment order, a page at a time, each with its state and
        next visit; `subject_code` finds one by its code

        Pages hold up to `limit` participants; `next_cursor` is the `cursor` of the next page,
        null on the last. With `subject_code` the answer is that one participant (an exact
        match) or an empty list. Needs a `read` key.
        """
        if "subject_code" in query:
            found = participants().by_subject_code(query["subject_code"])
            return {"items": listed([found] if found else []), "next_cursor": None}
        try:
            items, cursor = participants().page(query.get("cursor"), query["limit"])
        except ValueError:
            return problem(422, "The request is not valid", "cursor: not a cursor from this "
                           "list.", INVALID_INPUT, {"cursor": ["Not a cursor from this list."]})
        return {"items": listed(items), "next_cursor": cursor}


@blp.route("/<participant_id>")
class ParticipantView(MethodView):
    @requires("read")
    @blp.response(200, ParticipantSchema, example=answers.PARTICIPANT)
    @blp.alt_response(304, description="Not modified")
    @errors(401, 403, 404)
    def get(self, participant_id: str) -> BaseResponse:
        """One participant; ETag is its version

        The enrolment data as corrected so far, the protocol version the participant is
        pinned to, links to its schedule and history, and its feed links. The ETag (`"v3"`)
        is the participant's version, which every recorded event raises: send it back in
        If-None-Match for a 304, or in If-Match to write only if nothing changed since.
        Needs a `read` key.
        """
        return participant_response(participants().get(participant_id)).make_conditional(
            request)

    @requires("write")
    @blp.arguments(EnrolmentPatchSchema(), example={"childbearing_potential": True,
                                                  "reason": "CRF reviewed"})
    @blp.response(200, ParticipantSchema, example=answers.CORRECTED)
    @blp.doc(parameters=[{"in": "header", "name": "If-Match", "required": True,
                          "description": "The participant's ETag",
                          "schema": {"type": "string", "minLength": 1}}])
    @errors(401, 403, 404, 409, 412, 428)
    def patch(self, changes: dict[str, Any], participant_id: str) -> Response:
        """Correct enrolment data; needs If-Match

        Changes the fields sent (and only those) and records an `enrolment_corrected` event
        with the `reason`, which is required. Without If-Match the answer is 428, with a stale
        one 412; a body that changes nothing is 422. The schedule is recomputed from the
        corrected data. Needs a `write` key.
        """
        version = expected_version(required=True)  # None for If-Match: *, any version
        reason = changes.pop("reason", None)
        participant = participants().correct_enrolment(participant_id, changes, reason,
                                                       actor(), version)
        return participant_response(participant)


@blp.route("/<participant_id>/feed-token")
class FeedTokenView(MethodView):
    @requires("write")
    @blp.response(200, FeedTokenSchema, example=answers.PARTICIPANT_FEED)
    @errors(401, 403, 404)
    def post(self, participant_id: str) -> dict[str, Any]:
        """Rotate the participant's feed URL; the old one stops working at once

        The feed URL is the credential calendar clients subscribe with; when it leaks, a new
        one is issued here and the old one answers 404 from the next request on, on every
        worker and instance. Subscribers must subscribe again with the new link. Needs a
        `write` key.
        """
        token = feeds().rotate("participant", participant_id)
        return {"feed": feeds().links.participant_links(token)}


@blp.route("/<participant_id>/schedule")
class ParticipantScheduleView(MethodView):
    @requires("read")
    @blp.response(200, ScheduleSchema, example=examples.schedule_response())
    @blp.alt_response(304, description="Not modified")
    @errors(401, 403, 404)
    def get(self, participant_id: str) -> BaseResponse:
        """The schedule recomputed from the whole history

        Every visit with its date, window, status as of the site's today (due and overdue
        included) and the protocol rule that placed it, computed under the protocol version
        the participant is pinned to. The ETag is a digest of the answer, so it changes when
        a write or a new day changes anything shown. Needs a `read` key.
        """
        document = schedule_documents().document(participant_id, site_today())
        response = Response(document.body, mimetype="application/json")
        response.set_etag(document.etag)
        return response.make_conditional(request)


@blp.route("/<participant_id>/events")
class EventsView(MethodView):
    @requires("write")
    @blp.arguments(EventInSchema(), example={"type": "dose_given", "cycle": 1,
                                           "date": "2026-03-09"})
    @blp.response(201, RecordedSchema, example=answers.RECORDED)
    @blp.doc(parameters=[IF_MATCH_OPTIONAL, IDEMPOTENCY_KEY])
    @errors(401, 403, 404, 409, 412)
    def post(self, new: NewEvent, participant_id: str) -> Response:
        """Record what happened; the schedule is recomputed (honours Idempotency-Key and
        If-Match)

        Appends one event to the participant's history (`type` says which: a recovery, a
        dose given or skipped, a visit done or missed, a correction that voids an earlier
        event, a protocol version change, ...) and answers 201 with the event and the
        recomputed schedule; `ETag` is the participant's new version. Facts the protocol rules
        out are 422 and events contradicting the history 409, each naming the rule. Needs a
        `write` key.
        """
        service = participants()
        version = expected_version(required=False)
        return run_idempotent(
            service,
            lambda hook: service.record(participant_id, new, actor(), site_today(), version,
                                        hook),
            recorded_response)

    @requires("read")
    @blp.response(200, EventListSchema, example=answers.HISTORY)
    @errors(401, 403, 404)
    def get(self, participant_id: str) -> BaseResponse:
        """The append-only history: who recorded what, when, why

        Every event in the order recorded, each with the API key (or account) that recorded
        it and when; an event a correction voided stays, with `voided_by` naming the
        correction. Nothing is ever deleted or rewritten. The ETag is the participant's
        version. Needs a `read` key.
        """
        participant, events = participants().history(participant_id)
        response = jsonify(EVENT_LIST.dump({"items": event_dicts(events)}))
        response.set_etag(etag_of(participant.version))
        return response.make_conditional(request)


def recorded_response(recorded: Recorded) -> Response:
    event = EVENT.dump(event_dicts([recorded.event])[0])
    body = {"event": event, "schedule": schedule_dict(recorded.schedule)}
    if recorded.version_change is not None:
        body["protocol_change"] = VERSION_CHANGE.dump(recorded.version_change)
    response = jsonify(body)
    response.status_code = 201
    response.set_etag(etag_of(recorded.participant.version))
    response.headers["Location"] = f"/v1/participants/{recorded.participant.id}/events"
    return response

