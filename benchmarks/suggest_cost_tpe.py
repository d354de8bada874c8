#!/usr/bin/env python
"""Cost of one TPE suggestion as the history grows, optionally next to Optuna's TPESampler.

A 7-parameter mixed space (log float, float, log int, int, stepped float, stepped int,
categorical) gets a history of N completed trials drawn by random search with a synthetic
loss; then ``TPE.suggest(context, 1)`` is timed (median and minimum of several calls): with a
fresh instance per call on the same context (reading the whole history every time, as a
suggestion computed under the study's lock does), and with one instance whose every call sees
one more completed trial (as the service's model process does: finished trials stay the same
objects, and TPE reads only the new rows). With ``--optuna``, ``TPESampler(multivariate=True)`` is timed on the same
history via ask/tell on an in-memory study (one ask + suggest of all 7 parameters).

    python benchmarks/suggest_cost_tpe.py --sizes 100,1000,10000 --repeats 15 --optuna

This is a measurement, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suggestion_service.algorithms.base import SuggestContext, TrialView
from suggestion_service.algorithms.random_search import RandomSearch
from suggestion_service.algorithms.tpe import TPE
from suggestion_service.domain.trial import TrialState
from trial_worker.space import Categorical, Float, Int
from tuning_types.space import SearchSpace
from tuning_types.study import Direction, Objective

SPACE = SearchSpace((
    Float("lr", 1e-5, 1.0, log=True),
    Float("x", -5.0, 5.0),
    Int("n_estimators", 10, 5000, log=True),
    Int("depth", 1, 16),
    Float("subsample", 0.3, 1.0, step=0.05),
    Int("leaves", 2, 256, step=2),
    Categorical("booster", ["gbtree", "dart", "linear"]),
))
OBJECTIVES = (Objective("loss", Direction.MINIMIZE),)


def loss(p) -> float:
    return ((math.log10(p["lr"]) + 2.5) ** 2 + (p["x"] - 1.0) ** 2 + (math.log(p["n_estimators"]) - 5) ** 2 / 4
            + ((p["depth"] - 6) / 4) ** 2 + (p["subsample"] - 0.8) ** 2 + ((p["leaves"] - 64) / 64) ** 2
            + {"gbtree": 0.0, "dart": 0.3, "linear": 1.0}[p["booster"]])


def history(n: int) -> list[TrialView]:
    points = RandomSearch(SPACE, OBJECTIVES, RandomSearch.Settings(), seed=1).suggest(
        SuggestContext(SPACE, OBJECTIVES, sequence=0), n)
    return [TrialView(i, TrialState.COMPLETED, s.params, (loss(s.params),)) for i, s in enumerate(points)]


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up: imports, caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def ours(trials: list[TrialView], repeats: int, multivariate: bool) -> tuple[float, float]:
    """A fresh instance per call: a service computing under the study's lock, or a new model process."""
    settings = TPE.Settings(multivariate=multivariate)
    context = SuggestContext(SPACE, OBJECTIVES, sequence=len(trials), history=tuple(trials))
    return timed(lambda: TPE(SPACE, OBJECTIVES, settings, seed=7).suggest(context, 1), repeats)


def ours_in_model_process(trials: list[TrialView], repeats: int, multivariate: bool) -> tuple[float, float]:
    """One instance, each call with one more completed trial and the same objects for the others:
    what a model process of the service sees from one ask of a busy study to the next."""
    n = len(trials) - repeats - 1
    algorithm = TPE(SPACE, OBJECTIVES, TPE.Settings(multivariate=multivariate), seed=7)
    contexts = iter([SuggestContext(SPACE, OBJECTIVES, sequence=k, history=tuple(trials[:k]))
                     for k in range(n, len(trials))])
    return timed(lambda: algorithm.suggest(next(contexts), 1), repeats)


def optuna_tpe(trials: list[TrialView], repeats: int) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    d = optuna.distributions
    distributions = {
        "lr": d.FloatDistribution(1e-5, 1.0, log=True),
        "x": d.FloatDistribution(-5.0, 5.0),
        "n_estimators": d.IntDistribution(10, 5000, log=True),
        "depth": d.IntDistribution(1, 16),
        "subsample": d.FloatDistribution(0.3, 1.0, step=0.05),
        "leaves": d.IntDistribution(2, 256, step=2),
        "booster": d.CategoricalDistribution(["gbtree", "dart", "linear"]),
    }
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(multivariate=True, seed=7))
    study.add_trials([
        optuna.trial.create_trial(params=dict(t.params), distributions=distributions, value=t.values[0])
        for t in trials
    ])

    def ask():
        trial = study.ask(distributions)  # suggests every parameter: one relative (joint) TPE sample
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # FAIL trials are ignored by TPE

    return timed(ask, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--optuna", action="store_true", help="also time optuna's TPESampler(multivariate=True)")
    args = parser.parse_args()

    header = ("| completed trials | tpe multivariate ms (median / min) | tpe univariate ms (median / min) "
              "| in a model process: multivariate / univariate ms (median / min) |")
    rule = "|---:|---:|---:|---:|"
    if args.optuna:
        header += " optuna TPESampler multivariate ms (median / min) |"
        rule += "---:|"
    print(header)
    print(rule)
    for n in (int(s) for s in args.sizes.split(",")):
        trials = history(n)
        longer = history(n + args.repeats + 1)
        cells = [ours(trials, args.repeats, True), ours(trials, args.repeats, False)]
        process = [ours_in_model_process(longer, args.repeats, mv) for mv in (True, False)]
        text = [f"{med:.1f} / {low:.1f}" for med, low in cells]
        text.append(" ; ".join(f"{med:.1f} / {low:.1f}" for med, low in process))
        if args.optuna:
            med, low = optuna_tpe(trials, max(3, args.repeats // 5))
            text.append(f"{med:.1f} / {low:.1f}")
        print(f"| {n:,} | " + " | ".join(text) + " |", flush=True)


if __name__ == "__main__":
    main()
