"""The ask/tell contract, through a real gRPC server on port 0, once per storage backend
(SQLite file and PostgreSQL database)."""

from __future__ import annotations

import math
import threading
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from suggestion_service.server import serve
from trial_worker import Categorical, Fixed, Float, Int, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from tuning_common.grpc_server import ServerOptions

ALL_TYPES = [
    Float("lr", 1e-4, 1e-1, log=True),
    Float("subsample", 0.5, 1.0),
    Float("dropout", 0.0, 0.5, step=0.1),
    Int("depth", 2, 10),
    Int("estimators", 10, 1000, log=True),
    Int("leaves", 8, 64, step=8),
    Categorical("booster", ["gbtree", "dart"]),
    Categorical("mixed", [1, 2.5, "three", True]),
    Float("rate_drop", 0.0, 0.3, when={"booster": ["dart"]}),
    Categorical("normalize", [False, True], when={"booster": "dart"}),
    Fixed("random_state", 42),
]


@pytest.fixture
def server(database_url: str):
    running = serve(database_url, ServerOptions(port=0, grace_seconds=1), lease_check_seconds=0.2)
    yield running
    running.stop()


def ask_raw(client: SuggestionClient, study: str, count: int = 1, worker: str = "w1", request: str | None = None):
    request = request or f"req-{time.monotonic_ns()}"
    return client.call("SuggestTrials", api.SuggestTrialsRequest(
        study=study, count=count, worker_id=worker, request_id=request))


def test_round_trip_for_every_parameter_type(client: SuggestionClient):
    study = client.create_study("types", ALL_TYPES, objectives={"f1": "maximize"}, algorithm="random",
                                max_trials=40, seed=3)
    assert study.created
    seen_boosters = set()
    while (trial := study.ask()) is not None:
        p = trial.params
        assert type(p["lr"]) is float and 1e-4 <= p["lr"] <= 1e-1
        assert type(p["subsample"]) is float and 0.5 <= p["subsample"] <= 1.0
        assert type(p["dropout"]) is float and math.isclose(p["dropout"] * 10, round(p["dropout"] * 10))
        assert type(p["depth"]) is int and 2 <= p["depth"] <= 10
        assert type(p["estimators"]) is int and 10 <= p["estimators"] <= 1000
        assert type(p["leaves"]) is int and p["leaves"] % 8 == 0
        assert p["mixed"] in (1, 2.5, "three", True) and type(p["mixed"]) in (int, float, str, bool)
        assert p["random_state"] == 42 and type(p["random_state"]) is int
        seen_boosters.add(p["booster"])
        assert dict(trial.info.suggestion_metadata) == {"algorithm": "random", "seed": "3", "index": trial.number}
        assert trial.info.seed == 3
        # A conditional parameter is present exactly when its condition holds.
        assert ("rate_drop" in p) == (p["booster"] == "dart")
        assert ("normalize" in p) == (p["booster"] == "dart")
        study.tell(trial, {"f1": p["subsample"], "train_seconds": 1.5})
    assert seen_boosters == {"gbtree", "dart"}
    [best] = study.best_trials()
    assert best.metrics[0].name == "f1" and best.metrics[1].name == "train_seconds"
    completed = list(study.trials(pb.TRIAL_STATE_COMPLETED))
    assert len(completed) == 40
    assert best.metrics[0].value == max(t.metrics[0].value for t in completed)
    # The ask that ended the loop found the budget spent and nothing running.
    assert study.last_suggest.done_reason == api.DONE_REASON_BUDGET_SPENT
    assert study.refresh().state == pb.STUDY_STATE_COMPLETED


@pytest.mark.parametrize("algorithm", ["random", "tpe", "gp"])
def test_a_seed_above_2_to_the_53_arrives_exactly(client: SuggestionClient, algorithm: str):
    # A double rounds 2^62 + 1 to 2^62: the metadata carries it as a string, the trial as an int64.
    seed = 2**62 + 1
    study = client.create_study(f"big-seed-{algorithm}", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                algorithm=algorithm, seed=seed)
    trial = study.ask()
    assert study.info.spec.seed == seed and trial.info.seed == seed
    assert trial.info.suggestion_metadata["seed"] == str(seed)
    assert trial.info.suggestion_metadata["algorithm"] == algorithm
    assert trial.info.suggestion_metadata["index"] == 0
    queued = study.enqueue({"x": 0.5})
    assert not queued.HasField("seed") and not queued.HasField("suggestion_metadata")


