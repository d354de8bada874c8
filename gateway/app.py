"""The gateway's ASGI application: the HTTP/JSON API, its OpenAPI document, and the checks
every request passes first (:class:`Guard`).

Guard, in order:
1. **Host allow-list** (against DNS rebinding): the ``Host`` header must name an allowed host
   (default: localhost, 127.0.0.1, ::1 and the address the gateway binds). 400 otherwise.
2. **URL encoding:** the path and the query string must percent-decode to UTF-8, and the path
   to text without control characters. Uvicorn and Starlette would replace bad bytes with
   U+FFFD, so that an artifact uploaded to ``.../%c0%ae%c0%ae`` (an overlong '..') was stored as
   a file named "\ufffd\ufffd\ufffd\ufffd", the same file as ``.../%c0%af%c0%af``; and no route
   matches a path holding a newline, so it got the gateway's 404 even under MLflow's prefixes.
   400 otherwise.
3. **Bearer token** when tokens are configured, from the ``Authorization`` header or, for a
   browser, from the session cookie that the login page sets (:mod:`gateway.session`):

   - A request with an ``Authorization`` header is checked by it alone, as it always was: 401
     JSON without a valid token, 403 when a read-only token writes (503 for a JWT while the
     OpenID provider, whose keys were never fetched, cannot be reached).
   - Otherwise the session cookie's token is checked the same way. Without a valid one, a
     dashboard page (a GET under ``/ui/`` but for ``/ui/api/``) redirects to
     ``/ui/login?next=<the page>``; anything else gets the 401 JSON (and a page whose JWT waits
     for an unreachable provider the 503, its session kept).
   - A cookie-authenticated request that is not a GET, HEAD or OPTIONS (on every path: ``/v1``,
     MLflow's routes, the dashboard) must come from this gateway's own pages
     (``Sec-Fetch-Site``/``Origin``, :func:`gateway.session.same_origin`) and carry the
     session's CSRF token in ``x-csrf-token``: 403 otherwise. A bearer header needs neither: a
     page on another site cannot make a browser send one.
   - The login page, logging out and the static files need no token.

   The session (principal, CSRF token) is left in ``scope["tuning.session"]`` and in
   :data:`gateway.session.current`; :func:`gateway.http_api.forwarded` sends its token to the
   services as bearer metadata, so they check it too. Messages never echo a token. The
   principal (from either) goes in the request's state (``request.state.principal``): the
   registry's actor is recorded from it (:mod:`gateway.http_api`).
4. **No cross-site form posts:** a write with a body must say ``Content-Type:
   application/json``; artifact uploads (PUT, which no form and no cross-site page without a
   CORS preflight can send) may carry any type, or none. 415 otherwise. The two forms of the
   dashboard (``POST /ui/login``, ``POST /ui/logout``) post ``application/x-www-form-urlencoded``
   and must come from this gateway's own pages (the ``Sec-Fetch-Site``/``Origin`` rule); 403
   otherwise.
5. **Size:** a declared ``Content-Length`` over the limit is refused with 413 before reading;
   bodies are also counted while they are read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from gateway import openapi, session
from gateway.errors import error_body, http_status, internal_error_response
from gateway.routes import ROUTES
from tuning_common.errors import TuningError

OPENAPI_PATH = "/v1/openapi.json"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


@dataclass
class GuardSettings:
    allowed_hosts: frozenset[str]
    max_json_bytes: int
    max_artifact_bytes: int
    # A tuning_common.auth.TokenStore (check, authenticate, authorize), raising Unauthenticated
    # or PermissionDenied; None: no authentication.
    tokens: Any = None
    # (method, path) -> read-only? for requests that are not reads by their HTTP method.
    read_only_paths: list[Callable[[str, str], bool | None]] = field(default_factory=list)
    # (path, status, code, message, reason) -> the JSON body of a refusal, for surfaces whose
    # clients expect errors in another shape (MLflow's client reads {"error_code", "message"});
    # None: the gateway's own shape.
    refusal_bodies: list[Callable[[str, int, str, str, str], dict | None]] = field(default_factory=list)


def _remember(scope: Scope, principal: Any) -> None:
    """Who asks, for the handlers (the registry's actor: :func:`gateway.http_api.record_actor`)."""
    scope.setdefault("state", {})["principal"] = principal


def default_allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    hosts = {"localhost", "127.0.0.1", "::1", *extra}
    if bind_host not in ("0.0.0.0", "::", ""):
        hosts.add(bind_host.strip("[]"))
    return frozenset(h.lower() for h in hosts)


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware applying the checks of the module's docstring."""

    def __init__(self, app: Callable, settings: GuardSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[session.SCOPE_KEY] = None
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        reset = session.current.set(scope[session.SCOPE_KEY])
        try:
            await self.app(scope, receive, send)
        finally:
            session.current.reset(reset)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        allowed = self.settings.allowed_hosts
        if "*" not in allowed and _host_name(headers.get("host", "")) not in allowed:
            return self._refuse(path, 400, "INVALID_ARGUMENT",
                                "this host name is not served here (Host header not allowed)", "HOST_NOT_ALLOWED")
        problem = _url_problem(scope)
        if problem:
            return self._refuse(path, 400, "INVALID_ARGUMENT", problem, "BAD_URL_ENCODING")
        if self.settings.tokens is not None:
            refusal = self._authenticate(scope, headers, method, path)
            if refusal is not None:
                return refusal
        if method in WRITE_METHODS:
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            length = headers.get("content-length")
            has_body = (length is not None and length != "0") or "transfer-encoding" in headers
            artifact = _is_artifact_upload(method, path)
            form = session.is_form_post(method, path)
            if form and not session.same_origin(headers, scope.get("scheme", "http"), allowed):
                return self._refuse(path, 403, "PERMISSION_DENIED", session.CROSS_ORIGIN_MESSAGE, "CROSS_ORIGIN")
            # An artifact's bytes may come with any type or none: MLflow's client sends the file's
            # guessed type, text/plain for a .txt. Only POSTs can be cross-site form posts; a page
            # on another site can only PUT through a CORS preflight, which the gateway never grants.
            # The dashboard's own two forms are posts from its pages, checked just above.
            if artifact:
                refused = False
            elif form:
                refused = media_type not in (FORM_MEDIA_TYPE, "application/json")
            else:
                refused = media_type != "application/json"
            if has_body and refused:
                wanted = "application/octet-stream" if artifact else FORM_MEDIA_TYPE if form else "application/json"
                return self._refuse(path, 415, "INVALID_ARGUMENT", f"writes need Content-Type: {wanted}",
                                    "UNSUPPORTED_MEDIA_TYPE")
            limit = self.settings.max_artifact_bytes if artifact else self.settings.max_json_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                return self._refuse(path, 413, "RESOURCE_EXHAUSTED",
                                    f"the request body is larger than the limit of {limit} bytes", "REQUEST_TOO_LARGE")
        return None

    def _authenticate(self, scope: Scope, headers: dict[str, str], method: str, path: str) -> Response | None:
        """Step 3 of the module's docstring; None: let the request through."""
        tokens = self.settings.tokens
        is_open = session.is_open(method, path)
        if "authorization" in headers and not is_open:
            try:
                principal = tokens.check(headers["authorization"], self._read_only(method, path))
            except TuningError as error:
                return self._token_refusal(path, error)
            _remember(scope, principal)
            return None
        scheme = scope.get("scheme", "http")
        cookies = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"cookie"]
        token = session.cookie_token(cookies, scheme)
        try:
            principal = tokens.authenticate(token)
        except TuningError as error:
            if is_open:
                return None
            if session.is_page(method, path) and error.code == "UNAUTHENTICATED":
                return _to_login(scope, forget_cookie=token is not None)
            return self._token_refusal(path, error)
        if is_open:  # no check, but the login page and logging out know the session
            scope[session.SCOPE_KEY] = session.Session.of(principal, token)
            return None
        if method not in SAFE_METHODS:
            if not session.same_origin(headers, scheme, self.settings.allowed_hosts):
                return self._refuse(path, 403, "PERMISSION_DENIED", session.CROSS_ORIGIN_MESSAGE, "CROSS_ORIGIN")
            if not session.csrf_valid(token, headers.get(session.CSRF_HEADER)):
                return self._refuse(path, 403, "PERMISSION_DENIED", session.CSRF_MESSAGE, "CSRF_TOKEN_INVALID")
        try:
            tokens.authorize(principal, read_only=self._read_only(method, path))
        except TuningError as error:
            return self._token_refusal(path, error)
        scope[session.SCOPE_KEY] = session.Session.of(principal, token)
        _remember(scope, principal)
        return None

    def _token_refusal(self, path: str, error: TuningError) -> JSONResponse:
        # 401 or 403; 503 while an OpenID provider whose keys are not known yet cannot be reached.
        status = http_status(error)
        response = self._refuse(path, status, error.code, error.message, error.reason)
        if status == 401:
            response.headers["www-authenticate"] = 'Bearer realm="tuning"'
        return response

    def _refuse(self, path: str, status: int, code: str, message: str, reason: str) -> JSONResponse:
        for shape in self.settings.refusal_bodies:
            body = shape(path, status, code, message, reason)
            if body is not None:
                return JSONResponse(body, status_code=status)
        return _refuse(status, code, message, reason)

    def _read_only(self, method: str, path: str) -> bool:
        for rule in self.settings.read_only_paths:
            verdict = rule(method, path)
            if verdict is not None:
                return verdict
        return method in ("GET", "HEAD", "OPTIONS")


def _url_problem(scope: Scope) -> str | None:
    """What is wrong with the request's URL as text (see the module's docstring); None: nothing."""
    try:
        unquote_to_bytes(scope.get("raw_path") or b"").decode("utf-8")
        unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return "the URL must percent-encode UTF-8 text (an escape in its path or query decodes to invalid UTF-8)"
    if any(ord(char) < 32 or ord(char) == 127 for char in scope["path"]):
        return "the URL's path must not contain control characters"
    return None


def _to_login(scope: Scope, *, forget_cookie: bool) -> Response:
    """A browser without a valid session goes to the login page, and back here afterwards."""
    headers = {"location": session.login_url(scope.get("raw_path") or scope["path"].encode(),
                                              scope.get("query_string", b"")),
               "cache-control": "no-store", "referrer-policy": "same-origin"}
    response = Response(status_code=303, headers=headers)
    if forget_cookie:  # its token is no longer accepted
        secure = scope.get("scheme") == "https"
        response.headers.append("set-cookie", session.clearing_cookie_header(secure=secure))
    return response


def _is_artifact_upload(method: str, path: str) -> bool:
    return method == "PUT" and "/artifacts/" in path


def _refuse(status: int, code: str, message: str, reason: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, reason), status_code=status)


