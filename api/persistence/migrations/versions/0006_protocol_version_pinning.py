"""Each participant keeps the protocol version its schedule is computed under; the history
keeps discontinuation reason codes and protocol version changes; enrolment keeps the
screening date.

Every participant stored before this revision was computed under the first protocol version,
`2025-09-15.1`, and is pinned to it, so an upgrade moves nobody's dates: only a recorded
`protocol_version_changed` event does.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FIRST_PROTOCOL_VERSION = "2025-09-15.1"


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild, which SQLite's foreign keys refuse while rows refer
    # to participants); the server default fills the rows already there.
    op.add_column("participants", sa.Column("protocol_version", sa.String(32), nullable=False,
                                            server_default=FIRST_PROTOCOL_VERSION))
    op.add_column("participants", sa.Column("screening_date", sa.Date))
    op.add_column("events", sa.Column("reason_code", sa.String(32)))
    op.add_column("events", sa.Column("protocol_version", sa.String(32)))


def downgrade() -> None:
    op.drop_column("events", "protocol_version")
    op.drop_column("events", "reason_code")
    op.drop_column("participants", "screening_date")
    op.drop_column("participants", "protocol_version")
