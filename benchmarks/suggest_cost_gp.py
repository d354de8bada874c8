"""Wall time of one GP-BO ``suggest(context, 1)`` as the history grows.

The history is Hartmann6 (6-D, minimised) evaluated at uniform random points: what matters
for the cost is how many completed trials the model sees, not where they are. With
``--optuna``, Optuna's ``GPSampler`` is timed on the same histories (one ask on a study
pre-filled with the same trials), in the same run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/suggest_cost_gp.py \
        [--sizes 50 100 500 1000] [--repeats 3] [--optuna]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.algorithms.gp import GaussianProcessBO
from suggestion_service.domain.space import FloatDomain, Parameter, SearchSpace
from suggestion_service.domain.study import Direction, Objective
from suggestion_service.domain.trial import TrialState

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

    header = f"{'observations':>12}  {'median s':>9}  {'min s':>7}  {'max s':>7}  phase"
    print(header + (f"  {'optuna median s':>15}" if args.optuna else ""))
    for n in args.sizes:
        times, phase = [], ""
        for r in range(args.repeats):
            context = SuggestContext(space, objectives, sequence=n + r, history=history[:n])
            start = time.perf_counter()
            [suggestion] = algorithm.suggest(context, 1)
            times.append(time.perf_counter() - start)
            phase = suggestion.metadata.get("fallback") or suggestion.metadata["phase"]
        line = f"{n:>12}  {np.median(times):>9.3f}  {min(times):>7.3f}  {max(times):>7.3f}  {phase}"
        if args.optuna:
            line += f"  {np.median(optuna_gp(history[:n], args.repeats)):>15.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
