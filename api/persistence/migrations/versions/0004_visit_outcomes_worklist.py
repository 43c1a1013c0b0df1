"""Visit outcomes in the history, and what the worklist reads from the visit states.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("visit_id", sa.String(32)))
        batch.add_column(sa.Column("purpose", sa.Text))
        batch.add_column(sa.Column("note", sa.Text))
    # Rows written before this revision have no kind, title or rule: the feed compares them
    # too, so the first read of a participant's feed (or any write) fills them in.
    with op.batch_alter_table("visit_states") as batch:
        batch.add_column(sa.Column("kind", sa.String(32)))
        batch.add_column(sa.Column("title", sa.String(200)))
        batch.add_column(sa.Column("rule", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("visit_states") as batch:
        batch.drop_column("rule")
        batch.drop_column("title")
        batch.drop_column("kind")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("note")
        batch.drop_column("purpose")
        batch.drop_column("visit_id")
