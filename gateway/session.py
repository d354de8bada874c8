"""Browser sessions for the dashboard when bearer tokens are on: the cookie, the CSRF token, the
``Origin`` rule and the ``next`` of the login page. Plain functions; the :class:`gateway.app.Guard`
applies them to every request, and the login page (:mod:`gateway.dashboard.login`) sets and
clears the cookie.

**The cookie carries the token itself** (base64url, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``,
a bounded ``Max-Age``; over HTTPS it is ``Secure`` and named with the ``__Host-`` prefix, which
the browser only accepts from this very origin, so a sibling domain cannot plant one). So the
gateway keeps no session state: any replica that knows the token (they all read the same
tokens file) checks the cookie as it checks an ``Authorization`` header, a session ends when
its token is removed from the tokens file, and the services see the token as bearer metadata
and check it again. A separate session secret would add a second thing to share between
replicas and to rotate, and would not make a stolen cookie less useful: a session is never
worth more than the token it was made from.

**The CSRF token** is HMAC-SHA256 keyed by the session's token over a fixed label: every replica
derives the same value, it reveals nothing of the token, and it changes when the token does.
Pages carry it in ``<meta name="csrf-token">``; scripts send it as ``x-csrf-token``. A page on
another site can neither read it nor send a custom header without a CORS preflight, which the
gateway never grants.

**SameSite=Lax rather than Strict:** Strict withholds the cookie on every navigation that starts
on another site, so a link to a study shared in a chat or a ticket would land on the login page
though the user is logged in (and the dashboard's views are made to be shared by URL). Lax sends
it on such top-level GETs only; GETs never change anything here, and every write needs the
CSRF header anyway (and gets the cookie only from this site's own pages).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import urllib.parse
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from tuning_common.auth import WRITE, Principal

LOGIN_PATH = "/ui/login"
LOGOUT_PATH = "/ui/logout"
# Single sign-on (gateway.dashboard.sso): where the login page's link starts it, and where the
# provider sends the browser back.
SSO_START_PATH = LOGIN_PATH + "/sso"
SSO_CALLBACK_PATH = LOGIN_PATH + "/callback"
STATIC_PREFIX = "/ui/static/"
HOME = "/ui/"

COOKIE_NAME = "tuning-session"
# Over HTTPS: the browser takes a __Host- cookie only if it is Secure, has Path=/ and no Domain.
SECURE_COOKIE_NAME = "__Host-tuning-session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"  # the logout form's hidden field (a form cannot set a header)
CSRF_LABEL = b"tuning-gateway dashboard CSRF token v1"
SESSION_SECONDS = 8 * 3600  # a working day
MAX_SESSION_SECONDS = 30 * 24 * 3600
MAX_NEXT_LENGTH = 2048

CSRF_MESSAGE = "missing or invalid CSRF token (send the page's csrf-token as the x-csrf-token header)"
CROSS_ORIGIN_MESSAGE = "cross-origin request refused: it does not come from this gateway's own pages"

# Where the Guard leaves the request's cookie session for the handlers (None: none).
SCOPE_KEY = "tuning.session"


@dataclass(frozen=True)
class Session:
    """A request authenticated by the session cookie (not by an ``Authorization`` header)."""

    name: str
    role: str
    csrf: str
    token: str = field(repr=False)

    @classmethod
    def of(cls, principal: Principal, token: str) -> Session:
        """The session of ``token``, which authenticated as ``principal``."""
        return cls(principal.name, principal.role, csrf_token(token), token)

    @property
    def can_write(self) -> bool:
        return self.role == WRITE


# The session of the request being handled, for the templates (set by the Guard around the app).
current: ContextVar[Session | None] = ContextVar("tuning_session", default=None)


def cookie_name(scheme: str) -> str:
    return SECURE_COOKIE_NAME if scheme in ("https", "wss") else COOKIE_NAME


def encode_cookie(token: str) -> str:
    # A token may hold `"`, `;` or `\`, which a cookie value cannot: base64url has none of them.
    return base64.urlsafe_b64encode(token.encode("ascii")).decode("ascii").rstrip("=")


def decode_cookie(value: str) -> str | None:
    """The token in a cookie value; None when it is not one (never an exception)."""
    value = value.strip().strip('"')
    if not value or len(value) > 4096:
        return None
    try:
        token = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return token or None


def cookie_token(cookie_headers: Iterable[str], scheme: str) -> str | None:
    """The token of the session cookie among ``Cookie`` header values; None when there is none,
    or when several differ (one may have been planted, and which is meant cannot be told)."""
    wanted = cookie_name(scheme)
    values = set()
    for header in cookie_headers:
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip() == wanted:
                values.add(value.strip())
    if len(values) != 1:
        return None
    return decode_cookie(values.pop())


def csrf_token(token: str) -> str:
    """The CSRF token of a session made from ``token``: the same on every replica, and no way
    back to the token."""
    mac = hmac.new(token.encode("ascii"), CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def csrf_valid(token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented.strip().encode("ascii", "replace"), csrf_token(token).encode("ascii"))


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        parts = urllib.parse.urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None:
        return None
    default = {"http": 80, "https": 443}.get(scheme)
    return parts.hostname.lower(), port if port is not None else default


def same_origin(headers: Mapping[str, str], scheme: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether a browser says the request comes from this gateway's own pages.

    ``Sec-Fetch-Site`` when the browser sends it (it is computed by the browser against the
    address the user sees, so it holds behind a proxy too): ``same-origin``, or ``none`` for
    what the user did themselves. Otherwise ``Origin`` when present: the same host and port as
    the ``Host`` header, or a host name of the gateway's allow-list (``--allowed-hosts``; not
    ``*``). Otherwise (no browser: curl, scripts) yes: a cross-site request in a browser always
    has one of the two headers.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return True
    parts = urllib.parse.urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed frame, a file), or nonsense
    theirs = _host_port(parts.netloc, parts.scheme)
    if theirs is None:
        return False
    ours = _host_port(headers.get("host", ""), scheme)
    if ours is not None and theirs[0] == ours[0] and (theirs[1] == ours[1] or ours[1] is None):
        return True
    return theirs[0] in {host.lower() for host in allowed_hosts if host != "*"}


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this gateway (``/ui/studies/x?y=1``), else the dashboard's
    home: never another site (``//evil.example``, ``/\\evil.example``, ``https://...``), never
    the login page itself."""
    if not value or len(value) > MAX_NEXT_LENGTH or not value.startswith("/"):
        return HOME
    if value.startswith("//") or "\\" in value or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return HOME
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return HOME
    if parts.path.rstrip("/") in (LOGIN_PATH, LOGOUT_PATH) or parts.path.startswith(LOGIN_PATH + "/"):
        return HOME
    return value


