"""The tracking service through its gRPC API on a real server (port 0), SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tracking_service.server import serve
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning_common.grpc_server import ServerOptions


@pytest.fixture
def tracking(database_url: str, tmp_path: Path) -> Iterator[api_grpc.TrackingServiceStub]:
    running = serve(database_url, str(tmp_path / "artifacts"), ServerOptions(port=0, grace_seconds=1),
                    max_artifact_bytes=8 * 1024 * 1024)
    channel = grpc.insecure_channel(running.address)
    yield api_grpc.TrackingServiceStub(channel)
    channel.close()
    running.stop()


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    return caught.value.code(), caught.value.details()


def stamp(ms: int) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromMilliseconds(ms)
    return t


def new_run(stub, experiment_id: int, **fields) -> pb.Run:
    return stub.CreateRun(api.CreateRunRequest(experiment_id=experiment_id, **fields)).run


def test_experiment_life_cycle(tracking):
    default = tracking.GetExperiment(api.GetExperimentRequest(experiment_id=0)).experiment
    assert default.name == "Default"
    created = tracking.CreateExperiment(api.CreateExperimentRequest(
        name="wine", tags=[pb.Tag(key="team", value="ml")])).experiment
    assert created.id > 0 and created.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    assert created.artifact_location.startswith("file://") and created.artifact_location.endswith(f"/{created.id}")
    assert [(t.key, t.value) for t in created.tags] == [("team", "ml")]
    assert code_of(tracking.CreateExperiment, api.CreateExperimentRequest(name="wine"))[0] == \
        grpc.StatusCode.ALREADY_EXISTS

    by_name = tracking.GetExperimentByName(api.GetExperimentByNameRequest(name="wine")).experiment
    assert by_name.id == created.id
    renamed = tracking.RenameExperiment(api.RenameExperimentRequest(experiment_id=created.id, new_name="wine-2"))
    assert renamed.experiment.name == "wine-2"
    tracking.SetExperimentTag(api.SetExperimentTagRequest(experiment_id=created.id, key="team", value="data"))
    run = new_run(tracking, created.id)

    tracking.DeleteExperiment(api.DeleteExperimentRequest(experiment_id=created.id))
    tracking.DeleteExperiment(api.DeleteExperimentRequest(experiment_id=created.id))  # a no-op
    assert tracking.GetRun(api.GetRunRequest(run_id=run.id)).run.lifecycle_stage == pb.LIFECYCLE_STAGE_DELETED
    code, message = code_of(tracking.CreateRun, api.CreateRunRequest(experiment_id=created.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "deleted" in message
    active = tracking.SearchExperiments(api.SearchExperimentsRequest()).experiments
    assert [e.name for e in active] == ["Default"]
    deleted = tracking.SearchExperiments(api.SearchExperimentsRequest(view_type=pb.VIEW_TYPE_DELETED_ONLY))
    assert [(e.name, [(t.key, t.value) for t in e.tags]) for e in deleted.experiments] == [("wine-2", [("team", "data")])]

    tracking.RestoreExperiment(api.RestoreExperimentRequest(experiment_id=created.id))
    assert tracking.GetRun(api.GetRunRequest(run_id=run.id)).run.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    assert code_of(tracking.GetExperiment, api.GetExperimentRequest(experiment_id=999))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(tracking.DeleteExperiment, api.DeleteExperimentRequest(experiment_id=0))[0] == \
        grpc.StatusCode.FAILED_PRECONDITION


def test_experiment_search_filters_orders_and_pages(tracking):
    for name in ("b-exp", "a-exp", "c-other"):
        tracking.CreateExperiment(api.CreateExperimentRequest(name=name, tags=[pb.Tag(key="kind", value=name[0])]))
    found = tracking.SearchExperiments(api.SearchExperimentsRequest(filter="name LIKE '%-exp'", order_by=["name"]))
    assert [e.name for e in found.experiments] == ["a-exp", "b-exp"]
    pages, token = [], ""
    while True:
        page = tracking.SearchExperiments(api.SearchExperimentsRequest(order_by=["name DESC"], page_size=2,
                                                                       page_token=token))
        pages.append([e.name for e in page.experiments])
        token = page.next_page_token
        if not token:
            break
    assert pages == [["c-other", "b-exp"], ["a-exp", "Default"]]
    code, message = code_of(tracking.SearchExperiments, api.SearchExperimentsRequest(filter="name >>> 'x'"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "filter" in message


def test_run_logging_history_and_retries(tracking):
    experiment = tracking.CreateExperiment(api.CreateExperimentRequest(name="e")).experiment
    run = new_run(tracking, experiment.id, name="trial-0", run_group="study-a", user="ana",
                  tags=[pb.Tag(key="worker", value="w1")],
                  trial=pb.TrialLink(study="study-a", trial_id=7, trial_number=3), request_id="req-1")
    again = new_run(tracking, experiment.id, name="trial-0", request_id="req-1")
    assert again.id == run.id  # a retried CreateRun creates nothing new
    assert run.status == pb.RUN_STATUS_RUNNING and run.artifact_uri.endswith(f"/{run.id}/artifacts")
    assert (run.trial.study, run.trial.trial_id, run.trial.trial_number) == ("study-a", 7, 3)

    metrics = [pb.Metric(key="loss", value=1.0 / (step + 1), step=step, timestamp=stamp(1_000 + step))
               for step in range(5)]
    metrics.append(pb.Metric(key="diverged", value=math.nan, step=0, timestamp=stamp(5)))
    metrics.append(pb.Metric(key="grad", value=math.inf, step=0, timestamp=stamp(5)))
    batch = api.LogBatchRequest(run_id=run.id, metrics=metrics, params=[pb.Param(key="max_depth", value="6")],
                                tags=[pb.Tag(key="phase", value="train")])
    tracking.LogBatch(batch)
    tracking.LogBatch(batch)  # retried: no duplicate points, same param is fine
    history = tracking.GetMetricHistory(api.GetMetricHistoryRequest(run_id=run.id, key="loss")).metrics
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]

    got = tracking.GetRun(api.GetRunRequest(run_id=run.id)).run
    latest = {m.key: m for m in got.latest_metrics}
    assert latest["loss"].step == 4 and latest["loss"].value == pytest.approx(0.2)
    assert math.isnan(latest["diverged"].value) and latest["grad"].value == math.inf
    assert {p.key: p.value for p in got.params} == {"max_depth": "6"}
    assert {t.key: t.value for t in got.tags} == {"worker": "w1", "phase": "train"}

    code, message = code_of(tracking.LogParam, api.LogParamRequest(run_id=run.id,
                                                                   param=pb.Param(key="max_depth", value="7")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "max_depth" in message
    # An older point does not replace the latest one.
    tracking.LogMetric(api.LogMetricRequest(run_id=run.id, metric=pb.Metric(key="loss", value=9.0, step=1,
                                                                            timestamp=stamp(9_999))))
    latest = {m.key: m for m in tracking.GetRun(api.GetRunRequest(run_id=run.id)).run.latest_metrics}
    assert latest["loss"].step == 4

    tracking.DeleteTag(api.DeleteTagRequest(run_id=run.id, key="phase"))
    assert code_of(tracking.DeleteTag, api.DeleteTagRequest(run_id=run.id, key="phase"))[0] == \
        grpc.StatusCode.NOT_FOUND
    finished = tracking.UpdateRun(api.UpdateRunRequest(run_id=run.id, status=pb.RUN_STATUS_FINISHED)).run
    assert finished.status == pb.RUN_STATUS_FINISHED and finished.HasField("end_time")

    tracking.DeleteRun(api.DeleteRunRequest(run_id=run.id))
    code, _ = code_of(tracking.SetTag, api.SetTagRequest(run_id=run.id, tag=pb.Tag(key="k", value="v")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    tracking.RestoreRun(api.RestoreRunRequest(run_id=run.id))
    tracking.SetTag(api.SetTagRequest(run_id=run.id, tag=pb.Tag(key="k", value="v")))


def test_metric_history_pages_and_downsampling(tracking):
    run = new_run(tracking, 0)
    points = [pb.Metric(key="acc", value=math.sin(i / 50) + (5.0 if i == 1234 else 0.0), step=i, timestamp=stamp(i))
              for i in range(3_000)]
    for i in range(0, len(points), 1_000):
        tracking.LogBatch(api.LogBatchRequest(run_id=run.id, metrics=points[i:i + 1_000]))
    steps, token = [], ""
    while True:
        page = tracking.GetMetricHistory(api.GetMetricHistoryRequest(run_id=run.id, key="acc", page_size=700,
                                                                     page_token=token))
        steps += [m.step for m in page.metrics]
        token = page.next_page_token
        if not token:
            break
    assert steps == list(range(3_000))
    sampled = tracking.GetMetricHistory(api.GetMetricHistoryRequest(run_id=run.id, key="acc", max_points=200))
    kept = [m.step for m in sampled.metrics]
    assert len(kept) <= 200 and kept[0] == 0 and kept[-1] == 2_999 and 1234 in kept  # the spike survives
    assert code_of(tracking.GetMetricHistory, api.GetMetricHistoryRequest(run_id=run.id, key="acc",
                                                                          max_points=1))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_search_runs(tracking):
    experiment = tracking.CreateExperiment(api.CreateExperimentRequest(name="search")).experiment
    ids = {}
    for depth, f1 in [(3, 0.70), (6, 0.81), (9, 0.78), (12, math.nan)]:
        run = new_run(tracking, experiment.id, name=f"d{depth}")
        tracking.LogBatch(api.LogBatchRequest(run_id=run.id, params=[pb.Param(key="max_depth", value=str(depth))],
                                              metrics=[pb.Metric(key="val_f1", value=f1, step=0)]))
        ids[depth] = run.id
    found = tracking.SearchRuns(api.SearchRunsRequest(experiment_ids=[experiment.id], filter="metrics.val_f1 > 0.75",
                                                      order_by=["metrics.val_f1 DESC"]))
    assert [r.id for r in found.runs] == [ids[6], ids[9]]
    found = tracking.SearchRuns(api.SearchRunsRequest(
        experiment_ids=[experiment.id], filter="params.max_depth IN ('3', '12') OR attributes.run_name = 'd9'",
        order_by=["attributes.run_name"]))
    assert [r.name for r in found.runs] == ["d12", "d3", "d9"]
    code, message = code_of(tracking.SearchRuns, api.SearchRunsRequest(experiment_ids=[experiment.id],
                                                                       filter="metrics.val_f1 > 'high'"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "position" in message
    assert code_of(tracking.SearchRuns, api.SearchRunsRequest())[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_dataset_inputs_are_shared_within_an_experiment(tracking):
    experiment = tracking.CreateExperiment(api.CreateExperimentRequest(name="data")).experiment
    dataset = pb.Dataset(name="wine", digest="abc123", source_type="local", source='{"path": "wine.csv"}')
    first, second = new_run(tracking, experiment.id), new_run(tracking, experiment.id)
    for run, context in ((first, "training"), (second, "validation")):
        tracking.LogInputs(api.LogInputsRequest(run_id=run.id, inputs=[pb.DatasetInput(dataset=dataset,
                                                                                        context=context)]))
    got = tracking.GetRun(api.GetRunRequest(run_id=second.id)).run
    assert [(i.dataset.name, i.dataset.digest, i.context) for i in got.inputs] == [("wine", "abc123", "validation")]


@pytest.mark.parametrize("request_fields, field", [
    ({"experiment_id": 0, "name": "x" * 251}, "name"),
    ({"experiment_id": 0, "parent_run_id": "not-hex"}, "parent_run_id"),
    ({"experiment_id": 0, "status": pb.RUN_STATUS_FINISHED}, "status"),
    ({"experiment_id": 0, "tags": [pb.Tag(key="", value="v")]}, "tags[0].key"),
])
def test_bad_run_requests_name_the_field(tracking, request_fields, field):
    code, message = code_of(tracking.CreateRun, api.CreateRunRequest(**request_fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(field)


def test_log_batch_limits_are_enforced_not_truncated(tracking):
    run = new_run(tracking, 0)
    too_many = [pb.Metric(key="m", value=1.0, step=i) for i in range(1_001)]
    code, message = code_of(tracking.LogBatch, api.LogBatchRequest(run_id=run.id, metrics=too_many))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("metrics")
    code, message = code_of(tracking.LogParam, api.LogParamRequest(run_id=run.id,
                                                                   param=pb.Param(key="p", value="v" * 6_001)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "6000" in message
    # Nothing of a refused batch is stored.
    half_bad = api.LogBatchRequest(run_id=run.id, metrics=[pb.Metric(key="ok", value=1.0)],
                                   params=[pb.Param(key="p", value="1"), pb.Param(key="p", value="2")])
    assert code_of(tracking.LogBatch, half_bad)[0] == grpc.StatusCode.INVALID_ARGUMENT
    got = tracking.GetRun(api.GetRunRequest(run_id=run.id)).run
    assert list(got.latest_metrics) == [] and list(got.params) == []
    assert code_of(tracking.GetRun, api.GetRunRequest(run_id="0" * 32))[0] == grpc.StatusCode.NOT_FOUND


def _upload(stub, run_id: str, path: str, data: bytes, *, chunk: int = 64 * 1024, sha: str | None = None):
    messages = [api.UploadArtifactRequest(header=api.ArtifactHeader(
        run_id=run_id, path=path, size=len(data), sha256=sha or hashlib.sha256(data).hexdigest()))]
    messages += [api.UploadArtifactRequest(chunk=data[i:i + chunk]) for i in range(0, len(data), chunk)]
    return stub.UploadArtifact(iter(messages))


def test_artifacts_round_trip_with_checksums(tracking):
    run = new_run(tracking, 0)
    data = os.urandom(3 * 1024 * 1024 + 17)
    info = _upload(tracking, run.id, "model/model.json", data).file
    assert (info.path, info.size, info.sha256) == ("model/model.json", len(data), hashlib.sha256(data).hexdigest())
    _upload(tracking, run.id, "plots/loss.png", b"png")
    parts = list(tracking.DownloadArtifact(api.DownloadArtifactRequest(run_id=run.id, path="model/model.json")))
    assert parts[0].file.sha256 == info.sha256
    assert b"".join(p.chunk for p in parts[1:]) == data
    listing = tracking.ListArtifacts(api.ListArtifactsRequest(run_id=run.id)).files
    assert [(f.path, f.is_dir) for f in listing] == [("model", True), ("plots", True)]
    nested = tracking.ListArtifacts(api.ListArtifactsRequest(run_id=run.id, path="model")).files
    assert [(f.path, f.size) for f in nested] == [("model/model.json", len(data))]

    code, message = code_of(_upload, tracking, run.id, "bad.bin", b"abc", sha="0" * 64)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in message
    assert code_of(_upload, tracking, run.id, "big.bin", b"x" * (9 * 1024 * 1024))[0] == \
        grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of(tracking.DownloadArtifact, api.DownloadArtifactRequest(run_id=run.id, path="nope"))[0] == \
        grpc.StatusCode.NOT_FOUND


def _folders(top: Path) -> list[str]:
    return sorted(str(path.relative_to(top)) for path in top.rglob("*") if path.is_dir())


def test_a_failed_upload_into_new_folders_leaves_no_empty_folder(tracking, tmp_path):
    run = new_run(tracking, 0)
    store = tmp_path / "artifacts"
    _upload(tracking, run.id, "kept/file.txt", b"kept")
    before = _folders(store)
    header = api.UploadArtifactRequest(header=api.ArtifactHeader(
        run_id=run.id, path="a/b/c.txt", size=3, sha256=hashlib.sha256(b"abc").hexdigest()))
    for failing in (
        lambda: _upload(tracking, run.id, "a/b/c.txt", b"abc", sha="0" * 64),
        lambda: _upload(tracking, run.id, "kept/x/y.txt", b"abc", sha="0" * 64),
        lambda: tracking.UploadArtifact(iter([header, api.UploadArtifactRequest(chunk=b"ab")])),  # too short
        lambda: tracking.UploadArtifact(iter([header, api.UploadArtifactRequest(chunk=b"a"), header])),
        lambda: _upload(tracking, run.id, "a/b/big.bin", b"x" * (9 * 1024 * 1024)),
    ):
        assert code_of(failing)[0] in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
        listing = tracking.ListArtifacts(api.ListArtifactsRequest(run_id=run.id)).files
        assert [(f.path, f.is_dir) for f in listing] == [("kept", True)]
        assert _folders(store) == before
    kept = tracking.ListArtifacts(api.ListArtifactsRequest(run_id=run.id, path="kept")).files
    assert [(f.path, f.size) for f in kept] == [("kept/file.txt", 4)]

    assert _upload(tracking, run.id, "a/b/c.txt", b"abc").file.path == "a/b/c.txt"
    listing = tracking.ListArtifacts(api.ListArtifactsRequest(run_id=run.id, path="a/b")).files
    assert [(f.path, f.size) for f in listing] == [("a/b/c.txt", 3)]


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "..\\win", "%2e%2e/x", "%252e%252e/x",
                                  "a/%2E%2E/%2e%2e/b", "C:/x", "．．/x", "a\x00b"])
def test_artifact_traversal_is_refused(tracking, path):
    run = new_run(tracking, 0)
    code, message = code_of(_upload, tracking, run.id, path, b"x")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "path" in message
    code, _ = code_of(tracking.DownloadArtifact, api.DownloadArtifactRequest(run_id=run.id, path=path))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_metric_series_store_the_same_points_as_metrics(tracking):
    run = new_run(tracking, 0)
    values = [1.0 / (i + 1) for i in range(1_000)]
    values[7] = math.nan
    series = pb.MetricSeries(key="loss", values=values, steps=list(range(1_000)),
                             timestamps_ms=[5_000 + i for i in range(1_000)])
    batch = api.LogBatchRequest(run_id=run.id, series=[series])
    tracking.LogBatch(batch)
    tracking.LogBatch(batch)  # a resent batch stores nothing twice
    # Without steps and timestamps: step 0, stamped on arrival (so only a request_id makes a
    # resend store nothing: test_a_replayed_batch_stores_nothing).
    tracking.LogBatch(api.LogBatchRequest(run_id=run.id, series=[pb.MetricSeries(key="lr", values=[0.1, 0.2])]))
    history = tracking.GetMetricHistory(api.GetMetricHistoryRequest(run_id=run.id, key="loss")).metrics
    assert [m.step for m in history] == list(range(1_000))
    assert math.isnan(history[7].value) and history[8].value == values[8]
    assert history[3].timestamp.ToMilliseconds() == 5_003
    lr = tracking.GetMetricHistory(api.GetMetricHistoryRequest(run_id=run.id, key="lr")).metrics
    assert sorted(m.value for m in lr) == [0.1, 0.2] and {m.step for m in lr} == {0}
    latest = {m.key: m for m in tracking.GetRun(api.GetRunRequest(run_id=run.id)).run.latest_metrics}
    assert latest["loss"].step == 999 and latest["lr"].value == 0.2

    uneven = pb.MetricSeries(key="x", values=[1.0, 2.0], steps=[0])
    code, message = code_of(tracking.LogBatch, api.LogBatchRequest(run_id=run.id, series=[uneven]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("series[0].steps")
    too_many = [pb.MetricSeries(key=f"k{i}", values=[0.0] * 5_001) for i in range(2)]
    code, message = code_of(tracking.LogBatch, api.LogBatchRequest(run_id=run.id, series=too_many))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("series") and "10000" in message
    assert "x" not in {m.key for m in tracking.GetRun(api.GetRunRequest(run_id=run.id)).run.latest_metrics}


def _points(stub, run_id: str, key: str) -> list[tuple[int, float]]:
    history = stub.GetMetricHistory(api.GetMetricHistoryRequest(run_id=run_id, key=key)).metrics
    return sorted((m.step, m.value) for m in history)


def test_a_replayed_batch_stores_nothing(tracking):
    """Points without timestamps are stamped when stored; a retry of the same request (the
    reply was lost) must not store them again under a new stamp."""
    run = new_run(tracking, 0)
    batch = api.LogBatchRequest(
        run_id=run.id, request_id="batch-1",
        metrics=[pb.Metric(key="loss", value=0.5, step=1), pb.Metric(key="loss", value=0.25, step=2)],
        series=[pb.MetricSeries(key="lr", values=[0.1, 0.2], steps=[1, 2])],
        params=[pb.Param(key="depth", value="3")], tags=[pb.Tag(key="phase", value="train")])
    for _ in range(3):
        tracking.LogBatch(batch)
    single = api.LogMetricRequest(run_id=run.id, request_id="metric-1", metric=pb.Metric(key="acc", value=0.9))
    tracking.LogMetric(single)
    tracking.LogMetric(single)
    assert _points(tracking, run.id, "loss") == [(1, 0.5), (2, 0.25)]
    assert _points(tracking, run.id, "lr") == [(1, 0.1), (2, 0.2)]
    assert _points(tracking, run.id, "acc") == [(0, 0.9)]

    # Request ids are per run, and another batch under a stored id is refused, not dropped.
    other = new_run(tracking, 0)
    tracking.LogBatch(api.LogBatchRequest(run_id=other.id, request_id="batch-1", metrics=[batch.metrics[0]]))
    assert _points(tracking, other.id, "loss") == [(1, 0.5)]
    reused = api.LogBatchRequest(run_id=run.id, request_id="batch-1", metrics=[pb.Metric(key="loss", value=9.0)])
    code, message = code_of(tracking.LogBatch, reused)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "batch-1" in message
    assert _points(tracking, run.id, "loss") == [(1, 0.5), (2, 0.25)]
    code, message = code_of(tracking.LogBatch, api.LogBatchRequest(run_id=run.id, request_id="r" * 257))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("request_id") and "256" in message

    # A refused batch leaves its id free: the corrected batch may not reuse it, but a resend of
    # the refused one is evaluated again (and refused again), never taken as already stored.
    bad = api.LogBatchRequest(run_id=run.id, request_id="batch-2", metrics=[pb.Metric(key="loss", value=1.0)],
                              params=[pb.Param(key="depth", value="4")])
    assert code_of(tracking.LogBatch, bad)[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(tracking.LogBatch, bad)[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert _points(tracking, run.id, "loss") == [(1, 0.5), (2, 0.25)]


def test_concurrent_replays_of_a_batch_store_it_once(tracking):
    run = new_run(tracking, 0)
    batch = api.LogBatchRequest(run_id=run.id, request_id="same",
                                series=[pb.MetricSeries(key="loss", values=[float(i) for i in range(100)],
                                                        steps=list(range(100)))])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: tracking.LogBatch(batch), range(16)))
    assert _points(tracking, run.id, "loss") == [(i, float(i)) for i in range(100)]


def test_mlflow_sized_names_and_long_tag_values_are_accepted_and_limits_named(tracking):
    """Experiment names up to 500 characters and tag values (a run's description) up to 100,000,
    on SQLite and PostgreSQL; one more is refused naming the field and the limit."""
    name = "e" * 500
    experiment = tracking.CreateExperiment(api.CreateExperimentRequest(
        name=name, tags=[pb.Tag(key="mlflow.note.content", value="d" * 20_000)])).experiment
    assert tracking.GetExperimentByName(api.GetExperimentByNameRequest(name=name)).experiment.id == experiment.id
    note = "n" * 100_000
    run = new_run(tracking, experiment.id, tags=[pb.Tag(key="mlflow.note.content", value=note)])
    assert {t.key: t.value for t in tracking.GetRun(api.GetRunRequest(run_id=run.id)).run.tags}[
        "mlflow.note.content"] == note
    for call, request, field, limit in [
        (tracking.CreateExperiment, api.CreateExperimentRequest(name="e" * 501), "name", "500"),
        (tracking.RenameExperiment, api.RenameExperimentRequest(experiment_id=experiment.id, new_name="e" * 501),
         "new_name", "500"),
        (tracking.SetTag, api.SetTagRequest(run_id=run.id, tag=pb.Tag(key="t", value="v" * 100_001)),
         "tag.value", "100000"),
        (tracking.LogParam, api.LogParamRequest(run_id=run.id, param=pb.Param(key="p", value="v" * 6_001)),
         "param.value", "6000"),
        (tracking.LogMetric, api.LogMetricRequest(run_id=run.id, metric=pb.Metric(key="m" * 251, value=1.0)),
         "metric.key", "250"),
    ]:
        code, message = code_of(call, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(field) and limit in message, message


def _tag(stub, run_id: str, key: str) -> str | None:
    return {t.key: t.value for t in stub.GetRun(api.GetRunRequest(run_id=run_id)).run.tags}.get(key)


def test_expected_tags_make_a_batch_a_compare_and_set(tracking):
    run = new_run(tracking, 0)
    counter = "counter"
    first = api.LogBatchRequest(run_id=run.id, tags=[pb.Tag(key=counter, value="1")],
                                expected_tags=[api.ExpectedTag(key=counter, absent=True)])
    tracking.LogBatch(first)
    # The same condition again no longer holds: nothing of the batch is stored.
    stale = api.LogBatchRequest(run_id=run.id, tags=[pb.Tag(key=counter, value="9"), pb.Tag(key="other", value="x")],
                                params=[pb.Param(key="p", value="1")], expected_tags=[
                                    api.ExpectedTag(key=counter, absent=True)])
    with pytest.raises(grpc.RpcError) as caught:
        tracking.LogBatch(stale)
    assert caught.value.code() == grpc.StatusCode.ABORTED and "counter" in caught.value.details()
    got = tracking.GetRun(api.GetRunRequest(run_id=run.id)).run
    assert _tag(tracking, run.id, counter) == "1" and _tag(tracking, run.id, "other") is None and not got.params
    with pytest.raises(grpc.RpcError) as caught:
        tracking.LogBatch(api.LogBatchRequest(run_id=run.id, tags=[pb.Tag(key=counter, value="9")],
                                              expected_tags=[api.ExpectedTag(key=counter, value="0")]))
    assert caught.value.code() == grpc.StatusCode.ABORTED
    tracking.LogBatch(api.LogBatchRequest(run_id=run.id, tags=[pb.Tag(key=counter, value="2")],
                                          expected_tags=[api.ExpectedTag(key=counter, value="1")]))
    assert _tag(tracking, run.id, counter) == "2"
    code, message = code_of(tracking.LogBatch, api.LogBatchRequest(
        run_id=run.id, expected_tags=[api.ExpectedTag(key=counter, value="2", absent=True)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("expected_tags[0].value"), message


def test_concurrent_compare_and_set_increments_lose_nothing(tracking):
    """Threads increment one tag by read, compare-and-set and retry: every increment counts (on
    PostgreSQL this needs the run's row lock, READ COMMITTED alone would let two pass)."""
    run = new_run(tracking, 0, tags=[pb.Tag(key="n", value="0")])

    def increment(_) -> int:
        for attempt in range(1000):
            value = _tag(tracking, run.id, "n")
            try:
                tracking.LogBatch(api.LogBatchRequest(run_id=run.id, tags=[pb.Tag(key="n", value=str(int(value) + 1))],
                                                      expected_tags=[api.ExpectedTag(key="n", value=value)]))
                return attempt
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.ABORTED, error.details()
        raise AssertionError("never got through")

    with ThreadPoolExecutor(8) as pool:
        lost = sum(pool.map(increment, range(80)))
    assert _tag(tracking, run.id, "n") == "80"
    assert lost > 0  # the race did happen: some tries were refused
