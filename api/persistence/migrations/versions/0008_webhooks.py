"""Webhooks: registered endpoints, the transactional outbox of messages, each message's
delivery state per endpoint, and the overdue visits already announced (docs/webhooks.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("event_types", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("disabled_at", UTC_TIME),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("participant_id", sa.String(36), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_messages"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_webhook_messages_participant_id_participants"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("last_attempt_at", UTC_TIME),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.String(200)),
        sa.Column("delivered_at", UTC_TIME),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(["message_id"], ["webhook_messages.id"],
                                name="fk_webhook_deliveries_message_id_webhook_messages"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"],
                                name="fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
    )
    op.create_index("ix_webhook_deliveries_state_next", "webhook_deliveries",
                    ["state", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_endpoint_created", "webhook_deliveries",
                    ["endpoint_id", "created_at"])
    op.create_table(
        "webhook_overdue",
        sa.Column("participant_id", sa.String(36), nullable=False),
        sa.Column("visit_id", sa.String(32), nullable=False),
        sa.Column("latest", sa.Date, nullable=False),
        sa.Column("announced_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("participant_id", "visit_id", "latest",
                                name="pk_webhook_overdue"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_webhook_overdue_participant_id_participants"),
    )


def downgrade() -> None:
    op.drop_table("webhook_overdue")
    op.drop_index("ix_webhook_deliveries_endpoint_created", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_state_next", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_messages")
    op.drop_table("webhook_endpoints")
