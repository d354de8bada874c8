"""Hostile content through the real interfaces: refused or inert, never leaking or corrupting data.

Real servers on port 0: the tracking service (gRPC, SQLite or PostgreSQL), the gateway in front
of it (/v1 and MLflow's REST API), and the real ``mlflow`` client in a subprocess. It proves:

1. An artifact path that names anything outside the run's folder, in any encoding (the unit
   list ``HOSTILE`` plus targeted traversals to planted sentinel files), is refused by gRPC
   Upload/Download/ListArtifacts, the /v1 artifact routes and MLflow's artifact routes, with
   INVALID_ARGUMENT / a JSON 400 or 404 and never a 500; HTTP paths go out raw (no client-side
   normalisation) and the server is checked to have received them so. No sentinel appears in
   any answer, and no file or folder anywhere under the test's folder is created or changed.
2. A model-version source outside the store (file:, absolute, relative, ``..`` in runs:/ and
   mlflow-artifacts:, percent-encoded, http:) is refused through /v1 and the real MLflow client,
   and no version or model is left behind; a legitimate ``runs:/<run>/model`` still registers.
3. SQL-looking filter strings through every /v1 and MLflow search, on SQLite and PostgreSQL, are
   either a 400 naming the filter or an exact literal match; every table keeps every row.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import grpc
import httpcore
import httpx
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message

from gateway.server import GatewayOptions, RunningGateway
from gateway.server import serve as serve_gateway
from suggestion_service.server import serve as serve_suggestion
from tests.unit.test_artifact_paths import HOSTILE
from tracking_service.persistence import tables
from tracking_service.server import serve as serve_tracking
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import registry_service_pb2_grpc as rapi_grpc
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning_common.grpc_server import RunningServer, ServerOptions

MLFLOW = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
SENTINELS = {name: f"SENTINEL-{name}-{uuid.uuid4().hex}".encode() for name in ("top", "store", "other-run")}
LEGIT = "nested/dir/ok.txt"
LEGIT_BODY = b"legitimate content"


# --- the suite --------------------------------------------------------------------------------


class Recorder:
    """Wraps the gateway's ASGI app to record the raw path each request arrived with."""

    def __init__(self, app):
        self.app = app
        self.raw_paths: list[bytes] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.raw_paths.append(scope.get("raw_path") or b"")
        await self.app(scope, receive, send)


@dataclass
class Suite:
    top: Path  # everything the test may touch; the artifact store is top/store/artifacts
    tracking: RunningServer
    gateway: RunningGateway
    stubs: api_grpc.TrackingServiceStub
    registry: rapi_grpc.ModelRegistryServiceStub
    recorder: Recorder
    run: api.Run = None  # the run every hostile request is made on
    other: api.Run = None  # a run whose file must stay out of reach
    cleanups: list = field(default_factory=list)


def start(database_url: str, top: Path, db_folder: Path) -> Suite:
    """Tracking (on ``database_url``, artifacts under top/store/artifacts) and a gateway in front of it."""
    tracking = serve_tracking(database_url, str(top / "store" / "artifacts"), ServerOptions(port=0, grace_seconds=1))
    suggestion = serve_suggestion(f"sqlite:///{db_folder / 's.db'}", ServerOptions(port=0, grace_seconds=1))
    gateway = serve_gateway(GatewayOptions(suggestion_address=suggestion.address, tracking_address=tracking.address))
    recorder = Recorder(gateway.server.config.loaded_app)
    # Connections read the app when they open: every connection from now on goes through the recorder.
    gateway.server.config.loaded_app = recorder
    channel = grpc.insecure_channel(tracking.address)
    suite = Suite(top, tracking, gateway, api_grpc.TrackingServiceStub(channel),
                  rapi_grpc.ModelRegistryServiceStub(channel), recorder)
    suite.cleanups = [channel.close, gateway.stop, suggestion.stop, tracking.stop]
    return suite


def stop(suite: Suite) -> None:
    for cleanup in suite.cleanups:
        cleanup()


