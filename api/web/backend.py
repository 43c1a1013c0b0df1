"""The web app's one door to the rest of the service.

Pages call only the functions here; this module alone knows where the use cases live and how
they are called, so the web app follows any reshaping of the service by changing this file.
Input from forms is validated by the API's own marshmallow schemas and domain checks, so a form
refuses exactly what the API refuses, with the same messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Flask, current_app
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.engine import Engine
from werkzeug.exceptions import NotFound as PageNotFound

from api.http.context import container
from api.http.problems import flatten
from api.http.schemas import EnrolmentSchema, EventInSchema
from api.persistence.records import StoredParticipant
from api.persistence.tables import participants
from api.usecases.common import Lru, NotFound, StaleVersion
from api.usecases.feeds import Feeds
from api.usecases.participants import ListedVisit, Participants
from api.usecases.worklist import WorklistVisit
from api.web import i18n
from api.web.accounts import MIN_PASSWORD, ROLES, Account, AccountError, Accounts
from scheduler import ScheduleInputError
from scheduler.history import (
    LOOKBACK_NAMES,
    RECORDABLE,
    Event,
    HistoryConflict,
    event_fields,
    event_optional_fields,
)
from scheduler.model import Schedule, Visit
from scheduler.protocol import DISCONTINUATION_REASONS, OFF_STUDY_REASONS

# A visit whose window has passed without one of these is overdue.
SETTLED = ("done", "skipped", "cancelled", "missed")
SCHEDULE_CACHE_SIZE = 20_000


# --- where the service's objects are ------------------------------------------------------

def _participants() -> Participants:
    return container().participants


def _feeds() -> Feeds:
    return container().feeds


def engine_of(app: Flask) -> Engine:
    return container(app).engine


def feed_secret_of(app: Flask) -> bytes:
    return container(app).feed_links.secret


def accounts_for(app: Flask) -> Accounts:
    """The accounts store of `app`."""
    return Accounts(engine_of(app))


@dataclass(frozen=True)
class WebParts:
    """What the pages keep beside the service's container: accounts, the sign-in limiter,
    the CSRF checker and the shown-schedule cache."""

    accounts: Accounts
    limiter: Limiter
    csrf: CSRFProtect
    # Shown schedules by (participant, version, day).
    schedules: Lru[tuple[str, int, dt.date], Shown] = field(
        default_factory=lambda: Lru(SCHEDULE_CACHE_SIZE))


WEB_EXTENSION = "trial_schedule_web"  # the one key the web app keeps its parts under


def register(app: Flask, parts: WebParts) -> None:
    app.extensions[WEB_EXTENSION] = parts


def web_parts(app: Flask | None = None) -> WebParts:
    found = (app or current_app).extensions.get(WEB_EXTENSION)
    if not isinstance(found, WebParts):
        raise RuntimeError("the web app was not installed on this app (api.web.init_app)")
    return found


def accounts() -> Accounts:
    return web_parts().accounts


def site_today() -> dt.date:
    """Today at the site (Asia/Shanghai for Zhongshan): the service's one clock, as the API's
    views read it (`api.http.context.site_today`), which `TRIAL_SCHEDULE_TODAY` and tests may
    freeze."""
    return container().clock.today()


# --- reading ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shown:
    """A participant's schedule as of one day, with its visits as the pages show them."""

    schedule: Schedule
    rows: tuple[VisitRow, ...]
    overdue: tuple[VisitRow, ...]
    open: tuple[VisitRow, ...]  # dated, neither settled nor overdue


def _cache() -> Lru[tuple[str, int, dt.date], Shown]:
    return web_parts().schedules


def _shown(participant_id: str, code: str, schedule: Schedule, today: dt.date) -> Shown:
    rows = tuple(VisitRow(participant_id, code, visit, display_status(visit))
                 for visit in schedule.visits)
    return Shown(schedule, rows, tuple(row for row in rows if row.status == "overdue"),
                 tuple(row for row in rows if row.visit.date is not None
                       and row.status not in (*SETTLED, "overdue")))


