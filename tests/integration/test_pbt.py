"""Population-based training through the real services: the segments, their checkpoints as
run artifacts, the lineage (GetPopulation, also over HTTP), and decisions that a restart
does not change."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from suggestion_service.server import serve
from tests.conftest import gateway_suite
from trial_worker import Float, SuggestionClient, tune
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import FailedPrecondition
from tuning_common.grpc_server import ServerOptions

SPACE = [Float("h0", 0.0, 1.0), Float("h1", 0.0, 1.0)]
SETTINGS = {"population_size": 4, "perturbation_interval": 3, "max_steps": 12}


def toy_value(params: dict, end_step: int) -> float:
    """Q after ``end_step`` steps of the toy problem with constant h (enough for the service's decisions)."""
    return 1.2 - sum(0.81 * (1 - 0.2 * params[h]) ** (2 * end_step) for h in ("h0", "h1"))


def segment_facts(trial: pb.Trial) -> tuple:
    s = trial.pbt_segment
    return (s.member, s.generation, s.start_step, s.end_step, s.last, s.parent_trial_id if
            s.HasField("parent_trial_id") else None, s.decision)


def test_a_restart_changes_no_decision(sqlite_url: str):
    """Two studies, same seed, asked and told in the same order; one with the service restarted
    twice in the middle: every segment, its parent and its hyperparameters are the same."""
    def play(name: str, restart_at: set[int]) -> list[tuple]:
        running = serve(sqlite_url, ServerOptions(port=0, grace_seconds=1))
        decisions, running_trials, rounds = [], [], 0
        try:
            while True:
                if rounds in restart_at:
                    running.stop()
                    running = serve(sqlite_url, ServerOptions(port=0, grace_seconds=1))
                rounds += 1
                with SuggestionClient(running.address) as client:
                    study = client.create_study(name, SPACE, objectives={"q": "maximize"}, algorithm="pbt",
                                                algorithm_settings=SETTINGS, seed=7)
                    # Two "workers": ask up to two, tell the older one first.
                    running_trials += [t.info for t in study.ask_batch(2 - len(running_trials), wait=False)]
                    if not running_trials:
                        assert study.last_suggest.status == api.SUGGEST_STATUS_DONE
                        break
                    trial = running_trials.pop(0)
                    params = {k: v.float_value for k, v in trial.parameters.items()}
                    study.tell(trial.id, toy_value(params, trial.pbt_segment.end_step))
                    # The trial's id differs between the two studies; its number does not.
                    parent = trial.pbt_segment.parent_trial_id
                    decisions.append((trial.number, params, segment_facts(trial)[:5], trial.pbt_segment.decision,
                                      client.call("GetTrial", api.GetTrialRequest(trial_id=parent)).trial.number
                                      if trial.pbt_segment.HasField("parent_trial_id") else None))
        finally:
            running.stop()
        return decisions

    straight = play("straight", set())
    assert play("restarted", {5, 11}) == straight
    assert len(straight) == 16  # 4 members x 4 segments
    assert {d[3] for d in straight} >= {pb.PBT_DECISION_START, pb.PBT_DECISION_CONTINUE, pb.PBT_DECISION_EXPLOIT}


def test_the_population_asks_wait_while_every_member_runs_and_the_study_ends_with_the_last_segment(server):
    with SuggestionClient(server.address) as client:
        study = client.create_study("waits", SPACE, objectives={"q": "maximize"}, algorithm="pbt",
                                    algorithm_settings={"population_size": 2, "perturbation_interval": 5,
                                                        "max_steps": 10}, seed=1)
        first = study.ask_batch(5, wait=False)
        assert [t.pbt_segment.member for t in first] == [0, 1]
        assert [t.budget for t in first] == [5.0, 5.0]
        assert study.last_suggest.status == api.SUGGEST_STATUS_WAIT
        assert "wait for running" in study.last_suggest.message
        for trial in first:
            study.tell(trial, toy_value(trial.params, 5))
        second = study.ask_batch(5, wait=False)
        assert sorted(t.pbt_segment.generation for t in second) == [1, 1]
        assert all(t.pbt_segment.last and t.pbt_segment.start_step == 5 for t in second)
        for trial in second:
            study.tell(trial, toy_value(trial.params, 10))
        assert study.ask_batch(1, wait=False) == []
        assert study.last_suggest.status == api.SUGGEST_STATUS_DONE
        population = study.population()
        assert [m.member for m in population] == [0, 1]
        assert [[t.pbt_segment.generation for t in m.trials] for m in population] == [[0, 1], [0, 1]]
        with pytest.raises(FailedPrecondition) as error:
            client.create_study("plain", SPACE, objectives={"q": "maximize"}, algorithm="random").population()
        assert error.value.reason == "NOT_PBT"
        with pytest.raises(FailedPrecondition) as error:
            client.create_study("by-hand", SPACE, objectives={"q": "maximize"}, algorithm="pbt").enqueue(
                {"h0": 0.5, "h1": 0.5})
        assert error.value.reason == "ALGORITHM_ONLY"


def test_tuner_runs_pbt_with_checkpoints_as_run_artifacts_and_records_the_lineage(tmp_path: Path, spawn_server):
    from tests.e2e.worker_functions import pbt_toy

    suggestion = spawn_server(f"sqlite:///{tmp_path / 's.db'}", "--lease-check-seconds", "0.3")
    tracking = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", str(tmp_path / "artifacts"),
                            module="tracking_service")
    config = tune.TunerConfig(metric="q", mode="max", algorithm="pbt", algorithm_settings=SETTINGS, num_trials=16,
                              max_concurrent_trials=2, seed=4, suggestion_address=suggestion.address,
                              tracking_address=tracking.address, progress=False)
    results = tune.Tuner(pbt_toy, {"h0": tune.uniform(0.0, 1.0), "h1": tune.uniform(0.0, 1.0)}, config).run()
    assert results.count(pb.TRIAL_STATE_COMPLETED) == 16
    with SuggestionClient(suggestion.address) as client, TrackingClient(tracking.address) as runs:
        population = client.get_study(results.study_name).population()
        by_id = {t.id: t for m in population for t in m.trials}
        assert [m.member for m in population] == [0, 1, 2, 3]
        for member in population:
            assert [t.pbt_segment.generation for t in member.trials] == [0, 1, 2, 3]
            for trial in member.trials:
                run = runs.get_run(trial.run_id)
                params = {p.key: p.value for p in run.params}
                assert [f.path for f in runs.list_artifacts(trial.run_id, "checkpoint")] == ["checkpoint/theta.json"]
                segment = trial.pbt_segment
                if not segment.HasField("parent_trial_id"):
                    assert segment.decision == pb.PBT_DECISION_START and params["resumed_from"] == "none"
                    continue
                # It loaded exactly the checkpoint the service told it to, saved at its start step.
                assert params["resumed_from"] == str(segment.parent_trial_id)
                parent = by_id[segment.parent_trial_id]
                assert parent.pbt_segment.end_step == segment.start_step
                assert parent.pbt_segment.member == segment.parent_member
                tags = {t.key: t.value for t in run.tags}
                assert tags["tuning.pbt.parent_trial_id"] == str(segment.parent_trial_id)
                if segment.decision == pb.PBT_DECISION_CONTINUE:
                    assert segment.parent_member == segment.member and trial.parameters == parent.parameters
                else:
                    assert segment.decision == pb.PBT_DECISION_EXPLOIT
                    assert segment.parent_member != segment.member and trial.parameters != parent.parameters
                    assert set(trial.suggestion_metadata["pbt"]["explored"]) == {"h0", "h1"}


