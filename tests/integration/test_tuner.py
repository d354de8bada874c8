"""The Tuner API and the train-function helpers against real services (and an embedded suite)."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trial_worker import tune
from trial_worker.client import SuggestionClient
from trial_worker.integrations.sklearn import fit_and_score
from trial_worker.local_suite import LocalSuite, write_state
from trial_worker.tracking import TrackingClient
from trial_worker.tune.tuner import Progress
from trial_worker.worker import COMPLETED, PRUNED, TrialResult, Worker, WorkerConfig
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning_common.errors import TuningError, Unavailable


@pytest.fixture
def services(tmp_path: Path, spawn_server) -> tuple[str, str]:
    suggestion = spawn_server(f"sqlite:///{tmp_path / 's.db'}", "--lease-check-seconds", "0.3")
    tracking = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", str(tmp_path / "artifacts"),
                            module="tracking_service")
    return suggestion.address, tracking.address


@pytest.fixture
def unused_address():
    """An address nothing answers on: a port bound (so no one else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, n) > 0).astype(int)
    return x[: n // 2], y[: n // 2], x[n // 2:], y[n // 2:]


def config(services: tuple[str, str], **kwargs) -> tune.TunerConfig:
    defaults = dict(metric="val_f1", mode="max", algorithm="random", num_trials=6, max_concurrent_trials=2, seed=3,
                    suggestion_address=services[0], tracking_address=services[1], progress=False)
    return tune.TunerConfig(**{**defaults, **kwargs})


def logistic_train(ctx):
    from sklearn.linear_model import LogisticRegression

    x_train, y_train, x_val, y_val = data()
    return fit_and_score(ctx, LogisticRegression(C=ctx.params["C"]), x_train, y_train, x_val, y_val)


def test_tuner_returns_the_best_trial_its_run_and_its_model(services):
    results = tune.Tuner(logistic_train, {"C": tune.loguniform(1e-4, 10.0), "solver": "lbfgs"},
                         config(services, points_to_evaluate=[{"C": 1.0, "solver": "lbfgs"}])).run()
    assert len(results.trials) == 6 and results.count(pb.TRIAL_STATE_COMPLETED) == 6
    assert results.trials[0].parameters["C"].float_value == 1.0  # the enqueued point goes first
    f1s = [next(m.value for m in t.metrics if m.name == "val_f1") for t in results.trials]
    best = results.best_trial
    assert results.best_result["val_f1"] == max(f1s) == next(m.value for m in best.metrics if m.name == "val_f1")
    assert set(results.best_result) == {"val_f1", "val_accuracy", "val_precision", "val_recall", "val_roc_auc"}
    assert results.best_params["C"] == pytest.approx(best.parameters["C"].float_value)
    assert results.best_params["solver"] == "lbfgs"
    model = results.best_model
    x_train, y_train, x_val, y_val = data()
    assert model.C == pytest.approx(results.best_params["C"])
    with TrackingClient(services[1]) as client:
        run = client.get_run(results.best_run_id)
        assert run.trial.trial_id == best.id and best.run_id == results.best_run_id
        assert {m.key: m.value for m in run.latest_metrics}["val_f1"] == pytest.approx(results.best_result["val_f1"])
    frame = results.to_dataframe()
    assert list(frame["trial"]) == list(range(6)) and set(frame["state"]) == {"COMPLETED"}
    assert {"params.C", "params.solver", "metrics.val_f1", "run_id", "seconds", "worker"} <= set(frame.columns)
    assert frame["run_id"].notna().all()


def test_a_train_function_without_arguments_uses_get_context(services):
    seen = []

    def train():
        ctx = tune.get_context()
        seen.append(ctx.trial_number)
        return -(ctx.params["x"] - 0.3) ** 2

    results = tune.Tuner(train, {"x": tune.uniform(0, 1)}, config(services, metric="score", num_trials=4)).run()
    assert sorted(seen) == [0, 1, 2, 3]
    assert results.best_result["score"] == max(
        next(m.value for m in t.metrics) for t in results.trials)
    with pytest.raises(TuningError, match="no trial is running"):
        tune.get_context()


def test_a_broken_train_function_stops_the_tuner_with_its_error(services):
    def train(ctx):
        raise KeyError("missing column QUALITY")

    with pytest.raises(TuningError, match="failed 3 times in a row.*missing column QUALITY"):
        tune.Tuner(train, {"x": tune.uniform(0, 1)},
                   config(services, num_trials=10, max_concurrent_trials=1, max_consecutive_failures=3)).run()


def test_a_missing_objective_fails_the_trial_with_a_clear_reason(services):
    with pytest.raises(tune.NoTrialCompleted) as error:  # an empty best is no success
        tune.Tuner(lambda ctx: {"accuracy": 0.5}, {"x": tune.uniform(0, 1)},
                   config(services, num_trials=2, max_concurrent_trials=1, max_consecutive_failures=0)).run()
    results = error.value.results
    assert results.count(pb.TRIAL_STATE_FAILED) == 2 and results.best_trial is None
    assert "objective 'val_f1'" in results.trials[0].reason
    assert "no trial of study" in str(error.value) and "2 failed" in str(error.value)
    assert "objective 'val_f1'" in str(error.value)


def test_an_unreachable_tracking_service_stops_the_tuner_at_once(services, unused_address):
    ran = []
    with pytest.raises(Unavailable) as error:
        tune.Tuner(lambda ctx: ran.append(1) or {"val_f1": 0.5}, {"x": tune.uniform(0, 1)},
                   config((services[0], unused_address), num_trials=2)).run()
    assert str(error.value).startswith(f"the tracking service at {unused_address} (TunerConfig.tracking_address) "
                                       "does not answer (not serving: UNAVAILABLE)")
    assert ran == []


def test_without_a_tracking_service_the_tuner_says_so_once_and_still_finds_the_best(services, monkeypatch, capsys):
    monkeypatch.delenv("TUNING_TRACKING_ADDRESS", raising=False)
    results = tune.Tuner(lambda ctx: {"val_f1": ctx.params["x"]}, {"x": tune.uniform(0, 1)},
                         config((services[0], None), num_trials=3)).run()
    assert results.best_params["x"] == results.best_result["val_f1"] and results.best_run_id is None
    said = [line for line in capsys.readouterr().err.splitlines() if "no tracking service" in line]
    assert len(said) == 1 and "ctx.log_model" in said[0]


def test_a_suite_started_by_tuning_up_is_found_through_suite_json(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNING_SUGGESTION_ADDRESS", raising=False)
    monkeypatch.delenv("TUNING_TRACKING_ADDRESS", raising=False)
    home = tmp_path / "home"
    with LocalSuite(home) as suite:
        write_state(suite, owner=None)
        results = tune.Tuner(lambda ctx: {"val_f1": ctx.params["x"]}, {"x": tune.uniform(0, 1)},
                             tune.TunerConfig(metric="val_f1", num_trials=2, home=str(home), progress=False)).run()
    assert (results.suggestion_address, results.tracking_address) == (suite.suggestion_address,
                                                                       suite.tracking_address)
    assert results.best_run_id is not None  # tracked by the suite's tracking service


def test_without_a_suite_the_tuner_starts_an_embedded_one(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNING_SUGGESTION_ADDRESS", raising=False)
    monkeypatch.delenv("TUNING_TRACKING_ADDRESS", raising=False)
    home = tmp_path / "home"
    results = tune.Tuner(logistic_train, {"C": tune.loguniform(1e-3, 10.0)},
                         tune.TunerConfig(metric="val_f1", num_trials=3, algorithm="random", home=str(home),
                                          progress=False)).run()
    assert results.count(pb.TRIAL_STATE_COMPLETED) == 3
    assert (home / "suggestion.db").is_file() and (home / "tracking.db").is_file()
    assert results.best_model is not None  # copied out before the suite stopped


def xgboost_train(ctx):
    from xgboost import XGBClassifier

    x_train, y_train, x_val, y_val = data(2000, seed=1)
    from trial_worker.integrations.xgboost import f1_metric

    # A callable metric comes on top of the objective's logloss: both are reported every round.
    model = XGBClassifier(n_estimators=45, learning_rate=ctx.params["learning_rate"], max_depth=3, n_jobs=1,
                          eval_metric=f1_metric, callbacks=[ctx.xgboost_callback()])
    model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
    return {"val_logloss": float(model.evals_result()["validation_0"]["logloss"][-1])}


def test_the_xgboost_callback_reports_every_round_and_asha_prunes_inside_fit(services):
    results = tune.Tuner(xgboost_train, {"learning_rate": tune.loguniform(1e-4, 0.5)}, config(
        services, metric="val_logloss", mode="min", num_trials=9, max_concurrent_trials=1, pruner="asha",
        fidelity=tune.Fidelity("boosting_rounds", 5, 45, 3))).run()
    pruned = [t for t in results.trials if t.state == pb.TRIAL_STATE_PRUNED]
    completed = [t for t in results.trials if t.state == pb.TRIAL_STATE_COMPLETED]
    assert pruned and completed and len(pruned) + len(completed) == 9
    from trial_worker import SuggestionClient

    with SuggestionClient(services[0]) as client, TrackingClient(services[1]) as tracking:
        for trial in results.trials:
            steps = [m.step for m in client.call("ListMeasurements",
                                                 api.ListMeasurementsRequest(trial_id=trial.id)).measurements]
            history = [m.step for m in tracking.get_metric_history(trial.run_id, "val_logloss")]
            if trial.state == pb.TRIAL_STATE_PRUNED:
                # Every round up to a rung (5 or 15), then fit was stopped.
                assert steps == list(range(1, steps[-1] + 1)) and steps[-1] in (5, 15)
                assert history == steps
            else:
                assert steps == list(range(1, 46))
                assert history == [*steps, 45]  # the rounds, then the final value
                f1 = tracking.get_metric_history(trial.run_id, "val_f1")
                assert [m.step for m in f1] == steps and all(0 <= m.value <= 1 for m in f1)


def test_fit_and_score_trains_partial_fit_estimators_epoch_by_epoch(services):
    from sklearn.linear_model import SGDClassifier

    def train(ctx):
        x_train, y_train, x_val, y_val = data()
        model = SGDClassifier(loss="log_loss", alpha=ctx.params["alpha"], random_state=0)
        return fit_and_score(ctx, model, x_train, y_train, x_val, y_val, epochs=4, scoring=["f1", "accuracy"])

    results = tune.Tuner(train, {"alpha": tune.loguniform(1e-5, 1e-1)}, config(services, num_trials=2)).run()
    assert results.count(pb.TRIAL_STATE_COMPLETED) == 2
    assert set(results.best_result) == {"val_f1", "val_accuracy"}
    with TrackingClient(services[1]) as tracking:
        history = [m.step for m in tracking.get_metric_history(results.best_run_id, "val_f1")]
    assert history == [1, 2, 3, 4, 4]


def test_progress_shows_the_best_value_so_far():
    stream = io.StringIO()
    progress = Progress(4, "val_f1", "max", stream=stream)
    for number, (outcome, value) in enumerate([(COMPLETED, 0.5), (PRUNED, 0.9), (COMPLETED, 0.7), (COMPLETED, 0.6)]):
        progress.update(TrialResult(number, number, outcome, {}, {"val_f1": value}, None, 0.1, "w"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # not a terminal: one line per tenth of the trials (here: each)
    assert "best val_f1=0.5000 (trial 0)" in lines[0]
    assert "best val_f1=0.7000 (trial 2)" in lines[-1] and "4/4 trials" in lines[-1] and "pruned 1" in lines[-1]


def test_worker_config_is_checked():
    with pytest.raises(ValueError, match="parallel"):
        Worker(lambda ctx: 0.0, WorkerConfig(study="s", parallel=0))
    with pytest.raises(ValueError, match="algorithm_settings needs an algorithm"):
        tune.TunerConfig(metric="loss", algorithm_settings={"gamma": 0.2}).validate()
    assert tune.TunerConfig(metric="loss").algorithm is None  # auto for a new study


TUNER_SCRIPT = """
import sys, time
from trial_worker import tune

def train(ctx):
    print("training", flush=True)
    for step in range(1, 100000):
        time.sleep(0.02)
        if ctx.report(step, loss=1.0 / step):
            return None

try:
    tune.Tuner(train, {"x": tune.uniform(0, 1)}, tune.TunerConfig(
        metric="loss", mode="min", num_trials=10, max_concurrent_trials=2, study_name="interrupted",
        suggestion_address=sys.argv[1], tracking_address=sys.argv[2], progress=False)).run()
except tune.Interrupted:
    sys.exit(130)
"""


def test_ctrl_c_hands_the_running_trials_back_and_says_so_in_one_line(services, tmp_path):
    script = tmp_path / "tune.py"
    script.write_text(TUNER_SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), *services], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "training\n"
        assert process.stdout.readline() == "training\n"  # both slots train
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert code == 130 and stderr.splitlines() == [
        "Ctrl-C: stopped asking for trials and handing the running ones back to the study "
        "(Ctrl-C again quits at once)"], stderr
    with SuggestionClient(services[0]) as client:
        trials = list(client.get_study("interrupted").trials())
        handed = [t for t in trials if t.state == pb.TRIAL_STATE_STALE]
        assert len(handed) == 2 and all(t.reason.endswith(": Ctrl-C") for t in handed)
        assert sorted(t.retry_of for t in trials if t.state == pb.TRIAL_STATE_QUEUED) == sorted(t.id for t in handed)
    with TrackingClient(services[1]) as client:  # their runs ended as the study took the trials
        runs = client.search_runs([client.get_experiment_by_name("interrupted").id])
        assert sorted(r.status for r in runs) == [tpb.RUN_STATUS_KILLED] * 2


def test_a_tuner_study_learns_from_a_prior_study(services):
    def train(ctx):
        return -(ctx.params["x"] - 0.3) ** 2

    space = {"x": tune.uniform(0, 1)}
    tune.Tuner(train, space, config(services, metric="score", num_trials=5, study_name="first")).run()
    results = tune.Tuner(train, space, config(services, metric="score", num_trials=2, max_concurrent_trials=1,
                                              algorithm="tpe", study_name="second", prior_studies=["first"])).run()
    with SuggestionClient(services[0]) as client:
        study = client.get_study("second")
        assert list(study.info.spec.prior_studies) == ["first"]
        best_of_first = max(client.get_study("first").trials(), key=lambda t: t.metrics[0].value)
    first = results.trials[0]
    assert first.suggestion_metadata["phase"] == "prior_best"
    assert first.parameters["x"].float_value == best_of_first.parameters["x"].float_value
