"""Trials, their measurements, and how a trial may end."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from suggestion_service.domain.space import Value, check_name
from tuning_common.errors import InvalidArgument


class TrialState(enum.Enum):
    QUEUED = "QUEUED"
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    PRUNED = "PRUNED"
    FAILED = "FAILED"
    INFEASIBLE = "INFEASIBLE"
    STALE = "STALE"

    @property
    def finished(self) -> bool:
        return self not in (TrialState.QUEUED, TrialState.ACTIVE)


class TrialSource(enum.Enum):
    ALGORITHM = "ALGORITHM"
    USER = "USER"
    RETRY = "RETRY"


class Outcome(enum.Enum):
    SUCCEEDED = TrialState.COMPLETED
    PRUNED = TrialState.PRUNED
    FAILED = TrialState.FAILED
    INFEASIBLE = TrialState.INFEASIBLE


Metrics = tuple[tuple[str, float], ...]

MAX_METRICS = 1000
MAX_REASON_CHARS = 4096


def check_metrics(field: str, metrics: Sequence[tuple[str, float]], *, required: bool) -> Metrics:
    """Checks names are valid and unique and values finite; non-finite values are never stored."""
    if required and not metrics:
        raise InvalidArgument(field, "at least one metric is required")
    if len(metrics) > MAX_METRICS:
        raise InvalidArgument(field, f"at most {MAX_METRICS} metrics, got {len(metrics)}")
    seen: set[str] = set()
    for i, (name, value) in enumerate(metrics):
        check_name(f"{field}[{i}].name", name, "metric name")
        if name in seen:
            raise InvalidArgument(f"{field}[{i}].name", f"duplicate metric {name!r}")
        seen.add(name)
        if not math.isfinite(value):
            raise InvalidArgument(
                f"{field}[{i}].value",
                f"{name!r} is {value}; values must be finite (complete the trial as FAILED to record a divergence)",
            )
    return tuple((name, float(value)) for name, value in metrics)


@dataclass(frozen=True)
class Measurement:
    step: int
    metrics: Metrics
    create_ms: int


@dataclass(frozen=True)
class Trial:
    id: int
    study_id: int
    study_name: str
    number: int
    state: TrialState
    source: TrialSource
    params: dict[str, Value]
    budget: float | None
    worker_id: str
    lease_expires_ms: int | None
    attempt: int
    retry_of: int | None
    metrics: Metrics
    reason: str
    last_measurement: Measurement | None
    request_id: str | None
    create_ms: int
    start_ms: int | None
    end_ms: int | None
    # How the configuration was suggested (algorithm, seed, prediction...); empty for user trials.
    suggestion_metadata: dict = field(default_factory=dict)
    # The tracking run that records this trial, once a worker links it.
    run_id: str | None = None

    def metric(self, name: str) -> float | None:
        return dict(self.metrics).get(name)
