"""The one translation point between :mod:`tuning_common.errors` and gRPC status codes.

Servers install :class:`ErrorMappingInterceptor`, so servicers contain no try/except.
Clients call :func:`error_from_rpc` to get the same exception class back, with the
``google.rpc.ErrorInfo`` reason and the ``google.rpc.BadRequest`` field restored.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tuning_common import telemetry
from tuning_common.errors import BY_CODE, InvalidArgument, TuningError

T = TypeVar("T")
log = logging.getLogger(__name__)

ERROR_DOMAIN = "tuning.dev"


def _status_for(error: TuningError) -> status_pb2.Status:
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details.append(info)
    if isinstance(error, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.description)
                ]
            )
        )
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return status_pb2.Status(code=code_pb2.Code.Value(error.code), message=error.message, details=packed)


async def abort_with_error(context: grpc.aio.ServicerContext, error: TuningError) -> None:
    """Ends the call with ``error``'s status and details (also used by the auth interceptor)."""
    status = rpc_status.to_status(_status_for(error))
    telemetry.record_rpc_status(status.code, error.message, error.reason)
    await context.abort_with_status(status)


async def _abort_internal(context: grpc.aio.ServicerContext, method: str) -> None:
    incident = uuid.uuid4().hex[:12]
    # The stack trace stays in the server log; the caller only gets the incident id.
    log.exception("unhandled error in %s (incident %s)", method, incident)
    telemetry.record_rpc_status(grpc.StatusCode.INTERNAL, f"incident {incident}")
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); see the server log")


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Runs our (synchronous) unary handlers for the asyncio server and maps their errors.

    With ``executor=None`` a handler runs on the event loop thread itself: no thread
    hand-off per call, which is right when the database admits one writer anyway
    (SQLite). With an executor, handlers run there, so transactions that wait on row
    locks (PostgreSQL) do not hold up the loop. Either way every :class:`TuningError`
    becomes its status code with rich details. Handlers that are already coroutines
    (health, reflection) pass through untouched.

    Streaming handlers (artifact upload and download) always run on a thread, since they
    block on files and on the peer: a client stream reaches the handler as a plain
    iterator fed from the loop, and a server stream's items are pulled on the thread.

    Requests whose bytes are not the method's message are bad input too: the wrapped
    handlers' deserializer turns a ``DecodeError`` into an :class:`_Undecodable` request
    (grpcio would answer the exception with UNKNOWN before any handler ran), and the
    handler answers it INVALID_ARGUMENT, reason ``MALFORMED_REQUEST``. A client stream's
    iterator raises that error where it meets the bad message.
    """

    def __init__(self, executor: Executor | None = None, executors: Mapping[str, Executor] | None = None):
        self.executor = executor
        # Methods that run on an executor of their own choosing whatever ``executor`` is.
        self.executors = dict(executors or {})

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        # Interceptors before this one (auth, telemetry) keep the deserializer set here.
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None and not inspect.iscoroutinefunction(handler.unary_unary):
            executor = self.executors.get(method, self.executor)
            return handler._replace(unary_unary=self._wrap(handler.unary_unary, method, executor),
                                    request_deserializer=deserializer)
        if handler.stream_unary is not None and not inspect.iscoroutinefunction(handler.stream_unary):
            return handler._replace(stream_unary=self._wrap_client_stream(handler.stream_unary, method),
                                    request_deserializer=deserializer)
        if handler.unary_stream is not None and not inspect.isasyncgenfunction(handler.unary_stream):
            return handler._replace(unary_stream=self._wrap_server_stream(handler.unary_stream, method),
                                    request_deserializer=deserializer)
        # Coroutine handlers (health, reflection) are not ours: their deserializer is left as is.
        return handler

    def _wrap_client_stream(self, behaviour: Callable, method: str) -> Callable:
        executor = self.executor

        async def handler(request_iterator, context: grpc.aio.ServicerContext) -> Any:
            loop = asyncio.get_running_loop()

            def requests():
                while True:
                    try:
                        request = asyncio.run_coroutine_threadsafe(request_iterator.__anext__(), loop).result()
                    except StopAsyncIteration:
                        return
                    if isinstance(request, _Undecodable):
                        raise request.error()
                    yield request

            try:
                return await loop.run_in_executor(executor, _in_context(behaviour, requests(), context))
            except TuningError as error:
                await abort_with_error(context, error)
            except Exception:
                await _abort_internal(context, method)

        return handler

    def _wrap_server_stream(self, behaviour: Callable, method: str) -> Callable:
        executor = self.executor
        done = object()

        async def handler(request: Any, context: grpc.aio.ServicerContext):
            loop = asyncio.get_running_loop()
            if isinstance(request, _Undecodable):
                await abort_with_error(context, request.error())  # raises: the call ends here
            try:
                responses = await loop.run_in_executor(executor, _in_context(lambda: iter(behaviour(request, context))))
                while (item := await loop.run_in_executor(executor, _in_context(next, responses, done))) is not done:
                    yield item
            except TuningError as error:
                await abort_with_error(context, error)
            except Exception:
                await _abort_internal(context, method)

        return handler

    @staticmethod
    def _wrap(behaviour: Callable, method: str, executor: Executor | None) -> Callable:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await abort_with_error(context, request.error())  # raises: the call ends here
            try:
                if executor is None:
                    return behaviour(request, context)
                return await asyncio.get_running_loop().run_in_executor(
                    executor, _in_context(behaviour, request, context))
            except TuningError as error:
                await abort_with_error(context, error)
            except Exception:
                await _abort_internal(context, method)

        return handler


class _Undecodable:
    """A request whose bytes did not decode as ``message`` (what the decoder said in ``detail``)."""

    __slots__ = ("message", "detail")

    def __init__(self, message: str, detail: str):
        self.message = message
        self.detail = detail

    def error(self) -> InvalidArgument:
        return InvalidArgument("request", f"the request is not a valid {self.message} message: {self.detail}",
                               reason="MALFORMED_REQUEST")


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer``, returning an :class:`_Undecodable` instead of raising ``DecodeError``
    (nothing else is caught: any other failure stays grpcio's)."""
    if deserializer is None:
        return None
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None) or getattr(deserializer, "__qualname__", "request")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:
            return _Undecodable(name, str(error) or "the wire format is corrupt")

    return deserialize


