"""The pages: worklist, participants, one participant, the print card, sign-in, and the
admins' accounts page.

Every page works without script: forms post and the answer is a redirect (after success) or the
same page again with the errors beside their fields (422), the stale-page notice (412), or the
refusal of a form that did not come from this site (400).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import segno
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from werkzeug.exceptions import Forbidden, HTTPException
from werkzeug.wrappers import Response as BaseResponse

from api.web import backend, i18n, tables, timeline
from api.web.accounts import MIN_PASSWORD, User

blp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/assets")

F = TypeVar("F", bound=Callable[..., Any])
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
WORKLIST_DAYS = 7


def user() -> User:
    return cast(User, current_user._get_current_object())


def signed_in(view: F) -> F:
    """Pages for signed-in people only; others are sent to the sign-in page."""
    return cast(F, login_required(view))


def recorder_only(view: F) -> F:
    """Coordinators, investigators and admins record; viewers only read."""
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not user().can_record:
            raise Forbidden(gettext("Your role may read but not record."))
        return view(*args, **kwargs)
    return cast(F, guarded)


def admin_only(view: F) -> F:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not user().is_admin:
            raise Forbidden(gettext("Only an admin may do this."))
        return view(*args, **kwargs)
    return cast(F, guarded)


@blp.before_request
def _check_form_origin() -> None:
    """Every form post carries the CSRF token of this site's session, or is refused."""
    if request.method == "POST":
        backend.web_parts().csrf.protect()


@blp.after_request
def _headers(response: BaseResponse) -> BaseResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # A page that shows a feed URL must not leak it through Referer: the URL is a credential.
    response.headers["Referrer-Policy"] = "no-referrer" if g.get("shows_feed_url") \
        else "same-origin"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
        response.vary.add("Cookie")
        response.vary.add("Accept-Language")
    return response


@blp.app_template_global()
def field_label(name: str) -> str:
    return str(i18n.FIELDS.get(name, name))


@blp.app_context_processor
def _page_words() -> dict[str, Any]:
    return {"day": i18n.day, "long_day": i18n.long_day, "STATUSES": i18n.STATUSES,
            "STATES": i18n.STATES, "EVENTS": i18n.EVENTS, "SOURCES": i18n.SOURCES,
            "REASONS": i18n.REASONS,
            "ROLES": i18n.ROLES,
            "LANGUAGES": i18n.LANGUAGES, "language": i18n.current_language,
            "html_lang": i18n.html_lang, "current_user": current_user}


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("error.html", title=title, message=message), status


@blp.errorhandler(CSRFError)
def _csrf(error: CSRFError) -> tuple[str, int]:
    return _error_page(400, gettext("The form was refused"), gettext(
        "This form did not come from a page of this site, or the page is too old. Nothing "
        "was saved. Go back, reload the page and send the form again."))


@blp.errorhandler(HTTPException)
def _http(error: HTTPException) -> Any:
    status = error.code or 500
    if status == 404:
        return _error_page(404, gettext("Not found"), gettext(
            "There is no such page or participant."))
    if status == 403:
        return _error_page(403, gettext("Not allowed"), error.description or "")
    if status == 429:
        return _error_page(429, gettext("Too many attempts"), gettext(
            "Too many sign-in attempts from this address. Wait a minute and try again."))
    if status == 405:
        return error
    return _error_page(status, error.name, error.description or "")


@blp.errorhandler(Exception)
def _unexpected(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        return _http(error)
    current_app.logger.exception("unhandled error on a page")
    return _error_page(500, gettext("Something went wrong"), gettext(
        "The page could not be shown. Nothing you sent was saved unless the page said so."))


# --- language and sign-in ---------------------------------------------------------------------

def _local(target: str | None, fallback: str) -> str:
    """Only a path on this site is followed after sign-in or a language switch."""
    if not target:
        return fallback
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


@blp.get("/language/<code>")
def language(code: str) -> BaseResponse:
    response = redirect(_local(request.args.get("next"), url_for("web.worklist")))
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.LANG_COOKIE, code, max_age=365 * 86400, httponly=True,
                            samesite="Lax", secure=request.is_secure)
    return response


