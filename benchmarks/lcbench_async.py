#!/usr/bin/env python
"""Multi-fidelity on LCBench (YAHPO Gym surrogate): asynchronous workers simulated in time.

Each run simulates W workers (4, 8 or 16) training LCBench's funnel MLPs on one OpenML task.
An event queue ordered by simulated time holds each busy worker's next checkpoint. A free
worker asks for a trial; it trains it epoch by epoch and reports the validation error at the
rungs of the schedule (epochs 1, 3, 9 and 27: min fidelity 1, eta 3, max 52), stopping when
told to, and tells the error at epoch 52. Reaching a checkpoint costs the surrogate's
predicted ``time`` for the epochs trained since the previous one
(``max(0, time(e2) - time(e1))``; a fresh start costs ``time(e)``). Random search at full
fidelity does not report (nothing would stop it). The optimiser's own computing time is not
counted: simulated time is training time only. Every method reports at the same epochs.

Methods (same min/max fidelity 1..52 epochs and eta 3 for all):

- ours, through the suggestion service's real API: a gRPC server on port 0 with SQLite in
  a temporary folder, driven with the Python SuggestionClient (ask / report / prune / tell),
  one client-side worker id per simulated worker: ``random`` (full fidelity, no pruner),
  ``asha`` (random + asha), ``hyperband`` (random + hyperband), ``bohb`` (bohb + hyperband),
  ``tpe-asha`` and ``gp-asha``;
- Optuna 5 through its ask/tell interface, ``trial.report`` / ``trial.should_prune`` in the
  same simulator: ``optuna-tpe-sh`` (TPESampler + SuccessiveHalvingPruner(min_resource=1,
  reduction_factor=3)) and ``optuna-tpe-hb`` (TPESampler + HyperbandPruner(min_resource=1,
  max_resource=52, reduction_factor=3)), samplers with their defaults and the run's seed;
  ``optuna-mtpe-hb`` as ``optuna-tpe-hb`` with ``multivariate=True, constant_liar=True``
  (Optuna's advice for parallel workers; our TPE does both by default).

Every method first runs the same ``--initial`` (10) configurations, drawn uniformly (log-
uniformly on log scales) from a generator seeded with the run's seed alone, enqueued
(``study.enqueue`` / ``enqueue_trial``); then its own proposals follow.

The objective is the validation error ``1 - val_accuracy / 100`` (YAHPO's single-objective
LCBench target; balanced accuracy is not what the published LCBench comparisons use). A run's
incumbent at time t is the best error among the trials *told* (trained to 52 epochs) by t;
pruned trials' intermediate values never count. Before a run's first told trial its
incumbent is the mean error at 52 epochs of 256 fixed random configurations (the "horizon
sample", drawn with seed 12345), i.e. what an arbitrary configuration would give. Regret is the
incumbent minus the best error any run in the store found on that task (all methods, seeds,
worker counts and horizons). The horizon of a task for W workers is ``--evals`` x the mean 52-epoch time of
the horizon sample / W: the time random search needs for about that many full evaluations,
so every worker count gets the same total compute.

The surrogate runs in its own process from the yahpo venv (yahpo-gym pins numpy 1.26, our
package and Optuna 5 need numpy 2), which answers JSON lines over a pipe:

    python3.11 -m venv .venv-yahpo && .venv-yahpo/bin/pip install yahpo-gym==1.0.2 onnxruntime
    PYTHONPATH=$PWD .venv-bench/bin/python benchmarks/lcbench_async.py --workers 8 --seeds 10 \\
        --store /tmp/lcbench.jsonl --markdown /tmp/lcbench.md --svg docs/images/lcbench-regret.svg

``--yahpo-python`` (default ``.venv-yahpo/bin/python`` of the project root) and
``--yahpo-data`` (default ``../shared/data/yahpo``) say where those are. Runs are stored as
they end (``--store``, JSON lines), so an interrupted benchmark resumes. A measurement: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import heapq
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 52
ETA = 3
RUNGS = (1, 3, 9, 27)
# LCBench's space as YAHPO declares it: (name, kind, low, high, log).
SPACE = (
    ("batch_size", "int", 16, 512, True),
    ("learning_rate", "float", 1e-4, 1e-1, True),
    ("max_dropout", "float", 0.0, 1.0, False),
    ("max_units", "int", 64, 1024, True),
    ("momentum", "float", 0.1, 0.99, False),
    ("num_layers", "int", 1, 5, False),
    ("weight_decay", "float", 1e-5, 1e-1, False),
)
# The first ten LCBench instances in numeric order: a documented choice, not a selection.
TASKS = ("3945", "7593", "34539", "126025", "126026", "126029", "146212", "167104", "167149", "167152")
METHODS = ("random", "asha", "hyperband", "bohb", "tpe-asha", "gp-asha", "optuna-tpe-sh", "optuna-tpe-hb",
           "optuna-mtpe-hb")
# method -> (our algorithm, our pruner); Optuna's methods are handled apart.
OURS = {
    "random": ("random", None),
    "asha": ("random", "asha"),
    "hyperband": ("random", "hyperband"),
    "bohb": ("bohb", "hyperband"),
    "tpe-asha": ("tpe", "asha"),
    "gp-asha": ("gp", "asha"),
}
HORIZON_SAMPLE, HORIZON_SEED = 256, 12345
# Fractions of the horizon at which regret and ranks are tabulated. Not 1/8: with 8 workers and
# 30 evaluations a mean 52-epoch training takes ~0.27 H, so at H/8 hardly any run has told a
# trial and every method ties at the fallback.
BUDGETS = (1 / 4, 1 / 3, 1 / 2, 1.0)


# --- the surrogate, in the yahpo venv ---------------------------------------------------------

def serve_surrogate(data_path: str) -> None:
    """Answers {"task", "configs", "epochs"} lines with [[time, val_error] per epoch] per config."""
    # yahpo prints citation notes on stdout; the protocol keeps stdout to itself.
    protocol, sys.stdout = sys.stdout, sys.stderr
    from yahpo_gym import benchmark_set, local_config

    local_config.init_config()
    local_config.set_data_path(data_path)
    bench = benchmark_set.BenchmarkSet("lcbench")
    for line in sys.stdin:
        request = json.loads(line)
        bench.set_instance(request["task"])
        rows = [{**c, "OpenML_task_id": request["task"], "epoch": e}
                for c in request["configs"] for e in request["epochs"]]
        out = bench.objective_function(rows, multithread=False)
        n = len(request["epochs"])
        answer = [[[float(r["time"]), 1.0 - float(r["val_accuracy"]) / 100.0] for r in out[i * n:(i + 1) * n]]
                  for i in range(len(request["configs"]))]
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()


class Surrogate:
    """The yahpo process, started once per benchmark process."""

    def __init__(self, python: str, data: str):
        self.process = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--serve-surrogate", "--yahpo-data", data],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        atexit.register(self.close)

    def query(self, task: str, configs: Sequence[dict], epochs: Sequence[int]) -> list[list[tuple[float, float]]]:
        self.process.stdin.write(json.dumps({"task": task, "configs": list(configs), "epochs": list(epochs)}) + "\n")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the surrogate process ended (exit code {self.process.poll()})")
        return [[(float(t), float(err)) for t, err in curve] for curve in json.loads(line)]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


_SURROGATE: Surrogate | None = None


def surrogate(python: str, data: str) -> Surrogate:
    global _SURROGATE
    if _SURROGATE is None or _SURROGATE.process.poll() is not None:
        _SURROGATE = Surrogate(python, data)
    return _SURROGATE


# --- configurations -------------------------------------------------------------------------

def random_configs(seed: int, count: int) -> list[dict]:
    """``count`` uniform (log-uniform on log scales) configurations from a generator seeded with ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(count):
        config = {}
        for name, kind, low, high, log in SPACE:
            u = rng.uniform()
            if log:
                x = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
            else:
                x = low + u * (high - low)
            if kind == "int":
                # Rounded in the same (log or linear) scale the value was drawn in, inside the bounds.
                x = min(high, max(low, round(x)))
            config[name] = x
        configs.append(config)
    return configs


