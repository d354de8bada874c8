#!/usr/bin/env python
"""Transfer learning: trials to reach a target regret with and without prior studies.

Task families of shifted and scaled synthetic functions (each seed draws its own tasks):

* ``branin``: Branin on its usual box, the input shifted by up to 5% of the range per
  dimension (clipped), the output scaled by [0.5, 2] and offset;
* ``hartmann6``: Hartmann6 on [0, 1]^6, shifted by up to 0.05 per dimension, scaled the same;
* ``lcbench``: real related tasks, the validation error (``1 - val_accuracy / 100``) after 52
  epochs of LCBench's funnel MLPs (YAHPO Gym surrogate, read as ``lcbench_async.py`` reads it:
  a process in the yahpo venv) on the first ``--lcbench-tasks`` (6) of ``lcbench_async.TASKS``,
  one family per OpenML task (``lcbench-<id>``), the same 7-dimensional space for all. The
  related prior of a target is a study on the *next* task of that list (the last one's is the
  first): a fixed pairing, not a selection.

For each seed: a *prior study* runs our GP for ``--prior-trials`` trials on a related task
(the target's shift plus up to +-0.05 more, another scale and offset), then the *target study*
runs ``--trials`` trials with each kind of prior:

* ``none``: no prior (what every study did before);
* ``related``: the prior study above;
* ``negated``: the same prior trials with the objective's direction flipped (the prior's best
  configurations are the target's worst: a deliberately misleading prior);
* ``other``: a prior study on another function (Levy, or Styblinski-Tang for Branin's box; for
  LCBench, Levy on the space mapped to [0, 1]^7, log scales as logs) run the same way:
  unrelated, neither helpful nor adversarial.

and, on request (``--priors``), several priors at once:

* ``mixed``: the three above together (related, negated and other): can the model tell the
  helpful prior from the misleading and the unrelated one?
* ``others`` (LCBench only): a study on every other chosen task (``--lcbench-tasks`` - 1 priors,
  each our GP's, as the related one): the tenth study of the same model, with all earlier ones.

The synthetic families' optima are known. An LCBench task's reference is the lower of the best
error of 5000 random configurations (log-uniform on log scales, seed 0) and the best any run of
the benchmark found; its target is the error of the best 1% of that random sample (so random
search needs about 100 trials to reach it), and its final regret is reported in error
percentage points rather than log10 (a run can find the reference itself: regret 0).

Reported per family, method and prior: the mean number of trials to reach the target regret
(a run that never reaches it counts as ``trials + 1``; how many reached it is shown) and the
mean log10 final regret, each with its standard error over seeds. Ours run through the pure
Algorithm interface (``SuggestContext.priors`` carries the prior trials, as the service fills
it); Optuna's TPE (``--optuna``, which has no transfer) is the no-prior anchor. A measurement:
it asserts nothing.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/transfer.py --seeds 6 --jobs 2 --markdown /tmp/transfer.md
    PYTHONPATH=$PWD .venv/bin/python benchmarks/transfer.py --families lcbench --seeds 5 --trials 30 \
        --yahpo-python /work/main/.venv-yahpo/bin/python --priors none,related,mixed,others
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
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lcbench_async  # noqa: E402
import problems  # noqa: E402
from runs import standard_error  # noqa: E402
from sample_efficiency import optuna_params  # noqa: E402

PRIORS = ("none", "related", "negated", "other")
# Kinds with several prior studies (see the module docstring).
SEVERAL = ("mixed", "others")


@dataclass(frozen=True)
class Family:
    name: str
    dim: int
    low: float
    high: float
    function: Callable[[np.ndarray], float]  # on the family's box
    optimum: float  # of the unshifted, unscaled function
    other: Callable[[np.ndarray], float]  # the unrelated function, on the same box
    target_regret: float  # in the unscaled function's units


def _branin(x: np.ndarray) -> float:
    return problems.branin({"x0": x[0], "x1": x[1]})


def _hartmann6(x: np.ndarray) -> float:
    return problems._hartmann(x, problems._H6_A, problems._H6_P)


def _levy01(x: np.ndarray) -> float:
    return problems.levy(-10 + 20 * x)


def _styblinski_branin(x: np.ndarray) -> float:
    return problems.styblinski_tang(np.array([x[0] / 3.0, x[1] / 3.0 - 2.5]))


FAMILIES = {
    # Branin's box is x0 in [-5, 10], x1 in [0, 15]: one box [-5, 15]^2 would change the
    # function, so x1 is shifted into the same [-5, 10] range and back.
    "branin": Family("branin", 2, -5.0, 10.0, lambda x: _branin(np.array([x[0], x[1] + 5.0])), 0.397887,
                     _styblinski_branin, 0.1),
    "hartmann6": Family("hartmann6", 6, 0.0, 1.0, _hartmann6, -3.32237, _levy01, 0.5),
}


@dataclass(frozen=True)
class Task:
    """``scale * f(clip(x - shift)) + offset``: a member of a family."""

    family: str
    shift: tuple[float, ...]
    scale: float
    offset: float
    unrelated: bool = False

    def __call__(self, params) -> float:
        fam = FAMILIES[self.family]
        x = np.array([params[f"x{i}"] for i in range(fam.dim)], dtype=float)
        x = np.clip(x - np.array(self.shift), fam.low, fam.high)
        return self.scale * (fam.other if self.unrelated else fam.function)(x) + self.offset


def tasks(family: str, seed: int) -> tuple[Task, Task, Task]:
    """The target, the related prior and the unrelated prior of a seed."""
    fam = FAMILIES[family]
    rng = np.random.default_rng([seed, 23])
    width = fam.high - fam.low
    target_shift = rng.uniform(-0.05, 0.05, fam.dim) * width
    prior_shift = target_shift + rng.uniform(-0.05, 0.05, fam.dim) * width
    target = Task(family, tuple(target_shift), 1.0, 0.0)
    related = Task(family, tuple(prior_shift), float(rng.uniform(0.5, 2.0)), float(rng.normal(0, 3)))
    other = Task(family, tuple(prior_shift), 1.0, 0.0, unrelated=True)
    return target, related, other


def space(family: str):
    from tuning_types.space import FloatDomain, Parameter, SearchSpace

    if family.startswith("lcbench-"):
        return SearchSpace(tuple(lcbench_async.our_space()))
    fam = FAMILIES[family]
    return SearchSpace(tuple(Parameter(f"x{i}", FloatDomain(fam.low, fam.high)) for i in range(fam.dim)))


# --- LCBench: real related tasks ---------------------------------------------------------------

RANDOM_SAMPLE, TARGET_QUANTILE = 5000, 0.01


def lcbench_error(task: str, params) -> float:
    # Our algorithms may hand numpy scalars; the surrogate's protocol is JSON.
    config = {k: int(v) if isinstance(v, (int, np.integer)) else float(v) for k, v in params.items()}
    sur = lcbench_async.surrogate(lcbench_async.SETTINGS["yahpo_python"], lcbench_async.SETTINGS["yahpo_data"])
    return sur.query(task, [config], [lcbench_async.EPOCHS])[0][0][1]


@dataclass(frozen=True)
class LCBenchTask:
    """An LCBench task's 52-epoch validation error, or (``unrelated``) Levy on the space mapped to
    [0, 1]^7."""

    task: str
    unrelated: bool = False

    def __call__(self, params) -> float:
        if not self.unrelated:
            return lcbench_error(self.task, params)
        unit = [(math.log(params[n] / lo) / math.log(hi / lo)) if log else (params[n] - lo) / (hi - lo)
                for n, _, lo, hi, log in lcbench_async.SPACE]
        return _levy01(np.array(unit))


def lcbench_pairs(count: int) -> dict[str, str]:
    """Target task -> the task of its related prior study: the next one of the first ``count``."""
    chosen = lcbench_async.TASKS[:count]
    return {task: chosen[(i + 1) % count] for i, task in enumerate(chosen)}


def lcbench_reference(task: str) -> tuple[float, float]:
    """The best error and the target error (the best 1%'s) of the random sample."""
    sur = lcbench_async.surrogate(lcbench_async.SETTINGS["yahpo_python"], lcbench_async.SETTINGS["yahpo_data"])
    errors = [c[0][1] for c in sur.query(task, lcbench_async.random_configs(0, RANDOM_SAMPLE), [lcbench_async.EPOCHS])]
    return min(errors), float(np.quantile(errors, TARGET_QUANTILE))


def lcbench_relatedness(pairs: dict[str, str], count: int = 1000) -> str:
    """Kendall's tau between each pair's 52-epoch errors over ``count`` random configurations
    (seed 0): how related the tasks are where the space is sampled evenly."""
    from scipy.stats import kendalltau

    sur = lcbench_async.surrogate(lcbench_async.SETTINGS["yahpo_python"], lcbench_async.SETTINGS["yahpo_data"])
    configs = lcbench_async.random_configs(0, count)
    errors = {task: [c[0][1] for c in sur.query(task, configs, [lcbench_async.EPOCHS])] for task in pairs}
    return ", ".join(f"{target} <- {prior} (tau {kendalltau(errors[target], errors[prior]).statistic:+.2f})"
                     for target, prior in pairs.items())


def run_ours(family: str, algorithm: str, seed: int, trials: int, function, priors=()) -> list:
    """A sequential study through the pure algorithm interface; its trial views."""
    from suggestion_service.algorithms import make_algorithm
    from suggestion_service.algorithms.base import SuggestContext, TrialView
    from suggestion_service.domain.trial import TrialState
    from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

    objectives = (Objective("value", Direction.MINIMIZE),)
    study_space = space(family)
    model = make_algorithm(StudySpec(study_space, objectives, AlgorithmSpec(algorithm), seed=seed))
    history: list = []
    for i in range(trials):
        context = SuggestContext(study_space, objectives, i, history=tuple(history), priors=priors)
        [s] = model.suggest(context, 1)
        history.append(TrialView(i, TrialState.COMPLETED, s.params, (function(s.params),), metadata=s.metadata))
    return history


def run_optuna(family: str, seed: int, trials: int, function) -> list[float]:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    problem = problems.Problem(family, space(family), function, 0.0)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True))
    values = []
    for _ in range(trials):
        trial = study.ask()
        value = function(optuna_params(trial, problem))
        study.tell(trial, value)
        values.append(value)
    return values


