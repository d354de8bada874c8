"""What of OpenID Connect needs no provider: which tokens go to the JWT verifier, the settings'
errors, the URL rule, and the dashboard sign-in's signed state cookie."""

from __future__ import annotations

import argparse
import time

import pytest

from gateway.dashboard.sso import STATE_SECONDS, SingleSignOn, SsoSettings
from gateway.server import build_parser, options_from
from tuning_common.auth import Authenticator, BearerChecks, Principal, TokenStore, looks_like_jwt
from tuning_common.errors import InvalidArgument, Unauthenticated
from tuning_common.oidc import JwtVerifier, OidcProvider, add_oidc_options, check_url, verifier_from

STATIC = "static-write-token-0123456789"
JWT_SHAPED = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


class Recording(BearerChecks):
    """A verifier that says who it was asked about (the routing is under test, not JWTs)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def authenticate(self, token):
        self.asked.append(token)
        return Principal("jwt-user", "write", frozenset({"team"}))


def test_jwt_shape():
    assert looks_like_jwt(JWT_SHAPED) and looks_like_jwt("a.b.")  # unsigned: refused later, with its reason
    for token in (STATIC, "a.b", "a.b.c.d", ".b.c", "a b.c.d", "a.b.c="):
        assert not looks_like_jwt(token), token


def test_static_tokens_first_and_only_jwt_shaped_tokens_reach_the_verifier():
    verifier = Recording()
    both = Authenticator(TokenStore([("write", STATIC, "ci")]), verifier)
    assert both.authenticate(STATIC) == Principal("ci", "write")
    assert Principal("ci", "write").groups == frozenset()
    with pytest.raises(Unauthenticated) as caught:
        both.authenticate(STATIC + "x")
    assert caught.value.reason == "TOKEN_INVALID" and verifier.asked == []
    assert both.authenticate(JWT_SHAPED).groups == frozenset({"team"}) and verifier.asked == [JWT_SHAPED]
    with pytest.raises(Unauthenticated) as caught:
        both.authenticate(None)
    assert caught.value.reason == "TOKEN_MISSING"
    assert Authenticator(None, verifier).check(f"Bearer {JWT_SHAPED}", read_only=False).name == "jwt-user"
    with pytest.raises(Unauthenticated):
        Authenticator(None, verifier).authenticate(STATIC)
    with pytest.raises(ValueError):
        Authenticator(None, None)


@pytest.mark.parametrize("url", ["https://login.example.com/realms/x", "http://127.0.0.1:8080", "http://localhost",
                                 "http://[::1]:9000"])
def test_issuers_are_https_or_loopback(url):
    assert check_url(url, "--oidc-issuer") == url


@pytest.mark.parametrize("url", ["http://login.example.com", "ftp://127.0.0.1", "login.example.com", "https://"])
def test_other_issuers_are_refused_naming_the_setting(url):
    with pytest.raises(InvalidArgument, match="--oidc-issuer"):
        check_url(url, "--oidc-issuer")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_oidc_options(parser)
    return parser.parse_args(list(argv))


def test_oidc_settings_are_off_by_default_and_checked_when_given(monkeypatch):
    for name in ("TUNING_OIDC_ISSUER", "TUNING_OIDC_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    assert verifier_from(_args()) is None
    with pytest.raises(InvalidArgument, match="--oidc-audience.*needs --oidc-issuer"):
        verifier_from(_args("--oidc-audience", "x"))
    with pytest.raises(InvalidArgument, match="--oidc-audience"):
        verifier_from(_args("--oidc-issuer", "https://login.example.com"))
    with pytest.raises(InvalidArgument, match="--oidc-username-claim"):
        verifier_from(_args("--oidc-issuer", "https://login.example.com", "--oidc-audience", "a",
                            "--oidc-username-claim", " "))
    monkeypatch.setenv("TUNING_OIDC_AUDIENCE", "from-the-environment")
    assert _args().oidc_audience == "from-the-environment"


def _gateway_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_the_gateways_client_needs_an_issuer_and_a_secret(tmp_path, monkeypatch):
    for name in ("TUNING_OIDC_ISSUER", "TUNING_OIDC_AUDIENCE", "TUNING_OIDC_CLIENT_ID", "TUNING_OIDC_CLIENT_SECRET",
                 "TUNING_OIDC_CLIENT_SECRET_FILE", "TUNING_TOKENS", "TUNING_TOKENS_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert options_from(_gateway_args()).sso is None
    with pytest.raises(InvalidArgument, match="--oidc-client-id.*needs --oidc-issuer"):
        options_from(_gateway_args("--oidc-client-id", "dashboard"))
    with pytest.raises(InvalidArgument, match="--oidc-client-secret-file"):
        options_from(_gateway_args("--oidc-client-secret-file", str(tmp_path / "missing"), "--oidc-issuer",
                                   "http://127.0.0.1:9", "--oidc-client-id", "dashboard"))
    # A provider that cannot be reached at start is not an error (its JWTs wait for it).
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-the-file\n")
    options = options_from(_gateway_args("--oidc-issuer", "http://127.0.0.1:9", "--oidc-audience", "urn:api",
                                         "--oidc-client-id", "dashboard", "--oidc-client-secret-file", str(secret_file)))
    assert options.sso.client_secret == "from-the-file" and options.sso.client_id == "dashboard"
    assert options.tokens.verifier.audiences == ("urn:api", "dashboard") and options.tokens.tokens is None
    monkeypatch.setenv("TUNING_OIDC_CLIENT_SECRET", "from-the-environment")
    options = options_from(_gateway_args("--oidc-issuer", "http://127.0.0.1:9", "--oidc-client-id", "dashboard"))
    assert options.sso.client_secret == "from-the-environment" and options.tokens.verifier.audiences == ("dashboard",)


def _sso() -> SingleSignOn:
    verifier = JwtVerifier(OidcProvider("https://login.example.com"), ["dashboard"])
    return SingleSignOn(SsoSettings(verifier, "dashboard", "client-secret-0123456789"), None, None, 3600)


def test_the_sign_in_state_cookie_is_signed_and_short_lived(monkeypatch):
    sso = _sso()
    state = {"state": "s", "nonce": "n", "verifier": "v", "next": "/ui/", "at": time.time()}
    sealed = sso._seal(state)
    assert sso._open(sealed) == state
    payload, signature = sealed.split(".")
    assert sso._open(payload + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B")) is None
    assert sso._open(sso._seal({**state, "next": "https://evil.example"})[:-2] + signature[-2:]) is None
    other = SingleSignOn(SsoSettings(sso.settings.verifier, "dashboard", "another-secret-0123456789"), None, None, 60)
    assert other._open(sealed) is None  # a key derived from another client secret
    assert sso._open(sso._seal({**state, "at": time.time() - STATE_SECONDS - 1})) is None
    for junk in (None, "", "a.b.c", "not-base64!.x"):
        assert sso._open(junk) is None


def test_sso_settings_are_checked():
    verifier = JwtVerifier(OidcProvider("https://login.example.com"), ["dashboard"])
    with pytest.raises(InvalidArgument, match="--oidc-client-secret"):
        SsoSettings(verifier, "dashboard", "")
    with pytest.raises(InvalidArgument, match="--oidc-scopes"):
        SsoSettings(verifier, "dashboard", "secret", scopes="email")
    with pytest.raises(InvalidArgument, match="--public-url"):
        SsoSettings(verifier, "dashboard", "secret", public_url="http://tuning.example.com")
    assert SsoSettings(verifier, "dashboard", "secret").name == "login.example.com"
    assert "secret" not in repr(SsoSettings(verifier, "dashboard", "secret"))
