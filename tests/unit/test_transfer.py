"""Transfer learning in the algorithms (SuggestContext.priors): a related prior helps, an
unrelated one is weighed down, and spaces that differ are matched by name and domain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from suggestion_service.algorithms import ALGORITHMS, make_algorithm, validate_algorithm
from suggestion_service.algorithms.base import PriorTask, SuggestContext, TrialView
from suggestion_service.algorithms.transfer import PRIORS_KEY, WARM_CONFIGS, usable
from suggestion_service.domain.trial import TrialState
from trial_worker import Categorical, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

SPACE = SearchSpace((Float("x0", -5.0, 10.0), Float("x1", 0.0, 15.0)))
MINIMIZE = Objective("value", Direction.MINIMIZE)
MAXIMIZE = Objective("value", Direction.MAXIMIZE)


def branin(p, shift=(0.0, 0.0), scale=1.0, offset=0.0) -> float:
    x1, x2 = min(max(p["x0"] - shift[0], -5.0), 10.0), min(max(p["x1"] - shift[1], 0.0), 15.0)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return scale * ((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10) + offset


def random_trials(space: SearchSpace, function, n: int, seed: int) -> tuple[TrialView, ...]:
    """A finished prior study: ``n`` uniformly random configurations and their values."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = space.from_unit(rng.random(len(space)))
        out.append(TrialView(i, TrialState.COMPLETED, params, (function(params),)))
    return tuple(out)


# Fewer acquisition candidates than the default: the tests run many GP studies.
SETTINGS = {"gp": {"n_candidates": 256}}


def run(algorithm: str, n: int, function, priors=(), seed: int = 0, space: SearchSpace = SPACE) -> list[TrialView]:
    spec = StudySpec(space, (MINIMIZE,), AlgorithmSpec(algorithm, SETTINGS.get(algorithm, {})), seed=seed)
    model = make_algorithm(spec)
    history: list[TrialView] = []
    for i in range(n):
        [s] = model.suggest(SuggestContext(space, spec.objectives, i, history=tuple(history), priors=priors), 1)
        history.append(TrialView(i, TrialState.COMPLETED, s.params, (function(s.params),), metadata=s.metadata))
    return history


def best_after(history: list[TrialView], n: int) -> float:
    return min(t.values[0] for t in history[:n])


def related_prior(seed: int) -> PriorTask:
    # The same family: shifted by (0.4, -0.3), scaled and offset (as another dataset's loss would be).
    return PriorTask("related", MINIMIZE, random_trials(SPACE, lambda p: branin(p, (0.4, -0.3), 2.5, 7.0), 80, seed))


@pytest.mark.parametrize("algorithm", ["gp", "tpe"])
def test_a_related_prior_finds_good_configurations_in_fewer_trials(algorithm):
    # Fixed seeds: deterministic. The margin is wide: with the prior the first trials are the
    # prior's best configurations, a few tenths above the optimum (0.398), while 12 trials of
    # a study on its own are mostly its start-up points.
    target = lambda p: branin(p, (0.2, 0.1))  # noqa: E731
    with_prior = [best_after(run(algorithm, 12, target, (related_prior(s),), seed=s), 12) for s in range(4)]
    without = [best_after(run(algorithm, 12, target, seed=s), 12) for s in range(4)]
    assert np.mean(with_prior) < 0.5 * np.mean(without), (with_prior, without)
    assert np.mean(with_prior) < 1.5


def test_the_first_proposals_are_the_priors_best_configurations():
    prior = related_prior(0)
    history = run("tpe", WARM_CONFIGS + 1, lambda p: branin(p), (prior,))
    best = sorted(prior.trials, key=lambda t: t.values[0])[:WARM_CONFIGS]
    assert [t.params for t in history[:WARM_CONFIGS]] == [t.params for t in best]
    assert [t.metadata["phase"] for t in history] == ["prior_best"] * WARM_CONFIGS + ["startup"]
    assert history[0].metadata[PRIORS_KEY] == {"related": {"usable_trials": 80}}


