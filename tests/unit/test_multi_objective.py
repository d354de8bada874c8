"""Multi-objective pieces (pure, no server): the exact hypervolume against brute force, MOTPE's
good/bad split (fronts, hypervolume tie-breaking, constraints), MOTPE against random search on
ZDT1, and the contract on multi-objective studies for every algorithm."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from suggestion_service.algorithms import make_algorithm
from suggestion_service.algorithms.base import SuggestContext
from suggestion_service.algorithms.gp.multi_objective import RHO, scalarise
from suggestion_service.algorithms.tpe.constraints import total_violation
from suggestion_service.algorithms.tpe.multi_objective import reference_point, select_below
from suggestion_service.domain.hypervolume import hypervolume, pareto_mask
from tests.unit.sequential import run
from trial_worker.space import Float
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

TWO = (Objective("f1", Direction.MINIMIZE), Objective("f2", Direction.MINIMIZE))


def brute_force_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Sums the cells of the grid spanned by all coordinates that some point dominates."""
    points = points[np.all(points < reference, axis=1)]
    grids = [np.unique(np.append(points[:, k], reference[k])) for k in range(len(reference))]
    total = 0.0
    for cell in itertools.product(*(range(len(g) - 1) for g in grids)):
        low = np.array([g[i] for g, i in zip(grids, cell)])
        high = np.array([g[i + 1] for g, i in zip(grids, cell)])
        if np.any(np.all(points <= low, axis=1)):
            total += float(np.prod(high - low))
    return total


# -- hypervolume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_matches_brute_force_on_random_fronts(d):
    rng = np.random.default_rng(d)
    for trial in range(40):
        points = rng.normal(size=(int(rng.integers(1, 14)), d))
        if trial % 4 == 0:
            points = np.round(points, 1)  # ties and duplicates
        reference = np.full(d, 1.5) if trial % 2 else points.max(axis=0) + 0.1
        assert hypervolume(points, reference) == pytest.approx(brute_force_hypervolume(points, reference), rel=1e-12, abs=1e-12)


def test_hypervolume_edge_cases():
    reference = np.array([1.0, 1.0])
    assert hypervolume(np.zeros((0, 2)), reference) == 0.0
    assert hypervolume(np.array([[1.0, 0.0], [2.0, -1.0]]), reference) == 0.0  # nothing strictly inside
    assert hypervolume(np.array([[0.0, 0.0]]), reference) == 1.0
    assert hypervolume(np.array([[0.0, 0.5], [0.5, 0.0]]), reference) == pytest.approx(0.75)
    assert hypervolume(np.array([[0.0, 0.0, 0.0]]), np.array([1.0, 2.0, 3.0])) == 6.0
    with pytest.raises(ValueError, match="finite"):
        hypervolume(np.array([[0.0, 0.0]]), np.array([1.0, math.inf]))


def test_pareto_mask_keeps_duplicates_of_non_dominated_points():
    losses = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    assert pareto_mask(losses).tolist() == [True, True, True, False, True]


# -- MOTPE's split ---------------------------------------------------------------------------------


def test_whole_fronts_fill_the_good_group_in_order():
    # Front 0: rows 0, 1; front 1: rows 2, 3; front 2: row 4; row 5 is pending (NaN).
    losses = np.array([[0.0, 2.0], [2.0, 0.0], [1.0, 3.0], [3.0, 1.0], [4.0, 4.0], [np.nan, np.nan]])
    assert np.flatnonzero(select_below(losses, None, 2)).tolist() == [0, 1]
    assert np.flatnonzero(select_below(losses, None, 4)).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(select_below(losses, None, 6)).tolist() == [0, 1, 2, 3, 4]
    assert not select_below(losses, None, 0).any()


