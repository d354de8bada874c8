"""MLflow's artifact APIs over our streamed artifacts.

MLflow 3's client proxies artifacts through the tracking server when a run's artifact_uri is
``mlflow-artifacts:/<experiment>/<run>/artifacts``: it PUTs each file to
``/api/2.0/mlflow-artifacts/artifacts/<that path>/<file>``, GETs it back from the same path and
lists folders with ``GET /api/2.0/mlflow-artifacts/artifacts?path=<folder>`` (names relative to
the folder). Those paths name the run, so each request is one UploadArtifact, DownloadArtifact or
ListArtifacts of that run; our path checks (no traversal in any encoding) apply unchanged.
Listing a missing folder, or a file, gives an empty list as MLflow's server does.
"""

from __future__ import annotations

import hashlib
import mimetypes
import tempfile
from collections.abc import AsyncIterator

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.http_api import RequestTooLarge, forwarded, upload_artifact
from gateway.mlflow import convert
from gateway.mlflow.context import Context
from gateway.mlflow.errors import MlflowError, from_tuning_error
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning_common.grpc_errors import error_from_rpc


def file_json(info: pb.FileInfo, path: str) -> dict:
    out = {"path": path, "is_dir": info.is_dir}
    if not info.is_dir:
        out["file_size"] = info.size
    return out


async def listing(ctx: Context, run_id: str, path: str) -> list[pb.FileInfo]:
    """One folder of a run's artifacts; [] for a missing folder or a file (the run must exist)."""
    try:
        return list((await ctx.tracking("ListArtifacts", api.ListArtifactsRequest(run_id=run_id, path=path))).files)
    except MlflowError as error:
        # A missing folder (NOT_FOUND) or a file (FAILED_PRECONDITION): only the run's absence is an error.
        if error.origin not in ("NOT_FOUND", "FAILED_PRECONDITION") or not path:
            raise
        await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))
        return []


async def list_proxied(ctx: Context) -> dict:
    """``GET /api/2.0/mlflow-artifacts/artifacts?path=<experiment>/<run>/artifacts/<folder>``."""
    path = ctx.text("path").strip("/")
    if not path or "/" not in path:
        # The store's root or an experiment's folder: runs are not listed as folders here.
        return {"files": []}
    run_id, inner = convert.split_artifact_path(path)
    files = await listing(ctx, run_id, inner)
    return {"files": [file_json(f, f.path.rsplit("/", 1)[-1]) for f in files]}


async def list_run(ctx: Context) -> dict:
    """``GET /api/2.0/mlflow/artifacts/list?run_id=&path=`` (paths relative to the run's root)."""
    run_id = convert.check_run_id(ctx.text("run_id", "run_uuid", required=True))
    run = (await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))).run
    files = await listing(ctx, run_id, ctx.text("path").strip("/"))
    return {"root_uri": convert.run_artifact_uri(run.experiment_id, run.id),
            "files": [file_json(f, f.path) for f in files]}


async def upload(request: Request, stubs, max_bytes: int) -> dict:
    run_id, path = convert.split_artifact_path(request.path_params["path"])
    if not path:
        raise MlflowError.invalid("an artifact upload needs a file path after <experiment>/<run>/artifacts/")
    with tempfile.TemporaryFile(prefix="tuning-mlflow-upload-") as spool:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise RequestTooLarge(max_bytes)
            digest.update(chunk)
            spool.write(chunk)
        header = api.ArtifactHeader(run_id=run_id, path=path, size=size, sha256=digest.hexdigest())
        try:
            await upload_artifact(stubs["TrackingService"].UploadArtifact, header, spool, forwarded(request))
        except grpc.RpcError as error:
            raise from_tuning_error(error_from_rpc(error)) from None
    return {}


async def download(request: Request, stubs) -> Response:
    run_id, path = convert.split_artifact_path(request.path_params["path"])
    call = stubs["TrackingService"].DownloadArtifact(api.DownloadArtifactRequest(run_id=run_id, path=path),
                                                     metadata=forwarded(request))
    try:
        first = await call.read()
    except grpc.RpcError as error:
        raise from_tuning_error(error_from_rpc(error)) from None
    if first is grpc.aio.EOF or not first.HasField("file"):
        raise MlflowError("INTERNAL_ERROR", "the tracking service sent no file header")
    info = first.file

    async def chunks() -> AsyncIterator[bytes]:
        # An error after the headers can only cut the body short; Content-Length lets the client notice.
        while (part := await call.read()) is not grpc.aio.EOF:
            yield part.chunk

    media_type = mimetypes.guess_type(info.path)[0] or "application/octet-stream"
    headers = {"content-length": str(info.size), "x-checksum-sha256": info.sha256}
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)
