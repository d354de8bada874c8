import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tuning.suggestion.v1 import study_pb2 as _study_pb2
from tuning.suggestion.v1 import webhook_pb2 as _webhook_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SuggestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUGGEST_STATUS_UNSPECIFIED: _ClassVar[SuggestStatus]
    SUGGEST_STATUS_OK: _ClassVar[SuggestStatus]
    SUGGEST_STATUS_WAIT: _ClassVar[SuggestStatus]
    SUGGEST_STATUS_DONE: _ClassVar[SuggestStatus]

class DoneReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DONE_REASON_UNSPECIFIED: _ClassVar[DoneReason]
    DONE_REASON_BUDGET_SPENT: _ClassVar[DoneReason]
    DONE_REASON_SPACE_EXHAUSTED: _ClassVar[DoneReason]
    DONE_REASON_STUDY_STOPPED: _ClassVar[DoneReason]
    DONE_REASON_STUDY_COMPLETED: _ClassVar[DoneReason]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCEEDED: _ClassVar[Outcome]
    OUTCOME_PRUNED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_INFEASIBLE: _ClassVar[Outcome]
SUGGEST_STATUS_UNSPECIFIED: SuggestStatus
SUGGEST_STATUS_OK: SuggestStatus
SUGGEST_STATUS_WAIT: SuggestStatus
SUGGEST_STATUS_DONE: SuggestStatus
DONE_REASON_UNSPECIFIED: DoneReason
DONE_REASON_BUDGET_SPENT: DoneReason
DONE_REASON_SPACE_EXHAUSTED: DoneReason
DONE_REASON_STUDY_STOPPED: DoneReason
DONE_REASON_STUDY_COMPLETED: DoneReason
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCEEDED: Outcome
OUTCOME_PRUNED: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_INFEASIBLE: Outcome

class CreateStudyRequest(_message.Message):
    __slots__ = ("name", "spec")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: _study_pb2.StudySpec
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[_study_pb2.StudySpec, _Mapping]] = ...) -> None: ...