def our_space():
    from trial_worker.space import Float, Int

    return [(Int if kind == "int" else Float)(name, low, high, log=log) for name, kind, low, high, log in SPACE]


def optuna_distributions():
    from optuna.distributions import FloatDistribution, IntDistribution

    return {name: (IntDistribution if kind == "int" else FloatDistribution)(low, high, log=log)
            for name, kind, low, high, log in SPACE}


# --- drivers: one per method family ---------------------------------------------------------

class OurDriver:
    """A study on a real suggestion service (gRPC on port 0, SQLite in a temp folder)."""

    def __init__(self, method: str, seed: int, workers: int, initial: Sequence[dict]):
        from suggestion_service.server import serve
        from trial_worker import Fidelity, SuggestionClient
        from trial_worker.client import Study
        from tuning_common.grpc_server import ServerOptions

        algorithm, pruner = OURS[method]
        self.pruned_method = pruner is not None
        self.tmp = tempfile.TemporaryDirectory()
        self.server = serve(f"sqlite:///{self.tmp.name}/s.db", ServerOptions(port=0))
        self.client = SuggestionClient(self.server.address)
        # A lease longer than any run: a simulated worker holds its trial across many real asks.
        study = self.client.create_study(
            "lcbench", our_space(), objectives={"val_error": "minimize"}, algorithm=algorithm, seed=seed,
            lease_seconds=86400.0, pruner=pruner,
            fidelity=Fidelity("epoch", 1, EPOCHS, ETA) if pruner else None,
        )
        for config in initial:
            study.enqueue(config)
        self.studies = [Study(self.client, study.info, worker_id=f"worker-{w}") for w in range(workers)]

    def ask(self, worker: int):
        trial = self.studies[worker].ask()
        return trial, trial.params

    def report(self, trial, epoch: int, error: float) -> bool:
        return trial.report(epoch, error)

    def prune(self, trial) -> None:
        trial.prune()

    def tell(self, trial, error: float) -> None:
        trial.study.tell(trial, error)

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.tmp.cleanup()


