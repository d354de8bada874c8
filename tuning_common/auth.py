"""Bearer-token access control, shared by every process of the suite.

Two roles: a ``read`` token may call the read-only RPCs (:func:`is_read_only`), a ``write``
token may call everything. Servers get their tokens from ``--tokens-file`` /
``$TUNING_TOKENS_FILE`` and/or ``$TUNING_TOKENS``; with none configured, access control is
off. Clients send ``$TUNING_TOKEN`` (or the ``token`` they are given) as
``authorization: Bearer <token>`` metadata on every call.

The token store and the read/write classification are plain Python, independent of gRPC,
so that an HTTP front end checks requests with the same code::

    tokens = load_tokens(path, os.environ.get(TOKENS_ENV))       # None: access control off
    principal = tokens.check(request.headers.get("authorization"),
                             read_only=is_read_only("/tuning.suggestion.v1.SuggestionService/GetStudy"))

``check`` raises :class:`~tuning_common.errors.Unauthenticated` (reason ``TOKEN_MISSING`` or
``TOKEN_INVALID``) or :class:`~tuning_common.errors.PermissionDenied` (``READ_ONLY_TOKEN``).
The gRPC side is thin: :class:`AuthInterceptor` (server) and :func:`authorized_channel`
(clients).

Tokens never leave this module: only their SHA-256 digests are kept, a presented token is
compared with every stored digest in constant time (:func:`hmac.compare_digest`), and no
message or log line contains a token (nor any field of a malformed line, which might be one).
"""

from __future__ import annotations

import collections
import contextvars
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from tuning_common.errors import InvalidArgument, PermissionDenied, TuningError, Unauthenticated
from tuning_common.grpc_errors import abort_with_error

log = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
ROLES = (READ, WRITE)
MIN_TOKEN_LENGTH = 16

TOKENS_FILE_ENV = "TUNING_TOKENS_FILE"
TOKENS_ENV = "TUNING_TOKENS"
CLIENT_TOKEN_ENV = "TUNING_TOKEN"
METADATA_KEY = "authorization"

UNAUTHENTICATED_MESSAGE = "missing or invalid bearer token"
READ_ONLY_MESSAGE = "this token may only read"

# Printable ASCII without spaces or commas: what an HTTP header and gRPC metadata carry as is,
# and what the comma-separated $TUNING_TOKENS can hold (`secrets.token_urlsafe(32)` qualifies).
_TOKEN_CHARS = re.compile(r"[\x21-\x2b\x2d-\x7e]+")


# --- which RPCs only read ---------------------------------------------------------------------

_SUGGESTION = "/tuning.suggestion.v1.SuggestionService/"
_TRACKING = "/tuning.tracking.v1.TrackingService/"
_REGISTRY = "/tuning.tracking.v1.ModelRegistryService/"

# Reviewed one by one against the protos: each of these only reads. Everything else (creates,
# updates, deletes, logging, uploads, and also SuggestTrials, Heartbeat, LinkRun and the other
# calls of the trial protocol, which lease and change trials) needs a write token, and so does
# any RPC not listed here: a new RPC is a write until it is added (tests/unit/test_auth_tokens.py
# lists every RPC of the three services and fails until it is classified).
READ_ONLY_METHODS = frozenset({
    _SUGGESTION + "GetStudy",
    _SUGGESTION + "ListStudies",
    _SUGGESTION + "GetTrial",
    _SUGGESTION + "ListTrials",
    _SUGGESTION + "ListMeasurements",
    _SUGGESTION + "GetBestTrials",
    _SUGGESTION + "GetPopulation",
    _SUGGESTION + "GetParameterImportance",
    _SUGGESTION + "ListStudyPermissions",
    _TRACKING + "GetExperiment",
    _TRACKING + "GetExperimentByName",
    _TRACKING + "SearchExperiments",
    _TRACKING + "GetRun",
    _TRACKING + "SearchRuns",
    _TRACKING + "GetMetricHistory",
    _TRACKING + "DownloadArtifact",
    _TRACKING + "ListArtifacts",
    _TRACKING + "GetLoggedModel",
    _TRACKING + "SearchLoggedModels",
    _TRACKING + "ListExperimentPermissions",
    _REGISTRY + "GetRegisteredModel",
    _REGISTRY + "SearchRegisteredModels",
    _REGISTRY + "GetModelVersion",
    _REGISTRY + "SearchModelVersions",
    _REGISTRY + "GetModelVersionByAlias",
    _REGISTRY + "GetModelVersionDownloadUri",
    _REGISTRY + "ListRegistryEvents",
    _REGISTRY + "GetWebhook",
    _REGISTRY + "ListWebhooks",
    _REGISTRY + "ListWebhookDeliveries",
    _REGISTRY + "ListRegisteredModelPermissions",
})

