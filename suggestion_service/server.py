"""Composition root: settings -> database -> service -> gRPC server (+ the lease reaper)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from dataclasses import replace

from suggestion_service import access
from suggestion_service.api.servicer import SuggestionServicer
from suggestion_service.persistence import MIGRATIONS
from suggestion_service.persistence.tables import permission_tables
from suggestion_service.persistence.webhooks import STORE as WEBHOOKS
from suggestion_service.service import SuggestionService
from tuning.suggestion.v1 import suggestion_service_pb2, suggestion_service_pb2_grpc
from tuning_common import telemetry
from tuning_common.database import Database
from tuning_common.errors import InvalidArgument
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

SERVICE_NAME = suggestion_service_pb2.DESCRIPTOR.services_by_name["SuggestionService"].full_name
ASK_METHOD = f"/{SERVICE_NAME}/SuggestTrials"
# Fits a forest (up to seconds for a large study): kept off the event loop like an ask.
IMPORTANCE_METHOD = f"/{SERVICE_NAME}/GetParameterImportance"
MAX_MODEL_WORKERS = 64


def default_database_url() -> str:
    return f"sqlite:///{os.path.join(data_dir(), 'suggestion.db')}"


class LeaseReaper:
    """Reclaims expired leases every ``interval`` seconds. Each replica runs one; they
    serialise on the study row, so running many is safe."""

    def __init__(self, service: SuggestionService, interval: float):
        self.service, self.interval = service, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.service.reap_expired_leases()
            except Exception:
                log.exception("lease reaper pass failed; will try again")


def serve(
    database_url: str,
    options: ServerOptions,
    *,
    migrate: bool = False,
    lease_check_seconds: float = 5.0,
    model_workers: int = 1,
    webhooks: SenderSettings | None = None,
) -> RunningServer:
    """Starts a suggestion server (tests call this directly with port 0); ``webhooks`` shapes its
    webhook sender threads (default: one, with the defaults of SenderSettings)."""
    if not 0 <= model_workers <= MAX_MODEL_WORKERS:
        raise InvalidArgument("model_workers", f"must be between 0 and {MAX_MODEL_WORKERS}, got {model_workers}")
    db = Database.connect(database_url, pool_size=options.max_workers)
    MIGRATIONS.ensure(db, upgrade=migrate)
    service = SuggestionService(db, model_workers=model_workers)
    service.renew_leases()
    store = PermissionStore(db, permission_tables) if options.roles is not None else None
    # SQLite takes one writer at a time, so handlers run on the event loop thread (no
    # per-call thread hand-off); PostgreSQL transactions run concurrently on the pool. An ask
    # may wait for a model-based suggestion to be computed, and parameter importance fits a
    # forest: they run on the pool either way.
    options = replace(options, inline=db.single_writer, offload=frozenset({ASK_METHOD, IMPORTANCE_METHOD}))
    running = start_server(
        [(suggestion_service_pb2_grpc.add_SuggestionServiceServicer_to_server,
          SuggestionServicer(service, access.permission_manager(service, store)))],
        [SERVICE_NAME],
        options,
        access_policy(options, access.rules(service, store), store),
    )
    # Only once the port is ours: a service that cannot start leaves no model process behind.
    service.models.start()
    reaper = LeaseReaper(service, lease_check_seconds)
    reaper.start()
    sender = WebhookSender(db, WEBHOOKS, webhooks or SenderSettings(), service.webhooks.wake)
    sender.start()
    running.on_stop += [reaper.stop, sender.stop, service.models.stop, db.dispose]
    return running


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tuning serve suggestion", description=__doc__)
    add_server_options(parser, "suggestion", 50051, default_database_url())
    add_option(parser, "--lease-check-seconds", env="TUNING_LEASE_CHECK_SECONDS", default=5.0, type=float,
               help="how often this replica reclaims expired leases")
    add_option(parser, "--model-workers", env="TUNING_MODEL_WORKERS", default=1, type=int,
               help="processes computing model-based (gp, tpe, bohb, auto) suggestions; each study uses one, "
                    "several studies spread over them; 0 computes in the serving threads")
    add_sender_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    # server_options reads the tokens: a bad tokens file is a "cannot start" (exit 2) like any other.
    try:
        settings = sender_settings(args)
    except ValueError as error:
        print(f"suggestion-service cannot start: {error}", file=sys.stderr)
        return 2
    return serve_until_terminated("suggestion-service", lambda: serve(
        args.database_url, server_options(args), migrate=args.migrate, lease_check_seconds=args.lease_check_seconds,
        model_workers=args.model_workers, webhooks=settings))


def main(argv: list[str] | None = None) -> int:
    telemetry.configure_logging()
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
