#!/usr/bin/env python
"""Constrained optimisation: best feasible value after 30, 60 and 100 trials, ours vs Optuna.

Each (problem, method, seed) run asks for up to the largest budget one trial at a time and
records every trial's objective values and whether it was feasible (every constraint value
<= 0); the scores at smaller budgets are read off the same run. Reported per problem and
budget: the mean over seeds of log10 regret of the best feasible value (with several
objectives: of the feasible front's hypervolume, the exact front's minus the found one's)
with its standard error, each method's mean rank over problems (1 = best), one-sided
Mann-Whitney U tests of ours-gp against optuna-gp and ours-tpe against optuna-tpe, and the
share of infeasible trials.

A run without a feasible trial by a budget scores as if its best were the worst feasible value
that any run of any method found on that problem (it is counted, not dropped); with several
objectives it simply has hypervolume 0.

    python benchmarks/constrained.py --methods ours-gp,ours-tpe,optuna-gp,optuna-tpe \\
        --seeds 10 --budgets 30,60,100 --jobs 1 --store runs.jsonl --markdown results.md

Problems and their optima are in problems.py (``CONSTRAINED``). Ours run through the pure
Algorithm interface; Optuna 5's GPSampler and TPESampler(multivariate=True, group=True) with
``constraints_func`` through its ask/tell API, the constraint values set as a user attribute
before each tell. Optuna is a benchmark-only dependency (the `bench` extra). This is a
measurement: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np  # noqa: E402
import runs  # noqa: E402
import sample_efficiency  # noqa: F401  (first: it caps the BLAS threads before numpy loads)
from problems import CONSTRAINED, ConstrainedProblem  # noqa: E402
from sample_efficiency import Job, mean_ranks, optuna_params, regret_table, standard_error


@dataclass
class Outcome:
    job: Job
    values: list[list[float]]  # per trial, in the order told
    feasible: list[bool]
    seconds: float
    error: str = ""


def run_ours(problem: ConstrainedProblem, algorithm: str, seed: int, trials: int) -> tuple[list, list]:
    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext, TrialView
    from suggestion_service.domain.trial import TrialState
    from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

    objectives = tuple(Objective(f"f{i}", Direction.MINIMIZE) for i in range(problem.objectives))
    spec = StudySpec(problem.space, objectives, AlgorithmSpec(algorithm, {}), seed=seed,
                     constraints=problem.constraints)
    model = make_algorithm(spec)
    history: list[TrialView] = []
    values, feasible = [], []
    for number in range(trials):
        context = SuggestContext(problem.space, objectives, sequence=number, history=tuple(history),
                                 constraints=problem.constraints)
        [suggestion] = model.suggest(context, 1)
        objective, constraint = problem.function(suggestion.params)
        history.append(TrialView(number, TrialState.COMPLETED, suggestion.params, objective, constraints=constraint,
                                 metadata=suggestion.metadata))
        values.append(list(objective))
        feasible.append(history[-1].feasible)
    return values, feasible


def run_optuna(problem: ConstrainedProblem, sampler_name: str, seed: int, trials: int) -> tuple[list, list]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def constraints_func(trial) -> Sequence[float]:
        return trial.user_attrs["constraints"]

    if sampler_name == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed, constraints_func=constraints_func)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             constraints_func=constraints_func)
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * problem.objectives)
    values, feasible = [], []
    for _ in range(trials):
        trial = study.ask()
        objective, constraint = problem.function(optuna_params(trial, problem))
        trial.set_user_attr("constraints", list(constraint))
        study.tell(trial, list(objective))
        values.append(list(objective))
        feasible.append(all(c <= 0 for c in constraint))
    return values, feasible


RUNNERS = {"ours": run_ours, "optuna": run_optuna}


def run_job(job: Job) -> Outcome:
    system, _, variant = job.method.partition("-")
    began = time.perf_counter()
    try:
        values, feasible = RUNNERS[system](CONSTRAINED[job.problem], variant, job.seed, job.trials)
    except Exception as error:  # reported in the table, not fatal to the other runs
        return Outcome(job, [], [], time.perf_counter() - began, f"{type(error).__name__}: {error}")
    return Outcome(job, values, feasible, time.perf_counter() - began)


# --- scoring ---------------------------------------------------------------------------------


def penalties(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Per single-objective problem: the worst feasible value any run found (a run's best until it
    finds a feasible trial)."""
    worst: dict[str, float] = {}
    for outcome in outcomes:
        for value, ok in zip(outcome.values, outcome.feasible):
            if ok and len(value) == 1:
                worst[outcome.job.problem] = max(worst.get(outcome.job.problem, -math.inf), value[0])
    return worst


def regret(outcome: Outcome, budget: int, penalty: dict[str, float]) -> float:
    """Regret of the feasible trials among the first ``budget``: best value minus the optimum, or
    the exact front's hypervolume minus theirs; at least the problem's floor."""
    from suggestion_service.domain.hypervolume import hypervolume

    problem = CONSTRAINED[outcome.job.problem]
    feasible = [v for v, ok in zip(outcome.values[:budget], outcome.feasible[:budget]) if ok]
    if problem.reference_point is not None:
        found = hypervolume(np.array(feasible).reshape(-1, problem.objectives), np.array(problem.reference_point))
        gap = problem.optimum - found
    else:
        best = min((v[0] for v in feasible), default=penalty.get(outcome.job.problem, math.nan))
        gap = best - problem.optimum
    return max(gap, problem.regret_floor)


