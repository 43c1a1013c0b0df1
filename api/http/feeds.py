"""Subscribable calendar feeds, authorised by the secret token in their URL alone."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, request, send_file
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from api.http.auth import requires
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


class FeedTokenSchema(ma.Schema):
    feed = fields.Nested(FeedLinksSchema, required=True)


def feeds() -> Feeds:
    return container().feeds


def not_found() -> Response:
    return problem(404, "Not Found", "No feed at this address.")


def calendar(feed: Feed, public: bool = False) -> Response:
    """Stream a feed with a strong ETag and Last-Modified, answering 304 without rendering
    when the client has it (docs/feeds.md, rule 12). Conditions are checked here, before the body
    exists: werkzeug's make_conditional would consume a streamed body to answer a 304. A feed
    whose URL is a credential is private to caches; a calculator calendar may be public."""
    unchanged = request.if_none_match.contains(feed.etag) if request.if_none_match else (
        request.if_modified_since is not None
        and feed.last_modified.replace(microsecond=0) <= request.if_modified_since)
    if unchanged:
        response = Response(status=304)
    elif feed.path is not None:
        # gunicorn sends a file with sendfile: no copy of the feed passes through Python.
        response = send_file(feed.path, mimetype="text/calendar", conditional=False,
                             etag=False, max_age=None)
    else:
        response = Response(feed.chunks, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.set_etag(feed.etag)
    response.last_modified = feed.last_modified
    if public:
        response.cache_control.public = True
    else:
        response.cache_control.private = True
    response.cache_control.max_age = CACHE_SECONDS
    return response


def document_feed(view: Any) -> Any:
    view = blp.response(200, CALENDAR, content_type="text/calendar",
                        description="The calendar", headers={
                            "ETag": {"schema": {"type": "string"}},
                            "Last-Modified": {"schema": {"type": "string"}}})(view)
    view = blp.alt_response(304, description="Not modified")(view)
    return blp.alt_response(404, description="No feed at this address", schema=ProblemSchema,
                            content_type=PROBLEM_JSON)(view)


@blp.route("/feeds/<token>.ics")
class ParticipantFeedView(MethodView):
    @document_feed
    def get(self, token: str) -> Response:
        """One participant's visits"""
        feed = feeds().participant_feed(token)
        return calendar(feed) if feed else not_found()


@blp.route("/feeds/site/<token>.ics")
class SiteFeedView(MethodView):
    @document_feed
    def get(self, token: str) -> Response:
        """Every participant's visits at the site"""
        feed = feeds().site_feed(token)
        return calendar(feed) if feed else not_found()


@admin.route("/feed-token")
class SiteFeedTokenView(MethodView):
    @requires("admin")
    @admin.response(200, FeedTokenSchema)
    @admin.alt_response(401, description="No valid API key", schema=ProblemSchema,
                        content_type=PROBLEM_JSON)
    @admin.alt_response(403, description="Needs an admin key", schema=ProblemSchema,
                        content_type=PROBLEM_JSON)
    def post(self) -> dict[str, Any]:
        """Issue or rotate the site feed URL; the old one stops working at once"""
        token = feeds().rotate("site")
        return {"feed": feeds().links.site_links(token)}
