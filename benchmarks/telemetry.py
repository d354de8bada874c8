"""The cost of OpenTelemetry: the same work with telemetry off, on (every trace sampled) and
sampled at 10%.

    python benchmarks/telemetry.py                          # off, on, sampled; 2 repeats each
    python benchmarks/telemetry.py --repeats 3 --seconds 10 --clients 1,4,16
    python benchmarks/telemetry.py --modes off,on,metrics   # metrics only: OTEL_TRACES_EXPORTER=none

Each (mode, repeat) runs in a fresh child process of this script (telemetry is set up once per
process), which starts both services (LocalSuite, SQLite in a temporary folder) under the same
environment, so services, workers and clients are all instrumented or none is:

- ``off``: no ``OTEL_*`` variable at all (inherited ones are removed).
- ``on``: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (protocol grpc) to an in-memory OTLP receiver that runs
  in this (parent) process; the SDK's default batching (``OTEL_BSP_SCHEDULE_DELAY`` 5 s,
  metrics every 60 s) and sampler (``parentbased_always_on``).
- ``sampled``: ``on`` plus ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ratio 0.1.
- ``metrics`` (not run by default): ``on`` with ``OTEL_TRACES_EXPORTER=none``: metrics and the
  instrumentation's hooks, no tracer provider.
- ``unsampled`` (not run by default): ``on`` with ``OTEL_TRACES_SAMPLER=always_off``: the
  tracer provider and every hook, but no span recorded.

The child measures (1) ask+tell throughput: C client threads, each with its own
``SuggestionClient`` and ``Study``, loop ``study.ask()`` then ``study.tell()`` on a random-search
study with no trial budget, ``--warmup`` s unmeasured then ``--seconds`` s measured: pairs/s
and the latency of a pair; and (2) the wall time of a ``--trials``-trial study through
``trial_worker.tune.Tuner`` (random search, ``--slots`` concurrent trials, every trial a
tracked run) on a train function doing fixed NumPy work (matrix products, 55-75 ms on one core)
in five steps with a ``ctx.report`` after each. Modes are interleaved (off, on, sampled, off,
...) so drift on a shared machine hits them alike; the summary gives each mode's median.

The receiver counts the spans each child's processes export, binned by phase (by start time),
and this process's CPU time while a child runs is the receiver's decoding cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

RESULT = "RESULT "
MODES = ("off", "on", "sampled", "metrics", "unsampled")
# Matrix products per report step of the train function; 5 steps per trial.
STEP_ROUNDS = 20
STEPS = 5
SIZE = 200


# --- the child: one mode, one set of measurements --------------------------------------------------


def work(seed: int) -> float:
    """One step of the train function's NumPy work (the GIL is released inside the products)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((SIZE, SIZE))
    b = a
    for _ in range(STEP_ROUNDS):
        b = np.tanh(b @ a / SIZE)
    return float(np.abs(b).mean())


def train(ctx) -> dict[str, float]:
    x = ctx.params["x"]
    loss = 0.0
    for step in range(1, STEPS + 1):
        loss = (x - 0.3) ** 2 + work(step) / step
        ctx.report(step, loss=loss)
    return {"loss": loss}


def ask_tell(address: str, study_name: str, clients: int, warmup: float, seconds: float) -> dict:
    """``clients`` threads loop ask -> tell; pairs that start inside the measured window count."""
    from trial_worker import SuggestionClient

    handles = []
    for _ in range(clients):
        client = SuggestionClient(address)
        handles.append((client, client.get_study(study_name)))
    pairs: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    window: list[float] = []

    def loop(index: int) -> None:
        study = handles[index][1]
        barrier.wait()
        stop = window[1]
        while (began := time.perf_counter()) < stop:
            trial = study.ask()
            study.tell(trial, 1.0)
            pairs[index].append((began, time.perf_counter() - began))

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window.extend([now + warmup, now + warmup + seconds])
    wall_start = time.time_ns() + int(warmup * 1e9)
    barrier.wait()
    for thread in threads:
        thread.join()
    wall_end = time.time_ns()
    for client, _ in handles:
        client.close()
    measured = sorted(d for per in pairs for began, d in per if began >= window[0])
    p99 = measured[min(len(measured) - 1, int(len(measured) * 0.99))]
    return {"pairs": len(measured), "pairs_per_s": len(measured) / seconds,
            "p50_ms": 1000 * statistics.median(measured), "p99_ms": 1000 * p99,
            "window_ns": [wall_start, wall_end]}


