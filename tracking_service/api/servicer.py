"""The gRPC servicer: decode the request, call the use case, encode the answer. Nothing else.

Errors are raised as :mod:`tuning_common.errors` and mapped by the server's interceptor.
"""

from __future__ import annotations

from collections.abc import Iterator

from tracking_service.api import convert
from tracking_service.domain.model import LifecycleStage, RunStatus
from tracking_service.logged_model_service import LoggedModelService
from tracking_service.persistence.tables import EXPERIMENT
from tracking_service.service import TrackingService, now_ms
from tuning.tracking.v1 import tracking_pb2
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning_common import access
from tuning_common.access import PermissionManager
from tuning_common.errors import InvalidArgument
from tuning_common.permissions import Resource


class TrackingServicer(api_grpc.TrackingServiceServicer):
    def __init__(self, service: TrackingService, models: LoggedModelService, permissions: PermissionManager):
        self.permissions = permissions
        self.service, self.models = service, models

    # -- experiments --------------------------------------------------------------------------

    def CreateExperiment(self, request, context):
        experiment = self.service.create_experiment(request.name, request.artifact_location,
                                                    dict(convert.tags_from_proto(request.tags)))
        return api.CreateExperimentResponse(experiment=convert.experiment_to_proto(experiment))

    def GetExperiment(self, request, context):
        experiment = self.service.get_experiment(request.experiment_id)
        return api.GetExperimentResponse(experiment=convert.experiment_to_proto(experiment))

    def GetExperimentByName(self, request, context):
        experiment = self.service.get_experiment_by_name(request.name)
        return api.GetExperimentByNameResponse(experiment=convert.experiment_to_proto(experiment))

    def SearchExperiments(self, request, context):
        found, token = self.service.search_experiments(request.filter, list(request.order_by),
                                                       convert.view_from_proto(request.view_type),
                                                       request.page_size, request.page_token,
                                                       readable=access.readable_subjects())
        return api.SearchExperimentsResponse(experiments=[convert.experiment_to_proto(e) for e in found],
                                             next_page_token=token)

    def RenameExperiment(self, request, context):
        experiment = self.service.rename_experiment(request.experiment_id, request.new_name)
        return api.RenameExperimentResponse(experiment=convert.experiment_to_proto(experiment))

    def SetExperimentTag(self, request, context):
        self.service.set_experiment_tag(request.experiment_id, request.key, request.value)
        return api.SetExperimentTagResponse()

    def DeleteExperiment(self, request, context):
        self.service.set_experiment_stage(request.experiment_id, LifecycleStage.DELETED)
        return api.DeleteExperimentResponse()

    def RestoreExperiment(self, request, context):
        self.service.set_experiment_stage(request.experiment_id, LifecycleStage.ACTIVE)
        return api.RestoreExperimentResponse()

    # -- runs ---------------------------------------------------------------------------------

    def CreateRun(self, request, context):
        run = self.service.create_run(
            request.experiment_id, name=request.name, start_ms=convert.ms_or_none(request, "start_time"),
            tags=dict(convert.tags_from_proto(request.tags)), parent_run_id=request.parent_run_id,
            run_group=request.run_group, user=request.user, trial=convert.trial_from_proto(request),
            status=convert.status_from_proto(request.status) or RunStatus.RUNNING, request_id=request.request_id,
        )
        return api.CreateRunResponse(run=convert.run_to_proto(run))

    def UpdateRun(self, request, context):
        run = self.service.update_run(request.run_id, status=convert.status_from_proto(request.status),
                                      end_ms=convert.ms_or_none(request, "end_time"), name=request.name)
        return api.UpdateRunResponse(run=convert.run_to_proto(run))

    def GetRun(self, request, context):
        return api.GetRunResponse(run=convert.run_to_proto(self.service.get_run(request.run_id)))

    def SearchRuns(self, request, context):
        found, token = self.service.search_runs(list(request.experiment_ids), request.filter,
                                                list(request.order_by), convert.view_from_proto(request.view_type),
                                                request.page_size, request.page_token)
        return api.SearchRunsResponse(runs=[convert.run_to_proto(r) for r in found], next_page_token=token)

    def DeleteRun(self, request, context):
        self.service.set_run_stage(request.run_id, LifecycleStage.DELETED)
        return api.DeleteRunResponse()

    def RestoreRun(self, request, context):
        self.service.set_run_stage(request.run_id, LifecycleStage.ACTIVE)
        return api.RestoreRunResponse()

    # -- logging ------------------------------------------------------------------------------

    def LogBatch(self, request, context):
        received = now_ms()
        self.service.log_batch(request.run_id, [convert.metric_from_proto(m, received) for m in request.metrics],
                               [(p.key, p.value) for p in request.params], convert.tags_from_proto(request.tags),
                               [convert.series_from_proto(s, received) for s in request.series],
                               request_id=request.request_id, digest=convert.digest(request),
                               expected_tags=convert.expected_tags_from_proto(request.expected_tags))
        return api.LogBatchResponse()

    def LogMetric(self, request, context):
        self.service.log_batch(request.run_id, metrics=[convert.metric_from_proto(request.metric, now_ms())],
                               request_id=request.request_id, digest=convert.digest(request), single=True)
        return api.LogMetricResponse()

    def LogParam(self, request, context):
        self.service.log_batch(request.run_id, params=[(request.param.key, request.param.value)],
                               single=True)
        return api.LogParamResponse()

    def SetTag(self, request, context):
        self.service.log_batch(request.run_id, tags=[(request.tag.key, request.tag.value)], single=True)
        return api.SetTagResponse()

    def DeleteTag(self, request, context):
        self.service.delete_tag(request.run_id, request.key)
        return api.DeleteTagResponse()

    def LogInputs(self, request, context):
        self.service.log_inputs(request.run_id, [convert.input_from_proto(i) for i in request.inputs])
        return api.LogInputsResponse()

    def GetMetricHistory(self, request, context):
        points, token = self.service.metric_history(request.run_id, request.key, request.page_size,
                                                    request.page_token, request.max_points)
        return api.GetMetricHistoryResponse(metrics=[convert.metric_to_proto(m) for m in points],
                                            next_page_token=token)

    # -- artifacts ----------------------------------------------------------------------------

    def UploadArtifact(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument("header", "the first message of an upload must be its header")
        header = first.header

        def chunks() -> Iterator[bytes]:
            for message in request_iterator:
                if message.WhichOneof("part") != "chunk":
                    raise InvalidArgument("header", "an upload has exactly one header, in its first message")
                yield message.chunk

        info = self.service.upload_artifact(header.run_id, header.path, header.size, header.sha256, chunks())
        return api.UploadArtifactResponse(file=convert.file_to_proto(info))

    def DownloadArtifact(self, request, context):
        info, chunks = self.service.open_artifact(request.run_id, request.path)
        yield api.DownloadArtifactResponse(file=convert.file_to_proto(info))
        for chunk in chunks:
            yield api.DownloadArtifactResponse(chunk=chunk)

    def ListArtifacts(self, request, context):
        files = self.service.list_artifacts(request.run_id, request.path)
        return api.ListArtifactsResponse(files=[convert.file_to_proto(f) for f in files])

    def GetArtifactDownloadUrl(self, request, context):
        info, url, expire_ms = self.service.artifact_download_url(request.run_id, request.path,
                                                                  request.expires_in_seconds)
        response = api.GetArtifactDownloadUrlResponse(url=url, file=convert.file_to_proto(info))
        response.expire_time.FromMilliseconds(expire_ms)
        return response

    # -- logged models ------------------------------------------------------------------------

    def CreateLoggedModel(self, request, context):
        model = self.models.create(request.experiment_id, request.name, source_run_id=request.source_run_id,
                                   model_type=request.model_type, params=[(p.key, p.value) for p in request.params],
                                   tags=convert.tags_from_proto(request.tags),
                                   artifact_run_id=request.artifact_run_id)
        return api.CreateLoggedModelResponse(model=convert.logged_model_to_proto(model))

    def GetLoggedModel(self, request, context):
        return api.GetLoggedModelResponse(model=convert.logged_model_to_proto(self.models.get(request.model_id)))

    def FinalizeLoggedModel(self, request, context):
        model = self.models.finalize(request.model_id, convert.model_status_from_proto(request.status),
                                     request.status_message)
        return api.FinalizeLoggedModelResponse(model=convert.logged_model_to_proto(model))

    def DeleteLoggedModel(self, request, context):
        self.models.delete(request.model_id)
        return api.DeleteLoggedModelResponse()

    def SetLoggedModelTags(self, request, context):
        model = self.models.set_tags(request.model_id, convert.tags_from_proto(request.tags))
        return api.SetLoggedModelTagsResponse(model=convert.logged_model_to_proto(model))

    def DeleteLoggedModelTag(self, request, context):
        self.models.delete_tag(request.model_id, request.key)
        return api.DeleteLoggedModelTagResponse()

    def LogLoggedModelParams(self, request, context):
        self.models.log_params(request.model_id, [(p.key, p.value) for p in request.params])
        return api.LogLoggedModelParamsResponse()

    def LogLoggedModelMetrics(self, request, context):
        received = now_ms()
        self.models.log_metrics(request.model_id, [convert.model_metric_from_proto(m, received, f"metrics[{i}]")
                                                   for i, m in enumerate(request.metrics)])
        return api.LogLoggedModelMetricsResponse()

    def SearchLoggedModels(self, request, context):
        found, token = self.models.search(list(request.experiment_ids), request.filter, list(request.order_by),
                                          request.page_size, request.page_token)
        return api.SearchLoggedModelsResponse(models=[convert.logged_model_to_proto(m) for m in found],
                                              next_page_token=token)

    # -- permissions (roles on; tuning_common.access) ------------------------------------------

    def SetExperimentPermission(self, request, context):
        subject, role = self.permissions.set(Resource(EXPERIMENT, str(request.experiment_id)), request.subject, request.role)
        return api.SetExperimentPermissionResponse(permission=tracking_pb2.Permission(subject=subject, role=role))

    def DeleteExperimentPermission(self, request, context):
        self.permissions.delete(Resource(EXPERIMENT, str(request.experiment_id)), request.subject)
        return api.DeleteExperimentPermissionResponse()

    def ListExperimentPermissions(self, request, context):
        return api.ListExperimentPermissionsResponse(permissions=[
            tracking_pb2.Permission(subject=subject, role=role)
            for subject, role in self.permissions.list(Resource(EXPERIMENT, str(request.experiment_id)))])
