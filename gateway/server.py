"""The gateway's composition root: settings -> gRPC channels to the services -> the ASGI app
-> uvicorn, on an event loop in a thread of its own (tests and the CLI drive it alike).

    python -m gateway --port 8080 --suggestion-address 127.0.0.1:50051 --tracking-address 127.0.0.1:50052
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import uvicorn

from gateway.app import GuardSettings, create_app, default_allowed_hosts, rpc_read_only_rule
from gateway.dashboard import routes as dashboard_routes
from gateway.dashboard.sso import CLIENT_SECRET_ENV, DEFAULT_SCOPES, SsoSettings
from gateway.http_api import HttpApi
from gateway.mlflow import read_only_rule as mlflow_read_only_rule
from gateway.mlflow import refusal_body as mlflow_refusal_body
from gateway.mlflow import routes as mlflow_routes
from gateway.session import SESSION_SECONDS
from tuning.suggestion.v1 import suggestion_service_pb2_grpc
from tuning.tracking.v1 import registry_service_pb2_grpc, tracking_service_pb2_grpc
from tuning_common import telemetry, tls
from tuning_common.errors import InvalidArgument, TuningError
from tuning_common.oidc import add_oidc_options, read_secret, verifier_from
from tuning_common.settings import add_option, suggestion_address
from tuning_common.signals import wait_for_stop_signal
from tuning_common.tls import ServerTLS, add_tls_options

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024
START_TIMEOUT = 30.0


@dataclass
class GatewayOptions:
    host: str = "127.0.0.1"
    port: int = 0
    suggestion_address: str = "127.0.0.1:50051"
    tracking_address: str = "127.0.0.1:50052"
    allowed_hosts: tuple[str, ...] = ()
    max_json_bytes: int = MAX_JSON_BYTES
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES
    grace_seconds: float = 10.0
    # tuning_common.auth.TokenStore, JwtVerifier or both (Authenticator); None: no authentication.
    tokens: object = None
    # The dashboard's single sign-on (OpenID Connect); None: none.
    sso: SsoSettings | None = None
    # How long the dashboard's login lasts in the browser (the session cookie's Max-Age).
    session_seconds: int = SESSION_SECONDS
    # PEM files: serve HTTPS (both, or neither).
    tls_cert: str | None = None
    tls_key: str | None = None


@dataclass
class RunningGateway:
    address: str
    server: uvicorn.Server
    thread: threading.Thread
    scheme: str = "http"
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.should_exit = True
        self.thread.join()

    def wait_for_termination(self) -> None:
        wait_for_stop_signal()
        self.stop()


def _stubs(suggestion: grpc.aio.Channel, tracking: grpc.aio.Channel) -> dict[str, object]:
    return {
        "SuggestionService": suggestion_service_pb2_grpc.SuggestionServiceStub(suggestion),
        "TrackingService": tracking_service_pb2_grpc.TrackingServiceStub(tracking),
        "ModelRegistryService": registry_service_pb2_grpc.ModelRegistryServiceStub(tracking),
    }


def build_app(options: GatewayOptions):
    stubs: dict[str, object] = {}
    api = HttpApi(stubs, max_json_bytes=options.max_json_bytes, max_artifact_bytes=options.max_artifact_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app) -> AsyncIterator[None]:
        # grpc.aio channels belong to the loop that serves the requests.
        channel_options = [("grpc.max_receive_message_length", options.max_json_bytes + 1024 * 1024),
                           ("grpc.max_send_message_length", options.max_json_bytes + 1024 * 1024)]
        interceptors = telemetry.aio_client_interceptors()
        suggestion = tls.aio_channel(options.suggestion_address, channel_options, interceptors)
        tracking = tls.aio_channel(options.tracking_address, channel_options, interceptors)
        stubs.update(_stubs(suggestion, tracking))
        try:
            yield
        finally:
            await suggestion.close()
            await tracking.close()

    read_only_rules = []
    if options.tokens is not None:
        from tuning_common.auth import is_read_only

        read_only_rules.append(rpc_read_only_rule(is_read_only))
    guard = GuardSettings(
        allowed_hosts=default_allowed_hosts(options.host, options.allowed_hosts),
        max_json_bytes=options.max_json_bytes, max_artifact_bytes=options.max_artifact_bytes,
        tokens=options.tokens, read_only_paths=read_only_rules,
    )
    routes = api.routes()
    # The other surfaces (the MLflow-compatible REST API, the dashboard) mount here, on the same stubs.
    routes += dashboard_routes(stubs, options)
    routes += mlflow_routes(stubs, options)
    read_only_rules.append(mlflow_read_only_rule)
    guard.refusal_bodies.append(mlflow_refusal_body)
    return telemetry.asgi_middleware(create_app(routes, guard, lifespan=lifespan))


def serve(options: GatewayOptions) -> RunningGateway:
    """Starts the gateway; ``address`` has the real port when port 0 was asked for."""
    ServerTLS.from_files(options.tls_cert, options.tls_key)  # both or neither, readable PEM: else InvalidArgument
    config = uvicorn.Config(build_app(options), host=options.host, port=options.port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=options.grace_seconds,
                            server_header=False, ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), name="gateway-loop", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the gateway could not start on {options.host}:{options.port}")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    host = f"[{options.host}]" if ":" in options.host else options.host
    return RunningGateway(f"{host}:{port}", server, thread, "https" if options.tls_cert else "http")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from trial_worker.tracking.client import tracking_address

    parser = parser or argparse.ArgumentParser(prog="tuning serve gateway", description=__doc__)
    add_option(parser, "--host", env="TUNING_GATEWAY_HOST", default="127.0.0.1", help="address to bind")
    add_option(parser, "--port", env="TUNING_GATEWAY_PORT", default=8080, type=int,
               help="port to bind; 0 picks a free one (printed on start)")
    add_option(parser, "--suggestion-address", env="TUNING_SUGGESTION_ADDRESS", default=suggestion_address(),
               help="suggestion service")
    add_option(parser, "--tracking-address", env="TUNING_TRACKING_ADDRESS", default=tracking_address(),
               help="tracking service (and model registry)")
    add_option(parser, "--allowed-hosts", env="TUNING_GATEWAY_ALLOWED_HOSTS", default="",
               help="comma-separated host names the gateway answers to besides localhost ('*': any)")
    add_option(parser, "--max-request-bytes", env="TUNING_GATEWAY_MAX_REQUEST_BYTES", default=MAX_JSON_BYTES,
               type=int, help="largest JSON request body")
    add_option(parser, "--max-artifact-bytes", env="TUNING_MAX_ARTIFACT_BYTES", default=MAX_ARTIFACT_BYTES,
               type=int, help="largest artifact upload")
    add_option(parser, "--grace-seconds", env="TUNING_GRACE_SECONDS", default=10.0, type=float,
               help="how long in-flight requests may finish after SIGTERM")
    add_option(parser, "--tokens-file", env="TUNING_TOKENS_FILE", default=None,
               help="accepted bearer tokens, as the services take them (also $TUNING_TOKENS); none: no auth")
    add_option(parser, "--session-hours", env="TUNING_GATEWAY_SESSION_HOURS", default=8.0, type=float,
               help="how long a login to the dashboard lasts (with tokens on; at most 720; a single sign-on "
                    "ends sooner when its ID token expires)")
    add_oidc_options(parser)
    add_option(parser, "--oidc-client-id", env="TUNING_OIDC_CLIENT_ID", default=None,
               help="the dashboard's client id at the OpenID provider: turns on 'Sign in with ...' (needs "
                    "--oidc-issuer and the client secret); JWTs for this audience are accepted too")
    add_option(parser, "--oidc-client-secret-file", env="TUNING_OIDC_CLIENT_SECRET_FILE", default=None,
               help="a file holding the client secret (or put the secret itself in $TUNING_OIDC_CLIENT_SECRET; "
                    "never on the command line)")
    add_option(parser, "--oidc-scopes", env="TUNING_OIDC_SCOPES", default=DEFAULT_SCOPES,
               help="the scopes the dashboard asks for (with openid; add the one that brings the groups claim, "
                    "if your provider needs one)")
    add_option(parser, "--oidc-provider-name", env="TUNING_OIDC_PROVIDER_NAME", default="",
               help="the provider's name on the login page's button (default: the issuer's host name)")
    add_option(parser, "--public-url", env="TUNING_GATEWAY_PUBLIC_URL", default="",
               help="the gateway's URL as browsers reach it, for the sign-in's redirect URI "
                    "(<url>/ui/login/callback); default: the request's own scheme and host")
    # HTTPS; its own calls to the services use TLS when $TUNING_TLS_CA is set.
    add_tls_options(parser, mutual=False)
    return parser


def options_from(args: argparse.Namespace) -> GatewayOptions:
    """Raises InvalidArgument for a bad tokens file or OpenID Connect settings."""
    from tuning_common.auth import TOKENS_ENV, authenticator, load_tokens

    client_id = (args.oidc_client_id or "").strip()
    if client_id and not args.oidc_issuer:
        raise InvalidArgument("--oidc-client-id", "needs --oidc-issuer", reason="INVALID_OIDC_SETTINGS")
    verifier = verifier_from(args, extra_audiences=[client_id] if client_id else [])
    sso = None
    if client_id:
        secret = read_secret(os.environ.get(CLIENT_SECRET_ENV), args.oidc_client_secret_file,
                             "--oidc-client-secret")
        sso = SsoSettings(verifier, client_id, secret or "", args.oidc_scopes, args.oidc_provider_name.strip(),
                          args.public_url.strip())
    return GatewayOptions(
        host=args.host, port=args.port, suggestion_address=args.suggestion_address,
        tracking_address=args.tracking_address,
        allowed_hosts=tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip()),
        max_json_bytes=args.max_request_bytes, max_artifact_bytes=args.max_artifact_bytes,
        grace_seconds=args.grace_seconds,
        tokens=authenticator(load_tokens(args.tokens_file, os.environ.get(TOKENS_ENV)), verifier), sso=sso,
        tls_cert=args.tls_cert or None, tls_key=args.tls_key or None,
        session_seconds=round(args.session_hours * 3600),
    )


def run(args: argparse.Namespace) -> int:
    try:
        telemetry.setup(telemetry.GATEWAY)
        running = serve(options_from(args))
    except (RuntimeError, TuningError) as error:
        print(f"gateway cannot start: {error}", file=sys.stderr)
        return 2
    print(f"gateway listening on {running.address}", flush=True)
    running.wait_for_termination()
    return 0


def main(argv: list[str] | None = None) -> int:
    telemetry.configure_logging()
    return run(build_parser().parse_args(argv))
