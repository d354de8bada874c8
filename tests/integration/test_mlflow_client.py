"""The real MLflow client (mlflow-skinny 3.x, in a subprocess) against the gateway's MLflow-compatible
REST API, with real services behind it; what it wrote is read back through our own client, and
the other way round."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.mlflow.routes import read_only_rule
from gateway.server import RunningGateway
from tests.conftest import gateway_suite
from trial_worker.tracking import TrackingClient, dataset_input, metric
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import tracking_pb2 as pb

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                reason="needs mlflow-skinny (the dev extra)")

API = "/api/2.0/mlflow"


class Suite:
    def __init__(self, gateway: RunningGateway, tracking_address: str):
        self.gateway = gateway
        self.tracking_address = tracking_address


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    data = tmp_path_factory.mktemp("mlflow")
    with gateway_suite(data) as running:
        yield Suite(running.gateway, running.tracking.address)


@pytest.fixture
def ours(suite: Suite) -> Iterator[TrackingClient]:
    with TrackingClient(suite.tracking_address) as client:
        yield client


@pytest.fixture
def http(suite: Suite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=suite.gateway.url, timeout=30) as client:
        yield client


def run_mlflow(suite: Suite, tmp_path: Path, script: str, **variables: str) -> dict:
    """Runs ``script`` with the real mlflow client pointed at the gateway; its last line is JSON."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # Nothing of the machine's MLflow or Databricks setup (~/.mlflow, MLFLOW_* variables) leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env.update({
        "HOME": str(home), "MLFLOW_TRACKING_URI": suite.gateway.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GIT_PYTHON_REFRESH": "quiet",
        "PYTHONWARNINGS": "ignore", **variables,
    })
    path = tmp_path / "mlflow_script.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


LOGGING_SCRIPT = """
    import json, os, tempfile

    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    experiment = os.environ["EXPERIMENT"]
    model_name = os.environ["MODEL_NAME"]
    mlflow.set_experiment(experiment)
    client = MlflowClient()
    out = {}
    X = np.arange(20, dtype=float).reshape(10, 2)
    y = X @ np.array([1.0, 2.0]) + 3.0
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 3, "booster": "gbtree"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.9})
        mlflow.set_tags({"team": "ml", "scratch": "x"})
        client.delete_tag(parent.info.run_id, "scratch")
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("hello\\n")
        mlflow.log_artifact(os.path.join(folder, "notes.txt"))
        os.makedirs(os.path.join(folder, "tree", "sub"))
        with open(os.path.join(folder, "tree", "a.bin"), "wb") as f:
            f.write(bytes(range(256)))
        with open(os.path.join(folder, "tree", "sub", "b.json"), "w") as f:
            f.write("{}")
        mlflow.log_artifacts(os.path.join(folder, "tree"), artifact_path="folder")
        mlflow.log_dict({"x": 1}, "cfg/config.json")
        mlflow.log_text("some text", "texts/t.txt")
        mlflow.log_input(mlflow.data.from_numpy(X, targets=y, name="toy"), context="training")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_metric("loss", 0.25, step=2)
            model = LinearRegression().fit(X, y)
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                            serialization_format="cloudpickle")
            loaded = mlflow.sklearn.load_model(info.model_uri)
            assert np.allclose(loaded.predict(X), model.predict(X))
            by_run = mlflow.sklearn.load_model(f"runs:/{child.info.run_id}/model")
            assert np.allclose(by_run.predict(X), model.predict(X))

    out["experiment_id"] = parent.info.experiment_id
    out["parent"], out["child"], out["model_id"] = parent.info.run_id, child.info.run_id, info.model_id
    out["artifact_uri"] = client.get_run(parent.info.run_id).info.artifact_uri
    out["root"] = sorted(f.path for f in client.list_artifacts(parent.info.run_id))
    out["folder"] = sorted(f.path for f in client.list_artifacts(parent.info.run_id, "folder"))
    out["history"] = [(m.step, m.value) for m in client.get_metric_history(parent.info.run_id, "loss")]
    local = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="folder/a.bin")
    assert open(local, "rb").read() == bytes(range(256))
    assert mlflow.artifacts.load_dict(f"{out['artifact_uri']}/cfg/config.json") == {"x": 1}

    found = mlflow.search_runs(filter_string="metrics.loss < 0.22 AND attributes.status = 'FINISHED'")
    out["search"] = sorted(found["run_id"])
    nested = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    out["nested"] = list(nested["run_id"])
    out["by_param"] = list(mlflow.search_runs(filter_string="params.booster = 'gbtree'")["run_id"])
    out["logged_model_status"] = client.get_logged_model(info.model_id).status.name
    child_run = client.get_run(child.info.run_id)
    out["child_outputs"] = [o.model_id for o in child_run.outputs.model_outputs]
    inputs = client.get_run(parent.info.run_id).inputs.dataset_inputs
    out["parent_inputs"] = [(i.dataset.name, i.dataset.digest) for i in inputs]

    version = mlflow.register_model(info.model_uri, model_name)
    out["version"] = version.version
    client.set_registered_model_alias(model_name, "champion", version.version)
    out["by_alias"] = client.get_model_version_by_alias(model_name, "champion").version
    client.transition_model_version_stage(model_name, version.version, "Production")
    out["stage"] = client.get_model_version(model_name, version.version).current_stage
    out["download_uri"] = client.get_model_version_download_uri(model_name, version.version)
    champion = mlflow.sklearn.load_model(f"models:/{model_name}@champion")
    assert np.allclose(champion.predict(X), model.predict(X))
    out["registered"] = [m.name for m in client.search_registered_models(filter_string=f"name = '{model_name}'")]
    out["versions"] = [v.version for v in client.search_model_versions(f"name = '{model_name}'")]
    print(json.dumps(out))
"""