@blp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    email = ""
    if request.method == "POST":
        limiter = backend.web_parts().limiter
        with limiter.limit(current_app.config["LOGIN_RATE_LIMIT"]):
            email = request.form.get("email", "")
            found = backend.accounts().authenticate(email, request.form.get("password", ""))
        if found is not None:
            login_user(found)
            return redirect(_local(request.args.get("next"), url_for("web.worklist")))
        error = gettext("The email or the password is wrong.")
    return render_template("login.html", error=error, email=email), 401 if error else 200


@blp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    if request.method == "POST":
        logout_user()
        flash(gettext("You are signed out."))
        return redirect(url_for("web.login"))
    return render_template("logout.html")


# --- worklist ---------------------------------------------------------------------------------

@blp.get("/")
@signed_in
def worklist() -> str:
    today = backend.site_today()
    found = backend.worklist(today, today + dt.timedelta(days=WORKLIST_DAYS))
    badge = tables.badges({key: str(value) for key, value in i18n.STATUSES.items()})
    prefix = url_for("web.participant", participant_id="-")[:-1]

    def link(participant_id: str) -> str:
        return prefix + participant_id

    def more(count: int) -> str:
        return str(gettext("and %(num)s more", num=count))

    day = i18n.day_formatter()
    return render_template(
        "worklist.html", worklist=found, today=today,
        overdue_rows=tables.overdue_rows(found.overdue, link, day, badge, more),
        day_rows={date: tables.visit_rows(rows, link, day, badge) for date, rows in found.days})


# --- participants -----------------------------------------------------------------------------

def _participants_page(errors: dict[str, list[str]] | None = None,
                       values: dict[str, str] | None = None, status: int = 200) \
        -> tuple[str, int]:
    search = request.args.get("q", "").strip()
    site_feed = backend.site_feed() if user().is_admin else None
    if site_feed:
        g.shows_feed_url = True
    return render_template(
        "participants.html", participants=backend.list_participants(search or None),
        search=search, errors=errors or {}, values=values or {},
        lookback_fields=backend.enrolment_fields(), site_feed=site_feed), status


@blp.get("/participants")
@signed_in
def participants() -> tuple[str, int]:
    return _participants_page()


@blp.post("/participants")
@signed_in
@recorder_only
def enrol() -> Any:
    outcome = backend.enrol(request.form, user().email)
    if not outcome.ok:
        return _participants_page(outcome.errors, request.form.to_dict(), 422)
    flash(gettext("Enrolled %(code)s.", code=outcome.value.enrolment.subject_code))
    return redirect(url_for("web.participant", participant_id=outcome.value.id), 303)


@blp.post("/site/feed-token")
@signed_in
@admin_only
def rotate_site_feed() -> Any:
    backend.rotate_site_feed()
    flash(gettext("A new site feed URL was issued; the old one no longer works."))
    return redirect(url_for("web.participants"), 303)


def qr_code(url: str) -> Markup:
    """The feed URL as a QR code, inline SVG."""
    svg = segno.make(url, error="m").svg_inline(scale=4, border=2, omitsize=True, title=url)
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR" ', 1))


def _participant_page(participant_id: str, *, form_type: str | None = None,
                      errors: dict[str, list[str]] | None = None,
                      values: dict[str, str] | None = None, stale: bool = False,
                      status: int = 200) -> tuple[str, int]:
    shown = backend.get_participant(participant_id)
    participant, schedule, rows = backend.schedule_of(participant_id)
    history = backend.history_of(participant_id)
    today = backend.site_today()
    labels = timeline.Labels(
        title=gettext("Schedule of %(code)s", code=participant.enrolment.subject_code),
        rows={key: str(value) for key, value in i18n.ROWS.items()},
        statuses={key: str(value) for key, value in i18n.STATUSES.items()},
        today=gettext("today"), window=gettext("window"), month=i18n.month)
    g.shows_feed_url = shown.feed is not None
    return render_template(
        "participant.html", participant=participant, schedule=schedule, rows=rows,
        history=history, feed=shown.feed, qr=qr_code(shown.feed["https"]) if shown.feed
        else None, picture=timeline.render(rows, today, labels),
        event_types=backend.event_types(), choices=backend.CHOICES, form_type=form_type,
        errors=errors or {}, values=values or {}, stale=stale, today=today), status