def run_study(suite, trials: int, slots: int, seed: int) -> dict:
    from trial_worker.tune import Tuner, TunerConfig, uniform
    from tuning.suggestion.v1 import study_pb2 as spb

    config = TunerConfig(metric="loss", mode="min", algorithm="random", num_trials=trials,
                         max_concurrent_trials=slots, seed=seed, study_name=f"study-{uuid.uuid4().hex[:8]}",
                         suggestion_address=suite.suggestion_address, tracking_address=suite.tracking_address,
                         progress=False)
    started_ns = time.time_ns()
    started = time.perf_counter()
    results = Tuner(train, {"x": uniform(-1, 1)}, config).run()
    elapsed = time.perf_counter() - started
    completed = results.count(spb.TRIAL_STATE_COMPLETED)
    if completed != trials:
        raise SystemExit(f"{completed} of {trials} trials completed")
    return {"wall_s": elapsed, "trials_per_s": trials / elapsed, "window_ns": [started_ns, time.time_ns()]}


def child(args: argparse.Namespace) -> int:
    from trial_worker import Float, SuggestionClient
    from trial_worker.local_suite import LocalSuite
    from tuning_common import telemetry

    on = telemetry.setup(telemetry.TRIAL_WORKER)
    result: dict = {"mode": args.mode, "telemetry": on, "ask_tell": {}}
    cpu_start = time.process_time()
    with tempfile.TemporaryDirectory(prefix="tuning-bench-otel-") as home:
        with LocalSuite(home) as suite:
            with SuggestionClient(suite.suggestion_address) as client:
                client.create_study("ask-tell", [Float("x", 0, 1)], objectives={"loss": "minimize"},
                                    algorithm="random", max_trials=0, seed=0)
            for clients in args.client_counts:
                result["ask_tell"][str(clients)] = ask_tell(suite.suggestion_address, "ask-tell", clients,
                                                            args.warmup, args.seconds)
            # A warm-up study: the first tracked runs pay for the tracking service's first requests.
            run_study(suite, max(2, args.slots), args.slots, seed=1)
            result["study"] = run_study(suite, args.trials, args.slots, seed=2)
            cpu_client = time.process_time() - cpu_start
        services = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_s"] = {"client": cpu_client, "services": services.ru_utime + services.ru_stime}
    print(RESULT + json.dumps(result), flush=True)
    return 0


# --- the parent: the receiver, the children, the tables --------------------------------------------


