"""Roles per study, experiment and registered model against real servers (port 0, SQLite; the
permission tables also on PostgreSQL), with principals from static tokens with groups.

Every RPC of the three services (from their descriptors), with a request naming the resources,
is called by a principal with no role, a reader, an editor (through a group), a manager and an
admin (through a group), and must be refused (PERMISSION_DENIED, ROLE_REQUIRED or
ADMIN_REQUIRED) exactly when the principal's role is below the rule that
tests/unit/test_access_rules.py decides for it; the table ``cases`` does the same with
meaningful requests for each rule kind (a run's experiment, a trial's study, a streamed upload). Then: the creator becomes manager, managers grant
and revoke (users and groups), editors cannot, a read token never writes whatever its role,
listings hide what the caller cannot read (paging included), the default role, the audit,
and through the gateway a /v1 route and MLflow's REST routes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
import sqlalchemy as sa
from google.protobuf.message_factory import GetMessageClass

from gateway.server import GatewayOptions
from gateway.server import serve as serve_gateway
from suggestion_service.server import serve as serve_suggestion
from tests.unit.test_access_rules import EXPECTED
from tracking_service.server import serve as serve_tracking
from trial_worker import SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.suggestion.v1 import suggestion_service_pb2 as sapi
from tuning.suggestion.v1 import suggestion_service_pb2_grpc as sgrpc
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import registry_service_pb2_grpc as rgrpc
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning.tracking.v1 import tracking_service_pb2 as tapi
from tuning.tracking.v1 import tracking_service_pb2_grpc as tgrpc
from tuning_common.access import Admins
from tuning_common.auth import TokenStore
from tuning_common.database import normalise_url
from tuning_common.errors import PermissionDenied
from tuning_common.grpc_errors import error_from_rpc
from tuning_common.grpc_server import RoleSettings, RunningServer, ServerOptions

# name -> (token role, token, groups)
PEOPLE = {
    "alice": ("write", "alice-token-0123456789", ""),           # creates everything below: manager
    "root": ("write", "root-token-01234567890", "ml-admins"),   # admin through a group
    "bob": ("write", "bob-token-012345678901", ""),             # reader (as a user)
    "erin": ("write", "erin-token-0123456789", "workers"),      # editor (through group:workers)
    "max": ("write", "max-token-01234567890", ""),              # manager (as a user)
    "nora": ("write", "nora-token-0123456789", "others"),       # no role
    "rita": ("read", "rita-token-0123456789", "workers"),       # a read token, editor through her group
}
TOKENS = "\n".join(f"{role} {token} {name} {groups}".strip() for name, (role, token, groups) in PEOPLE.items())
RANK = {"nora": 0, "bob": 1, "erin": 2, "max": 3, "root": 4}
NEEDED = {"reader": 1, "editor": 2, "manager": 3, "admin": 4}
SUGGESTION = sapi.DESCRIPTOR.services_by_name["SuggestionService"]
TRACKING = tapi.DESCRIPTOR.services_by_name["TrackingService"]
REGISTRY = rapi.DESCRIPTOR.services_by_name["ModelRegistryService"]


def auth(name: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {PEOPLE[name][1]}")]


def outcome(call: Callable[[], object]) -> str:
    """"ok", or the refusal's reason, or the status code of another failure."""
    try:
        call()
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.PERMISSION_DENIED:
            return error_from_rpc(error).reason
        return error.code().name
    return "ok"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RunningServer, str]]:
    """A suggestion and a tracking server with roles on (and the suggestion database's URL)."""
    tmp = tmp_path_factory.mktemp("roles")
    options = ServerOptions(port=0, grace_seconds=1, tokens=TokenStore.parse(TOKENS, "test"),
                            roles=RoleSettings(Admins.parse("user:nobody,group:ml-admins")))
    suggestion = serve_suggestion(f"sqlite:///{tmp / 's.db'}", options, model_workers=0)
    tracking = serve_tracking(f"sqlite:///{tmp / 't.db'}", str(tmp / "artifacts"), options)
    yield suggestion, tracking, f"sqlite:///{tmp / 's.db'}"
    suggestion.stop()
    tracking.stop()


@pytest.fixture(scope="module")
def stubs(servers) -> Iterator[tuple[sgrpc.SuggestionServiceStub, tgrpc.TrackingServiceStub,
                                     rgrpc.ModelRegistryServiceStub]]:
    suggestion, tracking, _ = servers
    with grpc.insecure_channel(suggestion.address) as s, grpc.insecure_channel(tracking.address) as t:
        yield sgrpc.SuggestionServiceStub(s), tgrpc.TrackingServiceStub(t), rgrpc.ModelRegistryServiceStub(t)


