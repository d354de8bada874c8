#!/usr/bin/env python
"""Ask+tell throughput and latency of random search: the suggestion service against Optuna.

Each run puts C client processes (multiprocessing, spawn context) in a tight loop of
``ask() -> tell(trial, value)`` for a fixed duration after a short warm-up, and records
the latency of every ask and every tell with ``time.perf_counter``.

* ``ours``: one ``python -m suggestion_service`` subprocess per backend (a SQLite file in a
  temporary directory, or a fresh PostgreSQL database); each client process has its own
  :class:`trial_worker.SuggestionClient`. A study with a float, a log-float, an int and a
  categorical parameter, objective ``loss`` minimised, algorithm ``random``, no
  ``max_trials``, no parallel cap and a one-hour lease.
* ``optuna``: the same space through ``study.ask(distributions)`` / ``study.tell`` on an
  RDB storage of the same kind (``sqlite:///file`` or a fresh PostgreSQL database), with
  ``RandomSampler``, one process per client.

Every client count gets a fresh study. Throughput counts the ask+tell pairs whose tell
completed inside the timed window; latencies are of the calls that started inside it.
A failing call (e.g. Optuna's "database is locked" on SQLite) is counted in ``errors``
and the process carries on. Each system runs SQLite as it ships: the suggestion service
in WAL mode (synchronous=NORMAL), Optuna's ``sqlite:///`` storage with SQLite's defaults.

    python benchmarks/ask_tell.py --backend all --clients 1,16,64 --seconds 10 \\
        --systems ours,optuna --markdown results.md

This is a measurement, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import math
import multiprocessing
import os
import platform
import queue
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgres")
SYSTEMS = ("ours", "optuna")
DEFAULT_POSTGRES_URL = os.environ.get(
    "TUNING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
OPTIMIZER_PENALTY = {"adam": 0.0, "sgd": 0.3, "rmsprop": 0.1}
SERVER_START_TIMEOUT_S = 60.0
CLIENT_START_TIMEOUT_S = 600.0
RESULT_TIMEOUT_S = 120.0


# --- the search space, defined identically for both systems ---------------------------


def our_space() -> list:
    """The benchmark's search space for the suggestion service (mirrors :func:`optuna_space`)."""
    from trial_worker import Categorical, Float, Int

    return [
        Float("learning_rate", 1e-5, 1e-1, log=True),
        Float("dropout", 0.0, 0.5),
        Int("num_layers", 1, 16),
        Categorical("optimizer", list(OPTIMIZER_PENALTY)),
    ]


def optuna_space() -> dict:
    """The benchmark's search space as Optuna distributions (mirrors :func:`our_space`)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    return {
        "learning_rate": FloatDistribution(1e-5, 1e-1, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "num_layers": IntDistribution(1, 16),
        "optimizer": CategoricalDistribution(list(OPTIMIZER_PENALTY)),
    }


def objective(params: dict[str, Any]) -> float:
    """A cheap, deterministic loss of one configuration (the same for both systems)."""
    return (
        (math.log10(params["learning_rate"]) + 3.0) ** 2
        + params["dropout"]
        + abs(params["num_layers"] - 8) / 8.0
        + OPTIMIZER_PENALTY[params["optimizer"]]
    )


# --- one run: C client processes --------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """What one run measures; sent (pickled) to every client process."""

    system: str  # "ours" or "optuna"
    backend: str  # "sqlite" or "postgres"
    clients: int
    seconds: float
    warmup: float
    target: str  # the server address (ours) or the storage URL (optuna)
    study: str
    rate: float = 0.0  # offered ask+tell pairs/s over all clients; 0: each client as fast as it can


@dataclass
class RunResult:
    """The merged measurements of one run."""

    spec: RunSpec
    pairs: int = 0
    ask_s: array = field(default_factory=lambda: array("d"))
    tell_s: array = field(default_factory=lambda: array("d"))
    errors: Counter = field(default_factory=Counter)
    server_log_errors: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.pairs / self.spec.seconds

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def latency_ms(self) -> dict[str, float]:
        """p50 and p99 of ask and tell, in milliseconds (NaN without samples)."""
        return {
            f"{name}_p{q}": percentile(samples, q) * 1000.0
            for name, samples in (("ask", self.ask_s), ("tell", self.tell_s))
            for q in (50, 99)
        }


@dataclass
class Session:
    """One client process's connection to the system under test."""

    ask: Callable[[], Any]
    params: Callable[[Any], dict[str, Any]]
    tell: Callable[[Any, float], Any]
    close: Callable[[], None]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation, like numpy's default) or NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe_error(error: BaseException) -> str:
    """A short, groupable description of an exception: its type and first line, and those
    of its root cause (Optuna wraps "database is locked" in a StorageInternalError)."""
    def first_line(e: BaseException) -> str:
        """The exception's type and the first line of its message."""
        return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"

    root, seen = error, {id(error)}
    while (inner := root.__cause__ or root.__context__) is not None and id(inner) not in seen:
        root = inner
        seen.add(id(inner))
    return first_line(error) if root is error else f"{first_line(error)} (caused by {first_line(root)})"


