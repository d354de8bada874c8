"""The train-function contract: ``def train(ctx: TrialContext) -> metrics``.

    def train(ctx):
        model = XGBClassifier(**ctx.params, callbacks=[ctx.xgboost_callback()])
        model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
        ctx.log_model(model)
        return {"val_f1": f1_score(y_val, model.predict(x_val))}

The worker hands each trial's function a fresh context. ``report`` sends intermediate values
(logged to the trial's run and shown to the study's pruner) and answers whether to stop;
raising :class:`TrialPruned` (or returning after ``report`` said stop) ends the trial as
pruned. The return value is the trial's final metrics: a mapping, a single number for a
single-objective study, or None to use the last reported values.

In a study with constraints (``constraints: [memory_over]``), the function also states each
constraint's value before it returns, ``ctx.report_constraints(memory_over=peak_gb - 8.0)``
(<= 0: satisfied); a trial that completes without them fails with the service's reason.

In a pbt study (population-based training) each trial is one segment of a member's
training: resume from ``ctx.checkpoint`` (a local folder, or None for a fresh start) at
``ctx.start_step``, train and report up to ``ctx.budget``, save with
``ctx.save_checkpoint(folder)`` and return the value; the worker fails a segment that saved
no checkpoint unless it is the member's last.

Inside a train function, :func:`get_context` returns the running trial's context, as
Snowflake's ``tune.get_tuner_context()`` and Ray Tune's ``tune.get_context()`` do.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common import telemetry
from tuning_common.errors import DeadlineExceeded, FailedPrecondition, NotFound, TuningError, Unavailable

if TYPE_CHECKING:
    import os

    from trial_worker.client import Trial
    from trial_worker.tracking import ModelInfo
    from trial_worker.tracking.client import TrackingClient
    from trial_worker.tracking.logger import RunLogger
    from tuning.suggestion.v1 import study_pb2 as spb
    from tuning.tracking.v1 import tracking_pb2 as tpb


log = logging.getLogger(__name__)

# A report that cannot get through within about a second is skipped rather than blocking training.
REPORT_RETRIES = 3
# The folder of a run's artifacts that holds its checkpoint (pbt segments load their parent's).
CHECKPOINT_ARTIFACTS = "checkpoint"




_local = threading.local()


def get_context() -> TrialContext:
    """The context of the trial this thread is training."""
    ctx = getattr(_local, "context", None)
    if ctx is None:
        raise FailedPrecondition("no trial is running in this thread: get_context() works inside a train function",
                                 reason="NO_TRIAL_CONTEXT")
    return ctx


class TrialContext:
    """What a train function sees of its trial; created by the worker, one per trial."""

    def __init__(self, trial: Trial, *, run_id: str | None, logger: RunLogger | None,
                 tracking: TrackingClient | None, on_report: Callable[[TrialContext], None] | None = None):
        self._trial = trial
        self.run_id = run_id
        self._logger = logger
        self._tracking = tracking
        self._on_report = on_report
        self._lock = threading.Lock()
        self._stop = False
        self._lost: str | None = None
        self.last_step: int | None = None
        self.last_metrics: dict[str, float] = {}
        # Set by report_constraints: every declared constraint's value, by name.
        self.constraints: dict[str, float] = {}
        # Whether save_checkpoint stored one for this trial.
        self.checkpoint_saved = False
        self._checkpoint: Path | None = None
        self._scratch: str | None = None

    # --- what the trial is -------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """The trial's active hyperparameters, with their Python types."""
        return self._trial.params

    @property
    def budget(self) -> float | None:
        """The training budget of a multi-fidelity study (e.g. boosting rounds), else None."""
        return self._trial.budget

    @property
    def trial_id(self) -> int:
        return self._trial.id

    @property
    def trial_number(self) -> int:
        return self._trial.number

    @property
    def study(self) -> str:
        return self._trial.study.name

    @property
    def objectives(self) -> list[str]:
        return self._trial.study.objectives

    @property
    def constraint_names(self) -> list[str]:
        """The study's declared constraints; report a value for each with :meth:`report_constraints`."""
        return self._trial.study.constraints

    @property
    def pbt_segment(self) -> spb.PbtSegment | None:
        """In a pbt study: this segment's member, generation, steps and parent trial; else None."""
        return self._trial.pbt_segment

    @property
    def start_step(self) -> int:
        """The step training resumes at (a pbt segment's start, where ``checkpoint`` was saved); else 0."""
        segment = self.pbt_segment
        return 0 if segment is None else segment.start_step

    @property
    def checkpoint(self) -> Path | None:
        """The local folder holding the checkpoint this trial resumes from, or None to start from scratch.

        In a pbt study it is the ``checkpoint/`` artifacts of the parent segment's run (the
        member's own previous segment, or after an exploit a better member's), downloaded on
        first use into a folder removed when the trial ends.
        """
        segment = self.pbt_segment
        if segment is None or not segment.HasField("parent_trial_id"):
            return None
        with self._lock:
            if self._checkpoint is None:
                self._checkpoint = self._download_checkpoint(segment.parent_trial_id)
            return self._checkpoint

    def _download_checkpoint(self, parent_id: int) -> Path:
        if self._tracking is None:
            raise FailedPrecondition("loading a checkpoint needs a tracking service: this worker runs without one",
                                     reason="NO_TRACKING")
        client = self._trial.study.client
        parent = client.call("GetTrial", api.GetTrialRequest(trial_id=parent_id)).trial
        try:
            saved = bool(parent.run_id) and bool(self._tracking.list_artifacts(parent.run_id, CHECKPOINT_ARTIFACTS))
        except NotFound:
            saved = False
        if not saved:
            raise FailedPrecondition(f"trial {parent.number} (id {parent_id}), whose checkpoint this segment starts "
                                     f"from, saved none (ctx.save_checkpoint)", reason="CHECKPOINT_MISSING")
        return self._tracking.download(parent.run_id, CHECKPOINT_ARTIFACTS, self.scratch_dir())

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Stores a file or a folder as this trial's checkpoint (the run's ``checkpoint/`` artifacts).

        Call it before returning: a pbt study's next segment of this member (or of a member that
        exploits it) loads it. The upload is done when this returns.
        """
        run_id, local = self._run("save_checkpoint"), Path(path)
        if local.is_dir():
            self._tracking.upload_dir(run_id, local, CHECKPOINT_ARTIFACTS)
        elif local.is_file():
            self._tracking.upload_file(run_id, local, CHECKPOINT_ARTIFACTS)
        else:
            raise FileNotFoundError(f"save_checkpoint: {local} is neither a file nor a folder")
        self.checkpoint_saved = True

    def scratch_dir(self) -> Path:
        """A private folder for this trial, removed when it ends."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix=f"tuning-trial-{self.trial_id}-")
        return Path(self._scratch)

    def close(self) -> None:
        """Removes the trial's scratch folder (downloaded checkpoints); the worker calls it."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    @property
    def should_stop(self) -> bool:
        """True once the pruner said stop, the lease was lost or the worker is shutting down."""
        return self._stop

    @property
    def pruned(self) -> bool:
        return self._stop and self._lost is None

    @property
    def lost(self) -> str | None:
        """Why the trial stopped being this worker's, if it did."""
        return self._lost

    # --- reporting ---------------------------------------------------------------------------

    def report(self, step: int, **metrics: float) -> bool:
        """Records intermediate values at ``step`` (in the run, and for the pruner); True means stop now.

        Every value is logged to the trial's run. Finite ones are also sent to the study, whose
        pruner looks at the first objective; a NaN loss is logged but not sent.
        """
        if not metrics:
            raise ValueError("report() needs at least one metric, e.g. ctx.report(step, val_loss=0.3)")
        values = {name: float(value) for name, value in metrics.items()}
        if self._logger is not None and self.run_id is not None:
            self._logger.log_metrics(self.run_id, values, step)
        finite = {name: value for name, value in values.items() if math.isfinite(value)}
        with self._lock:
            self.last_step = step if self.last_step is None else max(self.last_step, step)
            self.last_metrics.update(finite)
        if self._stop or not finite:
            return self._stop
        with telemetry.span("report measurement", trial_id=self.trial_id, step=step) as span:
            try:
                stop = self._trial.report(step, finite, retries=REPORT_RETRIES)
            except FailedPrecondition as error:
                self.lose(str(error))
                return True
            except (Unavailable, DeadlineExceeded) as error:
                # Training goes on while the service restarts; the next report (or the tell) gets through.
                log.warning("trial %d: report of step %d skipped: %s", self.trial_number, step, error)
                return self._stop
            telemetry.set_attributes(span, decision="stop" if stop else "continue")
        if stop:
            self._stop = True
        if self._on_report is not None:
            self._on_report(self)
        return self._stop

    def report_constraints(self, values: Sequence[float] | Mapping[str, float] | None = None, /,
                           **by_name: float) -> None:
        """States the trial's constraint values, told with its result (<= 0 means satisfied).

        Either by name, ``ctx.report_constraints(memory_over=0.5, latency_over=-3)``, or as one
        value per declared constraint in order, ``ctx.report_constraints([0.5, -3])``. Every
        declared constraint needs a value; a later call replaces the earlier one.
        """
        from trial_worker.client import constraint_values

        if values is not None and by_name:
            raise ValueError("report_constraints() takes either values or keyword arguments, not both")
        names = self.constraint_names
        if not names:
            raise ValueError(f"study {self.study!r} declares no constraints: create it with constraints=[...]")
        given = by_name if values is None else values
        if not isinstance(given, Mapping):
            given = list(given)
            if len(given) != len(names):
                raise ValueError(f"expected {len(names)} constraint value(s), one for each of {names}, "
                                 f"got {len(given)}")
        ordered = constraint_values(given, names)
        for name, value in zip(names, ordered):
            if not math.isfinite(value):
                raise ValueError(f"constraint {name!r} is {value}; constraint values must be finite")
        with self._lock:
            self.constraints = dict(zip(names, ordered))

    def lose(self, why: str) -> None:
        """Marks the trial as no longer this worker's; the next ``report`` says stop."""
        with self._lock:
            self._lost = self._lost or why
            self._stop = True

    # --- tracking ----------------------------------------------------------------------------

    def _run(self, what: str) -> str:
        if self.run_id is None:
            raise FailedPrecondition(f"{what} needs a tracking service: this worker runs without one",
                                     reason="NO_TRACKING")
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logs extra params (the trial's hyperparameters are logged already)."""
        self._logger.log_params(self._run("log_params"), params)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Logs metrics to the run without showing them to the pruner."""
        self._logger.log_metrics(self._run("log_metrics"), {k: float(v) for k, v in metrics.items()}, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._logger.set_tags(self._run("set_tags"), tags)

    def log_artifact(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> tpb.FileInfo:
        """Uploads a file into the run's artifacts (folder ``artifact_path``)."""
        return self._tracking.upload_file(self._run("log_artifact"), local_path, artifact_path)

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> list[tpb.FileInfo]:
        return self._tracking.upload_dir(self._run("log_artifacts"), local_dir, artifact_path)

    def log_model(self, model: Any, artifact_path: str = "model") -> ModelInfo:
        """Saves an XGBoost or scikit-learn model as the run's ``model`` artifact (what ``best_model`` loads)."""
        from trial_worker.tracking.fluent import save_run_model

        return save_run_model(self._tracking, self._run("log_model"), model, artifact_path)

    # --- helpers -----------------------------------------------------------------------------

    def xgboost_callback(self, *, names: Mapping[str, str] | None = None, report_every: int = 1) -> Any:
        """An XGBoost callback that reports every boosting round and stops ``fit`` when pruned.

        See :class:`trial_worker.integrations.xgboost.ReportCallback`.
        """
        from trial_worker.integrations.xgboost import ReportCallback

        return ReportCallback(self, names=names, report_every=report_every)


def bind(ctx: TrialContext | None) -> None:
    """Makes ``ctx`` this thread's current trial context (None clears it)."""
    _local.context = ctx


def final_metrics(result: Any, ctx: TrialContext) -> dict[str, float]:
    """The trial's final metrics from what the train function returned."""
    if result is None:
        if not ctx.last_metrics:
            raise TuningError("the train function returned None and reported nothing: return its metrics")
        return dict(ctx.last_metrics)
    if isinstance(result, Mapping):
        metrics = {}
        for name, value in result.items():
            try:
                metrics[str(name)] = float(value)
            except (TypeError, ValueError):
                raise TuningError(f"the train function returned {name}={value!r:.60}: metrics must be numbers") from None
        return metrics
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        if len(ctx.objectives) != 1:
            raise TuningError(f"the study has objectives {ctx.objectives}: return a dict with a value for each")
        return {ctx.objectives[0]: float(result)}
    raise TuningError(f"the train function returned a {type(result).__name__}: return a dict of metrics, "
                      "a number (single objective) or None")