@dataclass(frozen=True)
class Job:
    family: str
    seed: int
    trials: int
    prior_trials: int
    methods: tuple[str, ...]
    priors: tuple[str, ...] = PRIORS
    related_task: str = ""  # LCBench only: the task of the related prior study
    other_tasks: tuple[str, ...] = ()  # LCBench only: every chosen task but the target (``others``)


def run_seed(job: Job) -> list[tuple[str, str, str, list[float], float, dict[str, tuple[float, float]]]]:
    """(family, method, prior, values, seconds, {prior study: (relevance, weight) at the last
    suggestion}) of every run of one seed of a family."""
    from suggestion_service.algorithms.base import PriorTask
    from tuning_types.study import Direction, Objective

    if job.family.startswith("lcbench-"):
        target_task = job.family.removeprefix("lcbench-")
        target, related, other = LCBenchTask(target_task), LCBenchTask(job.related_task), LCBenchTask("", True)
    else:
        target, related, other = tasks(job.family, job.seed)
    prior_seed = 1000 + job.seed
    related_trials = tuple(run_ours(job.family, "gp", prior_seed, job.prior_trials, related))
    other_trials = tuple(run_ours(job.family, "gp", prior_seed, job.prior_trials, other))
    minimize, maximize = Objective("value", Direction.MINIMIZE), Objective("value", Direction.MAXIMIZE)
    prior_sets = {
        "none": (),
        "related": (PriorTask("related", minimize, related_trials),),
        "negated": (PriorTask("negated", maximize, related_trials),),
        "other": (PriorTask("other", minimize, other_trials),),
    }
    prior_sets["mixed"] = prior_sets["related"] + prior_sets["negated"] + prior_sets["other"]
    if "others" in job.priors:
        prior_sets["others"] = tuple(
            PriorTask(task, minimize, related_trials if task == job.related_task else
                      tuple(run_ours(job.family, "gp", prior_seed, job.prior_trials, LCBenchTask(task))))
            for task in job.other_tasks)
    out = []
    for method in job.methods:
        for prior in (("none",) if method == "optuna-tpe" else job.priors):
            started = time.perf_counter()
            used = {}
            if method == "optuna-tpe":
                values = run_optuna(job.family, job.seed, job.trials, target)
            else:
                history = run_ours(job.family, method.removeprefix("ours-"), job.seed, job.trials, target,
                                   prior_sets[prior])
                values = [t.values[0] for t in history]
                # What the model made of each prior by the end of the study (docs/ALGORITHMS.md).
                for study, entry in history[-1].metadata.get("priors", {}).items():
                    used[study] = (entry.get("relevance") or 0.0, entry.get("weight", 0.0))
            out.append((job.family, method, prior, values, time.perf_counter() - started, used))
    return out


