"""Workers as Ray tasks: ``tuning worker --ray-address ADDRESS --num-workers N``.

    tuning worker --study wine --train trial_worker.examples.wine:train --ray-address auto --num-workers 8
    tuning worker --study wine --ray-address ray://head:10001 --num-workers 4 --ray-working-dir -- Rscript train.R

The driver (this process) connects to a Ray cluster (``auto``, ``host:port``, ``ray://host:port``,
or ``local`` for a Ray instance started in-process) and runs ``num_workers`` Ray tasks. Each
task builds its own :class:`~trial_worker.worker.Worker` in its Ray worker process from
picklable inputs (the train function's import path or the command, and the
:class:`~trial_worker.worker.WorkerConfig`), runs it until the study is done (``--parallel``
and ``--max-trials`` apply per task) and returns a small summary. Ray only places the workers;
trials still come from the suggestion service, so Ray workers and plain ones can serve the
same study side by side.

The Ray worker processes must be able to import the train function's module (and
``trial_worker``): install the package on the cluster's nodes, or upload the current
directory with ``--ray-working-dir``. Without it, a task also looks in the driver's
directory when that directory exists on its node (the same machine, a shared file system).

SIGTERM or Ctrl-C on the driver cancels the tasks (``ray.cancel``): each task stops asking
for trials, lets its running ones finish for ``grace_seconds`` and then hands them back to
the study. A second signal kills the tasks (``ray.cancel(force=True)``); their running
trials come back when their leases expire, as after any crash.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from trial_worker.worker import OUTCOMES, WorkerConfig, describe_counts
from tuning_common import telemetry

log = logging.getLogger(__name__)

# Reasons a task may stop with for the run to count as a success.
SUCCESS_REASONS = ("study done", "max_trials")
# Per-task thread counts for the numerical libraries, unless the driver's environment sets them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Never uploaded with --ray-working-dir (besides what .gitignore lists, which Ray skips too).
WORKING_DIR_EXCLUDES = [".git", ".venv", "venv", "node_modules", ".tuning", "__pycache__"]
# After the first signal: how long past the grace period the driver waits for cancelled tasks.
CANCEL_MARGIN_SECONDS = 40.0
INSTALL_HINT = "pip install 'tuning-suite[ray]' (or pip install 'ray>=2.40,<3')"


def import_ray():
    # One line per trial: Ray's log deduplication would fold them into "[repeated 4x across cluster]".
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"--ray-address needs Ray, which is not installed here ({error}): {INSTALL_HINT}") from None
    return ray


def run_on_ray(address: str, num_workers: int, train_spec: str, command: list[str], config: WorkerConfig, *,
               num_cpus: float = 1.0, working_dir: bool = False, grace_seconds: float = 20.0,
               out=None) -> int:
    """Runs ``num_workers`` workers as Ray tasks and waits for them; returns the exit status.

    0 when every task stopped because the study is done or at ``max_trials``, 1 otherwise,
    128+signal when the driver was stopped by a signal.
    """
    out = out or sys.stdout
    if num_workers < 1:
        raise ValueError(f"--num-workers must be 1 or more, got {num_workers}")
    if num_cpus < 0:
        raise ValueError(f"--ray-num-cpus must be 0 or more, got {num_cpus}")
    if bool(train_spec) == bool(command):
        raise ValueError("give either a train function (--train) or a command, not both or neither")
    config.validate()
    ray = import_ray()

    from trial_worker.client import default_worker_id

    base = config.worker_id or default_worker_id()
    driver_dir = os.getcwd()
    spec = _portable_spec(train_spec, driver_dir, working_dir) if train_spec else ""
    runtime_env = _runtime_env(num_cpus, working_dir, driver_dir)
    problem = _unreachable(address)
    if problem:
        print(f"error: the Ray cluster at {address!r} is not reachable: {problem}", file=sys.stderr, flush=True)
        return 1
    init_kwargs: dict[str, Any] = {"runtime_env": runtime_env}
    if address == "local":
        init_kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **init_kwargs)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # ConnectionError, RuntimeError, ValueError: whatever Ray raises
        print(f"error: cannot start or reach the Ray cluster at {address!r}: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)
        return 1
    try:
        _warn_if_too_small(ray, num_workers, num_cpus, out)
        task = ray.remote(num_cpus=num_cpus)(run_task)
        refs = {}
        for index in range(num_workers):
            worker_config = dataclasses.replace(config, worker_id=f"{base}-ray{index}")
            ref = task.options(name=f"tuning-worker-{config.study}-{index}").remote(
                index, spec, list(command), worker_config, grace_seconds, driver_dir, working_dir)
            refs[ref] = index
        print(f"ray: {num_workers} worker task(s) for study {config.study} on {address} "
              f"({num_cpus:g} CPU each, {config.parallel} trial(s) at a time each)", file=out, flush=True)
        summaries, signalled = _wait(ray, refs, grace_seconds, out)
    except KeyboardInterrupt:  # before the tasks were all submitted: shutting down kills the submitted ones
        print("interrupted; the Ray tasks are killed", file=out, flush=True)
        return 130
    finally:
        ray.shutdown()
    totals = {o: sum(s["counts"].get(o, 0) for s in summaries) for o in OUTCOMES}
    reasons = sorted({s["reason"] for s in summaries})
    counts = describe_counts(totals)
    print(f"ray workers {base}-ray* stopped ({'; '.join(reasons)}): {counts}", file=out, flush=True)
    if signalled:
        return 128 + signalled[0]
    return 0 if all(s["reason"] in SUCCESS_REASONS for s in summaries) else 1


def run_task(index: int, train_spec: str, command: list[str], config: WorkerConfig, grace_seconds: float,
             driver_dir: str, uploaded: bool) -> dict[str, Any]:
    """One worker in a Ray worker process; returns a picklable summary.

    ``ray.cancel`` raises KeyboardInterrupt here (the task's main thread): the worker stops
    asking, running trials finish for ``grace_seconds``, then they are handed back.
    """
    from trial_worker.train_function import load_callable
    from trial_worker.worker import Worker, print_result

    logging.getLogger("trial_worker").setLevel(os.environ.get("TUNING_LOG_LEVEL", "WARNING").upper())
    host = socket.gethostname()
    summary: dict[str, Any] = {"index": index, "worker_id": config.worker_id, "host": host,
                               "counts": dict.fromkeys(OUTCOMES, 0), "reason": ""}
    # Without --ray-working-dir, the driver's directory where this node has it (the same machine, a shared
    # file system): the command runs there and modules there are importable, as for `python -m`.
    shared = not uploaded and os.path.isdir(driver_dir)
    try:
        if command:
            from trial_worker.command import CommandTrain

            train = CommandTrain(command, cwd=driver_dir if shared else None)
        else:
            if shared and driver_dir not in sys.path:
                sys.path.append(driver_dir)  # after the installed packages
            train = load_callable(train_spec)
        telemetry.setup(telemetry.TRIAL_WORKER)
        worker = Worker(train, config, on_result=print_result)
    except Exception as error:
        summary["reason"] = f"error: {type(error).__name__}: {error}"
        print(f"worker {config.worker_id} on {host}: {summary['reason']}", flush=True)
        return summary

    results: list = []
    finished = threading.Event()

    def run_worker() -> None:
        try:
            results.append(worker.run())
        finally:
            finished.set()

    # The worker runs in a thread and this (the task's main) thread waits, so that ray.cancel's
    # KeyboardInterrupt lands here. It waits with sleep and Event.wait: a KeyboardInterrupt inside
    # Thread.join marks the thread stopped while it still runs (Python before 3.13).
    runner = threading.Thread(target=run_worker, name="worker", daemon=True)
    cancelled = False
    with worker:
        print(f"worker {worker.worker_id} on {host}: study {config.study}, {config.parallel} at a time", flush=True)
        runner.start()
        try:
            while not finished.is_set():
                time.sleep(0.2)
        except KeyboardInterrupt:  # ray.cancel
            cancelled = True
            print(f"worker {worker.worker_id}: cancelled; finishing running trials "
                  f"(up to {grace_seconds:g} s)", flush=True)
            worker.stop()
            if not finished.wait(grace_seconds):
                handed = worker.hand_back("its Ray task was cancelled")
                if handed:
                    print(f"worker {worker.worker_id}: handed {handed} running trial(s) back to the study",
                          flush=True)
                finished.wait(60)
    telemetry.flush()  # Ray keeps this process for later tasks: its exit would be too late
    if results:
        summary["counts"] = results[0].counts()
        summary["reason"] = results[0].reason
    if cancelled:
        summary["reason"] = "cancelled"
    elif not summary["reason"]:
        summary["reason"] = "error: the worker did not finish"
    return summary


def _wait(ray, refs: dict, grace_seconds: float, out) -> tuple[list[dict[str, Any]], list[int]]:
    """Collects the tasks' summaries as they finish; the first signal cancels them, the second kills them."""
    received: list[int] = []
    previous = {}

    def handler(signum: int, frame: object) -> None:
        received.append(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    summaries: list[dict[str, Any]] = []
    pending = list(refs)
    handled = 0
    deadline = None
    try:
        while pending:
            if len(received) > handled:
                handled = len(received)
                force = handled > 1 or (deadline is not None and time.monotonic() > deadline)
                _cancel(ray, pending, received[-1], grace_seconds, force, out)
                if force:
                    for ref in pending:
                        summaries.append(_lost_task(refs[ref], "killed", out))
                    break
                deadline = time.monotonic() + grace_seconds + CANCEL_MARGIN_SECONDS
            elif deadline is not None and time.monotonic() > deadline:
                received.append(received[-1])  # the cancelled tasks took too long: kill them
                continue
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in done:
                summaries.append(_result(ray, ref, refs[ref], out))
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    return summaries, received


def _cancel(ray, pending: list, signum: int, grace_seconds: float, force: bool, out) -> None:
    name = signal.Signals(signum).name
    if force:
        print(f"{name}: killing {len(pending)} Ray task(s); their running trials come back when their "
              "leases expire", file=out, flush=True)
    else:
        print(f"{name}: cancelling {len(pending)} Ray task(s): running trials finish (up to {grace_seconds:g} s), "
              "then are handed back; signal again to kill the tasks now", file=out, flush=True)
    for ref in pending:
        try:
            ray.cancel(ref, force=force)
        except Exception as error:  # finished meanwhile
            log.info("ray.cancel: %s", error)


def _result(ray, ref, index: int, out) -> dict[str, Any]:
    try:
        summary = ray.get(ref)
    except Exception as error:  # TaskCancelledError before it started, a crashed worker process, ...
        return _lost_task(index, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", out)
    counts = describe_counts(summary["counts"])
    print(f"ray task {index}: worker {summary['worker_id']} on {summary['host']} stopped ({summary['reason']}): "
          f"{counts}", file=out, flush=True)
    return summary


def _lost_task(index: int, why: str, out) -> dict[str, Any]:
    if why.startswith("TaskCancelledError"):
        reason = "cancelled"
    else:
        reason = why if why == "killed" else f"error: {why}"
    print(f"ray task {index}: {reason}", file=out, flush=True)
    return {"index": index, "worker_id": "", "host": "", "counts": dict.fromkeys(OUTCOMES, 0), "reason": reason}


def _portable_spec(spec: str, driver_dir: str, working_dir: bool) -> str:
    """A ``file.py:function`` spec that the task finds: relative to the uploaded copy, or absolute."""
    module, sep, attribute = spec.partition(":")
    if not module.endswith(".py"):
        return spec
    path = Path(module).resolve()
    if working_dir and path.is_relative_to(driver_dir):
        return f"{path.relative_to(driver_dir)}{sep}{attribute}"
    return f"{path}{sep}{attribute}"


def _runtime_env(num_cpus: float, working_dir: bool, driver_dir: str) -> dict[str, Any]:
    threads = str(max(1, int(num_cpus)))
    env_vars = {name: os.environ.get(name, threads) for name in THREAD_VARIABLES}
    env_vars["TUNING_LOG_LEVEL"] = os.environ.get("TUNING_LOG_LEVEL", "WARNING")
    # The tasks export telemetry where the driver would.
    env_vars.update({name: value for name, value in os.environ.items() if name.startswith("OTEL_")})
    runtime_env: dict[str, Any] = {"env_vars": env_vars}
    if working_dir:
        runtime_env["working_dir"] = driver_dir
        runtime_env["excludes"] = list(WORKING_DIR_EXCLUDES)
    return runtime_env


def _unreachable(address: str, timeout: float = 5.0) -> str:
    """Why a ``host:port`` (or ``ray://host:port``) address does not answer; "" when it does or cannot be checked.

    ray.init keeps retrying an address where nothing listens for minutes.
    """
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address in ("auto", "local") or not sep or not port.isdigit():
        return ""
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return ""
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def _warn_if_too_small(ray, num_workers: int, num_cpus: float, out) -> None:
    try:
        cluster_cpus = float(ray.cluster_resources().get("CPU", 0))
    except Exception:  # only a hint
        return
    if num_cpus and cluster_cpus < num_workers * num_cpus:
        print(f"ray: the cluster has {cluster_cpus:g} CPUs for {num_workers} task(s) of {num_cpus:g}: "
              "the rest start as others finish", file=out, flush=True)
