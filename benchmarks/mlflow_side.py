#!/usr/bin/env python
"""The MLflow half of ``benchmarks/tracking.py``, run with ``.venv-mlflow/bin/python``.

MLflow's pins conflict with ours, so MLflow lives in its own virtualenv and the benchmark
drives it through this script: one subcommand per piece of work, each printing one line
``@@{json}`` with its result on stdout (anything else on stdout is ignored; logs go to
stderr). The module-level code is standard library only: ``tracking.py`` imports it too,
for the writer loop and the generated data, so that both systems run the same loop over
the same rows.

    .venv-mlflow/bin/python benchmarks/mlflow_side.py create-runs --uri http://127.0.0.1:5000 --experiment e --n 4
    .venv-mlflow/bin/python benchmarks/mlflow_side.py writer --uri ... --run-id ... --mode batch --batch-size 1000

``writer`` speaks a small protocol on stdin/stdout (see :func:`serve_writer`). This is a
measurement helper: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

PREFIX = "@@"
METRIC_KEY = "loss"
SEARCH_FILTER = "metrics.val_f1 > 0.85 and params.max_depth = '6'"
SEARCH_ORDER = ["metrics.val_f1 DESC"]
# Every generated run starts one second after the previous one, from a fixed instant, so that
# both systems hold identical rows whatever the day.
BASE_MS = 1_700_000_000_000
CHUNK = 10_000


# --- shared by both sides (standard library only) ------------------------------------------------


def emit(payload: Any) -> None:
    """The one result line of a subcommand (or a protocol message of ``writer``)."""
    sys.stdout.write(PREFIX + json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def describe_error(error: BaseException) -> str:
    """A short, groupable description of an exception: its type and the first line of its message."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:160]}"


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation, like numpy's default) or NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def search_rows(count: int, seed: int) -> Iterator[tuple[str, int, str, str, float, float]]:
    """(run id, start ms, max_depth, learning_rate, val_f1, val_loss) of the generated runs.

    Deterministic for a seed (both interpreters are CPython 3.11, whose ``random`` is stable),
    so both systems are filled with the same runs and the expected counts are known.
    """
    rng = random.Random(seed)
    for i in range(count):
        yield (f"{rng.getrandbits(128):032x}", BASE_MS + i * 1000, str(rng.randint(3, 14)),
               f"{rng.uniform(0.001, 0.3):.4f}", rng.uniform(0.5, 0.9), rng.uniform(0.1, 1.0))


def expected_matches(count: int, seed: int) -> tuple[int, list[str]]:
    """How many generated runs match :data:`SEARCH_FILTER`, and the ids of the first 100 by val_f1 DESC."""
    matching = [(f1, run_id) for run_id, _, depth, _, f1, _ in search_rows(count, seed) if f1 > 0.85 and depth == "6"]
    matching.sort(key=lambda item: (-item[0], item[1]))
    return len(matching), [run_id for _, run_id in matching[:100]]


def history_values(count: int, seed: int) -> Iterator[tuple[int, int, float]]:
    """(step, timestamp ms, value) of the long metric series: a noisy decreasing loss."""
    rng = random.Random(seed)
    for step in range(count):
        yield step, BASE_MS + step, 1.0 / (1.0 + step / 1000.0) + rng.uniform(0.0, 0.01)


def writer_loop(send: Callable[[int], None], size: int, start: float, end: float) -> dict[str, Any]:
    """Calls ``send(first_step)`` back to back until ``end`` (wall-clock seconds); each call stores ``size`` points.

    A call that returned normally was acknowledged by the server, so its points are durable:
    ``acked_window`` counts the points of the calls that completed inside [start, end),
    ``acked_total`` those of every acknowledged call (warm-up and the call that straddles the
    end included; what the server should hold afterwards). Latencies are of the calls that
    started inside the window, in microseconds. Failed calls are counted, not retried, and
    their steps are skipped so that no point is ever sent twice.
    """
    offset = time.time() - time.perf_counter()
    start_pc, end_pc = start - offset, end - offset
    acked_total = acked_window = 0
    latencies_us = array("l")
    errors: Counter[str] = Counter()
    step = 0
    now = time.perf_counter()
    while now < end_pc:
        began = now
        try:
            send(step)
        except Exception as error:
            now = time.perf_counter()
            errors[describe_error(error)] += 1
            step += size
            continue
        now = time.perf_counter()
        step += size
        acked_total += size
        if start_pc <= now < end_pc:
            acked_window += size
        if began >= start_pc:
            latencies_us.append(round((now - began) * 1e6))
    return {"acked_total": acked_total, "acked_window": acked_window, "latencies_us": latencies_us.tolist(),
            "errors": dict(errors)}