def rpc_read_only_rule(is_read_only: Callable[[str], bool]) -> Callable[[str, str], bool | None]:
    """Classifies the HTTP/JSON API's requests by their RPC (a search is a read though it is a POST)."""
    from starlette.routing import Match
    from starlette.routing import Route as Matcher

    matchers = [(Matcher(r.path, lambda request: None, methods=[r.method]), r) for r in ROUTES]

    def rule(method: str, path: str) -> bool | None:
        scope = {"type": "http", "method": method, "path": path}
        for matcher, route in matchers:
            if matcher.matches(scope)[0] is Match.FULL:
                return is_read_only(route.full_method)
        return None

    return rule


def create_app(api_routes: list[StarletteRoute], guard: GuardSettings, *, extra_routes: Iterable = (),
               lifespan: Callable | None = None) -> Callable:
    document = json.dumps(openapi.document()).encode()

    async def openapi_document(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def not_found(request: Request, exc: Exception) -> Response:
        return _refuse(404, "NOT_FOUND", f"no route {request.method} {request.url.path}", "NO_ROUTE")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _refuse(405, "UNIMPLEMENTED", f"{request.method} is not allowed on {request.url.path}",
                       "METHOD_NOT_ALLOWED")

    async def crashed(request: Request, exc: Exception) -> Response:
        return internal_error_response(f"{request.method} {request.url.path}")

    app = Starlette(
        routes=[StarletteRoute(OPENAPI_PATH, openapi_document, methods=["GET"]), *api_routes, *extra_routes],
        exception_handlers={404: not_found, 405: not_allowed, Exception: crashed},
        lifespan=lifespan,
    )
    return Guard(app, guard)
