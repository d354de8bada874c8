#!/usr/bin/env python
"""Model-based asks under load: GP and TPE studies with a preloaded history, many clients.

Each run puts C client processes in a tight loop of ``ask() -> tell(hartmann6(params))``
(no training time) on one study whose history is preloaded with N completed trials
(Hartmann-6 at uniform random points), and measures suggestions/s and ask and tell latency.

* ``ours``: R ``python -m suggestion_service`` replicas (``--model-workers`` each) on a copy
  of the preloaded database (SQLite file or PostgreSQL database); client i talks to replica
  i mod R. Meanwhile a probe process runs, every 20 ms, ask -> report -> heartbeat -> tell on
  an *unrelated* random-search study and records the latency of the report, the heartbeat
  (a lease renewal) and the tell: what a worker of another study sees while the model studies
  are busy. After the run the study's trials are checked: no configuration handed out twice,
  no trial lost (every ask's trial is in the study).
* ``optuna``: Optuna 5 on an RDB storage of the same kind holding the same history; each
  client process loads the study with its own ``TPESampler(multivariate=True)`` or
  ``GPSampler`` (Optuna's distributed pattern) and loops ``ask -> tell``.

    python benchmarks/model_ask.py --algorithm tpe --history 10000 --clients 1,8,32 \\
        --backend sqlite,postgres --replicas 1,2 --systems ours,optuna --seconds 20 --markdown out.md

This is a measurement, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import multiprocessing
import os
import random
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from ask_tell import (  # noqa: E402 - after the path is set
    DEFAULT_POSTGRES_URL,
    collect,
    describe_error,
    machine_description,
    percentile,
    postgres_version,
    render_table,
    suggestion_server,
)

STUDY, PROBE = "model-bench", "probe"
DIM = 6
PROBE_INTERVAL_S = 0.02
_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
      [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(params: dict) -> float:
    x = [params[f"x{i}"] for i in range(DIM)]
    return -sum(a * math.exp(-sum(A[j] * (x[j] - P[j]) ** 2 for j in range(DIM)))
                for a, A, P in zip(_ALPHA, _A, _P))


# --- the preloaded history -----------------------------------------------------------------------


def _history(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{f"x{i}": rng.random() for i in range(DIM)} for _ in range(n)]


def preload_ours(url: str, algorithm: str, n: int) -> None:
    """The model study with ``n`` completed trials and the probe study, written through the service."""
    from suggestion_service.domain.trial import Outcome
    from suggestion_service.persistence import MIGRATIONS
    from suggestion_service.service import SuggestionService
    from tuning_common.database import Database
    from tuning_types.space import FloatDomain, Parameter, SearchSpace
    from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

    db = Database.connect(url)
    MIGRATIONS.ensure(db, upgrade=False)
    service = SuggestionService(db)
    space = SearchSpace(tuple(Parameter(f"x{i}", FloatDomain(0.0, 1.0)) for i in range(DIM)))
    objectives = (Objective("loss", Direction.MINIMIZE),)
    service.create_study(STUDY, StudySpec(space, objectives, AlgorithmSpec(algorithm, {}), seed=0,
                                          lease_seconds=3600.0))
    service.create_study(PROBE, StudySpec(space, objectives, AlgorithmSpec("random", {}), seed=0,
                                          lease_seconds=3600.0))
    history = _history(n)
    for params in history:
        service.create_trial(STUDY, params)
    for start in range(0, n, 1000):  # queued trials are leased before any new suggestion
        leased = service.suggest_trials(STUDY, min(1000, n - start), "preload", uuid.uuid4().hex).trials
        for trial in leased:
            service.complete_trial(trial.id, "preload", Outcome.SUCCEEDED, (("loss", hartmann6(trial.params)),), "")
    db.dispose()


def preload_optuna(url: str, algorithm: str, n: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from sqlalchemy.pool import NullPool

    distributions = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(DIM)}
    # No pooled connection may stay open: PostgreSQL copies a template only when nobody uses it.
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": NullPool})
    study = optuna.create_study(storage=storage, study_name=STUDY, direction="minimize")
    study.add_trials([optuna.trial.create_trial(params=p, distributions=distributions, value=hartmann6(p))
                      for p in _history(n)])


@contextlib.contextmanager
def database_copies(backend: str, workdir: Path, label: str, admin_url: str) -> Iterator:
    """A template database and a function that yields fresh copies of it."""
    if backend == "sqlite":
        template = workdir / f"{label}-template.db"

        @contextlib.contextmanager
        def copy() -> Iterator[str]:
            target = workdir / f"{label}-{uuid.uuid4().hex[:8]}.db"
            shutil.copy(template, target)
            try:
                yield f"sqlite:///{target}"
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)

        yield f"sqlite:///{template}", copy
        return
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"

    def url_of(database: str) -> str:
        return sa.engine.make_url(admin_url).set(database=database).render_as_string(hide_password=False)

    @contextlib.contextmanager
    def copy() -> Iterator[str]:
        clone = f"{name}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{clone}" TEMPLATE "{name}"'))
        try:
            yield url_of(clone)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)'))

    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url_of(name), copy
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- client processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    system: str
    algorithm: str
    history: int
    backend: str
    replicas: int
    clients: int
    seconds: float
    warmup: float
    targets: tuple[str, ...]  # server addresses (ours) or the storage URL (optuna)


def _loop(ask, tell, start: float, end: float) -> dict:
    asks, tells, errors, handed = [], [], Counter(), []
    while time.perf_counter() < end:
        began = time.perf_counter()
        try:
            trial, params = ask()
            asked = time.perf_counter()
            tell(trial, hartmann6(params))
        except Exception as error:  # noqa: BLE001 - counted, the loop goes on
            errors[describe_error(error)] += 1
            continue
        told = time.perf_counter()
        if began >= start:
            asks.append(asked - began)
            tells.append(told - asked)
            handed.append(trial if isinstance(trial, int) else None)
    return {"asks": asks, "tells": tells, "errors": errors, "handed": [h for h in handed if h is not None]}


def client(spec: RunSpec, index: int, messages, go, window) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if spec.system == "ours":
            from trial_worker import SuggestionClient

            connection = SuggestionClient(spec.targets[index % len(spec.targets)], retries=0, timeout=120.0)
            study = connection.get_study(STUDY)

            def ask():
                trial = study.ask()
                return trial.id, trial.params

            def tell(trial_id, value):
                study.tell(trial_id, value)
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            import warnings

            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            sampler = (optuna.samplers.TPESampler(multivariate=True, seed=index) if spec.algorithm == "tpe"
                       else optuna.samplers.GPSampler(seed=index))
            study = optuna.load_study(study_name=STUDY, storage=spec.targets[0], sampler=sampler)
            distributions = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(DIM)}

            def ask():
                trial = study.ask(distributions)
                return trial, trial.params

            def tell(trial, value):
                study.tell(trial, value)
        messages.put(("ready", index, None))
        go.wait()
        offset = time.time() - time.perf_counter()
        messages.put(("result", index, _loop(ask, tell, window[0] - offset, window[1] - offset)))
    except BaseException:
        messages.put(("failed", index, traceback.format_exc()))


def probe(spec: RunSpec, index: int, messages, go, window) -> None:
    """Report, heartbeat and tell latencies of an unrelated random-search study."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from trial_worker import SuggestionClient

        connection = SuggestionClient(spec.targets[0], retries=0, timeout=120.0)
        study = connection.get_study(PROBE)
        messages.put(("ready", index, None))
        go.wait()
        offset = time.time() - time.perf_counter()
        start, end = window[0] - offset, window[1] - offset
        latencies: dict[str, list[float]] = {"report": [], "heartbeat": [], "tell": []}
        while time.perf_counter() < end:
            trial = study.ask()
            for name, call in (("report", lambda: trial.report(1, 0.5)), ("heartbeat", trial.heartbeat),
                               ("tell", lambda: study.tell(trial, 0.5))):
                began = time.perf_counter()
                call()
                if began >= start:
                    latencies[name].append(time.perf_counter() - began)
            time.sleep(PROBE_INTERVAL_S)
        messages.put(("result", index, latencies))
    except BaseException:
        messages.put(("failed", index, traceback.format_exc()))