SPEC = spb.StudySpec(
    parameters=[spb.ParameterSpec(name="x", float_range=spb.FloatRange(low=0, high=1))],
    objectives=[spb.Objective(metric="loss", direction=spb.DIRECTION_MINIMIZE)],
)


@pytest.fixture(scope="module")
def world(stubs):
    return build_world(stubs)


def build_world(stubs) -> dict:
    """What alice made, and the roles she gave: bob reader, group:workers editor, max manager."""
    suggestion, tracking, registry = stubs
    who = auth("alice")
    assert suggestion.CreateStudy(sapi.CreateStudyRequest(name="s1", spec=SPEC), metadata=who).created
    trial = suggestion.CreateTrial(sapi.CreateTrialRequest(study="s1", parameters={"x": spb.ParameterValue(float_value=0.5)}),
                                   metadata=who).trial
    experiment = tracking.CreateExperiment(tapi.CreateExperimentRequest(name="e1"), metadata=who).experiment
    run = tracking.CreateRun(tapi.CreateRunRequest(experiment_id=experiment.id), metadata=who).run
    registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name="m1"), metadata=who)
    for subject, role in (("user:bob", "reader"), ("group:workers", "editor"), ("user:max", "manager")):
        suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(study="s1", subject=subject, role=role),
                                      metadata=who)
        tracking.SetExperimentPermission(tapi.SetExperimentPermissionRequest(
            experiment_id=experiment.id, subject=subject, role=role), metadata=who)
        registry.SetRegisteredModelPermission(rapi.SetRegisteredModelPermissionRequest(
            name="m1", subject=subject, role=role), metadata=who)
    return {"trial": trial.id, "experiment": experiment.id, "run": run.id}


def upload(tracking: tgrpc.TrackingServiceStub, run: str, path: str, who: list) -> tapi.UploadArtifactResponse:
    header = tapi.UploadArtifactRequest(header=tapi.ArtifactHeader(
        run_id=run, path=path, size=1, sha256=hashlib.sha256(b"x").hexdigest()))
    return tracking.UploadArtifact(iter([header, tapi.UploadArtifactRequest(chunk=b"x")]), metadata=who)


def cases(stubs, world) -> list[tuple[str, str, Callable[[list], object]]]:
    """(name, role needed, call with the given metadata): each rule kind of each service."""
    suggestion, tracking, registry = stubs
    experiment, run, trial = world["experiment"], world["run"], world["trial"]

    return [
        # suggestion: a study, a trial's study
        ("GetStudy", "reader", lambda who: suggestion.GetStudy(sapi.GetStudyRequest(name="s1"), metadata=who)),
        ("ListTrials", "reader", lambda who: suggestion.ListTrials(sapi.ListTrialsRequest(study="s1"), metadata=who)),
        ("GetTrial", "reader", lambda who: suggestion.GetTrial(sapi.GetTrialRequest(trial_id=trial), metadata=who)),
        ("SuggestTrials", "editor", lambda who: suggestion.SuggestTrials(sapi.SuggestTrialsRequest(
            study="s1", count=1, worker_id="w", request_id=f"r-{who[0][1][-8:]}"), metadata=who)),
        ("Heartbeat", "editor", lambda who: suggestion.Heartbeat(sapi.HeartbeatRequest(
            trial_id=trial, worker_id="w"), metadata=who)),
        ("SetStudyState", "manager", lambda who: suggestion.SetStudyState(sapi.SetStudyStateRequest(
            name="s1", state=spb.STUDY_STATE_ACTIVE), metadata=who)),
        ("ListStudyPermissions", "manager", lambda who: suggestion.ListStudyPermissions(
            sapi.ListStudyPermissionsRequest(study="s1"), metadata=who)),
        # tracking: an experiment, a run's experiment, several experiments, a streamed upload
        ("GetExperiment", "reader", lambda who: tracking.GetExperiment(tapi.GetExperimentRequest(
            experiment_id=experiment), metadata=who)),
        ("GetExperimentByName", "reader", lambda who: tracking.GetExperimentByName(
            tapi.GetExperimentByNameRequest(name="e1"), metadata=who)),
        ("GetRun", "reader", lambda who: tracking.GetRun(tapi.GetRunRequest(run_id=run), metadata=who)),
        ("SearchRuns", "reader", lambda who: tracking.SearchRuns(tapi.SearchRunsRequest(
            experiment_ids=[experiment]), metadata=who)),
        ("LogParam", "editor", lambda who: tracking.LogParam(tapi.LogParamRequest(
            run_id=run, param=tpb.Param(key="p", value="1")), metadata=who)),
        ("CreateRun", "editor", lambda who: tracking.CreateRun(tapi.CreateRunRequest(
            experiment_id=experiment), metadata=who)),
        ("UploadArtifact", "editor", lambda who: upload(tracking, run, "a.txt", who)),
        ("DownloadArtifact", "reader", lambda who: list(tracking.DownloadArtifact(tapi.DownloadArtifactRequest(
            run_id=run, path="a.txt"), metadata=who))),
        ("RenameExperiment", "manager", lambda who: tracking.RenameExperiment(tapi.RenameExperimentRequest(
            experiment_id=experiment, new_name="e1"), metadata=who)),
        ("ListExperimentPermissions", "manager", lambda who: tracking.ListExperimentPermissions(
            tapi.ListExperimentPermissionsRequest(experiment_id=experiment), metadata=who)),
        # registry: a model, its versions; webhooks
        ("GetRegisteredModel", "reader", lambda who: registry.GetRegisteredModel(rapi.GetRegisteredModelRequest(
            name="m1"), metadata=who)),
        ("ListRegistryEvents", "reader", lambda who: registry.ListRegistryEvents(rapi.ListRegistryEventsRequest(
            name="m1"), metadata=who)),
        ("CreateModelVersion", "editor", lambda who: registry.CreateModelVersion(rapi.CreateModelVersionRequest(
            name="m1", source="s3://bucket/model"), metadata=who)),
        ("SetRegisteredModelTag", "editor", lambda who: registry.SetRegisteredModelTag(
            rapi.SetRegisteredModelTagRequest(name="m1", key="k", value="v"), metadata=who)),
        ("ListRegisteredModelPermissions", "manager", lambda who: registry.ListRegisteredModelPermissions(
            rapi.ListRegisteredModelPermissionsRequest(name="m1"), metadata=who)),
        ("ListWebhooks", "admin", lambda who: registry.ListWebhooks(rapi.ListWebhooksRequest(), metadata=who)),
        ("ListRegistryEvents of every model", "admin", lambda who: registry.ListRegistryEvents(
            rapi.ListRegistryEventsRequest(), metadata=who)),
    ]


