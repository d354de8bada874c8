#!/usr/bin/env python
"""Sample efficiency: simple regret after 30, 60 and 100 trials, ours vs Optuna (and skopt).

Each (problem, method, seed) run asks for up to the largest budget one trial at a time,
sequentially, and records the best value so far; the regret at a smaller budget is read
off the same run. Reported: the mean over seeds of log10(simple regret) per problem and
budget, and each method's mean rank over problems (1 = best).

    python benchmarks/sample_efficiency.py --methods ours-gp,ours-tpe,ours-random,optuna-gp,optuna-tpe \\
        --seeds 5 --budgets 30,60,100 --jobs 2 --markdown results.md --store runs.jsonl

Ours run through the pure Algorithm interface (no server: this measures the algorithms);
Optuna's samplers through its ask/tell API on an in-memory study. Optuna and skopt are
benchmark-only dependencies (the `bench` extra). This is a measurement: it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import platform
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from problems import PROBLEMS, Problem  # noqa: E402

REGRET_FLOOR = 1e-12


@dataclass(frozen=True)
class Job:
    problem: str
    method: str
    seed: int
    trials: int


@dataclass
class Outcome:
    job: Job
    best_so_far: list[float]
    seconds: float
    error: str = ""


# --- methods ---------------------------------------------------------------------------------


def run_ours(problem: Problem, algorithm: str, seed: int, trials: int) -> list[float]:
    """Sequential ask/tell through the pure algorithm interface."""
    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext, TrialView
    from suggestion_service.domain.study import AlgorithmSpec, Direction, Objective, StudySpec
    from suggestion_service.domain.trial import TrialState

    objectives = (Objective("value", Direction.MINIMIZE),)
    spec = StudySpec(problem.space, objectives, AlgorithmSpec(algorithm, {}), seed=seed)
    model = make_algorithm(spec)
    history: list[TrialView] = []
    values = []
    for number in range(trials):
        context = SuggestContext(problem.space, objectives, sequence=number, history=tuple(history))
        [suggestion] = model.suggest(context, 1)
        value = problem.function(suggestion.params)
        history.append(TrialView(number, TrialState.COMPLETED, suggestion.params, (value,)))
        values.append(value)
    return values


def _optuna_params(trial, problem: Problem) -> dict:
    """Define-by-run translation of our space (conditionals included)."""
    from suggestion_service.domain.space import CategoricalDomain, FixedDomain, FloatDomain

    params: dict = {}
    for parameter in problem.space:
        if not problem.space.active(parameter, params):
            continue
        d, name = parameter.domain, parameter.name
        if isinstance(d, FloatDomain):
            params[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
        elif isinstance(d, CategoricalDomain):
            params[name] = trial.suggest_categorical(name, list(d.choices))
        elif isinstance(d, FixedDomain):
            params[name] = d.value
        else:
            params[name] = trial.suggest_int(name, d.low, d.high, step=d.step or 1, log=d.log)
    return params


def run_optuna(problem: Problem, sampler_name: str, seed: int, trials: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if sampler_name == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    values = []
    for _ in range(trials):
        trial = study.ask()
        value = problem.function(_optuna_params(trial, problem))
        study.tell(trial, value)
        values.append(value)
    return values


def run_skopt(problem: Problem, _: str, seed: int, trials: int) -> list[float]:
    """scikit-optimize's GP (gp_minimize); it has no conditional parameters."""
    import skopt

    from suggestion_service.domain.space import CategoricalDomain, FixedDomain, FloatDomain

    if any(p.condition is not None for p in problem.space):
        raise NotImplementedError("skopt has no conditional parameters")
    dims, names = [], []
    for p in problem.space:
        d = p.domain
        if isinstance(d, FixedDomain):
            continue
        names.append(p.name)
        if isinstance(d, FloatDomain):
            dims.append(skopt.space.Real(d.low, d.high, prior="log-uniform" if d.log else "uniform"))
        elif isinstance(d, CategoricalDomain):
            dims.append(skopt.space.Categorical(list(d.choices)))
        else:
            dims.append(skopt.space.Integer(d.low, d.high, prior="log-uniform" if d.log else "uniform"))
    values = []

    def objective(x):
        params = {n: (int(v) if isinstance(v, np.integer) else v) for n, v in zip(names, x)}
        values.append(problem.function(params))
        return values[-1]

    skopt.gp_minimize(objective, dims, n_calls=trials, random_state=seed, n_initial_points=10)
    return values


RUNNERS: dict[str, Callable[[Problem, str, int, int], list[float]]] = {
    "ours": run_ours, "optuna": run_optuna, "skopt": run_skopt,
}


def run_job(job: Job) -> Outcome:
    system, _, variant = job.method.partition("-")
    began = time.perf_counter()
    try:
        values = RUNNERS[system](PROBLEMS[job.problem], variant, job.seed, job.trials)
    except Exception as error:  # reported in the table, not fatal to the other runs
        return Outcome(job, [], time.perf_counter() - began, f"{type(error).__name__}: {error}")
    return Outcome(job, list(np.minimum.accumulate(values)), time.perf_counter() - began)


