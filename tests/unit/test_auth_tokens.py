"""tuning_common.auth without a server: the tokens file and $TUNING_TOKENS, checking a header,
the constant-time comparison, and the read/write class of every RPC of the three services."""

from __future__ import annotations

import argparse
import hmac
from pathlib import Path

import pytest

from tuning.suggestion.v1 import suggestion_service_pb2
from tuning.tracking.v1 import registry_service_pb2, tracking_service_pb2
from tuning_common import auth
from tuning_common.auth import TokenStore, is_open, is_read_only, load_tokens
from tuning_common.errors import InvalidArgument, PermissionDenied, Unauthenticated
from tuning_common.grpc_server import add_server_options, server_options

WRITE_TOKEN = "w-0123456789abcdefXYZ"
READ_TOKEN = "r-0123456789abcdefXYZ"
SECRET = "s3cr3t-token-that-must-not-leak"


def store(text: str) -> TokenStore:
    return TokenStore.parse(text, "test")


# --- parsing ----------------------------------------------------------------------------------


def test_a_file_with_comments_blank_lines_and_names(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text(f"# who may call\n\nwrite {WRITE_TOKEN} ci   # the CI runner\n  read {READ_TOKEN}\n")
    tokens = load_tokens(path)
    assert len(tokens) == 2
    assert tokens.authenticate(WRITE_TOKEN) == auth.Principal("ci", "write")
    reader = tokens.authenticate(READ_TOKEN)
    assert reader.role == "read" and reader.name == f"tokens file {path} line 4"


def test_a_line_may_name_groups(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text(f"write {WRITE_TOKEN} alice ml-admins,team-a\nread {READ_TOKEN} bob\n")
    tokens = load_tokens(path)
    assert tokens.authenticate(WRITE_TOKEN) == auth.Principal("alice", "write", frozenset({"ml-admins", "team-a"}))
    assert tokens.authenticate(READ_TOKEN).groups == frozenset()
    with pytest.raises(InvalidArgument, match="entry 1: expected '<role> <token> \\[name\\]'"):
        load_tokens(None, f"write {WRITE_TOKEN} alice team-a")  # commas end entries there: no groups


def test_the_environment_variable_takes_commas_and_newlines():
    tokens = load_tokens(None, f"write {WRITE_TOKEN} ci, read {READ_TOKEN}\nread {SECRET} dashboard,")
    assert len(tokens) == 3
    assert tokens.authenticate(SECRET).name == "dashboard"


def test_no_tokens_configured_is_access_control_off(tmp_path: Path):
    assert load_tokens(None, None) is None
    assert load_tokens("", "  \n") is None


def test_a_file_or_variable_without_any_token_is_an_error_not_off(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text("# nothing yet\n\n")
    with pytest.raises(InvalidArgument, match="no token"):
        load_tokens(path)
    with pytest.raises(InvalidArgument, match=r"\$TUNING_TOKENS.*no token"):
        load_tokens(None, "# only a comment")


def test_an_unreadable_file_is_an_error(tmp_path: Path):
    with pytest.raises(InvalidArgument, match="cannot read it"):
        load_tokens(tmp_path / "missing")


@pytest.mark.parametrize(("line", "problem"), [
    (f"admin {SECRET}", "the role must be 'read' or 'write'"),
    (f"{SECRET} write", "the role must be 'read' or 'write'"),  # swapped: the "role" is the token
    (f"WRITE {SECRET}", "the role must be 'read' or 'write'"),
    ("write short-token", "at least 16 characters"),
    (f"write {SECRET} name group extra", "expected '<role> <token> \\[name \\[groups\\]\\]'"),
    (f"write {SECRET} name group,,other", "groups are names separated by single commas"),
    (SECRET, "expected '<role> <token> \\[name \\[groups\\]\\]'"),
    (f"write {SECRET}é", "printable ASCII"),
    (f"write {SECRET},{SECRET}", "printable ASCII"),
])
def test_a_malformed_line_names_its_number_never_the_token(line: str, problem: str, tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text(f"# header\nread {READ_TOKEN}\n\n{line}\n")
    with pytest.raises(InvalidArgument, match=f"line 4: (a token (has|is) )?{problem}") as caught:
        load_tokens(path)
    message = str(caught.value)
    assert str(path) in message
    assert SECRET not in message and READ_TOKEN not in message and "short-token" not in message


def test_a_malformed_entry_of_the_variable_names_the_entry():
    with pytest.raises(InvalidArgument, match=r"\$TUNING_TOKENS: entry 2: the role") as caught:
        load_tokens(None, f"read {READ_TOKEN}, owner {SECRET}")
    assert SECRET not in str(caught.value)


def test_a_token_twice_is_refused_without_echoing_it(tmp_path: Path):
    with pytest.raises(InvalidArgument, match="line 3: the same token as line 1") as caught:
        store(f"read {SECRET}\nwrite {WRITE_TOKEN}\nwrite {SECRET}")
    assert SECRET not in str(caught.value)
    path = tmp_path / "tokens"
    path.write_text(f"read {SECRET}\n")
    with pytest.raises(InvalidArgument, match="the same token is configured twice") as caught:
        load_tokens(path, f"write {SECRET}")
    assert SECRET not in str(caught.value)


def test_the_file_and_the_variable_add_up(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text(f"write {WRITE_TOKEN}\n")
    tokens = load_tokens(path, f"read {READ_TOKEN}")
    assert tokens.authenticate(WRITE_TOKEN).role == "write" and tokens.authenticate(READ_TOKEN).role == "read"


def test_only_digests_are_kept():
    tokens = store(f"write {SECRET}")
    assert SECRET not in repr(tokens) and SECRET not in repr(vars(tokens))
    assert repr(tokens) == "TokenStore(0 read, 1 write)"


def test_server_options_load_the_flag_and_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "tokens"
    path.write_text(f"write {WRITE_TOKEN}\n")
    monkeypatch.delenv("TUNING_TOKENS_FILE", raising=False)
    monkeypatch.setenv("TUNING_TOKENS", f"read {READ_TOKEN}")
    parser = argparse.ArgumentParser()
    add_server_options(parser, "suggestion", 50051, "sqlite://")
    options = server_options(parser.parse_args(["--tokens-file", str(path)]))
    assert len(options.tokens) == 2
    monkeypatch.setenv("TUNING_TOKENS_FILE", str(path))
    monkeypatch.delenv("TUNING_TOKENS")
    parser = argparse.ArgumentParser()
    add_server_options(parser, "tracking", 50052, "sqlite://")
    assert len(server_options(parser.parse_args([])).tokens) == 1
    monkeypatch.delenv("TUNING_TOKENS_FILE")
    parser = argparse.ArgumentParser()
    add_server_options(parser, "tracking", 50052, "sqlite://")
    assert server_options(parser.parse_args([])).tokens is None


def test_tokens_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "tokens"
    path.write_text(f"write {WRITE_TOKEN}\n")
    monkeypatch.delenv("TUNING_TOKENS", raising=False)
    monkeypatch.delenv("TUNING_TOKENS_FILE", raising=False)
    assert auth.tokens_from_environment() is None
    monkeypatch.setenv("TUNING_TOKENS_FILE", str(path))
    monkeypatch.setenv("TUNING_TOKENS", f"read {READ_TOKEN}")
    assert repr(auth.tokens_from_environment()) == "TokenStore(1 read, 1 write)"


# --- checking ---------------------------------------------------------------------------------


@pytest.fixture
def tokens() -> TokenStore:
    return store(f"write {WRITE_TOKEN} writer\nread {READ_TOKEN} reader")


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_header_is_token_missing(tokens: TokenStore, header):
    with pytest.raises(Unauthenticated) as caught:
        tokens.check(header, read_only=True)
    assert caught.value.reason == "TOKEN_MISSING" and caught.value.message == "missing or invalid bearer token"


@pytest.mark.parametrize("header", [
    f"Bearer {SECRET}", f"Basic {WRITE_TOKEN}", WRITE_TOKEN, "Bearer", "Bearer ", f"Bearer {WRITE_TOKEN}x",
    f"Bearer {WRITE_TOKEN[:-1]}", f"Bearer {WRITE_TOKEN}é", b"Bearer \xff",
])
def test_a_wrong_or_malformed_header_is_token_invalid(tokens: TokenStore, header):
    with pytest.raises(Unauthenticated) as caught:
        tokens.check(header, read_only=True)
    assert caught.value.reason == "TOKEN_INVALID" and caught.value.message == "missing or invalid bearer token"
    assert SECRET not in str(caught.value) and WRITE_TOKEN[:-1] not in str(caught.value)


def test_roles(tokens: TokenStore):
    assert tokens.check(f"Bearer {WRITE_TOKEN}", read_only=False).name == "writer"
    assert tokens.check(f"bearer  {WRITE_TOKEN} ", read_only=True).name == "writer"
    assert tokens.check(f"BEARER {READ_TOKEN}".encode(), read_only=True).name == "reader"
    with pytest.raises(PermissionDenied) as caught:
        tokens.check(f"Bearer {READ_TOKEN}", read_only=False)
    assert caught.value.reason == "READ_ONLY_TOKEN" and caught.value.message == "this token may only read"


def test_every_stored_digest_is_compared_in_constant_time(tokens: TokenStore, monkeypatch: pytest.MonkeyPatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for token in (WRITE_TOKEN, READ_TOKEN, SECRET):
        calls.clear()
        try:
            tokens.authenticate(token)
        except Unauthenticated:
            pass
        assert len(calls) == 2  # no early exit on a match
        assert all(len(a) == len(b) == 32 for a, b in calls)  # digests, not tokens


def test_the_client_interceptor_refuses_a_token_it_could_not_send():
    with pytest.raises(InvalidArgument) as caught:
        auth.BearerTokenInterceptor(f"{SECRET}\n")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(auth.BearerTokenInterceptor(SECRET))


def test_client_token_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TUNING_TOKEN", SECRET)
    assert auth.client_token() == SECRET and auth.client_token("other-token-123456") == "other-token-123456"
    assert auth.client_token("") is None
    monkeypatch.setenv("TUNING_TOKEN", "")
    assert auth.client_token() is None


# --- which RPCs only read ---------------------------------------------------------------------

# Decided one by one (the reasons are in the protos' comments); a new RPC fails
# test_every_rpc_is_classified until it is added here and, if it only reads, to auth.READ_ONLY_METHODS.
EXPECTED = {
    "tuning.suggestion.v1.SuggestionService": {
        "CreateStudy": "write", "GetStudy": "read", "ListStudies": "read", "SetStudyState": "write",
        "DeleteStudy": "write", "SuggestTrials": "write", "ReportIntermediate": "write", "LinkRun": "write",
        "Heartbeat": "write", "ReleaseTrial": "write", "CompleteTrial": "write", "CreateTrial": "write",
        "GetTrial": "read", "ListTrials": "read", "ListMeasurements": "read", "GetBestTrials": "read",
        "GetPopulation": "read", "GetParameterImportance": "read",
        "SetStudyPermission": "write", "DeleteStudyPermission": "write", "ListStudyPermissions": "read",
        "CreateStudyWebhook": "write", "GetStudyWebhook": "read", "ListStudyWebhooks": "read",
        "UpdateStudyWebhook": "write", "DeleteStudyWebhook": "write", "TestStudyWebhook": "write",
        "ListStudyWebhookDeliveries": "read",
    },
    "tuning.tracking.v1.TrackingService": {
        "CreateExperiment": "write", "GetExperiment": "read", "GetExperimentByName": "read",
        "SearchExperiments": "read", "RenameExperiment": "write", "SetExperimentTag": "write",
        "DeleteExperiment": "write", "RestoreExperiment": "write", "CreateRun": "write", "UpdateRun": "write",
        "GetRun": "read", "SearchRuns": "read", "DeleteRun": "write", "RestoreRun": "write", "LogBatch": "write",
        "LogMetric": "write", "LogParam": "write", "SetTag": "write", "DeleteTag": "write", "LogInputs": "write",
        "GetMetricHistory": "read", "UploadArtifact": "write", "DownloadArtifact": "read", "ListArtifacts": "read",
        "CreateLoggedModel": "write", "GetLoggedModel": "read", "FinalizeLoggedModel": "write",
        "DeleteLoggedModel": "write", "SetLoggedModelTags": "write", "DeleteLoggedModelTag": "write",
        "GetArtifactDownloadUrl": "read",
        "LogLoggedModelParams": "write", "LogLoggedModelMetrics": "write", "SearchLoggedModels": "read",
        "SetExperimentPermission": "write", "DeleteExperimentPermission": "write",
        "ListExperimentPermissions": "read",
    },
    "tuning.tracking.v1.ModelRegistryService": {
        "CreateRegisteredModel": "write", "GetRegisteredModel": "read", "SearchRegisteredModels": "read",
        "RenameRegisteredModel": "write", "UpdateRegisteredModel": "write", "SetRegisteredModelTag": "write",
        "DeleteRegisteredModelTag": "write", "DeleteRegisteredModel": "write", "CreateModelVersion": "write",
        "GetModelVersion": "read", "SearchModelVersions": "read", "UpdateModelVersion": "write",
        "SetModelVersionTag": "write", "DeleteModelVersionTag": "write", "DeleteModelVersion": "write",
        "TransitionModelVersionStage": "write", "SetRegisteredModelAlias": "write",
        "DeleteRegisteredModelAlias": "write", "GetModelVersionByAlias": "read",
        "GetModelVersionDownloadUri": "read", "ListRegistryEvents": "read",
        "CreateWebhook": "write", "GetWebhook": "read", "ListWebhooks": "read", "UpdateWebhook": "write",
        "DeleteWebhook": "write", "TestWebhook": "write", "ListWebhookDeliveries": "read",
        "SetRegisteredModelPermission": "write", "DeleteRegisteredModelPermission": "write",
        "ListRegisteredModelPermissions": "read",
    },
}

SERVICES = [
    suggestion_service_pb2.DESCRIPTOR.services_by_name["SuggestionService"],
    tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"],
    registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"],
]


def all_methods() -> list[str]:
    return [f"/{service.full_name}/{method.name}" for service in SERVICES for method in service.methods]


def test_every_rpc_is_classified():
    assert {service.full_name for service in SERVICES} == set(EXPECTED)
    for service in SERVICES:
        assert {method.name for method in service.methods} == set(EXPECTED[service.full_name]), service.full_name
    for method in all_methods():
        service, name = method[1:].split("/")
        assert is_read_only(method) == (EXPECTED[service][name] == "read"), method
        assert is_read_only(method[1:]) == is_read_only(method)
        assert not is_open(method)


def test_the_read_only_table_names_only_real_rpcs():
    assert auth.READ_ONLY_METHODS <= set(all_methods())


def test_unknown_methods_need_a_write_token_and_probes_none():
    assert not is_read_only("/tuning.suggestion.v1.SuggestionService/GetStudyAndDeleteIt")
    assert not is_read_only("/some.Other/GetThing")
    assert is_open("/grpc.health.v1.Health/Check") and is_open("/grpc.health.v1.Health/Watch")
    assert is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not is_open("/grpc.health.v1.HealthX/Check")
