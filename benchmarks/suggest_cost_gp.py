"""Wall time of one GP-BO ``suggest(context, 1)`` as the history grows.

The history is Hartmann6 (6-D, minimised) evaluated at uniform random points: what matters
for the cost is how many completed trials the model sees, not where they are. As in a running
study, the last trial carries the fit its suggestion stored (the untimed suggestion for that
trial computes it). Three costs per size:

* ``warm``: the usual suggestion, its fit warm-started from the stored one;
* ``full``: a suggestion whose fit is a scheduled full fit (every tenth from proposal 100 on,
  more often before), all the seeded starts plus the stored fit;
* ``batch``: ``suggest(context, --batch)`` with a warm start (0: not timed).

With ``--optuna``, Optuna's ``GPSampler`` is timed on the same histories (one ask on a study
pre-filled with the same trials), in the same run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/suggest_cost_gp.py \
        [--sizes 50 100 500 1000] [--repeats 3] [--batch 8] [--optuna]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.algorithms.gp import GaussianProcessBO, _full_fit_interval
from suggestion_service.domain.trial import TrialState
from tuning_types.space import FloatDomain, Parameter, SearchSpace
from tuning_types.study import Direction, Objective

_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
               [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                      [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    return float(-_ALPHA @ np.exp(-(_A * (x[None, :] - _P) ** 2).sum(1)))


def optuna_gp(history: list[TrialView], repeats: int) -> list[float]:
    """Seconds per ask of Optuna's GPSampler with ``history`` already told."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    distributions = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(6)}
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0))
    study.add_trials([
        optuna.trial.create_trial(params=dict(t.params), distributions=distributions, value=t.values[0])
        for t in history
    ])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask(distributions)
        times.append(time.perf_counter() - start)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # keeps the history the same size
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 500, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=0, help="also time suggest(context, BATCH)")
    parser.add_argument("--optuna", action="store_true", help="also time Optuna's GPSampler")
    args = parser.parse_args()

    space = SearchSpace(tuple(Parameter(f"x{i}", FloatDomain(0.0, 1.0)) for i in range(6)))
    objectives = (Objective("value", Direction.MINIMIZE),)
    algorithm = GaussianProcessBO(space, objectives, GaussianProcessBO.Settings(), seed=0)
    rng = np.random.default_rng(0)
    points = rng.random((max(args.sizes), 6))
    history = [
        TrialView(i, TrialState.COMPLETED, {f"x{d}": float(p[d]) for d in range(6)}, (hartmann6(p),))
        for i, p in enumerate(points)
    ]
    algorithm.suggest(SuggestContext(space, objectives, 0, history=history[:20]), 1)  # warm imports

    def timed(trials: list[TrialView], first: int, count: int) -> list[float]:
        """Seconds per suggest(count) at sequences first, first + 1, ... on ``trials``."""
        times = []
        for r in range(args.repeats):
            context = SuggestContext(space, objectives, sequence=first + r, history=trials)
            start = time.perf_counter()
            suggestions = algorithm.suggest(context, count)
            times.append(time.perf_counter() - start)
            assert all(s.metadata["phase"] == "model" and "fallback" not in s.metadata for s in suggestions)
        return times

    columns = ["warm", "full"] + (["batch"] if args.batch else []) + (["optuna"] if args.optuna else [])
    print(f"{'observations':>12}" + "".join(f"  {c + ' median s':>15}  {'min-max':>11}" for c in columns))
    for n in args.sizes:
        # The suggestion that made trial n - 1 stored its fit (a full one: index n - 1 is its own full fit).
        [made] = algorithm.suggest(SuggestContext(space, objectives, n - 1, history=history[:n - 1]), 1)
        stored = history[:n - 1] + [replace(history[n - 1], metadata=made.metadata)]
        results = [timed(stored, n, 1), timed(stored, n - 1 + _full_fit_interval(n - 1), 1)]
        if args.batch:
            results.append(timed(stored, n, args.batch))
        if args.optuna:
            results.append(optuna_gp(history[:n], args.repeats))
        print(f"{n:>12}" + "".join(f"  {np.median(t):>15.3f}  {min(t):>5.3f}-{max(t):<5.3f}" for t in results),
              flush=True)


if __name__ == "__main__":
    main()