class OptunaDriver:
    """An in-memory Optuna study driven through ask/tell."""

    def __init__(self, method: str, seed: int, workers: int, initial: Sequence[dict]):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=ETA)
                  if method == "optuna-tpe-sh" else
                  optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS, reduction_factor=ETA))
        # optuna-mtpe-hb: the TPE configuration Optuna recommends for parallel workers (and that
        # benchmarks/sample_efficiency.py uses), closer to our TPE's defaults.
        sampler = (optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
                   if method == "optuna-mtpe-hb" else optuna.samplers.TPESampler(seed=seed))
        self.pruned_method = True
        self.study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        for config in initial:
            self.study.enqueue_trial(config)
        self.distributions = optuna_distributions()

    def ask(self, worker: int):
        trial = self.study.ask(self.distributions)
        return trial, trial.params

    def report(self, trial, epoch: int, error: float) -> bool:
        trial.report(error, epoch)
        return trial.should_prune()

    def prune(self, trial) -> None:
        self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)

    def tell(self, trial, error: float) -> None:
        self.study.tell(trial, error)

    def close(self) -> None:
        pass


# --- one run ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    problem: str  # the LCBench task (OpenML id)
    method: str
    seed: int
    workers: int
    evals: int
    initial: int


@dataclass
class Outcome:
    job: Job
    horizon: float = 0.0
    # The mean 52-epoch error of the horizon sample: the incumbent before a first told trial.
    fallback: float = 0.0
    # (simulated seconds, best told error) at each improvement.
    trajectory: list = field(default_factory=list)
    trials: int = 0
    pruned: int = 0
    told: int = 0
    epochs: int = 0
    seconds: float = 0.0
    error: str = ""


