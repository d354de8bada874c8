"""Population-based training: who exploits whom, how explore moves, and that the decisions
are a pure function of the seed and the history."""

from __future__ import annotations

import pytest

from suggestion_service.algorithms import make_algorithm, validate_algorithm
from suggestion_service.algorithms.base import SuggestContext, Suggestion, TrialView
from suggestion_service.domain.pbt import KEY, Segment
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Fidelity, Objective, PrunerSpec, StudySpec

SPACE = SearchSpace((Float("lr", 1e-4, 1.0, log=True), Float("momentum", 0.0, 0.99),
                     Int("batch", 16, 256, log=True), Categorical("opt", ["sgd", "adam", "rmsprop"]),
                     Fixed("seed", 7)))
MIN = (Objective("loss", Direction.MINIMIZE),)


def spec(space=SPACE, objectives=MIN, seed=5, **settings) -> StudySpec:
    return StudySpec(space, objectives, AlgorithmSpec("pbt", settings), seed=seed)


def pbt(**settings):
    study = spec(**settings)
    validate_algorithm(study)
    return make_algorithm(study)


class Study:
    """Stores proposals as the service does: metadata with the proposal's index, trial ids."""

    def __init__(self, algorithm):
        self.algorithm = algorithm
        self.history: list[TrialView] = []
        self.sequence = 0

    def ask(self, count: int = 1) -> list[TrialView]:
        context = SuggestContext(SPACE, MIN, self.sequence, history=tuple(self.history))
        suggestions: list[Suggestion] = self.algorithm.suggest(context, count)
        views = []
        for s in suggestions:
            number = len(self.history)
            view = TrialView(number, TrialState.ACTIVE, s.params, budget=s.budget, id=1000 + number,
                             metadata={"index": self.sequence, **s.metadata})
            self.history.append(view)
            views.append(view)
            self.sequence += 1
        return views

    def end(self, view: TrialView, value: float | None, state: TrialState = TrialState.COMPLETED) -> None:
        self.history[view.number] = TrialView(view.number, state, view.params, None if value is None else (value,),
                                              view.budget, id=view.id, metadata=view.metadata)

    def retry(self, view: TrialView) -> TrialView:
        """As the service's retry: a new trial with the same params and metadata."""
        self.end(view, None, TrialState.STALE)
        number = len(self.history)
        copy = TrialView(number, TrialState.QUEUED, view.params, budget=view.budget, id=1000 + number,
                         metadata=view.metadata)
        self.history.append(copy)
        return copy


def segment(view: TrialView) -> Segment:
    return Segment.from_metadata(view.metadata)


def generation_zero(study: Study, values: list[float]) -> list[TrialView]:
    views = study.ask(len(values))
    for view, value in zip(views, values):
        study.end(view, value)
    return views


def test_generation_zero_is_one_random_configuration_per_member():
    algorithm = pbt(population_size=4, perturbation_interval=5, max_steps=12)
    views = Study(algorithm).ask(6)
    assert len(views) == 4  # then every member runs: the rest waits for a result
    assert [(segment(v).member, segment(v).generation, segment(v).start_step, segment(v).end_step) for v in views] \
        == [(m, 0, 0, 5) for m in range(4)]
    assert all(segment(v).parent_trial_id is None and segment(v).decision == "start" for v in views)
    assert all(v.budget == 5 for v in views)
    assert len({v.params["lr"] for v in views}) == 4
    assert all(v.params["seed"] == 7 for v in views)


def test_the_bottom_quantile_exploits_the_top_and_the_rest_continue():
    study = Study(pbt(population_size=4))
    first = generation_zero(study, [0.1, 0.2, 0.3, 0.4])  # minimised: member 3 is the worst
    nexts = {segment(v).member: v for v in study.ask(4)}
    for member in (0, 1, 2):
        facts = segment(nexts[member])
        assert facts.decision == "continue" and facts.parent_trial_id == first[member].id
        assert facts.generation == 1 and (facts.start_step, facts.end_step) == (10, 20)
        assert nexts[member].params == first[member].params
    facts = segment(nexts[3])
    # ceil(0.25 * 4) = 1: the top is member 0 alone.
    assert facts.decision == "exploit" and facts.parent_member == 0 and facts.parent_trial_id == first[0].id
    assert facts.donor_value == 0.1
    assert nexts[3].params != first[0].params and nexts[3].params["seed"] == 7
    assert set(facts.explored) == {"lr", "momentum", "batch", "opt"}


