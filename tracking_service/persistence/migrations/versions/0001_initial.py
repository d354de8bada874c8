"""Initial schema: experiments, runs, params, tags, metrics, datasets and the model registry.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('artifact_location', sa.Text(), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=16), nullable=False),
    sa.Column('create_ms', sa.BigInteger(), nullable=False),
    sa.Column('update_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sqlite_autoincrement=True
    )
    op.create_table('registered_models',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('last_version', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('create_ms', sa.BigInteger(), nullable=False),
    sa.Column('update_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sqlite_autoincrement=True
    )
    op.create_table('registry_events',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('model_name', sa.String(length=250), nullable=False),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_value', sa.Text(), server_default='', nullable=False),
    sa.Column('to_value', sa.Text(), server_default='', nullable=False),
    sa.Column('alias', sa.String(length=250), server_default='', nullable=False),
    sa.Column('actor', sa.String(length=250), server_default='', nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_index('ix_registry_events_model', 'registry_events', ['model_name', 'version'], unique=False)
    op.create_table('datasets',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('experiment_id', ID, nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('digest', sa.String(length=128), nullable=False),
    sa.Column('source_type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('schema', sa.Text(), nullable=False),
    sa.Column('profile', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('experiment_id', 'name', 'digest', name='uq_datasets_experiment_name_digest'),
    sqlite_autoincrement=True
    )
    op.create_table('experiment_tags',
    sa.Column('experiment_id', ID, nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('experiment_id', 'key')
    )
    op.create_table('model_aliases',
    sa.Column('model_id', ID, nullable=False),
    sa.Column('alias', sa.String(length=250), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'alias')
    )
    op.create_table('model_versions',
    sa.Column('model_id', ID, nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('storage_uri', sa.Text(), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('user', sa.String(length=250), server_default='', nullable=False),
    sa.Column('create_ms', sa.BigInteger(), nullable=False),
    sa.Column('update_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'version')
    )
    op.create_index('ix_model_versions_run', 'model_versions', ['run_id'], unique=False)
    op.create_table('registered_model_tags',
    sa.Column('model_id', ID, nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key')
    )
    op.create_table('runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('experiment_id', ID, nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=16), nullable=False),
    sa.Column('start_ms', sa.BigInteger(), nullable=False),
    sa.Column('end_ms', sa.BigInteger(), nullable=True),
    sa.Column('parent_run_id', sa.String(length=32), nullable=True),
    sa.Column('run_group', sa.String(length=250), server_default='', nullable=False),
    sa.Column('user', sa.String(length=250), server_default='', nullable=False),
    sa.Column('artifact_uri', sa.Text(), nullable=False),
    sa.Column('trial_study', sa.String(length=128), nullable=True),
    sa.Column('trial_id', sa.BigInteger(), nullable=True),
    sa.Column('trial_number', sa.BigInteger(), nullable=True),
    sa.Column('request_id', sa.String(length=256), nullable=True),
    sa.Column('create_ms', sa.BigInteger(), nullable=False),
    sa.Column('update_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('experiment_id', 'request_id', name='uq_runs_experiment_request')
    )
    op.create_index('ix_runs_experiment_stage_start', 'runs', ['experiment_id', 'lifecycle_stage', 'start_ms'], unique=False)
    op.create_index('ix_runs_parent', 'runs', ['parent_run_id'], unique=False)
    op.create_index('ix_runs_trial', 'runs', ['trial_study', 'trial_id'], unique=False)
    op.create_table('latest_metrics',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(precision=53), nullable=False),
    sa.Column('is_nan', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    op.create_index('ix_latest_metrics_key_value', 'latest_metrics', ['key', 'value'], unique=False)
    op.create_table('metrics',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(precision=53), nullable=False),
    sa.Column('is_nan', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key', 'step', 'timestamp_ms', 'value', 'is_nan')
    )
    op.create_table('model_version_tags',
    sa.Column('model_id', ID, nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_id', 'version'], ['model_versions.model_id', 'model_versions.version'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'version', 'key')
    )
    op.create_table('params',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    op.create_index('ix_params_key_run', 'params', ['key', 'run_id'], unique=False)
    op.create_table('run_inputs',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('dataset_id', ID, nullable=False),
    sa.Column('context', sa.String(length=250), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'dataset_id', 'context')
    )
    op.create_table('tags',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    op.create_index('ix_tags_key_run', 'tags', ['key', 'run_id'], unique=False)
