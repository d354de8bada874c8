"""Scheduling overhead of the trial worker, and how a 1-second train function scales.

    python benchmarks/worker_overhead.py                    # both parts, tracking on and off
    python benchmarks/worker_overhead.py --part overhead --trials 400 --workers 1,4,16

Part 1, overhead: a no-op train function (it reports one step and returns), so the time is
the full per-trial protocol: ask, open the tracking run (tags, params), link it to the
trial, report, log the final metrics, flush, tell, end the run. Trials/s and milliseconds
per trial, with 1, 4 and 16 worker slots.

Part 2, scaling: a train function that sleeps 1 s, with 1, 2 and 4 slots; the overhead is
the wall time above the ideal (trials x 1 s / slots), per trial. Ray Tune publishes 10,000
one-second trials on 16 CPUs in 715 s against a 625 s ideal: 14.4% above the ideal, 144 ms
per trial and slot.

Services run as separate processes (SQLite, a local artifact folder), the worker slots are
threads of this process, as with the Tuner API.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from trial_worker import Float, SuggestionClient  # noqa: E402
from trial_worker.local_suite import LocalSuite  # noqa: E402
from trial_worker.worker import COMPLETED, Worker, WorkerConfig  # noqa: E402


def noop(ctx) -> dict[str, float]:
    ctx.report(1, loss=ctx.params["x"] ** 2)
    return {"loss": ctx.params["x"] ** 2}


def one_second(ctx) -> dict[str, float]:
    time.sleep(1.0)
    return {"loss": ctx.params["x"] ** 2}


def run_study(suite: LocalSuite, name: str, train, trials: int, slots: int, tracking: bool) -> float:
    with SuggestionClient(suite.suggestion_address) as client:
        client.create_study(name, [Float("x", -1, 1)], objectives={"loss": "minimize"}, algorithm="random",
                            max_trials=trials, seed=0)
    config = WorkerConfig(study=name, suggestion_address=suite.suggestion_address,
                          tracking_address=suite.tracking_address, tracking=tracking, parallel=slots)
    started = time.perf_counter()
    with Worker(train, config) as worker:
        summary = worker.run()
    elapsed = time.perf_counter() - started
    if summary.count(COMPLETED) != trials:
        raise SystemExit(f"{name}: {summary.count(COMPLETED)} of {trials} trials completed ({summary.reason})")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("overhead", "scaling", "both"), default="both")
    parser.add_argument("--trials", type=int, default=300, help="no-op trials per configuration")
    parser.add_argument("--workers", default="1,4,16", help="slot counts for the overhead part")
    parser.add_argument("--scaling-workers", default="1,2,4", help="slot counts for the scaling part")
    parser.add_argument("--scaling-trials-per-slot", type=int, default=8)
    args = parser.parse_args()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as home, LocalSuite(home) as suite:
        # A warm-up study: the services' first requests pay for imports and caches.
        run_study(suite, "warm-up", noop, 20, 2, True)
        if args.part in ("overhead", "both"):
            print("\n| slots | tracking | trials | wall s | trials/s | ms per trial (wall) | ms per trial and slot |")
            print("|---:|---|---:|---:|---:|---:|---:|")
            for slots in map(int, args.workers.split(",")):
                for tracking in (True, False):
                    elapsed = run_study(suite, f"noop-{slots}-{tracking}", noop, args.trials, slots, tracking)
                    print(f"| {slots} | {'on' if tracking else 'off'} | {args.trials} | {elapsed:.2f} | "
                          f"{args.trials / elapsed:.0f} | {1000 * elapsed / args.trials:.2f} | "
                          f"{1000 * elapsed * slots / args.trials:.1f} |", flush=True)
        if args.part in ("scaling", "both"):
            print("\n| slots | trials | ideal s | wall s | above ideal | overhead ms per trial and slot |")
            print("|---:|---:|---:|---:|---:|---:|")
            for slots in map(int, args.scaling_workers.split(",")):
                trials = slots * args.scaling_trials_per_slot
                ideal = trials * 1.0 / slots
                elapsed = run_study(suite, f"sleep-{slots}", one_second, trials, slots, True)
                print(f"| {slots} | {trials} | {ideal:.1f} | {elapsed:.2f} | {(elapsed - ideal) / ideal:.1%} | "
                      f"{1000 * (elapsed - ideal) * slots / trials:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
