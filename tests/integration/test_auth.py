"""Access control against real servers (port 0): every RPC of the three services with no token,
a wrong token, a read token and a write token; probes without a token; servers without tokens
as before; tokens never in the server log; the Python clients and a worker sending TUNING_TOKEN."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from suggestion_service.server import serve as serve_suggestion
from tests.conftest import ROOT
from tracking_service.server import serve as serve_tracking
from trial_worker import Float, SuggestionClient
from trial_worker.local_suite import start_service
from trial_worker.tracking import TrackingClient, metric
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.suggestion.v1 import suggestion_service_pb2
from tuning.tracking.v1 import registry_service_pb2, tracking_service_pb2
from tuning_common.auth import TokenStore, is_read_only
from tuning_common.errors import NotFound, PermissionDenied, Unauthenticated
from tuning_common.grpc_errors import error_from_rpc
from tuning_common.grpc_server import RunningServer, ServerOptions

WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
WRONG_TOKEN = "write-token-0123456789abcdeX"  # one character off
TOKENS = f"write {WRITE_TOKEN} ci\nread {READ_TOKEN} dashboard\n"

SUGGESTION = suggestion_service_pb2.DESCRIPTOR.services_by_name["SuggestionService"]
TRACKING = tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"]
REGISTRY = registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"]
METHODS = [(service, method) for service in (SUGGESTION, TRACKING, REGISTRY) for method in service.methods]
AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TUNING_TOKEN", "TUNING_TOKENS", "TUNING_TOKENS_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    """A suggestion and a tracking server, both with the tokens above."""
    tmp = tmp_path_factory.mktemp("auth")
    options = ServerOptions(port=0, grace_seconds=1, tokens=TokenStore.parse(TOKENS, "test"))
    suggestion = serve_suggestion(f"sqlite:///{tmp / 'suggestion.db'}", options)
    tracking = serve_tracking(f"sqlite:///{tmp / 'tracking.db'}", str(tmp / "artifacts"), options)
    yield {SUGGESTION.full_name: suggestion, TRACKING.full_name: tracking, REGISTRY.full_name: tracking}
    suggestion.stop()
    tracking.stop()


@pytest.fixture(scope="module")
def channels(servers: dict[str, RunningServer]) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: grpc.insecure_channel(running.address) for name, running in servers.items()}
    yield opened
    for channel in opened.values():
        channel.close()


def call(channel: grpc.Channel, service, method, token: str | None) -> grpc.RpcError | None:
    """Calls ``method`` with an empty request (a one-message stream for client streams) and the
    token; returns the error, or None when it succeeded."""
    path = f"/{service.full_name}/{method.name}"
    request_class, response_class = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
    codec = {"request_serializer": request_class.SerializeToString, "response_deserializer": response_class.FromString}
    metadata = [] if token is None else [("authorization", f"Bearer {token}")]
    request = request_class()
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **codec)(iter([request]), metadata=metadata, timeout=10))
        elif method.client_streaming:
            channel.stream_unary(path, **codec)(iter([request]), metadata=metadata, timeout=10)
        elif method.server_streaming:
            list(channel.unary_stream(path, **codec)(request, metadata=metadata, timeout=10))
        else:
            channel.unary_unary(path, **codec)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error
    return None


def assert_refused(error: grpc.RpcError | None, code: grpc.StatusCode, reason: str, message: str) -> None:
    assert error is not None, "the call was not refused"
    assert error.code() is code, (error.code(), error.details())
    assert error.details() == message
    rebuilt = error_from_rpc(error)
    assert rebuilt.reason == reason
    for token in (WRITE_TOKEN, READ_TOKEN, WRONG_TOKEN):
        assert token not in str(error.details()) and token not in repr(rebuilt.metadata)


def method_id(case) -> str:
    service, method = case
    return f"{service.name}.{method.name}"


@pytest.mark.parametrize("case", METHODS, ids=method_id)
def test_no_token_is_unauthenticated(channels, case):
    service, method = case
    error = call(channels[service.full_name], service, method, None)
    assert_refused(error, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING", "missing or invalid bearer token")


@pytest.mark.parametrize("case", METHODS, ids=method_id)
def test_a_wrong_token_is_unauthenticated(channels, case):
    service, method = case
    error = call(channels[service.full_name], service, method, WRONG_TOKEN)
    assert_refused(error, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID", "missing or invalid bearer token")


@pytest.mark.parametrize("case", METHODS, ids=method_id)
def test_a_read_token_reads_and_may_not_write(channels, case):
    service, method = case
    error = call(channels[service.full_name], service, method, READ_TOKEN)
    if is_read_only(f"/{service.full_name}/{method.name}"):
        assert error is None or error.code() not in AUTH_CODES, (error.code(), error.details())
    else:
        assert_refused(error, grpc.StatusCode.PERMISSION_DENIED, "READ_ONLY_TOKEN", "this token may only read")


@pytest.mark.parametrize("case", METHODS, ids=method_id)
def test_a_write_token_may_call_anything(channels, case):
    service, method = case
    error = call(channels[service.full_name], service, method, WRITE_TOKEN)
    assert error is None or error.code() not in AUTH_CODES, (error.code(), error.details())


def test_a_malformed_or_repeated_header_is_unauthenticated(servers):
    with grpc.insecure_channel(servers[SUGGESTION.full_name].address) as channel:
        rpc = channel.unary_unary(f"/{SUGGESTION.full_name}/ListStudies",
                                  request_serializer=suggestion_service_pb2.ListStudiesRequest.SerializeToString,
                                  response_deserializer=suggestion_service_pb2.ListStudiesResponse.FromString)
        request = suggestion_service_pb2.ListStudiesRequest()
        for metadata in ([("authorization", f"Basic {WRITE_TOKEN}")], [("authorization", WRITE_TOKEN)],
                         [("authorization", f"Bearer {READ_TOKEN}"), ("authorization", f"Bearer {WRITE_TOKEN}")]):
            with pytest.raises(grpc.RpcError) as caught:
                rpc(request, metadata=metadata, timeout=10)
            assert_refused(caught.value, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID",
                           "missing or invalid bearer token")
        assert rpc(request, metadata=[("authorization", f"bearer {READ_TOKEN}")], timeout=10) is not None


@pytest.mark.parametrize("rpc", ["SuggestionService.GetStudy", "TrackingService.UploadArtifact",
                                 "TrackingService.DownloadArtifact"])
def test_a_refusal_wins_over_undecodable_bytes(channels, rpc):
    """Bytes that are not the request message (INVALID_ARGUMENT with a token, see
    test_fuzz_grpc.py) are still refused first without one: the handler never reads them."""
    service_name, _, method_name = rpc.partition(".")
    service = next(s for s in (SUGGESTION, TRACKING) if s.name == service_name)
    method = service.methods_by_name[method_name]
    kind = ("stream" if method.client_streaming else "unary") + "_" + \
        ("stream" if method.server_streaming else "unary")
    stub = getattr(channels[service.full_name], kind)(f"/{service.full_name}/{method.name}",
                                                      request_serializer=None, response_deserializer=None)
    garbage = b"\x0a\x05ab"
    for token, code, reason in ((None, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
                                (WRONG_TOKEN, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
                                (WRITE_TOKEN, grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")):
        metadata = [] if token is None else [("authorization", f"Bearer {token}")]
        with pytest.raises(grpc.RpcError) as caught:
            answer = stub(iter([garbage]) if method.client_streaming else garbage, metadata=metadata, timeout=10)
            if method.server_streaming:
                list(answer)
        assert caught.value.code() is code, (token is None, caught.value.code(), caught.value.details())
        assert error_from_rpc(caught.value).reason == reason


@pytest.mark.parametrize("service", [SUGGESTION, TRACKING])
def test_health_and_reflection_need_no_token(servers, service):
    with grpc.insecure_channel(servers[service.full_name].address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", service.full_name):
            response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [response] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=10)
        assert service.full_name in {s.name for s in response.list_services_response.service}


def test_without_tokens_every_call_is_allowed_as_before(server: RunningServer, tmp_path: Path):
    with grpc.insecure_channel(server.address) as channel:
        for token in (None, WRONG_TOKEN):
            for method in SUGGESTION.methods:
                error = call(channel, SUGGESTION, method, token)
                assert error is None or error.code() not in AUTH_CODES, (method.name, error.code())
    with SuggestionClient(server.address) as client, SuggestionClient(server.address, token=READ_TOKEN) as other:
        client.create_study("open", [Float("x", 0, 1)], objectives={"loss": "minimize"})
        assert other.get_study("open").name == "open"
    tracking = serve_tracking(f"sqlite:///{tmp_path / 'tracking.db'}", str(tmp_path / "artifacts"),
                              ServerOptions(port=0, grace_seconds=1))
    try:
        with grpc.insecure_channel(tracking.address) as channel:
            for service in (TRACKING, REGISTRY):
                for method in service.methods:
                    error = call(channel, service, method, None)
                    assert error is None or error.code() not in AUTH_CODES, (method.name, error.code())
    finally:
        tracking.stop()


# --- the clients ------------------------------------------------------------------------------


def test_suggestion_client_with_a_token(servers):
    address = servers[SUGGESTION.full_name].address
    with SuggestionClient(address, token=WRITE_TOKEN, retries=1, backoff=0.01) as writer:
        study = writer.create_study("with-token", [Float("x", -1, 1)], objectives={"loss": "minimize"}, max_trials=2)
        while (trial := study.ask()) is not None:
            study.tell(trial, trial.params["x"] ** 2)
        assert [t.state for t in study.trials()] == [spb.TRIAL_STATE_COMPLETED] * 2
    with SuggestionClient(address, token=READ_TOKEN, retries=1, backoff=0.01) as reader:
        study = reader.get_study("with-token")
        assert len(study.best_trials()) == 1 and "with-token" in {s.name for s in reader.list_studies()}
        with pytest.raises(PermissionDenied) as caught:
            study.ask()
        assert caught.value.reason == "READ_ONLY_TOKEN"
        with pytest.raises(PermissionDenied):
            reader.delete_study("with-token")
    with SuggestionClient(address, retries=1, backoff=0.01) as anonymous:
        with pytest.raises(Unauthenticated) as caught:
            anonymous.get_study("with-token")
        assert caught.value.reason == "TOKEN_MISSING"
    with SuggestionClient(address, token=WRONG_TOKEN, retries=1, backoff=0.01) as wrong:
        with pytest.raises(Unauthenticated) as caught:
            wrong.get_study("with-token")
        assert caught.value.reason == "TOKEN_INVALID"


def test_tracking_client_with_a_token_streams_artifacts(servers, tmp_path: Path):
    address = servers[TRACKING.full_name].address
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks each way
    with TrackingClient(address, token=WRITE_TOKEN, retries=1, backoff=0.01) as writer:
        experiment = writer.create_experiment("auth")
        run = writer.create_run(experiment.id, name="r")
        writer.log_batch(run.id, params={"a": "1"}, metrics=[metric("loss", 0.5, step=1)])
        info = writer.upload_file(run.id, source, "models")
        assert info.size == source.stat().st_size
        writer.create_registered_model("auth-model")
        downloaded = writer.download(run.id, "models/model.bin", tmp_path / "w")
        assert downloaded.read_bytes() == source.read_bytes()
    with TrackingClient(address, token=READ_TOKEN, retries=1, backoff=0.01) as reader:
        downloaded = reader.download(run.id, "models", tmp_path / "r")
        assert (downloaded / "model.bin").read_bytes() == source.read_bytes()
        assert [m.value for m in reader.get_metric_history(run.id, "loss")] == [0.5]
        assert reader.get_registered_model("auth-model").name == "auth-model"
        with pytest.raises(PermissionDenied):
            reader.upload_file(run.id, source, "again")
        with pytest.raises(PermissionDenied):
            reader.create_registered_model("other")
    with TrackingClient(address, retries=1, backoff=0.01) as anonymous:
        with pytest.raises(Unauthenticated):
            anonymous.upload_file(run.id, source, "again")
        with pytest.raises(Unauthenticated):
            anonymous.download(run.id, "models/model.bin", tmp_path / "a")
        with pytest.raises(Unauthenticated):
            anonymous.get_run(run.id)
    with TrackingClient(address, token=READ_TOKEN) as reader:
        assert [f.path for f in reader.list_artifacts(run.id, "models")] == ["models/model.bin"]
        with pytest.raises(NotFound):
            reader.list_artifacts(run.id, "again")


def test_clients_send_tuning_token(servers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("TUNING_TOKEN", WRITE_TOKEN)
    with SuggestionClient(servers[SUGGESTION.full_name].address, retries=1) as client:
        client.create_study("from-env", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    source = tmp_path / "f.txt"
    source.write_text("hello")
    with TrackingClient(servers[TRACKING.full_name].address, retries=1) as client:
        run = client.create_run(name="from-env")
        client.upload_file(run.id, source)
        assert client.download(run.id, "f.txt", tmp_path / "d").read_text() == "hello"
    # An explicit token wins over the variable; "" sends none.
    with SuggestionClient(servers[SUGGESTION.full_name].address, token=READ_TOKEN, retries=1) as client:
        with pytest.raises(PermissionDenied):
            client.delete_study("from-env")
    with SuggestionClient(servers[SUGGESTION.full_name].address, token="", retries=1) as client:
        with pytest.raises(Unauthenticated):
            client.get_study("from-env")


def test_a_worker_runs_a_study_with_tuning_token(servers):
    suggestion, tracking = servers[SUGGESTION.full_name].address, servers[TRACKING.full_name].address
    with SuggestionClient(suggestion, token=WRITE_TOKEN) as client:
        client.create_study("worker-auth", [Float("x", -3, 3)], objectives={"loss": "minimize"}, max_trials=3, seed=1)
    command = [sys.executable, "-m", "trial_worker", "--study", "worker-auth", "--suggestion-address", suggestion,
               "--tracking-address", tracking, "--train", "tests.e2e.worker_functions:quadratic",
               "--reconnect-seconds", "2"]
    env = {**os.environ, "TUNING_LOG_LEVEL": "WARNING"}
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "missing or invalid bearer token" in refused.stdout + refused.stderr
    done = subprocess.run(command, cwd=ROOT, env={**env, "TUNING_TOKEN": WRITE_TOKEN}, capture_output=True,
                          text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "3 completed" in output and WRITE_TOKEN not in output
    with SuggestionClient(suggestion, token=READ_TOKEN) as client:
        trials = list(client.get_study("worker-auth").trials())
    assert [t.state for t in trials] == [spb.TRIAL_STATE_COMPLETED] * 3 and all(t.run_id for t in trials)


# --- processes: the flag, the variables, the log ----------------------------------------------


def test_the_server_log_never_holds_a_token(tmp_path: Path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(TOKENS)
    debug = {"TUNING_LOG_LEVEL": "DEBUG"}
    logs = tmp_path / "logs"
    # As `tuning up` runs them: the log (stderr) in a file, the "listening on" line on stdout.
    suggestion = start_service("suggestion", "suggestion_service", ["--database-url", f"sqlite:///{tmp_path / 's.db'}"],
                               logs / "suggestion.log", env={**debug, "TUNING_TOKENS": TOKENS.replace("\n", ",")})
    tracking = start_service("tracking", "tracking_service",
                             ["--database-url", f"sqlite:///{tmp_path / 't.db'}", "--artifacts",
                              str(tmp_path / "artifacts"), "--tokens-file", str(tokens_file)],
                             logs / "tracking.log", env=debug)
    try:
        source = tmp_path / "f.txt"
        source.write_text("hello")
        for token in (None, WRONG_TOKEN, READ_TOKEN):
            with SuggestionClient(suggestion.address, token=token or "", retries=0) as client:
                with pytest.raises((Unauthenticated, PermissionDenied)):
                    client.create_study("logged", [Float("x", 0, 1)], objectives={"loss": "minimize"})
            with TrackingClient(tracking.address, token=token or "", retries=0) as client:
                with pytest.raises((Unauthenticated, PermissionDenied)):
                    client.create_run(name="logged")
        with SuggestionClient(suggestion.address, token=WRITE_TOKEN) as client:
            study = client.create_study("logged", [Float("x", 0, 1)], objectives={"loss": "minimize"}, max_trials=1)
            study.tell(study.ask(), 0.5)
        with TrackingClient(tracking.address, token=WRITE_TOKEN) as client:
            run = client.create_run(name="logged")
            client.upload_file(run.id, source)
        with TrackingClient(tracking.address, token=READ_TOKEN) as client:
            client.download(run.id, "f.txt", tmp_path / "d")
    finally:
        assert suggestion.stop() == 0 and tracking.stop() == 0
    for name in ("suggestion", "tracking"):
        output = (logs / f"{name}.log").read_text()
        assert "DEBUG" in output and "access control on: TokenStore(1 read, 1 write)" in output, output
        assert "refused" in output and "TOKEN_MISSING" in output and "READ_ONLY_TOKEN" in output, output
        assert "by ci (write token)" in output, output
        for token in (WRITE_TOKEN, READ_TOKEN, WRONG_TOKEN):
            assert token not in output
    assert "by dashboard (read token)" in (logs / "tracking.log").read_text()


def test_a_bad_tokens_file_stops_the_start_without_echoing_it(tmp_path: Path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"write {WRITE_TOKEN}\nadmin {READ_TOKEN}\n")
    for module, extra in (("suggestion_service", []), ("tracking_service", ["--artifacts", str(tmp_path / "a")])):
        result = subprocess.run(
            [sys.executable, "-m", module, "--port", "0", "--database-url", f"sqlite:///{tmp_path / module}.db",
             "--tokens-file", str(tokens_file), *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("TUNING_TOKEN")})
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"cannot start: tokens file {tokens_file}: line 2: the role must be 'read' or 'write'" in result.stderr
        assert READ_TOKEN not in result.stdout + result.stderr and WRITE_TOKEN not in result.stdout + result.stderr
