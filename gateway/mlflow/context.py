"""One MLflow request: its parameters (query string and JSON body, as MLflow's server reads them)
and the RPCs it makes, with errors in MLflow's terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from starlette.requests import Request

from gateway.http_api import UNARY_TIMEOUT, forwarded, read_json, record_actor
from gateway.mlflow.errors import MlflowError, from_tuning_error
from tuning_common.grpc_errors import error_from_rpc

T, R = "TrackingService", "ModelRegistryService"


class Context:
    def __init__(self, request: Request, stubs: Mapping[str, Any], params: dict[str, Any]):
        self.request = request
        self.stubs = stubs
        self.params = params

    @classmethod
    async def of(cls, request: Request, stubs: Mapping[str, Any], max_json_bytes: int, *,
                 read_body: bool = True) -> Context:
        params: dict[str, Any] = {}
        if read_body and request.method != "GET":
            body = await read_json(request, max_json_bytes)
            params.update(body or {})
        for name in request.query_params:
            values = request.query_params.getlist(name)
            params.setdefault(name, values if len(values) > 1 else values[0])
        params.update(request.path_params)
        return cls(request, stubs, params)

    # -- parameters ---------------------------------------------------------------------------

    def text(self, *names: str, default: str = "", required: bool = False) -> str:
        """The first of ``names`` given (MLflow accepts run_id and run_uuid alike)."""
        for name in names:
            value = self.params.get(name)
            if value is not None and value != "":
                if isinstance(value, (list, dict)):
                    raise MlflowError.invalid(f"{name} must be a single value")
                return str(value)
        if required:
            raise MlflowError.invalid(f"Missing value for required parameter '{names[0]}'. See the API docs "
                                      "for more information about request parameters.")
        return default

    def integer(self, name: str, default: int = 0) -> int:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise MlflowError.invalid(f"{name} must be an integer, got {value!r:.40}") from None

    def flag(self, name: str) -> bool:
        value = self.params.get(name, False)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def strings(self, name: str) -> list[str]:
        value = self.params.get(name)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            return [str(v) for v in value]
        return [str(value)]

    def items(self, name: str) -> list:
        value = self.params.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise MlflowError.invalid(f"{name} must be a list")
        return value

    # -- RPCs ---------------------------------------------------------------------------------

    async def call(self, service: str, rpc: str, message: Any) -> Any:
        try:
            return await getattr(self.stubs[service], rpc)(message, timeout=UNARY_TIMEOUT,
                                                           metadata=forwarded(self.request))
        except grpc.RpcError as error:
            raise from_tuning_error(error_from_rpc(error)) from None

    def tracking(self, rpc: str, message: Any):
        return self.call(T, rpc, message)

    def registry(self, rpc: str, message: Any):
        # MLflow's requests name no actor: with tokens on, the audit records the token's principal.
        record_actor(message, self.request)
        return self.call(R, rpc, message)
