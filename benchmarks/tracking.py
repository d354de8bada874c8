#!/usr/bin/env python
"""The tracking service against MLflow: durable metric throughput, logging cost, search and history reads.

Both servers run as separate processes on 127.0.0.1, each with its own SQLite file in one
temporary directory, for the whole benchmark:

* ``ours``: ``python -m tracking_service --port 0`` (its defaults: SQLite in WAL mode with
  synchronous=NORMAL, handlers on the event-loop thread), driven through
  :class:`trial_worker.tracking.TrackingClient` and the fluent :mod:`trial_worker.tracking`.
* ``mlflow``: ``mlflow server --backend-store-uri sqlite:///... --workers 1`` from
  ``.venv-mlflow`` (its default uvicorn server with one worker; SQLite as MLflow leaves it:
  rollback journal, synchronous=FULL), driven through ``MlflowClient`` and ``mlflow.*`` by
  ``benchmarks/mlflow_side.py`` subprocesses in that virtualenv (MLflow's pins conflict
  with ours). The server's background job runner (huey consumers, unrelated to tracking)
  is switched off with ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` so that it takes no CPU
  from the server on a small machine.

Sections (``--sections``):

* ``throughput``: W writer processes (W in ``--writers``), each logging to its own run for
  ``--seconds`` after ``--warmup``: single calls (``TrackingClient.log_metric`` against
  ``MlflowClient.log_metric``) and batches of 1,000 (``log_batch`` on both: ours sends one column
  series, ``MetricSeries``, as its RunLogger does; MLflow a list of ``Metric``). Only points of
  calls the server acknowledged count; afterwards the points stored per run are counted
  (ours in its SQLite file, MLflow through ``get_metric_history``) and compared.
* ``latency``: caller time of the fluent ``log_metric`` (ours queues; MLflow's default is a
  synchronous request, its ``synchronous=False`` queues too), the time ``flush`` then takes,
  and the p50/p99 of one synchronous client call (from the 1-writer single-call run).
* ``search``: ``--runs`` runs with params ``max_depth``, ``learning_rate`` and metrics
  ``val_f1``, ``val_loss``, the same generated rows inserted straight into each system's
  tables; the first page (100) of ``metrics.val_f1 > 0.85 and params.max_depth = '6'``
  ordered by ``metrics.val_f1 DESC``, through each client.
* ``history``: one run per system with ``--points`` points of one metric (inserted straight
  into the tables), read back whole through each client.

    .venv/bin/python benchmarks/tracking.py --markdown /tmp/tracking_bench.md

This is a measurement, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import math
import os
import platform
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mlflow_side as side  # noqa: E402

SECTIONS = ("throughput", "latency", "search", "history")
MODES = ("single", "batch")
BATCH_SIZE = 1000
MLFLOW_VENV = ROOT / ".venv-mlflow"
SERVER_START_TIMEOUT_S = 180.0
WRITER_START_TIMEOUT_S = 600.0
# MLflow's client retries a failed request with backoff for up to about two minutes, so the
# call that straddles the end of the window may come back long after it.
WRITER_RESULT_TIMEOUT_S = 300.0
SUBCOMMAND_TIMEOUT_S = 3600.0
# MLflow's async queue sends one request per call unless MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS is set.
MLFLOW_BUFFER_SECONDS = 1
TARGET_THROUGHPUT_RATIO = 20.0
TARGET_CALLER_US = 1000.0
TARGET_SEARCH_MS = 200.0


def progress(message: str) -> None:
    """Progress goes to stderr, tables to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the benchmark dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(command: list[str], log_path: Path, *, env: dict[str, str] | None = None, pipes: bool = False
          ) -> subprocess.Popen:
    """A child in a session (and process group) of its own: Ctrl-C reaches only us, and we stop it in order."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=subprocess.PIPE if pipes else log, stderr=log,
                                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL, env=env or os.environ.copy(),
                                cwd=ROOT, start_new_session=True, preexec_fn=_die_with_parent, bufsize=0)


def stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL to the child's whole process group (MLflow's server has children of its own)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # The group id is the child's pid (start_new_session): only processes it started remain in it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class Messages:
    """Reads the ``@@{json}`` lines of a child's stdout (other lines are ignored), with a deadline."""

    def __init__(self, process: subprocess.Popen, name: str, log_path: Path):
        self.process, self.name, self.log_path, self.buffer = process, name, log_path, b""

    def next(self, deadline: float) -> dict:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(side.PREFIX):
                    return json.loads(text[len(side.PREFIX):])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name} sent nothing in time; see {self.log_path}")
            ready, _, _ = select.select([self.process.stdout], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 1 << 16)
                if not chunk:
                    self.process.wait(5.0)
                    raise RuntimeError(f"{self.name} exited ({self.process.returncode}) early: {tail(self.log_path)}")
                self.buffer += chunk


