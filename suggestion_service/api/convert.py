"""Proto <-> domain conversion for the suggestion API; structural checks name the field."""

from __future__ import annotations

from google.protobuf import struct_pb2

from suggestion_service.domain.pbt import CONTINUE, EXPLOIT, REDO, START, Segment
from suggestion_service.domain.study import Study, StudyState
from suggestion_service.domain.trial import (
    Measurement,
    Metrics,
    Outcome,
    Trial,
    TrialSource,
    TrialState,
)
from suggestion_service.domain.webhook import WebhookEvent
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api_pb
from tuning.suggestion.v1 import webhook_pb2 as wpb
from tuning_common.errors import InvalidArgument
from tuning_common.webhooks import WebhookProtos
from tuning_types.convert import (
    spec_to_proto,
    struct,
    timestamp,
    value_to_proto,
)

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


# --- domain -> responses ---------------------------------------------------------------


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
    return struct({key: str(value) if type(value) is int and (key == "seed" or abs(value) > _EXACT_INTEGERS)
                    else value for key, value in metadata.items()})


WEBHOOKS = WebhookProtos(wpb, WebhookEvent, "study_name")
