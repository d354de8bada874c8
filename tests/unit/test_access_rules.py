"""Every RPC of every service has exactly one access rule (tuning_common.access), decided one by
one below: a new RPC fails test_every_rpc_has_the_rule_decided_for_it until it gets a rule
in its service's access.py and a row here. What each rule lets each role do is tested
through real servers in tests/integration/test_roles.py."""

from __future__ import annotations

import argparse

import pytest

from suggestion_service import access as suggestion_access
from tracking_service import access as tracking_access
from tuning.suggestion.v1 import suggestion_service_pb2
from tuning.tracking.v1 import registry_service_pb2, tracking_service_pb2
from tuning_common import access
from tuning_common.access import ADMIN_ONLY, EDITOR, MANAGER, READER, Admins, Creates, Lists, Needs, Policy
from tuning_common.auth import Principal, is_read_only
from tuning_common.errors import InvalidArgument, PermissionDenied
from tuning_common.grpc_server import RoleSettings, add_server_options, server_options

SERVICES = [
    suggestion_service_pb2.DESCRIPTOR.services_by_name["SuggestionService"],
    tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"],
    registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"],
]

# "create": Creates, "list": Lists (filtered), "admin": ADMIN_ONLY, else the role needed on
# the resource the request names (a study, an experiment or a registered model).
S, T, R = "reader", "editor", "manager"
EXPECTED = {
    "tuning.suggestion.v1.SuggestionService": {
        "CreateStudy": "create", "GetStudy": S, "ListStudies": "list", "SetStudyState": R, "DeleteStudy": R,
        "SuggestTrials": T, "ReportIntermediate": T, "LinkRun": T, "Heartbeat": T, "ReleaseTrial": T,
        "CompleteTrial": T, "CreateTrial": T, "GetTrial": S, "ListTrials": S, "ListMeasurements": S,
        "GetBestTrials": S, "GetPopulation": S, "GetParameterImportance": S,
        "CreateStudyWebhook": "admin", "GetStudyWebhook": "admin", "ListStudyWebhooks": "admin",
        "UpdateStudyWebhook": "admin", "DeleteStudyWebhook": "admin", "TestStudyWebhook": "admin",
        "ListStudyWebhookDeliveries": "admin",
        "SetStudyPermission": R, "DeleteStudyPermission": R, "ListStudyPermissions": R,
    },
    "tuning.tracking.v1.TrackingService": {
        "CreateExperiment": "create", "GetExperiment": S, "GetExperimentByName": S, "SearchExperiments": "list",
        "RenameExperiment": R, "SetExperimentTag": T, "DeleteExperiment": R, "RestoreExperiment": R,
        "CreateRun": T, "UpdateRun": T, "GetRun": S, "SearchRuns": S, "DeleteRun": T, "RestoreRun": T,
        "LogBatch": T, "LogMetric": T, "LogParam": T, "SetTag": T, "DeleteTag": T, "LogInputs": T,
        "GetMetricHistory": S, "UploadArtifact": T, "DownloadArtifact": S, "ListArtifacts": S,
        "GetArtifactDownloadUrl": S,
        "CreateLoggedModel": T, "GetLoggedModel": S, "FinalizeLoggedModel": T, "DeleteLoggedModel": T,
        "SetLoggedModelTags": T, "DeleteLoggedModelTag": T, "LogLoggedModelParams": T,
        "LogLoggedModelMetrics": T, "SearchLoggedModels": S,
        "SetExperimentPermission": R, "DeleteExperimentPermission": R, "ListExperimentPermissions": R,
    },
    "tuning.tracking.v1.ModelRegistryService": {
        "CreateRegisteredModel": "create", "GetRegisteredModel": S, "SearchRegisteredModels": "list",
        "RenameRegisteredModel": R, "UpdateRegisteredModel": T, "SetRegisteredModelTag": T,
        "DeleteRegisteredModelTag": T, "DeleteRegisteredModel": R, "CreateModelVersion": T, "GetModelVersion": S,
        "SearchModelVersions": "list", "UpdateModelVersion": T, "SetModelVersionTag": T,
        "DeleteModelVersionTag": T, "DeleteModelVersion": R, "TransitionModelVersionStage": T,
        "SetRegisteredModelAlias": T, "DeleteRegisteredModelAlias": T, "GetModelVersionByAlias": S,
        "GetModelVersionDownloadUri": S, "ListRegistryEvents": S,
        "CreateWebhook": "admin", "GetWebhook": "admin", "ListWebhooks": "admin", "UpdateWebhook": "admin",
        "DeleteWebhook": "admin", "TestWebhook": "admin", "ListWebhookDeliveries": "admin",
        "SetRegisteredModelPermission": R, "DeleteRegisteredModelPermission": R,
        "ListRegisteredModelPermissions": R,
    },
}


