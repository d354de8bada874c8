"""Single sign-on for the dashboard: OpenID Connect's authorisation code flow with PKCE.

``GET /ui/login/sso?next=...`` (the login page's "Sign in with ..." link) sends the browser to the
provider's authorisation endpoint with a fresh ``state``, ``nonce`` and PKCE ``code_challenge``
(S256). Those, the ``code_verifier`` and ``next`` travel in a short-lived cookie (10 minutes,
``HttpOnly``, ``SameSite=Lax``, signed with HMAC-SHA256 under a key derived from the client
secret), so that any replica can finish the login: the gateway keeps no state.

``GET /ui/login/callback?code=...&state=...`` checks the cookie's signature, age and ``state``,
exchanges the code at the token endpoint (client secret, ``code_verifier``), validates the ID
token (signature, ``iss``, ``aud`` = the client id, ``azp``, ``nonce``, ``exp``) and makes the
**ID token** the session cookie's token (:mod:`gateway.session`). The Guard then checks it on
every request like any bearer JWT, the services check it again (their ``--oidc-audience`` must
name the client id), and the existing CSRF scheme applies unchanged. Why the ID token and not the
access token: it is a JWT with every provider (Google's access tokens are opaque), its audience is
this client, and the Kubernetes API server authenticates users with ID tokens the same way. The
session ends when the ID token expires (the cookie's ``Max-Age`` ends then too, and the Guard
sends an expired session to the login page); logging out clears the cookie.

Messages never hold a token, a code or the secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import session
from gateway.dashboard.login import NO_STORE
from tuning_common.errors import InvalidArgument, TuningError, Unauthenticated
from tuning_common.oidc import JwtVerifier, check_url, fetch_json

log = logging.getLogger(__name__)

STATE_COOKIE = "tuning-sso"
SECURE_STATE_COOKIE = "__Host-tuning-sso"
STATE_SECONDS = 600
STATE_KEY_LABEL = b"tuning-gateway single sign-on state v1"
DEFAULT_SCOPES = "openid email profile"
CLIENT_SECRET_ENV = "TUNING_OIDC_CLIENT_SECRET"

EXPIRED = "The sign-in took too long, or another one was started in this browser. Please sign in again."
REFUSED = "The identity provider did not sign you in ({error}). Please try again."
NO_TOKEN = "The identity provider did not give a valid ID token, so you are not signed in. Please try again."


@dataclass(frozen=True)
class SsoSettings:
    """The gateway's OpenID client: its id and secret at the provider whose JWTs ``verifier`` checks."""

    verifier: JwtVerifier
    client_id: str
    client_secret: str = field(repr=False)
    scopes: str = DEFAULT_SCOPES
    # What the login page's button says: "Sign in with <provider_name>".
    provider_name: str = ""
    # The gateway's address as browsers see it (the redirect URI is <public_url>/ui/login/callback);
    # "": the request's own scheme and Host.
    public_url: str = ""

    def __post_init__(self) -> None:
        if not self.client_id:
            raise InvalidArgument("--oidc-client-id", "the dashboard's client id at the provider",
                                  reason="INVALID_OIDC_SETTINGS")
        if not self.client_secret:
            raise InvalidArgument("--oidc-client-secret-file", "the client secret ($TUNING_OIDC_CLIENT_SECRET or "
                                                               "--oidc-client-secret-file)",
                                  reason="INVALID_OIDC_SETTINGS")
        if "openid" not in self.scopes.split():
            raise InvalidArgument("--oidc-scopes", "must include openid", reason="INVALID_OIDC_SETTINGS")
        if self.public_url:
            check_url(self.public_url, "--public-url")

    @property
    def name(self) -> str:
        return self.provider_name or urllib.parse.urlsplit(self.verifier.provider.issuer).hostname or "SSO"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SingleSignOn:
    """The two routes of the module's docstring; ``page`` renders the login page with a problem,
    ``tokens`` is the Guard's authenticator (the ID token must pass it, as every request will)."""

    def __init__(self, settings: SsoSettings, tokens: Any, page: Any, session_seconds: int):
        self.settings = settings
        self.tokens = tokens
        self.page = page
        self.session_seconds = session_seconds
        self._key = hmac.new(settings.client_secret.encode(), STATE_KEY_LABEL, hashlib.sha256).digest()

    def routes(self) -> list[BaseRoute]:
        return [Route(session.SSO_START_PATH, self.start, methods=["GET"]),
                Route(session.SSO_CALLBACK_PATH, self.callback, methods=["GET"])]

    def _redirect_uri(self, request: Request) -> str:
        base = self.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
        return base.rstrip("/") + session.SSO_CALLBACK_PATH

    # --- the state cookie ---

    def _seal(self, state: dict) -> str:
        payload = _b64(json.dumps(state, separators=(",", ":")).encode())
        return payload + "." + _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def _open(self, value: str | None) -> dict | None:
        """The cookie's state when its signature holds and it is recent; None otherwise."""
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        expected = _b64(hmac.new(self._key, payload.encode("ascii", "replace"), hashlib.sha256).digest())
        if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode()):
            return None
        try:
            state = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(state, dict) or not isinstance(state.get("at"), int | float):
            return None
        return state if 0 <= time.time() - state["at"] <= STATE_SECONDS else None

    def _state_cookie(self, request: Request, value: str, max_age: int) -> str:
        secure = request.url.scheme == "https"
        name = SECURE_STATE_COOKIE if secure else STATE_COOKIE
        attributes = ["Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax", *(["Secure"] if secure else [])]
        return "; ".join([f"{name}={value}", *attributes])

    # --- the routes ---

    async def start(self, request: Request) -> Response:
        try:
            metadata = await asyncio.to_thread(self.settings.verifier.provider.metadata)
            endpoint = check_url(str(metadata.get("authorization_endpoint")), "the provider's authorization_endpoint")
        except TuningError as error:
            log.warning("single sign-on cannot start: %s", error.message)
            return self.page(503, problem=error.message)
        verifier = secrets.token_urlsafe(48)
        state = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24), "verifier": verifier,
                 "next": session.safe_next(request.query_params.get("next")), "at": time.time()}
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.settings.client_id,
            "redirect_uri": self._redirect_uri(request), "scope": self.settings.scopes,
            "state": state["state"], "nonce": state["nonce"],
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256",
        })
        separator = "&" if "?" in endpoint else "?"
        response = RedirectResponse(endpoint + separator + query, status_code=303, headers=NO_STORE)
        response.headers.append("set-cookie", self._state_cookie(request, self._seal(state), STATE_SECONDS))
        return response

    async def callback(self, request: Request) -> Response:
        secure = request.url.scheme == "https"
        state = self._open(request.cookies.get(SECURE_STATE_COOKIE if secure else STATE_COOKIE))
        params = request.query_params
        next_path = session.HOME if state is None else session.safe_next(state.get("next"))
        if state is None or not hmac.compare_digest(str(params.get("state", "")).encode("ascii", "replace"),
                                                    str(state.get("state")).encode("ascii", "replace")):
            response = self.page(400, next_path=next_path, problem=EXPIRED)
        elif "error" in params or "code" not in params:
            error = "".join(c for c in params.get("error", "no code")[:64] if c.isalnum() or c in "_ ")
            response = self.page(401, next_path=next_path, problem=REFUSED.format(error=error))
        else:
            response = await self._finish(request, params["code"], state, next_path)
        response.headers.append("set-cookie", self._state_cookie(request, "", 0))
        return response

    async def _finish(self, request: Request, code: str, state: dict, next_path: str) -> Response:
        try:
            id_token, claims = await asyncio.to_thread(self._exchange, code, state, self._redirect_uri(request))
            self.tokens.authenticate(id_token)
        except TuningError as error:  # for the operator: why (never a token or the code)
            log.warning("single sign-on failed: %s (%s)", error.message, error.reason)
            return self.page(401, next_path=next_path, problem=NO_TOKEN)
        lifetime = int(claims["exp"] - time.time())
        response = RedirectResponse(next_path, status_code=303, headers=NO_STORE)
        response.headers.append("set-cookie", session.cookie_header(
            id_token, secure=request.url.scheme == "https", max_age=max(1, min(self.session_seconds, lifetime))))
        return response

    def _exchange(self, code: str, state: dict, redirect_uri: str) -> tuple[str, dict]:
        """The ID token of ``code`` and its claims, checked for this login; Unauthenticated (or
        Unavailable) otherwise."""
        settings = self.settings
        endpoint = settings.verifier.provider.metadata().get("token_endpoint")
        if not isinstance(endpoint, str):
            raise Unauthenticated("the provider has no token endpoint", reason="SSO_FAILED")
        check_url(endpoint, "the provider's token_endpoint")
        # client_secret_basic (RFC 6749 2.3.1): both parts form-encoded before base64.
        basic = base64.b64encode(f"{urllib.parse.quote(settings.client_id, safe='')}:"
                                 f"{urllib.parse.quote(settings.client_secret, safe='')}".encode()).decode()
        body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                       "code_verifier": state["verifier"]}).encode()
        try:
            answer = fetch_json(endpoint, timeout=settings.verifier.provider.timeout, data=body,
                                headers={"authorization": "Basic " + basic,
                                         "content-type": "application/x-www-form-urlencoded"})
        except (OSError, ValueError):
            raise Unauthenticated("the provider did not exchange the code", reason="SSO_FAILED") from None
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthenticated("the provider gave no ID token", reason="SSO_FAILED")
        claims = settings.verifier.claims(id_token, audiences=[settings.client_id], nonce=state["nonce"])
        if claims.get("azp", settings.client_id) != settings.client_id:
            raise Unauthenticated("the ID token was issued to another client", reason="TOKEN_WRONG_AUDIENCE")
        return id_token, claims
