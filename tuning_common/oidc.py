"""OpenID Connect: bearer JWTs checked against an OpenID provider's published keys.

Servers built with ``--oidc-issuer`` accept, beside their static tokens
(:class:`tuning_common.auth.Authenticator`), JWTs that the provider signed: ID tokens, or JWT
access tokens (RFC 9068). A token is accepted when

- its header names an asymmetric algorithm (RS*, PS*, ES*): ``none`` and the HMAC algorithms
  (HS*) are refused outright, as a provider's public key must never serve as an HMAC secret;
- its signature verifies with the key of its ``kid`` in the provider's JWKS;
- ``iss`` is exactly the configured issuer, ``aud`` names one of the configured audiences;
- ``exp`` has not passed and ``nbf``/``iat`` are not in the future (``leeway`` seconds of
  clock skew allowed either way).

Refusals are :class:`~tuning_common.errors.Unauthenticated` with a reason (TOKEN_EXPIRED,
TOKEN_NOT_YET_VALID, TOKEN_WRONG_ISSUER, TOKEN_WRONG_AUDIENCE, TOKEN_INVALID); messages never
hold the token. While the provider cannot be reached and no key is known, JWTs get
:class:`~tuning_common.errors.Unavailable` (OIDC_PROVIDER_UNAVAILABLE); static tokens keep
working.

**Keys.** Discovery (``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must equal the
configured one) and the JWKS are fetched on first need and cached. A token signed by a ``kid``
the cache lacks makes it fetch the JWKS again, and so does a cache older than
``max_key_age`` (a key the provider removed stops being accepted then); fetches are at most one
per ``min_refresh`` seconds, so a flood of tokens with made-up ``kid`` values costs the provider
one request per interval. A failed refresh keeps the keys already known. So a provider rotating
its signing key needs no restart here: the first token with the new ``kid`` brings the new key.

**At start** :meth:`OidcProvider.check_at_start` fetches discovery and the keys: a provider that answers
with another ``issuer`` is a configuration error (InvalidArgument naming ``--oidc-issuer``), one
that cannot be reached only logs a warning, and is tried again when a JWT comes: the servers do
not depend on the provider's being up first, and static tokens work meanwhile.

A token's signature is verified once and remembered by its SHA-256 with the key that verified
it (forgotten when the key set changes); its claims are checked on every call.

The fetches are blocking (``urllib``, ``timeout`` seconds) and happen only on a cache miss or
expiry, rate-limited as above.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jwt
from jwt.exceptions import InvalidKeyError, PyJWKError, PyJWTError

from tuning_common.auth import READ, WRITE, BearerChecks, Principal, looks_like_jwt
from tuning_common.errors import InvalidArgument, Unauthenticated, Unavailable
from tuning_common.settings import add_option

log = logging.getLogger(__name__)

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 1024 * 1024
LEEWAY_SECONDS = 30.0
MIN_REFRESH_SECONDS = 30.0
MAX_KEY_AGE_SECONDS = 3600.0
FETCH_TIMEOUT_SECONDS = 5.0
VERIFIED_CACHE_SIZE = 4096

INVALID_MESSAGE = "invalid bearer token"


def _unauthenticated(detail: str, reason: str = "TOKEN_INVALID") -> Unauthenticated:
    return Unauthenticated(f"{INVALID_MESSAGE}: {detail}", reason=reason)


def check_url(url: str, setting: str) -> str:
    """``url`` when it is https, or http to a loopback address (a provider on the same host, as
    in tests); InvalidArgument naming ``setting`` otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
    raise InvalidArgument(setting, "an https:// URL (http:// only to localhost)", reason="INVALID_OIDC_SETTINGS")


