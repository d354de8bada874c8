"""`tuning demo`: the reference workflow (shared/seeds/000_*) end to end on this machine.

It starts the suite on embedded defaults (SQLite and an artifact folder under
``$TUNING_HOME``, default ``.tuning``), generates the seed's synthetic wine-quality data,
trains and logs a baseline XGBoost run, tunes the seed's seven hyperparameters and the
decision threshold (``auto``: a Gaussian process for a study this size, the baseline's
configuration tried first, ASHA stopping weak trials inside ``fit`` on validation log-loss,
several trials at once, every trial a tracked run linked to its trial), compares the best
with the baseline on validation F1, evaluates both once on the held-out test set, registers
the winner, points the alias ``champion`` at it, moves it to Production and prints a summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Any

from trial_worker import tracking, tune
from trial_worker.examples import wine
from trial_worker.integrations.sklearn import classification_metrics
from trial_worker.local_suite import LocalSuite
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning_common import telemetry
from tuning_common.settings import data_dir

MODEL_NAME = "wine-quality-xgb"
# ASHA's rungs: 100 and 300 boosting rounds. It compares validation log-loss, not F1: early
# in training a slow learner's F1 is still 0 while its log-loss already ranks it, and
# log-loss does not depend on the decision threshold the study also tunes. No rung at 33:
# with learning rates down to 0.01, log-loss after 33 rounds ranks how fast a configuration
# learns, not how good it ends, and stopping there cut the demo's gain by more than half
# (docs/BENCHMARKS.md, "The reference demo").
FIDELITY = tune.Fidelity("boosting_rounds", wine.MAX_ROUNDS / 3, wine.MAX_ROUNDS, 3)
PRUNE_ON = {"metric": "val_logloss", "direction": "minimize"}


def _baseline(data: wine.Dataset) -> tuple[str, dict[str, float], Any]:
    with tracking.start_run("baseline_xgboost", seed=wine.BASELINE_PARAMS["random_state"]) as run:
        tracking.log_params(wine.BASELINE_PARAMS)
        tracking.log_input("wine-quality-synthetic", data.digest, source="trial_worker.examples.wine",
                           context="training")
        model = wine.fit(wine.BASELINE_PARAMS)
        metrics = classification_metrics(data.y_val, model.predict(data.x_val), model.predict_proba(data.x_val)[:, 1])
        tracking.log_metrics(metrics)
        tracking.log_model(model)
    return run.run_id, metrics, model


def _test_metrics(data: wine.Dataset, model: Any) -> dict[str, float]:
    return classification_metrics(data.y_test, model.predict(data.x_test), model.predict_proba(data.x_test)[:, 1],
                                  prefix="test")


def _pruned_summary(results: tune.TunerResults) -> str:
    """``41 pruned by ASHA on val_logloss (41 at 100 rounds)``: how many, on what, at which rungs."""
    steps = sorted(t.last_measurement.step for t in results.trials if t.state == spb.TRIAL_STATE_PRUNED)
    if not steps:
        return f"0 pruned by ASHA on {PRUNE_ON['metric']}"
    at = ", ".join(f"{steps.count(step)} at {step}" + (" rounds" if i == 0 else "")
                   for i, step in enumerate(sorted(set(steps))))
    return f"{len(steps)} pruned by ASHA on {PRUNE_ON['metric']} ({at})"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def main(args: argparse.Namespace) -> int:
    try:
        import sklearn  # noqa: F401
        import xgboost  # noqa: F401
    except ImportError as error:
        print(f"error: the demo trains XGBoost with scikit-learn's metrics ({error}): "
              "pip install -c constraints.txt -e '.[server,examples]'", file=sys.stderr)
        return 2
    telemetry.setup(telemetry.TRIAL_WORKER)
    started = time.perf_counter()
    home = data_dir()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    experiment = f"Wine_Quality_Classification_{stamp[:8]}"
    print(f"starting the suite (SQLite and artifacts in {home}/) ...", flush=True)
    with LocalSuite(home) as suite:
        print(f"  suggestion service {suite.suggestion_address}, tracking service {suite.tracking_address}")
        tracking.set_tracking_address(suite.tracking_address)
        try:
            return _run(args, suite, experiment, stamp, started)
        finally:
            tracking.set_tracking_address(None)


def _run(args: argparse.Namespace, suite: LocalSuite, experiment: str, stamp: str, started: float) -> int:
    data = wine.dataset()
    print(f"wine-quality data: {len(data.y_train)} train, {len(data.y_val)} validation, {len(data.y_test)} test "
          f"samples, {data.y_train.mean():.0%} high quality")
    tracking.set_experiment(experiment)
    baseline_run, baseline, baseline_model = _baseline(data)
    print(f"baseline run {baseline_run}: val_f1 {baseline['val_f1']:.4f}")

    print(f"tuning {len(wine.SEARCH_SPACE) - 1} hyperparameters (the seed's seven and the decision threshold): "
          f"{args.trials} trials, {args.workers} at a time, {args.algorithm}, the baseline's configuration first, "
          f"ASHA on validation log-loss at {FIDELITY.min:.0f} and {FIDELITY.max:.0f} rounds",
          flush=True)
    config = tune.TunerConfig(
        metric="val_f1", mode="max", algorithm=args.algorithm, num_trials=args.trials,
        max_concurrent_trials=args.workers, pruner="asha", pruner_settings=PRUNE_ON, fidelity=FIDELITY,
        seed=args.seed, points_to_evaluate=[wine.BASELINE_PARAMS],
        study_name=f"wine-xgb-{stamp}", experiment=experiment,
        suggestion_address=suite.suggestion_address, tracking_address=suite.tracking_address,
    )
    results = tune.Tuner(wine.train, wine.SEARCH_SPACE, config).run()
    best_f1 = results.best_result["val_f1"]
    best_run = results.best_run_id

    # The test set, used once: the baseline and the winner, chosen on validation F1 alone.
    test = _test_metrics(data, results.best_model)
    baseline_test = _test_metrics(data, baseline_model)
    client = tracking.tracking_client()
    client.log_batch(best_run, metrics=[tracking.metric(k, v) for k, v in test.items()])
    client.log_batch(baseline_run, metrics=[tracking.metric(k, v) for k, v in baseline_test.items()])
    version = tracking.register_model(f"runs:/{best_run}/model", MODEL_NAME)
    tracking.set_alias(MODEL_NAME, "champion", version.version)
    tracking.transition_stage(MODEL_NAME, version.version, "Production", archive_existing=True,
                              reason=f"best of study {results.study_name}")
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    trial = results.best_trial

    print()
    print(f"study {results.study_name}: {results.count(spb.TRIAL_STATE_COMPLETED)} completed, "
          f"{_pruned_summary(results)}, {results.count(spb.TRIAL_STATE_FAILED)} failed")
    print("  (a pruned trial has no result: the best is the best completed trial)")
    _table([
        ("", "val_f1", "test_f1", "run"),
        ("baseline", f"{baseline['val_f1']:.4f}", f"{baseline_test['test_f1']:.4f}", baseline_run),
        (f"best (trial {trial.number})", f"{best_f1:.4f}", f"{test['test_f1']:.4f}", best_run),
    ])
    print(f"improvement over the baseline: {(best_f1 - baseline['val_f1']) / baseline['val_f1']:+.2%} validation F1 "
          f"(chosen on), {(test['test_f1'] - baseline_test['test_f1']) / baseline_test['test_f1']:+.2%} test F1 "
          "(held out until now)")
    print("best hyperparameters:")
    for key, value in sorted(results.best_params.items()):
        print(f"  {key:18} {value:.4g}" if isinstance(value, float) else f"  {key:18} {value}")
    stage = rpb.Stage.Name(champion.stage).removeprefix("STAGE_").title()
    print(f"registered {MODEL_NAME} version {champion.version} (alias champion, stage {stage}) "
          f"from run {champion.run_id}")
    print(f"finished in {time.perf_counter() - started:.0f} s. Everything is kept in {suite.home}/: "
          f"experiment {experiment!r} holds the baseline and one run per trial;")
    print(f"  to look at it again, start the suite with `tuning up` (TUNING_HOME={suite.home}) and open "
          "http://127.0.0.1:8080/, or run "
          f"`tuning study show {results.study_name}`;")
    print(f"  tracking.load_model('models:/{MODEL_NAME}@champion') loads the champion.")
    completed = results.count(spb.TRIAL_STATE_COMPLETED) + results.count(spb.TRIAL_STATE_PRUNED)
    return 0 if completed == args.trials else 1
