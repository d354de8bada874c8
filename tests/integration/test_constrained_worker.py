"""Constrained studies from the worker side, against real services: the Tuner with
``ctx.report_constraints``, a train function that forgets them, and an external command that
states them in a JSON line."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from trial_worker import tune
from trial_worker.client import SuggestionClient
from trial_worker.command import CommandTrain
from trial_worker.space import Float
from trial_worker.tracking import TrackingClient
from trial_worker.worker import COMPLETED, FAILED, Worker, WorkerConfig
from tuning.suggestion.v1 import study_pb2 as pb


@pytest.fixture
def services(tmp_path: Path, spawn_server) -> tuple[str, str]:
    suggestion = spawn_server(f"sqlite:///{tmp_path / 's.db'}", "--lease-check-seconds", "0.3")
    tracking = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", str(tmp_path / "artifacts"),
                            module="tracking_service")
    return suggestion.address, tracking.address


def constrained_train(ctx):
    x = ctx.params["x"]
    # Smaller x is better, but only x >= 0.5 is feasible: the best trial has the smallest x >= 0.5.
    ctx.report_constraints(x_too_small=0.5 - x)
    return {"loss": x}


def test_the_tuner_reports_constraints_and_its_best_trial_is_feasible(services):
    config = tune.TunerConfig(metric="loss", mode="min", algorithm="tpe", algorithm_settings={"n_startup_trials": 4},
                              num_trials=10, seed=5, constraints=["x_too_small"], suggestion_address=services[0],
                              tracking_address=services[1], progress=False)
    results = tune.Tuner(constrained_train, {"x": tune.uniform(0.0, 1.0)}, config).run()
    told = [t for t in results.trials if t.state == pb.TRIAL_STATE_COMPLETED]
    assert len(told) == 10
    for trial in told:
        x = trial.parameters["x"].float_value
        assert list(trial.constraints) == [pytest.approx(0.5 - x)] and trial.feasible == (x >= 0.5)
    feasible = [t.parameters["x"].float_value for t in told if t.feasible]
    assert feasible and results.best_params["x"] == min(feasible)
    frame = results.to_dataframe()
    assert frame["feasible"].tolist() == [t.feasible for t in results.trials]
    # Each trial's run carries the constraint values and the verdict, for MLflow users.
    with TrackingClient(services[1]) as tracking:
        for trial in told:
            run = tracking.get_run(trial.run_id)
            logged = {m.key: m.value for m in run.latest_metrics}
            assert logged["constraint.x_too_small"] == pytest.approx(trial.constraints[0])
            assert {t.key: t.value for t in run.tags}["tuning.feasible"] == str(trial.feasible)


def test_a_constrained_trial_without_constraint_values_fails_with_the_reason(services):
    with SuggestionClient(services[0]) as client:
        client.create_study("forgot", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                            constraints=["c"], max_trials=2, seed=1)
        worker = Worker(lambda ctx: {"loss": ctx.params["x"]},
                        WorkerConfig(study="forgot", suggestion_address=services[0], tracking=False,
                                     max_consecutive_failures=0))
        summary = worker.run()
        assert [r.outcome for r in summary.results] == [FAILED, FAILED]
        for trial in client.get_study("forgot").trials():
            assert trial.state == pb.TRIAL_STATE_FAILED and "constraints" in trial.reason
            assert "a successful tell needs a value for each" in trial.reason


def test_report_constraints_checks_its_input_against_the_declared_names(services):
    errors = []

    def train(ctx):
        assert ctx.constraint_names == ["a", "b"]
        for bad in ([1.0], {"a": 1.0}, {"a": 1.0, "b": 2.0, "z": 0.0}, [float("nan"), 0.0]):
            with pytest.raises(ValueError) as error:
                ctx.report_constraints(bad)
            errors.append(str(error.value))
        ctx.report_constraints([1.0, -1.0])
        ctx.report_constraints(b=-2.0, a=-1.0)  # replaces the earlier values
        return ctx.params["x"]

    with SuggestionClient(services[0]) as client:
        study = client.create_study("names", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                                    constraints=["a", "b"], max_trials=1, seed=1)
        summary = Worker(train, WorkerConfig(study="names", suggestion_address=services[0], tracking=False)).run()
        assert [r.outcome for r in summary.results] == [COMPLETED], summary.results
        [trial] = study.trials()
        assert list(trial.constraints) == [-1.0, -2.0] and trial.feasible
    assert len(errors) == 4 and "finite" in errors[-1] and "unknown ['z']" in errors[2]


COMMAND = textwrap.dedent("""\
    import json, os
    x = json.loads(os.environ["TUNING_PARAMS"])["x"]
    names = json.loads(os.environ["TUNING_CONSTRAINTS"])
    print(json.dumps({"constraints": {names[0]: 0.5 - x}}))
    print(json.dumps({"loss": x}))
""")


def test_an_external_command_states_constraints_in_a_json_line(services, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(COMMAND)
    with SuggestionClient(services[0]) as client:
        study = client.create_study("cmd", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                                    constraints=["x_too_small"], max_trials=4, seed=2)
        train = CommandTrain([sys.executable, str(script)], echo=False)
        summary = Worker(train, WorkerConfig(study="cmd", suggestion_address=services[0], tracking=False)).run()
        assert [r.outcome for r in summary.results] == [COMPLETED] * 4, summary.results
        for trial in study.trials():
            x = trial.parameters["x"].float_value
            assert list(trial.constraints) == [pytest.approx(0.5 - x)] and trial.feasible == (x >= 0.5)


def test_a_malformed_constraints_line_fails_the_trial(services, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text('import json\nprint(json.dumps({"constraints": {"x_too_small": "big"}}))\n'
                      'print(json.dumps({"loss": 1.0}))\n')
    with SuggestionClient(services[0]) as client:
        study = client.create_study("bad-cmd", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                                    constraints=["x_too_small"], max_trials=1, seed=2)
        train = CommandTrain([sys.executable, str(script)], echo=False)
        Worker(train, WorkerConfig(study="bad-cmd", suggestion_address=services[0], tracking=False,
                                   max_consecutive_failures=0)).run()
        [trial] = study.trials()
        assert trial.state == pb.TRIAL_STATE_FAILED and "constraints must be" in trial.reason
