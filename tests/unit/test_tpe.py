"""TPE: the algorithm contract (in both phases), that it optimises, directions, conditions, settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.algorithms.random_search import RandomSearch
from suggestion_service.algorithms.tpe import TPE
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import Direction, Objective

# The spaces of the shared contract suite (tests/unit/test_algorithms.py), plus steps and a fixed value.
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
    Int("leaves", 2, 64, step=2),
    Float("frac", 0.05, 1.0, step=0.05),
))
MINIMIZE = (Objective("loss", Direction.MINIMIZE),)
MAXIMIZE = (Objective("score", Direction.MAXIMIZE),)


def make(space, seed=5, objectives=MINIMIZE, **settings) -> TPE:
    return TPE(space, objectives, TPE.parse_settings(settings), seed=seed)


def toy_loss(params) -> float:
    """Deterministic stand-in for a metric over any of the spaces above."""
    return float(sum(hash((name, str(value))) % 1000 for name, value in params.items()) / 1000)


def run(algorithm: TPE, space, objective, n_trials: int, objectives=MINIMIZE) -> list[TrialView]:
    """Sequential study: one suggestion at a time, each told before the next ask."""
    history: list[TrialView] = []
    for i in range(n_trials):
        [suggestion] = algorithm.suggest(SuggestContext(space, objectives, sequence=i, history=tuple(history)), 1)
        history.append(TrialView(i, TrialState.COMPLETED, suggestion.params, (objective(suggestion.params),)))
    return history


def model_context(space, n_completed=15, pending=(), seed=0) -> SuggestContext:
    """A context past the startup phase: random completed trials, then pending (ACTIVE) ones."""
    random = RandomSearch(space, MINIMIZE, RandomSearch.Settings(), seed=seed)
    points = [s.params for s in random.suggest(SuggestContext(space, MINIMIZE, sequence=0), n_completed)]
    history = [TrialView(i, TrialState.COMPLETED, p, (toy_loss(p),)) for i, p in enumerate(points)]
    history += [TrialView(len(history) + i, TrialState.ACTIVE, p) for i, p in enumerate(pending)]
    return SuggestContext(space, MINIMIZE, sequence=len(history), history=tuple(history))


def key(params) -> tuple:
    return tuple(sorted((name, type(value).__name__, value) for name, value in params.items()))


# -- the contract --------------------------------------------------------------------------

@pytest.mark.parametrize("multivariate", [True, False])
@pytest.mark.parametrize("space", [FINITE, CONTINUOUS], ids=["finite", "continuous"])
def test_suggestions_are_valid_assignments_in_both_phases(space, multivariate):
    history = run(make(space, multivariate=multivariate), space, toy_loss, 30)
    for trial in history:
        # complete() accepts exactly the valid assignments: active parameters only, in range, on the grid.
        assert space.complete(trial.params) == trial.params
    batch = make(space, multivariate=multivariate).suggest(
        SuggestContext(space, MINIMIZE, sequence=30, history=tuple(history)), 9
    )
    assert len(batch) == 9
    assert all(space.complete(s.params) == s.params for s in batch)


def test_metadata_names_the_phase():
    algorithm = make(CONTINUOUS, seed=11)
    [startup] = algorithm.suggest(SuggestContext(CONTINUOUS, MINIMIZE, sequence=0), 1)
    assert startup.metadata == {"algorithm": "tpe", "seed": 11, "phase": "startup"}
    [model] = algorithm.suggest(model_context(CONTINUOUS), 1)
    assert model.metadata["phase"] == "model" and model.metadata["seed"] == 11
    assert math.isfinite(model.metadata["log_l_over_g"])


@pytest.mark.parametrize("space", [FINITE, CONTINUOUS], ids=["finite", "continuous"])
def test_startup_is_sobol_indexed_by_sequence_and_resumable(space):
    def propose(start, count, pending=()):
        return [s.params for s in make(space).suggest(
            SuggestContext(space, MINIMIZE, sequence=start, pending=pending), count)]

    whole = propose(0, 12)
    assert propose(0, 12) == whole
    first = propose(0, 5)
    assert first + propose(5, 7, pending=first) == whole


@pytest.mark.parametrize("space", [FINITE, CONTINUOUS], ids=["finite", "continuous"])
def test_model_phase_is_deterministic_for_an_identical_context(space):
    context = model_context(space)
    first = make(space, seed=3).suggest(context, 4)
    again = make(space, seed=3).suggest(context, 4)
    assert [s.params for s in again] == [s.params for s in first]
    assert [s.metadata for s in again] == [s.metadata for s in first]


def test_different_seeds_give_different_proposals():
    context = model_context(CONTINUOUS)
    assert [s.params for s in make(CONTINUOUS, seed=1).suggest(context, 3)] != \
        [s.params for s in make(CONTINUOUS, seed=2).suggest(context, 3)]
    startup = SuggestContext(CONTINUOUS, MINIMIZE, sequence=0)
    assert [s.params for s in make(CONTINUOUS, seed=1).suggest(startup, 3)] != \
        [s.params for s in make(CONTINUOUS, seed=2).suggest(startup, 3)]


@pytest.mark.parametrize("space", [FINITE, CONTINUOUS], ids=["finite", "continuous"])
def test_a_batch_of_eight_has_no_duplicates(space):
    batch = make(space).suggest(model_context(space), 8)
    assert len(batch) == 8
    assert len({key(s.params) for s in batch}) == 8


def test_a_batch_equals_asking_one_at_a_time_with_earlier_proposals_running():
    # The constant liar treats a batch's earlier proposals exactly like ACTIVE trials in the history.
    context = model_context(CONTINUOUS)
    batch = [s.params for s in make(CONTINUOUS).suggest(context, 4)]
    one_by_one = []
    for i in range(4):
        running = [TrialView(len(context.history) + j, TrialState.ACTIVE, p) for j, p in enumerate(one_by_one)]
        step = SuggestContext(CONTINUOUS, MINIMIZE, sequence=context.sequence + i,
                              history=tuple(context.history) + tuple(running))
        one_by_one += [s.params for s in make(CONTINUOUS).suggest(step, 1)]
    assert batch == one_by_one


@pytest.mark.parametrize("constant_liar", [True, False])
def test_pending_and_other_finished_trials_in_the_history(constant_liar):
    space = SearchSpace((Int("a", 1, 3), Categorical("b", ["x", "y"])))  # 6 configurations
    base = model_context(space, n_completed=12)
    pending = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    others = [TrialView(100 + i, state, {"a": 3, "b": "x"}) for i, state in enumerate(
        (TrialState.PRUNED, TrialState.FAILED, TrialState.INFEASIBLE, TrialState.STALE))]
    running = [TrialView(200 + i, TrialState.QUEUED if i else TrialState.ACTIVE, p) for i, p in enumerate(pending)]
    context = SuggestContext(space, MINIMIZE, sequence=20, history=tuple(base.history) + tuple(others + running))
    batch = make(space, constant_liar=constant_liar).suggest(context, 4)
    keys = [key(s.params) for s in batch] + [key(p) for p in pending]
    # 4 new proposals next to 2 running ones: all 6 configurations of the space, each once.
    assert len(set(keys)) == 6


# -- it optimises ---------------------------------------------------------------------------

QUADRATIC = SearchSpace((Float("lr", 1e-4, 1.0, log=True), Float("x", -3.0, 3.0), Int("n", 1, 100)))


def quadratic(params) -> float:
    return (math.log10(params["lr"]) + 2) ** 2 + (params["x"] - 0.5) ** 2 + ((params["n"] - 30) / 30) ** 2


def best_of(algorithm, n_trials=60) -> float:
    return min(t.values[0] for t in run(algorithm, QUADRATIC, quadratic, n_trials))


@pytest.mark.parametrize("multivariate", [True, False])
def test_tpe_beats_random_search_on_a_quadratic(multivariate):
    seeds = range(5)
    tpe = np.mean([best_of(make(QUADRATIC, seed=s, multivariate=multivariate)) for s in seeds])
    random = np.mean([best_of(RandomSearch(QUADRATIC, MINIMIZE, RandomSearch.Settings(), seed=s)) for s in seeds])
    # Measured over several seed sets: TPE 0.04-0.07 (multivariate) / 0.06-0.13 (univariate)
    # against 0.22-0.45 for random search; a factor of 1.4 leaves room across platforms.
    assert tpe < random / 1.4
    assert tpe < 0.2


@pytest.mark.parametrize("objectives", [MINIMIZE, MAXIMIZE], ids=["minimize", "maximize"])
def test_direction_is_respected(objectives):
    space = SearchSpace((Float("x", 0.0, 1.0),))
    history = run(make(space, seed=2, objectives=objectives), space, lambda p: p["x"], 40, objectives=objectives)
    modelled = np.mean([t.params["x"] for t in history[10:]])
    if objectives[0].direction == Direction.MINIMIZE:
        assert modelled < 0.3
    else:
        assert modelled > 0.7


# -- conditional spaces ---------------------------------------------------------------------

@pytest.mark.parametrize("multivariate", [True, False])
def test_conditional_parameters_appear_exactly_when_active(multivariate):
    space = SearchSpace((
        Categorical("booster", ["gbtree", "dart", "linear"]),
        Float("rate", 0.0, 0.5, when={"booster": "dart"}),
        Int("skip", 1, 10, when={"booster": "dart"}),
        Float("alpha", 1e-3, 1.0, log=True, when={"booster": ["linear"]}),
        Float("eta", 0.01, 0.3),
    ))

    def loss(p):
        # Best: dart with a small rate; linear is mediocre, gbtree bad.
        base = {"gbtree": 1.0, "dart": 0.0, "linear": 0.5}[p["booster"]]
        return base + p.get("rate", 0.0) + abs(p["eta"] - 0.1) + p.get("alpha", 0.0) * 0.1

    history = run(make(space, seed=4, multivariate=multivariate), space, loss, 50)
    for trial in history:
        params = trial.params
        assert space.complete(params) == params
        assert ("rate" in params) == ("skip" in params) == (params["booster"] == "dart")
        assert ("alpha" in params) == (params["booster"] == "linear")
    # The model learns the branch: dart dominates the modelled proposals.
    later = [t.params["booster"] for t in history[25:]]
    assert later.count("dart") > len(later) / 2


# -- settings and objectives -----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "field"), [
    ({"n_ei": 24}, "spec.algorithm.settings.n_ei"),
    ({"gamma": 0.0}, "spec.algorithm.settings.gamma"),
    ({"gamma": 1.5}, "spec.algorithm.settings.gamma"),
    ({"n_ei_candidates": 0}, "spec.algorithm.settings.n_ei_candidates"),
    ({"n_startup_trials": -1}, "spec.algorithm.settings.n_startup_trials"),
    ({"prior_weight": 0}, "spec.algorithm.settings.prior_weight"),
    ({"max_below_trials": 0}, "spec.algorithm.settings.max_below_trials"),
    ({"multivariate": "yes"}, "spec.algorithm.settings.multivariate"),
])
def test_bad_settings_name_the_field(raw, field):
    with pytest.raises(InvalidArgument) as error:
        TPE.parse_settings(raw)
    assert error.value.field == field


def test_settings_defaults_and_accepted_values():
    assert TPE.parse_settings({}) == TPE.Settings(
        n_startup_trials=10, multivariate=True, n_ei_candidates=24, gamma=0.1,
        max_below_trials=25, prior_weight=1.0, constant_liar=True,
    )
    settings = TPE.parse_settings({"n_startup_trials": 0, "gamma": 1, "multivariate": False})
    assert settings.gamma == 1.0 and settings.n_startup_trials == 0 and not settings.multivariate


def test_multi_objective_studies_are_accepted():
    TPE.check_objectives(MINIMIZE)
    TPE.check_objectives(MINIMIZE + MAXIMIZE)  # MOTPE: tests/unit/test_multi_objective.py


def test_zero_startup_trials_models_from_the_first_completion():
    space = SearchSpace((Float("x", 0.0, 1.0),))
    algorithm = make(space, n_startup_trials=0)
    [first] = algorithm.suggest(SuggestContext(space, MINIMIZE, sequence=0), 1)
    assert first.metadata["phase"] == "startup"  # nothing to model yet
    history = (TrialView(0, TrialState.COMPLETED, first.params, (1.0,)),)
    [second] = algorithm.suggest(SuggestContext(space, MINIMIZE, sequence=1, history=history), 1)
    assert second.metadata["phase"] == "model"


def test_rows_reused_from_the_previous_call_give_the_answer_a_fresh_instance_gives():
    # In a model process the finished trials stay the same objects from one ask to the next,
    # and TPE reads only the rows after the longest identical prefix (TPE._read).
    space = SearchSpace((Float("x", -5.0, 5.0), Int("n", 1, 50), Categorical("c", ["a", "b", "c"])))
    objectives = (Objective("loss", Direction.MINIMIZE),)
    rng = np.random.default_rng(0)

    def view(number: int, state: TrialState = TrialState.COMPLETED) -> TrialView:
        params = {"x": float(rng.uniform(-5, 5)), "n": int(rng.integers(1, 51)), "c": str(rng.choice(["a", "b", "c"]))}
        value = (params["x"] ** 2 + params["n"] / 10,) if state is TrialState.COMPLETED else None
        return TrialView(number, state, params, value)

    history = [view(i) for i in range(60)]
    cached = TPE(space, objectives, TPE.Settings(), seed=5)
    for step in range(4):
        pending = [view(100 + step, TrialState.ACTIVE)]
        context = SuggestContext(space, objectives, sequence=len(history), history=[*history, *pending])
        fresh = TPE(space, objectives, TPE.Settings(), seed=5)
        assert [s.params for s in cached.suggest(context, 3)] == [s.params for s in fresh.suggest(context, 3)]
        history = [*history[:30], view(200 + step), *history[30:], view(300 + step)]  # new rows inside and after