def test_gp_weighs_an_unrelated_prior_down_and_a_related_one_up():
    target = lambda p: branin(p, (0.2, 0.1))  # noqa: E731
    # Negated: the prior's best configurations are the study's worst.
    negated = PriorTask("negated", MAXIMIZE, related_prior(1).trials)
    facts = run("gp", 20, target, (negated,), seed=1)[-1].metadata[PRIORS_KEY]["negated"]
    assert facts["weight"] == 0.0 and facts["relevance"] == 0.0
    facts = run("gp", 20, target, (related_prior(1),), seed=1)[-1].metadata[PRIORS_KEY]["related"]
    assert facts["weight"] > 0.3 and facts["relevance"] > 0.5


def test_tpe_weighs_an_unrelated_prior_down_and_a_related_one_up():
    target = lambda p: branin(p, (0.2, 0.1))  # noqa: E731
    noise = PriorTask("noise", MINIMIZE, random_trials(SPACE, lambda p: float(np.random.default_rng(
        int(p["x0"] * 1e6) % 2**32).random()), 80, 2))
    negated = PriorTask("negated", MAXIMIZE, related_prior(2).trials)
    last = run("tpe", 30, target, (related_prior(2), negated, noise), seed=2)[-1].metadata[PRIORS_KEY]
    assert last["related"]["relevance"] > 0.2 and last["related"]["weight"] > 0.1
    assert last["negated"]["weight"] == 0.0
    assert last["noise"]["weight"] < 0.5 * last["related"]["weight"]


@pytest.mark.parametrize("algorithm", ["gp", "tpe"])
def test_a_prior_weighed_to_zero_leaves_the_model_as_it_is_without_priors(algorithm):
    # A prior whose best configurations are the study's worst costs its warm proposals; once its
    # weight is 0 the model proposes what it would with no prior on the same history.
    target = lambda p: branin(p, (0.2, 0.1))  # noqa: E731
    negated = PriorTask("negated", MAXIMIZE, related_prior(3).trials)
    history = run(algorithm, 16, target, (negated,), seed=1)
    assert [t.metadata["phase"] for t in history[:WARM_CONFIGS]] == ["prior_best"] * WARM_CONFIGS
    spec = StudySpec(SPACE, (MINIMIZE,), AlgorithmSpec(algorithm, SETTINGS.get(algorithm, {})), seed=1)
    [with_prior] = make_algorithm(spec).suggest(SuggestContext(SPACE, spec.objectives, 16, history=tuple(history),
                                                               priors=(negated,)), 1)
    [without] = make_algorithm(spec).suggest(SuggestContext(SPACE, spec.objectives, 16, history=tuple(history)), 1)
    assert with_prior.metadata[PRIORS_KEY]["negated"]["weight"] == 0.0
    assert with_prior.params == without.params


def test_prior_trials_are_matched_to_the_study_space_by_name_and_domain():
    space = SearchSpace((Float("lr", 0.01, 0.1), Int("depth", 2, 6), Categorical("booster", ["gbtree", "dart"])))
    trials = tuple(TrialView(i, state, params, values) for i, (state, params, values) in enumerate([
        (TrialState.COMPLETED, {"lr": 0.05, "depth": 3, "booster": "dart", "extra": 1}, (0.5,)),  # extra: ignored
        (TrialState.COMPLETED, {"lr": 0.5, "depth": 3, "booster": "dart"}, (0.4,)),  # lr outside: dropped
        (TrialState.COMPLETED, {"lr": 0.05, "depth": 3, "booster": "gblinear"}, (0.3,)),  # unknown choice
        (TrialState.COMPLETED, {"lr": 0.05, "depth": 3}, (0.2,)),  # no booster: dropped
        (TrialState.COMPLETED, {"lr": 0.02, "depth": 5, "booster": "gbtree"}, (math.nan,)),  # not finite
        (TrialState.FAILED, {"lr": 0.02, "depth": 5, "booster": "gbtree"}, None),
        (TrialState.COMPLETED, {"lr": 0.02, "depth": 5, "booster": "gbtree"}, (0.9,)),
    ]))
    [prior] = usable(space, (PriorTask("p", MAXIMIZE, trials),))
    assert prior.params == [{"lr": 0.05, "depth": 3, "booster": "dart"}, {"lr": 0.02, "depth": 5, "booster": "gbtree"}]
    assert prior.losses.tolist() == [-0.5, -0.9]  # maximised: losses are negated values


