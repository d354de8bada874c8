#!/usr/bin/env python
"""XGBoost on the wine data: ASHA / Hyperband with 4 parallel workers vs 50 full random trials.

Random search trains 50 configurations for the full 300 boosting rounds and records the
best validation F1 and the rounds spent (15,000). Then, through a real suggestion service
(in-process, SQLite), 4 worker threads run a pruned study: each trains a configuration
incrementally, reports validation F1 at every rung (rounds 300/27, 300/9, 300/3) and stops
when told. We record how many boosting rounds the pruned study needed to reach random
search's best F1, and its best F1 within a third of random's rounds. The studies
``optuna-tpe+sh`` and ``optuna-tpe+hb`` run Optuna 5's TPESampler (defaults, the seed) with its
SuccessiveHalvingPruner or HyperbandPruner (min resource the lowest rung, eta 3) through
ask/tell in the same 4 worker threads, as the anchor.

    python benchmarks/multi_fidelity.py --seeds 3 --studies random+asha,bohb+hyperband,optuna-tpe+hb --markdown out.md

Needs xgboost(-cpu) and scikit-learn (the `bench` extra). A measurement: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trial_worker.examples.wine import Split, split  # noqa: E402

MAX_ROUNDS = 300
ETA = 3.0
WORKERS = 4
RANDOM_TRIALS = 50


def space():
    """The seed's XGBoost space without n_estimators: boosting rounds are the fidelity here."""
    from problems import XGBOOST_SPACE

    return [p for p in XGBOOST_SPACE if p.name != "n_estimators"]


class Trainer:
    """Boosts one configuration in increments, scoring validation F1 after each."""

    def __init__(self, data: Split, params: dict, seed: int):
        import xgboost as xgb

        self.xgb, self.data = xgb, data
        self.params = {**params, "objective": "binary:logistic", "eval_metric": "logloss", "seed": seed,
                       "nthread": 1, "tree_method": "hist"}
        self.train = xgb.DMatrix(data.x_train, label=data.y_train)
        self.val = xgb.DMatrix(data.x_val)
        self.booster, self.rounds = None, 0

    def boost_to(self, rounds: int) -> float:
        from sklearn.metrics import f1_score

        more = rounds - self.rounds
        self.booster = self.xgb.train(self.params, self.train, num_boost_round=more, xgb_model=self.booster)
        self.rounds = rounds
        return float(f1_score(self.data.y_val, self.booster.predict(self.val) > 0.5))


def random_search(data: Split, seed: int) -> tuple[float, int]:
    """Best F1 of 50 full random trials, and the rounds spent."""
    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext
    from tuning_types.space import SearchSpace
    from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

    objectives = (Objective("val_f1", Direction.MAXIMIZE),)
    spec = StudySpec(SearchSpace(tuple(space())), objectives, AlgorithmSpec("random"), seed=seed)
    proposals = make_algorithm(spec).suggest(SuggestContext(spec.space, objectives, sequence=0), RANDOM_TRIALS)
    scores = [Trainer(data, s.params, seed).boost_to(MAX_ROUNDS) for s in proposals]
    return max(scores), RANDOM_TRIALS * MAX_ROUNDS


@dataclass
class Ledger:
    """Rounds spent and the best full-budget F1, as workers finish their increments."""

    target: float
    rounds: int = 0
    best: float = 0.0
    rounds_to_target: int | None = None
    trials: int = 0
    pruned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spend(self, rounds: int, full_budget_f1: float | None = None, pruned: bool = False) -> None:
        with self.lock:
            self.rounds += rounds
            self.pruned += pruned
            if full_budget_f1 is not None:
                self.best = max(self.best, full_budget_f1)
                if self.rounds_to_target is None and full_budget_f1 >= self.target:
                    self.rounds_to_target = self.rounds


