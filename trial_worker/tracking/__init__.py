"""Tracking from Python: a typed client of the tracking service, a background logger with an
offline spool, and a module-level API like MLflow's.

    from trial_worker import tracking

    tracking.set_experiment("wine")
    with tracking.start_run("baseline", seed=7):
        tracking.log_params({"max_depth": 6})
        tracking.log_metric("val_auc", 0.91, step=10)
        tracking.log_model(model, registered_model_name="wine-xgb")

See :mod:`trial_worker.tracking.fluent` (the module-level functions),
:class:`TrackingClient` (one method per RPC), :class:`RunLogger` (batching and spool) and
:mod:`trial_worker.tracking.models` (how models are saved).
"""

from trial_worker.tracking.client import (
    ChecksumMismatch,
    TrackingClient,
    dataset_input,
    metric,
    metric_series,
    model_stage,
    run_status,
    tracking_address,
)
from trial_worker.tracking.fluent import (
    ActiveRun,
    ModelInfo,
    active_run,
    end_run,
    flush,
    load_model,
    log_artifact,
    log_artifacts,
    log_input,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    register_model,
    run_logger,
    search_runs,
    set_alias,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_address,
    start_run,
    tracking_client,
    transition_stage,
)
from trial_worker.tracking.logger import RunLogger, default_spool_dir

__all__ = [
    "ActiveRun", "ChecksumMismatch", "ModelInfo", "RunLogger", "TrackingClient", "active_run", "dataset_input",
    "default_spool_dir", "end_run", "flush", "load_model", "log_artifact", "log_artifacts", "log_input",
    "log_metric", "log_metrics", "log_model", "log_param", "log_params", "metric", "metric_series", "model_stage",
    "register_model", "run_logger", "run_status", "search_runs", "set_alias", "set_experiment", "set_tag",
    "set_tags", "set_tracking_address", "start_run", "tracking_address", "tracking_client", "transition_stage",
]
