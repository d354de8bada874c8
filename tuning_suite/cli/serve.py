"""`tuning serve suggestion | tracking | gateway`: one service, as a replica or a container runs it."""

from __future__ import annotations

import argparse


def register(commands) -> None:
    from gateway import server as gateway_server
    from suggestion_service import server
    from tracking_service import server as tracking_server

    serve = commands.add_parser("serve", help="start one service")
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
