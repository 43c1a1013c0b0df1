"""Each stored block of rendered site-feed events keeps its events' marks (UID, fingerprint of
what rendering reads, length), so a write reuses an unchanged event's bytes by comparing marks
instead of reading the bytes back (api/usecases/feeds.py SiteEventsWriter). A block stored
before has none: its next write renders every event once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rendered_feeds") as table:
        table.add_column(sa.Column("marks", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rendered_feeds") as table:
        table.drop_column("marks")