def test_the_mlflow_client_logs_searches_stores_models_and_uses_the_registry(suite: Suite, tmp_path: Path,
                                                                              ours: TrackingClient):
    model_name = f"mlflow-model-{uuid.uuid4().hex[:8]}"
    out = run_mlflow(suite, tmp_path, LOGGING_SCRIPT, EXPERIMENT=f"mlflow-{uuid.uuid4().hex[:8]}",
                     MODEL_NAME=model_name)
    parent_id, child_id, experiment_id = out["parent"], out["child"], int(out["experiment_id"])

    # What the client saw.
    assert out["artifact_uri"] == f"mlflow-artifacts:/{experiment_id}/{parent_id}/artifacts"
    assert out["root"] == ["cfg", "folder", "notes.txt", "texts"]
    assert out["folder"] == ["folder/a.bin", "folder/sub"]
    assert out["history"] == [[0, 1.0], [1, 0.5], [2, 1 / 3], [3, 0.25], [4, 0.2]]
    assert out["search"] == [parent_id]  # latest losses: the parent's 0.2 (step 4), the child's 0.25 (step 2)
    assert out["nested"] == [child_id]
    assert out["by_param"] == [parent_id]
    assert out["logged_model_status"] == "READY"
    assert out["child_outputs"] == [out["model_id"]]
    assert [name for name, _ in out["parent_inputs"]] == ["toy"]
    assert out["version"] == "1" and out["by_alias"] == "1" and out["stage"] == "Production"
    assert out["download_uri"] == (f"mlflow-artifacts:/{experiment_id}/{child_id}/artifacts/models/"
                                   f"{out['model_id']}")
    assert out["registered"] == [model_name] and out["versions"] == ["1"]

    # The same data through our API.
    parent, child = ours.get_run(parent_id), ours.get_run(child_id)
    assert parent.name == "parent" and child.name == "child" and child.parent_run_id == parent_id
    assert parent.experiment_id == child.experiment_id == experiment_id
    assert parent.status == child.status == pb.RUN_STATUS_FINISHED
    assert {(p.key, p.value) for p in parent.params} == {("lr", "0.1"), ("depth", "3"), ("booster", "gbtree")}
    tags = {t.key: t.value for t in parent.tags}
    assert tags["team"] == "ml" and "scratch" not in tags
    assert tags["mlflow.runName"] == "parent" and tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.user"]
    assert {t.key: t.value for t in child.tags}["mlflow.parentRunId"] == parent_id
    assert [(m.step, m.value) for m in ours.get_metric_history(parent_id, "loss")] == [
        (0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25), (4, 0.2)]
    assert [(m.step, m.value) for m in ours.get_metric_history(child_id, "loss")] == [(1, 0.5), (2, 0.25)]
    [used] = parent.inputs
    assert used.dataset.name == "toy" and used.dataset.digest == out["parent_inputs"][0][1]
    assert used.context == "training" and used.dataset.source_type
    assert [(f.path, f.is_dir) for f in ours.list_artifacts(parent_id)] == [
        ("cfg", True), ("folder", True), ("texts", True), ("notes.txt", False)]
    assert [f.path for f in ours.list_artifacts(parent_id, "folder/sub")] == ["folder/sub/b.json"]
    model_files = {f.path.rsplit("/", 1)[-1] for f in ours.list_artifacts(child_id, f"models/{out['model_id']}")}
    assert {"MLmodel", "model.pkl", "requirements.txt"} <= model_files
    version = ours.get_model_version(model_name, 1)
    assert version.run_id == child_id and version.stage == rpb.STAGE_PRODUCTION
    assert list(version.aliases) == ["champion"]
    assert version.source == f"runs:/{child_id}/models/{out['model_id']}"
    assert ours.get_model_version_by_alias(model_name, "champion").version == 1


REVERSE_SCRIPT = """
    import json, os

    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    out = {}
    run = client.get_run(os.environ["RUN_ID"])
    out["name"], out["status"] = run.info.run_name, run.info.status
    out["params"], out["metrics"], out["tags"] = run.data.params, run.data.metrics, run.data.tags
    out["artifact_uri"] = run.info.artifact_uri
    out["inputs"] = [(i.dataset.name, [(t.key, t.value) for t in i.tags]) for i in run.inputs.dataset_inputs]
    out["history"] = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "auc")]
    found = mlflow.search_runs(experiment_ids=[os.environ["EXPERIMENT_ID"]], filter_string="metrics.auc > 0.5")
    out["found"] = list(found["run_id"])
    out["by_name"] = [r.info.run_id for r in client.search_runs(
        [os.environ["EXPERIMENT_ID"]], "tags.mlflow.runName = 'ours'")]
    out["artifact"] = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/notes/hello.txt")
    try:
        client.get_run("0" * 32)
    except MlflowException as error:
        out["missing"] = [error.error_code, error.get_http_status_code()]
    try:
        client.search_runs([os.environ["EXPERIMENT_ID"]], "metrics.auc >")
    except MlflowException as error:
        out["bad_filter"] = error.error_code
    print(json.dumps(out))
"""


