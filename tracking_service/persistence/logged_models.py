"""Reads and writes of logged models: the model row, its params, tags and linked metrics.
As in :mod:`tracking_service.persistence.repository`, rows never leave this module and every
method takes the connection of the caller's transaction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tracking_service.domain.logged_model import LoggedModel, LoggedModelStatus, ModelMetric
from tracking_service.persistence import search_sql
from tracking_service.persistence.repository import delete_tag, stored_value, unique, upsert, upsert_tags
from tracking_service.persistence.tables import (
    logged_model_metrics,
    logged_model_params,
    logged_model_tags,
    logged_models,
)
from tuning_types.search import Node, OrderKey

_METRIC_KEY = ("model_id", "key", "run_id", "dataset_name", "dataset_digest")


def _metric(row) -> ModelMetric:
    return ModelMetric(row.key, math.nan if row.is_nan else float(row.value), row.timestamp_ms, row.step,
                       row.run_id, row.dataset_name, row.dataset_digest)


class LoggedModelRepository:
    def insert(self, conn: Connection, model: LoggedModel) -> None:
        with unique(f"a logged model with id {model.id} exists"):
            conn.execute(logged_models.insert().values(
                id=model.id, experiment_id=model.experiment_id, name=model.name, source_run_id=model.source_run_id,
                artifact_run_id=model.artifact_run_id, status=model.status.value,
                status_message=model.status_message, model_type=model.model_type, create_ms=model.create_ms,
                update_ms=model.update_ms))
        self.set_params(conn, model.id, model.params)
        self.set_tags(conn, model.id, model.tags)

    def exists(self, conn: Connection, model_id: str, *, lock: bool = False) -> bool:
        """Whether the model exists; ``lock``: its row stays locked until the transaction ends
        (PostgreSQL; SQLite's writers are serial), so concurrent metric links of one model queue."""
        query = sa.select(logged_models.c.id).where(logged_models.c.id == model_id)
        if lock:
            query = query.with_for_update(key_share=True)
        return conn.execute(query).first() is not None

    def get(self, conn: Connection, model_ids: Sequence[str]) -> list[LoggedModel]:
        """Whole models (params, tags, metrics) in the order of ``model_ids``; missing ones are skipped."""
        if not model_ids:
            return []
        ids = list(model_ids)
        rows = {row.id: row for row in conn.execute(sa.select(logged_models).where(logged_models.c.id.in_(ids)))}
        param_map: dict[str, dict[str, str]] = defaultdict(dict)
        for row in conn.execute(sa.select(logged_model_params).where(logged_model_params.c.model_id.in_(ids))
                                .order_by(logged_model_params.c.key)):
            param_map[row.model_id][row.key] = row.value
        tag_map: dict[str, dict[str, str]] = defaultdict(dict)
        for row in conn.execute(sa.select(logged_model_tags).where(logged_model_tags.c.model_id.in_(ids))
                                .order_by(logged_model_tags.c.key)):
            tag_map[row.model_id][row.key] = row.value
        metric_map: dict[str, list[ModelMetric]] = defaultdict(list)
        m = logged_model_metrics.c
        for row in conn.execute(sa.select(logged_model_metrics).where(m.model_id.in_(ids))
                                .order_by(m.key, m.run_id, m.dataset_name, m.dataset_digest)):
            metric_map[row.model_id].append(_metric(row))
        out = []
        for model_id in ids:
            row = rows.get(model_id)
            if row is None:
                continue
            out.append(LoggedModel(row.id, row.experiment_id, row.name, row.source_run_id,
                                   LoggedModelStatus(row.status), row.status_message, row.model_type,
                                   row.artifact_run_id, param_map[model_id], tag_map[model_id],
                                   tuple(metric_map[model_id]), row.create_ms, row.update_ms))
        return out

    def search(self, conn: Connection, node: Node | None, keys: Sequence[OrderKey], experiment_ids: Sequence[int],
               offset: int, limit: int) -> list[LoggedModel]:
        """A page of the models of ``experiment_ids`` that match the parsed filter, in the parsed order."""
        dialect = conn.dialect.name
        where = (search_sql.logged_model_condition(node, dialect)
                 & logged_models.c.experiment_id.in_(list(experiment_ids)))
        query = (sa.select(logged_models.c.id).where(where)
                 .order_by(*search_sql.logged_model_ordering(keys, dialect)).offset(offset).limit(limit))
        return self.get(conn, list(conn.execute(query).scalars()))

    def touch(self, conn: Connection, model_id: str, now: int, **values) -> None:
        """Sets the update time, and ``values`` (status as a LoggedModelStatus, status_message)."""
        if isinstance(values.get("status"), LoggedModelStatus):
            values["status"] = values["status"].value
        conn.execute(logged_models.update().where(logged_models.c.id == model_id).values(update_ms=now, **values))

    def delete(self, conn: Connection, model_id: str) -> bool:
        # Explicitly, child tables first: SQLite enforces ON DELETE CASCADE only with its pragma on.
        for table in (logged_model_metrics, logged_model_params, logged_model_tags):
            conn.execute(table.delete().where(table.c.model_id == model_id))
        return conn.execute(logged_models.delete().where(logged_models.c.id == model_id)).rowcount > 0

    def set_params(self, conn: Connection, model_id: str, items: dict[str, str]) -> None:
        upsert_tags(conn, logged_model_params, {"model_id": model_id}, items.items())

    def set_tags(self, conn: Connection, model_id: str, items: dict[str, str]) -> None:
        upsert_tags(conn, logged_model_tags, {"model_id": model_id}, items.items())

    def delete_tag(self, conn: Connection, model_id: str, key: str) -> bool:
        return delete_tag(conn, logged_model_tags, {"model_id": model_id}, key)

    def link_metrics(self, conn: Connection, model_id: str, items: Sequence[ModelMetric]) -> None:
        """Keeps, per (key, run, dataset), the latest of ``items`` and what is stored."""
        newest: dict[tuple, ModelMetric] = {}
        for item in items:
            current = newest.get(item.identity())
            if current is None or _rank(item) > _rank(current):
                newest[item.identity()] = item
        if not newest:
            return
        statement = upsert(conn, logged_model_metrics)
        new, old = statement.excluded, logged_model_metrics.c
        later = sa.or_(
            new.step > old.step,
            sa.and_(new.step == old.step, new.timestamp_ms > old.timestamp_ms),
            sa.and_(new.step == old.step, new.timestamp_ms == old.timestamp_ms, old.is_nan, sa.not_(new.is_nan)),
            sa.and_(new.step == old.step, new.timestamp_ms == old.timestamp_ms, sa.not_(new.is_nan),
                    new.value > old.value),
        )
        rows = []
        for item in newest.values():
            value, is_nan = stored_value(item.value)
            rows.append({"model_id": model_id, "key": item.key, "run_id": item.run_id,
                         "dataset_name": item.dataset_name, "dataset_digest": item.dataset_digest,
                         "step": item.step, "timestamp_ms": item.timestamp_ms, "value": value, "is_nan": is_nan})
        conn.execute(statement.on_conflict_do_update(
            index_elements=list(_METRIC_KEY),
            set_={"step": new.step, "timestamp_ms": new.timestamp_ms, "value": new.value, "is_nan": new.is_nan},
            where=later), rows)


def _rank(item: ModelMetric) -> tuple:
    return item.step, item.timestamp_ms, -math.inf if item.value != item.value else item.value
