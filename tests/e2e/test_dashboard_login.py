"""Logging in to the dashboard, in headless Chromium against real services and a gateway that all
hold the same tokens (one write token, one read token): a page asked without a session leads to
the login page, a wrong token is refused without being echoed, the right one lands on the page
first asked for with an HttpOnly, SameSite cookie; from the page, a write without the CSRF header
is refused and with it succeeds (write session) or is refused as a read-only token's (read
session), checked through the real clients; logging out ends the session; ``next`` never leads
to another site; and a cookie-authenticated write from another origin is refused (httpx).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.server import GatewayOptions, RunningGateway, serve
from tests.conftest import require
from trial_worker import SuggestionClient
from trial_worker.space import Float
from trial_worker.tracking import TrackingClient
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning_common.auth import READ_ONLY_MESSAGE, TokenStore
from tuning_common.errors import NotFound

pytestmark = pytest.mark.timeout(300)

WRITE_TOKEN = "write-login-token-0123456789abcdef"
READ_TOKEN = "read-login-token-0123456789abcdef"
WRONG_TOKEN = "write-login-token-0123456789abcdeX"  # one character off the write token
TOKENS = f"write {WRITE_TOKEN} ci\nread {READ_TOKEN} viewer\n"
STUDY = "login-study"
MODEL = "login-model"
READY = "document.body && document.body.dataset.ready === '1'"


@dataclass
class World:
    gateway: RunningGateway
    suggestion: str
    tracking: str

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from suggestion_service.server import serve as serve_suggestion
    from tracking_service.server import serve as serve_tracking
    from tuning_common.grpc_server import ServerOptions

    folder = tmp_path_factory.mktemp("login")
    tokens = TokenStore.parse(TOKENS, "test")
    options = ServerOptions(port=0, grace_seconds=1, tokens=tokens)
    suggestion = serve_suggestion(f"sqlite:///{folder / 'suggestion.db'}", options)
    tracking = serve_tracking(f"sqlite:///{folder / 'tracking.db'}", str(folder / "artifacts"), options)
    gateway = None
    try:
        gateway = serve(GatewayOptions(suggestion_address=suggestion.address, tracking_address=tracking.address,
                                       tokens=tokens))
        with SuggestionClient(suggestion.address, token=WRITE_TOKEN) as client:
            client.create_study(STUDY, [Float("x", 0.0, 1.0)], objectives={"loss": "minimize"})
        with TrackingClient(tracking.address, token=WRITE_TOKEN) as client:
            client.create_registered_model(MODEL)
        yield World(gateway, suggestion.address, tracking.address)
    finally:
        if gateway is not None:
            gateway.stop()
        suggestion.stop()
        tracking.stop()


@pytest.fixture(scope="module")
def browser():
    require(shutil.which("chromium") is not None, "the dashboard tests need Chromium (apt-get install chromium)")
    require(importlib.util.find_spec("websockets") is not None, "the dashboard tests need websockets (dev extra)")
    from tests.e2e.browser import Browser

    chromium = Browser(shutil.which("chromium"))
    chromium.call("Network.enable", session=True)
    yield chromium
    chromium.close()


@pytest.fixture
def fresh(browser):
    """The browser without cookies (each test logs in as it needs)."""
    browser.call("Network.clearBrowserCookies", session=True)
    return browser


def cookies(browser, world: World) -> list[dict]:
    return browser.call("Network.getCookies", {"urls": [world.url + "/"]}, session=True)["cookies"]


def log_in(browser, token: str) -> None:
    """Fills the login page's form and posts it, as a user would; waits for the next page."""
    browser.evaluate("delete document.body.dataset.ready")
    browser.clear()
    browser.evaluate(f"""(() => {{
        document.getElementById('token').value = {json.dumps(token)};
        document.querySelector('#login-form button[type=submit]').click();
    }})()""")
    browser.wait_for(READY, what="the page after logging in")


def page_fetch(browser, method: str, path: str, body: dict, *, csrf: bool) -> dict:
    """A fetch from the page (its cookie goes along); with ``csrf`` it sends the page's CSRF token."""
    return browser.evaluate(f"""(async () => {{
        const headers = {{"content-type": "application/json"}};
        if ({json.dumps(csrf)}) headers["x-csrf-token"] = document.querySelector('meta[name=csrf-token]').content;
        const answer = await fetch({json.dumps(path)}, {{method: {json.dumps(method)}, headers,
                                                        body: JSON.stringify({json.dumps(body)})}});
        return {{status: answer.status, body: await answer.text()}};
    }})()""")


def html(browser) -> str:
    return browser.evaluate("document.documentElement.outerHTML")


