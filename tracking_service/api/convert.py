"""Proto <-> domain conversions for the tracking API. No rules here beyond the mapping."""

from __future__ import annotations

import hashlib

from google.protobuf import timestamp_pb2

from tracking_service.artifacts import FileInfo
from tracking_service.domain.logged_model import LoggedModel, LoggedModelStatus, ModelMetric
from tracking_service.domain.model import (
    Dataset,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    MetricSeries,
    Run,
    RunStatus,
    TrialLink,
    ViewType,
)
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning_common.errors import InvalidArgument
from tuning_types.convert import timestamp

_STAGES = {LifecycleStage.ACTIVE: pb.LIFECYCLE_STAGE_ACTIVE, LifecycleStage.DELETED: pb.LIFECYCLE_STAGE_DELETED}
_STATUSES = {status: getattr(pb, f"RUN_STATUS_{status.name}") for status in RunStatus}
_STATUS_FROM = {v: k for k, v in _STATUSES.items()}
_VIEWS = {
    pb.VIEW_TYPE_UNSPECIFIED: ViewType.ACTIVE_ONLY, pb.VIEW_TYPE_ACTIVE_ONLY: ViewType.ACTIVE_ONLY,
    pb.VIEW_TYPE_DELETED_ONLY: ViewType.DELETED_ONLY, pb.VIEW_TYPE_ALL: ViewType.ALL,
}


# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def checked_ms(stamp: timestamp_pb2.Timestamp, field: str) -> int:
    """The timestamp in milliseconds, or InvalidArgument naming ``field`` when it is not a valid Timestamp."""
    if not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS:
        raise InvalidArgument(field, f"seconds {stamp.seconds} is outside the Timestamp range "
                                     f"[{_MIN_SECONDS}, {_MAX_SECONDS}] (years 1 to 9999)")
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InvalidArgument(field, f"nanos {stamp.nanos} must be in [0, 999999999]")
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def ms_or_none(message, name: str) -> int | None:
    return checked_ms(getattr(message, name), name) if message.HasField(name) else None


def view_from_proto(value: int, field: str = "view_type") -> ViewType:
    if value not in _VIEWS:
        raise InvalidArgument(field, f"unknown view type {value}")
    return _VIEWS[value]


def status_from_proto(value: int, field: str = "status") -> RunStatus | None:
    if value == pb.RUN_STATUS_UNSPECIFIED:
        return None
    if value not in _STATUS_FROM:
        raise InvalidArgument(field, f"unknown run status {value}")
    return _STATUS_FROM[value]


def tags_from_proto(items) -> list[tuple[str, str]]:
    return [(t.key, t.value) for t in items]


def expected_tags_from_proto(items) -> list[tuple[str, str | None]]:
    """(key, the value it must have, or None: the tag must be absent)."""
    for i, item in enumerate(items):
        if item.absent and item.value:
            raise InvalidArgument(f"expected_tags[{i}].value", "must be empty when absent is set")
    return [(item.key, None if item.absent else item.value) for item in items]


def tags_to_proto(items: dict[str, str]) -> list[pb.Tag]:
    return [pb.Tag(key=k, value=v) for k, v in sorted(items.items())]


def experiment_to_proto(e: Experiment) -> pb.Experiment:
    return pb.Experiment(id=e.id, name=e.name, artifact_location=e.artifact_location,
                         lifecycle_stage=_STAGES[e.lifecycle_stage], tags=tags_to_proto(e.tags),
                         create_time=timestamp(e.create_ms), update_time=timestamp(e.update_ms))


