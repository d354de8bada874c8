#!/usr/bin/env python
"""Multi-objective: hypervolume of the Pareto front found after 50 and 100 trials, ours vs Optuna.

Each (problem, method, seed) run asks for up to the largest budget one trial at a time,
sequentially, and stores every trial's objective values; the hypervolume at a smaller budget
is that of the run's first trials. Reported: per problem and budget the mean hypervolume over
seeds with its standard error, for problems with a known front also the mean log10 of the gap
to the true front's hypervolume (what BO papers plot), each method's mean hypervolume rank over
problems (1 = best), and one-sided Mann-Whitney U tests of ours-gp and ours-tpe against each
Optuna sampler per problem.

    python benchmarks/multi_objective.py --methods ours-gp,ours-tpe,optuna-gp,optuna-tpe,optuna-nsga2 \\
        --seeds 10 --budgets 50,100 --jobs 1 --markdown results.md --store runs.jsonl

Problems, their reference points and true hypervolumes are in problems.py (``MO_PROBLEMS``).
Ours (tpe: MOTPE; gp: ParEGO) run through the pure Algorithm interface; Optuna's TPESampler
(multivariate, group), GPSampler and NSGAIISampler (defaults: population 50) through its
ask/tell API on an in-memory study. Optuna and xgboost are benchmark-only dependencies (the
`bench` extra). This is a measurement: it asserts nothing.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Imported first: it pins BLAS and torch to one thread per run before numpy loads.
import numpy as np  # noqa: E402
import runs  # noqa: E402
from problems import MO_PROBLEMS, MOProblem  # noqa: E402
from sample_efficiency import mann_whitney, optuna_params, ours_ask_tell, simulate, standard_error  # noqa: E402

from suggestion_service.domain.hypervolume import hypervolume  # noqa: E402

# Gaps below this count as this, so that log10 stays finite (the true hypervolumes are exact
# to about 1e-6).
GAP_FLOOR = 1e-6
OPTUNA_SAMPLERS = ("tpe", "gp", "nsga2")


@dataclass(frozen=True)
class Job:
    problem: str
    method: str
    seed: int
    trials: int


@dataclass
class Outcome:
    job: Job
    # Every trial's objective values, in the order told.
    values: list[list[float]]
    seconds: float
    error: str = ""


def run_ours(problem: MOProblem, algorithm: str, seed: int, trials: int) -> list:
    from tuning_types.study import Direction, Objective

    objectives = tuple(Objective(f"f{i + 1}", Direction.MINIMIZE) for i in range(len(problem.reference)))
    ask, tell = ours_ask_tell(problem.space, objectives, algorithm, seed)
    return simulate(ask, tell, problem, seed, trials, 1)


def run_optuna(problem: MOProblem, sampler_name: str, seed: int, trials: int) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }[sampler_name]()
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * len(problem.reference))

    def ask():
        trial = study.ask()
        return trial, optuna_params(trial, problem)

    return simulate(ask, study.tell, problem, seed, trials, 1)


RUNNERS = {"ours": run_ours, "optuna": run_optuna}


def run_job(job: Job) -> Outcome:
    system, _, variant = job.method.partition("-")
    began = time.perf_counter()
    try:
        values = RUNNERS[system](MO_PROBLEMS[job.problem], variant, job.seed, job.trials)
    except Exception as error:  # reported in the table, not fatal to the other runs
        return Outcome(job, [], time.perf_counter() - began, f"{type(error).__name__}: {error}")
    return Outcome(job, [list(map(float, v)) for v in values], time.perf_counter() - began)


# --- reporting -------------------------------------------------------------------------------


def metrics(outcomes: Sequence[Outcome], budgets: Sequence[int], references: dict) -> tuple[dict, dict, dict]:
    """Per seed by (problem, budget, method): hypervolume, log10 gap to the true front (known fronts
    only); and seconds per trial by (problem, method). ``references``: (reference point, true
    hypervolume or None) by problem."""
    volumes: dict = defaultdict(list)
    gaps: dict = defaultdict(list)
    seconds: dict = defaultdict(list)
    for outcome in outcomes:
        if outcome.error:
            continue
        reference, true_volume = references[outcome.job.problem]
        for budget in budgets:
            volume = hypervolume(np.array(outcome.values[:budget]), np.array(reference))
            key = outcome.job.problem, budget, outcome.job.method
            volumes[key].append(volume)
            if true_volume is not None:
                gaps[key].append(math.log10(max(true_volume - volume, GAP_FLOOR)))
        seconds[outcome.job.problem, outcome.job.method].append(outcome.seconds / outcome.job.trials)
    return volumes, gaps, seconds


def mean_ranks(volumes: dict, problem_names: Sequence[str], budget: int, methods: Sequence[str]) -> dict:
    """Mean over problems of each method's rank by mean hypervolume (1 = the largest); ties share."""
    ranks: dict = defaultdict(list)
    for problem in problem_names:
        scored = {m: float(np.mean(volumes[problem, budget, m])) for m in methods if volumes.get((problem, budget, m))}
        order = sorted(scored, key=scored.get, reverse=True)
        for method in scored:
            tied = [i + 1 for i, m in enumerate(order) if scored[m] == scored[method]]
            ranks[method].append(float(np.mean(tied)))
    return {m: float(np.mean(r)) for m, r in ranks.items()}


def _cell(values: Sequence[float] | None, digits: int) -> str:
    return f"{np.mean(values):.{digits}f} ± {standard_error(values):.{digits}f}" if values else "n/a"


def _p(p: float) -> str:
    return f"**{p:.3f}**" if p < 0.05 else f"{p:.3f}"


