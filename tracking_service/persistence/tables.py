"""The tracking service's schema (SQLAlchemy Core). Times are epoch milliseconds (UTC).

Changing anything here needs a new migration in ``migrations/versions``; a test compares
this metadata with the migrated database.

Searching many runs stays fast because what search filters and orders by has its own
narrow, indexed rows: ``latest_metrics`` (one row per run and metric key) beside the full
``metrics`` history, and params and tags keyed by (key, run).
"""

from __future__ import annotations

import sqlalchemy as sa

from tuning_common.permissions import define_tables
from tuning_common.webhooks import define_tables as define_webhook_tables

metadata = sa.MetaData()

# Ids are int64 in the API. SQLite only autoincrements an INTEGER primary key (64-bit there).
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
RUN_ID = sa.String(32)
KEY = sa.String(250)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    # MLflow's limit for experiment names (domain.model.MAX_EXPERIMENT_NAME). SQLite does not
    # enforce VARCHAR lengths, and its column keeps the declared 250 of migration 0001 (see 0004).
    sa.Column("name", sa.String(500).with_variant(sa.String(250), "sqlite"), nullable=False, unique=True),
    sa.Column("artifact_location", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", RUN_ID, primary_key=True),
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", KEY, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
    sa.Column("start_ms", sa.BigInteger, nullable=False),
    sa.Column("end_ms", sa.BigInteger, nullable=True),
    sa.Column("parent_run_id", RUN_ID, nullable=True),
    sa.Column("run_group", KEY, nullable=False, server_default=""),
    sa.Column("user", KEY, nullable=False, server_default=""),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    # The suggestion-service trial this run records (the link is stored here only).
    sa.Column("trial_study", sa.String(128), nullable=True),
    sa.Column("trial_id", sa.BigInteger, nullable=True),
    sa.Column("trial_number", sa.BigInteger, nullable=True),
    # Idempotency key of CreateRun, unique per experiment when given.
    sa.Column("request_id", sa.String(256), nullable=True),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_runs_experiment_stage_start", "experiment_id", "lifecycle_stage", "start_ms"),
    sa.Index("ix_runs_parent", "parent_run_id"),
    sa.Index("ix_runs_trial", "trial_study", "trial_id"),
    sa.UniqueConstraint("experiment_id", "request_id", name="uq_runs_experiment_request"),
)

# Values can be long (6,000 characters), too long for a PostgreSQL index entry, so what
# search filters on is ``value_head``, the first VALUE_HEAD characters, indexed with the key
# and the run: an equality or IN filter narrows by the head in the index and then checks the
# whole value on the few rows left (migration 0002).
VALUE_HEAD = 100

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("value_head", sa.String(VALUE_HEAD), nullable=False, server_default=""),
    sa.Index("ix_params_key_head_run", "key", "value_head", "run_id"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("value_head", sa.String(VALUE_HEAD), nullable=False, server_default=""),
    sa.Index("ix_tags_key_head_run", "key", "value_head", "run_id"),
)

# Every point of every metric. The whole row is the key, so a retried batch (the client
# resends after a timeout or from its offline spool) stores each point once. NaN is stored
# as value 0 with is_nan set, because NaN never equals itself in a key; +/-Inf are stored as is.
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True),
    sa.Column("timestamp_ms", sa.BigInteger, primary_key=True),
    sa.Column("value", sa.Float(precision=53), primary_key=True),
    sa.Column("is_nan", sa.Boolean, primary_key=True),
    # On SQLite the primary key is then the table itself (one B-tree per point, not two):
    # a 1,000-point batch inserts in 1.8 ms instead of 3.1 (migration 0003).
    sqlite_with_rowid=False,
)

