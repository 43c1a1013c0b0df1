"""The database schema, as SQLAlchemy Core tables. Alembic migrations build exactly this; a
test compares the two."""

from __future__ import annotations

import sqlalchemy as sa

from api.persistence.records import FIRST_PROTOCOL_VERSION

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
})

UTC_TIME = sa.DateTime(timezone=True)

participants = sa.Table(
    "participants", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subject_code", sa.String(32), nullable=False, unique=True),
    sa.Column("cryoablation_date", sa.Date, nullable=False),
    sa.Column("childbearing_potential", sa.Boolean, nullable=False),
    sa.Column("lookbacks", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("enrolled_at", UTC_TIME, nullable=False),
    sa.Column("enrolled_by", sa.String(64), nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
    # The protocol version the schedule is computed under (see records.StoredParticipant);
    # the service always writes it, the default is what rows stored before it mean.
    sa.Column("protocol_version", sa.String(32), nullable=False,
              server_default=FIRST_PROTOCOL_VERSION),
    sa.Column("screening_date", sa.Date),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("participant_id", sa.String(36), sa.ForeignKey("participants.id"),
              nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("date", sa.Date),
    sa.Column("cycle", sa.Integer),
    sa.Column("reason", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("corrects", sa.String(36), sa.ForeignKey("events.id")),
    sa.Column("changes", sa.JSON),
    sa.Column("recorded_by", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTC_TIME, nullable=False),
    sa.Column("reason_code", sa.String(32)),
    sa.Column("protocol_version", sa.String(32)),
    sa.Column("visit_id", sa.String(32)),
    sa.Column("purpose", sa.Text),
    sa.Column("note", sa.Text),
    # One sequence number per event of a participant: two writers cannot both append seq n.
    sa.UniqueConstraint("participant_id", "seq", name="uq_events_participant_seq"),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(8), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("revoked_at", UTC_TIME),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("api_key_id", sa.String(16), sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
)

feed_tokens = sa.Table(
    "feed_tokens", metadata,
    # The public half of a feed URL; the URL's secret half is stored only as a digest.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("participant_id", sa.String(36), sa.ForeignKey("participants.id")),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("revoked_at", UTC_TIME),
)

# At most one live token per feed (rotation revokes the old one in the same transaction):
# one for the site, one per participant.
sa.Index("uq_feed_tokens_live_site", feed_tokens.c.kind, unique=True,
         postgresql_where=sa.text("revoked_at IS NULL AND participant_id IS NULL"),
         sqlite_where=sa.text("revoked_at IS NULL AND participant_id IS NULL"))
sa.Index("uq_feed_tokens_live_participant", feed_tokens.c.participant_id, unique=True,
         postgresql_where=sa.text("revoked_at IS NULL"),
         sqlite_where=sa.text("revoked_at IS NULL"))

# What each subscriber has last been told of a visit, so that SEQUENCE rises with every change
# of date, window or status (RFC 5546 §2.1.4) and DTSTAMP is when it changed, not now().
visit_states = sa.Table(
    "visit_states", metadata,
    sa.Column("participant_id", sa.String(36), sa.ForeignKey("participants.id"),
              primary_key=True),
    sa.Column("visit_id", sa.String(32), primary_key=True),
    sa.Column("date", sa.Date),
    sa.Column("earliest", sa.Date),
    sa.Column("latest", sa.Date),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("present", sa.Boolean, nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("changed_at", UTC_TIME, nullable=False),
    # What the worklist shows of a visit; its day status (due, overdue) is derived when read,
    # from the window above and the site's today.
    sa.Column("kind", sa.String(32)),
    sa.Column("title", sa.String(200)),
    sa.Column("rule", sa.String(64)),
)
# The worklist's read: open visits whose window has opened by a given day.
sa.Index("ix_visit_states_status_earliest", visit_states.c.status, visit_states.c.earliest)

# Each participant's events as the site feed shows them, rendered (zlib) when the participant
# is written, for the version and protocol tag named: a site feed is assembled from these
# instead of computed. A row for another version or tag is not used.
rendered_feeds = sa.Table(
    "rendered_feeds", metadata,
    sa.Column("participant_id", sa.String(36), sa.ForeignKey("participants.id"),
              primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("tag", sa.String(128), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # One line an event: its UID, mark and length (api/usecases/feeds.py SiteEventsWriter).
    sa.Column("marks", sa.Text, nullable=True),
)

# People who sign in to the coordinator web app (API keys stay for machines). Only an argon2
# hash of the password is kept; the email is stored lower-cased.
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("disabled_at", UTC_TIME),
)

# Webhook endpoints an admin registered (docs/webhooks.md). The signing secret is kept as
# issued: unlike an API key it cannot be a digest, since the worker signs every delivery with
# it (Standard Webhooks 1.0, "Signature scheme"); the database's own access control guards it.
webhook_endpoints = sa.Table(
    "webhook_endpoints", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    # The event types delivered to it; null: every type.
    sa.Column("event_types", sa.JSON),
    # active; disabled (the receiver answered 410 Gone); deleted (by an admin).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("disabled_at", UTC_TIME),
)

# The outbox: one row per event, written in the transaction of the write that caused it (or of
# the overdue scan), with the exact body every endpoint is sent; its id is the `webhook-id`.
webhook_messages = sa.Table(
    "webhook_messages", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("participant_id", sa.String(36), sa.ForeignKey("participants.id"),
              nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
)

# One row per message per endpoint subscribed when it was written: the delivery's own state,
# read the same on either database (pending until delivered, or dead after the last attempt).
webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("message_id", sa.String(40), sa.ForeignKey("webhook_messages.id"),
              nullable=False),
    sa.Column("endpoint_id", sa.String(36), sa.ForeignKey("webhook_endpoints.id"),
              nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTC_TIME, nullable=False),
    sa.Column("last_attempt_at", UTC_TIME),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.String(200)),
    sa.Column("delivered_at", UTC_TIME),
    sa.Column("created_at", UTC_TIME, nullable=False),
)
# The worker's claim: pending deliveries whose next attempt is due.
sa.Index("ix_webhook_deliveries_state_next", webhook_deliveries.c.state,
         webhook_deliveries.c.next_attempt_at)
# An endpoint's deliveries, newest first (GET /v1/webhooks/{id}/deliveries).
sa.Index("ix_webhook_deliveries_endpoint_created", webhook_deliveries.c.endpoint_id,
         webhook_deliveries.c.created_at)

# Each visit the site's day made overdue, once announced (visit.overdue): its window's last
# day is part of the key, so a visit moved to a new window and left overdue again is announced
# again, and a restarted worker announces nothing twice.
webhook_overdue = sa.Table(
    "webhook_overdue", metadata,
    sa.Column("participant_id", sa.String(36), sa.ForeignKey("participants.id"),
              primary_key=True),
    sa.Column("visit_id", sa.String(32), primary_key=True),
    sa.Column("latest", sa.Date, primary_key=True),
    sa.Column("announced_at", UTC_TIME, nullable=False),
)
