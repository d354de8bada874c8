"""`python -m trial_worker` as separate processes against real services: Python functions,
external commands, pruning, failures, SIGKILL, SIGTERM and service restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from trial_worker import Fidelity, Float, SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.tracking.v1 import tracking_pb2 as tpb

WORKER_TIMEOUT = 120


@dataclass
class Suite:
    suggestion: str
    tracking: str
    processes: list
    spawn: Callable
    suggestion_url: str
    tracking_url: str
    artifacts: Path

    def restart(self, index: int) -> None:
        """Stops service ``index`` (0: suggestion, 1: tracking) and starts it again on the same port."""
        old = self.processes[index]
        old.stop()
        port = old.address.rsplit(":", 1)[1]
        if index == 0:
            new = self.spawn(self.suggestion_url, "--lease-check-seconds", "0.3", "--port", port)
        else:
            new = self.spawn(self.tracking_url, "--artifacts", str(self.artifacts), "--port", port,
                             module="tracking_service")
        assert new.address == old.address
        self.processes[index] = new


@pytest.fixture
def suite(tmp_path: Path, spawn_server) -> Suite:
    suggestion_url = f"sqlite:///{tmp_path / 'suggestion.db'}"
    tracking_url = f"sqlite:///{tmp_path / 'tracking.db'}"
    artifacts = tmp_path / "artifacts"
    suggestion = spawn_server(suggestion_url, "--lease-check-seconds", "0.3")
    tracking = spawn_server(tracking_url, "--artifacts", str(artifacts), module="tracking_service")
    return Suite(suggestion.address, tracking.address, [suggestion, tracking], spawn_server, suggestion_url,
                 tracking_url, artifacts)


def start_worker(suite: Suite, study: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trial_worker", "--study", study, "--suggestion-address", suite.suggestion,
         "--tracking-address", suite.tracking, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TUNING_LOG_LEVEL": "WARNING", **(env or {})},
    )


def finish(process: subprocess.Popen, timeout: float = WORKER_TIMEOUT) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"worker did not finish in {timeout} s:\n{output}") from None
    return process.returncode, output


def make_study(suite: Suite, name: str, trials: int, **kwargs) -> None:
    with SuggestionClient(suite.suggestion) as client:
        client.create_study(name, [Float("x", -3, 3)], objectives={"loss": "minimize"},
                            algorithm=kwargs.pop("algorithm", "random"), max_trials=trials, seed=1, **kwargs)


def trials_of(suite: Suite, name: str) -> list[pb.Trial]:
    with SuggestionClient(suite.suggestion) as client:
        return list(client.get_study(name).trials())


def tags(run) -> dict[str, str]:
    return {tag.key: tag.value for tag in run.tags}


def assert_every_completed_trial_has_its_run(suite: Suite, trials: list[pb.Trial], metric: str = "loss") -> None:
    with TrackingClient(suite.tracking) as client:
        for trial in trials:
            if trial.state != pb.TRIAL_STATE_COMPLETED:
                continue
            assert trial.run_id, f"trial {trial.number} has no run"
            run = client.get_run(trial.run_id)
            assert run.trial.trial_id == trial.id and run.trial.study == trial.study
            history = list(client.get_metric_history(trial.run_id, metric))
            final = {m.name: m.value for m in trial.metrics}[metric]
            assert history and history[-1].value == pytest.approx(final)


def test_python_function_trials_become_linked_runs(suite: Suite):
    make_study(suite, "py", 6)
    code, output = finish(start_worker(suite, "py", "--train", "tests.e2e.worker_functions:quadratic",
                                       "--parallel", "2", "--worker-id", "w1"))
    assert code == 0, output
    assert "stopped (study done): 6 completed, 0 pruned, 0 failed, 0 lost" in output
    trials = trials_of(suite, "py")
    assert [t.state for t in trials] == [pb.TRIAL_STATE_COMPLETED] * 6
    assert_every_completed_trial_has_its_run(suite, trials)
    with TrackingClient(suite.tracking) as client:
        experiment = client.get_experiment_by_name("py")
        for trial in trials:
            run = client.get_run(trial.run_id)
            assert run.experiment_id == experiment.id and run.status == tpb.RUN_STATUS_FINISHED
            run_tags = tags(run)
            assert run_tags["tuning.study"] == "py" and run_tags["tuning.trial_number"] == str(trial.number)
            assert run_tags["tuning.worker"] in ("w1-0", "w1-1") and run_tags["tuning.algorithm"] == "random"
            assert run_tags["tuning.trial_state"] == "COMPLETED" and run_tags["tuning.host"]
            params = {p.key: p.value for p in run.params}
            assert float(params["x"]) == pytest.approx(trial.parameters["x"].float_value)
            assert params["steps"] == "5"
            steps = [m.step for m in client.get_metric_history(trial.run_id, "loss")]
            assert steps == [1, 2, 3, 4, 5, 5]  # five reports, then the final value at the last step
            assert [m.value for m in client.get_metric_history(trial.run_id, "extra")] == [1.0]


COMMAND = textwrap.dedent("""\
    #!/bin/sh
    # A trainer in plain shell: the tuner only needs its JSON lines.
    set -eu
    x=$(sed -E 's/.*"x": *([-0-9.eE+]+).*/\\1/' "$TUNING_PARAMS_FILE")
    echo "training trial $TUNING_TRIAL_NUMBER of $TUNING_STUDY"
    for step in 1 2 3 4; do
      loss=$(awk -v x="$x" -v s="$step" 'BEGIN { print (x - 1) * (x - 1) + 1 / (s + 1) }')
      echo "{\\"step\\": $step, \\"loss\\": $loss}"
      sleep "${STEP_PAUSE:-0}"
    done
    echo "x was $x" > "$TUNING_OUTPUT_DIR/notes.txt"
    echo "{\\"loss\\": $loss, \\"steps_done\\": 4}"
    """)


def write_command(tmp_path: Path, text: str = COMMAND) -> str:
    script = tmp_path / "train.sh"
    script.write_text(text)
    script.chmod(0o755)
    return str(script)


def test_external_command_is_tuned_through_json_lines(suite: Suite, tmp_path: Path):
    make_study(suite, "cmd", 4)
    code, output = finish(start_worker(suite, "cmd", "--", write_command(tmp_path)))
    assert code == 0, output
    assert "[trial 0] training trial 0 of cmd" in output  # plain lines pass through
    trials = trials_of(suite, "cmd")
    assert [t.state for t in trials] == [pb.TRIAL_STATE_COMPLETED] * 4
    assert_every_completed_trial_has_its_run(suite, trials)
    with TrackingClient(suite.tracking) as client:
        for trial in trials:
            x = trial.parameters["x"].float_value
            metrics = {m.name: m.value for m in trial.metrics}
            assert metrics["loss"] == pytest.approx((x - 1) ** 2 + 1 / 5, rel=1e-4) and metrics["steps_done"] == 4
            files = [f.path for f in client.list_artifacts(trial.run_id)]
            assert files == ["notes.txt"]
        with SuggestionClient(suite.suggestion) as suggestion:
            steps = suggestion.call("ListMeasurements", _measurements(trials[0].id)).measurements
        assert [m.step for m in steps] == [1, 2, 3, 4]


def _measurements(trial_id: int):
    from tuning.suggestion.v1 import suggestion_service_pb2 as api

    return api.ListMeasurementsRequest(trial_id=trial_id)


def test_pruned_command_is_stopped_and_the_trial_pruned(suite: Suite, tmp_path: Path):
    make_study(suite, "asha", 12, fidelity=Fidelity("steps", 1, 4, 2), pruner="asha", max_parallel_trials=1)
    code, output = finish(start_worker(suite, "asha", "--", write_command(tmp_path)))
    assert code == 0, output
    trials = trials_of(suite, "asha")
    pruned = [t for t in trials if t.state == pb.TRIAL_STATE_PRUNED]
    assert pruned and len(pruned) + sum(t.state == pb.TRIAL_STATE_COMPLETED for t in trials) == 12
    with TrackingClient(suite.tracking) as client:
        for trial in pruned:
            # Stopped before its last step, and its run says so.
            assert trial.run_id and tags(client.get_run(trial.run_id))["tuning.trial_state"] == "PRUNED"
            assert max(m.step for m in client.get_metric_history(trial.run_id, "loss")) < 4
            assert client.list_artifacts(trial.run_id) == [] or all(
                f.path != "notes.txt" for f in client.list_artifacts(trial.run_id))


def test_failing_command_fails_trials_with_its_stderr_and_the_worker_gives_up(suite: Suite, tmp_path: Path):
    make_study(suite, "broken", 10)
    script = write_command(tmp_path, "#!/bin/sh\necho 'reading wine.csv' >&2\necho 'cannot open wine.csv' >&2\n"
                                     "exit 3\n")
    code, output = finish(start_worker(suite, "broken", "--max-consecutive-failures", "3", "--", script))
    assert code == 1, output
    assert "failed 3 times in a row" in output
    failed = [t for t in trials_of(suite, "broken") if t.state == pb.TRIAL_STATE_FAILED]
    assert len(failed) == 3
    # The reason in full: every line of the command's stderr tail, not just the last.
    assert all(t.reason.endswith("exited with status 3: reading wine.csv\ncannot open wine.csv") for t in failed)
    with TrackingClient(suite.tracking) as client:
        assert tags(client.get_run(failed[0].run_id))["tuning.error"] == failed[0].reason


def test_bad_train_path_is_a_usage_error(suite: Suite):
    make_study(suite, "usage", 1)
    code, output = finish(start_worker(suite, "usage", "--train", "tests.e2e.worker_functions:nope"))
    assert code == 2 and "has no nope" in output
    code, output = finish(start_worker(suite, "usage"))
    assert code == 2 and "what should the worker run?" in output


def wait_for(condition: Callable[[], object], timeout: float = 30, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def active_trials_of(suite: Suite, study: str, worker_prefix: str) -> list[pb.Trial]:
    return [t for t in trials_of(suite, study)
            if t.state == pb.TRIAL_STATE_ACTIVE and t.worker_id.startswith(worker_prefix)]


def test_a_worker_killed_mid_trial_loses_nothing(suite: Suite):
    make_study(suite, "kill9", 10, lease_seconds=1.5)
    env = {"TEST_STEP_SECONDS": "0.05", "TEST_STEPS": "6"}
    train = ("--train", "tests.e2e.worker_functions:quadratic")
    victim = start_worker(suite, "kill9", *train, "--worker-id", "victim", env=env)
    survivors = [start_worker(suite, "kill9", *train, "--worker-id", f"w{i}", env=env) for i in range(2)]
    [lost] = wait_for(lambda: active_trials_of(suite, "kill9", "victim"), what="the victim to hold a trial")
    victim.kill()
    victim.communicate()
    for worker in survivors:
        code, output = finish(worker)
        assert code == 0, output
    trials = trials_of(suite, "kill9")
    completed = [t for t in trials if t.state == pb.TRIAL_STATE_COMPLETED]
    assert len(completed) == 10
    stale = next(t for t in trials if t.id == lost.id)
    assert stale.state == pb.TRIAL_STATE_STALE
    retry = next(t for t in trials if t.retry_of == lost.id)
    assert retry.state == pb.TRIAL_STATE_COMPLETED and retry.worker_id.startswith("w")
    assert_every_completed_trial_has_its_run(suite, trials)


def sigterm_mid_trial(suite: Suite, study: str, step_seconds: float, *args: str) -> tuple[pb.Trial, str]:
    """Starts a worker, SIGTERMs it while it trains; returns the trial it was running and its output."""
    worker = start_worker(suite, study, "--train", "tests.e2e.worker_functions:quadratic", "--worker-id", study,
                          *args, env={"TEST_STEP_SECONDS": str(step_seconds), "TEST_STEPS": "5"})
    [running] = wait_for(lambda: active_trials_of(suite, study, study), what="a running trial")
    worker.send_signal(signal.SIGTERM)
    code, output = finish(worker, 30)
    assert code == 128 + signal.SIGTERM, output
    return running, output


def test_sigterm_finishes_the_running_trial_then_exits(suite: Suite):
    make_study(suite, "term", 5)
    running, output = sigterm_mid_trial(suite, "term", 0.2)
    assert "finishing running trials" in output
    trial = next(t for t in trials_of(suite, "term") if t.id == running.id)
    assert trial.state == pb.TRIAL_STATE_COMPLETED
    assert all(t.state != pb.TRIAL_STATE_ACTIVE for t in trials_of(suite, "term"))


def test_sigterm_past_the_grace_period_hands_the_trial_back(suite: Suite):
    make_study(suite, "handback", 3)
    running, output = sigterm_mid_trial(suite, "handback", 2.0, "--grace-seconds", "0.3")
    assert "handed 1 running trial(s) back" in output
    trials = trials_of(suite, "handback")
    handed = next(t for t in trials if t.id == running.id)
    assert handed.state == pb.TRIAL_STATE_STALE and "handed back" in handed.reason
    # Another worker gets it again at once (no lease to wait for), without a retry spent.
    [again] = [t for t in trials if t.retry_of == running.id]
    assert again.state == pb.TRIAL_STATE_QUEUED and again.attempt == handed.attempt
    assert again.parameters == handed.parameters


def test_workers_ride_out_service_restarts(suite: Suite, tmp_path: Path):
    make_study(suite, "restart", 16)
    env = {"TEST_STEP_SECONDS": "0.05", "TEST_STEPS": "4", "TUNING_HOME": str(tmp_path)}
    workers = [start_worker(suite, "restart", "--train", "tests.e2e.worker_functions:quadratic",
                            "--worker-id", f"r{i}", env=env) for i in range(2)]
    wait_for(lambda: sum(t.state == pb.TRIAL_STATE_COMPLETED for t in trials_of(suite, "restart")) >= 3,
             what="a few completed trials")
    # Each service goes down and comes back on the same address while the workers train.
    suite.restart(0)
    wait_for(lambda: sum(t.state == pb.TRIAL_STATE_COMPLETED for t in trials_of(suite, "restart")) >= 8,
             what="trials completing after the suggestion service's restart")
    suite.restart(1)
    for worker in workers:
        code, output = finish(worker)
        assert code == 0, output
    trials = trials_of(suite, "restart")
    assert sum(t.state == pb.TRIAL_STATE_COMPLETED for t in trials) == 16
    assert all(t.state in (pb.TRIAL_STATE_COMPLETED, pb.TRIAL_STATE_STALE) for t in trials)
    assert_every_completed_trial_has_its_run(suite, trials)


def test_heartbeats_keep_a_silent_trial_past_its_lease(suite: Suite):
    make_study(suite, "silent", 2, lease_seconds=1.0)
    code, output = finish(start_worker(suite, "silent", "--train", "tests.e2e.worker_functions:silent",
                                       env={"TEST_SILENT_SECONDS": "2.5"}))
    assert code == 0, output
    trials = trials_of(suite, "silent")
    # 2.5 s of silence against a 1 s lease: without heartbeats both would have gone stale.
    assert [t.state for t in trials] == [pb.TRIAL_STATE_COMPLETED] * 2


def test_a_study_file_creates_the_study_and_tuning_study_names_it(suite: Suite, tmp_path: Path):
    study_file = tmp_path / "study.yaml"
    study_file.write_text(textwrap.dedent("""\
        name: from-file
        spec:
          parameters: [{name: x, float_range: {low: -3, high: 3}}]
          objectives: [{metric: loss, direction: DIRECTION_MINIMIZE}]
          algorithm: {name: random}
          max_trials: 2
        """))
    train = ("--train", "tests.e2e.worker_functions:quadratic")
    addresses = ("--suggestion-address", suite.suggestion, "--tracking-address", suite.tracking)

    def worker(*args: str, study_env: str) -> tuple[int, str]:
        return finish(subprocess.Popen(
            [sys.executable, "-m", "trial_worker", *train, *addresses, *args], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, "TUNING_STUDY": study_env}))

    # $TUNING_STUDY names another study, but --study-file says which study it is.
    code, output = worker("--study-file", str(study_file), study_env="from-env")
    assert code == 0, output
    assert [t.state for t in trials_of(suite, "from-file")] == [pb.TRIAL_STATE_COMPLETED] * 2
    # A second worker finds the same study through $TUNING_STUDY alone.
    code, output = worker(study_env="from-file")
    assert code == 0 and "study from-file" in output and "study done" in output, output


def test_a_waiting_worker_outlives_its_study_until_sigterm(suite: Suite):
    """--wait (workers as a Deployment): the study may not exist yet, and when it is done the
    worker keeps looking for work instead of exiting (which a Deployment would restart)."""
    worker = start_worker(suite, "later", "--train", "tests.e2e.worker_functions:quadratic", "--wait",
                          "--wait-poll-seconds", "0.2")
    time.sleep(1.5)
    assert worker.poll() is None, "the worker gave up on a study that does not exist yet"
    make_study(suite, "later", 3)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while sum(t.state == pb.TRIAL_STATE_COMPLETED for t in trials_of(suite, "later")) < 3:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)  # several polls of a done study
    assert worker.poll() is None, "the worker exited when its study was done"
    worker.send_signal(signal.SIGTERM)
    code, output = finish(worker)
    assert code == 128 + signal.SIGTERM and "3 completed" in output, output
    assert_every_completed_trial_has_its_run(suite, trials_of(suite, "later"))


# The examples as the docs show them, made small: (file, text in the example, what the test runs instead).
SMALLER = [
    ("README.md", 'SuggestionClient("127.0.0.1:50051")', "SuggestionClient(SUGGESTION_ADDRESS)"),
    ("README.md", "max_trials=50, max_parallel_trials=8", "max_trials=3, max_parallel_trials=8"),
    ("README.md", "num_trials=50, max_concurrent_trials=4", "num_trials=2, max_concurrent_trials=2"),
    ("docs/WORKERS.md", "num_trials=50, max_concurrent_trials=4", "num_trials=3, max_concurrent_trials=3"),
]


def python_examples(document: str) -> str:
    """The document's ```python blocks, in order, as one program (later blocks use earlier ones)."""
    import re

    text = (ROOT / document).read_text()
    for name, shown, instead in SMALLER:
        if name == document:
            assert shown in text, f"{document} no longer shows {shown!r}: update SMALLER"
            text = text.replace(shown, instead)
    return "\n".join(re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M))


