#!/usr/bin/env python
"""Which basin a GP run ends in, against which basin its start-up points pointed to.

Hartmann-6 has two deep basins: the global minimum (-3.322) and a second one (-3.203)
far from it. A GP run (ours or Optuna's GPSampler) tends to spend its model phase in the
basin of the best start-up point. This script shows that per seed: for each method it
replays only the start-up trials (ours: the first ``max(10, 2 * dim)`` quasi-random
points; GPSampler: its 10 random ones), says which basin optimum the best of them is
nearer to, and, given the ``--store`` of a ``sample_efficiency.py`` run, which basin the
full run ended in (best value below the second basin's: global).

    python benchmarks/gp_start_basin.py --seeds 30 --store runs.jsonl

A measurement: it asserts nothing. GPSampler needs the benchmark venv (optuna).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import problems  # noqa: E402
import sample_efficiency  # noqa: E402

# The two basins' minimisers (Hartmann-6's global one and the second one) and the second's value.
GLOBAL = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.657300])
SECOND = np.array([0.404775, 0.882418, 0.846074, 0.573987, 0.138890, 0.038496])
SECOND_VALUE = -3.2032
STARTUP = {"ours-gp": 12, "optuna-gp": 10}


def start_basin(method: str, seed: int) -> str:
    """'global' or 'second': the basin optimum nearer to the best start-up point."""
    problem = problems.get("hartmann6", seed)
    seen: list[tuple[float, np.ndarray]] = []

    def recording(params):
        value = problem.function(params)
        seen.append((value, np.array([params[f"x{i}"] for i in range(6)], dtype=float)))
        return value

    system, _, variant = method.partition("-")
    sample_efficiency.RUNNERS[system](dataclasses.replace(problem, function=recording), variant, seed,
                                      STARTUP[method], 1)
    best = min(seen, key=lambda pair: pair[0])[1]
    return "global" if np.linalg.norm(best - GLOBAL) < np.linalg.norm(best - SECOND) else "second"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--methods", default="ours-gp,optuna-gp")
    parser.add_argument("--store", type=Path, help="sample_efficiency.py --store file with 100-trial hartmann6 runs")
    args = parser.parse_args()
    methods = args.methods.split(",")
    final = {}
    if args.store:
        for job, outcome in sample_efficiency.load_store(args.store).items():
            if job.problem == "hartmann6" and job.workers == 1 and outcome.best_so_far:
                final[job.method, job.seed] = "global" if outcome.best_so_far[-1] < SECOND_VALUE else "second"
    print("| seed | " + " | ".join(f"{m} start | {m} end" for m in methods) + " |")
    print("|---:|" + "---|---|" * len(methods))
    counts = {m: {"start global": 0, "end global": 0, "end = start": 0, "ends known": 0} for m in methods}
    for seed in range(args.seeds):
        cells = []
        for method in methods:
            start, end = start_basin(method, seed), final.get((method, seed), "?")
            counts[method]["start global"] += start == "global"
            if end != "?":
                counts[method]["ends known"] += 1
                counts[method]["end global"] += end == "global"
                counts[method]["end = start"] += end == start
            cells += [start, end]
        print(f"| {seed} | " + " | ".join(cells) + " |", flush=True)
    for method, c in counts.items():
        print(f"{method}: start points to the global basin in {c['start global']} of {args.seeds} seeds; "
              f"the run ends there in {c['end global']} of {c['ends known']}; "
              f"end basin = start basin in {c['end = start']} of {c['ends known']}")


if __name__ == "__main__":
    main()
