"""Schedules as spreadsheets: one participant's (`/v1/participants/{id}/schedule.csv`) and the
site's visits in a date range (`/v1/visits.csv`), one visit a row.

The files are RFC 4180 CSV (CRLF line ends, a header row, fields quoted when they hold a comma,
a quote or a line break), encoded UTF-8 with a byte order mark: without it Excel reads a CSV
file in the machine's legacy code page, and Chinese titles come out as mojibake. A cell that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading apostrophe, so a
spreadsheet shows it as text instead of running it as a formula (OWASP "CSV Injection").
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.wrappers import Response as BaseResponse

from api.http.auth import requires
from api.http.context import container, site_today
from api.http.problems import INVALID_INPUT, problem, problem_answers
from api.http.worklist import DEFAULT_DAYS, WorklistQuerySchema
from api.usecases.worklist import ExportedVisit
from scheduler.model import Schedule

blp = Blueprint("csv", __name__, url_prefix="/v1",
                description="Schedules as CSV for spreadsheets (UTF-8 with a byte order mark, "
                            "formula-safe cells). Needs `Authorization: Bearer <api key>`.")

COLUMNS = ("subject_code", "participant_id", "visit_id", "kind", "title", "date",
           "window_earliest", "window_latest", "status", "rule")
BOM = "\ufeff"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"
# What a spreadsheet starts a formula with (OWASP CSV Injection), tab and CR included: a
# leading tab or CR is dropped by some importers, which then see the formula behind it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

CSV_EXAMPLE = (
    "subject_code,participant_id,visit_id,kind,title,date,window_earliest,window_latest,"
    "status,rule\r\n"
    "ZS-001,0b6f3c1e-4a57-4f0e-9a51-8c1f5d2e7a10,C1D1,infusion,\"Serplulimab 300 mg IV, "
    "cycle 1\",2026-03-09,2026-03-09,2026-03-12,done,first-dose\r\n")
ERRORS = {401: "No valid API key", 403: "The API key's scope is too small",
          404: "No participant with that id"}


def safe_cell(text: str) -> str:
    """The cell as a spreadsheet should show it: text, never a formula.

    >>> safe_cell("=HYPERLINK(\\"http://x\\")"), safe_cell("-3"), safe_cell("ZS-001")
    ('\\'=HYPERLINK("http://x")', "'-3", 'ZS-001')
    """
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_body(rows: Iterable[Sequence[str]]) -> bytes:
    """A header row and `rows`, every cell made formula-safe, as UTF-8 with a BOM."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue().encode("utf-8")


def _iso(day: dt.date | None) -> str:
    return "" if day is None else day.isoformat()


def schedule_rows(subject_code: str, participant_id: str, schedule: Schedule) \
        -> list[list[str]]:
    """One row a visit of the schedule, in its order (by date, then id); a held or cancelled
    visit has no date or window, and its cells are empty."""
    return [[subject_code, participant_id, visit.id, visit.kind, visit.title, _iso(visit.date),
             _iso(visit.window.earliest if visit.window else None),
             _iso(visit.window.latest if visit.window else None), visit.status, visit.rule.id]
            for visit in schedule.visits]


def site_rows(visits: Iterable[ExportedVisit]) -> list[list[str]]:
    """One row a stored visit, with its status on the site's today."""
    return [[item.visit.subject_code, item.visit.participant_id, item.visit.visit_id,
             item.visit.kind, item.visit.title, item.visit.date.isoformat(),
             _iso(item.visit.earliest), _iso(item.visit.latest), item.status,
             item.visit.rule] for item in visits]


def csv_response(body: bytes, filename: str) -> BaseResponse:
    """The file with its ETag (a digest of the bytes), answered 304 to a matching
    If-None-Match."""
    response = Response(body, content_type=CSV_MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})
    response.set_etag(hashlib.sha256(body).hexdigest())
    return response.make_conditional(request)


_errors = problem_answers(blp, ERRORS)


CSV_RESPONSE = {"type": "string", "description": "RFC 4180 CSV, UTF-8 with a byte order mark"}


@blp.route("/participants/<participant_id>/schedule.csv")
class ParticipantScheduleCsvView(MethodView):
    @requires("read")
    @blp.response(200, CSV_RESPONSE, content_type="text/csv", example=CSV_EXAMPLE,
                  description="One visit a row, in the schedule's order",
                  headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Not modified")
    @_errors(401, 403, 404)
    def get(self, participant_id: str) -> BaseResponse:
        """One participant's schedule as a spreadsheet

        The schedule `GET /v1/participants/{id}/schedule` returns, as CSV: subject, visit,
        date, window, status (as of the site's today) and the rule that placed each visit.
        Cells a spreadsheet would run as a formula start with an apostrophe."""
        participant, schedule = container().participants.schedule(participant_id, site_today())
        code = participant.enrolment.subject_code
        return csv_response(csv_body(schedule_rows(code, participant.id, schedule)),
                            f"schedule-{participant.id}.csv")


@blp.route("/visits.csv")
class SiteVisitsCsvView(MethodView):
    @requires("read")
    @blp.arguments(WorklistQuerySchema, location="query")
    @blp.response(200, CSV_RESPONSE, content_type="text/csv", example=CSV_EXAMPLE,
                  description="One visit a row, by date, subject code and visit",
                  headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Not modified")
    @_errors(401, 403)
    def get(self, query: dict[str, Any]) -> BaseResponse:
        """Every participant's visits in a date range as a spreadsheet

        Every stored visit dated from `from` to `to` (default: the site's today to today + 7
        days; at most 366 days), whatever its status, with its window, its status as of the
        site's today and the rule that placed it. `to` before `from` is a 422 naming `to`."""
        today = site_today()
        start = query.get("start") or today
        end = query.get("end") or start + dt.timedelta(days=DEFAULT_DAYS)
        if end < start:  # only `to` was sent, and it is before the site's today
            return problem(422, "The request is not valid", "to: Must not be before 'from' "
                           f"(the site's today, {today}, when 'from' is not sent).",
                           INVALID_INPUT, {"to": ["Must not be before 'from'."]})
        visits = container().worklist.dated(start, end, today)
        return csv_response(csv_body(site_rows(visits)), f"visits-{start}-{end}.csv")
