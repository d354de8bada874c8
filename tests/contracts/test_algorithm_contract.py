"""The algorithm contract: what every registered suggestion algorithm promises, run against each one.

Pure (no server, no database): :class:`Study` drives an algorithm as the service does, one
``SuggestContext`` per ask, with the history stored as the service stores it (parameters and
suggestion metadata through JSON, the metadata carrying the service's ``algorithm``, ``seed`` and
``index``). Each test is parametrised over every name in ``ALGORITHMS`` with its default settings,
and runs past the start-up into the model phase, which is where model-based algorithms differ.

What an algorithm supports is declared once, in ``CAPABILITIES``; a new algorithm fails
``test_every_registered_algorithm_declares_its_capabilities`` until someone declares it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pytest

from suggestion_service.algorithms import ALGORITHMS, Algorithm, make_algorithm, validate_algorithm
from suggestion_service.algorithms.base import SuggestContext, Suggestion, TrialView
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace, Value, config_key
from tuning_types.study import AlgorithmSpec, Direction, Fidelity, Objective, StudySpec

pytestmark = pytest.mark.contract

# Every kind of parameter: log floats and ints, stepped floats and ints, categoricals of mixed
# types (True is not 1), conditional children of two kinds, a fixed value.
MIXED = SearchSpace((
    Float("lr", 1e-4, 1.0, log=True),
    Float("x", -3.0, 3.0),
    Float("dropout", 0.0, 0.5, step=0.1),
    Int("n", 1, 1000, log=True),
    Int("leaves", 8, 64, step=8),
    Categorical("booster", ["gbtree", "dart", True, 3]),
    Float("rate", 0.0, 0.5, when={"booster": "dart"}),
    Int("drop", 1, 3, when={"booster": ["dart", 3]}),
    Fixed("seed", 7),
))
# Finite (grid can search it), conditional, 4 x 3 x (2 + 3) = 60 points.
FINITE = SearchSpace((
    Int("depth", 1, 4),
    Float("lr", 0.1, 0.3, step=0.1),
    Categorical("booster", ["gbtree", "dart", True]),
    Int("drop", 1, 3, when={"booster": ["dart"]}),
    Fixed("seed", 7),
))
# 8 configurations: 6 proposals repeat one unless an algorithm avoids it on purpose.
SMALL = SearchSpace((Int("a", 1, 4), Categorical("b", ["x", "y"])))
SPACES = {"mixed": MIXED, "finite": FINITE}

LOSS = (Objective("loss", Direction.MINIMIZE),)
THREE = (Objective("loss", Direction.MINIMIZE), Objective("acc", Direction.MAXIMIZE),
         Objective("size", Direction.MINIMIZE))
PENDING = (TrialState.ACTIVE, TrialState.QUEUED)


def _model_phase(metadata: Mapping) -> bool:
    """A proposal of a model-based algorithm that its model made (no start-up point, no fallback)."""
    return metadata.get("phase") == "model" and "fallback" not in metadata


def _pbt_phase(metadata: Mapping) -> bool:
    """PBT's "model": a segment past generation 0, decided from the members' results."""
    return metadata["pbt"]["generation"] >= 1


@dataclass(frozen=True)
class Capabilities:
    # Proposals before the algorithm's model takes over, under default settings; None: no model.
    startup: Callable[[Algorithm], int] | None
    # Whether a proposal came from the model (checked past the start-up).
    from_model: Callable[[Mapping], bool] | None
    multi_objective: bool
    # Never proposes a configuration that is running (pending) while another one remains.
    avoids_pending: bool
    # Searches only finite spaces.
    finite_only: bool = False
    # The seed changes the proposals.
    seeded: bool = True


CAPABILITIES: dict[str, Capabilities] = {
    "random": Capabilities(None, None, multi_objective=True, avoids_pending=True),
    "quasi_random": Capabilities(None, None, multi_objective=True, avoids_pending=False),
    "grid": Capabilities(None, None, multi_objective=True, avoids_pending=True, finite_only=True, seeded=False),
    "tpe": Capabilities(lambda a: a.settings.n_startup_trials, _model_phase, multi_objective=True,
                        avoids_pending=True),
    "bohb": Capabilities(lambda a: a.settings.n_startup_trials, _model_phase, multi_objective=False,
                         avoids_pending=True),
    "gp": Capabilities(lambda a: a.n_startup_trials, _model_phase, multi_objective=True, avoids_pending=True),
    "auto": Capabilities(lambda a: a.delegates["gp"].n_startup_trials, _model_phase, multi_objective=True,
                         avoids_pending=True),
    "pbt": Capabilities(lambda a: a.settings.population_size, _pbt_phase, multi_objective=False,
                        avoids_pending=False),
}
NAMES = sorted(ALGORITHMS)
# Proposals asked past the start-up: one batch of 2, the second proposed with the first running
# (more would only cost time: a GP proposal takes about a second on a busy machine).
PAST_STARTUP = 2


def spec(name: str, space: SearchSpace, *, objectives=LOSS, constraints: tuple[str, ...] = (), seed: int = 5,
         **settings) -> StudySpec:
    """A study of ``name`` with default settings unless given (bohb needs a fidelity, pbt refuses one)."""
    return StudySpec(space, objectives, AlgorithmSpec(name, settings), seed=seed, constraints=constraints,
                     fidelity=Fidelity("rounds", 1, 27) if name == "bohb" else None)


def problem(params: Mapping[str, Value], n_objectives: int = 1, n_constraints: int = 0):
    """A deterministic function of any configuration: objective values and constraint values."""
    numbers = [float(v) for _, v in sorted(params.items()) if type(v) in (int, float)]
    loss = sum(math.sin(1.7 * v + i) for i, v in enumerate(numbers)) + 0.5 * (params.get("booster") == "dart")
    # The third objective is sometimes infinite (a diverged run), which must not break a model.
    values = (loss, math.cos(loss), math.inf if int(abs(loss) * 10) % 4 == 0 else loss * loss)[:n_objectives]
    constraints = tuple(math.sin(loss + k) - 0.3 for k in range(n_constraints)) or None
    return values, constraints


def peaked(params: Mapping[str, Value]):
    """SMALL's problem: one clear optimum, which a model wants to propose again and again."""
    return (float((params["a"] - 3) ** 2 + (params["b"] != "y")),), None