def upload(suite: Suite, run_id: str, path: str, data: bytes) -> None:
    header = api.ArtifactHeader(run_id=run_id, path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    suite.stubs.UploadArtifact(iter([api.UploadArtifactRequest(header=header), api.UploadArtifactRequest(chunk=data)]))


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    top = tmp_path_factory.mktemp("hostile")
    (top / "store").mkdir()
    (top / "secret.txt").write_bytes(SENTINELS["top"])
    (top / "store" / "secret.txt").write_bytes(SENTINELS["store"])
    db_folder = tmp_path_factory.mktemp("hostile-db")
    running = start(f"sqlite:///{db_folder / 't.db'}", top, db_folder)
    running.run = running.stubs.CreateRun(api.CreateRunRequest(experiment_id=0, name="victim")).run
    running.other = running.stubs.CreateRun(api.CreateRunRequest(experiment_id=0, name="other")).run
    upload(running, running.other.id, "private.txt", SENTINELS["other-run"])
    upload(running, running.run.id, "model/model.json", b'{"weights": [1, 2, 3]}')
    yield running
    stop(running)


@pytest.fixture
def http(suite: Suite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=suite.gateway.url, timeout=30) as client:
        yield client


@pytest.fixture
def raw() -> Iterator[httpcore.ConnectionPool]:
    """For requests whose path must go out as written (httpx resolves '..' in URLs)."""
    with httpcore.ConnectionPool() as pool:
        yield pool


def snapshot(top: Path) -> dict[str, tuple]:
    """Every file (size, sha256, mtime) and folder under ``top``, the artifact store included."""
    out: dict[str, tuple] = {}
    for path in sorted(top.rglob("*")):
        if path.is_dir():
            out[str(path.relative_to(top))] = ("dir",)
        else:
            stat = path.stat()
            out[str(path.relative_to(top))] = (stat.st_size, hashlib.sha256(path.read_bytes()).hexdigest(),
                                               stat.st_mtime_ns)
    return out


def assert_no_leak(content: bytes | str, where: str) -> None:
    data = content.encode() if isinstance(content, str) else content
    for name, sentinel in SENTINELS.items():
        assert sentinel not in data, f"{where}: leaked the {name} sentinel"


# --- 1. artifact paths ---------------------------------------------------------------------------

# From a run's root (top/store/artifacts/0/<run>/artifacts), four levels up is top/store and five is top:
# each of these names a planted sentinel (the test checks they do).
TRAVERSALS = ["../../../../secret.txt", "../../../../../secret.txt", "model/../../../../../secret.txt"]


def encodings(traversal: str) -> list[str]:
    """``traversal`` spelt every way a decoder or normaliser might turn back into it."""
    return [
        traversal,
        traversal.replace("..", "%2e%2e"),
        traversal.replace("..", "%2E%2E").replace("/", "%2F"),
        traversal.replace("..", ".%2e"),
        traversal.replace("..", "%252e%252e").replace("/", "%252f"),
        traversal.replace("..", "%25252e%25252e"),
        traversal.replace("/", "\\"),
        traversal.replace("/", "%5c"),
        traversal.replace("..", "%c0%ae%c0%ae"),
        traversal.replace("/", "%c0%af"),
        traversal.replace("..", "%e0%80%ae%e0%80%ae"),
        traversal.replace("..", "．．"),
        traversal.replace("..", "%ef%bc%8e%ef%bc%8e"),
        traversal.replace("/", "／"),
        traversal + "\x00.png",
        traversal + "%00.png",
    ]


def hostile_paths(suite: Suite) -> list[str]:
    into_other = f"../../{suite.other.id}/artifacts/private.txt"
    run_root = suite.top / "store" / "artifacts" / "0" / suite.run.id / "artifacts"
    for traversal in [*TRAVERSALS, into_other]:
        assert os.path.normpath(run_root / traversal) in {str(p) for p in suite.top.rglob("*.txt")}, traversal
    absolute = [str(suite.top / "secret.txt"), (suite.top / "secret.txt").as_uri(),
                str(suite.top / "store" / "artifacts" / "0" / suite.other.id / "artifacts" / "private.txt")]
    targeted = [case for traversal in [*TRAVERSALS, into_other] for case in encodings(traversal)]
    return list(dict.fromkeys([*HOSTILE, *targeted, *absolute]))


def as_typed(path: str) -> str:
    """The URL text a client would write for ``path``: its '%', '/', '\\' and '.' left as they are."""
    return quote(path, safe="/%\\.:~")


# Typed into a URL, these are ordinary paths: the server decodes a URL's path once ("a%2fb" is "a/b").
TYPED_ORDINARY = {"a%2fb"}


def url_forms(path: str) -> list[str]:
    forms = [as_exact(path)] if path in TYPED_ORDINARY else [as_typed(path), as_exact(path)]
    return list(dict.fromkeys(forms))


def as_exact(path: str) -> str:
    """The URL text that decodes to exactly ``path``."""
    return quote(path, safe="")


def send_raw(raw: httpcore.ConnectionPool, suite: Suite, method: str, raw_path: str, content: bytes = b"") -> \
        httpx.Response:
    """``raw_path`` sent byte for byte; checks the gateway received exactly that."""
    host, port = suite.gateway.address.rsplit(":", 1)
    url = httpcore.URL(scheme=b"http", host=host.encode(), port=int(port), target=raw_path.encode("ascii"))
    before = len(suite.recorder.raw_paths)
    answer = raw.request(method.encode(), url, headers=[(b"host", suite.gateway.address.encode())], content=content)
    received = suite.recorder.raw_paths[before:]
    assert received == [raw_path.encode("ascii")], (raw_path, received)
    return httpx.Response(answer.status, headers=answer.headers, content=answer.content)


def http_refused(response: httpx.Response, where: str, *, mlflow: bool = False, field: str | None = None) -> None:
    """A JSON 400/404 refusal (never a 5xx), in the API's error format, leaking no sentinel."""
    assert_no_leak(response.content, where)
    assert response.status_code in (400, 404), f"{where}: {response.status_code} {response.text[:300]}"
    body = response.json()
    if mlflow:
        assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND"), \
            (where, body)
        return
    error = body["error"]
    assert error["status"] in ("INVALID_ARGUMENT", "NOT_FOUND"), (where, error)
    if error["status"] == "INVALID_ARGUMENT" and field and error["reason"] != "BAD_URL_ENCODING":
        assert error.get("field") == field, (where, error)


def grpc_refused(call, request, field: str, where: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        answer = call(request)
        if not isinstance(answer, Message):
            for message in answer:  # a download streams: the error comes with the first read
                assert_no_leak(message.SerializeToString(), where)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (where, error.code(), error.details())
    assert error.details().startswith(f"{field}:"), (where, error.details())
    assert_no_leak(error.details(), where)


def test_artifact_traversal_over_grpc(suite: Suite):
    run = suite.run.id
    upload(suite, run, LEGIT, LEGIT_BODY)
    downloaded = list(suite.stubs.DownloadArtifact(api.DownloadArtifactRequest(run_id=run, path=LEGIT)))
    assert b"".join(m.chunk for m in downloaded) == LEGIT_BODY
    listed = suite.stubs.ListArtifacts(api.ListArtifactsRequest(run_id=run, path="nested/dir")).files
    assert [f.path for f in listed] == [LEGIT]

    before = snapshot(suite.top)
    cases = hostile_paths(suite)
    for path in cases:
        data = b"planted by " + path.encode("utf-8", "replace")
        header = api.ArtifactHeader(run_id=run, path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        grpc_refused(suite.stubs.UploadArtifact,
                     iter([api.UploadArtifactRequest(header=header), api.UploadArtifactRequest(chunk=data)]),
                     "header.path", f"upload {path!r}")
        grpc_refused(suite.stubs.DownloadArtifact, api.DownloadArtifactRequest(run_id=run, path=path), "path",
                     f"download {path!r}")
        if path:  # an empty path lists the run's root
            grpc_refused(suite.stubs.ListArtifacts, api.ListArtifactsRequest(run_id=run, path=path), "path",
                         f"list {path!r}")
    assert snapshot(suite.top) == before
    assert len(cases) > 100


def test_artifact_traversal_over_v1(suite: Suite, http: httpx.Client, raw: httpcore.ConnectionPool):
    run = suite.run.id
    base = f"/v1/runs/{run}/artifacts"
    # A legitimate nested path, with an escaped space and '%', goes all the way round.
    legit = "nested/sp ace/100%.txt"
    assert send_raw(raw, suite, "PUT", f"{base}/{as_typed(legit)}", content=LEGIT_BODY).status_code == 200
    got = send_raw(raw, suite, "GET", f"{base}/{as_exact(legit)}")
    assert got.status_code == 200 and got.content == LEGIT_BODY
    listed = http.get(base, params={"path": "nested/sp ace"}).json()["files"]
    assert [f["path"] for f in listed] == [legit]

    before = snapshot(suite.top)
    count = 0
    for path in hostile_paths(suite):
        for url_text in url_forms(path):
            where = f"/v1 {path!r} as {url_text!r}"
            http_refused(send_raw(raw, suite, "PUT", f"{base}/{url_text}", content=b"planted"), "PUT " + where,
                         field="header.path")
            http_refused(send_raw(raw, suite, "GET", f"{base}/{url_text}"), "GET " + where, field="path")
            count += 2
        if path:
            listing = http.get(base, params={"path": path})
            http_refused(listing, f"list {path!r}", field="path")
            count += 1
    assert snapshot(suite.top) == before
    assert count > 300


def test_artifact_traversal_over_mlflow(suite: Suite, http: httpx.Client, raw: httpcore.ConnectionPool):
    run = suite.run.id
    location = f"0/{run}/artifacts"
    assert send_raw(raw, suite, "PUT", f"{PROXY}/{location}/{as_typed(LEGIT)}", content=LEGIT_BODY).status_code == 200
    got = send_raw(raw, suite, "GET", f"{PROXY}/{location}/{as_typed(LEGIT)}")
    assert got.status_code == 200 and got.content == LEGIT_BODY
    assert http.get(PROXY, params={"path": f"{location}/nested/dir"}).json()["files"] == [
        {"path": "ok.txt", "is_dir": False, "file_size": len(LEGIT_BODY)}]
    listed = http.get(f"{MLFLOW}/artifacts/list", params={"run_id": run, "path": "nested/dir"}).json()["files"]
    assert [f["path"] for f in listed] == [LEGIT]
    own = {f["path"] for f in http.get(f"{MLFLOW}/artifacts/list", params={"run_id": run}).json()["files"]}
    model = http.post(f"{MLFLOW}/logged-models", json={"source_run_id": run, "name": "m"}).json()["model"]["info"]
    model_listing = f"{MLFLOW}/logged-models/{model['model_id']}/artifacts/directories"
    assert http.get(model_listing).json()["files"] == []

    before = snapshot(suite.top)
    count = 0
    for path in hostile_paths(suite):
        for url_text in url_forms(path):
            where = f"mlflow {path!r} as {url_text!r}"
            if path != "a/b//":  # MLflow's paths drop their end slashes: this one is "a/b"
                http_refused(send_raw(raw, suite, "PUT", f"{PROXY}/{location}/{url_text}", content=b"planted"),
                             "PUT " + where, mlflow=True)
            http_refused(send_raw(raw, suite, "GET", f"{PROXY}/{location}/{url_text}"), "GET " + where,
                         mlflow=True)
            count += 2
        # Listings: refused, or (for a path MLflow's rules read as one inside the run) nothing but the run's own.
        for url, params, allowed in ((PROXY, {"path": f"{location}/{path}"}, own),
                                     (f"{MLFLOW}/artifacts/list", {"run_id": run, "path": path}, own),
                                     (model_listing, {"artifact_directory_path": path}, set())):
            response = http.get(url, params=params)
            if response.status_code == 200:
                names = {f["path"] for f in response.json().get("files", [])}
                assert names <= allowed, (path, names)  # MLflow's listings drop end slashes: "/etc" is "etc"
                assert_no_leak(response.content, f"list {path!r}")
            else:
                http_refused(response, f"list {url} {path!r}", mlflow=True)
            count += 1
    # The logged model's id is a path too.
    for model_id in ("m-../../etc", "..", "m-%2e%2e%2f%2e%2e", f"m-{run}/../../../..", "m-\x00"):
        http_refused(http.get(f"{MLFLOW}/logged-models/{quote(model_id, safe='')}/artifacts/directories"),
                     f"logged model {model_id!r}", mlflow=True)
        count += 1
    assert snapshot(suite.top) == before
    assert count > 300


def test_a_refused_large_upload_is_a_refusal_every_time(suite: Suite, raw: httpcore.ConnectionPool):
    """Regression: the service refuses the header while the gateway still writes chunks, and grpc.aio
    used to turn that into its own INTERNAL ("Internal error from Core", a 500) a few times in a hundred."""
    body = b"x" * (8 * 1024 * 1024)
    before = snapshot(suite.top)
    for _ in range(30):
        http_refused(send_raw(raw, suite, "PUT", f"/v1/runs/{suite.run.id}/artifacts/%2e%2e/x", content=body),
                     "large /v1 upload", field="header.path")
        http_refused(send_raw(raw, suite, "PUT", f"{PROXY}/0/{suite.run.id}/artifacts/%2e%2e/x", content=body),
                     "large MLflow upload", mlflow=True)
    assert snapshot(suite.top) == before


# --- 2. model-version sources ----------------------------------------------------------------------


def hostile_sources(suite: Suite) -> list[str]:
    run, other = suite.run.id, suite.other.id
    store = suite.top / "store" / "artifacts"
    return [
        "file:///etc/passwd",
        "file:///etc",
        "/etc",
        "/etc/passwd",
        "../..",
        "../../secret.txt",
        (suite.top / "secret.txt").as_uri(),
        store.as_uri(),
        (store / "..").as_uri(),
        f"file://{store}/0/{run}/artifacts/../../{other}/artifacts",
        f"file://{store}/0/{run}/artifacts/%2e%2e/%2e%2e/{other}/artifacts",
        f"file://evil.example{store}/0/{run}/artifacts/model",
        f"runs:/{other}/../../..",
        f"runs:/{run}/../../{other}/artifacts",
        f"runs:/{run}/model/../../../../secret.txt",
        f"runs:/{run}/%2e%2e/%2e%2e/%2e%2e",
        f"runs:/{run}/%252e%252e/x",
        f"runs:/{run}/..%2f..%2fsecret.txt",
        f"runs:/{run}/．．/．．",
        f"runs:/{run}/model\\..\\..\\x",
        f"runs:/{run}/model\x00",
        "runs:/../../etc/passwd",
        "mlflow-artifacts:/../..",
        f"mlflow-artifacts:/0/{run}/artifacts/../../{other}/artifacts",
        f"mlflow-artifacts:/0/{run}/artifacts/%2e%2e/%2e%2e",
        "models:/m-../../etc/passwd",
        "models:/../../etc/1",
        f"models:/m-{run}/../../../..",
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/model",
        "s3://bucket/../../model",
    ]


def test_model_version_sources_over_v1(suite: Suite, http: httpx.Client):
    name = "hostile-v1"
    before = snapshot(suite.top)
    for source in hostile_sources(suite):
        response = http.post(f"/v1/registered-models/{name}/versions", json={"source": source})
        assert_no_leak(response.content, source)
        assert response.status_code == 400, (source, response.status_code, response.text)
        error = response.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and error["field"] == "source", (source, error)
    assert snapshot(suite.top) == before
    # Nothing was left behind, not even the model the first version would have created.
    assert http.get("/v1/model-versions", params={"filter": f"name = '{name}'"}).json()["model_versions"] == []
    assert http.get(f"/v1/registered-models/{name}").status_code == 404
    created = http.post(f"/v1/registered-models/{name}/versions", json={"source": f"runs:/{suite.run.id}/model"})
    assert created.status_code == 200, created.text
    assert created.json()["model_version"]["version"] == "1"


MLFLOW_SCRIPT = """
    import json, os, sys

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=os.environ["GATEWAY"])
    name, sources = os.environ["MODEL"], json.loads(sys.stdin.read())
    client.create_registered_model(name)
    outcomes = []
    for source in sources:
        try:
            version = client.create_model_version(name, source)
            outcomes.append(["created", version.version])
        except MlflowException as error:
            outcomes.append([error.error_code, error.message])
    found = [v.version for v in client.search_model_versions(f"name = '{name}'")]
    legit = client.create_model_version(name, os.environ["LEGIT"]).version
    print(json.dumps({"outcomes": outcomes, "found": found, "legit": legit}))
"""


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="needs mlflow-skinny (the dev extra)")
def test_model_version_sources_through_the_mlflow_client(suite: Suite, tmp_path: Path):
    sources = hostile_sources(suite)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env.update({"HOME": str(tmp_path), "GATEWAY": suite.gateway.url, "MODEL": "hostile-mlflow",
                "LEGIT": f"runs:/{suite.run.id}/model", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                "GIT_PYTHON_REFRESH": "quiet", "PYTHONWARNINGS": "ignore"})
    before = snapshot(suite.top)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MLFLOW_SCRIPT)], input=json.dumps(sources),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for source, (code, message) in zip(sources, result["outcomes"]):
        assert_no_leak(message, source)
        # mlflow-artifacts: paths that are not <experiment>/<run>/artifacts, and models:/ names that are no
        # model's, name nothing this server has.
        allowed = ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST") \
            if source.startswith(("mlflow-artifacts:", "models:")) else ("INVALID_PARAMETER_VALUE",)
        assert code in allowed, (source, code, message)
    assert result["found"] == [] and result["legit"] == "1"
    # The legitimate version's files; nothing else under the folder changed.
    assert snapshot(suite.top) == before


