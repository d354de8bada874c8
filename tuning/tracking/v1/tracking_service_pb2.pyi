import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuning.tracking.v1 import tracking_pb2 as _tracking_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateExperimentRequest(_message.Message):
    __slots__ = ("name", "artifact_location", "tags")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_LOCATION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    artifact_location: str
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    def __init__(self, name: _Optional[str] = ..., artifact_location: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ...) -> None: ...

class CreateExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _tracking_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_tracking_pb2.Experiment, _Mapping]] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    def __init__(self, experiment_id: _Optional[int] = ...) -> None: ...

class GetExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _tracking_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_tracking_pb2.Experiment, _Mapping]] = ...) -> None: ...

class GetExperimentByNameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetExperimentByNameResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _tracking_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_tracking_pb2.Experiment, _Mapping]] = ...) -> None: ...

class SearchExperimentsRequest(_message.Message):
    __slots__ = ("filter", "order_by", "view_type", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    VIEW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: str
    order_by: _containers.RepeatedScalarFieldContainer[str]
    view_type: _tracking_pb2.ViewType
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[str] = ..., order_by: _Optional[_Iterable[str]] = ..., view_type: _Optional[_Union[_tracking_pb2.ViewType, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchExperimentsResponse(_message.Message):
    __slots__ = ("experiments", "next_page_token")
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Experiment]
    next_page_token: str
    def __init__(self, experiments: _Optional[_Iterable[_Union[_tracking_pb2.Experiment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RenameExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "new_name")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    new_name: str
    def __init__(self, experiment_id: _Optional[int] = ..., new_name: _Optional[str] = ...) -> None: ...

class RenameExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _tracking_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_tracking_pb2.Experiment, _Mapping]] = ...) -> None: ...

class SetExperimentTagRequest(_message.Message):
    __slots__ = ("experiment_id", "key", "value")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    key: str
    value: str
    def __init__(self, experiment_id: _Optional[int] = ..., key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetExperimentTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    def __init__(self, experiment_id: _Optional[int] = ...) -> None: ...

class DeleteExperimentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestoreExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    def __init__(self, experiment_id: _Optional[int] = ...) -> None: ...

class RestoreExperimentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("experiment_id", "name", "start_time", "tags", "parent_run_id", "run_group", "user", "trial", "status", "request_id")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PARENT_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_GROUP_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    name: str
    start_time: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    parent_run_id: str
    run_group: str
    user: str
    trial: _tracking_pb2.TrialLink
    status: _tracking_pb2.RunStatus
    request_id: str
    def __init__(self, experiment_id: _Optional[int] = ..., name: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ..., parent_run_id: _Optional[str] = ..., run_group: _Optional[str] = ..., user: _Optional[str] = ..., trial: _Optional[_Union[_tracking_pb2.TrialLink, _Mapping]] = ..., status: _Optional[_Union[_tracking_pb2.RunStatus, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _tracking_pb2.Run
    def __init__(self, run: _Optional[_Union[_tracking_pb2.Run, _Mapping]] = ...) -> None: ...

class UpdateRunRequest(_message.Message):
    __slots__ = ("run_id", "status", "end_time", "name")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: _tracking_pb2.RunStatus
    end_time: _timestamp_pb2.Timestamp
    name: str
    def __init__(self, run_id: _Optional[str] = ..., status: _Optional[_Union[_tracking_pb2.RunStatus, str]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class UpdateRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _tracking_pb2.Run
    def __init__(self, run: _Optional[_Union[_tracking_pb2.Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _tracking_pb2.Run
    def __init__(self, run: _Optional[_Union[_tracking_pb2.Run, _Mapping]] = ...) -> None: ...

class SearchRunsRequest(_message.Message):
    __slots__ = ("experiment_ids", "filter", "order_by", "view_type", "page_size", "page_token")
    EXPERIMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    VIEW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiment_ids: _containers.RepeatedScalarFieldContainer[int]
    filter: str
    order_by: _containers.RepeatedScalarFieldContainer[str]
    view_type: _tracking_pb2.ViewType
    page_size: int
    page_token: str
    def __init__(self, experiment_ids: _Optional[_Iterable[int]] = ..., filter: _Optional[str] = ..., order_by: _Optional[_Iterable[str]] = ..., view_type: _Optional[_Union[_tracking_pb2.ViewType, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_tracking_pb2.Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestoreRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class RestoreRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogBatchRequest(_message.Message):
    __slots__ = ("run_id", "metrics", "params", "tags", "series", "request_id", "expected_tags")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TAGS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    metrics: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Metric]
    params: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Param]
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    series: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.MetricSeries]
    request_id: str
    expected_tags: _containers.RepeatedCompositeFieldContainer[ExpectedTag]
    def __init__(self, run_id: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[_tracking_pb2.Metric, _Mapping]]] = ..., params: _Optional[_Iterable[_Union[_tracking_pb2.Param, _Mapping]]] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ..., series: _Optional[_Iterable[_Union[_tracking_pb2.MetricSeries, _Mapping]]] = ..., request_id: _Optional[str] = ..., expected_tags: _Optional[_Iterable[_Union[ExpectedTag, _Mapping]]] = ...) -> None: ...

class ExpectedTag(_message.Message):
    __slots__ = ("key", "value", "absent")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    absent: bool
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ..., absent: _Optional[bool] = ...) -> None: ...

class LogBatchResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogMetricRequest(_message.Message):
    __slots__ = ("run_id", "metric", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    metric: _tracking_pb2.Metric
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., metric: _Optional[_Union[_tracking_pb2.Metric, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class LogMetricResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogParamRequest(_message.Message):
    __slots__ = ("run_id", "param")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    param: _tracking_pb2.Param
    def __init__(self, run_id: _Optional[str] = ..., param: _Optional[_Union[_tracking_pb2.Param, _Mapping]] = ...) -> None: ...

class LogParamResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetTagRequest(_message.Message):
    __slots__ = ("run_id", "tag")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    tag: _tracking_pb2.Tag
    def __init__(self, run_id: _Optional[str] = ..., tag: _Optional[_Union[_tracking_pb2.Tag, _Mapping]] = ...) -> None: ...

class SetTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteTagRequest(_message.Message):
    __slots__ = ("run_id", "key")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    key: str
    def __init__(self, run_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeleteTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogInputsRequest(_message.Message):
    __slots__ = ("run_id", "inputs")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    inputs: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.DatasetInput]
    def __init__(self, run_id: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_tracking_pb2.DatasetInput, _Mapping]]] = ...) -> None: ...

class LogInputsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMetricHistoryRequest(_message.Message):
    __slots__ = ("run_id", "key", "page_size", "page_token", "max_points")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    key: str
    page_size: int
    page_token: str
    max_points: int
    def __init__(self, run_id: _Optional[str] = ..., key: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., max_points: _Optional[int] = ...) -> None: ...

class GetMetricHistoryResponse(_message.Message):
    __slots__ = ("metrics", "next_page_token")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Metric]
    next_page_token: str
    def __init__(self, metrics: _Optional[_Iterable[_Union[_tracking_pb2.Metric, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ArtifactHeader(_message.Message):
    __slots__ = ("run_id", "path", "size", "sha256")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    path: str
    size: int
    sha256: str
    def __init__(self, run_id: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadArtifactRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ArtifactHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ArtifactHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadArtifactResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: _tracking_pb2.FileInfo
    def __init__(self, file: _Optional[_Union[_tracking_pb2.FileInfo, _Mapping]] = ...) -> None: ...

class DownloadArtifactRequest(_message.Message):
    __slots__ = ("run_id", "path")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    path: str
    def __init__(self, run_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DownloadArtifactResponse(_message.Message):
    __slots__ = ("file", "chunk")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    file: _tracking_pb2.FileInfo
    chunk: bytes
    def __init__(self, file: _Optional[_Union[_tracking_pb2.FileInfo, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("run_id", "path")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    path: str
    def __init__(self, run_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.FileInfo]
    def __init__(self, files: _Optional[_Iterable[_Union[_tracking_pb2.FileInfo, _Mapping]]] = ...) -> None: ...

class GetArtifactDownloadUrlRequest(_message.Message):
    __slots__ = ("run_id", "path", "expires_in_seconds")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    path: str
    expires_in_seconds: int
    def __init__(self, run_id: _Optional[str] = ..., path: _Optional[str] = ..., expires_in_seconds: _Optional[int] = ...) -> None: ...

class GetArtifactDownloadUrlResponse(_message.Message):
    __slots__ = ("url", "expire_time", "file")
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    url: str
    expire_time: _timestamp_pb2.Timestamp
    file: _tracking_pb2.FileInfo
    def __init__(self, url: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., file: _Optional[_Union[_tracking_pb2.FileInfo, _Mapping]] = ...) -> None: ...

class CreateLoggedModelRequest(_message.Message):
    __slots__ = ("experiment_id", "name", "source_run_id", "model_type", "params", "tags", "artifact_run_id")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    name: str
    source_run_id: str
    model_type: str
    params: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Param]
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    artifact_run_id: str
    def __init__(self, experiment_id: _Optional[int] = ..., name: _Optional[str] = ..., source_run_id: _Optional[str] = ..., model_type: _Optional[str] = ..., params: _Optional[_Iterable[_Union[_tracking_pb2.Param, _Mapping]]] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ..., artifact_run_id: _Optional[str] = ...) -> None: ...

class CreateLoggedModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _tracking_pb2.LoggedModel
    def __init__(self, model: _Optional[_Union[_tracking_pb2.LoggedModel, _Mapping]] = ...) -> None: ...

class GetLoggedModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class GetLoggedModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _tracking_pb2.LoggedModel
    def __init__(self, model: _Optional[_Union[_tracking_pb2.LoggedModel, _Mapping]] = ...) -> None: ...

class FinalizeLoggedModelRequest(_message.Message):
    __slots__ = ("model_id", "status", "status_message")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    status: _tracking_pb2.LoggedModelStatus
    status_message: str
    def __init__(self, model_id: _Optional[str] = ..., status: _Optional[_Union[_tracking_pb2.LoggedModelStatus, str]] = ..., status_message: _Optional[str] = ...) -> None: ...

class FinalizeLoggedModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _tracking_pb2.LoggedModel
    def __init__(self, model: _Optional[_Union[_tracking_pb2.LoggedModel, _Mapping]] = ...) -> None: ...

class DeleteLoggedModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class DeleteLoggedModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetLoggedModelTagsRequest(_message.Message):
    __slots__ = ("model_id", "tags")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    def __init__(self, model_id: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ...) -> None: ...

class SetLoggedModelTagsResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _tracking_pb2.LoggedModel
    def __init__(self, model: _Optional[_Union[_tracking_pb2.LoggedModel, _Mapping]] = ...) -> None: ...

class DeleteLoggedModelTagRequest(_message.Message):
    __slots__ = ("model_id", "key")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    key: str
    def __init__(self, model_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeleteLoggedModelTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogLoggedModelParamsRequest(_message.Message):
    __slots__ = ("model_id", "params")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    params: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Param]
    def __init__(self, model_id: _Optional[str] = ..., params: _Optional[_Iterable[_Union[_tracking_pb2.Param, _Mapping]]] = ...) -> None: ...

class LogLoggedModelParamsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogLoggedModelMetricsRequest(_message.Message):
    __slots__ = ("model_id", "metrics")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    metrics: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.LoggedModelMetric]
    def __init__(self, model_id: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[_tracking_pb2.LoggedModelMetric, _Mapping]]] = ...) -> None: ...

class LogLoggedModelMetricsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchLoggedModelsRequest(_message.Message):
    __slots__ = ("experiment_ids", "filter", "order_by", "page_size", "page_token")
    EXPERIMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiment_ids: _containers.RepeatedScalarFieldContainer[int]
    filter: str
    order_by: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, experiment_ids: _Optional[_Iterable[int]] = ..., filter: _Optional[str] = ..., order_by: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchLoggedModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.LoggedModel]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[_tracking_pb2.LoggedModel, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetExperimentPermissionRequest(_message.Message):
    __slots__ = ("experiment_id", "subject", "role")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    subject: str
    role: str
    def __init__(self, experiment_id: _Optional[int] = ..., subject: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class SetExperimentPermissionResponse(_message.Message):
    __slots__ = ("permission",)
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    permission: _tracking_pb2.Permission
    def __init__(self, permission: _Optional[_Union[_tracking_pb2.Permission, _Mapping]] = ...) -> None: ...

class DeleteExperimentPermissionRequest(_message.Message):
    __slots__ = ("experiment_id", "subject")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    subject: str
    def __init__(self, experiment_id: _Optional[int] = ..., subject: _Optional[str] = ...) -> None: ...

class DeleteExperimentPermissionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentPermissionsRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: int
    def __init__(self, experiment_id: _Optional[int] = ...) -> None: ...

class ListExperimentPermissionsResponse(_message.Message):
    __slots__ = ("permissions",)
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    permissions: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Permission]
    def __init__(self, permissions: _Optional[_Iterable[_Union[_tracking_pb2.Permission, _Mapping]]] = ...) -> None: ...
