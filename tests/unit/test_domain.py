"""Search space, spec encoding and best-trial ranking."""

from __future__ import annotations

from dataclasses import replace

import pytest

from suggestion_service.domain.codec import canonical, spec_from_dict, spec_to_dict, specs_match
from suggestion_service.domain.ranking import best_trials
from suggestion_service.domain.trial import Trial, TrialSource, TrialState, check_metrics
from suggestion_service.domain.webhook import improves
from trial_worker.space import Categorical, Fixed, Float
from tuning_common.errors import InvalidArgument
from tuning_types.space import FloatDomain, IntDomain, SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Objective, RetryPolicy, StudySpec

SPACE = SearchSpace((
    Categorical("booster", ["gbtree", "dart"]),
    Float("rate", 0.0, 0.5, when={"booster": "dart"}),
    Categorical("flag", [True, 1, "1"]),
    Fixed("seed", 42),
))


def test_complete_fills_fixed_values_and_checks_conditions():
    assert SPACE.complete({"booster": "gbtree", "flag": 1}) == {"booster": "gbtree", "flag": 1, "seed": 42}
    with pytest.raises(InvalidArgument) as error:
        SPACE.complete({"booster": "gbtree", "flag": 1, "rate": 0.1})
    assert error.value.field == "parameters[rate]" and "inactive" in error.value.description
    with pytest.raises(InvalidArgument) as error:
        SPACE.complete({"booster": "dart", "flag": 1})
    assert error.value.field == "parameters[rate]"
    with pytest.raises(InvalidArgument):
        SPACE.complete({"booster": "gbtree", "flag": 1, "seed": 43})


def test_values_keep_their_type():
    # True, 1 and "1" are three different choices.
    assert SPACE.complete({"booster": "gbtree", "flag": True})["flag"] is True
    domain = SPACE.parameters[2].domain
    assert domain.contains(1) and domain.contains(True) and not domain.contains(1.0)


@pytest.mark.parametrize("u", [0.0, 0.25, 0.5, 0.999999, 1.0])
def test_unit_mapping_stays_in_range(u):
    assert 0.0 <= FloatDomain(0.0, 1.0, step=0.3).from_unit(u) <= 0.9 + 1e-9
    assert 1 <= IntDomain(1, 7, log=True).from_unit(u) <= 7
    assert IntDomain(0, 10, step=5).from_unit(u) in (0, 5, 10)
    assert 1e-3 <= FloatDomain(1e-3, 1.0, log=True).from_unit(u) <= 1.0


def test_spec_encoding_round_trips_and_is_type_exact():
    spec = StudySpec(SPACE, (Objective("f1", Direction.MAXIMIZE),), AlgorithmSpec("grid", {"shuffle": True}),
                     seed=9, max_trials=50, max_parallel_trials=4, lease_seconds=30.0, retry_policy=RetryPolicy(1, True))
    assert spec_from_dict(spec_to_dict(spec)) == spec
    other = StudySpec(SearchSpace((Categorical("flag", [1]),)), spec.objectives)
    same_but_bool = StudySpec(SearchSpace((Categorical("flag", [True]),)), spec.objectives)
    assert canonical(other) != canonical(same_but_bool)
    assert specs_match(spec, spec.with_seed(None)) and not specs_match(spec, spec.with_seed(10))


def _trial(number: int, **metrics: float) -> Trial:
    return Trial(number, 1, "s", number, TrialState.COMPLETED, TrialSource.ALGORITHM, {}, None, "", None, 0, None,
                 tuple(metrics.items()), "", None, None, 0, 0, 0)


def test_best_trial_single_objective_prefers_the_earliest_on_ties():
    trials = [_trial(0, loss=2.0), _trial(1, loss=1.0), _trial(2, loss=1.0)]
    assert [t.number for t in best_trials(trials, [Objective("loss", Direction.MINIMIZE)]).trials] == [1]
    assert [t.number for t in best_trials(trials, [Objective("loss", Direction.MAXIMIZE)]).trials] == [0]