@pytest.mark.parametrize("document", ["README.md", "docs/WORKERS.md"])
def test_the_docs_python_examples_run_against_the_api(suite: Suite, document: str, monkeypatch):
    """Every Python example in README.md and docs/WORKERS.md, run against real services with
    stand-ins for the reader's data: a renamed method or a wrong signature fails here."""
    from sklearn.datasets import make_classification
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from xgboost import XGBClassifier

    from trial_worker import Float

    monkeypatch.setenv("TUNING_SUGGESTION_ADDRESS", suite.suggestion)
    monkeypatch.setenv("TUNING_TRACKING_ADDRESS", suite.tracking)
    x, y = make_classification(n_samples=400, n_features=6, random_state=0)
    x_train, x_val, y_train, y_val = train_test_split(x, y, random_state=0)
    program = python_examples(document)
    assert program, f"no python examples in {document}"
    namespace = {
        "SUGGESTION_ADDRESS": suite.suggestion, "XGBClassifier": XGBClassifier, "f1_score": f1_score,
        "x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
        "train_one_epoch": lambda **params: 0.5, "validation_loss_after": lambda rounds: 1.0 / rounds,
        "train_and_measure": lambda **params: (params["x"], 40.0 + 20.0 * params["x"]),
        "space": [Float("x", 0, 1)],
    }
    exec(compile(program, document, "exec"), namespace)
    if "results" in namespace:
        assert namespace["results"].best_params
