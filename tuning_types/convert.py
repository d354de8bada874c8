"""Proto <-> Python for what clients and the suggestion service both speak: parameter values,
search spaces and study specs. Structural checks raise InvalidArgument naming the field."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from tuning.suggestion.v1 import study_pb2 as pb
from tuning_common.errors import InvalidArgument
from tuning_types.space import (
    CategoricalDomain,
    Condition,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
    Value,
)
from tuning_types.study import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_REDUCTION_FACTOR,
    AlgorithmSpec,
    Direction,
    Fidelity,
    Objective,
    PrunerSpec,
    RetryPolicy,
    StudySpec,
)

_DIRECTIONS = {pb.DIRECTION_MINIMIZE: Direction.MINIMIZE, pb.DIRECTION_MAXIMIZE: Direction.MAXIMIZE}


def value_from_proto(value: pb.ParameterValue, field: str) -> Value:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(field, "a value (float_value, int_value, string_value or bool_value) is required")
    return getattr(value, kind)


def value_to_proto(value: Value) -> pb.ParameterValue:
    if type(value) is bool:
        return pb.ParameterValue(bool_value=value)
    if type(value) is int:
        return pb.ParameterValue(int_value=value)
    if type(value) is float:
        return pb.ParameterValue(float_value=value)
    return pb.ParameterValue(string_value=value)


def _scale(scale: int, field: str) -> bool:
    if scale not in (pb.SCALE_UNSPECIFIED, pb.SCALE_LINEAR, pb.SCALE_LOG):
        raise InvalidArgument(field, f"unknown scale {scale}")
    return scale == pb.SCALE_LOG


def parameter_from_proto(spec: pb.ParameterSpec, field: str) -> Parameter:
    kind = spec.WhichOneof("domain")
    if kind == "float_range":
        r = spec.float_range
        domain = FloatDomain(r.low, r.high, _scale(r.scale, f"{field}.float_range.scale"),
                             r.step if r.HasField("step") else None)
    elif kind == "int_range":
        r = spec.int_range
        domain = IntDomain(r.low, r.high, _scale(r.scale, f"{field}.int_range.scale"),
                           r.step if r.HasField("step") else None)
    elif kind == "categorical":
        domain = CategoricalDomain(tuple(
            value_from_proto(c, f"{field}.categorical.choices[{i}]") for i, c in enumerate(spec.categorical.choices)
        ))
    elif kind == "fixed":
        domain = FixedDomain(value_from_proto(spec.fixed.value, f"{field}.fixed.value"))
    else:
        raise InvalidArgument(f"{field}.domain", "one of float_range, int_range, categorical or fixed is required")
    condition = None
    if spec.HasField("condition"):
        condition = Condition(spec.condition.parent, tuple(
            value_from_proto(v, f"{field}.condition.values[{i}]") for i, v in enumerate(spec.condition.values)
        ))
    return Parameter(spec.name, domain, condition)


def spec_from_proto(spec: pb.StudySpec) -> StudySpec:
    objectives = []
    for i, objective in enumerate(spec.objectives):
        if objective.direction not in _DIRECTIONS:
            raise InvalidArgument(f"spec.objectives[{i}].direction", "must be DIRECTION_MINIMIZE or DIRECTION_MAXIMIZE")
        reference = objective.reference_point if objective.HasField("reference_point") else None
        objectives.append(Objective(objective.metric, _DIRECTIONS[objective.direction], reference))
    algorithm = AlgorithmSpec()
    if spec.HasField("algorithm"):
        if not spec.algorithm.name:
            raise InvalidArgument("spec.algorithm.name", "is required when an algorithm is given")
        algorithm = AlgorithmSpec(spec.algorithm.name, json_format.MessageToDict(spec.algorithm.settings))
    lease = DEFAULT_LEASE_SECONDS
    if spec.HasField("lease_duration"):
        # Plain arithmetic, not ToTimedelta (which overflows on huge values): StudySpec checks the range.
        lease = spec.lease_duration.seconds + spec.lease_duration.nanos / 1e9
    retry = RetryPolicy()
    if spec.HasField("retry_policy"):
        policy = spec.retry_policy
        retry = RetryPolicy(
            policy.max_retries if policy.HasField("max_retries") else retry.max_retries, policy.retry_failed
        )
    fidelity = None
    if spec.HasField("fidelity"):
        f = spec.fidelity
        fidelity = Fidelity(f.name, f.min, f.max,
                            f.reduction_factor if f.HasField("reduction_factor") else DEFAULT_REDUCTION_FACTOR)
    pruner = None
    if spec.HasField("pruner"):
        if not spec.pruner.name:
            raise InvalidArgument("spec.pruner.name", "is required when a pruner is given")
        pruner = PrunerSpec(spec.pruner.name, json_format.MessageToDict(spec.pruner.settings))
    return StudySpec(
        space=SearchSpace(tuple(parameter_from_proto(p, f"spec.parameters[{i}]") for i, p in enumerate(spec.parameters))),
        objectives=tuple(objectives),
        algorithm=algorithm,
        seed=spec.seed if spec.HasField("seed") else None,
        max_trials=spec.max_trials,
        max_parallel_trials=spec.max_parallel_trials,
        lease_seconds=lease,
        retry_policy=retry,
        fidelity=fidelity,
        pruner=pruner,
        constraints=tuple(spec.constraints),
        prior_studies=tuple(spec.prior_studies),
    )


def params_from_proto(params: Mapping[str, pb.ParameterValue], field: str = "parameters") -> dict[str, Value]:
    return {name: value_from_proto(value, f"{field}[{name}]") for name, value in params.items()}


def timestamp(ms: int | None) -> timestamp_pb2.Timestamp | None:
    if ms is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _parameter_to_proto(parameter: Parameter) -> pb.ParameterSpec:
    d = parameter.domain
    message = pb.ParameterSpec(name=parameter.name)
    if isinstance(d, FloatDomain):
        message.float_range.CopyFrom(pb.FloatRange(low=d.low, high=d.high, step=d.step,
                                                   scale=pb.SCALE_LOG if d.log else pb.SCALE_LINEAR))
    elif isinstance(d, IntDomain):
        message.int_range.CopyFrom(pb.IntRange(low=d.low, high=d.high, step=d.step,
                                               scale=pb.SCALE_LOG if d.log else pb.SCALE_LINEAR))
    elif isinstance(d, CategoricalDomain):
        message.categorical.CopyFrom(pb.Categorical(choices=[value_to_proto(c) for c in d.choices]))
    else:
        message.fixed.CopyFrom(pb.Fixed(value=value_to_proto(d.value)))
    if parameter.condition is not None:
        message.condition.CopyFrom(pb.Condition(
            parent=parameter.condition.parent, values=[value_to_proto(v) for v in parameter.condition.values]
        ))
    return message


def spec_to_proto(spec: StudySpec) -> pb.StudySpec:
    settings = struct(spec.algorithm.settings)
    lease = duration_pb2.Duration()
    lease.FromMilliseconds(int(spec.lease_seconds * 1000))
    return pb.StudySpec(
        parameters=[_parameter_to_proto(p) for p in spec.space],
        objectives=[
            pb.Objective(metric=o.metric, direction=pb.DIRECTION_MINIMIZE
                         if o.direction is Direction.MINIMIZE else pb.DIRECTION_MAXIMIZE,
                         reference_point=o.reference_point)
            for o in spec.objectives
        ],
        algorithm=pb.Algorithm(name=spec.algorithm.name, settings=settings),
        seed=spec.seed,
        max_trials=spec.max_trials,
        max_parallel_trials=spec.max_parallel_trials,
        lease_duration=lease,
        retry_policy=pb.RetryPolicy(
            max_retries=spec.retry_policy.max_retries, retry_failed=spec.retry_policy.retry_failed
        ),
        fidelity=None if spec.fidelity is None else pb.Fidelity(
            name=spec.fidelity.name, min=spec.fidelity.min, max=spec.fidelity.max,
            reduction_factor=spec.fidelity.reduction_factor,
        ),
        pruner=None if spec.pruner is None else pb.Pruner(
            name=spec.pruner.name, settings=struct(spec.pruner.settings)
        ),
        constraints=spec.constraints,
        prior_studies=spec.prior_studies,
    )


def struct(data: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(data)
    return message
