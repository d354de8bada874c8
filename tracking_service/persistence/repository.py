"""Reads and writes of experiments, runs and what is logged to them. Rows never leave this
module: callers get domain objects, and a broken unique constraint comes back as the domain
error it means. Every method takes the connection of the caller's transaction (see
:meth:`tuning_common.database.Database.run`); the repositories keep no state of their own.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tracking_service.domain.model import (
    Dataset,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    MetricSeries,
    Run,
    RunStatus,
    TrialLink,
    ViewType,
)
from tracking_service.persistence import search_sql
from tracking_service.persistence.tables import (
    EXPERIMENT,
    VALUE_HEAD,
    batch_requests,
    datasets,
    experiment_tags,
    experiments,
    latest_metrics,
    metrics,
    model_versions,
    params,
    permission_tables,
    run_inputs,
    runs,
    tags,
)
from tuning_common import permissions
from tuning_common.errors import AlreadyExists, FailedPrecondition
from tuning_types.search import Node, OrderKey

ACTIVE = LifecycleStage.ACTIVE.value


def upsert(conn: Connection, table: sa.Table):
    """INSERT ... ON CONFLICT for the connection's dialect (both speak it)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@contextlib.contextmanager
def unique(message: str) -> Iterator[None]:
    """Turns an integrity error of the statements inside into ``AlreadyExists(message)``.

    Use cases check a name before they write it, and say more when they can; this is for a
    concurrent twin (another replica, or a PostgreSQL transaction that committed while this one
    waited on its row) that wrote the name between that check and this write. Only statements
    whose one possible integrity error is a unique name go inside."""
    try:
        yield
    except IntegrityError as error:
        raise AlreadyExists(message) from error


def upsert_tags(conn: Connection, table: sa.Table, owner: dict, items: Iterable[tuple[str, str]]) -> None:
    """Sets the tags of one owner (``owner``: its key columns and values), overwriting existing keys.
    Tables with a ``value_head`` column (run tags) get it filled in too."""
    head = "value_head" in table.c
    rows = [{**owner, "key": key, "value": value, **({"value_head": value[:VALUE_HEAD]} if head else {})}
            for key, value in dict(items).items()]
    if not rows:
        return
    # One statement for all of them: a new run's dozen tags were a dozen round trips.
    statement = upsert(conn, table)
    updated = {"value": statement.excluded.value, **({"value_head": statement.excluded.value_head} if head else {})}
    conn.execute(statement.on_conflict_do_update(index_elements=[*owner, "key"], set_=updated), rows)


def delete_tag(conn: Connection, table: sa.Table, owner: dict, key: str) -> bool:
    """Deletes one tag of one owner; whether there was one."""
    where = [table.c[column] == value for column, value in owner.items()]
    return conn.execute(table.delete().where(*where, table.c.key == key)).rowcount > 0


# -- experiments ----------------------------------------------------------------------------