# --- 3. SQL-looking filters ------------------------------------------------------------------------

NAMES = ["it's", "100%", "100 percent", "a_b", "axb", 'say "hi"', "back\\slash", "plain"]
INVALID = "invalid"

# {f} is the name attribute of the entity searched; expected: the names matched, or INVALID.
FILTERS: list[tuple[str, object]] = [
    ("{f} = '' OR '1'='1'", INVALID),
    ("{f} = 'x' OR 1=1", INVALID),
    ("{f} = ''' OR ''1''=''1'", set()),
    ("{f} = 'x'; DROP TABLE runs; --", INVALID),
    ("{f} = 'x''; DROP TABLE runs; --'", set()),
    ("{f} = 'x'); DROP TABLE experiments; --", INVALID),
    ("{f} = 'a' UNION SELECT name FROM sqlite_master", INVALID),
    ("{f} = 1 UNION SELECT 1", INVALID),
    ("{f} = 'plain' -- ", INVALID),
    ("{f} = 'plain' /* */", INVALID),
    ("{f} = char(39)", INVALID),
    ("{f} = plain", INVALID),
    ("{f} = 'unterminated", INVALID),
    ("{f} = 'it''s'", {"it's"}),
    ("{f} = 'it\\'s'", {"it's"}),
    ('{f} = "it\'s"', {"it's"}),
    ("{f} = 'say \"hi\"'", {'say "hi"'}),
    ("{f} = 'back\\\\slash'", {"back\\slash"}),
    ("{f} = 'back\\slash'", {"back\\slash"}),  # a backslash escapes only a quote or a backslash
    ("{f} = '%'", set()),
    ("{f} = 'a_b'", {"a_b"}),
    ("{f} LIKE 'a_b'", {"a_b", "axb"}),
    ("{f} LIKE 'a\\_b'", {"a_b"}),
    ("{f} LIKE '100%'", {"100%", "100 percent"}),
    ("{f} LIKE '100\\%'", {"100%"}),
    ("{f} LIKE '%''%'", {"it's"}),
    ("{f} LIKE '%'' OR ''1''=''1'", set()),
    ("{f} IN ('plain', 'x''); DELETE FROM runs; --')", {"plain"}),
]


