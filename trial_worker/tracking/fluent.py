"""The module-level tracking API, as in MLflow:

    from trial_worker import tracking

    tracking.set_experiment("wine")
    with tracking.start_run("xgb", seed=7) as run:
        tracking.log_params({"max_depth": 6, "eta": 0.1})
        for step, loss in enumerate(losses):
            tracking.log_metric("loss", loss, step)     # queued: returns at once
        tracking.log_model(booster, registered_model_name="wine-xgb")
    frame = tracking.search_runs(["wine"], "metrics.loss < 0.3")

One :class:`TrackingClient` and one :class:`RunLogger` per process, created on first use
for ``set_tracking_address`` (default ``$TUNING_TRACKING_ADDRESS``, ``127.0.0.1:50052``).
Each thread has its own stack of active runs: ``start_run(nested=True)`` makes a child of
the current one. Leaving a ``with start_run()`` block ends the run FINISHED, FAILED when an
exception escapes, KILLED on KeyboardInterrupt; ending waits (up to 30 s) until what was
logged to the run is stored, and when the service is down the end is spooled behind the
run's metrics rather than lost. Runs carry ``tuning.source.*`` provenance tags
(:mod:`trial_worker.tracking.provenance`).

Params, metrics and tags go through the logger (batched, in the background): errors the
service gives for them are raised from the next ``flush()`` or from the end of the run.
Artifacts, inputs and models are sent at the call.
"""

from __future__ import annotations

import getpass
import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trial_worker.tracking import models, provenance
from trial_worker.tracking.client import TrackingClient, dataset_input, model_stage, run_status
from trial_worker.tracking.logger import RunLogger
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning_common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TuningError,
    Unavailable,
)

if TYPE_CHECKING:
    import pandas

    from trial_worker.client import Trial

log = logging.getLogger(__name__)

END_TIMEOUT = 30.0
RUNS_SCHEME, MODELS_SCHEME = "runs:/", "models:/"

_lock = threading.RLock()
_address: str | None = None
_logger_options: dict[str, Any] = {}
_client: TrackingClient | None = None
_logger: RunLogger | None = None
_experiment_id: int | None = None
_local = threading.local()


# --- connection and experiment ------------------------------------------------------------------

def set_tracking_address(address: str | None, *, spool_dir: str | os.PathLike | None = None,
                         flush_interval: float = 0.2) -> None:
    """Points the API at another service (None: the default); what was queued for the old one is flushed."""
    global _address, _client, _logger, _experiment_id
    with _lock:
        client, logger = _client, _logger
        _address, _client, _logger, _experiment_id = address, None, None, None
        _logger_options.clear()
        _logger_options.update(spool_dir=spool_dir, flush_interval=flush_interval)
    try:
        if logger is not None:
            logger.close(END_TIMEOUT)
    finally:
        if client is not None:
            client.close()


def tracking_client() -> TrackingClient:
    """The process's client (for everything the module-level API does not cover)."""
    global _client
    with _lock:
        if _client is None:
            _client = TrackingClient(_address)
        return _client


def run_logger() -> RunLogger:
    """The process's background logger."""
    global _logger
    if (logger := _logger) is not None:  # the hot path of log_metric takes no lock
        return logger
    with _lock:
        if _logger is None:
            _logger = RunLogger(tracking_client(), **_logger_options)
        return _logger


def set_experiment(name: str) -> pb.Experiment:
    """Makes ``name`` (created if needed) the experiment of the runs started from now on."""
    global _experiment_id
    experiment = tracking_client().get_or_create_experiment(name)
    with _lock:
        _experiment_id = experiment.id
    return experiment


def _experiment_id_of(experiment: str | int | None) -> int:
    if experiment is None:
        return 0 if _experiment_id is None else _experiment_id
    if isinstance(experiment, int):
        return experiment
    return tracking_client().get_or_create_experiment(experiment).id


# --- runs --------------------------------------------------------------------------------------

class ActiveRun:
    """A run started by :func:`start_run`; a context manager that ends it."""

    def __init__(self, run: pb.Run):
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def experiment_id(self) -> int:
        return self.run.experiment_id

    def __repr__(self) -> str:
        return f"ActiveRun(run_id={self.run_id!r}, name={self.run.name!r})"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            status = pb.RUN_STATUS_FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = pb.RUN_STATUS_KILLED
        else:
            status = pb.RUN_STATUS_FAILED
        try:
            _end(self, status)
        except TuningError as error:
            if exc_type is None:
                raise
            # The exception leaving the block matters more; this one is only reported.
            log.warning("ending run %s: %s", self.run_id, error)


