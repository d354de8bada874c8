"""GetParameterImportance through a real gRPC server: the client method, the objective of a
multi-objective study, conditional parameters, determinism, and the errors."""

from __future__ import annotations

import pytest

from trial_worker import SuggestionClient
from trial_worker.space import Categorical, Fixed, Float, Int
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound

SPACE = [
    Float("x", -1.0, 1.0),
    Float("lr", 1e-4, 1.0, log=True),
    Int("depth", 1, 8),
    Categorical("kind", ["a", "b"]),
    Float("gamma", 0.0, 1.0, when={"kind": ["a"]}),
    Fixed("version", 2),
]


def _run(client: SuggestionClient, name: str, trials: int):
    study = client.create_study(name, SPACE, objectives={"loss": "minimize", "cost": "minimize"},
                                algorithm="random", seed=7)
    for _ in range(trials):
        trial = study.ask()
        p = trial.params
        # loss is x's, cost is depth's and (where it exists) gamma's.
        study.tell(trial, {"loss": p["x"] ** 2, "cost": p["depth"] + 3 * p.get("gamma", 0.0)})
    return study


def test_importance_of_each_objective(client: SuggestionClient):
    study = _run(client, "imp", 40)
    loss = study.parameter_importance()
    assert list(loss)[0] == "x" and loss["x"] > 0.8
    assert set(loss) == {"x", "lr", "depth", "kind", "gamma"}  # a fixed parameter is not ranked
    assert sum(loss.values()) == pytest.approx(1.0)
    cost = study.parameter_importance("cost")
    assert cost["x"] < 0.05 and cost["depth"] + cost["gamma"] + cost["kind"] > 0.9
    # The same trials give the same answer; the response says what it was computed from.
    response = client.call("GetParameterImportance", api.GetParameterImportanceRequest(study="imp"))
    assert response.objective == "loss" and response.trial_count == 40
    assert {e.parameter: e.importance for e in response.importances} == loss
    assert [e.importance for e in response.importances] == sorted(loss.values(), reverse=True)


def test_a_new_completion_is_taken_into_account(client: SuggestionClient):
    study = _run(client, "grows", 5)
    before = client.call("GetParameterImportance", api.GetParameterImportanceRequest(study="grows"))
    assert before.trial_count == 5
    trial = study.ask()
    study.tell(trial, {"loss": 0.5, "cost": 1.0})
    after = client.call("GetParameterImportance", api.GetParameterImportanceRequest(study="grows"))
    assert after.trial_count == 6


def test_errors(client: SuggestionClient):
    with pytest.raises(NotFound):
        client.call("GetParameterImportance", api.GetParameterImportanceRequest(study="nope"))
    study = _run(client, "few", 4)
    with pytest.raises(FailedPrecondition) as raised:
        study.parameter_importance()
    assert raised.value.reason == "TOO_FEW_TRIALS" and "(4 so far)" in raised.value.message
    assert raised.value.metadata == {"min_trials": "5", "trials": "4"}
    trial = study.ask()
    study.tell(trial, {"loss": 0.1, "cost": 2.0})
    with pytest.raises(InvalidArgument) as raised:
        study.parameter_importance("accuracy")
    assert raised.value.field == "objective" and "'accuracy'" in raised.value.message
    assert set(study.parameter_importance()) == {"x", "lr", "depth", "kind", "gamma"}