def stored(value):
    """``value`` as it comes back from the database (JSON), refusing what JSON cannot hold
    (PostgreSQL's json type refuses NaN and Infinity)."""
    return json.loads(json.dumps(value, allow_nan=False))


class Study:
    """One study's trials and counters, kept as the service keeps them, driven ask by ask."""

    def __init__(self, study: StudySpec, *, restart_every_ask: bool = False):
        self.spec = study
        self.restart_every_ask = restart_every_ask
        self.algorithm = make_algorithm(study)
        self.history: list[TrialView] = []
        self.sequence = 0

    def context(self) -> SuggestContext:
        algorithm = self.algorithm
        pending = [t.params for t in self.history if t.state in PENDING]
        return SuggestContext(self.spec.space, self.spec.objectives, self.sequence,
                              pending=pending if algorithm.uses_pending or algorithm.model_based else (),
                              history=tuple(self.history) if algorithm.uses_history else (),
                              constraints=self.spec.constraints)

    def ask(self, count: int) -> list[Suggestion]:
        if self.restart_every_ask:  # a fresh object (a restart, another replica) sees only what is stored
            self.algorithm = make_algorithm(self.spec)
        suggestions = self.algorithm.suggest(self.context(), count)
        assert len(suggestions) <= count
        for i, s in enumerate(suggestions):
            metadata = stored({"algorithm": self.spec.algorithm.name, "seed": self.spec.seed,
                               "index": self.sequence + i, **s.metadata})
            number = len(self.history)
            # The service gives a trial without a budget of its own the fidelity's maximum.
            budget = s.budget if s.budget is not None else self.spec.fidelity and self.spec.fidelity.max
            self.history.append(TrialView(number, TrialState.ACTIVE, stored(s.params), budget=budget,
                                          id=1000 + number, metadata=metadata))
        self.sequence += len(suggestions)
        return suggestions

    def tell_running(self, answer=None) -> None:
        n_objectives, n_constraints = len(self.spec.objectives), len(self.spec.constraints)
        for i, trial in enumerate(self.history):
            if trial.state in PENDING:
                values, constraints = answer(trial.params) if answer else problem(trial.params, n_objectives,
                                                                                   n_constraints)
                self.history[i] = replace(trial, state=TrialState.COMPLETED, values=tuple(values),
                                          constraints=constraints)

    def run(self, n_trials: int, batch: int = 2, answer=None) -> list[Suggestion]:
        """Asks in batches of ``batch`` (so that asks see running trials) and tells each batch."""
        proposals: list[Suggestion] = []
        while len(proposals) < n_trials:
            got = self.ask(min(batch, n_trials - len(proposals)))
            if not got and not any(t.state in PENDING for t in self.history):
                break  # exhausted
            proposals += got
            self.tell_running(answer)
        return proposals


