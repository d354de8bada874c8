"""The gRPC servicer of the model registry: decode the request, call the use case, encode the answer.

Errors are raised as :mod:`tuning_common.errors` and mapped by the server's interceptor.
"""

from __future__ import annotations

from tracking_service.api.convert import tags_from_proto
from tracking_service.persistence.tables import REGISTERED_MODEL
from tracking_service.registry.api import convert
from tracking_service.registry.service import RegistryService
from tuning.tracking.v1 import registry_service_pb2 as api
from tuning.tracking.v1 import registry_service_pb2_grpc as api_grpc
from tuning.tracking.v1 import tracking_pb2
from tuning_common import access
from tuning_common.access import PermissionManager
from tuning_common.permissions import Resource
from tuning_common.webhooks import WebhookRpcs, WebhookService


class ModelRegistryServicer(api_grpc.ModelRegistryServiceServicer):
    def __init__(self, service: RegistryService, webhooks: WebhookService, permissions: PermissionManager):
        self.service, self.permissions = service, permissions
        self.webhooks = WebhookRpcs(webhooks, convert.WEBHOOKS, api, "")

    # -- registered models ----------------------------------------------------------------------

    def CreateRegisteredModel(self, request, context):
        model = self.service.create_model(request.name, request.description, dict(tags_from_proto(request.tags)))
        return api.CreateRegisteredModelResponse(registered_model=convert.registered_model_to_proto(model))

    def GetRegisteredModel(self, request, context):
        model = self.service.get_model(request.name)
        return api.GetRegisteredModelResponse(registered_model=convert.registered_model_to_proto(model))

    def SearchRegisteredModels(self, request, context):
        found, token = self.service.search_models(request.filter, list(request.order_by), request.page_size,
                                                  request.page_token, readable=access.readable_subjects())
        return api.SearchRegisteredModelsResponse(
            registered_models=[convert.registered_model_to_proto(m) for m in found], next_page_token=token)

    def RenameRegisteredModel(self, request, context):
        model = self.service.rename_model(request.name, request.new_name, request.actor)
        return api.RenameRegisteredModelResponse(registered_model=convert.registered_model_to_proto(model))

    def UpdateRegisteredModel(self, request, context):
        model = self.service.update_model(request.name, request.description)
        return api.UpdateRegisteredModelResponse(registered_model=convert.registered_model_to_proto(model))

    def SetRegisteredModelTag(self, request, context):
        self.service.set_model_tag(request.name, request.key, request.value)
        return api.SetRegisteredModelTagResponse()

    def DeleteRegisteredModelTag(self, request, context):
        self.service.delete_model_tag(request.name, request.key)
        return api.DeleteRegisteredModelTagResponse()

    def DeleteRegisteredModel(self, request, context):
        self.service.delete_model(request.name, request.actor)
        return api.DeleteRegisteredModelResponse()

    # -- model versions -------------------------------------------------------------------------

    def CreateModelVersion(self, request, context):
        version = self.service.create_version(request.name, request.source, request.run_id, request.description,
                                              dict(tags_from_proto(request.tags)), request.actor)
        return api.CreateModelVersionResponse(model_version=convert.model_version_to_proto(version))

    def GetModelVersion(self, request, context):
        version = self.service.get_version(request.name, request.version)
        return api.GetModelVersionResponse(model_version=convert.model_version_to_proto(version))

    def SearchModelVersions(self, request, context):
        found, token = self.service.search_versions(request.filter, list(request.order_by), request.page_size,
                                                    request.page_token, readable=access.readable_subjects())
        return api.SearchModelVersionsResponse(model_versions=[convert.model_version_to_proto(v) for v in found],
                                               next_page_token=token)

    def UpdateModelVersion(self, request, context):
        version = self.service.update_version(request.name, request.version, request.description)
        return api.UpdateModelVersionResponse(model_version=convert.model_version_to_proto(version))

    def SetModelVersionTag(self, request, context):
        self.service.set_version_tag(request.name, request.version, request.key, request.value)
        return api.SetModelVersionTagResponse()

    def DeleteModelVersionTag(self, request, context):
        self.service.delete_version_tag(request.name, request.version, request.key)
        return api.DeleteModelVersionTagResponse()

    def DeleteModelVersion(self, request, context):
        self.service.delete_version(request.name, request.version, request.actor)
        return api.DeleteModelVersionResponse()

    def TransitionModelVersionStage(self, request, context):
        version = self.service.transition_stage(
            request.name, request.version, convert.stage_from_proto(request.stage),
            archive_existing_versions=request.archive_existing_versions, actor=request.actor, reason=request.reason)
        return api.TransitionModelVersionStageResponse(model_version=convert.model_version_to_proto(version))

    def GetModelVersionDownloadUri(self, request, context):
        return api.GetModelVersionDownloadUriResponse(
            artifact_uri=self.service.download_uri(request.name, request.version))

    # -- aliases --------------------------------------------------------------------------------

    def SetRegisteredModelAlias(self, request, context):
        self.service.set_alias(request.name, request.alias, request.version, request.actor, request.reason)
        return api.SetRegisteredModelAliasResponse()

    def DeleteRegisteredModelAlias(self, request, context):
        self.service.delete_alias(request.name, request.alias, request.actor, request.reason)
        return api.DeleteRegisteredModelAliasResponse()

    def GetModelVersionByAlias(self, request, context):
        version = self.service.version_by_alias(request.name, request.alias)
        return api.GetModelVersionByAliasResponse(model_version=convert.model_version_to_proto(version))

    # -- audit log ------------------------------------------------------------------------------

    def ListRegistryEvents(self, request, context):
        events, token = self.service.list_events(request.name, request.version, request.page_size,
                                                 request.page_token)
        return api.ListRegistryEventsResponse(events=[convert.event_to_proto(e) for e in events],
                                              next_page_token=token)

    # -- webhooks (tuning_common.webhooks.WebhookRpcs) -------------------------------------------

    def CreateWebhook(self, request, context):
        return self.webhooks.create(request)

    def GetWebhook(self, request, context):
        return self.webhooks.get(request)

    def ListWebhooks(self, request, context):
        return self.webhooks.list(request)

    def UpdateWebhook(self, request, context):
        return self.webhooks.update(request)

    def DeleteWebhook(self, request, context):
        return self.webhooks.delete(request)

    def TestWebhook(self, request, context):
        return self.webhooks.test(request)

    def ListWebhookDeliveries(self, request, context):
        return self.webhooks.deliveries(request)

    # -- permissions (roles on; tuning_common.access) ------------------------------------------

    def SetRegisteredModelPermission(self, request, context):
        subject, role = self.permissions.set(Resource(REGISTERED_MODEL, request.name), request.subject, request.role)
        return api.SetRegisteredModelPermissionResponse(permission=tracking_pb2.Permission(subject=subject, role=role))

    def DeleteRegisteredModelPermission(self, request, context):
        self.permissions.delete(Resource(REGISTERED_MODEL, request.name), request.subject)
        return api.DeleteRegisteredModelPermissionResponse()

    def ListRegisteredModelPermissions(self, request, context):
        return api.ListRegisteredModelPermissionsResponse(permissions=[
            tracking_pb2.Permission(subject=subject, role=role)
            for subject, role in self.permissions.list(Resource(REGISTERED_MODEL, request.name))])