def open_ours(spec: RunSpec) -> Session:
    """A SuggestionClient on the server, with the study loaded (no retries: failures count)."""
    from trial_worker import SuggestionClient

    client = SuggestionClient(spec.target, retries=0, timeout=60.0)
    study = client.get_study(spec.study)

    def ask() -> Any:
        trial = study.ask(wait=False)
        if trial is None:
            raise RuntimeError(f"ask returned no trial: {study.last_suggest.message or study.last_suggest.status}")
        return trial

    return Session(ask=ask, params=lambda trial: trial.params, tell=study.tell, close=client.close)


def open_optuna(spec: RunSpec) -> Session:
    """Loads the Optuna study from its RDB storage URL, with a RandomSampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=spec.target,
        study_name=spec.study,
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(),
        direction="minimize",
    )
    distributions = optuna_space()
    return Session(
        ask=lambda: study.ask(distributions),
        params=lambda trial: trial.params,
        tell=study.tell,
        close=lambda: None,
    )


def measure(session: Session, start: float, end: float, interval: float = 0.0) -> dict[str, Any]:
    """Loops ask -> tell until ``end`` (perf_counter time), recording what happens from ``start``.

    With ``interval``, pairs start on a fixed schedule (open loop) instead of back to back,
    so latency is measured at a chosen load rather than at saturation.
    """
    ask_s, tell_s, errors, pairs = array("d"), array("d"), Counter(), 0
    now = time.perf_counter()
    # A random phase per client, or every client would fire on the same tick (a burst).
    next_at = now + random.uniform(0.0, interval)
    while now < end:
        if interval:
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            now = time.perf_counter()
        t0 = now
        try:
            trial = session.ask()
            t1 = time.perf_counter()
            value = objective(session.params(trial))
        except Exception as error:
            now = time.perf_counter()
            if t0 >= start:
                errors["ask " + describe_error(error)] += 1
            continue
        if t0 >= start:
            ask_s.append(t1 - t0)
        t2 = time.perf_counter()
        try:
            session.tell(trial, value)
        except Exception as error:
            now = time.perf_counter()
            if t2 >= start:
                errors["tell " + describe_error(error)] += 1
            continue
        now = time.perf_counter()
        if t2 >= start:
            tell_s.append(now - t2)
        if start <= now < end:
            pairs += 1
    return {"pairs": pairs, "ask_s": ask_s, "tell_s": tell_s, "errors": errors}


def client_process(spec: RunSpec, index: int, messages: Any, go: Any, window: Any) -> None:
    """Entry point of one client process: connect, report ready, wait for go, measure, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    try:
        session = open_ours(spec) if spec.system == "ours" else open_optuna(spec)
    except Exception as error:
        # A system that cannot even open its study under this load (e.g. Optuna's storage
        # with 64 processes on PostgreSQL) scores no pairs and one error for this client.
        session, open_error = None, f"open: {describe_error(error)}"
    try:
        messages.put(("ready", index, None))
        parent = multiprocessing.parent_process()
        while not go.wait(0.5):
            if parent is not None and not parent.is_alive():
                return
        if session is None:
            messages.put(("result", index, {"pairs": 0, "ask_s": [], "tell_s": [], "errors": Counter([open_error])}))
            return
        # The window is in wall-clock time; move it onto this process's perf_counter.
        offset = time.time() - time.perf_counter()
        interval = spec.clients / spec.rate if spec.rate else 0.0
        result = measure(session, window[0] - offset, window[1] - offset, interval)
        messages.put(("result", index, result))
    except BaseException:
        messages.put(("failed", index, traceback.format_exc()))
    finally:
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()


