"""Logged models as an entity of their own; the gateway's run-tag records of them moved in.

Before this revision the gateway kept each MLflow logged model as JSON in run tags: the record
in ``tuning.mlflow.model.<model id>`` (``<parts>|<json>``, continued in ``...#1``, ``...#2``),
the marker ``tuning.mlflow.models`` on runs holding any. Each record becomes a row of
``logged_models`` with its params, tags and metrics; the model's own run keeps the files
(``artifact_run_id``) and lists it in ``tuning.mlflow.modelOutputs`` (MLflow's run outputs,
with the step the record had); the record tags and markers are deleted.

Revision ID: 0005
Revises: 0004
"""

import json
import math

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
MODEL_ID = sa.String(42)
VALUE_HEAD = 100
RECORD_PREFIX = "tuning.mlflow.model."
MARKER = "tuning.mlflow.models"
OUTPUTS = "tuning.mlflow.modelOutputs"
STATUSES = {"LOGGED_MODEL_PENDING": "PENDING", "LOGGED_MODEL_READY": "READY", "LOGGED_MODEL_UPLOAD_FAILED": "FAILED"}


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("id", MODEL_ID, primary_key=True),
        sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("source_run_id", sa.String(32), nullable=True),
        sa.Column("artifact_run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False, server_default=""),
        sa.Column("model_type", sa.String(250), nullable=False, server_default=""),
        sa.Column("create_ms", sa.BigInteger, nullable=False),
        sa.Column("update_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_logged_models_experiment_create", "logged_models", ["experiment_id", "create_ms"])
    op.create_index("ix_logged_models_source_run", "logged_models", ["source_run_id"])
    for kind in ("params", "tags"):
        op.create_table(
            f"logged_model_{kind}",
            sa.Column("model_id", MODEL_ID, sa.ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
            sa.Column("value_head", sa.String(VALUE_HEAD), nullable=False, server_default=""),
        )
        op.create_index(f"ix_logged_model_{kind}_key_head_model", f"logged_model_{kind}",
                        ["key", "value_head", "model_id"])
    op.create_table(
        "logged_model_metrics",
        sa.Column("model_id", MODEL_ID, sa.ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("dataset_name", sa.String(250), primary_key=True),
        sa.Column("dataset_digest", sa.String(128), primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("is_nan", sa.Boolean, nullable=False),
    )
    op.create_index("ix_logged_model_metrics_key_value_model", "logged_model_metrics",
                    ["key", "value", "is_nan", "model_id"])
    _move_tag_records(op.get_bind())


def _records(tags: dict[str, str]) -> dict[str, dict]:
    """model id -> record, decoded as the gateway wrote them (unreadable ones are skipped)."""
    out = {}
    for key, value in tags.items():
        if not key.startswith(RECORD_PREFIX) or "#" in key:
            continue
        count, _, text = value.partition("|")
        if not count.isdigit():
            continue
        parts = [text] + [tags.get(f"{key}#{i}", "") for i in range(1, int(count))]
        try:
            record = json.loads("".join(parts))
        except ValueError:
            continue
        if isinstance(record, dict):
            out[key[len(RECORD_PREFIX):]] = record
    return out


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _move_tag_records(conn) -> None:
    tags = sa.table("tags", sa.column("run_id"), sa.column("key"), sa.column("value"), sa.column("value_head"))
    runs = sa.table("runs", sa.column("id"), sa.column("experiment_id"))
    marked = [row.run_id for row in conn.execute(sa.select(tags.c.run_id).where(tags.c.key == MARKER))]
    models = sa.table("logged_models", *(sa.column(c) for c in (
        "id", "experiment_id", "name", "source_run_id", "artifact_run_id", "status", "status_message", "model_type",
        "create_ms", "update_ms")))
    values = {kind: sa.table(f"logged_model_{kind}", sa.column("model_id"), sa.column("key"), sa.column("value"),
                             sa.column("value_head")) for kind in ("params", "tags")}
    metrics = sa.table("logged_model_metrics", *(sa.column(c) for c in (
        "model_id", "key", "run_id", "dataset_name", "dataset_digest", "step", "timestamp_ms", "value", "is_nan")))
    for run_id in marked:
        experiment_id = conn.execute(sa.select(runs.c.experiment_id).where(runs.c.id == run_id)).scalar()
        run_tags = {row.key: row.value for row in conn.execute(
            sa.select(tags.c.key, tags.c.value).where(tags.c.run_id == run_id))}
        outputs = []
        for model_id, record in _records(run_tags).items():
            run_less = bool(record.get("run_less"))
            created = int(record.get("created") or 0)
            conn.execute(models.insert().values(
                id=model_id, experiment_id=experiment_id, name=str(record.get("name") or model_id)[:250],
                source_run_id=None if run_less else run_id, artifact_run_id=run_id,
                status=STATUSES.get(record.get("status"), "PENDING"),
                status_message=str(record.get("status_message") or ""),
                model_type=str(record.get("model_type") or "")[:250], create_ms=created,
                update_ms=int(record.get("updated") or created)))
            for kind in ("params", "tags"):
                items = record.get(kind) or {}
                if isinstance(items, dict) and items:
                    conn.execute(values[kind].insert(), [
                        {"model_id": model_id, "key": str(k), "value": str(v), "value_head": str(v)[:VALUE_HEAD]}
                        for k, v in items.items()])
            latest: dict[tuple, dict] = {}
            for point in record.get("metrics") or []:
                if not isinstance(point, dict) or not point.get("key"):
                    continue
                value = _number(point.get("value"))
                row = {"model_id": model_id, "key": str(point["key"]), "run_id": str(point.get("run_id") or ""),
                       "dataset_name": str(point.get("dataset_name") or ""),
                       "dataset_digest": str(point.get("dataset_digest") or ""),
                       "step": int(point.get("step") or 0), "timestamp_ms": int(point.get("timestamp") or 0),
                       "value": 0.0 if math.isnan(value) else value, "is_nan": math.isnan(value)}
                latest[(row["key"], row["run_id"], row["dataset_name"], row["dataset_digest"])] = row
            if latest:
                conn.execute(metrics.insert(), list(latest.values()))
            if not run_less:
                outputs.append((created, {"model_id": model_id, "step": int(record.get("step") or 0)}))
        if outputs:
            try:
                listed = json.loads(run_tags.get(OUTPUTS) or "[]")
            except ValueError:
                listed = []
            listed = [o for o in listed if isinstance(o, dict)] if isinstance(listed, list) else []
            known = {o.get("model_id") for o in listed}
            listed = [o for _, o in sorted(outputs, key=lambda item: item[0]) if o["model_id"] not in known] + listed
            text = json.dumps(listed, separators=(",", ":"))
            conn.execute(tags.delete().where(tags.c.run_id == run_id, tags.c.key == OUTPUTS))
            conn.execute(tags.insert().values(run_id=run_id, key=OUTPUTS, value=text, value_head=text[:VALUE_HEAD]))
        gone = [key for key in run_tags if key == MARKER or key.startswith(RECORD_PREFIX)]
        conn.execute(tags.delete().where(tags.c.run_id == run_id, tags.c.key.in_(gone)))


def downgrade() -> None:
    # The models are not written back into run tags: a downgrade loses them (back up first).
    for table in ("logged_model_metrics", "logged_model_tags", "logged_model_params", "logged_models"):
        op.drop_table(table)
