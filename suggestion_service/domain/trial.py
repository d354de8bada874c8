"""Trials, their measurements, and how a trial may end."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from suggestion_service.domain.pbt import Segment
from tuning_common.errors import InvalidArgument
from tuning_types.space import Value, check_name


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


def is_feasible(constraints: Sequence[float]) -> bool:
    """Optuna's convention: a constraint is satisfied when its value is <= 0."""
    return all(c <= 0.0 for c in constraints)


def check_constraints(field: str, values: Sequence[float], declared: Sequence[str], *, required: bool
                      ) -> tuple[float, ...] | None:
    """The tell's constraint values against the study's ``declared`` names; None for none given."""
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise InvalidArgument(f"{field}[{i}]", f"is {value}; constraint values must be finite")
    if not values:
        if required and declared:
            raise InvalidArgument(field, f"the study declares {len(declared)} constraint(s) "
                                         f"({', '.join(declared)}); a successful tell needs a value for each")
        return None
    if not declared:
        raise InvalidArgument(field, "the study declares no constraints (spec.constraints); send none")
    if len(values) != len(declared):
        raise InvalidArgument(field, f"expected {len(declared)} value(s), one per declared constraint "
                                     f"({', '.join(declared)}), got {len(values)}")
    return tuple(float(v) for v in values)


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
    # Constraint values from the tell, in the study's declared order; None when it carried none.
    constraints: tuple[float, ...] | None = None

    @property
    def feasible(self) -> bool | None:
        """Whether every constraint value is <= 0; None when the trial has no constraint values."""
        return None if self.constraints is None else is_feasible(self.constraints)

    def metric(self, name: str) -> float | None:
        return dict(self.metrics).get(name)

    @property
    def pbt_segment(self) -> Segment | None:
        """The population-based training segment this trial runs (algorithm pbt), else None."""
        return Segment.from_metadata(self.suggestion_metadata)
