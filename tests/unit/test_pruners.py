"""Pruners decide from values alone (pure; the service feeds them stored measurements)."""

from __future__ import annotations

from collections import Counter

import pytest

from suggestion_service.algorithms import validate_algorithm
from suggestion_service.algorithms.pruners import AshaPruner, HyperbandPruner, MedianPruner, PeerValue
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Float
from tuning_common.errors import InvalidArgument
from tuning_types.space import SearchSpace
from tuning_types.study import Direction, Fidelity, Objective, PrunerSpec, StudySpec

LOSS = Objective("loss", Direction.MINIMIZE)
ACC = Objective("acc", Direction.MAXIMIZE)
ROUNDS = Fidelity("rounds", 1, 81, 3.0)
DONE, RUNNING = TrialState.COMPLETED, TrialState.ACTIVE


def peers(*values: float, state: TrialState = DONE) -> list[PeerValue]:
    return [PeerValue(i + 100, state, v) for i, v in enumerate(values)]


def test_median_rule():
    pruner = MedianPruner(LOSS, None, MedianPruner.Settings(n_startup_trials=3, n_warmup_steps=2), seed=0)
    assert pruner.checkpoint(0, 0, 1) is None  # warm-up
    checkpoint = pruner.checkpoint(0, 2, 3)
    assert checkpoint.step == 3 and checkpoint.completed_only
    assert not pruner.should_stop(0, 9.0, peers(1.0, 2.0))  # too few completed trials yet
    assert pruner.should_stop(0, 2.5, peers(1.0, 2.0, 3.0))
    assert not pruner.should_stop(0, 1.5, peers(1.0, 2.0, 3.0))
    # Running trials are not a reference; maximising flips the comparison.
    assert not pruner.should_stop(0, 2.5, peers(1.0, 2.0, 3.0, state=RUNNING))
    maximising = MedianPruner(ACC, None, MedianPruner.Settings(n_startup_trials=3), seed=0)
    assert maximising.should_stop(0, 1.5, peers(1.0, 2.0, 3.0))


def test_asha_checkpoints_are_the_rungs_a_report_crosses():
    pruner = AshaPruner(LOSS, ROUNDS, AshaPruner.Settings(), seed=0)
    assert pruner.rungs_for(0) == [1, 3, 9, 27]
    assert pruner.checkpoint(0, None, 1).step == 1
    assert pruner.checkpoint(0, 1, 2) is None
    assert pruner.checkpoint(0, 2, 10).step == 9  # skipped 3: the highest rung passed decides
    assert pruner.checkpoint(0, 27, 81) is None  # the full budget is not a rung


def test_asha_keeps_the_best_third():
    pruner = AshaPruner(LOSS, ROUNDS, AshaPruner.Settings(), seed=0)
    assert not pruner.should_stop(0, 5.0, [])  # the first at a rung always goes on
    assert pruner.should_stop(0, 5.0, peers(1.0))  # 2 at the rung: keep 1
    five = peers(1.0, 2.0, 3.0, 4.0, 5.0)
    assert not pruner.should_stop(0, 1.5, five)  # 6 at the rung: keep the best 2
    assert pruner.should_stop(0, 2.5, five)
    # Unlike the median rule, every trial that reached the rung competes, running or not.
    assert pruner.should_stop(0, 2.5, peers(0.0, state=RUNNING))
    waits = AshaPruner(LOSS, ROUNDS, AshaPruner.Settings(bootstrap_count=4), seed=0)
    assert not waits.should_stop(0, 5.0, peers(1.0, 2.0))


def test_hyperband_brackets_are_deterministic_weighted_and_separate():
    pruner = HyperbandPruner(LOSS, ROUNDS, HyperbandPruner.Settings(), seed=7)
    again = HyperbandPruner(LOSS, ROUNDS, HyperbandPruner.Settings(), seed=7)
    brackets = [pruner.bracket(n) for n in range(5000)]
    assert brackets == [again.bracket(n) for n in range(5000)]
    counts = Counter(brackets)
    assert set(counts) == {0, 1, 2, 3, 4}
    assert counts[0] > counts[1] > counts[4]  # aggressive brackets get more trials
    trial = next(n for n in range(100) if pruner.bracket(n) == 1)
    assert pruner.rungs_for(trial) == [3, 9, 27]
    rivals = [PeerValue(n, DONE, 0.0) for n in range(200)]
    assert {pruner.bracket(p.number) for p in pruner.competitors(trial, rivals)} == {1}