@contextlib.contextmanager
def client_processes(spec: RunSpec) -> Iterator[tuple[list, Any, Any, Any]]:
    """Starts ``spec.clients`` spawned client processes; terminates any left on exit."""
    context = multiprocessing.get_context("spawn")
    messages, go, window = context.Queue(), context.Event(), context.Array("d", 2, lock=False)
    processes = [
        context.Process(target=client_process, args=(spec, i, messages, go, window),
                        name=f"bench-{spec.system}-{i}", daemon=True)
        for i in range(spec.clients)
    ]
    try:
        for process in processes:
            process.start()
        yield processes, messages, go, window
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 10.0
        for process in processes:
            if process.pid is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5.0)
        messages.close()
        messages.cancel_join_thread()


def collect(messages: Any, processes: list, kind: str, timeout: float) -> dict[int, Any]:
    """Waits for one ``kind`` message from every process; raises if one fails, dies or is late."""
    received: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(received) < len(processes):
        try:
            message_kind, index, payload = messages.get(timeout=1.0)
        except queue.Empty:
            dead = [p.name for i, p in enumerate(processes) if i not in received and p.exitcode is not None]
            if dead:
                raise RuntimeError(
                    f"client process(es) exited before sending {kind!r}: {', '.join(dead[:5])}"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(processes) - len(received)} client process(es) sent no {kind!r} "
                                   f"within {timeout:.0f} s") from None
            continue
        if message_kind == "failed":
            raise RuntimeError(f"client process {index} failed:\n{payload}")
        if message_kind == kind:
            received[index] = payload
    return received


def run_clients(spec: RunSpec) -> RunResult:
    """Runs one measurement: starts the clients, warms up, measures, merges their results."""
    with client_processes(spec) as (processes, messages, go, window):
        collect(messages, processes, "ready", CLIENT_START_TIMEOUT_S)
        start_at = time.time() + spec.warmup
        window[0], window[1] = start_at, start_at + spec.seconds
        go.set()
        results = collect(messages, processes, "result", spec.warmup + spec.seconds + RESULT_TIMEOUT_S)
        for process in processes:
            process.join(10.0)
    merged = RunResult(spec)
    for result in results.values():
        merged.pairs += result["pairs"]
        merged.ask_s.extend(result["ask_s"])
        merged.tell_s.extend(result["tell_s"])
        merged.errors.update(result["errors"])
    return merged


# --- databases and the server ---------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(backend: str, label: str, workdir: Path, admin_url: str) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file under ``workdir``, or a PostgreSQL
    database created on the server at ``admin_url`` and dropped (WITH FORCE) afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'{label}.db'}"
        return
    import sqlalchemy as sa

    name = f"bench_{label}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _die_with_parent() -> None:
    """In the server's child process before exec: get SIGTERM if the benchmark dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ServerProcess:
    """A running ``python -m suggestion_service`` and where its log goes."""

    process: subprocess.Popen
    address: str
    log_path: Path

    def log_errors(self) -> list[str]:
        """Lines of the server's log that look like errors (it logs at WARNING and above)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if " ERROR " in line or line.startswith("Traceback")]


