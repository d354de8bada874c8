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
# Each subcommand is a module of its own, and imports what it runs only when it runs.

from tuning_common.commands import run_command
from tuning_suite.cli import backup, db, demo, local, serve, study, worker

# In the order `tuning --help` lists them.
COMMANDS = (local, serve, worker, study, db, backup, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tuning_common import telemetry

    telemetry.configure_logging("WARNING")
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