def experiment_exists(world: World, name: str) -> bool:
    with TrackingClient(world.tracking, token=READ_TOKEN) as client:
        try:
            client.get_experiment_by_name(name)
        except NotFound:
            return False
    return True


# --- the flow --------------------------------------------------------------------------------------


def test_logging_in_leads_back_to_the_page_first_asked_for(fresh, world: World):
    browser = fresh
    asked = f"/ui/models/{MODEL}"
    browser.open(world.url + asked)
    assert browser.evaluate("location.pathname") == "/ui/login"
    assert urllib.parse.parse_qs(browser.evaluate("location.search")[1:]) == {"next": [asked]}
    assert browser.report.errors() == []
    browser.open(world.url + "/ui/")
    assert browser.evaluate("location.pathname") == "/ui/login"

    browser.open(world.url + "/ui/login?next=" + urllib.parse.quote(asked))
    log_in(browser, WRONG_TOKEN)
    assert browser.evaluate("location.pathname") == "/ui/login"
    assert "not accepted" in browser.evaluate("document.getElementById('login-problem').textContent")
    assert any("status of 401" in error for error in browser.report.errors()), browser.report.errors()
    assert WRONG_TOKEN not in html(browser) and browser.evaluate("document.getElementById('token').value") == ""
    assert cookies(browser, world) == []

    log_in(browser, WRITE_TOKEN)
    assert browser.evaluate("location.pathname") == asked
    assert MODEL in browser.text()
    [cookie] = cookies(browser, world)
    assert cookie["name"] == "tuning-session" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/" and not cookie["session"]
    assert 0 < cookie["expires"] - time.time() <= 8 * 3600 + 60
    assert browser.evaluate("document.cookie") == ""  # scripts cannot read it
    # The page: who is logged in, the CSRF token (not the bearer token), and never the token.
    assert "ci · write" in browser.evaluate("document.querySelector('header .who').textContent")
    csrf = browser.evaluate("document.querySelector('meta[name=csrf-token]').content")
    assert csrf and csrf != WRITE_TOKEN and WRITE_TOKEN not in html(browser) and cookie["value"] not in html(browser)


def test_a_write_session_writes_only_with_the_csrf_token(fresh, world: World):
    browser = fresh
    browser.open(world.url + "/ui/login")
    log_in(browser, WRITE_TOKEN)
    browser.open(world.url + "/ui/studies")
    assert STUDY in browser.text() and browser.report.errors() == []

    forged = page_fetch(browser, "POST", "/v1/experiments", {"name": "without-csrf"}, csrf=False)
    assert forged["status"] == 403 and "missing or invalid CSRF token" in forged["body"]
    assert not experiment_exists(world, "without-csrf")
    tag = page_fetch(browser, "POST", f"/v1/registered-models/{MODEL}/tags", {"key": "team", "value": "a"},
                     csrf=False)
    assert tag["status"] == 403

    made = page_fetch(browser, "POST", "/v1/experiments", {"name": "from-the-browser"}, csrf=True)
    assert made["status"] == 200, made
    assert experiment_exists(world, "from-the-browser")  # through the real client
    tagged = page_fetch(browser, "POST", f"/v1/registered-models/{MODEL}/tags", {"key": "team", "value": "a"},
                        csrf=True)
    assert tagged["status"] == 200, tagged
    with TrackingClient(world.tracking, token=READ_TOKEN) as client:
        assert {t.key: t.value for t in client.get_registered_model(MODEL).tags} == {"team": "a"}


def test_a_read_only_session_browses_but_cannot_write(fresh, world: World):
    browser = fresh
    browser.open(world.url + "/ui/login?next=/ui/studies")
    log_in(browser, READ_TOKEN)
    assert browser.evaluate("location.pathname") == "/ui/studies" and STUDY in browser.text()
    assert "read-only" in browser.evaluate("document.querySelector('header .who').textContent")
    refused = page_fetch(browser, "POST", "/v1/experiments", {"name": "by-the-reader"}, csrf=True)
    assert refused["status"] == 403 and json.loads(refused["body"])["error"]["message"] == READ_ONLY_MESSAGE
    refused = page_fetch(browser, "POST", f"/v1/registered-models/{MODEL}/tags", {"key": "reader", "value": "x"},
                         csrf=True)
    assert refused["status"] == 403
    assert not experiment_exists(world, "by-the-reader")
    with TrackingClient(world.tracking, token=READ_TOKEN) as client:
        assert "reader" not in {t.key for t in client.get_registered_model(MODEL).tags}
    # Searching is reading, though it is a POST (with the CSRF token, as every POST of a session).
    found = page_fetch(browser, "POST", "/v1/runs:search", {"experiment_ids": ["0"]}, csrf=True)
    assert found["status"] == 200, found