@contextlib.contextmanager
def suggestion_server(database_url: str, log_path: Path, max_workers: int | None,
                      extra: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """Starts a suggestion server on a free port (``extra``: more flags); stops it with SIGTERM
    (then SIGKILL) on exit."""
    command = [sys.executable, "-m", "suggestion_service", "--port", "0", "--database-url", database_url, *extra]
    if max_workers:
        command += ["--max-workers", str(max_workers)]
    env = {**os.environ, "TUNING_LOG_LEVEL": "WARNING"}
    with open(log_path, "w") as log:
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                   start_new_session=True, preexec_fn=_die_with_parent)
    try:
        address = _wait_for_address(process, log_path)
        yield ServerProcess(process, address, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_address(process: subprocess.Popen, log_path: Path) -> str:
    """Reads the server's log until it prints ``listening on HOST:PORT``."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if "listening on" in line:
                return line.rsplit(" ", 1)[1].strip()
        if process.poll() is not None:
            raise RuntimeError(f"the suggestion server exited ({process.returncode}):\n{log_path.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"the suggestion server did not start within {SERVER_START_TIMEOUT_S:.0f} s")


# --- the two systems, for every client count ---------------------------------------------


def run_ours(backend: str, client_counts: Sequence[int], args: argparse.Namespace, workdir: Path,
             progress: Callable[[str], None]) -> list[RunResult]:
    """One server on a fresh database; a fresh study per client count."""
    from trial_worker import SuggestionClient

    results = []
    with scratch_database(backend, "ours", workdir, args.postgres_url) as url, \
            suggestion_server(url, workdir / f"server-{backend}.log", args.server_max_workers) as server:
        for clients in client_counts:
            study = f"bench-ours-{clients}-{uuid.uuid4().hex[:6]}"
            with SuggestionClient(server.address) as client:
                client.create_study(study, our_space(), objectives={"loss": "minimize"}, algorithm="random",
                                    max_trials=0, max_parallel_trials=0, lease_seconds=3600.0)
            spec = RunSpec("ours", backend, clients, args.seconds, args.warmup, server.address, study, args.rate)
            results.append(_timed_run(spec, progress))
            if server.process.poll() is not None:
                raise RuntimeError(f"the suggestion server died:\n{server.log_path.read_text()}")
        log_errors = server.log_errors()
    if log_errors:
        results[-1].server_log_errors = log_errors
    return results


def run_optuna(backend: str, client_counts: Sequence[int], args: argparse.Namespace, workdir: Path,
               progress: Callable[[str], None]) -> list[RunResult]:
    """One fresh database; a fresh Optuna study (created here first) per client count."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = []
    with scratch_database(backend, "optuna", workdir, args.postgres_url) as url:
        for clients in client_counts:
            study = f"bench-optuna-{clients}-{uuid.uuid4().hex[:6]}"
            storage = optuna.storages.RDBStorage(url)
            optuna.create_study(storage=storage, study_name=study, direction="minimize")
            storage.engine.dispose()
            spec = RunSpec("optuna", backend, clients, args.seconds, args.warmup, url, study, args.rate)
            results.append(_timed_run(spec, progress))
    return results


def _timed_run(spec: RunSpec, progress: Callable[[str], None]) -> RunResult:
    """Runs one measurement and reports it on the progress stream."""
    began = time.monotonic()
    progress(f"[{spec.backend}] {spec.system}, {spec.clients} client(s): starting")
    result = run_clients(spec)
    latency = result.latency_ms()
    progress(f"[{spec.backend}] {spec.system}, {spec.clients} client(s): {result.throughput:.1f} pairs/s, "
             f"ask p50 {latency['ask_p50']:.2f} ms, tell p50 {latency['tell_p50']:.2f} ms, "
             f"{result.error_count} error(s) ({time.monotonic() - began:.0f} s)")
    return result


# --- reporting ---------------------------------------------------------------------------------


def machine_description() -> dict[str, str]:
    """Date, CPU count, architecture, CPU model, Python and library versions."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 0
    versions = []
    for package in ("optuna", "grpcio", "sqlalchemy", "psycopg"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpus} CPUs (nproc), {platform.machine()}, {model}, "
                   f"Python {platform.python_version()}",
        "versions": ", ".join(versions),
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    }


def postgres_version(admin_url: str) -> str:
    """The PostgreSQL server's version string, or why it is unknown."""
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar())
    except Exception as error:
        return f"unknown ({describe_error(error)})"
    finally:
        engine.dispose()


