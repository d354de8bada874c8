"""Roles per study: the roles given on them and the audit of every change (docs/OPERATIONS.md "Roles").

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from tuning_common.permissions import create_tables_v1, drop_tables_v1

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_tables_v1(op, "study_")  # tuning_common/permissions.py


def downgrade() -> None:
    drop_tables_v1(op, "study_")
