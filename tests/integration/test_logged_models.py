"""Logged models through the tracking service's RPCs (real gRPC, SQLite and PostgreSQL), and
the migration of the gateway's tag-encoded logged models into their tables."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from tests.integration.test_tracking import code_of, new_run, stamp
from tracking_service.persistence import MIGRATIONS
from tracking_service.server import serve
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning_common.database import Database
from tuning_common.grpc_server import ServerOptions


@pytest.fixture
def tracking(database_url: str, tmp_path: Path) -> Iterator[api_grpc.TrackingServiceStub]:
    running = serve(database_url, str(tmp_path / "artifacts"), ServerOptions(port=0, grace_seconds=1))
    channel = grpc.insecure_channel(running.address)
    yield api_grpc.TrackingServiceStub(channel)
    channel.close()
    running.stop()


def experiment(stub, name: str) -> int:
    return stub.CreateExperiment(api.CreateExperimentRequest(name=name)).experiment.id


def create(stub, experiment_id: int, **fields) -> pb.LoggedModel:
    return stub.CreateLoggedModel(api.CreateLoggedModelRequest(experiment_id=experiment_id, **fields)).model


def search(stub, experiment_id: int, filter: str = "", order_by=(), **fields) -> list[str]:
    answer = stub.SearchLoggedModels(api.SearchLoggedModelsRequest(
        experiment_ids=[experiment_id], filter=filter, order_by=list(order_by), **fields))
    return [m.name for m in answer.models]


def test_a_logged_model_lives_and_dies(tracking):
    exp = experiment(tracking, "lm")
    run = new_run(tracking, exp)
    model = create(tracking, exp, name="clf", source_run_id=run.id, model_type="sklearn",
                   params=[pb.Param(key="alpha", value="0.1")], tags=[pb.Tag(key="team", value="ml")])
    assert model.id.startswith("m-") and len(model.id) == 34
    assert (model.status, model.source_run_id, model.experiment_id) == (pb.LOGGED_MODEL_STATUS_PENDING, run.id, exp)
    assert model.artifact_location == f"runs:/{run.id}/models/{model.id}"
    assert {p.key: p.value for p in model.params} == {"alpha": "0.1"}

    tracking.SetLoggedModelTags(api.SetLoggedModelTagsRequest(model_id=model.id, tags=[
        pb.Tag(key="team", value="data"), pb.Tag(key="stage", value="x")]))
    tracking.LogLoggedModelParams(api.LogLoggedModelParamsRequest(model_id=model.id, params=[
        pb.Param(key="beta", value="2")]))
    tracking.DeleteLoggedModelTag(api.DeleteLoggedModelTagRequest(model_id=model.id, key="stage"))
    assert code_of(tracking.DeleteLoggedModelTag, api.DeleteLoggedModelTagRequest(
        model_id=model.id, key="stage"))[0] == grpc.StatusCode.NOT_FOUND
    finalized = tracking.FinalizeLoggedModel(api.FinalizeLoggedModelRequest(
        model_id=model.id, status=pb.LOGGED_MODEL_STATUS_READY)).model
    assert finalized.status == pb.LOGGED_MODEL_STATUS_READY
    got = tracking.GetLoggedModel(api.GetLoggedModelRequest(model_id=model.id)).model
    assert {t.key: t.value for t in got.tags} == {"team": "data"}
    assert {p.key: p.value for p in got.params} == {"alpha": "0.1", "beta": "2"}

    tracking.DeleteLoggedModel(api.DeleteLoggedModelRequest(model_id=model.id))
    assert code_of(tracking.GetLoggedModel, api.GetLoggedModelRequest(model_id=model.id))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(tracking.DeleteLoggedModel, api.DeleteLoggedModelRequest(model_id=model.id))[0] == \
        grpc.StatusCode.NOT_FOUND


def test_errors_name_the_field(tracking):
    exp = experiment(tracking, "errors")
    other = new_run(tracking, experiment(tracking, "other"))
    for request, field in (
        (api.CreateLoggedModelRequest(experiment_id=exp, name=" x"), "name"),
        (api.CreateLoggedModelRequest(experiment_id=exp, source_run_id="nope"), "source_run_id"),
        (api.CreateLoggedModelRequest(experiment_id=exp, source_run_id=other.id), "source_run_id"),
        (api.CreateLoggedModelRequest(experiment_id=exp, params=[pb.Param(key="", value="1")]), "params[0].key"),
    ):
        code, details = code_of(tracking.CreateLoggedModel, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details, (field, details)
    assert code_of(tracking.CreateLoggedModel, api.CreateLoggedModelRequest(experiment_id=999))[0] == \
        grpc.StatusCode.NOT_FOUND
    code, details = code_of(tracking.GetLoggedModel, api.GetLoggedModelRequest(model_id="m-x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model_id" in details
    model = create(tracking, exp)
    code, details = code_of(tracking.FinalizeLoggedModel, api.FinalizeLoggedModelRequest(model_id=model.id))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "status" in details
    assert code_of(tracking.SearchLoggedModels, api.SearchLoggedModelsRequest())[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(tracking.SearchLoggedModels, api.SearchLoggedModelsRequest(
        experiment_ids=[exp], filter="metrics.x >"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "filter" in details


def test_metrics_keep_the_latest_point_per_run_and_dataset(tracking):
    exp = experiment(tracking, "metrics")
    run = new_run(tracking, exp)
    model = create(tracking, exp, name="m", source_run_id=run.id)

    def link(*points):
        tracking.LogLoggedModelMetrics(api.LogLoggedModelMetricsRequest(model_id=model.id, metrics=list(points)))

    link(pb.LoggedModelMetric(key="acc", value=0.9, step=1, timestamp=stamp(1000), run_id=run.id),
         pb.LoggedModelMetric(key="acc", value=0.5, step=0, timestamp=stamp(2000), run_id=run.id))
    link(pb.LoggedModelMetric(key="acc", value=0.1, step=0, timestamp=stamp(3000), run_id=run.id))  # older step
    link(pb.LoggedModelMetric(key="acc", value=0.7, step=5, timestamp=stamp(1000), run_id=run.id,
                              dataset_name="test", dataset_digest="abc"),
         pb.LoggedModelMetric(key="loss", value=math.nan, step=0, timestamp=stamp(1000)))
    got = tracking.GetLoggedModel(api.GetLoggedModelRequest(model_id=model.id)).model
    points = sorted((m.key, m.step, m.dataset_name, m.run_id == run.id, None if math.isnan(m.value) else m.value)
                    for m in got.metrics)
    assert points == [("acc", 1, "", True, 0.9), ("acc", 5, "test", True, 0.7), ("loss", 0, "", False, None)]
    assert code_of(tracking.LogLoggedModelMetrics, api.LogLoggedModelMetricsRequest(
        model_id="m-" + "0" * 32, metrics=[pb.LoggedModelMetric(key="a")]))[0] == grpc.StatusCode.NOT_FOUND


def test_search_filters_orders_and_pages_in_sql(tracking):
    exp = experiment(tracking, "search")
    run = new_run(tracking, exp)
    made = {}
    for i, name in enumerate(["a", "b", "c", "d"]):
        model = create(tracking, exp, name=name, source_run_id=run.id if i % 2 == 0 else "",
                       params=[pb.Param(key="depth", value=str(i))], tags=[pb.Tag(key="team", value="ml" if i < 2 else "data")])
        tracking.LogLoggedModelMetrics(api.LogLoggedModelMetricsRequest(model_id=model.id, metrics=[
            pb.LoggedModelMetric(key="acc", value=i / 10, step=1), pb.LoggedModelMetric(key="acc", value=9, step=0, run_id=run.id)]))
        made[name] = model
    tracking.FinalizeLoggedModel(api.FinalizeLoggedModelRequest(model_id=made["c"].id,
                                                                status=pb.LOGGED_MODEL_STATUS_READY))
    assert search(tracking, exp) == ["d", "c", "b", "a"]  # newest first
    assert search(tracking, exp, "metrics.acc >= 0.2", ["attributes.name"]) == ["a", "b", "c", "d"]  # any point
    assert search(tracking, exp, "metrics.acc > 10 OR metrics.acc < 0.15", ["metrics.acc DESC"]) == ["b", "a"]
    assert search(tracking, exp, "", ["metrics.acc DESC"]) == ["d", "c", "b", "a"]  # by the latest point
    assert search(tracking, exp, "params.depth IN ('1', '3')", ["name"]) == ["b", "d"]
    assert search(tracking, exp, "tags.team = 'ml' OR attributes.status = 'READY'", ["name"]) == ["a", "b", "c"]
    assert search(tracking, exp, f"source_run_id = '{run.id}'", ["name"]) == ["a", "c"]
    assert search(tracking, exp, "name LIKE 'b%' OR tags.nothing IS NOT NULL") == ["b"]
    newest = made["d"].create_time.ToMilliseconds()
    assert len(search(tracking, exp, f"creation_time <= {newest}")) == 4
    assert search(tracking, exp, f"attributes.creation_time > {newest}") == []
    assert search(tracking, exp, "", ["params.depth DESC"]) == ["d", "c", "b", "a"]
    # Pages, and a token is refused by another query.
    first = tracking.SearchLoggedModels(api.SearchLoggedModelsRequest(experiment_ids=[exp], order_by=["name"],
                                                                      page_size=3))
    assert [m.name for m in first.models] == ["a", "b", "c"] and first.next_page_token
    rest = tracking.SearchLoggedModels(api.SearchLoggedModelsRequest(
        experiment_ids=[exp], order_by=["name"], page_size=3, page_token=first.next_page_token))
    assert [m.name for m in rest.models] == ["d"] and not rest.next_page_token
    assert code_of(tracking.SearchLoggedModels, api.SearchLoggedModelsRequest(
        experiment_ids=[exp], page_size=3, page_token=first.next_page_token))[0] == grpc.StatusCode.INVALID_ARGUMENT
    # Injection attempts stay values.
    assert search(tracking, exp, "name = 'a'' OR ''1''=''1'") == []


# --- migration ---------------------------------------------------------------------------------

def _encode(model_id: str, record: dict) -> dict[str, str]:
    """The gateway's encoding before revision 0005 (gateway/mlflow/logged_models.py then): JSON in
    ``tuning.mlflow.model.<id>`` as ``<parts>|<text>``, continued in ``...#1``... (7,900 characters a part)."""
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    chunks = [text[i:i + 7900] for i in range(0, len(text), 7900)] or [""]
    key = "tuning.mlflow.model." + model_id
    tags = {key: f"{len(chunks)}|{chunks[0]}"}
    tags.update({f"{key}#{i}": chunk for i, chunk in enumerate(chunks[1:], start=1)})
    return tags


