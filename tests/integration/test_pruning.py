"""Multi-fidelity studies and early stopping through a real server, on each backend."""

from __future__ import annotations

import pytest

from suggestion_service.server import serve
from trial_worker import Fidelity, Float, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import InvalidArgument
from tuning_common.grpc_server import ServerOptions

ROUNDS = Fidelity("rounds", 1, 27, 3.0)


def curve(x: float, step: int) -> float:
    """A learning curve whose final loss (and every point of it) is ordered by x."""
    return x + 1.0 / step


def run_trials(study, n: int) -> dict[int, list[int]]:
    """Runs n trials for 27 steps, stopping when told; returns the steps each reported."""
    has_fidelity = study.info.spec.HasField("fidelity")
    reported = {}
    for _ in range(n):
        trial = study.ask()
        assert trial.budget == (27 if has_fidelity else None)
        steps = []
        for step in range(1, 28):
            steps.append(step)
            if trial.report(step, curve(trial.params["x"], step)):
                trial.prune()
                break
        else:
            study.tell(trial, curve(trial.params["x"], 27))
        reported[trial.number] = steps
    return reported


def test_asha_stops_worse_trials_at_rungs_and_decides_the_same_after_a_restart(database_url: str):
    running = serve(database_url, ServerOptions(port=0))
    with SuggestionClient(running.address) as client:
        study = client.create_study("asha", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=5,
                                    fidelity=ROUNDS, pruner="asha")
        assert study.info.spec.fidelity.max == 27 and study.info.spec.pruner.name == "asha"
        reported = run_trials(study, 12)
        trials = {t.number: t for t in study.trials()}
        pruned = [n for n, t in trials.items() if t.state == pb.TRIAL_STATE_PRUNED]
        assert pruned and len(pruned) < 12
        # Stops happen only at rungs (1, 3, 9), and a pruned trial keeps its last report, as a
        # report: it has no final value.
        assert {reported[n][-1] for n in pruned} <= {1, 3, 9}
        for n in pruned:
            last = trials[n].last_measurement
            assert list(trials[n].metrics) == [] and last.step == reported[n][-1]
            assert last.metrics[0].value == pytest.approx(curve(trials[n].parameters["x"].float_value, last.step))
        # Survivors of the first rung beat the pruned ones there (x orders every curve).
        first_rung_losers = [n for n in pruned if reported[n][-1] == 1]
        best_x = min(t.parameters["x"].float_value for t in trials.values())
        assert all(trials[n].parameters["x"].float_value > best_x for n in first_rung_losers)

        # A trial reports past a rung: the verdict is a function of stored values, so a
        # retried report, and the same report after a restart, get the same answer.
        probe = study.ask()
        bad = curve(1.0, 3)
        probe.report(1, curve(1.0, 1))
        verdict = probe.report(3, bad)
    running.stop()
    running = serve(database_url, ServerOptions(port=0))
    with SuggestionClient(running.address) as client:
        answer = client.call("ReportIntermediate", api.ReportIntermediateRequest(
            trial_id=probe.id, worker_id=study.worker_id, step=3, metrics=[pb.Metric(name="loss", value=bad)]))
    running.stop()
    assert answer.should_stop == verdict is True


def test_median_rule_and_hyperband_run_end_to_end(client: SuggestionClient):
    median = client.create_study("median", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=2,
                                 pruner="median", pruner_settings={"n_startup_trials": 3})
    reported = run_trials(median, 12)
    trials = list(median.trials())
    assert [t.number for t in trials if t.state == pb.TRIAL_STATE_PRUNED]  # some were stopped
    assert all(len(reported[t.number]) == 27 for t in trials[:3])  # the first 3 are the reference
    hyperband = client.create_study("hb", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=2,
                                    fidelity=ROUNDS, pruner="hyperband")
    run_trials(hyperband, 15)
    counts = hyperband.refresh().trial_counts
    assert counts.completed + counts.pruned == 15 and counts.pruned > 0


def test_bohb_with_hyperband_end_to_end(client: SuggestionClient):
    study = client.create_study("bohb", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=4,
                                algorithm="bohb", algorithm_settings={"n_startup_trials": 5},
                                fidelity=ROUNDS, pruner="hyperband")
    run_trials(study, 20)
    trials = list(study.trials())
    assert len(trials) == 20 and any(t.state == pb.TRIAL_STATE_PRUNED for t in trials)
    later = [t.suggestion_metadata for t in trials[-5:]]
    assert all(m["algorithm"] == "bohb" for m in later) and any("model_budget" in m for m in later)


def test_asha_judges_on_the_metric_its_settings_name(client: SuggestionClient):
    # Maximise F1 but prune on validation logloss: early F1 is a poor signal.
    study = client.create_study("f1", [Float("x", 0, 1)], objectives={"val_f1": "maximize"}, seed=3,
                                fidelity=ROUNDS, pruner="asha",
                                pruner_settings={"metric": "val_logloss", "direction": "minimize"})
    assert dict(study.info.spec.pruner.settings) == {"metric": "val_logloss", "direction": "minimize"}
    first, best_f1, no_logloss, best_logloss = (study.ask() for _ in range(4))
    assert not first.report(1, {"val_f1": 0.0, "val_logloss": 0.3})  # the first at a rung goes on
    # The best F1 at rung 1 but the worst logloss: stopped (2 at the rung keep 1), and a
    # repeated report gets the same verdict.
    assert best_f1.report(1, {"val_f1": 0.9, "val_logloss": 0.7})
    assert best_f1.report(1, {"val_f1": 0.9, "val_logloss": 0.7})
    best_f1.prune()
    # Without val_logloss there is no decision, at any rung, however bad the F1 is.
    assert not any(no_logloss.report(step, {"val_f1": 0.0}) for step in range(1, 27))
    study.tell(no_logloss, {"val_f1": 0.0})
    # The worst F1 but the best logloss among the 3 with a logloss at rung 1: goes on.
    assert not best_logloss.report(1, {"val_f1": 0.0, "val_logloss": 0.1})
    states = {t.number: t.state for t in study.trials()}
    assert states[best_f1.number] == pb.TRIAL_STATE_PRUNED
    assert states[no_logloss.number] == pb.TRIAL_STATE_COMPLETED


def test_pruning_validation_through_the_api(client: SuggestionClient):
    with pytest.raises(InvalidArgument) as error:
        client.create_study("bad", [Float("x", 0, 1)], objectives={"loss": "minimize"}, pruner="asha")
    assert error.value.field == "spec.fidelity"
    with pytest.raises(InvalidArgument) as error:
        client.create_study("bad", [Float("x", 0, 1)], objectives={"loss": "minimize", "t": "minimize"},
                            pruner="median")
    assert error.value.field == "spec.pruner"
    with pytest.raises(InvalidArgument) as error:  # another metric than the objective needs a direction
        client.create_study("bad", [Float("x", 0, 1)], objectives={"val_f1": "maximize"}, fidelity=ROUNDS,
                            pruner="asha", pruner_settings={"metric": "val_logloss"})
    assert error.value.field == "spec.pruner.settings.direction"
    with pytest.raises(InvalidArgument) as error:
        client.create_study("bad", [Float("x", 0, 1)], objectives={"val_f1": "maximize"}, pruner="median",
                            pruner_settings={"metric": "val_logloss", "direction": "lower"})
    assert error.value.field == "spec.pruner.settings.direction"
