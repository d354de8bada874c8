"""Who may call which RPC of the tracking service and its model registry, with roles on
(tuning_common.access).

Experiments carry roles, and runs and logged models have their experiment's; registered
models carry roles, and their versions (and aliases, stages, events) have the model's, as in
MLflow. Readers see; editors log runs, metrics, artifacts and logged models, tag, and add or
change model versions (descriptions, tags, stages, aliases; a version made from a run needs
the reader role on the run's experiment too); managers also rename, delete
and restore the resource (and delete model versions) and give roles on it. Anyone
authenticated may create an experiment or a registered model and becomes its manager.
Webhooks are server-wide: admins only. The listings (SearchExperiments,
SearchRegisteredModels, SearchModelVersions) show only what the caller may read; SearchRuns
and SearchLoggedModels need the reader role on every experiment they name; the registry's
event log needs the reader role on the model it names (the whole log: admins, or everyone
with a default role of reader).
"""

from __future__ import annotations

from tracking_service.logged_model_service import LoggedModelService
from tracking_service.persistence.tables import EXPERIMENT, REGISTERED_MODEL
from tracking_service.registry.domain.model import RUNS_SCHEME
from tracking_service.registry.service import RegistryService
from tracking_service.service import TrackingService
from tuning.tracking.v1 import registry_service_pb2, tracking_service_pb2
from tuning_common.access import (
    ADMIN_ONLY,
    EDITOR,
    MANAGER,
    READER,
    Creates,
    Lists,
    Needs,
    PermissionManager,
    Rule,
)
from tuning_common.permissions import PermissionStore, Resource

TRACKING = tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"]
REGISTRY = registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"]


