"""The Guard's dashboard sessions over HTTP (httpx against a real gateway on port 0, with tokens and
no services behind it, so what gets past the Guard is "unavailable", 503): pages redirect to the
login page, API clients keep the 401, a cookie session reads freely and writes only with the CSRF
token, from this gateway's own origin, and within its token's role; login and logout."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway import session
from gateway.server import GatewayOptions, RunningGateway, build_app, serve
from tuning_common.auth import READ_ONLY_MESSAGE, TokenStore

WRITE = "write-token-0123456789abcdef"
READ = 'read"token;with\\odd_chars-0123456789'  # characters a cookie value cannot hold as they are
TOKENS = f"write {WRITE} ci\nread {READ} viewer\n"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    running = serve(GatewayOptions(suggestion_address="127.0.0.1:1", tracking_address="127.0.0.1:1",
                                   tokens=TokenStore.parse(TOKENS, "test")))
    yield running
    running.stop()


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30, follow_redirects=False) as http:
        yield http


def cookie(token: str) -> dict[str, str]:
    return {"cookie": f"tuning-session={session.encode_cookie(token)}"}


def csrf(token: str) -> dict[str, str]:
    return {**cookie(token), session.CSRF_HEADER: session.csrf_token(token)}


def reason(response) -> str:
    body = response.json()
    return body["error"]["reason"] if "error" in body else body["error_code"]


def test_a_page_without_a_session_redirects_to_the_login_page(client: httpx.Client):
    answer = client.get("/ui/studies/x?refresh=3")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fstudies%2Fx%3Frefresh%3D3"
    assert "set-cookie" not in answer.headers
    # A stale cookie (its token was removed) is forgotten on the way.
    stale = client.get("/ui/studies", headers=cookie("removed-token-0123456789"))
    assert stale.status_code == 303 and "Max-Age=0" in stale.headers["set-cookie"]
    assert client.get("/", headers={}).headers["location"] == "/ui/login?next=%2F"


def test_api_clients_keep_the_401(client: httpx.Client):
    for path in ("/v1/studies", "/ui/api/studies/x", "/api/2.0/mlflow/experiments/search"):
        answer = client.get(path)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer"), path
    # A page asked with an Authorization header: that header decides, as for any API client.
    answer = client.get("/ui/studies", headers={"authorization": "Bearer wrong-token-0123456789"})
    assert answer.status_code == 401 and reason(answer) == "TOKEN_INVALID"
    answer = client.get("/ui/studies", headers={"authorization": "Bearer wrong-token-0123456789", **cookie(WRITE)})
    assert answer.status_code == 401  # the header wins over a good cookie


def test_a_cookie_session_reads_without_csrf_and_writes_with_it(client: httpx.Client):
    assert client.get("/v1/studies", headers=cookie(READ)).status_code == 503  # past the Guard
    assert client.get("/ui/studies", headers=cookie(READ)).status_code == 503
    for method, path in (("POST", "/v1/experiments"), ("PATCH", "/v1/runs/x"), ("DELETE", "/v1/studies/x"),
                         ("PUT", "/v1/registered-models/m/aliases/a"), ("POST", "/v1/runs:search"),
                         ("POST", "/api/2.0/mlflow/experiments/create"), ("POST", "/ui/studies"),
                         ("POST", "/no-such-page")):
        for headers in (cookie(WRITE), {**cookie(WRITE), session.CSRF_HEADER: session.csrf_token(READ)},
                        {**cookie(WRITE), session.CSRF_HEADER: WRITE}):
            answer = client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 403, (method, path, answer.text)
            assert reason(answer) in ("CSRF_TOKEN_INVALID", "PERMISSION_DENIED"), answer.text
            assert "missing or invalid CSRF token" in answer.text
            assert WRITE not in answer.text
        answer = client.request(method, path, json={}, headers=csrf(WRITE))
        assert answer.status_code not in (401, 403), (method, path, answer.text)


def test_a_read_only_session_gets_the_read_only_refusal(client: httpx.Client):
    answer = client.post("/v1/experiments", json={"name": "x"}, headers=csrf(READ))
    assert answer.status_code == 403 and answer.json()["error"]["message"] == READ_ONLY_MESSAGE
    assert client.post("/v1/runs:search", json={}, headers=csrf(READ)).status_code == 503  # a search reads


def test_a_cookie_session_from_another_origin_is_refused(client: httpx.Client):
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        answer = client.post("/v1/experiments", json={"name": "x"}, headers={**csrf(WRITE), **headers})
        assert answer.status_code == 403 and reason(answer) == "CROSS_ORIGIN", headers
    same = client.post("/v1/experiments", json={"name": "x"},
                       headers={**csrf(WRITE), "origin": str(client.base_url).rstrip("/"), "sec-fetch-site": "same-origin"})
    assert same.status_code == 503
    # A bearer header is not a browser session: no CSRF token and no Origin rule.
    bearer = client.post("/v1/experiments", json={"name": "x"},
                         headers={"authorization": f"Bearer {WRITE}", "origin": "https://evil.example"})
    assert bearer.status_code == 503


def test_login_and_logout(client: httpx.Client):
    page = client.get("/ui/login?next=/ui/models")
    assert page.status_code == 200 and 'name="next" value="/ui/models"' in page.text
    wrong = client.post("/ui/login", data={"token": "not-a-token-0123456789", "next": "/ui/models"})
    assert wrong.status_code == 401 and "not-a-token" not in wrong.text and "not accepted" in wrong.text
    empty = client.post("/ui/login", data={"token": " ", "next": "/ui/models"})
    assert empty.status_code == 400
    good = client.post("/ui/login", data={"token": READ, "next": "/ui/models"})
    assert good.status_code == 303 and good.headers["location"] == "/ui/models"
    assert good.headers["set-cookie"].startswith(f"tuning-session={session.encode_cookie(READ)};")
    assert "Max-Age=28800" in good.headers["set-cookie"]
    away = client.post("/ui/login", data={"token": READ, "next": "//evil.example"})
    assert away.headers["location"] == "/ui/"
    # Logged in: the login page says who; a logout needs the session's CSRF token.
    assert "logged in as viewer (read, read-only)" in client.get("/ui/login", headers=cookie(READ)).text
    refused = client.post("/ui/logout", data={"csrf_token": "nope"}, headers=cookie(READ))
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    out = client.post("/ui/logout", data={"csrf_token": session.csrf_token(READ)}, headers=cookie(READ))
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert out.headers["set-cookie"].startswith("tuning-session=;") and "Max-Age=0" in out.headers["set-cookie"]


def test_the_login_form_is_refused_from_another_site(client: httpx.Client):
    answer = client.post("/ui/login", data={"token": WRITE}, headers={"origin": "https://evil.example"})
    assert answer.status_code == 403 and reason(answer) == "CROSS_ORIGIN" and "set-cookie" not in answer.headers
    # Other form posts stay refused by type, as before.
    form = client.post("/v1/experiments", data={"name": "x"}, headers=csrf(WRITE))
    assert form.status_code == 415


def test_with_tokens_off_nothing_changes():
    running = serve(GatewayOptions(suggestion_address="127.0.0.1:1", tracking_address="127.0.0.1:1"))
    try:
        with httpx.Client(base_url=running.url, timeout=30) as plain:
            page = plain.get("/ui/login")
            assert page.status_code == 200 and "Access control is off" in page.text and 'href="/ui/"' in page.text
            assert plain.get("/ui/studies").status_code == 503  # no login needed
            assert plain.post("/v1/experiments", json={"name": "x"}).status_code == 503  # no CSRF token either
            assert 'name="csrf-token"' not in plain.get("/ui/login", headers=cookie(WRITE)).text
    finally:
        running.stop()


def test_a_session_lasts_a_bounded_time():
    with pytest.raises(Exception, match="at most 30 days"):
        build_app(GatewayOptions(tokens=TokenStore.parse(TOKENS, "test"), session_seconds=31 * 86400))