@dataclass
class Result:
    spec: RunSpec
    asks: list[float] = field(default_factory=list)
    tells: list[float] = field(default_factory=list)
    probe: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    handed: list[int] = field(default_factory=list)  # ids of the trials the asks got
    duplicates: int = 0
    lost: int = 0

    @property
    def throughput(self) -> float:
        return len(self.asks) / self.spec.seconds


def run_clients(spec: RunSpec) -> Result:
    context = multiprocessing.get_context("spawn")
    messages, go, window = context.Queue(), context.Event(), context.Array("d", 2, lock=False)
    targets = [(client, i) for i in range(spec.clients)]
    if spec.system == "ours":
        targets.append((probe, spec.clients))
    processes = [context.Process(target=f, args=(spec, i, messages, go, window), daemon=True) for f, i in targets]
    try:
        for process in processes:
            process.start()
        collect(messages, processes, "ready", 600.0)
        start_at = time.time() + spec.warmup
        window[0], window[1] = start_at, start_at + spec.seconds
        go.set()
        results = collect(messages, processes, "result", spec.warmup + spec.seconds + 300.0)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(10.0)
    merged = Result(spec)
    for index, result in results.items():
        if index == spec.clients and spec.system == "ours":
            merged.probe = result
            continue
        merged.asks += result["asks"]
        merged.tells += result["tells"]
        merged.errors.update(result["errors"])
        merged.handed += result["handed"]
    return merged


def check_trials(address: str, result: Result) -> None:
    """Configurations handed out twice, and asks whose trial the study does not have."""
    from trial_worker import SuggestionClient
    from tuning_types.convert import params_from_proto

    with SuggestionClient(address) as connection:
        trials = list(connection.get_study(STUDY).trials())
    keys = Counter(tuple(sorted(params_from_proto(t.parameters).items())) for t in trials)
    result.duplicates = sum(n - 1 for n in keys.values() if n > 1)
    known = {t.id for t in trials}
    result.lost = sum(1 for trial_id in result.handed if trial_id not in known)