def test_runs_logged_with_our_client_read_with_mlflow_and_its_errors(suite: Suite, tmp_path: Path,
                                                                       ours: TrackingClient):
    experiment = ours.create_experiment(f"ours-{uuid.uuid4().hex[:8]}")
    run = ours.create_run(experiment.id, name="ours", tags={"team": "ml"}, user="ana")
    ours.log_batch(run.id, metrics=[metric("auc", 0.7, step=1), metric("auc", 0.8, step=2)],
                   params=[pb.Param(key="lr", value="0.1")])
    ours.log_inputs(run.id, [dataset_input("wine", "abc123", context="training")])
    notes = tmp_path / "hello.txt"
    notes.write_text("hi there")
    ours.upload_file(run.id, notes, "notes")
    ours.update_run(run.id, status="FINISHED")

    out = run_mlflow(suite, tmp_path, REVERSE_SCRIPT, RUN_ID=run.id, EXPERIMENT_ID=str(experiment.id))
    assert out["name"] == "ours" and out["status"] == "FINISHED"
    assert out["params"] == {"lr": "0.1"} and out["metrics"] == {"auc": 0.8}
    assert out["tags"] == {"team": "ml", "mlflow.runName": "ours", "mlflow.user": "ana"}
    assert out["artifact_uri"] == f"mlflow-artifacts:/{experiment.id}/{run.id}/artifacts"
    assert out["inputs"] == [["wine", [["mlflow.data.context", "training"]]]]
    assert out["history"] == [[1, 0.7], [2, 0.8]]
    assert out["found"] == [run.id] and out["by_name"] == [run.id]
    assert out["artifact"] == "hi there"
    assert out["missing"] == ["RESOURCE_DOES_NOT_EXIST", 404]
    assert out["bad_filter"] == "INVALID_PARAMETER_VALUE"


def mlflow_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code and body["message"], body
    return body["message"]


def test_errors_are_mlflow_json_with_mlflow_status_codes(http: httpx.Client):
    mlflow_error(http.get(f"{API}/runs/get", params={"run_id": "0" * 32}), 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow_error(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")
    mlflow_error(http.get(f"{API}/runs/get"), 400, "INVALID_PARAMETER_VALUE")  # run_id missing
    name = f"errors-{uuid.uuid4().hex[:8]}"
    experiment_id = http.post(f"{API}/experiments/create", json={"name": name}).json()["experiment_id"]
    mlflow_error(http.post(f"{API}/experiments/create", json={"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    message = mlflow_error(http.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id],
                                                                 "filter": "metrics.x >"}), 400,
                           "INVALID_PARAMETER_VALUE")
    assert "position" in message
    mlflow_error(http.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id],
                                                       "filter": "datasets.digest = 'x'"}),
                 400, "INVALID_PARAMETER_VALUE")
    mlflow_error(http.post(f"{API}/experiments/create", json={"name": "x", "artifact_location": "s3://b/x"}),
                 400, "INVALID_PARAMETER_VALUE")
    mlflow_error(http.post(f"{API}/experiments/delete-experiment-tag",
                           json={"experiment_id": experiment_id, "key": "k"}), 501, "NOT_IMPLEMENTED")
    mlflow_error(http.post(f"{API}/logged-models", json={"name": "m"}), 400,
                 "INVALID_PARAMETER_VALUE")  # neither a run nor an experiment to keep it in
    mlflow_error(http.get(f"{API}/logged-models/m-{'0' * 40}"), 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow_error(http.get(f"{API}/no-such-endpoint"), 404, "ENDPOINT_NOT_FOUND")
    mlflow_error(http.get(f"{API}/runs/create"), 404, "ENDPOINT_NOT_FOUND")
    run = http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"]
    http.post(f"{API}/runs/log-parameter", json={"run_id": run["run_id"], "key": "p", "value": "1"})
    mlflow_error(http.post(f"{API}/runs/log-parameter", json={"run_id": run["run_id"], "key": "p", "value": "2"}),
                 400, "INVALID_PARAMETER_VALUE")
    mlflow_error(http.post(f"{API}/runs/set-tag", json={"run_id": run["run_id"], "key": "tuning.mlflow.models",
                                                        "value": "x"}), 400, "INVALID_PARAMETER_VALUE")
    # Proxied artifact paths pass our path checks: no way out of the run's folder in any encoding.
    base = str(http.base_url).rstrip("/")
    root = f"{base}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run['run_id']}/artifacts"
    for path in ("..%2F..%2Fescape.txt", "%2e%2e/%2e%2e/escape.txt", "dir/..%252F..%252Fescape.txt", "a%5C..%5Cb"):
        response = http.put(httpx.URL(f"{root}/{path}"), content=b"x")
        assert response.status_code in (400, 404) and response.json()["error_code"], (path, response.text)
    mlflow_error(http.put(f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/x/artifacts/f.txt", content=b"x"),
                 404, "RESOURCE_DOES_NOT_EXIST")
    assert http.put(httpx.URL(f"{root}/ok.txt"), content=b"fine", headers={"content-type": "text/plain"}
                    ).status_code == 200
    assert http.get(httpx.URL(f"{root}/ok.txt")).content == b"fine"
    mlflow_error(http.post(f"{API}/model-versions/transition-stage",
                           json={"name": "nope", "version": "1", "stage": "Shipped"}), 400, "INVALID_PARAMETER_VALUE")
    mlflow_error(http.get(f"{API}/registered-models/get", params={"name": "nope"}), 404, "RESOURCE_DOES_NOT_EXIST")
    # The Guard's refusals are in MLflow's shape under MLflow's paths (a form post is still refused).
    mlflow_error(http.post(f"{API}/runs/create", content=b"experiment_id=0",
                           headers={"content-type": "application/x-www-form-urlencoded"}), 415, "BAD_REQUEST")
    mlflow_error(http.get(f"{API}/runs/get", params={"run_id": "x"}, headers={"host": "evil.example"}), 400,
                 "INVALID_PARAMETER_VALUE")
    # ... and the gateway's own API keeps its shape.
    assert http.get("/v1/runs/" + "0" * 32).json()["error"]["status"] == "NOT_FOUND"


def test_retried_posts_are_harmless(http: httpx.Client, ours: TrackingClient):
    experiment_id = http.post(f"{API}/experiments/create",
                              json={"name": f"retry-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    body = {"experiment_id": experiment_id, "start_time": 1_700_000_000_000, "user_id": "ana",
            "tags": [{"key": "mlflow.runName", "value": "once"}]}
    # Without an Idempotency-Key every create is a new run, as in MLflow: equal bodies are
    # distinct runs (autolog's parallel children), never merged.
    first = http.post(f"{API}/runs/create", json=body).json()["run"]
    second = http.post(f"{API}/runs/create", json=body).json()["run"]
    assert second["info"]["run_id"] != first["info"]["run_id"]
    # With one, the client's retry of the same create returns the first attempt's run.
    one = http.post(f"{API}/runs/create", json=body, headers={"idempotency-key": "a"}).json()["run"]
    again = http.post(f"{API}/runs/create", json=body, headers={"idempotency-key": "a"}).json()["run"]
    two = http.post(f"{API}/runs/create", json=body, headers={"idempotency-key": "b"}).json()["run"]
    assert again["info"]["run_id"] == one["info"]["run_id"] != two["info"]["run_id"]
    assert len(list(ours.search_runs([int(experiment_id)], "attributes.run_name = 'once'"))) == 4
    run_id = first["info"]["run_id"]
    assert first["info"]["run_name"] == "once" and first["info"]["start_time"] == 1_700_000_000_000

    batch = {"run_id": run_id, "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": 1},
                                           {"key": "loss", "value": "NaN", "timestamp": 2, "step": 2}],
             "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "t", "value": "v"}]}
    for _ in range(3):
        assert http.post(f"{API}/runs/log-batch", json=batch).status_code == 200
    history = http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}).json()
    assert [(m["step"], m["value"]) for m in history["metrics"]] == [(1, 0.5), (2, "NaN")]
    assert [m.step for m in ours.get_metric_history(run_id, "loss")] == [1, 2]
    for _ in range(2):
        assert http.post(f"{API}/runs/delete-tag", json={"run_id": run_id, "key": "t"}).status_code == 200
    mlflow_error(http.post(f"{API}/runs/delete-tag", json={"run_id": "0" * 32, "key": "t"}), 404,
                 "RESOURCE_DOES_NOT_EXIST")


