"""Participants, their append-only events, API keys and idempotency records.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("subject_code", sa.String(32), nullable=False),
        sa.Column("cryoablation_date", sa.Date, nullable=False),
        sa.Column("childbearing_potential", sa.Boolean, nullable=False),
        sa.Column("lookbacks", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("enrolled_at", UTC_TIME, nullable=False),
        sa.Column("enrolled_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_participants"),
        sa.UniqueConstraint("subject_code", name="uq_participants_subject_code"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("participant_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("date", sa.Date),
        sa.Column("cycle", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("corrects", sa.String(36)),
        sa.Column("changes", sa.JSON),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_events_participant_id_participants"),
        sa.ForeignKeyConstraint(["corrects"], ["events.id"], name="fk_events_corrects_events"),
        sa.UniqueConstraint("participant_id", "seq", name="uq_events_participant_seq"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", "key", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"],
                                name="fk_idempotency_keys_api_key_id_api_keys"),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "api_keys", "events", "participants"):
        op.drop_table(table)