def test_a_front_that_does_not_fit_is_tie_broken_by_hypervolume_contribution():
    # One front; with room for two, the extremes plus nothing else lose to the knee: greedy takes
    # the point with the largest box first, then the one adding the most to it.
    front = np.array([[0.0, 10.0], [1.0, 1.0], [10.0, 0.0], [2.0, 0.9]])
    reference = reference_point(front)
    assert reference.tolist() == pytest.approx([11.0, 11.0])
    chosen = np.flatnonzero(select_below(front, None, 2)).tolist()
    best = max(itertools.combinations(range(4), 2), key=lambda c: hypervolume(front[list(c)], reference))
    assert chosen == sorted(best)
    assert 1 in chosen  # the knee (largest box) is the first greedy pick


def test_greedy_selection_matches_plain_greedy_on_random_fronts():
    rng = np.random.default_rng(7)
    for _ in range(20):
        angle = rng.random(15) * math.pi / 2
        front = np.column_stack([np.cos(angle), np.sin(angle)]) * -1.0  # a concave front, all non-dominated
        size = int(rng.integers(1, 14))
        reference = reference_point(front)
        picked: list[int] = []
        for _ in range(size):  # the plain greedy loop, evaluated from scratch
            gains = [hypervolume(front[picked + [i]], reference) if i not in picked else -1.0 for i in range(15)]
            picked.append(int(np.argmax(gains)))
        assert np.flatnonzero(select_below(front, None, size)).tolist() == sorted(picked)


def test_constrained_multi_objective_split_takes_feasible_fronts_then_least_violating():
    losses = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0], [0.5, 0.5], [9.0, 9.0]])
    constraints = [(2.0,), (-1.0,), (0.0,), (-0.5,), (0.5,), (-3.0,)]
    violation = np.array([total_violation(c) for c in constraints])
    # Feasible: 1, 2 (front 0), 3 (front 1), 5 (front 2); infeasible by violation: 4 (0.5), 0 (2.0).
    # The infeasible rows 0 and 4 dominate everything, yet never displace a feasible one.
    assert np.flatnonzero(select_below(losses, violation, 2)).tolist() == [1, 2]
    assert np.flatnonzero(select_below(losses, violation, 3)).tolist() == [1, 2, 3]
    assert np.flatnonzero(select_below(losses, violation, 5)).tolist() == [1, 2, 3, 4, 5]
    assert np.flatnonzero(select_below(losses, violation, 6)).tolist() == [0, 1, 2, 3, 4, 5]


# -- MOTPE on ZDT1 ---------------------------------------------------------------------------------

ZDT_SPACE = SearchSpace(tuple(Float(f"x{i}", 0.0, 1.0) for i in range(6)))


def zdt1(params) -> tuple[float, float]:
    x = np.array([params[f"x{i}"] for i in range(6)])
    g = 1.0 + 9.0 * x[1:].mean()
    return float(x[0]), float(g * (1.0 - math.sqrt(x[0] / g)))


def test_motpe_reaches_a_larger_hypervolume_than_random_search_on_zdt1():
    reference = np.array([1.1, 11.0])

    def final_hypervolume(name: str, seed: int) -> float:
        history = run(StudySpec(ZDT_SPACE, TWO, AlgorithmSpec(name, {}), seed=seed), 60, lambda p: (zdt1(p), None))
        return hypervolume(np.array([t.values for t in history]), reference)

    seeds = range(5)
    ours = [final_hypervolume("tpe", seed) for seed in seeds]
    baseline = [final_hypervolume("random", seed) for seed in seeds]
    assert np.mean(ours) > np.mean(baseline) + 0.5
    assert sum(o > b for o, b in zip(ours, baseline)) >= 4


def test_motpe_respects_directions():
    # Maximise f1 = x, minimise f2 = (x - 0.3)^2 + y: the front is x in [0.3, 1], y = 0.
    space = SearchSpace((Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)))
    objectives = (Objective("f1", Direction.MAXIMIZE), Objective("f2", Direction.MINIMIZE))
    study = StudySpec(space, objectives, AlgorithmSpec("tpe", {"n_startup_trials": 8}), seed=3)
    history = run(study, 50, lambda p: ((p["x"], (p["x"] - 0.3) ** 2 + p["y"]), None))
    late = history[25:]
    assert np.mean([t.params["y"] for t in late]) < 0.3  # random search: 0.5
    assert np.mean([t.params["x"] for t in late]) > 0.4  # minimising f1 instead would pull it to 0


