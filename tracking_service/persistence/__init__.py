"""Storage of experiments, runs and the registry: tables, migrations and repositories."""

from sqlalchemy.engine import Connection

from tuning_common.database import Migrations

MIGRATIONS = Migrations(
    script_location="tracking_service.persistence:migrations",
    version_table="tracking_schema_version",
)

# What a use case hands its repositories: the connection of the transaction that
# Database.run opened for it. Services only pass it on; statements are the repositories' business.
Transaction = Connection