def _read_line() -> dict:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("writer: stdin closed before 'go'")
    return json.loads(line)


def serve_writer(open_sender: Callable[[], tuple[Callable[[int], None], Callable[[], None]]], size: int) -> None:
    """The writer protocol: connect, ``@@{"ready": ...}``, wait for ``{"start": t0, "end": t1}`` on stdin
    (wall-clock seconds; the parent sends it once every writer is ready, with the warm-up before t0),
    run :func:`writer_loop`, print ``@@{result}``.
    """
    try:
        send, close = open_sender()
    except Exception as error:
        emit({"ready": False, "error": describe_error(error)})
        return
    try:
        emit({"ready": True, "pid": os.getpid()})
        window = _read_line()
        emit(writer_loop(send, size, window["start"], window["end"]))
    finally:
        close()


# --- MLflow subcommands (import mlflow inside) ----------------------------------------------------


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else client.create_experiment(name)


def cmd_create_runs(args: argparse.Namespace) -> Any:
    client = _client(args.uri)
    experiment_id = _experiment_id(client, args.experiment)
    return {"experiment_id": experiment_id,
            "run_ids": [client.create_run(experiment_id, run_name=f"writer-{i}").info.run_id for i in range(args.n)]}


def cmd_writer(args: argparse.Namespace) -> Any:
    def open_sender() -> tuple[Callable[[int], None], Callable[[], None]]:
        from mlflow.entities import Metric

        client = _client(args.uri)
        client.get_run(args.run_id)  # connect and fail here, not inside the window
        rng = random.Random(os.getpid())
        run_id, size = args.run_id, args.batch_size

        if args.mode == "single":
            def send(step: int) -> None:
                client.log_metric(run_id, METRIC_KEY, rng.random(), step=step)
        else:
            def send(step: int) -> None:
                stamp = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(METRIC_KEY, rng.random(), stamp, step + j)
                                                  for j in range(size)])
        return send, lambda: None

    serve_writer(open_sender, 1 if args.mode == "single" else args.batch_size)
    return None


def cmd_history_counts(args: argparse.Namespace) -> Any:
    client = _client(args.uri)
    return {run_id: len(client.get_metric_history(run_id, METRIC_KEY)) for run_id in args.run_ids}


def cmd_fluent(args: argparse.Namespace) -> Any:
    """Caller-side cost of ``mlflow.log_metric``: synchronous (the default), ``synchronous=False`` as shipped
    (the queue sends one request per call), and ``synchronous=False`` with the queue's buffering switched on
    (``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS``: calls gathered into batches of up to 1,000), each followed
    by ``mlflow.flush_async_logging()`` where it queues."""
    import mlflow

    mlflow.set_tracking_uri(args.uri)
    mlflow.set_experiment(args.experiment)
    out: dict[str, Any] = {"buffer_seconds": args.buffer_seconds}
    step = 0

    def phase(name: str, calls: int, repeats: int, synchronous: bool) -> None:
        nonlocal step
        call_us, flush_s = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            for i in range(calls):
                mlflow.log_metric(METRIC_KEY, 1.0 / (i + 1), step=step + i, synchronous=synchronous)
            called = time.perf_counter()
            if not synchronous:
                mlflow.flush_async_logging()
            call_us.append((called - began) / calls * 1e6)
            flush_s.append(time.perf_counter() - called)
            step += calls
        out[f"{name}_call_us"], out[f"{name}_flush_s"] = call_us, flush_s

    with mlflow.start_run(run_name="fluent") as run:
        # Connection, and the async queue's threads, set up outside the timing.
        mlflow.log_metric(METRIC_KEY, 0.0, step=step)
        mlflow.log_metric(METRIC_KEY, 0.0, step=step + 1, synchronous=False)
        mlflow.flush_async_logging()
        step += 2
        phase("sync", args.sync_calls, args.sync_repeats, True)
        phase("async_default", args.sync_calls, args.sync_repeats, False)
        # Read by the queue's thread on every cycle, so it takes effect from here on.
        os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = str(args.buffer_seconds)
        phase("async_buffered", args.async_calls, args.async_repeats, False)
        out["run_id"] = run.info.run_id
        out["logged"] = step
    out["stored"] = len(_client(args.uri).get_metric_history(out["run_id"], METRIC_KEY))
    return out


