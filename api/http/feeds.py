"""Subscribable calendar feeds, authorised by the secret token in their URL alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import marshmallow as ma
from flask import Response, request, send_file
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields
from werkzeug.http import http_date, parse_etags

from api.http import example_responses as answers
from api.http.auth import View, requires
from api.http.context import container
from api.http.problems import PROBLEM_JSON, ProblemSchema, problem
from api.http.schemas import FeedLinksSchema
from api.usecases.feeds import Feed, Feeds

blp = Blueprint("feeds", __name__, description="iCalendar feeds for calendar subscriptions. "
                "The URL is the credential: keep it secret, rotate it when it leaks.")
admin = Blueprint("site", __name__, url_prefix="/v1/site",
                  description="Site-wide settings (admin API keys only).")

CALENDAR = {"type": "string", "description": "An RFC 5545 iCalendar feed"}
CACHE_SECONDS = 300
CALENDAR_TYPE = "text/calendar; charset=utf-8"
PRIVATE = f"private, max-age={CACHE_SECONDS}"


class FeedTokenSchema(ma.Schema):
    feed = fields.Nested(FeedLinksSchema, required=True)


def feeds() -> Feeds:
    return container().feeds


def not_found() -> Response:
    return problem(404, "Not Found", "No feed at this address.")


def weak_match(header: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`. The one
    shape clients send back, the tag as it was given, is matched without parsing."""
    if not header:
        return False
    if header == f'"{etag}"' or header == f'W/"{etag}"':
        return True
    return parse_etags(header).contains_weak(etag)


def unchanged(etag: str, last_modified: dt.datetime) -> bool:
    """The client has this version: If-None-Match when sent, else If-Modified-Since."""
    header = request.environ.get("HTTP_IF_NONE_MATCH")
    if header:
        return weak_match(header, etag)
    since = request.if_modified_since
    return since is not None and last_modified.replace(microsecond=0) <= since


def calendar(feed: Feed, public: bool = False) -> Response:
    """Stream a feed with a strong ETag and Last-Modified, answering 304 without rendering
    when the client has it (docs/feeds.md, rule 12). Conditions are checked here, before the body
    exists: werkzeug's make_conditional would consume a streamed body to answer a 304. A feed
    whose URL is a credential is private to caches; a calculator calendar may be public."""
    if unchanged(feed.etag, feed.last_modified):
        response = Response(status=304)
    elif feed.path is not None:
        # gunicorn sends a file with sendfile: no copy of the feed passes through Python.
        response = send_file(feed.path, mimetype="text/calendar", conditional=False,
                             etag=False, max_age=None)
    else:
        response = Response(feed.chunks, mimetype="text/calendar")
    response.headers["Content-Type"] = CALENDAR_TYPE
    response.set_etag(feed.etag)
    response.last_modified = feed.last_modified
    if public:
        response.cache_control.public = True
    else:
        response.cache_control.private = True
    response.cache_control.max_age = CACHE_SECONDS
    return response


@lru_cache(maxsize=4096)
def calendar_headers(etag: str, last_modified: dt.datetime) -> list[tuple[str, str]]:
    """A participant feed's headers (docs/feeds.md, rule 12), kept per version: the same few
    versions are asked for again and again."""
    return [("Content-Type", CALENDAR_TYPE), ("ETag", f'"{etag}"'),
            ("Last-Modified", http_date(last_modified)), ("Cache-Control", PRIVATE)]


def documented(*decorators: Callable[[Any], Any]) -> Callable[[View], View]:
    """The OpenAPI documentation flask-smorest's decorators give a view (listed as they would
    be stacked, the outermost first), without the wrappers they put around it at run time."""
    def decorate(view: View) -> View:
        wrapped: Any = view
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        view._apidoc = wrapped._apidoc  # type: ignore[attr-defined]
        return view
    return decorate


FEED_DOCS = (
    blp.alt_response(404, description="No feed at this address", schema=ProblemSchema,
                     content_type=PROBLEM_JSON),
    blp.alt_response(304, description="Not modified"),
    blp.response(200, CALENDAR, content_type="text/calendar", description="The calendar",
                 example=answers.CALENDAR,
                 headers={"ETag": {"schema": {"type": "string"}},
                          "Last-Modified": {"schema": {"type": "string"}}}),
)


@documented(*FEED_DOCS)
def participant_feed(token: str) -> Response:
    """One participant's visits

    The participant's schedule as an RFC 5545 calendar to subscribe to: each visit an all-day
    event with a stable UID, moved visits with a higher SEQUENCE, cancelled ones removed. The
    URL is the credential (no API key: calendar clients cannot send one); it carries the
    subject code and no free text. Answers 304 to a matching If-None-Match or
    If-Modified-Since, 404 to an unknown or rotated token.
    """
    feed = feeds().participant_feed(token)
    if feed is None:
        return not_found()
    if unchanged(feed.etag, feed.last_modified):
        return Response(status=304, headers=calendar_headers(feed.etag, feed.last_modified))
    etag, last_modified, body = feed.body()
    return Response(body, headers=calendar_headers(etag, last_modified))


@documented(*FEED_DOCS)
def site_feed(token: str) -> Response:
    """Every participant's visits at the site

    One calendar holding every participant's visits, for the site's shared calendar; issued
    by an admin key (`POST /v1/site/feed-token`). As for a participant's feed, the URL is the
    credential, visits keep their UID, and a conditional request gets a 304.
    """
    feed = feeds().site_feed(token)
    return calendar(feed) if feed else not_found()


# Plain Flask views (registered through the blueprint only to be documented): a feed request
# passes no API-key check and carries no body, so it skips the API's before-request hooks
# (api.http.LEAN_ENDPOINTS).
blp.add_url_rule("/feeds/<token>.ics", view_func=participant_feed)
blp.add_url_rule("/feeds/site/<token>.ics", view_func=site_feed)
LEAN_ENDPOINTS = frozenset({"feeds.participant_feed", "feeds.site_feed"})


@admin.route("/feed-token")
class SiteFeedTokenView(MethodView):
    @requires("admin")
    @admin.response(200, FeedTokenSchema, example=answers.SITE_FEED)
    @admin.alt_response(401, description="No valid API key", schema=ProblemSchema,
                        content_type=PROBLEM_JSON)
    @admin.alt_response(403, description="Needs an admin key", schema=ProblemSchema,
                        content_type=PROBLEM_JSON)
    def post(self) -> dict[str, Any]:
        """Issue or rotate the site feed URL; the old one stops working at once

        Answers the site feed's new links (https for Google and Outlook, webcal for Apple and
        Thunderbird); a site feed URL issued before answers 404 from the next request on.
        Needs an `admin` key.
        """
        token = feeds().rotate("site")
        return {"feed": feeds().links.site_links(token)}
