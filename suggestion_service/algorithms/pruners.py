"""Early stopping: median rule, asynchronous successive halving (ASHA) and Hyperband.

A pruner answers two questions on every intermediate report, from stored measurements
only, so that every replica and a restarted service decide alike:

1. ``checkpoint(trial_number, last_step, step)``: does the report that moved a trial from
   ``last_step`` to ``step`` reach a decision point, and which? (ASHA: a rung
   ``r_k = min * eta**k`` it just crossed; median: any step past the warm-up.)
2. ``should_stop(trial_number, value, peers)``: given the trial's value at that
   point and each peer's value there (a peer's value at a checkpoint is its first report at
   or beyond the checkpoint's step), should the trial stop?

Which value: by default the study's (single) objective, in its direction. Every pruner
also takes the settings ``metric`` (another intermediate metric to judge on, e.g.
``val_logloss`` while the objective is a thresholded ``val_f1``) and ``direction``
("minimize" or "maximize"; required when ``metric`` is not the objective). A report without
the pruner's metric gets no decision, and peers without it at a checkpoint are left out.

Notation: ``eta`` is the fidelity's reduction factor; "loss" is the judged value signed so
that lower is better.
"""

from __future__ import annotations

import abc
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from suggestion_service.algorithms.base import Configurable, lookup
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import check_name
from tuning_types.study import Direction, Fidelity, Objective, StudySpec


@dataclass(frozen=True)
class Checkpoint:
    step: float
    # Compare with completed trials only (median rule), or with every trial that got there (ASHA).
    completed_only: bool


@dataclass(frozen=True)
class PeerValue:
    number: int
    state: TrialState
    value: float


_DIRECTIONS = tuple(d.value for d in Direction)


class Pruner(Configurable, abc.ABC):
    needs_fidelity: ClassVar[bool] = False

    @dataclass(frozen=True)
    class Settings:
        """What every pruner takes; each pruner's Settings extends it."""

        # The intermediate metric to judge trials on. Empty: the study's objective.
        metric: str = ""
        # "minimize" or "maximize". Empty: the objective's direction, which is only allowed
        # when ``metric`` is the objective.
        direction: str = ""

    @classmethod
    def check_settings(cls, settings, field):
        if settings.metric:
            check_name(f"{field}.metric", settings.metric, "metric name")
        if settings.direction and settings.direction not in _DIRECTIONS:
            raise InvalidArgument(
                f"{field}.direction", f"must be 'minimize' or 'maximize', got {settings.direction!r}"
            )

    @classmethod
    def judged(cls, settings, objective: Objective, field: str = "spec.pruner.settings") -> Objective:
        """The metric the pruner compares and its direction (InvalidArgument if undecidable)."""
        metric = settings.metric or objective.metric
        if not settings.direction:
            if metric != objective.metric:
                raise InvalidArgument(
                    f"{field}.direction",
                    f"is required ('minimize' or 'maximize') when metric {metric!r} is not the objective "
                    f"{objective.metric!r}",
                )
            return objective
        direction = Direction(settings.direction)
        if metric == objective.metric and direction is not objective.direction:
            raise InvalidArgument(
                f"{field}.direction",
                f"{settings.direction!r} contradicts the objective {metric!r}, which is to "
                f"{objective.direction.value}",
            )
        return Objective(metric, direction)

    def __init__(self, objective: Objective, fidelity: Fidelity | None, settings, seed: int):
        judged = self.judged(settings, objective)
        # The measurement metric compared at checkpoints, and the sign that makes lower better.
        self.metric = judged.metric
        self.sign = 1.0 if judged.direction is Direction.MINIMIZE else -1.0
        self.fidelity = fidelity
        self.settings = settings
        self.seed = seed

    @abc.abstractmethod
    def checkpoint(self, trial_number: int, last_step: int | None, step: int) -> Checkpoint | None:
        """The decision point a report from ``last_step`` to ``step`` reaches, if any."""

    @abc.abstractmethod
    def should_stop(self, trial_number: int, value: float, peers: Sequence[PeerValue]) -> bool:
        """Whether a trial whose value at the checkpoint is ``value`` should stop."""


class MedianPruner(Pruner):
    """Stops a trial whose value at a step is worse than the median of completed trials there."""

    name = "median"

    @dataclass(frozen=True)
    class Settings(Pruner.Settings):
        # No stopping until this many completed trials have a value at the step.
        n_startup_trials: int = 5
        # No stopping before this step, nor between multiples of interval_steps after it.
        n_warmup_steps: int = 0
        interval_steps: int = 1

    @classmethod
    def check_settings(cls, settings, field):
        super().check_settings(settings, field)
        if settings.n_startup_trials < 1:
            raise InvalidArgument(f"{field}.n_startup_trials", "must be 1 or more")
        if settings.n_warmup_steps < 0:
            raise InvalidArgument(f"{field}.n_warmup_steps", "must be 0 or more")
        if settings.interval_steps < 1:
            raise InvalidArgument(f"{field}.interval_steps", "must be 1 or more")

    def checkpoint(self, trial_number, last_step, step):
        s = self.settings
        if step < s.n_warmup_steps or (step - s.n_warmup_steps) % s.interval_steps:
            return None
        return Checkpoint(step, completed_only=True)

    def should_stop(self, trial_number, value, peers):
        done = [self.sign * p.value for p in peers if p.state is TrialState.COMPLETED]
        return len(done) >= self.settings.n_startup_trials and self.sign * value > float(np.median(done))


