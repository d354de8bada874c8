"""The gRPC servicer: decode the request, call the use case, encode the answer. Nothing else.

Errors are raised as :mod:`tuning_common.errors` and mapped by the server's interceptor.
"""

from __future__ import annotations

from google.protobuf import duration_pb2

from suggestion_service.access import STUDY
from suggestion_service.api import convert
from suggestion_service.service import SuggestionService
from tuning.suggestion.v1 import study_pb2
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning.suggestion.v1 import suggestion_service_pb2_grpc as api_grpc
from tuning_common import access
from tuning_common.access import PermissionManager
from tuning_common.permissions import Resource
from tuning_common.webhooks import WebhookRpcs
from tuning_types.convert import params_from_proto, spec_from_proto, timestamp


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(int(seconds * 1000))
    return duration


class SuggestionServicer(api_grpc.SuggestionServiceServicer):
    def __init__(self, service: SuggestionService, permissions: PermissionManager):
        self.service = service
        self.permissions = permissions
        self.webhooks = WebhookRpcs(service.webhooks, convert.WEBHOOKS, api, "Study")

    def CreateStudy(self, request, context):
        study, created = self.service.create_study(request.name, spec_from_proto(request.spec),
                                                   algorithm_named=request.spec.HasField("algorithm"))
        return api.CreateStudyResponse(study=convert.study_to_proto(study), created=created)

    def GetStudy(self, request, context):
        return api.GetStudyResponse(study=convert.study_to_proto(self.service.get_study(request.name)))

    def ListStudies(self, request, context):
        studies, token = self.service.list_studies(request.page_size, request.page_token,
                                                   readable=access.readable_subjects())
        return api.ListStudiesResponse(studies=[convert.study_to_proto(s) for s in studies], next_page_token=token)

    def SetStudyState(self, request, context):
        study = self.service.set_study_state(request.name, convert.study_state_from_proto(request.state))
        return api.SetStudyStateResponse(study=convert.study_to_proto(study))

    def DeleteStudy(self, request, context):
        self.service.delete_study(request.name)
        return api.DeleteStudyResponse()

    def SuggestTrials(self, request, context):
        result = self.service.suggest_trials(request.study, request.count, request.worker_id, request.request_id)
        return api.SuggestTrialsResponse(
            trials=[convert.trial_to_proto(t) for t in result.trials],
            status=api.SuggestStatus.Value(f"SUGGEST_STATUS_{result.status.value}"),
            done_reason=api.DoneReason.Value(f"DONE_REASON_{result.done_reason.value}") if result.done_reason else 0,
            message=result.message,
            retry_after=_duration(result.retry_after_s) if result.retry_after_s else None,
        )

    def ReportIntermediate(self, request, context):
        result = self.service.report_intermediate(
            request.trial_id, request.worker_id, request.step, convert.metrics_from_proto(request.metrics)
        )
        return api.ReportIntermediateResponse(
            should_stop=result.should_stop, lease_expire_time=timestamp(result.lease_expires_ms)
        )

    def LinkRun(self, request, context):
        trial = self.service.link_run(request.trial_id, request.worker_id, request.run_id)
        return api.LinkRunResponse(trial=convert.trial_to_proto(trial))

    def Heartbeat(self, request, context):
        expires = self.service.heartbeat(request.trial_id, request.worker_id)
        return api.HeartbeatResponse(lease_expire_time=timestamp(expires))

    def ReleaseTrial(self, request, context):
        trial = self.service.release_trial(request.trial_id, request.worker_id, request.reason)
        return api.ReleaseTrialResponse(trial=convert.trial_to_proto(trial))

    def CompleteTrial(self, request, context):
        trial = self.service.complete_trial(
            request.trial_id,
            request.worker_id,
            convert.outcome_from_proto(request.outcome),
            convert.metrics_from_proto(request.metrics),
            request.reason,
            tuple(request.constraints),
        )
        return api.CompleteTrialResponse(trial=convert.trial_to_proto(trial))

    def CreateTrial(self, request, context):
        trial = self.service.create_trial(request.study, params_from_proto(request.parameters))
        return api.CreateTrialResponse(trial=convert.trial_to_proto(trial))

    def GetTrial(self, request, context):
        return api.GetTrialResponse(trial=convert.trial_to_proto(self.service.get_trial(request.trial_id)))

    def ListTrials(self, request, context):
        trials, token = self.service.list_trials(
            request.study, convert.trial_states_from_proto(request.states), request.page_size, request.page_token,
            request.after_number if request.HasField("after_number") else None,
        )
        return api.ListTrialsResponse(trials=[convert.trial_to_proto(t) for t in trials], next_page_token=token)

    def ListMeasurements(self, request, context):
        measurements = self.service.list_measurements(request.trial_id)
        return api.ListMeasurementsResponse(measurements=[convert.measurement_to_proto(m) for m in measurements])

    def GetBestTrials(self, request, context):
        best = self.service.best_trials(request.study)
        return api.GetBestTrialsResponse(trials=[convert.trial_to_proto(t) for t in best.trials],
                                         hypervolume=best.hypervolume, reference_point=best.reference_point)

    def GetPopulation(self, request, context):
        members = self.service.population(request.study)
        return api.GetPopulationResponse(members=[
            api.PopulationMember(member=member, trials=[convert.trial_to_proto(t) for t in trials])
            for member, trials in members
        ])

    def GetParameterImportance(self, request, context):
        objective, result = self.service.parameter_importance(request.study, request.objective)
        return api.GetParameterImportanceResponse(objective=objective, trial_count=result.trials, importances=[
            api.ParameterImportance(parameter=name, importance=value) for name, value in result.importances.items()
        ])

    def SetStudyPermission(self, request, context):
        subject, role = self.permissions.set(Resource(STUDY, request.study), request.subject, request.role)
        return api.SetStudyPermissionResponse(permission=study_pb2.Permission(subject=subject, role=role))

    def DeleteStudyPermission(self, request, context):
        self.permissions.delete(Resource(STUDY, request.study), request.subject)
        return api.DeleteStudyPermissionResponse()

    def ListStudyPermissions(self, request, context):
        return api.ListStudyPermissionsResponse(permissions=[
            study_pb2.Permission(subject=subject, role=role)
            for subject, role in self.permissions.list(Resource(STUDY, request.study))])

    # --- webhooks (tuning_common.webhooks.WebhookRpcs) ---------------------------------

    def CreateStudyWebhook(self, request, context):
        return self.webhooks.create(request)

    def GetStudyWebhook(self, request, context):
        return self.webhooks.get(request)

    def ListStudyWebhooks(self, request, context):
        return self.webhooks.list(request)

    def UpdateStudyWebhook(self, request, context):
        return self.webhooks.update(request)

    def DeleteStudyWebhook(self, request, context):
        return self.webhooks.delete(request)

    def TestStudyWebhook(self, request, context):
        return self.webhooks.test(request)

    def ListStudyWebhookDeliveries(self, request, context):
        return self.webhooks.deliveries(request)
