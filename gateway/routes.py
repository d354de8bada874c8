"""The HTTP/JSON face of every RPC: one table, resource-style paths (Google's AIP style).

Each route names its RPC; the request message is built from the path's variables, the
query string and the JSON body (proto3 JSON, field names as in the protos), and the answer
is the response message as proto3 JSON. The table is checked against the services'
descriptors (every RPC has exactly one route), and the OpenAPI document is generated from it.

Path variables: ``{name}`` matches one segment; ``{key:path}`` the rest of the path (metric
keys and artifact paths may hold ``/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import MethodDescriptor

from tuning.suggestion.v1 import suggestion_service_pb2
from tuning.tracking.v1 import registry_service_pb2, tracking_service_pb2

SERVICES = {
    "SuggestionService": suggestion_service_pb2.DESCRIPTOR.services_by_name["SuggestionService"],
    "TrackingService": tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"],
    "ModelRegistryService": registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"],
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    service: str
    rpc: str
    summary: str = ""

    @property
    def descriptor(self) -> MethodDescriptor:
        return SERVICES[self.service].methods_by_name[self.rpc]

    @property
    def full_method(self) -> str:
        """As gRPC names it: ``/tuning.suggestion.v1.SuggestionService/GetStudy``."""
        return f"/{SERVICES[self.service].full_name}/{self.rpc}"


def _routes(service: str, *rows: tuple[str, str, str]) -> list[Route]:
    return [Route(method, path, service, rpc) for method, path, rpc in rows]


S, T, R = "SuggestionService", "TrackingService", "ModelRegistryService"

ROUTES: list[Route] = [
    *_routes(
        S,
        ("POST", "/v1/studies", "CreateStudy"),
        ("GET", "/v1/studies", "ListStudies"),
        ("GET", "/v1/studies/{name}", "GetStudy"),
        ("POST", "/v1/studies/{name}:setState", "SetStudyState"),
        ("DELETE", "/v1/studies/{name}", "DeleteStudy"),
        ("POST", "/v1/studies/{study}/trials:suggest", "SuggestTrials"),
        ("GET", "/v1/studies/{study}/trials:best", "GetBestTrials"),
        ("GET", "/v1/studies/{study}/population", "GetPopulation"),
        ("GET", "/v1/studies/{study}/importance", "GetParameterImportance"),
        ("POST", "/v1/studies/{study}/trials", "CreateTrial"),
        ("GET", "/v1/studies/{study}/trials", "ListTrials"),
        ("GET", "/v1/trials/{trial_id}", "GetTrial"),
        ("GET", "/v1/trials/{trial_id}/measurements", "ListMeasurements"),
        ("POST", "/v1/trials/{trial_id}:report", "ReportIntermediate"),
        ("POST", "/v1/trials/{trial_id}:linkRun", "LinkRun"),
        ("POST", "/v1/trials/{trial_id}:heartbeat", "Heartbeat"),
        ("POST", "/v1/trials/{trial_id}:release", "ReleaseTrial"),
        ("POST", "/v1/trials/{trial_id}:complete", "CompleteTrial"),
        ("PUT", "/v1/studies/{study}/permissions/{subject}", "SetStudyPermission"),
        ("DELETE", "/v1/studies/{study}/permissions/{subject}", "DeleteStudyPermission"),
        ("GET", "/v1/studies/{study}/permissions", "ListStudyPermissions"),
        ("POST", "/v1/study-webhooks", "CreateStudyWebhook"),
        ("GET", "/v1/study-webhooks", "ListStudyWebhooks"),
        ("GET", "/v1/study-webhooks/{name}", "GetStudyWebhook"),
        ("PATCH", "/v1/study-webhooks/{name}", "UpdateStudyWebhook"),
        ("DELETE", "/v1/study-webhooks/{name}", "DeleteStudyWebhook"),
        ("POST", "/v1/study-webhooks/{name}:test", "TestStudyWebhook"),
        ("GET", "/v1/study-webhooks/{name}/deliveries", "ListStudyWebhookDeliveries"),
    ),
    *_routes(
        T,
        ("POST", "/v1/experiments", "CreateExperiment"),
        ("GET", "/v1/experiments", "SearchExperiments"),
        ("GET", "/v1/experiments:byName", "GetExperimentByName"),
        ("GET", "/v1/experiments/{experiment_id}", "GetExperiment"),
        ("POST", "/v1/experiments/{experiment_id}:rename", "RenameExperiment"),
        ("POST", "/v1/experiments/{experiment_id}/tags", "SetExperimentTag"),
        ("DELETE", "/v1/experiments/{experiment_id}", "DeleteExperiment"),
        ("POST", "/v1/experiments/{experiment_id}:restore", "RestoreExperiment"),
        ("POST", "/v1/runs", "CreateRun"),
        ("POST", "/v1/runs:search", "SearchRuns"),
        ("GET", "/v1/runs/{run_id}", "GetRun"),
        ("PATCH", "/v1/runs/{run_id}", "UpdateRun"),
        ("DELETE", "/v1/runs/{run_id}", "DeleteRun"),
        ("POST", "/v1/runs/{run_id}:restore", "RestoreRun"),
        ("POST", "/v1/runs/{run_id}:logBatch", "LogBatch"),
        ("POST", "/v1/runs/{run_id}/metrics", "LogMetric"),
        ("POST", "/v1/runs/{run_id}/params", "LogParam"),
        ("POST", "/v1/runs/{run_id}/tags", "SetTag"),
        ("DELETE", "/v1/runs/{run_id}/tags/{key:path}", "DeleteTag"),
        ("POST", "/v1/runs/{run_id}/inputs", "LogInputs"),
        ("GET", "/v1/runs/{run_id}/metrics/{key:path}", "GetMetricHistory"),
        ("GET", "/v1/runs/{run_id}/artifacts", "ListArtifacts"),
        ("PUT", "/v1/runs/{run_id}/artifacts/{path:path}", "UploadArtifact"),
        ("GET", "/v1/runs/{run_id}/artifacts/{path:path}", "DownloadArtifact"),
        ("GET", "/v1/runs/{run_id}/artifact-url", "GetArtifactDownloadUrl"),
        ("POST", "/v1/logged-models", "CreateLoggedModel"),
        ("POST", "/v1/logged-models:search", "SearchLoggedModels"),
        ("GET", "/v1/logged-models/{model_id}", "GetLoggedModel"),
        ("POST", "/v1/logged-models/{model_id}:finalize", "FinalizeLoggedModel"),
        ("DELETE", "/v1/logged-models/{model_id}", "DeleteLoggedModel"),
        ("POST", "/v1/logged-models/{model_id}/tags", "SetLoggedModelTags"),
        ("DELETE", "/v1/logged-models/{model_id}/tags/{key:path}", "DeleteLoggedModelTag"),
        ("POST", "/v1/logged-models/{model_id}/params", "LogLoggedModelParams"),
        ("POST", "/v1/logged-models/{model_id}/metrics", "LogLoggedModelMetrics"),
        ("PUT", "/v1/experiments/{experiment_id}/permissions/{subject}", "SetExperimentPermission"),
        ("DELETE", "/v1/experiments/{experiment_id}/permissions/{subject}", "DeleteExperimentPermission"),
        ("GET", "/v1/experiments/{experiment_id}/permissions", "ListExperimentPermissions"),
    ),
    *_routes(
        R,
        ("POST", "/v1/registered-models", "CreateRegisteredModel"),
        ("GET", "/v1/registered-models", "SearchRegisteredModels"),
        ("GET", "/v1/registered-models/{name}", "GetRegisteredModel"),
        ("PATCH", "/v1/registered-models/{name}", "UpdateRegisteredModel"),
        ("POST", "/v1/registered-models/{name}:rename", "RenameRegisteredModel"),
        ("DELETE", "/v1/registered-models/{name}", "DeleteRegisteredModel"),
        ("POST", "/v1/registered-models/{name}/tags", "SetRegisteredModelTag"),
        ("DELETE", "/v1/registered-models/{name}/tags/{key:path}", "DeleteRegisteredModelTag"),
        ("GET", "/v1/registered-models/{name}/events", "ListRegistryEvents"),
        ("POST", "/v1/registered-models/{name}/versions", "CreateModelVersion"),
        ("GET", "/v1/model-versions", "SearchModelVersions"),
        ("GET", "/v1/registered-models/{name}/versions/{version}", "GetModelVersion"),
        ("PATCH", "/v1/registered-models/{name}/versions/{version}", "UpdateModelVersion"),
        ("DELETE", "/v1/registered-models/{name}/versions/{version}", "DeleteModelVersion"),
        ("POST", "/v1/registered-models/{name}/versions/{version}/tags", "SetModelVersionTag"),
        ("DELETE", "/v1/registered-models/{name}/versions/{version}/tags/{key:path}", "DeleteModelVersionTag"),
        ("POST", "/v1/registered-models/{name}/versions/{version}:transitionStage", "TransitionModelVersionStage"),
        ("GET", "/v1/registered-models/{name}/versions/{version}/download-uri", "GetModelVersionDownloadUri"),
        ("PUT", "/v1/registered-models/{name}/aliases/{alias}", "SetRegisteredModelAlias"),
        ("GET", "/v1/registered-models/{name}/aliases/{alias}", "GetModelVersionByAlias"),
        ("DELETE", "/v1/registered-models/{name}/aliases/{alias}", "DeleteRegisteredModelAlias"),
        ("POST", "/v1/webhooks", "CreateWebhook"),
        ("GET", "/v1/webhooks", "ListWebhooks"),
        ("GET", "/v1/webhooks/{name}", "GetWebhook"),
        ("PATCH", "/v1/webhooks/{name}", "UpdateWebhook"),
        ("DELETE", "/v1/webhooks/{name}", "DeleteWebhook"),
        ("POST", "/v1/webhooks/{name}:test", "TestWebhook"),
        ("GET", "/v1/webhooks/{name}/deliveries", "ListWebhookDeliveries"),
        ("PUT", "/v1/registered-models/{name}/permissions/{subject}", "SetRegisteredModelPermission"),
        ("DELETE", "/v1/registered-models/{name}/permissions/{subject}", "DeleteRegisteredModelPermission"),
        ("GET", "/v1/registered-models/{name}/permissions", "ListRegisteredModelPermissions"),
    ),
]