def test_a_retried_keyed_log_batch_without_timestamps_is_stored_once(http: httpx.Client, ours: TrackingClient):
    run_id = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    batch = {"run_id": run_id, "metrics": [{"key": "loss", "value": 0.5, "step": 1}]}
    for _ in range(2):
        answer = http.post(f"{API}/runs/log-batch", json=batch, headers={"idempotency-key": "batch-1"})
        assert answer.status_code == 200, answer.text
        answer = http.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": "acc", "value": 0.9},
                           headers={"idempotency-key": "metric-1"})
        assert answer.status_code == 200, answer.text
    assert [(m.step, m.value) for m in ours.get_metric_history(run_id, "loss")] == [(1, 0.5)]
    assert [(m.step, m.value) for m in ours.get_metric_history(run_id, "acc")] == [(0, 0.9)]


CONCURRENT_SCRIPT = """
    import json, os, threading

    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    client = MlflowClient()
    experiment_id = mlflow.set_experiment(os.environ["EXPERIMENT"]).experiment_id
    created, errors = [], []
    start = threading.Barrier(8)

    def worker():
        try:
            start.wait()
            for _ in range(25):
                created.append(client.create_run(experiment_id).info.run_id)
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    mlflow.set_experiment(os.environ["AUTOLOG_EXPERIMENT"])
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, max_tuning_runs=None)
    X = np.array([[i, i % 3] for i in range(30)], dtype=float)
    y = np.array([i % 2 for i in range(30)])
    with mlflow.start_run() as parent:
        GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=2).fit(X, y)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    print(json.dumps({"created": created, "experiment_id": experiment_id, "parent": parent.info.run_id,
                      "children": [r.data.params.get("max_depth") for r in children]}))
"""


def test_concurrent_creates_and_autolog_children_are_distinct_runs(database_url: str, tmp_path: Path):
    """Runs created together with equal bodies (threads; sklearn autolog's parallel children of a
    GridSearchCV) are all kept: on SQLite and PostgreSQL."""
    folder = tmp_path / "suite"
    folder.mkdir()
    with gateway_suite(folder, tracking_url=database_url) as running:
        suite = Suite(running.gateway, running.tracking.address)
        out = run_mlflow(suite, tmp_path, CONCURRENT_SCRIPT, EXPERIMENT="threads", AUTOLOG_EXPERIMENT="autolog")
        assert len(out["created"]) == len(set(out["created"])) == 200
        with TrackingClient(running.tracking.address) as ours:
            assert len(list(ours.search_runs([int(out["experiment_id"])]))) == 200
            children = [r for r in ours.search_runs([int(out["experiment_id"]) + 1])
                        if r.parent_run_id == out["parent"]]
        assert sorted(out["children"]) == ["1", "2", "3"]
        assert len(children) == 3