@pytest.mark.parametrize("person", list(RANK))
def test_each_role_gets_exactly_what_its_rules_allow(stubs, world, person: str):
    for name, needed, call in cases(stubs, world):
        result = outcome(lambda call=call: call(auth(person)))
        if RANK[person] >= NEEDED[needed]:
            assert result not in ("ROLE_REQUIRED", "ADMIN_REQUIRED"), (person, name, result)
        else:
            assert result in ("ROLE_REQUIRED", "ADMIN_REQUIRED"), (person, name, result)


def test_a_read_token_never_writes_whatever_its_role(stubs, world):
    suggestion, tracking, _ = stubs
    assert outcome(lambda: suggestion.GetStudy(sapi.GetStudyRequest(name="s1"), metadata=auth("rita"))) == "ok"
    assert outcome(lambda: tracking.LogParam(tapi.LogParamRequest(
        run_id=world["run"], param=tpb.Param(key="q", value="1")), metadata=auth("rita"))) == "READ_ONLY_TOKEN"


def test_the_refusal_names_the_role_and_the_resource(stubs, world):
    suggestion, _, _ = stubs
    with pytest.raises(grpc.RpcError) as caught:
        suggestion.DeleteStudy(sapi.DeleteStudyRequest(name="s1"), metadata=auth("erin"))
    error = error_from_rpc(caught.value)
    assert error.reason == "ROLE_REQUIRED" and error.metadata == {
        "role": "manager", "resource_type": "study", "resource_id": "s1"}
    assert "manager role on study 's1'" in error.message


def test_creators_manage_and_grant_editors_do_not(stubs, world):
    suggestion, _, registry = stubs
    for name in ("nora",):
        assert suggestion.CreateStudy(sapi.CreateStudyRequest(name="noras", spec=SPEC), metadata=auth(name)).created
    listed = suggestion.ListStudyPermissions(sapi.ListStudyPermissionsRequest(study="noras"), metadata=auth("nora"))
    assert [(p.subject, p.role) for p in listed.permissions] == [("user:nora", "manager")]
    assert outcome(lambda: suggestion.GetStudy(sapi.GetStudyRequest(name="noras"), metadata=auth("bob"))) \
        == "ROLE_REQUIRED"
    suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(study="noras", subject="group:workers",
                                                                 role="editor"), metadata=auth("nora"))
    # erin is an editor through her group: she may work but not grant
    assert outcome(lambda: suggestion.GetStudy(sapi.GetStudyRequest(name="noras"), metadata=auth("erin"))) == "ok"
    assert outcome(lambda: suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(
        study="noras", subject="user:erin", role="manager"), metadata=auth("erin"))) == "ROLE_REQUIRED"
    suggestion.DeleteStudyPermission(sapi.DeleteStudyPermissionRequest(study="noras", subject="group:workers"),
                                     metadata=auth("nora"))
    assert outcome(lambda: suggestion.GetStudy(sapi.GetStudyRequest(name="noras"), metadata=auth("erin"))) \
        == "ROLE_REQUIRED"
    # bad input names the field; a subject without a role is NOT_FOUND
    assert outcome(lambda: suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(
        study="noras", subject="erin", role="editor"), metadata=auth("nora"))) == "INVALID_ARGUMENT"
    assert outcome(lambda: suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(
        study="noras", subject="user:erin", role="owner"), metadata=auth("nora"))) == "INVALID_ARGUMENT"
    assert outcome(lambda: suggestion.DeleteStudyPermission(sapi.DeleteStudyPermissionRequest(
        study="noras", subject="user:erin"), metadata=auth("nora"))) == "NOT_FOUND"
    # admins may grant on anything that exists; what does not exist is NOT_FOUND for them only
    assert outcome(lambda: registry.SetRegisteredModelPermission(rapi.SetRegisteredModelPermissionRequest(
        name="missing", subject="user:bob", role="reader"), metadata=auth("root"))) == "NOT_FOUND"
    assert outcome(lambda: registry.SetRegisteredModelPermission(rapi.SetRegisteredModelPermissionRequest(
        name="missing", subject="user:bob", role="reader"), metadata=auth("nora"))) == "ROLE_REQUIRED"


