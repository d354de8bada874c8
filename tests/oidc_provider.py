"""A real OpenID provider for the tests: the certified ``oidc-provider`` package from npm, run with
Node (tests/oidc/provider.mjs), in a process of its own on a port the OS chooses.

:func:`start` gives a :class:`NodeProvider` with one confidential client and fresh signing keys;
:meth:`NodeProvider.token` gets a JWT access token by client credentials (a resource indicator
picks its audience and algorithm), :func:`log_in` walks the authorisation code flow through the
provider's own login and consent pages over HTTP, as a browser would, and
:meth:`NodeProvider.reconfigure` rotates keys or registers redirect URIs without a new port.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import ROOT, require
from tuning_common.auth import Authenticator, TokenStore
from tuning_common.grpc_server import ServerOptions
from tuning_common.oidc import JwtVerifier, OidcProvider

if TYPE_CHECKING:
    from gateway.server import RunningGateway

SCRIPT = ROOT / "tests" / "oidc" / "provider.mjs"
API = "urn:tuning:api"  # the audience of the provider's JWT access tokens (resources urn:tuning:api*)
OTHER_API = "urn:other:api"
CLIENT_ID = "tuning-dashboard"
CLIENT_SECRET = "dashboard-client-secret-0123456789"
PLACEHOLDER_REDIRECT = "http://127.0.0.1/unused-callback"


def _node_version() -> tuple[int, ...]:
    node = shutil.which("node")
    if node is None:
        return ()
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def require_node() -> None:
    require(_node_version() >= (20, 19) and (ROOT / "node_modules" / "oidc-provider").is_dir(),
            "the OpenID Connect tests run a real OpenID provider: they need Node.js >= 20.19 and `npm install` "
            "(oidc-provider)")


def rsa_key(kid: str) -> dict:
    key = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True)
    return {**key, "kid": kid, "use": "sig"}


def ec_key(kid: str) -> dict:
    return {**ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True), "kid": kid, "use": "sig"}


class NodeProvider:
    def __init__(self, folder: Path, keys: list[dict], redirect_uris: list[str]):
        require_node()
        self.config_file = folder / f"oidc-{uuid.uuid4().hex}.json"
        self._write(keys, redirect_uris)
        log = folder / f"{self.config_file.stem}.log"
        with log.open("w") as stderr:  # its warnings (a development configuration) and errors
            self.proc = subprocess.Popen(["node", str(SCRIPT)], env={**os.environ, "OIDC_CONFIG_FILE":
                                                                         str(self.config_file)},
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                         cwd=ROOT)
        line = self._line("listening ")
        if line is None:
            self.proc.kill()
            raise RuntimeError(f"the OpenID provider did not start: {log.read_text()[-2000:]}")
        self.port = int(line.split()[1])
        print(f"OpenID provider on port {self.port}")
        self.issuer = f"http://127.0.0.1:{self.port}"

    def _write(self, keys: list[dict], redirect_uris: list[str]) -> None:
        self.keys, self.redirect_uris = keys, redirect_uris
        client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}
        self.config_file.write_text(json.dumps({"keys": keys, "client": client}))

    def reconfigure(self, *, keys: list[dict] | None = None, redirect_uris: list[str] | None = None) -> None:
        """Serves new signing keys and/or redirect URIs, on the same issuer (SIGHUP)."""
        self._write(self.keys if keys is None else keys,
                    self.redirect_uris if redirect_uris is None else redirect_uris)
        self.proc.send_signal(signal.SIGHUP)
        assert self._line("reloaded ") == "reloaded " + " ".join(key["kid"] for key in self.keys)

    def _line(self, prefix: str) -> str | None:
        """The next line of its output that starts with ``prefix`` (it also prints notices); None at its end."""
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line.strip()
        return None

    def token(self, resource: str = API) -> str:
        """A JWT access token for the client itself (sub: the client id, groups: machines)."""
        answer = httpx.post(f"{self.issuer}/token", auth=(CLIENT_ID, CLIENT_SECRET),
                            data={"grant_type": "client_credentials", "scope": "api", "resource": resource})
        answer.raise_for_status()
        return answer.json()["access_token"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _form_action(html: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1).replace("&amp;", "&")


def log_in(http: httpx.Client, start_url: str, login: str, stop_at: str) -> httpx.Response:
    """Follows ``start_url`` (a gateway's sign-in link, or an authorisation request) through the
    provider's login page (as ``login``) and consent page, and on until a response whose URL
    starts with ``stop_at``, or that is not a redirect; returns it."""
    response = http.get(start_url)
    for _ in range(20):
        if response.is_redirect:
            location = urllib.parse.urljoin(str(response.url), response.headers["location"])
            if location.startswith(stop_at):
                return response
            response = http.get(location)
            continue
        if str(response.url).startswith(stop_at) or "<form" not in response.text:
            return response
        action = urllib.parse.urljoin(str(response.url), _form_action(response.text))
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
        if 'name="login"' in response.text:
            fields.update(login=login, password="any")
        response = http.post(action, data=fields)
    raise AssertionError("the login did not end")


class Clock:
    """A verifier's wall clock that a test may move forward (token expiry) and back."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


@dataclass
class SsoSuite:
    provider: NodeProvider
    gateway: RunningGateway
    suggestion: str
    tracking: str

    @property
    def url(self) -> str:
        return self.gateway.url


@contextlib.contextmanager
def sso_suite(folder: Path, static: TokenStore, gateway_clock: Callable[[], float] = time.time) -> Iterator[SsoSuite]:
    """A provider, both services and a gateway whose dashboard signs in there (client
    ``CLIENT_ID``, its callback registered), all accepting the provider's JWTs (users named by
    their email) beside the ``static`` tokens; the gateway's verifier reads ``gateway_clock``."""
    from gateway.dashboard.sso import SsoSettings
    from gateway.server import GatewayOptions, serve
    from suggestion_service.server import serve as serve_suggestion
    from tracking_service.server import serve as serve_tracking

    provider = NodeProvider(folder, [rsa_key("rsa-1")], [PLACEHOLDER_REDIRECT])

    def verifier(clock: Callable[[], float] = time.time) -> JwtVerifier:
        return JwtVerifier(OidcProvider(provider.issuer), [API, CLIENT_ID], username_claim="email", clock=clock)

    options = ServerOptions(port=0, grace_seconds=1, tokens=Authenticator(static, verifier()))
    suggestion = serve_suggestion(f"sqlite:///{folder / 'suggestion.db'}", options)
    tracking = serve_tracking(f"sqlite:///{folder / 'tracking.db'}", str(folder / "artifacts"), options)
    gateway_verifier = verifier(gateway_clock)
    gateway = serve(GatewayOptions(
        suggestion_address=suggestion.address, tracking_address=tracking.address,
        tokens=Authenticator(static, gateway_verifier),
        sso=SsoSettings(gateway_verifier, CLIENT_ID, CLIENT_SECRET, "openid email groups", "Test ID")))
    provider.reconfigure(redirect_uris=[gateway.url + "/ui/login/callback"])
    try:
        yield SsoSuite(provider, gateway, suggestion.address, tracking.address)
    finally:
        gateway.stop()
        suggestion.stop()
        tracking.stop()
        provider.stop()