@pytest.mark.parametrize("algorithm", ["gp", "tpe", "auto"])
def test_a_prior_without_usable_trials_has_no_effect_and_says_so(algorithm):
    space = SearchSpace((Float("x0", -5.0, 10.0), Float("x1", 0.0, 15.0), Float("x2", 0.0, 1.0)))
    # The prior has no x2, so none of its trials is a configuration of this study.
    prior = PriorTask("old", MINIMIZE, related_prior(0).trials)
    f = lambda p: branin(p) + p["x2"]  # noqa: E731
    with_prior = run(algorithm, 14, f, (prior,), space=space)
    without = run(algorithm, 14, f, space=space)
    assert [t.params for t in with_prior] == [t.params for t in without]
    facts = with_prior[-1].metadata[PRIORS_KEY]["old"]
    assert facts["usable_trials"] == 0 and facts["effect"].startswith("none")


def test_only_algorithms_that_learn_from_priors_accept_them():
    assert not ALGORITHMS["bohb"].uses_priors  # (it needs a fidelity, refused before this check)
    for name in ("random", "quasi_random"):
        spec = StudySpec(SPACE, (MINIMIZE,), AlgorithmSpec(name), prior_studies=("old",))
        with pytest.raises(InvalidArgument) as error:
            validate_algorithm(spec)
        assert error.value.field == "spec.prior_studies" and "(only tpe, gp, auto do)" in error.value.description
    for name in ("gp", "tpe", "auto"):
        validate_algorithm(StudySpec(SPACE, (MINIMIZE,), AlgorithmSpec(name), prior_studies=("old",)))


@pytest.mark.parametrize("prior_studies, field, message", [
    (tuple(f"s{i}" for i in range(11)), "spec.prior_studies", "at most 10"),
    (("a", "a"), "spec.prior_studies[1]", "duplicate"),
    (("",), "spec.prior_studies[0]", ""),
])
def test_prior_study_lists_are_checked(prior_studies, field, message):
    with pytest.raises(InvalidArgument) as error:
        StudySpec(SPACE, (MINIMIZE,), prior_studies=prior_studies).validate()
    assert error.value.field == field and message in error.value.description


def test_priors_need_one_objective_on_both_sides():
    two = (MINIMIZE, Objective("seconds", Direction.MINIMIZE))
    with pytest.raises(InvalidArgument) as error:
        StudySpec(SPACE, two, prior_studies=("old",)).validate()
    assert error.value.field == "spec.prior_studies"
    spec = StudySpec(SPACE, (MINIMIZE,), prior_studies=("old",))
    with pytest.raises(InvalidArgument, match="2 objectives"):
        spec.check_prior("spec.prior_studies[0]", "old", StudySpec(SPACE, two))
    with pytest.raises(InvalidArgument, match="no float parameter 'x1'"):
        spec.check_prior("spec.prior_studies[0]", "old", StudySpec(SearchSpace((Float("x0", 0, 1), Int("x1", 0, 3))),
                                                                    (MINIMIZE,)))
    # Other bounds and extra parameters are fine.
    spec.check_prior("spec.prior_studies[0]", "old", StudySpec(
        SearchSpace((Float("x0", 0, 1), Float("x1", 5, 50), Categorical("c", ["a"]))), (MAXIMIZE,)))
