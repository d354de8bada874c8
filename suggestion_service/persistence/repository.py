"""Reads and writes of the suggestion service's tables. Rows never leave this module:
callers get domain objects. Every function takes the connection of the caller's
transaction (see :meth:`tuning_common.database.Database.run`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from suggestion_service.algorithms.base import TrialView
from suggestion_service.domain.codec import spec_from_dict, spec_to_dict
from suggestion_service.domain.study import Study, StudySpec, StudyState, TrialCounts
from suggestion_service.domain.trial import Measurement, Trial, TrialSource, TrialState
from suggestion_service.persistence.tables import measurements, studies, suggest_requests, trials

_TRIAL_COLUMNS = [*trials.c, studies.c.name.label("study_name")]


# --- studies ---------------------------------------------------------------------------


def _study(row: Any, counts: TrialCounts | None = None) -> Study:
    return Study(
        id=row.id,
        name=row.name,
        spec=spec_from_dict(row.spec),
        state=StudyState(row.state),
        create_ms=row.create_ms,
        update_ms=row.update_ms,
        trial_seq=row.trial_seq,
        budget_used=row.budget_used,
        algorithm_seq=row.algorithm_seq,
        counts=counts,
    )


def insert_study(conn: Connection, name: str, spec: StudySpec, now_ms: int) -> None:
    conn.execute(
        studies.insert().values(
            name=name, spec=spec_to_dict(spec), state=StudyState.ACTIVE.value, create_ms=now_ms, update_ms=now_ms
        )
    )


def find_study(conn: Connection, *, name: str | None = None, study_id: int | None = None, lock: bool = False) -> Study | None:
    """A study by name or id. ``lock`` takes the row lock that serialises a study's trial bookkeeping."""
    query = sa.select(studies).where(studies.c.name == name if name is not None else studies.c.id == study_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _study(row)


def list_studies(conn: Connection, after_name: str | None, limit: int) -> list[Study]:
    query = sa.select(studies).order_by(studies.c.name).limit(limit)
    if after_name is not None:
        query = query.where(studies.c.name > after_name)
    return [_study(row) for row in conn.execute(query)]


def trial_counts(conn: Connection, study_ids: Sequence[int]) -> dict[int, TrialCounts]:
    query = (
        sa.select(trials.c.study_id, trials.c.state, sa.func.count())
        .where(trials.c.study_id.in_(study_ids))
        .group_by(trials.c.study_id, trials.c.state)
    )
    tallies: dict[int, dict[str, int]] = {study_id: {} for study_id in study_ids}
    for study_id, state, n in conn.execute(query):
        tallies[study_id][state.lower()] = n
    return {study_id: TrialCounts(**tally) for study_id, tally in tallies.items()}


def with_counts(conn: Connection, study: Study) -> Study:
    return replace(study, counts=trial_counts(conn, [study.id])[study.id])


def set_study_state(conn: Connection, study_id: int, state: StudyState, now_ms: int) -> None:
    conn.execute(studies.update().where(studies.c.id == study_id).values(state=state.value, update_ms=now_ms))


def advance_counters(conn: Connection, study_id: int, *, trials_: int, budget: int = 0, algorithm: int = 0) -> int:
    """Reserves ``trials_`` trial numbers (and budget/algorithm slots); returns the first number."""
    result = conn.execute(
        studies.update()
        .where(studies.c.id == study_id)
        .values(
            trial_seq=studies.c.trial_seq + trials_,
            budget_used=studies.c.budget_used + budget,
            algorithm_seq=studies.c.algorithm_seq + algorithm,
        )
        .returning(studies.c.trial_seq)
    ).scalar_one()
    return result - trials_


def delete_study(conn: Connection, study_id: int) -> None:
    trial_ids = sa.select(trials.c.id).where(trials.c.study_id == study_id).scalar_subquery()
    conn.execute(measurements.delete().where(measurements.c.trial_id.in_(trial_ids)))
    conn.execute(trials.delete().where(trials.c.study_id == study_id))
    conn.execute(suggest_requests.delete().where(suggest_requests.c.study_id == study_id))
    conn.execute(studies.delete().where(studies.c.id == study_id))


# --- suggest requests ------------------------------------------------------------------


def find_request(conn: Connection, study_id: int, request_id: str) -> Any | None:
    return conn.execute(
        sa.select(suggest_requests).where(
            suggest_requests.c.study_id == study_id, suggest_requests.c.request_id == request_id
        )
    ).first()


def record_request(
    conn: Connection, study_id: int, request_id: str, worker_id: str, status: str, done_reason: str | None,
    message: str, now_ms: int,
) -> None:
    conn.execute(
        suggest_requests.insert().values(
            study_id=study_id, request_id=request_id, worker_id=worker_id, status=status,
            done_reason=done_reason, message=message, create_ms=now_ms,
        )
    )


# --- trials ----------------------------------------------------------------------------


def _trial(row: Any) -> Trial:
    last = None
    if row.last_step is not None:
        last = Measurement(row.last_step, tuple(map(tuple, row.last_metrics)), row.last_measurement_ms)
    return Trial(
        id=row.id,
        study_id=row.study_id,
        study_name=row.study_name,
        number=row.number,
        state=TrialState(row.state),
        source=TrialSource(row.source),
        params=row.params,
        budget=row.budget,
        worker_id=row.worker_id,
        lease_expires_ms=row.lease_expires_ms,
        attempt=row.attempt,
        retry_of=row.retry_of,
        metrics=tuple(map(tuple, row.metrics or ())),
        reason=row.reason,
        last_measurement=last,
        request_id=row.request_id,
        create_ms=row.create_ms,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
    )


def _select_trials():
    return sa.select(*_TRIAL_COLUMNS).join(studies, studies.c.id == trials.c.study_id)


def insert_trials(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    result = conn.execute(trials.insert().returning(trials.c.id, sort_by_parameter_order=True), rows)
    return [row.id for row in result]


def get_trial(conn: Connection, trial_id: int) -> Trial | None:
    row = conn.execute(_select_trials().where(trials.c.id == trial_id)).first()
    return None if row is None else _trial(row)


def get_trials(conn: Connection, trial_ids: Iterable[int]) -> list[Trial]:
    ids = list(trial_ids)
    rows = conn.execute(_select_trials().where(trials.c.id.in_(ids)).order_by(trials.c.number))
    return [_trial(row) for row in rows]


def trials_for_request(conn: Connection, study_id: int, request_id: str) -> list[Trial]:
    query = _select_trials().where(trials.c.study_id == study_id, trials.c.request_id == request_id)
    return [_trial(row) for row in conn.execute(query.order_by(trials.c.number))]


def list_trials(
    conn: Connection, study_id: int, states: Sequence[TrialState], after_number: int | None, limit: int | None
) -> list[Trial]:
    query = _select_trials().where(trials.c.study_id == study_id).order_by(trials.c.number)
    if states:
        query = query.where(trials.c.state.in_([s.value for s in states]))
    if after_number is not None:
        query = query.where(trials.c.number > after_number)
    if limit is not None:
        query = query.limit(limit)
    return [_trial(row) for row in conn.execute(query)]


def count_active(conn: Connection, study_id: int) -> int:
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(trials)
        .where(trials.c.study_id == study_id, trials.c.state == TrialState.ACTIVE.value)
    ).scalar_one()


def pending_params(conn: Connection, study_id: int) -> list[dict]:
    query = sa.select(trials.c.params).where(
        trials.c.study_id == study_id,
        trials.c.state.in_([TrialState.ACTIVE.value, TrialState.QUEUED.value]),
    )
    return [row.params for row in conn.execute(query)]


def history(conn: Connection, study: Study) -> list[TrialView]:
    names = study.spec.metric_names
    views = []
    query = sa.select(trials.c.number, trials.c.state, trials.c.params, trials.c.metrics, trials.c.budget)
    for row in conn.execute(query.where(trials.c.study_id == study.id).order_by(trials.c.number)):
        values = None
        if row.state == TrialState.COMPLETED.value:
            metrics = dict(map(tuple, row.metrics))
            values = tuple(metrics[name] for name in names)
        views.append(TrialView(row.number, TrialState(row.state), row.params, values, row.budget))
    return views


def expired_trials(conn: Connection, study_id: int, now_ms: int) -> list[Trial]:
    query = _select_trials().where(
        trials.c.study_id == study_id,
        trials.c.state == TrialState.ACTIVE.value,
        trials.c.lease_expires_ms < now_ms,
    )
    return [_trial(row) for row in conn.execute(query.order_by(trials.c.number))]


def studies_with_expired_leases(conn: Connection, now_ms: int) -> list[int]:
    query = (
        sa.select(trials.c.study_id)
        .where(trials.c.state == TrialState.ACTIVE.value, trials.c.lease_expires_ms < now_ms)
        .distinct()
    )
    return list(conn.execute(query).scalars())


def update_trial_if(conn: Connection, trial_id: int, expected: TrialState, **values: Any) -> bool:
    """Compare-and-set: updates only if the trial is still in ``expected``. Returns whether it did."""
    if "state" in values and isinstance(values["state"], TrialState):
        values["state"] = values["state"].value
    result = conn.execute(
        trials.update().where(trials.c.id == trial_id, trials.c.state == expected.value).values(**values)
    )
    return result.rowcount == 1


def retry_of(conn: Connection, trial_id: int) -> int | None:
    return conn.execute(sa.select(trials.c.id).where(trials.c.retry_of == trial_id)).scalar()


# --- measurements ----------------------------------------------------------------------


def get_measurement(conn: Connection, trial_id: int, step: int) -> Measurement | None:
    row = conn.execute(
        sa.select(measurements).where(measurements.c.trial_id == trial_id, measurements.c.step == step)
    ).first()
    return None if row is None else Measurement(row.step, tuple(map(tuple, row.metrics)), row.create_ms)


def insert_measurement(conn: Connection, trial_id: int, measurement: Measurement) -> None:
    conn.execute(
        measurements.insert().values(
            trial_id=trial_id,
            step=measurement.step,
            metrics=[list(m) for m in measurement.metrics],
            create_ms=measurement.create_ms,
        )
    )


def list_measurements(conn: Connection, trial_id: int) -> list[Measurement]:
    query = sa.select(measurements).where(measurements.c.trial_id == trial_id).order_by(measurements.c.step)
    return [Measurement(row.step, tuple(map(tuple, row.metrics)), row.create_ms) for row in conn.execute(query)]