def all_rules() -> dict:
    # The services are only asked when a rule looks a resource up: none is here.
    return {**suggestion_access.rules(None, None), **tracking_access.rules(None, None, None, None)}


def kind(rule) -> str:
    if isinstance(rule, Creates):
        return "create"
    if isinstance(rule, Lists):
        return "list"
    if rule is ADMIN_ONLY:
        return "admin"
    assert isinstance(rule, Needs), rule
    return rule.role


def test_every_rpc_has_the_rule_decided_for_it():
    rules = all_rules()
    methods = {f"/{service.full_name}/{method.name}": (service.full_name, method.name)
               for service in SERVICES for method in service.methods}
    assert set(rules) == set(methods), "an RPC without a rule, or a rule for no RPC"
    for method, (service, name) in methods.items():
        assert kind(rules[method]) == EXPECTED[service].get(name), method
    assert {service.full_name for service in SERVICES} == set(EXPECTED)
    assert sum(map(len, EXPECTED.values())) == len(methods)


def test_whatever_only_reads_needs_at_most_the_reader_role():
    # A read token may call these; a rule asking more than reader would contradict its class.
    for method, rule in all_rules().items():
        if is_read_only(method) and isinstance(rule, Needs):
            assert rule.role in (READER, MANAGER), method  # manager: who has which role
        if not is_read_only(method):
            assert not isinstance(rule, Lists), method


class _Store:
    def __init__(self, rows: dict):
        self.rows = rows

    def roles(self, resource, subjects):
        return [role for (r, subject), role in self.rows.items() if r == resource and subject in subjects]


STUDY = access.Resource("study", "s1")
METHOD = "/tuning.suggestion.v1.SuggestionService/"


def policy(rows: dict, **kwargs) -> Policy:
    return Policy(suggestion_access.rules(None, None), _Store(rows), **kwargs)


class _Request:
    name = "s1"
    study = "s1"


@pytest.mark.parametrize(("rows", "kwargs", "allowed"), [
    ({}, {}, set()),
    ({(STUDY, "user:bob"): READER}, {}, {"GetStudy"}),
    ({(STUDY, "group:team"): EDITOR}, {}, {"GetStudy", "SuggestTrials"}),
    ({(STUDY, "user:bob"): READER, (STUDY, "group:team"): MANAGER}, {}, {"GetStudy", "SuggestTrials", "DeleteStudy"}),
    ({}, {"default_role": READER}, {"GetStudy"}),
    ({}, {"default_role": EDITOR}, {"GetStudy", "SuggestTrials"}),
    ({}, {"admins": Admins.parse("group:team")}, {"GetStudy", "SuggestTrials", "DeleteStudy"}),
    ({}, {"admins": Admins.parse("user:alice")}, set()),
])
def test_the_highest_of_user_group_and_default_roles_counts(rows, kwargs, allowed):
    bob = Principal("bob", "write", frozenset({"team"}))
    checked = policy(rows, **kwargs)
    for name in ("GetStudy", "SuggestTrials", "DeleteStudy"):
        if name in allowed:
            checked.check(METHOD + name, bob, _Request())
        else:
            with pytest.raises(PermissionDenied) as caught:
                checked.check(METHOD + name, bob, _Request())
            assert caught.value.reason == "ROLE_REQUIRED" and "study 's1'" in caught.value.message