def tail(path: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the benchmark's state --------------------------------------------------------------------------


@dataclass
class Bench:
    """Where everything is, and what ran: servers, children, results."""

    args: argparse.Namespace
    workdir: Path
    ours_db: Path
    mlflow_db: Path
    ours_address: str = ""
    mlflow_uri: str = ""
    children: list[subprocess.Popen] = field(default_factory=list)
    servers: dict[str, tuple[subprocess.Popen, Path]] = field(default_factory=dict)
    writer_runs: dict[tuple[str, str, int], dict] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def mlflow_python(self) -> str:
        return str(MLFLOW_VENV / "bin" / "python")

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def stop_all(self) -> None:
        for process in reversed(self.children):
            stop(process)
        self.children.clear()

    # --- servers ---

    def start_ours(self) -> None:
        command = [sys.executable, "-m", "tracking_service", "--port", "0", "--database-url",
                   f"sqlite:///{self.ours_db}", "--artifacts", str(self.workdir / "ours-artifacts")]
        env = {**os.environ, "TUNING_HOME": str(self.workdir / "tuning-home")}
        log_path = self.log("ours-server")
        process = spawn(command, log_path, env=env)
        self.children.append(process)
        self.servers["ours"] = (process, log_path)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in log_path.read_text(errors="replace").splitlines():
                if "listening on" in line:
                    self.ours_address = line.rsplit(" ", 1)[1].strip()
                    return
            if process.poll() is not None:
                raise RuntimeError(f"our tracking server exited ({process.returncode}): {tail(log_path)}")
            time.sleep(0.05)
        raise TimeoutError(f"our tracking server did not start within {SERVER_START_TIMEOUT_S:.0f} s")

    def start_mlflow(self) -> None:
        port = free_port()
        command = [str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.mlflow_db}",
                   "--default-artifact-root", str(self.workdir / "mlflow-artifacts"), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log_path = self.log("mlflow-server")
        process = spawn(command, log_path, env=env)
        self.children.append(process)
        self.servers["mlflow"] = (process, log_path)
        self.mlflow_uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the MLflow server exited ({process.returncode}): {tail(log_path)}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.mlflow_uri}/health", timeout=2.0) as response:
                    if response.status == 200:
                        return
            time.sleep(0.25)
        raise TimeoutError(f"the MLflow server did not answer /health within {SERVER_START_TIMEOUT_S:.0f} s")

    def check_servers(self) -> None:
        for name, (process, log_path) in self.servers.items():
            if process.poll() is not None:
                raise RuntimeError(f"the {name} server died ({process.returncode}): {tail(log_path)}")

    def server_log_errors(self) -> dict[str, list[str]]:
        found = {}
        for name, (_, log_path) in self.servers.items():
            with contextlib.suppress(OSError):
                lines = [line for line in log_path.read_text(errors="replace").splitlines()
                         if " ERROR " in line or "Traceback" in line or "database is locked" in line]
                if lines:
                    found[name] = lines
        return found

    # --- MLflow-side subcommands ---

    def mlflow_side(self, subcommand: str, *args: Any, timeout: float = SUBCOMMAND_TIMEOUT_S) -> Any:
        """Runs ``mlflow_side.py <subcommand> --uri <server> ...`` in .venv-mlflow and returns its JSON result."""
        command = [self.mlflow_python, str(HERE / "mlflow_side.py"), subcommand, "--uri", self.mlflow_uri,
                   *map(str, args)]
        log_path = self.log(f"mlflow-{subcommand}")
        process = spawn(command, log_path, pipes=True)
        self.children.append(process)
        try:
            process.stdin.close()
            return Messages(process, f"mlflow_side {subcommand}", log_path).next(time.monotonic() + timeout)
        finally:
            stop(process, grace=10.0)
            self.children.remove(process)

    # --- our side ---

    def ours_client(self):
        from trial_worker.tracking import TrackingClient

        return TrackingClient(self.ours_address, timeout=600.0)

    def ours_sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A read of our SQLite file beside the server (WAL: it does not block the server)."""
        conn = sqlite3.connect(f"file:{self.ours_db}?mode=ro", uri=True, timeout=60.0)
        try:
            return conn.execute(query, tuple(params)).fetchall()
        finally:
            conn.close()

    def ours_counts(self, run_ids: Sequence[str]) -> dict[str, int]:
        marks = ",".join("?" * len(run_ids))
        rows = self.ours_sql(f"SELECT run_id, COUNT(*) FROM metrics WHERE run_id IN ({marks}) GROUP BY run_id",
                             run_ids)
        counts = dict.fromkeys(run_ids, 0)
        counts.update({run_id: count for run_id, count in rows})
        return counts


# --- section 1: durable metric throughput ----------------------------------------------------------


def our_writer_main(argv: Sequence[str]) -> int:
    """``tracking.py writer ...``: one of our writer processes (see mlflow_side.serve_writer)."""
    parser = argparse.ArgumentParser(prog="tracking.py writer")
    parser.add_argument("--address", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    def open_sender() -> tuple[Callable[[int], None], Callable[[], None]]:
        import random

        from trial_worker.tracking import TrackingClient, metric_series

        client = TrackingClient(args.address, timeout=60.0)
        client.get_run(args.run_id)  # connect and fail here, not inside the window
        rng = random.Random(os.getpid())
        run_id, size, key = args.run_id, args.batch_size, side.METRIC_KEY

        if args.mode == "single":
            def send(step: int) -> None:
                client.log_metric(run_id, key, rng.random(), step=step)
        else:
            def send(step: int) -> None:
                # Our client's batch form: one column series (what RunLogger sends too).
                stamp = time.time_ns() // 1_000_000
                client.log_batch(run_id, series=[metric_series(
                    key, [rng.random() for _ in range(size)], list(range(step, step + size)), [stamp] * size)])
        return send, client.close

    side.serve_writer(open_sender, 1 if args.mode == "single" else args.batch_size)
    return 0


def writer_run(bench: Bench, system: str, mode: str, writers: int) -> dict:
    """W writer processes of one system for one mode; cached (the latency section reuses the 1-writer single run)."""
    key = (system, mode, writers)
    if key in bench.writer_runs:
        return bench.writer_runs[key]
    args = bench.args
    label = f"{system}-{mode}-{writers}"
    if system == "ours":
        from tuning_common.errors import NotFound

        with bench.ours_client() as client:
            try:
                experiment = client.get_experiment_by_name("throughput")
            except NotFound:
                experiment = client.create_experiment("throughput")
            run_ids = [client.create_run(experiment.id, name=f"writer-{i}").id for i in range(writers)]
        commands = [[sys.executable, str(Path(__file__).resolve()), "writer", "--address", bench.ours_address,
                     "--run-id", run_id, "--mode", mode, "--batch-size", str(BATCH_SIZE)] for run_id in run_ids]
    else:
        run_ids = bench.mlflow_side("create-runs", "--experiment", "throughput", "--n", writers)["run_ids"]
        commands = [[bench.mlflow_python, str(HERE / "mlflow_side.py"), "writer", "--uri", bench.mlflow_uri,
                     "--run-id", run_id, "--mode", mode, "--batch-size", str(BATCH_SIZE)] for run_id in run_ids]
    progress(f"throughput {label}: starting {writers} writer process(es)")
    log_path = bench.log(f"writers-{label}")
    processes = []
    try:
        for command in commands:
            process = spawn(command, log_path, pipes=True)
            bench.children.append(process)
            processes.append(process)
        readers = [Messages(p, f"{system} writer {i}", log_path) for i, p in enumerate(processes)]
        deadline = time.monotonic() + WRITER_START_TIMEOUT_S
        for reader in readers:
            ready = reader.next(deadline)
            if not ready.get("ready"):
                raise RuntimeError(f"{reader.name} could not start: {ready.get('error')}")
        start = time.time() + args.warmup
        window = {"start": start, "end": start + args.seconds}
        for process in processes:
            process.stdin.write((json.dumps(window) + "\n").encode())
            process.stdin.flush()
        deadline = time.monotonic() + args.warmup + args.seconds + WRITER_RESULT_TIMEOUT_S
        results = [reader.next(deadline) for reader in readers]
    finally:
        for process in processes:
            stop(process, grace=10.0)
            bench.children.remove(process)
    bench.check_servers()
    latencies = [us for result in results for us in result["latencies_us"]]
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result["errors"])
    acked = {run_id: result["acked_total"] for run_id, result in zip(run_ids, results)}
    if system == "ours":
        stored = bench.ours_counts(run_ids)
    else:
        stored = bench.mlflow_side("history-counts", "--run-ids", *run_ids)
    run = {
        "system": system, "mode": mode, "writers": writers,
        "throughput": sum(r["acked_window"] for r in results) / args.seconds,
        "p50_ms": side.percentile(latencies, 50) / 1000.0, "p99_ms": side.percentile(latencies, 99) / 1000.0,
        "calls": len(latencies), "errors": dict(errors),
        "acked_total": sum(acked.values()), "stored_total": sum(stored.values()),
        "mismatched_runs": sum(1 for run_id in run_ids if acked[run_id] != stored.get(run_id, 0)),
    }
    progress(f"throughput {label}: {run['throughput']:,.0f} metrics/s, call p50 {run['p50_ms']:.2f} ms, "
             f"acked {run['acked_total']:,}, stored {run['stored_total']:,}, {sum(errors.values())} error(s)")
    bench.writer_runs[key] = run
    return run


def section_throughput(bench: Bench) -> dict:
    runs = []
    for mode in MODES:
        for writers in bench.args.writer_counts:
            # Interleaved, so that slow drifts of the machine's load touch both systems alike.
            for system in ("ours", "mlflow"):
                runs.append(writer_run(bench, system, mode, writers))
    return {"runs": runs}


# --- section 2: caller-side cost of logging --------------------------------------------------------


def section_latency(bench: Bench) -> dict:
    args = bench.args
    from trial_worker import tracking

    progress(f"latency: ours, fluent log_metric, {args.repeats} x {args.fluent_calls:,} calls")
    tracking.set_tracking_address(bench.ours_address, spool_dir=bench.workdir / "spool")
    ours: dict[str, Any] = {"call_us": [], "flush_s": []}
    try:
        tracking.set_experiment("fluent")
        with tracking.start_run("fluent") as run:
            tracking.log_metric(side.METRIC_KEY, 0.0, step=0)  # the logger's thread and channel start here
            tracking.flush()
            step = 1
            for _ in range(args.repeats):
                began = time.perf_counter()
                for i in range(args.fluent_calls):
                    tracking.log_metric(side.METRIC_KEY, 1.0 / (i + 1), step=step + i)
                called = time.perf_counter()
                tracking.flush()
                ours["call_us"].append((called - began) / args.fluent_calls * 1e6)
                ours["flush_s"].append(time.perf_counter() - called)
                step += args.fluent_calls
        ours["logged"] = step
        ours["stored"] = bench.ours_counts([run.run_id])[run.run_id]
    finally:
        tracking.set_tracking_address(None)  # closes the logger (and its thread) and the channel
    progress(f"latency: ours {statistics.median(ours['call_us']):.2f} us/call, "
             f"flush {statistics.median(ours['flush_s']):.3f} s")
    progress(f"latency: mlflow, fluent log_metric, {args.mlflow_sync_calls:,} synchronous calls, "
             f"{args.mlflow_sync_calls:,} with synchronous=False, {args.repeats} x {args.fluent_calls:,} with "
             f"synchronous=False and {MLFLOW_BUFFER_SECONDS} s buffering")
    mlflow = bench.mlflow_side("fluent", "--experiment", "fluent", "--sync-calls", args.mlflow_sync_calls,
                               "--sync-repeats", 1, "--async-calls", args.fluent_calls,
                               "--async-repeats", args.repeats, "--buffer-seconds", MLFLOW_BUFFER_SECONDS)
    progress(f"latency: mlflow {statistics.median(mlflow['sync_call_us']):.1f} us/call synchronous, "
             f"{statistics.median(mlflow['async_default_call_us']):.1f} us/call queued (as shipped), "
             f"{statistics.median(mlflow['async_buffered_call_us']):.1f} us/call queued (buffered), "
             f"flush {statistics.median(mlflow['async_buffered_flush_s']):.3f} s")
    single = {system: writer_run(bench, system, "single", 1) for system in ("ours", "mlflow")}
    return {"ours": ours, "mlflow": mlflow, "single": single}


# --- section 3: search over many runs --------------------------------------------------------------


def _checkpoint(engine) -> None:
    """Folds the WAL back into the file, so that reads do not wade through a WAL of the whole load."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def populate_ours_runs(bench: Bench, experiment_name: str) -> dict:
    args = bench.args
    with bench.ours_client() as client:
        experiment = client.create_experiment(experiment_name)
    location = experiment.artifact_location.rstrip("/")
    rows = list(side.search_rows(args.runs, args.seed))
    began = time.perf_counter()
    engine = side.bulk_engine(bench.ours_db)
    try:
        with engine.begin() as conn:
            side.insert_our_runs(conn, experiment.id, location, rows)
        _checkpoint(engine)
    finally:
        engine.dispose()
    stored = bench.ours_sql("SELECT COUNT(*) FROM runs WHERE experiment_id = ?", [experiment.id])[0][0]
    return {"experiment_id": experiment.id, "seconds_populate": time.perf_counter() - began, "stored_runs": stored}


