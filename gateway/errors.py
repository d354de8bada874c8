"""The gateway's one error translation: a TuningError (ours, or rebuilt from a service's
gRPC status) becomes JSON with the gRPC code, an HTTP status and a message:

    {"error": {"code": 404, "status": "NOT_FOUND", "message": "...", "reason": "STUDY_NOT_FOUND"}}

(``field`` is added for INVALID_ARGUMENT.) Anything else is a 500 with an incident id; the
stack trace stays in the gateway's log.
"""

from __future__ import annotations

import logging
import uuid

from starlette.responses import JSONResponse

from tuning_common.errors import InvalidArgument, TuningError

log = logging.getLogger(__name__)

# As Google's API design guide maps gRPC codes to HTTP.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}


def http_status(error: TuningError) -> int:
    if error.reason == "REQUEST_TOO_LARGE":
        return 413
    return HTTP_STATUS.get(error.code, 500)


def error_body(status: int, code: str, message: str, reason: str, field: str | None = None) -> dict:
    body = {"code": status, "status": code, "message": message, "reason": reason}
    if field is not None:
        body["field"] = field
    return {"error": body}


def error_response(error: TuningError) -> JSONResponse:
    status = http_status(error)
    field = error.field if isinstance(error, InvalidArgument) else None
    headers = {"www-authenticate": 'Bearer realm="tuning"'} if status == 401 else None
    return JSONResponse(error_body(status, error.code, error.message, error.reason, field), status_code=status,
                        headers=headers)


def internal_error_response(where: str) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error in %s (incident %s)", where, incident)
    return JSONResponse(error_body(500, "INTERNAL", f"internal error (incident {incident}); see the gateway log",
                                   "INTERNAL"), status_code=500)