def log_regrets(outcomes: Sequence[Outcome], budgets: Sequence[int]) -> dict:
    """log10 regret per seed by (problem, budget, method)."""
    penalty = penalties(outcomes)
    regrets: dict = defaultdict(list)
    for outcome in outcomes:
        if not outcome.error:
            for budget in budgets:
                regrets[outcome.job.problem, budget, outcome.job.method].append(
                    math.log10(regret(outcome, budget, penalty)))
    return regrets


def render(outcomes: Sequence[Outcome], args) -> str:
    regrets = log_regrets(outcomes, args.budget_list)
    means = {key: float(np.mean(v)) for key, v in regrets.items()}
    ranks = mean_ranks(means, args.budget_list)
    methods, problem_names = args.method_list, args.problem_list
    penalty = penalties(outcomes)
    good = [o for o in outcomes if not o.error]
    lines = [
        "# Constrained optimisation: mean log10 regret of the best feasible value (lower is better)",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        "- Seeds per (problem, method): " + ", ".join(
            f"{m} {min(sum(o.job.method == m and o.job.problem == p for o in good) for p in problem_names)}"
            for m in methods) + " (the lowest over problems); sequential trials. Multi-objective problems "
        "(tnk): regret is the exact feasible front's hypervolume minus the found feasible front's.",
        "- No feasible trial yet: the worst feasible value any run found on the problem ("
        + ", ".join(f"{p} {v:.4g}" for p, v in sorted(penalty.items())) + "); hypervolume 0 with several objectives.",
        "- Cells: mean ± standard error over seeds. Mann-Whitney: one-sided p-values that the first "
        "method's regrets are lower / higher than the second's (bold below 0.05).",
        "",
    ]
    for budget in args.budget_list:
        lines += regret_table(regrets, ranks, problem_names, methods, budget)

    lines += [f"## Infeasible trials (share of the first {args.budget_list[-1]}, mean over seeds) and "
              "runs with a feasible trial by each budget", "",
              "| problem | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for problem in problem_names:
        cells = []
        for m in methods:
            done = [o for o in good if o.job.problem == problem and o.job.method == m]
            if not done:
                cells.append("n/a")
                continue
            share = np.mean([1 - np.mean(o.feasible) for o in done])
            found = "/".join(str(sum(any(o.feasible[:b]) for o in done)) for b in args.budget_list)
            cells.append(f"{100 * share:.0f}% ({found} of {len(done)})")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    lines.append("")

    if any(CONSTRAINED[p].reference_point is not None for p in problem_names):
        lines += ["## Feasible hypervolume (higher is better), mean ± standard error", "",
                  "| problem | budget | exact front | " + " | ".join(methods) + " |",
                  "|---|---:|---:|" + "---:|" * len(methods)]
        for problem in problem_names:
            definition = CONSTRAINED[problem]
            if definition.reference_point is None:
                continue
            for budget in args.budget_list:
                cells = []
                for m in methods:
                    done = [o for o in good if o.job.problem == problem and o.job.method == m]
                    volumes = [definition.optimum - regret(o, budget, penalty) for o in done]
                    cells.append(f"{np.mean(volumes):.4f} ± {standard_error(volumes):.4f}" if done else "n/a")
                lines.append(f"| {problem} (ref {definition.reference_point}) | {budget} | "
                             f"{definition.optimum:.4f} | " + " | ".join(cells) + " |")
        lines.append("")

    seconds = defaultdict(list)
    for o in good:
        seconds[o.job.method].append(o.seconds / o.job.trials)
    lines += ["## Seconds per trial (suggestion + evaluation)", "",
              "| " + " | ".join(methods) + " |", "|" + "---:|" * len(methods),
              "| " + " | ".join(f"{np.mean(seconds[m]):.3f}" if seconds[m] else "n/a" for m in methods) + " |", ""]
    lines += runs.failures(outcomes)
    return "\n".join(lines)


# --- driver ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="ours-gp,ours-tpe,optuna-gp,optuna-tpe")
    parser.add_argument("--problems", default=",".join(CONSTRAINED), help="comma-separated problem names")
    parser.add_argument("--budgets", default="30,60,100")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--store", type=Path, help="JSON lines of finished runs: appended to, and runs "
                                                   "already there are reused (delete a method's lines to redo it)")
    parser.add_argument("--render-only", action="store_true", help="only render what --store holds")
    args = parser.parse_args(argv)
    args.method_list = [m for m in args.methods.split(",") if m]
    args.problem_list = [p for p in args.problems.split(",") if p]
    args.budget_list = sorted(int(b) for b in args.budgets.split(","))
    if unknown := [p for p in args.problem_list if p not in CONSTRAINED]:
        parser.error(f"unknown problem(s) {unknown}; known: {', '.join(CONSTRAINED)}")
    if bad := [m for m in args.method_list if m.partition("-")[0] not in RUNNERS]:
        parser.error(f"unknown method(s) {bad}: use ours-<algorithm>, optuna-gp or optuna-tpe")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [Job(p, m, seed, args.budget_list[-1])
            for p in args.problem_list for m in args.method_list for seed in range(args.seeds)]
    outcomes = runs.run_jobs(jobs, run_job, processes=args.jobs, store=args.store, outcome_type=Outcome,
                             describe=lambda o: f"{sum(o.feasible)} feasible", render_only=args.render_only)
    report = render(outcomes, args)
    runs.publish(report, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