def section_search(bench: Bench) -> dict:
    args = bench.args
    expected, expected_page = side.expected_matches(args.runs, args.seed)
    progress(f"search: populating ours with {args.runs:,} runs")
    ours_pop = populate_ours_runs(bench, "search")
    progress(f"search: ours populated in {ours_pop['seconds_populate']:.1f} s ({ours_pop['stored_runs']:,} runs)")
    progress(f"search: populating mlflow with {args.runs:,} runs")
    mlflow_pop = bench.mlflow_side("populate-runs", "--db", bench.mlflow_db, "--experiment", "search",
                                   "--runs", args.runs, "--seed", args.seed)
    progress(f"search: mlflow populated in {mlflow_pop['seconds_populate']:.1f} s ({mlflow_pop['stored_runs']:,} runs)")

    progress(f"search: timing ours, 1 warm-up + {args.repeats}")
    times, page = [], []
    with bench.ours_client() as client:
        for attempt in range(1 + args.repeats):
            began = time.perf_counter()
            page = list(client.search_runs([ours_pop["experiment_id"]], side.SEARCH_FILTER,
                                           order_by=side.SEARCH_ORDER, max_results=100))
            if attempt >= 1:
                times.append(time.perf_counter() - began)
        began = time.perf_counter()
        count = sum(1 for _ in client.search_runs([ours_pop["experiment_id"]], side.SEARCH_FILTER,
                                                  order_by=side.SEARCH_ORDER, page_size=50_000))
        count_seconds = time.perf_counter() - began
    ours = {"seconds": times, "page_run_ids": [run.id for run in page], "count": count,
            "count_seconds": count_seconds, **ours_pop}
    progress(f"search: ours median {statistics.median(times) * 1000:.1f} ms, {count} matches")
    progress(f"search: timing mlflow, 1 warm-up + {args.repeats}")
    mlflow = bench.mlflow_side("search", "--experiment-id", mlflow_pop["experiment_id"], "--repeats", args.repeats,
                               "--warmup", 1)
    mlflow.update(mlflow_pop)
    progress(f"search: mlflow median {statistics.median(mlflow['seconds']) * 1000:.1f} ms, {mlflow['count']} matches")
    return {"ours": ours, "mlflow": mlflow, "expected": expected, "expected_page": expected_page}


