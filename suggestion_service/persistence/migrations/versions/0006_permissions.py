"""Roles per study: the roles given on them and the audit of every change (docs/OPERATIONS.md "Roles").

Revision ID: 0006_permissions
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_permissions"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "permissions",
        sa.Column("resource_type", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(250), primary_key=True),
        sa.Column("subject", sa.String(260), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_index("ix_permissions_subject", "permissions", ["resource_type", "subject"])
    op.create_table(
        "permission_audit",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(250), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(250), nullable=False),
        sa.Column("subject", sa.String(260), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False, server_default=""),
        sa.Column("detail", sa.String(250), nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("permission_audit")
    op.drop_index("ix_permissions_subject", table_name="permissions")
    op.drop_table("permissions")