def test_creating_a_study_that_exists_answers_it_to_its_readers_only(stubs, world):
    suggestion, _, _ = stubs
    again = sapi.CreateStudyRequest(name="s1", spec=SPEC)
    assert outcome(lambda: suggestion.CreateStudy(again, metadata=auth("nora"))) == "ROLE_REQUIRED"
    assert not suggestion.CreateStudy(again, metadata=auth("bob")).created


def test_a_study_learns_only_from_prior_studies_its_maker_may_read(stubs):
    suggestion, _, _ = stubs
    suggestion.CreateStudy(sapi.CreateStudyRequest(name="alices-prior", spec=SPEC), metadata=auth("alice"))
    spec = spb.StudySpec()
    spec.CopyFrom(SPEC)
    spec.prior_studies.append("alices-prior")
    request = sapi.CreateStudyRequest(name="noras-transfer", spec=spec)
    assert outcome(lambda: suggestion.CreateStudy(request, metadata=auth("nora"))) == "ROLE_REQUIRED"
    assert outcome(lambda: suggestion.GetStudy(sapi.GetStudyRequest(name="noras-transfer"),
                                               metadata=auth("root"))) == "NOT_FOUND"
    suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(study="alices-prior", subject="user:nora",
                                                                 role="reader"), metadata=auth("alice"))
    assert suggestion.CreateStudy(request, metadata=auth("nora")).created


def test_a_resource_and_its_creators_role_are_written_together(tmp_path):
    """The creator's role is written in the transaction that makes the resource: no call, not even
    a twin get-or-create by the same principal (eight workers starting at once), ever finds a new
    resource without its manager. Here the role cannot be written (its audit table is gone): the
    create fails as a whole and leaves nothing."""
    databases = {"s": tmp_path / "s.db", "t": tmp_path / "t.db"}
    with roles_servers(f"sqlite:///{databases['s']}", f"sqlite:///{databases['t']}",
                       str(tmp_path / "a")) as (suggestion, tracking, registry):
        for path, table in ((databases["s"], "study_permission_audit"), (databases["t"], "permission_audit")):
            with sqlite3.connect(path) as conn:
                conn.execute(f"ALTER TABLE {table} RENAME TO {table}_elsewhere")
        assert outcome(lambda: suggestion.CreateStudy(sapi.CreateStudyRequest(name="s", spec=SPEC),
                                                      metadata=auth("alice"))) == "INTERNAL"
        assert outcome(lambda: tracking.CreateExperiment(tapi.CreateExperimentRequest(name="e"),
                                                         metadata=auth("alice"))) == "INTERNAL"
        assert outcome(lambda: registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name="m"),
                                                              metadata=auth("alice"))) == "INTERNAL"
    for path, query in ((databases["s"], "SELECT count(*) FROM studies"),
                        (databases["t"], "SELECT count(*) FROM experiments WHERE name = 'e'"),
                        (databases["t"], "SELECT count(*) FROM registered_models")):
        with sqlite3.connect(path) as conn:
            assert conn.execute(query).fetchone() == (0,), query


def test_a_deleted_study_leaves_no_role_to_one_made_later_under_its_name(stubs):
    suggestion, _, _ = stubs
    suggestion.CreateStudy(sapi.CreateStudyRequest(name="reused", spec=SPEC), metadata=auth("max"))
    suggestion.SetStudyPermission(sapi.SetStudyPermissionRequest(study="reused", subject="user:bob", role="manager"),
                                  metadata=auth("max"))
    suggestion.DeleteStudy(sapi.DeleteStudyRequest(name="reused"), metadata=auth("bob"))
    suggestion.CreateStudy(sapi.CreateStudyRequest(name="reused", spec=SPEC), metadata=auth("nora"))
    listed = suggestion.ListStudyPermissions(sapi.ListStudyPermissionsRequest(study="reused"), metadata=auth("nora"))
    assert [(p.subject, p.role) for p in listed.permissions] == [("user:nora", "manager")]


