"""An index for the worklist: the open visits whose window has opened by a given day.

The worklist asks for open visits (planned, provisional) whose window opened on or before the
later of the site's today and the end of the range; without an index that read every visit
state of every participant.

Revision ID: 0007
Revises: web_0001_users
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "web_0001_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_visit_states_status_earliest", "visit_states", ["status", "earliest"])


def downgrade() -> None:
    op.drop_index("ix_visit_states_status_earliest", "visit_states")
