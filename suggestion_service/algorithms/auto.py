"""``auto``: picks GP or TPE per ask from the study and its history, then delegates.

The choice is a pure function of the space, the objectives, the constraints and the number
of completed trials in ``SuggestContext.history``, all of which the service rebuilds from the
database on every ask, so a restarted replica makes the same choice (the module docstring of
``base`` gives the state rules). The delegate gets the same seed and the same context, so
while the choice stays the same the sequence is exactly the delegate's own.

Why these rules (docs/ALGORITHMS.md "How `auto` chooses" cites the tables): our GP has the
best mean rank at 30, 60 and 100 trials on both benchmark suites of docs/BENCHMARKS.md,
including the mixed, conditional and purely categorical (NAS-Bench-201) problems, so it is
the choice while a suggestion is cheap. Past ``gp_max_history`` completed trials the GP
conditions on ``max_observations`` of them only, yet costs ~0.4 s per suggestion under the
study's lock, where TPE costs ~5 ms and uses every trial.
"""

from __future__ import annotations

from dataclasses import dataclass

from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion
from suggestion_service.algorithms.gp import GaussianProcessBO
from suggestion_service.algorithms.tpe import TPE
from suggestion_service.domain.trial import TrialState
from tuning_common.errors import InvalidArgument
from tuning_types.space import CategoricalDomain, FloatDomain, SearchSpace


def describe_space(space: SearchSpace) -> str:
    """"conditional", "categorical", "discrete", "continuous" or "mixed" (the words the reason uses)."""
    if any(p.condition is not None for p in space):
        return "conditional"
    free = [p for p in space if not p.is_fixed]
    continuous = [isinstance(p.domain, FloatDomain) and p.domain.step is None for p in free]
    if free and all(isinstance(p.domain, CategoricalDomain) for p in free):
        return "categorical"
    if not any(continuous):
        return "discrete"
    return "continuous" if all(continuous) else "mixed"


class Auto(Algorithm):
    """GP while the history is small enough for a cheap suggestion, TPE beyond."""

    name = "auto"
    uses_history = True
    model_based = True
    # Both delegates learn from prior studies; the context (priors included) goes to the chosen one.
    uses_priors = True

    @dataclass(frozen=True)
    class Settings:
        # Completed trials from which on TPE replaces the GP (see the module docstring).
        gp_max_history: int = 1000

    @classmethod
    def check_settings(cls, settings, field):
        if not 10 <= settings.gp_max_history <= 100_000:
            raise InvalidArgument(f"{field}.gp_max_history",
                                  f"must be between 10 and 100000, got {settings.gp_max_history}")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delegates: dict[str, Algorithm] = {
            cls.name: cls(self.space, self.objectives, cls.Settings(), self.seed) for cls in (GaussianProcessBO, TPE)
        }

    def choose(self, context: SuggestContext) -> tuple[str, str]:
        """The delegate's name and why, from the stored study and history alone."""
        completed = sum(1 for t in context.history if t.state is TrialState.COMPLETED and t.values is not None)
        limit = self.settings.gp_max_history
        facts = [f"{describe_space(self.space)} space"]
        if len(self.objectives) > 1:
            facts.append(f"{len(self.objectives)} objectives")
        if context.constraints:
            facts.append(f"{len(context.constraints)} constraint{'s' * (len(context.constraints) > 1)}")
        if completed >= limit:
            return "tpe", f"{completed} completed trials >= {limit}: GP suggestions too costly, TPE uses them all"
        return "gp", f"{', '.join(facts)}, {completed} completed trials < {limit}: GP ranks best on our benchmarks"

    def suggest(self, context: SuggestContext, count: int) -> list[Suggestion]:
        choice, reason = self.choose(context)
        suggestions = self.delegates[choice].suggest(context, count)
        out = []
        for s in suggestions:
            # The service records "algorithm": "auto"; the delegate's own name goes to auto_choice.
            metadata = {k: v for k, v in s.metadata.items() if k != "algorithm"}
            out.append(Suggestion(s.params, s.budget, {**metadata, "auto_choice": choice, "auto_reason": reason}))
        return out