def test_a_renamed_model_keeps_its_roles(stubs):
    _, _, registry = stubs
    registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name="old"), metadata=auth("max"))
    registry.SetRegisteredModelPermission(rapi.SetRegisteredModelPermissionRequest(
        name="old", subject="user:bob", role="reader"), metadata=auth("max"))
    registry.RenameRegisteredModel(rapi.RenameRegisteredModelRequest(name="old", new_name="new"),
                                   metadata=auth("max"))
    assert outcome(lambda: registry.GetRegisteredModel(rapi.GetRegisteredModelRequest(name="new"),
                                                       metadata=auth("bob"))) == "ok"


def test_listings_show_only_what_the_caller_may_read(stubs, world):
    suggestion, tracking, registry = stubs
    for number in range(5):
        suggestion.CreateStudy(sapi.CreateStudyRequest(name=f"page-{number}", spec=SPEC), metadata=auth("nora"))
        suggestion.CreateStudy(sapi.CreateStudyRequest(name=f"page-{number}x", spec=SPEC), metadata=auth("max"))
        tracking.CreateExperiment(tapi.CreateExperimentRequest(name=f"exp-{number}"), metadata=auth("nora"))
        registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name=f"model-{number}"), metadata=auth("nora"))

    def studies(who: str) -> list[str]:
        names, token = [], ""
        while True:  # pages of 2: paging must skip what is hidden, not return short or empty pages
            page = suggestion.ListStudies(sapi.ListStudiesRequest(page_size=2, page_token=token), metadata=auth(who))
            assert len(page.studies) == 2 or not page.next_page_token
            names += [study.name for study in page.studies]
            if not (token := page.next_page_token):
                return names

    assert [name for name in studies("nora") if name.startswith("page-")] == [f"page-{n}" for n in range(5)]
    assert "s1" in studies("erin") and not any(name.startswith("page-") for name in studies("erin"))
    assert {"s1", "noras", *(f"page-{n}" for n in range(5)), *(f"page-{n}x" for n in range(5))} <= set(studies("root"))
    assert {e.name for e in tracking.SearchExperiments(tapi.SearchExperimentsRequest(), metadata=auth("bob"))
            .experiments} == {"e1"}
    assert {m.name for m in registry.SearchRegisteredModels(rapi.SearchRegisteredModelsRequest(),
                                                            metadata=auth("nora")).registered_models} \
        == {f"model-{n}" for n in range(5)}
    versions = registry.SearchModelVersions(rapi.SearchModelVersionsRequest(), metadata=auth("nora")).model_versions
    assert all(version.name.startswith("model-") for version in versions)
    assert {v.name for v in registry.SearchModelVersions(rapi.SearchModelVersionsRequest(), metadata=auth("bob"))
            .model_versions} <= {"m1"}


def test_permission_changes_are_audited(servers, stubs, world):
    stub = stubs[0]
    stub.SetStudyPermission(sapi.SetStudyPermissionRequest(study="s1", subject="group:auditors", role="reader"),
                            metadata=auth("max"))
    stub.DeleteStudyPermission(sapi.DeleteStudyPermissionRequest(study="s1", subject="group:auditors"),
                               metadata=auth("root"))
    engine = sa.create_engine(servers[2])
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT actor, action, subject, role, detail FROM study_permission_audit "
                                    "WHERE resource_type = 'study' AND resource_id = 's1' ORDER BY id")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("alice", "GRANT", "user:alice", "manager", "creator"),
        ("alice", "GRANT", "user:bob", "reader", ""),
        ("alice", "GRANT", "group:workers", "editor", ""),
        ("alice", "GRANT", "user:max", "manager", ""),
        ("max", "GRANT", "group:auditors", "reader", ""),
        ("root", "REVOKE", "group:auditors", "reader", ""),
    ]


# --- through the gateway: /v1 and MLflow's REST API are checked by the services' rules ------------


@pytest.fixture(scope="module")
def gateway(servers) -> Iterator[str]:
    suggestion, tracking, _ = servers
    running = serve_gateway(GatewayOptions(suggestion_address=suggestion.address, tracking_address=tracking.address,
                                           tokens=TokenStore.parse(TOKENS, "test"), grace_seconds=1))
    yield f"http://{running.address}"
    running.stop()


def http(base: str, who: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"authorization": f"Bearer {PEOPLE[who][1]}"}, timeout=30)


