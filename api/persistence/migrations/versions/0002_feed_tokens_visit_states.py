"""Feed tokens and the per-visit state calendar feeds are built from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feed_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("participant_id", sa.String(36)),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME),
        sa.PrimaryKeyConstraint("id", name="pk_feed_tokens"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_feed_tokens_participant_id_participants"),
    )
    op.create_table(
        "visit_states",
        sa.Column("participant_id", sa.String(36), nullable=False),
        sa.Column("visit_id", sa.String(32), nullable=False),
        sa.Column("date", sa.Date),
        sa.Column("earliest", sa.Date),
        sa.Column("latest", sa.Date),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("present", sa.Boolean, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("changed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("participant_id", "visit_id", name="pk_visit_states"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_visit_states_participant_id_participants"),
    )


def downgrade() -> None:
    op.drop_table("visit_states")
    op.drop_table("feed_tokens")
