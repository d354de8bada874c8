"""GP-BO: the algorithm contract, that it optimises, and the model's own pieces (pure, no server)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import norm

import suggestion_service.algorithms.gp as gp_module
from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.algorithms.gp import GaussianProcessBO
from suggestion_service.algorithms.gp.acquisition import evaluate, log_ei, log_h
from suggestion_service.algorithms.gp.encoding import NEUTRAL, Encoder
from suggestion_service.algorithms.gp.model import (
    GaussianProcess,
    _log_prior,
    fit_hyperparameters,
    length_scale_prior,
    neg_log_posterior,
    refit_hyperparameters,
)
from suggestion_service.algorithms.gp.warping import OutputWarp
from suggestion_service.algorithms.random_search import RandomSearch
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace, config_key
from tuning_types.study import Direction, Objective

MIXED = SearchSpace((
    Float("lr", 1e-4, 1.0, log=True),
    Float("x", -3.0, 3.0),
    Float("s", 0.0, 1.0, step=0.25),
    Int("n", 1, 1000, log=True),
    Int("k", 0, 10, step=2),
    Categorical("booster", ["gbtree", "dart", True]),
    Float("rate", 0.0, 0.5, when={"booster": "dart"}),
    Int("depth", 1, 3, when={"booster": ["dart", True]}),
    Fixed("seed", 7),
))
BRANIN = SearchSpace((Float("x1", -5.0, 10.0), Float("x2", 0.0, 15.0)))
MINIMIZE = (Objective("loss", Direction.MINIMIZE),)
MAXIMIZE = (Objective("score", Direction.MAXIMIZE),)


def mixed_loss(p) -> float:
    rate = p["rate"] if p["booster"] == "dart" else 0.5
    return ((math.log10(p["lr"]) + 2) ** 2 + (p["x"] - 1) ** 2 + p["s"]
            + abs(math.log(p["n"]) - 3) + p["k"] / 10 + rate)


def branin(x1: float, x2: float) -> float:
    return ((x2 - 5.1 / (4 * math.pi ** 2) * x1 ** 2 + 5 / math.pi * x1 - 6) ** 2
            + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)


def branin_loss(params) -> float:
    return branin(params["x1"], params["x2"])


def gp(space=MIXED, objectives=MINIMIZE, seed=3, **settings) -> GaussianProcessBO:
    return GaussianProcessBO(space, objectives, GaussianProcessBO.parse_settings(settings), seed)


def random_history(space, f, n_done: int, n_pending: int = 0, seed: int = 0) -> list[TrialView]:
    rng = np.random.default_rng(seed)
    history = []
    for i in range(n_done + n_pending):
        params = space.from_unit(rng.random(len(space)))
        if i < n_done:
            history.append(TrialView(i, TrialState.COMPLETED, params, (f(params),)))
        else:
            state = TrialState.ACTIVE if i % 2 else TrialState.QUEUED
            history.append(TrialView(i, state, params))
    history.append(TrialView(len(history), TrialState.FAILED, space.from_unit(rng.random(len(space)))))
    return history


def run(algorithm, space, f, n_trials: int) -> list[float]:
    """Sequential optimisation: one suggestion per step, told back at once (with its metadata, as the
    service stores it: the next fit starts from the stored one)."""
    history, values = [], []
    for i in range(n_trials):
        [s] = algorithm.suggest(SuggestContext(space, algorithm.objectives, i, history=tuple(history)), 1)
        value = f(s.params)
        values.append(value)
        history.append(TrialView(i, TrialState.COMPLETED, s.params, (value,), metadata=s.metadata))
    return values


# -- (1) the algorithm contract --------------------------------------------------------------


def test_batch_with_pending_trials_is_valid_distinct_and_deterministic():
    history = random_history(MIXED, mixed_loss, n_done=20, n_pending=3)
    context = SuggestContext(MIXED, MINIMIZE, sequence=24, history=tuple(history))
    suggestions = gp().suggest(context, 8)
    assert len(suggestions) == 8
    for s in suggestions:
        assert MIXED.complete(s.params) == s.params  # in range, on steps, inactive conditionals absent
        assert s.metadata["phase"] == "model" and "fallback" not in s.metadata
        assert s.metadata["algorithm"] == "gp" and s.metadata["seed"] == 3
        assert s.metadata["acquisition"] == "log_ei" and math.isfinite(s.metadata["acquisition_value"])
        assert s.metadata["predicted_std"] >= 0 and math.isfinite(s.metadata["predicted_mean"])
    pending = [t.params for t in history if t.state in (TrialState.ACTIVE, TrialState.QUEUED)]
    keys = [config_key(p) for p in pending + [s.params for s in suggestions]]
    assert len(set(keys)) == len(keys)
    # Kriging believer spreads the batch out instead of stacking near-copies of one point.
    X = Encoder(MIXED).encode_many([s.params for s in suggestions])
    gaps = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))[np.triu_indices(8, 1)]
    assert gaps.min() > 0.05
    again = gp().suggest(context, 8)
    assert [(s.params, s.metadata) for s in again] == [(s.params, s.metadata) for s in suggestions]


@pytest.mark.parametrize("space", [
    SearchSpace((Categorical("a", list("pqrst")), Categorical("b", list("pqrst")), Categorical("c", [1, 2, 3]))),
    SearchSpace((Int("n", 1, 9), Categorical("kind", ["x", "y"]))),
    SearchSpace((Categorical("kind", ["x", "y"]), Int("n", 1, 9, when={"kind": "x"}))),
], ids=["categorical", "int-and-categorical", "conditional-int"])
def test_the_model_proposes_in_spaces_without_continuous_parameters(space):
    """A space with nothing continuous to polish must still get model-based proposals, not the
    quasi-random fallback (a purely categorical space once failed every acquisition)."""
    def loss(p):
        return sum(hash((k, v)) % 7 for k, v in sorted(p.items())) / 7.0

    history = random_history(space, loss, n_done=15, n_pending=2)
    suggestions = gp(space).suggest(SuggestContext(space, MINIMIZE, sequence=18, history=tuple(history)), 3)
    for s in suggestions:
        assert space.complete(s.params) == s.params
        assert s.metadata["phase"] == "model" and "fallback" not in s.metadata, s.metadata


def test_startup_is_quasi_random_resumable_and_counts_are_honoured():
    algorithm = gp()
    assert algorithm.n_startup_trials == max(10, 2 * 8)  # 8 non-fixed parameters
    whole = algorithm.suggest(SuggestContext(MIXED, MINIMIZE, 0), 20)
    assert len(whole) == 20 and all(s.metadata["phase"] == "startup" for s in whole)
    for s in whole:
        assert MIXED.complete(s.params) == s.params
    first = [s.params for s in whole[:5]]
    rest = algorithm.suggest(SuggestContext(MIXED, MINIMIZE, 5, pending=first), 15)
    assert [s.params for s in rest] == [s.params for s in whole[5:]]
    assert gp(n_startup_trials=3).n_startup_trials == 3


def test_a_batch_crossing_the_end_of_start_up_mixes_phases():
    history = random_history(BRANIN, branin_loss, n_done=8)
    context = SuggestContext(BRANIN, MINIMIZE, sequence=8, history=tuple(history))
    suggestions = gp(BRANIN).suggest(context, 4)
    assert [s.metadata["phase"] for s in suggestions] == ["startup", "startup", "model", "model"]
    assert len({config_key(s.params) for s in suggestions}) == 4


def told(history: list[TrialView], suggestions, f) -> list[TrialView]:
    """``history`` plus the suggestions, completed, each with its metadata (as the service stores it)."""
    return history + [TrialView(len(history) + i, TrialState.COMPLETED, s.params, (f(s.params),), metadata=s.metadata)
                      for i, s in enumerate(suggestions)]


def stored_fits(n_done: int, n_proposals: int) -> list[tuple[str, int]]:
    """(fit, full_fit_index) of each of n_proposals sequential proposals after n_done random trials."""
    algorithm, encoder = gp(), Encoder(MIXED)
    history = random_history(MIXED, mixed_loss, n_done=n_done)[:-1]
    fits = []
    for _ in range(n_proposals):
        context = SuggestContext(MIXED, MINIMIZE, sequence=len(history), history=tuple(history))
        [s] = algorithm.suggest(context, 1)
        kernel = s.metadata["kernel"]
        assert len(kernel["length_scales"]) == encoder.dim and "constraints" not in kernel
        assert all(v > 0 and math.isfinite(v) for v in [*kernel["length_scales"], kernel["signal_variance"],
                                                         kernel["noise_variance"]])
        assert algorithm.suggest(context, 1) == [s]  # the stored fit is part of the context: same answer
        fits.append((kernel["fit"], kernel["full_fit_index"]))
        history = told(history, [s], mixed_loss)
    return fits


def test_the_fit_is_stored_and_warm_starts_the_next_one_with_a_full_fit_every_tenth():
    fits = stored_fits(100, 12)
    # No stored fit at first: a full one; then warm starts until the full fit is 10 proposals old.
    assert fits[0] == ("full", 100) and fits[10] == ("full", 110)
    assert all(index == 100 for _, index in fits[1:10]) and [f for f, _ in fits[1:10]].count("warm") >= 7
    assert all(index == 110 for _, index in fits[10:])


def test_early_in_a_study_full_fits_come_more_often():
    # Every tenth of the study's length: at proposal 20, every second one.
    assert [index for _, index in stored_fits(20, 5)] == [20, 20, 22, 22, 24]


def test_a_warm_fit_lands_where_a_full_fit_would():
    rng = np.random.default_rng(4)
    X = rng.random((40, 3))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.01 * rng.normal(size=40)
    y = (y - y.mean()) / y.std()
    full = fit_hyperparameters(X[:39], y[:39], rng, n_restarts=2)
    warm = refit_hyperparameters(X, y, full)  # one more observation
    assert warm is not None
    target = fit_hyperparameters(X, y, rng, n_restarts=2, warm_start=full)
    assert neg_log_posterior(warm, X, y)[0] == pytest.approx(neg_log_posterior(target, X, y)[0], abs=1e-3)


@pytest.mark.parametrize("kernel", [
    {"length_scales": [0.5, 0.5], "signal_variance": 1.0, "noise_variance": 1e-3, "fit": "full",
     "full_fit_index": 20},  # another space's: 2 columns
    {"length_scales": [float("nan")] * 11, "signal_variance": 1.0, "noise_variance": 1e-3, "full_fit_index": 20},
    {"length_scales": [0.5] * 11, "signal_variance": -1.0, "noise_variance": 1e-3, "full_fit_index": 20},
    {"length_scales": "long", "signal_variance": 1.0, "noise_variance": 1e-3, "full_fit_index": 20},
    {"length_scales": [0.5] * 11, "signal_variance": 1.0, "noise_variance": 1e-3},
    "not a mapping",
])
def test_a_stored_fit_that_does_not_suit_is_ignored(kernel):
    history = random_history(MIXED, mixed_loss, n_done=20)
    history[5] = TrialView(5, TrialState.COMPLETED, history[5].params, history[5].values, metadata={"kernel": kernel})
    [s] = gp().suggest(SuggestContext(MIXED, MINIMIZE, 21, history=tuple(history)), 1)
    assert "fallback" not in s.metadata
    assert s.metadata["kernel"]["fit"] == "full" and s.metadata["kernel"]["full_fit_index"] == 21


def test_a_constrained_fit_stores_each_constraints_kernel():
    space = BRANIN
    history = [TrialView(t.number, t.state, t.params, t.values, constraints=(t.params["x1"] - 2.0,))
               for t in random_history(space, branin_loss, n_done=40)[:-1]]
    first = SuggestContext(space, MINIMIZE, 40, history=tuple(history), constraints=("c",))
    [s] = gp(space).suggest(first, 1)
    assert len(s.metadata["kernel"]["constraints"]) == 1 and s.metadata["kernel"]["fit"] == "full"
    history.append(TrialView(40, TrialState.COMPLETED, s.params, (branin_loss(s.params),),
                             constraints=(s.params["x1"] - 2.0,), metadata=s.metadata))
    [s] = gp(space).suggest(SuggestContext(space, MINIMIZE, 41, history=tuple(history), constraints=("c",)), 1)
    assert s.metadata["kernel"]["full_fit_index"] == 40 and len(s.metadata["kernel"]["constraints"]) == 1


def test_fantasies_extend_the_factor_exactly_and_reuse_the_cross_covariance():
    rng = np.random.default_rng(5)
    X, y = rng.random((30, 2)), rng.normal(size=30)
    theta = np.array([-1.0, -0.5, 0.0, -5.0])
    model = GaussianProcess(X, y, theta)
    X_new = rng.random((3, 2))
    extended = model.with_fantasies(X_new, model.predict(X_new)[0])
    rebuilt = GaussianProcess(np.vstack([X, X_new]), np.concatenate([y, model.predict(X_new)[0]]), theta,
                              np.r_[np.zeros(30, dtype=bool), np.ones(3, dtype=bool)])
    query = rng.random((50, 2))
    cross = model.cross(query)
    for got in (extended.predict(query), extended.predict_at(cross)):
        np.testing.assert_allclose(got[0], rebuilt.predict(query)[0], atol=1e-9)
        np.testing.assert_allclose(got[1], rebuilt.predict(query)[1], atol=1e-9)
    np.testing.assert_allclose(model.predict_at(cross)[1], model.predict(query)[1])
    assert extended.predict(X_new)[1].max() < 1e-4 * extended.signal  # noise-free at the fantasies


# -- (2) it optimises, (3) in either direction -------------------------------------------------


def test_beats_random_search_on_branin():
    gp_best, random_best = [], []
    for seed in range(3):
        gp_best.append(min(run(gp(BRANIN, seed=seed), BRANIN, branin_loss, 30)))
        random_search = RandomSearch(BRANIN, MINIMIZE, RandomSearch.Settings(), seed)
        random_best.append(min(run(random_search, BRANIN, branin_loss, 30)))
    # Optimum 0.398. GP-BO gets within ~0.01 of it; 30 random points typically land at 1-3.
    assert np.mean(gp_best) < 0.6
    assert np.mean(gp_best) < 0.5 * np.mean(random_best)


def test_maximisation_is_respected():
    space = SearchSpace((Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)))

    def f(p):  # maximum 0 at (0.3, 0.7)
        return -((p["x"] - 0.3) ** 2 + (p["y"] - 0.7) ** 2)

    algorithm = gp(space, MAXIMIZE, seed=1, n_startup_trials=6)
    values = run(algorithm, space, f, 20)
    assert max(values) > -1e-3
    assert max(values[6:]) > max(values[:6])
    history = [TrialView(i, TrialState.COMPLETED, {"x": x, "y": y}, (f({"x": x, "y": y}),))
               for i, (x, y) in enumerate(np.random.default_rng(0).random((12, 2)))]
    [s] = algorithm.suggest(SuggestContext(space, MAXIMIZE, 12, history=tuple(history)), 1)
    # Predictions are in the objective's own units and direction: scores near the maximum, <= 0.
    assert -0.1 < s.metadata["predicted_mean"] < 0.02


# -- (4) the model -----------------------------------------------------------------------------


def test_posterior_interpolates_noiseless_data():
    rng = np.random.default_rng(0)
    X = np.sort(rng.random(12))[:, None]
    y = np.sin(6 * X[:, 0])
    y = (y - y.mean()) / y.std()
    theta = fit_hyperparameters(X, y, rng, n_restarts=2)
    model = GaussianProcess(X, y, theta)
    mean, var = model.predict(X)
    assert np.max(np.abs(mean - y)) < 0.05
    assert np.max(var) < 0.01 * model.signal
    far = np.array([[1.5]])  # outside the data: back towards the prior
    between = ((X[:-1] + X[1:]) / 2)[np.argmax(np.diff(X[:, 0]))][None, :]  # middle of the widest gap
    assert model.predict(far)[1][0] > 0.5 * model.signal
    assert model.predict(between)[1][0] > 10 * np.max(var)


def test_likelihood_and_posterior_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    X, y = rng.random((15, 3)), rng.normal(size=15)
    theta = np.array([-1.0, 0.0, 0.5, 0.2, -3.0])
    _, grad = neg_log_posterior(theta, X, y)
    numeric = approx_fprime(theta, lambda t: neg_log_posterior(t, X, y)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)

    model = GaussianProcess(X, y, theta)
    x = rng.random(3)
    mean, var, dmean, dvar = model.predict_with_grad(x)
    assert mean == pytest.approx(model.predict(x[None])[0][0]) and var == pytest.approx(model.predict(x[None])[1][0])
    np.testing.assert_allclose(dmean, approx_fprime(x, lambda z: model.predict(z[None])[0][0], 1e-7), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(dvar, approx_fprime(x, lambda z: model.predict(z[None])[1][0], 1e-7), rtol=1e-4,
                               atol=1e-5)


def test_length_scale_prior_is_a_log_normal_density_on_the_length_scale():
    # Its maximiser over theta = log l must be the log-normal's mode exp(mu - sd^2), not the
    # median exp(mu): the median (~10 in 6-D) let the unit cube look linear along most axes.
    dim = 6
    mu, sd = length_scale_prior(dim)
    grid = np.linspace(mu - 8.0, mu + 4.0, 2401)
    rest = np.zeros(dim + 1)  # other coordinates fixed; only the first length scale moves
    values = [_log_prior(np.concatenate([[t], rest]), dim)[0] for t in grid]
    assert grid[int(np.argmax(values))] == pytest.approx(mu - sd * sd, abs=0.01)


def test_log_ei_matches_naive_ei_and_stays_finite_in_the_tail():
    rng = np.random.default_rng(2)
    mean, std = rng.normal(size=200), rng.uniform(0.1, 2.0, 200)
    best = 0.3
    z = (best - mean) / std
    naive = std * (z * norm.cdf(z) + norm.pdf(z))
    ok = naive > 1e-10
    np.testing.assert_allclose(log_ei(mean, std, best)[ok], np.log(naive[ok]), rtol=1e-9, atol=1e-9)
    tail = log_h(np.array([-5.0, -20.0, -40.0, -1e5, -1e9]))
    assert np.all(np.isfinite(tail)) and np.all(np.diff(tail) < 0)
    # Asymptotically h(z) ~ phi(z) / z^2.
    assert tail[2] == pytest.approx(norm.logpdf(-40.0) - 2 * math.log(40.0), abs=1e-2)
    for name in ("log_ei", "pi", "ucb"):
        m, s = np.array([0.1]), np.array([0.7])
        _, d_mean, d_std = evaluate(name, m, s, best, 4.0)
        h = 1e-7
        assert d_mean[0] == pytest.approx((evaluate(name, m + h, s, best, 4.0)[0][0]
                                           - evaluate(name, m - h, s, best, 4.0)[0][0]) / (2 * h), rel=1e-5)
        assert d_std[0] == pytest.approx((evaluate(name, m, s + h, best, 4.0)[0][0]
                                          - evaluate(name, m, s - h, best, 4.0)[0][0]) / (2 * h), rel=1e-5)


def test_output_warp_tames_outliers_and_inverts_in_the_good_half():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e9])
    warp = OutputWarp(values, maximize=False)
    assert np.all(np.diff(warp.y) > 0) and warp.y.max() < 3.0
    # Without the warp the outlier would squash the others into one point (spread ~1e-9).
    assert np.ptp(warp.y[:-1]) > 1.0
    for i in range(3):  # the better half is linear: predictions map back exactly
        mean, _ = warp.to_objective(float(warp.y[i]), 0.1)
        assert mean == pytest.approx(values[i])
    maximize = OutputWarp(np.array([0.9, 0.8, 0.1]), maximize=True)
    assert maximize.y[0] < maximize.y[1] < maximize.y[2]  # the highest score is the lowest loss
    assert maximize.to_objective(float(maximize.y[0]), 0.0)[0] == pytest.approx(0.9)


def test_encoding_round_trips_and_inactive_parameters_are_neutral():
    encoder = Encoder(MIXED)
    assert encoder.dim == 5 + 3 + 2  # 5 numeric + one-hot(3) + 2 conditional numeric; the fixed one dropped
    rng = np.random.default_rng(3)
    for _ in range(200):
        params = MIXED.from_unit(rng.random(len(MIXED)))
        x = encoder.encode(params)
        assert np.all((0.0 <= x) & (x <= 1.0))
        assert encoder.decode(x) == params
        if params["booster"] == "gbtree":
            assert x[encoder.dim - 2] == NEUTRAL and x[encoder.dim - 1] == NEUTRAL


def test_neighbours_switch_categories_and_step_grid_values():
    encoder = Encoder(MIXED)
    params = {"lr": 0.01, "x": 0.0, "s": 0.5, "n": 20, "k": 4, "booster": "gbtree", "seed": 7}
    moves = encoder.neighbours(params)
    changed = []
    for move in moves:
        assert MIXED.complete(move) == move
        assert move["lr"] == params["lr"] and move["x"] == params["x"]  # continuous: the polish's job
        changed.append({name for name in ("s", "n", "k", "booster") if move[name] != params[name]})
    assert all(len(c) == 1 for c in changed)  # one discrete move each
    assert {m["booster"] for m in moves if m["booster"] != "gbtree"} == {"dart", True}
    # A switch to a conditional branch activates its parameters (at neutral values).
    assert all("rate" in m and "depth" in m for m in moves if m["booster"] == "dart")
    # Small grids: every other value; the 1000-value log integer: 1, 2, 4, ... cells both ways.
    assert {m["s"] for m in moves} == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert {m["k"] for m in moves} == {0, 2, 4, 6, 8, 10}
    steps = sorted({m["n"] for m in moves} - {20})
    assert steps[0] == 1 and steps[-1] == 1000 and 19 in steps and 21 in steps
    assert len(steps) > 10 and len(moves) == len({config_key(m) for m in moves})


def test_column_bounds_stop_at_the_end_values():
    encoder = Encoder(MIXED)
    columns = {slot.parameter.name: slot.column for slot in encoder.slots}
    bounds = {name: encoder.column_bounds([column])[0] for name, column in columns.items()
              if name in ("lr", "x", "s", "n", "k")}
    assert bounds["lr"] == (0.0, 1.0) and bounds["x"] == (0.0, 1.0)
    assert bounds["s"] == pytest.approx((0.1, 0.9))  # centres of the end cells of 5
    assert bounds["k"] == pytest.approx((1 / 12, 11 / 12))
    low, high = bounds["n"]
    assert 0.0 < low < 0.1 and 0.99 < high < 1.0
    n_domain = next(p.domain for p in MIXED if p.name == "n")
    assert n_domain.from_unit(low) == 1 and n_domain.from_unit(high) == 1000


def test_the_acquisition_search_switches_to_a_better_category(monkeypatch):
    """A run whose candidates all hold the worse category must still reach the better one."""
    space = SearchSpace((Categorical("c", ["a", "b"]), Float("x", 0.0, 1.0)))

    def f(p):
        return (p["x"] - 0.3) ** 2 + (0.5 if p["c"] == "a" else 0.0)

    points = [("a", x) for x in np.linspace(0.0, 1.0, 9)] + [("b", 0.8), ("b", 0.9), ("b", 1.0)]
    history = [TrialView(i, TrialState.COMPLETED, {"c": c, "x": float(x)}, (f({"c": c, "x": x}),))
               for i, (c, x) in enumerate(points)]
    algorithm = gp(space, n_startup_trials=2)

    def only_a(self, state, rng):
        return [{"c": "a", "x": float(x)} for x in np.linspace(0.05, 0.95, 16)]

    monkeypatch.setattr(GaussianProcessBO, "_candidates", only_a)
    monkeypatch.setattr(gp_module, "_INCUMBENT_STARTS", 0)
    [s] = algorithm.suggest(SuggestContext(space, MINIMIZE, len(history), history=tuple(history)), 1)
    assert s.params["c"] == "b" and s.params["x"] < 0.8  # switched, then polished toward x = 0.3


def test_an_interior_optimum_does_not_pile_suggestions_on_the_bounds():
    space = SearchSpace((
        Float("lr", 1e-4, 1.0, log=True),
        Int("depth", 1, 12),
        Int("n", 10, 1000, log=True),
        Float("sub", 0.3, 1.0),
    ))

    def f(p):  # minimum 0 at lr 0.03, depth 6, n ~316, sub 0.65: inside every range
        return ((math.log10(p["lr"]) + 1.5) ** 2 + (p["depth"] - 6) ** 2 / 8
                + (math.log10(p["n"]) - 2.5) ** 2 + 2 * (p["sub"] - 0.65) ** 2)

    algorithm = gp(space, seed=0)
    history = []
    on_bound = dict.fromkeys(("lr", "depth", "n", "sub"), 0)
    n_model = 0
    for i in range(40):
        [s] = algorithm.suggest(SuggestContext(space, MINIMIZE, i, history=tuple(history)), 1)
        history.append(TrialView(i, TrialState.COMPLETED, s.params, (f(s.params),), metadata=s.metadata))
        if s.metadata["phase"] == "model":
            n_model += 1
            for parameter in space:
                domain = parameter.domain
                on_bound[parameter.name] += s.params[parameter.name] in (domain.low, domain.high)
    assert n_model == 30
    assert max(on_bound.values()) <= 0.2 * n_model, on_bound
    assert min(h.values[0] for h in history) < 0.05


# -- (5) failures fall back, (6) settings -------------------------------------------------------


def test_a_failed_fit_falls_back_to_quasi_random(monkeypatch):
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is singular")

    monkeypatch.setattr(gp_module, "fit_hyperparameters", broken)
    history = random_history(MIXED, mixed_loss, n_done=20, n_pending=2)
    suggestions = gp().suggest(SuggestContext(MIXED, MINIMIZE, 22, history=tuple(history)), 3)
    assert len(suggestions) == 3
    for s in suggestions:
        assert MIXED.complete(s.params) == s.params
        assert s.metadata["fallback"] == "quasi_random"
        assert "LinAlgError" in s.metadata["reason"] and "Matrix is singular" in s.metadata["reason"]
    assert len({config_key(s.params) for s in suggestions}) == 3


def test_a_failed_acquisition_falls_back_for_that_proposal(monkeypatch):
    def broken(*args, **kwargs):
        raise FloatingPointError("non-finite acquisition")

    monkeypatch.setattr(GaussianProcessBO, "_candidates", broken)
    history = random_history(BRANIN, branin_loss, n_done=12)
    [s] = gp(BRANIN).suggest(SuggestContext(BRANIN, MINIMIZE, 12, history=tuple(history)), 1)
    assert s.metadata["fallback"] == "quasi_random" and "acquisition failed" in s.metadata["reason"]


@pytest.mark.parametrize("settings, field", [
    ({"acquisition": "ei"}, "acquisition"),
    ({"ucb_beta": -1.0}, "ucb_beta"),
    ({"n_startup_trials": -1}, "n_startup_trials"),
    ({"n_candidates": 0}, "n_candidates"),
    ({"max_observations": 5}, "max_observations"),
    ({"n_restarts": 100}, "n_restarts"),
    ({"n_candidates": "many"}, "n_candidates"),
    ({"kappa": 2.0}, "kappa"),
])
def test_invalid_settings_name_their_field(settings, field):
    with pytest.raises(InvalidArgument) as error:
        GaussianProcessBO.parse_settings(settings)
    assert error.value.field == f"spec.algorithm.settings.{field}"


def test_settings_and_objectives_accepted_and_refused():
    settings = GaussianProcessBO.parse_settings({"acquisition": "ucb", "ucb_beta": 2, "max_observations": 100})
    assert settings.acquisition == "ucb" and settings.ucb_beta == 2.0 and settings.max_observations == 100
    GaussianProcessBO.check_objectives(MINIMIZE)
    GaussianProcessBO.check_objectives(MINIMIZE + MAXIMIZE)  # ParEGO: tests/unit/test_multi_objective.py


@pytest.mark.parametrize("name", ["ucb", "pi"])
def test_other_acquisitions_propose_valid_points(name):
    history = random_history(MIXED, mixed_loss, n_done=20, n_pending=1)
    suggestions = gp(acquisition=name).suggest(SuggestContext(MIXED, MINIMIZE, 21, history=tuple(history)), 2)
    for s in suggestions:
        assert MIXED.complete(s.params) == s.params
        assert s.metadata["acquisition"] == name and "fallback" not in s.metadata


def test_training_set_is_capped():
    history = random_history(BRANIN, branin_loss, n_done=150)
    [s] = gp(BRANIN, max_observations=40).suggest(SuggestContext(BRANIN, MINIMIZE, 150, history=tuple(history)), 1)
    assert s.metadata["n_observations"] == 40 and "fallback" not in s.metadata


@pytest.mark.parametrize("constraints", [(), ("c",)])
def test_completed_configurations_are_not_proposed_again_while_others_remain(constraints):
    # On a small integer grid the posterior variance the learned noise leaves at the incumbent
    # gave it a positive EI that beat every other point: 5-8 of 20 trials were repeats.
    from tests.unit import sequential
    from tuning_types.study import AlgorithmSpec, StudySpec

    space = SearchSpace((Int("a", 0, 4), Int("b", 0, 4)))
    spec = StudySpec(space, (Objective("loss", Direction.MINIMIZE),), AlgorithmSpec("gp", {}), seed=0,
                     constraints=constraints)
    history = sequential.run(spec, 20, lambda p: ((p["a"] - 2) ** 2 + (p["b"] - 3) ** 2,
                                                  (p["a"] + p["b"] - 4.5,) if constraints else None))
    keys = [config_key(t.params) for t in history]
    assert len(set(keys)) == len(keys)