def trials_to_reach(regrets: np.ndarray, target: float) -> int:
    hits = np.flatnonzero(regrets <= target)
    return int(hits[0]) + 1 if len(hits) else len(regrets) + 1


@dataclass(frozen=True)
class Reference:
    optimum: float
    target_regret: float
    log_regret: bool  # log10 final regret (synthetic optima) or error percentage points (LCBench)


def references(results, families: Sequence[str]) -> dict[str, Reference]:
    refs = {}
    for family in families:
        if family.startswith("lcbench-"):
            best, target = lcbench_reference(family.removeprefix("lcbench-"))
            best = min([best, *(min(r[3]) for r in results if r[0] == family)])
            refs[family] = Reference(best, target - best, False)
        else:
            refs[family] = Reference(FAMILIES[family].optimum, FAMILIES[family].target_regret, True)
    return refs


def render(results, args, refs: dict[str, Reference]) -> str:
    lines = [
        f"- Date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, {os.cpu_count()} cores "
        f"({platform.python_implementation()} {platform.python_version()}); "
        f"command: `{shlex.join(['benchmarks/transfer.py', *sys.argv[1:]])}`",
        f"- {args.seeds} seeds per family; prior studies: our GP, {args.prior_trials} trials; "
        f"target studies: {args.trials} trials; mean ± standard error over seeds.",
        "",
        "| family (target regret) | method | prior | trials to target | reached | at trial 1 | final regret "
        "| relevance / weight at the end | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    pooled: dict = {}
    for family, method, prior, values, seconds, used in results:
        groups.setdefault((family, method, prior), []).append((values, seconds, used, family))
        if family.startswith("lcbench-"):
            # All LCBench tasks pooled (task x seed runs): the family-level answer.
            pooled.setdefault(("lcbench", method, prior), []).append((values, seconds, used, family))
    for (family, method, prior), runs in {**groups, **pooled}.items():
        reach, final = [], []
        for values, _, _, run_family in runs:
            ref = refs[run_family]
            regrets = np.minimum.accumulate(np.array(values)) - ref.optimum
            reach.append(trials_to_reach(regrets, ref.target_regret))
            final.append(math.log10(max(float(regrets[-1]), 1e-9)) if ref.log_regret else 100 * float(regrets[-1]))
        reached = sum(r <= args.trials for r in reach)
        # With a prior, the first trial is the priors' best configuration: what the warm start alone did.
        first = sum(r == 1 for r in reach)
        seconds = float(np.mean([s for _, s, _, _ in runs]))
        usage = _usage([u for _, _, u, _ in runs])
        ref = refs.get(family)
        label = (f"{family} (all tasks)" if ref is None else
                 f"{family} ({ref.target_regret:.3g})" if ref.log_regret else
                 f"{family} ({100 * ref.target_regret:.2f} pp)")
        unit = "" if ref is None or ref.log_regret else " pp"
        lines.append(f"| {label} | {method} | {prior} | {np.mean(reach):.1f} ± "
                     f"{standard_error(reach):.1f} | {reached}/{len(runs)} | {first}/{len(runs)} | {np.mean(final):.2f} ± "
                     f"{standard_error(final):.2f}{unit} | {usage} | {seconds:.1f} |")
    return "\n".join(lines) + "\n"


def _usage(used: list[dict[str, tuple[float, float]]]) -> str:
    """Mean relevance / weight at the end, per prior study (named when there are several)."""
    studies = sorted({study for u in used for study in u})
    parts = []
    for study in studies:
        pairs = [u[study] for u in used if study in u]
        text = f"{np.mean([p[0] for p in pairs]):.2f} / {np.mean([p[1] for p in pairs]):.2f}"
        parts.append(text if len(studies) == 1 else f"{study} {text}")
    return "; ".join(parts) or "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default="branin,hartmann6", help="of branin, hartmann6, lcbench")
    parser.add_argument("--methods", default="ours-gp,ours-tpe,optuna-tpe")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--prior-trials", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--lcbench-tasks", type=int, default=6, help="how many of lcbench_async.TASKS")
    parser.add_argument("--yahpo-python", default=lcbench_async.SETTINGS["yahpo_python"])
    parser.add_argument("--yahpo-data", default=lcbench_async.SETTINGS["yahpo_data"])
    parser.add_argument("--priors", default=",".join(PRIORS),
                        help=f"kinds of prior, of {', '.join(PRIORS + SEVERAL)} (module docstring)")
    parser.add_argument("--markdown", help="also write the table here")
    args = parser.parse_args(argv)
    priors = tuple(args.priors.split(","))
    unknown = [p for p in priors if p not in PRIORS + SEVERAL]
    if unknown:
        parser.error(f"unknown prior kind(s) {', '.join(unknown)} (known: {', '.join(PRIORS + SEVERAL)})")
    families, pairs = [], {}
    for family in args.families.split(","):
        if family == "lcbench":
            if not 2 <= args.lcbench_tasks <= len(lcbench_async.TASKS):
                parser.error(f"--lcbench-tasks must be 2 to {len(lcbench_async.TASKS)}")
            pairs = lcbench_pairs(args.lcbench_tasks)
            families += [f"lcbench-{task}" for task in pairs]
        elif family in FAMILIES:
            families.append(family)
        else:
            parser.error(f"unknown family {family!r} (known: {', '.join(FAMILIES)}, lcbench)")
    if "others" in priors and any(not f.startswith("lcbench-") for f in families):
        parser.error("--priors others needs --families lcbench only (the synthetic families have one related task)")
    # Forked workers inherit the settings; the surrogate process starts in each on first use.
    lcbench_async.SETTINGS.update(yahpo_python=args.yahpo_python, yahpo_data=args.yahpo_data)
    methods = tuple(args.methods.split(","))
    chosen = tuple(pairs)
    jobs = [Job(f, s, args.trials, args.prior_trials, methods, priors, pairs.get(f.removeprefix("lcbench-"), ""),
                tuple(t for t in chosen if f != f"lcbench-{t}"))
            for f in families for s in range(args.seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = [r for batch in pool.map(run_seed, jobs) for r in batch]
    text = render(results, args, references(results, families))
    if pairs:
        text += (f"\nRelated priors (target <- prior task, Kendall tau of their errors over 1000 random "
                 f"configurations): {lcbench_relatedness(pairs)}.\n")
    text += f"\nWall time: {time.perf_counter() - started:.0f} s.\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
