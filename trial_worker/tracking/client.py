"""A typed client for the tracking service: one method per RPC of TrackingService and ModelRegistryService.

    from trial_worker.tracking import TrackingClient, metric

    with TrackingClient("127.0.0.1:50052") as client:
        experiment = client.create_experiment("wine")
        run = client.create_run(experiment.id, name="baseline")
        client.log_batch(run.id, params={"max_depth": "6"}, metrics=[metric("loss", 0.3, step=1)])
        client.upload_file(run.id, "model.json", "model")

Methods return the proto messages of ``tuning.tracking.v1``; searches and histories are
iterators that fetch one page at a time. Errors come back as :mod:`tuning_common.errors`
exceptions. UNAVAILABLE (and CANCELLED, a server going away mid-call) is retried with
jittered exponential backoff: every RPC is safe to repeat (``create_run`` sends a request id
so a retry returns the same run, ``log_batch`` and ``log_metric`` one so that a replayed batch
stores nothing) except ``CreateModelVersion``, which is never retried since
a repeat would register a second version.

For logging from training code use :class:`trial_worker.tracking.RunLogger` (batched, off
the caller's thread, spooled to disk while the service is down) or the module-level API of
:mod:`trial_worker.tracking.fluent`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from trial_worker.webhooks import WebhookCalls, event_value
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import registry_service_pb2_grpc as rapi_grpc
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning.tracking.v1 import webhook_pb2 as wpb
from tuning_common import telemetry, tls
from tuning_common.auth import authorized_channel, client_token
from tuning_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TuningError,
    Unavailable,
)
from tuning_common.grpc_errors import MAX_BACKOFF, call_with_retries
from tuning_types.convert import timestamp

DEFAULT_ADDRESS = "127.0.0.1:50052"
CHUNK_BYTES = 1024 * 1024

# CANCELLED: see tuning_common.grpc_errors.error_from_rpc.
# A second CreateModelVersion registers a second version: never repeated behind the caller's back
# (nor is TestWebhook: see trial_worker.webhooks).
_NOT_REPEATABLE = {"CreateModelVersion"}

_STATUS_NAMES = {name.removeprefix("RUN_STATUS_"): value for name, value in pb.RunStatus.items()
                 if value != pb.RUN_STATUS_UNSPECIFIED}
_STAGE_NAMES = {"none": rpb.STAGE_NONE, "staging": rpb.STAGE_STAGING, "production": rpb.STAGE_PRODUCTION,
                "archived": rpb.STAGE_ARCHIVED}

T = TypeVar("T")


def tracking_address() -> str:
    """``$TUNING_TRACKING_ADDRESS``, or the local default ``127.0.0.1:50052``."""
    return os.environ.get("TUNING_TRACKING_ADDRESS", DEFAULT_ADDRESS)


class ChecksumMismatch(TuningError):
    """A downloaded file's bytes do not match the size or SHA-256 the service announced."""

    code = "DATA_LOSS"
    default_reason = "CHECKSUM_MISMATCH"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def metric(key: str, value: float, *, step: int = 0, timestamp_ms: int | None = None) -> pb.Metric:
    """A metric point, stamped now unless ``timestamp_ms`` is given."""
    return pb.Metric(key=key, value=float(value), step=step,
                     timestamp=timestamp(now_ms() if timestamp_ms is None else timestamp_ms))


def metric_series(key: str, values: Sequence[float], steps: Sequence[int] = (),
                  timestamps_ms: Sequence[int] = ()) -> pb.MetricSeries:
    """Points of one metric in columns, the compact form of a batch (empty steps mean 0, empty
    timestamps mean when the service receives them)."""
    return pb.MetricSeries(key=key, values=values, steps=steps, timestamps_ms=timestamps_ms)