def test_a_method_without_a_rule_is_refused_even_to_admins():
    with pytest.raises(PermissionDenied) as caught:
        policy({}, admins=Admins.parse("user:alice")).check(METHOD + "Unknown", Principal("alice", "write"), None)
    assert caught.value.reason == "NO_ACCESS_RULE"


def test_admin_only_rules():
    rules = tracking_access.rules(None, None, None, None)
    checked = Policy(rules, _Store({}), Admins.parse("user:alice, group:ops"), default_role=EDITOR)
    method = "/tuning.tracking.v1.ModelRegistryService/CreateWebhook"
    checked.check(method, Principal("alice", "write"), None)
    checked.check(method, Principal("carol", "write", frozenset({"ops"})), None)
    with pytest.raises(PermissionDenied) as caught:
        checked.check(method, Principal("bob", "write"), None)
    assert caught.value.reason == "ADMIN_REQUIRED"


@pytest.mark.parametrize("subject", ["alice", "user:", "team:x", "user:a b", "group:a,b", "user::x", ""])
def test_malformed_subjects_are_refused(subject):
    with pytest.raises(InvalidArgument, match="subject"):
        access.check_subject("subject", subject)
    with pytest.raises(InvalidArgument):
        Admins.parse(f"user:alice,{subject or 'x'}")


def test_roles_are_ordered():
    assert access.highest([None, READER, MANAGER, EDITOR]) == MANAGER
    assert access.at_least(EDITOR, READER) and not access.at_least(READER, EDITOR) and not access.at_least(None, READER)
    with pytest.raises(InvalidArgument, match="reader, editor, manager"):
        access.check_role("role", "owner")


# --- settings ---------------------------------------------------------------------------------


def parse(args: list[str]):
    parser = argparse.ArgumentParser()
    add_server_options(parser, "suggestion", 50051, "sqlite://")
    return server_options(parser.parse_args(args))


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("TUNING_TOKENS", "TUNING_TOKENS_FILE", "TUNING_ROLES", "TUNING_ADMINS", "TUNING_DEFAULT_ROLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_roles_are_off_unless_asked(environment):
    environment.setenv("TUNING_TOKENS", "write token-0123456789abcdef ci")
    assert parse([]).roles is None


def test_roles_from_flags_and_variables(environment):
    environment.setenv("TUNING_TOKENS", "write token-0123456789abcdef ci")
    roles = parse(["--roles", "--admins", "user:alice, group:ml-admins", "--default-role", "reader"]).roles
    assert roles == RoleSettings(Admins(frozenset({"user:alice", "group:ml-admins"})), READER)
    environment.setenv("TUNING_ROLES", "on")
    environment.setenv("TUNING_ADMINS", "group:ops")
    assert parse([]).roles == RoleSettings(Admins(frozenset({"group:ops"})), None)


@pytest.mark.parametrize(("args", "field"), [
    (["--roles", "--default-role", "manager"], "default_role"),
    (["--roles", "--default-role", "owner"], "default_role"),
    (["--roles", "--admins", "alice"], "admins"),
])
def test_bad_role_settings_are_refused(environment, args: list[str], field: str):
    environment.setenv("TUNING_TOKENS", "write token-0123456789abcdef ci")
    with pytest.raises(InvalidArgument) as caught:
        parse(args)
    assert caught.value.field == field


def test_roles_need_authentication(environment):
    with pytest.raises(InvalidArgument) as caught:
        parse(["--roles"])
    assert caught.value.reason == "ROLES_WITHOUT_AUTHENTICATION"
