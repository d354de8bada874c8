"""The OpenAPI 3.1 document of the HTTP/JSON API, generated from the route table and the
protos' descriptors (so it cannot drift from what the gateway serves).

Descriptions are the protos' comments (kept at codegen time in ``tuning.proto_comments``);
a field marked ``[(google.api.field_behavior) = REQUIRED]`` is ``required``; a oneof is a
``oneOf`` (exactly one of its fields); enums are their value names.
"""

from __future__ import annotations

import re
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.routes import ROUTES, SERVICES, Route
from tuning.proto_comments import COMMENTS

_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
}
_INTEGER_64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
               FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
_INTEGER_32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT32,
               FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "integer"}, "status": {"type": "string"}, "message": {"type": "string"},
        "reason": {"type": "string"}, "field": {"type": "string"}}}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _described(schema: dict[str, Any], full_name: str) -> dict[str, Any]:
    comment = COMMENTS.get(full_name)
    return {**schema, "description": comment} if comment else schema


def required(field: FieldDescriptor) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _real_oneofs(descriptor: Descriptor) -> list:
    # proto3 `optional` fields sit in a synthetic oneof of their own, named "_<field>".
    return [o for o in descriptor.oneofs if not (len(o.fields) == 1 and o.name == f"_{o.fields[0].name}")]


class _Schemas:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def message(self, descriptor: Descriptor, without: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A reference to the message's schema; ``without`` leaves fields out (a request's path
        variables, which are not part of its body)."""
        if descriptor.full_name in _WELL_KNOWN:
            return _WELL_KNOWN[descriptor.full_name]
        name = descriptor.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: messages may refer to themselves
            fields = [f for f in descriptor.fields if f.name not in without]
            schema: dict[str, Any] = {
                "type": "object",
                "properties": {f.name: _described(self.field(f), f.full_name) for f in fields},
            }
            if names := [f.name for f in fields if required(f)]:
                schema["required"] = names
            choices = [[{"required": [f.name]} for f in oneof.fields] for oneof in _real_oneofs(descriptor)]
            if len(choices) == 1:
                schema["oneOf"] = choices[0]
            elif choices:
                schema["allOf"] = [{"oneOf": c} for c in choices]
            self.schemas[name] = _described(schema, name)
        return _ref(name)

    def enum(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        if descriptor.full_name not in self.schemas:
            # tuning.proto_comments names an enum's values under the enum.
            notes = {v.name: COMMENTS.get(f"{descriptor.full_name}.{v.name}") for v in descriptor.values}
            values = [f"- `{name}`: {note}" if note else f"- `{name}`" for name, note in notes.items()]
            summary = COMMENTS.get(descriptor.full_name, "")
            self.schemas[descriptor.full_name] = {
                "type": "string", "enum": [v.name for v in descriptor.values],
                "description": "\n".join([summary, "", *values] if summary else values),
            }
        return _ref(descriptor.full_name)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.field(field.message_type.fields_by_name["value"])}
        schema = self._single(field)
        if field.is_repeated:
            return {"type": "array", "items": schema}
        return schema

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self.enum(field.enum_type)
        if field.type in _INTEGER_64:
            # proto3 JSON writes 64-bit integers as strings and reads either.
            return {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-?\d+$"}]}
        if field.type in _INTEGER_32:
            return {"type": "integer"}
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        if field.type == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if field.type == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        return {"type": "string"}


def _path_variables(path: str) -> list[str]:
    return re.findall(r"{(\w+)(?::path)?}", path)


def _openapi_path(path: str) -> str:
    return re.sub(r"{(\w+):path}", r"{\1}", path)


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    method = route.descriptor
    variables = _path_variables(route.path)
    operation: dict[str, Any] = {
        "operationId": route.rpc,
        "tags": [route.service],
        "summary": f"{route.service}.{route.rpc}",
        "description": COMMENTS.get(method.full_name, ""),
        "parameters": [{"name": v, "in": "path", "required": True, "schema": {"type": "string"}} for v in variables],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schemas.message(method.output_type)}}},
            "default": {"description": "An error", "content": {"application/json": {"schema": _ref("Error")}}},
        },
    }
    if route.rpc == "UploadArtifact":
        operation["requestBody"] = {"required": True,
                                    "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                         "format": "binary"}}}}
        operation["parameters"].append({"name": "X-Checksum-Sha256", "in": "header", "required": False,
                                        "schema": {"type": "string"}})
        return operation
    if route.rpc == "DownloadArtifact":
        operation["responses"]["200"] = {"description": "The file", "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        return operation
    others = [f for f in method.input_type.fields if f.name not in variables]
    if route.method == "GET":
        for field in others:
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                operation["parameters"].append(_described(
                    {"name": field.name, "in": "query", "required": required(field), "schema": schemas.field(field)},
                    field.full_name))
    elif others:
        body = schemas.message(method.input_type, without=frozenset(variables))
        operation["requestBody"] = {"required": any(required(f) for f in others),
                                    "content": {"application/json": {"schema": body}}}
    return operation


def document(title: str = "tuning-suite gateway", version: str = "v1") -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(_openapi_path(route.path), {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Every RPC of the suggestion service, the tracking service and the model registry "
                                "as HTTP/JSON (proto3 JSON, the protos' field names)."},
        "paths": paths,
        "tags": [_described({"name": name}, service.full_name) for name, service in SERVICES.items()],
        "components": {"schemas": schemas.schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