def test_maximised_objectives_rank_the_other_way():
    algorithm = make_algorithm(spec(objectives=(Objective("acc", Direction.MAXIMIZE),), population_size=4))
    study = Study(algorithm)
    generation_zero(study, [0.1, 0.2, 0.3, 0.4])
    exploiting = [segment(v) for v in study.ask(4) if segment(v).decision == "exploit"]
    assert [(s.member, s.parent_member) for s in exploiting] == [(0, 3)]


def test_with_fewer_than_two_peers_a_member_continues():
    study = Study(pbt(population_size=4))
    views = study.ask(4)
    study.end(views[2], 9.0)  # the worst so far, but alone at generation 1
    [next_] = study.ask()
    assert segment(next_).member == 2 and segment(next_).decision == "continue"
    study.end(views[0], 0.5)
    study.end(views[1], 0.1)
    [next_] = study.ask()  # member 0 against 0.5, 0.1 and 9.0: not the worst
    assert segment(next_).member == 0 and segment(next_).decision == "continue"


def test_ready_members_are_served_lowest_generation_first():
    study = Study(pbt(population_size=3))
    views = generation_zero(study, [0.3, 0.2, 0.1])
    [a] = study.ask()
    study.end(a, 0.05)  # member 0 is through generation 1 already
    order = [(segment(v).member, segment(v).generation) for v in study.ask(3)]
    assert order == [(1, 1), (2, 1), (0, 2)]
    assert views  # (generation 0 ran)


def test_explore_perturbs_by_the_factors_within_bounds():
    study = Study(pbt(population_size=4, resample_probability=0.0, perturb_down=0.5, perturb_up=2.0))
    first = generation_zero(study, [0.1, 0.2, 0.3, 0.4])
    [exploit] = [v for v in study.ask(4) if segment(v).decision == "exploit"]
    donor = first[0].params
    explored = segment(exploit).explored
    for name in ("lr", "momentum"):
        factor = {"x0.5": 0.5, "x2": 2.0}[explored[name]]
        bounds = {"lr": (1e-4, 1.0), "momentum": (0.0, 0.99)}[name]
        assert exploit.params[name] == pytest.approx(min(max(donor[name] * factor, bounds[0]), bounds[1]))
    assert explored["opt"] == "neighbour"
    choices = ["sgd", "adam", "rmsprop"]
    assert abs(choices.index(exploit.params["opt"]) - choices.index(donor["opt"])) == 1
    assert exploit.params["batch"] != donor["batch"]


def test_explored_values_always_stay_inside_the_space():
    space = SearchSpace((Float("x", -1.0, 1.0, step=0.25), Int("k", 0, 10, step=3), Int("n", 1, 2),
                         Categorical("c", [True, False]), Float("y", 0.5, 0.6)))
    algorithm = make_algorithm(spec(space=space, population_size=2, resample_probability=0.3))
    for index in range(300):
        rng = __import__("numpy").random.default_rng([1, index])
        params, _ = algorithm._explore(space.from_unit(rng.random(len(space))), rng)
        assert space.complete(params) == params


def test_a_parameter_that_becomes_active_is_drawn_from_its_prior():
    space = SearchSpace((Categorical("kind", ["a", "b"]),
                         Float("a_only", 0.0, 1.0, when={"kind": ["a"]}),
                         Float("b_only", 0.0, 1.0, when={"kind": ["b"]})))
    algorithm = make_algorithm(spec(space=space, population_size=2, resample_probability=0.0))
    rng = __import__("numpy").random.default_rng(0)
    params, explored = algorithm._explore({"kind": "a", "a_only": 0.5}, rng)
    assert params["kind"] == "b" and "a_only" not in params and explored["b_only"] == "new"
    assert space.complete(params) == params


def test_only_the_mutable_parameters_change():
    study = Study(pbt(population_size=4, mutable="lr"))
    first = generation_zero(study, [0.1, 0.2, 0.3, 0.4])
    [exploit] = [v for v in study.ask(4) if segment(v).decision == "exploit"]
    assert exploit.params["lr"] != first[0].params["lr"]
    assert {k: v for k, v in exploit.params.items() if k != "lr"} == \
        {k: v for k, v in first[0].params.items() if k != "lr"}


def test_the_same_history_gives_the_same_decisions_and_another_seed_others():
    def play(seed: int) -> list[tuple]:
        study = Study(make_algorithm(spec(seed=seed, population_size=4, max_steps=40)))
        out = []
        while views := study.ask(4):
            for view in views:
                facts = segment(view)
                study.end(view, abs(view.params["lr"] - 0.01) + 1.0 / (1 + facts.end_step))
                out.append((view.params, facts.to_metadata()))
        return out

    assert play(1) == play(1)
    assert play(1) != play(2)
    assert len(play(1)) == 4 * 4  # every member trains every segment, then the study is done