# Where the yahpo venv and data are; the environment carries them into spawned run processes.
SETTINGS = {"yahpo_python": os.environ.get("LCBENCH_YAHPO_PYTHON", str(ROOT / ".venv-yahpo" / "bin" / "python")),
            "yahpo_data": os.environ.get("LCBENCH_YAHPO_DATA", str(ROOT.parent / "shared" / "data" / "yahpo"))}


def task_reference(sur: Surrogate, task: str) -> tuple[float, float]:
    """Mean 52-epoch time and mean 52-epoch error of the horizon sample."""
    curves = sur.query(task, random_configs(HORIZON_SEED, HORIZON_SAMPLE), [EPOCHS])
    return (sum(c[0][0] for c in curves) / len(curves), sum(c[0][1] for c in curves) / len(curves))


def simulate(job: Job, sur: Surrogate) -> Outcome:
    mean_time, fallback = task_reference(sur, job.problem)
    horizon = job.evals * mean_time / job.workers
    outcome = Outcome(job, horizon=horizon, fallback=fallback)
    initial = random_configs(job.seed, job.initial)
    driver = (OptunaDriver if job.method.startswith("optuna") else OurDriver)(job.method, job.seed, job.workers,
                                                                           initial)
    checkpoints = (*RUNGS, EPOCHS) if driver.pruned_method else (EPOCHS,)
    try:
        # Per worker: [trial, {epoch: (time, error)}, index of the next checkpoint].
        state: list[list] = [[None, None, 0] for _ in range(job.workers)]
        queue: list[tuple[float, int, int]] = []
        counter = 0
        best = math.inf

        def start(worker: int, now: float) -> None:
            nonlocal counter
            trial, params = driver.ask(worker)
            curve = dict(zip(checkpoints, sur.query(job.problem, [params], checkpoints)[0]))
            state[worker] = [trial, curve, 0]
            outcome.trials += 1
            counter += 1
            heapq.heappush(queue, (now + max(0.0, curve[checkpoints[0]][0]), counter, worker))

        for worker in range(job.workers):
            start(worker, 0.0)
        while queue:
            now, _, worker = heapq.heappop(queue)
            if now > horizon:
                break
            trial, curve, index = state[worker]
            epoch = checkpoints[index]
            outcome.epochs += epoch - (checkpoints[index - 1] if index else 0)
            error = curve[epoch][1]
            if epoch == EPOCHS:
                driver.tell(trial, error)
                outcome.told += 1
                if error < best:
                    best = error
                    outcome.trajectory.append((now, error))
                start(worker, now)
            elif driver.report(trial, epoch, error):
                driver.prune(trial)
                outcome.pruned += 1
                start(worker, now)
            else:
                state[worker][2] = index + 1
                step = max(0.0, curve[checkpoints[index + 1]][0] - curve[epoch][0])
                counter += 1
                heapq.heappush(queue, (now + step, counter, worker))
    finally:
        driver.close()
    return outcome


def run_job(job: Job) -> Outcome:
    started = time.perf_counter()
    try:
        outcome = simulate(job, surrogate(SETTINGS["yahpo_python"], SETTINGS["yahpo_data"]))
    except Exception as exc:  # noqa: BLE001 - a failed run is reported in the footer, not fatal
        outcome = Outcome(job, error=f"{type(exc).__name__}: {exc}")
    outcome.seconds = time.perf_counter() - started
    return outcome


# --- analysis ---------------------------------------------------------------------------------

def incumbent(outcome: Outcome, at: float) -> float:
    best = outcome.fallback
    for t, error in outcome.trajectory:
        if t > at:
            break
        best = error
    return best


