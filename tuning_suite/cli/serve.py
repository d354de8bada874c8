"""`tuning serve suggestion | tracking | gateway`: one service, as a replica or a container runs it."""

from __future__ import annotations

import argparse

from tuning_suite.cli.server_extra import installed, needs_server


def register(commands) -> None:
    serve = commands.add_parser("serve", help="start one service")
    if not installed():
        # The services' options come from their own parsers, which a client install cannot import.
        serve.add_argument("service", choices=("suggestion", "tracking", "gateway"))
        serve.add_argument("options", nargs=argparse.REMAINDER)
        serve.set_defaults(run=needs_server("tuning serve")(_serve))
        return
    from gateway import server as gateway_server
    from suggestion_service import server
    from tracking_service import server as tracking_server

    services = serve.add_subparsers(dest="service", required=True, metavar="SERVICE")
    suggestion = services.add_parser("suggestion", help="the suggestion service (gRPC)")
    server.build_parser(suggestion)
    suggestion.set_defaults(run=_serve)
    tracking = services.add_parser("tracking", help="the tracking service (gRPC): experiments, runs, artifacts")
    tracking_server.build_parser(tracking)
    tracking.set_defaults(run=_serve_tracking)
    gateway = services.add_parser("gateway", help="the HTTP/JSON gateway in front of both services")
    gateway_server.build_parser(gateway)
    gateway.set_defaults(run=_serve_gateway)


def _serve(args: argparse.Namespace) -> int:
    from suggestion_service import server

    return server.run(args)


def _serve_tracking(args: argparse.Namespace) -> int:
    from tracking_service import server

    return server.run(args)


def _serve_gateway(args: argparse.Namespace) -> int:
    from gateway import server

    return server.run(args)
