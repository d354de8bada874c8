"""Population-based training (Jaderberg et al., 2017), asynchronous, as a suggestion algorithm.

A population of ``population_size`` members trains for ``max_steps`` steps each, in
segments of ``perturbation_interval`` steps. Every segment is one trial: it starts from a
checkpoint (none for generation 0), trains to its end step, saves a checkpoint as an
artifact of its tracked run and tells its value. What a segment starts from is decided
here, when a worker asks, from the stored trials alone (the state rules of ``base``):

- generation 0 of member m is proposal m: a random configuration drawn from
  ``default_rng([seed, m])``, no parent;
- when member m has completed generation g (value v), its next segment g + 1 is proposed.
  Its peers are the members that completed generation g (their values at the same step,
  so comparable). Of n peers, k = min(ceil(quantile_fraction * n), n // 2) are the top and
  the bottom (a member that violates a constraint ranks below every feasible one). A member
  in the bottom k *exploits*: it copies a top member's generation-g
  checkpoint and hyperparameters (drawn uniformly among the top k) and *explores* them:
  each mutable parameter is resampled from its prior with ``resample_probability``,
  otherwise perturbed (numbers times ``perturb_down`` or ``perturb_up``, clipped to the
  range and snapped to its step, an integer moved by at least 1; a categorical moves to a
  neighbouring choice). Any other member continues from its own checkpoint unchanged;
- a member whose latest segment ended without a value (failed, infeasible, or stale with
  its retries spent) is redone: the same generation again from a top member of the
  generation before (or, at generation 0, from a fresh random draw), at most
  ``_MAX_REDOS`` times per generation; after that the member stops.

Asynchronous, as Ray Tune's default: a member never waits for the others, which suits
stateless workers whose number has nothing to do with the population's. The price is that
the first member to finish a generation has few peers (with fewer than 2 it always
continues); the last to finish sees them all. Ready members are served lowest generation
first, then lowest member index. Random draws of proposal n come from
``default_rng([seed, n])``, so the same history gives the same decision on any replica
and after a restart; decisions already made are stored with their trials.

Notation: "loss" is the objective signed so that lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion, TrialView
from suggestion_service.domain.pbt import CONTINUE, EXPLOIT, KEY, REDO, START, Segment
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import (
    CategoricalDomain,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
    Value,
    same_value,
)
from tuning_types.study import Direction, Fidelity, Objective, StudySpec

# A generation is tried at most this many times per member (the first try included) before
# the member stops: a configuration whose training always fails must not burn the study.
_MAX_REDOS = 3
_PENDING = (TrialState.ACTIVE, TrialState.QUEUED)


@dataclass
class _Member:
    index: int
    # generation -> that generation's trials (several when retried or redone), oldest first
    tries: dict[int, list[TrialView]]

    @property
    def generation(self) -> int:
        return max(self.tries)

    def completed(self, generation: int) -> TrialView | None:
        return next((t for t in self.tries.get(generation, ()) if t.state is TrialState.COMPLETED
                     and t.values is not None), None)

    @property
    def busy(self) -> bool:
        return any(t.state in _PENDING for t in self.tries[self.generation])


class PopulationBasedTraining(Algorithm):
    name = "pbt"
    uses_history = True
    waits_for_running = True
    accepts_user_trials = False

    @dataclass(frozen=True)
    class Settings:
        population_size: int = 8
        perturbation_interval: int = 10
        max_steps: int = 100
        quantile_fraction: float = 0.25
        resample_probability: float = 0.25
        perturb_down: float = 0.8
        perturb_up: float = 1.2
        # Comma-separated parameter names that explore changes; "": every parameter that is not fixed.
        mutable: str = ""

    @classmethod
    def check_settings(cls, settings: Settings, field: str) -> None:
        if settings.population_size < 2:
            raise InvalidArgument(f"{field}.population_size", f"must be at least 2, got {settings.population_size}")
        if settings.perturbation_interval < 1:
            raise InvalidArgument(f"{field}.perturbation_interval",
                                  f"must be at least 1, got {settings.perturbation_interval}")
        if settings.max_steps < settings.perturbation_interval:
            raise InvalidArgument(f"{field}.max_steps", f"must be at least perturbation_interval "
                                  f"({settings.perturbation_interval}), got {settings.max_steps}")
        if not 0 < settings.quantile_fraction <= 0.5:
            raise InvalidArgument(f"{field}.quantile_fraction",
                                  f"must be above 0 and at most 0.5, got {settings.quantile_fraction}")
        if not 0 <= settings.resample_probability <= 1:
            raise InvalidArgument(f"{field}.resample_probability",
                                  f"must be between 0 and 1, got {settings.resample_probability}")
        if not 0 < settings.perturb_down < 1:
            raise InvalidArgument(f"{field}.perturb_down", f"must be above 0 and below 1, got {settings.perturb_down}")
        if not (math.isfinite(settings.perturb_up) and settings.perturb_up > 1):
            raise InvalidArgument(f"{field}.perturb_up", f"must be above 1, got {settings.perturb_up}")

    @classmethod
    def check_objectives(cls, objectives: Sequence[Objective], field: str = "spec.objectives") -> None:
        if len(objectives) != 1:
            raise InvalidArgument(field, f"pbt ranks members by exactly one objective, got {len(objectives)}")

    @classmethod
    def check_fidelity(cls, fidelity: Fidelity | None, field: str = "spec.fidelity") -> None:
        if fidelity is not None:
            raise InvalidArgument(field, "pbt schedules steps itself (settings max_steps and perturbation_interval); "
                                         "leave the fidelity out")

    @classmethod
    def check_spec(cls, spec: StudySpec, settings: Settings) -> None:
        if spec.pruner is not None:
            raise InvalidArgument("spec.pruner", "pbt decides at every segment's end itself; leave the pruner out")
        _mutable(spec.space, settings.mutable, "spec.algorithm.settings.mutable")

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], settings: Settings, seed: int):
        super().__init__(space, objectives, settings, seed)
        self.mutable = _mutable(space, settings.mutable, "spec.algorithm.settings.mutable")
        self.n_segments = math.ceil(settings.max_steps / settings.perturbation_interval)
        self.sign = 1.0 if objectives[0].direction is Direction.MINIMIZE else -1.0

    def segment_steps(self, generation: int) -> tuple[int, int]:
        interval = self.settings.perturbation_interval
        return generation * interval, min((generation + 1) * interval, self.settings.max_steps)

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        members = _population(context.history)
        suggestions: list[Suggestion] = []
        index = context.sequence
        while len(suggestions) < count:
            rng = np.random.default_rng([self.seed, index])
            if index < self.settings.population_size:
                segment, params = self._segment(index, 0, START), self.space.from_unit(rng.random(len(self.space)))
            else:
                proposal = self._next(members, rng)
                if proposal is None:
                    break  # every member is running, finished or stopped: ask again when one finishes
                segment, params = proposal
            suggestions.append(Suggestion(params, budget=float(segment.end_step), metadata={KEY: segment.to_metadata()}))
            # Later proposals of this ask see this member as running.
            members.setdefault(segment.member, _Member(segment.member, {})).tries.setdefault(
                segment.generation, []).append(TrialView(-1, TrialState.QUEUED, params))
            index += 1
        return suggestions

    # --- decisions -------------------------------------------------------------------------

    def _segment(self, member: int, generation: int, decision: str, **parent: Any) -> Segment:
        start, end = self.segment_steps(generation)
        return Segment(member, generation, start, end, generation == self.n_segments - 1, decision, **parent)

    def _next(self, members: dict[int, _Member], rng: np.random.Generator) -> tuple[Segment, dict[str, Value]] | None:
        ready = []
        for member in members.values():
            if member.busy:
                continue
            generation = member.generation
            if member.completed(generation) is not None:
                if generation + 1 < self.n_segments:
                    ready.append((generation + 1, member.index, member))
            elif len({_index(t) for t in member.tries[generation]}) < _MAX_REDOS:
                ready.append((generation, member.index, member))
        if not ready:
            return None
        generation, _, member = min(ready, key=lambda r: r[:2])
        if generation > member.generation:
            return self._continue_or_exploit(members, member, generation - 1, rng)
        return self._redo(members, member, generation, rng)

    def _continue_or_exploit(self, members: dict[int, _Member], member: _Member, done: int,
                             rng: np.random.Generator) -> tuple[Segment, dict[str, Value]]:
        own = member.completed(done)
        top, bottom = self._quantiles(members, done)
        if member.index not in bottom:
            segment = self._segment(member.index, done + 1, CONTINUE, parent_trial_id=own.id,
                                    parent_member=member.index)
            return segment, dict(own.params)
        return self._exploit(members, member.index, done + 1, EXPLOIT, top, done, rng)

    def _redo(self, members: dict[int, _Member], member: _Member, generation: int,
              rng: np.random.Generator) -> tuple[Segment, dict[str, Value]]:
        if generation == 0:
            return self._segment(member.index, 0, REDO), self.space.from_unit(rng.random(len(self.space)))
        top, _ = self._quantiles(members, generation - 1)
        if not top:  # fewer than 2 peers: the best one that completed the generation before
            top = [min((m for m in members.values() if m.completed(generation - 1) is not None),
                       key=lambda m: (self._loss(m.completed(generation - 1)), m.index)).index]
        return self._exploit(members, member.index, generation, REDO, top, generation - 1, rng)

    def _exploit(self, members: dict[int, _Member], member: int, generation: int, decision: str,
                 top: Sequence[int], donor_generation: int, rng: np.random.Generator
                 ) -> tuple[Segment, dict[str, Value]]:
        donor = members[top[int(rng.integers(len(top)))]]
        donor_trial = donor.completed(donor_generation)
        params, explored = self._explore(donor_trial.params, rng)
        segment = self._segment(member, generation, decision, parent_trial_id=donor_trial.id,
                                parent_member=donor.index, donor_value=donor_trial.values[0], explored=explored)
        return segment, params

    def _loss(self, trial: TrialView) -> tuple[bool, float]:
        # In a constrained study a member that violates a constraint ranks below every feasible one.
        return not trial.feasible, self.sign * trial.values[0]

    def _quantiles(self, members: dict[int, _Member], generation: int) -> tuple[list[int], set[int]]:
        """The top and bottom members among those that completed ``generation``."""
        ranked = sorted((self._loss(trial), m.index) for m in members.values()
                        if (trial := m.completed(generation)) is not None)
        k = min(math.ceil(self.settings.quantile_fraction * len(ranked)), len(ranked) // 2)
        if k == 0:
            return [], set()
        return [m for _, m in ranked[:k]], {m for _, m in ranked[-k:]}

    # --- explore ---------------------------------------------------------------------------

    def _explore(self, params: Mapping[str, Value], rng: np.random.Generator
                 ) -> tuple[dict[str, Value], dict[str, str]]:
        """``params`` perturbed or resampled; a parameter that becomes active is drawn from its prior."""
        out: dict[str, Value] = {}
        explored: dict[str, str] = {}
        # One draw of each kind per parameter, whatever happens to it, so that a parameter's
        # fate never shifts another's random numbers.
        draws = rng.random((len(self.space), 3))
        for parameter, (resample, direction, u) in zip(self.space, draws):
            if not self.space.active(parameter, out):
                continue
            name = parameter.name
            if name not in params:
                out[name], explored[name] = parameter.domain.from_unit(float(u)), "new"
            elif name not in self.mutable:
                out[name] = params[name]
            elif resample < self.settings.resample_probability:
                out[name], explored[name] = parameter.domain.from_unit(float(u)), "resampled"
            else:
                out[name], explored[name] = self._perturb(parameter, params[name], up=direction < 0.5)
        return out, explored

    def _perturb(self, parameter: Parameter, value: Value, up: bool) -> tuple[Value, str]:
        domain = parameter.domain
        if isinstance(domain, CategoricalDomain):
            choices = domain.choices
            here = next(i for i, c in enumerate(choices) if same_value(c, value))
            step = 1 if up else -1
            there = here + step if 0 <= here + step < len(choices) else here - step
            return choices[min(max(there, 0), len(choices) - 1)], "neighbour"
        factor = self.settings.perturb_up if up else self.settings.perturb_down
        how = f"x{factor:g}"
        if isinstance(domain, FloatDomain):
            moved = min(max(value * factor, domain.low), domain.high)
            if domain.step is not None:
                k = min(round((moved - domain.low) / domain.step), domain.n_steps - 1)
                moved = min(domain.low + k * domain.step, domain.high)
            return float(moved), how
        if isinstance(domain, IntDomain):
            step = domain.step or 1
            moved = round(value * factor)
            # Small integers (and negative ones) must still move, in the factor's direction.
            if up and moved <= value:
                moved = value + step
            elif not up and moved >= value:
                moved = value - step
            top = domain.high if domain.log else domain.low + (domain.high - domain.low) // step * step
            if not domain.log:
                moved = domain.low + round((moved - domain.low) / step) * step
            return int(min(max(moved, domain.low), top)), how
        return value, how  # FixedDomain: never mutable


def _index(trial: TrialView) -> int:
    """The proposal a trial came from (a retry keeps its original's metadata, so its index)."""
    return int(trial.metadata.get("index", trial.number))


def _population(history: Sequence[TrialView]) -> dict[int, _Member]:
    members: dict[int, _Member] = {}
    for trial in history:
        segment = Segment.from_metadata(trial.metadata)
        if segment is None:
            continue
        member = members.setdefault(segment.member, _Member(segment.member, {}))
        member.tries.setdefault(segment.generation, []).append(trial)
    return members


def _mutable(space: SearchSpace, names: str, field: str) -> frozenset[str]:
    """The parameters explore may change: ``names`` (comma-separated), or every non-fixed one."""
    if not names.strip():
        return frozenset(p.name for p in space if not isinstance(p.domain, FixedDomain))
    chosen = [n.strip() for n in names.split(",")]
    by_name = {p.name: p for p in space}
    for name in chosen:
        if name not in by_name:
            raise InvalidArgument(field, f"{name!r} is not a parameter of the study (known: {', '.join(by_name)})")
        if isinstance(by_name[name].domain, FixedDomain):
            raise InvalidArgument(field, f"{name!r} is fixed and cannot be mutated")
    return frozenset(chosen)
