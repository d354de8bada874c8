"""The OpenAPI 3.1 document of the HTTP/JSON API, generated from the route table and the
protos' descriptors (so it cannot drift from what the gateway serves)."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.routes import ROUTES, Route

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


class _Schemas:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return _WELL_KNOWN[descriptor.full_name]
        name = descriptor.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: messages may refer to themselves
            self.schemas[name] = {
                "type": "object",
                "properties": {field.name: self.field(field) for field in descriptor.fields},
            }
        return _ref(name)

    def enum(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        if descriptor.full_name not in self.schemas:
            self.schemas[descriptor.full_name] = {"type": "string", "enum": [v.name for v in descriptor.values]}
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
                operation["parameters"].append({"name": field.name, "in": "query", "required": False,
                                                "schema": schemas.field(field)})
    elif others:
        operation["requestBody"] = {"required": False,
                                    "content": {"application/json": {"schema": schemas.message(method.input_type)}}}
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
        "components": {"schemas": schemas.schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
