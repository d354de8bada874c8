"""`tuning demo`: start the suggestion service, run a study with several workers, report.

The objective is a simulated training run (a validation-loss curve shaped by the
hyperparameters), so the demo needs no dataset and finishes in seconds. It shows:
parallel workers asking and telling, intermediate reports, a conditional parameter,
a warm-start configuration, and a worker that dies mid-trial: its lease expires and the
trial is retried by another worker.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

from trial_worker import Categorical, Fixed, Float, Int, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning_common.settings import data_dir

SPACE = [
    Float("learning_rate", 1e-3, 0.5, log=True),
    Int("max_depth", 2, 12),
    Float("subsample", 0.5, 1.0),
    Categorical("booster", ["gbtree", "dart"]),
    Float("rate_drop", 0.0, 0.3, when={"booster": "dart"}),
    Fixed("random_state", 42),
]
STEPS = 10
LEASE_SECONDS = 2.0


def validation_loss(params: dict, step: int) -> float:
    """A made-up but well-behaved learning curve: best near lr=0.08, depth=6, subsample=0.8."""
    lr, depth, subsample = params["learning_rate"], params["max_depth"], params["subsample"]
    floor = 0.30 + 0.05 * math.log(lr / 0.08) ** 2 + 0.004 * (depth - 6) ** 2 + 0.2 * (subsample - 0.8) ** 2
    if params["booster"] == "dart":
        floor += 0.05 * (params["rate_drop"] - 0.1) ** 2 - 0.005
    return floor + 0.6 * math.exp(-lr * 40 * (step + 1) / STEPS)


def _worker(address: str, study_name: str, index: int, crash_on: int | None, log: list[str]) -> None:
    with SuggestionClient(address) as client:
        study = client.get_study(study_name)
        done = 0
        while (trial := study.ask()) is not None:
            for step in range(STEPS):
                if done == crash_on and step == 3:
                    # Simulate a machine dying mid-trial: walk away without telling.
                    log.append(f"worker {index} dies during trial {trial.number}; its lease will expire")
                    return
                if trial.report(step, validation_loss(trial.params, step)):
                    trial.prune()
                    break
                time.sleep(0.005)
            else:
                study.tell(trial, {"val_loss": validation_loss(trial.params, STEPS - 1)})
            done += 1


def _start_service(db_url: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "suggestion_service", "--port", "0", "--database-url", db_url,
         "--lease-check-seconds", "0.5"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "TUNING_LOG_LEVEL": "WARNING"},
    )
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the suggestion service did not start: {line}")
    return process, line.rsplit(" ", 1)[1].strip()


def main(args: argparse.Namespace) -> int:
    db_url = f"sqlite:///{os.path.join(data_dir(), 'suggestion.db')}"
    print(f"starting the suggestion service (database {db_url}) ...")
    process, address = _start_service(db_url)
    try:
        return _run(address, args.workers, args.trials)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _run(address: str, workers: int, trials: int) -> int:
    name = "demo-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    with SuggestionClient(address) as client:
        study = client.create_study(
            name, SPACE, objectives={"val_loss": "minimize"}, algorithm="quasi_random",
            max_trials=trials, max_parallel_trials=workers, lease_seconds=LEASE_SECONDS,
        )
        study.enqueue({"learning_rate": 0.3, "max_depth": 6, "subsample": 1.0, "booster": "gbtree"})
        print(f"study {name}: {trials} trials, {workers} workers, service at {address}")
        started, log = time.perf_counter(), []
        threads = [
            threading.Thread(target=_worker, args=(address, name, i, 2 if i == 0 else None, log))
            for i in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        info = study.refresh()
        [best] = study.best_trials()
    for line in log:
        print(line)
    counts = info.trial_counts
    print(f"finished in {elapsed:.1f} s: {counts.completed} completed, {counts.stale} stale (retried), "
          f"state {pb.StudyState.Name(info.state).removeprefix('STUDY_STATE_')}")
    params = {k: getattr(v, v.WhichOneof("kind")) for k, v in best.parameters.items()}
    print(f"best trial #{best.number}: val_loss={best.metrics[0].value:.4f}")
    for key in sorted(params):
        value = params[key]
        print(f"  {key:14} {value:.4g}" if isinstance(value, float) else f"  {key:14} {value}")
    print(f"to look at it later: `tuning up` in one terminal, `tuning study show {name}` in another")
    ok = counts.completed == trials and info.state == pb.STUDY_STATE_COMPLETED
    return 0 if ok else 1
