"""The `tuning` command: start services, manage studies and databases, run the demo.

    tuning up                          # the suite's services, embedded defaults (SQLite, ./.tuning)
    tuning up --detach | status | down # the same in the background; is it serving; stop it
    tuning up --database postgresql://user@host/tuning --artifacts /data/artifacts
    tuning serve suggestion --port 0   # one service, as a replica or a container would
    tuning serve tracking --port 0     # experiments, runs, metrics, artifacts
    tuning serve gateway --port 0      # HTTP/JSON for every RPC (OpenAPI at /v1/openapi.json)
    tuning study create study.yaml     # get-or-create from a YAML/JSON file
    tuning study list | show NAME | export NAME | stop NAME | resume NAME | complete NAME | delete NAME
    tuning worker --study NAME --train pkg.mod:train   # run trials (or: -- any command)
    tuning db upgrade | check [--service tracking]   # schema migrations
    tuning backup FOLDER | restore FOLDER             # both databases and the artifacts
    tuning demo                        # the end-to-end example

Every option has a TUNING_* environment variable; `--help` on each command lists them.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before numpy loads (see suggestion_service/__main__.py): one BLAS thread per process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from collections.abc import Callable, Sequence

from tuning_common.errors import TuningError
from tuning_common.settings import add_option


def _client(args: argparse.Namespace):
    from trial_worker import SuggestionClient
    from tuning_common.local_suite import find_address

    found = find_address("suggestion", args.address, flag="--address")
    print(f"tuning: talking to {found.describe()}", file=sys.stderr, flush=True)
    return SuggestionClient(found.address)


def _format_value(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _study_create(args: argparse.Namespace) -> int:
    from trial_worker.cli import load_study_file

    try:
        request = load_study_file(args.file)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with _client(args) as client:
        study = client.create_study_from_proto(request.name, request.spec)
    print(f"{'created' if study.created else 'exists, same spec:'} {study.name}")
    return 0


def _study_list(args: argparse.Namespace) -> int:
    from tuning.suggestion.v1 import study_pb2 as pb

    with _client(args) as client:
        rows = [(s.name, pb.StudyState.Name(s.state).removeprefix("STUDY_STATE_"), s.spec.algorithm.name,
                 s.trial_counts.completed, s.trial_counts.active, s.spec.max_trials or "-")
                for s in client.list_studies()]
    _table(["study", "state", "algorithm", "completed", "active", "max_trials"], rows)
    return 0


def _study_show(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from tuning.suggestion.v1 import study_pb2 as pb

    with _client(args) as client:
        study = client.get_study(args.name)
        if args.json:
            print(json_format.MessageToJson(study.info, preserving_proto_field_name=True))
            return 0
        trials = list(study.trials())
        best_response = study.best_response()
    best = {t.id for t in best_response.trials}
    info = study.info
    objectives = ", ".join(f"{o.metric} ({pb.Direction.Name(o.direction).removeprefix('DIRECTION_').lower()})"
                           for o in info.spec.objectives)
    print(f"study      {info.name}  [{pb.StudyState.Name(info.state).removeprefix('STUDY_STATE_')}]")
    print(f"objectives {objectives}")
    print(f"algorithm  {info.spec.algorithm.name}  seed {info.spec.seed}  max_trials {info.spec.max_trials or '-'}"
          f"  max_parallel {info.spec.max_parallel_trials or '-'}")
    constraints = list(info.spec.constraints)
    if constraints:
        print(f"constraints {', '.join(constraints)} (<= 0 is feasible)")
    names = [p.name for p in info.spec.parameters]
    rows = []
    for t in trials[-args.limit:]:
        params = {k: _format_value(getattr(v, v.WhichOneof("kind"))) for k, v in t.parameters.items()}
        metrics = " ".join(f"{m.name}={m.value:.6g}" for m in t.metrics)
        if t.state == pb.TRIAL_STATE_PRUNED and t.HasField("last_measurement"):
            # Not a result: where it stopped, said as such.
            last = t.last_measurement
            metrics = f"pruned at step {last.step}: " + " ".join(f"{m.name}={m.value:.6g}" for m in last.metrics)
        row = [("*" if t.id in best else "") + str(t.number), pb.TrialState.Name(t.state).removeprefix("TRIAL_STATE_"),
               *[params.get(n, "") for n in names]]
        if constraints:
            # An infeasible trial keeps its metrics; the column says why it is never the best.
            values = " ".join(f"{n}={v:.6g}" for n, v in zip(constraints, t.constraints))
            row.append("" if not t.HasField("feasible") else f"{'yes' if t.feasible else 'NO'} {values}")
        rows.append([*row, metrics or t.reason])
    _table(["#", "state", *names, *(["feasible"] if constraints else []), "result"], rows)
    several = len(info.spec.objectives) > 1
    print(f"{len(trials)} trials; * marks the " + ("Pareto set" if several else "best")
          + ("; only feasible trials can be best" if constraints else ""))
    if several and best_response.HasField("hypervolume"):
        reference = ", ".join(f"{o.metric}={r:.6g}" for o, r in zip(info.spec.objectives, best_response.reference_point))
        given = " (from the spec)" if all(o.HasField("reference_point") for o in info.spec.objectives) else ""
        print(f"hypervolume {best_response.hypervolume:.6g}  reference point {reference}{given}")
    return 0


def _study_export(args: argparse.Namespace) -> int:
    from trial_worker import study_file

    with _client(args) as client:
        info = client.get_study(args.name).info
    print(study_file.dump(info.name, info.spec), end="")
    return 0


def _study_set_state(state_name: str):
    def command(args: argparse.Namespace) -> int:
        from tuning.suggestion.v1 import study_pb2 as pb

        with _client(args) as client:
            study = client.get_study(args.name)
            study.set_state(pb.StudyState.Value(f"STUDY_STATE_{state_name}"))
        print(f"{args.name}: {state_name}")
        return 0

    return command


def _study_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"refusing to delete {args.name!r} and all its trials without --yes", file=sys.stderr)
        return 2
    with _client(args) as client:
        client.delete_study(args.name)
    print(f"deleted {args.name}")
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded to their widest cell; the last column is printed in full, a multi-line
    cell (a failed trial's reason) continuing under itself."""
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    indent = sum(w + 2 for w in widths)
    for row in cells:
        first, *more = row[-1].splitlines() or [""]
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths)), first]).rstrip())
        for line in more:
            print((" " * indent + line).rstrip())