# --- runs ------------------------------------------------------------------------------------------


def run_ours(args, backend: str, workdir: Path, progress) -> list[Result]:
    results = []
    with database_copies(backend, workdir, f"ours_{args.algorithm}", args.postgres_url) as (template, copy):
        progress(f"preloading {args.history} trials ({backend})")
        preload_ours(template, args.algorithm, args.history)
        for replicas in args.replicas:
            if replicas > 1 and backend == "sqlite":
                continue  # replicas share a database server; a SQLite file is one machine's
            for clients in args.clients:
                with copy() as url, contextlib.ExitStack() as servers:
                    addresses = tuple(
                        servers.enter_context(suggestion_server(
                            url, workdir / f"server-{i}.log", None,
                            extra=() if args.model_workers is None else ("--model-workers", str(args.model_workers)),
                        )).address
                        for i in range(replicas))
                    spec = RunSpec("ours", args.algorithm, args.history, backend, replicas, clients, args.seconds,
                                   args.warmup, addresses)
                    progress(f"ours {backend} replicas={replicas} clients={clients}")
                    result = run_clients(spec)
                    check_trials(addresses[0], result)
                    results.append(result)
                    progress(f"  {result.throughput:.1f} asks/s, duplicates {result.duplicates}, lost {result.lost}")
    return results


def run_optuna(args, backend: str, workdir: Path, progress) -> list[Result]:
    results = []
    with database_copies(backend, workdir, f"optuna_{args.algorithm}", args.postgres_url) as (template, copy):
        progress(f"preloading {args.history} trials into Optuna ({backend})")
        preload_optuna(template, args.algorithm, args.history)
        for clients in args.clients:
            with copy() as url:
                spec = RunSpec("optuna", args.algorithm, args.history, backend, 1, clients, args.seconds,
                               args.warmup, (url,))
                progress(f"optuna {backend} clients={clients}")
                result = run_clients(spec)
                results.append(result)
                progress(f"  {result.throughput:.1f} asks/s")
    return results


# --- report ----------------------------------------------------------------------------------------


def _ms(samples: Sequence[float], q: float) -> str:
    return "-" if not samples else f"{percentile(samples, q) * 1000:.1f}"


def table(results: Sequence[Result]) -> tuple[list[str], list[list[str]]]:
    headers = ["system", "backend", "replicas", "clients", "asks/s", "ask p50 ms", "ask p99 ms", "tell p50 ms",
               "tell p99 ms", "other study: report / renew / tell p99 ms", "duplicates", "lost", "errors"]
    rows = []
    for r in results:
        s = r.spec
        probe = " / ".join(_ms(r.probe.get(k, []), 99) for k in ("report", "heartbeat", "tell")) if r.probe else "-"
        rows.append([s.system, s.backend, str(s.replicas) if s.system == "ours" else "-", str(s.clients),
                     f"{r.throughput:.1f}", _ms(r.asks, 50), _ms(r.asks, 99), _ms(r.tells, 50), _ms(r.tells, 99),
                     probe, str(r.duplicates) if s.system == "ours" else "-", str(r.lost) if s.system == "ours" else "-",
                     str(sum(r.errors.values()))])
    return headers, rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", choices=("gp", "tpe"), required=True)
    parser.add_argument("--history", type=int, required=True, help="completed trials preloaded")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--replicas", default="1", help="replica counts (PostgreSQL only above 1)")
    parser.add_argument("--model-workers", type=int, default=None, help="the servers' --model-workers (default: theirs)")
    parser.add_argument("--systems", default="ours,optuna")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    args.replicas = [int(r) for r in args.replicas.split(",")]
    args.backend = args.backend.split(",")
    args.systems = args.systems.split(",")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[Result] = []

    def progress(message: str) -> None:
        print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="model-ask-") as tmp:
        for backend in args.backend:
            if "ours" in args.systems:
                results += run_ours(args, backend, Path(tmp), progress)
                write(results, args, argv)
            if "optuna" in args.systems:
                results += run_optuna(args, backend, Path(tmp), progress)
                write(results, args, argv)
    return 0


def write(results: list[Result], args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """Prints the table so far and writes it to ``--markdown`` (a later failure keeps it)."""
    headers, rows = table(results)
    text = render_table(headers, rows, markdown=True)
    machine = machine_description()
    lines = [f"### {args.algorithm.upper()}, {args.history} completed trials preloaded", "",
             f"- Date: {machine['date']}; machine: {machine['machine']}; {machine['versions']}",
             f"- Command: `python benchmarks/model_ask.py {shlex.join(sys.argv[1:] if argv is None else argv)}`", ""]
    if "postgres" in args.backend:
        with contextlib.suppress(Exception):
            lines.insert(3, f"- PostgreSQL {postgres_version(args.postgres_url)}")
    document = "\n".join(lines) + "\n" + text + "\n"
    print(document, flush=True)
    if args.markdown:
        args.markdown.write_text(document)


if __name__ == "__main__":
    sys.exit(main())
