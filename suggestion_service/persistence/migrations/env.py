"""Alembic environment (see tuning_common.database.run_migrations)."""

from suggestion_service.persistence.tables import metadata
from tuning_common.database import run_migrations

run_migrations(metadata)
