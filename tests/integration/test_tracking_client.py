"""The Python tracking client against a real tracking server (port 0): TrackingClient, RunLogger with
its offline spool across a server restart and a killed process, the fluent API, models and the registry."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import ROOT
from tracking_service.server import serve
from trial_worker import tracking
from trial_worker.tracking import ChecksumMismatch, RunLogger, TrackingClient, dataset_input, metric
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import registry_service_pb2_grpc as rapi_grpc
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tuning_common.grpc_server import RunningServer, ServerOptions


def start(database_url: str, tmp_path: Path, port: int = 0) -> RunningServer:
    return serve(database_url, str(tmp_path / "artifacts"), ServerOptions(port=port, grace_seconds=1))


def port_of(running: RunningServer) -> int:
    return int(running.address.rsplit(":", 1)[1])


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start(f"sqlite:///{tmp_path / 'tracking.db'}", tmp_path)
    yield running
    running.stop()


@pytest.fixture
def client(tracking_server: RunningServer) -> Iterator[TrackingClient]:
    with TrackingClient(tracking_server.address, retries=2, backoff=0.05) as c:
        yield c


@pytest.fixture
def fluent(tracking_server: RunningServer, tmp_path: Path):
    tracking.set_tracking_address(tracking_server.address, spool_dir=tmp_path / "spool", flush_interval=0.05)
    yield tracking
    while tracking.active_run() is not None:
        tracking.end_run()
    tracking.set_tracking_address(None)


def require_registry(address: str) -> None:
    """Skips while ModelRegistryService is not served by this server."""
    with grpc.insecure_channel(address) as channel:
        try:
            rapi_grpc.ModelRegistryServiceStub(channel).GetRegisteredModel(
                rapi.GetRegisteredModelRequest(name="registry-probe"), timeout=10)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                pytest.skip("ModelRegistryService is not served yet by tracking_service.server.serve")


def history(client: TrackingClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl")) if directory.exists() else []


# --- TrackingClient -----------------------------------------------------------------------------

def test_experiments(client):
    created = client.create_experiment("wine", tags={"team": "ml"})
    assert client.get_experiment(created.id).name == "wine"
    assert client.get_experiment_by_name("wine").id == created.id
    with pytest.raises(AlreadyExists):
        client.create_experiment("wine")
    assert client.rename_experiment(created.id, "wine-2").name == "wine-2"
    client.set_experiment_tag(created.id, "team", "data")
    for name in ("a-exp", "b-exp", "c-exp"):
        client.create_experiment(name)
    assert [e.name for e in client.search_experiments("name LIKE '%-exp'", order_by=["name"], page_size=2)] == \
        ["a-exp", "b-exp", "c-exp"]
    client.delete_experiment(created.id)
    assert [e.name for e in client.search_experiments(view_type=pb.VIEW_TYPE_DELETED_ONLY)] == ["wine-2"]
    client.restore_experiment(created.id)
    restored = client.get_experiment(created.id)
    assert restored.lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE and {t.key: t.value for t in restored.tags} == \
        {"team": "data"}
    with pytest.raises(NotFound):
        client.get_experiment_by_name("nope")


def test_runs_logging_and_history(client):
    experiment = client.create_experiment("runs")
    run = client.create_run(experiment.id, name="first", tags={"k": "v"}, run_group="g", request_id="req-1",
                            trial=pb.TrialLink(study="s", trial_id=3, trial_number=1))
    assert client.create_run(experiment.id, name="first", request_id="req-1").id == run.id
    child = client.create_run(experiment.id, parent_run_id=run.id)
    assert client.get_run(child.id).parent_run_id == run.id

    client.log_metric(run.id, "loss", 0.5, step=1)
    client.log_param(run.id, "depth", 6)
    client.set_tag(run.id, "note", "x")
    client.delete_tag(run.id, "note")
    client.log_batch(run.id, metrics=[metric("loss", 1.0 / s, step=s, timestamp_ms=1_000 + s) for s in range(2, 12)],
                     params={"eta": 0.1}, tags={"phase": "train"})
    client.log_inputs(run.id, [dataset_input("wine", "d1g35t", "s3://data/wine.csv", "training",
                                             source_type="s3")])
    # Paged with 3 points a page: every point, in step order.
    points = list(client.get_metric_history(run.id, "loss", page_size=3))
    assert [m.step for m in points] == list(range(1, 12)) and points[0].value == 0.5
    assert len(list(client.get_metric_history(run.id, "loss", max_points=4))) <= 8

    got = client.get_run(run.id)
    assert {p.key: p.value for p in got.params} == {"depth": "6", "eta": "0.1"}
    assert {t.key: t.value for t in got.tags} == {"k": "v", "phase": "train"}
    assert got.inputs[0].dataset.name == "wine" and got.inputs[0].context == "training"
    assert (got.trial.study, got.trial.trial_id, got.run_group) == ("s", 3, "g")

    ended = client.update_run(run.id, status="FINISHED")
    assert ended.status == pb.RUN_STATUS_FINISHED and ended.HasField("end_time")
    found = list(client.search_runs([experiment.id], "metrics.loss < 0.2 AND params.depth = '6'"))
    assert [r.id for r in found] == [run.id]
    assert len(list(client.search_runs([experiment.id], max_results=1, page_size=1))) == 1
    client.delete_run(child.id)
    assert [r.id for r in client.search_runs([experiment.id], view_type=pb.VIEW_TYPE_DELETED_ONLY)] == [child.id]
    client.restore_run(child.id)
    assert client.get_run(child.id).lifecycle_stage == pb.LIFECYCLE_STAGE_ACTIVE
    with pytest.raises(InvalidArgument):
        client.log_batch(run.id, metrics=[metric("x", 1.0)] * 1_001)


def test_artifacts_round_trip_with_checksums(client, tmp_path):
    run = client.create_run(0)
    data = os.urandom(2 * 1024 * 1024 + 11)  # three chunks
    (tmp_path / "big.bin").write_bytes(data)
    info = client.upload_file(run.id, tmp_path / "big.bin", "blobs")
    assert (info.path, info.size, info.sha256) == ("blobs/big.bin", len(data), hashlib.sha256(data).hexdigest())

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    uploaded = client.upload_dir(run.id, tree, "report")
    assert sorted(f.path for f in uploaded) == ["report/a.txt", "report/sub/b.txt"]
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run.id)] == [("blobs", True), ("report", True)]
    assert [f.path for f in client.list_artifacts(run.id, "report")] == ["report/sub", "report/a.txt"]

    local = client.download(run.id, "blobs/big.bin", tmp_path / "one")
    assert local == tmp_path / "one" / "blobs" / "big.bin" and local.read_bytes() == data
    folder = client.download(run.id, "report", tmp_path / "dir")
    assert (folder / "a.txt").read_text() == "a" and (folder / "sub" / "b.txt").read_text() == "b"
    everything = client.download(run.id, "", tmp_path / "all")
    assert (everything / "blobs" / "big.bin").read_bytes() == data
    with pytest.raises(NotFound):
        client.download(run.id, "missing.bin", tmp_path / "none")


class _Corrupting(grpc.UnaryStreamClientInterceptor):
    """Flips a byte of every downloaded chunk, as a broken proxy would."""

    def intercept_unary_stream(self, continuation, client_call_details, request):
        for response in continuation(client_call_details, request):
            if response.WhichOneof("part") == "chunk":
                response.chunk = bytes([response.chunk[0] ^ 0xFF]) + response.chunk[1:]
            yield response


def test_a_corrupted_download_is_refused(tracking_server, client, tmp_path):
    run = client.create_run(0)
    (tmp_path / "model.json").write_bytes(b'{"weights": [1, 2, 3]}')
    client.upload_file(run.id, tmp_path / "model.json")
    channel = grpc.intercept_channel(grpc.insecure_channel(tracking_server.address), _Corrupting())
    with TrackingClient(channel=channel, retries=0) as corrupted:
        with pytest.raises(ChecksumMismatch) as caught:
            corrupted.download(run.id, "model.json", tmp_path / "out")
    assert "SHA-256" in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []  # nothing partial left behind


class _LostReply(grpc.RpcError, grpc.Call):
    """What a client sees when the server stored a request but its reply never arrived."""

    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection reset before the reply arrived"

    def initial_metadata(self):
        return None

    def trailing_metadata(self):
        return None

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


class _DropFirstReplies(grpc.UnaryUnaryClientInterceptor):
    """Lets the first ``drops`` logging calls reach the server, then loses their replies; records
    every logging request that reached it."""

    def __init__(self, drops: int):
        self.drops = drops
        self.sent: list = []

    def intercept_unary_unary(self, continuation, client_call_details, request):
        outcome = continuation(client_call_details, request)
        if client_call_details.method.endswith(("/LogBatch", "/LogMetric")):
            self.sent.append(request)
            if self.drops:
                self.drops -= 1
                outcome.result()  # stored on the server ...
                raise _LostReply()  # ... but the client never hears it
        return outcome


def test_a_batch_retried_after_a_lost_reply_is_stored_once(database_url, tmp_path):
    running = start(database_url, tmp_path)
    dropper = _DropFirstReplies(drops=2)
    channel = grpc.intercept_channel(grpc.insecure_channel(running.address), dropper)
    try:
        with TrackingClient(channel=channel, retries=3, backoff=0.01) as client:
            run = client.create_run(0)
            # No timestamps: the service stamps these points, so only the request id keeps a retry from
            # storing them a second time.
            client.log_batch(run.id, series=[tracking.metric_series("loss", [0.5, 0.25, 0.125], steps=[1, 2, 3])],
                             metrics=[pb.Metric(key="acc", value=0.75, step=3)])
            client.log_metric(run.id, "f1", 0.5)  # the same for LogMetric (stamped here, id sent too)
            assert len(dropper.sent) == 4
            assert dropper.sent[0].request_id and dropper.sent[0] == dropper.sent[1]  # the retry is the same
            assert history(client, run.id, "loss") == [(1, 0.5), (2, 0.25), (3, 0.125)]
            assert history(client, run.id, "acc") == [(3, 0.75)]
            assert history(client, run.id, "f1") == [(0, 0.5)]
    finally:
        running.stop()


def test_a_spooled_batch_is_replayed_with_its_request_id(tmp_path):
    """The logger gives up on a batch whose reply is lost (retries=0), spools it and replays it
    later: the replay names the same request, so the service stores nothing twice."""
    running = start(f"sqlite:///{tmp_path / 'tracking.db'}", tmp_path)
    dropper = _DropFirstReplies(drops=1)
    channel = grpc.intercept_channel(grpc.insecure_channel(running.address), dropper)
    try:
        with TrackingClient(channel=channel, retries=0) as client:
            run = client.create_run(0)
            logger = RunLogger(client, spool_dir=tmp_path / "spool", flush_interval=0.05)
            for step in range(10):
                logger.log_metric(run.id, "loss", step / 10, step)
            logger.log_param(run.id, "depth", 6)
            logger.flush(timeout=30)
            logger.close()
            first, replay = dropper.sent[:2]
            assert first.request_id and replay.request_id == first.request_id
            assert history(client, run.id, "loss") == [(s, s / 10) for s in range(10)]
            assert spool_files(tmp_path / "spool") == []
    finally:
        running.stop()


# --- RunLogger ----------------------------------------------------------------------------------

def test_logger_stores_every_point_exactly_once(database_url, tmp_path):
    running = start(database_url, tmp_path)
    try:
        with TrackingClient(running.address, retries=2, backoff=0.05) as client:
            run = client.create_run(0)
            logger = RunLogger(client, spool_dir=tmp_path / "spool", flush_interval=0.05)
            for step in range(2_345):
                logger.log_metric(run.id, "loss", 1.0 / (step + 1), step)
            logger.log_metric(run.id, "diverged", math.nan)
            logger.log_metric(run.id, "grad", -math.inf)
            logger.log_params(run.id, {f"p{i}": i for i in range(150)})
            logger.set_tags(run.id, {f"t{i}": i for i in range(120)})
            logger.flush()
            stored = list(client.get_metric_history(run.id, "loss"))
            assert [(m.step, m.value) for m in stored] == [(s, 1.0 / (s + 1)) for s in range(2_345)]
            assert math.isnan(list(client.get_metric_history(run.id, "diverged"))[0].value)
            assert history(client, run.id, "grad") == [(0, -math.inf)]

            # The same points again (a batch sent twice): still stored once.
            for i in range(0, len(stored), 1_000):
                client.log_batch(run.id, metrics=stored[i:i + 1_000], params={"p0": "0"}, tags={"t0": "0"})
            assert len(list(client.get_metric_history(run.id, "loss"))) == 2_345
            got = client.get_run(run.id)
            assert len(got.params) == 150 and len(got.tags) == 120
            logger.close()
    finally:
        running.stop()


def test_flush_raises_what_the_service_refused(client, tmp_path):
    run = client.create_run(0)
    logger = RunLogger(client, spool_dir=tmp_path / "spool", flush_interval=3_600)
    logger.log_param(run.id, "depth", 6)
    logger.flush()
    for step in range(20):
        logger.log_metric(run.id, "loss", float(step), step)
    logger.log_metric(run.id, " padded", 1.0)  # keys must not start or end with blanks
    with pytest.raises(InvalidArgument) as caught:
        logger.flush()
    assert "key" in caught.value.field
    assert len(history(client, run.id, "loss")) == 20  # the good points of that batch are stored
    logger.log_param(run.id, "depth", 7)
    with pytest.raises(FailedPrecondition) as changed:
        logger.flush()
    assert changed.value.reason == "PARAM_CHANGED"
    logger.close()


def test_offline_spool_across_a_server_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'tracking.db'}"
    first = start(url, tmp_path)
    port = port_of(first)
    client = TrackingClient(first.address, retries=1, backoff=0.05)
    run = client.create_run(0)
    spool = tmp_path / "spool"
    logger = RunLogger(client, spool_dir=spool, flush_interval=0.05)
    first.stop()

    for step in range(500):
        logger.log_metric(run.id, "loss", step / 7, step)
    logger.set_tag(run.id, "state", "offline")
    with pytest.raises(Unavailable) as caught:
        logger.flush(timeout=1)
    assert str(spool) in str(caught.value)
    [spooled] = spool_files(spool)
    # The same batches a second time, as after a crash between sending and forgetting them.
    shutil.copy(spooled, spool / "duplicate.jsonl")

    try:
        second = start(url, tmp_path, port=port)
    except Exception as error:  # the port was taken meanwhile: nothing to learn from this run
        pytest.skip(f"port {port} could not be reused for the restart: {error}")
    try:
        logger.flush(timeout=60)
        replayer = RunLogger(client, spool_dir=spool, flush_interval=0.05)
        replayer.flush(timeout=60)
        assert history(client, run.id, "loss") == [(s, s / 7) for s in range(500)]
        assert {t.key: t.value for t in client.get_run(run.id).tags}["state"] == "offline"
        assert spool_files(spool) == []
        logger.close()
        replayer.close()
    finally:
        client.close()
        second.stop()


_KILLED_LOGGER = """
import os, signal, sys
from trial_worker.tracking import RunLogger, TrackingClient
from tuning_common.errors import Unavailable

