"""The suite's one family of exceptions.

Domain and service code raise these; :mod:`tuning_common.grpc_errors` is the only place
that turns them into gRPC status codes (and clients turn codes back into them). Each
class carries the canonical status name it maps to and a machine-readable ``reason``.
"""

from __future__ import annotations


class TuningError(Exception):
    """Base class. ``reason`` is a stable UPPER_SNAKE identifier for programs."""

    code = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(TuningError):
    """A request field is malformed or out of range. ``field`` names it (``spec.parameters[0].float_range.low``)."""

    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str, **kwargs):
        super().__init__(f"{field}: {description}", **kwargs)
        self.field = field
        self.description = description


class NotFound(TuningError):
    code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(TuningError):
    code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(TuningError):
    """The request is valid but the resource is not in a state that allows it."""

    code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class Aborted(TuningError):
    """A conflict with a concurrent change; the caller may retry the whole operation."""

    code = "ABORTED"
    default_reason = "ABORTED"


class ResourceExhausted(TuningError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unauthenticated(TuningError):
    code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(TuningError):
    code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class Unavailable(TuningError):
    """The service could not be reached (raised by clients after their retries)."""

    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(TuningError):
    code = "DEADLINE_EXCEEDED"
    default_reason = "DEADLINE_EXCEEDED"


class Internal(TuningError):
    code = "INTERNAL"
    default_reason = "INTERNAL"


BY_CODE: dict[str, type[TuningError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}
