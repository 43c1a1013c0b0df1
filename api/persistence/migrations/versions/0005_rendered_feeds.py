"""Each participant's site-feed events, rendered when the participant is written.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rendered_feeds",
        sa.Column("participant_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("participant_id", name="pk_rendered_feeds"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_rendered_feeds_participant_id_participants"),
    )


def downgrade() -> None:
    op.drop_table("rendered_feeds")