def _db(args: argparse.Namespace) -> int:
    from tuning_common.database import Database

    if args.service == "tracking":
        from tracking_service.persistence import MIGRATIONS
    else:
        from suggestion_service.persistence import MIGRATIONS
    url = args.database_url or _default_database_url(args.service)
    db = Database.connect(url)
    try:
        if args.db_command == "upgrade":
            print(f"{args.service} schema at {MIGRATIONS.ensure(db, upgrade=True)}")
        else:
            current = db.run(MIGRATIONS.current, write=False)
            head = MIGRATIONS.head()
            print(f"{args.service} schema: database {current or 'empty'}, this version {head}")
            return 0 if current == head else 1
    finally:
        db.dispose()
    return 0


def _default_database_url(service: str) -> str:
    variable = f"TUNING_{service.upper()}_DATABASE_URL"
    if os.environ.get(variable):
        return os.environ[variable]
    if service == "tracking":
        from tracking_service.server import default_database_url
    else:
        from suggestion_service.server import default_database_url
    return default_database_url()


def _stores(args: argparse.Namespace):
    from suggestion_service.persistence import MIGRATIONS as suggestion_migrations
    from suggestion_service.persistence.tables import metadata as suggestion_tables
    from tracking_service.persistence import MIGRATIONS as tracking_migrations
    from tracking_service.persistence.repository import relocate_artifacts
    from tracking_service.persistence.tables import metadata as tracking_tables
    from tuning_common.backup import ServiceStore

    return [
        ServiceStore("suggestion", args.suggestion_database_url or _default_database_url("suggestion"),
                     sorted(suggestion_tables.tables), suggestion_migrations),
        ServiceStore("tracking", args.tracking_database_url or _default_database_url("tracking"),
                     sorted(tracking_tables.tables), tracking_migrations, relocate_artifacts),
    ]


