"""Initial schema: studies, trials, measurements, suggest_requests.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("trial_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("budget_used", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("algorithm_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "trials",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("study_id", ID, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("budget", sa.Float, nullable=True),
        sa.Column("worker_id", sa.String(256), nullable=False, server_default=""),
        sa.Column("request_id", sa.String(256), nullable=True),
        sa.Column("lease_expires_ms", sa.BigInteger, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_of", ID, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("last_step", sa.BigInteger, nullable=True),
        sa.Column("last_metrics", sa.JSON, nullable=True),
        sa.Column("last_measurement_ms", sa.BigInteger, nullable=True),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=True),
        sa.Column("end_ms", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_trials_study_state", "trials", ["study_id", "state"])
    op.create_index("ix_trials_study_request", "trials", ["study_id", "request_id"])
    op.create_index("ix_trials_state_lease", "trials", ["state", "lease_expires_ms"])
    op.create_table(
        "measurements",
        sa.Column("trial_id", ID, sa.ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "suggest_requests",
        sa.Column("study_id", ID, sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("request_id", sa.String(256), primary_key=True),
        sa.Column("worker_id", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done_reason", sa.String(32), nullable=True),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("suggest_requests", "measurements", "trials", "studies"):
        op.drop_table(table)
