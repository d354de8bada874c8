"""The dashboard's session logic (gateway/session.py): the cookie, the CSRF token, the Origin
rule, the login page's ``next``, and which requests need what. The Guard's use of it is
tests/integration/test_dashboard_sessions.py; the browser flow tests/e2e/test_dashboard_login.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from gateway import session

WRITE = "write-token-0123456789abcdef"
READ = 'read"token;with\\odd_chars-0123456789'  # characters a cookie value cannot hold as they are


# --- the cookie --------------------------------------------------------------------------------


def test_the_cookie_carries_the_token_in_characters_a_cookie_may_hold():
    value = session.encode_cookie(READ)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", value)  # no `"`, `;`, `\` or `=`
    assert session.decode_cookie(value) == READ
    for broken in ("", "%%%", "a", "x" * 5000, "_-_", "\u00e9"):
        assert session.decode_cookie(broken) is None, broken


def test_the_cookie_is_found_by_its_name_for_the_scheme():
    value = session.encode_cookie(WRITE)
    assert session.cookie_token([f"a=b; tuning-session={value}; c=d"], "http") == WRITE
    assert session.cookie_token([f"tuning-session={value}"], "https") is None  # over HTTPS only __Host-
    assert session.cookie_token([f"__Host-tuning-session={value}"], "https") == WRITE
    assert session.cookie_token([f"__Host-tuning-session={value}"], "http") is None
    assert session.cookie_token(["other=1", f"tuning-session={value}"], "http") == WRITE  # two Cookie headers
    assert session.cookie_token([], "http") is None


def test_two_different_session_cookies_are_no_session():
    # A cookie planted for a parent domain comes along with ours: which one is meant cannot be told.
    planted, ours = session.encode_cookie(READ), session.encode_cookie(WRITE)
    assert session.cookie_token([f"tuning-session={planted}; tuning-session={ours}"], "http") is None
    assert session.cookie_token([f"tuning-session={ours}; tuning-session={ours}"], "http") == WRITE


def test_set_cookie_attributes():
    plain = session.cookie_header(WRITE, secure=False, max_age=3600)
    assert plain.startswith("tuning-session=")
    attributes = plain.split("; ")[1:]
    assert set(attributes) == {"Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"}
    secure = session.cookie_header(WRITE, secure=True, max_age=3600)
    assert secure.startswith("__Host-tuning-session=") and "Secure" in secure.split("; ")
    assert "Domain" not in secure  # __Host- cookies must not have one
    cleared = session.clearing_cookie_header(secure=False)
    assert cleared.startswith("tuning-session=;") and "Max-Age=0" in cleared


# --- the CSRF token ------------------------------------------------------------------------------


def test_the_csrf_token_is_an_hmac_of_a_label_keyed_by_the_token():
    csrf = session.csrf_token(WRITE)
    expected = hmac.new(WRITE.encode(), session.CSRF_LABEL, hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(csrf + "=") == expected
    assert csrf == session.csrf_token(WRITE)  # any replica derives the same
    assert csrf != session.csrf_token(READ)
    assert WRITE not in csrf and session.encode_cookie(WRITE) not in csrf
    assert hashlib.sha256(WRITE.encode()).hexdigest() not in csrf


def test_csrf_check():
    csrf = session.csrf_token(WRITE)
    assert session.csrf_valid(WRITE, csrf)
    assert session.csrf_valid(WRITE, f" {csrf} ")
    for wrong in (None, "", csrf[:-1], csrf + "x", session.csrf_token(READ), WRITE, "é" * 43):
        assert not session.csrf_valid(WRITE, wrong), wrong


# --- Origin / Sec-Fetch-Site ---------------------------------------------------------------------

ALLOWED = frozenset({"localhost", "127.0.0.1", "::1", "tuning.example.com"})


@pytest.mark.parametrize("headers, scheme, expected", [
    ({"host": "127.0.0.1:8080"}, "http", True),  # no browser
    ({"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"}, "http", True),
    ({"host": "LOCALHOST:8080", "origin": "http://localhost:8080"}, "http", True),
    ({"host": "gw.internal", "origin": "https://gw.internal"}, "https", True),  # default ports
    ({"host": "gw.internal:443", "origin": "https://gw.internal"}, "https", True),
    ({"host": "[::1]:8080", "origin": "http://[::1]:8080"}, "http", True),
    ({"host": "gateway:8080", "origin": "https://tuning.example.com"}, "http", True),  # an allowed host name
    ({"host": "127.0.0.1:8080", "origin": "https://evil.example"}, "http", False),
    ({"host": "127.0.0.1:8080", "origin": "http://127.0.0.1.evil.example"}, "http", False),
    ({"host": "gw.internal:8080", "origin": "http://gw.internal:9090"}, "http", False),
    ({"host": "127.0.0.1:8080", "origin": "null"}, "http", False),
    ({"host": "127.0.0.1:8080", "origin": "file://"}, "http", False),
    ({"host": "127.0.0.1:8080", "sec-fetch-site": "same-origin", "origin": "http://127.0.0.1:8080"}, "http", True),
    ({"host": "127.0.0.1:8080", "sec-fetch-site": "none"}, "http", True),
    ({"host": "127.0.0.1:8080", "sec-fetch-site": "cross-site", "origin": "http://127.0.0.1:8080"}, "http", False),
    ({"host": "localhost:8080", "sec-fetch-site": "same-site", "origin": "http://localhost:3000"}, "http", False),
])
def test_same_origin(headers, scheme, expected):
    assert session.same_origin(headers, scheme, ALLOWED) is expected


def test_a_wildcard_allow_list_allows_no_origin():
    headers = {"host": "127.0.0.1:8080", "origin": "https://evil.example"}
    assert not session.same_origin(headers, "http", frozenset({"*"}))


# --- next ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("/ui/studies/x?refresh=5", "/ui/studies/x?refresh=5"),
    ("/ui/studies/a%20b", "/ui/studies/a%20b"),
    ("/v1/studies", "/v1/studies"),
    (None, "/ui/"), ("", "/ui/"),
    ("https://evil.example", "/ui/"), ("//evil.example", "/ui/"), ("///evil.example", "/ui/"),
    ("/\\evil.example", "/ui/"), ("\\\\evil.example", "/ui/"), ("javascript:alert(1)", "/ui/"),
    ("/ui/x\r\nSet-Cookie: a=b", "/ui/"), ("/ui/x\t", "/ui/"), ("/ui/ x", "/ui/"),
    ("ui/studies", "/ui/"), ("/ui/login", "/ui/"), ("/ui/login/?next=//evil.example", "/ui/"),
    ("/ui/logout", "/ui/"), ("/" + "a" * 3000, "/ui/"),
])
def test_next_is_a_local_path(value, expected):
    assert session.safe_next(value) == expected


def test_the_login_url_comes_back_to_the_page():
    assert session.login_url(b"/ui/studies/a%20b", b"refresh=5") == "/ui/login?next=%2Fui%2Fstudies%2Fa%2520b%3Frefresh%3D5"
    assert session.login_url(b"/ui/", b"") == "/ui/login?next=%2Fui%2F"
    assert session.login_url(b"//evil.example/ui/", b"") == "/ui/login"


def test_which_paths_are_pages_and_which_are_open():
    assert session.is_page("GET", "/ui/studies") and session.is_page("HEAD", "/") and session.is_page("GET", "/ui")
    assert not session.is_page("GET", "/ui/api/studies/x") and not session.is_page("POST", "/ui/studies")
    assert not session.is_page("GET", "/v1/studies") and not session.is_page("GET", "/api/2.0/mlflow/runs/get")
    assert session.is_open("GET", "/ui/login") and session.is_open("POST", "/ui/login")
    assert session.is_open("POST", "/ui/logout") and session.is_open("GET", "/ui/static/common.js")
    assert not session.is_open("GET", "/ui/logout") and not session.is_open("DELETE", "/ui/static/common.js")
    assert not session.is_open("GET", "/ui/studies")


def test_a_session_never_shows_its_token():
    assert WRITE not in repr(session.Session("ci", "write", session.csrf_token(WRITE), WRITE))