def _artifacts(args: argparse.Namespace):
    from pathlib import Path

    from tracking_service.server import default_artifacts

    return Path(args.artifacts or os.environ.get("TUNING_ARTIFACTS") or default_artifacts())


def _backup(args: argparse.Namespace) -> int:
    from tuning_common.backup import backup

    manifest = backup(args.folder, _stores(args), _artifacts(args))
    for name, saved in manifest["services"].items():
        print(f"{name}: {saved['kind']} database at schema {saved['revision']} -> {args.folder}/{saved['file']}")
    print(f"artifacts -> {args.folder}/artifacts" if manifest.get("artifacts") else "artifacts: none to copy")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from tuning_common.backup import restore

    manifest = restore(args.folder, _stores(args), _artifacts(args))
    print(f"restored the backup of {manifest['created']}: "
          + ", ".join(f"{name} ({saved['kind']}, schema {saved['revision']})"
                      for name, saved in manifest["services"].items())
          + (", artifacts" if manifest.get("artifacts") else ""))
    return 0


def _up(args: argparse.Namespace) -> int:
    import signal
    import threading

    from tuning_common.local_suite import LocalSuite, alive, read_state, state_path, write_state
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
    from tuning_common.local_suite import read_state, stop_recorded
    from tuning_common.settings import data_dir

    home = os.path.abspath(data_dir())
    if read_state(home) is None:
        print(f"no suite started by `tuning up` from {home} is recorded", file=sys.stderr)
        return 1
    stopped = stop_recorded(home)
    print(f"stopped the suite in {home}: {', '.join(stopped)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from tuning_common.local_suite import alive, read_state
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
    from tuning_common.local_suite import health_problem

    return health_problem(address, timeout)


def _health(args: argparse.Namespace) -> int:
    problems = [(address, _health_problem(address, http=args.http)) for address in args.addresses]
    for address, problem in problems:
        print(f"{address}: {problem or 'serving'}")
    return 1 if any(problem for _, problem in problems) else 0


def _serve(args: argparse.Namespace) -> int:
    from suggestion_service import server

    return server.run(args)


def _serve_tracking(args: argparse.Namespace) -> int:
    from tracking_service import server

    return server.run(args)


def _worker(args: argparse.Namespace) -> int:
    from trial_worker import cli

    return cli.run(args)


def _serve_gateway(args: argparse.Namespace) -> int:
    from gateway import server

    return server.run(args)


def _demo(args: argparse.Namespace) -> int:
    from trial_worker import demo

    return demo.main(args)


def build_parser() -> argparse.ArgumentParser:
    from suggestion_service import server
    from tracking_service import server as tracking_server

    parser = argparse.ArgumentParser(prog="tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    serve = commands.add_parser("serve", help="start one service")
    services = serve.add_subparsers(dest="service", required=True, metavar="SERVICE")
    suggestion = services.add_parser("suggestion", help="the suggestion service (gRPC)")
    server.build_parser(suggestion)
    suggestion.set_defaults(run=_serve)
    tracking = services.add_parser("tracking", help="the tracking service (gRPC): experiments, runs, artifacts")
    tracking_server.build_parser(tracking)
    tracking.set_defaults(run=_serve_tracking)
    from gateway import server as gateway_server

    gateway = services.add_parser("gateway", help="the HTTP/JSON gateway in front of both services")
    gateway_server.build_parser(gateway)
    gateway.set_defaults(run=_serve_gateway)

    from trial_worker import cli as worker_cli

    worker = commands.add_parser("worker", help="run trials of a study: a Python train function or any command",
                                 description=worker_cli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    worker_cli.build_parser(worker)
    worker.set_defaults(run=_worker)

    study = commands.add_parser("study", help="create, list, show and manage studies")
    connection = argparse.ArgumentParser(add_help=False)
    add_option(connection, "--address", env="TUNING_SUGGESTION_ADDRESS", default="",
               help="suggestion service address (default: the suite `tuning up` recorded in "
                    "$TUNING_HOME/suite.json, else 127.0.0.1:50051)")
    actions = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")

    def action(name: str, **kwargs) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[connection], **kwargs)

    create = action("create", help="get-or-create a study from a YAML or JSON file")
    create.add_argument("file", help="a study file: name, parameters, objectives, ... (see docs/WORKERS.md; the "
                                     "older proto JSON form {name, spec} is read too)")
    create.set_defaults(run=_study_create)
    export = action("export", help="print a study's file (YAML), which `tuning study create` reads back")
    export.add_argument("name")
    export.set_defaults(run=_study_export)
    action("list", help="list studies").set_defaults(run=_study_list)
    show = action("show", help="a study and its trials")
    show.add_argument("name")
    show.add_argument("--limit", type=int, default=50, help="show the last N trials")
    show.add_argument("--json", action="store_true", help="print the study as JSON")
    show.set_defaults(run=_study_show)
    for verb, state in (("stop", "STOPPED"), ("resume", "ACTIVE"), ("complete", "COMPLETED")):
        sub = action(verb, help=f"set the study {state.lower()}")
        sub.add_argument("name")
        sub.set_defaults(run=_study_set_state(state))
    delete = action("delete", help="delete a study and its trials")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="really delete")
    delete.set_defaults(run=_study_delete)

    db = commands.add_parser("db", help="database schema")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--service", choices=("suggestion", "tracking"), default="suggestion",
                          help="whose schema (default: suggestion)")
    database.add_argument("--database-url", default="",
                          help="default: $TUNING_<SERVICE>_DATABASE_URL, else the service's own default")
    db_actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for verb, text in (("upgrade", "create or migrate the schema"), ("check", "exit 1 unless the schema is current")):
        db_actions.add_parser(verb, parents=[database], help=text).set_defaults(run=_db)

    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("folder", help="the backup folder")
    storage.add_argument("--suggestion-database-url", default="",
                         help="default: $TUNING_SUGGESTION_DATABASE_URL, else $TUNING_HOME/suggestion.db")
    storage.add_argument("--tracking-database-url", default="",
                         help="default: $TUNING_TRACKING_DATABASE_URL, else $TUNING_HOME/tracking.db")
    storage.add_argument("--artifacts", default="", help="default: $TUNING_ARTIFACTS, else $TUNING_HOME/artifacts")
    commands.add_parser("backup", parents=[storage], help="copy both databases and the artifacts into a new folder "
                        "(safe while the services run)").set_defaults(run=_backup)
    commands.add_parser("restore", parents=[storage], help="restore a backup into empty databases and an empty "
                        "artifact folder").set_defaults(run=_restore)

    demo = commands.add_parser("demo", help="the wine-quality XGBoost workflow end to end on embedded defaults")
    demo.add_argument("--workers", type=int, default=4, help="trials run at once")
    demo.add_argument("--trials", type=int, default=50, help="trial budget")
    demo.add_argument("--algorithm", default="auto", choices=("auto", "gp", "tpe", "random", "quasi_random"),
                      help="search algorithm (ASHA stops weak trials whichever is chosen)")
    demo.add_argument("--seed", type=int, default=0, help="the study's seed")
    demo.set_defaults(run=_demo)
    return parser


def run_command(command: Callable[[], int]) -> int:
    """Runs a command with the user's errors on one line of stderr, never a traceback: a
    service's refusal (1), a closed output pipe (`tuning study list | head`: 1, silently) or
    Ctrl-C (130)."""
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
        return code
    except TuningError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Whatever is still buffered would fail again as the interpreter exits.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as interrupt:
        if not getattr(interrupt, "announced", False):  # the Tuner has said what it did
            print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    from tuning_common import telemetry

    telemetry.configure_logging("WARNING")
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