def startup(name: str, study: StudySpec) -> int:
    capabilities = CAPABILITIES[name]
    return 0 if capabilities.startup is None else capabilities.startup(make_algorithm(study))


def assert_valid(space: SearchSpace, proposals) -> None:
    for s in proposals:
        # complete() accepts exactly the valid assignments: active parameters only, each of its
        # exact type (no numpy scalars, True is not 1), inside its range, on its step.
        assert space.complete(s.params) == s.params, s.params
        assert list(s.params) == [p for p in space.names if p in s.params]  # in space order


def assert_model_phase_reached(name: str, proposals, after: int) -> None:
    from_model = CAPABILITIES[name].from_model
    if from_model is None:
        return
    late = [dict(s.metadata) for s in proposals[after:]]
    assert late, "the study never got past its start-up"
    assert any(from_model(m) for m in late), f"no proposal came from the model after the start-up: {late}"


def assert_a_restart_proposes_the_same(simulated: Study) -> None:
    """A fresh algorithm object given the stored history proposes what the running one does."""
    context = simulated.context()
    fresh = make_algorithm(simulated.spec).suggest(context, 2)
    assert [s.params for s in fresh] == [s.params for s in simulated.algorithm.suggest(context, 2)]


def cases(*, finite_too: bool = True):
    """(name, space) pairs: every algorithm on every space it can search."""
    for name in NAMES:
        for label, space in SPACES.items():
            if CAPABILITIES[name].finite_only and label != "finite":
                continue
            if label == "finite" and not finite_too and not CAPABILITIES[name].finite_only:
                continue
            yield pytest.param(name, space, id=f"{name}-{label}")


def test_every_registered_algorithm_declares_its_capabilities():
    assert set(CAPABILITIES) == set(ALGORITHMS)


@pytest.mark.parametrize("name, space", list(cases()))
def test_proposals_are_valid_through_start_up_and_model_phase(name, space):
    study = spec(name, space)
    validate_algorithm(study)
    n = startup(name, study)
    proposals = Study(study).run(n + PAST_STARTUP)
    assert len(proposals) == n + PAST_STARTUP
    assert_valid(space, proposals)
    assert_model_phase_reached(name, proposals, n)


