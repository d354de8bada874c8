import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Scale(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCALE_UNSPECIFIED: _ClassVar[Scale]
    SCALE_LINEAR: _ClassVar[Scale]
    SCALE_LOG: _ClassVar[Scale]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_MINIMIZE: _ClassVar[Direction]
    DIRECTION_MAXIMIZE: _ClassVar[Direction]

class StudyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_STATE_UNSPECIFIED: _ClassVar[StudyState]
    STUDY_STATE_ACTIVE: _ClassVar[StudyState]
    STUDY_STATE_STOPPED: _ClassVar[StudyState]
    STUDY_STATE_COMPLETED: _ClassVar[StudyState]

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_STATE_QUEUED: _ClassVar[TrialState]
    TRIAL_STATE_ACTIVE: _ClassVar[TrialState]
    TRIAL_STATE_COMPLETED: _ClassVar[TrialState]
    TRIAL_STATE_PRUNED: _ClassVar[TrialState]
    TRIAL_STATE_FAILED: _ClassVar[TrialState]
    TRIAL_STATE_INFEASIBLE: _ClassVar[TrialState]
    TRIAL_STATE_STALE: _ClassVar[TrialState]

class TrialSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_SOURCE_UNSPECIFIED: _ClassVar[TrialSource]
    TRIAL_SOURCE_ALGORITHM: _ClassVar[TrialSource]
    TRIAL_SOURCE_USER: _ClassVar[TrialSource]
    TRIAL_SOURCE_RETRY: _ClassVar[TrialSource]

class PbtDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PBT_DECISION_UNSPECIFIED: _ClassVar[PbtDecision]
    PBT_DECISION_START: _ClassVar[PbtDecision]
    PBT_DECISION_CONTINUE: _ClassVar[PbtDecision]
    PBT_DECISION_EXPLOIT: _ClassVar[PbtDecision]
    PBT_DECISION_REDO: _ClassVar[PbtDecision]
SCALE_UNSPECIFIED: Scale
SCALE_LINEAR: Scale
SCALE_LOG: Scale
DIRECTION_UNSPECIFIED: Direction
DIRECTION_MINIMIZE: Direction
DIRECTION_MAXIMIZE: Direction
STUDY_STATE_UNSPECIFIED: StudyState
STUDY_STATE_ACTIVE: StudyState
STUDY_STATE_STOPPED: StudyState
STUDY_STATE_COMPLETED: StudyState
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_STATE_QUEUED: TrialState
TRIAL_STATE_ACTIVE: TrialState
TRIAL_STATE_COMPLETED: TrialState
TRIAL_STATE_PRUNED: TrialState
TRIAL_STATE_FAILED: TrialState
TRIAL_STATE_INFEASIBLE: TrialState
TRIAL_STATE_STALE: TrialState
TRIAL_SOURCE_UNSPECIFIED: TrialSource
TRIAL_SOURCE_ALGORITHM: TrialSource
TRIAL_SOURCE_USER: TrialSource
TRIAL_SOURCE_RETRY: TrialSource
PBT_DECISION_UNSPECIFIED: PbtDecision
PBT_DECISION_START: PbtDecision
PBT_DECISION_CONTINUE: PbtDecision
PBT_DECISION_EXPLOIT: PbtDecision
PBT_DECISION_REDO: PbtDecision

class ParameterValue(_message.Message):
    __slots__ = ("float_value", "int_value", "string_value", "bool_value")
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    float_value: float
    int_value: int
    string_value: str
    bool_value: bool
    def __init__(self, float_value: _Optional[float] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class FloatRange(_message.Message):
    __slots__ = ("low", "high", "scale", "step")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    scale: Scale
    step: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ..., scale: _Optional[_Union[Scale, str]] = ..., step: _Optional[float] = ...) -> None: ...

class IntRange(_message.Message):
    __slots__ = ("low", "high", "scale", "step")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    scale: Scale
    step: int
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., scale: _Optional[_Union[Scale, str]] = ..., step: _Optional[int] = ...) -> None: ...

class Categorical(_message.Message):
    __slots__ = ("choices",)
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    choices: _containers.RepeatedCompositeFieldContainer[ParameterValue]
    def __init__(self, choices: _Optional[_Iterable[_Union[ParameterValue, _Mapping]]] = ...) -> None: ...