def test_create_study_is_get_or_create(client: SuggestionClient):
    kwargs = dict(objectives={"loss": "minimize"}, max_trials=5)
    first = client.create_study("goc", [Float("x", 0, 1)], **kwargs)
    again = client.create_study("goc", [Float("x", 0, 1)], **kwargs)
    assert first.created and not again.created
    # No seed in the second call: it matches whatever seed was drawn and stored.
    assert again.info.spec.seed == first.info.spec.seed and first.info.spec.HasField("seed")
    with pytest.raises(AlreadyExists) as error:
        client.create_study("goc", [Float("x", 0, 2)], **kwargs)
    assert error.value.reason == "STUDY_SPEC_MISMATCH"
    assert client.get_study("goc").info.spec.parameters[0].float_range.high == 1


def test_a_study_without_an_algorithm_runs_auto_and_is_joined_whatever_it_runs(client: SuggestionClient):
    space = [Float("x", 0, 1), Categorical("kind", ["a", "b"])]
    study = client.create_study("default-algo", space, objectives={"loss": "minimize"}, seed=1)
    assert study.info.spec.algorithm.name == "auto"
    trial = study.ask()
    assert trial.info.suggestion_metadata["algorithm"] == "auto"
    assert trial.info.suggestion_metadata["auto_choice"] == "gp"
    # Like an absent seed, an absent algorithm joins the stored study: here one created with
    # another algorithm (as studies made under the old default, random, were).
    client.create_study("was-random", space, objectives={"loss": "minimize"}, algorithm="random")
    joined = client.create_study("was-random", space, objectives={"loss": "minimize"})
    assert not joined.created and joined.info.spec.algorithm.name == "random"
    # Naming one must still match, the default included.
    with pytest.raises(AlreadyExists) as error:
        client.create_study("was-random", space, objectives={"loss": "minimize"}, algorithm="auto")
    assert error.value.reason == "STUDY_SPEC_MISMATCH"
    with pytest.raises(ValueError, match="algorithm_settings needs an algorithm"):
        client.create_study("settings-alone", space, objectives={"loss": "minimize"},
                            algorithm_settings={"gamma": 0.2})
    assert "settings-alone" not in {s.name for s in client.list_studies()}


def run_at_once(call, times: int = 8) -> list:
    """Runs ``call`` from ``times`` threads at once; returns the results, re-raising any error."""
    results, errors = [], []

    def target() -> None:
        try:
            results.append(call())
        except Exception as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=target) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_concurrent_creates_of_one_study_agree(client: SuggestionClient):
    results = run_at_once(
        lambda: client.create_study("race", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=1)
    )
    assert sorted(r.created for r in results) == [False] * 7 + [True]


