"""The gateway's HTTP/JSON API through real HTTP on port 0, against real services."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import openapi_spec_validator
import pytest
from openapi_schema_validator import OAS31Validator

from gateway import openapi
from gateway.routes import ROUTES, SERVICES
from gateway.server import GatewayOptions, RunningGateway, serve
from tests.conftest import gateway_suite

STUDY = {
    "name": "gw",
    "spec": {
        "parameters": [{"name": "x", "float_range": {"low": 0, "high": 1}}],
        "objectives": [{"metric": "loss", "direction": "DIRECTION_MINIMIZE"}],
        "max_trials": 5, "seed": 3,
    },
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def gateway(data_dir: Path) -> Iterator[RunningGateway]:
    # One suite for the module: each test uses names of its own.
    with gateway_suite(data_dir, max_json_bytes=64 * 1024, max_artifact_bytes=1024 * 1024) as suite:
        yield suite.gateway


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == status and body["status"] == code and body["message"]
    return body


def test_every_rpc_has_exactly_one_route_and_an_openapi_operation():
    routed = sorted((r.service, r.rpc) for r in ROUTES)
    declared = sorted((name, m.name) for name, service in SERVICES.items() for m in service.methods)
    assert routed == declared
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    document = openapi.document()
    operations = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert sorted(operations) == sorted(rpc for _, rpc in declared)
    # Every schema a reference points at exists.
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in document["components"]["schemas"], name


def test_the_openapi_document_is_served(http: httpx.Client):
    document = ok(http.get("/v1/openapi.json"))
    assert document["openapi"].startswith("3.") and "/v1/studies/{study}/trials:suggest" in document["paths"]
    openapi_spec_validator.validate(document)


def _conforms(document: dict, name: str, instance: dict) -> None:
    """Raises unless ``instance`` is valid against the document's schema ``name``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    OAS31Validator(schema).validate(instance)


def test_the_openapi_document_describes_fields_from_the_protos():
    document = openapi.document()
    openapi_spec_validator.validate(document)
    schemas = document["components"]["schemas"]
    operations = {op["operationId"]: op for path in document["paths"].values() for op in path.values()}
    # Descriptions: the protos' comments, on operations, messages, fields, enums and services.
    assert all(op["description"] for op in operations.values())
    assert operations["SuggestTrials"]["description"].startswith("Ask: leases up to `count` trials")
    assert "2^53" in schemas["tuning.suggestion.v1.Trial"]["properties"]["suggestion_metadata"]["description"]
    assert "tpe: n_startup_trials (integer, 10)" in schemas["tuning.suggestion.v1.Algorithm"]["description"]
    assert {t["name"] for t in document["tags"] if t.get("description")} == set(SERVICES)
    # Enums by name, each value with its comment.
    scale = schemas["tuning.suggestion.v1.Scale"]
    assert scale["enum"] == ["SCALE_UNSPECIFIED", "SCALE_LINEAR", "SCALE_LOG"]
    assert "`SCALE_UNSPECIFIED`: Treated as SCALE_LINEAR." in scale["description"]
    # Required fields; a path variable is not part of the body.
    ask = schemas["tuning.suggestion.v1.SuggestTrialsRequest"]
    assert ask["required"] == ["count", "worker_id", "request_id"] and "study" not in ask["properties"]
    assert operations["SuggestTrials"]["requestBody"]["required"] is True
    assert schemas["tuning.suggestion.v1.Objective"]["required"] == ["metric", "direction"]
    listing = {p["name"]: p for p in operations["ListTrials"]["parameters"]}
    assert listing["study"]["required"] and not listing["page_size"]["required"]
    # A oneof is exactly one of its fields; a proto3 `optional` is no oneof.
    value = schemas["tuning.suggestion.v1.ParameterValue"]
    assert value["oneOf"] == [{"required": [n]} for n in ("float_value", "int_value", "string_value", "bool_value")]
    assert "oneOf" not in schemas["tuning.suggestion.v1.FloatRange"]
    _conforms(document, "tuning.suggestion.v1.ParameterValue", {"int_value": "3"})
    for wrong in ({}, {"int_value": 3, "bool_value": True}):
        with pytest.raises(jsonschema.ValidationError):
            _conforms(document, "tuning.suggestion.v1.ParameterValue", wrong)
    with pytest.raises(jsonschema.ValidationError):
        _conforms(document, "tuning.suggestion.v1.Objective", {"metric": "loss", "direction": "DIRECTION_MAXIMISE"})
    # The tracking service and the registry mark what they refuse when missing (tests/integration/
    # test_required_fields.py checks each mark over gRPC), and nothing they accept empty.
    assert schemas["tuning.tracking.v1.LogMetricRequest"]["required"] == ["metric"]
    assert schemas["tuning.tracking.v1.Metric"]["required"] == ["key"]
    assert schemas["tuning.tracking.v1.SearchRunsRequest"]["required"] == ["experiment_ids"]
    assert "required" not in schemas["tuning.tracking.v1.LogBatchRequest"]  # run_id is in the path
    assert "required" not in schemas["tuning.tracking.v1.CreateRunRequest"]  # experiment 0 is "Default"
    assert schemas["tuning.tracking.v1.CreateModelVersionRequest"]["required"] == ["source"]
    assert schemas["tuning.tracking.v1.TransitionModelVersionStageRequest"]["required"] == ["stage"]
    by_name = {p["name"]: p for p in operations["GetExperimentByName"]["parameters"]}
    assert by_name["name"]["required"] is True
    assert operations["LogMetric"]["requestBody"]["required"] is True
    for name, wrong in [
        ("tuning.tracking.v1.LogBatchRequest", {"metrics": [{"value": 0.5}]}),
        ("tuning.tracking.v1.SetTagRequest", {}),
        ("tuning.tracking.v1.CreateModelVersionRequest", {"run_id": "a" * 32}),
        ("tuning.tracking.v1.TransitionModelVersionStageRequest", {"stage": "STAGE_PRODUCTON"}),
    ]:
        with pytest.raises(jsonschema.ValidationError):
            _conforms(document, name, wrong)