def display_status(visit: Visit | ListedVisit) -> str:
    """The status a coordinator sees: the schedule's for the site's today, due and overdue by
    the one day rule the API and the worklist use (`scheduler.outcomes.on_day`), so a visit
    the schedule does not count as overdue (a cycle projected after a held one, a
    cryoablation a later fact proves) is not shown overdue here either."""
    return visit.status


@dataclass(frozen=True)
class VisitRow:
    participant_id: str
    subject_code: str
    visit: Visit
    status: str


@dataclass(frozen=True)
class NextRow:
    """A participant's next visit in the list, with the status a coordinator sees."""

    visit: ListedVisit
    status: str


@dataclass(frozen=True)
class ParticipantSummary:
    id: str
    subject_code: str
    state: str
    cryoablation_date: dt.date | None
    next_visit: NextRow | None
    overdue: int


def list_participants(search: str | None = None) -> list[ParticipantSummary]:
    """Every participant in enrolment order, or those whose subject code contains `search`,
    each with where they stand today, read from what every write stores (no schedule is
    computed: `Participants.standings`). When every one is already known for its version
    and the day, only ids, codes and versions are read."""
    today = site_today()
    service = _participants()
    with container().engine.connect() as connection:
        brief = connection.execute(sa.select(
            participants.c.id, participants.c.subject_code, participants.c.version).order_by(
            participants.c.enrolled_at, participants.c.id)).all()
    if search:
        needle = search.strip().lower()
        brief = [row for row in brief if needle in row.subject_code.lower()]
    found = {row.id: service.known_standing(row.id, row.version, today) for row in brief}
    missing = {pid for pid, standing in found.items() if standing is None}
    if missing:
        with service.unit(readonly=True) as uow:
            stored = [p for p in uow.participants.listing() if p.id in missing]
        found.update(service.standings(stored, today))
    summaries = []
    for row in brief:
        standing = found.get(row.id)
        if standing is None:
            continue  # enrolled after the list was read
        shown = [(visit, display_status(visit)) for visit in standing.visits]
        upcoming = [NextRow(visit, status) for visit, status in shown
                    if visit.date is not None and status not in (*SETTLED, "overdue")
                    and visit.date >= today]
        summaries.append(ParticipantSummary(
            row.id, row.subject_code, standing.state,
            next((visit.date for visit in standing.visits if visit.id == "CRYO"), None),
            upcoming[0] if upcoming else None,
            sum(1 for _, status in shown if status == "overdue")))
    return summaries


@dataclass(frozen=True)
class ParticipantView:
    participant: StoredParticipant
    feed: dict[str, str] | None


def get_participant(participant_id: str) -> ParticipantView:
    try:
        participant = _participants().get(participant_id)
    except NotFound:
        raise PageNotFound() from None
    links = _feeds().links_for([participant.id])
    return ParticipantView(participant, links.get(participant.id))


def schedule_of(participant_id: str) -> tuple[StoredParticipant, Schedule, list[VisitRow]]:
    """The participant, the schedule as of the site's today, and its visits as shown."""
    today = site_today()
    try:
        participant, events = _participants().history(participant_id)
    except NotFound:
        raise PageNotFound() from None
    key = (participant.id, participant.version, today)
    shown = _cache().get(key)
    if shown is None:
        schedule = _participants().compute(participant, events, today)
        shown = _shown(participant.id, participant.enrolment.subject_code, schedule, today)
        _cache().put(key, shown)
    return participant, shown.schedule, list(shown.rows)


@dataclass(frozen=True)
class HistoryEntry:
    event: Event
    voided_by: str | None


