"""A worker hands its leased trial back at once (ReleaseTrial), e.g. on SIGTERM: the trial
goes STALE now and its configuration is queued again, first in line and without spending a
retry (a hand-back is not a failure)."""

from __future__ import annotations

import threading
import time

import pytest

from suggestion_service.server import serve
from trial_worker import Float, Int, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound
from tuning_common.grpc_server import ServerOptions

SPACE = [Float("x", 0, 1), Int("n", 1, 9)]


@pytest.fixture
def server(database_url: str):
    """Once per storage backend: the study lock is a real row lock on PostgreSQL."""
    running = serve(database_url, ServerOptions(port=0, grace_seconds=1), lease_check_seconds=0.2)
    yield running
    running.stop()


def _study(client: SuggestionClient, name: str, **kwargs):
    return client.create_study(name, SPACE, objectives={"loss": "minimize"}, **kwargs)


def _get(client: SuggestionClient, trial_id: int) -> pb.Trial:
    return client.call("GetTrial", api.GetTrialRequest(trial_id=trial_id)).trial


def test_a_released_trial_goes_stale_and_its_retry_is_asked_next(client: SuggestionClient):
    study = _study(client, "release", lease_seconds=600)
    trial = study.ask()
    trial.report(0, 0.9)
    released = trial.release("SIGTERM")
    assert trial.info == released
    assert released.state == pb.TRIAL_STATE_STALE
    assert released.reason == f"handed back by worker {study.worker_id!r}: SIGTERM"
    assert released.HasField("end_time") and not released.HasField("lease_expire_time")
    assert _get(client, trial.id) == released
    counts = study.refresh().trial_counts
    assert (counts.active, counts.stale, counts.queued) == (0, 1, 1)
    # The retry is handed out first, at once (no waiting for a lease to expire).
    retry = study.ask(wait=False)
    assert retry.id != trial.id and retry.params == trial.params
    assert retry.info.attempt == trial.info.attempt and retry.info.retry_of == trial.id
    assert retry.info.source == pb.TRIAL_SOURCE_RETRY
    assert retry.info.suggestion_metadata == trial.info.suggestion_metadata
    study.tell(retry, 0.4)


def test_releasing_twice_is_a_no_op(client: SuggestionClient):
    study = _study(client, "twice")
    trial = study.ask()
    first = trial.release()
    assert first.reason == f"handed back by worker {study.worker_id!r}"
    assert trial.release("another reason") == first  # unchanged, reason included
    # Without a worker id (not checked) the answer is the same too.
    again = client.call("ReleaseTrial", api.ReleaseTrialRequest(trial_id=trial.id)).trial
    assert again == first
    queued = list(study.trials(pb.TRIAL_STATE_QUEUED))
    assert [t.retry_of for t in queued] == [trial.id]  # still one retry


def test_concurrent_releases_queue_one_retry(client: SuggestionClient):
    study = _study(client, "race")
    trial = study.ask()
    results, errors = [], []

    def release() -> None:
        try:
            results.append(trial.release("SIGTERM"))
        except Exception as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=release) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len({r.SerializeToString(deterministic=True) for r in results}) == 1
    assert [t.retry_of for t in study.trials(pb.TRIAL_STATE_QUEUED)] == [trial.id]


def test_only_the_lease_holder_releases(client: SuggestionClient):
    study = _study(client, "holder")
    trial = study.ask()
    request = api.ReleaseTrialRequest(trial_id=trial.id, worker_id="someone-else", reason="not mine")
    with pytest.raises(FailedPrecondition) as error:
        client.call("ReleaseTrial", request)
    assert error.value.reason == "LEASED_TO_ANOTHER_WORKER"
    stored = _get(client, trial.id)
    assert stored.state == pb.TRIAL_STATE_ACTIVE and stored.worker_id == study.worker_id
    assert study.refresh().trial_counts.queued == 0
    # Once released by its holder, another worker still cannot pass it off as its own release.
    trial.release()
    with pytest.raises(FailedPrecondition) as error:
        client.call("ReleaseTrial", request)
    assert error.value.reason == "LEASE_LOST"


def test_a_completed_trial_cannot_be_released(client: SuggestionClient):
    study = _study(client, "completed")
    trial = study.ask()
    study.tell(trial, 0.3)
    with pytest.raises(FailedPrecondition) as error:
        trial.release("too late")
    assert error.value.reason == "TRIAL_ALREADY_FINISHED"
    stored = _get(client, trial.id)
    assert stored.state == pb.TRIAL_STATE_COMPLETED and stored.reason == ""
    assert study.refresh().trial_counts.queued == 0