def test_a_segment_that_saves_no_checkpoint_fails_with_the_reason(tmp_path: Path, spawn_server):
    suggestion = spawn_server(f"sqlite:///{tmp_path / 's.db'}")
    tracking = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", str(tmp_path / "a"),
                            module="tracking_service")
    config = tune.TunerConfig(metric="q", mode="max", algorithm="pbt", num_trials=2, seed=1,
                              algorithm_settings={"population_size": 2, "perturbation_interval": 1, "max_steps": 2},
                              suggestion_address=suggestion.address, tracking_address=tracking.address,
                              progress=False, max_concurrent_trials=1)
    with pytest.raises(tune.NoTrialCompleted) as error:
        tune.Tuner(lambda ctx: {"q": 1.0}, {"h0": tune.uniform(0.0, 1.0)}, config).run()
    reasons = {t.reason for t in error.value.results.trials}
    assert any("saved no checkpoint: call ctx.save_checkpoint" in r for r in reasons), reasons


def test_the_population_over_http(tmp_path: Path):
    with gateway_suite(tmp_path) as suite, SuggestionClient(suite.suggestion.address) as client:
        study = client.create_study("http", SPACE, objectives={"q": "maximize"}, algorithm="pbt",
                                    algorithm_settings={"population_size": 2}, seed=3)
        for trial in study.ask_batch(2):
            study.tell(trial, 0.5)
        [next_] = study.ask_batch(1)
        with urllib.request.urlopen(f"{suite.gateway.url}/v1/studies/http/population") as response:
            body = json.loads(response.read())
        members = body["members"]
        assert [m.get("member", 0) for m in members] == [0, 1]
        segment = next(t for m in members for t in m["trials"] if int(t["id"]) == next_.id)["pbt_segment"]
        assert segment["decision"] == "PBT_DECISION_CONTINUE" and segment["generation"] == 1
        assert int(segment["parent_trial_id"]) == next_.pbt_segment.parent_trial_id
