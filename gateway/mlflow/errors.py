"""MLflow's error JSON and status codes, and the translation from ours.

MLflow answers errors as ``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`` with
the HTTP status of ``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS`` (from
``mlflow/protos/databricks.proto``): the client turns that body back into an
``MlflowException`` with the same ``error_code``, and callers branch on it (``get_experiment_by_name``
returns None on RESOURCE_DOES_NOT_EXIST, ``register_model`` carries on past
RESOURCE_ALREADY_EXISTS). The client retries 429, 500, 502, 503 and 504.
"""

from __future__ import annotations

import logging
import uuid

from starlette.responses import JSONResponse

from tuning_common.errors import TuningError

log = logging.getLogger(__name__)

# MLflow's own table (mlflow/exceptions.py), for the codes we send.
HTTP_STATUS = {
    "INVALID_PARAMETER_VALUE": 400, "BAD_REQUEST": 400, "RESOURCE_ALREADY_EXISTS": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "RESOURCE_DOES_NOT_EXIST": 404, "ENDPOINT_NOT_FOUND": 404,
    "ABORTED": 409, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL_ERROR": 500, "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}

# Our canonical (gRPC) codes -> MLflow's. FAILED_PRECONDITION (a deleted run, a changed param)
# is what MLflow reports as INVALID_PARAMETER_VALUE; its INVALID_STATE would be a 500.
FROM_OURS = {
    "INVALID_ARGUMENT": "INVALID_PARAMETER_VALUE", "FAILED_PRECONDITION": "INVALID_PARAMETER_VALUE",
    "OUT_OF_RANGE": "INVALID_PARAMETER_VALUE", "NOT_FOUND": "RESOURCE_DOES_NOT_EXIST",
    "ALREADY_EXISTS": "RESOURCE_ALREADY_EXISTS", "ABORTED": "ABORTED", "RESOURCE_EXHAUSTED": "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED": "UNAUTHENTICATED", "PERMISSION_DENIED": "PERMISSION_DENIED",
    "UNAVAILABLE": "TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED": "DEADLINE_EXCEEDED", "CANCELLED": "CANCELLED",
    "UNIMPLEMENTED": "NOT_IMPLEMENTED", "INTERNAL": "INTERNAL_ERROR", "UNKNOWN": "INTERNAL_ERROR",
    "DATA_LOSS": "INTERNAL_ERROR",
}

# Refusals that no retry can cure are sent as 400 rather than 429 (which the client retries).
_NOT_RETRYABLE = frozenset({"REQUEST_TOO_LARGE"})


class MlflowError(Exception):
    """An error in MLflow's terms, raised by the MLflow handlers themselves."""

    def __init__(self, error_code: str, message: str, origin: str | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        # Our canonical code when the error came from a service (FAILED_PRECONDITION, ...).
        self.origin = origin

    @classmethod
    def invalid(cls, message: str) -> MlflowError:
        return cls("INVALID_PARAMETER_VALUE", message)

    @classmethod
    def missing(cls, message: str) -> MlflowError:
        return cls("RESOURCE_DOES_NOT_EXIST", message)

    @classmethod
    def unsupported(cls, message: str) -> MlflowError:
        return cls("NOT_IMPLEMENTED", message)


def from_tuning_error(error: TuningError) -> MlflowError:
    code = FROM_OURS.get(error.code, "INTERNAL_ERROR")
    if code == "RESOURCE_EXHAUSTED" and error.reason in _NOT_RETRYABLE:
        code = "INVALID_PARAMETER_VALUE"
    return MlflowError(code, error.message, origin=error.code)


def error_body(error_code: str, message: str) -> dict:
    return {"error_code": error_code, "message": message}


def error_response(error: MlflowError) -> JSONResponse:
    status = HTTP_STATUS.get(error.error_code, 500)
    headers = {"www-authenticate": 'Bearer realm="tuning"'} if status == 401 else None
    return JSONResponse(error_body(error.error_code, error.message), status_code=status, headers=headers)


def internal_error_response(where: str) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error in %s (incident %s)", where, incident)
    return error_response(MlflowError("INTERNAL_ERROR", f"internal error (incident {incident}); see the gateway log"))
