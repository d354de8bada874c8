"""Property-based fuzzing of every RPC of the three gRPC services (issue 9, bad input).

Request messages are generated from the services' descriptors, field by field (so a new
RPC or field is fuzzed without touching this file), and sent to real servers on port 0 on
temporary SQLite files. Whatever the input, the answer is OK or a deliberate error code:
never INTERNAL or UNKNOWN (DESIGN.md: those must not come from bad input). Afterwards the
servers still answer health checks, and a known study and run, which the generated
requests never name (their names and ids are excluded from the strategies), are unchanged.

Bytes that are not a protobuf at all get INVALID_ARGUMENT (reason MALFORMED_REQUEST) from
every RPC, streaming ones included, rather than grpcio's UNKNOWN.

Runs are reproducible (``derandomize=True``: a seed derived from the test) and small
enough for CI; ``FUZZ_EXAMPLES`` raises the count per RPC for a longer local hunt.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, message_factory, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suggestion_service.server import serve as serve_suggestion
from tracking_service.server import serve as serve_tracking
from tuning.suggestion.v1 import study_pb2
from tuning.suggestion.v1 import suggestion_service_pb2 as sapi
from tuning.suggestion.v1 import suggestion_service_pb2_grpc as sgrpc
from tuning.tracking.v1 import registry_service_pb2, tracking_pb2
from tuning.tracking.v1 import tracking_service_pb2 as tapi
from tuning.tracking.v1 import tracking_service_pb2_grpc as tgrpc
from tuning_common.errors import InvalidArgument
from tuning_common.grpc_errors import error_from_rpc
from tuning_common.grpc_server import DEFAULT_MAX_MESSAGE_BYTES, RunningServer, ServerOptions
from tuning_common.webhooks import SenderSettings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
CALL_TIMEOUT = 10.0

SERVICES = {
    "suggestion": [sapi.DESCRIPTOR.services_by_name["SuggestionService"]],
    "tracking": [tapi.DESCRIPTOR.services_by_name["TrackingService"],
                 registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"]],
}
METHODS = [(server, method) for server, services in SERVICES.items()
           for service in services for method in service.methods]

# The known objects' names; generated strings and integers never equal them (see `_strings`).
KNOWN_STUDY = "fuzz-known-study"
KNOWN_EXPERIMENT = "fuzz-known-experiment"
KNOWN_STRINGS: set[str] = {KNOWN_STUDY, KNOWN_EXPERIMENT}
KNOWN_INTS: set[int] = set()  # trial and experiment ids, filled in by the fixture before any fuzzing
KNOWN_IDS: dict[str, str] = {}  # "run": the known run's id, filled in by the fixture

SPECIAL_STRINGS = [
    "", " ", "\x00", "\x00abc", "\t\n\r", "\x1b[31m", "..", "../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
    "/absolute/path", "a/../../b", "C:\\Windows\\system32", "' OR 1=1 --", "\"; DROP TABLE studies; --",
    "%", "_", "*", "\\", "NaN", "Infinity", "-1", "0", "1e309", "null", "{}", "[]", "名前", "🙂" * 10,
    "\u202e\u0301", "\ufeff", "a" * 129, "a" * 256, "x" * 1025, "metrics.loss > 0", "attribute.status = 'X'",
    "tags.`a`b` = 'c'", "name LIKE '%'", "params.x IN ('a', 'b')",
]


def _strings() -> st.SearchStrategy[str]:
    huge = st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "é", "\x00", "/", "🙂", "'"]),
                     st.integers(1_000, 100_000))
    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
    return st.one_of(st.sampled_from(SPECIAL_STRINGS), text, huge).filter(lambda s: s not in KNOWN_STRINGS)


INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (0, 1, -1, 2, 3, 100, 10**6, 2**31 - 1, -2**31, 2**53 + 1, low, high) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(max(low, -5), min(high, 50)))\
        .filter(lambda v: v not in KNOWN_INTS)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _strings()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.builds(lambda n: b"\xff" * n, st.integers(1_000, 100_000)))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in INT_RANGES:
        return _ints(*INT_RANGES[kind])
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324]),
                         st.floats(allow_nan=True, allow_infinity=True))
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if kind == FieldDescriptor.TYPE_ENUM:
        # proto3 enums are open: any int32 goes on the wire.
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-3, 1000),
                         st.sampled_from([2**31 - 1, -2**31]))
    raise AssertionError(f"no strategy for {field.full_name} (type {kind})")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


@st.composite
def messages(draw, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of ``descriptor`` with a random subset of its fields set, nested up to 3 levels."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        nested = field.message_type is not None
        if nested and depth >= 3:
            continue
        target = getattr(message, field.name)
        if _is_map(field):
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            for key in draw(st.lists(_scalar(key_field), max_size=4)):
                if value_field.message_type is not None:
                    target[key].CopyFrom(draw(messages(value_field.message_type, depth + 1)))
                else:
                    target[key] = draw(_scalar(value_field))
        elif field.is_repeated:
            if nested:
                for item in draw(st.lists(messages(field.message_type, depth + 1), max_size=3)):
                    target.add().CopyFrom(item)
            elif draw(st.integers(0, 9)) == 0:  # now and then, many elements
                target.extend([draw(_scalar(field))] * draw(st.integers(100, 2_000)))
            else:
                target.extend(draw(st.lists(_scalar(field), max_size=5)))
        elif nested:
            target.CopyFrom(draw(messages(field.message_type, depth + 1)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


@dataclass
class Servers:
    addresses: dict[str, str]
    channels: dict[str, grpc.Channel]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    folder: Path = tmp_path_factory.mktemp("fuzz-grpc")
    options = ServerOptions(port=0, grace_seconds=1)
    running: list[RunningServer] = [
        serve_suggestion(f"sqlite:///{folder / 's.db'}", options, lease_check_seconds=0.5),
        # No webhook senders: fuzzed webhooks must not make the test post to fuzzed URLs.
        serve_tracking(f"sqlite:///{folder / 't.db'}", str(folder / "artifacts"), options,
                       webhooks=SenderSettings(threads=0)),
    ]
    channels = {name: grpc.insecure_channel(server.address) for name, server in zip(SERVICES, running)}
    try:
        yield Servers({name: server.address for name, server in zip(SERVICES, running)}, channels)
    finally:
        for channel in channels.values():
            channel.close()
        for server in running:
            server.stop()


@pytest.fixture(scope="module")
def known(servers: Servers):
    """A study with trials and an experiment with a run and metrics; returns a snapshot function."""
    suggestion = sgrpc.SuggestionServiceStub(servers.channels["suggestion"])
    tracking = tgrpc.TrackingServiceStub(servers.channels["tracking"])
    spec = study_pb2.StudySpec(
        parameters=[study_pb2.ParameterSpec(name="x", float_range=study_pb2.FloatRange(low=0, high=1))],
        objectives=[study_pb2.Objective(metric="loss", direction=study_pb2.DIRECTION_MINIMIZE)],
        # A lease that outlives any fuzz run: an expiring lease would change the snapshot by itself.
        lease_duration=duration_pb2.Duration(seconds=86_400))
    suggestion.CreateStudy(sapi.CreateStudyRequest(name=KNOWN_STUDY, spec=spec))
    trials = suggestion.SuggestTrials(sapi.SuggestTrialsRequest(study=KNOWN_STUDY, count=2, worker_id="w", request_id="known")).trials
    suggestion.CompleteTrial(sapi.CompleteTrialRequest(
        trial_id=trials[0].id, worker_id="w", outcome=sapi.OUTCOME_SUCCEEDED, metrics=[study_pb2.Metric(name="loss", value=0.25)]))
    experiment = tracking.CreateExperiment(tapi.CreateExperimentRequest(name=KNOWN_EXPERIMENT)).experiment
    run = tracking.CreateRun(tapi.CreateRunRequest(experiment_id=experiment.id, name="known-run")).run
    tracking.LogBatch(tapi.LogBatchRequest(
        run_id=run.id, metrics=[tracking_pb2.Metric(key="loss", value=v, step=s) for s, v in enumerate([3, 2, 1])],
        params=[tracking_pb2.Param(key="p", value="1")]))
    KNOWN_STRINGS.add(run.id)
    KNOWN_IDS["run"] = run.id
    KNOWN_INTS.update(t.id for t in trials)
    KNOWN_INTS.add(experiment.id)

    def snapshot() -> list[bytes]:
        return [
            suggestion.GetStudy(sapi.GetStudyRequest(name=KNOWN_STUDY)).SerializeToString(deterministic=True),
            suggestion.ListTrials(sapi.ListTrialsRequest(study=KNOWN_STUDY)).SerializeToString(deterministic=True),
            tracking.GetExperiment(tapi.GetExperimentRequest(experiment_id=experiment.id))
            .SerializeToString(deterministic=True),
            tracking.GetRun(tapi.GetRunRequest(run_id=run.id)).SerializeToString(deterministic=True),
            tracking.GetMetricHistory(tapi.GetMetricHistoryRequest(run_id=run.id, key="loss"))
            .SerializeToString(deterministic=True),
            tracking.ListArtifacts(tapi.ListArtifactsRequest(run_id=run.id)).SerializeToString(deterministic=True),
        ]

    before = snapshot()
    yield snapshot, before


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def call(channel: grpc.Channel, method: MethodDescriptor, requests: list[Message]) -> grpc.StatusCode:
    """Sends ``requests`` (one, unless the RPC streams them) and returns the status code."""
    output = message_factory.GetMessageClass(method.output_type)
    kind = ("stream" if method.client_streaming else "unary") + "_" + \
        ("stream" if method.server_streaming else "unary")
    stub = getattr(channel, kind)(_path(method), request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=output.FromString)
    argument = iter(requests) if method.client_streaming else requests[0]
    try:
        answer = stub(argument, timeout=CALL_TIMEOUT)
        if method.server_streaming:
            for _ in answer:
                pass
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def assert_healthy(servers: Servers) -> None:
    for channel in servers.channels.values():
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("server", "method"), METHODS, ids=[f"{m.containing_service.name}.{m.name}" for _, m in METHODS])
def test_no_rpc_answers_internal_to_any_input(servers, known, server, method):
    requests = st.lists(messages(method.input_type), min_size=1, max_size=3 if method.client_streaming else 1)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def fuzz(batch: list[Message]) -> None:
        code = call(servers.channels[server], method, batch)
        assert code not in FORBIDDEN, f"{method.full_name} answered {code.name} to {batch[0]!s:.2000}"

    fuzz()
    assert_healthy(servers)


def test_the_known_data_is_unchanged_by_the_fuzzing(servers, known):
    """Runs after the fuzz tests in this module (pytest keeps the file's order)."""
    snapshot, before = known
    assert snapshot() == before
    assert_healthy(servers)


def test_an_oversize_message_is_resource_exhausted(servers, known):
    method = sapi.DESCRIPTOR.services_by_name["SuggestionService"].methods_by_name["GetStudy"]
    request = sapi.GetStudyRequest(name="a" * (DEFAULT_MAX_MESSAGE_BYTES + 1024))
    assert call(servers.channels["suggestion"], method, [request]) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_healthy(servers)


# Not the method's message, whatever it is: a tag cut off inside its varint, a length-delimited
# field whose length varint is longer than ten bytes, a length-delimited field cut short, a
# tag with wire type 7 (there is none), and more of the same kind.
UNDECODABLE = [b"\xff", b"\x0a" + b"\xff" * 10, b"\x0a\x05ab", b"\x0f", b"\xff\xff\xff\xff",
               b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 11]


def _first_messages() -> dict[str, bytes]:
    """A first message each client stream accepts, so that a bad second one is what it meets."""
    content = b"never stored"
    header = tapi.ArtifactHeader(run_id=KNOWN_IDS["run"], path="never-stored.txt", size=len(content),
                                 sha256=hashlib.sha256(content).hexdigest())
    return {"tuning.tracking.v1.TrackingService.UploadArtifact":
            tapi.UploadArtifactRequest(header=header).SerializeToString()}


def call_raw(channel: grpc.Channel, method: MethodDescriptor, payloads: list[bytes]) -> grpc.RpcError | None:
    """Sends ``payloads`` as they are (no serializer; one, unless the RPC streams requests)."""
    kind = ("stream" if method.client_streaming else "unary") + "_" + \
        ("stream" if method.server_streaming else "unary")
    stub = getattr(channel, kind)(_path(method), request_serializer=None, response_deserializer=None)
    try:
        answer = stub(iter(payloads) if method.client_streaming else payloads[0], timeout=CALL_TIMEOUT)
        if method.server_streaming:
            for _ in answer:
                pass
    except grpc.RpcError as error:
        return error
    return None


@pytest.mark.parametrize(("server", "method"), METHODS, ids=[f"{m.containing_service.name}.{m.name}" for _, m in METHODS])
def test_bytes_that_are_not_the_message_are_invalid_argument(servers, known, server, method):
    """grpcio's asyncio server answers a request_deserializer's exception with UNKNOWN ("Unexpected
    <class 'google.protobuf.message.DecodeError'>: ..."), before any handler runs; in a client
    stream the exception reached the handler and became INTERNAL. ErrorMappingInterceptor
    makes both INVALID_ARGUMENT with the ErrorInfo reason, naming the message type."""
    snapshot, before = known
    sequences = [[payload] for payload in UNDECODABLE]
    if method.client_streaming:
        first = _first_messages()
        assert method.full_name in first, f"add a first message for {method.full_name} to _first_messages"
        sequences += [[first[method.full_name], payload] for payload in UNDECODABLE]
    for payloads in sequences:
        error = call_raw(servers.channels[server], method, payloads)
        assert error is not None, f"{method.full_name} accepted {payloads!r}"
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (payloads, error.code(), error.details())
        rebuilt = error_from_rpc(error)
        assert isinstance(rebuilt, InvalidArgument) and rebuilt.field == "request", (payloads, rebuilt)
        assert rebuilt.reason == "MALFORMED_REQUEST", (payloads, rebuilt.reason)
        assert f"not a valid {method.input_type.full_name} message" in error.details(), (payloads, error.details())
    assert_healthy(servers)
    assert snapshot() == before


# -- regressions found by the fuzzing -----------------------------------------------------------


def _rpc(servers: Servers, server: str, service: str, rpc: str, request: Message) -> grpc.RpcError:
    method = next(s for s in SERVICES[server] if s.name == service).methods_by_name[rpc]
    stub = servers.channels[server].unary_unary(_path(method), request_serializer=lambda m: m.SerializeToString(),
                                                response_deserializer=message_factory.GetMessageClass(
                                                    method.output_type).FromString)
    with pytest.raises(grpc.RpcError) as caught:
        stub(request, timeout=CALL_TIMEOUT)
    return caught.value


@pytest.mark.parametrize("stamp", [timestamp_pb2.Timestamp(seconds=2**63 - 1), timestamp_pb2.Timestamp(nanos=-1),
                                   timestamp_pb2.Timestamp(seconds=1, nanos=2**31 - 1)])
def test_run_timestamps_outside_the_timestamp_range_are_invalid_argument(servers, stamp):
    """Were INTERNAL: Timestamp.ToMilliseconds raised ValueError on out-of-range seconds or nanos."""
    error = _rpc(servers, "tracking", "TrackingService", "CreateRun",
                 tapi.CreateRunRequest(experiment_id=0, start_time=stamp))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "start_time" in error.details()
    error = _rpc(servers, "tracking", "TrackingService", "UpdateRun",
                 tapi.UpdateRunRequest(run_id="no-such-run", end_time=stamp))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "end_time" in error.details()


@pytest.mark.parametrize("seconds", [2**53 + 1, 2**63 - 1, -2**63])
def test_a_huge_lease_duration_is_invalid_argument(servers, seconds):
    """Was INTERNAL: Duration.ToTimedelta overflowed (OverflowError) before the range check."""
    spec = study_pb2.StudySpec(
        parameters=[study_pb2.ParameterSpec(name="x", float_range=study_pb2.FloatRange(low=0, high=1))],
        objectives=[study_pb2.Objective(metric="loss", direction=study_pb2.DIRECTION_MINIMIZE)],
        lease_duration=duration_pb2.Duration(seconds=seconds))
    error = _rpc(servers, "suggestion", "SuggestionService", "CreateStudy",
                 sapi.CreateStudyRequest(name="huge-lease", spec=spec))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.lease_duration" in error.details()
