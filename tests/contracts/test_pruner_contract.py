"""The pruner contract: what every pruner (early-stopping rule) in ``PRUNERS`` promises.

A pruner's verdict is a pure function of stored measurements: the same peers' values give the
same decision whatever order the database returns them in and whichever object (a restart,
another replica) decides. The pure tests call the pruners directly; the replica test runs two
service processes on one database and asks both for the verdict on the same report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from suggestion_service.algorithms.pruners import PRUNERS, PeerValue, Pruner
from suggestion_service.domain.trial import TrialState
from trial_worker import Fidelity, Float, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_types.study import Direction, Objective
from tuning_types.study import Fidelity as StudyFidelity

pytestmark = pytest.mark.contract

ROUNDS = StudyFidelity("rounds", 1, 27, 3.0)
LOSS = Objective("loss", Direction.MINIMIZE)
ACC = Objective("acc", Direction.MAXIMIZE)
STATES = (TrialState.COMPLETED, TrialState.ACTIVE, TrialState.PRUNED)


@dataclass(frozen=True)
class PrunerCase:
    # Settings that let the pruner decide early in a short study (defaults otherwise).
    settings: dict


CASES = {
    "median": PrunerCase({"n_startup_trials": 3}),
    "asha": PrunerCase({}),
    "hyperband": PrunerCase({}),
}
NAMES = sorted(PRUNERS)


def make(name: str, objective: Objective = LOSS, seed: int = 7) -> Pruner:
    cls = PRUNERS[name]
    return cls(objective, ROUNDS, cls.parse_settings(CASES[name].settings, "spec.pruner.settings"), seed)


def test_every_registered_pruner_has_a_case():
    assert set(CASES) == set(PRUNERS)


def histories(seed: int, count: int = 200):
    """Random decision problems: (trial number, step moved from, step reached, value, peers)."""
    rng = random.Random(seed)
    for _ in range(count):
        peers = [PeerValue(n, rng.choice(STATES), rng.uniform(0, 1)) for n in rng.sample(range(1, 300), rng.randint(0, 12))]
        last = rng.choice([None, 0, 1, 2, 3, 8])
        yield rng.randrange(300, 400), last, rng.randint((last or 0) + 1, 27), rng.uniform(0, 1), peers


@pytest.mark.parametrize("name", NAMES)
def test_the_verdict_is_a_function_of_the_stored_values_in_any_order(name):
    decided = make(name)
    verdicts = []
    for number, last, step, value, peers in histories(1):
        checkpoint = decided.checkpoint(number, last, step)
        # A fresh object (a restart, another replica) finds the same decision point ...
        assert make(name).checkpoint(number, last, step) == checkpoint
        if checkpoint is None:
            continue
        verdict = decided.should_stop(number, value, peers)
        # ... and the same verdict, whatever order the peers come in.
        shuffled = random.Random(number).sample(peers, len(peers))
        assert make(name).should_stop(number, value, shuffled) == verdict
        assert decided.should_stop(number, value, list(reversed(peers))) == verdict
        verdicts.append(verdict)
    assert True in verdicts and False in verdicts  # both verdicts were exercised


@pytest.mark.parametrize("name", NAMES)
def test_the_first_and_the_best_at_a_checkpoint_go_on_and_the_worst_stops(name):
    pruner = make(name)
    for number in range(300, 340):
        checkpoint = pruner.checkpoint(number, None, 27)
        if checkpoint is None:
            continue
        assert not pruner.should_stop(number, 5.0, [])
        # Many completed peers at the checkpoint (hyperband compares within a bracket: give
        # enough peers that every bracket has several).
        peers = [PeerValue(n, TrialState.COMPLETED, 1.0 + n / 1000) for n in range(200)]
        assert not pruner.should_stop(number, 0.5, peers)
        assert pruner.should_stop(number, 2.0, peers)


@pytest.mark.parametrize("name", NAMES)
def test_maximising_mirrors_minimising(name):
    low, high = make(name, LOSS), make(name, ACC)
    for number, last, step, value, peers in histories(2):
        if low.checkpoint(number, last, step) is None:
            continue
        mirrored = [PeerValue(p.number, p.state, -p.value) for p in peers]
        assert high.should_stop(number, -value, mirrored) == low.should_stop(number, value, peers)


# -- two replicas on one database ---------------------------------------------------------------


def curve(x: float, step: int) -> float:
    return x + 1.0 / step


@pytest.mark.parametrize("name", NAMES)
def test_two_replicas_give_the_same_verdict_on_every_report(name, database_url, spawn_server):
    a = spawn_server(database_url)
    b = spawn_server(database_url)
    with SuggestionClient(a.address) as client_a, SuggestionClient(b.address) as client_b:
        study = client_a.create_study(f"prune-{name}", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=3,
                                      fidelity=Fidelity("rounds", 1, 27, 3.0), pruner=name,
                                      pruner_settings=CASES[name].settings)

        def report(client, trial, step: int) -> bool:
            return client.call("ReportIntermediate", api.ReportIntermediateRequest(
                trial_id=trial.id, worker_id=study.worker_id, step=step,
                metrics=[pb.Metric(name="loss", value=curve(trial.params["x"], step))])).should_stop

        verdicts = []
        for i in range(14):
            trial = study.ask()
            # Alternate which replica hears a report first; the other hears it repeated.
            first, second = (client_a, client_b) if i % 2 else (client_b, client_a)
            for step in range(1, 28):
                verdict = report(first, trial, step)
                assert report(second, trial, step) == verdict, f"trial {trial.number} step {step}"
                verdicts.append(verdict)
                if verdict:
                    trial.prune()
                    break
            else:
                study.tell(trial, curve(trial.params["x"], 27))
        assert True in verdicts  # some trial was stopped: the replicas agreed on real decisions
