import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuning.tracking.v1 import tracking_pb2 as _tracking_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_NONE: _ClassVar[Stage]
    STAGE_STAGING: _ClassVar[Stage]
    STAGE_PRODUCTION: _ClassVar[Stage]
    STAGE_ARCHIVED: _ClassVar[Stage]

class ModelVersionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_VERSION_STATUS_UNSPECIFIED: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_PENDING_REGISTRATION: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_FAILED_REGISTRATION: _ClassVar[ModelVersionStatus]
    MODEL_VERSION_STATUS_READY: _ClassVar[ModelVersionStatus]

class RegistryAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRY_ACTION_UNSPECIFIED: _ClassVar[RegistryAction]
    REGISTRY_ACTION_CREATE_VERSION: _ClassVar[RegistryAction]
    REGISTRY_ACTION_TRANSITION_STAGE: _ClassVar[RegistryAction]
    REGISTRY_ACTION_SET_ALIAS: _ClassVar[RegistryAction]
    REGISTRY_ACTION_DELETE_ALIAS: _ClassVar[RegistryAction]
    REGISTRY_ACTION_DELETE_VERSION: _ClassVar[RegistryAction]
    REGISTRY_ACTION_RENAME_MODEL: _ClassVar[RegistryAction]
    REGISTRY_ACTION_DELETE_MODEL: _ClassVar[RegistryAction]
STAGE_UNSPECIFIED: Stage
STAGE_NONE: Stage
STAGE_STAGING: Stage
STAGE_PRODUCTION: Stage
STAGE_ARCHIVED: Stage
MODEL_VERSION_STATUS_UNSPECIFIED: ModelVersionStatus
MODEL_VERSION_STATUS_PENDING_REGISTRATION: ModelVersionStatus
MODEL_VERSION_STATUS_FAILED_REGISTRATION: ModelVersionStatus
MODEL_VERSION_STATUS_READY: ModelVersionStatus
REGISTRY_ACTION_UNSPECIFIED: RegistryAction
REGISTRY_ACTION_CREATE_VERSION: RegistryAction
REGISTRY_ACTION_TRANSITION_STAGE: RegistryAction
REGISTRY_ACTION_SET_ALIAS: RegistryAction
REGISTRY_ACTION_DELETE_ALIAS: RegistryAction
REGISTRY_ACTION_DELETE_VERSION: RegistryAction
REGISTRY_ACTION_RENAME_MODEL: RegistryAction
REGISTRY_ACTION_DELETE_MODEL: RegistryAction

class RegisteredModel(_message.Message):
    __slots__ = ("name", "description", "tags", "aliases", "latest_versions", "create_time", "update_time")
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    aliases: _containers.ScalarMap[str, int]
    latest_versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ..., aliases: _Optional[_Mapping[str, int]] = ..., latest_versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("name", "version", "source", "run_id", "status", "stage", "description", "tags", "aliases", "user", "create_time", "update_time", "experiment_id", "trial")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    source: str
    run_id: str
    status: ModelVersionStatus
    stage: Stage
    description: str
    tags: _containers.RepeatedCompositeFieldContainer[_tracking_pb2.Tag]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    user: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    experiment_id: int
    trial: _tracking_pb2.TrialLink
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., source: _Optional[str] = ..., run_id: _Optional[str] = ..., status: _Optional[_Union[ModelVersionStatus, str]] = ..., stage: _Optional[_Union[Stage, str]] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[_tracking_pb2.Tag, _Mapping]]] = ..., aliases: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., experiment_id: _Optional[int] = ..., trial: _Optional[_Union[_tracking_pb2.TrialLink, _Mapping]] = ...) -> None: ...

class RegistryEvent(_message.Message):
    __slots__ = ("id", "model_name", "version", "action", "from_value", "to_value", "alias", "actor", "reason", "time")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FROM_VALUE_FIELD_NUMBER: _ClassVar[int]
    TO_VALUE_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    model_name: str
    version: int
    action: RegistryAction
    from_value: str
    to_value: str
    alias: str
    actor: str
    reason: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., model_name: _Optional[str] = ..., version: _Optional[int] = ..., action: _Optional[_Union[RegistryAction, str]] = ..., from_value: _Optional[str] = ..., to_value: _Optional[str] = ..., alias: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
