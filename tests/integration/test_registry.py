"""The model registry through its gRPC API on a real tracking server (port 0), SQLite and PostgreSQL.

Runs and their files are made through the TrackingService of the same server, as a client would.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tracking_service.server import serve
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import registry_service_pb2_grpc as rapi_grpc
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning.tracking.v1 import tracking_service_pb2_grpc as api_grpc
from tuning_common.grpc_server import ServerOptions

CREATE, TRANSITION = rpb.REGISTRY_ACTION_CREATE_VERSION, rpb.REGISTRY_ACTION_TRANSITION_STAGE
SET_ALIAS, DELETE_ALIAS = rpb.REGISTRY_ACTION_SET_ALIAS, rpb.REGISTRY_ACTION_DELETE_ALIAS
DELETE_VERSION, RENAME, DELETE_MODEL = (rpb.REGISTRY_ACTION_DELETE_VERSION, rpb.REGISTRY_ACTION_RENAME_MODEL,
                                        rpb.REGISTRY_ACTION_DELETE_MODEL)


@dataclass
class Stubs:
    tracking: api_grpc.TrackingServiceStub
    registry: rapi_grpc.ModelRegistryServiceStub
    artifacts: Path


@pytest.fixture
def stubs(database_url: str, tmp_path: Path) -> Iterator[Stubs]:
    running = serve(database_url, str(tmp_path / "artifacts"), ServerOptions(port=0, grace_seconds=1))
    channel = grpc.insecure_channel(running.address)
    yield Stubs(api_grpc.TrackingServiceStub(channel), rapi_grpc.ModelRegistryServiceStub(channel),
                tmp_path / "artifacts")
    channel.close()
    running.stop()


def code_of(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value.code(), caught.value.details()


def refused(call, request, field: str) -> None:
    """INVALID_ARGUMENT with a message naming ``field`` first, as the error mapping writes it."""
    code, message = code_of(call, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message
    assert message.startswith(f"{field}:"), message


def model_run(stubs: Stubs, experiment_id: int = 0, **fields) -> pb.Run:
    """A run with a small model file at ``model/model.json``."""
    run = stubs.tracking.CreateRun(api.CreateRunRequest(experiment_id=experiment_id, **fields)).run
    data = b'{"weights": [1, 2, 3]}'
    header = api.ArtifactHeader(run_id=run.id, path="model/model.json", size=len(data),
                                sha256=hashlib.sha256(data).hexdigest())
    stubs.tracking.UploadArtifact(iter([api.UploadArtifactRequest(header=header),
                                        api.UploadArtifactRequest(chunk=data)]))
    return run


def create_version(stubs: Stubs, name: str, source: str, **fields) -> rpb.ModelVersion:
    return stubs.registry.CreateModelVersion(rapi.CreateModelVersionRequest(name=name, source=source,
                                                                            **fields)).model_version


def transition(stubs: Stubs, name: str, version: int, stage: int, **fields) -> rpb.ModelVersion:
    return stubs.registry.TransitionModelVersionStage(rapi.TransitionModelVersionStageRequest(
        name=name, version=version, stage=stage, **fields)).model_version


def events(stubs: Stubs, name: str, version: int = 0, page_size: int = 0) -> list[tuple]:
    """The whole log, every page, as (version, action, from, to, alias, actor, reason), newest first."""
    out, token = [], ""
    while True:
        page = stubs.registry.ListRegistryEvents(rapi.ListRegistryEventsRequest(
            name=name, version=version, page_size=page_size, page_token=token))
        out += [(e.version, e.action, e.from_value, e.to_value, e.alias, e.actor, e.reason) for e in page.events]
        assert all(e.model_name == name and e.time.ToMilliseconds() > 0 for e in page.events)
        token = page.next_page_token
        if not token:
            return out


def tags(items) -> dict[str, str]:
    return {t.key: t.value for t in items}


def test_model_life_cycle_with_stages_aliases_and_audit_log(stubs):
    registry = stubs.registry
    created = registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(
        name="wine", description="wine quality", tags=[pb.Tag(key="team", value="ml")])).registered_model
    assert (created.name, created.description, tags(created.tags)) == ("wine", "wine quality", {"team": "ml"})
    assert list(created.latest_versions) == [] and dict(created.aliases) == {}
    first, second = model_run(stubs), model_run(stubs)

    v1 = create_version(stubs, "wine", f"runs:/{first.id}/model", description="baseline", actor="ana",
                        tags=[pb.Tag(key="algo", value="xgb")])
    v2 = create_version(stubs, "wine", f"runs:/{second.id}/model/", run_id=second.id, actor="bob")
    assert (v1.version, v1.run_id, v1.status, v1.stage, v1.user, v1.description) == \
        (1, first.id, rpb.MODEL_VERSION_STATUS_READY, rpb.STAGE_NONE, "ana", "baseline")
    assert tags(v1.tags) == {"algo": "xgb"} and v1.create_time.ToMilliseconds() > 0
    assert (v2.version, v2.source) == (2, f"runs:/{second.id}/model/")
    uri = registry.GetModelVersionDownloadUri(rapi.GetModelVersionDownloadUriRequest(name="wine", version=1))
    assert uri.artifact_uri == f"{first.artifact_uri}/model"

    updated = registry.UpdateModelVersion(rapi.UpdateModelVersionRequest(name="wine", version=2,
                                                                         description="tuned")).model_version
    assert updated.description == "tuned"
    registry.SetModelVersionTag(rapi.SetModelVersionTagRequest(name="wine", version=2, key="algo", value="lgbm"))
    registry.SetModelVersionTag(rapi.SetModelVersionTagRequest(name="wine", version=2, key="tmp", value="x"))
    registry.DeleteModelVersionTag(rapi.DeleteModelVersionTagRequest(name="wine", version=2, key="tmp"))
    got = registry.GetModelVersion(rapi.GetModelVersionRequest(name="wine", version=2)).model_version
    assert tags(got.tags) == {"algo": "lgbm"}
    model = registry.UpdateRegisteredModel(rapi.UpdateRegisteredModelRequest(name="wine", description="v2 of it"))
    assert model.registered_model.description == "v2 of it"
    registry.SetRegisteredModelTag(rapi.SetRegisteredModelTagRequest(name="wine", key="owner", value="ana"))
    registry.DeleteRegisteredModelTag(rapi.DeleteRegisteredModelTagRequest(name="wine", key="team"))

    assert transition(stubs, "wine", 1, rpb.STAGE_STAGING, actor="ana", reason="passed validation").stage == \
        rpb.STAGE_STAGING
    transition(stubs, "wine", 1, rpb.STAGE_PRODUCTION, actor="ana", reason="go live")
    transition(stubs, "wine", 2, rpb.STAGE_STAGING, actor="bob", reason="candidate")
    promoted = transition(stubs, "wine", 2, rpb.STAGE_PRODUCTION, archive_existing_versions=True, actor="bob",
                          reason="better f1")
    assert promoted.stage == rpb.STAGE_PRODUCTION
    assert registry.GetModelVersion(rapi.GetModelVersionRequest(name="wine", version=1)).model_version.stage == \
        rpb.STAGE_ARCHIVED
    transition(stubs, "wine", 2, rpb.STAGE_PRODUCTION, actor="bob", reason="again")  # the same stage: a no-op

    alias = rapi.SetRegisteredModelAliasRequest
    registry.SetRegisteredModelAlias(alias(name="wine", alias="champion", version=1, actor="ana", reason="first"))
    registry.SetRegisteredModelAlias(alias(name="wine", alias="champion", version=2, actor="bob", reason="promoted"))
    registry.SetRegisteredModelAlias(alias(name="wine", alias="champion", version=2, actor="bob"))  # a no-op
    registry.SetRegisteredModelAlias(alias(name="wine", alias="challenger", version=1, actor="ana"))
    resolved = registry.GetModelVersionByAlias(rapi.GetModelVersionByAliasRequest(name="wine", alias="champion"))
    assert (resolved.model_version.version, list(resolved.model_version.aliases)) == (2, ["champion"])
    model = registry.GetRegisteredModel(rapi.GetRegisteredModelRequest(name="wine")).registered_model
    assert dict(model.aliases) == {"champion": 2, "challenger": 1}
    assert tags(model.tags) == {"owner": "ana"}
    assert [(v.version, v.stage) for v in model.latest_versions] == [(2, rpb.STAGE_PRODUCTION),
                                                                     (1, rpb.STAGE_ARCHIVED)]
    registry.DeleteRegisteredModelAlias(rapi.DeleteRegisteredModelAliasRequest(
        name="wine", alias="champion", actor="carol", reason="retired"))
    code, _ = code_of(registry.GetModelVersionByAlias, rapi.GetModelVersionByAliasRequest(name="wine",
                                                                                          alias="champion"))
    assert code == grpc.StatusCode.NOT_FOUND

    archived = "archived by the transition of version 2"
    expected = [
        (2, DELETE_ALIAS, "2", "", "champion", "carol", "retired"),
        (1, SET_ALIAS, "", "1", "challenger", "ana", ""),
        (2, SET_ALIAS, "1", "2", "champion", "bob", "promoted"),
        (1, SET_ALIAS, "", "1", "champion", "ana", "first"),
        (1, TRANSITION, "Production", "Archived", "", "bob", archived),
        (2, TRANSITION, "Staging", "Production", "", "bob", "better f1"),
        (2, TRANSITION, "None", "Staging", "", "bob", "candidate"),
        (1, TRANSITION, "Staging", "Production", "", "ana", "go live"),
        (1, TRANSITION, "None", "Staging", "", "ana", "passed validation"),
        (2, CREATE, "", f"runs:/{second.id}/model/", "", "bob", ""),
        (1, CREATE, "", f"runs:/{first.id}/model", "", "ana", ""),
    ]
    assert events(stubs, "wine") == expected
    assert events(stubs, "wine", page_size=3) == expected  # keyset pages
    assert events(stubs, "wine", version=1) == [e for e in expected if e[0] == 1]


def test_lineage_from_versions_to_runs_and_back(stubs):
    experiment = stubs.tracking.CreateExperiment(api.CreateExperimentRequest(name="wine-study")).experiment
    trial = pb.TrialLink(study="wine-tpe", trial_id=41, trial_number=7)
    run = model_run(stubs, experiment.id, trial=trial)
    other = model_run(stubs)
    v1 = create_version(stubs, "wine", f"runs:/{run.id}/model")
    # A plain URI inside the store, linked to its run by run_id.
    v2 = create_version(stubs, "wine", f"{run.artifact_uri}/model", run_id=run.id)
    v3 = create_version(stubs, "other", f"runs:/{other.id}/model")
    unlinked = create_version(stubs, "other", f"{other.artifact_uri}/model")

    for version in (v1, v2):
        assert (version.run_id, version.experiment_id) == (run.id, experiment.id)
        assert (version.trial.study, version.trial.trial_id, version.trial.trial_number) == ("wine-tpe", 41, 7)
    assert (v3.run_id, v3.experiment_id, v3.HasField("trial")) == (other.id, 0, False)
    assert (unlinked.run_id, unlinked.HasField("trial")) == ("", False)
    uri = stubs.registry.GetModelVersionDownloadUri(rapi.GetModelVersionDownloadUriRequest(name="wine", version=2))
    assert uri.artifact_uri == f"{run.artifact_uri}/model"

    from_run = stubs.registry.SearchModelVersions(rapi.SearchModelVersionsRequest(filter=f"run_id = '{run.id}'"))
    assert [(v.name, v.version) for v in from_run.model_versions] == [("wine", 2), ("wine", 1)]
    # And back: the run the version names is the run that made it.
    got = stubs.tracking.GetRun(api.GetRunRequest(run_id=from_run.model_versions[0].run_id)).run
    assert (got.id, got.experiment_id, got.trial.trial_id) == (run.id, experiment.id, 41)


def test_rename_and_delete_keep_the_audit_log(stubs):
    registry = stubs.registry
    run = model_run(stubs)
    source = f"runs:/{run.id}/model"
    for _ in range(3):
        create_version(stubs, "wine", source, actor="ana")
    registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name="taken"))
    registry.SetRegisteredModelAlias(rapi.SetRegisteredModelAliasRequest(name="wine", alias="champion", version=2))
    transition(stubs, "wine", 3, rpb.STAGE_ARCHIVED)
    transition(stubs, "wine", 3, rpb.STAGE_NONE)  # any stage to any other

    code, _ = code_of(registry.RenameRegisteredModel, rapi.RenameRegisteredModelRequest(name="wine", new_name="taken"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    renamed = registry.RenameRegisteredModel(rapi.RenameRegisteredModelRequest(name="wine", new_name="red-wine",
                                                                               actor="ana")).registered_model
    assert (renamed.name, dict(renamed.aliases)) == ("red-wine", {"champion": 2})
    assert code_of(registry.GetRegisteredModel, rapi.GetRegisteredModelRequest(name="wine"))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert events(stubs, "wine") == []
    log = events(stubs, "red-wine")
    assert log[0] == (0, RENAME, "wine", "red-wine", "", "ana", "") and len(log) == 7
    version = registry.GetModelVersion(rapi.GetModelVersionRequest(name="red-wine", version=2)).model_version
    assert (version.name, list(version.aliases)) == ("red-wine", ["champion"])

    # Deleting a version takes its aliases along; its number is never given out again.
    registry.DeleteModelVersion(rapi.DeleteModelVersionRequest(name="red-wine", version=2, actor="bob"))
    assert events(stubs, "red-wine", version=2)[:2] == [
        (2, DELETE_ALIAS, "2", "", "champion", "bob", "deleted with version 2"),
        (2, DELETE_VERSION, "", "", "", "bob", ""),
    ]
    assert dict(registry.GetRegisteredModel(rapi.GetRegisteredModelRequest(name="red-wine"))
                .registered_model.aliases) == {}
    code, _ = code_of(registry.GetModelVersionByAlias, rapi.GetModelVersionByAliasRequest(name="red-wine",
                                                                                          alias="champion"))
    assert code == grpc.StatusCode.NOT_FOUND
    registry.DeleteModelVersion(rapi.DeleteModelVersionRequest(name="red-wine", version=3))
    assert create_version(stubs, "red-wine", source).version == 4

    registry.DeleteRegisteredModel(rapi.DeleteRegisteredModelRequest(name="red-wine", actor="carol"))
    assert code_of(registry.GetRegisteredModel, rapi.GetRegisteredModelRequest(name="red-wine"))[0] == \
        grpc.StatusCode.NOT_FOUND
    remaining = registry.SearchModelVersions(rapi.SearchModelVersionsRequest(filter="name = 'red-wine'"))
    assert list(remaining.model_versions) == []
    log = events(stubs, "red-wine")
    assert log[0] == (0, DELETE_MODEL, "", "", "", "carol", "") and len(log) == 12
    # A new model of that name starts again at version 1 (and shares the name's log).
    assert create_version(stubs, "red-wine", source).version == 1


def test_search_filters_orders_and_pages(stubs):
    registry = stubs.registry
    run_a, run_b = model_run(stubs), model_run(stubs)
    for name, team in (("wine-red", "a"), ("wine-white", "b"), ("beer", "a")):
        registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name=name,
                                                                         tags=[pb.Tag(key="team", value=team)]))
    for name, run in (("wine-red", run_a), ("wine-red", run_b), ("wine-white", run_b), ("beer", run_a)):
        create_version(stubs, name, f"runs:/{run.id}/model", tags=[pb.Tag(key="run", value=run.id[:4])])
    transition(stubs, "wine-red", 2, rpb.STAGE_PRODUCTION)

    def models(**fields) -> list[str]:
        found = registry.SearchRegisteredModels(rapi.SearchRegisteredModelsRequest(**fields))
        return [m.name for m in found.registered_models]

    assert models() == ["beer", "wine-red", "wine-white"]
    assert models(filter="name LIKE 'wine-%'", order_by=["name DESC"]) == ["wine-white", "wine-red"]
    assert models(filter="tags.team = 'a'") == ["beer", "wine-red"]
    assert models(filter="name ILIKE 'WINE%' AND tags.team != 'a'") == ["wine-white"]
    pages, token = [], ""
    while True:
        page = registry.SearchRegisteredModels(rapi.SearchRegisteredModelsRequest(page_size=2, page_token=token))
        pages.append([m.name for m in page.registered_models])
        token = page.next_page_token
        if not token:
            break
    assert pages == [["beer", "wine-red"], ["wine-white"]]

    def versions(**fields) -> list[tuple[str, int]]:
        found = registry.SearchModelVersions(rapi.SearchModelVersionsRequest(**fields))
        return [(v.name, v.version) for v in found.model_versions]

    assert versions() == [("beer", 1), ("wine-red", 2), ("wine-red", 1), ("wine-white", 1)]
    assert versions(filter=f"run_id IN ('{run_b.id}')", order_by=["version", "name DESC"]) == \
        [("wine-white", 1), ("wine-red", 2)]
    assert versions(filter="name = 'wine-red' AND current_stage = 'Production'") == [("wine-red", 2)]
    assert versions(filter=f"source_path LIKE 'runs:/{run_a.id}/%'") == [("beer", 1), ("wine-red", 1)]
    assert versions(filter=f"tags.run = '{run_a.id[:4]}'", order_by=["name DESC"]) == [("wine-red", 1),
                                                                                      ("beer", 1)]
    first = registry.SearchModelVersions(rapi.SearchModelVersionsRequest(page_size=3))
    assert len(first.model_versions) == 3 and first.next_page_token
    rest = registry.SearchModelVersions(rapi.SearchModelVersionsRequest(page_size=3,
                                                                        page_token=first.next_page_token))
    assert [(v.name, v.version) for v in rest.model_versions] == [("wine-white", 1)] and not rest.next_page_token

    refused(registry.SearchRegisteredModels, rapi.SearchRegisteredModelsRequest(page_size=-1), "page_size")
    refused(registry.SearchRegisteredModels, rapi.SearchRegisteredModelsRequest(page_size=1_001), "page_size")
    refused(registry.SearchModelVersions, rapi.SearchModelVersionsRequest(page_size=10_001), "page_size")
    refused(registry.ListRegistryEvents, rapi.ListRegistryEventsRequest(name="beer", page_size=1_001), "page_size")
    refused(registry.SearchModelVersions, rapi.SearchModelVersionsRequest(
        filter="name = 'beer'", page_token=first.next_page_token), "page_token")
    refused(registry.SearchRegisteredModels, rapi.SearchRegisteredModelsRequest(filter="metrics.x > 1"), "filter")
    refused(registry.SearchModelVersions, rapi.SearchModelVersionsRequest(order_by=["nope"]), "order_by[0]")


def test_concurrent_versions_get_distinct_consecutive_numbers(stubs):
    run = model_run(stubs)
    numbers: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def register() -> None:
        start.wait()
        try:
            numbers.append(create_version(stubs, "contended", f"runs:/{run.id}/model").version)
        except grpc.RpcError as error:
            failures.append(error)

    threads = [threading.Thread(target=register) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert sorted(numbers) == list(range(1, 17))
    log = events(stubs, "contended")
    assert sorted(e[0] for e in log) == list(range(1, 17)) and {e[1] for e in log} == {CREATE}


def test_bad_sources_are_refused(stubs):
    registry = stubs.registry
    run = model_run(stubs)
    request = rapi.CreateModelVersionRequest

    refused(registry.CreateModelVersion, request(name="m", source="file:///etc"), "source")
    refused(registry.CreateModelVersion, request(name="m", source="/etc/passwd"), "source")
    refused(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/../../x"), "source")
    refused(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/model/%2e%2e/x"), "source")
    refused(registry.CreateModelVersion, request(name="m", source="runs:/not-a-run/model"), "source")
    refused(registry.CreateModelVersion, request(name="m", source=""), "source")
    refused(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/model", run_id="0" * 32),
            "run_id")
    refused(registry.CreateModelVersion, request(name="", source=f"runs:/{run.id}/model"), "name")
    refused(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/model", description="d" * 100_001),
            "description")
    refused(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/model", actor="a" * 251),
            "actor")

    code, message = code_of(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/missing"))
    assert code == grpc.StatusCode.NOT_FOUND and "source" in message
    outside_run = (stubs.artifacts / "nothing-here").as_uri()
    code, message = code_of(registry.CreateModelVersion, request(name="m", source=outside_run))
    assert code == grpc.StatusCode.NOT_FOUND and "source" in message
    code, _ = code_of(registry.CreateModelVersion, request(name="m", source=f"runs:/{'0' * 32}/model"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(registry.CreateModelVersion, request(name="m", source=f"{run.artifact_uri}/model",
                                                           run_id="0" * 32))
    assert code == grpc.StatusCode.NOT_FOUND
    stubs.tracking.DeleteRun(api.DeleteRunRequest(run_id=run.id))
    code, message = code_of(registry.CreateModelVersion, request(name="m", source=f"runs:/{run.id}/model"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "deleted" in message
    # Nothing refused left anything behind, not even the model.
    assert code_of(registry.GetRegisteredModel, rapi.GetRegisteredModelRequest(name="m"))[0] == \
        grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12", "v2-candidate", "", "bad alias", "a/b",
                                   "é", "a" * 251])
def test_bad_aliases_are_refused(stubs, alias):
    run = model_run(stubs)
    create_version(stubs, "wine", f"runs:/{run.id}/model")
    refused(stubs.registry.SetRegisteredModelAlias,
            rapi.SetRegisteredModelAliasRequest(name="wine", alias=alias, version=1), "alias")
    refused(stubs.registry.GetModelVersionByAlias, rapi.GetModelVersionByAliasRequest(name="wine", alias=alias),
            "alias")


def test_unknown_and_duplicate_names_and_bad_arguments(stubs):
    registry = stubs.registry
    run = model_run(stubs)
    create_version(stubs, "wine", f"runs:/{run.id}/model")
    not_found = [
        (registry.GetRegisteredModel, rapi.GetRegisteredModelRequest(name="nope")),
        (registry.GetModelVersion, rapi.GetModelVersionRequest(name="nope", version=1)),
        (registry.GetModelVersion, rapi.GetModelVersionRequest(name="wine", version=9)),
        (registry.UpdateRegisteredModel, rapi.UpdateRegisteredModelRequest(name="nope")),
        (registry.DeleteRegisteredModel, rapi.DeleteRegisteredModelRequest(name="nope")),
        (registry.DeleteModelVersion, rapi.DeleteModelVersionRequest(name="wine", version=9)),
        (registry.TransitionModelVersionStage, rapi.TransitionModelVersionStageRequest(
            name="wine", version=9, stage=rpb.STAGE_STAGING)),
        (registry.GetModelVersionDownloadUri, rapi.GetModelVersionDownloadUriRequest(name="wine", version=9)),
        (registry.SetRegisteredModelAlias, rapi.SetRegisteredModelAliasRequest(name="wine", alias="x", version=9)),
        (registry.SetRegisteredModelAlias, rapi.SetRegisteredModelAliasRequest(name="nope", alias="x", version=1)),
        (registry.DeleteRegisteredModelAlias, rapi.DeleteRegisteredModelAliasRequest(name="wine", alias="x")),
        (registry.GetModelVersionByAlias, rapi.GetModelVersionByAliasRequest(name="wine", alias="x")),
        (registry.DeleteRegisteredModelTag, rapi.DeleteRegisteredModelTagRequest(name="wine", key="x")),
        (registry.DeleteModelVersionTag, rapi.DeleteModelVersionTagRequest(name="wine", version=1, key="x")),
        (registry.RenameRegisteredModel, rapi.RenameRegisteredModelRequest(name="nope", new_name="x")),
    ]
    for call, request in not_found:
        assert code_of(call, request)[0] == grpc.StatusCode.NOT_FOUND, request
    code, message = code_of(registry.CreateRegisteredModel, rapi.CreateRegisteredModelRequest(name="wine"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "wine" in message

    refused(registry.GetModelVersion, rapi.GetModelVersionRequest(name="wine", version=0), "version")
    refused(registry.GetModelVersion, rapi.GetModelVersionRequest(name="wine", version=-1), "version")
    refused(registry.ListRegistryEvents, rapi.ListRegistryEventsRequest(name="wine", version=-1), "version")
    refused(registry.ListRegistryEvents, rapi.ListRegistryEventsRequest(name="wine", page_token="garbage"),
            "page_token")
    refused(registry.CreateRegisteredModel, rapi.CreateRegisteredModelRequest(name=" padded"), "name")
    refused(registry.CreateRegisteredModel, rapi.CreateRegisteredModelRequest(
        name="m", tags=[pb.Tag(key="", value="v")]), "tags[0].key")
    refused(registry.RenameRegisteredModel, rapi.RenameRegisteredModelRequest(name="wine", new_name=""), "new_name")
    refused(registry.TransitionModelVersionStage, rapi.TransitionModelVersionStageRequest(
        name="wine", version=1), "stage")
    refused(registry.TransitionModelVersionStage, rapi.TransitionModelVersionStageRequest(
        name="wine", version=1, stage=rpb.STAGE_ARCHIVED, archive_existing_versions=True), "archive_existing_versions")
    refused(registry.TransitionModelVersionStage, rapi.TransitionModelVersionStageRequest(
        name="wine", version=1, stage=rpb.STAGE_STAGING, reason="r" * 1_001), "reason")
    refused(registry.SetModelVersionTag, rapi.SetModelVersionTagRequest(name="wine", version=1, key="k",
                                                                        value="v" * 100_001), "value")
    refused(registry.UpdateRegisteredModel, rapi.UpdateRegisteredModelRequest(name="wine", description="d" * 100_001),
            "description")
    # Refused requests changed nothing.
    assert events(stubs, "wine") == [(1, CREATE, "", f"runs:/{run.id}/model", "", "", "")]
