"""``Tuner(train, search_space, TunerConfig(...)).run()``: a whole study from Python.

    results = Tuner(train, search_space, TunerConfig(metric="val_f1", mode="max", algorithm="tpe",
                                                     num_trials=50, max_concurrent_trials=4)).run()
    results.best_params, results.best_result, results.best_run_id, results.best_model
    results.to_dataframe()

``run`` creates (or resumes: same name, same spec) the study, starts
``max_concurrent_trials`` local worker slots and shows progress with the best value so far.

Which services: ``suggestion_address`` / ``tracking_address``, else ``$TUNING_SUGGESTION_ADDRESS``
/ ``$TUNING_TRACKING_ADDRESS``, else the suite `tuning up` recorded in ``$TUNING_HOME/suite.json``
(when it runs), else an embedded suite started for the duration of the run, keeping its data
under ``home``. A suggestion service without a tracking service runs the trials untracked
and says so once (``ctx.log_model`` then fails the trial, and there is no best model); a
configured service that does not answer stops the run at once with one line
(:class:`~tuning_common.errors.Unavailable`). A run in which no trial completed raises
:class:`NoTrialCompleted` (its ``results`` hold the trials) rather than returning an empty
best.

Local slots are threads of this process: libraries that release the GIL while they train
(XGBoost, scikit-learn's native code, NumPy, PyTorch) run side by side. To spread trials over
machines, run ``tuning worker`` there against the same study.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trial_worker.client import Study, SuggestionClient
from trial_worker.context import TrialContext, get_context
from trial_worker.local_suite import Found, LocalSuite, exit_now, find_address, health_problem
from trial_worker.tune.space import to_parameters
from trial_worker.worker import COMPLETED, FAILED, PRUNED, TrialResult, Worker, WorkerConfig
from tuning.suggestion.v1 import study_pb2 as spb
from tuning_common import telemetry
from tuning_common.errors import NotFound, TuningError, Unavailable
from tuning_common.settings import data_dir
from tuning_types.study import Fidelity

if TYPE_CHECKING:
    import pandas

MODES = {"max": "maximize", "min": "minimize"}
# How long a configured service may take to answer its health check before the run stops.
PROBE_SECONDS = 5.0
# After Ctrl-C, how long the run waits for the hand-back calls to get through.
HAND_BACK_SECONDS = 5.0


@dataclass(frozen=True)
class TunerConfig:
    metric: str
    mode: str = "max"
    # None: auto for a new study (GP while the history is small, then TPE); a resumed study keeps its own.
    algorithm: str | None = None
    algorithm_settings: Mapping[str, Any] = field(default_factory=dict)
    num_trials: int = 20
    max_concurrent_trials: int = 1
    # Early stopping: "asha", "hyperband" or "median", with the training resource as fidelity,
    # e.g. Fidelity("boosting_rounds", 25, 300); train functions report steps in its unit.
    pruner: str | None = None
    pruner_settings: Mapping[str, Any] = field(default_factory=dict)
    fidelity: Fidelity | None = None
    # Names of the study's constraints; the train function reports their values with
    # ctx.report_constraints(...) (<= 0: satisfied). Infeasible trials never count as best.
    constraints: Sequence[str] = ()
    # Earlier studies of the same parameters to learn from (transfer learning: gp, tpe, auto).
    prior_studies: Sequence[str] = ()
    seed: int | None = None
    # Default: the train function's name and the time. An existing study of that name (same
    # spec) is resumed.
    study_name: str | None = None
    # Experiment of the trials' runs; default: the study's name.
    experiment: str | None = None
    # Configurations to try first (a baseline, a known good one), as Ray's points_to_evaluate.
    points_to_evaluate: Sequence[Mapping[str, Any]] = ()
    lease_seconds: float = 120.0
    max_retries: int = 2
    max_consecutive_failures: int = 5
    # A running suite; None: $TUNING_SUGGESTION_ADDRESS / $TUNING_TRACKING_ADDRESS, else the suite
    # `tuning up` recorded in $TUNING_HOME/suite.json, else an embedded one.
    suggestion_address: str | None = None
    tracking_address: str | None = None
    # Where an embedded suite keeps its databases and artifacts (default: $TUNING_HOME or .tuning).
    home: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.num_trials < 1:
            raise ValueError(f"num_trials must be 1 or more, got {self.num_trials}")
        if self.max_concurrent_trials < 1:
            raise ValueError(f"max_concurrent_trials must be 1 or more, got {self.max_concurrent_trials}")
        if self.algorithm_settings and self.algorithm is None:
            raise ValueError("algorithm_settings needs an algorithm: name the one they are for")
        if self.pruner is not None and self.fidelity is None:
            raise ValueError(f"pruner {self.pruner!r} needs a fidelity: the resource reports count in, "
                             "e.g. Fidelity('epochs', 1, 100)")


@dataclass
class TunerResults:
    """What a run found. ``trials`` hold every trial of the study, in number order."""

    study_name: str
    metric: str
    mode: str
    trials: list[spb.Trial]
    # As the suggestion service ranks them (GetBestTrials); None before any trial completed
    # (in a constrained study: before any feasible trial completed).
    best_trial: spb.Trial | None
    suggestion_address: str
    tracking_address: str | None
    # A local copy of the best trial's model artifact (None: it logged no model).
    best_model_path: Path | None = None
    _model: Any = None

    @property
    def best_params(self) -> dict[str, Any]:
        best = self.best_trial
        return {} if best is None else _params(best)

    @property
    def best_result(self) -> dict[str, float]:
        """The best trial's final metrics (``best_result["val_f1"]``)."""
        best = self.best_trial
        return {} if best is None else {m.name: m.value for m in best.metrics}

    @property
    def best_run_id(self) -> str | None:
        best = self.best_trial
        return None if best is None else (best.run_id or None)

    @property
    def best_model(self) -> Any:
        """The model the best trial logged with ``ctx.log_model`` (None if it logged none)."""
        if self._model is None and self.best_model_path is not None:
            from trial_worker.tracking.models import load_model

            self._model = load_model(self.best_model_path)
        return self._model

    def count(self, state: int) -> int:
        return sum(t.state == state for t in self.trials)

    def to_dataframe(self) -> pandas.DataFrame:
        """One row per trial: number, state, ``params.*``, ``metrics.*``, run id, duration, worker."""
        import pandas

        rows = []
        for trial in self.trials:
            row: dict[str, Any] = {
                "trial": trial.number, "state": spb.TrialState.Name(trial.state).removeprefix("TRIAL_STATE_"),
                **{f"params.{k}": v for k, v in _params(trial).items()},
                **{f"metrics.{m.name}": m.value for m in trial.metrics},
                "run_id": trial.run_id or None,
                "seconds": _seconds(trial), "worker": trial.worker_id, "reason": trial.reason,
            }
            if trial.HasField("feasible"):  # a constrained study's told trial
                row["feasible"] = trial.feasible
                row.update({f"constraints.{i}": value for i, value in enumerate(trial.constraints)})
            rows.append(row)
        return pandas.DataFrame(rows)

    def __repr__(self) -> str:
        best = self.best_trial
        summary = "no completed trial" if best is None else \
            f"best {self.metric}={_value(best, self.metric):.6g} (trial {best.number})"
        return f"TunerResults(study={self.study_name!r}, {len(self.trials)} trials, {summary})"


