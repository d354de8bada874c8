"""Alembic environment: always run on a connection handed in by tuning_common.database."""

from alembic import context

from tracking_service.persistence.tables import metadata

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=metadata,
    version_table=config.get_main_option("version_table"),
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