class CreateStudyResponse(_message.Message):
    __slots__ = ("study", "created")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    study: _study_pb2.Study
    created: bool
    def __init__(self, study: _Optional[_Union[_study_pb2.Study, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetStudyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: _study_pb2.Study
    def __init__(self, study: _Optional[_Union[_study_pb2.Study, _Mapping]] = ...) -> None: ...

class ListStudiesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStudiesResponse(_message.Message):
    __slots__ = ("studies", "next_page_token")
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[_study_pb2.Study]
    next_page_token: str
    def __init__(self, studies: _Optional[_Iterable[_Union[_study_pb2.Study, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetStudyStateRequest(_message.Message):
    __slots__ = ("name", "state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: _study_pb2.StudyState
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[_study_pb2.StudyState, str]] = ...) -> None: ...

class SetStudyStateResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: _study_pb2.Study
    def __init__(self, study: _Optional[_Union[_study_pb2.Study, _Mapping]] = ...) -> None: ...

class DeleteStudyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteStudyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SuggestTrialsRequest(_message.Message):
    __slots__ = ("study", "count", "worker_id", "request_id")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    study: str
    count: int
    worker_id: str
    request_id: str
    def __init__(self, study: _Optional[str] = ..., count: _Optional[int] = ..., worker_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SuggestTrialsResponse(_message.Message):
    __slots__ = ("trials", "status", "done_reason", "message", "retry_after")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DONE_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[_study_pb2.Trial]
    status: SuggestStatus
    done_reason: DoneReason
    message: str
    retry_after: _duration_pb2.Duration
    def __init__(self, trials: _Optional[_Iterable[_Union[_study_pb2.Trial, _Mapping]]] = ..., status: _Optional[_Union[SuggestStatus, str]] = ..., done_reason: _Optional[_Union[DoneReason, str]] = ..., message: _Optional[str] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReportIntermediateRequest(_message.Message):
    __slots__ = ("trial_id", "worker_id", "step", "metrics")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    worker_id: str
    step: int
    metrics: _containers.RepeatedCompositeFieldContainer[_study_pb2.Metric]
    def __init__(self, trial_id: _Optional[int] = ..., worker_id: _Optional[str] = ..., step: _Optional[int] = ..., metrics: _Optional[_Iterable[_Union[_study_pb2.Metric, _Mapping]]] = ...) -> None: ...

class ReportIntermediateResponse(_message.Message):
    __slots__ = ("should_stop", "lease_expire_time")
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    should_stop: bool
    lease_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, should_stop: _Optional[bool] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("trial_id", "worker_id")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    worker_id: str
    def __init__(self, trial_id: _Optional[int] = ..., worker_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lease_expire_time",)
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    lease_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReleaseTrialRequest(_message.Message):
    __slots__ = ("trial_id", "worker_id", "reason")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    worker_id: str
    reason: str
    def __init__(self, trial_id: _Optional[int] = ..., worker_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: _study_pb2.Trial
    def __init__(self, trial: _Optional[_Union[_study_pb2.Trial, _Mapping]] = ...) -> None: ...

class LinkRunRequest(_message.Message):
    __slots__ = ("trial_id", "worker_id", "run_id")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    worker_id: str
    run_id: str
    def __init__(self, trial_id: _Optional[int] = ..., worker_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class LinkRunResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: _study_pb2.Trial
    def __init__(self, trial: _Optional[_Union[_study_pb2.Trial, _Mapping]] = ...) -> None: ...

class CompleteTrialRequest(_message.Message):
    __slots__ = ("trial_id", "worker_id", "outcome", "metrics", "reason", "constraints")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    worker_id: str
    outcome: Outcome
    metrics: _containers.RepeatedCompositeFieldContainer[_study_pb2.Metric]
    reason: str
    constraints: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, trial_id: _Optional[int] = ..., worker_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., metrics: _Optional[_Iterable[_Union[_study_pb2.Metric, _Mapping]]] = ..., reason: _Optional[str] = ..., constraints: _Optional[_Iterable[float]] = ...) -> None: ...

class CompleteTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: _study_pb2.Trial
    def __init__(self, trial: _Optional[_Union[_study_pb2.Trial, _Mapping]] = ...) -> None: ...

class CreateTrialRequest(_message.Message):
    __slots__ = ("study", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _study_pb2.ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_study_pb2.ParameterValue, _Mapping]] = ...) -> None: ...
    STUDY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    study: str
    parameters: _containers.MessageMap[str, _study_pb2.ParameterValue]
    def __init__(self, study: _Optional[str] = ..., parameters: _Optional[_Mapping[str, _study_pb2.ParameterValue]] = ...) -> None: ...

class CreateTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: _study_pb2.Trial
    def __init__(self, trial: _Optional[_Union[_study_pb2.Trial, _Mapping]] = ...) -> None: ...

class GetTrialRequest(_message.Message):
    __slots__ = ("trial_id",)
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    def __init__(self, trial_id: _Optional[int] = ...) -> None: ...

class GetTrialResponse(_message.Message):
    __slots__ = ("trial",)
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    trial: _study_pb2.Trial
    def __init__(self, trial: _Optional[_Union[_study_pb2.Trial, _Mapping]] = ...) -> None: ...

class ListTrialsRequest(_message.Message):
    __slots__ = ("study", "states", "page_size", "page_token", "after_number")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AFTER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    study: str
    states: _containers.RepeatedScalarFieldContainer[_study_pb2.TrialState]
    page_size: int
    page_token: str
    after_number: int
    def __init__(self, study: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_study_pb2.TrialState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., after_number: _Optional[int] = ...) -> None: ...

class ListTrialsResponse(_message.Message):
    __slots__ = ("trials", "next_page_token")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[_study_pb2.Trial]
    next_page_token: str
    def __init__(self, trials: _Optional[_Iterable[_Union[_study_pb2.Trial, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMeasurementsRequest(_message.Message):
    __slots__ = ("trial_id",)
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    def __init__(self, trial_id: _Optional[int] = ...) -> None: ...

class ListMeasurementsResponse(_message.Message):
    __slots__ = ("measurements",)
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    measurements: _containers.RepeatedCompositeFieldContainer[_study_pb2.Measurement]
    def __init__(self, measurements: _Optional[_Iterable[_Union[_study_pb2.Measurement, _Mapping]]] = ...) -> None: ...

class GetBestTrialsRequest(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: str
    def __init__(self, study: _Optional[str] = ...) -> None: ...

class GetBestTrialsResponse(_message.Message):
    __slots__ = ("trials", "hypervolume", "reference_point")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    HYPERVOLUME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_POINT_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[_study_pb2.Trial]
    hypervolume: float
    reference_point: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, trials: _Optional[_Iterable[_Union[_study_pb2.Trial, _Mapping]]] = ..., hypervolume: _Optional[float] = ..., reference_point: _Optional[_Iterable[float]] = ...) -> None: ...

class GetPopulationRequest(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: str
    def __init__(self, study: _Optional[str] = ...) -> None: ...

class GetPopulationResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[PopulationMember]
    def __init__(self, members: _Optional[_Iterable[_Union[PopulationMember, _Mapping]]] = ...) -> None: ...

class PopulationMember(_message.Message):
    __slots__ = ("member", "trials")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    member: int
    trials: _containers.RepeatedCompositeFieldContainer[_study_pb2.Trial]
    def __init__(self, member: _Optional[int] = ..., trials: _Optional[_Iterable[_Union[_study_pb2.Trial, _Mapping]]] = ...) -> None: ...

class GetParameterImportanceRequest(_message.Message):
    __slots__ = ("study", "objective")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    study: str
    objective: str
    def __init__(self, study: _Optional[str] = ..., objective: _Optional[str] = ...) -> None: ...

class GetParameterImportanceResponse(_message.Message):
    __slots__ = ("objective", "importances", "trial_count")
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCES_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    objective: str
    importances: _containers.RepeatedCompositeFieldContainer[ParameterImportance]
    trial_count: int
    def __init__(self, objective: _Optional[str] = ..., importances: _Optional[_Iterable[_Union[ParameterImportance, _Mapping]]] = ..., trial_count: _Optional[int] = ...) -> None: ...

class ParameterImportance(_message.Message):
    __slots__ = ("parameter", "importance")
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    parameter: str
    importance: float
    def __init__(self, parameter: _Optional[str] = ..., importance: _Optional[float] = ...) -> None: ...

class SetStudyPermissionRequest(_message.Message):
    __slots__ = ("study", "subject", "role")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    study: str
    subject: str
    role: str
    def __init__(self, study: _Optional[str] = ..., subject: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class SetStudyPermissionResponse(_message.Message):
    __slots__ = ("permission",)
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    permission: _study_pb2.Permission
    def __init__(self, permission: _Optional[_Union[_study_pb2.Permission, _Mapping]] = ...) -> None: ...

class DeleteStudyPermissionRequest(_message.Message):
    __slots__ = ("study", "subject")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    study: str
    subject: str
    def __init__(self, study: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class DeleteStudyPermissionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStudyPermissionsRequest(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: str
    def __init__(self, study: _Optional[str] = ...) -> None: ...

class ListStudyPermissionsResponse(_message.Message):
    __slots__ = ("permissions",)
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    permissions: _containers.RepeatedCompositeFieldContainer[_study_pb2.Permission]
    def __init__(self, permissions: _Optional[_Iterable[_Union[_study_pb2.Permission, _Mapping]]] = ...) -> None: ...

class CreateStudyWebhookRequest(_message.Message):
    __slots__ = ("name", "url", "events", "study_name", "secret", "active")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    STUDY_NAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    events: _containers.RepeatedScalarFieldContainer[_webhook_pb2.WebhookEvent]
    study_name: str
    secret: str
    active: bool
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_webhook_pb2.WebhookEvent, str]]] = ..., study_name: _Optional[str] = ..., secret: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class CreateStudyWebhookResponse(_message.Message):
    __slots__ = ("webhook", "secret")
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    webhook: _webhook_pb2.Webhook
    secret: str
    def __init__(self, webhook: _Optional[_Union[_webhook_pb2.Webhook, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class GetStudyWebhookRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetStudyWebhookResponse(_message.Message):
    __slots__ = ("webhook",)
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    webhook: _webhook_pb2.Webhook
    def __init__(self, webhook: _Optional[_Union[_webhook_pb2.Webhook, _Mapping]] = ...) -> None: ...

class ListStudyWebhooksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStudyWebhooksResponse(_message.Message):
    __slots__ = ("webhooks", "next_page_token")
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    webhooks: _containers.RepeatedCompositeFieldContainer[_webhook_pb2.Webhook]
    next_page_token: str
    def __init__(self, webhooks: _Optional[_Iterable[_Union[_webhook_pb2.Webhook, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WebhookEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedScalarFieldContainer[_webhook_pb2.WebhookEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_webhook_pb2.WebhookEvent, str]]] = ...) -> None: ...

class UpdateStudyWebhookRequest(_message.Message):
    __slots__ = ("name", "url", "events", "study_name", "secret", "active")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    STUDY_NAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    events: WebhookEvents
    study_name: str
    secret: str
    active: bool
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., events: _Optional[_Union[WebhookEvents, _Mapping]] = ..., study_name: _Optional[str] = ..., secret: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class UpdateStudyWebhookResponse(_message.Message):
    __slots__ = ("webhook",)
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    webhook: _webhook_pb2.Webhook
    def __init__(self, webhook: _Optional[_Union[_webhook_pb2.Webhook, _Mapping]] = ...) -> None: ...

class DeleteStudyWebhookRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteStudyWebhookResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TestStudyWebhookRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TestStudyWebhookResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: _webhook_pb2.WebhookDelivery
    def __init__(self, delivery: _Optional[_Union[_webhook_pb2.WebhookDelivery, _Mapping]] = ...) -> None: ...

class ListStudyWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("name", "status", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: _webhook_pb2.WebhookDeliveryStatus
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[_webhook_pb2.WebhookDeliveryStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStudyWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_webhook_pb2.WebhookDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_webhook_pb2.WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