def _in_context(function: Callable, *args: Any) -> Callable[[], Any]:
    """``function(*args)`` for an executor thread, run in the calling task's context variables
    (run_in_executor does not carry them over: the call's trace would be lost)."""
    return functools.partial(contextvars.copy_context().run, function, *args)


def error_from_rpc(error: grpc.RpcError) -> TuningError:
    """The exception a server raised, rebuilt from the status it sent."""
    # grpc.aio's errors carry the same status but are not grpc.Call.
    call = isinstance(error, (grpc.Call, grpc.aio.AioRpcError))
    code = error.code() if call else grpc.StatusCode.UNKNOWN
    message = (error.details() if call else None) or str(error)
    reason, metadata, violation = None, {}, None
    status = rpc_status.from_call(error) if call else None
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                violation = bad.field_violations[0]
    if code is grpc.StatusCode.CANCELLED:
        # Our clients never cancel their own calls, so this is a server going away mid-call
        # (graceful shutdown): as retryable as UNAVAILABLE.
        return BY_CODE["UNAVAILABLE"](message, reason="SERVER_SHUTTING_DOWN")
    cls = BY_CODE.get(code.name, BY_CODE["INTERNAL"])
    if cls is InvalidArgument:
        if violation is None:
            return InvalidArgument("request", message, reason=reason, metadata=metadata)
        return InvalidArgument(violation.field, violation.description, reason=reason, metadata=metadata)
    return cls(message, reason=reason, metadata=metadata)


# CANCELLED: see error_from_rpc (a server shutting down cancels in-flight calls).
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
# The longest pause between retries: about a channel's own reconnect backoff (tls.RECONNECT_OPTIONS),
# so a restarted service is found within a couple of seconds.
MAX_BACKOFF = 2.0


def call_with_retries(attempt: Callable[[], T], *, retries: int, backoff: float, max_backoff: float) -> T:
    """``attempt()``, again after RETRYABLE failures with jittered exponential backoff (at most
    ``retries`` more times); any other failure, or the last, raises the rebuilt TuningError."""
    delay = backoff
    for number in range(retries + 1):
        try:
            return attempt()
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code not in RETRYABLE or number == retries:
                raise error_from_rpc(error) from None
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, max_backoff)
    raise AssertionError("unreachable")
