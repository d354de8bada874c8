"""BOHB fits TPE at the largest budget enough trials reached."""

from __future__ import annotations

import pytest

from suggestion_service.algorithms import make_algorithm, validate_algorithm
from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Float
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Fidelity, Objective, StudySpec

SPACE = SearchSpace((Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)))
OBJECTIVES = (Objective("loss", Direction.MINIMIZE),)


def bohb(**settings):
    spec = StudySpec(SPACE, OBJECTIVES, AlgorithmSpec("bohb", settings), seed=3, fidelity=Fidelity("r", 1, 27))
    validate_algorithm(spec)
    return make_algorithm(spec)


def pruned(number: int, step: float, value: float) -> TrialView:
    return TrialView(number, TrialState.PRUNED, {"x": number / 40, "y": 0.5}, None, 27.0, step, (value,))


def completed(number: int, value: float) -> TrialView:
    return TrialView(number, TrialState.COMPLETED, {"x": number / 40, "y": 0.5}, (value,), 27.0, 27.0, (value,))


def test_the_model_uses_the_largest_budget_with_enough_trials():
    history = [pruned(i, 1, 1.0 + i) for i in range(10)]  # 10 stopped at the first rung
    history += [pruned(10 + i, 3, 0.5 + i) for i in range(2)] + [completed(12, 0.2)]
    running = TrialView(13, TrialState.ACTIVE, {"x": 0.1, "y": 0.1})
    budget, views = bohb().at_largest_budget([*history, running])
    # Needed: 3 points (2 parameters + 1); 3 trials reached 3 rounds, only 1 reached 27.
    assert budget == 3
    assert [v.number for v in views] == [10, 11, 12, 13]
    assert [v.values for v in views[:3]] == [(0.5,), (1.5,), (0.2,)]
    assert all(v.state is TrialState.COMPLETED for v in views[:3]) and views[3].state is TrialState.ACTIVE
    assert bohb(min_points_in_model=11).at_largest_budget(history)[0] == 1


def test_suggestions_say_which_budget_the_model_used():
    history = tuple(pruned(i, 9, (i / 40 - 0.3) ** 2) for i in range(30))
    [suggestion] = bohb(n_startup_trials=5).suggest(SuggestContext(SPACE, OBJECTIVES, 30, history=history), 1)
    assert suggestion.metadata["algorithm"] == "bohb" and suggestion.metadata["model_budget"] == 9
    assert suggestion.metadata["phase"] == "model"


def test_bohb_needs_a_fidelity():
    with pytest.raises(InvalidArgument) as error:
        validate_algorithm(StudySpec(SPACE, OBJECTIVES, AlgorithmSpec("bohb"), seed=1))
    assert error.value.field == "spec.fidelity"
