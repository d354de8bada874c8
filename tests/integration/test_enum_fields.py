"""Every enum field of every request, found by walking the services' descriptors: an
unknown value (a number out of range over gRPC, a misspelt name or a stray number over
HTTP/JSON) is INVALID_ARGUMENT naming the field, never read as the zero value; where a
value is required, the zero (`*_UNSPECIFIED`) value is refused too.

A new enum field in a request fails `test_every_enum_field_has_a_case` until it gets a case
here (and, in its service, a check).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.routes import ROUTES, SERVICES, Route
from tests.conftest import gateway_suite
from tuning_common.errors import InvalidArgument
from tuning_common.grpc_errors import error_from_rpc

STUDY_SPEC = {"parameters": [{"name": "x", "float_range": {"low": 1, "high": 2}}],
              "objectives": [{"metric": "loss", "direction": "DIRECTION_MINIMIZE"}]}


@dataclass(frozen=True)
class Case:
    rpc: str
    # A request that is valid apart from the enum (proto3 JSON, proto field names).
    request: dict
    # Where the enum sits in ``request`` (keys and list indexes), and the error's field name.
    where: tuple
    field: str
    # Whether the zero value is refused (the field is required) or means a documented default.
    required: bool


CASES = {
    "tuning.suggestion.v1.CreateStudyRequest.spec.parameters.float_range.scale": Case(
        "CreateStudy", {"name": "e1", "spec": STUDY_SPEC},
        ("spec", "parameters", 0, "float_range", "scale"), "spec.parameters[0].float_range.scale", False),
    "tuning.suggestion.v1.CreateStudyRequest.spec.parameters.int_range.scale": Case(
        "CreateStudy", {"name": "e2", "spec": {**STUDY_SPEC, "parameters": [
            {"name": "n", "int_range": {"low": 1, "high": 4}}]}},
        ("spec", "parameters", 0, "int_range", "scale"), "spec.parameters[0].int_range.scale", False),
    "tuning.suggestion.v1.CreateStudyRequest.spec.objectives.direction": Case(
        "CreateStudy", {"name": "e3", "spec": STUDY_SPEC},
        ("spec", "objectives", 0, "direction"), "spec.objectives[0].direction", True),
    "tuning.suggestion.v1.SetStudyStateRequest.state": Case(
        "SetStudyState", {"name": "e0", "state": "STUDY_STATE_STOPPED"}, ("state",), "state", True),
    "tuning.suggestion.v1.CompleteTrialRequest.outcome": Case(
        "CompleteTrial", {"trial_id": "1", "outcome": "OUTCOME_FAILED"}, ("outcome",), "outcome", True),
    "tuning.suggestion.v1.ListTrialsRequest.states": Case(
        "ListTrials", {"study": "e0", "states": ["TRIAL_STATE_COMPLETED"]}, ("states", 0), "states[0]", True),
    "tuning.tracking.v1.SearchExperimentsRequest.view_type": Case(
        "SearchExperiments", {"view_type": "VIEW_TYPE_ALL"}, ("view_type",), "view_type", False),
    "tuning.tracking.v1.CreateRunRequest.status": Case(
        "CreateRun", {"experiment_id": "0", "status": "RUN_STATUS_RUNNING"}, ("status",), "status", False),
    "tuning.tracking.v1.UpdateRunRequest.status": Case(
        "UpdateRun", {"run_id": "0" * 32, "status": "RUN_STATUS_FINISHED"}, ("status",), "status", False),
    "tuning.tracking.v1.SearchRunsRequest.view_type": Case(
        "SearchRuns", {"experiment_ids": ["0"], "view_type": "VIEW_TYPE_ALL"}, ("view_type",), "view_type", False),
    "tuning.tracking.v1.FinalizeLoggedModelRequest.status": Case(
        "FinalizeLoggedModel", {"model_id": "m-" + "0" * 32, "status": "LOGGED_MODEL_STATUS_READY"},
        ("status",), "status", True),
    "tuning.tracking.v1.TransitionModelVersionStageRequest.stage": Case(
        "TransitionModelVersionStage", {"name": "m", "version": "1", "stage": "STAGE_STAGING"},
        ("stage",), "stage", True),
    # Webhooks on a closed loopback port: nothing is posted anywhere else.
    "tuning.tracking.v1.CreateWebhookRequest.events": Case(
        "CreateWebhook", {"name": "e-hook", "url": "http://127.0.0.1:9/hook", "events": ["WEBHOOK_EVENT_ALIAS_SET"]},
        ("events", 0), "events[0]", True),
    "tuning.tracking.v1.UpdateWebhookRequest.events.events": Case(
        "UpdateWebhook", {"name": "e-hook", "events": {"events": ["WEBHOOK_EVENT_ALIAS_SET"]}},
        ("events", "events", 0), "events.events[0]", True),
    "tuning.tracking.v1.ListWebhookDeliveriesRequest.status": Case(
        "ListWebhookDeliveries", {"name": "e-hook", "status": "WEBHOOK_DELIVERY_STATUS_FAILED"},
        ("status",), "status", False),
    "tuning.suggestion.v1.CreateStudyWebhookRequest.events": Case(
        "CreateStudyWebhook", {"name": "e-hook", "url": "http://127.0.0.1:9/hook",
                               "events": ["WEBHOOK_EVENT_BEST_IMPROVED"]}, ("events", 0), "events[0]", True),
    "tuning.suggestion.v1.UpdateStudyWebhookRequest.events.events": Case(
        "UpdateStudyWebhook", {"name": "e-hook", "events": {"events": ["WEBHOOK_EVENT_BEST_IMPROVED"]}},
        ("events", "events", 0), "events.events[0]", True),
    "tuning.suggestion.v1.ListStudyWebhookDeliveriesRequest.status": Case(
        "ListStudyWebhookDeliveries", {"name": "e-hook", "status": "WEBHOOK_DELIVERY_STATUS_FAILED"},
        ("status",), "status", False),
}


def _enum_fields(descriptor: Descriptor, path: str, seen: frozenset) -> Iterator[tuple[str, FieldDescriptor]]:
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_ENUM:
            yield f"{path}.{field.name}", field
        elif field.message_type is not None and field.message_type.full_name not in seen and \
                not field.message_type.full_name.startswith("google.protobuf."):  # Struct's NullValue has one value
            if field.message_type.GetOptions().map_entry:
                inner = field.message_type.fields_by_name["value"]
                if inner.type == FieldDescriptor.TYPE_ENUM:
                    yield f"{path}.{field.name}", inner
                if inner.message_type is None:
                    continue
                yield from _enum_fields(inner.message_type, f"{path}.{field.name}",
                                        seen | {inner.message_type.full_name})
            else:
                yield from _enum_fields(field.message_type, f"{path}.{field.name}",
                                        seen | {field.message_type.full_name})


def _request_enum_fields() -> dict[str, FieldDescriptor]:
    found = {}
    for service in SERVICES.values():
        for method in service.methods:
            found.update(_enum_fields(method.input_type, method.input_type.full_name,
                                      frozenset({method.input_type.full_name})))
    return found


ROUTE = {route.rpc: route for route in ROUTES}


def _with(case: Case, value) -> dict:
    request = copy.deepcopy(case.request)
    target = request
    for key in case.where[:-1]:
        target = target[key]
    target[case.where[-1]] = value
    return request


def test_every_enum_field_has_a_case():
    assert sorted(_request_enum_fields()) == sorted(CASES)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory):
    with gateway_suite(Path(tmp_path_factory.mktemp("enums"))) as running:
        yield running


def _grpc_call(suite, route: Route, request: dict):
    descriptor = route.descriptor
    message = json_format.ParseDict(request, message_factory.GetMessageClass(descriptor.input_type)())
    address = suite.suggestion.address if route.service == "SuggestionService" else suite.tracking.address
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(route.full_method, request_serializer=type(message).SerializeToString,
                                   response_deserializer=message_factory.GetMessageClass(
                                       descriptor.output_type).FromString)
        try:
            return call(message, timeout=30)
        except grpc.RpcError as error:
            return error_from_rpc(error)


def _http_call(suite, route: Route, request: dict) -> httpx.Response:
    path, rest = route.path, dict(request)
    for name in [part.split("}")[0].split(":")[0] for part in path.split("{")[1:]]:
        path = path.replace(f"{{{name}}}", str(rest.pop(name)))
    with httpx.Client(base_url=suite.gateway.url, timeout=30) as http:
        if route.method == "GET":
            return http.get(path, params=rest)
        return http.request(route.method, path, json=rest)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unknown_enum_values_are_refused_over_grpc(suite, name):
    case = CASES[name]
    route = ROUTE[case.rpc]
    values = [99, -1] + ([0] if case.required else [])
    for value in values:
        answer = _grpc_call(suite, route, _with(case, value))
        assert isinstance(answer, InvalidArgument), (value, answer)
        assert answer.field == case.field, (value, answer)
    if not case.required:
        # The zero value means the documented default: it passes the enum's check.
        answer = _grpc_call(suite, route, _with(case, 0))
        assert not (isinstance(answer, InvalidArgument) and answer.field == case.field), answer


@pytest.mark.parametrize("name", sorted(CASES))
def test_unknown_enum_values_are_refused_over_http(suite, name):
    case = CASES[name]
    route = ROUTE[case.rpc]
    enum = _request_enum_fields()[name].enum_type
    misspelt = enum.values[1].name.lower()
    values = [misspelt, "NOT_A_VALUE", 99] + ([enum.values[0].name] if case.required else [])
    for value in values:
        response = _http_call(suite, route, _with(case, value))
        assert response.status_code == 400, (value, response.text)
        error = response.json()["error"]
        assert (error["status"], error["field"]) == ("INVALID_ARGUMENT", case.field), (value, error)
        if isinstance(value, str) and value != enum.values[0].name:
            assert enum.values[1].name in error["message"], error  # the answer lists the names