@dataclass(frozen=True)
class Search:
    label: str
    method: str
    path: str
    attribute: str
    key: str  # the list in the answer
    mlflow: bool = False

    def call(self, http: httpx.Client, text: str, experiment_id: str) -> httpx.Response:
        if self.method == "GET":
            return http.get(self.path, params={"filter": text})
        body = {"filter": text}
        if "runs" in self.path:
            body["experiment_ids"] = [experiment_id]
        return http.post(self.path, json=body)

    def names(self, response: httpx.Response) -> set[str]:
        items = response.json().get(self.key, [])
        if self.key == "runs" and self.mlflow:
            return {item["info"]["run_name"] for item in items}
        return {item["name"] for item in items}


SEARCHES = [
    Search("/v1 runs", "POST", "/v1/runs:search", "run_name", "runs"),
    Search("/v1 experiments", "GET", "/v1/experiments", "name", "experiments"),
    Search("/v1 models", "GET", "/v1/registered-models", "name", "registered_models"),
    Search("/v1 versions", "GET", "/v1/model-versions", "name", "model_versions"),
    Search("mlflow runs", "POST", f"{MLFLOW}/runs/search", "run_name", "runs", True),
    Search("mlflow experiments", "POST", f"{MLFLOW}/experiments/search", "name", "experiments", True),
    Search("mlflow models", "GET", f"{MLFLOW}/registered-models/search", "name", "registered_models", True),
    Search("mlflow versions", "GET", f"{MLFLOW}/model-versions/search", "name", "model_versions", True),
]


