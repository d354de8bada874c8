"""Population-based training with `python -m trial_worker` processes: a worker SIGKILLed in
the middle of a segment loses that segment only, which another worker redoes from the same
checkpoint; and an external command trains segments through the checkpoint folders."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

from tests.e2e.test_worker import Suite, finish, start_worker, suite, trials_of, wait_for  # noqa: F401 (fixture)
from trial_worker import Float, SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.tracking.v1 import tracking_pb2 as tpb

SETTINGS = {"population_size": 2, "perturbation_interval": 3, "max_steps": 9}


def make_pbt_study(suite: Suite, name: str, **kwargs) -> None:
    with SuggestionClient(suite.suggestion) as client:
        client.create_study(name, [Float("h0", 0.0, 1.0), Float("h1", 0.0, 1.0)], objectives={"q": "maximize"},
                            algorithm="pbt", algorithm_settings=SETTINGS, seed=2, **kwargs)


def run_params(client: TrackingClient, trial: pb.Trial) -> dict[str, str]:
    return {p.key: p.value for p in client.get_run(trial.run_id).params}


def test_a_worker_killed_mid_segment_loses_that_segment_only(suite: Suite, tmp_path: Path):
    make_pbt_study(suite, "kill9", lease_seconds=1.5)
    marker = tmp_path / "hung"
    train = ("--train", "tests.e2e.worker_functions:pbt_toy")
    # Its third segment is a member's second (generation 1), which resumes from a checkpoint.
    victim = start_worker(suite, "kill9", *train, "--worker-id", "victim",
                          env={"TEST_HANG_AT": "3", "TEST_HANG_MARKER": str(marker)})
    wait_for(marker.exists, timeout=60, what="the victim to hang mid-segment")
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    lost_id = int(marker.read_text())

    code, output = finish(start_worker(suite, "kill9", *train, "--worker-id", "survivor"))
    assert code == 0, output
    trials = trials_of(suite, "kill9")
    lost = next(t for t in trials if t.id == lost_id)
    assert lost.state == pb.TRIAL_STATE_STALE and lost.pbt_segment.HasField("parent_trial_id")
    [redone] = [t for t in trials if t.retry_of == lost_id]
    # The same segment, from the same checkpoint, with the same hyperparameters, on another worker.
    assert redone.state == pb.TRIAL_STATE_COMPLETED and redone.worker_id == "survivor"
    assert redone.pbt_segment == lost.pbt_segment and redone.parameters == lost.parameters
    # Nothing else was lost: one STALE trial, and every member trained all three segments.
    assert [t.state for t in trials].count(pb.TRIAL_STATE_STALE) == 1
    assert sum(t.state == pb.TRIAL_STATE_COMPLETED for t in trials) == 6
    with SuggestionClient(suite.suggestion) as client, TrackingClient(suite.tracking) as runs:
        population = client.get_study("kill9").population()
        for member in population:
            done = [t.pbt_segment.generation for t in member.trials if t.state == pb.TRIAL_STATE_COMPLETED]
            assert done == [0, 1, 2]
        assert run_params(runs, redone)["resumed_from"] == str(lost.pbt_segment.parent_trial_id)
        # The lost attempt's run was ended by the worker that took its retry.
        assert runs.get_run(lost.run_id).status == tpb.RUN_STATUS_KILLED


COMMAND = textwrap.dedent("""\
    import json, os, pathlib
    segment = json.loads(os.environ["TUNING_PBT_SEGMENT"])
    params = json.loads(os.environ["TUNING_PARAMS"])
    start, end = int(os.environ["TUNING_START_STEP"]), int(float(os.environ["TUNING_BUDGET"]))
    assert (start, end) == (segment["start_step"], segment["end_step"])
    theta = [0.9, 0.9]
    if "TUNING_CHECKPOINT_DIR" in os.environ:
        saved = json.loads(pathlib.Path(os.environ["TUNING_CHECKPOINT_DIR"], "theta.json").read_text())
        assert saved["trial_id"] == segment["parent_trial_id"] and saved["step"] == start, (saved, segment)
        theta = saved["theta"]
    else:
        assert segment["parent_trial_id"] is None
    for step in range(start + 1, end + 1):
        theta = [t - 0.2 * h * t for t, h in zip(theta, (params["h0"], params["h1"]))]
        print(json.dumps({"step": step, "q": 1.2 - theta[0] ** 2 - theta[1] ** 2}))
    out = pathlib.Path(os.environ["TUNING_SAVE_CHECKPOINT_DIR"], "theta.json")
    out.write_text(json.dumps({"theta": theta, "step": end, "trial_id": int(os.environ["TUNING_TRIAL_ID"])}))
    """)


def test_an_external_command_trains_segments_through_the_checkpoint_folders(suite: Suite, tmp_path: Path):
    make_pbt_study(suite, "cmd")
    script = tmp_path / "train.py"
    script.write_text(COMMAND)
    code, output = finish(start_worker(suite, "cmd", "--parallel", "2", "--", sys.executable, str(script)))
    assert code == 0, output
    trials = trials_of(suite, "cmd")
    assert [t.state for t in trials] == [pb.TRIAL_STATE_COMPLETED] * 6, output
    with TrackingClient(suite.tracking) as runs:
        for trial in trials:
            assert [f.path for f in runs.list_artifacts(trial.run_id, "checkpoint")] == ["checkpoint/theta.json"]