def history_of(participant_id: str) -> list[HistoryEntry]:
    """The append-only history, newest first, each event with the correction voiding it."""
    try:
        _, events = _participants().history(participant_id)
    except NotFound:
        raise PageNotFound() from None
    voided = {e.corrects: e.id for e in events if e.type == "correction" and e.corrects}
    return [HistoryEntry(e, voided.get(e.id)) for e in reversed(events)]


@dataclass(frozen=True)
class WorkRow:
    """One visit on the worklist: whose, which, when, and its status today."""

    participant_id: str
    subject_code: str
    visit_id: str
    title: str
    date: dt.date
    earliest: dt.date
    latest: dt.date
    status: str


@dataclass(frozen=True)
class Worklist:
    start: dt.date
    end: dt.date
    overdue: list[WorkRow]
    days: list[tuple[dt.date, list[WorkRow]]]
    counts: dict[str, int] = field(default_factory=dict)


def _work_row(item: WorklistVisit) -> WorkRow:
    row = item.visit
    return WorkRow(row.participant_id, row.subject_code, row.visit_id, row.title, row.date,
                   row.earliest, row.latest, item.status)


def worklist(start: dt.date, end: dt.date) -> Worklist:
    """The service's worklist (`GET /v1/worklist`): every overdue visit whatever its date,
    then the visits due today or planned from `start` to `end`, by day. Read from the stored
    visit states, so no schedule is computed for the page."""
    today = site_today()
    overdue: list[WorkRow] = []
    by_day: dict[dt.date, list[WorkRow]] = {}
    for item in container().worklist.visits(start, end, today):  # by date, subject, visit
        row = _work_row(item)
        if row.status == "overdue":
            overdue.append(row)
        else:
            by_day.setdefault(row.date, []).append(row)
    days = sorted(by_day.items())
    return Worklist(start, end, overdue, days, {
        "overdue": len(overdue), "today": len(by_day.get(today, [])),
        "range": sum(len(rows) for _, rows in days),
        "participants": len({row.participant_id for _, rows in days for row in rows}
                            | {row.participant_id for row in overdue})})


# --- writing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What a write came to: done (with its value), refused (errors by field), or stale."""

    value: Any = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    stale: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.stale


def _refused(error: Exception) -> Outcome:
    """Domain refusals, worded as the API words them (api.problems)."""
    if isinstance(error, ScheduleInputError):
        errors: dict[str, list[str]] = {}
        for item in error.errors:
            errors.setdefault(item.field, []).append(f"{item.message} (rule {item.rule})")
        return Outcome(errors=errors)
    if isinstance(error, HistoryConflict):
        item = error.error
        return Outcome(errors={item.field: [f"{item.message} (rule {item.rule})"]})
    raise error


def _present(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def enrolment_fields() -> tuple[str, ...]:
    return tuple(f"lookbacks.{name}" for name in LOOKBACK_NAMES)


def enrol(form: Mapping[str, str], actor: str) -> Outcome:
    """Enrol from a form: subject_code, cryoablation_date, childbearing_potential (a checkbox)
    and `lookbacks.<name>` dates."""
    body: dict[str, Any] = {}
    for name in ("subject_code", "cryoablation_date"):
        value = _present(form, name)
        if value is not None:
            body[name] = value
    body["childbearing_potential"] = form.get("childbearing_potential") in ("on", "true", "1")
    lookbacks: dict[str, Any] = {}
    for path in enrolment_fields():
        value = _present(form, path)
        if value is not None:
            lookbacks[path.split(".", 1)[1]] = _number(value) if path.endswith("_days") \
                else value
    if lookbacks:
        body["lookbacks"] = lookbacks
    try:
        enrolment = EnrolmentSchema().load(body)
    except ma.ValidationError as error:
        return Outcome(errors=flatten(error.messages))
    try:
        participant = _participants().enrol(enrolment, actor)
    except (ScheduleInputError, HistoryConflict) as error:
        return _refused(error)
    return Outcome(value=participant)


def _number(value: str) -> Any:
    """A form's text as the JSON number the API would get, or the text when it is none."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def event_types() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each recordable event type with its required and optional fields."""
    return {kind: (event_fields(kind), event_optional_fields(kind)) for kind in RECORDABLE}


# The fields whose value is one of a fixed list, offered as a choice rather than typed: why
# treatment stopped decides whether response imaging goes on (rule discontinuation).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("discontinued", "reason_code"): DISCONTINUATION_REASONS,
    ("off_study", "reason"): OFF_STUDY_REASONS,
}