def test_suggestion_routes(http: httpx.Client):
    document = openapi.document()
    _conforms(document, "tuning.suggestion.v1.CreateStudyRequest", STUDY)
    study = ok(http.post("/v1/studies", json=STUDY))
    _conforms(document, "tuning.suggestion.v1.CreateStudyResponse", study)
    assert study["created"] is True and study["study"]["state"] == "STUDY_STATE_ACTIVE"
    assert ok(http.post("/v1/studies", json=STUDY))["created"] is False
    assert ok(http.get("/v1/studies/gw"))["study"]["name"] == "gw"
    assert [s["name"] for s in ok(http.get("/v1/studies", params={"page_size": 10}))["studies"]] == ["gw"]
    asked = ok(http.post("/v1/studies/gw/trials:suggest", json={"count": 2, "worker_id": "w", "request_id": "r1"}))
    _conforms(document, "tuning.suggestion.v1.SuggestTrialsResponse", asked)
    first, second = asked["trials"]
    assert asked["status"] == "SUGGEST_STATUS_OK" and 0 <= first["parameters"]["x"]["float_value"] <= 1
    # 64-bit integers are strings in JSON, the seed in the metadata too (exact in JavaScript).
    assert first["seed"] == first["suggestion_metadata"]["seed"] == study["study"]["spec"]["seed"] == "3"
    tid = first["id"]
    report = ok(http.post(f"/v1/trials/{tid}:report",
                          json={"worker_id": "w", "step": 1, "metrics": [{"name": "loss", "value": 0.4}]}))
    assert report["should_stop"] is False
    ok(http.post(f"/v1/trials/{tid}:heartbeat", json={"worker_id": "w"}))
    linked = ok(http.post(f"/v1/trials/{tid}:linkRun", json={"worker_id": "w", "run_id": "a" * 32}))
    assert linked["trial"]["run_id"] == "a" * 32
    done = ok(http.post(f"/v1/trials/{tid}:complete", json={
        "worker_id": "w", "outcome": "OUTCOME_SUCCEEDED", "metrics": [{"name": "loss", "value": 0.3}]}))
    assert done["trial"]["state"] == "TRIAL_STATE_COMPLETED"
    released = ok(http.post(f"/v1/trials/{second['id']}:release", json={"worker_id": "w", "reason": "bye"}))
    assert released["trial"]["state"] == "TRIAL_STATE_STALE"
    queued = ok(http.post("/v1/studies/gw/trials", json={"parameters": {"x": {"float_value": 0.25}}}))
    assert queued["trial"]["state"] == "TRIAL_STATE_QUEUED"
    assert ok(http.get(f"/v1/trials/{tid}"))["trial"]["number"] == "0"
    listed = ok(http.get("/v1/studies/gw/trials", params=[("states", "TRIAL_STATE_COMPLETED"),
                                                          ("states", "TRIAL_STATE_STALE")]))
    assert [t["state"] for t in listed["trials"]] == ["TRIAL_STATE_COMPLETED", "TRIAL_STATE_STALE"]
    assert [m["step"] for m in ok(http.get(f"/v1/trials/{tid}/measurements"))["measurements"]] == ["1"]
    assert [t["id"] for t in ok(http.get("/v1/studies/gw/trials:best"))["trials"]] == [tid]
    stopped = ok(http.post("/v1/studies/gw:setState", json={"state": "STUDY_STATE_STOPPED"}))
    assert stopped["study"]["state"] == "STUDY_STATE_STOPPED"
    ok(http.delete("/v1/studies/gw"))
    error(http.get("/v1/studies/gw"), 404, "NOT_FOUND")


