"""Random, quasi-random and grid search in particular (pure: no server, no database); the contract
every algorithm honours is tests/contracts/test_algorithm_contract.py."""

from __future__ import annotations

import pytest

from suggestion_service.algorithms import make_algorithm, validate_algorithm
from suggestion_service.algorithms.base import SuggestContext
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Fidelity, Objective, StudySpec

FINITE = SearchSpace((
    Int("depth", 1, 4),
    Float("lr", 0.1, 0.3, step=0.1),
    Categorical("booster", ["gbtree", "dart", True]),
    Int("drop", 1, 3, when={"booster": ["dart"]}),
    Fixed("seed", 7),
))
CONTINUOUS = SearchSpace((
    Float("lr", 1e-4, 1.0, log=True),
    Float("x", -3.0, 3.0),
    Int("n", 1, 1000, log=True),
    Categorical("booster", ["gbtree", "dart"]),
    Float("rate", 0.0, 0.5, when={"booster": "dart"}),
))


def spec(name: str, space: SearchSpace, seed: int = 5, **settings) -> StudySpec:
    fidelity = Fidelity("rounds", 1, 27) if name == "bohb" else None  # bohb needs one
    return StudySpec(space, (Objective("loss", Direction.MINIMIZE),), AlgorithmSpec(name, settings), seed=seed,
                     fidelity=fidelity)


def propose(study: StudySpec, start: int, count: int, pending=()) -> list[dict]:
    algorithm = make_algorithm(study)
    context = SuggestContext(study.space, study.objectives, sequence=start, pending=pending)
    return [s.params for s in algorithm.suggest(context, count)]


def test_grid_enumerates_each_point_once_respecting_conditions():
    algorithm = make_algorithm(spec("grid", FINITE))
    # depth(4) x lr(3) x (gbtree + True + dart x drop(3)) = 12 x 5
    assert algorithm.capacity() == 60
    points = propose(spec("grid", FINITE), 0, 100)
    assert len(points) == 60
    assert len({tuple(sorted(p.items(), key=str)) for p in points}) == 60
    shuffled = propose(spec("grid", FINITE, shuffle=True), 0, 100)
    assert shuffled != points and sorted(map(str, shuffled)) == sorted(map(str, points))


def test_grid_refuses_continuous_and_huge_spaces():
    with pytest.raises(InvalidArgument) as error:
        validate_algorithm(spec("grid", CONTINUOUS))
    assert error.value.field == "spec.parameters[0].float_range.step"
    huge = SearchSpace(tuple(Int(f"p{i}", 1, 100) for i in range(4)))
    with pytest.raises(InvalidArgument, match="more than"):
        validate_algorithm(spec("grid", huge))


def test_quasi_random_covers_the_unit_interval_evenly():
    space = SearchSpace((Float("x", 0.0, 1.0),))
    xs = sorted(p["x"] for p in propose(spec("quasi_random", space), 0, 64))
    # 64 Sobol points: one in every 1/64-wide bin.
    assert [int(x * 64) for x in xs] == list(range(64))


def test_log_scales_spread_over_orders_of_magnitude():
    space = SearchSpace((Float("lr", 1e-5, 1.0, log=True), Int("n", 1, 10000, log=True)))
    proposals = propose(spec("random", space), 0, 400)
    assert sum(p["lr"] < 1e-3 for p in proposals) > 100
    assert sum(p["n"] < 100 for p in proposals) > 100
    assert min(p["n"] for p in proposals) >= 1 and max(p["n"] for p in proposals) <= 10000