class ExperimentRepository:
    def insert_if_absent(self, conn: Connection, experiment_id: int, name: str, location: str, now: int) -> None:
        """Creates the experiment with this id unless one with its id or name exists. ON CONFLICT,
        because replicas starting together race to create the Default experiment; on PostgreSQL
        the losers wait for the winner's commit, then do nothing."""
        conn.execute(upsert(conn, experiments).values(
            id=experiment_id, name=name, artifact_location=location, lifecycle_stage=ACTIVE, create_ms=now,
            update_ms=now).on_conflict_do_nothing())

    def insert(self, conn: Connection, name: str, location: str | None, now: int) -> int:
        """The new experiment's id; AlreadyExists when a concurrent twin took the name first."""
        with unique(f"an experiment named {name!r} exists"):
            result = conn.execute(experiments.insert().values(
                name=name, artifact_location=location or "", lifecycle_stage=ACTIVE, create_ms=now, update_ms=now))
        return int(result.inserted_primary_key[0])

    def set_location(self, conn: Connection, experiment_id: int, location: str) -> None:
        conn.execute(experiments.update().where(experiments.c.id == experiment_id).values(artifact_location=location))

    def exists_named(self, conn: Connection, name: str) -> bool:
        return conn.execute(sa.select(experiments.c.id).where(experiments.c.name == name)).first() is not None

    def find(self, conn: Connection, *, experiment_id: int | None = None, name: str | None = None,
             for_update: bool = False) -> Experiment | None:
        query = sa.select(experiments)
        query = (query.where(experiments.c.id == experiment_id) if name is None
                 else query.where(experiments.c.name == name))
        if for_update:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else self._experiments(conn, [row])[0]

    def search(self, conn: Connection, node: Node | None, keys: Sequence[OrderKey], view: ViewType, offset: int,
               limit: int, readable: Collection[str] | None = None) -> list[Experiment]:
        """A page of the experiments in ``view`` that match the parsed filter, in the parsed order
        (of those ``readable`` subjects have a role on, unless None)."""
        dialect = conn.dialect.name
        where = search_sql.experiment_condition(node, dialect) & experiments.c.lifecycle_stage.in_(view.stages())
        if readable is not None:
            where &= permissions.readable(permission_tables.permissions, experiments.c.id, EXPERIMENT, readable)
        query = (sa.select(experiments).where(where).order_by(*search_sql.experiment_ordering(keys, dialect))
                 .offset(offset).limit(limit))
        return self._experiments(conn, conn.execute(query).all())

    @staticmethod
    def _experiments(conn: Connection, rows) -> list[Experiment]:
        ids = [row.id for row in rows]
        tag_map: dict[int, dict[str, str]] = defaultdict(dict)
        if ids:
            for tag in conn.execute(sa.select(experiment_tags).where(experiment_tags.c.experiment_id.in_(ids))):
                tag_map[tag.experiment_id][tag.key] = tag.value
        return [Experiment(row.id, row.name, row.artifact_location, LifecycleStage(row.lifecycle_stage),
                           tag_map[row.id], row.create_ms, row.update_ms) for row in rows]

    def touch(self, conn: Connection, experiment_id: int, now: int) -> None:
        """Marks the experiment updated (its tags changed)."""
        self._update(conn, experiment_id, now)

    def rename(self, conn: Connection, experiment_id: int, name: str, now: int) -> None:
        """AlreadyExists when a concurrent twin took the name first."""
        with unique(f"an experiment named {name!r} exists"):
            self._update(conn, experiment_id, now, name=name)

    def set_stage(self, conn: Connection, experiment_id: int, stage: LifecycleStage, now: int) -> None:
        """Deletes or restores the experiment and every run in it."""
        self._update(conn, experiment_id, now, lifecycle_stage=stage.value)
        conn.execute(runs.update().where(runs.c.experiment_id == experiment_id)
                     .values(lifecycle_stage=stage.value, update_ms=now))

    @staticmethod
    def _update(conn: Connection, experiment_id: int, now: int, **values) -> None:
        conn.execute(experiments.update().where(experiments.c.id == experiment_id).values(update_ms=now, **values))

    def set_tags(self, conn: Connection, experiment_id: int, items: dict[str, str]) -> None:
        upsert_tags(conn, experiment_tags, {"experiment_id": experiment_id}, items.items())


# -- runs -------------------------------------------------------------------------------------


class RunState(NamedTuple):
    lifecycle_stage: LifecycleStage
    experiment_id: int
    artifact_uri: str


def stored_value(value: float) -> tuple[float, bool]:
    """A metric value as stored: NaN is 0 with a flag (NaN never equals itself in a key)."""
    return (0.0, True) if math.isnan(value) else (value, False)


def _order(row: tuple) -> tuple:
    # MLflow's "latest" rule: highest step, then latest timestamp, then largest value (NaN lowest).
    # Rows are (run_id, key, step, timestamp_ms, value, is_nan).
    return row[2], row[3], -math.inf if row[5] else row[4]


_POINT_COLUMNS = ("run_id", "key", "step", "timestamp_ms", "value", "is_nan")


@functools.cache
def _insert_points_sql(dialect_name: str) -> str:
    marker = "?" if dialect_name == "sqlite" else "%s"
    return (f"INSERT INTO metrics ({', '.join(_POINT_COLUMNS)}) VALUES ({', '.join([marker] * len(_POINT_COLUMNS))})"
            " ON CONFLICT DO NOTHING")


def _metric(row) -> Metric:
    return Metric(row.key, math.nan if row.is_nan else float(row.value), row.timestamp_ms, row.step)


