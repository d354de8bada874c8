"""Constraints in the algorithms (pure, no server): the contract on constrained studies, the
GP's probability-of-feasibility model, TPE's feasibility ranking, and that GP and TPE steer
into the feasible region on a toy problem whose unconstrained optimum is infeasible."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import norm

from suggestion_service.algorithms import make_algorithm, validate_algorithm
from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.algorithms.gp.constraints import FeasibilityModel, feasible_rows, violations
from suggestion_service.algorithms.gp.model import GaussianProcess, fit_hyperparameters
from suggestion_service.algorithms.tpe.constraints import total_violation
from suggestion_service.algorithms.tpe.multi_objective import select_below
from tests.unit import sequential
from trial_worker.space import Categorical, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Fidelity, Objective, StudySpec

SQUARE = SearchSpace((Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)))
MIXED = SearchSpace((Float("x", 0.0, 1.0), Int("n", 1, 9), Categorical("kind", ["a", "b"])))
MINIMIZE = (Objective("loss", Direction.MINIMIZE),)


def toy(params) -> tuple[float, tuple[float]]:
    """Loss minimal at (0.2, 0.2), feasible only where x + y >= 1.2 (about a third of the square)."""
    x, y = params["x"], params["y"]
    return (x - 0.2) ** 2 + (y - 0.2) ** 2, (1.2 - x - y,)


# The feasible optimum: the closest point of the line x + y = 1.2 to (0.2, 0.2), i.e. (0.6, 0.6).
FEASIBLE_OPTIMUM = 2 * 0.4 ** 2


def spec(name: str, space=SQUARE, constraints=("c",), seed=4, **settings) -> StudySpec:
    return StudySpec(space, MINIMIZE, AlgorithmSpec(name, settings), seed=seed, constraints=tuple(constraints),
                     fidelity=Fidelity("rounds", 1, 27) if name == "bohb" else None)


def run(study: StudySpec, n_trials: int, problem=toy) -> list[TrialView]:
    return sequential.run(study, n_trials, problem)


def best_feasible(history) -> float:
    return min((t.values[0] for t in history if t.feasible), default=math.inf)


# -- GP and TPE on constrained studies (the contract every algorithm honours: tests/contracts) --------


@pytest.mark.parametrize("name", ["gp", "tpe"])
def test_gp_and_tpe_propose_when_no_trial_is_feasible_yet(name):
    history = run(spec(name, n_startup_trials=3), 6, problem=lambda p: (p["x"], (5.0 - p["x"],)))
    assert not any(t.feasible for t in history)  # nothing ever feasible: still a proposal per ask


def test_gp_refuses_ucb_in_a_constrained_study_naming_the_setting():
    with pytest.raises(InvalidArgument) as error:
        validate_algorithm(spec("gp", acquisition="ucb"))
    assert error.value.field == "spec.algorithm.settings.acquisition"
    validate_algorithm(spec("gp", constraints=(), acquisition="ucb"))  # fine without constraints


# -- GP: the feasibility model ---------------------------------------------------------------


def test_the_probability_of_feasibility_is_the_product_of_the_constraints_posteriors():
    rng = np.random.default_rng(1)
    X = rng.random((12, 2))
    C = np.column_stack([X[:, 0] - 0.5, 0.3 - X[:, 1]])
    model = FeasibilityModel.fit(X, C, lambda y, _: fit_hyperparameters(X, y, rng, n_restarts=0))
    query = rng.random((5, 2))
    expected = np.zeros(5)
    for gp, t in zip(model.gps, model.thresholds):
        mean, var = gp.predict(query)
        expected += norm.logcdf((t - mean) / np.sqrt(var))
    assert np.allclose(model.log_pof(query), expected)
    # Where the data say feasible the probability is high, where infeasible low.
    assert model.log_pof(np.array([[0.1, 0.9]]))[0] > math.log(0.8)
    assert model.log_pof(np.array([[0.9, 0.1]]))[0] < math.log(0.2)


def test_the_log_pof_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    X = rng.random((10, 3))
    C = np.column_stack([X.sum(1) - 1.5, X[:, 2] - 0.4])
    model = FeasibilityModel.fit(X, C, lambda y, _: fit_hyperparameters(X, y, rng, n_restarts=0))
    for x in rng.random((4, 3)):
        value, grad = model.log_pof_with_grad(x)
        assert value == pytest.approx(model.log_pof(x[None, :])[0])
        numeric = approx_fprime(x, lambda z: model.log_pof(z[None, :])[0], 1e-6)
        assert np.allclose(grad, numeric, rtol=1e-3, atol=1e-5)


def test_constant_constraint_values_still_give_a_model():
    X = np.random.default_rng(3).random((6, 2))
    rng = np.random.default_rng(0)
    model = FeasibilityModel.fit(X, np.full((6, 1), 2.0), lambda y, _: fit_hyperparameters(X, y, rng, n_restarts=0))
    assert isinstance(model.gps[0], GaussianProcess)
    assert model.log_pof(X)[0] < math.log(0.5)  # all observed infeasible


def test_feasible_rows_and_violations():
    C = np.array([[-1.0, 0.0], [0.5, -2.0], [1.0, 2.0]])
    assert feasible_rows(C).tolist() == [True, False, False]
    assert violations(C).tolist() == [0.0, 0.5, 3.0]


def test_gp_metadata_reports_the_probability_of_feasibility():
    history = run(spec("gp", n_startup_trials=4), 5)
    context = SuggestContext(SQUARE, MINIMIZE, 5, history=tuple(history), constraints=("c",))
    [s] = make_algorithm(spec("gp", n_startup_trials=4)).suggest(context, 1)
    assert 0.0 <= s.metadata["probability_of_feasibility"] <= 1.0
    assert s.metadata["acquisition"] in ("log_ei+log_pof", "log_pof")


# -- TPE: the ranking --------------------------------------------------------------------------


def test_tpe_ranks_feasible_trials_by_loss_then_infeasible_ones_by_violation():
    losses = np.array([[0.1], [5.0], [0.0], [math.nan], [3.0], [2.0]])
    constraints = [(1.0, 1.0), (-1.0, 0.0), (0.5, -3.0), (-1.0, -1.0), (-2.0, -2.0), None]
    violation = np.array([total_violation(c) for c in constraints])
    # feasible: #4 (3.0), #1 (5.0); infeasible: #2 (0.5), #0 (2.0), #5 (no values: infinite)
    order = [4, 1, 2, 0, 5]
    for n_below in range(1, 7):
        # A pending or bad trial (#3, NaN) never enters the good group.
        assert np.flatnonzero(select_below(losses, violation, n_below)).tolist() == sorted(order[:n_below])
    assert total_violation(None) == math.inf and total_violation((-1.0, 2.0, 0.5)) == 2.5


# -- steering into the feasible region ------------------------------------------------------------


# A GP suggestion costs about a second here (two GP fits and the polish), so it gets fewer runs.
@pytest.mark.parametrize(("name", "n_trials", "n_startup", "seeds"), [("gp", 20, 6, (4, 5)),
                                                                      ("tpe", 30, 8, (4, 5, 6, 7, 8))])
def test_constrained_search_concentrates_in_the_feasible_region_better_than_random(name, n_trials, n_startup, seeds):
    ours = [run(spec(name, seed=seed, n_startup_trials=n_startup), n_trials) for seed in seeds]
    baseline = [run(spec("random", seed=seed), n_trials) for seed in seeds]

    def share(runs) -> float:
        return float(np.mean([t.feasible for history in runs for t in history[n_startup:]]))

    assert share(ours) > share(baseline) + 0.2
    assert np.mean([best_feasible(h) for h in ours]) < np.mean([best_feasible(h) for h in baseline])
    # It is the constraint model that does it: unconstrained, the search heads for the infeasible optimum.
    unconstrained = run(spec(name, seed=4, constraints=(), n_startup_trials=n_startup), n_trials)
    assert share(ours) > np.mean([toy(t.params)[1][0] <= 0 for t in unconstrained[n_startup:]])
