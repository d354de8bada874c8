"""`tuning worker` / `python -m trial_worker`: run trials of a study until it is done.

    tuning worker --study wine --train trial_worker.examples.wine:train --parallel 2
    tuning worker --study-file study.yaml -- Rscript train.R
    tuning worker --study wine --train trial_worker.examples.wine:train --ray-address auto --num-workers 8

SIGTERM (or Ctrl-C) stops asking for trials and lets the running ones finish for
``--grace-seconds``; then, or at a second signal, they are handed back to the study and the
worker exits. Exit status: 0 when the study is done or --max-trials ran, 1 on an error,
130/143 when stopped by a signal.

With ``--ray-address`` the command is a driver that runs ``--num-workers`` workers as tasks
on a Ray cluster (see :mod:`trial_worker.ray_launcher`); the other options apply to each.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from trial_worker.train_function import load_callable
from tuning_common import telemetry
from tuning_common.errors import InvalidArgument
from tuning_common.settings import add_option

log = logging.getLogger(__name__)


def load_study_file(path: str | os.PathLike):
    """A CreateStudyRequest from a YAML or JSON study file (see :mod:`trial_worker.study_file`)."""
    from trial_worker import study_file

    return study_file.load(path)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m trial_worker", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    # $TUNING_STUDY names the study when neither flag does (a Kubernetes ConfigMap, for one).
    study = os.environ.get("TUNING_STUDY") or None
    which = parser.add_mutually_exclusive_group(required=study is None)
    which.add_argument("--study", default=study, help="name of an existing study [$TUNING_STUDY]")
    which.add_argument("--study-file", help="get-or-create the study from this YAML/JSON file (as `tuning study create`)")
    add_option(parser, "--train", env="TUNING_TRAIN", default="",
               help="the train function, package.module:function or file.py:function")
    add_option(parser, "--suggestion-address", env="TUNING_SUGGESTION_ADDRESS", default="",
               help="suggestion service (default: the suite `tuning up` recorded in $TUNING_HOME/suite.json, "
                    "else 127.0.0.1:50051)")
    add_option(parser, "--tracking-address", env="TUNING_TRACKING_ADDRESS", default="",
               help="tracking service (default: the suite `tuning up` recorded in $TUNING_HOME/suite.json, "
                    "else 127.0.0.1:50052)")
    add_option(parser, "--tracking", env="TUNING_WORKER_TRACKING", default=True, type=bool,
               help="log every trial as a run in the tracking service")
    add_option(parser, "--experiment", env="TUNING_EXPERIMENT", default="",
               help="experiment of the trials' runs (default: the study's name)")
    add_option(parser, "--parallel", env="TUNING_WORKER_PARALLEL", default=1, type=int,
               help="trials run at once by this worker")
    add_option(parser, "--max-trials", env="TUNING_WORKER_MAX_TRIALS", default=0, type=int,
               help="stop after this many trials (0: when the study is done)")
    add_option(parser, "--worker-id", env="TUNING_WORKER_ID", default="", help="default: host-pid-random")
    add_option(parser, "--grace-seconds", env="TUNING_WORKER_GRACE_SECONDS", default=20.0, type=float,
               help="after SIGTERM, how long running trials may finish before they are handed back")
    add_option(parser, "--reconnect-seconds", env="TUNING_WORKER_RECONNECT_SECONDS", default=120.0, type=float,
               help="how long to keep retrying an unreachable service")
    add_option(parser, "--max-consecutive-failures", env="TUNING_WORKER_MAX_FAILURES", default=5, type=int,
               help="stop after this many failed trials in a row (0: never)")
    add_option(parser, "--wait", env="TUNING_WORKER_WAIT", default=False, type=bool,
               help="when the study is done, stopped or not created yet, keep waiting for work instead of "
                    "exiting (workers run as a Kubernetes Deployment); stop with SIGTERM")
    add_option(parser, "--wait-poll-seconds", env="TUNING_WORKER_WAIT_POLL_SECONDS", default=10.0, type=float,
               help="with --wait: how often to look for work again")
    add_option(parser, "--ray-address", env="TUNING_RAY_ADDRESS", default="",
               help="run the workers as tasks on this Ray cluster: auto, host:port, ray://host:port, "
                    "or local (a Ray instance in this process); empty: not on Ray")
    add_option(parser, "--num-workers", env="TUNING_RAY_NUM_WORKERS", default=1, type=int,
               help="with --ray-address: how many worker tasks to run")
    add_option(parser, "--ray-num-cpus", env="TUNING_RAY_NUM_CPUS", default=1.0, type=float,
               help="with --ray-address: CPUs Ray reserves for each worker task")
    add_option(parser, "--ray-working-dir", env="TUNING_RAY_WORKING_DIR", default=False, type=bool,
               help="with --ray-address: upload the current directory to the tasks (for train functions "
                    "and commands not installed on the cluster)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="instead of --train: a command to run per trial, after `--`")
    return parser


def _command(args: argparse.Namespace) -> list[str]:
    return args.command[1:] if args.command[:1] == ["--"] else args.command


def _train_function(args: argparse.Namespace) -> Callable[..., Any]:
    command = _command(args)
    if args.train and command:
        raise ValueError("give either --train or a command after --, not both")
    if command:
        from trial_worker.command import CommandTrain

        if shutil.which(command[0]) is None:
            raise ValueError(f"the command {command[0]!r} is not an executable file here or on $PATH")
        return CommandTrain(command)
    if not args.train:
        raise ValueError("what should the worker run? --train package.module:function, or -- a command")
    return load_callable(args.train)


def _config(args: argparse.Namespace, study: str):
    from trial_worker.worker import WorkerConfig

    return WorkerConfig(
        study=study, suggestion_address=args.suggestion_address, tracking_address=args.tracking_address,
        tracking=args.tracking, experiment=args.experiment or None, parallel=args.parallel,
        max_trials=args.max_trials, worker_id=args.worker_id or None, reconnect_seconds=args.reconnect_seconds,
        max_consecutive_failures=args.max_consecutive_failures, wait_for_work=args.wait,
        poll_seconds=args.wait_poll_seconds,
    )


def _study_name(args: argparse.Namespace) -> str:
    if not args.study_file:
        return args.study
    from trial_worker.client import SuggestionClient

    request = load_study_file(args.study_file)
    with SuggestionClient(args.suggestion_address) as client:
        return client.create_study_from_proto(request.name, request.spec).name


def _find_services(args: argparse.Namespace) -> None:
    """Fills in the services' addresses (a flag, $TUNING_*_ADDRESS, the suite `tuning up`
    recorded, the default) and says on stderr which ones the worker talks to."""
    from trial_worker.local_suite import find_address

    found = [find_address("suggestion", args.suggestion_address, flag="--suggestion-address")]
    args.suggestion_address = found[0].address
    if args.tracking:
        found.append(find_address("tracking", args.tracking_address, flag="--tracking-address"))
        args.tracking_address = found[1].address
    print("worker: talking to " + "; ".join(f.describe() for f in found)
          + ("" if args.tracking else "; no tracking (--no-tracking)"), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from trial_worker.worker import Worker, describe_counts, print_result

    try:
        _find_services(args)
        telemetry.setup(telemetry.TRIAL_WORKER)
        train = _train_function(args)
        study = _study_name(args)
        config = _config(args, study)
        config.validate()
    except (ValueError, InvalidArgument) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.ray_address:
        from trial_worker.ray_launcher import run_on_ray

        try:
            return run_on_ray(args.ray_address, args.num_workers, args.train, _command(args), config,
                              num_cpus=args.ray_num_cpus, working_dir=args.ray_working_dir,
                              grace_seconds=args.grace_seconds)
        except (ValueError, ImportError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    worker = Worker(train, config, on_result=print_result)
    signalled = _install_signal_handlers(worker, args.grace_seconds)
    with worker:
        print(f"worker {worker.worker_id}: study {study}, {config.parallel} at a time", flush=True)
        summary = worker.run()
    print(f"worker {worker.worker_id} stopped ({summary.reason}): {describe_counts(summary.counts())}", flush=True)
    if signalled:
        return 128 + signalled[0]
    return 1 if summary.reason.startswith("error") else 0


def _install_signal_handlers(worker, grace_seconds: float) -> list[int]:
    """First SIGTERM/SIGINT: finish running trials (for up to ``grace_seconds``); second: hand them back."""
    received: list[int] = []

    def hand_back() -> None:
        handed = worker.hand_back()
        if handed:
            print(f"handed {handed} running trial(s) back to the study", flush=True)

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            print(f"{signal.Signals(signum).name}: finishing running trials (up to {grace_seconds:g} s; "
                  "signal again to hand them back now)", flush=True)
            worker.stop()
            timer = threading.Timer(grace_seconds, hand_back)
            timer.daemon = True
            timer.start()
        else:
            threading.Thread(target=hand_back, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return received


def main(argv: list[str] | None = None) -> int:
    from tuning_common.commands import run_command

    telemetry.configure_logging("WARNING")
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))