def _spec(pruner: PrunerSpec | None, fidelity: Fidelity | None = ROUNDS, objectives=(LOSS,)) -> StudySpec:
    from tuning_types.study import AlgorithmSpec

    return StudySpec(SearchSpace((Float("x", 0, 1),)), objectives, AlgorithmSpec("random"), seed=1,
                     fidelity=fidelity, pruner=pruner)


@pytest.mark.parametrize("spec, field", [
    (_spec(PrunerSpec("magic")), "spec.pruner.name"),
    (_spec(PrunerSpec("asha"), fidelity=None), "spec.fidelity"),
    (_spec(PrunerSpec("median", {"n_startup_trials": 0})), "spec.pruner.settings.n_startup_trials"),
    (_spec(PrunerSpec("asha", {"eta": 2})), "spec.pruner.settings.eta"),
])
def test_pruner_validation(spec, field):
    with pytest.raises(InvalidArgument) as error:
        spec.validate()
        validate_algorithm(spec)
    assert error.value.field == field


def test_pruning_needs_one_objective_and_a_sane_fidelity():
    with pytest.raises(InvalidArgument) as error:
        _spec(PrunerSpec("median"), objectives=(LOSS, ACC)).validate()
    assert error.value.field == "spec.pruner"
    with pytest.raises(InvalidArgument) as error:
        _spec(None, fidelity=Fidelity("rounds", 10, 5)).validate()
    assert error.value.field == "spec.fidelity.max"
    with pytest.raises(InvalidArgument) as error:
        _spec(None, fidelity=Fidelity("rounds", 1, 5, 1.0)).validate()
    assert error.value.field == "spec.fidelity.reduction_factor"


F1 = Objective("val_f1", Direction.MAXIMIZE)


@pytest.mark.parametrize("name", ["median", "asha", "hyperband"])
@pytest.mark.parametrize("settings, field", [
    ({"direction": "down"}, "spec.pruner.settings.direction"),
    ({"direction": "MINIMIZE"}, "spec.pruner.settings.direction"),
    ({"metric": "val_logloss"}, "spec.pruner.settings.direction"),  # another metric needs a direction
    ({"metric": "val logloss", "direction": "minimize"}, "spec.pruner.settings.metric"),
    ({"metric": ".hidden", "direction": "minimize"}, "spec.pruner.settings.metric"),
    ({"metric": 3, "direction": "minimize"}, "spec.pruner.settings.metric"),
    ({"direction": "minimize"}, "spec.pruner.settings.direction"),  # contradicts the maximised objective
    ({"metric": "val_f1", "direction": "minimize"}, "spec.pruner.settings.direction"),
])
def test_metric_and_direction_settings_are_validated(name, settings, field):
    spec = _spec(PrunerSpec(name, settings), objectives=(F1,))
    with pytest.raises(InvalidArgument) as error:
        spec.validate()
        validate_algorithm(spec)
    assert error.value.field == field


@pytest.mark.parametrize("settings", [
    {},
    {"metric": "val_f1"},
    {"direction": "maximize"},
    {"metric": "val_f1", "direction": "maximize"},
    {"metric": "val_logloss", "direction": "minimize"},
    {"metric": "val_auc", "direction": "maximize", "bootstrap_count": 2},
])
def test_valid_metric_and_direction_settings(settings):
    spec = _spec(PrunerSpec("asha", settings), objectives=(F1,))
    spec.validate()
    validate_algorithm(spec)


def test_the_judged_metric_and_sign_follow_the_settings():
    default = AshaPruner(F1, ROUNDS, AshaPruner.Settings(), seed=0)
    assert (default.metric, default.sign) == ("val_f1", -1.0)
    logloss = AshaPruner(F1, ROUNDS, AshaPruner.parse_settings(
        {"metric": "val_logloss", "direction": "minimize"}, "spec.pruner.settings"), seed=0)
    assert (logloss.metric, logloss.sign) == ("val_logloss", 1.0)
    # With F1 (maximised) a high value survives; with logloss (minimised) it is the worst.
    assert not default.should_stop(0, 0.9, peers(0.1))
    assert logloss.should_stop(0, 0.9, peers(0.1))
    auc = MedianPruner(LOSS, None, MedianPruner.Settings(metric="val_auc", direction="maximize",
                                                         n_startup_trials=3), seed=0)
    assert (auc.metric, auc.sign) == ("val_auc", -1.0)
    assert auc.should_stop(0, 1.5, peers(1.0, 2.0, 3.0)) and not auc.should_stop(0, 2.5, peers(1.0, 2.0, 3.0))
    with pytest.raises(InvalidArgument) as error:
        HyperbandPruner(F1, ROUNDS, HyperbandPruner.Settings(metric="val_logloss"), seed=0)
    assert error.value.field == "spec.pruner.settings.direction"
