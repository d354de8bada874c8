"""What defines a study (:class:`StudySpec`): its space, objectives, algorithm, pruner and limits.

Clients build and validate specs before sending them; the service validates every spec it
receives."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Any

from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace, check_name

DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_MAX_RETRIES = 2
MAX_LEASE_SECONDS = 7 * 24 * 3600.0
MAX_RETRIES_LIMIT = 100
DEFAULT_REDUCTION_FACTOR = 3.0
MAX_CONSTRAINTS = 100
# Studies one study may learn from (spec.prior_studies).
MAX_PRIOR_STUDIES = 10


class Direction(enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Direction
    # This objective's coordinate of the hypervolume reference point, in the metric's own units
    # (a trial counts toward the hypervolume only when it is better than this in every objective);
    # None: derived from the study's trials (``domain/ranking.py``).
    reference_point: float | None = None


# What a new study runs when its spec names no algorithm. A request without one joins an
# existing study whatever it runs (as a request without a seed does).
DEFAULT_ALGORITHM = "auto"


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str = DEFAULT_ALGORITHM
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrunerSpec:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fidelity:
    """The training resource of a multi-fidelity study; report steps are in this unit."""

    name: str
    min: float
    max: float
    reduction_factor: float = DEFAULT_REDUCTION_FACTOR

    def validate(self, field: str = "spec.fidelity") -> None:
        check_name(f"{field}.name", self.name, "fidelity name")
        if not (math.isfinite(self.min) and self.min > 0):
            raise InvalidArgument(f"{field}.min", f"must be above 0, got {self.min}")
        if not (math.isfinite(self.max) and self.max >= self.min):
            raise InvalidArgument(f"{field}.max", f"must be at least min ({self.min}), got {self.max}")
        if not (math.isfinite(self.reduction_factor) and self.reduction_factor > 1):
            raise InvalidArgument(f"{field}.reduction_factor", f"must be above 1, got {self.reduction_factor}")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_failed: bool = False


@dataclass(frozen=True)
class StudySpec:
    space: SearchSpace
    objectives: tuple[Objective, ...]
    algorithm: AlgorithmSpec = AlgorithmSpec()
    seed: int | None = None
    max_trials: int = 0
    max_parallel_trials: int = 0
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    retry_policy: RetryPolicy = RetryPolicy()
    fidelity: Fidelity | None = None
    pruner: PrunerSpec | None = None
    # Names of the constraint values each SUCCEEDED tell carries (<= 0: satisfied).
    constraints: tuple[str, ...] = ()
    # Names of earlier studies whose trials the algorithm learns from (transfer learning).
    prior_studies: tuple[str, ...] = ()

    def validate(self) -> None:
        self.space.validate("spec.parameters")
        if not self.objectives:
            raise InvalidArgument("spec.objectives", "at least one objective is required")
        metrics: set[str] = set()
        for i, objective in enumerate(self.objectives):
            check_name(f"spec.objectives[{i}].metric", objective.metric, "metric name")
            if objective.metric in metrics:
                raise InvalidArgument(f"spec.objectives[{i}].metric", f"duplicate objective {objective.metric!r}")
            metrics.add(objective.metric)
            if objective.reference_point is not None and not math.isfinite(objective.reference_point):
                raise InvalidArgument(f"spec.objectives[{i}].reference_point",
                                      f"must be a finite number, got {objective.reference_point}")
        if self.max_trials < 0:
            raise InvalidArgument("spec.max_trials", f"must be 0 (no limit) or positive, got {self.max_trials}")
        if self.max_parallel_trials < 0:
            raise InvalidArgument(
                "spec.max_parallel_trials", f"must be 0 (no limit) or positive, got {self.max_parallel_trials}"
            )
        if not (math.isfinite(self.lease_seconds) and 1.0 <= self.lease_seconds <= MAX_LEASE_SECONDS):
            raise InvalidArgument(
                "spec.lease_duration", f"must be between 1 s and 7 days, got {self.lease_seconds} s"
            )
        if not 0 <= self.retry_policy.max_retries <= MAX_RETRIES_LIMIT:
            raise InvalidArgument(
                "spec.retry_policy.max_retries",
                f"must be between 0 and {MAX_RETRIES_LIMIT}, got {self.retry_policy.max_retries}",
            )
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidArgument("spec.seed", f"must be between 0 and 2^63-1, got {self.seed}")
        if self.fidelity is not None:
            self.fidelity.validate()
        if self.pruner is not None and len(self.objectives) != 1:
            raise InvalidArgument("spec.pruner", "early stopping needs exactly one objective")
        if len(self.constraints) > MAX_CONSTRAINTS:
            raise InvalidArgument("spec.constraints", f"at most {MAX_CONSTRAINTS}, got {len(self.constraints)}")
        for i, name in enumerate(self.constraints):
            check_name(f"spec.constraints[{i}]", name, "constraint name")
            if name in self.constraints[:i]:
                raise InvalidArgument(f"spec.constraints[{i}]", f"duplicate constraint {name!r}")
        if len(self.prior_studies) > MAX_PRIOR_STUDIES:
            raise InvalidArgument("spec.prior_studies", f"at most {MAX_PRIOR_STUDIES}, got {len(self.prior_studies)}")
        for i, name in enumerate(self.prior_studies):
            check_name(f"spec.prior_studies[{i}]", name, "study name")
            if name in self.prior_studies[:i]:
                raise InvalidArgument(f"spec.prior_studies[{i}]", f"duplicate prior study {name!r}")
        if self.prior_studies and len(self.objectives) != 1:
            raise InvalidArgument("spec.prior_studies", "transfer from prior studies needs exactly one objective")

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    def with_seed(self, seed: int) -> StudySpec:
        return replace(self, seed=seed)

    def check_prior(self, field: str, name: str, prior: StudySpec) -> None:
        """Raises InvalidArgument on ``field`` unless the study ``name`` with spec ``prior`` can be
        a prior of this one: one objective, and every non-fixed parameter of this study declared
        there too with the same type (float, int or categorical; bounds and choices may differ)."""
        if len(prior.objectives) != 1:
            raise InvalidArgument(field, f"prior study {name!r} has {len(prior.objectives)} objectives; "
                                         "transfer needs exactly one")
        theirs = {p.name: p for p in prior.space}
        for parameter in self.space:
            if parameter.is_fixed:
                continue
            other = theirs.get(parameter.name)
            if other is None or type(other.domain) is not type(parameter.domain):
                kind = type(parameter.domain).__name__.removesuffix("Domain").lower()
                raise InvalidArgument(field, f"prior study {name!r} has no {kind} parameter {parameter.name!r}; "
                                             "a prior must declare every non-fixed parameter, with the same type")
