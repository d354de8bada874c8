"""Load: many concurrent simulated workers against one suggestion and one tracking service.

    python benchmarks/load.py                                  # 1,000 workers, 60 s, SQLite
    python benchmarks/load.py --workers 100 --seconds 10 --database postgres

N workers run as asyncio tasks of this one process (grpc.aio stubs over a few shared
channels). Each loops the trial protocol of the trial worker: ask (SuggestTrials, count 1,
a fresh request id, its own worker id; on WAIT it sleeps retry_after), CreateRun with the
trial link, LinkRun, K ReportIntermediate with a random 50-200 ms "training" pause before
each, one LogBatch (params and the K points), CompleteTrial, UpdateRun(FINISHED). A report
answered should_stop ends the trial early: CompleteTrial(PRUNED) and UpdateRun(KILLED).

The study: random search (``--algorithm tpe`` or ``gp``: a model-based study), no trial budget, no parallel cap, a 300 s lease, no pruner
(``--pruner median``: the median pruner, which here prunes most trials at their first
report, since the median of the completed trials ratchets down). No error is expected: leases cannot expire within the
run and a pruned trial is told PRUNED without reporting again, so every error counts as
unexpected (the exit status is then 1; it flags, it asserts nothing about speed). Every
call has a deadline (``--timeout``), so a stuck service shows as DEADLINE_EXCEEDED.

Measured: the ``--seconds`` after a ``--warm-up``; latency of calls started in that window,
trials whose CompleteTrial finished in it, and the services' CPU time (utime + stime from
/proc/<pid>/stat) and the whole machine's (/proc/stat: PostgreSQL, the kernel) over it. Then the workers finish the trial they hold, and both services
must answer gRPC health SERVING.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trial_worker import Float, Int, SuggestionClient
from trial_worker.local_suite import LocalSuite
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.suggestion.v1 import suggestion_service_pb2 as sapi
from tuning.suggestion.v1 import suggestion_service_pb2_grpc as sgrpc
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning.tracking.v1 import tracking_service_pb2 as tapi
from tuning.tracking.v1 import tracking_service_pb2_grpc as tgrpc

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/"
RPCS = ("SuggestTrials", "CreateRun", "LinkRun", "ReportIntermediate", "LogBatch", "CompleteTrial", "UpdateRun")
STUDY = "load"


class Stats:
    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.done: Counter[str] = Counter()  # calls that finished inside the window
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)
        self.outside_errors: dict[str, Counter[str]] = defaultdict(Counter)  # warm-up and drain
        self.trials: Counter[str] = Counter()
        self.waits = 0

    def inside(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]


async def call(stats: Stats, name: str, rpc, request, timeout: float):
    """One RPC with a deadline; None on an error (recorded by status code)."""
    began = time.perf_counter()
    try:
        response = await rpc(request, timeout=timeout)
    except grpc.aio.AioRpcError as error:
        (stats.errors if stats.inside(began) else stats.outside_errors)[name][error.code().name] += 1
        return None
    ended = time.perf_counter()
    if stats.inside(began):
        stats.latency[name].append(ended - began)
    if stats.inside(ended):
        stats.done[name] += 1
    return response


def param_text(value: spb.ParameterValue) -> str:
    return str(getattr(value, value.WhichOneof("kind")))


async def worker(index: int, stop: asyncio.Event, stats: Stats, suggest: sgrpc.SuggestionServiceStub,
                 track: tgrpc.TrackingServiceStub, experiment_id: int, args: argparse.Namespace) -> None:
    worker_id = f"load-{index}"
    rng = random.Random(index)
    t = args.timeout
    # Spread the first asks over a second instead of 1,000 at the same instant.
    await asyncio.sleep(rng.random())
    while not stop.is_set():
        answer = await call(stats, "SuggestTrials", suggest.SuggestTrials, sapi.SuggestTrialsRequest(
            study=STUDY, count=1, worker_id=worker_id, request_id=uuid.uuid4().hex), t)
        if answer is None:
            await asyncio.sleep(1.0)
            continue
        if not answer.trials:
            stats.waits += 1
            await asyncio.sleep(answer.retry_after.ToTimedelta().total_seconds() or 0.5)
            continue
        trial = answer.trials[0]
        run = await call(stats, "CreateRun", track.CreateRun, tapi.CreateRunRequest(
            experiment_id=experiment_id, name=f"trial-{trial.number}", request_id=uuid.uuid4().hex,
            trial=tpb.TrialLink(study=STUDY, trial_id=trial.id, trial_number=trial.number)), t)
        run_id = run.run.id if run is not None else ""
        if run_id:
            await call(stats, "LinkRun", suggest.LinkRun,
                       sapi.LinkRunRequest(trial_id=trial.id, worker_id=worker_id, run_id=run_id), t)
        x = trial.parameters["x"].float_value
        points: list[tpb.Metric] = []
        pruned = failed = False
        for step in range(args.steps):
            await asyncio.sleep(rng.uniform(args.min_sleep, args.max_sleep))
            loss = (x - 0.3) ** 2 + 1.0 / (step + 1) + rng.gauss(0, 0.01)
            points.append(tpb.Metric(key="loss", value=loss, step=step))
            report = await call(stats, "ReportIntermediate", suggest.ReportIntermediate, sapi.ReportIntermediateRequest(
                trial_id=trial.id, worker_id=worker_id, step=step, metrics=[spb.Metric(name="loss", value=loss)]), t)
            if report is None:
                failed = True
                break
            if report.should_stop:
                pruned = True
                break
        if run_id:
            await call(stats, "LogBatch", track.LogBatch, tapi.LogBatchRequest(
                run_id=run_id, metrics=points,
                params=[tpb.Param(key=k, value=param_text(v)) for k, v in trial.parameters.items()]), t)
        if failed:
            outcome, metrics = sapi.OUTCOME_FAILED, []
        elif pruned:
            outcome, metrics = sapi.OUTCOME_PRUNED, []
        else:
            outcome, metrics = sapi.OUTCOME_SUCCEEDED, [spb.Metric(name="loss", value=points[-1].value)]
        tell = await call(stats, "CompleteTrial", suggest.CompleteTrial, sapi.CompleteTrialRequest(
            trial_id=trial.id, worker_id=worker_id, outcome=outcome, metrics=metrics,
            reason="a report failed" if failed else ""), t)
        if tell is not None and stats.inside(time.perf_counter()):
            stats.trials["failed" if failed else "pruned" if pruned else "completed"] += 1
        if run_id:
            await call(stats, "UpdateRun", track.UpdateRun, tapi.UpdateRunRequest(
                run_id=run_id, status=tpb.RUN_STATUS_KILLED if pruned else tpb.RUN_STATUS_FAILED if failed
                else tpb.RUN_STATUS_FINISHED), t)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the ")" that closes the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:8]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


async def healthy(address: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def drive(suite: LocalSuite, experiment_id: int, args: argparse.Namespace) -> int:
    stats = Stats()
    stop = asyncio.Event()
    options = [("grpc.max_receive_message_length", 64 << 20)]
    # Each channel is its own HTTP/2 connection; the workers share them round robin.
    suggestion_channels = [grpc.aio.insecure_channel(suite.suggestion_address, options=options + [
        ("grpc.use_local_subchannel_pool", 1)]) for _ in range(args.channels)]
    tracking_channels = [grpc.aio.insecure_channel(suite.tracking_address, options=options + [
        ("grpc.use_local_subchannel_pool", 1)]) for _ in range(args.channels)]
    suggest = [sgrpc.SuggestionServiceStub(c) for c in suggestion_channels]
    track = [tgrpc.TrackingServiceStub(c) for c in tracking_channels]
    pids = {s.name: s.process.pid for s in suite.services}
    tasks = [asyncio.create_task(worker(i, stop, stats, suggest[i % args.channels], track[i % args.channels],
                                        experiment_id, args)) for i in range(args.workers)]
    await asyncio.sleep(args.warm_up)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own_before = time.process_time()
    machine_before = machine_busy()
    began = time.perf_counter()
    stats.window = (began, began + args.seconds)
    await asyncio.sleep(args.seconds)
    elapsed = time.perf_counter() - began
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    own = time.process_time() - own_before
    machine = [after - before for after, before in zip(machine_busy(), machine_before)]
    stop.set()
    drain_began = time.perf_counter()
    _, pending = await asyncio.wait(tasks, timeout=args.timeout * 3)
    drain = time.perf_counter() - drain_began
    for task in pending:
        task.cancel()
    crashed = [t.exception() for t in tasks if t not in pending and not t.cancelled() and t.exception()]
    health = {s.name: await healthy(s.address) for s in suite.services}
    for channel in suggestion_channels + tracking_channels:
        await channel.close()

    print("\n| RPC | calls | per s | p50 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|---|")
    total_calls = 0
    for name in RPCS:
        lat = stats.latency[name]
        errors = ", ".join(f"{code} {n}" for code, n in sorted(stats.errors[name].items())) or "0"
        total_calls += stats.done[name]
        print(f"| {name} | {stats.done[name]:,} | {stats.done[name] / elapsed:.1f} | {1000 * percentile(lat, 0.5):.1f} | "
              f"{1000 * percentile(lat, 0.99):.1f} | {1000 * max(lat, default=float('nan')):.1f} | {errors} |")
    trials = sum(stats.trials.values())
    unexpected = sum(sum(c.values()) for c in stats.errors.values())
    outside = sum(sum(c.values()) for c in stats.outside_errors.values())
    print(f"\nmeasured {elapsed:.1f} s: {trials:,} trials ({trials / elapsed:.1f}/s; "
          f"{stats.trials['completed']:,} completed, {stats.trials['pruned']:,} pruned, "
          f"{stats.trials['failed']:,} failed), {total_calls:,} RPCs ({total_calls / elapsed:.1f}/s), "
          f"{stats.waits} WAIT answers, {unexpected} unexpected errors")
    print("CPU over the window: " + ", ".join(
        f"{name} {seconds:.1f} s ({100 * seconds / elapsed:.0f}% of a core)" for name, seconds in cpu.items())
        + f", load generator {own:.1f} s ({100 * own / elapsed:.0f}% of a core); whole machine "
        f"{100 * machine[0] / machine[1]:.0f}% busy ({machine[0] / elapsed:.2f} of {os.cpu_count()} CPUs)")
    print(f"drain: {len(tasks) - len(pending)} of {len(tasks)} workers finished their last trial in {drain:.1f} s"
          + (f"; {len(pending)} still waiting were cancelled" if pending else ""))
    if outside:
        print("errors in the warm-up or drain: " + "; ".join(
            f"{name}: " + ", ".join(f"{c} {n}" for c, n in codes.items()) for name, codes in stats.outside_errors.items()
            if codes))
    if crashed:
        print(f"worker tasks that raised: {len(crashed)}, first: {crashed[0]!r}")
    print("health after the run: " + ", ".join(f"{name} {status}" for name, status in health.items()))
    bad = unexpected or outside or pending or crashed or any(s != "SERVING" for s in health.values())
    return 1 if bad else 0


@contextmanager
def postgres_database():
    import psycopg

    name = f"load_bench_{os.getpid()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES + name
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument("--warm-up", type=float, default=10.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--channels", type=int, default=8, help="channels per service, shared by the workers")
    parser.add_argument("--steps", type=int, default=3, help="intermediate reports per trial")
    parser.add_argument("--min-sleep", type=float, default=0.05)
    parser.add_argument("--max-sleep", type=float, default=0.2)
    parser.add_argument("--pruner", choices=("median", "none"), default="none")
    parser.add_argument("--algorithm", choices=("random", "tpe", "gp"), default="random",
                        help="the study's algorithm (tpe and gp: model-based asks, computed in batches)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of every call, seconds")
    args = parser.parse_args()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, grpcio {grpc.__version__}; {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="tuning-load-") as home:
        if args.database == "postgres":
            with postgres_database() as url:
                return run(home, url, args)
        return run(home, None, args)


def run(home: str, database_url: str | None, args: argparse.Namespace) -> int:
    with LocalSuite(home, database_url=database_url) as suite:
        with SuggestionClient(suite.suggestion_address) as client:
            client.create_study(STUDY, [Float("x", 0, 1), Float("lr", 1e-4, 1e-1, log=True), Int("depth", 2, 12)],
                                objectives={"loss": "minimize"}, algorithm=args.algorithm, max_trials=0,
                                max_parallel_trials=0, lease_seconds=300.0,
                                pruner=None if args.pruner == "none" else args.pruner)
        with TrackingClient(suite.tracking_address) as tracking:
            experiment_id = tracking.create_experiment("load").id
        print(f"{args.workers} workers, {args.channels} channels per service, {args.database}, "
              f"{args.warm_up:.0f} s warm-up + {args.seconds:.0f} s measured, {args.steps} reports per trial, "
              f"pruner {args.pruner}, algorithm {args.algorithm}", flush=True)
        status = asyncio.run(drive(suite, experiment_id, args))
        with SuggestionClient(suite.suggestion_address) as client:
            trials = list(client.get_study(STUDY).trials())
        configurations = Counter(tuple(sorted((k, str(v)) for k, v in t.parameters.items())) for t in trials
                                 if t.source == spb.TRIAL_SOURCE_ALGORITHM)
        repeated = sum(n - 1 for n in configurations.values() if n > 1)
        print(f"the study's trials: {len(trials):,}, {repeated} configuration(s) handed out more than once")
        return status or (1 if repeated and args.algorithm != "random" else 0)


if __name__ == "__main__":
    sys.exit(main())
