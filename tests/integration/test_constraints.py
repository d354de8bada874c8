"""Constrained studies through a real gRPC server on port 0, once per storage backend (SQLite
file and PostgreSQL): tells carry constraint values, which are validated, stored, compared on
a retried tell, shown as `feasible`, and keep infeasible trials out of the best trials."""

from __future__ import annotations

import math

import pytest

from suggestion_service.server import serve
from trial_worker import Float, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import FailedPrecondition, InvalidArgument
from tuning_common.grpc_server import ServerOptions


@pytest.fixture
def server(database_url: str):
    running = serve(database_url, ServerOptions(port=0, grace_seconds=1), lease_check_seconds=0.2)
    yield running
    running.stop()


def constrained(client: SuggestionClient, name: str = "c", **kwargs):
    return client.create_study(name, [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                               constraints=["memory_over", "latency_over"], seed=1, **kwargs)


def test_the_spec_declares_constraints_and_a_tell_stores_them_with_feasibility(client: SuggestionClient):
    study = constrained(client)
    assert study.constraints == ["memory_over", "latency_over"]
    assert list(client.get_study("c").info.spec.constraints) == ["memory_over", "latency_over"]

    good, bad = study.ask(), study.ask()
    told = study.tell(good, 0.5, constraints=[-1.0, 0.0])  # 0 is on the boundary: satisfied
    assert list(told.constraints) == [-1.0, 0.0] and told.HasField("feasible") and told.feasible
    told = study.tell(bad, 0.1, constraints={"latency_over": -2.0, "memory_over": 3.5})  # by name
    assert list(told.constraints) == [3.5, -2.0] and told.feasible is False
    # Still COMPLETED with its value: an infeasible trial is a result, not a failure.
    assert told.state == pb.TRIAL_STATE_COMPLETED and told.metrics[0].value == 0.1

    stored = {t.number: t for t in study.trials()}
    assert stored[bad.number].feasible is False and list(stored[bad.number].constraints) == [3.5, -2.0]
    assert stored[good.number].feasible is True
    # The better value is infeasible: the best trial is the feasible one.
    assert [t.number for t in study.best_trials()] == [good.number]


def test_best_trials_is_empty_while_no_trial_is_feasible(client: SuggestionClient):
    study = constrained(client)
    trial = study.ask()
    study.tell(trial, 0.0, constraints=[0.5, 0.5])
    assert study.best_trials() == []


def test_the_pareto_set_counts_feasible_trials_only(client: SuggestionClient):
    study = client.create_study("mo", [Float("x", 0.0, 1.0)], objectives={"a": "minimize", "b": "minimize"},
                                constraints=["c"], seed=1)
    trials = [study.ask() for _ in range(3)]
    study.tell(trials[0], {"a": 0.0, "b": 0.0}, constraints=[1.0])  # dominates all, but infeasible
    study.tell(trials[1], {"a": 1.0, "b": 2.0}, constraints=[-1.0])
    study.tell(trials[2], {"a": 2.0, "b": 1.0}, constraints=[0.0])
    assert [t.number for t in study.best_trials()] == [trials[1].number, trials[2].number]


@pytest.mark.parametrize(("constraints", "field", "words"), [
    ([], "constraints", "a successful tell needs a value for each"),
    ([1.0], "constraints", "expected 2 value(s)"),
    ([1.0, 2.0, 3.0], "constraints", "expected 2 value(s)"),
    ([math.nan, 0.0], "constraints[0]", "must be finite"),
    ([0.0, math.inf], "constraints[1]", "must be finite"),
])
def test_bad_constraint_values_are_invalid_argument_naming_the_field(client, constraints, field, words):
    study = constrained(client)
    trial = study.ask()
    request = api.CompleteTrialRequest(trial_id=trial.id, worker_id=study.worker_id, outcome=api.OUTCOME_SUCCEEDED,
                                       metrics=[pb.Metric(name="loss", value=1.0)], constraints=constraints)
    with pytest.raises(InvalidArgument) as error:
        client.call("CompleteTrial", request)
    assert error.value.field == field and words in str(error.value)
    # Nothing was recorded: the trial is still leased and accepts a correct tell.
    assert study.tell(trial, 1.0, constraints=[0.0, 0.0]).feasible


def test_an_unconstrained_study_refuses_constraint_values(client: SuggestionClient):
    study = client.create_study("plain", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
    trial = study.ask()
    with pytest.raises(InvalidArgument) as error:
        study.tell(trial, 1.0, constraints=[0.0])
    assert error.value.field == "constraints" and "declares no constraints" in str(error.value)
    told = study.tell(trial, 1.0)
    assert list(told.constraints) == [] and not told.HasField("feasible")


def test_other_outcomes_take_all_constraint_values_or_none(client: SuggestionClient):
    study = constrained(client)
    failed, pruned = study.ask(), study.ask()
    assert not study.fail(failed, "oom").HasField("feasible")
    request = api.CompleteTrialRequest(trial_id=pruned.id, worker_id=study.worker_id, outcome=api.OUTCOME_PRUNED,
                                       constraints=[2.0])
    with pytest.raises(InvalidArgument):
        client.call("CompleteTrial", request)
    request.constraints[:] = [2.0, -1.0]
    told = client.call("CompleteTrial", request).trial
    assert told.state == pb.TRIAL_STATE_PRUNED and told.feasible is False


def test_a_retried_tell_compares_constraint_values_too(client: SuggestionClient):
    study = constrained(client)
    trial = study.ask()
    first = study.tell(trial, 0.5, constraints=[-1.0, 1.0])
    again = study.tell(trial, 0.5, constraints=[-1.0, 1.0])
    assert again == first
    with pytest.raises(FailedPrecondition) as error:
        study.tell(trial, 0.5, constraints=[-1.0, -1.0])
    assert error.value.reason == "TRIAL_ALREADY_FINISHED"


def test_the_spec_is_part_of_the_studys_identity(client: SuggestionClient):
    constrained(client)
    assert not constrained(client).created
    from tuning_common.errors import AlreadyExists
    with pytest.raises(AlreadyExists):
        client.create_study("c", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"},
                            constraints=["memory_over"], seed=1)


@pytest.mark.parametrize(("names", "field"), [(["a", "a"], "spec.constraints[1]"),
                                              (["bad name"], "spec.constraints[0]")])
def test_bad_constraint_names_are_refused(client: SuggestionClient, names, field):
    with pytest.raises(InvalidArgument) as error:
        client.create_study("bad", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"}, constraints=names)
    assert error.value.field == field


@pytest.mark.parametrize("algorithm", ["random", "quasi_random", "tpe", "gp"])
def test_every_algorithm_runs_a_constrained_study_and_the_best_trial_is_feasible(client, algorithm):
    settings = {"n_startup_trials": 4} if algorithm in ("tpe", "gp") else {}
    study = client.create_study(f"run-{algorithm}", [Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)],
                                objectives={"loss": "minimize"}, constraints=["c"], algorithm=algorithm,
                                algorithm_settings=settings, max_trials=10, seed=2)
    while (trial := study.ask()) is not None:
        x, y = trial.params["x"], trial.params["y"]
        # Unconstrained optimum at the origin; feasible only where x + y >= 0.8.
        study.tell(trial, x * x + y * y, constraints=[0.8 - x - y])
    completed = list(study.trials(pb.TRIAL_STATE_COMPLETED))
    feasible = [t for t in completed if t.feasible]
    best = study.best_trials()
    if feasible:
        [only] = best
        assert only.feasible and only.metrics[0].value == min(t.metrics[0].value for t in feasible)
    else:
        assert best == []