def _ms(value: float) -> str:
    """Milliseconds for a table cell."""
    return "-" if math.isnan(value) else f"{value:.2f}"


def _ratio(ours: float, optuna: float) -> str:
    """ours/optuna for a table cell, or "-" when either is missing."""
    if math.isnan(ours) or math.isnan(optuna) or optuna == 0:
        return "-"
    return f"{ours / optuna:.2f}x"


def results_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per system and client count."""
    headers = ["system", "clients", "throughput (pairs/s)", "ask p50 (ms)", "ask p99 (ms)",
               "tell p50 (ms)", "tell p99 (ms)", "errors"]
    rows = []
    for result in results:
        latency = result.latency_ms()
        rows.append([result.spec.system, str(result.spec.clients), f"{result.throughput:.1f}",
                     _ms(latency["ask_p50"]), _ms(latency["ask_p99"]), _ms(latency["tell_p50"]),
                     _ms(latency["tell_p99"]), str(result.error_count)])
    return headers, rows


def ratio_rows(results: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    """ours/optuna per client count: above 1 is better for throughput, below 1 for latency."""
    headers = ["clients", "throughput", "ask p50", "ask p99", "tell p50", "tell p99"]
    by_key = {(r.spec.system, r.spec.clients): r for r in results}
    rows = []
    for clients in sorted({r.spec.clients for r in results}):
        ours, optuna = by_key.get(("ours", clients)), by_key.get(("optuna", clients))
        if ours is None or optuna is None:
            continue
        lo, lp = ours.latency_ms(), optuna.latency_ms()
        rows.append([str(clients), _ratio(ours.throughput, optuna.throughput)]
                    + [_ratio(lo[k], lp[k]) for k in ("ask_p50", "ask_p99", "tell_p50", "tell_p99")])
    return headers, rows


def render_table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    """A plain-text table with aligned columns, or a Markdown one."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        """One row: the first column left-aligned, numbers right-aligned."""
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])


def error_notes(results: Sequence[RunResult]) -> list[str]:
    """One line per distinct error (per run), and the server's logged errors, if any."""
    notes = []
    for result in results:
        for what, count in result.errors.most_common():
            notes.append(f"{result.spec.system}, {result.spec.clients} clients: {count} x {what}")
        if result.server_log_errors:
            notes.append(f"suggestion server logged {len(result.server_log_errors)} error line(s), first: "
                         f"{result.server_log_errors[0][:200]}")
    return notes


