"""``auto``: its choice rules, and that it delegates faithfully (pure: no server, no database)."""

from __future__ import annotations

import pytest

from suggestion_service.algorithms import make_algorithm, validate_algorithm
from suggestion_service.algorithms.auto import describe_space
from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

CONTINUOUS = SearchSpace((Float("x", 0.0, 1.0), Float("y", -2.0, 2.0), Fixed("seed", 3)))
MINIMIZE = (Objective("loss", Direction.MINIMIZE),)


def spec(name: str = "auto", space: SearchSpace = CONTINUOUS, objectives=MINIMIZE, constraints=(), seed=3,
         **settings) -> StudySpec:
    return StudySpec(space, objectives, AlgorithmSpec(name, settings), seed=seed, constraints=constraints)


def loss(params) -> float:
    return (params["x"] - 0.3) ** 2 + (params["y"] - 0.5) ** 2


def history(n: int, *, n_values: int = 1, constraints: bool = False, extra_states=()) -> tuple[TrialView, ...]:
    """``n`` completed trials on a grid of CONTINUOUS, then one trial in each of ``extra_states``."""
    trials = []
    for i in range(n):
        params = {"x": (i * 0.37) % 1.0, "y": ((i * 0.61) % 1.0) * 4 - 2, "seed": 3}
        values = tuple(loss(params) + k * params["x"] for k in range(n_values))
        trials.append(TrialView(i, TrialState.COMPLETED, params, values,
                                constraints=(params["x"] - 0.5,) if constraints else None))
    for j, state in enumerate(extra_states):
        trials.append(TrialView(n + j, state, {"x": 0.5, "y": 0.0, "seed": 3}))
    return tuple(trials)


def context(study: StudySpec, past: tuple[TrialView, ...], sequence: int | None = None) -> SuggestContext:
    return SuggestContext(study.space, study.objectives, len(past) if sequence is None else sequence,
                          history=past, constraints=study.constraints)


def test_the_space_is_described_by_its_hardest_feature():
    assert describe_space(CONTINUOUS) == "continuous"
    assert describe_space(SearchSpace((Float("x", 0, 1), Int("n", 1, 5)))) == "mixed"
    assert describe_space(SearchSpace((Float("x", 0, 1, step=0.1), Int("n", 1, 5)))) == "discrete"
    assert describe_space(SearchSpace((Float("x", 0, 1, step=0.1), Categorical("k", ["a", "b"])))) == "discrete"
    assert describe_space(SearchSpace((Categorical("a", ["p", "q"]), Categorical("b", [1, 2]), Fixed("s", 1)))) \
        == "categorical"
    assert describe_space(SearchSpace((Categorical("k", ["a", "b"]), Float("r", 0, 1, when={"k": "b"})))) \
        == "conditional"


def test_gp_below_the_history_limit_and_tpe_from_it_on():
    algorithm = make_algorithm(spec(gp_max_history=20))
    choice, reason = algorithm.choose(context(spec(), history(19)))
    assert choice == "gp"
    assert reason.startswith("continuous space, 19 completed trials < 20")
    choice, reason = algorithm.choose(context(spec(), history(20)))
    assert choice == "tpe"
    assert reason.startswith("20 completed trials >= 20")


def test_only_completed_trials_with_values_count_toward_the_limit():
    algorithm = make_algorithm(spec(gp_max_history=20))
    past = history(19, extra_states=(TrialState.ACTIVE, TrialState.PRUNED, TrialState.FAILED, TrialState.QUEUED))
    assert algorithm.choose(context(spec(), past))[0] == "gp"


def test_the_reason_names_objectives_and_constraints():
    study = spec(objectives=MINIMIZE + (Objective("size", Direction.MAXIMIZE),), constraints=("c", "d"))
    choice, reason = make_algorithm(study).choose(context(study, ()))
    assert choice == "gp"
    assert reason.startswith("continuous space, 2 objectives, 2 constraints, 0 completed trials")


@pytest.mark.parametrize("n_completed, expected", [(12, "gp"), (25, "tpe")])
def test_it_delegates_with_the_same_seed_and_context_and_says_so(n_completed, expected):
    study = spec(gp_max_history=20)
    past = history(n_completed)
    # sequence 40: past the GP's quasi-random start-up, so its model is what gets compared.
    ctx = context(study, past, sequence=40)
    ours = make_algorithm(study).suggest(ctx, 3)
    theirs = make_algorithm(spec(expected)).suggest(ctx, 3)
    assert [s.params for s in ours] == [s.params for s in theirs]
    for mine, delegate in zip(ours, theirs):
        assert mine.metadata["auto_choice"] == expected
        assert mine.metadata["auto_reason"] == make_algorithm(study).choose(ctx)[1]
        # The service records "algorithm": "auto"; the rest is the delegate's own metadata.
        assert "algorithm" not in mine.metadata
        assert {k: v for k, v in delegate.metadata.items() if k != "algorithm"} == \
            {k: v for k, v in mine.metadata.items() if not k.startswith("auto_")}
    if expected == "gp":
        assert ours[0].metadata["phase"] == "model" and "predicted_mean" in ours[0].metadata


def test_a_study_switches_from_gp_to_tpe_and_a_fresh_instance_resumes_it_exactly():
    study = spec(gp_max_history=12)

    def run(restart_every: int) -> list[tuple[dict, str]]:
        past: list[TrialView] = []
        out = []
        algorithm = make_algorithm(study)
        for i in range(16):
            if i % restart_every == 0:  # as after a restart: nothing but the stored history
                algorithm = make_algorithm(study)
            [s] = algorithm.suggest(context(study, tuple(past)), 1)
            out.append((s.params, s.metadata["auto_choice"]))
            past.append(TrialView(i, TrialState.COMPLETED, s.params, (loss(s.params),), metadata=s.metadata))
        return out

    once = run(restart_every=100)
    assert [choice for _, choice in once] == ["gp"] * 12 + ["tpe"] * 4
    assert run(restart_every=1) == once


def test_multi_objective_and_constrained_studies_are_accepted_and_modelled():
    objectives = MINIMIZE + (Objective("size", Direction.MINIMIZE),)
    study = spec(objectives=objectives, constraints=("c",))
    validate_algorithm(study)
    past = history(14, n_values=2, constraints=True)
    [s] = make_algorithm(study).suggest(context(study, past, sequence=30), 1)
    assert CONTINUOUS.complete(s.params) == s.params
    assert s.metadata["auto_choice"] == "gp"
    assert s.metadata["scalarisation"] == "parego"
    assert 0.0 <= s.metadata["probability_of_feasibility"] <= 1.0
    assert s.metadata["auto_reason"].startswith("continuous space, 2 objectives, 1 constraint, 14 completed")


def test_the_history_limit_setting_is_checked():
    with pytest.raises(InvalidArgument) as error:
        validate_algorithm(spec(gp_max_history=5))
    assert error.value.field == "spec.algorithm.settings.gp_max_history"
    with pytest.raises(InvalidArgument, match="allowed: gp_max_history"):
        validate_algorithm(spec(n_startup_trials=3))