def test_a_multi_objective_study_over_http_serves_the_pareto_set_and_hypervolume(http: httpx.Client):
    document = openapi.document()
    body = {"name": "gw-mo", "spec": {**STUDY["spec"], "algorithm": {"name": "tpe"}, "objectives": [
        {"metric": "loss", "direction": "DIRECTION_MINIMIZE", "reference_point": 4},
        {"metric": "acc", "direction": "DIRECTION_MAXIMIZE"}]}}
    _conforms(document, "tuning.suggestion.v1.CreateStudyRequest", body)
    created = ok(http.post("/v1/studies", json=body))
    assert [o.get("reference_point") for o in created["study"]["spec"]["objectives"]] == [4, None]
    asked = ok(http.post("/v1/studies/gw-mo/trials:suggest", json={"count": 3, "worker_id": "w", "request_id": "m"}))
    for trial, (loss, acc) in zip(asked["trials"], [(1.0, 0.5), (2.0, 0.9), (3.0, 0.4)]):
        ok(http.post(f"/v1/trials/{trial['id']}:complete", json={
            "worker_id": "w", "outcome": "OUTCOME_SUCCEEDED",
            "metrics": [{"name": "loss", "value": loss}, {"name": "acc", "value": acc}]}))
    best = ok(http.get("/v1/studies/gw-mo/trials:best"))
    _conforms(document, "tuning.suggestion.v1.GetBestTrialsResponse", best)
    assert [t["id"] for t in best["trials"]] == [t["id"] for t in asked["trials"][:2]]
    # acc's reference: worst 0.4 minus 10% of the range 0.5 (maximised: "worse" is lower).
    assert best["reference_point"] == pytest.approx([4.0, 0.35])
    assert best["hypervolume"] == pytest.approx((4 - 1) * (0.5 - 0.35) + (4 - 2) * (0.9 - 0.5))
    bad = {"name": "gw-mo-bad", "spec": {**body["spec"], "objectives": [
        {"metric": "loss", "direction": "DIRECTION_MINIMIZE", "reference_point": "Infinity"},
        {"metric": "acc", "direction": "DIRECTION_MAXIMIZE"}]}}
    assert error(http.post("/v1/studies", json=bad), 400, "INVALID_ARGUMENT")["field"] == \
        "spec.objectives[0].reference_point"


