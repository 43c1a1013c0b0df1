"""Start-up: `create_app()` reads the configuration, builds the container of use cases over
the database, and hands it to the HTTP layer."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from api import http, web
from api.http import observe
from api.http.context import container
from api.http.metrics import register_webhook_outbox
from api.http.participants import schedule_body
from api.http.schemas import schedule_json
from api.persistence.database import create_db_engine, default_url
from api.persistence.feed_reads import FeedReads
from api.persistence.sql import SqlUnits
from api.usecases.api_keys import ApiKeys
from api.usecases.common import SiteClock
from api.usecases.container import Container
from api.usecases.feed_tokens import FeedLinks, FeedTokens
from api.usecases.feeds import Feeds, SiteEventsWriter, feeds_protocol_tag
from api.usecases.participants import Participants
from api.usecases.protocols import Protocols
from api.usecases.schedule_documents import ScheduleDocuments
from api.usecases.schedules import Schedules
from api.usecases.webhooks import WebhookOutbox, Webhooks
from api.usecases.worklist import Worklist
from scheduler import load_protocol, load_site

DEFAULTS: dict[str, Any] = {
    **http.DEFAULTS,
    "PROTOCOL_FILE": None,
    "SITE_FILE": None,
    "DATABASE_URL": None,
    "PUBLIC_BASE_URL": None,  # unset: feed links use the request's scheme and host
    "FEED_SECRET": None,
    "SITE_FEED_DIR": None,
    "TODAY": None,  # YYYY-MM-DD: freeze the site's today (demonstrations, tests)
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory. Settings come from `DEFAULTS`, then `DATABASE_URL` and
    `TRIAL_SCHEDULE_*` environment variables (e.g. `TRIAL_SCHEDULE_PROTOCOL_FILE`), then
    `config`. Without a database URL the embedded SQLite file in the instance folder is used."""
    app = Flask("api", instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    if os.environ.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = os.environ["DATABASE_URL"]
    app.config.from_prefixed_env("TRIAL_SCHEDULE")
    app.config.update(config or {})
    http.install(app, build_container(app))
    web.init_app(app)  # the coordinator pages and sign-in, over the same container
    observe.init_app(app)  # request ids, metrics (/metrics) and the JSON access record
    webhooks = container(app).webhooks
    register_webhook_outbox(app, lambda: webhooks.outbox()[0], lambda: webhooks.outbox()[1])
    return app


def build_container(app: Flask) -> Container:
    """The use cases over the configured database, each given its collaborators."""
    # A protocol file (TRIAL_SCHEDULE_PROTOCOL_FILE) is the current version, beside every
    # packaged one: participants stay on the version they are pinned to.
    protocols = Protocols.loaded(load_protocol(app.config["PROTOCOL_FILE"]))
    protocol = protocols.current
    site = load_site(app.config["SITE_FILE"])
    clock = SiteClock(site.time_zone, _frozen_today(app))
    engine = create_db_engine(app.config["DATABASE_URL"] or default_url(app.instance_path))
    units = SqlUnits(engine)
    reads = FeedReads(engine)
    links = FeedLinks(feed_secret(app), app.config["PUBLIC_BASE_URL"] or None,
                      http.request_base_url)
    tokens = FeedTokens(links)
    # Each write keeps the participant's rendered site events current, and puts its webhook
    # messages in the outbox, in its own transaction.
    participants = Participants(units, protocol, site, tokens.issue_for_enrolment, protocols,
                                on_saved=SiteEventsWriter(feeds_protocol_tag(protocols)),
                                on_written=WebhookOutbox(), today=clock.today)
    site_dir = app.config.get("SITE_FEED_DIR")
    feeds = Feeds(participants, tokens, site_dir=Path(site_dir) if site_dir else None,
                  keys=reads.key)
    return Container(
        protocol=protocol, site=site, engine=engine, units=units,
        schedules=Schedules(protocol, site, schedule_json),
        participants=participants,
        api_keys=ApiKeys(units, reads.api_key, reads.api_key_and_version),
        feeds=feeds,
        feed_links=links, protocols=protocols, clock=clock,
        worklist=Worklist(units, protocol.visit_order, participants.visits_for_day),
        schedule_documents=ScheduleDocuments(participants, schedule_body, reads.version),
        webhooks=Webhooks(units))


def _frozen_today(app: Flask) -> dt.date | None:
    value = app.config["TODAY"]
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def feed_secret(app: Flask) -> bytes:
    """The key feed tokens are derived under: `TRIAL_SCHEDULE_FEED_SECRET`, or a random one
    kept in the instance folder (every worker and node serving one database must share it)."""
    if app.config["FEED_SECRET"]:
        return str(app.config["FEED_SECRET"]).encode()
    path = Path(app.instance_path) / "feed-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(handle, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_bytes().strip()
