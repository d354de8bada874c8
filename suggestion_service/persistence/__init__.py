"""Storage of studies and trials: tables, migrations and the repository."""

from tuning_common.database import Migrations

MIGRATIONS = Migrations(
    script_location="suggestion_service.persistence:migrations",
    version_table="suggestion_schema_version",
)
