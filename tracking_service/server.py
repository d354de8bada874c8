"""Composition root: settings -> database + artifact store -> service -> gRPC server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace

from tracking_service import access
from tracking_service.api.servicer import TrackingServicer
from tracking_service.artifacts import make_store
from tracking_service.logged_model_service import LoggedModelService
from tracking_service.persistence import MIGRATIONS
from tracking_service.persistence.tables import permission_tables
from tracking_service.registry.api.servicer import ModelRegistryServicer
from tracking_service.registry.persistence.webhooks import STORE as WEBHOOKS
from tracking_service.registry.service import RegistryService
from tracking_service.registry.webhooks import webhook_service
from tracking_service.service import MAX_ARTIFACT_BYTES, TrackingService
from tuning.tracking.v1 import (
    registry_service_pb2,
    registry_service_pb2_grpc,
    tracking_service_pb2,
    tracking_service_pb2_grpc,
)
from tuning_common import telemetry
from tuning_common.database import Database
from tuning_common.grpc_server import (
    RunningServer,
    ServerOptions,
    access_policy,
    add_server_options,
    serve_until_terminated,
    server_options,
    start_server,
)
from tuning_common.permissions import PermissionStore
from tuning_common.settings import add_option, data_dir
from tuning_common.webhooks import SenderSettings, WebhookSender, add_sender_options, sender_settings

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name,
    registry_service_pb2.DESCRIPTOR.services_by_name["ModelRegistryService"].full_name,
]


def default_database_url() -> str:
    return f"sqlite:///{os.path.join(data_dir(), 'tracking.db')}"


def default_artifacts() -> str:
    return os.path.join(data_dir(), "artifacts")


def serve(database_url: str, artifacts: str, options: ServerOptions, *, migrate: bool = False,
          max_artifact_bytes: int = MAX_ARTIFACT_BYTES, webhooks: SenderSettings | None = None) -> RunningServer:
    """Starts a tracking server (tests call this directly with port 0); ``webhooks`` shapes its
    webhook sender threads (default: one, with the defaults of SenderSettings)."""
    store = make_store(artifacts)
    db = Database.connect(database_url, pool_size=options.max_workers)
    MIGRATIONS.ensure(db, upgrade=migrate)
    service = TrackingService(db, store, max_artifact_bytes=max_artifact_bytes)
    service.ensure_default_experiment()
    registry = RegistryService(db, store)
    hooks = webhook_service(db)
    models = LoggedModelService(db)
    permissions = PermissionStore(db, permission_tables) if options.roles is not None else None
    manager = access.permission_manager(service, registry, permissions)
    # As in the suggestion service: SQLite handlers run on the event loop thread (one writer
    # at a time anyway); artifact streams always run on threads.
    options = replace(options, inline=db.single_writer)
    running = start_server(
        [
            (tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server,
             TrackingServicer(service, models, manager)),
            (registry_service_pb2_grpc.add_ModelRegistryServiceServicer_to_server,
             ModelRegistryServicer(registry, hooks, manager)),
        ],
        SERVICE_NAMES,
        options,
        access_policy(options, access.rules(service, models, registry, permissions), permissions),
    )
    sender = WebhookSender(db, WEBHOOKS, webhooks or SenderSettings(), hooks.wake)
    sender.start()
    running.on_stop += [sender.stop, db.dispose]
    return running


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tuning serve tracking", description=__doc__)
    add_server_options(parser, "tracking", 50052, default_database_url())
    add_option(parser, "--artifacts", env="TUNING_ARTIFACTS", default=default_artifacts(),
               help="artifact store: a folder path, a file:// URI or s3://bucket/prefix (AWS_* settings: docs/OPERATIONS.md)")
    add_option(parser, "--max-artifact-bytes", env="TUNING_MAX_ARTIFACT_BYTES", default=MAX_ARTIFACT_BYTES,
               type=int, help="largest artifact file accepted")
    add_sender_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    # server_options reads the tokens: a bad tokens file is a "cannot start" (exit 2) like any other.
    try:
        settings = sender_settings(args)
    except ValueError as error:
        print(f"tracking-service cannot start: {error}", file=sys.stderr)
        return 2
    return serve_until_terminated("tracking-service", lambda: serve(
        args.database_url, args.artifacts, server_options(args), migrate=args.migrate,
        max_artifact_bytes=args.max_artifact_bytes, webhooks=settings))


def main(argv: list[str] | None = None) -> int:
    telemetry.configure_logging()
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
