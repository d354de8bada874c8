"""Reads and writes of the suggestion service's tables. Rows never leave this module:
callers get domain objects. Every method takes the connection of the caller's
transaction (see :meth:`tuning_common.database.Database.run`).

Hot-path statements are built once, at import, with bind parameters: SQLAlchemy then
memoises their cache keys, and building and keying a statement would otherwise cost
several times what SQLite takes to run it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from suggestion_service.algorithms.base import PriorTask, TrialView
from suggestion_service.algorithms.pruners import PeerValue
from suggestion_service.domain.codec import spec_from_dict, spec_to_dict
from suggestion_service.domain.study import Study, StudyState, TrialCounts
from suggestion_service.domain.trial import Measurement, Metrics, Trial, TrialSource, TrialState
from suggestion_service.persistence.tables import (
    STUDY,
    measurements,
    permission_tables,
    studies,
    suggest_requests,
    trials,
)
from tuning_common import permissions
from tuning_types.study import StudySpec

ACTIVE, QUEUED = TrialState.ACTIVE.value, TrialState.QUEUED.value
_SPEC_CACHE_SIZE = 1024

# --- statements ------------------------------------------------------------------------

_STUDY_BY_NAME = sa.select(studies).where(studies.c.name == bindparam("name"))
_STUDY_BY_ID = sa.select(studies).where(studies.c.id == bindparam("study_id"))
_FIND_STUDY = {
    ("name", False): _STUDY_BY_NAME,
    ("name", True): _STUDY_BY_NAME.with_for_update(),
    ("study_id", False): _STUDY_BY_ID,
    ("study_id", True): _STUDY_BY_ID.with_for_update(),
}
_STUDY_SPEC = sa.select(studies.c.id, studies.c.spec).where(studies.c.id == bindparam("study_id"))
_ADVANCE = (
    studies.update()
    .where(studies.c.id == bindparam("study_id"))
    .values(
        trial_seq=studies.c.trial_seq + bindparam("n_trials"),
        budget_used=studies.c.budget_used + bindparam("n_budget"),
        algorithm_seq=studies.c.algorithm_seq + bindparam("n_algorithm"),
    )
    .returning(studies.c.trial_seq)
)

_FIND_REQUEST = sa.select(suggest_requests).where(
    suggest_requests.c.study_id == bindparam("study_id"), suggest_requests.c.request_id == bindparam("request_id")
)

_SELECT_TRIALS = sa.select(*trials.c, studies.c.name.label("study_name")).join(
    studies, studies.c.id == trials.c.study_id
)
_GET_TRIAL = _SELECT_TRIALS.where(trials.c.id == bindparam("trial_id"))
# Retries (of handed-back or expired trials) first: they resume work already started, and a
# worker's hand-back promises its configuration to the next asker.
_QUEUED = (
    _SELECT_TRIALS.where(trials.c.study_id == bindparam("study_id"), trials.c.state == QUEUED)
    .order_by(sa.case((trials.c.source == TrialSource.RETRY.value, 0), else_=1), trials.c.number)
    .limit(bindparam("limit"))
)
_FOR_REQUEST = _SELECT_TRIALS.where(
    trials.c.study_id == bindparam("study_id"), trials.c.request_id == bindparam("request_id")
).order_by(trials.c.number)
_EXPIRED = _SELECT_TRIALS.where(
    trials.c.study_id == bindparam("study_id"),
    trials.c.state == ACTIVE,
    trials.c.lease_expires_ms < bindparam("now_ms"),
).order_by(trials.c.number)
_INSERT_TRIALS = trials.insert().returning(trials.c.id, sort_by_parameter_order=True)
_PENDING_SUMMARY = (
    sa.select(trials.c.state, sa.func.count(), sa.func.min(trials.c.lease_expires_ms))
    .where(trials.c.study_id == bindparam("study_id"), trials.c.state.in_([ACTIVE, QUEUED]))
    .group_by(trials.c.state)
)
_PENDING_PARAMS = sa.select(trials.c.params).where(
    trials.c.study_id == bindparam("study_id"), trials.c.state.in_([ACTIVE, QUEUED])
)
_HISTORY = sa.select(trials.c.number, trials.c.state, trials.c.params, trials.c.metrics, trials.c.budget,
                     trials.c.last_step, trials.c.last_metrics, trials.c.constraints, trials.c.id,
                     trials.c.suggestion_metadata)
_HISTORY_SINCE = _HISTORY.where(
    trials.c.study_id == bindparam("study_id"),
    sa.or_(trials.c.number > bindparam("after"),
           sa.and_(trials.c.number.in_(bindparam("numbers", expanding=True)), trials.c.state.not_in([ACTIVE, QUEUED]))),
)
_COMPLETED = TrialState.COMPLETED.value
# A prior study's completed trials from the n-th most recent one on (transfer learning).
_PRIOR_FROM = (sa.select(trials.c.number)
               .where(trials.c.study_id == bindparam("study_id"), trials.c.state == _COMPLETED)
               .order_by(trials.c.number.desc()).limit(1).offset(bindparam("skip")))
_PRIOR_TRIALS = _HISTORY.where(trials.c.study_id == bindparam("study_id"), trials.c.state == _COMPLETED,
                               trials.c.number >= bindparam("from_number"))
# More unfinished trials than this to look up by number: look from the smallest instead.
_MAX_REREAD = 5000
# Without .values(), the SET clause comes from the keys passed at execution.
_UPDATE_TRIAL_IF = trials.update().where(
    trials.c.id == bindparam("where_id"), trials.c.state == bindparam("where_state")
)

# Each trial's first report at or beyond a step (a peer's value at a pruning checkpoint).
_m, _t = measurements.alias("m"), trials.alias("t")
_first_at = (
    sa.select(_m.c.trial_id, sa.func.min(_m.c.step).label("step"))
    .join(_t, _t.c.id == _m.c.trial_id)
    .where(_t.c.study_id == bindparam("study_id"), _m.c.step >= bindparam("step"),
           _t.c.id != bindparam("exclude_id"))
    .group_by(_m.c.trial_id)
    .subquery()
)
_VALUES_AT = (
    sa.select(trials.c.number, trials.c.state, measurements.c.metrics)
    .join(_first_at, sa.and_(_first_at.c.trial_id == measurements.c.trial_id, _first_at.c.step == measurements.c.step))
    .join(trials, trials.c.id == measurements.c.trial_id)
)

_PREVIOUS_STEP = sa.select(sa.func.max(measurements.c.step)).where(
    measurements.c.trial_id == bindparam("trial_id"), measurements.c.step < bindparam("step")
)
_GET_MEASUREMENT = sa.select(measurements).where(
    measurements.c.trial_id == bindparam("trial_id"), measurements.c.step == bindparam("step")
)

# Columns an inserted trial row may omit, with the values the database gives them.
_TRIAL_DEFAULTS = {
    "budget": None, "worker_id": "", "request_id": None, "lease_expires_ms": None, "attempt": 0, "retry_of": None,
    "metrics": None, "reason": "", "last_step": None, "last_metrics": None, "last_measurement_ms": None,
    "start_ms": None, "end_ms": None, "suggestion_metadata": None, "run_id": None,
    "constraints": None,
}


def _insert_unless_exists(conn: Connection, insert: sa.Insert) -> bool:
    """Runs ``insert`` in a savepoint; a unique-key clash with a concurrent writer returns False."""
    try:
        with conn.begin_nested():
            conn.execute(insert)
        return True
    except sa.exc.IntegrityError:
        return False


class _Row(dict):
    """Attribute access over a dict, so inserted rows convert like fetched ones."""

    __getattr__ = dict.__getitem__


def _metrics(raw: list | None) -> Metrics:
    return tuple((name, value) for name, value in raw or ())


def _measurement(row: Any) -> Measurement:
    return Measurement(row.step, _metrics(row.metrics), row.create_ms)


def _trial(row: Any, study_name: str | None = None) -> Trial:
    last = None
    if row.last_step is not None:
        last = Measurement(row.last_step, _metrics(row.last_metrics), row.last_measurement_ms)
    return Trial(
        id=row.id,
        study_id=row.study_id,
        study_name=study_name or row.study_name,
        number=row.number,
        state=TrialState(row.state),
        source=TrialSource(row.source),
        params=row.params,
        budget=row.budget,
        worker_id=row.worker_id,
        lease_expires_ms=row.lease_expires_ms,
        attempt=row.attempt,
        retry_of=row.retry_of,
        metrics=_metrics(row.metrics),
        reason=row.reason,
        last_measurement=last,
        request_id=row.request_id,
        create_ms=row.create_ms,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        suggestion_metadata=row.suggestion_metadata or {},
        run_id=row.run_id,
        constraints=None if row.constraints is None else tuple(row.constraints),
    )


class Repository:
    """The suggestion service's storage, for one database."""

    def __init__(self) -> None:
        # A study's spec never changes and its id is never reused in this database, so
        # parsed specs are cached by id.
        self._specs: OrderedDict[int, StudySpec] = OrderedDict()

    # --- studies -----------------------------------------------------------------------

    def _spec(self, study_id: int, raw: dict) -> StudySpec:
        spec = self._specs.get(study_id)
        if spec is None:
            spec = self._specs[study_id] = spec_from_dict(raw)
            if len(self._specs) > _SPEC_CACHE_SIZE:
                self._specs.popitem(last=False)
        return spec

    def _study(self, row: Any, counts: TrialCounts | None = None) -> Study:
        return Study(
            id=row.id,
            name=row.name,
            spec=self._spec(row.id, row.spec),
            state=StudyState(row.state),
            create_ms=row.create_ms,
            update_ms=row.update_ms,
            trial_seq=row.trial_seq,
            budget_used=row.budget_used,
            algorithm_seq=row.algorithm_seq,
            counts=counts,
        )

    def study_spec(self, conn: Connection, study_id: int) -> StudySpec:
        """A study's spec, usually without touching the database."""
        spec = self._specs.get(study_id)
        if spec is None:
            row = conn.execute(_STUDY_SPEC, {"study_id": study_id}).one()
            spec = self._spec(row.id, row.spec)
        return spec

    def insert_study(self, conn: Connection, name: str, spec: StudySpec, now_ms: int) -> bool:
        """Inserts the study unless one with that name exists; returns whether it did."""
        return _insert_unless_exists(conn, studies.insert().values(
            name=name, spec=spec_to_dict(spec), state=StudyState.ACTIVE.value, create_ms=now_ms, update_ms=now_ms
        ))

    def find_study(
        self, conn: Connection, *, name: str | None = None, study_id: int | None = None, lock: bool = False
    ) -> Study | None:
        """A study by name or id. ``lock`` takes the row lock that serialises its trial bookkeeping."""
        key, value = ("name", name) if name is not None else ("study_id", study_id)
        row = conn.execute(_FIND_STUDY[key, lock], {key: value}).first()
        return None if row is None else self._study(row)

    def list_studies(self, conn: Connection, after_name: str | None, limit: int,
                     readable: Collection[str] | None = None) -> list[Study]:
        query = sa.select(studies).order_by(studies.c.name).limit(limit)
        if after_name is not None:
            query = query.where(studies.c.name > after_name)
        if readable is not None:
            query = query.where(permissions.readable(permission_tables.permissions, studies.c.name, STUDY, readable))
        return [self._study(row) for row in conn.execute(query)]

    def trial_counts(self, conn: Connection, study_ids: Sequence[int]) -> dict[int, TrialCounts]:
        query = (
            sa.select(trials.c.study_id, trials.c.state, sa.func.count())
            .where(trials.c.study_id.in_(study_ids))
            .group_by(trials.c.study_id, trials.c.state)
        )
        tallies: dict[int, dict[str, int]] = {study_id: {} for study_id in study_ids}
        for study_id, state, n in conn.execute(query):
            tallies[study_id][state.lower()] = n
        return {study_id: TrialCounts(**tally) for study_id, tally in tallies.items()}

    def census(self, conn: Connection) -> tuple[dict[str, int], int]:
        """Trials of every study by state, and how many of them are retries (telemetry's gauges)."""
        by_state = dict(conn.execute(sa.select(trials.c.state, sa.func.count()).group_by(trials.c.state)).all())
        retries = conn.execute(sa.select(sa.func.count()).where(trials.c.source == TrialSource.RETRY.value)).scalar()
        return by_state, retries

    def with_counts(self, conn: Connection, study: Study) -> Study:
        return replace(study, counts=self.trial_counts(conn, [study.id])[study.id])

    def set_study_state(self, conn: Connection, study_id: int, state: StudyState, now_ms: int) -> None:
        conn.execute(studies.update().where(studies.c.id == study_id).values(state=state.value, update_ms=now_ms))

    def advance_counters(self, conn: Connection, study_id: int, *, trials_: int, budget: int = 0,
                         algorithm: int = 0) -> int:
        """Reserves ``trials_`` trial numbers (and budget/algorithm slots); returns the first number."""
        params = {"study_id": study_id, "n_trials": trials_, "n_budget": budget, "n_algorithm": algorithm}
        return conn.execute(_ADVANCE, params).scalar_one() - trials_

    def delete_study(self, conn: Connection, study_id: int) -> None:
        trial_ids = sa.select(trials.c.id).where(trials.c.study_id == study_id).scalar_subquery()
        conn.execute(measurements.delete().where(measurements.c.trial_id.in_(trial_ids)))
        conn.execute(trials.delete().where(trials.c.study_id == study_id))
        conn.execute(suggest_requests.delete().where(suggest_requests.c.study_id == study_id))
        conn.execute(studies.delete().where(studies.c.id == study_id))
        self._specs.pop(study_id, None)

    # --- suggest requests --------------------------------------------------------------

    def find_request(self, conn: Connection, study_id: int, request_id: str) -> Any | None:
        return conn.execute(_FIND_REQUEST, {"study_id": study_id, "request_id": request_id}).first()

    def record_request(self, conn: Connection, study_id: int, request_id: str, worker_id: str, status: str,
                       done_reason: str | None, message: str, now_ms: int) -> None:
        conn.execute(suggest_requests.insert(), {
            "study_id": study_id, "request_id": request_id, "worker_id": worker_id, "status": status,
            "done_reason": done_reason, "message": message, "create_ms": now_ms,
        })

    # --- trials ------------------------------------------------------------------------

    def insert_trials(self, conn: Connection, study_name: str, rows: list[dict[str, Any]]) -> list[Trial]:
        """Inserts trials (rows of one shape) and returns them without reading them back."""
        if not rows:
            return []
        ids = conn.execute(_INSERT_TRIALS, rows).scalars().all()
        return [_trial(_Row({**_TRIAL_DEFAULTS, **row, "id": id_}), study_name) for row, id_ in zip(rows, ids)]

    def get_trial(self, conn: Connection, trial_id: int) -> Trial | None:
        row = conn.execute(_GET_TRIAL, {"trial_id": trial_id}).first()
        return None if row is None else _trial(row)

    def queued_trials(self, conn: Connection, study_id: int, limit: int) -> list[Trial]:
        return [_trial(row) for row in conn.execute(_QUEUED, {"study_id": study_id, "limit": limit})]

    def trials_for_request(self, conn: Connection, study_id: int, request_id: str) -> list[Trial]:
        rows = conn.execute(_FOR_REQUEST, {"study_id": study_id, "request_id": request_id})
        return [_trial(row) for row in rows]

    def list_trials(self, conn: Connection, study_id: int, states: Sequence[TrialState],
                    after_number: int | None, limit: int | None) -> list[Trial]:
        query = _SELECT_TRIALS.where(trials.c.study_id == study_id).order_by(trials.c.number)
        if states:
            query = query.where(trials.c.state.in_([s.value for s in states]))
        if after_number is not None:
            query = query.where(trials.c.number > after_number)
        if limit is not None:
            query = query.limit(limit)
        return [_trial(row) for row in conn.execute(query)]

    def completed_results(self, conn: Connection, study_id: int, except_id: int
                          ) -> list[tuple[Metrics, tuple[float, ...] | None]]:
        """(metrics, constraint values) of the study's completed trials but one: only the columns
        deciding whether that one is a new best (read on every tell of a watched study)."""
        query = sa.select(trials.c.metrics, trials.c.constraints).where(
            trials.c.study_id == study_id, trials.c.state == TrialState.COMPLETED.value, trials.c.id != except_id)
        return [(_metrics(row.metrics), None if row.constraints is None else tuple(row.constraints))
                for row in conn.execute(query)]

    def pending_summary(self, conn: Connection, study_id: int) -> tuple[int, int, int | None]:
        """(active trials, queued trials, earliest lease expiry) in one statement."""
        active = queued = 0
        earliest = None
        for state, n, soonest in conn.execute(_PENDING_SUMMARY, {"study_id": study_id}):
            if state == ACTIVE:
                active, earliest = n, soonest
            else:
                queued = n
        return active, queued, earliest

    def pending_params(self, conn: Connection, study_id: int) -> list[dict]:
        return list(conn.execute(_PENDING_PARAMS, {"study_id": study_id}).scalars())

    def history(self, conn: Connection, study: Study) -> list[TrialView]:
        """Every trial of the study as an algorithm sees it, oldest first."""
        return self._views(conn, study, _HISTORY.where(trials.c.study_id == bindparam("study_id")), {})

    def history_since(self, conn: Connection, study: Study, after_number: int,
                      numbers: Sequence[int]) -> list[TrialView]:
        """The trials numbered above ``after_number``, and those of ``numbers`` (running or queued
        at the last read) that have finished since: what changed for an algorithm, since a
        finished trial never changes again (and a running one's reports are no algorithm's input)."""
        if len(numbers) > _MAX_REREAD:  # a long list costs more than reading from its smallest
            after_number, numbers = min(numbers) - 1, []
        return self._views(conn, study, _HISTORY_SINCE, {"after": after_number, "numbers": list(numbers)})

    def prior_tasks(self, conn: Connection, names: Sequence[str], limit: int) -> tuple[PriorTask, ...]:
        """The most recent ``limit`` completed trials of each named study (a study's priors), in
        ``names`` order; a prior deleted since the study was created has none."""
        tasks = []
        for name in names:
            prior = self.find_study(conn, name=name)
            if prior is None:
                continue
            first = conn.execute(_PRIOR_FROM, {"study_id": prior.id, "skip": limit - 1}).scalar()
            views = self._views(conn, prior, _PRIOR_TRIALS, {"from_number": first if first is not None else -1})
            tasks.append(PriorTask(name, prior.spec.objectives[0], tuple(views)))
        return tuple(tasks)

    def _views(self, conn: Connection, study: Study, query: sa.Select, params: dict) -> list[TrialView]:
        names = study.spec.metric_names

        def objective_values(raw: list | None) -> tuple[float, ...] | None:
            metrics = dict(_metrics(raw))
            return tuple(metrics[n] for n in names) if all(n in metrics for n in names) else None

        views = []
        for row in conn.execute(query.order_by(trials.c.number), {"study_id": study.id, **params}):
            values = objective_values(row.metrics) if row.state == TrialState.COMPLETED.value else None
            views.append(TrialView(row.number, TrialState(row.state), row.params, values, row.budget,
                                   row.last_step, objective_values(row.last_metrics),
                                   None if row.constraints is None else tuple(row.constraints),
                                   row.id, row.suggestion_metadata or {}))
        return views

    def expired_trials(self, conn: Connection, study_id: int, now_ms: int) -> list[Trial]:
        return [_trial(row) for row in conn.execute(_EXPIRED, {"study_id": study_id, "now_ms": now_ms})]

    def studies_with_expired_leases(self, conn: Connection, now_ms: int) -> list[int]:
        query = (
            sa.select(trials.c.study_id)
            .where(trials.c.state == ACTIVE, trials.c.lease_expires_ms < now_ms)
            .distinct()
        )
        return list(conn.execute(query).scalars())

    def studies_with_active_trials(self, conn: Connection) -> list[int]:
        return list(conn.execute(sa.select(trials.c.study_id).where(trials.c.state == ACTIVE).distinct()).scalars())

    def extend_leases(self, conn: Connection, study_id: int, until_ms: int) -> int:
        """Moves the leases of the study's ACTIVE trials that end sooner to ``until_ms``; returns how many."""
        return conn.execute(
            sa.update(trials)
            .where(trials.c.study_id == study_id, trials.c.state == ACTIVE, trials.c.lease_expires_ms < until_ms)
            .values(lease_expires_ms=until_ms)
        ).rowcount

    def update_trial_if(self, conn: Connection, trial_id: int, expected: TrialState, **values: Any) -> bool:
        """Compare-and-set: updates only if the trial is still in ``expected``. Returns whether it did."""
        if isinstance(values.get("state"), TrialState):
            values["state"] = values["state"].value
        result = conn.execute(_UPDATE_TRIAL_IF, {"where_id": trial_id, "where_state": expected.value, **values})
        return result.rowcount == 1

    def retry_of(self, conn: Connection, trial_id: int) -> int | None:
        return conn.execute(sa.select(trials.c.id).where(trials.c.retry_of == trial_id)).scalar()

    # --- measurements ------------------------------------------------------------------

    def get_measurement(self, conn: Connection, trial_id: int, step: int) -> Measurement | None:
        row = conn.execute(_GET_MEASUREMENT, {"trial_id": trial_id, "step": step}).first()
        return None if row is None else _measurement(row)

    def insert_measurement(self, conn: Connection, trial_id: int, measurement: Measurement) -> bool:
        """Inserts the measurement unless its step exists; returns whether it did."""
        return _insert_unless_exists(conn, measurements.insert().values(
            trial_id=trial_id, step=measurement.step,
            metrics=[list(m) for m in measurement.metrics], create_ms=measurement.create_ms,
        ))

    def previous_step(self, conn: Connection, trial_id: int, step: int) -> int | None:
        """The trial's latest reported step before ``step``."""
        return conn.execute(_PREVIOUS_STEP, {"trial_id": trial_id, "step": step}).scalar()

    def values_at(self, conn: Connection, study_id: int, exclude_trial_id: int, step: float,
                  metric: str) -> list[PeerValue]:
        """Every other trial's ``metric`` at its first report at or beyond ``step``."""
        params = {"study_id": study_id, "step": step, "exclude_id": exclude_trial_id}
        peers = []
        for number, state, metrics in conn.execute(_VALUES_AT, params):
            value = dict(_metrics(metrics)).get(metric)
            if value is not None:
                peers.append(PeerValue(number, TrialState(state), value))
        return peers

    def list_measurements(self, conn: Connection, trial_id: int) -> list[Measurement]:
        query = sa.select(measurements).where(measurements.c.trial_id == trial_id).order_by(measurements.c.step)
        return [_measurement(row) for row in conn.execute(query)]
