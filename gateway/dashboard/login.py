"""The login page: a token pasted into a form becomes the session cookie of
:mod:`gateway.session`, and logging out forgets it.

``GET /ui/login?next=/ui/studies/x`` shows the form; ``POST /ui/login`` (the form: ``token``,
``next``) checks the token with the gateway's token store and answers 303 to ``next`` (a path on
this gateway, else ``/ui/``) with the cookie, or the form again with 401 and a message that never
holds the token. ``POST /ui/logout`` (the header's form: its hidden ``csrf_token``, or the
``x-csrf-token`` header) clears the cookie. The Guard lets these through without a token and
refuses their posts from other sites; everything else about the session is checked there.
With tokens off the page says so and links to the dashboard.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import session
from tuning_common.errors import InvalidArgument, TuningError

MAX_FORM_BYTES = 8 * 1024
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
NO_STORE = {"cache-control": "no-store", "referrer-policy": "same-origin", "x-content-type-options": "nosniff"}

WRONG_TOKEN = "That token is not accepted here. Check that you pasted all of it, and that it is in the " \
              "gateway's tokens file."
NO_TOKEN = "Paste a token to log in."


class FormProblem(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Login:
    """The login and logout routes; ``render`` is the dashboard's (template name, status, context)."""

    def __init__(self, render: Any, tokens: Any, session_seconds: int = session.SESSION_SECONDS,
                 sso_name: str | None = None):
        if not 0 < session_seconds <= session.MAX_SESSION_SECONDS:
            raise InvalidArgument("session_seconds", f"a session lasts more than 0 s and at most "
                                                     f"{session.MAX_SESSION_SECONDS // 86400} days")
        self.render = render
        self.tokens = tokens
        self.session_seconds = int(session_seconds)
        # "Sign in with <sso_name>" (gateway.dashboard.sso); None: no single sign-on.
        self.sso_name = sso_name

    def routes(self) -> list[BaseRoute]:
        return [
            Route(session.LOGIN_PATH, self.form, methods=["GET", "POST"]),
            Route(session.LOGOUT_PATH, self.logout, methods=["POST"]),
        ]

    def page(self, status: int = 200, *, next_path: str = session.HOME, problem: str = "") -> Response:
        response = self.render("login.html", status=status, section="", enabled=self.tokens is not None,
                               next=next_path, problem=problem, sso_name=self.sso_name,
                               sso_url=f"{session.SSO_START_PATH}?{urllib.parse.urlencode({'next': next_path})}")
        response.headers.update(NO_STORE)
        return response

    async def form(self, request: Request) -> Response:
        if request.method != "POST":
            return self.page(next_path=session.safe_next(request.query_params.get("next")))
        if self.tokens is None:
            return self.page()
        try:
            fields = await _form(request)
        except FormProblem as problem:
            return self.page(problem.status, problem=problem.message)
        next_path = session.safe_next(fields.get("next"))
        token = (fields.get("token") or "").strip()
        if not token:
            return self.page(400, next_path=next_path, problem=NO_TOKEN)
        try:
            self.tokens.authenticate(token)
        except TuningError:
            return self.page(401, next_path=next_path, problem=WRONG_TOKEN)
        response = RedirectResponse(next_path, status_code=303, headers=NO_STORE)
        response.headers.append("set-cookie", session.cookie_header(
            token, secure=request.url.scheme == "https", max_age=self.session_seconds))
        return response

    async def logout(self, request: Request) -> Response:
        secure = request.url.scheme == "https"
        current = request.scope.get(session.SCOPE_KEY)  # the Guard's, when the cookie is valid
        if current is not None:
            # Only a page of this session may end it (a forged logout would be a nuisance): the
            # header's form sends the CSRF token as a field, scripts as the usual header.
            presented = request.headers.get(session.CSRF_HEADER)
            if presented is None and _media_type(request) == FORM_MEDIA_TYPE:
                try:
                    presented = (await _form(request)).get(session.CSRF_FIELD)
                except FormProblem as problem:
                    return self.page(problem.status, problem=problem.message)
            if not session.csrf_valid(current.token, presented):
                return self.render("error.html", status=403, status_code=403, code="PERMISSION_DENIED",
                                   message=session.CSRF_MESSAGE, section="")
        response = RedirectResponse(session.LOGIN_PATH if self.tokens is not None else session.HOME,
                                    status_code=303, headers=NO_STORE)
        response.headers.append("set-cookie", session.clearing_cookie_header(secure=secure))
        return response


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _form(request: Request) -> dict[str, str]:
    """The posted form's fields (the first value of each); an empty body is no fields."""
    media_type = _media_type(request)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise FormProblem(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    if not body.strip():
        return {}
    if media_type != FORM_MEDIA_TYPE:
        raise FormProblem(415, f"this form posts {FORM_MEDIA_TYPE}")
    try:
        parsed = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                                       max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise FormProblem(400, "the form's fields could not be read") from None
    return {name: values[0] for name, values in parsed.items()}
