#!/usr/bin/env python
"""Population-based training vs random search and ASHA at equal compute, plus Ray Tune's PBT.

Two problems, each trained step by step through a real suggestion service (in-process,
SQLite), driven by a deterministic simulation of asynchronous workers: every time unit,
each running trial trains one step and reports it (in trial-number order), a finished
segment or trial is told, a stopped one pruned, and idle workers ask. Checkpoints are kept
by the driver (a deep copy of the model at each told trial, by trial id), so a pbt segment
resumes exactly where its parent stopped; the compute budget is counted in steps trained
and is the same for every method (``population × max_steps``); when it is spent, running
trials are abandoned.

- ``toy``: the toy problem of the PBT paper (Jaderberg et al. 2017, section 4.1):
  theta in R^2 starts at (0.9, 0.9); each step is gradient ascent on the surrogate
  Q_hat(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2) with step size 0.01; the score is the
  true objective Q = 1.2 - (theta0^2 + theta1^2) (maximum 1.2 at theta = 0); h in [0, 1]^2.
  Populations of 2 and 8.
- ``sgd``: scikit-learn's SGDClassifier (logistic loss) on the bundled digits data, trained
  one epoch per step with ``partial_fit``; the hyperparameters are the constant learning
  rate ``eta0`` (which pbt turns into a schedule) and ``alpha``; the score is validation
  accuracy, and the best final model's test accuracy is reported too.

Methods at equal compute (P = population, S = max_steps):
- ``pbt``: our pbt, population P, segments of S/10 steps;
- ``random``: P random configurations trained S steps each (pbt without exploit/explore);
- ``asha``: random configurations with our ASHA pruner (rungs at S/10 * 3^k), new ones until
  P * S steps are spent;
- simulated workers: as many as members (``--workers`` sets another number for ours);
- ``ray-pbt`` (toy, ``--ray``): Ray Tune's PopulationBasedTraining with the same population,
  interval, quantile, resample probability and perturbation factors, all members concurrent.

    python benchmarks/pbt.py toy --seeds 10 --populations 2,8 --ray --markdown toy.md
    python benchmarks/pbt.py sgd --seeds 10 --markdown sgd.md

Ray Tune needs ``ray[tune]`` (fsspec, pyarrow besides ray). A measurement: it asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STEP_SIZE = 0.01
THETA0 = (0.9, 0.9)
ETA = 3.0


# --- problems ------------------------------------------------------------------------------


class ToyModel:
    """theta of the toy problem, trained by gradient ascent on Q_hat(theta | h)."""

    def __init__(self, params: dict, seed: int):
        self.theta = list(THETA0)
        self.params = params

    def step(self) -> None:
        h = (self.params["h0"], self.params["h1"])
        self.theta = [t + STEP_SIZE * (-2.0 * hi * t) for t, hi in zip(self.theta, h)]

    def score(self) -> float:
        return 1.2 - self.theta[0] ** 2 - self.theta[1] ** 2

    def test_score(self) -> float:
        return self.score()


class Digits:
    """The digits data, split once (60/20/20) and standardised on the training part."""

    _cache = None

    @classmethod
    def get(cls):
        if cls._cache is None:
            import numpy as np
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split
            from sklearn.preprocessing import StandardScaler

            x, y = load_digits(return_X_y=True)
            x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, random_state=0, stratify=y)
            x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, random_state=0,
                                                            stratify=y_rest)
            scaler = StandardScaler().fit(x_train)
            cls._cache = (scaler.transform(x_train), y_train, scaler.transform(x_val), y_val,
                          scaler.transform(x_test), y_test, np.unique(y))
        return cls._cache


class SgdModel:
    """An SGDClassifier trained one epoch per step; a new ``params`` takes effect at the next epoch."""

    def __init__(self, params: dict, seed: int):
        from sklearn.linear_model import SGDClassifier

        self.model = SGDClassifier(loss="log_loss", learning_rate="constant", random_state=seed)
        self.params = params

    def step(self) -> None:
        x_train, y_train, *_, classes = Digits.get()
        self.model.set_params(eta0=self.params["eta0"], alpha=self.params["alpha"])
        self.model.partial_fit(x_train, y_train, classes=classes)

    def score(self) -> float:
        _, _, x_val, y_val, *_ = Digits.get()
        return float(self.model.score(x_val, y_val))

    def test_score(self) -> float:
        *_, x_test, y_test, _ = Digits.get()
        return float(self.model.score(x_test, y_test))


@dataclass(frozen=True)
class Problem:
    name: str
    model: Callable[[dict, int], object]
    metric: str
    space: Callable[[], list]
    max_steps: int
    interval: int


def toy_space():
    from trial_worker import Float

    return [Float("h0", 0.0, 1.0), Float("h1", 0.0, 1.0)]


def sgd_space():
    from trial_worker import Float

    return [Float("eta0", 1e-5, 1.0, log=True), Float("alpha", 1e-7, 1e-1, log=True)]


PROBLEMS = {
    "toy": Problem("toy", ToyModel, "q", toy_space, max_steps=40, interval=4),
    "sgd": Problem("sgd", SgdModel, "val_accuracy", sgd_space, max_steps=40, interval=4),
}


# --- our methods, through the service ------------------------------------------------------


@dataclass
class Outcome:
    best: float  # the best score of a model trained for max_steps
    test: float  # that model's held-out score (the toy's: the same Q)
    steps: int  # steps trained
    exploits: int = 0
    seconds: float = 0.0
    curve: list[float] = field(default_factory=list)  # best score reported by time unit


@dataclass
class Running:
    trial: object
    model: object
    step: int
    end: int


def run_ours(problem: Problem, method: str, population: int, seed: int, workers: int | None = None) -> Outcome:
    from suggestion_service.server import serve
    from trial_worker import Fidelity, SuggestionClient
    from tuning.suggestion.v1 import study_pb2 as pb
    from tuning.suggestion.v1 import suggestion_service_pb2 as api
    from tuning_common.grpc_server import ServerOptions

    # By default as many workers as members: every member trains at once, as in the paper and in Ray Tune.
    budget, workers = population * problem.max_steps, workers or population
    options = {
        "pbt": dict(algorithm="pbt", algorithm_settings={
            "population_size": population, "perturbation_interval": problem.interval, "max_steps": problem.max_steps},
            max_trials=population * math.ceil(problem.max_steps / problem.interval)),
        "random": dict(algorithm="random", max_trials=population),
        "asha": dict(algorithm="random", pruner="asha",
                     fidelity=Fidelity("steps", problem.interval, problem.max_steps, ETA)),
    }[method]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        running_server = serve(f"sqlite:///{tmp}/s.db", ServerOptions(port=0))
        try:
            with SuggestionClient(running_server.address) as client:
                study = client.create_study(f"{problem.name}-{method}", problem.space(),
                                            objectives={problem.metric: "maximize"}, seed=seed, **options)
                checkpoints: dict[int, object] = {}
                finals: list[tuple[float, object]] = []
                running: list[Running] = []
                used, best_so_far, curve, done = 0, -math.inf, [], False
                while True:
                    while not done and len(running) < workers and used < budget:
                        asked = study.ask_batch(1, wait=False)
                        if not asked:
                            done = study.last_suggest.status == api.SUGGEST_STATUS_DONE
                            break
                        trial = asked[0]
                        running.append(start(problem, trial, checkpoints, seed))
                    if not running or used >= budget:
                        break
                    for item in sorted(running, key=lambda r: r.trial.number):
                        item.model.step()
                        item.step += 1
                        used += 1
                        value = item.model.score()
                        best_so_far = max(best_so_far, value)
                        stop = item.trial.report(item.step, {problem.metric: value})
                        if item.step >= item.end:
                            checkpoints[item.trial.id] = copy.deepcopy(item.model)
                            study.tell(item.trial, value)
                            running.remove(item)
                            if item.end == problem.max_steps:
                                finals.append((value, item.model))
                        elif stop:
                            item.trial.prune()
                            running.remove(item)
                        if used >= budget:
                            break
                    curve.append(best_so_far)
                exploits = sum(t.pbt_segment.decision == pb.PBT_DECISION_EXPLOIT for t in study.trials()) \
                    if method == "pbt" else 0
        finally:
            running_server.stop()
    best, model = max(finals, key=lambda f: f[0]) if finals else (math.nan, None)
    return Outcome(best, model.test_score() if model is not None else math.nan, used, exploits,
                   time.perf_counter() - started, curve)


def start(problem: Problem, trial, checkpoints: dict[int, object], seed: int) -> Running:
    segment = trial.pbt_segment
    if segment is not None and segment.HasField("parent_trial_id"):
        model = copy.deepcopy(checkpoints[segment.parent_trial_id])
        model.params = trial.params
        return Running(trial, model, segment.start_step, segment.end_step)
    model = problem.model(trial.params, seed)
    return Running(trial, model, 0, segment.end_step if segment is not None else problem.max_steps)


# --- Ray Tune's PBT (toy) ------------------------------------------------------------------


def run_ray(problem: Problem, population: int, seed: int) -> Outcome:
    import json
    import random

    import numpy as np
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    max_steps, interval = problem.max_steps, problem.interval

    def trainable(config):
        model, step = ToyModel(config, seed), 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                state = json.loads(Path(folder, "state.json").read_text())
            model.theta, step = state["theta"], state["step"]
        while step < max_steps:
            model.step()
            step += 1
            metrics = {"q": model.score(), "step": step}
            if step % interval == 0 or step == max_steps:
                with tempfile.TemporaryDirectory() as folder:
                    Path(folder, "state.json").write_text(json.dumps({"theta": model.theta, "step": step}))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)

    random.seed(seed)
    np.random.seed(seed)
    scheduler = PopulationBasedTraining(
        time_attr="step", perturbation_interval=interval, quantile_fraction=0.25, resample_probability=0.25,
        perturbation_factors=(1.2, 0.8), hyperparam_mutations={"h0": tune.uniform(0.0, 1.0),
                                                                 "h1": tune.uniform(0.0, 1.0)})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1.0 / population}),
            param_space={"h0": tune.uniform(0.0, 1.0), "h1": tune.uniform(0.0, 1.0)},
            tune_config=tune.TuneConfig(metric="q", mode="max", scheduler=scheduler, num_samples=population,
                                        reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, stop={"step": max_steps}, verbose=0),
        )
        grid = tuner.fit()
        finals = [r.metrics["q"] for r in grid if r.metrics and r.metrics.get("step") == max_steps]
        steps = sum(int(r.metrics.get("step", 0)) for r in grid if r.metrics)
    best = max(finals) if finals else math.nan
    # Ray's count of exploits (a private attribute: the scheduler has no public one).
    return Outcome(best, best, steps, getattr(scheduler, "_num_perturbations", 0),
                   seconds=time.perf_counter() - started)


# --- report --------------------------------------------------------------------------------


def mean_se(values: Sequence[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {se:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("problem", choices=sorted(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--populations", default="8", help="comma-separated population sizes")
    parser.add_argument("--methods", default="pbt,random,asha")
    parser.add_argument("--ray", action="store_true", help="also Ray Tune's PopulationBasedTraining")
    parser.add_argument("--workers", type=int, default=0, help="simulated workers for ours (0: the population)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    problem = PROBLEMS[args.problem]
    methods = args.methods.split(",") + (["ray-pbt"] if args.ray else [])
    if args.ray:
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    lines = [f"`{problem.name}`: best {problem.metric} of a model trained {problem.max_steps} steps "
             f"(mean ± standard error over seeds 0-{args.seeds - 1}); compute: population × {problem.max_steps} "
             f"steps; {args.workers or 'as many'} simulated workers{'' if args.workers else ' as members'}", "",
             "| population | method | best | test | steps trained | exploits | seconds per run |",
             "|---|---|---|---|---|---|---|"]
    for population in (int(p) for p in args.populations.split(",")):
        for method in methods:
            outcomes = []
            for seed in range(args.seeds):
                if method == "ray-pbt":
                    outcome = run_ray(problem, population, seed)
                else:
                    outcome = run_ours(problem, method, population, seed, args.workers)
                outcomes.append(outcome)
                print(f"{problem.name} P={population} {method} seed {seed}: best {outcome.best:.4f} "
                      f"test {outcome.test:.4f} steps {outcome.steps} exploits {outcome.exploits} "
                      f"({outcome.seconds:.1f} s)", flush=True)
            lines.append(f"| {population} | {method} | {mean_se([o.best for o in outcomes])} | "
                         f"{mean_se([o.test for o in outcomes])} | "
                         f"{statistics.fmean(o.steps for o in outcomes):.0f} | "
                         f"{statistics.fmean(o.exploits for o in outcomes):.1f} | "
                         f"{statistics.fmean(o.seconds for o in outcomes):.1f} |")
    footer = (f"\n{datetime.date.today()}, {platform.node()} ({os.cpu_count()} cores, {platform.machine()}), "
              f"`{shlex.join(['python', *sys.argv])}`")
    text = "\n".join(lines) + "\n" + footer + "\n"
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