def _tables():
    from mlflow.store.tracking.dbmodels import models

    return (models.SqlRun.__table__, models.SqlParam.__table__, models.SqlTag.__table__,
            models.SqlMetric.__table__, models.SqlLatestMetric.__table__)


def bulk_engine(db_path: str):
    """A SQLAlchemy engine on a SQLite file for bulk loading (both sides use it): synchronous=OFF on its
    own connections only, the servers keep theirs."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db_path}")

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA synchronous=OFF")
        dbapi_connection.execute("PRAGMA busy_timeout=60000")

    return engine


def insert_chunks(conn, table, rows: Iterator[dict]) -> int:
    total, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            conn.execute(table.insert(), chunk)
            total, chunk = total + len(chunk), []
    if chunk:
        conn.execute(table.insert(), chunk)
        total += len(chunk)
    return total


def insert_our_runs(conn, experiment_id: int, location: str, rows: list) -> None:
    """``search_rows`` as finished runs in our tracking tables (what CreateRun and LogBatch would
    write: two params, two metrics a run), for the benchmarks that need many runs fast."""
    from tracking_service.persistence.tables import VALUE_HEAD, latest_metrics, metrics, params, runs

    insert_chunks(conn, runs, ({
        "id": run_id, "experiment_id": experiment_id, "name": f"run-{i}", "status": "FINISHED",
        "lifecycle_stage": "active", "start_ms": start, "end_ms": start + 500, "parent_run_id": None,
        "run_group": "", "user": "bench", "artifact_uri": f"{location}/{run_id}/artifacts",
        "trial_study": None, "trial_id": None, "trial_number": None, "request_id": None,
        "create_ms": start, "update_ms": start + 500,
    } for i, (run_id, start, *_) in enumerate(rows)))
    insert_chunks(conn, params, (
        {"run_id": run_id, "key": key, "value": value, "value_head": value[:VALUE_HEAD]}
        for run_id, _, depth, rate, _, _ in rows
        for key, value in (("max_depth", depth), ("learning_rate", rate))))
    for table in (metrics, latest_metrics):
        insert_chunks(conn, table, (
            {"run_id": run_id, "key": key, "step": 0, "timestamp_ms": start + 400, "value": value,
             "is_nan": False}
            for run_id, start, _, _, f1, loss in rows for key, value in (("val_f1", f1), ("val_loss", loss))))


def cmd_populate_runs(args: argparse.Namespace) -> Any:
    """An experiment (through the API) with ``--runs`` generated runs inserted straight into MLflow's tables."""
    import sqlalchemy as sa
    from mlflow.utils.uri import append_to_uri_path

    client = _client(args.uri)
    experiment_id = client.create_experiment(args.experiment)
    location = client.get_experiment(experiment_id).artifact_location
    runs, params, tags, metrics, latest = _tables()
    rows = list(search_rows(args.runs, args.seed))
    began = time.perf_counter()
    engine = bulk_engine(args.db)
    with engine.begin() as conn:
        insert_chunks(conn, runs, ({
            "run_uuid": run_id, "name": f"run-{i}", "source_type": "UNKNOWN", "source_name": "",
            "entry_point_name": "", "user_id": "bench", "status": "FINISHED", "start_time": start,
            "end_time": start + 500, "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
            "artifact_uri": append_to_uri_path(location, run_id, "artifacts"), "experiment_id": int(experiment_id),
        } for i, (run_id, start, *_) in enumerate(rows)))
        # What MLflow's own create_run stores for a plain client: the run name as a tag too.
        insert_chunks(conn, tags, ({"key": "mlflow.runName", "value": f"run-{i}", "run_uuid": row[0]}
                                    for i, row in enumerate(rows)))
        insert_chunks(conn, params, (
            {"key": key, "value": value, "run_uuid": run_id}
            for run_id, _, depth, rate, _, _ in rows for key, value in (("max_depth", depth), ("learning_rate", rate))))
        for table in (metrics, latest):
            insert_chunks(conn, table, (
                {"key": key, "value": value, "timestamp": start + 400, "step": 0, "is_nan": False, "run_uuid": run_id}
                for run_id, start, _, _, f1, loss in rows for key, value in (("val_f1", f1), ("val_loss", loss))))
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(runs)
                              .where(runs.c.experiment_id == int(experiment_id))).scalar()
    engine.dispose()
    return {"experiment_id": experiment_id, "seconds_populate": time.perf_counter() - began, "stored_runs": stored}


