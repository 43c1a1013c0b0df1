"""At most one live token per feed, held by the database: rotation raced on PostgreSQL and
left several site tokens live.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE = sa.text("revoked_at IS NULL")
LIVE_SITE = sa.text("revoked_at IS NULL AND participant_id IS NULL")

# Every live token with a newer live token of the same feed: the race's leftovers.
SUPERSEDED = """
UPDATE feed_tokens SET revoked_at = :now
WHERE revoked_at IS NULL AND EXISTS (
    SELECT 1 FROM feed_tokens AS newer
    WHERE newer.revoked_at IS NULL AND newer.kind = feed_tokens.kind
      AND (newer.participant_id = feed_tokens.participant_id
           OR (newer.participant_id IS NULL AND feed_tokens.participant_id IS NULL))
      AND (newer.created_at > feed_tokens.created_at
           OR (newer.created_at = feed_tokens.created_at AND newer.id > feed_tokens.id)))
"""


def upgrade() -> None:
    op.get_bind().execute(sa.text(SUPERSEDED).bindparams(
        sa.bindparam("now", dt.datetime.now(dt.UTC), type_=sa.DateTime(timezone=True))))
    op.create_index("uq_feed_tokens_live_site", "feed_tokens", ["kind"], unique=True,
                    postgresql_where=LIVE_SITE, sqlite_where=LIVE_SITE)
    op.create_index("uq_feed_tokens_live_participant", "feed_tokens", ["participant_id"],
                    unique=True, postgresql_where=LIVE, sqlite_where=LIVE)


def downgrade() -> None:
    op.drop_index("uq_feed_tokens_live_participant", "feed_tokens")
    op.drop_index("uq_feed_tokens_live_site", "feed_tokens")
