"""Server bootstrap shared by every gRPC service: one way to build, run and stop a server.

Servers run on grpc's asyncio implementation, on an event loop in a thread of their own
(so tests and the CLI drive them the same way). Each gets the error-mapping interceptor,
standard health checking (``grpc.health.v1``), server reflection (``grpc.reflection.v1``,
which grpcurl and newer tools ask for first, and ``v1alpha``), message size limits,
and a graceful stop: health turns NOT_SERVING, new calls are refused, in-flight calls
get ``grace`` seconds.

With tokens configured (``ServerOptions.tokens``, from ``--tokens-file`` and
``$TUNING_TOKENS``), the auth interceptor of :mod:`tuning_common.auth` runs first and
refuses calls without a valid bearer token (health and reflection stay open).

Handlers are plain functions. ``ServerOptions.inline`` decides where they run: on the
event loop thread (right for SQLite, one writer at a time: it saves a thread hand-off
per call) or on a pool of ``max_workers`` threads (PostgreSQL, whose transactions run
concurrently and may wait on row locks). See docs/BENCHMARKS.md for the difference.
Methods named in ``ServerOptions.offload``, which may wait long, run on a second pool either
way, so waiting calls never hold up the others.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from tuning_common import telemetry
from tuning_common.access import (
    ADMINS_ENV,
    DEFAULT_ROLE_ENV,
    EDITOR,
    NONE,
    READER,
    ROLES_ENV,
    Admins,
    Policy,
    RolesInterceptor,
)
from tuning_common.auth import TOKENS_ENV, AuthInterceptor, BearerChecks, authenticator, load_tokens
from tuning_common.errors import InvalidArgument, TuningError, Unavailable
from tuning_common.grpc_errors import ErrorMappingInterceptor
from tuning_common.oidc import add_oidc_options, verifier_from
from tuning_common.settings import add_option
from tuning_common.signals import wait_for_stop_signal
from tuning_common.tls import ServerTLS, add_tls_options

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


# grpcio-reflection (1.85) serves only grpc.reflection.v1alpha. grpc.reflection.v1 has the
# same messages, field for field, in another package: the same servicer answers both, and
# the v1 file (the v1alpha one renamed) goes into the default pool so that reflection can
# describe itself under either name.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _add_reflection_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(REFLECTION_V1)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    old, new = f".{file.package}.", ".grpc.reflection.v1."
    file.name, file.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    file.ClearField("options")  # v1alpha's are deprecated=true and its Java/Go package names
    for message in file.message_type:
        for message_field in message.field:
            if message_field.type_name:
                message_field.type_name = message_field.type_name.replace(old, new)
    for method in file.service[0].method:
        method.input_type = method.input_type.replace(old, new)
        method.output_type = method.output_type.replace(old, new)
    pool.Add(file)


def _add_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    _add_reflection_v1_descriptor()
    names = [*service_names, health.SERVICE_NAME, REFLECTION_V1, reflection.SERVICE_NAME]
    servicer = reflection.aio.ReflectionServicer(names)
    for service in (REFLECTION_V1, reflection.SERVICE_NAME):
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": handler}),))


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 0
    max_workers: int = 16
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_seconds: float = 10.0
    # Run handlers on the event loop thread instead of the thread pool...
    inline: bool = False
    # Methods ("/package.Service/Method") that may wait long (an ask waiting for its suggestions
    # to be computed): they run on a pool of their own, so that however many of them wait, the
    # other calls are answered at once (on the loop, or on the main pool).
    offload: frozenset[str] = frozenset()
    # Accepted bearer tokens (a TokenStore, a JwtVerifier, or both in an Authenticator); None:
    # access control off (every call allowed).
    tokens: BearerChecks | None = None
    # Certificate and key (and a client CA for mutual TLS); None: plain gRPC.
    tls: ServerTLS | None = None
    # Roles per resource (tuning_common.access); None: off (a write token may do everything).
    roles: RoleSettings | None = None


@dataclass(frozen=True)
class RoleSettings:
    """``--roles``: who the admins are, and the role everyone authenticated has on every
    resource (None: none)."""

    admins: Admins = Admins()
    default_role: str | None = None


@dataclass
class RunningServer:
    """A started server. ``address`` has the real port when port 0 was asked for."""

    server: grpc.aio.Server
    address: str
    health: health_aio.HealthServicer
    grace_seconds: float
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    executors: list[futures.ThreadPoolExecutor]
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()

        async def drain() -> None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(self.grace_seconds if grace is None else grace)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        for executor in self.executors:
            executor.shutdown(wait=True)
        for callback in self.on_stop:
            callback()

    def wait_for_termination(self) -> None:
        """Blocks until SIGTERM or SIGINT, then stops gracefully. Call from the main thread."""
        signum = wait_for_stop_signal()
        log.info("received %s; shutting down (grace %.0f s)", signum.name, self.grace_seconds)
        self.stop()


def start_server(
    register: Sequence[tuple[Callable[[object, grpc.aio.Server], None], object]],
    service_names: Sequence[str],
    options: ServerOptions,
    policy: Policy | None = None,
) -> RunningServer:
    """Builds and starts a server; ``register`` pairs ``add_XServicer_to_server`` with a servicer;
    ``policy``: the roles every call is checked against (with ``options.roles``)."""
    executor = None if options.inline else futures.ThreadPoolExecutor(options.max_workers, thread_name_prefix="rpc")
    waiting = futures.ThreadPoolExecutor(options.max_workers, thread_name_prefix="rpc-wait") if options.offload else None
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-loop", daemon=True)
    thread.start()

    # The first interceptor runs first: a call is refused before its handler is even adapted.
    # Telemetry's go first, so refused calls are traced and counted too.
    interceptors: list[grpc.aio.ServerInterceptor] = telemetry.server_interceptors()
    if options.tokens is not None:
        interceptors.append(AuthInterceptor(options.tokens))
    interceptors.append(ErrorMappingInterceptor(executor, {method: waiting for method in options.offload}))
    if policy is not None:
        # Innermost: it wraps the servicer's own methods, so the request is decoded when it
        # checks, its lookups run on the handler's thread, and its refusals are mapped above.
        interceptors.append(RolesInterceptor(policy))

    async def build() -> tuple[grpc.aio.Server, int, health_aio.HealthServicer]:
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        for add, servicer in register:
            add(servicer, server)
        health_servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        _add_reflection(server, service_names)
        try:
            address = f"{options.host}:{options.port}"
            if options.tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, options.tls.credentials())
        except RuntimeError:  # grpc's "Failed to bind to address"
            raise Unavailable(f"cannot listen on {options.host}:{options.port}: the port is in use or the address "
                              "is not one of this machine's", reason="BIND_FAILED") from None
        await server.start()
        for name in ("", *service_names):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return server, port, health_servicer

    try:
        server, port, health_servicer = asyncio.run_coroutine_threadsafe(build(), loop).result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        raise
    _log_access_control(options)
    host = f"[{options.host}]" if ":" in options.host else options.host
    return RunningServer(server, f"{host}:{port}", health_servicer, options.grace_seconds, loop, thread,
                         [e for e in (executor, waiting) if e is not None])


def _log_access_control(options: ServerOptions) -> None:
    if options.tokens is not None:
        log.info("access control on: %r%s", options.tokens, "" if options.roles is None else
                 f", roles on (admins {', '.join(sorted(options.roles.admins.subjects)) or 'none'}, "
                 f"default role {options.roles.default_role or NONE})")
    elif options.host not in ("127.0.0.1", "localhost", "::1"):
        # INFO, not WARNING: launchers that merge stderr into stdout at WARNING expect the
        # "listening on" line first.
        log.info("access control is off: anyone who reaches %s may call every RPC (see --tokens-file)",
                 options.host)


def add_server_options(parser: argparse.ArgumentParser, service: str, port: int, default_database_url: str) -> None:
    """The flags every gRPC service takes, with TUNING_<SERVICE>_* variables (and the shared
    TUNING_MIGRATE, TUNING_MAX_MESSAGE_BYTES, TUNING_GRACE_SECONDS, TUNING_TOKENS_FILE)."""
    prefix = f"TUNING_{service.upper()}"
    add_option(parser, "--host", env=f"{prefix}_HOST", default="127.0.0.1", help="address to bind")
    add_option(parser, "--port", env=f"{prefix}_PORT", default=port, type=int,
               help="port to bind; 0 picks a free one (printed on start)")
    add_option(parser, "--database-url", env=f"{prefix}_DATABASE_URL", default=default_database_url,
               help="SQLAlchemy URL: sqlite:///path.db or postgresql://user@host/db")
    add_option(parser, "--migrate", env="TUNING_MIGRATE", default=False, type=bool,
               help="upgrade an older database schema at start instead of refusing to start")
    add_option(parser, "--max-workers", env=f"{prefix}_MAX_WORKERS", default=16, type=int,
               help="threads serving RPCs (and database connections)")
    add_option(parser, "--max-message-bytes", env="TUNING_MAX_MESSAGE_BYTES", default=DEFAULT_MAX_MESSAGE_BYTES,
               type=int, help="largest request or response accepted")
    add_option(parser, "--grace-seconds", env="TUNING_GRACE_SECONDS", default=10.0, type=float,
               help="how long in-flight calls may finish after SIGTERM")
    add_option(parser, "--tokens-file", env="TUNING_TOKENS_FILE", default=None,
               help="bearer tokens, one '<role> <token> [name [group,group...]]' per line, role read or write; "
                    f"${TOKENS_ENV} may hold more (comma-separated); with none (and no --oidc-issuer), "
                    "access control is off")
    add_oidc_options(parser)
    add_option(parser, "--roles", env=ROLES_ENV, default=False, type=bool,
               help="roles per study, experiment and registered model (reader, editor, manager; needs tokens "
                    "or OIDC)")
    add_option(parser, "--admins", env=ADMINS_ENV, default="",
               help="with --roles: who may do everything, e.g. user:alice,group:ml-admins")
    add_option(parser, "--default-role", env=DEFAULT_ROLE_ENV, default=NONE,
               help="with --roles: the role everyone authenticated has on every resource: none, reader or editor")
    add_tls_options(parser, mutual=True)


def server_options(args: argparse.Namespace) -> ServerOptions:
    """The options of ``args``, with the tokens of ``--tokens-file`` and ``$TUNING_TOKENS`` loaded
    (InvalidArgument, naming the line but never the token, if they are malformed) beside the
    JWTs of ``--oidc-issuer``."""
    tokens = authenticator(load_tokens(args.tokens_file, os.environ.get(TOKENS_ENV)), verifier_from(args))
    return ServerOptions(args.host, args.port, args.max_workers, args.max_message_bytes, args.grace_seconds,
                         tokens=tokens, tls=ServerTLS.from_files(args.tls_cert, args.tls_key, args.tls_client_ca),
                         roles=role_settings(args.roles, args.admins, args.default_role, tokens))


def access_policy(options: ServerOptions, rules, store) -> Policy | None:
    """The :class:`~tuning_common.access.Policy` of a service's ``rules`` and permission
    ``store`` with ``options.roles`` (None with roles off)."""
    if options.roles is None:
        return None
    return Policy(rules, store, options.roles.admins, options.roles.default_role)


def role_settings(on: bool, admins: str, default_role: str, tokens: BearerChecks | None) -> RoleSettings | None:
    """The settings of ``--roles``, ``--admins`` and ``--default-role`` (None: roles off);
    InvalidArgument for a malformed one, or for roles without any authentication."""
    if not on:
        return None
    if tokens is None:
        raise InvalidArgument("roles", "roles need authenticated callers: configure --tokens-file, $TUNING_TOKENS "
                                       "or --oidc-issuer",
                              reason="ROLES_WITHOUT_AUTHENTICATION")
    if default_role not in (NONE, READER, EDITOR):
        raise InvalidArgument("default_role", f"must be none, reader or editor, got {default_role!r}")
    return RoleSettings(Admins.parse(admins, "admins"), None if default_role == NONE else default_role)


def serve_until_terminated(name: str, start: Callable[[], RunningServer]) -> int:
    """Sets up telemetry as ``name``, starts a service, prints its address (the line tests and
    `tuning up` wait for) and runs until SIGTERM or SIGINT: exit 0, or 2 when it cannot start
    (the reason on stderr)."""
    try:
        telemetry.setup(name)
        with telemetry.span("start service"):  # the schema check and migrations: one trace
            running = start()
    except (TuningError, OSError) as error:  # OSError: a port taken, a read-only data folder...
        print(f"{name} cannot start: {error}", file=sys.stderr)
        return 2
    print(f"{name} listening on {running.address}", flush=True)
    running.wait_for_termination()
    return 0