def pruned_search(data: Split, seed: int, pruner: str, algorithm: str, budget_rounds: int,
                  target: float, rungs_below_max: int) -> Ledger:
    """4 workers until ``budget_rounds`` boosting rounds are spent: against a real service, or
    (algorithm ``optuna-tpe``) against an in-memory Optuna study driven the same way."""
    ledger = Ledger(target)
    # Reports at every rung: 11, 33, 100, 300 with 3 rungs below the maximum.
    rungs = [round(MAX_ROUNDS / ETA**k) for k in range(rungs_below_max, -1, -1)]
    if algorithm == "optuna-tpe":
        run_workers(ledger, rungs, data, seed, budget_rounds, OptunaStudy(seed, pruner, rungs[0]))
        return ledger

    from suggestion_service.server import serve
    from trial_worker import Fidelity, SuggestionClient
    from tuning_common.grpc_server import ServerOptions

    with tempfile.TemporaryDirectory() as tmp:
        running = serve(f"sqlite:///{tmp}/s.db", ServerOptions(port=0))
        with SuggestionClient(running.address) as client:
            client.create_study(
                "xgb", space(), objectives={"val_f1": "maximize"}, algorithm=algorithm, seed=seed,
                fidelity=Fidelity("boosting_rounds", MAX_ROUNDS / ETA**rungs_below_max, MAX_ROUNDS, ETA), pruner=pruner,
            )
            run_workers(ledger, rungs, data, seed, budget_rounds, OurStudy(running.address))
        running.stop()
    return ledger


class OurStudy:
    """Each worker thread gets its own client of the service: ask, report (True: stop), prune, tell, close."""

    def __init__(self, address: str):
        self.address = address

    def worker(self):
        from trial_worker import SuggestionClient

        client = SuggestionClient(self.address)
        study = client.get_study("xgb")

        def ask():
            trial = study.ask()
            return trial, trial.params

        return ask, lambda trial, step, f1: trial.report(step, f1), lambda trial: trial.prune(), study.tell, client.close


class OptunaStudy:
    """Optuna 5's TPESampler (its defaults, the run's seed) with its SuccessiveHalvingPruner
    (``sh``) or HyperbandPruner (``hb``) over the same rungs, through ask/tell."""

    def __init__(self, seed: int, pruner: str, min_resource: int):
        import optuna
        from optuna.distributions import FloatDistribution, IntDistribution

        from tuning_types.space import FloatDomain

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruners = {"sh": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=int(ETA)),
                   "hb": lambda: optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=MAX_ROUNDS,
                                                                reduction_factor=int(ETA))}
        if pruner not in pruners:
            raise ValueError(f"optuna-tpe takes the pruner sh or hb, got {pruner!r}")
        self.optuna = optuna
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                         pruner=pruners[pruner]())
        self.distributions = {
            p.name: (FloatDistribution(p.domain.low, p.domain.high, log=p.domain.log)
                     if isinstance(p.domain, FloatDomain) else
                     IntDistribution(p.domain.low, p.domain.high, log=p.domain.log))
            for p in space()
        }

    def worker(self):
        def ask():
            trial = self.study.ask(self.distributions)
            return trial, trial.params

        def report(trial, step, f1):
            trial.report(f1, step)
            return trial.should_prune()

        def prune(trial):
            self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)

        return ask, report, prune, lambda trial, f1: self.study.tell(trial, f1), lambda: None


