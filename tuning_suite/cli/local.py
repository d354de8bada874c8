"""`tuning up | down | status | health`: the suite on this machine, and whether services serve."""

from __future__ import annotations

import argparse
import os
import sys

from tuning_common.settings import add_option
from tuning_suite.cli.server_extra import needs_server


def register(commands) -> None:
    up = commands.add_parser(
        "up", help="start the suite on this machine: both services and the gateway (Ctrl-C stops them)")
    add_option(up, "--host", env="TUNING_HOST", default="127.0.0.1", help="address the services bind")
    add_option(up, "--suggestion-port", env="TUNING_SUGGESTION_PORT", default=50051, type=int,
               help="suggestion service port (0: a free one)")
    add_option(up, "--tracking-port", env="TUNING_TRACKING_PORT", default=50052, type=int,
               help="tracking service port (0: a free one)")
    add_option(up, "--gateway-port", env="TUNING_GATEWAY_PORT", default=8080, type=int,
               help="gateway port: HTTP/JSON API and dashboard (0: a free one)")
    add_option(up, "--database", env="TUNING_DATABASE_URL", default="",
               help="one database for both services, e.g. postgresql://user@host/tuning (default: SQLite files "
                    "in $TUNING_HOME)")
    add_option(up, "--artifacts", env="TUNING_ARTIFACTS", default="",
               help="artifact store folder (default: $TUNING_HOME/artifacts)")
    add_option(up, "--detach", env="TUNING_DETACH", default=False, type=bool,
               help="start the services in the background and return; `tuning status` and `tuning down` "
                    "find them through $TUNING_HOME/suite.json")
    up.set_defaults(run=_up)
    commands.add_parser("down", help="stop the suite `tuning up` started from $TUNING_HOME").set_defaults(run=_down)
    commands.add_parser("status", help="the services `tuning up` started from $TUNING_HOME, and whether they serve"
                        ).set_defaults(run=_status)
    health = commands.add_parser("health", help="exit 0 when every address serves (gRPC health; --http: the "
                                                "gateway), for probes and scripts")
    health.add_argument("addresses", nargs="+", metavar="HOST:PORT")
    health.add_argument("--http", action="store_true", help="the addresses are gateways (HTTP)")
    health.set_defaults(run=_health)


@needs_server("tuning up")
def _up(args: argparse.Namespace) -> int:
    import signal
    import threading

    from trial_worker.local_suite import LocalSuite, alive, read_state, state_path, write_state
    from tuning_common.settings import data_dir

    home = data_dir()
    state = read_state(home)
    if state and any(alive(service["pid"]) for service in state["services"]):
        print(f"error: a suite started from {home} is running ({state_path(home)}): `tuning status` shows it, "
              "`tuning down` stops it", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    suite = LocalSuite(home, host=args.host, suggestion_port=args.suggestion_port,
                       tracking_port=args.tracking_port, gateway_port=args.gateway_port,
                       database_url=args.database or None, artifacts=args.artifacts or None, detach=args.detach)
    suite.start()
    try:
        write_state(suite, owner=None if args.detach else os.getpid())
        print(f"suggestion service  {suite.suggestion_address}  ({_where(suite.databases[0])})")
        print(f"tracking service    {suite.tracking_address}  ({_where(suite.databases[1])}, "
              f"artifacts {suite.artifacts})")
        print(f"gateway             {suite.gateway_url}  (HTTP/JSON API, OpenAPI at /v1/openapi.json)")
        if args.detach:
            print(f"logs in {suite.home / 'logs'}; running in the background: `tuning status`, `tuning down`",
                  flush=True)
            return 0
        print(f"logs in {suite.home / 'logs'}; Ctrl-C stops them all", flush=True)
        while not stop.wait(0.5):
            for service in suite.services:
                if service.process.poll() is not None:
                    print(f"error: the {service.name} exited with status {service.process.returncode}; "
                          f"see {suite.home / 'logs'}", file=sys.stderr)
                    return 1
        return 0
    finally:
        if not args.detach:
            suite.stop()
            state_path(home).unlink(missing_ok=True)


def _where(database_url: str) -> str:
    """A database URL for people: SQLite's file, or the URL without its password."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return f"SQLite {url.database}" if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)


def _down(args: argparse.Namespace) -> int:
    from trial_worker.local_suite import read_state, stop_recorded
    from tuning_common.settings import data_dir

    home = os.path.abspath(data_dir())
    if read_state(home) is None:
        print(f"no suite started by `tuning up` from {home} is recorded", file=sys.stderr)
        return 1
    stopped = stop_recorded(home)
    print(f"stopped the suite in {home}: {', '.join(stopped)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from trial_worker.local_suite import alive, read_state
    from tuning_common.settings import data_dir

    home = os.path.abspath(data_dir())
    state = read_state(home)
    if state is None:
        print(f"no suite started by `tuning up` from {home} is recorded", file=sys.stderr)
        return 1
    print(f"suite in {home} ({'in the background' if state.get('owner') is None else 'in the foreground'})")
    healthy = True
    for service in state["services"]:
        running = alive(service["pid"])
        problem = _health_problem(service["address"], http=service["name"] == "gateway") if running else "not running"
        healthy = healthy and not problem
        print(f"{service['name']:<20}{service['address']:<24}pid {service['pid']:<8}{problem or 'serving'}")
    return 0 if healthy else 1


def _health_problem(address: str, *, http: bool, timeout: float = 3.0) -> str:
    """Why ``address`` is not serving ("" when it is): gRPC health for the services, the OpenAPI
    document for the gateway."""
    if http:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{address}/v1/openapi.json", timeout=timeout):
                return ""
        except (OSError, urllib.error.URLError) as error:
            return f"not serving: {error}"
    from trial_worker.local_suite import health_problem

    return health_problem(address, timeout)


def _health(args: argparse.Namespace) -> int:
    problems = [(address, _health_problem(address, http=args.http)) for address in args.addresses]
    for address, problem in problems:
        print(f"{address}: {problem or 'serving'}")
    return 1 if any(problem for _, problem in problems) else 0