def test_v1_routes_follow_the_roles(gateway, world):
    with http(gateway, "nora") as nora, http(gateway, "bob") as bob, http(gateway, "max") as max_:
        refused = nora.get("/v1/studies/s1")
        assert refused.status_code == 403 and "ROLE_REQUIRED" in refused.text
        assert bob.get("/v1/studies/s1").json()["study"]["name"] == "s1"
        assert bob.put("/v1/studies/s1/permissions/user:nora", json={"role": "reader"}).status_code == 403
        assert "s1" not in [study["name"] for study in nora.get("/v1/studies").json().get("studies", [])]
        granted = max_.put("/v1/studies/s1/permissions/user:nora", json={"role": "reader"})
        assert granted.json() == {"permission": {"subject": "user:nora", "role": "reader"}}
        assert nora.get("/v1/studies/s1").status_code == 200
        assert "s1" in [study["name"] for study in nora.get("/v1/studies").json()["studies"]]
        assert max_.delete("/v1/studies/s1/permissions/user:nora").status_code == 200
        assert nora.get("/v1/studies/s1").status_code == 403


def test_mlflow_rest_routes_follow_the_roles(gateway, world):
    experiment = str(world["experiment"])
    with http(gateway, "nora") as nora, http(gateway, "bob") as bob, http(gateway, "erin") as erin:
        refused = bob.post("/api/2.0/mlflow/runs/create", json={"experiment_id": experiment})
        assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
        created = erin.post("/api/2.0/mlflow/runs/create", json={"experiment_id": experiment})
        assert created.status_code == 200, created.text
        run_id = created.json()["run"]["info"]["run_id"]
        assert nora.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).status_code == 403
        assert bob.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).status_code == 200

        def searched(client: httpx.Client) -> set[str]:
            answer = client.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1000})
            assert answer.status_code == 200, answer.text
            return {found["name"] for found in answer.json().get("experiments", [])}

        assert "e1" in searched(bob) and "e1" not in searched(nora)
        assert searched(bob) <= {"e1"}


def test_the_clients_manage_roles(servers, stubs):
    stubs[0].CreateStudy(sapi.CreateStudyRequest(name="by-client", spec=SPEC), metadata=auth("max"))
    with SuggestionClient(servers[0].address, token=PEOPLE["max"][1]) as client:
        assert client.set_study_permission("by-client", "group:team", "editor").role == "editor"
        assert [(p.subject, p.role) for p in client.list_study_permissions("by-client")] == [
            ("group:team", "editor"), ("user:max", "manager")]
        client.delete_study_permission("by-client", "group:team")
        assert len(client.list_study_permissions("by-client")) == 1
    with TrackingClient(servers[1].address, token=PEOPLE["max"][1]) as client:
        experiment = client.create_experiment("by-client").id
        client.set_experiment_permission(experiment, "user:bob", "reader")
        assert {p.subject for p in client.list_experiment_permissions(experiment)} == {"user:bob", "user:max"}
        client.delete_experiment_permission(experiment, "user:bob")
        client.create_registered_model("by-client")
        client.set_registered_model_permission("by-client", "user:bob", "editor")
        client.delete_registered_model_permission("by-client", "user:bob")
        assert [p.subject for p in client.list_registered_model_permissions("by-client")] == ["user:max"]
    with TrackingClient(servers[1].address, token=PEOPLE["bob"][1]) as client, pytest.raises(PermissionDenied):
        client.get_experiment(experiment)


@contextlib.contextmanager
def roles_servers(suggestion_url: str, tracking_url: str, artifacts: str, **settings) -> Iterator[tuple]:
    options = ServerOptions(port=0, grace_seconds=1, tokens=TokenStore.parse(TOKENS, "test"),
                            roles=RoleSettings(Admins.parse("group:ml-admins"), **settings))
    suggestion = serve_suggestion(suggestion_url, options, model_workers=0)
    try:
        tracking = serve_tracking(tracking_url, artifacts, options)
        try:
            with grpc.insecure_channel(suggestion.address) as s, grpc.insecure_channel(tracking.address) as t:
                yield sgrpc.SuggestionServiceStub(s), tgrpc.TrackingServiceStub(t), rgrpc.ModelRegistryServiceStub(t)
        finally:
            tracking.stop()
    finally:
        suggestion.stop()