# --- reporting -------------------------------------------------------------------------------


def summarise(outcomes: Sequence[Outcome], budgets: Sequence[int]) -> tuple[dict, dict, dict]:
    """Mean log10 regret by (problem, budget, method), mean rank by (budget, method), seconds per trial."""
    regrets: dict = defaultdict(list)
    seconds: dict = defaultdict(list)
    for outcome in outcomes:
        if outcome.error:
            continue
        optimum = PROBLEMS[outcome.job.problem].optimum
        for budget in budgets:
            regret = max(outcome.best_so_far[budget - 1] - optimum, REGRET_FLOOR)
            regrets[outcome.job.problem, budget, outcome.job.method].append(math.log10(regret))
        seconds[outcome.job.method].append(outcome.seconds / outcome.job.trials)
    means = {key: float(np.mean(v)) for key, v in regrets.items()}
    ranks: dict = defaultdict(list)
    for problem in {k[0] for k in means}:
        for budget in budgets:
            scored = {m: v for (p, b, m), v in means.items() if p == problem and b == budget}
            order = sorted(scored, key=scored.get)
            for method in scored:
                # Ties share the average rank.
                tied = [i + 1 for i, m in enumerate(order) if scored[m] == scored[method]]
                ranks[budget, method].append(float(np.mean(tied)))
    return means, {k: float(np.mean(v)) for k, v in ranks.items()}, {k: float(np.mean(v)) for k, v in seconds.items()}


def render(outcomes, args) -> str:
    means, ranks, seconds = summarise(outcomes, args.budget_list)
    methods, problems = args.method_list, args.problem_list
    lines = [
        "# Sample efficiency: mean log10 simple regret (lower is better)",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- {args.seeds} seeds per (problem, method); sequential trials; regret floor {REGRET_FLOOR:g}.",
        "",
    ]
    for budget in args.budget_list:
        lines += [f"## {budget} trials", "", "| problem | " + " | ".join(methods) + " |",
                  "|---|" + "---:|" * len(methods)]
        for problem in problems:
            cells = [f"{means[problem, budget, m]:.2f}" if (problem, budget, m) in means else "n/a" for m in methods]
            lines.append(f"| {problem} | " + " | ".join(cells) + " |")
        rank_cells = [f"**{ranks[budget, m]:.2f}**" if (budget, m) in ranks else "n/a" for m in methods]
        lines += ["| mean rank | " + " | ".join(rank_cells) + " |", ""]
    lines += ["## Seconds per trial (suggestion + evaluation, with --jobs runs in parallel)", "",
              "| " + " | ".join(methods) + " |", "|" + "---:|" * len(methods),
              "| " + " | ".join(f"{seconds.get(m, float('nan')):.3f}" for m in methods) + " |", ""]
    errors = sorted({f"{o.job.method} on {o.job.problem}: {o.error}" for o in outcomes if o.error})
    if errors:
        lines += ["Runs that failed (left out):", "", *[f"- {e}" for e in errors], ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="ours-gp,ours-tpe,ours-random,ours-quasi_random,optuna-gp,optuna-tpe")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--budgets", default="30,60,100")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--store", type=Path, help="JSON lines of finished runs: appended to, and runs "
                                                   "already there are reused (delete a method's lines to redo it)")
    args = parser.parse_args(argv)
    args.method_list = [m for m in args.methods.split(",") if m]
    args.problem_list = [p for p in args.problems.split(",") if p]
    args.budget_list = sorted(int(b) for b in args.budgets.split(","))
    unknown = [p for p in args.problem_list if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {unknown}; known: {', '.join(PROBLEMS)}")
    bad = [m for m in args.method_list if m.partition("-")[0] not in RUNNERS]
    if bad:
        parser.error(f"unknown method(s) {bad}: use ours-<algorithm>, optuna-gp, optuna-tpe or skopt-gp")
    return args


def load_store(path: Path | None) -> dict[Job, Outcome]:
    if path is None or not path.exists():
        return {}
    stored = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        job = Job(**record["job"])
        stored[job] = Outcome(job, record["best_so_far"], record["seconds"], record["error"])
    return stored


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [Job(p, m, seed, args.budget_list[-1])
            for p in args.problem_list for m in args.method_list for seed in range(args.seeds)]
    stored = load_store(args.store)
    outcomes = [stored[job] for job in jobs if job in stored]
    todo = [job for job in jobs if job not in stored]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for i, outcome in enumerate(pool.imap_unordered(run_job, todo), 1):
            outcomes.append(outcome)
            if args.store:
                with args.store.open("a") as store:
                    store.write(json.dumps({"job": dataclasses.asdict(outcome.job), "best_so_far": outcome.best_so_far,
                                            "seconds": outcome.seconds, "error": outcome.error}) + "\n")
            status = outcome.error or f"best {outcome.best_so_far[-1]:.4g}"
            print(f"[{i}/{len(todo)}] {outcome.job.problem} {outcome.job.method} seed {outcome.job.seed}: "
                  f"{status} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
    report = render(outcomes, args)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
