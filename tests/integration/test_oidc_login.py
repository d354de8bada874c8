"""The dashboard's single sign-on over HTTP (httpx, as a browser without scripts): the gateway's
"Sign in with ..." link, the real OpenID provider's login and consent pages (oidc-provider, run
with Node), the callback; then the session cookie carries the ID token, which the gateway and both
services check, with the usual CSRF rule. A forged or stale state is refused, the session ends
with the ID token's expiry, and logging out ends it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from gateway.session import decode_cookie
from tests.oidc_provider import CLIENT_ID, Clock, SsoSuite, log_in, sso_suite
from trial_worker.tracking import TrackingClient
from tuning_common.auth import TokenStore
from tuning_common.errors import NotFound
from tuning_common.oidc import LEEWAY_SECONDS, JwtVerifier, OidcProvider

pytestmark = pytest.mark.timeout(300)

READ_TOKEN = "sso-static-read-token-0123456789"
STATIC = TokenStore.parse(f"read {READ_TOKEN} viewer\n", "test")


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[SsoSuite]:
    with sso_suite(tmp_path_factory.mktemp("sso"), STATIC, clock) as suite:
        yield suite


def sign_in(world: SsoSuite, http: httpx.Client, login: str, next_path: str = "/ui/studies") -> httpx.Response:
    """Signs in from the login page's link; returns the gateway's last answer (the redirect to ``next``)."""
    page = http.get("/ui/login", params={"next": next_path})
    link = re.search(r'<a class="button" id="sso-login" href="([^"]+)">Sign in with Test ID</a>', page.text)
    assert link, page.text
    return log_in(http, world.url + link.group(1).replace("&amp;", "&"), login, stop_at=world.url + next_path)


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def experiment_exists(world: SsoSuite, name: str) -> bool:
    with TrackingClient(world.tracking, token=READ_TOKEN) as client:
        try:
            client.get_experiment_by_name(name)
        except NotFound:
            return False
    return True


def test_signing_in_lands_on_the_page_asked_for_with_a_session_the_services_accept(world: SsoSuite):
    with httpx.Client(base_url=world.url, timeout=30) as http:
        landed = sign_in(world, http, "alice")
        assert landed.status_code == 303 and landed.headers["location"] == "/ui/studies"
        cookie = next(v for k, v in landed.headers.multi_items() if k == "set-cookie" and "tuning-session=" in v)
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))
        assert 0 < max_age <= 3600  # the ID token's lifetime, not the 8 hours of --session-hours
        page = http.get("/ui/studies")
        assert page.status_code == 200 and "alice@example.test" in page.text
        # The cookie's token is the provider's ID token for this client, with the user's groups.
        id_token = decode_cookie(http.cookies["tuning-session"])
        principal = JwtVerifier(OidcProvider(world.provider.issuer), [CLIENT_ID], username_claim="email") \
            .authenticate(id_token)
        assert principal.name == "alice@example.test" and principal.groups == {"ml-team", "admins"}

        refused = http.post("/v1/experiments", json={"name": "sso-without-csrf"}, headers={"origin": world.url})
        assert refused.status_code == 403 and refused.json()["error"]["reason"] == "CSRF_TOKEN_INVALID"
        made = http.post("/v1/experiments", json={"name": "sso-experiment"},
                         headers={"origin": world.url, "x-csrf-token": csrf_of(page)})
        assert made.status_code == 200, made.text
    assert experiment_exists(world, "sso-experiment") and not experiment_exists(world, "sso-without-csrf")


def test_the_state_must_be_this_browsers(world: SsoSuite):
    with httpx.Client(base_url=world.url, timeout=30) as http:
        started = http.get("/ui/login/sso", params={"next": "/ui/studies"})
        assert started.status_code == 303
        authorize = urllib.parse.urlsplit(started.headers["location"])
        query = urllib.parse.parse_qs(authorize.query)
        assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT_ID]
        assert query["redirect_uri"] == [world.url + "/ui/login/callback"] and query["nonce"]
        # The provider's answer to another browser's login (or a forged one) does not sign this one in.
        forged = http.get("/ui/login/callback", params={"code": "stolen", "state": "not-this-one"})
        assert forged.status_code == 400 and "sign in again" in forged.text
        assert "tuning-session" not in http.cookies
        # The provider refusing (the user cancelled): the login page says so.
        started = http.get("/ui/login/sso")
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(started.headers["location"]).query)["state"][0]
        cancelled = http.get("/ui/login/callback", params={"error": "access_denied", "state": state})
        assert cancelled.status_code == 401 and "access_denied" in cancelled.text
        # A state cookie whose signature does not hold.
        http.get("/ui/login/sso")
        http.cookies.set("tuning-sso", "e30." + "A" * 43)
        tampered = http.get("/ui/login/callback", params={"code": "x", "state": state})
        assert tampered.status_code == 400


def test_the_session_ends_when_the_id_token_expires_and_on_logging_out(world: SsoSuite, clock: Clock):
    with httpx.Client(base_url=world.url, timeout=30) as http:
        sign_in(world, http, "bob")
        page = http.get("/ui/studies")
        assert page.status_code == 200 and "bob@example.test" in page.text
        clock.shift = 3600 + LEEWAY_SECONDS + 5
        try:
            expired = http.get("/ui/studies")
        finally:
            clock.shift = 0.0
        assert expired.status_code == 303 and expired.headers["location"].startswith("/ui/login?next=")
        assert "tuning-session" not in http.cookies  # forgotten

        sign_in(world, http, "bob")
        page = http.get("/ui/studies")
        assert page.status_code == 200
        out = http.post("/ui/logout", data={"csrf_token": csrf_of(page)}, headers={"origin": world.url})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert http.get("/ui/studies").status_code == 303


def test_the_login_page_offers_the_provider_and_still_takes_static_tokens(world: SsoSuite):
    with httpx.Client(base_url=world.url, timeout=30) as http:
        page = http.get("/ui/login")
        assert "Sign in with Test ID" in page.text and 'id="token"' in page.text
        logged_in = http.post("/ui/login", data={"token": READ_TOKEN, "next": "/ui/studies"},
                              headers={"origin": world.url})
        assert logged_in.status_code == 303
        assert "viewer" in http.get("/ui/studies").text