@pytest.mark.parametrize("name, space", list(cases(finite_too=False)))
def test_same_seed_and_history_give_the_same_proposals_after_any_restart(name, space):
    study = spec(name, space)
    n = startup(name, study) + PAST_STARTUP
    kept = Study(study)
    kept_proposals = kept.run(n)
    # A fresh algorithm object for every ask: a restarted replica given the same stored history.
    restarted = Study(study, restart_every_ask=True)
    assert [s.params for s in restarted.run(n)] == [s.params for s in kept_proposals]
    assert [s.metadata for s in restarted.ask(1)] == [s.metadata for s in kept.ask(1)]
    if CAPABILITIES[name].seeded:
        other = Study(spec(name, space, seed=6)).run(n)
        assert [s.params for s in other] != [s.params for s in kept_proposals]


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_is_the_same_as_its_pieces_asked_with_the_earlier_ones_pending(name):
    space = FINITE if CAPABILITIES[name].finite_only else MIXED
    whole = Study(spec(name, space)).ask(12)
    pieces = Study(spec(name, space))
    first = pieces.ask(5)
    assert [s.params for s in first + pieces.ask(7)] == [s.params for s in whole]


@pytest.mark.parametrize("name", [n for n in NAMES if CAPABILITIES[n].avoids_pending])
def test_a_running_configuration_is_not_proposed_again(name):
    study = spec(name, SMALL)
    n = startup(name, study)
    for phase, completed in (("start-up", 0), ("model", n + 2)):
        simulated = Study(study)
        simulated.run(completed, batch=1, answer=peaked)
        running = simulated.ask(3)
        more = simulated.ask(3)
        keys = [config_key(s.params) for s in running + more]
        assert len(set(keys)) == len(keys), f"{phase}: a running configuration was proposed again: {keys}"
        if phase == "model":
            assert_model_phase_reached(name, running + more, 0)


@pytest.mark.parametrize("name", NAMES)
def test_a_multi_objective_study_is_searched_or_refused_naming_the_field(name):
    space = FINITE if CAPABILITIES[name].finite_only else MIXED
    for constraints in ((), ("c",)):
        study = spec(name, space, objectives=THREE, constraints=constraints)
        if not CAPABILITIES[name].multi_objective:
            with pytest.raises(InvalidArgument, match="one objective") as error:
                validate_algorithm(study)
            assert error.value.field == "spec.objectives"
            continue
        validate_algorithm(study)
        n = startup(name, study) or 8  # enough trials for an infinite value
        simulated = Study(study)
        proposals = simulated.run(n + PAST_STARTUP)
        assert any(math.isinf(t.values[2]) for t in simulated.history)
        assert_valid(space, proposals)
        assert_model_phase_reached(name, proposals, n)
        assert_a_restart_proposes_the_same(simulated)


@pytest.mark.parametrize("name", NAMES)
def test_a_constrained_study_is_searched(name):
    space = FINITE if CAPABILITIES[name].finite_only else MIXED
    study = spec(name, space, constraints=("memory", "latency"))
    validate_algorithm(study)
    n = startup(name, study) or 8  # enough trials for feasible and infeasible ones
    simulated = Study(study)
    proposals = simulated.run(n + PAST_STARTUP)
    assert any(not t.feasible for t in simulated.history) and any(t.feasible for t in simulated.history)
    assert_valid(space, proposals)
    assert_model_phase_reached(name, proposals, n)
    assert_a_restart_proposes_the_same(simulated)


@pytest.mark.parametrize("name", NAMES)
def test_failed_pruned_and_stale_trials_in_the_history_do_not_break_an_algorithm(name):
    space = FINITE if CAPABILITIES[name].finite_only else MIXED
    study = spec(name, space)
    simulated = Study(study)
    n = startup(name, study)
    simulated.run(n)
    # Trials that ended without values, in every way one can, plus one completed with a non-finite loss.
    states = [TrialState.FAILED, TrialState.PRUNED, TrialState.STALE, TrialState.INFEASIBLE]
    for state in states + [TrialState.COMPLETED]:
        [s] = simulated.ask(1) or [None]
        if s is None:
            break
        trial = simulated.history[-1]
        if state is TrialState.COMPLETED:
            simulated.history[-1] = replace(trial, state=state, values=(math.inf,))
        else:
            simulated.history[-1] = replace(trial, state=state, last_step=1.0, last_values=(1.0,))
    proposals = simulated.run(PAST_STARTUP)
    assert_valid(space, proposals)
    assert_model_phase_reached(name, proposals, 0)