# Probes and tooling: health checking and server reflection need no token.
OPEN_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
})


def _normalise(full_method: str) -> str:
    return full_method if full_method.startswith("/") else "/" + full_method


def is_read_only(full_method: str) -> bool:
    """Whether ``/package.Service/Method`` only reads (a ``read`` token may call it).
    Unknown methods are not read-only."""
    return _normalise(full_method) in READ_ONLY_METHODS


def is_open(full_method: str) -> bool:
    """Whether the method needs no token at all (health checking, reflection)."""
    return _normalise(full_method)[1:].partition("/")[0] in OPEN_SERVICES


# --- the token store --------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to: its name (from the tokens file, or where it was defined), its
    role, and the groups it is in (from the tokens file; roles per resource may name them)."""

    name: str
    role: str
    groups: frozenset[str] = frozenset()

    @property
    def can_write(self) -> bool:
        return self.role == WRITE


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def bearer_token(authorization: str | bytes | None) -> str | None:
    """The token of an ``authorization`` value ``Bearer <token>`` (scheme case-insensitive);
    None when the value is missing or empty, "" when it is malformed."""
    if isinstance(authorization, bytes):
        try:
            authorization = authorization.decode("ascii")
        except UnicodeDecodeError:
            return ""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return credentials.strip()


class TokenStore:
    """The tokens a server accepts, as SHA-256 digests with their principal.

    Build it with :func:`load_tokens` (or :meth:`parse`); check a request with
    :meth:`check` (an ``authorization`` header value) or :meth:`authenticate` and
    :meth:`authorize` (a bare token).
    """

    def __init__(self, entries: Iterable[tuple[str, str, str] | tuple[str, str, str, frozenset[str]]] = ()):
        """``entries``: ``(role, token, name)`` or ``(role, token, name, groups)``, already validated."""
        self._entries = tuple((_digest(token), Principal(name, role, frozenset(groups[0]) if groups else frozenset()))
                              for role, token, name, *groups in entries)

    @classmethod
    def parse(cls, text: str, source: str, *, commas: bool = False) -> TokenStore:
        """Parses lines ``<role> <token> [name [group,group...]]`` (``#`` comments, blank lines); with ``commas``
        an entry also ends at a comma. Raises InvalidArgument naming ``source`` and the line
        (or entry) number, never the token."""
        return cls(_parse(text, source, commas=commas))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the digests
        roles = collections.Counter(principal.role for _, principal in self._entries)
        return f"TokenStore({roles[READ]} read, {roles[WRITE]} write)"

    def merged(self, other: TokenStore) -> TokenStore:
        """Both stores' tokens; a token in both is refused (it could have two roles)."""
        mine = {digest for digest, _ in self._entries}
        if any(digest in mine for digest, _ in other._entries):
            raise InvalidArgument("tokens", "the same token is configured twice (in the file and in $TUNING_TOKENS)",
                                  reason="INVALID_TOKENS")
        merged = TokenStore()
        merged._entries = self._entries + other._entries
        return merged

    def authenticate(self, token: str | None) -> Principal:
        """The principal of ``token``, or Unauthenticated (TOKEN_MISSING, TOKEN_INVALID).

        The presented token's digest is compared with every stored digest, each in constant
        time, so the time taken says nothing about which token matched or how closely."""
        if token is None:
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE, reason="TOKEN_MISSING")
        if not token or not token.isascii():
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE, reason="TOKEN_INVALID")
        presented = _digest(token)
        found = None
        for stored, principal in self._entries:
            if hmac.compare_digest(presented, stored):
                found = principal
        if found is None:
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE, reason="TOKEN_INVALID")
        return found

    @staticmethod
    def authorize(principal: Principal, *, read_only: bool) -> None:
        """PermissionDenied (READ_ONLY_TOKEN) when a read token calls something that writes."""
        if not read_only and not principal.can_write:
            raise PermissionDenied(READ_ONLY_MESSAGE, reason="READ_ONLY_TOKEN")

    def check(self, authorization: str | bytes | None, read_only: bool) -> Principal:
        """Checks an ``authorization`` value (``Bearer <token>``) for a call that only reads or
        not (see :func:`is_read_only`). Returns the principal; raises Unauthenticated
        (TOKEN_MISSING, TOKEN_INVALID) or PermissionDenied (READ_ONLY_TOKEN)."""
        principal = self.authenticate(bearer_token(authorization))
        self.authorize(principal, read_only=read_only)
        return principal


