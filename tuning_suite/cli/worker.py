"""`tuning worker`: run trials of a study (:mod:`trial_worker.cli`)."""

from __future__ import annotations

import argparse


def register(commands) -> None:
    from trial_worker import cli as worker_cli

    worker = commands.add_parser("worker", help="run trials of a study: a Python train function or any command",
                                 description=worker_cli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    worker_cli.build_parser(worker)
    worker.set_defaults(run=_worker)


def _worker(args: argparse.Namespace) -> int:
    from trial_worker import cli

    return cli.run(args)