def record_event(participant_id: str, form: Mapping[str, str], actor: str,
                 expected_version: int | None) -> Outcome:
    """Record one event from a form (`type` and that type's fields); `expected_version` is the
    version the page showed, so a stale page is refused rather than recording blind."""
    kind = _present(form, "type") or ""
    body: dict[str, Any] = {"type": kind}
    names = event_fields(kind) + event_optional_fields(kind) if kind in RECORDABLE else ()
    for name in names:
        value = _present(form, name)
        if value is not None:
            body[name] = _number(value) if name == "cycle" else value
    try:
        new = EventInSchema().load(body)
    except ma.ValidationError as error:
        return Outcome(errors=flatten(error.messages))
    try:
        recorded = _participants().record(participant_id, new, actor, site_today(),
                                          expected_version)
    except NotFound:
        raise PageNotFound() from None
    except StaleVersion:
        return Outcome(stale=True)
    except (ScheduleInputError, HistoryConflict) as error:
        return _refused(error)
    return Outcome(value=recorded.event)


# --- accounts (admins) ---------------------------------------------------------------------

def list_users() -> list[Account]:
    return accounts().listing()


def _account_refused(error: AccountError) -> Outcome:
    if error.code == "unknown":
        raise PageNotFound() from None
    message = i18n.ACCOUNT_ERRORS.get(error.code)
    text = str(message) % {"num": MIN_PASSWORD} if message is not None else str(error)
    return Outcome(errors={error.field: [text]})


def create_user(form: Mapping[str, str]) -> Outcome:
    """A new account from the admins' form: email, role and password, under the rules the
    `create-user` command keeps."""
    try:
        made = accounts().create(form.get("email", ""), form.get("role", ""),
                                 form.get("password", ""))
    except AccountError as error:
        return _account_refused(error)
    return Outcome(value=made)


def set_role(user_id: str, role: str, by: str) -> Outcome:
    """Another role for an account; an admin keeps their own admin rights."""
    if user_id == by and role != "admin":
        return _account_refused(AccountError("role", "self", "not your own account"))
    try:
        accounts().set_role(user_id, role)
    except AccountError as error:
        return _account_refused(error)
    return Outcome(value=role)


def disable_user(user_id: str, by: str) -> Outcome:
    if user_id == by:
        return _account_refused(AccountError("role", "self", "not your own account"))
    try:
        accounts().disable(user_id)
    except AccountError as error:
        return _account_refused(error)
    return Outcome(value=user_id)


def enable_user(user_id: str) -> Outcome:
    try:
        accounts().enable(user_id)
    except AccountError as error:
        return _account_refused(error)
    return Outcome(value=user_id)


def roles() -> tuple[str, ...]:
    return ROLES


def rotate_feed(participant_id: str) -> dict[str, str]:
    """A new feed URL for the participant; the old one stops working at once."""
    try:
        token = _feeds().rotate("participant", participant_id)
    except NotFound:
        raise PageNotFound() from None
    return _feeds().links.participant_links(token)


def site_feed() -> dict[str, str] | None:
    """The site feed's links, when one has been issued."""
    with _participants().unit(readonly=True) as uow:
        token = uow.feed_tokens.active("site", None)
    return _feeds().links.site_links(token) if token else None


def rotate_site_feed() -> dict[str, str]:
    """Issue or rotate the site-wide feed URL."""
    return _feeds().links.site_links(_feeds().rotate("site"))
