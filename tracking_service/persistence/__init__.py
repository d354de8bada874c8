"""Storage of experiments, runs and the registry: tables, migrations and repositories."""

from tuning_common.database import Migrations

MIGRATIONS = Migrations(
    script_location="tracking_service.persistence:migrations",
    version_table="tracking_schema_version",
)