def run_status(status: int | str) -> int:
    """A ``RunStatus`` value from itself or its name ("FINISHED", "failed", ...)."""
    if isinstance(status, str):
        try:
            return _STATUS_NAMES[status.upper().removeprefix("RUN_STATUS_")]
        except KeyError:
            raise InvalidArgument("status", f"expected one of {sorted(_STATUS_NAMES)}, got {status!r}") from None
    return status


def model_stage(value: int | str) -> int:
    """A registry ``Stage`` value from itself or its name ("Staging", "production", ...)."""
    if isinstance(value, str):
        try:
            return _STAGE_NAMES[value.lower().removeprefix("stage_")]
        except KeyError:
            raise InvalidArgument("stage", f"expected one of None, Staging, Production, Archived, got {value!r}"
                                  ) from None
    return value


def webhook_event(value: int | str) -> int:
    """A ``WebhookEvent`` value from itself or its name ("STAGE_CHANGED", "stage_changed", ...)."""
    return event_value(wpb.WebhookEvent, value)


def _tags(tags: Mapping[str, str] | Sequence[pb.Tag] | None) -> list[pb.Tag]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [pb.Tag(key=k, value=str(v)) for k, v in tags.items()]
    return list(tags)


def _params(params: Mapping[str, Any] | Sequence[pb.Param]) -> list[pb.Param]:
    if isinstance(params, Mapping):
        return [pb.Param(key=k, value=str(v)) for k, v in params.items()]
    return list(params)


