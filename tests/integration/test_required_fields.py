"""Every request field the tracking and registry protos mark ``[(google.api.field_behavior) =
REQUIRED]`` (what the OpenAPI document lists as ``required``) is refused when missing, over
real gRPC, with INVALID_ARGUMENT naming it; and a request with every required field set is not
refused as invalid, so the annotation claims no more than the server checks.

Requests are built from the descriptors: each required field gets a well-formed value (a
request may then fail NOT_FOUND, which is fine: validation comes first), and each repeated
message field gets one item, so the required fields of nested messages are exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from gateway.openapi import required
from tracking_service.server import serve
from tuning.tracking.v1 import (
    registry_service_pb2,
    registry_service_pb2_grpc,
    tracking_service_pb2,
    tracking_service_pb2_grpc,
)
from tuning_common.errors import InvalidArgument
from tuning_common.grpc_errors import error_from_rpc
from tuning_common.grpc_server import ServerOptions

SERVICES = [
    (tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"], tracking_service_pb2_grpc.TrackingServiceStub),
    (registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"],
     registry_service_pb2_grpc.ModelRegistryServiceStub),
]
RUN_ID = "a" * 32
# Well-formed values for required strings whose format the server checks.
STRINGS = {"run_id": RUN_ID, "sha256": "0" * 64, "source": f"runs:/{RUN_ID}/model", "alias": "champion",
           "path": "model/file.txt", "model_id": "m-" + "0" * 32, "subject": "user:someone", "role": "reader",
           # A closed loopback port: the webhooks this test creates post nowhere else.
           "url": "http://127.0.0.1:9/hook"}


def _fill(message: Message) -> Message:
    """Sets each required field of ``message`` to a valid value, and gives each repeated message
    field one filled item."""
    for field in message.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                continue
            if field.is_repeated:
                if any(required(f) for f in field.message_type.fields):
                    _fill(getattr(message, field.name).add())
            elif required(field):
                getattr(message, field.name).SetInParent()
                _fill(getattr(message, field.name))
        elif required(field):
            value = {FieldDescriptor.TYPE_STRING: STRINGS.get(field.name, f"{field.name}-1"),
                     FieldDescriptor.TYPE_INT64: 1,
                     FieldDescriptor.TYPE_ENUM: field.enum_type.values[-1].number if field.enum_type else 0,
                     }[field.type]
            if field.is_repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)
    return message


def _required_paths(message: Message, prefix: str = "") -> Iterator[tuple[str, Message, str]]:
    """(the field's path as errors name it, the message holding it, its name) for every required field."""
    for field in message.DESCRIPTOR.fields:
        path = f"{prefix}{field.name}"
        if required(field):
            yield path, message, field.name
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            if field.is_repeated:
                for i, item in enumerate(getattr(message, field.name)):
                    yield from _required_paths(item, f"{path}[{i}].")
            elif message.HasField(field.name):
                yield from _required_paths(getattr(message, field.name), f"{path}.")


def _call(stub, method: MethodDescriptor, request: Message):
    call = getattr(stub, method.name)
    if method.client_streaming:
        wrapper = getattr(tracking_service_pb2, method.input_type.name)(header=request)
        return call(iter([wrapper]))
    result = call(request)
    return list(result) if method.server_streaming else result


def _requests() -> Iterator[tuple[object, MethodDescriptor, Message, str]]:
    """(service, method, an empty request, the prefix of its fields' paths in errors)."""
    for service, _ in SERVICES:
        for method in service.methods:
            if method.client_streaming:
                # An upload's first message is its ArtifactHeader.
                yield service, method, method.input_type.fields_by_name["header"].message_type._concrete_class(), \
                    "header."
            else:
                yield service, method, method.input_type._concrete_class(), ""


@pytest.fixture
def stubs(database_url: str, tmp_path: Path):
    running = serve(database_url, str(tmp_path / "artifacts"), ServerOptions(port=0, grace_seconds=1))
    channel = grpc.insecure_channel(running.address)
    yield {service.full_name: stub(channel) for service, stub in SERVICES}
    channel.close()
    running.stop()


def test_tracking_and_registry_protos_mark_required_fields():
    """The walk below covers something: most of the RPCs have required fields."""
    with_required = [m.name for _, m, request, _ in _requests() if list(_required_paths(_fill(request)))]
    assert len(with_required) >= 35, with_required
    assert {"LogMetric", "SetTag", "LogInputs", "SearchRuns", "UploadArtifact", "CreateModelVersion",
            "TransitionModelVersionStage", "SetRegisteredModelAlias"} <= set(with_required)


def test_every_required_field_is_refused_when_missing(stubs):
    checked = 0
    for service, method, empty, prefix in _requests():
        stub = stubs[service.full_name]
        full = _fill(empty)
        try:
            _call(stub, method, full)
        except grpc.RpcError as error:
            assert error.code() != grpc.StatusCode.INVALID_ARGUMENT, (method.name, full, error.details())
        for path, _, _ in list(_required_paths(full, prefix)):
            missing = type(full)()
            missing.CopyFrom(full)
            # The same field in the copy: walk it again and clear the one at this path.
            holder, name = next((h, n) for p, h, n in _required_paths(missing, prefix) if p == path)
            holder.ClearField(name)
            with pytest.raises(grpc.RpcError) as caught:
                _call(stub, method, missing)
            refused = error_from_rpc(caught.value)
            assert isinstance(refused, InvalidArgument), (method.name, path, caught.value.details())
            assert refused.field == path or refused.field.startswith(f"{path}."), (method.name, path, refused.field)
            checked += 1
    assert checked >= 60