def report(backend: str, results: Sequence[RunResult], markdown: bool) -> str:
    """The section for one backend: results, ratios and error details."""
    title = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
    parts = [f"## {title}" if markdown else f"=== {title} ===", ""]
    parts += [render_table(*results_rows(results), markdown), ""]
    ratio_headers, ratios = ratio_rows(results)
    if ratios:
        parts += ["Ratio ours/optuna (throughput: above 1 is better for ours; latency: below 1 is better for ours)",
                  "", render_table(ratio_headers, ratios, markdown), ""]
    notes = error_notes(results)
    if notes:
        parts += ["Errors:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(parts)


def markdown_document(sections: dict[str, list[RunResult]], args: argparse.Namespace,
                      machine: dict[str, str], pg_version: str | None) -> str:
    """The whole Markdown report: what was run, where, and a section per backend."""
    header = [
        "# Ask+tell benchmark: random search, suggestion service vs Optuna",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['machine']}",
        f"- Versions: {machine['versions']}" + (f", PostgreSQL {pg_version}" if pg_version else ""),
        f"- Command: `{machine['command']}`",
        f"- Each run: {args.warmup:g} s warm-up, then {args.seconds:g} s measured; one process per client, "
        "each looping ask -> tell"
        + (f" on a fixed schedule, {args.rate:g} pairs/s offered over all clients (open loop)" if args.rate
           else " back to back (closed loop: the throughput at saturation)")
        + "; 4 parameters (float, log-float, int, categorical), objective `loss` "
        "minimised; a fresh study per client count.",
        "- ours: one `python -m suggestion_service` process"
        + (f" (--max-workers {args.server_max_workers})" if args.server_max_workers else " (default --max-workers)")
        + ", algorithm `random`, client `trial_worker.SuggestionClient` (no retries). "
        "optuna: `RandomSampler`, `study.ask(distributions)` / `study.tell` on an RDB storage URL.",
        "- Throughput: ask+tell pairs whose tell completed in the measured window, per second. "
        "Latency: calls started in the window.",
        "- SQLite settings differ as each system ships them: the suggestion service uses WAL with "
        "synchronous=NORMAL and BEGIN IMMEDIATE; Optuna's `sqlite:///` storage uses SQLite's defaults "
        "(rollback journal, synchronous=FULL).",
        "",
    ]
    return "\n".join(header + [report(backend, results, True) for backend, results in sections.items()])


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses and checks the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="sqlite")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client process counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration of each run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--systems", default="ours,optuna", help="comma-separated: ours, optuna")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in ask+tell pairs/s over all clients (open loop); "
                             "default 0: every client as fast as it can (throughput)")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown to this file")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="a PostgreSQL server URL allowed to CREATE/DROP DATABASE (default: %(default)s)")
    parser.add_argument("--server-max-workers", type=int, default=None,
                        help="--max-workers for the suggestion server (default: the server's default)")
    args = parser.parse_args(argv)
    try:
        args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--clients: expected comma-separated integers, got {args.clients!r}")
    if not args.client_counts or min(args.client_counts) < 1:
        parser.error("--clients: every count must be 1 or more")
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not args.system_list or set(args.system_list) - set(SYSTEMS):
        parser.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    if args.seconds <= 0 or args.warmup < 0 or args.rate < 0:
        parser.error("--seconds must be positive and --warmup and --rate not negative")
    args.backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    return args


def run_benchmark(args: argparse.Namespace) -> dict[str, list[RunResult]]:
    """Every backend x system x client count; returns the results by backend."""
    def progress(message: str) -> None:
        """Progress goes to stderr, tables to stdout."""
        print(message, file=sys.stderr, flush=True)

    sections: dict[str, list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ask-tell-") as tmp:
        for backend in args.backends:
            results: list[RunResult] = []
            for system in args.system_list:
                runner = run_ours if system == "ours" else run_optuna
                results += runner(backend, args.client_counts, args, Path(tmp), progress)
            sections[backend] = results
            print(report(backend, results, markdown=False), flush=True)
    return sections


def _interrupt(signum: int, _frame: Any) -> None:
    """Turns SIGTERM into KeyboardInterrupt so that every cleanup block runs."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark, prints a table per backend, optionally writes Markdown; 130 on Ctrl-C."""
    args = parse_args(argv)
    if str(ROOT) not in sys.path:  # works without an installed package too; spawned clients inherit it
        sys.path.insert(0, str(ROOT))
    signal.signal(signal.SIGTERM, _interrupt)
    machine = machine_description()
    try:
        pg_version = postgres_version(args.postgres_url) if "postgres" in args.backends else None
        sections = run_benchmark(args)
    except KeyboardInterrupt:
        print("interrupted: client processes, server and scratch databases cleaned up", file=sys.stderr)
        return 130
    if args.markdown:
        args.markdown.write_text(markdown_document(sections, args, machine, pg_version) + "\n")
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