@blp.get("/participants/<participant_id>")
@signed_in
def participant(participant_id: str) -> tuple[str, int]:
    return _participant_page(participant_id)


def _version() -> int:
    value = request.form.get("version", "")
    return int(value) if value.isdigit() else -1


@blp.post("/participants/<participant_id>/events")
@signed_in
@recorder_only
def record(participant_id: str) -> Any:
    form_type = request.form.get("type", "")
    outcome = backend.record_event(participant_id, request.form, user().email, _version())
    if outcome.stale:
        return _participant_page(participant_id, form_type=form_type,
                                 values=request.form.to_dict(), stale=True, status=412)
    if not outcome.ok:
        return _participant_page(participant_id, form_type=form_type, errors=outcome.errors,
                                 values=request.form.to_dict(), status=422)
    flash(gettext("Recorded: %(what)s.", what=i18n.EVENTS.get(form_type, form_type)))
    return redirect(url_for("web.participant", participant_id=participant_id), 303)


@blp.post("/participants/<participant_id>/feed-token")
@signed_in
@recorder_only
def rotate_feed(participant_id: str) -> Any:
    backend.rotate_feed(participant_id)
    flash(gettext("A new feed URL was issued; the old one no longer works."))
    return redirect(url_for("web.participant", participant_id=participant_id) + "#subscribe",
                    303)


@blp.get("/participants/<participant_id>/print")
@signed_in
def print_card(participant_id: str) -> str:
    shown = backend.get_participant(participant_id)
    participant, schedule, rows = backend.schedule_of(participant_id)
    g.shows_feed_url = shown.feed is not None
    visits = [row for row in rows if row.visit.date is not None
              and row.status not in ("cancelled", "skipped")]
    return render_template(
        "print.html", participant=participant, schedule=schedule, visits=visits,
        qr=qr_code(shown.feed["https"]) if shown.feed else None,
        phone=str(current_app.config["SITE_PHONE"]), printed=backend.site_today())


# --- accounts (admins) ------------------------------------------------------------------------

def _users_page(errors: dict[str, list[str]] | None = None, values: dict[str, str] | None = None,
                row: str | None = None, status: int = 200) -> tuple[str, int]:
    """The accounts and the form for a new one; `errors` belong to the new-account form, or
    to the account `row` when a change of that account was refused."""
    errors = errors or {}
    return render_template(
        "users.html", users=backend.list_users(), roles=backend.roles(),
        errors={} if row else errors, row_errors=errors if row else {}, row=row,
        values=values or {}, min_password=MIN_PASSWORD), status


@blp.get("/users")
@signed_in
@admin_only
def users() -> tuple[str, int]:
    return _users_page()


@blp.post("/users")
@signed_in
@admin_only
def create_user() -> Any:
    outcome = backend.create_user(request.form)
    if not outcome.ok:
        values = request.form.to_dict()
        values.pop("password", None)  # never sent back to the browser
        return _users_page(outcome.errors, values, status=422)
    flash(gettext("Created the account of %(email)s.", email=outcome.value.email))
    return redirect(url_for("web.users"), 303)


@blp.post("/users/<user_id>/role")
@signed_in
@admin_only
def set_role(user_id: str) -> Any:
    outcome = backend.set_role(user_id, request.form.get("role", ""), user().id)
    if not outcome.ok:
        return _users_page(outcome.errors, row=user_id, status=422)
    flash(gettext("The role was changed."))
    return redirect(url_for("web.users"), 303)


@blp.post("/users/<user_id>/disable")
@signed_in
@admin_only
def disable_user(user_id: str) -> Any:
    outcome = backend.disable_user(user_id, user().id)
    if not outcome.ok:
        return _users_page(outcome.errors, row=user_id, status=422)
    flash(gettext("The account was disabled; it can no longer sign in."))
    return redirect(url_for("web.users"), 303)


@blp.post("/users/<user_id>/enable")
@signed_in
@admin_only
def enable_user(user_id: str) -> Any:
    backend.enable_user(user_id)
    flash(gettext("The account was enabled again."))
    return redirect(url_for("web.users"), 303)
