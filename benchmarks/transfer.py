#!/usr/bin/env python
"""Transfer learning: trials to reach a target regret with and without prior studies.

Task families of shifted and scaled synthetic functions (each seed draws its own tasks):

* ``branin``: Branin on its usual box, the input shifted by up to 5% of the range per
  dimension (clipped), the output scaled by [0.5, 2] and offset;
* ``hartmann6``: Hartmann6 on [0, 1]^6, shifted by up to 0.05 per dimension, scaled the same.

For each seed: a *prior study* runs our GP for ``--prior-trials`` trials on a related task
(the target's shift plus up to +-0.05 more, another scale and offset), then the *target study*
runs ``--trials`` trials with each kind of prior:

* ``none``: no prior (what every study did before);
* ``related``: the prior study above;
* ``negated``: the same prior trials with the objective's direction flipped (the prior's best
  configurations are the target's worst: a deliberately misleading prior);
* ``other``: a prior study on another function (Levy, or Styblinski-Tang for Branin's box) run
  the same way: unrelated, neither helpful nor adversarial.

Reported per family, method and prior: the mean number of trials to reach the target regret
(a run that never reaches it counts as ``trials + 1``; how many reached it is shown) and the
mean log10 final regret, each with its standard error over seeds. Ours run through the pure
Algorithm interface (``SuggestContext.priors`` carries the prior trials, as the service fills
it); Optuna's TPE (``--optuna``, which has no transfer) is the no-prior anchor. A measurement:
it asserts nothing.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/transfer.py --seeds 6 --jobs 2 --markdown /tmp/transfer.md
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
import problems  # noqa: E402
from runs import standard_error  # noqa: E402
from sample_efficiency import optuna_params  # noqa: E402

PRIORS = ("none", "related", "negated", "other")


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

    fam = FAMILIES[family]
    return SearchSpace(tuple(Parameter(f"x{i}", FloatDomain(fam.low, fam.high)) for i in range(fam.dim)))


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


def run_seed(job: Job) -> list[tuple[str, str, str, list[float], float]]:
    """(family, method, prior, values, seconds) of every run of one seed of a family."""
    from suggestion_service.algorithms.base import PriorTask
    from tuning_types.study import Direction, Objective

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
    out = []
    for method in job.methods:
        for prior in (("none",) if method == "optuna-tpe" else PRIORS):
            started = time.perf_counter()
            if method == "optuna-tpe":
                values = run_optuna(job.family, job.seed, job.trials, target)
            else:
                history = run_ours(job.family, method.removeprefix("ours-"), job.seed, job.trials, target,
                                   prior_sets[prior])
                values = [t.values[0] for t in history]
            out.append((job.family, method, prior, values, time.perf_counter() - started))
    return out


def trials_to_reach(regrets: np.ndarray, target: float) -> int:
    hits = np.flatnonzero(regrets <= target)
    return int(hits[0]) + 1 if len(hits) else len(regrets) + 1


def render(results, args) -> str:
    lines = [
        f"- Date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, {os.cpu_count()} cores "
        f"({platform.python_implementation()} {platform.python_version()}); "
        f"command: `{shlex.join(['benchmarks/transfer.py', *sys.argv[1:]])}`",
        f"- {args.seeds} seeds per family; prior studies: our GP, {args.prior_trials} trials; "
        f"target studies: {args.trials} trials; mean ± standard error over seeds.",
        "",
        "| family (target regret) | method | prior | trials to target | reached | log10 final regret | s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for family, method, prior, values, seconds in results:
        groups.setdefault((family, method, prior), []).append((values, seconds))
    for (family, method, prior), runs in groups.items():
        fam = FAMILIES[family]
        reach, final = [], []
        for values, _ in runs:
            regrets = np.minimum.accumulate(np.array(values)) - fam.optimum
            reach.append(trials_to_reach(regrets, fam.target_regret))
            final.append(math.log10(max(float(regrets[-1]), 1e-9)))
        reached = sum(r <= args.trials for r in reach)
        seconds = float(np.mean([s for _, s in runs]))
        lines.append(f"| {family} ({fam.target_regret}) | {method} | {prior} | {np.mean(reach):.1f} ± "
                     f"{standard_error(reach):.1f} | {reached}/{len(runs)} | {np.mean(final):.2f} ± "
                     f"{standard_error(final):.2f} | {seconds:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default="branin,hartmann6")
    parser.add_argument("--methods", default="ours-gp,ours-tpe,optuna-tpe")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--prior-trials", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--markdown", help="also write the table here")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    for family in families:
        if family not in FAMILIES:
            parser.error(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    methods = tuple(args.methods.split(","))
    jobs = [Job(f, s, args.trials, args.prior_trials, methods) for f in families for s in range(args.seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = [r for batch in pool.map(run_seed, jobs) for r in batch]
    text = render(results, args) + f"\nWall time: {time.perf_counter() - started:.0f} s.\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
