"""HTTP/JSON for every RPC: the handlers of :data:`gateway.routes.ROUTES`.

A request message is merged from three places, later ones winning: the JSON body, the
query string (``?page_size=10&states=TRIAL_STATE_COMPLETED&states=...``) and the path's
variables. Values are proto3 JSON; in the query string they are converted by the field's
type (numbers, booleans, enum names, repeated fields by repetition). The answer is the
response message as proto3 JSON with every field present and the protos' field names.

Artifacts stream both ways: ``PUT .../artifacts/{path}`` takes the file as the raw body
(spooled to a temporary file to learn its SHA-256, or checked against an
``X-Checksum-Sha256`` header), ``GET .../artifacts/{path}`` streams it back with its
length and checksum in the headers.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from gateway import session
from gateway.errors import error_response
from gateway.routes import ROUTES, Route
from tuning.tracking.v1 import tracking_service_pb2 as tapi
from tuning_common.errors import InvalidArgument, TuningError
from tuning_common.grpc_errors import error_from_rpc

CHUNK_BYTES = 1024 * 1024
UNARY_TIMEOUT = 60.0

_SCALARS: dict[int, Callable[[str], Any]] = {
    FieldDescriptor.TYPE_INT32: int, FieldDescriptor.TYPE_INT64: int, FieldDescriptor.TYPE_UINT32: int,
    FieldDescriptor.TYPE_UINT64: int, FieldDescriptor.TYPE_SINT32: int, FieldDescriptor.TYPE_SINT64: int,
    FieldDescriptor.TYPE_FIXED32: int, FieldDescriptor.TYPE_FIXED64: int, FieldDescriptor.TYPE_SFIXED32: int,
    FieldDescriptor.TYPE_SFIXED64: int, FieldDescriptor.TYPE_DOUBLE: float, FieldDescriptor.TYPE_FLOAT: float,
    FieldDescriptor.TYPE_STRING: str, FieldDescriptor.TYPE_ENUM: str,
}


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"expected true or false, got {text!r:.40}")


def _convert(descriptor: Descriptor, name: str, texts: list[str], where: str) -> Any:
    field = descriptor.fields_by_name.get(name)
    if field is None:
        raise InvalidArgument(name, f"{descriptor.name} has no field {name!r} (given in the {where})")
    if field.type == FieldDescriptor.TYPE_BOOL:
        parse: Callable[[str], Any] = _boolean
    elif field.type in _SCALARS:
        parse = _SCALARS[field.type]
    else:
        raise InvalidArgument(name, f"a {field.message_type.name if field.message_type else 'message'} cannot "
                                    f"be given in the {where}: put it in the JSON body")
    try:
        values = [parse(text) for text in texts]
    except ValueError as error:
        raise InvalidArgument(name, f"{error}") from None
    if field.is_repeated:
        return values
    if len(values) > 1:
        raise InvalidArgument(name, f"given {len(values)} times in the {where}; it takes one value")
    return values[0]


async def build_request(route: Route, request: Request, body: Mapping[str, Any] | None) -> Message:
    descriptor = route.descriptor.input_type
    document: dict[str, Any] = dict(body or {})
    for name in request.query_params:
        document[name] = _convert(descriptor, name, request.query_params.getlist(name), "query string")
    for name, text in request.path_params.items():
        document[name] = _convert(descriptor, name, [text], "path")
    message = message_factory.GetMessageClass(descriptor)()
    try:
        # Unknown fields and unknown enum names are errors (ignore_unknown_fields stays off:
        # with it, a misspelt enum name would silently become the zero value). An enum given
        # as a number out of range passes here, as proto3 enums are open; the service refuses it.
        json_format.ParseDict(document, message)
    except json_format.ParseError as error:
        raise parse_error(error, descriptor) from None
    return message


# json_format's messages: "Failed to parse spec field: Failed to parse objectives field: <what>
# at CreateStudyRequest.spec.objectives[0].direction..." (some without the location).
_PARSE_PREFIX = re.compile(r"^(?:Failed to parse \w+ field: )+")
_PARSE_AT = re.compile(r' at "?\w+((?:\.\w+|\[[^\]]*\])*)"?\.*$')
_NO_FIELD = re.compile(r'^Message type "[\w.]+" has no field named "([^"]+)"$')
_SEGMENTS = re.compile(r"(\w+)|\[([^\]]*)\]")
_BAD_ENUM = re.compile(r"^Invalid enum value (\S+) for enum type [\w.]+$")


def parse_error(error: json_format.ParseError, descriptor: Descriptor) -> InvalidArgument:
    """A proto3 JSON parse error as INVALID_ARGUMENT naming the field as the protos do
    (``spec.objectives[0].direction``), and for an enum the names it takes."""
    text = str(error).split("\n", 1)[0]
    chain = re.findall(r"Failed to parse (\w+) field: ", text)
    what = _PARSE_PREFIX.sub("", text)
    location = _PARSE_AT.search(what)
    path = None
    if location:
        what, path = what[:location.start()], location.group(1).lstrip(".")
    what = what.rstrip(".")
    if unknown := _NO_FIELD.match(what):
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        what = f"no such field {unknown.group(1)!r}"
    if path is None:
        path = ".".join(chain)
    else:  # some locations stop at the enclosing message: the chain of field names goes on
        named = [name for name, _ in _SEGMENTS.findall(path) if name]
        path = ".".join(filter(None, [path, *chain[len(named):]]))
    field, enum = _proto_path(descriptor, path)
    if (bad := _BAD_ENUM.match(what)) and enum is not None:
        what = f"unknown value {bad.group(1)!r}; one of {', '.join(v.name for v in enum.values)}"
    return InvalidArgument(field or "body", what)


def _proto_path(descriptor: Descriptor, path: str) -> tuple[str, Any]:
    """``path`` (JSON or proto field names, with [index] or [key]) with the protos' field
    names, and the enum type of the field it ends on (or None)."""
    parts, current, enum = [], descriptor, None
    for name, index in _SEGMENTS.findall(path):
        if not name:
            parts.append(f"[{index}]")
            continue
        field = None
        if current is not None:
            field = current.fields_by_name.get(name) or next(
                (f for f in current.fields if f.json_name == name), None)
        parts.append(("." if parts else "") + (field.name if field else name))
        enum = field.enum_type if field is not None else None
        current = None
        if field is not None and field.message_type is not None:
            current = field.message_type
            if current.GetOptions().map_entry:
                value = current.fields_by_name["value"]
                current, enum = value.message_type, value.enum_type
    return "".join(parts), enum


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


async def read_json(request: Request, limit: int) -> dict[str, Any] | None:
    """The JSON object in the body (None when there is none), refusing more than ``limit`` bytes."""
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise RequestTooLarge(limit)
    if not data.strip():
        return None
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidArgument("body", f"not valid JSON: {error}") from None
    except RecursionError:
        # json's decoder gives up on deep nesting ({"a": {"a": ...}} a thousand levels down).
        raise InvalidArgument("body", "the JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return document


class RequestTooLarge(TuningError):
    code = "RESOURCE_EXHAUSTED"

    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than the limit of {limit} bytes", reason="REQUEST_TOO_LARGE")


class HttpApi:
    """The handlers; ``stubs`` maps a service name to its grpc.aio stub."""

    def __init__(self, stubs: Mapping[str, Any], *, max_json_bytes: int, max_artifact_bytes: int):
        self.stubs = stubs
        self.max_json_bytes = max_json_bytes
        self.max_artifact_bytes = max_artifact_bytes

    def routes(self) -> list[StarletteRoute]:
        return [StarletteRoute(route.path, self._endpoint(route), methods=[route.method], name=route.rpc)
                for route in ROUTES]

    def _endpoint(self, route: Route):
        if route.rpc == "UploadArtifact":
            handler = self._upload
        elif route.rpc == "DownloadArtifact":
            handler = self._download
        else:
            handler = self._unary

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(route, request)
            except TuningError as error:
                return error_response(error)

        return endpoint

    def _rpc(self, route: Route):
        return getattr(self.stubs[route.service], route.rpc)

    async def _unary(self, route: Route, request: Request) -> Response:
        body = None if route.method == "GET" else await read_json(request, self.max_json_bytes)
        message = await build_request(route, request, body)
        record_actor(message, request)
        try:
            answer = await self._rpc(route)(message, timeout=UNARY_TIMEOUT, metadata=forwarded(request))
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        return JSONResponse(to_json(answer))

    async def _upload(self, route: Route, request: Request) -> Response:
        run_id, path = request.path_params["run_id"], request.path_params["path"]
        expected = request.headers.get("x-checksum-sha256", "").lower()
        with tempfile.TemporaryFile(prefix="tuning-upload-") as spool:
            digest, size = hashlib.sha256(), 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_artifact_bytes:
                    raise RequestTooLarge(self.max_artifact_bytes)
                digest.update(chunk)
                spool.write(chunk)
            sha256 = digest.hexdigest()
            if expected and expected != sha256:
                raise InvalidArgument("X-Checksum-Sha256", f"the body's SHA-256 is {sha256}, not {expected}")
            header = tapi.ArtifactHeader(run_id=run_id, path=path, size=size, sha256=sha256)
            try:
                answer = await upload_artifact(self._rpc(route), header, spool, forwarded(request))
            except grpc.RpcError as error:
                raise error_from_rpc(error) from None
        return JSONResponse(to_json(answer))

    async def _download(self, route: Route, request: Request) -> Response:
        message = await build_request(route, request, None)
        call = self._rpc(route)(message, metadata=forwarded(request))
        try:
            first = await call.read()
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        if first is grpc.aio.EOF or not first.HasField("file"):
            raise TuningError("the tracking service sent no file header", reason="BAD_ARTIFACT_STREAM")
        info = first.file

        async def chunks() -> AsyncIterator[bytes]:
            # Errors after the headers are sent can only cut the body short; the length header
            # and the checksum let the client notice.
            while (part := await call.read()) is not grpc.aio.EOF:
                yield part.chunk

        media_type = mimetypes.guess_type(info.path)[0] or "application/octet-stream"
        headers = {"content-length": str(info.size), "x-checksum-sha256": info.sha256,
                   "content-disposition": f'attachment; filename="{_quote(info.path.rsplit("/", 1)[-1])}"'}
        return StreamingResponse(chunks(), media_type=media_type, headers=headers)


def record_actor(message: Message, request: Request) -> None:
    """With tokens on, the registry's audit records the token's principal as the ``actor``:
    an empty actor is filled in, and another name is refused rather than recorded or dropped."""
    principal = getattr(request.state, "principal", None)
    if principal is None or "actor" not in message.DESCRIPTOR.fields_by_name:
        return
    if message.actor and message.actor != principal.name:
        raise InvalidArgument("actor", f"is recorded from your token, as {principal.name!r}; "
                                       f"leave it out or give that name", reason="ACTOR_NOT_PRINCIPAL")
    message.actor = principal.name


# What grpc.aio reports, instead of the service's status, when a write fails because the service
# already ended the call (grpc/grpc#36066).
_LOST_STATUS = "Internal error from Core"


async def upload_artifact(call: Callable, header: tapi.ArtifactHeader, spool, metadata) -> tapi.UploadArtifactResponse:
    """UploadArtifact of the file in ``spool`` (``header`` describes it).

    A service that refuses the header (a path outside the run, an unknown run) ends the call while
    chunks are still being written, and grpc.aio may then answer its own INTERNAL for the failed
    write instead of the refusal. The header alone, sent again, gets the service's own answer: the
    same refusal, or (when the header was fine and something else failed) a refusal of
    ``header.size``, in which case the first error stands.
    """

    async def messages(with_chunks: bool) -> AsyncIterator[tapi.UploadArtifactRequest]:
        yield tapi.UploadArtifactRequest(header=header)
        spool.seek(0)
        while with_chunks and (chunk := spool.read(CHUNK_BYTES)):
            yield tapi.UploadArtifactRequest(chunk=chunk)

    try:
        return await call(messages(True), metadata=metadata)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.INTERNAL or error.details() != _LOST_STATUS or header.size == 0:
            raise
        lost = error
    try:
        await call(messages(False), metadata=metadata)
    except grpc.RpcError as error:
        refused = error_from_rpc(error)
        if not (isinstance(refused, InvalidArgument) and refused.field == "header.size"):
            raise
    raise lost


def _quote(name: str) -> str:
    return name.replace("\\", "_").replace('"', "_")


def forwarded(request: Request) -> tuple[tuple[str, str], ...]:
    """What the services must see of the caller: its bearer token (the services check it too),
    from its ``Authorization`` header or from its dashboard session's cookie (the Guard checked
    either and left the session in the scope)."""
    cookie_session = request.scope.get(session.SCOPE_KEY)
    if cookie_session is not None:
        return (("authorization", f"Bearer {cookie_session.token}"),)
    authorization = request.headers.get("authorization")
    return (("authorization", authorization),) if authorization else ()
