"""Proto <-> domain conversions for the registry API. No rules here beyond the mapping."""

from __future__ import annotations

from tracking_service.api.convert import tags_to_proto, timestamp, trial_to_proto
from tracking_service.registry.domain.model import ModelVersion, RegisteredModel, RegistryAction, RegistryEvent, Stage
from tracking_service.registry.domain.webhook import WebhookEvent
from tuning.tracking.v1 import registry_pb2 as pb
from tuning.tracking.v1 import webhook_pb2 as wpb
from tuning_common.errors import InvalidArgument
from tuning_common.webhooks import WebhookProtos

_STAGES = {stage: getattr(pb, f"STAGE_{stage.name}") for stage in Stage}
_STAGE_FROM = {v: k for k, v in _STAGES.items()}
_ACTIONS = {action: getattr(pb, f"REGISTRY_ACTION_{action.name}") for action in RegistryAction}


def stage_from_proto(value: int, field: str = "stage") -> Stage:
    # STAGE_UNSPECIFIED is refused rather than read as None: a forgotten field must not demote a version.
    if value not in _STAGE_FROM:
        raise InvalidArgument(field, f"must be STAGE_NONE, STAGE_STAGING, STAGE_PRODUCTION or STAGE_ARCHIVED, "
                                     f"got {value}")
    return _STAGE_FROM[value]


def model_version_to_proto(v: ModelVersion) -> pb.ModelVersion:
    return pb.ModelVersion(
        name=v.name, version=v.version, source=v.source, run_id=v.run_id or "",
        status=pb.ModelVersionStatus.Value(f"MODEL_VERSION_STATUS_{v.status}"), stage=_STAGES[v.stage],
        description=v.description, tags=tags_to_proto(v.tags), aliases=list(v.aliases), user=v.user,
        create_time=timestamp(v.create_ms), update_time=timestamp(v.update_ms), experiment_id=v.experiment_id or 0,
        trial=trial_to_proto(v.trial),
    )


def registered_model_to_proto(m: RegisteredModel) -> pb.RegisteredModel:
    return pb.RegisteredModel(
        name=m.name, description=m.description, tags=tags_to_proto(m.tags), aliases=m.aliases,
        latest_versions=[model_version_to_proto(v) for v in m.latest_versions],
        create_time=timestamp(m.create_ms), update_time=timestamp(m.update_ms),
    )


def event_to_proto(e: RegistryEvent) -> pb.RegistryEvent:
    return pb.RegistryEvent(id=e.id, model_name=e.model_name, version=e.version, action=_ACTIONS[e.action],
                            from_value=e.from_value, to_value=e.to_value, alias=e.alias, actor=e.actor,
                            reason=e.reason, time=timestamp(e.time_ms))


# -- webhooks ----------------------------------------------------------------------------------

WEBHOOKS = WebhookProtos(wpb, WebhookEvent, "model_name")