def references(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """The best error any run found, per task."""
    best: dict[str, float] = {}
    for o in outcomes:
        for _, error in o.trajectory:
            best[o.job.problem] = min(best.get(o.job.problem, math.inf), error)
    return best


def _fraction(b: float) -> str:
    return "1" if b == 1 else f"1/{round(1 / b)}"


def regret_table(outcomes: Sequence[Outcome], methods: Sequence[str], workers: int, ref: dict[str, float]) -> list[str]:
    """Mean regret (with its standard error over task x seed runs) and mean rank per budget."""
    import runs
    from scipy.stats import rankdata  # ties share their mean rank

    cells = {(o.job.problem, o.job.seed, o.job.method): o for o in outcomes if o.job.workers == workers}
    pairs = sorted({(t, s) for t, s, _ in cells})
    complete = [(t, s) for t, s in pairs if all((t, s, m) in cells for m in methods)]
    if not complete:
        return []
    lines = [f"#### {workers} workers ({len(complete)} task x seed runs with every method)", "",
             "| method | " + " | ".join(f"regret @ {_fraction(b)} H" for b in BUDGETS) + " | "
             + " | ".join(f"rank @ {_fraction(b)} H" for b in BUDGETS) + " | trials (pruned) per run |",
             "|---|" + "---:|" * (2 * len(BUDGETS) + 1)]
    regrets = {m: {b: [] for b in BUDGETS} for m in methods}
    rank_lists = {m: {b: [] for b in BUDGETS} for m in methods}
    for task, seed in complete:
        for b in BUDGETS:
            values = [incumbent(cells[task, seed, m], b * cells[task, seed, m].horizon) - ref[task] for m in methods]
            for m, v, r in zip(methods, values, rankdata(values)):
                regrets[m][b].append(v)
                rank_lists[m][b].append(r)
    for m in methods:
        regret_cells = []
        for b in BUDGETS:
            mean, se = statistics.fmean(regrets[m][b]), runs.standard_error(regrets[m][b])
            regret_cells.append(f"{mean:.4f} ± {se:.4f}")
        rank_cells = [f"{sum(rank_lists[m][b]) / len(rank_lists[m][b]):.2f}" for b in BUDGETS]
        trials = statistics.fmean(cells[t, s, m].trials for t, s in complete)
        pruned = statistics.fmean(cells[t, s, m].pruned for t, s in complete)
        lines.append(f"| {m} | " + " | ".join(regret_cells) + " | " + " | ".join(rank_cells)
                     + f" | {trials:.0f} ({pruned:.0f}) |")
    return lines + [""]


def mean_curve(outcomes: Sequence[Outcome], ref: dict[str, float], fractions: Sequence[float]) -> list[float]:
    """Mean regret over the given runs at each fraction of their horizon."""
    return [sum(incumbent(o, f * o.horizon) - ref[o.job.problem] for o in outcomes) / len(outcomes)
            for f in fractions]


def time_to_target(outcomes: Sequence[Outcome], methods: Sequence[str], workers: int,
                   ref: dict[str, float]) -> list[str]:
    """Per task: the fraction of the horizon after which a method's mean regret (over seeds) is at
    or below random search's mean regret at the horizon."""
    fractions = [i / 256 for i in range(1, 257)]
    by = defaultdict(list)
    for o in outcomes:
        if o.job.workers == workers:
            by[o.job.problem, o.job.method].append(o)
    tasks = sorted({t for t, m in by if m == "random"}, key=int)
    others = [m for m in methods if m != "random"]
    lines = [f"#### Time to random search's final regret, {workers} workers (fraction of the horizon)", "",
             "| task | random's final regret | " + " | ".join(others) + " |",
             "|---|---:|" + "---:|" * len(others)]
    reached = defaultdict(list)
    for task in tasks:
        target = mean_curve(by[task, "random"], ref, [1.0])[0]
        row = [task, f"{target:.4f}"]
        for m in others:
            if not by[task, m]:
                row.append("–")
                continue
            curve = mean_curve(by[task, m], ref, fractions)
            hit = next((f for f, v in zip(fractions, curve) if v <= target + 1e-12), None)
            reached[m].append(hit)
            row.append("not reached" if hit is None else f"{hit:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    summary = ["**within 1/3**"]
    for m in others:
        hits = reached[m]
        summary.append(f"{sum(h is not None and h <= 1 / 3 for h in hits)}/{len(hits)}")
    lines.append("| " + summary[0] + " | | " + " | ".join(summary[1:]) + " |")
    median = ["**median fraction**", ""]
    for m in others:
        hits = sorted(math.inf if h is None else h for h in reached[m])
        med = hits[len(hits) // 2] if len(hits) % 2 else (hits[len(hits) // 2 - 1] + hits[len(hits) // 2]) / 2 \
            if hits else math.nan
        median.append("not reached" if math.isinf(med) else f"{med:.3f}")
    lines.append("| " + " | ".join(median) + " |")
    return lines + [""]


COLOURS = ("#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def svg_plot(outcomes: Sequence[Outcome], methods: Sequence[str], workers: int, ref: dict[str, float]) -> str:
    """Mean regret (log scale) vs fraction of the horizon, one line per method: a plain SVG
    (matplotlib is not in the benchmark venv)."""
    fractions = [i / 128 for i in range(1, 129)]
    curves = {}
    for m in methods:
        runs = [o for o in outcomes if o.job.workers == workers and o.job.method == m]
        if runs:
            curves[m] = mean_curve(runs, ref, fractions)
    floor = 1e-4
    values = [max(v, floor) for c in curves.values() for v in c]
    lo, hi = math.log10(min(values)), math.log10(max(values))
    lo, hi = math.floor(lo * 2) / 2, math.ceil(hi * 2) / 2
    width, height, left, right, top, bottom = 720, 440, 70, 170, 30, 50
    pw, ph = width - left - right, height - top - bottom

    def x(f: float) -> float:
        return left + f * pw

    def y(v: float) -> float:
        return top + (hi - math.log10(max(v, floor))) / (hi - lo) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18">LCBench, {workers} workers: mean regret (validation error) vs simulated '
             f'time</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>']
    decade = lo
    while decade <= hi + 1e-9:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(10 ** decade):.1f}" y2="{y(10 ** decade):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(10 ** decade) + 4:.1f}" text-anchor="end">'
                     f'{10 ** decade:.2g}</text>')
        decade += 0.5
    for f in (0.125, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{x(f):.1f}" x2="{x(f):.1f}" y1="{top}" y2="{top + ph}" stroke="#ddd"/>'
                     f'<text x="{x(f):.1f}" y="{top + ph + 16}" text-anchor="middle">{f:g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">fraction of the horizon H '
                 f'(time of ~N full random evaluations)</text>')
    for i, (m, curve) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{x(f):.1f},{y(v):.1f}" for f, v in zip(fractions, curve))
        dash = ' stroke-dasharray="6,3"' if m.startswith("optuna") else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"{dash}/>')
        ly = top + 14 + 18 * i
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 34}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="2"{dash}/><text x="{left + pw + 40}" y="{ly + 4}">{m}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def report(outcomes: Sequence[Outcome], methods: Sequence[str], worker_counts: Sequence[int], args,
           ref: dict[str, float]) -> str:
    import runs

    good = [o for o in outcomes if not o.error]
    lines = [
        "### LCBench (YAHPO Gym surrogate), asynchronous workers simulated in time",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{shlex.join(['python', *sys.argv])}`",
        f"- Tasks: {', '.join(sorted({o.job.problem for o in good}, key=int))}; seeds per cell: "
        f"{args.seeds}; horizon H = {args.evals} x mean 52-epoch time / workers; "
        f"{args.initial} shared initial configurations.",
        "- Regret: best told validation error minus the best any run found on the task; "
        "± is the standard error over task x seed runs; rank 1 = best (ties share).",
        "",
    ]
    for w in worker_counts:
        lines += regret_table(good, methods, w, ref)
    for w in worker_counts:
        if any(o.job.workers == w and o.job.method == "random" for o in good):
            lines += time_to_target(good, methods, w, ref)
    lines += runs.failures(outcomes)
    return "\n".join(lines)


def rank_correlation(tasks: Sequence[str], count: int) -> str:
    """Spearman correlation, over ``count`` random configurations (seed 0), between the error at
    each rung and the error at 52 epochs: how far the early ranking that successive halving
    bets on holds at the end."""
    from scipy.stats import spearmanr

    sur = surrogate(SETTINGS["yahpo_python"], SETTINGS["yahpo_data"])
    configs = random_configs(0, count)
    lines = ["| task | " + " | ".join(f"epoch {r}" for r in RUNGS) + " |", "|---|" + "---:|" * len(RUNGS)]
    for task in tasks:
        curves = sur.query(task, configs, [*RUNGS, EPOCHS])
        final = [c[-1][1] for c in curves]
        rhos = [spearmanr([c[i][1] for c in curves], final).statistic for i in range(len(RUNGS))]
        lines.append(f"| {task} | " + " | ".join(f"{rho:+.2f}" for rho in rhos) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-surrogate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--yahpo-python", default=SETTINGS["yahpo_python"])
    parser.add_argument("--yahpo-data", default=SETTINGS["yahpo_data"])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workers", default="8", help="comma-separated worker counts")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evals", type=int, default=30,
                        help="the horizon: this many mean full-fidelity evaluations of compute")
    parser.add_argument("--initial", type=int, default=10, help="shared initial configurations")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--store", type=Path, help="JSON lines of finished runs; resumes from it")
    parser.add_argument("--render-only", action="store_true", help="only render what the store holds")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--svg", type=Path, help="plot of mean regret vs time for --svg-workers workers")
    parser.add_argument("--svg-workers", type=int, default=8)
    parser.add_argument("--rank-correlation", type=int, default=0, metavar="N",
                        help="instead: how each rung's error ranks N random configurations vs the 52-epoch error")
    args = parser.parse_args(argv)
    if args.serve_surrogate:
        serve_surrogate(args.yahpo_data)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import runs

    SETTINGS.update(yahpo_python=args.yahpo_python, yahpo_data=args.yahpo_data)
    os.environ.update(LCBENCH_YAHPO_PYTHON=args.yahpo_python, LCBENCH_YAHPO_DATA=args.yahpo_data)
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    worker_counts = [int(w) for w in args.workers.split(",")]
    if args.rank_correlation:
        print(rank_correlation(args.tasks.split(","), args.rank_correlation))
        return 0
    jobs = [Job(task, m, seed, w, args.evals, args.initial)
            for w in worker_counts for seed in range(args.seeds) for task in args.tasks.split(",") for m in methods]
    outcomes = runs.run_jobs(
        jobs, run_job, processes=args.jobs, store=args.store, outcome_type=Outcome,
        describe=lambda o: f"{o.job.workers} workers: {o.trials} trials ({o.pruned} pruned), best "
                           f"{o.trajectory[-1][1] if o.trajectory else math.nan:.4f}",
        render_only=args.render_only,
    )
    # The reference is the best any stored run found, this command's selection or not (a longer
    # horizon's runs included), so that tables rendered from one store share it.
    stored = runs.load_store(args.store, Job, Outcome).values() if args.store else outcomes
    ref = references([o for o in stored if not o.error])
    runs.publish(report(outcomes, methods, worker_counts, args, ref), args.markdown)
    if args.svg:
        args.svg.write_text(svg_plot([o for o in outcomes if not o.error], methods, args.svg_workers, ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