def test_history_pages_and_bulk_intervals(http: httpx.Client, ours: TrackingClient):
    experiment = ours.create_experiment(f"bulk-{uuid.uuid4().hex[:8]}")
    runs = [ours.create_run(experiment.id).id for _ in range(2)]
    for i, run_id in enumerate(runs):
        ours.log_batch(run_id, metrics=[metric("loss", step * 0.1 + i, step=step, timestamp_ms=1000 + step)
                                        for step in range(0, 100)])
    page = http.get(f"{API}/metrics/get-history", params={"run_id": runs[0], "metric_key": "loss",
                                                          "max_results": 30}).json()
    assert len(page["metrics"]) == 30 and page["next_page_token"]
    rest = http.get(f"{API}/metrics/get-history", params={"run_id": runs[0], "metric_key": "loss",
                                                          "max_results": 100,
                                                          "page_token": page["next_page_token"]}).json()
    assert [m["step"] for m in page["metrics"] + rest["metrics"]] == list(range(100))
    bulk = http.get(f"{API}/metrics/get-history-bulk-interval",
                    params=[("run_ids", runs[0]), ("run_ids", runs[1]), ("metric_key", "loss"),
                            ("max_results", "10")]).json()["metrics"]
    for run_id in runs:
        steps = [m["step"] for m in bulk if m["run_id"] == run_id]
        assert len(steps) == 10 and steps[0] == 0 and steps == sorted(steps)
    ranged = http.get(f"{API}/metrics/get-history-bulk-interval",
                      params={"run_ids": runs[0], "metric_key": "loss", "start_step": 10, "end_step": 12}).json()
    assert [m["step"] for m in ranged["metrics"]] == [10, 11, 12]
    mlflow_error(http.get(f"{API}/metrics/get-history-bulk-interval",
                          params={"run_ids": runs[0], "metric_key": "loss", "start_step": 3}), 400,
                 "INVALID_PARAMETER_VALUE")


def test_searches_translate_mlflow_names(http: httpx.Client, ours: TrackingClient):
    experiment = ours.create_experiment(f"names-{uuid.uuid4().hex[:8]}")
    parent = ours.create_run(experiment.id, name="p", user="ana")
    child = ours.create_run(experiment.id, name="c", parent_run_id=parent.id, user="bob")

    def ids(filter: str, order_by: list[str] | None = None) -> list[str]:
        answer = http.post(f"{API}/runs/search", json={"experiment_ids": [str(experiment.id)], "filter": filter,
                                                       "order_by": order_by or []})
        assert answer.status_code == 200, answer.text
        return [r["info"]["run_id"] for r in answer.json().get("runs", [])]

    assert ids(f"tags.mlflow.parentRunId = '{parent.id}'") == [child.id]
    assert ids("tags.`mlflow.runName` = 'p'") == [parent.id]
    assert ids("attributes.user_id = 'bob'") == [child.id]
    assert ids("run.run_name IN ('p', 'c')", ["attributes.run_name ASC"]) == [child.id, parent.id]
    assert ids("attributes.created > 0", ["run_name DESC"]) == [parent.id, child.id]
    got = http.get(f"{API}/runs/get", params={"run_id": child.id}).json()["run"]
    assert {"key": "mlflow.parentRunId", "value": parent.id} in got["data"]["tags"]
    experiments = http.post(f"{API}/experiments/search", json={"filter": f"name = '{experiment.name}'",
                                                               "order_by": ["creation_time DESC"]}).json()
    assert [e["experiment_id"] for e in experiments["experiments"]] == [str(experiment.id)]
    assert experiments["experiments"][0]["artifact_location"] == f"mlflow-artifacts:/{experiment.id}"


ORDER_SCRIPT = """
    import json, os

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = mlflow.set_experiment(os.environ["EXPERIMENT"]).experiment_id
    # val_f1, lr, team; the last run has no val_f1 (MLflow puts runs without the key last).
    for name, f1, lr, team in [("a", 0.5, "0.3", "x"), ("b", 0.9, "0.1", "y"), ("c", 0.7, "0.2", "x"),
                               ("d", None, "0.4", "y")]:
        with mlflow.start_run(run_name=name):
            if f1 is not None:
                mlflow.log_metric("val_f1", f1)
                mlflow.log_metric("val loss", 1 - f1)
            mlflow.log_param("lr", lr)
            mlflow.set_tag("team", team)
    client.set_terminated(client.search_runs([experiment_id], "attributes.run_name = 'c'")[0].info.run_id,
                          "FAILED")
    out = {}
    for order in json.loads(os.environ["ORDERS"]):
        out[" | ".join(order)] = [r.info.run_name for r in client.search_runs([experiment_id], order_by=order)]
    frame = mlflow.search_runs([experiment_id], order_by=["metrics.val_f1 DESC"])
    out["frame"] = list(frame["tags.mlflow.runName"])
    print(json.dumps(out))
"""

ORDERS = {
    ("metrics.val_f1 DESC",): ["b", "c", "a", "d"],
    ("metrics.val_f1",): ["a", "c", "b", "d"],
    ("metric.`val_f1` ASC",): ["a", "c", "b", "d"],
    ("metrics.`val loss` DESC",): ["a", "c", "b", "d"],
    ("params.lr DESC",): ["d", "a", "c", "b"],
    ("parameters.`lr`",): ["b", "c", "a", "d"],
    ("tags.team DESC", "metrics.val_f1 DESC"): ["b", "d", "c", "a"],
    ("tag.team", "params.lr DESC"): ["a", "c", "d", "b"],
    ("attributes.start_time DESC",): ["d", "c", "b", "a"],
    ("start_time",): ["a", "b", "c", "d"],
    ("attributes.run_name DESC",): ["d", "c", "b", "a"],
    ("`Run name`",): ["a", "b", "c", "d"],
    ("status", "run_name DESC"): ["c", "d", "b", "a"],
    ("attributes.end_time DESC",): ["c", "d", "b", "a"],  # c ended last (set FAILED after d finished)
    ("created DESC",): ["d", "c", "b", "a"],
}