def _stack() -> list[ActiveRun]:
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


def active_run() -> ActiveRun | None:
    """The innermost run this thread started and has not ended."""
    stack = _stack()
    return stack[-1] if stack else None


def _current() -> ActiveRun:
    run = active_run()
    if run is None:
        raise FailedPrecondition("no active run: call start_run() first", reason="NO_ACTIVE_RUN")
    return run


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry or login name in containers
        return ""


def trial_link(trial: Trial | pb.TrialLink) -> pb.TrialLink:
    """What a run records of its suggestion-service trial."""
    if isinstance(trial, pb.TrialLink):
        return trial
    return pb.TrialLink(study=trial.study.name, trial_id=trial.id, trial_number=trial.number)


def start_run(name: str | None = None, *, nested: bool = False, run_group: str | None = None,
              tags: Mapping[str, Any] | None = None, trial: Trial | pb.TrialLink | None = None,
              experiment: str | int | None = None, seed: int | None = None,
              config_path: str | os.PathLike | None = None) -> ActiveRun:
    """Starts a run in ``experiment`` (default: the one of :func:`set_experiment`, else "Default").

    ``nested=True`` makes it a child of this thread's active run (refused without it while one
    is active). ``trial`` links the run to a suggestion-service trial (its study becomes the
    default ``run_group``). ``seed`` and ``config_path`` are recorded with the provenance tags.
    """
    stack = _stack()
    if stack and not nested:
        raise FailedPrecondition(f"run {stack[-1].run_id} is active: end it first, or pass nested=True",
                                 reason="RUN_ALREADY_ACTIVE")
    link = None if trial is None else trial_link(trial)
    if link is not None:
        run_group = run_group or link.study
        name = name or f"trial-{link.trial_number}"
    run_tags = {**provenance.source_tags(seed=seed, config_path=config_path),
                **{k: str(v) for k, v in (tags or {}).items()}}
    run = tracking_client().create_run(
        _experiment_id_of(experiment), name=name or "", tags=run_tags,
        parent_run_id=stack[-1].run_id if stack else "", run_group=run_group or "", user=_user(), trial=link)
    active = ActiveRun(run)
    stack.append(active)
    return active


def _end(active: ActiveRun, status: int) -> None:
    """Ends ``active`` and any run started inside it and still open, once what was logged to them is stored."""
    stack = _stack()
    if active not in stack:
        return
    ending = []
    while ending[-1:] != [active]:
        ending.append(stack.pop())
    logger = run_logger()
    for run in ending:
        logger.end_run(run.run_id, status)
    # While the service is down the ends are spooled behind the runs' data.
    try:
        logger.settle(END_TIMEOUT)
    except (Unavailable, DeadlineExceeded) as error:
        log.warning("the end of run %s is spooled: %s", active.run_id, error)


def end_run(status: int | str = "FINISHED") -> None:
    """Ends this thread's innermost active run (no-op without one) once what was logged to it is stored."""
    run = active_run()
    if run is not None:
        _end(run, run_status(status))


# --- logging -----------------------------------------------------------------------------------

def log_param(key: str, value: Any) -> None:
    run_logger().log_param(_current().run_id, key, value)


def log_params(params: Mapping[str, Any]) -> None:
    run_logger().log_params(_current().run_id, params)


def log_metric(key: str, value: float, step: int = 0) -> None:
    """Queues one point (timestamped now); returns at once."""
    run_logger().log_metric(_current().run_id, key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int = 0) -> None:
    run_logger().log_metrics(_current().run_id, metrics, step)