def run_workers(ledger: Ledger, rungs: Sequence[int], data: Split, seed: int, budget_rounds: int, backend) -> None:
    """WORKERS threads: each trains a trial rung by rung, reporting F1, until told to stop."""

    def worker() -> None:
        ask, report, prune, tell, close = backend.worker()
        try:
            while ledger.rounds < budget_rounds:
                trial, params = ask()
                trainer = Trainer(data, params, seed)
                for rung in rungs:
                    spent = rung - trainer.rounds
                    f1 = trainer.boost_to(rung)
                    if rung == MAX_ROUNDS:
                        ledger.spend(spent, full_budget_f1=f1)
                        tell(trial, f1)
                    elif report(trial, rung, f1):
                        ledger.spend(spent, pruned=True)
                        prune(trial)
                        break
                    else:
                        ledger.spend(spent)
                with ledger.lock:
                    ledger.trials += 1
        finally:
            close()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def rank_correlation(data: Split, configs: int, seed: int) -> list[tuple[int, float]]:
    """Spearman correlation between F1 after each rung's rounds and F1 after the full budget,
    over random configurations: how well a rung predicts the final ranking that early
    stopping bets on."""
    from scipy.stats import spearmanr

    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext
    from tuning_types.space import SearchSpace
    from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

    objectives = (Objective("val_f1", Direction.MAXIMIZE),)
    spec = StudySpec(SearchSpace(tuple(space())), objectives, AlgorithmSpec("random"), seed=seed)
    proposals = make_algorithm(spec).suggest(SuggestContext(spec.space, objectives, sequence=0), configs)
    rungs = [round(MAX_ROUNDS / ETA**k) for k in (3, 2, 1)]
    scores = []
    for proposal in proposals:
        trainer = Trainer(data, proposal.params, seed)
        scores.append([trainer.boost_to(r) for r in (*rungs, MAX_ROUNDS)])
    final = [row[-1] for row in scores]
    return [(rung, float(spearmanr([row[i] for row in scores], final).statistic)) for i, rung in enumerate(rungs)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--studies", default="random+asha,tpe+asha,random+hyperband",
                        help="comma-separated algorithm+pruner pairs; optuna-tpe+sh and optuna-tpe+hb "
                             "run Optuna's TPE with its SuccessiveHalving or Hyperband pruner")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--rungs", type=int, default=3,
                        help="rungs below the full budget: the lowest is 300 / 3^rungs rounds")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--rank-correlation", type=int, default=0, metavar="N",
                        help="instead: how F1 at each rung ranks N random configurations vs F1 at full budget")
    args = parser.parse_args(argv)
    data = split(args.samples)
    if args.rank_correlation:
        for rung, rho in rank_correlation(data, args.rank_correlation, seed=0):
            print(f"| {rung} rounds | {rho:+.2f} |")
        return 0
    rows = []
    for seed in range(args.seeds):
        target, random_rounds = random_search(data, seed)
        print(f"seed {seed}: random search best F1 {target:.4f} in {random_rounds} rounds", file=sys.stderr)
        for study in args.studies.split(","):
            algorithm, pruner = study.split("+")
            ledger = pruned_search(data, seed, pruner, algorithm, random_rounds // 3, target, args.rungs)
            rows.append((seed, study, target, ledger))
            print(f"  {study}: best F1 {ledger.best:.4f} in {ledger.rounds} rounds ({ledger.trials} trials, "
                  f"{ledger.pruned} pruned); reached the target after {ledger.rounds_to_target} rounds",
                  file=sys.stderr, flush=True)
    lines = [
        "# Multi-fidelity: XGBoost on the wine data, 4 workers, vs 50 full random trials",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{shlex.join(['python', *sys.argv])}`",
        f"- {args.samples} samples; 6 hyperparameters; fidelity: boosting rounds, rungs "
        f"{', '.join(str(round(MAX_ROUNDS / ETA**k)) for k in range(args.rungs, 0, -1))}, full {MAX_ROUNDS}"
        f" (eta {ETA:g}); each pruned study may spend a third of random search's {RANDOM_TRIALS * MAX_ROUNDS} rounds.",
        "",
        "| seed | study | random best F1 (15,000 rounds) | pruned best F1 (<= 5,000 rounds) | rounds to reach random's best"
        " | trials (pruned) |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for seed, study, target, ledger in rows:
        reached = f"{ledger.rounds_to_target:,}" if ledger.rounds_to_target else "not reached"
        lines.append(f"| {seed} | {study} | {target:.4f} | {ledger.best:.4f} | {reached} "
                     f"| {ledger.trials} ({ledger.pruned}) |")
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