def row_counts(database_url: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    for table in tables.metadata.sorted_tables}
    finally:
        engine.dispose()


def test_sql_looking_filters_are_refused_or_literal(database_url: str, tmp_path: Path):
    top = tmp_path / "top"
    (top / "store").mkdir(parents=True)
    suite = start(database_url, top, tmp_path)
    try:
        experiment = suite.stubs.CreateExperiment(api.CreateExperimentRequest(name="sql-exp")).experiment
        source_run = suite.stubs.CreateRun(api.CreateRunRequest(experiment_id=experiment.id, name="plain")).run
        upload(suite, source_run.id, "model/model.json", b"{}")
        for name in NAMES:
            if name != "plain":
                suite.stubs.CreateRun(api.CreateRunRequest(experiment_id=experiment.id, name=name))
            suite.stubs.CreateExperiment(api.CreateExperimentRequest(name=name))
            suite.registry.CreateModelVersion(rapi.CreateModelVersionRequest(
                name=name, source=f"runs:/{source_run.id}/model"))
        counts = row_counts(database_url)
        assert counts["runs"] == len(NAMES) and counts["experiments"] == len(NAMES) + 2, counts

        problems = []
        with httpx.Client(base_url=suite.gateway.url, timeout=30) as http:
            for search in SEARCHES:
                for template, expected in FILTERS:
                    text = template.format(f=search.attribute)
                    response = search.call(http, text, str(experiment.id))
                    if expected == INVALID:
                        ok = response.status_code == 400 and refusal_names_filter(response, search.mlflow)
                    else:
                        ok = response.status_code == 200 and search.names(response) == expected
                    if not ok:
                        problems.append(f"{search.label}: {text!r} -> {response.status_code} {response.text[:200]}")
        assert not problems, "\n".join(problems)
        assert row_counts(database_url) == counts
    finally:
        stop(suite)


def refusal_names_filter(response: httpx.Response, mlflow: bool) -> bool:
    body = response.json()
    if mlflow:
        return body.get("error_code") == "INVALID_PARAMETER_VALUE" and "filter" in body.get("message", "")
    return body["error"]["status"] == "INVALID_ARGUMENT" and body["error"]["field"] == "filter"