address, spool, run_id = sys.argv[1:]
logger = RunLogger(TrackingClient(address, retries=0), spool_dir=spool, flush_interval=0.05)
for step in range(300):
    logger.log_metric(run_id, "loss", step / 3, step)
logger.log_param(run_id, "depth", 6)
try:
    logger.flush(timeout=2)
except Unavailable:
    pass
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_loggers_spool_is_replayed_by_the_next(tmp_path):
    url = f"sqlite:///{tmp_path / 'tracking.db'}"
    first = start(url, tmp_path)
    with TrackingClient(first.address, retries=1, backoff=0.05) as client:
        run_id = client.create_run(0).id
    dead_address = first.address
    first.stop()
    spool = tmp_path / "spool"
    done = subprocess.run([sys.executable, "-c", _KILLED_LOGGER, dead_address, str(spool), run_id], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert spool_files(spool), "the killed logger left its spool"

    second = start(url, tmp_path)
    try:
        with TrackingClient(second.address, retries=2, backoff=0.05) as client:
            logger = RunLogger(client, spool_dir=spool, flush_interval=0.05)
            logger.flush(timeout=60)
            assert history(client, run_id, "loss") == [(s, s / 3) for s in range(300)]
            assert {p.key: p.value for p in client.get_run(run_id).params} == {"depth": "6"}
            assert spool_files(spool) == []
            logger.close()
    finally:
        second.stop()


# --- the fluent API -----------------------------------------------------------------------------

def test_fluent_runs_end_to_end(fluent, tmp_path):
    experiment = fluent.set_experiment("fluent")
    assert fluent.set_experiment("fluent").id == experiment.id  # get, not create again
    with fluent.start_run("outer", tags={"team": "ml"}, run_group="study-1", seed=7) as outer:
        assert fluent.active_run() is outer
        fluent.log_params({"depth": 6, "eta": 0.1})
        fluent.log_param("booster", "gbtree")
        fluent.set_tag("phase", "train")
        fluent.set_tags({"owner": "ana"})
        for step in range(50):
            fluent.log_metric("loss", 1.0 / (step + 1), step)
        fluent.log_metrics({"auc": 0.9, "f1": 0.8}, step=49)
        (tmp_path / "notes.txt").write_text("hello")
        info = fluent.log_artifact(tmp_path / "notes.txt", "docs")
        assert info.sha256 == hashlib.sha256(b"hello").hexdigest()
        (tmp_path / "plots").mkdir()
        (tmp_path / "plots" / "loss.svg").write_text("<svg/>")
        fluent.log_artifacts(tmp_path / "plots", "plots")
        fluent.log_input("wine", "abc123", "file:///data/wine.csv", "training")
        with pytest.raises(FailedPrecondition):
            fluent.start_run("not nested")
        with fluent.start_run("child", nested=True) as child:
            assert fluent.active_run() is child
            fluent.log_metric("loss", 0.01, 1)
        assert fluent.active_run() is outer
    assert fluent.active_run() is None

    with pytest.raises(ZeroDivisionError):
        with fluent.start_run("broken"):
            fluent.log_metric("loss", 1.0)
            raise ZeroDivisionError
    with pytest.raises(KeyboardInterrupt):
        with fluent.start_run("interrupted"):
            raise KeyboardInterrupt

    client = fluent.tracking_client()
    downloaded = client.download(outer.run_id, "docs/notes.txt", tmp_path / "back")
    assert downloaded.read_text() == "hello"
    assert client.get_run(child.run_id).parent_run_id == outer.run_id
    assert len(history(client, outer.run_id, "loss")) == 50

    frame = fluent.search_runs(["fluent"], order_by=["attributes.run_name"])
    assert list(frame["run_name"]) == ["broken", "child", "interrupted", "outer"]
    assert list(frame["status"]) == ["FAILED", "FINISHED", "KILLED", "FINISHED"]
    assert list(frame.columns[:9]) == ["run_id", "experiment_id", "run_name", "status", "artifact_uri",
                                       "start_time", "end_time", "parent_run_id", "run_group"]
    row = frame.set_index("run_name").loc["outer"]
    assert row["run_id"] == outer.run_id and row["experiment_id"] == experiment.id
    assert row["metrics.loss"] == pytest.approx(1 / 50) and row["metrics.auc"] == 0.9
    assert (row["params.depth"], row["params.eta"], row["params.booster"]) == ("6", "0.1", "gbtree")
    assert (row["tags.team"], row["tags.phase"], row["tags.owner"]) == ("ml", "train", "ana")
    assert row["tags.tuning.source.seed"] == "7" and row["tags.tuning.source.python"]
    assert row["run_group"] == "study-1" and row["end_time"] >= row["start_time"]
    assert str(frame["start_time"].dtype).startswith("datetime64") and "UTC" in str(frame["start_time"].dtype)
    assert frame.set_index("run_name").loc["child", "parent_run_id"] == outer.run_id
    assert math.isnan(frame.set_index("run_name").loc["interrupted", "metrics.loss"])
    filtered = fluent.search_runs(["fluent"], "params.depth = '6'")
    assert list(filtered["run_id"]) == [outer.run_id]
    assert len(fluent.search_runs(["fluent"], max_results=2)) == 2


def test_provenance_tags_hold_no_environment(fluent, monkeypatch):
    monkeypatch.setenv("TUNING_TEST_SECRET", "s3cr3t-value")
    with fluent.start_run("provenance", seed=11) as run:
        pass
    tags = {t.key: t.value for t in fluent.tracking_client().get_run(run.run_id).tags}
    source = {k: v for k, v in tags.items() if k.startswith("tuning.source.")}
    assert source["tuning.source.seed"] == "11" and "tuning.source.platform" in source
    assert source["tuning.source.package.numpy"]
    assert not any("s3cr3t" in value for value in tags.values())
    if shutil.which("git") and "tuning.source.git.root" in source:
        assert len(source["tuning.source.git.commit"]) == 40
        assert source["tuning.source.git.dirty"] in ("true", "false")


def _classification():
    from sklearn.datasets import make_classification

    return make_classification(n_samples=200, n_features=6, random_state=0)


def test_xgboost_and_sklearn_models_round_trip(fluent):
    import numpy as np
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _classification()
    classifier = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(x, y)
    regressor = xgb.XGBRegressor(n_estimators=8, max_depth=3).fit(x, y.astype(float))
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic"}, xgb.DMatrix(x, label=y), 8)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    with fluent.start_run("models"):
        infos = {name: fluent.log_model(model, name) for name, model in
                 [("classifier", classifier), ("regressor", regressor), ("booster", booster),
                  ("pipeline", pipeline)]}
    assert {name: i.flavor for name, i in infos.items()} == {"classifier": "xgboost", "regressor": "xgboost",
                                                             "booster": "xgboost", "pipeline": "sklearn"}

    loaded = {name: fluent.load_model(info.model_uri) for name, info in infos.items()}
    assert type(loaded["classifier"]) is xgb.XGBClassifier and type(loaded["booster"]) is xgb.Booster
    np.testing.assert_array_equal(loaded["classifier"].predict(x), classifier.predict(x))
    np.testing.assert_allclose(loaded["classifier"].predict_proba(x), classifier.predict_proba(x))
    np.testing.assert_allclose(loaded["regressor"].predict(x), regressor.predict(x))
    np.testing.assert_allclose(loaded["booster"].predict(xgb.DMatrix(x)), booster.predict(xgb.DMatrix(x)))
    np.testing.assert_array_equal(loaded["pipeline"].predict_proba(x), pipeline.predict_proba(x))
    files = {f.path for f in fluent.tracking_client().list_artifacts(infos["classifier"].run_id, "classifier")}
    assert files == {"classifier/model.json", "classifier/model.yaml"}
    with pytest.raises(TypeError):
        with fluent.start_run("unsupported"):
            fluent.log_model(object())


def test_registry_through_the_fluent_api_and_the_client(fluent, tracking_server):
    require_registry(tracking_server.address)
    import numpy as np
    import xgboost as xgb

    x, y = _classification()
    models = [xgb.XGBClassifier(n_estimators=n, max_depth=2).fit(x, y) for n in (4, 12)]
    with fluent.start_run("v1"):
        first = fluent.log_model(models[0], registered_model_name="wine-xgb")
    with fluent.start_run("v2"):
        second = fluent.log_model(models[1])
    assert first.registered_version.version == 1 and first.registered_version.run_id == first.run_id
    version_2 = fluent.register_model(second.model_uri, "wine-xgb")
    assert version_2.version == 2 and version_2.source == second.model_uri

    fluent.set_alias("wine-xgb", "champion", 2)
    promoted = fluent.transition_stage("wine-xgb", 1, "Production", reason="best so far")
    assert promoted.stage == rpb.STAGE_PRODUCTION
    for uri, model in [("models:/wine-xgb/1", models[0]), ("models:/wine-xgb@champion", models[1]),
                       ("models:/wine-xgb/Production", models[0])]:
        np.testing.assert_array_equal(fluent.load_model(uri).predict_proba(x), model.predict_proba(x))
    with pytest.raises(NotFound):
        fluent.load_model("models:/wine-xgb/Staging")
    with pytest.raises(InvalidArgument):
        fluent.load_model("s3://bucket/model")

    client = fluent.tracking_client()
    assert client.get_model_version_by_alias("wine-xgb", "champion").version == 2
    assert client.get_registered_model("wine-xgb").aliases["champion"] == 2
    assert [v.version for v in client.search_model_versions("name = 'wine-xgb'")] == [2, 1]
    assert client.get_model_version_download_uri("wine-xgb", 2).endswith(f"/{second.run_id}/artifacts/model")
    actions = [e.action for e in client.list_registry_events("wine-xgb")]
    assert rpb.REGISTRY_ACTION_TRANSITION_STAGE in actions and rpb.REGISTRY_ACTION_SET_ALIAS in actions
    client.create_registered_model("other", description="d", tags={"k": "v"})
    assert [m.name for m in client.search_registered_models(order_by=["name"])] == ["other", "wine-xgb"]
    client.delete_registered_model_alias("wine-xgb", "champion")
    with pytest.raises(NotFound):
        client.get_model_version_by_alias("wine-xgb", "champion")