def test_parameter_importance_over_http(http: httpx.Client):
    document = openapi.document()
    body = {"name": "gw-imp", "spec": {**STUDY["spec"], "max_trials": 0, "algorithm": {"name": "random"},
                                       "parameters": [{"name": "x", "float_range": {"low": 0, "high": 1}},
                                                      {"name": "k", "categorical": {"choices": [
                                                          {"string_value": "a"}, {"string_value": "b"}]}}],
                                       "objectives": [{"metric": "loss", "direction": "DIRECTION_MINIMIZE"},
                                                      {"metric": "acc", "direction": "DIRECTION_MAXIMIZE"}]}}
    ok(http.post("/v1/studies", json=body))
    assert error(http.get("/v1/studies/gw-imp/importance"), 400, "FAILED_PRECONDITION")["reason"] == "TOO_FEW_TRIALS"
    asked = ok(http.post("/v1/studies/gw-imp/trials:suggest", json={"count": 8, "worker_id": "w", "request_id": "i"}))
    for trial in asked["trials"]:
        x, k = trial["parameters"]["x"]["float_value"], trial["parameters"]["k"]["string_value"]
        ok(http.post(f"/v1/trials/{trial['id']}:complete", json={
            "worker_id": "w", "outcome": "OUTCOME_SUCCEEDED",
            "metrics": [{"name": "loss", "value": x}, {"name": "acc", "value": 1.0 if k == "a" else 0.0}]}))
    answer = ok(http.get("/v1/studies/gw-imp/importance", params={"objective": "acc"}))
    _conforms(document, "tuning.suggestion.v1.GetParameterImportanceResponse", answer)
    assert answer["objective"] == "acc" and answer["trial_count"] == 8
    assert [e["parameter"] for e in answer["importances"]] == ["k", "x"]
    assert sum(e.get("importance", 0) for e in answer["importances"]) == pytest.approx(1.0)
    assert ok(http.get("/v1/studies/gw-imp/importance"))["objective"] == "loss"
    assert error(http.get("/v1/studies/gw-imp/importance", params={"objective": "speed"}),
                 400, "INVALID_ARGUMENT")["field"] == "objective"
    error(http.get("/v1/studies/gw-missing/importance"), 404, "NOT_FOUND")


def test_a_constrained_study_over_http(http: httpx.Client):
    document = openapi.document()
    body = {"name": "gw-constrained", "spec": {**STUDY["spec"], "constraints": ["memory_over"]}}
    _conforms(document, "tuning.suggestion.v1.CreateStudyRequest", body)
    assert ok(http.post("/v1/studies", json=body))["study"]["spec"]["constraints"] == ["memory_over"]
    asked = ok(http.post("/v1/studies/gw-constrained/trials:suggest",
                         json={"count": 2, "worker_id": "w", "request_id": "rc"}))
    good, bad = (t["id"] for t in asked["trials"])

    def complete(tid: str, loss: float, constraints: list) -> httpx.Response:
        sent = {"worker_id": "w", "outcome": "OUTCOME_SUCCEEDED", "metrics": [{"name": "loss", "value": loss}],
                "constraints": constraints}
        return http.post(f"/v1/trials/{tid}:complete", json=sent)

    # proto3 JSON spells a NaN double "NaN"; the service refuses it, naming the element.
    assert error(complete(bad, 0.1, ["NaN"]), 400, "INVALID_ARGUMENT")["field"] == "constraints[0]"
    assert error(complete(bad, 0.1, []), 400, "INVALID_ARGUMENT")["field"] == "constraints"
    done = ok(complete(bad, 0.1, [2.5]))
    _conforms(document, "tuning.suggestion.v1.CompleteTrialResponse", done)
    assert done["trial"]["constraints"] == [2.5] and done["trial"]["feasible"] is False
    assert ok(complete(good, 0.9, [-1]))["trial"]["feasible"] is True
    assert ok(complete(good, 0.9, [-1]))["trial"]["feasible"] is True  # a retried tell: the same answer
    assert [t["id"] for t in ok(http.get("/v1/studies/gw-constrained/trials:best"))["trials"]] == [good]
    ok(http.delete("/v1/studies/gw-constrained"))


def _sent(document: dict, rpc: str, body: dict) -> dict:
    """``body``, after checking it against the OpenAPI schema of ``rpc``'s request."""
    _conforms(document, f"tuning.tracking.v1.{rpc}Request", body)
    return body