def test_logging_out_ends_the_session(fresh, world: World):
    browser = fresh
    browser.open(world.url + "/ui/login")
    log_in(browser, READ_TOKEN)
    assert cookies(browser, world) != []
    # A logout without the session's CSRF token is refused (from the page, as a script would try).
    refused = page_fetch(browser, "POST", "/ui/logout", {}, csrf=False)
    assert refused["status"] == 403 and "missing or invalid CSRF token" in refused["body"]
    assert cookies(browser, world) != []
    browser.evaluate("delete document.body.dataset.ready")
    browser.evaluate("document.getElementById('logout').click()")
    browser.wait_for(READY, what="the page after logging out")
    assert browser.evaluate("location.pathname") == "/ui/login"
    assert cookies(browser, world) == []
    browser.open(world.url + "/ui/studies")
    assert browser.evaluate("location.pathname") == "/ui/login"


@pytest.mark.parametrize("away", ["https://evil.example", "//evil.example", "/\\evil.example"])
def test_next_never_leads_to_another_site(fresh, world: World, away: str):
    browser = fresh
    browser.open(world.url + "/ui/login?next=" + urllib.parse.quote(away, safe=""))
    log_in(browser, READ_TOKEN)
    assert browser.evaluate("location.origin") == world.url
    assert browser.evaluate("location.pathname") == "/ui/"


def test_a_cookie_session_write_from_another_origin_is_refused(world: World):
    with httpx.Client(base_url=world.url, timeout=30, follow_redirects=False) as http:
        logged_in = http.post("/ui/login", data={"token": WRITE_TOKEN, "next": "/ui/studies"})
        assert logged_in.status_code == 303 and http.cookies.get("tuning-session")
        page = http.get("/ui/studies")
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        headers = {"x-csrf-token": csrf, "origin": "https://evil.example"}
        refused = http.post("/v1/experiments", json={"name": "cross-origin"}, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["reason"] == "CROSS_ORIGIN"
        assert not experiment_exists(world, "cross-origin")
        # The same request from the gateway's own origin goes through.
        made = http.post("/v1/experiments", json={"name": "same-origin"}, headers={**headers, "origin": world.url})
        assert made.status_code == 200, made.text
        assert experiment_exists(world, "same-origin")


def test_registry_actions_from_the_page_in_a_session(fresh, world: World, tmp_path):
    # The page's own forms (TD.send with the page's CSRF token) under a cookie session: a write
    # session moves the stage and is recorded as the actor; a read-only one is refused inline.
    with TrackingClient(world.tracking, token=WRITE_TOKEN) as client:
        experiment = client.create_experiment("session-registry")
        run = client.create_run(experiment.id, name="source")
        (tmp_path / "weights.bin").write_bytes(b"weights")
        client.upload_file(run.id, tmp_path / "weights.bin", "model")
        version = client.create_model_version(MODEL, f"runs:/{run.id}/model", run_id=run.id).version
    page = f"{world.url}/ui/model-versions/{version}/{MODEL}"
    stage_to = """(() => { const form = document.getElementById('stage-form');
        form.elements.stage.value = 'STAGE_STAGING'; form.querySelector('button[type=submit]').click(); })()"""
    browser = fresh
    browser.open(world.url + "/ui/login")
    log_in(browser, READ_TOKEN)
    browser.open(page)
    browser.evaluate(stage_to)
    message = browser.wait_for("document.querySelector('#stage-form .form-error').textContent",
                               what="the refusal next to the form")
    assert message == READ_ONLY_MESSAGE
    with TrackingClient(world.tracking, token=READ_TOKEN) as client:
        assert client.get_model_version(MODEL, version).stage == rpb.STAGE_NONE  # nothing changed

    browser.call("Network.clearBrowserCookies", session=True)
    browser.open(world.url + "/ui/login")
    log_in(browser, WRITE_TOKEN)
    browser.open(page)
    assert browser.evaluate("document.getElementById('actor-name').textContent") == "ci"
    browser.evaluate("delete document.body.dataset.ready")
    browser.evaluate(stage_to)
    browser.wait_for("document.body.dataset.ready === '1' && "
                     "document.getElementById('version-stage').textContent === 'Staging'", what="the new stage")
    assert browser.report.errors() == []
    with TrackingClient(world.tracking, token=READ_TOKEN) as client:
        assert client.get_model_version(MODEL, version).stage == rpb.STAGE_STAGING
        [event] = [e for e in client.list_registry_events(MODEL, version) if e.version == version and e.to_value == "Staging"]
        assert event.actor == "ci"