def test_pareto_set_with_mixed_directions():
    objectives = [Objective("loss", Direction.MINIMIZE), Objective("acc", Direction.MAXIMIZE)]
    trials = [_trial(0, loss=1, acc=0.9), _trial(1, loss=2, acc=0.9), _trial(2, loss=0.5, acc=0.5),
              _trial(3, loss=1, acc=0.9)]
    # Equal points do not dominate each other; both stay.
    assert [t.number for t in best_trials(trials, objectives).trials] == [0, 2, 3]


def test_metrics_are_checked():
    assert check_metrics("m", [("a", 1)], required=True) == (("a", 1.0),)
    for bad, field in [([("a", float("nan"))], "m[0].value"), ([("a", 1), ("a", 2)], "m[1].name"),
                       ([("", 1)], "m[0].name")]:
        with pytest.raises(InvalidArgument) as error:
            check_metrics("m", bad, required=False)
        assert error.value.field == field
    with pytest.raises(InvalidArgument):
        check_metrics("m", [], required=True)


def test_the_derived_reference_point_falls_back_when_the_range_is_zero():
    objectives = [Objective("a", Direction.MINIMIZE), Objective("b", Direction.MAXIMIZE)]
    # One trial: no range; a's worst 2.0 gets 10% of its magnitude, b's worst 0.0 gets 1.
    best = best_trials([_trial(0, a=2.0, b=0.0)], objectives)
    assert best.reference_point == pytest.approx((2.2, -1.0))
    assert best.hypervolume == pytest.approx(0.2 * 1.0)
    given = [Objective("a", Direction.MINIMIZE, 5.0), Objective("b", Direction.MAXIMIZE, -3.0)]
    best = best_trials([_trial(0, a=2.0, b=0.0), _trial(1, a=1.0, b=-1.0)], given)
    assert best.reference_point == (5.0, -3.0) and best.hypervolume == pytest.approx(3 * 3 + 1 * 2)
    assert best_trials([_trial(0, a=2.0)], objectives[:1]).hypervolume is None


def _improves(metrics: dict[str, float], earlier: list, objectives, constraints=None) -> bool:
    trial = replace(_trial(9, **metrics), constraints=constraints)
    return improves(trial, [(tuple(m.items()), c) for m, c in earlier], StudySpec(SPACE, tuple(objectives)))


def test_best_improved_needs_a_strict_improvement_of_the_feasible_trials():
    loss = [Objective("loss", Direction.MINIMIZE)]
    assert _improves({"loss": 5.0}, [], loss)  # the first result is the first best
    assert _improves({"loss": 1.0}, [({"loss": 2.0}, None), ({"loss": 3.0}, None)], loss)
    assert not _improves({"loss": 2.0}, [({"loss": 2.0}, None)], loss)  # a tie
    assert not _improves({"loss": 2.5}, [({"loss": 2.0}, None)], loss)
    assert _improves({"loss": 2.5}, [({"loss": 2.0}, None)], [Objective("loss", Direction.MAXIMIZE)])
    # Infeasible trials neither are nor block a best; a trial without the objective's value is none.
    assert _improves({"loss": 2.5}, [({"loss": 2.0}, (0.5,))], loss, constraints=(0.0,))
    assert not _improves({"loss": 1.0}, [({"loss": 2.0}, None)], loss, constraints=(0.1,))
    assert not _improves({"other": 1.0}, [], loss)
    assert _improves({"loss": 2.5}, [({"other": 1.0}, None)], loss)


def test_best_improved_with_several_objectives_is_a_change_of_the_front():
    two = [Objective("loss", Direction.MINIMIZE), Objective("acc", Direction.MAXIMIZE)]
    front = [({"loss": 1.0, "acc": 0.8}, None), ({"loss": 2.0, "acc": 0.9}, None)]
    assert _improves({"loss": 0.5, "acc": 0.1}, front, two)  # a new trade-off
    assert _improves({"loss": 0.5, "acc": 0.95}, front, two)  # dominates everything
    assert not _improves({"loss": 1.5, "acc": 0.7}, front, two)  # dominated
    assert not _improves({"loss": 1.0, "acc": 0.8}, front, two)  # a front member's values again