class Fixed(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: ParameterValue
    def __init__(self, value: _Optional[_Union[ParameterValue, _Mapping]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("parent", "values")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    parent: str
    values: _containers.RepeatedCompositeFieldContainer[ParameterValue]
    def __init__(self, parent: _Optional[str] = ..., values: _Optional[_Iterable[_Union[ParameterValue, _Mapping]]] = ...) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ("name", "float_range", "int_range", "categorical", "fixed", "condition")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOAT_RANGE_FIELD_NUMBER: _ClassVar[int]
    INT_RANGE_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    FIXED_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    name: str
    float_range: FloatRange
    int_range: IntRange
    categorical: Categorical
    fixed: Fixed
    condition: Condition
    def __init__(self, name: _Optional[str] = ..., float_range: _Optional[_Union[FloatRange, _Mapping]] = ..., int_range: _Optional[_Union[IntRange, _Mapping]] = ..., categorical: _Optional[_Union[Categorical, _Mapping]] = ..., fixed: _Optional[_Union[Fixed, _Mapping]] = ..., condition: _Optional[_Union[Condition, _Mapping]] = ...) -> None: ...

class Objective(_message.Message):
    __slots__ = ("metric", "direction", "reference_point")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_POINT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    direction: Direction
    reference_point: float
    def __init__(self, metric: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., reference_point: _Optional[float] = ...) -> None: ...

class Algorithm(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "retry_failed")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_FAILED_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    retry_failed: bool
    def __init__(self, max_retries: _Optional[int] = ..., retry_failed: _Optional[bool] = ...) -> None: ...

class Fidelity(_message.Message):
    __slots__ = ("name", "min", "max", "reduction_factor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    REDUCTION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    min: float
    max: float
    reduction_factor: float
    def __init__(self, name: _Optional[str] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., reduction_factor: _Optional[float] = ...) -> None: ...

class Pruner(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StudySpec(_message.Message):
    __slots__ = ("parameters", "objectives", "algorithm", "seed", "max_trials", "max_parallel_trials", "lease_duration", "retry_policy", "fidelity", "pruner", "constraints", "prior_studies")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_TRIALS_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_TRIALS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    FIDELITY_FIELD_NUMBER: _ClassVar[int]
    PRUNER_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_STUDIES_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    objectives: _containers.RepeatedCompositeFieldContainer[Objective]
    algorithm: Algorithm
    seed: int
    max_trials: int
    max_parallel_trials: int
    lease_duration: _duration_pb2.Duration
    retry_policy: RetryPolicy
    fidelity: Fidelity
    pruner: Pruner
    constraints: _containers.RepeatedScalarFieldContainer[str]
    prior_studies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., objectives: _Optional[_Iterable[_Union[Objective, _Mapping]]] = ..., algorithm: _Optional[_Union[Algorithm, _Mapping]] = ..., seed: _Optional[int] = ..., max_trials: _Optional[int] = ..., max_parallel_trials: _Optional[int] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., fidelity: _Optional[_Union[Fidelity, _Mapping]] = ..., pruner: _Optional[_Union[Pruner, _Mapping]] = ..., constraints: _Optional[_Iterable[str]] = ..., prior_studies: _Optional[_Iterable[str]] = ...) -> None: ...

class TrialCounts(_message.Message):
    __slots__ = ("queued", "active", "completed", "pruned", "failed", "infeasible", "stale")
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    INFEASIBLE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    queued: int
    active: int
    completed: int
    pruned: int
    failed: int
    infeasible: int
    stale: int
    def __init__(self, queued: _Optional[int] = ..., active: _Optional[int] = ..., completed: _Optional[int] = ..., pruned: _Optional[int] = ..., failed: _Optional[int] = ..., infeasible: _Optional[int] = ..., stale: _Optional[int] = ...) -> None: ...

class Study(_message.Message):
    __slots__ = ("name", "spec", "state", "trial_counts", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: StudySpec
    state: StudyState
    trial_counts: TrialCounts
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[StudySpec, _Mapping]] = ..., state: _Optional[_Union[StudyState, str]] = ..., trial_counts: _Optional[_Union[TrialCounts, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Metric(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("step", "metrics", "create_time")
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    step: int
    metrics: _containers.RepeatedCompositeFieldContainer[Metric]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[int] = ..., metrics: _Optional[_Iterable[_Union[Metric, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("id", "study", "number", "state", "source", "parameters", "budget", "worker_id", "lease_expire_time", "attempt", "retry_of", "metrics", "reason", "last_measurement", "create_time", "start_time", "end_time", "suggestion_metadata", "run_id", "seed", "constraints", "feasible", "pbt_segment")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParameterValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_MEASUREMENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_METADATA_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    PBT_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    study: str
    number: int
    state: TrialState
    source: TrialSource
    parameters: _containers.MessageMap[str, ParameterValue]
    budget: float
    worker_id: str
    lease_expire_time: _timestamp_pb2.Timestamp
    attempt: int
    retry_of: int
    metrics: _containers.RepeatedCompositeFieldContainer[Metric]
    reason: str
    last_measurement: Measurement
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    suggestion_metadata: _struct_pb2.Struct
    run_id: str
    seed: int
    constraints: _containers.RepeatedScalarFieldContainer[float]
    feasible: bool
    pbt_segment: PbtSegment
    def __init__(self, id: _Optional[int] = ..., study: _Optional[str] = ..., number: _Optional[int] = ..., state: _Optional[_Union[TrialState, str]] = ..., source: _Optional[_Union[TrialSource, str]] = ..., parameters: _Optional[_Mapping[str, ParameterValue]] = ..., budget: _Optional[float] = ..., worker_id: _Optional[str] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., retry_of: _Optional[int] = ..., metrics: _Optional[_Iterable[_Union[Metric, _Mapping]]] = ..., reason: _Optional[str] = ..., last_measurement: _Optional[_Union[Measurement, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suggestion_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., run_id: _Optional[str] = ..., seed: _Optional[int] = ..., constraints: _Optional[_Iterable[float]] = ..., feasible: _Optional[bool] = ..., pbt_segment: _Optional[_Union[PbtSegment, _Mapping]] = ...) -> None: ...

class PbtSegment(_message.Message):
    __slots__ = ("member", "generation", "start_step", "end_step", "last", "parent_trial_id", "parent_member", "decision")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    START_STEP_FIELD_NUMBER: _ClassVar[int]
    END_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    PARENT_TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_MEMBER_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    member: int
    generation: int
    start_step: int
    end_step: int
    last: bool
    parent_trial_id: int
    parent_member: int
    decision: PbtDecision
    def __init__(self, member: _Optional[int] = ..., generation: _Optional[int] = ..., start_step: _Optional[int] = ..., end_step: _Optional[int] = ..., last: _Optional[bool] = ..., parent_trial_id: _Optional[int] = ..., parent_member: _Optional[int] = ..., decision: _Optional[_Union[PbtDecision, str]] = ...) -> None: ...

class Permission(_message.Message):
    __slots__ = ("subject", "role")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    subject: str
    role: str
    def __init__(self, subject: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...
