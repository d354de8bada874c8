"""Search indexes: value heads of params and tags, a covering index for metric filters.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VALUE_HEAD = 100


def upgrade() -> None:
    for table in ("params", "tags"):
        op.add_column(table, sa.Column("value_head", sa.String(VALUE_HEAD), nullable=False, server_default=""))
        op.execute(f"UPDATE {table} SET value_head = substr(value, 1, {VALUE_HEAD})")
        op.drop_index(f"ix_{table}_key_run", table_name=table)
        op.create_index(f"ix_{table}_key_head_run", table, ["key", "value_head", "run_id"])
    op.drop_index("ix_latest_metrics_key_value", table_name="latest_metrics")
    op.create_index("ix_latest_metrics_key_value_run", "latest_metrics", ["key", "value", "is_nan", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_latest_metrics_key_value_run", table_name="latest_metrics")
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    for table in ("params", "tags"):
        op.drop_index(f"ix_{table}_key_head_run", table_name=table)
        op.create_index(f"ix_{table}_key_run", table, ["key", "run_id"])
        with op.batch_alter_table(table) as batch:
            batch.drop_column("value_head")
