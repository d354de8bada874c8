"""Who may call which RPC of the suggestion service, with roles on (tuning_common.access).

Studies carry the roles; a trial has its study's. Readers see a study and its trials;
editors also do what workers do (ask, tell, heartbeats, enqueue trials); managers also stop,
complete or delete the study and give roles on it. Study webhooks are for admins. Anyone authenticated may create a study
(with prior studies: one it may read each of) and becomes its manager; ListStudies shows only the studies the caller may read.
"""

from __future__ import annotations

from suggestion_service.persistence.tables import STUDY
from tuning.suggestion.v1 import suggestion_service_pb2
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
from tuning_types.space import check_name

SERVICE = suggestion_service_pb2.DESCRIPTOR.services_by_name["SuggestionService"]


def rules(service, store: PermissionStore | None) -> dict[str, Rule]:
    """The rule of every RPC (``service``: the SuggestionService its lookups ask; ``store``:
    where the roles of deleted studies are forgotten)."""

    def named(request) -> Resource:
        return Resource(STUDY, request.name)

    def study(request) -> Resource:
        return Resource(STUDY, request.study)

    def priors(request) -> list[Resource]:
        return [Resource(STUDY, name) for name in request.spec.prior_studies]

    def trial(request) -> Resource:
        return Resource(STUDY, service.get_trial(request.trial_id).study_name)

    def forget(request, actor: str) -> None:
        if store is not None:
            store.drop(Resource(STUDY, request.name), actor=actor)

    table = {
        # A study that learns from prior studies reads their trials: its maker must be able to.
        "CreateStudy": Creates(STUDY, lambda response: (response.study.name, response.created),
                               also=(Needs(READER, priors),)),
        "GetStudy": Needs(READER, named),
        "ListStudies": Lists(STUDY),
        "SetStudyState": Needs(MANAGER, named),
        "DeleteStudy": Needs(MANAGER, named, after=forget),
        "SuggestTrials": Needs(EDITOR, study),
        "ReportIntermediate": Needs(EDITOR, trial),
        "LinkRun": Needs(EDITOR, trial),
        "Heartbeat": Needs(EDITOR, trial),
        "ReleaseTrial": Needs(EDITOR, trial),
        "CompleteTrial": Needs(EDITOR, trial),
        "CreateTrial": Needs(EDITOR, study),
        "GetTrial": Needs(READER, trial),
        "ListTrials": Needs(READER, study),
        "ListMeasurements": Needs(READER, trial),
        "GetBestTrials": Needs(READER, study),
        "GetPopulation": Needs(READER, study),
        "GetParameterImportance": Needs(READER, study),
        # Webhooks are server-wide (a URL and a secret; one may follow every study): admins only.
        "CreateStudyWebhook": ADMIN_ONLY,
        "GetStudyWebhook": ADMIN_ONLY,
        "ListStudyWebhooks": ADMIN_ONLY,
        "UpdateStudyWebhook": ADMIN_ONLY,
        "DeleteStudyWebhook": ADMIN_ONLY,
        "TestStudyWebhook": ADMIN_ONLY,
        "ListStudyWebhookDeliveries": ADMIN_ONLY,
        "SetStudyPermission": Needs(MANAGER, study),
        "DeleteStudyPermission": Needs(MANAGER, study),
        "ListStudyPermissions": Needs(MANAGER, study),
    }
    return {f"/{SERVICE.full_name}/{name}": rule for name, rule in table.items()}


def permission_manager(service, store: PermissionStore | None) -> PermissionManager:
    def exists(name: str) -> None:
        check_name("study", name, "study name")  # the requests' field is `study`
        service.get_study(name)

    return PermissionManager(store, {STUDY: exists})
