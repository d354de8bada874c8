"""BOHB (Falkner et al., 2018): TPE fitted at the largest budget with enough data.

Scheduling is the Hyperband pruner's job (declare ``pruner: hyperband`` and a fidelity);
this class decides *what* to try. Trials are compared at a budget b: a trial "reached" b
if it completed (at its full budget) or reported at a step >= b before being stopped. The
model uses the largest b that at least ``min_points_in_model`` trials reached (default:
the number of parameters + 1), each trial contributing its value there (the final value,
or its last report when it was stopped). Below that amount of data, TPE's own start-up
(quasi-random) applies. Pending trials stay in the history, so the constant liar works as
in TPE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from suggestion_service.algorithms.base import SuggestContext, Suggestion, TrialView
from suggestion_service.algorithms.tpe import TPE
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument

_PENDING = (TrialState.ACTIVE, TrialState.QUEUED)


class BOHB(TPE):
    name = "bohb"
    # TPE's use of prior studies has not been measured at several budgets: refused, not inherited.
    uses_priors = False

    @dataclass(frozen=True)
    class Settings(TPE.Settings):
        # 0: the number of parameters + 1.
        min_points_in_model: int = 0

    @classmethod
    def check_settings(cls, settings, field):
        super().check_settings(settings, field)
        if settings.min_points_in_model < 0:
            raise InvalidArgument(f"{field}.min_points_in_model", "must be 0 (automatic) or more")

    @classmethod
    def check_objectives(cls, objectives, field="spec.objectives"):
        # Budgets are compared through early-stopped trials' last reports, and early stopping
        # needs exactly one objective.
        if len(objectives) != 1:
            raise InvalidArgument(
                field, f"bohb optimises exactly one objective, got {len(objectives)}; "
                       "use 'tpe' (MOTPE) for multi-objective studies"
            )

    @classmethod
    def check_fidelity(cls, fidelity, field="spec.fidelity"):
        if fidelity is None:
            raise InvalidArgument(field, "bohb needs a fidelity (and usually the hyperband pruner)")

    def at_largest_budget(self, history: tuple[TrialView, ...] | list[TrialView]) -> tuple[float | None, list]:
        """The budget the model is fitted at and the history rewritten as observations there."""
        reached: list[tuple[float, TrialView, tuple[float, ...]]] = []
        for trial in history:
            if trial.state is TrialState.COMPLETED and trial.values is not None:
                reached.append((trial.budget if trial.budget is not None else float("inf"), trial, trial.values))
            elif trial.state is TrialState.PRUNED and trial.last_step is not None and trial.last_values:
                reached.append((trial.last_step, trial, trial.last_values))
        needed = self.settings.min_points_in_model or len(self.space) + 1
        budgets = sorted({b for b, _, _ in reached}, reverse=True)
        chosen = next((b for b in budgets if sum(r >= b for r, _, _ in reached) >= needed), None)
        if chosen is None:
            return None, list(history)
        observations = [
            replace(trial, state=TrialState.COMPLETED, values=values)
            for budget, trial, values in reached if budget >= chosen
        ]
        pending = [t for t in history if t.state in _PENDING]
        return chosen, sorted(observations + pending, key=lambda t: t.number)

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        budget, history = self.at_largest_budget(context.history)
        suggestions = super().suggest(replace(context, history=tuple(history)), count)
        if budget is None:
            return suggestions
        return [replace(s, metadata={**s.metadata, "model_budget": budget}) for s in suggestions]