def fetch_json(url: str, *, timeout: float, data: bytes | None = None,
               headers: Mapping[str, str] | None = None) -> dict:
    """GETs (or POSTs ``data``) ``url`` and returns its JSON object; raises OSError (network
    failures, HTTP errors) or ValueError (not a JSON object, too large)."""
    request = urllib.request.Request(url, data=data, headers={"accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URLs checked by check_url)
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except http.client.HTTPException as error:  # a truncated or malformed answer: not an OSError
        raise OSError(f"a broken HTTP answer ({type(error).__name__})") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"more than {MAX_DOCUMENT_BYTES} bytes")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


class OidcProvider:
    """An OpenID provider's discovery document and signing keys, fetched and cached (see the
    module's docstring). Thread-safe."""

    def __init__(self, issuer: str, *, timeout: float = FETCH_TIMEOUT_SECONDS,
                 min_refresh: float = MIN_REFRESH_SECONDS, max_key_age: float = MAX_KEY_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.issuer = check_url(issuer, "--oidc-issuer")
        self.timeout = timeout
        self.min_refresh = min_refresh
        self.max_key_age = max_key_age
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._keys: dict[str | None, dict] | None = None
        self._prepared: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._keys_at = 0.0
        self._last_attempt: float | None = None

    def __repr__(self) -> str:
        return f"OidcProvider({self.issuer!r})"

    def _discover(self) -> dict:
        """The discovery document (fetched once); Unavailable when the provider cannot be
        reached, InvalidArgument when it names another issuer. Call with the lock held."""
        if self._metadata is not None:
            return self._metadata
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            metadata = fetch_json(url, timeout=self.timeout)
        except (OSError, ValueError) as error:
            raise Unavailable(f"the OpenID provider {self.issuer} cannot be reached: {_describe(error)}",
                              reason="OIDC_PROVIDER_UNAVAILABLE") from None
        if metadata.get("issuer") != self.issuer:
            raise InvalidArgument("--oidc-issuer", f"the provider at {url} says its issuer is "
                                                   f"{metadata.get('issuer')!r}, not {self.issuer!r}: the setting "
                                                   "must be the issuer exactly as the provider names it",
                                  reason="INVALID_OIDC_SETTINGS")
        if not isinstance(metadata.get("jwks_uri"), str):
            raise InvalidArgument("--oidc-issuer", f"the provider's discovery document ({url}) has no jwks_uri",
                                  reason="INVALID_OIDC_SETTINGS")
        check_url(metadata["jwks_uri"], "the provider's jwks_uri")
        self._metadata = metadata
        return metadata

    def metadata(self) -> dict:
        """The provider's discovery document (its endpoints)."""
        with self._lock:
            return self._discover()

    def check_at_start(self) -> None:
        """Fetches discovery and the keys now (so that the first JWT need not wait for them):
        InvalidArgument when the provider names another issuer; a warning only when it cannot be
        reached (tried again when a token needs it)."""
        with self._lock:
            try:
                self._discover()
            except Unavailable as error:
                log.warning("%s; JWTs are refused until it answers (static tokens still work)", error.message)
                return
            self._last_attempt = self._clock()
            self._refresh(self._last_attempt)

    def signing_key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The provider's public key ``kid`` for ``algorithm``; the JWKS is fetched again
        (rate-limited) when the key is unknown or the cache is old."""
        with self._lock:
            now = self._clock()
            stale = self._keys is None or now - self._keys_at > self.max_key_age
            if stale or _find(self._keys, kid, algorithm) is None:
                due = self._last_attempt is None or now - self._last_attempt >= self.min_refresh
                if due:
                    self._last_attempt = now
                    self._refresh(now)
            if self._keys is None:
                raise Unavailable(f"no signing key of the OpenID provider {self.issuer} is known yet: it could not "
                                  "be reached", reason="OIDC_PROVIDER_UNAVAILABLE")
            found = _find(self._keys, kid, algorithm)
            if found is None:
                raise _unauthenticated("not signed by a key that the OpenID provider publishes")
            # The same object while the key set lasts: JwtVerifier's cache of verified tokens
            # is keyed by it, so a refresh that drops a key drops its tokens too.
            prepared = self._prepared.get((found.get("kid"), algorithm))
            if prepared is None:
                try:
                    prepared = jwt.PyJWK(found, algorithm)
                except (PyJWKError, InvalidKeyError):
                    raise _unauthenticated("the provider's key does not fit the token's algorithm") from None
                self._prepared[(found.get("kid"), algorithm)] = prepared
            return prepared

    def _refresh(self, now: float) -> None:
        try:
            metadata = self._discover()
            document = fetch_json(metadata["jwks_uri"], timeout=self.timeout)
            keys = _signing_keys(document)
        except Unavailable as error:
            log.warning("%s", error.message)
            return
        except InvalidArgument as error:  # the provider came up naming another issuer
            log.error("%s: %s", error.field, error.description)
            return
        except (OSError, ValueError) as error:
            log.warning("cannot fetch the signing keys of the OpenID provider %s: %s", self.issuer, _describe(error))
            return
        if self._keys is None or set(keys) != set(self._keys):
            log.info("signing keys of %s: %s", self.issuer, ", ".join(sorted(str(kid) for kid in keys)) or "none")
        if keys != self._keys:
            self._prepared = {}
        self._keys, self._keys_at = keys, now


def _header(token: str) -> dict:
    """The JOSE header of a JWT-shaped token (not verified yet)."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise _unauthenticated("its header cannot be read") from None
    if not isinstance(header, dict):
        raise _unauthenticated("its header cannot be read")
    return header


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _signing_keys(document: dict) -> dict[str | None, dict]:
    """The JWKS's public signing keys by ``kid`` (keys for encryption, and symmetric keys, left out)."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ValueError("the JWKS has no 'keys' list")
    return {key.get("kid"): key for key in keys
            if isinstance(key, dict) and key.get("kty") in ("RSA", "EC") and key.get("use", "sig") == "sig"
            and "d" not in key}


def _find(keys: dict[str | None, dict] | None, kid: str | None, algorithm: str) -> dict | None:
    """The key for a token's ``kid`` and algorithm; without a ``kid``, the only key that fits."""
    if not keys:
        return None
    kty = KEY_TYPES[algorithm[:2]]
    if kid is None:
        fitting = [key for key in keys.values() if key.get("kty") == kty and key.get("alg", algorithm) == algorithm]
        return fitting[0] if len(fitting) == 1 else None
    key = keys.get(kid)
    if key is None or key.get("kty") != kty or key.get("alg", algorithm) != algorithm:
        return None
    return key


class JwtVerifier(BearerChecks):
    """Checks JWTs of one provider for a set of audiences, and makes principals of them.

    :class:`tuning_common.auth.Authenticator` combines it with the static tokens. A valid token
    is a ``write`` principal, unless ``writer_groups`` are given and it is in none of them: then
    it is a ``read`` principal (finer permissions are for per-resource roles).
    """

    def __init__(self, provider: OidcProvider, audiences: Iterable[str], *, username_claim: str = "sub",
                 groups_claim: str = "groups", writer_groups: Iterable[str] = (), leeway: float = LEEWAY_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.provider = provider
        self.audiences = tuple(dict.fromkeys(a for a in audiences if a))
        if not self.audiences:
            raise InvalidArgument("--oidc-audience", "at least one audience (the client id of the dashboard, "
                                                     "or the API's audience) when --oidc-issuer is set",
                                  reason="INVALID_OIDC_SETTINGS")
        self.username_claim = username_claim
        self.groups_claim = groups_claim
        self.writer_groups = frozenset(writer_groups)
        self.leeway = leeway
        self._clock = clock
        # Tokens whose signature verified, by SHA-256 digest, with the key that verified them:
        # a client sends the same token for many calls, and the signature is most of the cost.
        # The claims are checked again on every call (expiry, audience, issuer).
        self._verified: dict[bytes, tuple[jwt.PyJWK, dict]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JwtVerifier({self.provider.issuer!r}, audiences={list(self.audiences)!r})"

    def claims(self, token: str, *, audiences: Iterable[str] | None = None, nonce: str | None = None) -> dict:
        """The claims of a valid ``token`` for ``audiences`` (default: the configured ones),
        with ``nonce`` when one is expected (an ID token of a login)."""
        if not token or not token.isascii() or not looks_like_jwt(token):
            raise _unauthenticated("not a JWT")
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise _unauthenticated("its signing algorithm is not accepted (only RS*, PS* and ES*)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _unauthenticated("its kid is not a string")
        key = self.provider.signing_key(kid, algorithm)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is not None and cached[0] is key:
            claims = cached[1]
        else:
            try:
                claims = jwt.decode(token, key.key, algorithms=[algorithm],
                                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                             "verify_aud": False, "verify_iss": False})
            except PyJWTError:
                raise _unauthenticated("its signature does not verify") from None
            with self._lock:
                self._verified[digest] = (key, claims)
                if len(self._verified) > VERIFIED_CACHE_SIZE:
                    del self._verified[next(iter(self._verified))]
        self._check_claims(claims, self.audiences if audiences is None else tuple(audiences), nonce)
        return claims

    def _check_claims(self, claims: dict, audiences: tuple[str, ...], nonce: str | None) -> None:
        if claims.get("iss") != self.provider.issuer:
            raise _unauthenticated("it was issued by another issuer", "TOKEN_WRONG_ISSUER")
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in audiences for a in aud):
            raise _unauthenticated("it is meant for another audience", "TOKEN_WRONG_AUDIENCE")
        now = self._clock()
        times = {name: claims.get(name) for name in ("exp", "nbf", "iat")}
        for name, value in times.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise _unauthenticated(f"its {name} is not a number")
        if times["exp"] is None:
            raise _unauthenticated("it has no expiry (exp)")
        if now > times["exp"] + self.leeway:
            raise _unauthenticated("it has expired", "TOKEN_EXPIRED")
        if times["nbf"] is not None and now + self.leeway < times["nbf"]:
            raise _unauthenticated("it is not valid yet (nbf)", "TOKEN_NOT_YET_VALID")
        if times["iat"] is not None and now + self.leeway < times["iat"]:
            raise _unauthenticated("it was issued in the future (iat)", "TOKEN_NOT_YET_VALID")
        if nonce is not None and claims.get("nonce") != nonce:
            raise _unauthenticated("its nonce is not this login's")

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal of valid claims: its name from the username claim, its groups from the
        groups claim (a list of strings, or one string)."""
        name = claims.get(self.username_claim)
        if not isinstance(name, str) or not name:
            raise _unauthenticated(f"it has no {self.username_claim!r} claim (--oidc-username-claim)")
        groups = claims.get(self.groups_claim, ())
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
            raise _unauthenticated(f"its {self.groups_claim!r} claim is not a list of strings (--oidc-groups-claim)")
        groups = frozenset(groups)
        writes = not self.writer_groups or bool(groups & self.writer_groups)
        return Principal(name, WRITE if writes else READ, groups)

    def authenticate(self, token: str | None) -> Principal:
        if token is None:
            raise Unauthenticated("missing or invalid bearer token", reason="TOKEN_MISSING")
        return self.principal(self.claims(token))


# --- settings ---------------------------------------------------------------------------------


def add_oidc_options(parser: argparse.ArgumentParser) -> None:
    """The flags that turn bearer JWTs on (every server: services and gateway)."""
    add_option(parser, "--oidc-issuer", env="TUNING_OIDC_ISSUER", default=None,
               help="accept JWTs of this OpenID provider (its issuer URL, exactly as its discovery document "
                    "names it); none: no JWTs")
    add_option(parser, "--oidc-audience", env="TUNING_OIDC_AUDIENCE", default="",
               help="comma-separated audiences a JWT must name one of (the dashboard's client id, and the "
                    "API's audience for access tokens); required with --oidc-issuer")
    add_option(parser, "--oidc-username-claim", env="TUNING_OIDC_USERNAME_CLAIM", default="sub",
               help="the claim naming the user (e.g. email, preferred_username)")
    add_option(parser, "--oidc-groups-claim", env="TUNING_OIDC_GROUPS_CLAIM", default="groups",
               help="the claim listing the user's groups")
    add_option(parser, "--oidc-writer-groups", env="TUNING_OIDC_WRITER_GROUPS", default="",
               help="comma-separated groups whose JWTs may write; JWTs of other users may only read "
                    "(default: every valid JWT may write)")


def verifier_from(args: argparse.Namespace, *, extra_audiences: Iterable[str] = ()) -> JwtVerifier | None:
    """The verifier of ``args`` (None without --oidc-issuer), its provider checked at start."""
    audiences = [a.strip() for a in (args.oidc_audience or "").split(",") if a.strip()]
    if not args.oidc_issuer:
        if audiences:
            raise InvalidArgument("--oidc-audience", "needs --oidc-issuer", reason="INVALID_OIDC_SETTINGS")
        return None
    for setting, claim in (("--oidc-username-claim", args.oidc_username_claim),
                           ("--oidc-groups-claim", args.oidc_groups_claim)):
        if not claim or not claim.strip():
            raise InvalidArgument(setting, "a claim name", reason="INVALID_OIDC_SETTINGS")
    writers = [group.strip() for group in (args.oidc_writer_groups or "").split(",") if group.strip()]
    verifier = JwtVerifier(OidcProvider(args.oidc_issuer), [*audiences, *extra_audiences],
                           username_claim=args.oidc_username_claim.strip(),
                           groups_claim=args.oidc_groups_claim.strip(), writer_groups=writers)
    verifier.provider.check_at_start()
    return verifier


def read_secret(value: str | None, path: str | None, setting: str) -> str | None:
    """A secret given in the environment, or in the file at ``path`` (its first line)."""
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                value = file.readline().strip()
        except (OSError, UnicodeDecodeError) as error:
            problem = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
            raise InvalidArgument(f"{setting}-file", f"cannot read {os.fspath(path)}: {problem}",
                                  reason="INVALID_OIDC_SETTINGS") from None
        if not value:
            raise InvalidArgument(f"{setting}-file", f"{os.fspath(path)} is empty", reason="INVALID_OIDC_SETTINGS")
    return value or None