def _parse(text: str, source: str, *, commas: bool) -> list[tuple[str, str, str, frozenset[str]]]:
    lines = text.splitlines()
    where = "line"
    if commas:
        lines = [entry for line in lines for entry in line.split(",")]
        where = "entry"
    entries: list[tuple[str, str, str, frozenset[str]]] = []
    seen: dict[bytes, int] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        for index, value in enumerate(fields):
            if value.startswith("#"):  # a comment runs to the end of the line
                fields = fields[:index]
                break
        if not fields:
            continue

        def error(problem: str, number: int = number) -> InvalidArgument:
            # Never a field of the line: a token put in the wrong place would be echoed.
            return InvalidArgument(source, f"{where} {number}: {problem}", reason="INVALID_TOKENS")

        # Groups are comma-separated, so only the tokens file can name them ($TUNING_TOKENS
        # splits its entries at commas).
        if len(fields) not in ((2, 3) if commas else (2, 3, 4)):
            raise error("expected '<role> <token> [name]'" if commas else "expected '<role> <token> [name [groups]]'")
        role, token = fields[0], fields[1]
        if role not in ROLES:
            raise error("the role must be 'read' or 'write'")
        if not _TOKEN_CHARS.fullmatch(token):
            raise error("a token is printable ASCII without spaces or commas")
        if len(token) < MIN_TOKEN_LENGTH:
            raise error(f"a token has at least {MIN_TOKEN_LENGTH} characters")
        digest = _digest(token)
        if digest in seen:
            raise error(f"the same token as {where} {seen[digest]}")
        seen[digest] = number
        name = fields[2] if len(fields) >= 3 else f"{source} {where} {number}"
        groups = frozenset(fields[3].split(",")) if len(fields) == 4 else frozenset()
        if "" in groups:
            raise error("groups are names separated by single commas")
        entries.append((role, token, name, groups))
    return entries


def load_tokens(path: str | os.PathLike | None, env_text: str | None = None) -> TokenStore | None:
    """The tokens of the file at ``path`` and of ``env_text`` (``$TUNING_TOKENS``: entries
    separated by newlines or commas), or None when neither is given: access control off.

    A file or a non-blank variable without any token is an error rather than "off", and so is
    an unreadable file or a malformed entry (InvalidArgument naming the line, never the token).
    """
    stores: list[tuple[str, TokenStore]] = []
    if path:
        source = f"tokens file {os.fspath(path)}"
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            problem = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
            raise InvalidArgument(source, f"cannot read it: {problem}", reason="INVALID_TOKENS") from None
        stores.append((source, TokenStore.parse(text, source)))
    if env_text and env_text.strip():
        stores.append((f"${TOKENS_ENV}", TokenStore.parse(env_text, f"${TOKENS_ENV}", commas=True)))
    if not stores:
        return None
    for source, store in stores:
        if not len(store):
            raise InvalidArgument(source, "no token in it (leave it out to turn access control off)",
                                  reason="INVALID_TOKENS")
    tokens = stores[0][1]
    for _, store in stores[1:]:
        tokens = tokens.merged(store)
    return tokens