def set_tag(key: str, value: Any) -> None:
    run_logger().set_tag(_current().run_id, key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    run_logger().set_tags(_current().run_id, tags)


def flush(timeout: float | None = None) -> None:
    """Waits until everything logged so far is stored; raises the errors the service gave."""
    run_logger().flush(timeout)


def log_artifact(local_path: str | os.PathLike, artifact_path: str | None = None) -> pb.FileInfo:
    """Uploads a file into the folder ``artifact_path`` of the active run's artifacts."""
    return tracking_client().upload_file(_current().run_id, local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike, artifact_path: str | None = None) -> list[pb.FileInfo]:
    """Uploads the files under ``local_dir`` into the folder ``artifact_path``."""
    return tracking_client().upload_dir(_current().run_id, local_dir, artifact_path)


def log_input(name: str, digest: str, source: str = "", context: str = "", *, source_type: str = "",
              schema: str = "", profile: str = "", tags: Mapping[str, str] | None = None) -> None:
    """Records a dataset (identified by name and content digest) as an input of the active run."""
    item = dataset_input(name, digest, source, context, source_type=source_type, schema=schema, profile=profile,
                         tags=tags)
    tracking_client().log_inputs(_current().run_id, [item])


# --- models ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelInfo:
    run_id: str
    artifact_path: str
    model_uri: str
    flavor: str
    model_class: str
    # Set when log_model registered it.
    registered_version: rpb.ModelVersion | None = None


def log_model(model: Any, artifact_path: str = "model", *, registered_model_name: str | None = None) -> ModelInfo:
    """Saves an XGBoost or scikit-learn model into the active run's artifacts, and registers it if asked."""
    return save_run_model(tracking_client(), _current().run_id, model, artifact_path,
                          registered_model_name=registered_model_name)


def save_run_model(client: TrackingClient, run_id: str, model: Any, artifact_path: str = "model", *,
                   registered_model_name: str | None = None) -> ModelInfo:
    """Saves ``model`` into the artifacts of run ``run_id`` (any run, not only an active one)."""
    with tempfile.TemporaryDirectory(prefix="tuning-model-") as folder:
        meta = models.save_model(model, folder)
        client.upload_dir(run_id, folder, artifact_path)
    uri = f"{RUNS_SCHEME}{run_id}/{artifact_path.strip('/')}"
    version = None
    if registered_model_name is not None:
        version = client.create_model_version(registered_model_name, uri, run_id=run_id)
    return ModelInfo(run_id, artifact_path, uri, meta.flavor, meta.model_class, version)


def _split_runs_uri(uri: str) -> tuple[str, str]:
    run_id, _, path = uri.removeprefix(RUNS_SCHEME).partition("/")
    if not run_id or not path.strip("/"):
        raise InvalidArgument("uri", f"expected runs:/<run_id>/<path>, got {uri!r}")
    return run_id, path.strip("/")


def _model_version(uri: str) -> rpb.ModelVersion:
    """The version a ``models:/<name>/<version>``, ``models:/<name>/<stage>`` or ``models:/<name>@<alias>`` names."""
    client = tracking_client()
    rest = uri.removeprefix(MODELS_SCHEME)
    name, at, alias = rest.rpartition("@")
    if at and name:
        return client.get_model_version_by_alias(name, alias)
    name, _, reference = rest.rpartition("/")
    if not name or not reference:
        raise InvalidArgument("uri", f"expected models:/<name>/<version> or models:/<name>@<alias>, got {uri!r}")
    if reference.isdigit():
        return client.get_model_version(name, int(reference))
    wanted = model_stage(reference)
    for version in client.get_registered_model(name).latest_versions:
        if version.stage == wanted:
            return version
    raise NotFound(f"model {name!r} has no version in stage {reference!r}")


def _model_location(uri: str) -> tuple[str, str]:
    """(run id, path in its artifacts) of a runs:/ or models:/ URI."""
    if uri.startswith(RUNS_SCHEME):
        return _split_runs_uri(uri)
    if not uri.startswith(MODELS_SCHEME):
        raise InvalidArgument("uri", f"expected runs:/<run_id>/<path> or models:/<name>/..., got {uri!r}")
    version = _model_version(uri)
    if version.source.startswith(RUNS_SCHEME):
        return _split_runs_uri(version.source)
    client = tracking_client()
    location = client.get_model_version_download_uri(version.name, version.version)
    root = client.get_run(version.run_id).artifact_uri if version.run_id else ""
    if not root or not location.startswith(root.rstrip("/") + "/"):
        raise FailedPrecondition(f"version {version.version} of {version.name!r} is stored at {location}, outside "
                                 "any run's artifacts: it cannot be downloaded through the tracking service",
                                 reason="NOT_A_RUN_ARTIFACT")
    return version.run_id, location[len(root.rstrip("/")) + 1:]


def load_model(uri: str) -> Any:
    """Downloads (checksums verified) and rebuilds a model logged by :func:`log_model`.

    ``uri``: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>/<stage>``
    or ``models:/<name>@<alias>``. scikit-learn models are unpickled: load only models you trust.
    """
    run_id, path = _model_location(uri)
    with tempfile.TemporaryDirectory(prefix="tuning-model-") as folder:
        local = tracking_client().download(run_id, path, folder)
        return models.load_model(local)


def register_model(uri: str, name: str) -> rpb.ModelVersion:
    """Registers the model at ``uri`` (``runs:/...`` or ``models:/...``) as the next version of ``name``."""
    if uri.startswith(MODELS_SCHEME):
        version = _model_version(uri)
        return tracking_client().create_model_version(name, version.source, run_id=version.run_id)
    run_id, _ = _split_runs_uri(uri)
    return tracking_client().create_model_version(name, uri, run_id=run_id)


def set_alias(name: str, alias: str, version: int) -> None:
    tracking_client().set_registered_model_alias(name, alias, version)


def transition_stage(name: str, version: int, stage: int | str, archive_existing: bool = False,
                     reason: str = "") -> rpb.ModelVersion:
    """Moves a version to "None", "Staging", "Production" or "Archived"."""
    return tracking_client().transition_model_version_stage(
        name, version, stage, archive_existing_versions=archive_existing, actor=_user(), reason=reason)


# --- search ------------------------------------------------------------------------------------

_BASE_COLUMNS = ["run_id", "experiment_id", "run_name", "status", "artifact_uri", "start_time", "end_time",
                 "parent_run_id", "run_group"]


def search_runs(experiment_names: Sequence[str] | None = None, filter: str = "",
                order_by: Sequence[str] | None = None, max_results: int = 1000) -> pandas.DataFrame:
    """Runs as a DataFrame, one row per run, like ``mlflow.search_runs``.

    Columns: run_id, experiment_id, run_name, status ("FINISHED", ...), artifact_uri,
    start_time and end_time (UTC timestamps), parent_run_id, run_group, then ``metrics.<key>``
    (latest values), ``params.<key>`` and ``tags.<key>``. ``experiment_names`` default to the
    current experiment.
    """
    try:
        import pandas as pd
    except ImportError as error:
        raise ImportError("search_runs returns a pandas DataFrame: pip install pandas") from error
    client = tracking_client()
    if experiment_names is None:
        ids = [_experiment_id_of(None)]
    else:
        ids = [client.get_experiment_by_name(name).id for name in experiment_names]
    rows, keys = [], {"metrics": set(), "params": set(), "tags": set()}
    for run in client.search_runs(ids, filter, order_by=order_by or (), max_results=max_results):
        row = {
            "run_id": run.id, "experiment_id": run.experiment_id, "run_name": run.name,
            "status": pb.RunStatus.Name(run.status).removeprefix("RUN_STATUS_"), "artifact_uri": run.artifact_uri,
            "start_time": run.start_time.ToMilliseconds() if run.HasField("start_time") else None,
            "end_time": run.end_time.ToMilliseconds() if run.HasField("end_time") else None,
            "parent_run_id": run.parent_run_id or None, "run_group": run.run_group or None,
        }
        for kind, items in (("metrics", ((m.key, m.value) for m in run.latest_metrics)),
                            ("params", ((p.key, p.value) for p in run.params)),
                            ("tags", ((t.key, t.value) for t in run.tags))):
            for key, value in items:
                row[f"{kind}.{key}"] = value
                keys[kind].add(key)
        rows.append(row)
    columns = _BASE_COLUMNS + [f"{kind}.{key}" for kind in ("metrics", "params", "tags") for key in sorted(keys[kind])]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame


__all__ = [
    "ActiveRun", "ModelInfo", "active_run", "end_run", "flush", "load_model", "log_artifact", "log_artifacts",
    "log_input", "log_metric", "log_metrics", "log_model", "log_param", "log_params", "register_model", "run_logger",
    "search_runs", "set_alias", "set_experiment", "set_tag", "set_tags", "set_tracking_address", "start_run",
    "tracking_client", "transition_stage",
]
