"""The suggestion service's schema (SQLAlchemy Core). Times are epoch milliseconds (UTC).

Changing anything here needs a new migration in ``migrations/versions``; a test compares
this metadata with the migrated database.
"""

from __future__ import annotations

import sqlalchemy as sa

from tuning_common.permissions import define_tables
from tuning_common.webhooks import define_tables as define_webhook_tables

metadata = sa.MetaData()

# Ids are int64 in the API. SQLite only autoincrements an INTEGER primary key (64-bit there).
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

studies = sa.Table(
    "studies",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    # Counters, only changed while holding the study row's lock:
    # next trial number, trials counted against max_trials, configurations the algorithm proposed.
    sa.Column("trial_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("budget_used", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("algorithm_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

trials = sa.Table(
    "trials",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("study_id", ID, sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("budget", sa.Float, nullable=True),
    sa.Column("worker_id", sa.String(256), nullable=False, server_default=""),
    sa.Column("request_id", sa.String(256), nullable=True),
    sa.Column("lease_expires_ms", sa.BigInteger, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_of", ID, nullable=True),
    sa.Column("metrics", sa.JSON, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("last_step", sa.BigInteger, nullable=True),
    sa.Column("last_metrics", sa.JSON, nullable=True),
    sa.Column("last_measurement_ms", sa.BigInteger, nullable=True),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("start_ms", sa.BigInteger, nullable=True),
    sa.Column("end_ms", sa.BigInteger, nullable=True),
    # How the configuration was suggested: algorithm, seed, prediction, fallback (migration 0002).
    sa.Column("suggestion_metadata", sa.JSON, nullable=True),
    # The tracking run recording this trial (migration 0003).
    sa.Column("run_id", sa.String(32), nullable=True),
    # Constraint values from the tell, in the study's declared order (migration 0004).
    sa.Column("constraints", sa.JSON, nullable=True),
    sa.UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
    sa.Index("ix_trials_study_state", "study_id", "state"),
    sa.Index("ix_trials_study_request", "study_id", "request_id"),
    sa.Index("ix_trials_state_lease", "state", "lease_expires_ms"),
    sqlite_autoincrement=True,
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("trial_id", ID, sa.ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
)

# One row per answered ask, so that a retried request_id creates nothing new.
suggest_requests = sa.Table(
    "suggest_requests",
    metadata,
    sa.Column("study_id", ID, sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("request_id", sa.String(256), primary_key=True),
    sa.Column("worker_id", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("done_reason", sa.String(32), nullable=True),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
)

# Webhooks on study events (migration 0006; statements: tuning_common.webhooks.WebhookStore).
# ``study_name`` "" follows every study.
webhook_tables = define_webhook_tables(
    metadata, "study_",
    scope=sa.Column("study_name", sa.String(128), nullable=False, server_default=""),
    subject=[sa.Column("study_name", sa.String(128), nullable=False, server_default=""),
             sa.Column("trial_number", sa.BigInteger, nullable=True)],
)

# Roles on this service's resources and their audit (tuning_common.permissions); a study's
# resource id there is its name.
permission_tables = define_tables(metadata, "study_")
STUDY = "study"