def test_tracking_routes(http: httpx.Client, tmp_path: Path):
    document = openapi.document()
    experiment = ok(http.post("/v1/experiments", json=_sent(document, "CreateExperiment", {
        "name": "exp", "tags": [{"key": "team", "value": "ml"}]})))
    _conforms(document, "tuning.tracking.v1.CreateExperimentResponse", experiment)
    eid = experiment["experiment"]["id"]
    assert ok(http.get(f"/v1/experiments/{eid}"))["experiment"]["name"] == "exp"
    assert ok(http.get("/v1/experiments:byName", params={"name": "exp"}))["experiment"]["id"] == eid
    ok(http.post(f"/v1/experiments/{eid}:rename", json={"new_name": "exp2"}))
    ok(http.post(f"/v1/experiments/{eid}/tags", json={"key": "owner", "value": "ana"}))
    found = ok(http.get("/v1/experiments", params={"filter": "name = 'exp2'"}))["experiments"]
    assert [e["id"] for e in found] == [eid] and {"key": "owner", "value": "ana"} in found[0]["tags"]
    ok(http.delete(f"/v1/experiments/{eid}"))
    ok(http.post(f"/v1/experiments/{eid}:restore"))

    run = ok(http.post("/v1/runs", json=_sent(document, "CreateRun", {"experiment_id": eid, "name": "r1"})))["run"]
    rid = run["id"]
    ok(http.post(f"/v1/runs/{rid}:logBatch", json=_sent(document, "LogBatch", {
        "metrics": [{"key": "loss", "value": 0.5, "step": 1}, {"key": "loss", "value": 0.4, "step": 2}],
        "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "stage", "value": "dev"}]})))
    ok(http.post(f"/v1/runs/{rid}/metrics", json=_sent(document, "LogMetric", {
        "metric": {"key": "val/auc", "value": 0.9, "step": 3}})))
    ok(http.post(f"/v1/runs/{rid}/params", json=_sent(document, "LogParam", {"param": {"key": "depth", "value": "6"}})))
    ok(http.post(f"/v1/runs/{rid}/tags", json=_sent(document, "SetTag", {"tag": {"key": "team/name", "value": "x"}})))
    ok(http.delete(f"/v1/runs/{rid}/tags/team/name"))
    ok(http.post(f"/v1/runs/{rid}/inputs", json=_sent(document, "LogInputs", {"inputs": [
        {"dataset": {"name": "wine", "digest": "abc123"}, "context": "training"}]})))
    history = ok(http.get(f"/v1/runs/{rid}/metrics/loss"))["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [("1", 0.5), ("2", 0.4)]
    assert [m["value"] for m in ok(http.get(f"/v1/runs/{rid}/metrics/val/auc"))["metrics"]] == [0.9]
    got = ok(http.get(f"/v1/runs/{rid}"))["run"]
    assert {"key": "depth", "value": "6"} in got["params"] and all(t["key"] != "team/name" for t in got["tags"])
    ok(http.patch(f"/v1/runs/{rid}", json={"status": "RUN_STATUS_FINISHED"}))
    searched = ok(http.post("/v1/runs:search", json=_sent(document, "SearchRuns", {
        "experiment_ids": [eid], "filter": "metrics.loss < 0.45"})))
    _conforms(document, "tuning.tracking.v1.SearchRunsResponse", searched)
    assert [r["id"] for r in searched["runs"]] == [rid] and searched["runs"][0]["status"] == "RUN_STATUS_FINISHED"

    content = b"hello artifact\n" * 1000
    uploaded = ok(http.put(f"/v1/runs/{rid}/artifacts/dir/notes.txt", content=content,
                           headers={"content-type": "application/octet-stream"}))
    assert uploaded["file"]["path"] == "dir/notes.txt" and uploaded["file"]["size"] == str(len(content))
    listing = ok(http.get(f"/v1/runs/{rid}/artifacts", params={"path": "dir"}))["files"]
    assert [f["path"] for f in listing] == ["dir/notes.txt"]
    download = http.get(f"/v1/runs/{rid}/artifacts/dir/notes.txt")
    assert download.status_code == 200 and download.content == content
    assert download.headers["x-checksum-sha256"] == uploaded["file"]["sha256"]
    assert download.headers["content-type"].startswith("text/plain")
    error(http.get(f"/v1/runs/{rid}/artifacts/dir/missing.txt"), 404, "NOT_FOUND")
    bad = http.put(f"/v1/runs/{rid}/artifacts/x.bin", content=b"abc",
                   headers={"content-type": "application/octet-stream", "x-checksum-sha256": "0" * 64})
    assert error(bad, 400, "INVALID_ARGUMENT")["field"] == "X-Checksum-Sha256"
    ok(http.delete(f"/v1/runs/{rid}"))
    ok(http.post(f"/v1/runs/{rid}:restore"))


def test_registry_routes(http: httpx.Client):
    document = openapi.document()
    eid = ok(http.post("/v1/experiments", json={"name": "reg"}))["experiment"]["id"]
    rid = ok(http.post("/v1/runs", json={"experiment_id": eid}))["run"]["id"]
    ok(http.put(f"/v1/runs/{rid}/artifacts/model/model.pkl", content=b"model bytes",
                headers={"content-type": "application/octet-stream"}))
    ok(http.post("/v1/registered-models", json=_sent(document, "CreateRegisteredModel", {
        "name": "wine", "description": "first"})))
    assert ok(http.get("/v1/registered-models/wine"))["registered_model"]["description"] == "first"
    ok(http.patch("/v1/registered-models/wine", json={"description": "second"}))
    ok(http.post("/v1/registered-models/wine/tags", json={"key": "team", "value": "ml"}))
    ok(http.delete("/v1/registered-models/wine/tags/team"))
    created = ok(http.post("/v1/registered-models/wine/versions", json=_sent(document, "CreateModelVersion", {
        "source": f"runs:/{rid}/model", "run_id": rid, "tags": [{"key": "by", "value": "ci"}]})))
    _conforms(document, "tuning.tracking.v1.CreateModelVersionResponse", created)
    version = created["model_version"]
    assert version["version"] == "1"
    assert ok(http.get("/v1/registered-models/wine/versions/1"))["model_version"]["run_id"] == rid
    ok(http.patch("/v1/registered-models/wine/versions/1", json={"description": "v1"}))
    ok(http.post("/v1/registered-models/wine/versions/1/tags", json={"key": "ok", "value": "yes"}))
    ok(http.delete("/v1/registered-models/wine/versions/1/tags/ok"))
    moved = ok(http.post("/v1/registered-models/wine/versions/1:transitionStage", json=_sent(
        document, "TransitionModelVersionStage", {"stage": "STAGE_PRODUCTION", "actor": "ana", "reason": "best"})))
    assert moved["model_version"]["stage"] == "STAGE_PRODUCTION"
    ok(http.put("/v1/registered-models/wine/aliases/champion", json=_sent(document, "SetRegisteredModelAlias",
                                                                          {"version": 1})))
    assert ok(http.get("/v1/registered-models/wine/aliases/champion"))["model_version"]["version"] == "1"
    assert ok(http.get("/v1/registered-models/wine/versions/1/download-uri"))["artifact_uri"]
    assert [m["name"] for m in ok(http.get("/v1/registered-models", params={"filter": "name = 'wine'"}))[
        "registered_models"]] == ["wine"]
    assert len(ok(http.get("/v1/model-versions", params={"filter": "name = 'wine'"}))["model_versions"]) == 1
    events = ok(http.get("/v1/registered-models/wine/events"))["events"]
    assert [e["action"] for e in events] == ["REGISTRY_ACTION_SET_ALIAS", "REGISTRY_ACTION_TRANSITION_STAGE",
                                             "REGISTRY_ACTION_CREATE_VERSION"]
    ok(http.delete("/v1/registered-models/wine/aliases/champion"))
    ok(http.post("/v1/registered-models/wine:rename", json={"new_name": "wine2"}))
    ok(http.delete("/v1/registered-models/wine2/versions/1"))
    ok(http.delete("/v1/registered-models/wine2"))
    error(http.get("/v1/registered-models/wine2"), 404, "NOT_FOUND")


@pytest.mark.parametrize("method, path, kwargs, status, code, field", [
    ("GET", "/v1/studies/nope", {}, 404, "NOT_FOUND", None),
    ("GET", "/v1/studies/gw/trials?page_size=abc", {}, 400, "INVALID_ARGUMENT", "page_size"),
    ("GET", "/v1/studies?page_size=1&page_size=2", {}, 400, "INVALID_ARGUMENT", "page_size"),
    ("GET", "/v1/studies?colour=red", {}, 400, "INVALID_ARGUMENT", "colour"),
    ("POST", "/v1/studies", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     400, "INVALID_ARGUMENT", "body"),
    ("POST", "/v1/studies", {"json": [1, 2]}, 400, "INVALID_ARGUMENT", "body"),
    ("POST", "/v1/studies", {"json": {"name": "x", "spec": {"colour": 1}}}, 400, "INVALID_ARGUMENT", "spec.colour"),
    ("POST", "/v1/studies", {"json": {"name": "x", "spec": {"objectives": [{"direction": "DIRECTION_MAXIMISE"}]}}},
     400, "INVALID_ARGUMENT", "spec.objectives[0].direction"),
    ("GET", "/v1/studies/gw/trials?states=TRIAL_STATE_DONE", {}, 400, "INVALID_ARGUMENT", "states[0]"),
    ("POST", "/v1/studies", {"json": {"name": "x", "spec": {**STUDY["spec"], "algorithm": {
        "name": "tpe", "settings": {"n_startup_trails": 3}}}}}, 400, "INVALID_ARGUMENT",
     "spec.algorithm.settings.n_startup_trails"),
    ("POST", "/v1/studies", {"json": {"name": "x", "spec": {**STUDY["spec"], "algorithm": {
        "name": "tpe", "settings": {"gamma": "0.2"}}}}}, 400, "INVALID_ARGUMENT", "spec.algorithm.settings.gamma"),
    ("POST", "/v1/studies", {"json": {"name": "bad name!", "spec": STUDY["spec"]}}, 400, "INVALID_ARGUMENT", "name"),
    ("GET", "/v1/trials/abc", {}, 400, "INVALID_ARGUMENT", "trial_id"),
    ("POST", "/v1/trials/999:complete", {"json": {"outcome": "OUTCOME_SUCCEEDED",
                                                  "metrics": [{"name": "loss", "value": 1}]}}, 404, "NOT_FOUND", None),
    ("GET", "/v1/nothing-here", {}, 404, "NOT_FOUND", None),
    ("PUT", "/v1/studies", {"json": {}}, 405, "UNIMPLEMENTED", None),
])
def test_errors_are_json_with_code_status_and_field(http, method, path, kwargs, status, code, field):
    body = error(http.request(method, path, **kwargs), status, code)
    assert body.get("field") == field


def test_writes_refuse_form_content_types_and_oversized_bodies(http: httpx.Client):
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"):
        response = http.post("/v1/studies", content=b"name=x", headers={"content-type": content_type})
        assert error(response, 415, "INVALID_ARGUMENT")["reason"] == "UNSUPPORTED_MEDIA_TYPE"
    assert error(http.post("/v1/studies", content=b"{}"), 415, "INVALID_ARGUMENT")  # no content type at all
    big = {"name": "x", "padding": "y" * (64 * 1024)}
    assert error(http.post("/v1/studies", json=big), 413, "RESOURCE_EXHAUSTED")["reason"] == "REQUEST_TOO_LARGE"
    # A chunked body without a length is counted as it is read.
    chunks = (b"y" * 8192 for _ in range(10))
    response = http.post("/v1/studies", content=chunks, headers={"content-type": "application/json"})
    assert error(response, 413, "RESOURCE_EXHAUSTED")
    assert all(s["name"] != "x" for s in ok(http.get("/v1/studies"))["studies"])  # nothing was created


def test_unknown_host_names_are_refused_against_dns_rebinding(gateway: RunningGateway):
    with httpx.Client(base_url=gateway.url) as client:
        response = client.get("/v1/studies", headers={"host": "evil.example:8080"})
        assert error(response, 400, "INVALID_ARGUMENT")["reason"] == "HOST_NOT_ALLOWED"
        for host in ("localhost", f"localhost:{gateway.address.rsplit(':', 1)[1]}", "127.0.0.1", "[::1]:80"):
            assert client.get("/v1/studies", headers={"host": host}).status_code == 200, host


@pytest.mark.parametrize("path", [
    "../escape.txt", "..%2Fescape.txt", "..%252Fescape.txt", "dir/..%2F..%2Fescape.txt", "%2E%2E/escape.txt",
    "dir/%2e%2e/%2e%2e/escape.txt", "..\\escape.txt", "/etc/passwd", "%2Fetc%2Fpasswd", "dir//x.txt",
])
def test_artifact_traversal_is_refused_in_every_encoding(http: httpx.Client, gateway, data_dir: Path, path: str):
    eid = ok(http.post("/v1/experiments", json={"name": f"t-{uuid.uuid4().hex}"}))["experiment"]["id"]
    rid = ok(http.post("/v1/runs", json={"experiment_id": eid}))["run"]["id"]
    url = f"{gateway.url}/v1/runs/{rid}/artifacts/{path}"
    response = http.put(httpx.URL(url), content=b"x", headers={"content-type": "application/octet-stream"})
    # 415: the client resolved the dot segments, so the request is no longer an artifact upload.
    assert response.status_code in (400, 404, 415), (path, response.status_code, response.text)
    assert not any(p.name == "escape.txt" for p in data_dir.parent.rglob("*"))
    download = http.get(httpx.URL(url))
    assert download.status_code in (400, 404), (path, download.text)


def test_tuning_serve_gateway_runs_until_sigterm(gateway: RunningGateway, tmp_path: Path):
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    process = subprocess.Popen(
        [sys.executable, "-m", "tuning_suite", "serve", "gateway", "--port", "0",
         "--suggestion-address", "127.0.0.1:1", "--tracking-address", "127.0.0.1:1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("gateway listening on 127.0.0.1:"), line
        address = line.rsplit(" ", 1)[1].strip()
        # The services are unreachable: the gateway says so as JSON rather than failing.
        response = httpx.get(f"http://{address}/v1/studies", timeout=30)
        assert error(response, 503, "UNAVAILABLE")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_tokens_guard_every_route(data_dir: Path, gateway: RunningGateway):
    from tuning_common.auth import TokenStore

    write, read = "w" * 24, "r" * 24
    tokens = TokenStore.parse(f"write {write} ci\nread {read} viewer", "test", commas=False)
    # The same services; they run without tokens here, so the gateway's check is what is tested.
    options = GatewayOptions(suggestion_address="127.0.0.1:1", tracking_address="127.0.0.1:1", tokens=tokens)
    guarded = serve(options)
    try:
        with httpx.Client(base_url=guarded.url, timeout=30) as client:
            for route in ROUTES:
                path = route.path.replace("{key:path}", "k").replace("{path:path}", "p.txt")
                path = path.replace("{name}", "n").replace("{study}", "s").replace("{alias}", "a")
                path = path.replace("{trial_id}", "1").replace("{run_id}", "a" * 32)
                path = path.replace("{experiment_id}", "1").replace("{version}", "1")
                kwargs = {} if route.method == "GET" else {"json": {}}
                missing = client.request(route.method, path, **kwargs)
                assert error(missing, 401, "UNAUTHENTICATED")["reason"] == "TOKEN_MISSING", route
                assert missing.headers["www-authenticate"].startswith("Bearer")
                wrong = client.request(route.method, path, headers={"authorization": "Bearer " + "x" * 24},
                                       **kwargs)
                assert error(wrong, 401, "UNAUTHENTICATED")["reason"] == "TOKEN_INVALID", route
                assert "x" * 24 not in wrong.text
                as_reader = client.request(route.method, path, headers={"authorization": f"Bearer {read}"},
                                           **kwargs)
                from tuning_common.auth import is_read_only

                if is_read_only(route.full_method):
                    assert as_reader.status_code == 503, (route, as_reader.text)  # past auth: no services
                else:
                    assert error(as_reader, 403, "PERMISSION_DENIED")["reason"] == "READ_ONLY_TOKEN", route
                as_writer = client.request(route.method, path, headers={"authorization": f"Bearer {write}"},
                                           **kwargs)
                assert as_writer.status_code not in (401, 403), (route, as_writer.text)
            assert error(client.get("/v1/openapi.json"), 401, "UNAUTHENTICATED")
    finally:
        guarded.stop()


def test_prior_studies_through_the_gateway(http: httpx.Client):
    ok(http.post("/v1/studies", json={**STUDY, "name": "gw-prior"}))
    spec = {**STUDY["spec"], "algorithm": {"name": "tpe"}, "prior_studies": ["gw-prior"]}
    created = ok(http.post("/v1/studies", json={"name": "gw-transfer", "spec": spec}))
    assert created["study"]["spec"]["prior_studies"] == ["gw-prior"]
    missing = http.post("/v1/studies", json={"name": "gw-transfer-2", "spec": {**spec, "prior_studies": ["gw-none"]}})
    assert "spec.prior_studies[0]" in error(missing, 404, "NOT_FOUND")["message"]