def test_a_retried_segment_keeps_its_parent_and_a_failed_one_is_redone_from_a_top_member():
    study = Study(pbt(population_size=4))
    first = generation_zero(study, [0.1, 0.2, 0.3, 0.4])
    nexts = study.ask(4)
    retry = study.retry(nexts[1])
    assert segment(retry) == segment(nexts[1])
    study.end(retry, None, TrialState.FAILED)  # retries spent: member 1 has no value at generation 1
    for view in (nexts[0], nexts[2], nexts[3]):
        study.end(view, 0.05)
    [redo] = study.ask()
    facts = segment(redo)
    assert (facts.member, facts.generation, facts.decision) == (1, 1, "redo")
    assert facts.parent_trial_id == first[0].id  # the top member of generation 0
    for _ in range(2):  # two more tries, then member 1 stops
        study.end(redo, None, TrialState.FAILED)
        candidates = [v for v in study.ask(4) if segment(v).member == 1]
        if not candidates:
            break
        [redo] = candidates
    assert not [v for v in study.ask(8) if segment(v).member == 1]


def test_a_failed_first_segment_is_redrawn_at_random():
    study = Study(pbt(population_size=2))
    views = study.ask(2)
    study.end(views[0], None, TrialState.FAILED)
    [redo] = study.ask()
    assert segment(redo).decision == "redo" and segment(redo).generation == 0
    assert segment(redo).parent_trial_id is None and redo.params != views[0].params


def test_the_last_segment_ends_at_max_steps_and_says_so():
    study = Study(pbt(population_size=2, perturbation_interval=4, max_steps=10))
    steps = []
    while views := study.ask(2):
        for view in views:
            steps.append((segment(view).start_step, segment(view).end_step, segment(view).last))
            study.end(view, 1.0)
    assert sorted(set(steps)) == [(0, 4, False), (4, 8, False), (8, 10, True)]


@pytest.mark.parametrize("settings, field", [
    ({"population_size": 1}, "population_size"),
    ({"perturbation_interval": 0}, "perturbation_interval"),
    ({"max_steps": 5, "perturbation_interval": 10}, "max_steps"),
    ({"quantile_fraction": 0.6}, "quantile_fraction"),
    ({"quantile_fraction": 0.0}, "quantile_fraction"),
    ({"resample_probability": 1.5}, "resample_probability"),
    ({"perturb_down": 1.0}, "perturb_down"),
    ({"perturb_up": 0.9}, "perturb_up"),
    ({"mutable": "lr, nope"}, "mutable"),
    ({"mutable": "seed"}, "mutable"),
    ({"population": 4}, "population"),
    ({"population_size": 4.5}, "population_size"),
])
def test_bad_settings_are_refused_naming_the_setting(settings, field):
    with pytest.raises(InvalidArgument) as error:
        validate_algorithm(spec(**settings))
    assert error.value.field == f"spec.algorithm.settings.{field}"


@pytest.mark.parametrize("change, field", [
    ({"pruner": PrunerSpec("median")}, "spec.pruner"),
    ({"fidelity": Fidelity("epochs", 1, 9)}, "spec.fidelity"),
    ({"objectives": (Objective("a", Direction.MINIMIZE), Objective("b", Direction.MINIMIZE))}, "spec.objectives"),
])
def test_what_pbt_cannot_do_is_refused(change, field):
    from dataclasses import replace

    with pytest.raises(InvalidArgument) as error:
        validate_algorithm(replace(spec(), **change))
    assert error.value.field == field


def test_a_member_that_violates_a_constraint_ranks_below_every_feasible_one():
    study = Study(pbt(population_size=4))
    views = study.ask(4)
    for view, value in zip(views, [0.1, 0.2, 0.3, 0.4]):
        study.history[view.number] = TrialView(view.number, TrialState.COMPLETED, view.params, (value,),
                                               view.budget, constraints=(1.0 if value == 0.1 else -1.0,),
                                               id=view.id, metadata=view.metadata)
    exploiting = [segment(v) for v in study.ask(4) if segment(v).decision == "exploit"]
    assert [(s.member, s.parent_member) for s in exploiting] == [(0, 1)]


def test_segment_metadata_round_trips():
    facts = Segment(3, 2, 20, 30, False, "exploit", 17, 1, 0.5, {"lr": "x0.8"})
    assert Segment.from_metadata({KEY: facts.to_metadata(), "index": 9}) == facts
    assert Segment.from_metadata({"algorithm": "random"}) is None
