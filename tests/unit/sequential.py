"""Runs an algorithm on a problem one trial at a time, as the service would (shared by the
constrained and multi-objective algorithm tests)."""

from __future__ import annotations

from collections.abc import Callable

from suggestion_service.algorithms import make_algorithm
from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.domain.trial import TrialState
from tuning_types.study import StudySpec


def run(study: StudySpec, n_trials: int, problem: Callable) -> list[TrialView]:
    """``problem(params)`` answers ``(values, constraints)``; ``values`` a number or a tuple."""
    algorithm = make_algorithm(study)
    history: list[TrialView] = []
    for i in range(n_trials):
        context = SuggestContext(study.space, study.objectives, i, history=tuple(history),
                                 constraints=study.constraints)
        [s] = algorithm.suggest(context, 1)
        values, constraints = problem(s.params)
        values = values if isinstance(values, tuple) else (values,)
        history.append(TrialView(i, TrialState.COMPLETED, s.params, values, constraints=constraints,
                                 metadata=s.metadata))
    return history