def child_env(mode: str, endpoint: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    if mode != "off":
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    if mode == "sampled":
        env.update({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"})
    if mode == "metrics":
        env["OTEL_TRACES_EXPORTER"] = "none"
    if mode == "unsampled":
        env["OTEL_TRACES_SAMPLER"] = "always_off"
    return env


def settle(receiver, quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
    """Waits until no span has arrived for ``quiet_s`` (the services flush as they stop)."""
    deadline = time.monotonic() + timeout_s
    last, since = len(receiver.spans), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = len(receiver.spans)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def run_child(mode: str, args: argparse.Namespace, receiver) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", "--mode", mode, "--seconds", str(args.seconds),
               "--warmup", str(args.warmup), "--clients", args.clients, "--trials", str(args.trials),
               "--slots", str(args.slots), "--step-rounds", str(args.step_rounds)]
    first = len(receiver.spans)
    cpu = time.process_time()
    started = time.perf_counter()
    done = subprocess.run(command, env=child_env(mode, receiver.endpoint), stdout=subprocess.PIPE, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the {mode} child failed (exit {done.returncode}):\n{done.stdout}")
    result = json.loads(lines[-1][len(RESULT):])
    settle(receiver)
    spans = receiver.spans[first:]
    result["child_wall_s"] = time.perf_counter() - started
    result["receiver_cpu_s"] = time.process_time() - cpu
    result["spans"] = len(spans)
    result["spans_by_service"] = dict(Counter(s.service for s in spans))
    phases = {f"ask_tell_{c}": r["window_ns"] for c, r in result["ask_tell"].items()}
    phases["study"] = result["study"]["window_ns"]
    result["spans_in_phase"] = {
        phase: sum(start <= s.start_ns < end for s in spans) for phase, (start, end) in phases.items()}
    # Per ask+tell pair (1 client) and per trial of the study: which spans, from which service.
    low = f"ask_tell_{args.client_counts[0]}"
    operations = {low: result["ask_tell"][str(args.client_counts[0])]["pairs"], "study": args.trials}
    result["span_names"] = {
        phase: {name: count / operations[phase] for name, count in Counter(
            f"{s.service}: {_generic(s.name)}" for s in spans if phases[phase][0] <= s.start_ns < phases[phase][1]
        ).most_common()} for phase in operations if operations[phase]}
    return result


def _generic(name: str) -> str:
    """A SQL span's name without the database path ("SELECT /tmp/.../suggestion.db" -> "SELECT")."""
    verb, _, rest = name.partition(" ")
    return verb if verb.isupper() and rest.startswith("/") else name


def change(value: float, base: float, throughput: bool) -> str:
    """``value`` against ``off``'s ``base`` in percent; for a throughput also as time per operation."""
    text = f"{value / base - 1:+.1%}"
    return f"{text} ({base / value - 1:+.0%} per op)" if throughput else text


def main() -> int:
    global STEP_ROUNDS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="off,on,sampled", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--repeats", type=int, default=2, help="children per mode, interleaved")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per ask+tell row")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each ask+tell row")
    parser.add_argument("--clients", default="1,4", help="client thread counts for ask+tell")
    parser.add_argument("--trials", type=int, default=50, help="trials of the timed study")
    parser.add_argument("--slots", type=int, default=4, help="concurrent trials (Tuner max_concurrent_trials)")
    parser.add_argument("--step-rounds", type=int, default=STEP_ROUNDS,
                        help="matrix products per report step: the trials' length (20: about 70 ms per trial)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print each child's spans per ask+tell pair and per trial, by service and name")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.client_counts = [int(c) for c in args.clients.split(",")]
    STEP_ROUNDS = args.step_rounds
    if args.child:
        return child(args)

    from tuning_common.otlp_receiver import OtlpReceiver

    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}")
    began = time.perf_counter()
    timed = time.perf_counter()
    for step in range(STEPS):
        work(step)
    work_ms = 1000 * (time.perf_counter() - timed)
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; {' '.join(sys.argv)}")
    print(f"# load {os.getloadavg()[0]:.2f}; train function: {work_ms:.0f} ms of NumPy work per trial on one core, "
          f"{STEPS} reports")
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    with OtlpReceiver() as receiver:
        low, high = args.client_counts[0], args.client_counts[-1]
        print(f"\n| repeat | mode | pairs/s ({low}) | p50 ms | p99 ms | pairs/s ({high}) | study wall s | spans | "
              f"spans/pair ({low}) | spans/pair ({high}) | spans/trial | client CPU s | services CPU s | "
              "receiver CPU s |")
        print("|---:|---|" + "---:|" * 12)
        for repeat in range(1, args.repeats + 1):
            for mode in modes:
                result = run_child(mode, args, receiver)
                runs[mode].append(result)
                first, last = result["ask_tell"][str(low)], result["ask_tell"][str(high)]
                in_phase = result["spans_in_phase"]
                print(f"| {repeat} | {mode} | {first['pairs_per_s']:.0f} | {first['p50_ms']:.2f} | "
                      f"{first['p99_ms']:.2f} | {last['pairs_per_s']:.0f} | {result['study']['wall_s']:.2f} | "
                      f"{result['spans']:,} | {in_phase[f'ask_tell_{low}'] / first['pairs']:.1f} | "
                      f"{in_phase[f'ask_tell_{high}'] / last['pairs']:.1f} | {in_phase['study'] / args.trials:.0f} | "
                      f"{result['cpu_s']['client']:.1f} | {result['cpu_s']['services']:.1f} | "
                      f"{result['receiver_cpu_s']:.1f} |", flush=True)
                if args.verbose:
                    for phase, names in result["span_names"].items():
                        if not names:
                            continue
                        listed = ", ".join(f"{name} {per:.2f}" for name, per in names.items())
                        print(f"<!-- {mode}, spans per {'pair' if phase.startswith('ask') else 'trial'} "
                              f"({phase}): {listed} -->")

    def median(mode: str, get) -> float:
        return statistics.median(get(r) for r in runs[mode])

    columns = [
        ("ask+tell pairs/s (1 client)", lambda r: r["ask_tell"][str(args.client_counts[0])]["pairs_per_s"], True,
         "{:.0f}"),
        ("p50 ms", lambda r: r["ask_tell"][str(args.client_counts[0])]["p50_ms"], False, "{:.2f}"),
        (f"pairs/s ({args.client_counts[-1]} clients)",
         lambda r: r["ask_tell"][str(args.client_counts[-1])]["pairs_per_s"], True, "{:.0f}"),
        (f"{args.trials}-trial study wall s", lambda r: r["study"]["wall_s"], False, "{:.2f}"),
        ("trials/s", lambda r: r["study"]["trials_per_s"], None, "{:.1f}"),
        ("spans received", lambda r: r["spans"], None, "{:,.0f}"),
    ]
    print(f"\nMedian of {args.repeats} per mode:\n")
    print("| mode | " + " | ".join(name for name, *_ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for mode in modes:
        print(f"| {mode} | " + " | ".join(fmt.format(median(mode, get)) for _, get, _, fmt in columns) + " |")
    if "off" in modes and len(modes) > 1:
        print("\nChange against off (medians; for a throughput, in brackets, the change in time per pair or trial):\n")
        costed = [c for c in columns if c[2] is not None]  # trials/s is the wall time's inverse
        print("| mode | " + " | ".join(name for name, *_ in costed) + " |")
        print("|---|" + "---:|" * len(costed))
        for mode in modes:
            if mode != "off":
                print(f"| {mode} | " + " | ".join(
                    change(median(mode, get), median("off", get), throughput) for _, get, throughput, _ in costed)
                    + " |")
    print(f"\n# whole run {time.perf_counter() - began:.0f} s; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