def rules(tracking: TrackingService, models: LoggedModelService, registry: RegistryService,
          store: PermissionStore | None) -> dict[str, Rule]:
    """The rule of every RPC of both services (the services answer the rules' lookups;
    ``store``: where the roles of deleted and renamed registered models are updated)."""

    def experiment(request) -> Resource:
        return Resource(EXPERIMENT, str(request.experiment_id))

    def experiments(request) -> list[Resource]:
        return [Resource(EXPERIMENT, str(experiment_id)) for experiment_id in request.experiment_ids]

    def experiment_named(request) -> Resource:
        return Resource(EXPERIMENT, str(tracking.get_experiment_by_name(request.name).id))

    def run(request) -> Resource:
        return Resource(EXPERIMENT, str(tracking.experiment_of_run(request.run_id)))

    def upload(request) -> Resource:
        return Resource(EXPERIMENT, str(tracking.experiment_of_run(request.header.run_id)))

    def logged_model(request) -> Resource:
        return Resource(EXPERIMENT, str(models.get(request.model_id).experiment_id))

    def source_run(request) -> list[Resource]:
        run_id = request.run_id
        if request.source.startswith(RUNS_SCHEME):
            run_id = request.source[len(RUNS_SCHEME):].split("/", 1)[0]
        return [Resource(EXPERIMENT, str(tracking.experiment_of_run(run_id)))] if run_id else []

    def model(request) -> Resource:
        return Resource(REGISTERED_MODEL, request.name)

    def events_of(request) -> Resource | None:
        return Resource(REGISTERED_MODEL, request.name) if request.name else None

    def forget_model(request, actor: str) -> None:
        if store is not None:
            store.drop(Resource(REGISTERED_MODEL, request.name), actor=actor)

    def move_model(request, actor: str) -> None:
        if store is not None:
            store.move(Resource(REGISTERED_MODEL, request.name), request.new_name, actor=actor)

    tracking_rules = {
        "CreateExperiment": Creates(EXPERIMENT, lambda response: (str(response.experiment.id), True)),
        "GetExperiment": Needs(READER, experiment),
        "GetExperimentByName": Needs(READER, experiment_named),
        "SearchExperiments": Lists(EXPERIMENT),
        "RenameExperiment": Needs(MANAGER, experiment),
        "SetExperimentTag": Needs(EDITOR, experiment),
        "DeleteExperiment": Needs(MANAGER, experiment),
        "RestoreExperiment": Needs(MANAGER, experiment),
        "CreateRun": Needs(EDITOR, experiment),
        "UpdateRun": Needs(EDITOR, run),
        "GetRun": Needs(READER, run),
        "SearchRuns": Needs(READER, experiments),
        "DeleteRun": Needs(EDITOR, run),
        "RestoreRun": Needs(EDITOR, run),
        "LogBatch": Needs(EDITOR, run),
        "LogMetric": Needs(EDITOR, run),
        "LogParam": Needs(EDITOR, run),
        "SetTag": Needs(EDITOR, run),
        "DeleteTag": Needs(EDITOR, run),
        "LogInputs": Needs(EDITOR, run),
        "GetMetricHistory": Needs(READER, run),
        "UploadArtifact": Needs(EDITOR, upload),
        "DownloadArtifact": Needs(READER, run),
        "GetArtifactDownloadUrl": Needs(READER, run),
        "ListArtifacts": Needs(READER, run),
        "CreateLoggedModel": Needs(EDITOR, experiment),
        "GetLoggedModel": Needs(READER, logged_model),
        "FinalizeLoggedModel": Needs(EDITOR, logged_model),
        "DeleteLoggedModel": Needs(EDITOR, logged_model),
        "SetLoggedModelTags": Needs(EDITOR, logged_model),
        "DeleteLoggedModelTag": Needs(EDITOR, logged_model),
        "LogLoggedModelParams": Needs(EDITOR, logged_model),
        "LogLoggedModelMetrics": Needs(EDITOR, logged_model),
        "SearchLoggedModels": Needs(READER, experiments),
        "SetExperimentPermission": Needs(MANAGER, experiment),
        "DeleteExperimentPermission": Needs(MANAGER, experiment),
        "ListExperimentPermissions": Needs(MANAGER, experiment),
    }
    registry_rules = {
        "CreateRegisteredModel": Creates(REGISTERED_MODEL, lambda response: (response.registered_model.name, True)),
        "GetRegisteredModel": Needs(READER, model),
        "SearchRegisteredModels": Lists(REGISTERED_MODEL),
        "RenameRegisteredModel": Needs(MANAGER, model, after=move_model),
        "UpdateRegisteredModel": Needs(EDITOR, model),
        "SetRegisteredModelTag": Needs(EDITOR, model),
        "DeleteRegisteredModelTag": Needs(EDITOR, model),
        "DeleteRegisteredModel": Needs(MANAGER, model, after=forget_model),
        # Its artifacts become the version's: whoever reads the model would read the run's.
        "CreateModelVersion": Needs(EDITOR, model, also=(Needs(READER, source_run),)),
        "GetModelVersion": Needs(READER, model),
        "SearchModelVersions": Lists(REGISTERED_MODEL),
        "UpdateModelVersion": Needs(EDITOR, model),
        "SetModelVersionTag": Needs(EDITOR, model),
        "DeleteModelVersionTag": Needs(EDITOR, model),
        "DeleteModelVersion": Needs(MANAGER, model),
        "TransitionModelVersionStage": Needs(EDITOR, model),
        "SetRegisteredModelAlias": Needs(EDITOR, model),
        "DeleteRegisteredModelAlias": Needs(EDITOR, model),
        "GetModelVersionByAlias": Needs(READER, model),
        "GetModelVersionDownloadUri": Needs(READER, model),
        # Without a name: the whole log (admins, or a default role of reader).
        "ListRegistryEvents": Needs(READER, events_of),
        "CreateWebhook": ADMIN_ONLY,
        "GetWebhook": ADMIN_ONLY,
        "ListWebhooks": ADMIN_ONLY,
        "UpdateWebhook": ADMIN_ONLY,
        "DeleteWebhook": ADMIN_ONLY,
        "TestWebhook": ADMIN_ONLY,
        "ListWebhookDeliveries": ADMIN_ONLY,
        "SetRegisteredModelPermission": Needs(MANAGER, model),
        "DeleteRegisteredModelPermission": Needs(MANAGER, model),
        "ListRegisteredModelPermissions": Needs(MANAGER, model),
    }
    return {**{f"/{TRACKING.full_name}/{name}": rule for name, rule in tracking_rules.items()},
            **{f"/{REGISTRY.full_name}/{name}": rule for name, rule in registry_rules.items()}}


def permission_manager(tracking: TrackingService, registry: RegistryService,
                       store: PermissionStore | None) -> PermissionManager:
    return PermissionManager(store, {EXPERIMENT: lambda experiment_id: tracking.get_experiment(int(experiment_id)),
                                     REGISTERED_MODEL: registry.get_model})