def _rungs(lowest: float, highest: float, eta: float) -> list[float]:
    """Budgets r_k = lowest * eta**k below ``highest`` (reaching ``highest`` ends a trial anyway)."""
    rungs, rung = [], lowest
    while rung < highest * (1 - 1e-12):
        rungs.append(rung)
        rung *= eta
    return rungs


def _crossed(rungs: Sequence[float], last_step: int | None, step: int) -> float | None:
    """The highest rung passed by moving from ``last_step`` (exclusive) to ``step`` (inclusive)."""
    passed = [r for r in rungs if (last_step is None or last_step < r) and r <= step]
    return passed[-1] if passed else None


def _promotable(loss: float, peer_losses: Sequence[float], eta: float) -> bool:
    """Whether ``loss`` is among the best max(1, floor(n / eta)) of the n trials at a rung."""
    losses = sorted([*peer_losses, loss])
    keep = max(1, int(len(losses) // eta))
    return loss <= losses[keep - 1]


class AshaPruner(Pruner):
    """Asynchronous successive halving: at each rung keep the best 1/eta so far."""

    name = "asha"
    needs_fidelity = True

    @dataclass(frozen=True)
    class Settings(Pruner.Settings):
        # No decision at a rung until this many trials (this one included) reached it.
        bootstrap_count: int = 0

    @classmethod
    def check_settings(cls, settings, field):
        super().check_settings(settings, field)
        if settings.bootstrap_count < 0:
            raise InvalidArgument(f"{field}.bootstrap_count", "must be 0 or more")

    def rungs_for(self, trial_number: int) -> list[float]:
        f = self.fidelity
        return _rungs(f.min, f.max, f.reduction_factor)

    def checkpoint(self, trial_number, last_step, step):
        rung = _crossed(self.rungs_for(trial_number), last_step, step)
        return None if rung is None else Checkpoint(rung, completed_only=False)

    def competitors(self, trial_number: int, peers: Sequence[PeerValue]) -> list[PeerValue]:
        return list(peers)

    def should_stop(self, trial_number, value, peers):
        rivals = [self.sign * p.value for p in self.competitors(trial_number, peers)]
        if len(rivals) + 1 < self.settings.bootstrap_count:
            return False
        return not _promotable(self.sign * value, rivals, self.fidelity.reduction_factor)


class HyperbandPruner(AshaPruner):
    """ASHA in several brackets, from aggressive (first rung at min) to none (first rung at max).

    A trial's bracket is a deterministic function of the seed and its number, weighted as
    Hyperband weights brackets; trials compete only within their bracket.
    """

    name = "hyperband"

    def _brackets(self) -> int:
        f = self.fidelity
        return int(math.floor(math.log(f.max / f.min, f.reduction_factor) + 1e-9)) + 1

    def bracket(self, trial_number: int) -> int:
        n = self._brackets()
        eta = self.fidelity.reduction_factor
        # Hyperband's allocation: bracket b (first rung min * eta**b) gets ~ eta**(n-1-b) / (n-b) trials.
        weights = np.array([eta ** (n - 1 - b) / (n - b) for b in range(n)])
        digest = hashlib.blake2b(f"{self.seed}:{trial_number}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        return int(np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right"))

    def rungs_for(self, trial_number):
        f = self.fidelity
        lowest = f.min * f.reduction_factor ** self.bracket(trial_number)
        return _rungs(lowest, f.max, f.reduction_factor)

    def competitors(self, trial_number, peers):
        mine = self.bracket(trial_number)
        return [p for p in peers if self.bracket(p.number) == mine]


PRUNERS: dict[str, type[Pruner]] = {cls.name: cls for cls in (MedianPruner, AshaPruner, HyperbandPruner)}


def pruner_class(name: str) -> type[Pruner]:
    return lookup(PRUNERS, name, "spec.pruner.name", "pruner")


def validate_pruner(spec: StudySpec) -> None:
    if spec.pruner is None:
        return
    cls = pruner_class(spec.pruner.name)
    settings = cls.parse_settings(spec.pruner.settings, "spec.pruner.settings")
    cls.judged(settings, spec.objectives[0], "spec.pruner.settings")
    if cls.needs_fidelity and spec.fidelity is None:
        raise InvalidArgument("spec.fidelity", f"pruner {cls.name!r} needs a fidelity (its rungs are budgets)")


def make_pruner(spec: StudySpec) -> Pruner | None:
    if spec.pruner is None:
        return None
    cls = pruner_class(spec.pruner.name)
    settings = cls.parse_settings(spec.pruner.settings, "spec.pruner.settings")
    return cls(spec.objectives[0], spec.fidelity, settings, spec.seed)
