"""LogBatch request ids (a replayed batch stores nothing); experiment names up to 500 characters.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_requests",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("request_id", sa.String(256), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
    )
    _resize_names(500, 250)


def _resize_names(new: int, old: int) -> None:
    # SQLite does not enforce VARCHAR lengths, and rebuilding the table (its only way to change a
    # column) would trip the foreign keys of the runs that point at it: nothing to do there.
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column("experiments", "name", type_=sa.String(new), existing_type=sa.String(old), existing_nullable=False)


def downgrade() -> None:
    # Names over 250 characters would not fit the old column: refuse rather than truncate them.
    longest = op.get_bind().execute(sa.text("SELECT max(length(name)) FROM experiments")).scalar() or 0
    if longest > 250:
        raise RuntimeError(f"an experiment name is {longest} characters long; revision 0003 keeps at most 250: "
                           "rename those experiments first")
    _resize_names(250, 500)
    op.drop_table("batch_requests")