def test_grants_listings_and_audit_on_each_database(database_url: str, tmp_path):
    # The tracking service on SQLite and on PostgreSQL (the suggestion service's queries are
    # the same statements: tuning_common.permissions).
    with roles_servers(f"sqlite:///{tmp_path / 's.db'}", database_url, str(tmp_path / "artifacts")) as (
            _, tracking, registry):
        who = auth("alice")
        ids = [tracking.CreateExperiment(tapi.CreateExperimentRequest(name=f"e{n}"), metadata=who).experiment.id
               for n in range(3)]
        run = tracking.CreateRun(tapi.CreateRunRequest(experiment_id=ids[0]), metadata=who).run.id
        upload(tracking, run, "model/model.json", who)
        for name in ("m0", "m1"):
            registry.CreateRegisteredModel(rapi.CreateRegisteredModelRequest(name=name), metadata=who)
            registry.CreateModelVersion(rapi.CreateModelVersionRequest(name=name, source=f"runs:/{run}/model"),
                                        metadata=who)
        tracking.SetExperimentPermission(tapi.SetExperimentPermissionRequest(
            experiment_id=ids[1], subject="group:workers", role="reader"), metadata=who)
        registry.SetRegisteredModelPermission(rapi.SetRegisteredModelPermissionRequest(
            name="m1", subject="user:bob", role="reader"), metadata=who)
        found = tracking.SearchExperiments(tapi.SearchExperimentsRequest(page_size=1), metadata=auth("erin"))
        assert [e.id for e in found.experiments] == [ids[1]] and not found.next_page_token
        assert {m.name for m in registry.SearchRegisteredModels(rapi.SearchRegisteredModelsRequest(),
                                                                metadata=auth("bob")).registered_models} == {"m1"}
        assert {v.name for v in registry.SearchModelVersions(rapi.SearchModelVersionsRequest(),
                                                             metadata=auth("bob")).model_versions} == {"m1"}
        assert len(tracking.SearchExperiments(tapi.SearchExperimentsRequest(), metadata=auth("root"))
                   .experiments) == 4  # and the Default experiment
        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # grants to one subject at once all succeed
            list(pool.map(lambda n: tracking.SetExperimentPermission(tapi.SetExperimentPermissionRequest(
                experiment_id=ids[2], subject="user:erin", role=("reader", "editor")[n % 2]), metadata=who),
                range(16)))
        listed = tracking.ListExperimentPermissions(tapi.ListExperimentPermissionsRequest(experiment_id=ids[2]),
                                                    metadata=who).permissions
        assert [p.subject for p in listed] == ["user:alice", "user:erin"]
        registry.DeleteRegisteredModel(rapi.DeleteRegisteredModelRequest(name="m1"), metadata=who)
    engine = sa.create_engine(normalise_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT actor, action, resource_type, resource_id, subject FROM permission_audit "
                                    "ORDER BY id")).all()
    engine.dispose()
    rows = [tuple(row) for row in rows]
    assert rows[-19:-17] == [("alice", "GRANT", "experiment", str(ids[1]), "group:workers"),
                             ("alice", "GRANT", "registered_model", "m1", "user:bob")]
    assert rows[-17:-1] == [("alice", "GRANT", "experiment", str(ids[2]), "user:erin")] * 16
    assert rows[-1] == ("alice", "DROP", "registered_model", "m1", "")


def test_a_default_role_of_reader_lets_everyone_read_but_not_write(tmp_path):
    with roles_servers(f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 't.db'}", str(tmp_path / "a"),
                       default_role="reader") as (suggestion, tracking, _):
        suggestion.CreateStudy(sapi.CreateStudyRequest(name="open", spec=SPEC), metadata=auth("alice"))
        experiment = tracking.CreateExperiment(tapi.CreateExperimentRequest(name="open"), metadata=auth("alice"))
        assert outcome(lambda: suggestion.GetStudy(sapi.GetStudyRequest(name="open"), metadata=auth("nora"))) == "ok"
        assert [s.name for s in suggestion.ListStudies(sapi.ListStudiesRequest(), metadata=auth("nora")).studies] \
            == ["open"]
        assert outcome(lambda: suggestion.SuggestTrials(sapi.SuggestTrialsRequest(
            study="open", count=1, worker_id="w", request_id="r1"), metadata=auth("nora"))) == "ROLE_REQUIRED"
        assert outcome(lambda: tracking.CreateRun(tapi.CreateRunRequest(
            experiment_id=experiment.experiment.id), metadata=auth("nora"))) == "ROLE_REQUIRED"


def test_the_dashboard_shows_a_version_without_the_lineage_its_reader_may_not_see(gateway, stubs, world):
    _, tracking, registry = stubs
    who = auth("alice")
    hidden = tracking.CreateExperiment(tapi.CreateExperimentRequest(name="hidden-lineage"), metadata=who).experiment
    run = tracking.CreateRun(tapi.CreateRunRequest(experiment_id=hidden.id, name="secret-run"), metadata=who).run.id
    upload(tracking, run, "model/model.json", who)
    version = registry.CreateModelVersion(rapi.CreateModelVersionRequest(name="m1", source=f"runs:/{run}/model"),
                                          metadata=who).model_version.version
    with http(gateway, "bob") as bob:
        page = bob.get(f"/ui/model-versions/{version}/m1")
        assert page.status_code == 200, page.text
        assert "hidden-lineage" not in page.text and "secret-run" not in page.text


