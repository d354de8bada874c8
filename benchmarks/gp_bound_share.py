#!/usr/bin/env python
"""Share of GP suggestions on the box bounds, per parameter, on a benchmark problem.

Runs ``ours-gp`` sequentially (like ``sample_efficiency.py``) and counts, among the
model-phase suggestions (after the quasi-random start-up), how many sit on a numeric
parameter's lowest or highest value. On a problem whose optimum is interior (``mixed``)
a large share means the acquisition optimiser is biased toward the bounds.

    python benchmarks/gp_bound_share.py --problem mixed --seeds 5 --trials 60

This is a measurement: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from problems import PROBLEMS  # noqa: E402


def run(problem_name: str, seed: int, trials: int) -> tuple[Counter, int, float]:
    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext, TrialView
    from suggestion_service.domain.trial import TrialState
    from tuning_types.space import FloatDomain, IntDomain
    from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

    problem = PROBLEMS[problem_name]
    objectives = (Objective("value", Direction.MINIMIZE),)
    model = make_algorithm(StudySpec(problem.space, objectives, AlgorithmSpec("gp", {}), seed=seed))
    history: list = []
    on_bounds: Counter = Counter()
    n_model = 0
    best = float("inf")
    for number in range(trials):
        context = SuggestContext(problem.space, objectives, sequence=number, history=tuple(history))
        [suggestion] = model.suggest(context, 1)
        value = problem.function(suggestion.params)
        best = min(best, value)
        history.append(TrialView(number, TrialState.COMPLETED, suggestion.params, (value,),
                                 metadata=suggestion.metadata))
        if suggestion.metadata.get("phase") != "model":
            continue
        n_model += 1
        for parameter in problem.space:
            domain = parameter.domain
            if isinstance(domain, (FloatDomain, IntDomain)) and parameter.name in suggestion.params:
                v = suggestion.params[parameter.name]
                if v <= domain.low or v >= domain.high:
                    on_bounds[parameter.name] += 1
    return on_bounds, n_model, best - problem.optimum


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", default="mixed", choices=sorted(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    total: Counter = Counter()
    n_total = 0
    for seed in range(args.seeds):
        on_bounds, n_model, regret = run(args.problem, seed, args.trials)
        total.update(on_bounds)
        n_total += n_model
        print(f"seed {seed}: regret {regret:.3g}, on bounds {dict(on_bounds)} of {n_model}", file=sys.stderr)
    print(f"| parameter | share of {n_total} model-phase suggestions on a bound |\n|---|---:|")
    from tuning_types.space import FloatDomain, IntDomain

    for parameter in PROBLEMS[args.problem].space:
        if isinstance(parameter.domain, (FloatDomain, IntDomain)):
            print(f"| {parameter.name} | {total[parameter.name] / max(n_total, 1):.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
