"""The suggestion service's schema (SQLAlchemy Core). Times are epoch milliseconds (UTC).

Changing anything here needs a new migration in ``migrations/versions``; a test compares
this metadata with the migrated database.
"""

from __future__ import annotations

import sqlalchemy as sa

from tuning_common.permissions import define_tables

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
# ``events`` is comma-separated; ``study_name`` "" follows every study.
study_webhooks = sa.Table(
    "study_webhooks",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.String(200), nullable=False),
    sa.Column("study_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Column("update_ms", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# The outbox: one row per (event, webhook), written in the transaction of the event.
# ``claim``/``claimed_until_ms`` are a sender's lease on the row while it posts.
study_webhook_deliveries = sa.Table(
    "study_webhook_deliveries",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", ID, sa.ForeignKey("study_webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("study_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("trial_number", sa.BigInteger, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("claimed_until_ms", sa.BigInteger, nullable=True),
    sa.Column("create_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_study_webhook_deliveries_due", "status", "next_attempt_ms"),
    sa.Index("ix_study_webhook_deliveries_webhook", "webhook_id", "id"),
    sqlite_autoincrement=True,
)

study_webhook_attempts = sa.Table(
    "study_webhook_attempts",
    metadata,
    sa.Column("delivery_id", ID, sa.ForeignKey("study_webhook_deliveries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("time_ms", sa.BigInteger, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("duration_ms", sa.BigInteger, nullable=False),
)

# Roles on this service's resources and their audit (tuning_common.permissions); a study's
# resource id there is its name.
permission_tables = define_tables(metadata, "study_")
STUDY = "study"