def test_the_upgrade_moves_tag_encoded_models_into_their_tables(database_url: str, spawn_server, tmp_path: Path):
    from alembic import command

    from trial_worker.tracking import TrackingClient

    artifacts = str(tmp_path / "artifacts")
    first = spawn_server(database_url, "--artifacts", artifacts, module="tracking_service")
    with TrackingClient(first.address) as client:
        run = client.create_run(0)
        holder = client.create_run(0)
    first.stop()
    db = Database.connect(database_url)
    db.run(lambda conn: command.downgrade(MIGRATIONS._config(conn), "0004"), write=True)

    own, run_less = f"m-{run.id}0000000a", f"m-{holder.id}0000000b"
    big = {f"p{i}": "v" * 200 for i in range(60)}  # more than one tag part
    records = {
        run.id: {own: {"name": "clf", "model_type": "sklearn", "status": "LOGGED_MODEL_READY", "created": 1000,
                       "updated": 2000, "tags": {"team": "ml"}, "params": big, "step": 3,
                       "metrics": [{"key": "acc", "value": 0.9, "step": 1, "timestamp": 1500, "run_id": run.id},
                                   {"key": "loss", "value": "NaN", "step": 0, "timestamp": 1500, "run_id": run.id,
                                    "dataset_name": "test", "dataset_digest": "d1"}]}},
        holder.id: {run_less: {"name": "agent", "model_type": "", "status": "LOGGED_MODEL_PENDING",
                               "created": 3000, "tags": {}, "params": {}, "run_less": True}},
    }
    tags = sa.table("tags", sa.column("run_id"), sa.column("key"), sa.column("value"), sa.column("value_head"))
    rows = []
    for run_id, models in records.items():
        encoded = {"tuning.mlflow.models": "1", "keep": "me"}
        for model_id, record in models.items():
            encoded.update(_encode(model_id, record))
        rows += [{"run_id": run_id, "key": k, "value": v, "value_head": v[:100]} for k, v in encoded.items()]
    assert sum(1 for r in rows if "#" in r["key"]) >= 1
    db.run(lambda conn: conn.execute(tags.insert(), rows), write=True)

    upgraded = spawn_server(database_url, "--artifacts", artifacts, "--migrate", module="tracking_service")
    with grpc.insecure_channel(upgraded.address) as channel:
        stub = api_grpc.TrackingServiceStub(channel)
        clf = stub.GetLoggedModel(api.GetLoggedModelRequest(model_id=own)).model
        assert (clf.name, clf.model_type, clf.status, clf.source_run_id) == (
            "clf", "sklearn", pb.LOGGED_MODEL_STATUS_READY, run.id)
        assert clf.artifact_location == f"runs:/{run.id}/models/{own}"
        assert {p.key: p.value for p in clf.params} == big and {t.key: t.value for t in clf.tags} == {"team": "ml"}
        assert sorted((m.key, m.step, m.dataset_name, math.isnan(m.value)) for m in clf.metrics) == [
            ("acc", 1, "", False), ("loss", 0, "test", True)]
        assert clf.create_time.ToMilliseconds() == 1000 and clf.update_time.ToMilliseconds() == 2000
        agent = stub.GetLoggedModel(api.GetLoggedModelRequest(model_id=run_less)).model
        assert (agent.source_run_id, agent.artifact_location) == ("", f"runs:/{holder.id}/models/{run_less}")
        assert search(stub, 0, "metrics.acc > 0.5") == ["clf"]
        assert search(stub, 0, "", ["name"]) == ["agent", "clf"]
        migrated = stub.GetRun(api.GetRunRequest(run_id=run.id)).run
        left = {t.key: t.value for t in migrated.tags}
        assert left["keep"] == "me" and not any(k.startswith("tuning.mlflow.model") and k != "tuning.mlflow.modelOutputs"
                                                for k in left)
        assert json.loads(left["tuning.mlflow.modelOutputs"]) == [{"model_id": own, "step": 3}]
    assert db.run(MIGRATIONS.current, write=False) == MIGRATIONS.head()
    db.dispose()
