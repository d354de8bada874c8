"""A stored study: its spec (:mod:`tuning_types.study`), state and bookkeeping."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tuning_types.study import StudySpec


class StudyState(enum.Enum):
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class TrialCounts:
    queued: int = 0
    active: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    infeasible: int = 0
    stale: int = 0


@dataclass(frozen=True)
class Study:
    id: int
    name: str
    spec: StudySpec
    state: StudyState
    create_ms: int
    update_ms: int
    # Bookkeeping kept under the study's lock.
    trial_seq: int = 0
    budget_used: int = 0
    algorithm_seq: int = 0
    counts: TrialCounts | None = None