def login_url(raw_path: bytes, query_string: bytes) -> str:
    """The login page, coming back to the request's path and query afterwards."""
    here = raw_path.decode("latin-1") or "/"
    if query_string:
        here += "?" + query_string.decode("latin-1")
    if not here.isascii() or safe_next(here) != here:
        return LOGIN_PATH
    return LOGIN_PATH + "?" + urllib.parse.urlencode({"next": here})


def is_page(method: str, path: str) -> bool:
    """A dashboard page, which sends a browser without a session to the login page (rather than
    a 401): GETs under /ui/ but for its JSON (``/ui/api/``), which scripts read."""
    if method not in ("GET", "HEAD"):
        return False
    return path in ("/", "/ui") or (path.startswith("/ui/") and not path.startswith("/ui/api/"))


def is_open(method: str, path: str) -> bool:
    """What anyone may ask without a token: the login page and single sign-on's two steps,
    logging out (it only forgets this browser's cookie) and the dashboard's static files
    (package data, the same for everyone)."""
    if path == LOGIN_PATH:
        return method in ("GET", "HEAD", "POST")
    if path in (SSO_START_PATH, SSO_CALLBACK_PATH):
        return method == "GET"
    if path == LOGOUT_PATH:
        return method == "POST"
    return method in ("GET", "HEAD") and path.startswith(STATIC_PREFIX)


def is_form_post(method: str, path: str) -> bool:
    """The two HTML forms that post to the gateway (``application/x-www-form-urlencoded``)."""
    return method == "POST" and path in (LOGIN_PATH, LOGOUT_PATH)


def cookie_header(token: str, *, secure: bool, max_age: int) -> str:
    """A ``Set-Cookie`` value holding ``token``."""
    attributes = ["Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    return "; ".join([f"{cookie_name('https' if secure else 'http')}={encode_cookie(token)}", *attributes])


def clearing_cookie_header(*, secure: bool) -> str:
    """A ``Set-Cookie`` value that removes the session cookie."""
    attributes = ["Path=/", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    return "; ".join([f"{cookie_name('https' if secure else 'http')}=", *attributes])