def metric_from_proto(m: pb.Metric, received_ms: int) -> Metric:
    # Plain field arithmetic: Timestamp.ToMilliseconds is Python code, and this runs per point.
    if m.HasField("timestamp"):
        stamp = m.timestamp
        return Metric(m.key, m.value, stamp.seconds * 1000 + stamp.nanos // 1_000_000, m.step)
    return Metric(m.key, m.value, received_ms, m.step)


def series_from_proto(s: pb.MetricSeries, received_ms: int) -> MetricSeries:
    n = len(s.values)
    # Empty steps or timestamps mean "0" and "now" for every point (documented in the proto).
    return MetricSeries(s.key, list(s.values), list(s.steps) if s.steps else [0] * n,
                        list(s.timestamps_ms) if s.timestamps_ms else [received_ms] * n)


def metric_to_proto(m: Metric) -> pb.Metric:
    return pb.Metric(key=m.key, value=m.value, timestamp=timestamp(m.timestamp_ms), step=m.step)


def trial_from_proto(message) -> TrialLink | None:
    if not message.HasField("trial"):
        return None
    t = message.trial
    return TrialLink(t.study, t.trial_id, t.trial_number)


def trial_to_proto(t: TrialLink | None) -> pb.TrialLink | None:
    return None if t is None else pb.TrialLink(study=t.study, trial_id=t.trial_id, trial_number=t.trial_number)


def input_from_proto(i: pb.DatasetInput) -> DatasetInput:
    d = i.dataset
    return DatasetInput(Dataset(d.name, d.digest, d.source_type, d.source, d.schema, d.profile), i.context,
                        dict(tags_from_proto(i.tags)))


def input_to_proto(i: DatasetInput) -> pb.DatasetInput:
    d = i.dataset
    return pb.DatasetInput(
        dataset=pb.Dataset(name=d.name, digest=d.digest, source_type=d.source_type, source=d.source,
                           schema=d.schema, profile=d.profile),
        context=i.context, tags=tags_to_proto(i.tags))


def run_to_proto(r: Run) -> pb.Run:
    run = pb.Run(
        id=r.id, experiment_id=r.experiment_id, name=r.name, status=_STATUSES[r.status],
        start_time=timestamp(r.start_ms), lifecycle_stage=_STAGES[r.lifecycle_stage],
        parent_run_id=r.parent_run_id or "", run_group=r.run_group, artifact_uri=r.artifact_uri, user=r.user,
        params=[pb.Param(key=k, value=v) for k, v in sorted(r.params.items())], tags=tags_to_proto(r.tags),
        latest_metrics=[metric_to_proto(m) for _, m in sorted(r.latest_metrics.items())],
        inputs=[input_to_proto(i) for i in r.inputs], trial=trial_to_proto(r.trial),
    )
    if r.end_ms is not None:
        run.end_time.CopyFrom(timestamp(r.end_ms))
    return run


def file_to_proto(f: FileInfo) -> pb.FileInfo:
    return pb.FileInfo(path=f.path, is_dir=f.is_dir, size=f.size, sha256=f.sha256)


def digest(request) -> str:
    """The fingerprint of a request with a request_id (the same for a re-sent copy, whatever
    encoding the client used); "" without one, where nothing compares it."""
    if not request.request_id:
        return ""
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


# -- logged models ---------------------------------------------------------------------------

_MODEL_STATUSES = {LoggedModelStatus.PENDING: pb.LOGGED_MODEL_STATUS_PENDING,
                   LoggedModelStatus.READY: pb.LOGGED_MODEL_STATUS_READY,
                   LoggedModelStatus.FAILED: pb.LOGGED_MODEL_STATUS_FAILED}
_MODEL_STATUS_FROM = {v: k for k, v in _MODEL_STATUSES.items()}


def model_status_from_proto(value: int) -> LoggedModelStatus | None:
    """None for UNSPECIFIED or an unknown number (the service refuses it naming the field)."""
    return _MODEL_STATUS_FROM.get(value)


def model_metric_from_proto(m: pb.LoggedModelMetric, received_ms: int, field: str) -> ModelMetric:
    stamp = checked_ms(m.timestamp, f"{field}.timestamp") if m.HasField("timestamp") else received_ms
    return ModelMetric(m.key, m.value, stamp, m.step, m.run_id, m.dataset_name, m.dataset_digest)


def logged_model_to_proto(m: LoggedModel) -> pb.LoggedModel:
    return pb.LoggedModel(
        id=m.id, experiment_id=m.experiment_id, name=m.name, source_run_id=m.source_run_id or "",
        status=_MODEL_STATUSES[m.status], status_message=m.status_message, model_type=m.model_type,
        artifact_location=m.artifact_location,
        params=[pb.Param(key=k, value=v) for k, v in m.params.items()], tags=tags_to_proto(m.tags),
        metrics=[pb.LoggedModelMetric(key=x.key, value=x.value, timestamp=timestamp(x.timestamp_ms), step=x.step,
                                      run_id=x.run_id, dataset_name=x.dataset_name, dataset_digest=x.dataset_digest)
                 for x in m.metrics],
        create_time=timestamp(m.create_ms), update_time=timestamp(m.update_ms))