def test_concurrent_reports_of_one_step_agree(client: SuggestionClient):
    study = client.create_study("report-race", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    run_at_once(lambda: trial.report(3, 0.5))
    measurements = client.call("ListMeasurements", api.ListMeasurementsRequest(trial_id=trial.id)).measurements
    assert [(m.step, m.metrics[0].value) for m in measurements] == [(3, 0.5)]


def test_retried_ask_returns_the_same_trials(client: SuggestionClient):
    client.create_study("idem", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    first = ask_raw(client, "idem", count=3, request="r-1")
    again = ask_raw(client, "idem", count=3, request="r-1")
    assert [t.id for t in first.trials] == [t.id for t in again.trials] and len(first.trials) == 3
    assert client.get_study("idem").info.trial_counts.active == 3
    with pytest.raises(InvalidArgument) as error:
        ask_raw(client, "idem", count=3, worker="someone-else", request="r-1")
    assert error.value.field == "request_id"


def test_retried_tell_is_idempotent_and_a_different_tell_is_refused(client: SuggestionClient):
    study = client.create_study("tell", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    first = study.tell(trial, 0.25)
    assert study.tell(trial, 0.25) == first
    with pytest.raises(FailedPrecondition) as error:
        study.tell(trial, 0.5)
    assert error.value.reason == "TRIAL_ALREADY_FINISHED"
    assert client.call("GetTrial", api.GetTrialRequest(trial_id=trial.id)).trial.metrics[0].value == 0.25


def test_non_finite_values_are_refused_and_the_trial_stays_active(client: SuggestionClient):
    study = client.create_study("nan", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidArgument) as error:
            study.tell(trial, bad)
        assert error.value.field == "metrics[0].value"
        with pytest.raises(InvalidArgument):
            trial.report(1, bad)
    stored = client.call("GetTrial", api.GetTrialRequest(trial_id=trial.id)).trial
    assert stored.state == pb.TRIAL_STATE_ACTIVE and not stored.metrics
    failed = study.fail(trial, "loss diverged to nan")
    assert failed.state == pb.TRIAL_STATE_FAILED and failed.reason == "loss diverged to nan"


def test_an_expired_lease_is_retried_and_the_zombie_is_refused(client: SuggestionClient):
    study = client.create_study("lease", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                lease_seconds=1, max_retries=1)
    zombie = study.ask()
    # The lease ends after 1 s and the fixture's reaper runs every 0.2 s; on a loaded machine
    # that takes longer, so wait for the event rather than a fixed time.
    deadline = time.monotonic() + 30
    while (stale := client.call("GetTrial", api.GetTrialRequest(trial_id=zombie.id)).trial).state \
            == pb.TRIAL_STATE_ACTIVE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stale.state == pb.TRIAL_STATE_STALE and "expired" in stale.reason
    retry = study.ask()
    assert retry.id != zombie.id and retry.params == zombie.params
    assert retry.info.attempt == 1 and retry.info.retry_of == zombie.id
    assert retry.info.source == pb.TRIAL_SOURCE_RETRY
    assert retry.info.suggestion_metadata == zombie.info.suggestion_metadata
    with pytest.raises(FailedPrecondition) as error:
        study.tell(zombie, 0.1)
    assert error.value.reason == "LEASE_LOST" and f"trial {retry.id}" in str(error.value)
    with pytest.raises(FailedPrecondition):
        zombie.report(1, 0.1)
    with pytest.raises(FailedPrecondition):
        zombie.heartbeat()
    # The retry is the last attempt (max_retries=1): when it expires too, nothing is queued.
    time.sleep(1.3)
    fresh = study.ask()
    assert fresh.params != zombie.params and fresh.info.source == pb.TRIAL_SOURCE_ALGORITHM
    assert study.refresh().trial_counts.stale == 2


def test_reports_and_heartbeats_keep_a_lease(client: SuggestionClient):
    # 2 s leases renewed every 0.4 s over 3.2 s: the lease outlives itself only by renewals,
    # with a margin for a loaded machine.
    study = client.create_study("beat", [Float("x", 0, 1)], objectives={"loss": "minimize"}, lease_seconds=2)
    trial = study.ask()
    for step in range(4):
        time.sleep(0.4)
        assert trial.report(step, 1.0 / (step + 1)) is False
        time.sleep(0.4)
        trial.heartbeat()
    done = study.tell(trial, 0.1)
    assert done.state == pb.TRIAL_STATE_COMPLETED and done.last_measurement.step == 3
    steps = client.call("ListMeasurements", api.ListMeasurementsRequest(trial_id=trial.id)).measurements
    assert [m.step for m in steps] == [0, 1, 2, 3]


def test_a_restart_does_not_cost_running_trials_their_leases(database_url: str):
    # The service is down longer than the lease: on start it renews running trials' leases
    # before it serves, so a worker that comes back with its report keeps its trial.
    options = ServerOptions(port=0, grace_seconds=1)
    first = serve(database_url, options, lease_check_seconds=0.1)
    try:
        with SuggestionClient(first.address, retries=0) as before:
            study = before.create_study("restart", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                        lease_seconds=1)
            running = study.ask().id
    finally:
        first.stop()
    time.sleep(1.5)
    second = serve(database_url, options, lease_check_seconds=0.1)
    try:
        with SuggestionClient(second.address, retries=0) as client:
            study = client.get_study("restart")
            trial = client.call("GetTrial", api.GetTrialRequest(trial_id=running)).trial
            assert trial.state == pb.TRIAL_STATE_ACTIVE
            assert trial.lease_expire_time.ToMilliseconds() > time.time() * 1000 + 500  # a full lease from the start
            time.sleep(0.3)  # reaper passes go by
            assert client.call("ReportIntermediate", api.ReportIntermediateRequest(
                trial_id=running, worker_id=trial.worker_id, step=1, metrics=[pb.Metric(name="loss", value=0.5)])).should_stop is False
            # Renewed, not made permanent: without a heartbeat it expires one lease later.
            deadline = time.monotonic() + 30
            while client.call("GetTrial", api.GetTrialRequest(trial_id=running)).trial.state == pb.TRIAL_STATE_ACTIVE:
                assert time.monotonic() < deadline, "the renewed lease never expired"
                time.sleep(0.1)
            assert study.refresh().trial_counts.stale == 1
    finally:
        second.stop()


def test_reporting_a_step_twice(client: SuggestionClient):
    study = client.create_study("steps", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    trial.report(5, 0.5)
    trial.report(5, 0.5)  # a retry: no-op
    with pytest.raises(FailedPrecondition) as error:
        trial.report(5, 0.4)
    assert error.value.reason == "STEP_ALREADY_REPORTED"
    with pytest.raises(FailedPrecondition) as error:
        client.call("ReportIntermediate", api.ReportIntermediateRequest(
            trial_id=trial.id, worker_id="intruder", step=6, metrics=[pb.Metric(name="loss", value=1)]))
    assert error.value.reason == "LEASED_TO_ANOTHER_WORKER"


def test_parallel_limit_is_held(client: SuggestionClient):
    client.create_study("cap", [Float("x", 0, 1)], objectives={"loss": "minimize"}, max_parallel_trials=2)
    response = ask_raw(client, "cap", count=3)
    assert len(response.trials) == 2 and response.status == api.SUGGEST_STATUS_WAIT
    assert "max_parallel_trials" in response.message and response.retry_after.ToMilliseconds() > 0
    assert len(ask_raw(client, "cap", count=1, worker="w2").trials) == 0
    study = client.get_study("cap")
    study.tell(response.trials[0].id, 0.5)
    assert len(ask_raw(client, "cap", count=5).trials) == 1


@pytest.mark.parametrize("algorithm", ["random", "grid"])
def test_every_waiting_worker_learns_why_the_study_is_done(client: SuggestionClient, algorithm: str):
    # Six trials (a budget of 6, or a grid of 6 points), two at a time, five workers asking
    # concurrently and waiting: each must end with the same DONE answer, not only the one
    # whose ask completed the study.
    max_trials = 6 if algorithm == "random" else 0
    client.create_study("crowd", [Int("x", 1, 6)], objectives={"loss": "minimize"}, algorithm=algorithm,
                        max_trials=max_trials, max_parallel_trials=2)
    answers, ran = {}, {}

    def work(worker: str) -> None:
        with SuggestionClient(client.address, retries=2, backoff=0.05) as own:
            study = own.get_study("crowd")
            study.worker_id = worker
            ran[worker] = 0
            while (trial := study.ask(timeout=60)) is not None:
                time.sleep(0.02)
                study.tell(trial, float(trial.params["x"]))
                ran[worker] += 1
            answers[worker] = study.last_suggest

    workers = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(5)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(90)
    assert sum(ran.values()) == 6 and len(answers) == 5
    reason = api.DONE_REASON_BUDGET_SPENT if algorithm == "random" else api.DONE_REASON_SPACE_EXHAUSTED
    for worker, answer in answers.items():
        assert (answer.status, answer.done_reason) == (api.SUGGEST_STATUS_DONE, reason), (worker, answer)
        assert "is done" in answer.message
    # A study completed by hand before its budget was spent still says so.
    client.create_study("by-hand", [Int("x", 1, 6)], objectives={"loss": "minimize"}, max_trials=6)
    client.get_study("by-hand").set_state(pb.STUDY_STATE_COMPLETED)
    assert ask_raw(client, "by-hand").done_reason == api.DONE_REASON_STUDY_COMPLETED


def test_grid_search_covers_the_space_once_then_says_done(client: SuggestionClient):
    space = [Int("depth", 1, 3), Categorical("booster", ["gbtree", "dart"]), Float("lr", 0.1, 0.2, step=0.1)]
    study = client.create_study("grid", space, objectives={"loss": "minimize"}, algorithm="grid")
    trials = study.ask_batch(100)
    configs = {tuple(sorted(t.params.items())) for t in trials}
    assert len(trials) == len(configs) == 12
    response = ask_raw(client, "grid")
    assert response.status == api.SUGGEST_STATUS_WAIT and not response.trials
    for trial in trials:
        study.tell(trial, 1.0)
    response = ask_raw(client, "grid")
    assert response.status == api.SUGGEST_STATUS_DONE
    assert response.done_reason == api.DONE_REASON_SPACE_EXHAUSTED


def test_enqueued_configurations_go_first(client: SuggestionClient):
    study = client.create_study("warm", ALL_TYPES[:4], objectives={"loss": "minimize"}, max_trials=3)
    baseline = {"lr": 0.01, "subsample": 1, "dropout": 0.2, "depth": 6}
    queued = study.enqueue(baseline)
    assert queued.state == pb.TRIAL_STATE_QUEUED and queued.source == pb.TRIAL_SOURCE_USER
    assert not queued.HasField("suggestion_metadata")
    trial = study.ask()
    assert trial.id == queued.id and trial.params == {**baseline, "subsample": 1.0}
    with pytest.raises(InvalidArgument) as error:
        study.enqueue({**baseline, "depth": 11})
    assert error.value.field == "parameters[depth]"
    with pytest.raises(InvalidArgument) as error:
        study.enqueue({**baseline, "depth": 6.0})
    assert error.value.field == "parameters[depth]"
    with pytest.raises(InvalidArgument) as error:
        study.enqueue({"lr": 0.01})
    assert error.value.field == "parameters[subsample]"
    study.enqueue(baseline)
    study.enqueue(baseline)
    with pytest.raises(ResourceExhausted):
        study.enqueue(baseline)
    assert study.refresh().trial_counts.queued == 2


def test_failures_follow_the_retry_policy(client: SuggestionClient):
    study = client.create_study("fail", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                retry_failed=True, max_retries=1)
    trial = study.ask()
    study.fail(trial, "CUDA out of memory")
    retry = study.ask()
    assert retry.params == trial.params and retry.info.retry_of == trial.id
    study.fail(retry, "CUDA out of memory")
    infeasible = study.ask()
    assert infeasible.params != trial.params
    study.mark_infeasible(infeasible, "violates a constraint")
    assert study.ask().info.source == pb.TRIAL_SOURCE_ALGORITHM
    counts = study.refresh().trial_counts
    assert (counts.failed, counts.infeasible, counts.queued) == (2, 1, 0)


def test_pruned_trials_keep_their_last_report_and_no_final_value(client: SuggestionClient):
    # A pruned trial's intermediate value often reads better than any finished trial's: it must
    # never be mistaken for a result.
    study = client.create_study("prune", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial, other = study.ask(), study.ask()
    trial.report(0, 0.9)
    trial.report(1, 0.1)
    study.tell(other, 0.5)
    pruned = trial.prune()
    assert pruned.state == pb.TRIAL_STATE_PRUNED and list(pruned.metrics) == []
    assert (pruned.last_measurement.step, pruned.last_measurement.metrics[0].value) == (1, 0.1)
    assert [t.id for t in study.best_trials()] == [other.id]


def test_a_prune_may_only_repeat_the_last_report(client: SuggestionClient):
    study = client.create_study("prune-values", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial, silent = study.ask(), study.ask()
    trial.report(1, 0.4)

    def prune(target, value: float, name: str = "loss"):
        return client.call("CompleteTrial", api.CompleteTrialRequest(
            trial_id=target.id, worker_id=study.worker_id, outcome=api.OUTCOME_PRUNED,
            metrics=[pb.Metric(name=name, value=value)]))

    for target, value, name, says in [(trial, 0.3, "loss", "has loss=0.4"), (trial, 0.4, "acc", "has no 'acc'"),
                                      (silent, 0.4, "loss", "reported nothing")]:
        with pytest.raises(InvalidArgument) as error:
            prune(target, value, name)
        assert error.value.field == f"metrics.{name}" and says in str(error.value)
    assert {t.state for t in study.trials()} == {pb.TRIAL_STATE_ACTIVE}
    assert list(prune(trial, 0.4).trial.metrics) == []  # repeating the last report is accepted


def test_best_trials_are_the_pareto_set_with_two_objectives(client: SuggestionClient):
    study = client.create_study("pareto", [Float("x", 0, 1)], objectives={"loss": "minimize", "acc": "maximize"})
    told = {}
    for loss, acc in [(1.0, 0.9), (2.0, 0.95), (1.5, 0.8), (0.5, 0.5), (2.0, 0.9)]:
        trial = study.ask()
        study.tell(trial, {"loss": loss, "acc": acc})
        told[trial.id] = (loss, acc)
    best = {told[t.id] for t in study.best_trials()}
    assert best == {(1.0, 0.9), (2.0, 0.95), (0.5, 0.5)}


@pytest.mark.parametrize("algorithm", ["tpe", "gp"])
def test_a_two_objective_study_serves_its_pareto_set_and_hypervolume(client: SuggestionClient, algorithm):
    # ZDT1 on 3 variables, through ask/tell with MOTPE or GP-ParEGO; the reference point comes from the spec.
    study = client.create_study(f"mo-{algorithm}", [Float(f"x{i}", 0, 1) for i in range(3)], algorithm=algorithm,
                                algorithm_settings={"n_startup_trials": 5},
                                objectives={"f1": "minimize", "f2": "minimize"},
                                reference_point={"f1": 1.1, "f2": 11.0}, seed=2)
    assert [o.reference_point for o in study.info.spec.objectives] == [1.1, 11.0]
    assert study.hypervolume() is None  # nothing completed yet
    told = {}
    for _ in range(16):
        trial = study.ask()
        x = [trial.params[f"x{i}"] for i in range(3)]
        g = 1 + 9 * (x[1] + x[2]) / 2
        told[trial.id] = (x[0], g * (1 - math.sqrt(x[0] / g)))
        study.tell(trial, {"f1": told[trial.id][0], "f2": told[trial.id][1]})
        metadata = trial.info.suggestion_metadata
        assert trial.number < 5 or (metadata["phase"] == "model" and "fallback" not in metadata)
        assert algorithm == "tpe" or trial.number < 5 or metadata["scalarisation"] == "parego"
    best = study.best_response()
    front = [told[t.id] for t in best.trials]
    points = list(told.values())
    dominated = [p for p in points if any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]
    assert set(front) == set(points) - set(dominated) and front
    # The 2-D staircase, by hand.
    expected, last = 0.0, 11.0
    for f1, f2 in sorted(front):
        expected += (1.1 - f1) * (last - f2) if f2 < last else 0.0
        last = min(last, f2)
    assert best.hypervolume == pytest.approx(expected) and study.hypervolume() == best.hypervolume
    assert list(best.reference_point) == [1.1, 11.0]


def test_without_a_reference_point_the_hypervolume_uses_the_documented_rule(client: SuggestionClient):
    study = client.create_study("derived-ref", [Float("x", 0, 1)], objectives={"loss": "minimize", "acc": "maximize"},
                                reference_point={"acc": 0.0})
    for loss, acc in [(1.0, 0.9), (3.0, 0.5), (2.0, 0.95)]:
        study.tell(study.ask(), {"loss": loss, "acc": acc})
    best = study.best_response()
    # loss: worst 3.0 plus 10% of the range 2.0; acc: given.
    assert list(best.reference_point) == pytest.approx([3.2, 0.0])
    assert best.hypervolume == pytest.approx((3.2 - 1.0) * 0.9 + (3.2 - 2.0) * (0.95 - 0.9))
    single = client.create_study("single-ref", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    single.tell(single.ask(), 1.0)
    assert single.hypervolume() is None and not single.best_response().reference_point


def test_the_reference_point_is_part_of_the_studys_identity(client: SuggestionClient):
    def create(**reference):
        return client.create_study("ref-id", [Float("x", 0, 1)], objectives={"a": "minimize", "b": "minimize"},
                                   seed=1, **reference)

    assert create(reference_point={"a": 1.0}).created
    assert not create(reference_point={"a": 1.0}).created
    with pytest.raises(AlreadyExists):
        create()
    with pytest.raises(AlreadyExists):
        create(reference_point={"a": 2.0})
    with pytest.raises(ValueError, match="not objectives"):
        create(reference_point={"c": 2.0})


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_non_finite_reference_point_is_refused_naming_the_field(client: SuggestionClient, value):
    with pytest.raises(InvalidArgument) as error:
        client.create_study("bad-ref", [Float("x", 0, 1)], objectives={"a": "minimize", "b": "minimize"},
                            reference_point={"b": value})
    assert error.value.field == "spec.objectives[1].reference_point"


def test_bohb_refuses_a_multi_objective_study_naming_the_field(client: SuggestionClient):
    algorithm = "bohb"
    with pytest.raises(InvalidArgument, match="one objective") as error:
        client.create_study(f"mo-{algorithm}", [Float("x", 0, 1)], algorithm=algorithm,
                            objectives={"a": "minimize", "b": "minimize"})
    assert error.value.field == "spec.objectives"


def test_study_states(client: SuggestionClient):
    study = client.create_study("states", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    running = study.ask()
    study.set_state(pb.STUDY_STATE_STOPPED)
    response = ask_raw(client, "states")
    assert response.status == api.SUGGEST_STATUS_DONE and response.done_reason == api.DONE_REASON_STUDY_STOPPED
    study.tell(running, 0.3)  # trials already leased may still finish
    study.set_state(pb.STUDY_STATE_ACTIVE)
    assert study.ask() is not None
    study.set_state(pb.STUDY_STATE_COMPLETED)
    with pytest.raises(FailedPrecondition):
        study.set_state(pb.STUDY_STATE_ACTIVE)
    assert ask_raw(client, "states").done_reason == api.DONE_REASON_STUDY_COMPLETED


def test_delete_study(client: SuggestionClient):
    study = client.create_study("gone", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    trial.report(0, 1.0)
    client.delete_study("gone")
    with pytest.raises(NotFound):
        client.get_study("gone")
    with pytest.raises(NotFound):
        client.call("GetTrial", api.GetTrialRequest(trial_id=trial.id))
    assert client.create_study("gone", [Float("x", 0, 1)], objectives={"loss": "minimize"}).created
    # Ids are never reused, so the dead study's worker cannot touch the new study's trials.
    assert client.get_study("gone").ask().id > trial.id


def test_pagination(client: SuggestionClient):
    for i in range(5):
        client.create_study(f"page-{i}", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    names = [s.name for s in client.list_studies(page_size=2)]
    assert names == [f"page-{i}" for i in range(5)]
    study = client.get_study("page-0")
    for trial in study.ask_batch(7):
        if trial.number % 2:
            study.tell(trial, 1.0)
    assert [t.number for t in study.trials(page_size=3)] == list(range(7))
    assert [t.number for t in study.trials(pb.TRIAL_STATE_COMPLETED, page_size=2)] == [1, 3, 5]
    with pytest.raises(InvalidArgument) as error:
        client.call("ListTrials", api.ListTrialsRequest(study="page-0", page_token="garbage"))
    assert error.value.field == "page_token"


def test_list_trials_after_a_number(client: SuggestionClient):
    # What a reader holding trials 0..n needs next: the trials after n, with states and pages.
    study = client.create_study("after", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    for trial in study.ask_batch(8):
        if trial.number % 2:
            study.tell(trial, 1.0)

    def numbers(**fields) -> list[int]:
        found, token = [], ""
        while True:
            answer = client.call("ListTrials", api.ListTrialsRequest(study="after", page_token=token, **fields))
            found += [t.number for t in answer.trials]
            token = answer.next_page_token
            if not token:
                return found

    assert numbers(after_number=4) == [5, 6, 7]
    assert numbers(after_number=4, page_size=2) == [5, 6, 7]
    assert numbers(after_number=0) == list(range(1, 8))  # set to 0 is not "unset": trial 0 is left out
    assert numbers() == list(range(8))
    assert numbers(after_number=2, states=[pb.TRIAL_STATE_COMPLETED]) == [3, 5, 7]
    assert numbers(after_number=7) == [] and numbers(after_number=-1) == list(range(8))


@pytest.mark.parametrize("algorithm, settings", [
    ("random", {}), ("quasi_random", {}), ("tpe", {"n_startup_trials": 3}), ("gp", {"n_startup_trials": 3}),
])
def test_same_seed_same_sequence_and_state_survives_a_restart(database_url: str, algorithm: str, settings: dict):
    def run(name: str, restart_after: int) -> list[dict]:
        params = []
        running = serve(database_url, ServerOptions(port=0, grace_seconds=1))
        for i in range(6):
            if i == restart_after:
                running.stop()
                running = serve(database_url, ServerOptions(port=0, grace_seconds=1))
            with SuggestionClient(running.address) as c:
                study = c.create_study(name, ALL_TYPES, objectives={"f1": "maximize"}, seed=11,
                                       algorithm=algorithm, algorithm_settings=settings)
                trial = study.ask()
                params.append(trial.params)
                study.tell(trial, trial.params["subsample"] - abs(trial.params["depth"] - 5) / 10)
        running.stop()
        return params

    # The model-based ones are past their start-up when the service restarts.
    assert run(f"{algorithm}-a", restart_after=4) == run(f"{algorithm}-b", restart_after=99)


def test_health_and_reflection(server):
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service="tuning.suggestion.v1.SuggestionService"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [response] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in response.list_services_response.service}
        assert "tuning.suggestion.v1.SuggestionService" in names and "grpc.health.v1.Health" in names
        assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names


def _reflection_v1_messages():
    """grpc.reflection.v1's request and response, as a v1 client has them (grpcio-reflection
    ships only v1alpha; v1 declares the same messages in its own package)."""
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name, file.package = "client/grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    for message in file.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    file.ClearField("service")
    file.ClearField("options")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.v1.{name}"))
            for name in ("ServerReflectionRequest", "ServerReflectionResponse"))


def test_reflection_v1_describes_the_service(server):
    request, response = _reflection_v1_messages()
    with grpc.insecure_channel(server.address) as channel:
        info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=request.SerializeToString,
                                     response_deserializer=response.FromString)
        listed, described, itself = info(iter([
            request(list_services=""),
            request(file_containing_symbol="tuning.suggestion.v1.SuggestionService"),
            request(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        ]), timeout=30)
    names = {s.name for s in listed.list_services_response.service}
    assert {"tuning.suggestion.v1.SuggestionService", "grpc.reflection.v1.ServerReflection"} <= names
    # The files describe the service fully: a fresh pool builds it from them alone.
    pool = descriptor_pool.DescriptorPool()
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in described.file_descriptor_response.file_descriptor_proto]
    added: set[str] = set()
    while len(added) < len(files):
        for file in files:
            if file.name not in added and set(file.dependency) <= added:
                pool.Add(file)
                added.add(file.name)
    service = pool.FindServiceByName("tuning.suggestion.v1.SuggestionService")
    assert service.methods_by_name["SuggestTrials"].input_type.fields_by_name["request_id"]
    [own] = itself.file_descriptor_response.file_descriptor_proto
    assert descriptor_pb2.FileDescriptorProto.FromString(own).package == "grpc.reflection.v1"


def test_oversized_requests_are_refused(database_url: str):
    running = serve(database_url, ServerOptions(port=0, max_message_bytes=64 * 1024))
    try:
        with SuggestionClient(running.address, retries=0) as c:
            huge = [Categorical("c", [f"choice-{i}" for i in range(20000)])]
            with pytest.raises(ResourceExhausted):
                c.create_study("huge", huge, objectives={"loss": "minimize"})
    finally:
        running.stop()


def test_the_client_retries_while_the_service_is_unavailable(database_url: str):
    running = serve(database_url, ServerOptions(port=0, grace_seconds=0))
    port = int(running.address.rsplit(":", 1)[1])
    running.stop()
    restarted = []
    threading.Timer(0.5, lambda: restarted.append(serve(database_url, ServerOptions(port=port)))).start()
    try:
        with SuggestionClient(f"127.0.0.1:{port}", retries=8, backoff=0.1) as client:
            assert client.create_study("later", [Float("x", 0, 1)], objectives={"loss": "minimize"}).created
    finally:
        time.sleep(0.6)
        for server in restarted:
            server.stop()


def test_auto_records_its_choice_switches_to_tpe_and_survives_a_restart(database_url: str):
    space = [Float("x", 0.0, 1.0), Float("y", -2.0, 2.0)]

    def run(name: str, restart_after: int) -> list[tuple[dict, str, str, str]]:
        seen = []
        running = serve(database_url, ServerOptions(port=0, grace_seconds=1))
        for i in range(14):
            if i == restart_after:
                running.stop()
                running = serve(database_url, ServerOptions(port=0, grace_seconds=1))
            with SuggestionClient(running.address) as c:
                # gp's start-up is 10 quasi-random trials here: 10 and 11 come from its model,
                # and from 12 completed trials on TPE (past its own 10 start-up trials) takes over.
                study = c.create_study(name, space, objectives={"loss": "minimize"}, seed=5,
                                       constraints=["c"], algorithm="auto",
                                       algorithm_settings={"gp_max_history": 12})
                trial = study.ask()
                metadata = trial.info.suggestion_metadata
                seen.append((trial.params, metadata["algorithm"], metadata["auto_choice"], metadata["phase"]))
                assert metadata["auto_reason"]
                x, y = trial.params["x"], trial.params["y"]
                study.tell(trial, (x - 0.3) ** 2 + (y - 0.5) ** 2, constraints=[x - 0.6])
        running.stop()
        return seen

    seen = run("auto-a", restart_after=11)
    assert {algorithm for _, algorithm, _, _ in seen} == {"auto"}
    assert [(choice, phase) for _, _, choice, phase in seen] == \
        [("gp", "startup")] * 10 + [("gp", "model")] * 2 + [("tpe", "model")] * 2
    assert run("auto-b", restart_after=99) == seen
