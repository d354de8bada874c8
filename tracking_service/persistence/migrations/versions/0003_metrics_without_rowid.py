"""On SQLite, metric points live in their primary-key B-tree (WITHOUT ROWID).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = "run_id, key, step, timestamp_ms, value, is_nan"


def _rebuild(with_rowid: bool) -> None:
    # SQLite cannot change a table's storage in place: copy into a new table and swap.
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "metrics_rebuilt",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("timestamp_ms", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.Float(precision=53), primary_key=True),
        sa.Column("is_nan", sa.Boolean, primary_key=True),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO metrics_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM metrics")
    op.drop_table("metrics")
    op.rename_table("metrics_rebuilt", "metrics")


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