def tokens_from_environment(path: str | os.PathLike | None = None) -> TokenStore | None:
    """:func:`load_tokens` of ``path`` (default ``$TUNING_TOKENS_FILE``) and ``$TUNING_TOKENS``."""
    return load_tokens(path if path is not None else os.environ.get(TOKENS_FILE_ENV), os.environ.get(TOKENS_ENV))


# --- gRPC: servers ----------------------------------------------------------------------------

# The principal of the call being served, for what runs after authentication (the roles of
# tuning_common.access). grpc.aio runs a call's interceptors and its handler in one task, and
# the error-mapping interceptor carries the task's context into its threads.
_CURRENT_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal | None:
    """Who makes the call being served; None with access control off (or outside a call)."""
    return _CURRENT_PRINCIPAL.get()



class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid token, and writes by read tokens, before any handler runs.

    Placed before the error-mapping interceptor (:func:`tuning_common.grpc_server.start_server`);
    a refusal is the domain error's status with its ErrorInfo, made by
    :func:`tuning_common.grpc_errors.abort_with_error`, for every kind of handler (unary and
    streaming). Health checking and reflection stay open.
    """

    def __init__(self, tokens: TokenStore):
        self.tokens = tokens

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if is_open(method):
            return await continuation(handler_call_details)
        values = [value for key, value in handler_call_details.invocation_metadata or () if key == METADATA_KEY]
        principal = None
        try:
            if len(values) > 1:  # which one would count? neither
                raise Unauthenticated(UNAUTHENTICATED_MESSAGE, reason="TOKEN_INVALID")
            principal = self.tokens.authenticate(bearer_token(values[0] if values else None))
            self.tokens.authorize(principal, read_only=is_read_only(method))
        except TuningError as error:
            handler = await continuation(handler_call_details)
            return None if handler is None else _refusing(handler, method, error, principal)
        log.debug("%s by %s (%s token)", method, principal.name, principal.role)
        _CURRENT_PRINCIPAL.set(principal)
        return await continuation(handler_call_details)


def _refusing(handler: grpc.RpcMethodHandler, method: str, error: TuningError,
              principal: Principal | None) -> grpc.RpcMethodHandler:
    who = "" if principal is None else f" ({principal.role} token {principal.name})"

    async def refuse(_request_or_iterator, context: grpc.aio.ServicerContext) -> None:
        log.info("refused %s from %s%s: %s", method, context.peer(), who, error.reason)
        await abort_with_error(context, error)

    async def refuse_streaming(request_or_iterator, context: grpc.aio.ServicerContext):
        await refuse(request_or_iterator, context)
        yield  # never reached: abort ends the call before any message is written

    # Abort ends the call before any message is read or written. Response streams get an
    # async generator, as interceptors around this one (telemetry's) iterate them.
    for kind in ("unary_unary", "stream_unary"):
        if getattr(handler, kind) is not None:
            return handler._replace(**{kind: refuse})
    for kind in ("unary_stream", "stream_stream"):
        if getattr(handler, kind) is not None:
            return handler._replace(**{kind: refuse_streaming})
    return handler


# --- gRPC: clients ----------------------------------------------------------------------------


def client_token(token: str | None = None) -> str | None:
    """``token``, or ``$TUNING_TOKEN`` when it is None; "" (either way) means no token."""
    if token is None:
        token = os.environ.get(CLIENT_TOKEN_ENV)
    return token or None


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                            "compression")),
    grpc.ClientCallDetails,
):
    pass


class BearerTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call, unary and streaming."""

    def __init__(self, token: str):
        if not _TOKEN_CHARS.fullmatch(token):
            raise InvalidArgument("token", "a token is printable ASCII without spaces or commas")
        self._header = (METADATA_KEY, f"Bearer {token}")

    def __repr__(self) -> str:
        return "BearerTokenInterceptor(<token>)"

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [item for item in (details.metadata or ()) if item[0] != METADATA_KEY]
        metadata.append(self._header)
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def authorized_channel(channel: grpc.Channel, token: str | None) -> grpc.Channel:
    """``channel`` sending ``token`` with every call (``channel`` itself when there is no token)."""
    if not token:
        return channel
    return grpc.intercept_channel(channel, BearerTokenInterceptor(token))