# --- section 4: history of a long series -----------------------------------------------------------


def populate_ours_history(bench: Bench) -> dict:
    from tracking_service.persistence.tables import latest_metrics, metrics

    args = bench.args
    with bench.ours_client() as client:
        experiment = client.create_experiment("history")
        run_id = client.create_run(experiment.id, name="history").id
    began = time.perf_counter()
    engine = side.bulk_engine(bench.ours_db)
    last: dict = {}
    try:
        with engine.begin() as conn:
            def points() -> Iterator[dict]:
                nonlocal last
                for step, stamp, value in side.history_values(args.points, args.seed):
                    last = {"run_id": run_id, "key": side.METRIC_KEY, "step": step, "timestamp_ms": stamp,
                            "value": value, "is_nan": False}
                    yield last

            side.insert_chunks(conn, metrics, points())
            conn.execute(latest_metrics.insert(), [last])
        _checkpoint(engine)
    finally:
        engine.dispose()
    stored = bench.ours_counts([run_id])[run_id]
    return {"run_id": run_id, "seconds_populate": time.perf_counter() - began, "stored_points": stored}


def section_history(bench: Bench) -> dict:
    args = bench.args
    progress(f"history: populating ours with {args.points:,} points")
    ours_pop = populate_ours_history(bench)
    progress(f"history: ours populated in {ours_pop['seconds_populate']:.1f} s ({ours_pop['stored_points']:,} points)")
    progress(f"history: populating mlflow with {args.points:,} points")
    mlflow_pop = bench.mlflow_side("populate-history", "--db", bench.mlflow_db, "--experiment", "history",
                                   "--points", args.points, "--seed", args.seed)
    progress(f"history: mlflow populated in {mlflow_pop['seconds_populate']:.1f} s "
             f"({mlflow_pop['stored_points']:,} points)")

    def timed(read: Callable[[], int]) -> dict:
        times, points = [], 0
        for attempt in range(1 + args.history_repeats):
            began = time.perf_counter()
            points = read()
            if attempt >= 1:
                times.append(time.perf_counter() - began)
        return {"seconds": times, "points": points}

    from trial_worker.tracking import TrackingClient

    page_size = TrackingClient.get_metric_history.__kwdefaults__["page_size"]
    run_id = ours_pop["run_id"]
    with bench.ours_client() as client:
        progress(f"history: timing ours (all points), 1 warm-up + {args.history_repeats}")
        ours_full = timed(lambda: sum(1 for _ in client.get_metric_history(run_id, side.METRIC_KEY)))
        progress(f"history: ours median {statistics.median(ours_full['seconds']):.2f} s")
        progress(f"history: timing ours (max_points=1000), 1 warm-up + {args.history_repeats}")
        ours_sampled = timed(lambda: sum(1 for _ in client.get_metric_history(run_id, side.METRIC_KEY,
                                                                              max_points=1000)))
    progress(f"history: timing mlflow, 1 warm-up + {args.history_repeats}")
    mlflow = bench.mlflow_side("history", "--run-id", mlflow_pop["run_id"], "--repeats", args.history_repeats,
                               "--warmup", 1)
    progress(f"history: mlflow median {statistics.median(mlflow['seconds']):.2f} s")
    return {"ours_full": {**ours_full, "page_size": page_size, **ours_pop}, "ours_sampled": ours_sampled,
            "mlflow": {**mlflow, **mlflow_pop}}


