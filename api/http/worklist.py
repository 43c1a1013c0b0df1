"""Across all participants: the worklist (who is due, who is overdue) and the deviations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from itertools import groupby
from typing import Any

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.http import example_responses as answers
from api.http.auth import requires
from api.http.context import container, site_today
from api.http.problems import problem_answers
from api.http.schemas import WindowSchema
from api.persistence.records import ListedVisit
from api.usecases.worklist import Deviation, WorklistVisit

blp = Blueprint("worklist", __name__, url_prefix="/v1",
                description="Across all participants: what is due and overdue, and what broke "
                            "its rule. Needs `Authorization: Bearer <api key>`.")

DEFAULT_DAYS = 7
MAX_DAYS = 366
CSV_COLUMNS = ("subject_code", "participant_id", "visit_id", "title", "date",
               "window_earliest", "window_latest", "status", "deviation", "rule", "reason")


class WorklistQuerySchema(ma.Schema):
    start = fields.Date(data_key="from", metadata={
        "description": "First day listed (default: the site's today)"})
    end = fields.Date(data_key="to", metadata={
        "description": "Last day listed (default: the site's today + 7 days)"})

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None:
            if end < start:
                raise ma.ValidationError("Must not be before 'from'.", "to")
            if (end - start).days > MAX_DAYS:
                raise ma.ValidationError(f"At most {MAX_DAYS} days after 'from'.", "to")


class WorklistVisitSchema(ma.Schema):
    subject_code = fields.String(required=True)
    participant_id = fields.String(required=True)
    visit_id = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True)
    date = fields.Date(required=True)
    window = fields.Nested(WindowSchema, required=True)
    status = fields.String(required=True, validate=validate.OneOf(
        ("planned", "provisional", "due", "overdue")))


class WorklistDaySchema(ma.Schema):
    date = fields.Date(required=True)
    visits = fields.List(fields.Nested(WorklistVisitSchema), required=True)


class WorklistSchema(ma.Schema):
    start = fields.Date(required=True, data_key="from")
    end = fields.Date(required=True, data_key="to")
    today = fields.Date(required=True, metadata={"description": "The site's today"})
    days = fields.List(fields.Nested(WorklistDaySchema), required=True, metadata={
        "description": "By visit date; overdue visits are listed whatever the range"})


class DeviationQuerySchema(ma.Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class DeviationSchema(ma.Schema):
    visit_id = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True)
    date = fields.Date(required=True, metadata={"description": "Done on, or due on"})
    window = fields.Nested(WindowSchema, required=True)
    status = fields.String(required=True)
    deviation = fields.String(required=True, validate=validate.OneOf(
        ("out_of_window", "missed", "overdue")))
    rule = fields.String(required=True, metadata={"description": "The protocol rule broken"})
    reason = fields.String(required=True, allow_none=True, metadata={
        "description": "Why a missed visit was missed, as recorded; null for the others"})


class ParticipantDeviationsSchema(ma.Schema):
    participant_id = fields.String(required=True)
    subject_code = fields.String(required=True)
    deviations = fields.List(fields.Nested(DeviationSchema), required=True)


class DeviationsSchema(ma.Schema):
    today = fields.Date(required=True)
    items = fields.List(fields.Nested(ParticipantDeviationsSchema), required=True)


# The answers are built by hand, as WorklistSchema and DeviationsSchema would dump them (a test
# holds them to the OpenAPI document): a site's worklist can run to thousands of visits.
def _window(row: ListedVisit) -> dict[str, str]:
    return {"earliest": row.earliest.isoformat(), "latest": row.latest.isoformat()}


def _worklist_item(item: WorklistVisit) -> dict[str, Any]:
    row = item.visit
    return {"subject_code": row.subject_code, "participant_id": row.participant_id,
            "visit_id": row.visit_id, "kind": row.kind, "title": row.title,
            "date": row.date.isoformat(), "window": _window(row), "status": item.status}


def _deviation_item(item: Deviation) -> dict[str, Any]:
    row = item.visit
    return {"visit_id": row.visit_id, "kind": row.kind, "title": row.title,
            "date": row.date.isoformat(), "window": _window(row), "status": item.status,
            "deviation": item.deviation, "rule": item.rule, "reason": item.reason}


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


AUTH_ERRORS = {401: "No valid API key", 403: "The API key's scope is too small"}


_errors = problem_answers(blp, AUTH_ERRORS)(*AUTH_ERRORS)


@blp.route("/worklist")
class WorklistView(MethodView):
    @requires("read")
    @blp.arguments(WorklistQuerySchema, location="query")
    @blp.response(200, WorklistSchema, example=answers.WORKLIST)
    @_errors
    def get(self, query: dict[str, Any]) -> Response:
        """Every participant's visits due, overdue, or planned in the range, by date

        What the coordinators work from: visits whose window is open today (`due`) or closed
        with nothing recorded (`overdue`, listed whatever the range), then those planned
        between `from` and `to` (default: the site's today to today + 7 days), grouped by
        date. Read from the stored visit states, so it costs one query. Needs a `read` key.
        """
        today = site_today()
        start = query.get("start") or today
        end = query.get("end") or start + dt.timedelta(days=DEFAULT_DAYS)
        visits = container().worklist.visits(start, end, today)
        days = [{"date": day.isoformat(), "visits": [_worklist_item(item) for item in items]}
                for day, items in groupby(visits, key=lambda item: item.visit.date)]
        return _json({"from": start.isoformat(), "to": end.isoformat(),
                      "today": today.isoformat(), "days": days})


@blp.route("/deviations")
class DeviationsView(MethodView):
    @requires("read")
    @blp.arguments(DeviationQuerySchema, location="query")
    @blp.response(200, DeviationsSchema, example=answers.DEVIATIONS)
    @blp.alt_response(200, description="With format=csv: one deviation a row",
                      content_type="text/csv", schema={"type": "string"},
                      example=answers.DEVIATIONS_CSV)
    @_errors
    def get(self, query: dict[str, Any]) -> Any:
        """Visits done out of window, missed, or overdue, per participant, with the rule each
        broke; `format=csv` for a monitor's spreadsheet

        For monitoring: each deviation names the visit, its window, the rule it broke and,
        for a missed visit, the reason recorded. The CSV has one deviation a row, cells a
        spreadsheet would run as a formula quoted. Needs a `read` key.
        """
        today = site_today()
        found = container().worklist.deviations(today)
        if query["format"] == "csv":
            return Response(_csv(found), mimetype="text/csv", headers={
                "Content-Disposition": f'attachment; filename="deviations-{today}.csv"'})
        items = [{"participant_id": rows[0].visit.participant_id,
                  "subject_code": rows[0].visit.subject_code,
                  "deviations": [_deviation_item(d) for d in rows]}
                 for rows in (list(group) for _, group in groupby(
                     found, key=lambda d: d.visit.participant_id))]
        return _json({"today": today.isoformat(), "items": items})


def _csv(found: list[Deviation]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in found:
        row = item.visit
        writer.writerow([_cell(row.subject_code), row.participant_id, row.visit_id,
                         _cell(row.title), row.date.isoformat(), row.earliest.isoformat(),
                         row.latest.isoformat(), item.status, item.deviation, item.rule,
                         _cell(item.reason or "")])
    return out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet would run a cell starting with = + - @ as a formula; quote it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