def render(outcomes: Sequence[Outcome], args: argparse.Namespace) -> str:
    volumes, gaps, seconds = metrics(outcomes, args.budget_list, args.references)
    methods, problem_names = args.method_list, args.problem_list
    ours = [m for m in methods if m.startswith("ours-")]
    theirs = [m for m in methods if m.startswith("optuna-")]
    pairs = [(a, b) for a in ours for b in theirs]
    lines = [
        "# Multi-objective: hypervolume of the Pareto front found (higher is better)",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- {args.seeds} seeds per (problem, method); sequential trials.",
        "- Reference points: " + "; ".join(f"{p} {args.references[p][0]}" for p in problem_names) + ".",
        "- Cells: mean ± standard error over seeds. Mann-Whitney: one-sided p-values that the first "
        "method's hypervolumes are higher / lower than the second's (bold below 0.05).",
        "",
    ]
    for budget in args.budget_list:
        lines += [f"## {budget} trials", "", "### Hypervolume", "",
                  "| problem | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        for problem in problem_names:
            lines.append(f"| {problem} | " + " | ".join(_cell(volumes.get((problem, budget, m)), 4)
                                                           for m in methods) + " |")
        ranks = mean_ranks(volumes, problem_names, budget, methods)
        lines += ["| mean rank | " + " | ".join(f"**{ranks[m]:.2f}**" if m in ranks else "n/a" for m in methods)
                  + " |", ""]
        known = [p for p in problem_names if args.references[p][1] is not None]
        if known:
            lines += ["### log10 hypervolume gap to the true front (lower is better)", "",
                      "| problem | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
            for problem in known:
                lines.append(f"| {problem} | " + " | ".join(_cell(gaps.get((problem, budget, m)), 2)
                                                               for m in methods) + " |")
            lines.append("")
        if pairs:
            lines += ["### Mann-Whitney U on hypervolume: p(ours higher) / p(ours lower)", "",
                      "| problem | " + " | ".join(f"{a} vs {b}" for a, b in pairs) + " |",
                      "|---|" + "---:|" * len(pairs)]
            tally = {pair: [0, 0] for pair in pairs}
            for problem in problem_names:
                cells = []
                for a, b in pairs:
                    mine, other = volumes.get((problem, budget, a)), volumes.get((problem, budget, b))
                    if not mine or not other:
                        cells.append("n/a")
                        continue
                    # mann_whitney tests "lower"; hypervolume is better higher, hence the negation.
                    higher, lower = mann_whitney([-v for v in mine], [-v for v in other])
                    tally[a, b][0] += higher < 0.05
                    tally[a, b][1] += lower < 0.05
                    cells.append(f"{_p(higher)} / {_p(lower)}")
                lines.append(f"| {problem} | " + " | ".join(cells) + " |")
            lines.append("")
            lines += [f"- {a} vs {b}: significantly better (p < 0.05) on {wins}, worse on {losses} of "
                      f"{len(problem_names)} problems." for (a, b), (wins, losses) in tally.items()]
            lines.append("")
    lines += ["## Seconds per trial (suggestion + evaluation)", "",
              "| problem | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for problem in problem_names:
        lines.append(f"| {problem} | " + " | ".join(
            f"{np.mean(seconds[problem, m]):.3f}" if seconds.get((problem, m)) else "n/a" for m in methods) + " |")
    lines.append("")
    lines += runs.failures(outcomes)
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="ours-gp,ours-tpe,optuna-gp,optuna-tpe,optuna-nsga2")
    parser.add_argument("--problems", default=",".join(MO_PROBLEMS), help=f"comma-separated: {', '.join(MO_PROBLEMS)}")
    parser.add_argument("--budgets", default="50,100")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--store", type=Path, help="JSON lines of finished runs: appended to, and runs "
                                                   "already there are reused (delete a method's lines to redo it)")
    parser.add_argument("--render-only", action="store_true", help="report the stored runs, run nothing")
    parser.add_argument("--reference", action="append", default=[], metavar="PROBLEM=R1,R2[,R3]",
                        help="measure PROBLEM against this reference point instead (its gap to the true "
                             "front is then not reported), e.g. zdt1_d06=11,11 as BoTorch's ZDT")
    args = parser.parse_args(argv)
    args.method_list = [m for m in args.methods.split(",") if m]
    args.problem_list = [p for p in args.problems.split(",") if p]
    args.budget_list = sorted(int(b) for b in args.budgets.split(","))
    unknown = [p for p in args.problem_list if p not in MO_PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {unknown}; known: {', '.join(MO_PROBLEMS)}")
    args.references = {name: (p.reference, p.true_hypervolume) for name, p in MO_PROBLEMS.items()}
    for override in args.reference:
        name, _, point = override.partition("=")
        if name not in MO_PROBLEMS or len(point.split(",")) != len(MO_PROBLEMS[name].reference):
            parser.error(f"--reference {override!r}: want PROBLEM=R1,R2[,...] with one value per objective")
        args.references[name] = (tuple(float(v) for v in point.split(",")), None)
    bad = [m for m in args.method_list
           if not (m.startswith("ours-") or m.partition("-")[0] == "optuna" and m.partition("-")[2] in OPTUNA_SAMPLERS)]
    if bad:
        parser.error(f"unknown method(s) {bad}: use ours-<algorithm> or optuna-{{{','.join(OPTUNA_SAMPLERS)}}}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [Job(p, m, seed, args.budget_list[-1]) for p in args.problem_list for m in args.method_list
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    outcomes = runs.run_jobs(
        jobs, run_job, processes=args.jobs, store=args.store, outcome_type=Outcome, render_only=args.render_only,
        describe=lambda o: f"hypervolume {hypervolume(np.array(o.values), np.array(MO_PROBLEMS[o.job.problem].reference)):.4f}")
    report = render(outcomes, args)
    runs.publish(report, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