def test_search_runs_orders_like_mlflow(suite: Suite, tmp_path: Path, http: httpx.Client):
    orders = [list(order) for order in ORDERS]
    out = run_mlflow(suite, tmp_path, ORDER_SCRIPT, EXPERIMENT=f"order-{uuid.uuid4().hex[:8]}",
                     ORDERS=json.dumps(orders))
    for order, expected in ORDERS.items():
        assert out[" | ".join(order)] == expected, order
    assert out["frame"] == ["b", "c", "a", "d"]

    # artifact_uri orders as its parts do (experiment, then run id); filtering by it is refused.
    experiment_id = http.post(f"{API}/experiments/create", json={"name": f"uri-{uuid.uuid4().hex[:8]}"}).json()[
        "experiment_id"]
    made = [http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"]
            for _ in range(3)]
    found = http.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id],
                                                  "order_by": ["attributes.artifact_uri DESC"]}).json()["runs"]
    expected = sorted((run["artifact_uri"] for run in made), reverse=True)
    assert [run["info"]["artifact_uri"] for run in found] == expected
    message = mlflow_error(http.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id],
                                                                 "order_by": ["metrics.x DESC, params.y"]}),
                           400, "INVALID_PARAMETER_VALUE")
    assert "order_by[0]" in message


LIMITS_SCRIPT = """
    import json, os

    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    out = {}
    name = os.environ["EXPERIMENT"]
    experiment_id = client.create_experiment(name + "x" * (500 - len(name)))
    out["name_length"] = len(client.get_experiment(experiment_id).name)
    client.set_experiment_tag(experiment_id, "mlflow.note.content", "e" * 20_000)
    with mlflow.start_run(experiment_id=experiment_id, description="d" * 10_000) as run:
        mlflow.set_tag("long", "t" * 50_000)
        mlflow.log_param("p", "v" * 6_000)
        mlflow.log_metric("m" * 250, 1.0)
    data = client.get_run(run.info.run_id).data
    out["note"] = len(data.tags["mlflow.note.content"])
    out["long"], out["param"] = len(data.tags["long"]), len(data.params["p"])
    out["experiment_note"] = len(client.get_experiment(experiment_id).tags["mlflow.note.content"])

    def refused(call):
        try:
            call()
        except MlflowException as error:
            return [error.error_code, error.message]
        return None

    out["refused"] = {
        "experiment name": refused(lambda: client.create_experiment("n" * 501)),
        "tag value": refused(lambda: client.set_tag(run.info.run_id, "big", "t" * 100_001)),
        "param value": refused(lambda: client.log_param(run.info.run_id, "q", "v" * 6_001)),
        "metric key": refused(lambda: client.log_metric(run.info.run_id, "m" * 251, 1.0)),
    }
    print(json.dumps(out))
"""


def test_length_limits_are_mlflows_and_refusals_name_field_and_limit(suite: Suite, tmp_path: Path):
    out = run_mlflow(suite, tmp_path, LIMITS_SCRIPT, EXPERIMENT=f"limits-{uuid.uuid4().hex[:8]}-")
    assert out["name_length"] == 500
    assert (out["note"], out["long"], out["param"], out["experiment_note"]) == (10_000, 50_000, 6_000, 20_000)
    for what, (field, limit) in {"experiment name": ("name", "500"), "tag value": ("value", "100000"),
                                 "param value": ("value", "6000"), "metric key": ("key", "250")}.items():
        code, message = out["refused"][what]
        assert code == "INVALID_PARAMETER_VALUE" and field in message and limit in message, (what, message)


def test_no_error_reveals_the_stores_path(http: httpx.Client, ours: TrackingClient, tmp_path: Path):
    """The errors of every path that touches the artifact store, over gRPC (our client) and
    MLflow's REST API: none names the server's folders."""
    from urllib.parse import unquote, urlsplit

    from tuning_common.errors import TuningError

    run = ours.create_run(0)
    root = Path(unquote(urlsplit(run.artifact_uri).path)).parents[2]  # <root>/<experiment>/<run>/artifacts
    assert root.name == "artifacts" and root.is_dir()
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    ours.upload_file(run.id, notes, "folder")

    messages = []

    def grpc_error(call, *args, **kwargs):
        with pytest.raises(TuningError) as caught:
            call(*args, **kwargs)
        messages.append(str(caught.value))

    for location in ("file:///etc", "/etc", "relative/x", "file://elsewhere/x", "s3://bucket/x",
                     f"file://{root.parent}", f"{root.parent}/other", f"{root}/../escape"):
        grpc_error(ours.create_experiment, f"leak-{uuid.uuid4().hex[:8]}", artifact_location=location)
    for source in ("file:///etc", "/etc/passwd", "file:///", "runs:/" + run.id + "/missing",
                   "runs:/" + "0" * 32 + "/model", "models:/x/1"):
        grpc_error(ours.create_model_version, "leaky", source)
    grpc_error(ours.list_artifacts, run.id, "folder/notes.txt")
    grpc_error(ours.list_artifacts, run.id, "../../..")
    grpc_error(ours.download, run.id, "missing.bin", tmp_path / "out")
    grpc_error(ours.download, run.id, "folder/../../x", tmp_path / "out")

    experiment = str(run.experiment_id)
    base = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run.id}/artifacts"
    for response in (
        http.post(f"{API}/model-versions/create", json={"name": "leaky", "source": "file:///etc"}),
        http.post(f"{API}/model-versions/create", json={"name": "leaky", "source": "/etc/passwd"}),
        http.post(f"{API}/model-versions/create", json={"name": "leaky", "source": f"runs:/{run.id}/missing"}),
        http.post(f"{API}/experiments/create", json={"name": "leaky", "artifact_location": "/etc"}),
        http.get(f"{base}/missing.bin"),
        http.get(f"{base}/folder"),
        http.put(f"{base}/folder/notes.txt/inner", content=b"x"),
        http.get(f"{API}/artifacts/list", params={"run_id": run.id, "path": "folder/notes.txt/x"}),
        http.get(f"{API}/model-versions/get-download-uri", params={"name": "nope", "version": "1"}),
    ):
        messages.append(response.text)
    assert len(messages) == 27
    for message in messages:
        for form in (str(root), root.as_uri(), str(root.parent)):
            assert form not in message, message