def cmd_populate_history(args: argparse.Namespace) -> Any:
    """A run (through the API) with ``--points`` points of one metric inserted straight into MLflow's tables."""
    import sqlalchemy as sa

    client = _client(args.uri)
    experiment_id = _experiment_id(client, args.experiment)
    run_id = client.create_run(experiment_id, run_name="history").info.run_id
    _, _, _, metrics, latest = _tables()
    began = time.perf_counter()
    engine = bulk_engine(args.db)
    last = None
    with engine.begin() as conn:
        def points() -> Iterator[dict]:
            nonlocal last
            for step, stamp, value in history_values(args.points, args.seed):
                last = {"key": METRIC_KEY, "value": value, "timestamp": stamp, "step": step, "is_nan": False,
                        "run_uuid": run_id}
                yield last

        insert_chunks(conn, metrics, points())
        conn.execute(latest.insert(), [last])
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(metrics)
                              .where(metrics.c.run_uuid == run_id)).scalar()
    engine.dispose()
    return {"run_id": run_id, "seconds_populate": time.perf_counter() - began, "stored_points": stored}


def _search_all(client, experiment_id: str, filter_string: str, order_by: list[str]) -> list:
    found, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, order_by=order_by,
                                  max_results=50_000, page_token=token)
        found.extend(page)
        if not (token := page.token):
            return found


def cmd_search(args: argparse.Namespace) -> Any:
    """Times the first page of :data:`SEARCH_FILTER` ordered by val_f1; counts all matches by paging."""
    client = _client(args.uri)
    times, page = [], []
    for attempt in range(args.warmup + args.repeats):
        began = time.perf_counter()
        page = client.search_runs(experiment_ids=[args.experiment_id], filter_string=SEARCH_FILTER,
                                  order_by=SEARCH_ORDER, max_results=100)
        elapsed = time.perf_counter() - began
        if attempt >= args.warmup:
            times.append(elapsed)
    began = time.perf_counter()
    count = len(_search_all(client, args.experiment_id, SEARCH_FILTER, SEARCH_ORDER))
    return {"seconds": times, "page_run_ids": [run.info.run_id for run in page], "count": count,
            "count_seconds": time.perf_counter() - began}


def cmd_history(args: argparse.Namespace) -> Any:
    """Times ``MlflowClient.get_metric_history`` of the whole series."""
    client = _client(args.uri)
    times, points = [], 0
    for attempt in range(args.warmup + args.repeats):
        began = time.perf_counter()
        points = len(client.get_metric_history(args.run_id, METRIC_KEY))
        elapsed = time.perf_counter() - began
        if attempt >= args.warmup:
            times.append(elapsed)
    from mlflow.store.tracking import GET_METRIC_HISTORY_MAX_RESULTS

    return {"seconds": times, "points": points, "page_size": GET_METRIC_HISTORY_MAX_RESULTS}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], Any]) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.add_argument("--uri", required=True, help="the MLflow server, http://HOST:PORT")
        p.set_defaults(handler=handler)
        return p

    p = command("create-runs", cmd_create_runs)
    p.add_argument("--experiment", required=True)
    p.add_argument("--n", type=int, required=True)
    p = command("writer", cmd_writer)
    p.add_argument("--run-id", required=True)
    p.add_argument("--mode", choices=["single", "batch"], required=True)
    p.add_argument("--batch-size", type=int, default=1000)
    p = command("history-counts", cmd_history_counts)
    p.add_argument("--run-ids", nargs="+", required=True)
    p = command("fluent", cmd_fluent)
    p.add_argument("--experiment", required=True)
    p.add_argument("--sync-calls", type=int, default=2000)
    p.add_argument("--sync-repeats", type=int, default=1)
    p.add_argument("--async-calls", type=int, default=100_000)
    p.add_argument("--async-repeats", type=int, default=5)
    p.add_argument("--buffer-seconds", type=int, default=1)
    for name, handler in (("populate-runs", cmd_populate_runs), ("populate-history", cmd_populate_history)):
        p = command(name, handler)
        p.add_argument("--db", required=True, help="path of the server's SQLite file")
        p.add_argument("--experiment", required=True)
        p.add_argument("--seed", type=int, default=0)
        if name == "populate-runs":
            p.add_argument("--runs", type=int, required=True)
        else:
            p.add_argument("--points", type=int, required=True)
    for name, handler in (("search", cmd_search), ("history", cmd_history)):
        p = command(name, handler)
        p.add_argument("--repeats", type=int, default=5)
        p.add_argument("--warmup", type=int, default=1)
        if name == "search":
            p.add_argument("--experiment-id", required=True)
        else:
            p.add_argument("--run-id", required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = args.handler(args)
    if result is not None:
        emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
