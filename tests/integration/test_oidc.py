"""Bearer JWTs of a real OpenID provider (oidc-provider from npm, run with Node: tests/oidc_provider.py)
against real suggestion and tracking servers (port 0) and a real gateway: tokens signed with RS256,
ES256 and PS256 are accepted over gRPC by both services and over HTTP through the gateway, beside
the static tokens; expired tokens, other audiences, other issuers, tampered signatures, ``alg:
none`` and HS256 made with the provider's public key are refused with their reason; a rotated
signing key is picked up without a restart and a removed one stops being accepted; a flood of
unknown key ids costs the provider no extra request; an unreachable provider and a wrong issuer
setting behave as documented.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import tuning_common.oidc
from gateway.session import encode_cookie
from suggestion_service.server import serve as serve_suggestion
from tests.oidc_provider import API, CLIENT_ID, OTHER_API, PLACEHOLDER_REDIRECT, Clock, NodeProvider, ec_key, rsa_key
from tracking_service.server import serve as serve_tracking
from trial_worker import Float, SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning_common.access import Admins
from tuning_common.auth import Authenticator, TokenStore
from tuning_common.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from tuning_common.grpc_errors import error_from_rpc
from tuning_common.grpc_server import RoleSettings, ServerOptions, add_server_options, server_options
from tuning_common.oidc import JwtVerifier, OidcProvider

pytestmark = pytest.mark.timeout(300)

WRITE_TOKEN = "oidc-static-write-token-0123456789"
READ_TOKEN = "oidc-static-read-token-0123456789"
STATIC = TokenStore.parse(f"write {WRITE_TOKEN} ci\nread {READ_TOKEN} viewer\n", "test")


@dataclass
class World:
    provider: NodeProvider
    suggestion: str
    tracking: str
    clock: Clock


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("oidc")
    provider = NodeProvider(folder, [rsa_key("rsa-1"), ec_key("ec-1")], [PLACEHOLDER_REDIRECT])
    clock = Clock()
    verifier = JwtVerifier(OidcProvider(provider.issuer), [API, CLIENT_ID], clock=clock)
    options = ServerOptions(port=0, grace_seconds=1, tokens=Authenticator(STATIC, verifier))
    suggestion = serve_suggestion(f"sqlite:///{folder / 'suggestion.db'}", options)
    tracking = serve_tracking(f"sqlite:///{folder / 'tracking.db'}", str(folder / "artifacts"), options)
    try:
        yield World(provider, suggestion.address, tracking.address, clock)
    finally:
        suggestion.stop()
        tracking.stop()
        provider.stop()


def refusal(address: str, token: str) -> tuning_common.errors.TuningError:
    """The error of a write (CreateStudy) with ``token`` on the suggestion service."""
    with SuggestionClient(address, token=token) as client, pytest.raises((Unauthenticated, PermissionDenied,
                                                                           Unavailable)) as caught:
        client.create_study(f"refused-{time.monotonic_ns()}", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
    return caught.value


def _segments(token: str) -> list[str]:
    return token.split(".")


def _encode(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")


def _decode(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@pytest.mark.parametrize("resource", [API, API + ":es256", API + ":ps256"], ids=["RS256", "ES256", "PS256"])
def test_a_jwt_of_the_provider_writes_to_both_services(world: World, resource: str):
    token = world.provider.token(resource)
    assert jwt.get_unverified_header(token)["alg"] == (resource.rpartition(":")[2].upper() if resource != API
                                                       else "RS256")
    name = f"jwt-study-{resource.rpartition(':')[2]}"
    with SuggestionClient(world.suggestion, token=token) as client:
        client.create_study(name, [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
        assert client.get_study(name).name == name
    with TrackingClient(world.tracking, token=token) as client:
        experiment = client.create_experiment(name)
        assert client.get_experiment(experiment.id).name == name


def test_static_tokens_work_beside_jwts(world: World):
    with SuggestionClient(world.suggestion, token=WRITE_TOKEN) as client:
        client.create_study("static-study", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
    with SuggestionClient(world.suggestion, token=READ_TOKEN) as client:
        assert client.get_study("static-study").name == "static-study"
    error = refusal(world.suggestion, READ_TOKEN)
    assert isinstance(error, PermissionDenied) and error.reason == "READ_ONLY_TOKEN"
    error = refusal(world.suggestion, WRITE_TOKEN[:-1] + "X")
    assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_INVALID"


def test_an_expired_jwt_is_refused(world: World):
    token = world.provider.token()
    with SuggestionClient(world.suggestion, token=token) as client:  # verified once: its signature is cached
        list(client.list_studies())
    expiry = _decode(_segments(token)[1])["exp"]
    world.clock.shift = expiry - time.time() + tuning_common.oidc.LEEWAY_SECONDS + 5
    try:
        error = refusal(world.suggestion, token)
        tracking_error = None
        with TrackingClient(world.tracking, token=token) as client:
            try:
                client.create_experiment("expired")
            except Unauthenticated as caught:
                tracking_error = caught
    finally:
        world.clock.shift = 0.0
    assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_EXPIRED"
    assert tracking_error is not None and tracking_error.reason == "TOKEN_EXPIRED"
    assert token not in error.message
    with SuggestionClient(world.suggestion, token=token) as client:  # the same token, in its lifetime
        list(client.list_studies())


def test_a_jwt_for_another_audience_is_refused(world: World):
    error = refusal(world.suggestion, world.provider.token(OTHER_API))
    assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_WRONG_AUDIENCE"


def test_a_jwt_of_another_issuer_is_refused_though_signed_by_the_same_key(world: World, tmp_path):
    other = NodeProvider(tmp_path, world.provider.keys, [PLACEHOLDER_REDIRECT])
    try:
        token = other.token()
    finally:
        other.stop()
    assert jwt.get_unverified_header(token)["kid"] == "rsa-1"
    error = refusal(world.suggestion, token)
    assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_WRONG_ISSUER"


def test_a_tampered_jwt_is_refused(world: World):
    header, payload, signature = _segments(world.provider.token())
    claims = _decode(payload)
    forged = _encode({**claims, "sub": "someone-else"})
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    for token in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{flipped}"):
        error = refusal(world.suggestion, token)
        assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_INVALID"


def test_unsigned_and_hmac_jwts_are_refused(world: World):
    header, payload, _ = _segments(world.provider.token())
    kid = _decode(header)["kid"]
    unsigned = f"{_encode({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{payload}."
    # The classic confusion: HS256 "signed" with the provider's public key as the secret.
    public = httpx.get(f"{world.provider.issuer}/jwks").json()["keys"][0]
    secret = json.dumps(public).encode()
    hmac_header = _encode({"alg": "HS256", "typ": "JWT", "kid": kid})
    signing_input = f"{hmac_header}.{payload}".encode()
    import hashlib
    import hmac

    mac = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).decode().rstrip("=")
    for token in (unsigned, f"{hmac_header}.{payload}.{mac}"):
        error = refusal(world.suggestion, token)
        assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_INVALID"
        assert "algorithm" in error.message


def test_the_principal_is_named_by_the_configured_claims(world: World):
    token = world.provider.token()
    principal = JwtVerifier(OidcProvider(world.provider.issuer), [API]).authenticate(token)
    assert (principal.name, principal.role, principal.groups) == (CLIENT_ID, "write", frozenset({"machines"}))
    by_client = JwtVerifier(OidcProvider(world.provider.issuer), [API], username_claim="client_id",
                            groups_claim="scope")
    assert by_client.authenticate(token).groups == frozenset({"api"})
    with pytest.raises(Unauthenticated, match="'email' claim"):
        JwtVerifier(OidcProvider(world.provider.issuer), [API], username_claim="email").authenticate(token)


def test_writer_groups_leave_other_jwts_read_only(world: World, tmp_path):
    token = world.provider.token()  # groups: machines
    readers = JwtVerifier(OidcProvider(world.provider.issuer), [API], writer_groups=["admins"])
    options = ServerOptions(port=0, grace_seconds=1, tokens=Authenticator(None, readers))
    server = serve_suggestion(f"sqlite:///{tmp_path / 'suggestion.db'}", options)
    try:
        with SuggestionClient(server.address, token=token) as client:
            assert list(client.list_studies()) == []
        error = refusal(server.address, token)
        assert isinstance(error, PermissionDenied) and error.reason == "READ_ONLY_TOKEN"
    finally:
        server.stop()
    writers = JwtVerifier(OidcProvider(world.provider.issuer), [API], writer_groups=["admins", "machines"])
    assert writers.authenticate(token).can_write


def test_a_rotated_key_is_taken_without_restart_and_a_removed_one_is_refused(tmp_path):
    provider = NodeProvider(tmp_path, [rsa_key("old")], [PLACEHOLDER_REDIRECT])
    key_clock = [0.0]
    keys = OidcProvider(provider.issuer, min_refresh=0, max_key_age=600, clock=lambda: key_clock[0])
    options = ServerOptions(port=0, grace_seconds=1, tokens=Authenticator(None, JwtVerifier(keys, [API])))
    server = serve_suggestion(f"sqlite:///{tmp_path / 'suggestion.db'}", options)
    try:
        old = provider.token()
        with SuggestionClient(server.address, token=old) as client:
            client.create_study("rotation", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})

        provider.reconfigure(keys=[rsa_key("new"), *provider.keys])  # the new key signs, both are published
        new = provider.token()
        assert jwt.get_unverified_header(new)["kid"] == "new"
        with SuggestionClient(server.address, token=new) as client:
            assert client.get_study("rotation").name == "rotation"
        with SuggestionClient(server.address, token=old) as client:
            assert client.get_study("rotation").name == "rotation"

        provider.reconfigure(keys=[provider.keys[0]])  # the old key withdrawn
        key_clock[0] = 601.0  # the cached keys are older than max_key_age: fetched again on the next call
        error = refusal(server.address, old)
        assert isinstance(error, Unauthenticated) and error.reason == "TOKEN_INVALID"
        with SuggestionClient(server.address, token=new) as client:
            assert client.get_study("rotation").name == "rotation"
    finally:
        server.stop()
        provider.stop()


def test_unknown_key_ids_are_fetched_for_at_most_once_per_interval(world: World, monkeypatch):
    fetches = []
    real_fetch = tuning_common.oidc.fetch_json

    def counting_fetch(url, **kwargs):
        fetches.append(url)
        return real_fetch(url, **kwargs)

    monkeypatch.setattr(tuning_common.oidc, "fetch_json", counting_fetch)
    verifier = JwtVerifier(OidcProvider(world.provider.issuer, min_refresh=3600), [API])
    verifier.authenticate(world.provider.token())
    assert [url.rpartition("/")[2] for url in fetches] == ["openid-configuration", "jwks"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = _decode(_segments(world.provider.token())[1])
    for number in range(50):
        bogus = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": f"bogus-{number}"})
        with pytest.raises(Unauthenticated) as caught:
            verifier.authenticate(bogus)
        assert caught.value.reason == "TOKEN_INVALID"
    assert len(fetches) == 2


def test_an_unreachable_provider_refuses_jwts_as_unavailable_and_static_tokens_still_work(world: World, tmp_path):
    gone = NodeProvider(tmp_path, [rsa_key("gone")], [PLACEHOLDER_REDIRECT])
    issuer = gone.issuer
    token = gone.token()
    gone.stop()
    keys = OidcProvider(issuer, timeout=2)
    keys.check_at_start()  # a warning, not an error
    options = ServerOptions(port=0, grace_seconds=1, tokens=Authenticator(STATIC, JwtVerifier(keys, [API])))
    server = serve_suggestion(f"sqlite:///{tmp_path / 'suggestion.db'}", options)
    try:
        error = refusal(server.address, token)
        assert isinstance(error, Unavailable) and error.reason == "OIDC_PROVIDER_UNAVAILABLE"
        with SuggestionClient(server.address, token=WRITE_TOKEN) as client:
            client.create_study("still-static", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
        from gateway.server import GatewayOptions, serve

        gateway = serve(GatewayOptions(suggestion_address=server.address, tokens=options.tokens))
        try:
            refused = httpx.get(f"{gateway.url}/v1/studies", headers={"authorization": f"Bearer {token}"})
            assert refused.status_code == 503 and refused.json()["error"]["reason"] == "OIDC_PROVIDER_UNAVAILABLE"
            page = httpx.get(f"{gateway.url}/ui/studies", cookies={"tuning-session": encode_cookie(token)})
            assert page.status_code == 503  # not sent to the login page, its session not forgotten
            assert "set-cookie" not in page.headers
            static = httpx.get(f"{gateway.url}/v1/studies", headers={"authorization": f"Bearer {WRITE_TOKEN}"})
            assert static.status_code == 200 and "still-static" in static.text
        finally:
            gateway.stop()
    finally:
        server.stop()


def _server_args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    add_server_options(parser, "suggestion", 0, "sqlite:///unused.db")
    return parser.parse_args(list(argv))


def test_the_settings_check_the_issuer_and_need_an_audience(world: World, monkeypatch):
    for name in ("TUNING_TOKENS", "TUNING_TOKENS_FILE"):
        monkeypatch.delenv(name, raising=False)
    options = server_options(_server_args("--oidc-issuer", world.provider.issuer, "--oidc-audience",
                                          f"{API}, {CLIENT_ID}", "--oidc-username-claim", "client_id"))
    assert options.tokens.verifier.audiences == (API, CLIENT_ID)
    assert options.tokens.authenticate(world.provider.token()).name == CLIENT_ID
    with pytest.raises(InvalidArgument, match="--oidc-issuer.*issuer exactly"):
        server_options(_server_args("--oidc-issuer", world.provider.issuer + "/", "--oidc-audience", API))
    with pytest.raises(InvalidArgument, match="--oidc-audience"):
        server_options(_server_args("--oidc-issuer", world.provider.issuer))
    with pytest.raises(InvalidArgument, match="--oidc-issuer"):
        server_options(_server_args("--oidc-issuer", "http://provider.example", "--oidc-audience", API))


def test_a_jwt_through_the_gateway_reaches_the_services_which_check_it_too(world: World):
    from gateway.server import GatewayOptions, serve

    verifier = JwtVerifier(OidcProvider(world.provider.issuer), [API, CLIENT_ID])
    gateway = serve(GatewayOptions(suggestion_address=world.suggestion, tracking_address=world.tracking,
                                   tokens=Authenticator(STATIC, verifier)))
    try:
        token = world.provider.token()
        headers = {"authorization": f"Bearer {token}"}
        answer = httpx.post(f"{gateway.url}/v1/experiments", json={"name": "through-the-gateway"}, headers=headers)
        assert answer.status_code == 200, answer.text
        listed = httpx.get(f"{gateway.url}/v1/experiments", headers=headers)
        assert listed.status_code == 200 and "through-the-gateway" in listed.text
        other = httpx.get(f"{gateway.url}/v1/studies", headers={"authorization": f"Bearer {world.provider.token(OTHER_API)}"})
        assert other.status_code == 401 and other.json()["error"]["reason"] == "TOKEN_WRONG_AUDIENCE"
        assert token not in other.text
        static = httpx.get(f"{gateway.url}/v1/studies", headers={"authorization": f"Bearer {READ_TOKEN}"})
        assert static.status_code == 200
    finally:
        gateway.stop()


def test_grpc_status_of_a_refused_jwt(world: World):
    with grpc.insecure_channel(world.tracking) as channel:
        from tuning.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc

        stub = tracking_service_pb2_grpc.TrackingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SearchExperiments(tracking_service_pb2.SearchExperimentsRequest(),
                                   metadata=[("authorization", f"Bearer {world.provider.token(OTHER_API)}")])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_from_rpc(caught.value).reason == "TOKEN_WRONG_AUDIENCE"


def test_roles_follow_the_jwt_name_and_groups(world: World, tmp_path):
    """With roles on (tests/integration/test_roles.py has the rest): a JWT's user and its groups
    claim are the subjects roles are given to."""
    token = world.provider.token()  # named CLIENT_ID, in group "machines"
    verifier = JwtVerifier(OidcProvider(world.provider.issuer), [API])
    options = ServerOptions(port=0, grace_seconds=1, tokens=Authenticator(STATIC, verifier),
                            roles=RoleSettings(Admins()))
    server = serve_suggestion(f"sqlite:///{tmp_path / 'suggestion.db'}", options, model_workers=0)
    try:
        with SuggestionClient(server.address, token=WRITE_TOKEN) as ci, \
                SuggestionClient(server.address, token=token) as machine:
            ci.create_study("ci-study", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
            with pytest.raises(PermissionDenied, match="reader role on study 'ci-study'"):
                machine.get_study("ci-study")
            ci.set_study_permission("ci-study", "group:machines", "reader")
            assert machine.get_study("ci-study").name == "ci-study"
            machine.create_study("machine-study", [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
            assert [(p.subject, p.role) for p in machine.list_study_permissions("machine-study")] == [
                (f"user:{CLIENT_ID}", "manager")]
            assert [study.name for study in machine.list_studies()] == ["ci-study", "machine-study"]
    finally:
        server.stop()
