"""A trial records the tracking run that holds its params, metrics and model (LinkRun)."""

from __future__ import annotations

import uuid

import pytest

from trial_worker import Float, SuggestionClient
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import FailedPrecondition, InvalidArgument


def test_a_trial_links_one_run(client: SuggestionClient):
    study = client.create_study("linked", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    run_id = uuid.uuid4().hex
    assert trial.info.run_id == ""
    assert trial.link_run(run_id).run_id == run_id
    assert trial.link_run(run_id).run_id == run_id  # the same run again: a no-op
    with pytest.raises(FailedPrecondition) as error:
        trial.link_run(uuid.uuid4().hex)
    assert error.value.reason == "RUN_ALREADY_LINKED"
    study.tell(trial, 0.5)
    [stored] = list(study.trials())
    assert stored.run_id == run_id  # kept after the tell, and listed with the trial


def test_only_the_lease_holder_links_and_ids_are_checked(client: SuggestionClient):
    study = client.create_study("guarded", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    trial = study.ask()
    with pytest.raises(InvalidArgument) as error:
        trial.link_run("not-a-run")
    assert error.value.field == "run_id"
    request = api.LinkRunRequest(trial_id=trial.id, worker_id="someone-else", run_id=uuid.uuid4().hex)
    with pytest.raises(FailedPrecondition) as error:
        client.call("LinkRun", request)
    assert error.value.reason == "LEASED_TO_ANOTHER_WORKER"
    study.tell(trial, 0.1)
    with pytest.raises(FailedPrecondition):  # a finished trial without a run stays without one
        trial.link_run(uuid.uuid4().hex)