# LogBatch requests stored with a request_id, so that a replay (a retry after a lost reply)
# stores nothing: a point without a timestamp gets the time it is stored, and only this
# makes its retry a no-op. ``digest`` is the batch's fingerprint, so that a request id reused
# for another batch is refused rather than silently dropping that batch. Kept with the run.
batch_requests = sa.Table(
    "batch_requests",
    metadata,
    sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("request_id", sa.String(256), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
)

# The latest point of each (run, metric): the highest step, then the latest timestamp,
# then the largest value (MLflow's rule), maintained on every write.
latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=False),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    # Covering for metric filters: key, value range and NaN flag to run ids without a table read.
    sa.Index("ix_latest_metrics_key_value_run", "key", "value", "is_nan", "run_id"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", KEY, nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("source_type", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),
    sa.UniqueConstraint("experiment_id", "name", "digest", name="uq_datasets_experiment_name_digest"),
    sqlite_autoincrement=True,
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column("run_id", RUN_ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("context", KEY, primary_key=True),
    sa.Column("tags", sa.JSON, nullable=False),
)

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", KEY, nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # Version numbers are never reused, even after a deletion (the audit log refers to them).
    sa.Column("last_version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

registered_model_tags = sa.Table(
    "registered_model_tags",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    # Resolved location of the files in the artifact store.
    sa.Column("storage_uri", sa.Text, nullable=False),
    sa.Column("run_id", RUN_ID, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("user", KEY, nullable=False, server_default=""),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_model_versions_run", "run_id"),
)

model_version_tags = sa.Table(
    "model_version_tags",
    metadata,
    sa.Column("model_id", ID, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["model_id", "version"], ["model_versions.model_id", "model_versions.version"],
                            ondelete="CASCADE"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alias", KEY, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# The audit log: by model name (not id) so that it outlives deletions and reads plainly.
registry_events = sa.Table(
    "registry_events",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("model_name", KEY, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_value", sa.Text, nullable=False, server_default=""),
    sa.Column("to_value", sa.Text, nullable=False, server_default=""),
    sa.Column("alias", KEY, nullable=False, server_default=""),
    sa.Column("actor", KEY, nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("time_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_registry_events_model", "model_name", "version"),
    sqlite_autoincrement=True,
)

# MLflow 3's logged models (migration 0005). A model's files live in the artifacts of a run
# (``artifact_run_id``: its source run, or the run made to hold a model created on its own).
MODEL_ID = sa.String(42)

logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("id", MODEL_ID, primary_key=True),
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", KEY, nullable=False),
    sa.Column("source_run_id", RUN_ID, nullable=True),
    sa.Column("artifact_run_id", RUN_ID, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_message", sa.Text, nullable=False, server_default=""),
    sa.Column("model_type", KEY, nullable=False, server_default=""),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_logged_models_experiment_create", "experiment_id", "create_ms"),
    sa.Index("ix_logged_models_source_run", "source_run_id"),
)

logged_model_params = sa.Table(
    "logged_model_params",
    metadata,
    sa.Column("model_id", MODEL_ID, sa.ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("value_head", sa.String(VALUE_HEAD), nullable=False, server_default=""),
    sa.Index("ix_logged_model_params_key_head_model", "key", "value_head", "model_id"),
)

logged_model_tags = sa.Table(
    "logged_model_tags",
    metadata,
    sa.Column("model_id", MODEL_ID, sa.ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("value_head", sa.String(VALUE_HEAD), nullable=False, server_default=""),
    sa.Index("ix_logged_model_tags_key_head_model", "key", "value_head", "model_id"),
)

# The latest point of each (model, metric, run, dataset); empty strings where a point has no
# run or dataset (they are part of the key). NaN is stored as 0 with is_nan set, as in metrics.
logged_model_metrics = sa.Table(
    "logged_model_metrics",
    metadata,
    sa.Column("model_id", MODEL_ID, sa.ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("dataset_name", KEY, primary_key=True),
    sa.Column("dataset_digest", sa.String(128), primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=False),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    sa.Index("ix_logged_model_metrics_key_value_model", "key", "value", "is_nan", "model_id"),
)

# Registry webhooks (migration 0006; statements: tuning_common.webhooks.WebhookStore).
# ``model_name`` "" follows every registered model.
webhook_tables = define_webhook_tables(
    metadata, "",
    scope=sa.Column("model_name", KEY, nullable=False, server_default=""),
    subject=[sa.Column("registry_event_id", ID, nullable=True),
             sa.Column("model_name", KEY, nullable=False, server_default=""),
             sa.Column("version", sa.BigInteger, nullable=False, server_default="0")],
)

# Roles on this service's resources and their audit (tuning_common.permissions); the resource
# id of an experiment there is its id, of a registered model its name.
permission_tables = define_tables(metadata, "")
EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"