def _pages(fetch: Callable[[str], Any], field: str) -> Iterator[Any]:
    token = ""
    while True:
        page = fetch(token)
        yield from getattr(page, field)
        if not (token := page.next_page_token):
            return


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _join(*parts: str | None) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _write_checked(target: Path, chunks: Iterable[bytes], info: pb.FileInfo, what: str) -> Path:
    """Writes ``chunks`` to ``target`` through a partial file renamed into place only when the bytes have
    the size and SHA-256 of ``info`` (an empty SHA-256: an object another tool wrote, size checked only)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as file:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                file.write(chunk)
        if size != info.size or (info.sha256 and digest.hexdigest() != info.sha256):
            raise ChecksumMismatch(f"{what}: received {size} bytes with SHA-256 {digest.hexdigest()}, the service "
                                   f"announced {info.size} bytes with SHA-256 {info.sha256 or '(unknown)'}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _local_target(root: Path, relative: str) -> Path:
    """``root/relative`` for a path the service sent, refused if it would leave ``root``."""
    parts = relative.split("/") if relative else []
    for part in parts:
        if part in ("", ".", "..") or "\\" in part or "\x00" in part:
            raise InvalidArgument("path", f"unsafe artifact path {relative!r:.200}: it would leave the download folder")
    return root.joinpath(*parts)


class TrackingClient:
    """One channel to a tracking service (and its model registry). Thread-safe; close it (or use ``with``).

    ``timeout`` bounds each unary call; ``artifact_timeout`` each artifact stream (None: no
    deadline, since a large file may take long). ``retries``, ``backoff`` and ``max_backoff``
    shape the retrying of UNAVAILABLE. ``token`` (default ``$TUNING_TOKEN``; "" for none) is
    sent as a bearer token with every call, artifact streams included.
    """

    def __init__(self, address: str | None = None, *, timeout: float = 30.0, retries: int = 6, backoff: float = 0.1,
                 max_backoff: float = MAX_BACKOFF, artifact_timeout: float | None = None,
                 channel: grpc.Channel | None = None, token: str | None = None):
        self.address = address or tracking_address()
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.artifact_timeout = artifact_timeout
        channel = channel or tls.channel(self.address)
        self._channel = telemetry.traced_channel(authorized_channel(channel, client_token(token)))
        tracking = api_grpc.TrackingServiceStub(self._channel)
        registry = rapi_grpc.ModelRegistryServiceStub(self._channel)
        self._rpcs: dict[str, Any] = {}
        for stub, service in ((tracking, api.DESCRIPTOR.services_by_name["TrackingService"]),
                              (registry, rapi.DESCRIPTOR.services_by_name["ModelRegistryService"])):
            for method in service.methods:
                self._rpcs[method.name] = getattr(stub, method.name)
        self._webhooks = WebhookCalls(self.call, rapi, wpb.WebhookEvent, "", "model_name")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TrackingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retrying(self, attempt: Callable[[], T], retries: int | None) -> T:
        return call_with_retries(attempt, retries=self.retries if retries is None else retries,
                                 backoff=self.backoff, max_backoff=self.max_backoff)

    def call(self, method: str, request: Any, *, retries: int | None = None) -> Any:
        """Calls a unary RPC by name, retrying UNAVAILABLE ``retries`` times (default: the client's)."""
        rpc = self._rpcs[method]
        if method in _NOT_REPEATABLE:
            retries = 0
        return self._retrying(lambda: rpc(request, timeout=self.timeout), retries)

    # --- experiments --------------------------------------------------------------------------

    def create_experiment(self, name: str, *, artifact_location: str = "",
                          tags: Mapping[str, str] | None = None) -> pb.Experiment:
        request = api.CreateExperimentRequest(name=name, artifact_location=artifact_location, tags=_tags(tags))
        return self.call("CreateExperiment", request).experiment

    def get_experiment(self, experiment_id: int) -> pb.Experiment:
        return self.call("GetExperiment", api.GetExperimentRequest(experiment_id=experiment_id)).experiment

    def get_experiment_by_name(self, name: str) -> pb.Experiment:
        return self.call("GetExperimentByName", api.GetExperimentByNameRequest(name=name)).experiment

    def get_or_create_experiment(self, name: str) -> pb.Experiment:
        """The active experiment ``name``, created if there is none (FAILED_PRECONDITION if it is deleted)."""
        try:
            experiment = self.get_experiment_by_name(name)
        except NotFound:
            try:
                return self.create_experiment(name)
            except AlreadyExists:  # created by another process meanwhile
                experiment = self.get_experiment_by_name(name)
        if experiment.lifecycle_stage == pb.LIFECYCLE_STAGE_DELETED:
            raise FailedPrecondition(f"experiment {name!r} is deleted: restore or rename it",
                                     reason="EXPERIMENT_DELETED")
        return experiment

    def search_experiments(self, filter: str = "", *, order_by: Sequence[str] = (),
                           view_type: int = pb.VIEW_TYPE_ACTIVE_ONLY, page_size: int = 100
                           ) -> Iterator[pb.Experiment]:
        def fetch(token: str) -> api.SearchExperimentsResponse:
            return self.call("SearchExperiments", api.SearchExperimentsRequest(
                filter=filter, order_by=order_by, view_type=view_type, page_size=page_size, page_token=token))

        return _pages(fetch, "experiments")

    def rename_experiment(self, experiment_id: int, new_name: str) -> pb.Experiment:
        request = api.RenameExperimentRequest(experiment_id=experiment_id, new_name=new_name)
        return self.call("RenameExperiment", request).experiment

    def set_experiment_tag(self, experiment_id: int, key: str, value: str) -> None:
        self.call("SetExperimentTag", api.SetExperimentTagRequest(experiment_id=experiment_id, key=key, value=value))

    def delete_experiment(self, experiment_id: int) -> None:
        self.call("DeleteExperiment", api.DeleteExperimentRequest(experiment_id=experiment_id))

    def restore_experiment(self, experiment_id: int) -> None:
        self.call("RestoreExperiment", api.RestoreExperimentRequest(experiment_id=experiment_id))

    def set_experiment_permission(self, experiment_id: int, subject: str, role: str) -> pb.Permission:
        """Gives ``subject`` (``user:NAME`` or ``group:NAME``) ``role`` (reader, editor, manager) on
        an experiment, with roles on (docs/OPERATIONS.md "Roles")."""
        request = api.SetExperimentPermissionRequest(experiment_id=experiment_id, subject=subject, role=role)
        return self.call("SetExperimentPermission", request).permission

    def delete_experiment_permission(self, experiment_id: int, subject: str) -> None:
        self.call("DeleteExperimentPermission",
                  api.DeleteExperimentPermissionRequest(experiment_id=experiment_id, subject=subject))

    def list_experiment_permissions(self, experiment_id: int) -> list[pb.Permission]:
        request = api.ListExperimentPermissionsRequest(experiment_id=experiment_id)
        return list(self.call("ListExperimentPermissions", request).permissions)

    # --- runs ---------------------------------------------------------------------------------

    def create_run(self, experiment_id: int = 0, *, name: str = "", start_time_ms: int | None = None,
                   tags: Mapping[str, str] | None = None, parent_run_id: str = "", run_group: str = "",
                   user: str = "", trial: pb.TrialLink | None = None, status: int | str = pb.RUN_STATUS_RUNNING,
                   request_id: str | None = None) -> pb.Run:
        """Starts a run. A request id (generated unless given) makes the retries return the same run."""
        request = api.CreateRunRequest(
            experiment_id=experiment_id, name=name, tags=_tags(tags), parent_run_id=parent_run_id,
            run_group=run_group, user=user, trial=trial, status=run_status(status),
            request_id=request_id or uuid.uuid4().hex,
        )
        if start_time_ms is not None:
            request.start_time.CopyFrom(timestamp(start_time_ms))
        return self.call("CreateRun", request).run

    def get_run(self, run_id: str) -> pb.Run:
        return self.call("GetRun", api.GetRunRequest(run_id=run_id)).run

    def update_run(self, run_id: str, *, status: int | str = pb.RUN_STATUS_UNSPECIFIED,
                   end_time_ms: int | None = None, name: str = "") -> pb.Run:
        """Changes status, end time or name; a terminal status without an end time ends the run now."""
        request = api.UpdateRunRequest(run_id=run_id, status=run_status(status), name=name)
        if end_time_ms is not None:
            request.end_time.CopyFrom(timestamp(end_time_ms))
        return self.call("UpdateRun", request).run

    def search_runs(self, experiment_ids: Sequence[int], filter: str = "", *, order_by: Sequence[str] = (),
                    view_type: int = pb.VIEW_TYPE_ACTIVE_ONLY, max_results: int | None = None,
                    page_size: int = 1_000) -> Iterator[pb.Run]:
        """Runs matching ``filter`` (the language of docs/TRACKING.md), at most ``max_results`` of them."""
        if max_results is not None:
            page_size = max(1, min(page_size, max_results))

        def fetch(token: str) -> api.SearchRunsResponse:
            return self.call("SearchRuns", api.SearchRunsRequest(
                experiment_ids=experiment_ids, filter=filter, order_by=order_by, view_type=view_type,
                page_size=page_size, page_token=token))

        # islice stops at max_results without asking for a page beyond it.
        return itertools.islice(_pages(fetch, "runs"), max_results)

    def delete_run(self, run_id: str) -> None:
        self.call("DeleteRun", api.DeleteRunRequest(run_id=run_id))

    def restore_run(self, run_id: str) -> None:
        self.call("RestoreRun", api.RestoreRunRequest(run_id=run_id))

    # --- logging ------------------------------------------------------------------------------

    def log_batch(self, run_id: str, *, metrics: Sequence[pb.Metric] = (),
                  params: Mapping[str, Any] | Sequence[pb.Param] = (),
                  tags: Mapping[str, str] | Sequence[pb.Tag] = (), series: Sequence[pb.MetricSeries] = (),
                  request_id: str | None = None) -> None:
        """At most 1,000 metrics, 10,000 points in ``series`` (see :func:`metric_series`), 100 params
        and 100 tags, stored atomically (see RunLogger for more). The batch carries a request id
        (a new one unless given), so a retry after a lost reply stores nothing twice, points
        without timestamps included."""
        request = api.LogBatchRequest(run_id=run_id, metrics=metrics, params=_params(params), tags=_tags(tags),
                                      series=series, request_id=request_id or uuid.uuid4().hex)
        self.call("LogBatch", request)

    def log_metric(self, run_id: str, key: str, value: float, *, step: int = 0,
                   timestamp_ms: int | None = None) -> None:
        request = api.LogMetricRequest(run_id=run_id, metric=metric(key, value, step=step, timestamp_ms=timestamp_ms),
                                       request_id=uuid.uuid4().hex)
        self.call("LogMetric", request)

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.call("LogParam", api.LogParamRequest(run_id=run_id, param=pb.Param(key=key, value=str(value))))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.call("SetTag", api.SetTagRequest(run_id=run_id, tag=pb.Tag(key=key, value=str(value))))

    def delete_tag(self, run_id: str, key: str) -> None:
        self.call("DeleteTag", api.DeleteTagRequest(run_id=run_id, key=key))

    def log_inputs(self, run_id: str, inputs: Sequence[pb.DatasetInput]) -> None:
        self.call("LogInputs", api.LogInputsRequest(run_id=run_id, inputs=inputs))

    def get_metric_history(self, run_id: str, key: str, *, max_points: int = 0,
                           page_size: int = 10_000) -> Iterator[pb.Metric]:
        """Every point of a metric by step, then timestamp (or about ``max_points`` of them, down-sampled)."""
        def fetch(token: str) -> api.GetMetricHistoryResponse:
            return self.call("GetMetricHistory", api.GetMetricHistoryRequest(
                run_id=run_id, key=key, page_size=page_size, page_token=token, max_points=max_points))

        return _pages(fetch, "metrics")

    # --- artifacts ----------------------------------------------------------------------------

    def upload_file(self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None
                    ) -> pb.FileInfo:
        """Uploads one file into the folder ``artifact_path`` of the run's artifacts (None: the root).

        The file keeps its name; it is streamed in 1 MiB chunks after a header carrying its size
        and SHA-256, which the service checks before storing anything.
        """
        local = Path(local_path)
        sha256, size = _sha256(local)
        header = api.ArtifactHeader(run_id=run_id, path=_join(artifact_path, local.name), size=size, sha256=sha256)

        def messages() -> Iterator[api.UploadArtifactRequest]:
            yield api.UploadArtifactRequest(header=header)
            with local.open("rb") as file:
                while chunk := file.read(CHUNK_BYTES):
                    yield api.UploadArtifactRequest(chunk=chunk)

        rpc = self._rpcs["UploadArtifact"]
        return self._retrying(lambda: rpc(messages(), timeout=self.artifact_timeout), None).file

    def upload_dir(self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None
                   ) -> list[pb.FileInfo]:
        """Uploads the files under ``local_dir`` (recursively) into ``artifact_path``."""
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidArgument("local_dir", f"{root} is not a folder")
        uploaded = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            relative = Path(folder).relative_to(root).as_posix()
            for name in sorted(files):
                target = _join(artifact_path, "" if relative == "." else relative)
                uploaded.append(self.upload_file(run_id, Path(folder) / name, target))
        return uploaded

    def list_artifacts(self, run_id: str, path: str = "") -> list[pb.FileInfo]:
        """One level of the run's artifacts; paths are relative to the run's artifact root."""
        return list(self.call("ListArtifacts", api.ListArtifactsRequest(run_id=run_id, path=path)).files)

    def artifact_download_url(self, run_id: str, path: str, *,
                              expires_in_seconds: int = 0) -> api.GetArtifactDownloadUrlResponse:
        """A URL that downloads the file straight from the artifact store (S3), its expiry and the file's
        size and SHA-256. FailedPrecondition (DIRECT_URLS_UNSUPPORTED) when the store is a folder."""
        return self.call("GetArtifactDownloadUrl", api.GetArtifactDownloadUrlRequest(
            run_id=run_id, path=path, expires_in_seconds=expires_in_seconds))

    def download(self, run_id: str, path: str = "", local_dir: str | os.PathLike = ".", *,
                 direct: bool = False) -> Path:
        """Downloads a file or folder of the run's artifacts to ``local_dir/path`` and returns that path.

        Each file's size and SHA-256 are checked against what the service announced
        (:class:`ChecksumMismatch` otherwise); a file is renamed into place only once complete. With
        ``direct``, the bytes come from the artifact store itself through a presigned URL
        (:meth:`artifact_download_url`), not through the service.
        """
        root, path = Path(local_dir), path.strip("/")
        target = _local_target(root, path)
        if path:
            try:
                return self._download_file(run_id, path, target, direct)
            except FailedPrecondition as error:
                if error.reason == "DIRECT_URLS_UNSUPPORTED":
                    raise
                # a folder
        self._download_folder(run_id, path, root, direct)
        return target

    def _download_folder(self, run_id: str, path: str, root: Path, direct: bool) -> None:
        _local_target(root, path).mkdir(parents=True, exist_ok=True)
        for info in self.list_artifacts(run_id, path):
            if info.is_dir:
                self._download_folder(run_id, info.path, root, direct)
            else:
                self._download_file(run_id, info.path, _local_target(root, info.path), direct)

    def _download_file(self, run_id: str, path: str, target: Path, direct: bool) -> Path:
        if direct:
            answer = self.artifact_download_url(run_id, path)
            try:
                with urllib.request.urlopen(answer.url, timeout=self.artifact_timeout) as response:
                    return _write_checked(target, iter(lambda: response.read(1 << 20), b""), answer.file,
                                          f"artifact {path!r} of run {run_id} (from its URL)")
            except urllib.error.URLError as error:  # HTTPError included; never the URL: it is a credential
                raise Unavailable(f"the artifact store did not serve {path!r} of run {run_id}: "
                                  f"{getattr(error, 'code', None) or error.reason}") from None

        rpc = self._rpcs["DownloadArtifact"]
        request = api.DownloadArtifactRequest(run_id=run_id, path=path)

        def attempt() -> Path:
            responses = rpc(request, timeout=self.artifact_timeout)
            info = next(responses).file
            return _write_checked(target, (response.chunk for response in responses), info,
                                  f"artifact {path!r} of run {run_id}")

        return self._retrying(attempt, None)

    # --- registered models --------------------------------------------------------------------

    def create_registered_model(self, name: str, *, description: str = "",
                                tags: Mapping[str, str] | None = None) -> rpb.RegisteredModel:
        request = rapi.CreateRegisteredModelRequest(name=name, description=description, tags=_tags(tags))
        return self.call("CreateRegisteredModel", request).registered_model

    def get_registered_model(self, name: str) -> rpb.RegisteredModel:
        return self.call("GetRegisteredModel", rapi.GetRegisteredModelRequest(name=name)).registered_model

    def search_registered_models(self, filter: str = "", *, order_by: Sequence[str] = (),
                                 page_size: int = 100) -> Iterator[rpb.RegisteredModel]:
        def fetch(token: str) -> rapi.SearchRegisteredModelsResponse:
            return self.call("SearchRegisteredModels", rapi.SearchRegisteredModelsRequest(
                filter=filter, order_by=order_by, page_size=page_size, page_token=token))

        return _pages(fetch, "registered_models")

    def rename_registered_model(self, name: str, new_name: str, *, actor: str = "") -> rpb.RegisteredModel:
        request = rapi.RenameRegisteredModelRequest(name=name, new_name=new_name, actor=actor)
        return self.call("RenameRegisteredModel", request).registered_model

    def update_registered_model(self, name: str, description: str) -> rpb.RegisteredModel:
        request = rapi.UpdateRegisteredModelRequest(name=name, description=description)
        return self.call("UpdateRegisteredModel", request).registered_model

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self.call("SetRegisteredModelTag", rapi.SetRegisteredModelTagRequest(name=name, key=key, value=value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.call("DeleteRegisteredModelTag", rapi.DeleteRegisteredModelTagRequest(name=name, key=key))

    def delete_registered_model(self, name: str, *, actor: str = "") -> None:
        self.call("DeleteRegisteredModel", rapi.DeleteRegisteredModelRequest(name=name, actor=actor))

    def set_registered_model_permission(self, name: str, subject: str, role: str) -> pb.Permission:
        """Gives ``subject`` ``role`` on a registered model (and so on its versions)."""
        request = rapi.SetRegisteredModelPermissionRequest(name=name, subject=subject, role=role)
        return self.call("SetRegisteredModelPermission", request).permission

    def delete_registered_model_permission(self, name: str, subject: str) -> None:
        self.call("DeleteRegisteredModelPermission",
                  rapi.DeleteRegisteredModelPermissionRequest(name=name, subject=subject))

    def list_registered_model_permissions(self, name: str) -> list[pb.Permission]:
        request = rapi.ListRegisteredModelPermissionsRequest(name=name)
        return list(self.call("ListRegisteredModelPermissions", request).permissions)

    # --- model versions -----------------------------------------------------------------------

    def create_model_version(self, name: str, source: str, *, run_id: str = "", description: str = "",
                             tags: Mapping[str, str] | None = None, actor: str = "") -> rpb.ModelVersion:
        """Registers the next version of ``name`` (created if needed) from ``runs:/<run_id>/<path>``.

        Not retried on UNAVAILABLE: a retry after a lost answer would register a second version.
        """
        request = rapi.CreateModelVersionRequest(name=name, source=source, run_id=run_id, description=description,
                                                 tags=_tags(tags), actor=actor)
        return self.call("CreateModelVersion", request).model_version

    def get_model_version(self, name: str, version: int) -> rpb.ModelVersion:
        return self.call("GetModelVersion", rapi.GetModelVersionRequest(name=name, version=version)).model_version

    def search_model_versions(self, filter: str = "", *, order_by: Sequence[str] = (),
                              page_size: int = 1_000) -> Iterator[rpb.ModelVersion]:
        def fetch(token: str) -> rapi.SearchModelVersionsResponse:
            return self.call("SearchModelVersions", rapi.SearchModelVersionsRequest(
                filter=filter, order_by=order_by, page_size=page_size, page_token=token))

        return _pages(fetch, "model_versions")

    def update_model_version(self, name: str, version: int, description: str) -> rpb.ModelVersion:
        request = rapi.UpdateModelVersionRequest(name=name, version=version, description=description)
        return self.call("UpdateModelVersion", request).model_version

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.call("SetModelVersionTag",
                  rapi.SetModelVersionTagRequest(name=name, version=version, key=key, value=value))

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        self.call("DeleteModelVersionTag", rapi.DeleteModelVersionTagRequest(name=name, version=version, key=key))

    def delete_model_version(self, name: str, version: int, *, actor: str = "") -> None:
        self.call("DeleteModelVersion", rapi.DeleteModelVersionRequest(name=name, version=version, actor=actor))

    def transition_model_version_stage(self, name: str, version: int, stage: int | str, *,
                                       archive_existing_versions: bool = False, actor: str = "",
                                       reason: str = "") -> rpb.ModelVersion:
        """Moves a version to a stage ("None", "Staging", "Production", "Archived" or a ``Stage`` value)."""
        request = rapi.TransitionModelVersionStageRequest(
            name=name, version=version, stage=model_stage(stage), archive_existing_versions=archive_existing_versions,
            actor=actor, reason=reason)
        return self.call("TransitionModelVersionStage", request).model_version

    def get_model_version_download_uri(self, name: str, version: int) -> str:
        request = rapi.GetModelVersionDownloadUriRequest(name=name, version=version)
        return self.call("GetModelVersionDownloadUri", request).artifact_uri

    # --- aliases and audit log ----------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: int, *, actor: str = "",
                                   reason: str = "") -> None:
        self.call("SetRegisteredModelAlias", rapi.SetRegisteredModelAliasRequest(
            name=name, alias=alias, version=version, actor=actor, reason=reason))

    def delete_registered_model_alias(self, name: str, alias: str, *, actor: str = "", reason: str = "") -> None:
        self.call("DeleteRegisteredModelAlias", rapi.DeleteRegisteredModelAliasRequest(
            name=name, alias=alias, actor=actor, reason=reason))

    def get_model_version_by_alias(self, name: str, alias: str) -> rpb.ModelVersion:
        request = rapi.GetModelVersionByAliasRequest(name=name, alias=alias)
        return self.call("GetModelVersionByAlias", request).model_version

    def list_registry_events(self, name: str, version: int = 0, *, page_size: int = 100
                             ) -> Iterator[rpb.RegistryEvent]:
        """The audit log of a model (or of one version), newest first."""
        def fetch(token: str) -> rapi.ListRegistryEventsResponse:
            return self.call("ListRegistryEvents", rapi.ListRegistryEventsRequest(
                name=name, version=version, page_size=page_size, page_token=token))

        return _pages(fetch, "events")

    # --- webhooks -----------------------------------------------------------------------------

    def create_webhook(self, name: str, url: str, events: Sequence[int | str], *, model_name: str = "",
                       secret: str = "", active: bool = True) -> tuple[wpb.Webhook, str]:
        """The webhook and its generated secret (shown this once; "" when ``secret`` was given)."""
        return self._webhooks.create(name, url, events, model_name, secret, active)

    def get_webhook(self, name: str) -> wpb.Webhook:
        return self._webhooks.get(name)

    def list_webhooks(self, *, page_size: int = 100) -> Iterator[wpb.Webhook]:
        return self._webhooks.list(page_size)

    def update_webhook(self, name: str, *, url: str | None = None, events: Sequence[int | str] | None = None,
                       model_name: str | None = None, secret: str | None = None,
                       active: bool | None = None) -> wpb.Webhook:
        """Changes what is given (not None); the rest stays."""
        return self._webhooks.update(name, url=url, events=events, scope=model_name, secret=secret, active=active)

    def delete_webhook(self, name: str) -> None:
        self._webhooks.delete(name)

    def test_webhook(self, name: str) -> wpb.WebhookDelivery:
        """Queues a test delivery for the sender's next pass; follow it with list_webhook_deliveries."""
        return self._webhooks.test(name)

    def list_webhook_deliveries(self, name: str, *, status: int = 0, page_size: int = 100
                                ) -> Iterator[wpb.WebhookDelivery]:
        """The delivery log, newest first, each delivery with its attempts."""
        return self._webhooks.deliveries(name, status, page_size)


def dataset_input(name: str, digest: str, source: str = "", context: str = "", *, source_type: str = "",
                  schema: str = "", profile: str = "", tags: Mapping[str, str] | None = None) -> pb.DatasetInput:
    """A ``DatasetInput`` for :meth:`TrackingClient.log_inputs`."""
    dataset = pb.Dataset(name=name, digest=digest, source_type=source_type, source=source, schema=schema,
                         profile=profile)
    return pb.DatasetInput(dataset=dataset, context=context, tags=_tags(tags))


__all__ = ["CHUNK_BYTES", "ChecksumMismatch", "TrackingClient", "dataset_input", "metric", "model_stage", "run_status",
           "tracking_address", "webhook_event"]