# -- GP: ParEGO ---------------------------------------------------------------------------------------


def test_the_parego_scalarisation_is_augmented_chebyshev_on_normalised_values():
    losses = np.array([[0.0, 10.0], [2.0, 0.0], [1.0, 5.0]])
    z = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    weights = np.array([0.25, 0.75])
    expected = (z * weights).max(axis=1) + RHO * (z * weights).sum(axis=1)
    assert scalarise(losses, weights) == pytest.approx(expected)
    # A weakly dominated point scores worse than the one dominating it (the augmentation).
    # (0.5, 0.4) ties with (0.5, 0.2) on the Chebyshev term; the linear term breaks the tie.
    tied = scalarise(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2], [0.5, 0.4]]), np.array([0.5, 0.5]))
    assert tied[3] > tied[2]


def test_the_parego_scalarisation_is_normalised_by_the_front_so_dominated_outliers_do_not_skew_it():
    front = np.array([[0.0, 1.0], [0.5, 0.3], [1.0, -0.5]])
    weights = np.array([0.5, 0.5])
    alone = scalarise(front, weights)
    # A dominated trial far worse in f2 (a random start-up point) leaves the front's values as they were...
    with_outlier = scalarise(np.vstack([front, [0.9, 50.0]]), weights)
    assert with_outlier[:3] == pytest.approx(alone)
    assert with_outlier[3] > with_outlier[:3].max()
    # ...so equal weights still prefer the middle of the front, not the end with the smallest f1.
    assert np.argmin(with_outlier) == 1
    # A front of one point: the range over all trials stands in.
    single = scalarise(np.array([[0.0, 0.0], [1.0, 2.0]]), weights)
    assert single == pytest.approx([0.0, 0.5 + RHO * 1.0])


def test_gp_parego_reaches_a_larger_hypervolume_than_random_search_on_zdt1():
    space = SearchSpace(tuple(Float(f"x{i}", 0.0, 1.0) for i in range(4)))

    def problem(params):
        x = np.array([params[f"x{i}"] for i in range(4)])
        g = 1.0 + 9.0 * x[1:].mean()
        return (float(x[0]), float(g * (1.0 - math.sqrt(x[0] / g)))), None

    def final_hypervolume(name: str, seed: int, **settings) -> float:
        history = run(StudySpec(space, TWO, AlgorithmSpec(name, settings), seed=seed), 20, problem)
        return hypervolume(np.array([t.values for t in history]), np.array([1.1, 11.0]))

    for seed in (0, 1):
        assert final_hypervolume("gp", seed, n_startup_trials=8) > final_hypervolume("random", seed) + 1.0


def test_gp_parego_batches_draw_their_own_weights_and_say_so():
    space = SearchSpace((Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)))
    study = StudySpec(space, TWO, AlgorithmSpec("gp", {"n_startup_trials": 4}), seed=3)
    history = run(study, 6, lambda p: ((p["x"], (1 - p["x"]) ** 2 + p["y"]), None))
    context = SuggestContext(space, TWO, 6, history=tuple(history))
    batch = make_algorithm(study).suggest(context, 3)
    weights = [tuple(s.metadata["parego_weights"]) for s in batch]
    assert len(set(weights)) == 3 and all(sum(w) == pytest.approx(1.0) for w in weights)
    assert all(s.metadata["scalarisation"] == "parego" and "predicted_mean" not in s.metadata for s in batch)
    assert len({(s.params["x"], s.params["y"]) for s in batch}) == 3
    # The second proposal of a batch is the one asked for alone with the first one running.
    alone = make_algorithm(study).suggest(replace(context, sequence=7, pending=(batch[0].params,)), 1)
    assert alone[0].params == batch[1].params