# --- reporting -------------------------------------------------------------------------------------


def machine_description(bench: Bench) -> dict[str, str]:
    """Date, CPU count, CPU model, Python, versions on both sides, the command."""
    from importlib.metadata import version

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ours = []
    for package in ("grpcio", "protobuf", "sqlalchemy"):
        with contextlib.suppress(Exception):
            ours.append(f"{package} {version(package)}")
    probe = ("from importlib.metadata import version; import platform; "
             "print(', '.join(f'{p} {version(p)}' for p in ('mlflow', 'sqlalchemy', 'uvicorn', 'requests'))"
             " + f', Python {platform.python_version()}')")
    try:
        theirs = subprocess.run([bench.mlflow_python, "-c", probe], capture_output=True, text=True, timeout=120,
                                check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        theirs = f"unknown ({side.describe_error(error)})"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {platform.machine()}, {model}, "
                   f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        "ours": ", ".join(ours),
        "mlflow": theirs,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    }


def load_average() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        one, five, fifteen = os.getloadavg()
        return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


def _num(value: float, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(ours: float, theirs: float, higher_is_better: bool = True) -> str:
    """ours/mlflow (throughput) or mlflow/ours (times): how many times better ours is; "-" if unknown."""
    if any(v is None or math.isnan(v) or v == 0 for v in (ours, theirs)):
        return "-"
    return f"{ours / theirs:,.1f}x" if higher_is_better else f"{theirs / ours:,.1f}x"


def render_table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    """A plain-text table with aligned columns, or a Markdown one."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])


def _errors_cell(errors: dict[str, int]) -> str:
    return str(sum(errors.values()))


def report_throughput(result: dict, args: argparse.Namespace, markdown: bool) -> list[str]:
    by_key = {(r["system"], r["mode"], r["writers"]): r for r in result["runs"]}
    headers = ["calls", "writers", "ours (metrics/s)", "mlflow (metrics/s)", "ours/mlflow",
               "ours call p50 / p99 (ms)", "mlflow call p50 / p99 (ms)", "errors ours / mlflow"]
    rows, checks, notes = [], [], []
    for mode in MODES:
        for writers in args.writer_counts:
            ours, theirs = by_key.get(("ours", mode, writers)), by_key.get(("mlflow", mode, writers))
            if ours is None or theirs is None:
                continue
            label = "single (1 metric)" if mode == "single" else f"batch ({BATCH_SIZE:,})"
            rows.append([label, str(writers), _num(ours["throughput"]), _num(theirs["throughput"]),
                         _ratio(ours["throughput"], theirs["throughput"]),
                         f"{_num(ours['p50_ms'], 2)} / {_num(ours['p99_ms'], 2)}",
                         f"{_num(theirs['p50_ms'], 2)} / {_num(theirs['p99_ms'], 2)}",
                         f"{_errors_cell(ours['errors'])} / {_errors_cell(theirs['errors'])}"])
            for run in (ours, theirs):
                checks.append([label, str(writers), run["system"], f"{run['acked_total']:,}",
                               f"{run['stored_total']:,}", f"{run['stored_total'] - run['acked_total']:+,}",
                               str(run["mismatched_runs"])])
                for what, count in sorted(run["errors"].items(), key=lambda item: -item[1]):
                    notes.append(f"{run['system']}, {label}, {writers} writer(s): {count} x {what}")
    parts = [render_table(headers, rows, markdown), "",
             "Read-back: points acknowledged to the writers (whole run, warm-up included) against points stored "
             "(ours: COUNT(*) in its SQLite file; mlflow: `len(MlflowClient.get_metric_history)`).", "",
             render_table(["calls", "writers", "system", "acknowledged", "stored", "stored - acked",
                           "runs with a mismatch"], checks, markdown), ""]
    if notes:
        parts += ["Errors:", ""] + [f"- {note}" for note in notes] + [""]
    return parts


def _end_to_end(calls: int, call_us: Sequence[float], flush_s: Sequence[float]) -> float:
    """Metrics/s from the first call to the end of the flush (median over the repetitions)."""
    return calls / statistics.median([us * calls / 1e6 + f for us, f in zip(call_us, flush_s)])


def report_latency(result: dict, args: argparse.Namespace, markdown: bool) -> list[str]:
    ours, theirs, single = result["ours"], result["mlflow"], result["single"]
    med = statistics.median
    n, m = f"{args.fluent_calls:,}", f"{args.mlflow_sync_calls:,}"
    ours_us = med(ours["call_us"])
    ours_rate = _end_to_end(args.fluent_calls, ours["call_us"], ours["flush_s"])
    default_rate = _end_to_end(args.mlflow_sync_calls, theirs["async_default_call_us"],
                               theirs["async_default_flush_s"])
    buffered_rate = _end_to_end(args.fluent_calls, theirs["async_buffered_call_us"], theirs["async_buffered_flush_s"])
    buffered = f"`synchronous=False` + `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS={theirs['buffer_seconds']}`"
    rows = [
        [f"fluent `log_metric`, default mode (µs/call): ours queued, mlflow synchronous (1 x {m})",
         _num(ours_us, 2), _num(med(theirs["sync_call_us"]), 1),
         _ratio(ours_us, med(theirs["sync_call_us"]), higher_is_better=False)],
        [f"fluent `log_metric` queued (µs/call): mlflow `synchronous=False` as shipped (1 x {m})",
         _num(ours_us, 2), _num(med(theirs["async_default_call_us"]), 1),
         _ratio(ours_us, med(theirs["async_default_call_us"]), higher_is_better=False)],
        [f"fluent `log_metric` queued (µs/call): mlflow {buffered} ({args.repeats} x {n})",
         _num(ours_us, 2), _num(med(theirs["async_buffered_call_us"]), 1),
         _ratio(ours_us, med(theirs["async_buffered_call_us"]), higher_is_better=False)],
        [f"then `flush()` / `mlflow.flush_async_logging()` until the {n} are stored (s; mlflow buffered)",
         _num(med(ours["flush_s"]), 3), _num(med(theirs["async_buffered_flush_s"]), 3),
         _ratio(med(ours["flush_s"]), med(theirs["async_buffered_flush_s"]), higher_is_better=False)],
        ["queued calls + flush, end to end (metrics/s): mlflow `synchronous=False` as shipped",
         _num(ours_rate), _num(default_rate), _ratio(ours_rate, default_rate)],
        ["queued calls + flush, end to end (metrics/s): mlflow buffered", _num(ours_rate), _num(buffered_rate),
         _ratio(ours_rate, buffered_rate)],
        ["one synchronous client call, p50 (ms): `TrackingClient.log_metric` / `MlflowClient.log_metric`, 1 writer",
         _num(single["ours"]["p50_ms"], 3), _num(single["mlflow"]["p50_ms"], 3),
         _ratio(single["ours"]["p50_ms"], single["mlflow"]["p50_ms"], higher_is_better=False)],
        ["one synchronous client call, p99 (ms)", _num(single["ours"]["p99_ms"], 3),
         _num(single["mlflow"]["p99_ms"], 3),
         _ratio(single["ours"]["p99_ms"], single["mlflow"]["p99_ms"], higher_is_better=False)],
    ]
    notes = (f"Ours: median of {args.repeats} x {n} calls of `trial_worker.tracking.log_metric` (a deque append; "
             f"a background thread sends batches of up to 1,000), spread {min(ours['call_us']):.2f}-"
             f"{max(ours['call_us']):.2f} µs/call, flush {min(ours['flush_s']):.3f}-{max(ours['flush_s']):.3f} s. "
             f"MLflow's queue without buffering sends one `log-batch` request per call (from a pool of threads); "
             f"with buffering it gathers up to 1,000 per request every {theirs['buffer_seconds']} s, so its flush "
             f"includes up to that wait, but its calls are slow enough that most metrics are sent before the last "
             f"call returns, which is why its flush is short: the end-to-end rows compare like with like; "
             f"buffered spread {min(theirs['async_buffered_call_us']):.1f}-"
             f"{max(theirs['async_buffered_call_us']):.1f} µs/call. Stored after the fluent runs: ours "
             f"{ours['stored']:,} of {ours['logged']:,} logged, mlflow {theirs['stored']:,} of {theirs['logged']:,}. "
             f"The synchronous-call rows come from the 1-writer single-call throughput run "
             f"({single['ours']['calls']:,} ours and {single['mlflow']['calls']:,} mlflow calls in the window).")
    return [render_table(["measurement", "ours", "mlflow", "ours better by"], rows, markdown), "", notes, ""]


def report_search(result: dict, args: argparse.Namespace, markdown: bool) -> list[str]:
    rows = []
    for system in ("ours", "mlflow"):
        r = result[system]
        seconds = r["seconds"]
        rows.append([system, _num(statistics.median(seconds) * 1000, 1),
                     f"{min(seconds) * 1000:,.1f}-{max(seconds) * 1000:,.1f}", str(len(r["page_run_ids"])),
                     "yes" if r["page_run_ids"] == result["expected_page"] else "no", f"{r['count']:,}",
                     _num(r["count_seconds"], 2), f"{r['stored_runs']:,}", _num(r["seconds_populate"], 1)])
    ratio = _ratio(statistics.median(result["ours"]["seconds"]), statistics.median(result["mlflow"]["seconds"]),
                   higher_is_better=False)
    return [render_table(["system", "first page, median (ms)", "range (ms)", "runs on page",
                          "page = expected top 100", "all matches (paged count)", "count took (s)",
                          "runs in experiment (SQL)", "population (s)"], rows, markdown), "",
            f"Ours is {ratio} faster on the timed query (median against median). Expected matches from the "
            f"generator: {result['expected']:,}.", ""]


def report_history(result: dict, args: argparse.Namespace, markdown: bool) -> list[str]:
    full, sampled, theirs = result["ours_full"], result["ours_sampled"], result["mlflow"]
    med = statistics.median
    rows = [
        ["ours, every point (`TrackingClient.get_metric_history`, keyset pages)", _num(med(full["seconds"]), 2),
         f"{min(full['seconds']):.2f}-{max(full['seconds']):.2f}", f"{full['points']:,}",
         f"{full['page_size']:,}", _num(full["points"] / med(full["seconds"]))],
        ["mlflow, every point (`MlflowClient.get_metric_history`, offset pages)", _num(med(theirs["seconds"]), 2),
         f"{min(theirs['seconds']):.2f}-{max(theirs['seconds']):.2f}", f"{theirs['points']:,}",
         f"{theirs['page_size']:,}", _num(theirs["points"] / med(theirs["seconds"]))],
        ["ours, `max_points=1000` (down-sampled, one page)", _num(med(sampled["seconds"]), 3),
         f"{min(sampled['seconds']):.3f}-{max(sampled['seconds']):.3f}", f"{sampled['points']:,}", "-", "-"],
    ]
    return [render_table(["read", "median (s)", "range (s)", "points returned", "page size", "points/s"], rows,
                         markdown), "",
            f"Ours reads every point {_ratio(med(full['seconds']), med(theirs['seconds']), False)} faster. "
            f"Stored (SQL count after population): ours {full['stored_points']:,} in "
            f"{full['seconds_populate']:.1f} s, mlflow {theirs['stored_points']:,} in "
            f"{theirs['seconds_populate']:.1f} s.", ""]


def report_targets(bench: Bench, markdown: bool) -> list[str]:
    rows = []
    throughput = bench.results.get("throughput")
    if throughput:
        by_key = {(r["system"], r["mode"], r["writers"]): r for r in throughput["runs"]}
        for writers in bench.args.writer_counts:
            ours, theirs = by_key.get(("ours", "batch", writers)), by_key.get(("mlflow", "batch", writers))
            if ours and theirs and theirs["throughput"]:
                ratio = ours["throughput"] / theirs["throughput"]
                rows.append([f">= {TARGET_THROUGHPUT_RATIO:g}x MLflow's batched throughput ({writers} writer(s))",
                             f"{ratio:.1f}x", "yes" if ratio >= TARGET_THROUGHPUT_RATIO else "no"])
    latency = bench.results.get("latency")
    if latency:
        us = statistics.median(latency["ours"]["call_us"])
        rows.append([f"a logged metric under {TARGET_CALLER_US / 1000:g} ms of caller time (fluent `log_metric`)",
                     f"{us:.2f} µs", "yes" if us < TARGET_CALLER_US else "no"])
    search = bench.results.get("search")
    if search:
        ms = statistics.median(search["ours"]["seconds"]) * 1000
        rows.append([f"search over {bench.args.runs:,} runs under {TARGET_SEARCH_MS:g} ms", f"{ms:.1f} ms",
                     "yes" if ms < TARGET_SEARCH_MS else "no"])
    return [render_table(["target (issue)", "measured", "met"], rows, markdown), ""] if rows else []


TITLES = {
    "throughput": "Durable metric throughput",
    "latency": "Caller-side cost of logging a metric",
    "search": "SearchRuns over many runs",
    "history": "Reading a long metric history",
}
REPORTERS = {"throughput": report_throughput, "latency": report_latency, "search": report_search,
             "history": report_history}


def report(bench: Bench, markdown: bool) -> str:
    parts: list[str] = []
    targets = report_targets(bench, markdown)
    if targets:
        parts += ["## Targets" if markdown else "=== Targets ===", "", *targets]
    for section in bench.args.section_list:
        title = TITLES[section]
        parts += [f"## {title}" if markdown else f"=== {title} ===", ""]
        if section in bench.results:
            try:
                parts += REPORTERS[section](bench.results[section], bench.args, markdown)
            except Exception as error:  # a report that cannot be drawn still leaves the others
                parts += [f"(cannot report: {side.describe_error(error)})", ""]
        if section in bench.errors:
            parts += [f"Section failed: {bench.errors[section]}", ""]
    log_errors = bench.server_log_errors()
    if log_errors:
        parts += ["## Server logs" if markdown else "=== Server logs ===", ""]
        for name, lines in log_errors.items():
            parts += [f"- {name}: {len(lines)} error line(s), first: `{lines[0][:200]}`"]
        parts.append("")
    return "\n".join(parts)


def settings(args: argparse.Namespace) -> str:
    """What the sections that ran were asked to do."""
    parts = {
        "throughput": f"throughput: {args.warmup:g} s warm-up + {args.seconds:g} s measured per run, writers "
                      f"{', '.join(map(str, args.writer_counts))}, batches of {BATCH_SIZE:,}",
        "latency": f"latency: ours {args.repeats} x {args.fluent_calls:,} queued calls, mlflow synchronous and "
                   f"as-shipped `synchronous=False` 1 x {args.mlflow_sync_calls:,}, buffered {args.repeats} x "
                   f"{args.fluent_calls:,}",
        "search": f"search: {args.runs:,} runs, median of {args.repeats} after 1 warm-up",
        "history": f"history: {args.points:,} points, median of {args.history_repeats} after 1 warm-up",
    }
    return "; ".join(parts[section] for section in args.section_list) + f"; seed {args.seed}"


def markdown_document(bench: Bench, machine: dict[str, str], load_start: str, load_end: str, elapsed: float) -> str:
    args = bench.args
    header = [
        "# Tracking benchmark: the tracking service against MLflow",
        "",
        f"- Date: {machine['date']}; the whole run took {elapsed / 60:.1f} min",
        f"- Machine: {machine['machine']}",
        f"- Load (`uptime`) at start: `{load_start}`; at end: `{load_end}`. Other processes on the machine "
        "share its CPUs: the numbers are only as quiet as that load.",
        f"- Ours: {machine['ours']}; mlflow side (`.venv-mlflow`): {machine['mlflow']}",
        f"- Command: `{machine['command']}`",
        f"- Settings: {settings(args)}.",
        "- Servers: ours `python -m tracking_service --port 0` (its defaults; on SQLite its handlers run on the "
        "gRPC event-loop thread, one at a time); mlflow `mlflow server --backend-store-uri sqlite:///... "
        "--workers 1` (its default uvicorn server, one worker process, access log on), with "
        "`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` (the huey job runner, not part of tracking, would otherwise "
        "add 8 idle processes). Each server has its own SQLite file in one temporary directory on the same file "
        "system; clients connect over 127.0.0.1.",
        "- SQLite as each system ships it: ours WAL with synchronous=NORMAL (a commit survives a crash of the "
        "process, not necessarily of the machine before the next checkpoint); MLflow's rollback journal with "
        "synchronous=FULL (an fsync per commit). \"Durable\" below means acknowledged by the server after its "
        "commit, under those settings.",
        "- Writers are processes (one client and one run each). A point counts once the call that carried it "
        "returned; each client keeps its default retry policy; failed calls are counted as errors.",
        "- Population (search, history) bypasses both APIs: the same generated rows are inserted with SQLAlchemy "
        f"Core executemany in chunks of {side.CHUNK:,}, in one transaction per system, with PRAGMA "
        "synchronous=OFF on the loading connection only; ours then checkpoints its WAL. Experiments and the "
        "history runs are created through each API first. Neither file is ANALYZEd. MLflow runs also get the "
        "`mlflow.runName` tag its own `create_run` writes.",
        "",
    ]
    return "\n".join(header) + "\n" + report(bench, markdown=True)


# --- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each throughput run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each throughput run")
    parser.add_argument("--writers", default="1,16", help="comma-separated writer process counts")
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the search experiment")
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the long metric history")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (fluent logging, search)")
    parser.add_argument("--history-repeats", type=int, default=3, help="timed reads of the whole history")
    parser.add_argument("--fluent-calls", type=int, default=100_000, help="queued log_metric calls per repetition")
    parser.add_argument("--mlflow-sync-calls", type=int, default=2000,
                        help="synchronous (and unbuffered synchronous=False) mlflow.log_metric calls, timed once")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated runs and history")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, logs)")
    args = parser.parse_args(argv)
    args.section_list = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not args.section_list or set(args.section_list) - set(SECTIONS):
        parser.error(f"--sections: choose from {', '.join(SECTIONS)}")
    try:
        args.writer_counts = [int(w) for w in args.writers.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--writers: expected comma-separated integers, got {args.writers!r}")
    if not args.writer_counts or min(args.writer_counts) < 1:
        parser.error("--writers: every count must be 1 or more")
    if args.seconds <= 0 or args.warmup < 0 or min(args.runs, args.points, args.repeats, args.history_repeats,
                                                   args.fluent_calls, args.mlflow_sync_calls) < 1:
        parser.error("--seconds, --runs, --points, --repeats, --history-repeats and the call counts must be positive")
    if not (MLFLOW_VENV / "bin" / "mlflow").exists():
        parser.error(f"MLflow is expected in {MLFLOW_VENV} (bin/mlflow not found)")
    return args


SECTION_RUNNERS = {"throughput": section_throughput, "latency": section_latency, "search": section_search,
                   "history": section_history}


def _interrupt(signum: int, _frame: Any) -> None:
    """Turns SIGTERM into KeyboardInterrupt so that every cleanup block runs."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["writer"]:
        return our_writer_main(argv[1:])
    args = parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    bench = Bench(args, workdir, workdir / "ours.db", workdir / "mlflow.db")
    # The fluent API's spool and anything else of ours that writes under $TUNING_HOME stays in the scratch folder.
    os.environ["TUNING_HOME"] = str(workdir / "tuning-home")
    load_start = load_average()
    machine = machine_description(bench)
    progress(f"working in {workdir}; {load_start}")
    try:
        try:
            progress("starting both servers")
            bench.start_ours()
            bench.start_mlflow()
            progress(f"ours on {bench.ours_address}, mlflow on {bench.mlflow_uri}")
            for section in args.section_list:
                section_began = time.monotonic()
                try:
                    bench.results[section] = SECTION_RUNNERS[section](bench)
                except Exception as error:
                    bench.errors[section] = side.describe_error(error)
                    progress(f"{section} failed:\n{traceback.format_exc()}")
                progress(f"{section} done in {time.monotonic() - section_began:.0f} s")
        finally:
            bench.stop_all()
    except KeyboardInterrupt:
        print("interrupted: servers and child processes stopped", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 130
    load_end = load_average()
    elapsed = time.monotonic() - began
    print(report(bench, markdown=False), flush=True)
    if args.markdown:
        args.markdown.write_text(markdown_document(bench, machine, load_start, load_end, elapsed) + "\n")
        print(f"wrote {args.markdown}", file=sys.stderr)
    if args.keep:
        print(f"kept {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    progress(f"finished in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
