"""Single sign-on to the dashboard in headless Chromium, against a real OpenID provider
(oidc-provider from npm, run with Node), real services and a gateway: a page asked without a
session leads to the login page; "Sign in with ..." goes to the provider's own login and consent
pages and back to the page first asked for, with an HttpOnly session cookie; the header names the
user by the configured claim; from the page a registry action works with the CSRF token and is
refused without it, checked through the real client.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.e2e.test_dashboard_login import READY, browser, cookies, fresh, html, page_fetch  # noqa: F401 (fixtures)
from tests.oidc_provider import SsoSuite, sso_suite
from trial_worker.tracking import TrackingClient
from tuning_common.auth import TokenStore

pytestmark = pytest.mark.timeout(300)

WRITE_TOKEN = "sso-e2e-write-token-0123456789"
STATIC = TokenStore.parse(f"write {WRITE_TOKEN} ci\n", "test")
MODEL = "sso-model"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoSuite]:
    with sso_suite(tmp_path_factory.mktemp("sso-e2e"), STATIC) as suite:
        with TrackingClient(suite.tracking, token=WRITE_TOKEN) as client:
            client.create_registered_model(MODEL)
        yield suite


def model_tags(world: SsoSuite) -> dict[str, str]:
    with TrackingClient(world.tracking, token=WRITE_TOKEN) as client:
        return {tag.key: tag.value for tag in client.get_registered_model(MODEL).tags}


def test_signing_in_at_the_provider_leads_to_the_dashboard_where_registry_actions_work(fresh, world: SsoSuite):
    browser = fresh
    asked = f"/ui/models/{MODEL}"
    browser.open(world.url + asked)
    assert browser.evaluate("location.pathname") == "/ui/login"
    assert browser.evaluate("document.getElementById('sso-login').textContent") == "Sign in with Test ID"

    browser.evaluate("document.getElementById('sso-login').click()")
    browser.wait_for(f"location.origin === {json.dumps(world.provider.issuer)} && "
                     "!!document.querySelector('input[name=login]')", what="the provider's login page")
    browser.evaluate("""(() => {
        document.querySelector('input[name=login]').value = 'alice';
        document.querySelector('input[name=password]').value = 'any password';
        document.querySelector('form button[type=submit]').click();
    })()""")
    browser.wait_for("!!document.querySelector('input[name=prompt][value=consent]')", what="the consent page")
    browser.evaluate("document.querySelector('form button[type=submit]').click()")
    browser.wait_for(f"location.origin === {json.dumps(world.url)} && {READY}", what="the dashboard")

    assert browser.evaluate("location.pathname") == asked
    assert urllib.parse.urlsplit(browser.evaluate("location.href")).query == ""
    # The provider's own cookies are there too (cookies do not tell ports apart); the sign-in's
    # state cookie is gone.
    ours = {cookie["name"]: cookie for cookie in cookies(browser, world) if cookie["name"].startswith("tuning-")}
    assert set(ours) == {"tuning-session"}
    cookie = ours["tuning-session"]
    assert cookie["name"] == "tuning-session" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert browser.evaluate("document.cookie") == ""
    assert "alice@example.test" in browser.evaluate("document.querySelector('header .who').textContent")
    assert cookie["value"] not in html(browser)

    refused = page_fetch(browser, "POST", f"/v1/registered-models/{MODEL}/tags", {"key": "team", "value": "x"},
                         csrf=False)
    assert refused["status"] == 403 and "CSRF" in refused["body"]
    assert "team" not in model_tags(world)
    tagged = page_fetch(browser, "POST", f"/v1/registered-models/{MODEL}/tags", {"key": "team", "value": "ml"},
                        csrf=True)
    assert tagged["status"] == 200, tagged
    assert model_tags(world) == {"team": "ml"}
