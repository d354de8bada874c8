"""Proto <-> domain conversion for the suggestion API; structural checks name the field."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from suggestion_service.domain.pbt import CONTINUE, EXPLOIT, REDO, START, Segment
from suggestion_service.domain.space import (
    CategoricalDomain,
    Condition,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
    Value,
)
from suggestion_service.domain.study import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_REDUCTION_FACTOR,
    AlgorithmSpec,
    Direction,
    Fidelity,
    Objective,
    PrunerSpec,
    RetryPolicy,
    Study,
    StudySpec,
    StudyState,
)
from suggestion_service.domain.trial import Measurement, Metrics, Outcome, Trial, TrialSource, TrialState
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api_pb
from tuning_common.errors import InvalidArgument

_DIRECTIONS = {pb.DIRECTION_MINIMIZE: Direction.MINIMIZE, pb.DIRECTION_MAXIMIZE: Direction.MAXIMIZE}
_STUDY_STATES = {
    pb.STUDY_STATE_ACTIVE: StudyState.ACTIVE,
    pb.STUDY_STATE_STOPPED: StudyState.STOPPED,
    pb.STUDY_STATE_COMPLETED: StudyState.COMPLETED,
}
_TRIAL_STATES = {getattr(pb, f"TRIAL_STATE_{s.value}"): s for s in TrialState}
_TRIAL_STATES_OUT = {v: k for k, v in _TRIAL_STATES.items()}
_STUDY_STATES_OUT = {v: k for k, v in _STUDY_STATES.items()}
_SOURCES = {s: getattr(pb, f"TRIAL_SOURCE_{s.value}") for s in TrialSource}


# --- requests -> domain ----------------------------------------------------------------


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
    )


_OUTCOMES = {getattr(api_pb, f"OUTCOME_{o.name}"): o for o in Outcome}


def study_state_from_proto(state: int) -> StudyState | None:
    return _STUDY_STATES.get(state)


def trial_states_from_proto(states, field: str = "states") -> list[TrialState]:
    result = []
    for i, state in enumerate(states):
        if state not in _TRIAL_STATES:
            raise InvalidArgument(f"{field}[{i}]", f"unknown trial state {state}")
        result.append(_TRIAL_STATES[state])
    return result


def outcome_from_proto(outcome: int) -> Outcome | None:
    return _OUTCOMES.get(outcome)


def metrics_from_proto(metrics) -> Metrics:
    return tuple((m.name, m.value) for m in metrics)


def params_from_proto(params: Mapping[str, pb.ParameterValue], field: str = "parameters") -> dict[str, Value]:
    return {name: value_from_proto(value, f"{field}[{name}]") for name, value in params.items()}


# --- domain -> responses ---------------------------------------------------------------


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
    settings = _struct(spec.algorithm.settings)
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
            name=spec.pruner.name, settings=_struct(spec.pruner.settings)
        ),
        constraints=spec.constraints,
    )


def study_to_proto(study: Study) -> pb.Study:
    counts = study.counts
    return pb.Study(
        name=study.name,
        spec=spec_to_proto(study.spec),
        state=_STUDY_STATES_OUT[study.state],
        trial_counts=pb.TrialCounts(**vars(counts)) if counts else None,
        create_time=timestamp(study.create_ms),
        update_time=timestamp(study.update_ms),
    )


def _metrics_to_proto(metrics: Metrics) -> list[pb.Metric]:
    return [pb.Metric(name=name, value=value) for name, value in metrics]


def measurement_to_proto(m: Measurement) -> pb.Measurement:
    return pb.Measurement(step=m.step, metrics=_metrics_to_proto(m.metrics), create_time=timestamp(m.create_ms))


def trial_to_proto(trial: Trial) -> pb.Trial:
    return pb.Trial(
        id=trial.id,
        study=trial.study_name,
        number=trial.number,
        state=_TRIAL_STATES_OUT[trial.state],
        source=_SOURCES[trial.source],
        parameters={name: value_to_proto(value) for name, value in trial.params.items()},
        budget=trial.budget,
        worker_id=trial.worker_id,
        lease_expire_time=timestamp(trial.lease_expires_ms if trial.state is TrialState.ACTIVE else None),
        attempt=trial.attempt,
        retry_of=trial.retry_of,
        metrics=_metrics_to_proto(trial.metrics),
        reason=trial.reason,
        last_measurement=measurement_to_proto(trial.last_measurement) if trial.last_measurement else None,
        create_time=timestamp(trial.create_ms),
        start_time=timestamp(trial.start_ms),
        end_time=timestamp(trial.end_ms),
        suggestion_metadata=_metadata_struct(trial.suggestion_metadata) if trial.suggestion_metadata else None,
        run_id=trial.run_id or "",
        seed=seed if type(seed := trial.suggestion_metadata.get("seed")) is int else None,
        constraints=trial.constraints or (),
        feasible=trial.feasible,
        pbt_segment=_segment_to_proto(trial.pbt_segment),
    )


_DECISIONS = {START: pb.PBT_DECISION_START, CONTINUE: pb.PBT_DECISION_CONTINUE, EXPLOIT: pb.PBT_DECISION_EXPLOIT,
              REDO: pb.PBT_DECISION_REDO}


def _segment_to_proto(segment: Segment | None) -> pb.PbtSegment | None:
    if segment is None:
        return None
    return pb.PbtSegment(member=segment.member, generation=segment.generation, start_step=segment.start_step,
                         end_step=segment.end_step, last=segment.last, parent_trial_id=segment.parent_trial_id,
                         parent_member=segment.parent_member, decision=_DECISIONS[segment.decision])


# Integers a double holds exactly; a Struct number is a double.
_EXACT_INTEGERS = 2**53


def _metadata_struct(metadata: dict) -> struct_pb2.Struct:
    """``metadata`` as a Struct, with the seed (and any integer a double would round) as a
    decimal string, so that every language reads it exactly."""
    return _struct({key: str(value) if type(value) is int and (key == "seed" or abs(value) > _EXACT_INTEGERS)
                    else value for key, value in metadata.items()})


def _struct(data: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct
