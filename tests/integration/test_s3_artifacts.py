"""Artifacts on S3: the tracking service (and the gateway's MLflow artifact proxy) with ``--artifacts s3://...``
against a real S3 API server (moto's, in its own process), what the S3 store does that the contract cannot
see (keys planted by other tools, multipart uploads that fail), and the errors of bad settings at startup.
The store's behaviour shared with the local store is the contract's (tests/contracts/test_artifact_store_contract.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from tests.conftest import GatewayProcess, gateway_suite, memory_mb, reset_peak
from tests.integration.test_mlflow_client import Suite, run_mlflow
from tracking_service.artifacts import FileInfo, make_store
from tracking_service.artifacts.s3 import MIN_PART_SIZE, S3ArtifactStore, part_size_for
from trial_worker.tracking import ChecksumMismatch, TrackingClient
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound

RUN = "0123456789abcdef0123456789abcdef"


def bucket_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path.strip("/")


def raw_client():
    """A plain boto3 client from the environment (the standard AWS settings s3_artifacts set)."""
    return boto3.client("s3")


def keys(bucket: str) -> list[str]:
    return sorted(item["Key"] for item in raw_client().list_objects_v2(Bucket=bucket).get("Contents", []))


def put(store: S3ArtifactStore, root: str, path: str, data: bytes, **header) -> FileInfo:
    header = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "max_bytes": 1 << 30, **header}
    return store.upload(root, path, [data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000)], **header)


# -- the tracking service on S3 --------------------------------------------------------------------


def test_the_tracking_service_keeps_artifacts_in_the_bucket(spawn_server, s3_artifacts, tmp_path: Path):
    bucket, prefix = bucket_of(s3_artifacts)
    server = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", s3_artifacts, module="tracking_service")
    data = (tmp_path / "model.bin")
    data.write_bytes(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(300_000)))  # 9.6 MB: multipart
    (tmp_path / "notes.txt").write_text("hello")
    with TrackingClient(server.address) as client:
        run = client.create_run(0)
        assert run.artifact_uri == f"s3://{bucket}/{prefix}/0/{run.id}/artifacts"
        uploaded = client.upload_file(run.id, data, "model")
        client.upload_file(run.id, tmp_path / "notes.txt")
        assert [(f.path, f.is_dir) for f in client.list_artifacts(run.id)] == [("model", True), ("notes.txt", False)]
        assert [(f.path, f.size) for f in client.list_artifacts(run.id, "model")] == [
            ("model/model.bin", data.stat().st_size)]
        out = client.download(run.id, "", tmp_path / "out")
        assert (out / "model" / "model.bin").read_bytes() == data.read_bytes()
        assert (out / "notes.txt").read_text() == "hello"
    key = f"{prefix}/0/{run.id}/artifacts/model/model.bin"
    assert keys(bucket) == sorted([key, f"{prefix}/0/{run.id}/artifacts/notes.txt"])
    head = raw_client().head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["sha256"] == uploaded.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert head["ETag"].endswith('-2"')  # two parts: the file went up as a multipart upload
    server.stop()
    assert "Traceback" not in server.output(), server.output()


def test_a_replica_reads_what_another_wrote(spawn_server, s3_artifacts, tmp_path: Path):
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    writer = spawn_server(database, "--artifacts", s3_artifacts, module="tracking_service")
    reader = spawn_server(database, "--artifacts", s3_artifacts, module="tracking_service")
    (tmp_path / "weights.bin").write_bytes(b"w" * 70_000)
    with TrackingClient(writer.address) as a, TrackingClient(reader.address) as b:
        run = a.create_run(0)
        a.upload_file(run.id, tmp_path / "weights.bin", "model")
        assert [f.path for f in b.list_artifacts(run.id, "model")] == ["model/weights.bin"]
        assert b.download(run.id, "model/weights.bin", tmp_path / "b").read_bytes() == b"w" * 70_000
        # And the other way round: a file replaced through the reader is what the writer serves next.
        (tmp_path / "weights.bin").write_bytes(b"v2")
        b.upload_file(run.id, tmp_path / "weights.bin", "model")
        assert a.download(run.id, "model/weights.bin", tmp_path / "a").read_bytes() == b"v2"


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="needs mlflow-skinny (the dev extra)")
def test_the_mlflow_client_logs_and_downloads_artifacts_kept_on_s3(s3_artifacts, tmp_path: Path):
    bucket, prefix = bucket_of(s3_artifacts)
    with gateway_suite(tmp_path, artifacts=s3_artifacts) as running:
        out = run_mlflow(Suite(running.gateway, running.tracking.address), tmp_path, """
            import json, os
            import mlflow

            with open("big.bin", "wb") as f:
                f.write(bytes(range(256)) * 30_000)
            with mlflow.start_run() as run:
                mlflow.log_artifact("big.bin", artifact_path="data")
                mlflow.log_text("hello", "notes/hello.txt")
            local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="data/big.bin")
            print(json.dumps({"run": run.info.run_id, "same": open(local, "rb").read() == open("big.bin", "rb").read(),
                              "text": mlflow.artifacts.load_text(f"{run.info.artifact_uri}/notes/hello.txt"),
                              "listed": [f.path for f in mlflow.MlflowClient().list_artifacts(run.info.run_id)]}))
        """)
    assert out["same"] and out["text"] == "hello" and out["listed"] == ["data", "notes"]
    run_keys = [key for key in keys(bucket) if f"/{out['run']}/" in key]
    assert sorted(key.split("/artifacts/", 1)[1] for key in run_keys) == ["data/big.bin", "notes/hello.txt"]
    assert all(key.startswith(f"{prefix}/") for key in run_keys)


def test_presigned_urls_download_straight_from_the_bucket(spawn_server, s3_artifacts, tmp_path: Path):
    bucket, prefix = bucket_of(s3_artifacts)
    server = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", s3_artifacts, module="tracking_service")
    data = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(200_000))  # 6.4 MB: multipart
    (tmp_path / "model.bin").write_bytes(data)
    (tmp_path / "notes.txt").write_text("hello")
    with TrackingClient(server.address) as client:
        run = client.create_run(0)
        client.upload_file(run.id, tmp_path / "model.bin", "model")
        client.upload_file(run.id, tmp_path / "notes.txt", "model/docs")
        before = time.time()
        answer = client.artifact_download_url(run.id, "model/model.bin", expires_in_seconds=120)
        assert (answer.file.path, answer.file.size, answer.file.sha256) == (
            "model/model.bin", len(data), hashlib.sha256(data).hexdigest())
        assert before + 119 <= answer.expire_time.ToSeconds() <= time.time() + 121
        query = parse_qs(urlsplit(answer.url).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["120"]
        # Anyone holding the URL gets the file from the bucket, no token and no service involved.
        assert httpx.get(answer.url).content == data
        assert client.artifact_download_url(run.id, "model/model.bin").url != answer.url  # 900 s by default
        out = client.download(run.id, "model", tmp_path / "direct", direct=True)
        assert (out / "model.bin").read_bytes() == data and (out / "docs" / "notes.txt").read_text() == "hello"

        with pytest.raises(FailedPrecondition, match="folder"):
            client.artifact_download_url(run.id, "model")
        with pytest.raises(NotFound):
            client.artifact_download_url(run.id, "model/missing.bin")
        for bad, field in ((604_801, "expires_in_seconds"), (-1, "expires_in_seconds")):
            with pytest.raises(InvalidArgument) as refused:
                client.artifact_download_url(run.id, "model/model.bin", expires_in_seconds=bad)
            assert refused.value.field == field
        with pytest.raises(InvalidArgument) as refused:
            client.artifact_download_url(run.id, "../other/model.bin")
        assert refused.value.field == "path"

        # The URL is not pinned to the version announced: a file replaced behind the service's back (another
        # tool, keeping the old checksum's metadata) is caught by the client's check.
        key = f"{prefix}/0/{run.id}/artifacts/model/docs/notes.txt"
        head = raw_client().head_object(Bucket=bucket, Key=key)
        raw_client().put_object(Bucket=bucket, Key=key, Body=b"HELLO", Metadata=head["Metadata"])
        with pytest.raises(ChecksumMismatch):
            client.download(run.id, "model/docs/notes.txt", tmp_path / "tampered", direct=True)


def test_a_folder_store_has_no_direct_urls(spawn_server, tmp_path: Path):
    server = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", str(tmp_path / "artifacts"),
                          module="tracking_service")
    (tmp_path / "notes.txt").write_text("hello")
    with TrackingClient(server.address) as client:
        run = client.create_run(0)
        client.upload_file(run.id, tmp_path / "notes.txt")
        with pytest.raises(FailedPrecondition) as refused:
            client.artifact_download_url(run.id, "notes.txt")
        assert refused.value.reason == "DIRECT_URLS_UNSUPPORTED"
        with pytest.raises(FailedPrecondition):
            client.download(run.id, "", tmp_path / "out", direct=True)
        assert client.download(run.id, "", tmp_path / "out").joinpath("notes.txt").read_text() == "hello"


def test_the_gateway_serves_download_urls(s3_artifacts, tmp_path: Path):
    with gateway_suite(tmp_path, artifacts=s3_artifacts) as running:
        (tmp_path / "notes.txt").write_text("hello")
        with TrackingClient(running.tracking.address) as client:
            run = client.create_run(0)
            client.upload_file(run.id, tmp_path / "notes.txt")
        url = f"{running.gateway.url}/v1/runs/{run.id}/artifact-url"
        answer = httpx.get(url, params={"path": "notes.txt", "expires_in_seconds": 60}).json()
        assert answer["file"]["path"] == "notes.txt" and httpx.get(answer["url"]).text == "hello"
        refused = httpx.get(url, params={"path": "notes.txt", "expires_in_seconds": 10**6})
        assert refused.status_code == 400 and "expires_in_seconds" in refused.text


LARGE = 200 << 20


def test_a_large_upload_through_the_gateway_keeps_both_processes_memory_bounded(spawn_server, s3_artifacts,
                                                                               tmp_path: Path):
    """What MLflow's client does with a big file (one streamed PUT, one GET) through a gateway process and a
    tracking service process on S3: neither holds the file in memory (benchmarks/s3_artifacts.py --via gateway
    measures 2 GiB)."""
    bucket, _ = bucket_of(s3_artifacts)
    tracking = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", s3_artifacts, module="tracking_service")
    gateway = GatewayProcess(tracking.address)
    block = hashlib.sha256(b"block").digest() * (1 << 15)  # 1 MiB, not all one byte
    expected = hashlib.sha256(block * (LARGE // len(block))).hexdigest()
    try:
        with TrackingClient(tracking.address) as client, httpx.Client(base_url=gateway.url, timeout=300) as http:
            run = client.create_run(0)
            base = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.id}/artifacts"
            http.put(f"{base}/warm.txt", content=b"warm").raise_for_status()
            assert http.get(f"{base}/warm.txt").content == b"warm"
            before = reset_peak(gateway.proc.pid, tracking.proc.pid)
            http.put(f"{base}/big/large.bin", content=(block for _ in range(LARGE // len(block))),
                     headers={"content-length": str(LARGE)}).raise_for_status()
            received, size = hashlib.sha256(), 0
            with http.stream("GET", f"{base}/big/large.bin") as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    received.update(chunk)
                    size += len(chunk)
            growth = {pid: memory_mb(pid, "VmHWM") - rss for pid, rss in before.items()}
    finally:
        gateway.stop()
    assert (size, received.hexdigest()) == (LARGE, expected)
    assert [key for key in keys(bucket) if key.endswith("big/large.bin")], "not in the bucket"
    limit = (LARGE >> 20) / 2
    assert all(mib < limit for mib in growth.values()), (
        f"peak memory grew by {growth[gateway.proc.pid]:.0f} MiB in the gateway and {growth[tracking.proc.pid]:.0f} "
        f"MiB in the tracking service for a {LARGE >> 20} MiB file (limit {limit:.0f} MiB each)")


# -- the store's own behaviour ---------------------------------------------------------------------


def test_a_failed_multipart_upload_leaves_no_object_and_no_parts(s3_artifacts):
    bucket, _ = bucket_of(s3_artifacts)
    store = S3ArtifactStore(s3_artifacts)
    root = store.run_root(1, RUN, None)
    data = b"x" * (2 * MIN_PART_SIZE + 10)
    with pytest.raises(InvalidArgument) as error:
        put(store, root, "big.bin", data, sha256=hashlib.sha256(b"other").hexdigest())
    assert error.value.field == "header.sha256"
    with pytest.raises(InvalidArgument) as error:
        put(store, root, "big.bin", data, size=len(data) + 1)
    assert error.value.field == "header.size"
    assert keys(bucket) == []
    assert raw_client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert put(store, root, "big.bin", data).size == len(data)
    assert b"".join(store.open(root, "big.bin")[1]) == data
    # A size that is a whole number of parts, its last part completed by the middle of a chunk.
    exact = bytes(range(256)) * (2 * MIN_PART_SIZE // 256)
    assert put(store, root, "exact.bin", exact).size == 2 * MIN_PART_SIZE
    assert raw_client().head_object(Bucket=bucket, Key=urlsplit(root).path.lstrip("/") + "/exact.bin")["ETag"] \
        .endswith('-2"')
    assert b"".join(store.open(root, "exact.bin")[1]) == exact


def test_keys_written_by_other_tools_are_listed_only_when_they_are_valid_paths(s3_artifacts):
    bucket, _ = bucket_of(s3_artifacts)
    store = S3ArtifactStore(s3_artifacts)
    root = store.run_root(1, RUN, None)
    base = urlsplit(root).path.lstrip("/")
    s3 = raw_client()
    for key in ("plain.txt", "odd//name", "../up", "marker/", "dots/../x"):
        s3.put_object(Bucket=bucket, Key=f"{base}/{key}", Body=b"planted")
    # A folder ("marker/" and "dots/") is listed as long as its own name is clean; its odd content is not.
    assert store.list(root) == [FileInfo("dots", True, 0), FileInfo("marker", True, 0), FileInfo("odd", True, 0),
                                FileInfo("plain.txt", False, 7)]
    assert store.list(root, "marker") == [] and store.list(root, "odd") == []
    # No checksum in its metadata: computed from the content, as the local store does.
    info, chunks = store.open(root, "plain.txt")
    assert info == FileInfo("plain.txt", False, 7, hashlib.sha256(b"planted").hexdigest())
    assert b"".join(chunks) == b"planted"


def test_locations_in_other_buckets_or_beside_the_prefix_are_refused(s3_artifacts):
    bucket, prefix = bucket_of(s3_artifacts)
    store = S3ArtifactStore(s3_artifacts)
    assert store.default_experiment_location(4) == f"s3://{bucket}/{prefix}/4"
    assert store.check_location(f"s3://{bucket}/{prefix}/team/x", "artifact_location") == \
        f"s3://{bucket}/{prefix}/team/x"
    assert store.run_root(4, RUN, f"s3://{bucket}/{prefix}/team") == f"s3://{bucket}/{prefix}/team/{RUN}/artifacts"
    for uri in (f"s3://other-bucket/{prefix}/x", f"s3://{bucket}/{prefix}-other/x", f"s3://{bucket}/{prefix}",
                f"s3://{bucket}/{prefix}/", f"s3://{bucket}/x", f"s3://{bucket}/{prefix}/a/../../x",
                f"s3://{bucket}/{prefix}/%2e%2e/x", f"s3://{bucket}/{prefix}/x?versionId=1", f"file:///{prefix}/x"):
        with pytest.raises(InvalidArgument) as error:
            store.check_location(uri, "artifact_location")
        assert error.value.field == "artifact_location", uri
        assert not store.exists(uri)


def test_large_uploads_use_larger_parts_to_stay_under_the_part_limit():
    assert part_size_for(0) == part_size_for(MIN_PART_SIZE * 10_000) == MIN_PART_SIZE
    assert part_size_for(5 << 40) == 5 * (1 << 40) // 10_000 + 1  # S3's 5 TiB object in 10,000 parts


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["s3://", "s3://Upper_Case/x", "s3://ab/x", "s3://user:secret@bucket/x",
                                 "s3://bucket:9000/x", "s3://bucket/x?region=eu", "s3://bucket/../x",
                                 "s3://bucket//x", "s3://bucket/a/%2e%2e/b"])
def test_malformed_s3_urls_are_refused_naming_the_setting(url):
    with pytest.raises(InvalidArgument) as error:
        make_store(url)
    assert error.value.field == "artifacts"


def test_the_service_does_not_start_on_a_bucket_it_cannot_use(s3_artifacts, tmp_path: Path):
    for url, reason in ((f"s3://missing-{uuid.uuid4().hex[:12]}/x", "cannot be used: 404"),
                        ("s3://Not_A_Bucket", "is not a valid S3 bucket name")):
        done = subprocess.run([sys.executable, "-m", "tracking_service", "--port", "0", "--database-url",
                               f"sqlite:///{tmp_path / 't.db'}", "--artifacts", url],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "cannot start: artifacts:" in done.stderr and reason in done.stderr, done.stderr


def test_tuning_backup_says_it_leaves_an_s3_store_to_the_stores_own_tools(capsys, monkeypatch):
    import argparse

    from tuning_suite.cli.backup import _artifacts

    monkeypatch.delenv("TUNING_ARTIFACTS", raising=False)
    assert _artifacts(argparse.Namespace(artifacts="s3://bucket/tuning")) is None
    assert "s3://bucket/tuning is an S3 bucket, not copied" in capsys.readouterr().err
    monkeypatch.setenv("TUNING_ARTIFACTS", "s3://bucket/env")
    assert _artifacts(argparse.Namespace(artifacts="")) is None
    assert _artifacts(argparse.Namespace(artifacts="/srv/artifacts")) == Path("/srv/artifacts")