def test_a_version_made_from_a_run_needs_the_run_readable(stubs, world):
    _, tracking, registry = stubs
    other = tracking.CreateExperiment(tapi.CreateExperimentRequest(name="noras-runs"), metadata=auth("nora")).experiment
    run = tracking.CreateRun(tapi.CreateRunRequest(experiment_id=other.id), metadata=auth("nora")).run.id
    upload(tracking, run, "model/model.json", auth("nora"))
    # erin may add versions to m1 (editor) but may not read nora's run
    assert outcome(lambda: registry.CreateModelVersion(rapi.CreateModelVersionRequest(
        name="m1", source=f"runs:/{run}/model"), metadata=auth("erin"))) == "ROLE_REQUIRED"
    tracking.SetExperimentPermission(tapi.SetExperimentPermissionRequest(
        experiment_id=other.id, subject="user:erin", role="reader"), metadata=auth("nora"))
    assert outcome(lambda: registry.CreateModelVersion(rapi.CreateModelVersionRequest(
        name="m1", source=f"runs:/{run}/model"), metadata=auth("erin"))) == "ok"


# --- every RPC, every role ------------------------------------------------------------------------

# Called last, in this order (the other calls need what they remove): 1 removes something in a
# resource, 2 changes or removes the resource itself (and so its roles).
LATER = {name: 2 for name in ("DeleteStudy", "SetStudyState", "DeleteExperiment", "RestoreExperiment",
                              "RenameExperiment", "DeleteRegisteredModel", "RenameRegisteredModel")}


def _request(method, values: dict):
    """``method``'s request naming the resources in ``values`` (by field name), else empty."""
    request = GetMessageClass(method.input_type)()
    for field in request.DESCRIPTOR.fields:
        if field.name in values and not field.message_type:
            value = values[field.name]
            if field.is_repeated:
                getattr(request, field.name).append(value)
            else:
                setattr(request, field.name, value)
    return request


def test_every_rpc_refuses_exactly_the_roles_below_its_rule(tmp_path):
    """Each RPC (from the descriptors) with a request naming a study, an experiment (its run and
    logged model) and a registered model, called by someone with no role, a reader, an editor,
    a manager and an admin: refused exactly below the rule of tests/unit/test_access_rules.py."""
    needed = {"create": 0, "list": 0, "admin": 4, **NEEDED}
    with roles_servers(f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 't.db'}",
                       str(tmp_path / "artifacts")) as stubs:
        world = build_world(stubs)
        suggestion, tracking, registry = stubs
        logged = tracking.CreateLoggedModel(tapi.CreateLoggedModelRequest(experiment_id=world["experiment"]),
                                            metadata=auth("alice")).model.id
        common = {"trial_id": world["trial"], "run_id": world["run"], "experiment_id": world["experiment"],
                  "experiment_ids": world["experiment"], "model_id": logged, "subject": "user:zed",
                  "role": "reader", "version": 1, "worker_id": "w", "request_id": "r", "count": 1}
        calls = []
        for stub, service, names in ((suggestion, SUGGESTION, {"name": "s1", "study": "s1", "new_name": "s1"}),
                                     (tracking, TRACKING, {"name": "e1", "new_name": "e1"}),
                                     (registry, REGISTRY, {"name": "m1", "new_name": "m1"})):
            for method in service.methods:
                rule = EXPECTED[service.full_name][method.name]
                request = _request(method, {**common, **names})
                calls.append((LATER.get(method.name, int(method.name.startswith("Delete"))), method, rule, stub,
                              request))
        calls.sort(key=lambda call: call[0])
        checked = 0
        for person in sorted(RANK, key=RANK.get):
            for _, method, rule, stub, request in calls:
                if method.client_streaming:
                    header = tapi.UploadArtifactRequest(header=tapi.ArtifactHeader(run_id=world["run"], path="f"))
                    call = lambda stub=stub, who=auth(person): stub.UploadArtifact(iter([header]), metadata=who)
                elif method.server_streaming:
                    call = lambda stub=stub, method=method, request=request, who=auth(person): list(
                        getattr(stub, method.name)(request, metadata=who))
                else:
                    call = lambda stub=stub, method=method, request=request, who=auth(person): getattr(
                        stub, method.name)(request, metadata=who)
                result = outcome(call)
                refused = result in ("ROLE_REQUIRED", "ADMIN_REQUIRED")
                assert refused == (RANK[person] < needed[rule]), (person, method.name, rule, result)
                checked += 1
        assert checked == len(RANK) * sum(1 for service in (SUGGESTION, TRACKING, REGISTRY) for _ in service.methods)
