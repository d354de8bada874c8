"""Transfer learning through a real gRPC server (model processes on): CreateStudy with
prior_studies, its errors, and the priors' trials reaching the algorithm (suggestion metadata)."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from suggestion_service.server import serve
from trial_worker import Categorical, Float, Int, SuggestionClient
from trial_worker.study_file import from_dict, to_dict
from tuning_common.errors import AlreadyExists, InvalidArgument, NotFound
from tuning_common.grpc_server import ServerOptions
from tuning_types import convert

OLD_SPACE = [Float("x", 0.0, 1.0), Int("depth", 1, 8), Categorical("booster", ["gbtree", "dart"]),
             Float("extra", 0.0, 1.0)]
# Narrower bounds, one parameter fewer: an overlapping space.
NEW_SPACE = [Float("x", 0.0, 0.5), Int("depth", 1, 8), Categorical("booster", ["gbtree", "dart"])]


@pytest.fixture
def client(database_url: str):
    running = serve(database_url, ServerOptions(port=0, grace_seconds=1), lease_check_seconds=0.2, model_workers=1)
    with SuggestionClient(running.address, retries=2, backoff=0.05) as c:
        yield c
    running.stop()


def loss(params) -> float:
    return (params["x"] - 0.3) ** 2 + 0.01 * params["depth"] + (0.1 if params["booster"] == "dart" else 0.0)


def finished_prior(client: SuggestionClient, name: str = "old", trials: int = 16):
    study = client.create_study(name, OLD_SPACE, objectives={"loss": "minimize"}, algorithm="random",
                                max_trials=trials, seed=5)
    while (trial := study.ask()) is not None:
        study.tell(trial, {"loss": loss(trial.params)})
    return study


def metadata(trial) -> dict:
    return json_format.MessageToDict(trial.info.suggestion_metadata)


@pytest.mark.parametrize("algorithm", ["tpe", "gp"])
def test_a_study_learns_from_the_trials_of_its_prior(client: SuggestionClient, algorithm: str):
    old = finished_prior(client)
    inside = [t for t in old.trials() if t.state == 3 and t.parameters["x"].float_value <= 0.5]
    study = client.create_study("new", NEW_SPACE, objectives={"loss": "minimize"}, algorithm=algorithm,
                                seed=1, prior_studies=["old"])
    assert list(study.info.spec.prior_studies) == ["old"]
    first = study.ask()
    facts = metadata(first)
    assert facts["phase"] == "prior_best"
    # Only the prior's trials inside the new bounds count; its extra parameter is dropped.
    assert facts["priors"] == {"old": {"usable_trials": len(inside)}}
    best = min(inside, key=lambda t: t.metrics[0].value)
    assert first.params == {k: convert.value_from_proto(best.parameters[k], k) for k in ("x", "depth", "booster")}
    study.tell(first, {"loss": loss(first.params)})
    # Past the start-up the model reports each prior's weight and relevance.
    for _ in range(14):
        trial = study.ask()
        study.tell(trial, {"loss": loss(trial.params)})
    facts = metadata(study.ask())
    assert facts["phase"] == "model"
    assert set(facts["priors"]["old"]) == {"usable_trials", "weight", "relevance"}
    assert facts["priors"]["old"]["weight"] >= 0.0


def test_prior_studies_are_checked_at_creation(client: SuggestionClient):
    finished_prior(client, trials=2)
    client.create_study("two", NEW_SPACE, objectives={"loss": "minimize", "seconds": "minimize"}, algorithm="random")
    make = lambda name, priors, **kw: client.create_study(  # noqa: E731
        name, NEW_SPACE, objectives={"loss": "minimize"}, prior_studies=priors, **kw)
    with pytest.raises(NotFound) as missing:
        make("new", ["nope"])
    assert "spec.prior_studies[0]" in missing.value.message and "'nope'" in missing.value.message
    for priors, field, words, kw in [
        (["new"], "spec.prior_studies[0]", "its own prior", {}),
        (["old", "old"], "spec.prior_studies[1]", "duplicate", {}),
        ([f"s{i}" for i in range(11)], "spec.prior_studies", "at most 10", {}),
        (["two"], "spec.prior_studies[0]", "2 objectives", {}),
        (["old"], "spec.prior_studies", "does not learn from prior studies", {"algorithm": "random"}),
    ]:
        with pytest.raises(InvalidArgument) as error:
            make("new", priors, **kw)
        assert error.value.field == field and words in error.value.description
    # Another type for a parameter of the new study.
    client.create_study("old2", [Float("x", 0, 1), Float("depth", 1, 8)], objectives={"loss": "minimize"})
    with pytest.raises(InvalidArgument, match="no int parameter 'depth'"):
        make("new", ["old2"])
    # Joining with another prior list is a spec mismatch, as any other.
    make("new", ["old"])
    assert make("new", ["old"]).created is False
    with pytest.raises(AlreadyExists):
        make("new", [])


def test_study_files_carry_prior_studies():
    name, spec = from_dict({"name": "n", "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
                            "objectives": {"loss": "minimize"}, "prior_studies": ["a", "b"]})
    assert spec.prior_studies == ("a", "b")
    assert to_dict(name, convert.spec_to_proto(spec))["prior_studies"] == ["a", "b"]