MODELS_SCRIPT = """
    import json, os

    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    client = MlflowClient()
    experiment_id = mlflow.set_experiment(os.environ["EXPERIMENT"]).experiment_id
    out = {}
    with mlflow.set_active_model(name="agent") as active:
        out["active"] = active.model_id
        with mlflow.start_run() as scoring:
            mlflow.log_metric("rmse", 0.3)  # the active model's
            mlflow.log_metric("rmse", 0.2, step=1)
    with mlflow.set_active_model(name="agent") as again:  # found by name, not created twice
        out["again"] = again.model_id
    agent = mlflow.get_logged_model(active.model_id)
    out["agent"] = [agent.name, agent.source_run_id, agent.status.name, agent.experiment_id]
    out["agent_metrics"] = sorted((m.key, m.value, m.step, m.run_id == scoring.info.run_id)
                                  for m in agent.metrics)

    X = np.arange(20, dtype=float).reshape(10, 2)
    y = X @ np.array([1.0, 2.0])
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LinearRegression().fit(X, y), name="model",
                                        pip_requirements=["scikit-learn"], serialization_format="cloudpickle")
        mlflow.log_metric("acc", 0.9, model_id=info.model_id)
        mlflow.log_metric("acc", 0.95, step=1, model_id=info.model_id)
        mlflow.log_metrics({"f1": 0.8})  # step 0: linked to the run's model output at step 0
        mlflow.log_metric("loss", 0.5, step=3)  # no model at step 3: the run's only
    model = mlflow.get_logged_model(info.model_id)
    out["model_metrics"] = sorted((m.key, m.value, m.step, m.model_id == info.model_id,
                                   m.run_id == run.info.run_id) for m in model.metrics)
    out["run_metrics"] = client.get_run(run.info.run_id).data.metrics
    out["by_metric"] = [m.name for m in mlflow.search_logged_models(
        experiment_ids=[experiment_id], filter_string="metrics.acc > 0.9", output_format="list")]
    out["runs"] = sorted(mlflow.search_runs([experiment_id])["run_id"])
    out["same_experiment"] = agent.experiment_id == experiment_id
    out["scoring"], out["run"] = scoring.info.run_id, run.info.run_id
    try:
        client.log_metric(run.info.run_id, "x", 1.0, model_id="m-" + "0" * 40)
    except Exception as error:
        out["unknown_model"] = error.error_code
    out["x"] = "x" in client.get_run(run.info.run_id).data.metrics
    print(json.dumps(out))
"""


def test_logged_models_keep_their_metrics_and_set_active_model_works(suite: Suite, tmp_path: Path,
                                                                      ours: TrackingClient):
    out = run_mlflow(suite, tmp_path, MODELS_SCRIPT, EXPERIMENT=f"models-{uuid.uuid4().hex[:8]}")
    assert out["again"] == out["active"] and out["same_experiment"]
    assert out["agent"][:3] == ["agent", "", "READY"]
    assert out["agent_metrics"] == [["rmse", 0.2, 1, True]]  # the latest point per metric, run and dataset
    assert out["model_metrics"] == [["acc", 0.95, 1, True, True], ["f1", 0.8, 0, True, True]]
    assert out["run_metrics"] == {"acc": 0.95, "f1": 0.8, "loss": 0.5}
    assert out["by_metric"] == ["model"]
    # The run that holds the run-less model is no MLflow run; it is an ordinary run of ours.
    assert out["runs"] == sorted([out["scoring"], out["run"]])
    holders = [r for r in ours.search_runs([int(out["agent"][3])]) if r.name == "agent"]
    assert len(holders) == 1 and holders[0].status == pb.RUN_STATUS_FINISHED
    assert out["unknown_model"] == "RESOURCE_DOES_NOT_EXIST" and out["x"] is False


def test_searches_are_reads_for_tokens():
    assert read_only_rule("POST", f"{API}/runs/search") is True
    assert read_only_rule("POST", f"{API}/logged-models/search") is True
    assert read_only_rule("GET", f"{API}/runs/get") is True
    assert read_only_rule("POST", f"{API}/runs/create") is False
    assert read_only_rule("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/f") is False
    assert read_only_rule("POST", "/v1/runs:search") is None