def test_a_queued_trial_cannot_be_released(client: SuggestionClient):
    study = _study(client, "queued")
    queued = study.enqueue({"x": 0.5, "n": 3})
    with pytest.raises(FailedPrecondition) as error:
        client.call("ReleaseTrial", api.ReleaseTrialRequest(trial_id=queued.id))
    assert error.value.reason == "TRIAL_NOT_ACTIVE"


def test_invalid_releases_are_refused_and_change_nothing(client: SuggestionClient):
    study = _study(client, "invalid")
    trial = study.ask()
    with pytest.raises(NotFound) as error:
        client.call("ReleaseTrial", api.ReleaseTrialRequest(trial_id=10**9))
    assert error.value.reason == "TRIAL_NOT_FOUND"
    with pytest.raises(InvalidArgument) as error:
        client.call("ReleaseTrial", api.ReleaseTrialRequest(trial_id=0))
    assert error.value.field == "trial_id"
    with pytest.raises(InvalidArgument) as error:
        trial.release("x" * 5000)
    assert error.value.field == "reason"
    with pytest.raises(InvalidArgument) as error:
        client.call("ReleaseTrial", api.ReleaseTrialRequest(trial_id=trial.id, worker_id="w" * 300))
    assert error.value.field == "worker_id"
    assert _get(client, trial.id).state == pb.TRIAL_STATE_ACTIVE
    assert study.refresh().trial_counts.queued == 0
    trial.release("x" * 4096)  # the limit itself is fine
    assert _get(client, trial.id).reason.endswith(": " + "x" * 4096)


def test_a_hand_back_spends_no_retry(client: SuggestionClient):
    study = _study(client, "not-a-failure", max_retries=1)
    first = study.ask()
    for times in range(1, 4):  # more hand-backs than max_retries allows retries
        handed = study.ask(wait=False) if times > 1 else first
        assert handed.params == first.params and handed.info.attempt == 0
        handed.release("preempted")
        counts = study.refresh().trial_counts
        assert (counts.stale, counts.queued, counts.active) == (times, 1, 0)
    last = study.ask(wait=False)
    assert last.params == first.params and last.info.attempt == 0
    study.tell(last, 0.2)
    assert study.refresh().trial_counts.completed == 1


def test_a_hand_back_is_queued_with_max_retries_zero(client: SuggestionClient):
    study = _study(client, "no-retries", max_retries=0)
    trial = study.ask()
    assert trial.release().state == pb.TRIAL_STATE_STALE
    [copy] = list(study.trials(pb.TRIAL_STATE_QUEUED))
    assert copy.retry_of == trial.id and copy.attempt == 0


def test_a_handed_back_configuration_goes_before_enqueued_ones(client: SuggestionClient):
    study = _study(client, "first-in-line", lease_seconds=600)
    trial = study.ask()
    study.enqueue({"x": 0.5, "n": 3})  # queued before the hand-back, so numbered before it
    trial.release("SIGTERM")
    assert study.ask(wait=False).params == trial.params
    assert study.ask(wait=False).params == {"x": 0.5, "n": 3}


def test_an_expired_lease_still_spends_a_retry(client: SuggestionClient):
    study = _study(client, "expiry", lease_seconds=1, max_retries=1)
    first = study.ask()
    [retry] = _wait_for_queued(study)
    assert retry.retry_of == first.id and retry.attempt == 1
    study.ask(wait=False)  # the retry, leased and left to expire too: the retries are spent
    counts = _wait_for(lambda: study.refresh().trial_counts, lambda c: c.stale == 2)
    assert counts.queued == 0


def _wait_for(read, done, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _wait_for_queued(study) -> list[pb.Trial]:
    return _wait_for(lambda: list(study.trials(pb.TRIAL_STATE_QUEUED)), bool)


def test_a_released_trial_refuses_report_heartbeat_and_tell(client: SuggestionClient):
    study = _study(client, "after")
    trial = study.ask()
    trial.release("SIGTERM")
    [retry] = list(study.trials(pb.TRIAL_STATE_QUEUED))
    for call in (lambda: study.tell(trial, 0.1), lambda: trial.report(1, 0.1), trial.heartbeat,
                 lambda: study.fail(trial, "shutting down")):
        with pytest.raises(FailedPrecondition) as error:
            call()
        assert error.value.reason == "LEASE_LOST"
        assert "handed it back" in str(error.value) and f"trial {retry.id}" in str(error.value)
    assert _get(client, trial.id).state == pb.TRIAL_STATE_STALE


def test_a_release_frees_a_parallel_slot(client: SuggestionClient):
    study = _study(client, "parallel", max_parallel_trials=1, max_retries=0)
    trial = study.ask()
    assert study.ask(wait=False) is None  # the limit is reached: WAIT
    assert study.last_suggest.status == api.SUGGEST_STATUS_WAIT
    trial.release()
    assert study.ask(wait=False) is not None