def _value(trial: spb.Trial, metric: str) -> float | None:
    for item in trial.metrics:
        if item.name == metric and math.isfinite(item.value):
            return item.value
    return None


def _params(trial: spb.Trial) -> dict[str, Any]:
    from tuning_types import convert

    return {name: convert.value_from_proto(value, name) for name, value in trial.parameters.items()}


def _seconds(trial: spb.Trial) -> float | None:
    if not (trial.HasField("start_time") and trial.HasField("end_time")):
        return None
    return (trial.end_time.ToMilliseconds() - trial.start_time.ToMilliseconds()) / 1000


class Progress:
    """One line, redrawn in a terminal (a line per tenth of the trials elsewhere)."""

    def __init__(self, total: int, metric: str, mode: str, *, stream=None, enabled: bool = True):
        self.total, self.metric, self.mode = total, metric, mode
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.done = {COMPLETED: 0, PRUNED: 0, FAILED: 0}
        self.best: tuple[float, int] | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last_printed = 0

    def update(self, result: TrialResult) -> None:
        with self._lock:
            if result.outcome in self.done:
                self.done[result.outcome] += 1
            value = result.metrics.get(self.metric)
            if result.outcome == COMPLETED and value is not None and math.isfinite(value):
                better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
                if better:
                    self.best = (value, result.number)
            self._draw()

    def line(self) -> str:
        finished = sum(self.done.values())
        width = 24
        filled = min(width, round(width * finished / self.total)) if self.total else width
        best = "-" if self.best is None else f"{self.best[0]:.4f} (trial {self.best[1]})"
        elapsed = time.monotonic() - self.started
        return (f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{self.total} trials  "
                f"best {self.metric}={best}  pruned {self.done[PRUNED]}  failed {self.done[FAILED]}  "
                f"{int(elapsed // 60)}:{int(elapsed % 60):02d}")

    def _draw(self) -> None:
        if not self.enabled:
            return
        finished = sum(self.done.values())
        if self.tty:
            self.stream.write("\r" + self.line())
        elif finished - self._last_printed >= max(1, self.total // 10) or finished >= self.total:
            self._last_printed = finished
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def interrupt(self, message: str) -> None:
        """One line on the progress stream, even with progress off (a Ctrl-C must be answered)."""
        with self._lock:
            self.stream.write(("\n" if self.tty else "") + message + "\n")
            self.stream.flush()
            self.tty = False  # the progress line is done with

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _accepts_context(train: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(train).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


def _study_name(train: Callable[..., Any]) -> str:
    # "<lambda>" and other odd names become "study".
    base = re.sub(r"[^A-Za-z0-9_.-]", "", getattr(train, "__name__", "")).lstrip(".-")[:80] or "study"
    return f"{base}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


class Tuner:
    def __init__(self, train: Callable[..., Any], search_space: Mapping[str, Any], config: TunerConfig):
        config.validate()
        self.parameters = to_parameters(search_space)
        self.config = config
        # Snowflake-style train functions take no argument and call get_context().
        self.train = train if _accepts_context(train) else (lambda ctx: train())
        self.name = config.study_name or _study_name(train)

    def run(self) -> TunerResults:
        config = self.config
        telemetry.setup(telemetry.TRIAL_WORKER)  # no-op unless OTEL_* configures it
        suggestion, tracking = self._services()
        if suggestion is None:
            with LocalSuite(config.home or data_dir()) as suite:
                return self._run(suite.suggestion_address, suite.tracking_address)
        for found in filter(None, (suggestion, tracking)):
            problem = health_problem(found.address, timeout=PROBE_SECONDS)
            if problem:
                raise Unavailable(f"{found.describe()} does not answer ({problem}): start it, or point the "
                                  f"Tuner at a running one")
        if tracking is None:
            print(f"tuner: {suggestion.describe()}, and no tracking service (TunerConfig.tracking_address, "
                  "$TUNING_TRACKING_ADDRESS): the trials run without tracking runs, so ctx.log_model and "
                  "results.best_model are not available", file=sys.stderr, flush=True)
        return self._run(suggestion.address, None if tracking is None else tracking.address)

    def _services(self) -> tuple[Found | None, Found | None]:
        """The suggestion and tracking services to use; (None, None): start an embedded suite."""
        config = self.config
        suggestion = find_address("suggestion", config.suggestion_address or "",
                                  flag="TunerConfig.suggestion_address", home=config.home)
        if suggestion.fallback:  # nothing configured, no suite running
            return None, None
        tracking = find_address("tracking", config.tracking_address or "", flag="TunerConfig.tracking_address",
                                home=config.home)
        if tracking.fallback or tracking.recorded and not suggestion.recorded:
            # A tracking service of an unrelated suite would split the trials from their runs.
            return suggestion, None
        return suggestion, tracking

    def _create_study(self, client: SuggestionClient) -> Study:
        config = self.config
        study = client.create_study(
            self.name, self.parameters, objectives={config.metric: MODES[config.mode]}, algorithm=config.algorithm,
            algorithm_settings=config.algorithm_settings, seed=config.seed, max_trials=config.num_trials,
            max_parallel_trials=config.max_concurrent_trials, lease_seconds=config.lease_seconds,
            max_retries=config.max_retries, fidelity=config.fidelity, pruner=config.pruner,
            pruner_settings=config.pruner_settings, constraints=config.constraints,
            prior_studies=config.prior_studies,
        )
        if study.created:
            for point in config.points_to_evaluate:
                study.enqueue(point)
        return study

    def _run(self, suggestion_address: str, tracking_address: str | None) -> TunerResults:
        config = self.config
        with SuggestionClient(suggestion_address) as client:
            study = self._create_study(client)
            progress = Progress(config.num_trials, config.metric, config.mode, enabled=config.progress)
            worker_config = WorkerConfig(
                study=study.name, suggestion_address=suggestion_address, tracking_address=tracking_address,
                tracking=tracking_address is not None, experiment=config.experiment,
                parallel=config.max_concurrent_trials, max_consecutive_failures=config.max_consecutive_failures,
            )
            with Worker(self.train, worker_config, on_result=progress.update) as worker:
                try:
                    with _ctrl_c_hands_back(worker, progress) as interrupted:
                        summary = worker.run()
                finally:
                    progress.close()
            if interrupted:
                raise Interrupted(f"interrupted: the running trials of study {study.name!r} were handed back")
            if summary.reason.startswith("error"):
                raise TuningError(f"the tuner stopped: {summary.reason}")
            trials = list(study.trials())
            best = study.best_trials()
        results = TunerResults(study.name, config.metric, config.mode, trials, best[0] if best else None,
                               suggestion_address, tracking_address)
        if results.best_trial is None:
            raise NoTrialCompleted(results)
        if tracking_address is not None and results.best_run_id:
            results.best_model_path = _download_model(tracking_address, results.best_run_id)
        return results


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run, which handed its running trials back and said so on stderr."""

    announced = True


@contextlib.contextmanager
def _ctrl_c_hands_back(worker: Worker, progress: Progress) -> Iterator[list[int]]:
    """While the block runs, a first Ctrl-C stops asking and hands the running trials back
    (the block then ends within about :data:`~trial_worker.worker.ABANDON_SECONDS`, and the
    yielded list is no longer empty); a second one leaves at once (exit status 130). Outside
    the main thread, where no signal handler can be set, Ctrl-C is Python's as usual."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            exit_now(130)
        progress.interrupt("Ctrl-C: stopped asking for trials and handing the running ones back to the study "
                           "(Ctrl-C again quits at once)")
        # Not here: the hand-back calls the service, and the main thread must stay free for a second Ctrl-C.
        hand_back.start()

    hand_back = threading.Thread(target=worker.hand_back, args=("Ctrl-C",), name="hand-back", daemon=True)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield received
        if received:  # the worker's channels close next: let the last release through first
            hand_back.join(HAND_BACK_SECONDS)
    finally:
        signal.signal(signal.SIGINT, previous)


class NoTrialCompleted(TuningError):
    """The run ended without a completed trial, so there is no best; ``results`` hold the trials."""

    code = "FAILED_PRECONDITION"
    default_reason = "NO_TRIAL_COMPLETED"

    def __init__(self, results: TunerResults):
        self.results = results
        failed = [t for t in results.trials if t.state == spb.TRIAL_STATE_FAILED]
        counts = ", ".join(f"{results.count(state)} {name}" for state, name in (
            (spb.TRIAL_STATE_FAILED, "failed"), (spb.TRIAL_STATE_PRUNED, "pruned"),
            (spb.TRIAL_STATE_STALE, "handed back or lost")))
        last = f"; the last failure: {failed[-1].reason.strip().splitlines()[-1]}" if failed and failed[-1].reason else ""
        infeasible = sum(t.state == spb.TRIAL_STATE_COMPLETED and t.HasField("feasible") and not t.feasible
                         for t in results.trials)
        if infeasible:
            counts += f", {infeasible} completed but infeasible (a constraint value above 0)"
        what = "completed feasibly" if infeasible else "completed"
        super().__init__(f"no trial of study {results.study_name!r} {what} ({len(results.trials)} trials: "
                         f"{counts}){last}")


def _download_model(tracking_address: str, run_id: str) -> Path | None:
    """A local copy of the run's ``model`` artifact, which outlives an embedded suite."""
    from trial_worker.tracking.client import TrackingClient
    from trial_worker.tracking.models import META_FILE

    with TrackingClient(tracking_address) as client:
        if not any(f.path == "model" and f.is_dir for f in client.list_artifacts(run_id)):
            return None
        target = Path(tempfile.mkdtemp(prefix="tuning-best-model-"))
        try:
            folder = client.download(run_id, "model", target)
        except NotFound:
            shutil.rmtree(target, ignore_errors=True)
            return None
    return folder if (folder / META_FILE).is_file() else None


__all__ = ["Interrupted", "NoTrialCompleted", "Progress", "Tuner", "TunerConfig", "TunerResults", "TrialContext", "get_context"]
