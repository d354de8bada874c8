"""Study webhooks: the webhooks, their delivery outbox and the attempts of each delivery.

Named study_* so that a database shared with the tracking service (which has its registry's
``webhooks`` tables) holds both.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "study_webhooks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.String(200), nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "study_webhook_deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", ID, sa.ForeignKey("study_webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("trial_number", sa.BigInteger, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("claimed_until_ms", sa.BigInteger, nullable=True),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_study_webhook_deliveries_due", "study_webhook_deliveries", ["status", "next_attempt_ms"])
    op.create_index("ix_study_webhook_deliveries_webhook", "study_webhook_deliveries", ["webhook_id", "id"])
    op.create_table(
        "study_webhook_attempts",
        sa.Column("delivery_id", ID, sa.ForeignKey("study_webhook_deliveries.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("duration_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("study_webhook_attempts")
    op.drop_table("study_webhook_deliveries")
    op.drop_table("study_webhooks")