def test_filters_are_rewritten_into_our_language():
    from gateway.mlflow import filters
    from gateway.mlflow.errors import MlflowError

    assert filters.translate_filter(filters.RUNS, "tags.mlflow.runName = 'it''s' and parameters.lr IN ('1', \"2\")") \
        == "(attributes.run_name = 'it''s') AND (params.`lr` IN ('1', '2'))"
    assert filters.translate_filter(filters.RUNS, r"attributes.created > 5 OR metrics.`val loss` <= 1e-3") \
        == "(attributes.start_time > 5) OR (metrics.`val loss` <= 0.001)"
    assert filters.translate_filter(filters.RUNS, r"params.p LIKE 'a\%' AND tags.x = 'b\\'") \
        == r"(params.`p` LIKE 'a\\%') AND (tags.`x` = 'b\\')"
    # MLflow's client filters prompts out of model searches: plain models have no such tag.
    assert filters.translate_filter(filters.REGISTERED_MODELS, "tag.`mlflow.prompt.is_prompt` != 'true'") \
        == "tags.`mlflow.prompt.is_prompt` IS NULL OR tags.`mlflow.prompt.is_prompt` != 'true'"
    assert filters.translate_order_by(filters.MODEL_VERSIONS, ["version_number DESC", "timestamp"]) == [
        "attributes.version DESC", "attributes.last_update_time"]
    for bad in ("datasets.name = 'x'", "attributes.artifact_uri = 'x'", "metrics.x >", "nonsense"):
        with pytest.raises(MlflowError) as caught:
            filters.translate_filter(filters.RUNS, bad)
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_logged_models_tags_and_params_are_kept_with_its_run(http: httpx.Client):
    experiment_id = http.post(f"{API}/experiments/create", json={"name": f"lm-{uuid.uuid4().hex[:8]}"}).json()[
        "experiment_id"]
    run_id = http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"]["run_id"]
    created = http.post(f"{API}/logged-models", json={"experiment_id": experiment_id, "name": "clf",
                                                      "source_run_id": run_id, "params": [{"key": "a", "value": "1"}]})
    model_id = created.json()["model"]["info"]["model_id"]
    tagged = http.patch(f"{API}/logged-models/{model_id}/tags", json={"tags": [{"key": "team", "value": "ml"}]})
    assert tagged.status_code == 200, tagged.text
    assert http.post(f"{API}/logged-models/{model_id}/params",
                     json={"params": [{"key": "b", "value": "2"}]}).status_code == 200
    model = http.get(f"{API}/logged-models/{model_id}").json()["model"]
    assert {t["key"]: t["value"] for t in model["info"]["tags"]}["team"] == "ml"
    assert {p["key"]: p["value"] for p in model["data"]["params"]} == {"a": "1", "b": "2"}
    assert http.delete(f"{API}/logged-models/{model_id}/tags/team").status_code == 200
    model = http.get(f"{API}/logged-models/{model_id}").json()["model"]
    assert "team" not in {t["key"] for t in model["info"].get("tags", [])}
    mlflow_error(http.delete(f"{API}/logged-models/{model_id}/tags/team"), 404, "RESOURCE_DOES_NOT_EXIST")
    # Deleted, it is gone, and no longer one of its run's outputs.
    def outputs() -> list[str]:
        run = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]
        return [o["model_id"] for o in run.get("outputs", {}).get("model_outputs", [])]

    assert outputs() == [model_id]
    assert http.delete(f"{API}/logged-models/{model_id}").status_code == 200
    mlflow_error(http.get(f"{API}/logged-models/{model_id}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert outputs() == []


CONCURRENT_MODEL_SCRIPT = """
    import json, os
    from concurrent.futures import ThreadPoolExecutor

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = mlflow.set_experiment(os.environ["EXPERIMENT"]).experiment_id
    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id, name="shared", source_run_id=run.info.run_id)
    model_id = model.model_id

    def update(i):
        # Each thread its own metric, tag and param of the one model, several times over.
        for step in range(3):
            client.log_metric(run.info.run_id, f"m{i}", float(step), step=step, model_id=model_id)
            client.set_logged_model_tags(model_id, {f"t{i}-{step}": str(step)})
            client.log_model_params(model_id, {f"p{i}-{step}": str(step)})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(update, range(8)))
    client.finalize_logged_model(model_id, "READY")
    got = client.get_logged_model(model_id)
    print(json.dumps({"metrics": sorted((m.key, m.step) for m in got.metrics), "tags": sorted(got.tags),
                      "params": sorted(got.params), "status": got.status.name}))
"""


def test_concurrent_updates_of_one_logged_model_are_all_kept(database_url: str, tmp_path: Path):
    """8 threads of the real client update one logged model at once (metrics linked with its
    model_id, tags, params): no update is lost, on SQLite and PostgreSQL."""
    folder = tmp_path / "suite"
    folder.mkdir()
    with gateway_suite(folder, tracking_url=database_url) as running:
        suite = Suite(running.gateway, running.tracking.address)
        out = run_mlflow(suite, tmp_path, CONCURRENT_MODEL_SCRIPT, EXPERIMENT="shared-model")
    assert out["metrics"] == sorted([f"m{i}", 2] for i in range(8))  # the latest point of each
    assert out["tags"] == sorted(f"t{i}-{step}" for i in range(8) for step in range(3))
    assert out["params"] == sorted(f"p{i}-{step}" for i in range(8) for step in range(3))
    assert out["status"] == "READY"


def test_concurrent_model_lists_of_one_run_lose_nothing(suite: Suite):
    """A run's model history (runs/log-model), model inputs and other runs' model outputs are
    lists in tags: requests adding to one run's lists at once all count."""
    with httpx.Client(base_url=suite.gateway.url, timeout=30) as http:
        experiment_id = http.post(f"{API}/experiments/create", json={"name": f"lists-{uuid.uuid4().hex[:8]}"}).json()[
            "experiment_id"]
        run_id = http.post(f"{API}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"]["run_id"]
    model_ids = [f"m-{uuid.uuid4().hex}{i:08x}" for i in range(8)]

    def add(i: int) -> None:
        with httpx.Client(base_url=suite.gateway.url, timeout=30) as client:
            for path, body in [
                ("runs/log-model", {"model_json": json.dumps({"artifact_path": f"model{i}"})}),
                ("runs/log-inputs", {"models": [{"model_id": model_ids[i]}]}),
                ("runs/outputs", {"models": [{"model_id": model_ids[i], "step": i}]}),
            ]:
                response = client.post(f"{API}/{path}", json={"run_id": run_id, **body})
                assert response.status_code == 200, response.text

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(8)))
    with httpx.Client(base_url=suite.gateway.url, timeout=30) as http:
        run = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert sorted(m["artifact_path"] for m in json.loads(tags["mlflow.log-model.history"])) == [
        f"model{i}" for i in range(8)]
    assert sorted(m["model_id"] for m in run["inputs"]["model_inputs"]) == sorted(model_ids)
    assert sorted((m["model_id"], m["step"]) for m in run["outputs"]["model_outputs"]) == sorted(
        (m, i) for i, m in enumerate(model_ids))