class RunRepository:
    """Runs and what is logged to them: params, tags, metrics, batch request ids, dataset inputs."""

    def insert(self, conn: Connection, run: Run, request_id: str | None, now: int) -> bool:
        """Stores a new run; False when a concurrent twin with the same ``request_id`` (in the same
        experiment) was stored first, which the caller then reads back. ON CONFLICT on exactly
        that constraint: on PostgreSQL the loser waits for the winner's commit, then stores nothing."""
        trial = run.trial
        statement = upsert(conn, runs).values(
            id=run.id, experiment_id=run.experiment_id, name=run.name, status=run.status.value,
            lifecycle_stage=ACTIVE, start_ms=run.start_ms, end_ms=run.end_ms, parent_run_id=run.parent_run_id,
            run_group=run.run_group, user=run.user, artifact_uri=run.artifact_uri,
            trial_study=trial.study if trial else None, trial_id=trial.trial_id if trial else None,
            trial_number=trial.trial_number if trial else None, request_id=request_id, create_ms=now, update_ms=now,
        )
        if request_id is None:
            conn.execute(statement)
            return True
        statement = statement.on_conflict_do_nothing(index_elements=["experiment_id", "request_id"])
        return conn.execute(statement.returning(runs.c.id)).first() is not None

    def id_for_request(self, conn: Connection, experiment_id: int, request_id: str) -> str | None:
        return conn.execute(sa.select(runs.c.id).where(
            runs.c.experiment_id == experiment_id, runs.c.request_id == request_id)).scalar()

    def state(self, conn: Connection, run_id: str, *, lock: bool = False) -> RunState | None:
        """What writes, artifacts and the registry need of a run, in one narrow read; ``lock``: the
        row stays locked until the transaction ends (``FOR NO KEY UPDATE``, which does not block the
        key-share locks that inserts of the run's tags, params and metrics take)."""
        query = sa.select(runs.c.lifecycle_stage, runs.c.experiment_id, runs.c.artifact_uri).where(runs.c.id == run_id)
        if lock:
            query = query.with_for_update(key_share=True)
        row = conn.execute(query).first()
        return None if row is None else RunState(LifecycleStage(row.lifecycle_stage), row.experiment_id,
                                                 row.artifact_uri)

    def update(self, conn: Connection, run_id: str, now: int, *, status: RunStatus | None = None,
               end_ms: int | None = None, name: str | None = None, stage: LifecycleStage | None = None) -> None:
        """Sets what is given (and the update time); nothing at all when nothing is given."""
        values = {column: value for column, value in (
            ("status", None if status is None else status.value), ("end_ms", end_ms), ("name", name),
            ("lifecycle_stage", None if stage is None else stage.value)) if value is not None}
        if values:
            conn.execute(runs.update().where(runs.c.id == run_id).values(update_ms=now, **values))

    def get(self, conn: Connection, run_ids: Sequence[str]) -> list[Run]:
        """Whole runs (params, tags, latest metrics, inputs) in the order of ``run_ids``."""
        if not run_ids:
            return []
        rows = {row.id: row for row in conn.execute(sa.select(runs).where(runs.c.id.in_(run_ids)))}
        param_map: dict[str, dict[str, str]] = defaultdict(dict)
        for row in conn.execute(sa.select(params).where(params.c.run_id.in_(run_ids))):
            param_map[row.run_id][row.key] = row.value
        tag_map: dict[str, dict[str, str]] = defaultdict(dict)
        for row in conn.execute(sa.select(tags).where(tags.c.run_id.in_(run_ids))):
            tag_map[row.run_id][row.key] = row.value
        metric_map: dict[str, dict[str, Metric]] = defaultdict(dict)
        for row in conn.execute(sa.select(latest_metrics).where(latest_metrics.c.run_id.in_(run_ids))):
            metric_map[row.run_id][row.key] = _metric(row)
        input_map: dict[str, list[DatasetInput]] = defaultdict(list)
        query = (sa.select(run_inputs.c.run_id, run_inputs.c.context, run_inputs.c.tags, datasets)
                 .join(datasets, datasets.c.id == run_inputs.c.dataset_id)
                 .where(run_inputs.c.run_id.in_(run_ids)).order_by(datasets.c.id, run_inputs.c.context))
        for row in conn.execute(query):
            dataset = Dataset(row.name, row.digest, row.source_type, row.source, row.schema, row.profile)
            input_map[row.run_id].append(DatasetInput(dataset, row.context, dict(row.tags)))
        out = []
        for run_id in run_ids:
            row = rows.get(run_id)
            if row is None:
                continue
            trial = (TrialLink(row.trial_study, row.trial_id or 0, row.trial_number or 0)
                     if row.trial_study is not None else None)
            out.append(Run(row.id, row.experiment_id, row.name, RunStatus(row.status),
                           LifecycleStage(row.lifecycle_stage), row.start_ms, row.end_ms, row.parent_run_id,
                           row.run_group, row.user, row.artifact_uri, param_map[run_id], tag_map[run_id],
                           metric_map[run_id], tuple(input_map[run_id]), trial))
        return out

    def search(self, conn: Connection, node: Node | None, keys: Sequence[OrderKey], experiment_ids: Sequence[int],
               view: ViewType, offset: int, limit: int) -> list[Run]:
        """A page of the runs of ``experiment_ids`` in ``view`` that match the parsed filter, in the parsed order."""
        dialect = conn.dialect.name
        where = (search_sql.run_condition(node, dialect) & runs.c.experiment_id.in_(list(experiment_ids))
                 & runs.c.lifecycle_stage.in_(view.stages()))
        query = (sa.select(runs.c.id).where(where).order_by(*search_sql.run_ordering(keys, dialect))
                 .offset(offset).limit(limit))
        return self.get(conn, list(conn.execute(query).scalars()))

    # -- logging --------------------------------------------------------------------------------

    def claim_batch_request(self, conn: Connection, run_id: str, request_id: str, digest: str,
                            now: int) -> str | None:
        """Records that the batch ``request_id`` of the run is being stored (in the caller's
        transaction): None when it is new, else the digest stored with it (a replay). A concurrent
        claim of the same id waits for the first one's transaction (PostgreSQL) or runs after it
        (SQLite's single writer), so it sees the first one's row."""
        claimed = conn.execute(upsert(conn, batch_requests).on_conflict_do_nothing().values(
            run_id=run_id, request_id=request_id, digest=digest, create_ms=now).returning(batch_requests.c.digest))
        if claimed.first() is not None:
            return None
        return conn.execute(sa.select(batch_requests.c.digest).where(
            batch_requests.c.run_id == run_id, batch_requests.c.request_id == request_id)).scalar_one()

    def log_params(self, conn: Connection, run_id: str, items: Sequence[tuple[str, str]]) -> None:
        """Params are write-once: the same value again is a no-op, another value is refused."""
        if not items:
            return
        keys = [key for key, _ in items]
        existing = dict(conn.execute(sa.select(params.c.key, params.c.value)
                                     .where(params.c.run_id == run_id, params.c.key.in_(keys))).all())
        for key, value in items:
            if key in existing and existing[key] != value:
                raise FailedPrecondition(
                    f"param {key!r} of run {run_id} was logged as {existing[key]!r:.200}; params cannot change "
                    f"(got {value!r:.200})", reason="PARAM_CHANGED")
        new = [{"run_id": run_id, "key": k, "value": v, "value_head": v[:VALUE_HEAD]}
               for k, v in dict(items).items() if k not in existing]
        if new:
            conn.execute(upsert(conn, params).on_conflict_do_nothing(), new)

    def set_tags(self, conn: Connection, run_id: str, items: Iterable[tuple[str, str]]) -> None:
        upsert_tags(conn, tags, {"run_id": run_id}, items)

    def tag_values(self, conn: Connection, run_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The values of those of ``keys`` that the run has as tags."""
        rows = conn.execute(sa.select(tags.c.key, tags.c.value)
                            .where(tags.c.run_id == run_id, tags.c.key.in_(set(keys))))
        return dict(rows.all())

    def delete_tag(self, conn: Connection, run_id: str, key: str) -> bool:
        """Deletes one tag of the run; whether there was one."""
        return delete_tag(conn, tags, {"run_id": run_id}, key)

    def log_metrics(self, conn: Connection, run_id: str, items: Iterable[Metric],
                    series: Iterable[MetricSeries] = ()) -> None:
        """Stores metric points (each at most once) and moves each key's latest point forward."""
        rows = [(run_id, m.key, m.step, m.timestamp_ms, *stored_value(m.value)) for m in items]
        for s in series:
            key = s.key
            # NaN is the only value that differs from itself.
            rows.extend((run_id, key, step, stamp, 0.0 if value != value else value, value != value)
                        for step, stamp, value in zip(s.steps, s.timestamps_ms, s.values))
        if not rows:
            return
        # The DB-API directly, with a statement rendered once per dialect: SQLAlchemy's per-row
        # parameter processing cost more than SQLite's insert itself for a 1,000-point batch.
        conn.exec_driver_sql(_insert_points_sql(conn.dialect.name), rows)
        newest: dict[str, tuple] = {}
        for row in rows:
            current = newest.get(row[1])
            if current is None or _order(row) > _order(current):
                newest[row[1]] = row
        # One statement executed for every key at once: building and compiling it per key cost
        # most of a 100-key batch's time.
        statement = upsert(conn, latest_metrics)
        new, old = statement.excluded, latest_metrics.c
        later = sa.or_(
            new.step > old.step,
            sa.and_(new.step == old.step, new.timestamp_ms > old.timestamp_ms),
            sa.and_(new.step == old.step, new.timestamp_ms == old.timestamp_ms, old.is_nan, sa.not_(new.is_nan)),
            sa.and_(new.step == old.step, new.timestamp_ms == old.timestamp_ms, sa.not_(new.is_nan),
                    new.value > old.value),
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={"step": new.step, "timestamp_ms": new.timestamp_ms, "value": new.value, "is_nan": new.is_nan},
                where=later,
            ),
            [dict(zip(_POINT_COLUMNS, row)) for row in newest.values()],
        )

    def metric_history(self, conn: Connection, run_id: str, key: str, after: tuple | None,
                       limit: int) -> list[Metric]:
        """Points by (step, timestamp, value), after the keyset ``after`` (from the previous page:
        step, timestamp, and the stored value and NaN flag of :func:`stored_value`)."""
        c = metrics.c
        query = sa.select(metrics).where(c.run_id == run_id, c.key == key)
        if after is not None:
            query = query.where(sa.tuple_(c.step, c.timestamp_ms, c.value, c.is_nan) > sa.tuple_(*after))
        query = query.order_by(c.step, c.timestamp_ms, c.value, c.is_nan).limit(limit)
        return [_metric(row) for row in conn.execute(query)]

    def metric_columns(self, conn: Connection, run_id: str, key: str) -> list[tuple]:
        """Every point of a series as plain tuples (step, timestamp_ms, value, is_nan), in order."""
        c = metrics.c
        query = (sa.select(c.step, c.timestamp_ms, c.value, c.is_nan).where(c.run_id == run_id, c.key == key)
                 .order_by(c.step, c.timestamp_ms, c.value, c.is_nan))
        return [tuple(row) for row in conn.execute(query)]

    # -- dataset inputs -------------------------------------------------------------------------

    def log_inputs(self, conn: Connection, run_id: str, experiment_id: int, items: Sequence[DatasetInput]) -> None:
        """Links the run to each dataset, stored once per experiment by (name, digest)."""
        for item in items:
            d = item.dataset
            conn.execute(upsert(conn, datasets).values(
                experiment_id=experiment_id, name=d.name, digest=d.digest, source_type=d.source_type,
                source=d.source, schema=d.schema, profile=d.profile).on_conflict_do_nothing())
            dataset_id = conn.execute(sa.select(datasets.c.id).where(
                datasets.c.experiment_id == experiment_id, datasets.c.name == d.name, datasets.c.digest == d.digest)
            ).scalar_one()
            statement = upsert(conn, run_inputs).values(run_id=run_id, dataset_id=dataset_id, context=item.context,
                                                        tags=item.tags)
            conn.execute(statement.on_conflict_do_update(index_elements=["run_id", "dataset_id", "context"],
                                                         set_={"tags": item.tags}))


# -- operations ---------------------------------------------------------------------------------


def relocate_artifacts(conn: Connection, old_root: str, new_root: str) -> int:
    """Points every stored artifact URI under ``old_root`` at ``new_root`` (the artifact store
    was restored elsewhere); how many rows changed."""
    changed = 0
    for column in (experiments.c.artifact_location, runs.c.artifact_uri, model_versions.c.source,
                   model_versions.c.storage_uri):
        moved = new_root + sa.func.substr(column, len(old_root) + 1)
        changed += conn.execute(column.table.update().where(column.startswith(old_root, autoescape=True))
                                .values({column.name: moved})).rowcount
    return changed
