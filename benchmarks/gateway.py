"""HTTP/JSON through the gateway next to direct gRPC: ask+tell and log-batch throughput.

    python benchmarks/gateway.py                     # both parts, 1 and 4 client threads
    python benchmarks/gateway.py --part ask-tell --seconds 10 --clients 1,4,16

Ask+tell: each client thread loops SuggestTrials(count=1) then CompleteTrial, against one
study with no trial budget (random search), for ``--seconds``; the table gives pairs per
second and the latency of one pair. Log-batch: each client logs batches of 1,000 metric
points to its own run. The services and the gateway are separate processes (SQLite), the
clients are threads of this process with one keep-alive connection (HTTP) or channel (gRPC)
each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

import httpx

from trial_worker import Float, SuggestionClient
from trial_worker.local_suite import LocalSuite
from trial_worker.tracking import TrackingClient, metric
from tuning.suggestion.v1 import suggestion_service_pb2 as api

BATCH = 1000


def measure(clients: int, seconds: float, make: Callable[[int], Callable[[], None]]) -> tuple[float, float, float]:
    """Runs ``clients`` loops of the operation ``make(i)()`` for ``seconds``: (ops/s, p50 ms, p99 ms)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    operations = [make(i) for i in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def loop(index: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            began = time.perf_counter()
            operations[index]()
            latencies[index].append(time.perf_counter() - began)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + seconds)
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(x for per in latencies for x in per)
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
    return len(every) / elapsed, 1000 * statistics.median(every), 1000 * p99


def ask_tell_grpc(suite: LocalSuite, study: str) -> Callable[[int], Callable[[], None]]:
    def make(index: int) -> Callable[[], None]:
        client = SuggestionClient(suite.suggestion_address)
        worker = f"grpc-{index}"

        def once() -> None:
            [trial] = client.call("SuggestTrials", api.SuggestTrialsRequest(
                study=study, count=1, worker_id=worker, request_id=uuid.uuid4().hex)).trials
            client.call("CompleteTrial", api.CompleteTrialRequest(
                trial_id=trial.id, worker_id=worker, outcome=api.OUTCOME_SUCCEEDED,
                metrics=[{"name": "loss", "value": 1.0}]))

        return once

    return make


def ask_tell_http(url: str, study: str) -> Callable[[int], Callable[[], None]]:
    def make(index: int) -> Callable[[], None]:
        client = httpx.Client(base_url=url, timeout=30)
        worker = f"http-{index}"

        def once() -> None:
            answer = client.post(f"/v1/studies/{study}/trials:suggest",
                                 json={"count": 1, "worker_id": worker, "request_id": uuid.uuid4().hex})
            answer.raise_for_status()
            trial_id = answer.json()["trials"][0]["id"]
            client.post(f"/v1/trials/{trial_id}:complete", json={
                "worker_id": worker, "outcome": "OUTCOME_SUCCEEDED",
                "metrics": [{"name": "loss", "value": 1.0}]}).raise_for_status()

        return once

    return make


def log_batch_grpc(suite: LocalSuite, runs: list[str]) -> Callable[[int], Callable[[], None]]:
    def make(index: int) -> Callable[[], None]:
        client = TrackingClient(suite.tracking_address)
        step = [0]

        def once() -> None:
            base = step[0]
            step[0] += BATCH
            client.log_batch(runs[index], metrics=[metric("loss", 1.0 / (s + 1), step=s)
                                                   for s in range(base, base + BATCH)])

        return once

    return make


def log_batch_http(url: str, runs: list[str]) -> Callable[[int], Callable[[], None]]:
    def make(index: int) -> Callable[[], None]:
        client = httpx.Client(base_url=url, timeout=30)
        step = [0]

        def once() -> None:
            base = step[0]
            step[0] += BATCH
            body = {"metrics": [{"key": "loss", "value": 1.0 / (s + 1), "step": s, "timestamp": "2026-01-01T00:00:00Z"}
                                for s in range(base, base + BATCH)]}
            client.post(f"/v1/runs/{runs[index]}:logBatch", json=body).raise_for_status()

        return once

    return make


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("ask-tell", "log-batch", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", default="1,4")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs; "
          f"{' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as home, LocalSuite(home, gateway_port=0) as suite:
        url = suite.gateway_url
        if args.part in ("ask-tell", "both"):
            with SuggestionClient(suite.suggestion_address) as client:
                client.create_study("bench", [Float("x", 0, 1)], objectives={"loss": "minimize"})
            print("\n| ask+tell | clients | pairs/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
            for clients in counts:
                for label, make in (("gRPC", ask_tell_grpc(suite, "bench")), ("HTTP", ask_tell_http(url, "bench"))):
                    rate, p50, p99 = measure(clients, args.seconds, make)
                    print(f"| {label} | {clients} | {rate:.0f} | {p50:.2f} | {p99:.2f} |", flush=True)
        if args.part in ("log-batch", "both"):
            with TrackingClient(suite.tracking_address) as client:
                experiment = client.create_experiment("bench").id
                runs = [client.create_run(experiment).id for _ in range(max(counts) * 2)]
            print(f"\n| log-batch ({BATCH} points) | clients | metrics/s | p50 ms | p99 ms |\n"
                  "|---|---:|---:|---:|---:|")
            for clients in counts:
                # gRPC and HTTP clients write to runs of their own.
                for label, make in (("gRPC", log_batch_grpc(suite, runs[:clients])),
                                    ("HTTP", log_batch_http(url, runs[clients:]))):
                    rate, p50, p99 = measure(clients, args.seconds, make)
                    print(f"| {label} | {clients} | {rate * BATCH:,.0f} | {p50:.1f} | {p99:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
