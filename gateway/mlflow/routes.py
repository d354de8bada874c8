"""MLflow's REST API (``/api/2.0/mlflow/...``, ``/api/2.0/mlflow-artifacts/...``,
``/api/3.0/mlflow/server-info``) over our gRPC services, so that the real ``mlflow`` client
works with ``MLFLOW_TRACKING_URI=http://<gateway>``.

Every handler reads MLflow's request (JSON body, or the query string of a GET), makes the RPCs
(the same stubs as the HTTP/JSON API) and answers MLflow's JSON; :mod:`gateway.mlflow.convert`
holds the translation rules, :mod:`gateway.mlflow.filters` the search syntax,
:mod:`gateway.mlflow.logged_models` MLflow 3's logged models and
:mod:`gateway.mlflow.artifacts` the proxied artifacts. Errors are MLflow's JSON
(:mod:`gateway.mlflow.errors`); unknown MLflow endpoints answer ENDPOINT_NOT_FOUND, which the
client understands.

Retries: MLflow's client retries every method on 429/5xx and on timeouts. Logging (log-batch,
log-metric, log-parameter, set-tag) is idempotent in the tracking service (MLflow's client
stamps every metric point, and a point is stored once). Every create-run makes a new run, as in
MLflow: two runs with the same body (autolog's parallel children, threads starting together)
are different runs. A client that wants a retried create-run to return the first attempt's run
sends an ``Idempotency-Key`` header, passed on as CreateRun's request_id (and as LogBatch's on
the logging routes); delete-tag of a tag already gone succeeds.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.mlflow import artifacts, convert, filters, logged_models
from gateway.mlflow.context import Context
from gateway.mlflow.errors import (
    FROM_OURS,
    MlflowError,
    error_body,
    error_response,
    from_tuning_error,
    internal_error_response,
)
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning_common.errors import TuningError

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts"
API3 = "/api/3.0/mlflow"
PREFIXES = (API + "/", ARTIFACTS + "/", API3 + "/")

# MLflow's searches are POSTs that only read.
READ_ONLY_POSTS = frozenset({f"{API}/runs/search", f"{API}/experiments/search", f"{API}/logged-models/search",
                             f"{API}/registered-models/get-latest-versions"})

MAX_RUNS_PAGE = 50_000
HISTORY_PAGE = 100_000
MAX_BULK_RUNS = 100
MAX_BULK_RESULTS = 2_500
HISTORY_TAG = "mlflow.log-model.history"
# What MLflow keeps of this tag (a run tag value there is 8,000 characters): older entries go first.
MAX_HISTORY_CHARS = 8_000

Handler = Callable[[Context], Awaitable[Any]]


def is_mlflow_path(path: str) -> bool:
    return path.startswith(PREFIXES)


# The Guard's refusals (gateway/app.py) under MLflow's paths, in MLflow's shape.
_GUARD_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                413: "INVALID_PARAMETER_VALUE", 415: "BAD_REQUEST"}


def guard_refusal_body(path: str, status: int, code: str, message: str, reason: str) -> dict | None:
    if not is_mlflow_path(path):
        return None
    return error_body(_GUARD_CODES.get(status, FROM_OURS.get(code, "INTERNAL_ERROR")), message)


def run_json(run: pb.Run) -> dict:
    """A run as MLflow returns it, with the logged models it produced."""
    tag_values = {t.key: t.value for t in run.tags}
    return {
        "info": convert.run_info_json(run),
        "data": {
            "metrics": [convert.metric_json(m) for m in run.latest_metrics],
            "params": [{"key": p.key, "value": p.value} for p in run.params],
            "tags": convert.tag_list(convert.run_tags(run)),
        },
        "inputs": {
            "dataset_inputs": [convert.dataset_input_json(i) for i in run.inputs],
            "model_inputs": [{"model_id": m} for m in convert.json_list(tag_values.get(convert.MODEL_INPUTS))],
        },
        "outputs": {"model_outputs": logged_models.outputs_of(run)},
    }


def read_only_rule(method: str, path: str) -> bool | None:
    """For the Guard's tokens: MLflow's search POSTs read; every other write writes.

    A search's path is a read only for POST: ``PATCH``/``DELETE .../logged-models/search`` reach
    the route ``.../logged-models/{model_id}``, which writes."""
    if not is_mlflow_path(path):
        return None
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    return method == "POST" and path.rstrip("/") in READ_ONLY_POSTS


# --- experiments --------------------------------------------------------------------------------

async def create_experiment(ctx: Context) -> dict:
    location = ctx.text("artifact_location")
    if location and not location.startswith(convert.ARTIFACTS_SCHEME):
        raise MlflowError.invalid("artifact_location: this server chooses where artifacts are stored (each "
                                  "experiment's artifact_location is an mlflow-artifacts: URI it serves); "
                                  "leave it empty")
    tags = convert.pairs(ctx.items("tags"), "tags")
    answer = await ctx.tracking("CreateExperiment", api.CreateExperimentRequest(
        name=ctx.text("name", required=True), tags=[pb.Tag(key=k, value=v) for k, v in tags]))
    return {"experiment_id": str(answer.experiment.id)}


async def get_experiment(ctx: Context) -> dict:
    exp = convert.experiment_id(ctx.text("experiment_id", required=True))
    answer = await ctx.tracking("GetExperiment", api.GetExperimentRequest(experiment_id=exp))
    return {"experiment": convert.experiment_json(answer.experiment)}


async def get_experiment_by_name(ctx: Context) -> dict:
    name = ctx.text("experiment_name", required=True)
    answer = await ctx.tracking("GetExperimentByName", api.GetExperimentByNameRequest(name=name))
    return {"experiment": convert.experiment_json(answer.experiment)}


def _view_type(ctx: Context, name: str) -> int:
    text = ctx.text(name, default="ACTIVE_ONLY").upper()
    if text not in convert.VIEW_TYPES:
        raise MlflowError.invalid(f"{name} must be ACTIVE_ONLY, DELETED_ONLY or ALL, got {text!r:.40}")
    return convert.VIEW_TYPES[text]


def _page_size(ctx: Context, default: int, limit: int) -> int:
    size = ctx.integer("max_results", default)
    if size < 1:
        raise MlflowError.invalid(f"max_results must be a positive integer, got {size}")
    return min(size, limit)


def _page(items_key: str, items: list, token: str) -> dict:
    return {items_key: items, **({"next_page_token": token} if token else {})}


async def search_experiments(ctx: Context) -> dict:
    answer = await ctx.tracking("SearchExperiments", api.SearchExperimentsRequest(
        filter=filters.translate_filter(filters.EXPERIMENTS, ctx.text("filter")),
        order_by=filters.translate_order_by(filters.EXPERIMENTS, ctx.strings("order_by")),
        view_type=_view_type(ctx, "view_type"), page_size=_page_size(ctx, 1000, 1000),
        page_token=ctx.text("page_token")))
    return _page("experiments", [convert.experiment_json(e) for e in answer.experiments], answer.next_page_token)


async def delete_experiment(ctx: Context) -> dict:
    exp = convert.experiment_id(ctx.text("experiment_id", required=True))
    await ctx.tracking("DeleteExperiment", api.DeleteExperimentRequest(experiment_id=exp))
    return {}


async def restore_experiment(ctx: Context) -> dict:
    exp = convert.experiment_id(ctx.text("experiment_id", required=True))
    await ctx.tracking("RestoreExperiment", api.RestoreExperimentRequest(experiment_id=exp))
    return {}


async def update_experiment(ctx: Context) -> dict:
    exp = convert.experiment_id(ctx.text("experiment_id", required=True))
    new_name = ctx.text("new_name")
    if new_name:
        await ctx.tracking("RenameExperiment", api.RenameExperimentRequest(experiment_id=exp, new_name=new_name))
    return {}


async def set_experiment_tag(ctx: Context) -> dict:
    exp = convert.experiment_id(ctx.text("experiment_id", required=True))
    await ctx.tracking("SetExperimentTag", api.SetExperimentTagRequest(
        experiment_id=exp, key=ctx.text("key", required=True), value=ctx.text("value")))
    return {}


# --- runs ---------------------------------------------------------------------------------------

def _run_id(ctx: Context) -> str:
    return convert.check_run_id(ctx.text("run_id", "run_uuid", required=True))


def _idempotency_key(ctx: Context) -> str:
    """The request_id of a write: the caller's ``Idempotency-Key`` header, or none. Never derived
    from the body: equal bodies of distinct requests are common (parallel children of a run)."""
    given = ctx.request.headers.get("idempotency-key", "").strip()
    return "mlflow:" + hashlib.sha256(given.encode()).hexdigest()[:48] if given else ""


async def _run_exists(ctx: Context, run_id: str) -> bool:
    try:
        await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))
    except MlflowError as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


async def create_run(ctx: Context) -> dict:
    exp = convert.experiment_id(ctx.text("experiment_id", default="0"))
    tags = convert.pairs(ctx.items("tags"), "tags")
    for key, _ in tags:
        convert.check_settable(key)
    tag_map = dict(tags)
    request = api.CreateRunRequest(
        experiment_id=exp, name=ctx.text("run_name") or tag_map.get(convert.RUN_NAME, ""),
        tags=[pb.Tag(key=k, value=v) for k, v in tag_map.items()], user=ctx.text("user_id"),
        request_id=_idempotency_key(ctx))
    parent = tag_map.get(convert.PARENT_RUN, "")
    # The parent becomes our parent run when it is one; any other value stays a plain tag, as in MLflow.
    if parent and convert.RUN_ID.fullmatch(parent) and await _run_exists(ctx, parent):
        request.parent_run_id = parent
    start = ctx.integer("start_time", 0)
    if start > 0:
        request.start_time.CopyFrom(convert.timestamp(start))
    run = (await ctx.tracking("CreateRun", request)).run
    return {"run": run_json(run)}


async def get_run(ctx: Context) -> dict:
    run = (await ctx.tracking("GetRun", api.GetRunRequest(run_id=_run_id(ctx)))).run
    return {"run": run_json(run)}


async def _rename(ctx: Context, run_id: str, name: str, run: pb.Run | None = None) -> pb.Run:
    """Our run's name, and the stored mlflow.runName tag when the run keeps one."""
    run = run or (await ctx.tracking("UpdateRun", api.UpdateRunRequest(run_id=run_id, name=name))).run
    if any(t.key == convert.RUN_NAME for t in run.tags):
        await ctx.tracking("SetTag", api.SetTagRequest(run_id=run_id, tag=pb.Tag(key=convert.RUN_NAME, value=name)))
    return run


async def update_run(ctx: Context) -> dict:
    run_id = _run_id(ctx)
    request = api.UpdateRunRequest(run_id=run_id, name=ctx.text("run_name"))
    status = ctx.text("status")
    if status:
        if status not in convert.RUN_STATUS_VALUES:
            raise MlflowError.invalid(f"status must be one of {', '.join(convert.RUN_STATUS_VALUES)}, "
                                      f"got {status!r:.40}")
        request.status = convert.RUN_STATUS_VALUES[status]
    end = ctx.integer("end_time", 0)
    if end > 0:
        request.end_time.CopyFrom(convert.timestamp(end))
    run = (await ctx.tracking("UpdateRun", request)).run
    if request.name:
        await _rename(ctx, run_id, request.name, run)
    return {"run_info": convert.run_info_json(run)}


async def delete_run(ctx: Context) -> dict:
    await ctx.tracking("DeleteRun", api.DeleteRunRequest(run_id=_run_id(ctx)))
    return {}


async def restore_run(ctx: Context) -> dict:
    await ctx.tracking("RestoreRun", api.RestoreRunRequest(run_id=_run_id(ctx)))
    return {}


def _metric(item: Any, field: str) -> pb.Metric:
    if not isinstance(item, dict):
        raise MlflowError.invalid(f"{field} must be an object with key, value, timestamp and step")
    metric = pb.Metric(key=str(item.get("key", "")), value=convert.parse_double(item.get("value"), f"{field}.value"))
    try:
        metric.step = int(item.get("step", 0) or 0)
        stamp = int(item.get("timestamp", 0) or 0)
    except (TypeError, ValueError):
        raise MlflowError.invalid(f"{field}: step and timestamp must be integers") from None
    if stamp:
        metric.timestamp.CopyFrom(convert.timestamp(stamp))
    return metric


def _model_points(run_id: str, items: list, metrics: list[pb.Metric]) -> list[tuple[str, dict]]:
    """(model id, the point as a logged model's metric) for the metrics that name a model."""
    points = []
    for item, metric in zip(items, metrics):
        model_id = str(item.get("model_id") or "")
        if not model_id:
            continue
        point = {"key": metric.key, "value": convert.number(metric.value), "step": metric.step,
                 "timestamp": convert.ms(metric.timestamp) if metric.HasField("timestamp") else logged_models.now(),
                 "run_id": run_id}
        point.update({name: str(item[name]) for name in ("dataset_name", "dataset_digest") if item.get(name)})
        points.append((model_id, point))
    return points


async def _log_metrics(ctx: Context, run_id: str, items: list, metrics: list[pb.Metric], log) -> None:
    """Stores the metrics with ``log()``, and the points that name a logged model on it too."""
    points = _model_points(run_id, items, metrics)
    await logged_models.check_models(ctx, [model_id for model_id, _ in points])
    await log()
    await logged_models.record_metrics(ctx, points)


async def log_metric(ctx: Context) -> dict:
    item = {"key": ctx.text("key", required=True), "value": ctx.params.get("value"),
            "timestamp": ctx.params.get("timestamp"), "step": ctx.params.get("step"),
            **{name: ctx.text(name) for name in ("model_id", "dataset_name", "dataset_digest")}}
    if item["value"] is None:
        raise MlflowError.invalid("Missing value for required parameter 'value'.")
    run_id, metric = _run_id(ctx), _metric(item, "metric")
    await _log_metrics(ctx, run_id, [item], [metric], lambda: ctx.tracking("LogMetric", api.LogMetricRequest(
        run_id=run_id, metric=metric, request_id=_idempotency_key(ctx))))
    return {}


async def log_param(ctx: Context) -> dict:
    param = pb.Param(key=ctx.text("key", required=True), value=ctx.text("value"))
    await ctx.tracking("LogParam", api.LogParamRequest(run_id=_run_id(ctx), param=param))
    return {}


async def set_tag(ctx: Context) -> dict:
    run_id, key, value = _run_id(ctx), ctx.text("key", required=True), ctx.text("value")
    convert.check_settable(key)
    if key == convert.RUN_NAME:
        await ctx.tracking("UpdateRun", api.UpdateRunRequest(run_id=run_id, name=value))
    await ctx.tracking("SetTag", api.SetTagRequest(run_id=run_id, tag=pb.Tag(key=key, value=value)))
    return {}


async def delete_tag(ctx: Context) -> dict:
    run_id, key = _run_id(ctx), ctx.text("key", required=True)
    convert.check_settable(key)
    try:
        await ctx.tracking("DeleteTag", api.DeleteTagRequest(run_id=run_id, key=key))
    except MlflowError as error:
        # A tag already gone (a retried delete) is what was asked for; a missing run is not.
        if error.error_code != "RESOURCE_DOES_NOT_EXIST" or not await _run_exists(ctx, run_id):
            raise
    return {}


async def log_batch(ctx: Context) -> dict:
    run_id = _run_id(ctx)
    items = ctx.items("metrics")
    metrics = [_metric(item, f"metrics[{i}]") for i, item in enumerate(items)]
    params = convert.pairs(ctx.items("params"), "params")
    tags = convert.pairs(ctx.items("tags"), "tags")
    for key, _ in tags:
        convert.check_settable(key)
    name = dict(tags).get(convert.RUN_NAME)
    if name:
        await ctx.tracking("UpdateRun", api.UpdateRunRequest(run_id=run_id, name=name))
    await _log_metrics(ctx, run_id, items, metrics, lambda: ctx.tracking("LogBatch", api.LogBatchRequest(
        run_id=run_id, metrics=metrics, params=[pb.Param(key=k, value=v) for k, v in params],
        tags=[pb.Tag(key=k, value=v) for k, v in tags], request_id=_idempotency_key(ctx))))
    return {}


async def log_inputs(ctx: Context) -> dict:
    run_id = _run_id(ctx)
    inputs = convert.dataset_inputs(ctx.items("datasets"))
    if inputs:
        await ctx.tracking("LogInputs", api.LogInputsRequest(run_id=run_id, inputs=inputs))
    models = [str(m.get("model_id", "")) for m in ctx.items("models") if isinstance(m, dict)]
    if models:
        def add(run: pb.Run) -> list[pb.Tag] | None:
            known = convert.json_list(next((t.value for t in run.tags if t.key == convert.MODEL_INPUTS), None))
            merged = known + [m for m in dict.fromkeys(models) if m not in known]
            if merged == known:
                return None
            return [pb.Tag(key=convert.MODEL_INPUTS, value=json.dumps(merged, separators=(",", ":")))]

        # Concurrent log-inputs of one run must not drop each other's models.
        await logged_models.compare_and_set(ctx, lambda: logged_models.get_run(ctx, run_id), add,
                                            lambda name: name == convert.MODEL_INPUTS)
    return {}


async def log_outputs(ctx: Context) -> dict:
    run_id = _run_id(ctx)
    models = []
    for item in ctx.items("models"):
        if not isinstance(item, dict) or not item.get("model_id"):
            raise MlflowError.invalid("models must be a list of objects with model_id and step")
        models.append((str(item["model_id"]), int(item.get("step", 0) or 0)))
    for model_id, _ in models:
        if not logged_models.MODEL_ID.fullmatch(model_id):
            raise MlflowError.missing(f"Logged model with ID '{model_id:.80}' not found.")
    await logged_models.get_run(ctx, run_id)
    await logged_models.record_outputs(ctx, run_id, models)
    return {}


async def log_model(ctx: Context) -> dict:
    """MLflow 2's runs/log-model: the model's MLmodel dict appended to mlflow.log-model.history."""
    run_id = _run_id(ctx)
    try:
        model = json.loads(ctx.text("model_json", required=True))
    except ValueError:
        raise MlflowError.invalid("model_json is not valid JSON") from None
    if not isinstance(model, dict):
        raise MlflowError.invalid("model_json must be a JSON object")

    def append(run: pb.Run) -> list[pb.Tag]:
        history = convert.json_list(next((t.value for t in run.tags if t.key == HISTORY_TAG), None)) + [model]
        value = json.dumps(history)
        while len(value) > MAX_HISTORY_CHARS and len(history) > 1:
            history.pop(0)  # the oldest entries go first: the tag keeps what fits
            value = json.dumps(history)
        if len(value) > MAX_HISTORY_CHARS:
            raise MlflowError.invalid(f"model_json is longer than the {MAX_HISTORY_CHARS} characters the model "
                                      "history tag keeps")
        return [pb.Tag(key=HISTORY_TAG, value=value)]

    # Models logged at once to one run must all be appended.
    await logged_models.compare_and_set(ctx, lambda: logged_models.get_run(ctx, run_id), append,
                                        lambda name: name == HISTORY_TAG)
    return {}


async def search_runs(ctx: Context) -> dict:
    size = ctx.integer("max_results", 1000)
    if not 1 <= size <= MAX_RUNS_PAGE:
        raise MlflowError.invalid(f"Invalid value {size} for parameter 'max_results' supplied. It must be "
                                  f"at most {MAX_RUNS_PAGE}")
    wanted = filters.translate_filter(filters.RUNS, ctx.text("filter"))
    # The runs that hold run-less logged models are not MLflow runs.
    hidden = f"tags.`{convert.MODEL_HOLDER}` IS NULL"
    answer = await ctx.tracking("SearchRuns", api.SearchRunsRequest(
        experiment_ids=[convert.experiment_id(e, "experiment_ids") for e in ctx.strings("experiment_ids")],
        filter=f"({wanted}) AND {hidden}" if wanted else hidden,
        order_by=filters.translate_order_by(filters.RUNS, ctx.strings("order_by")),
        view_type=_view_type(ctx, "run_view_type"), page_size=size, page_token=ctx.text("page_token")))
    return _page("runs", [run_json(r) for r in answer.runs], answer.next_page_token)


async def _history(ctx: Context, run_id: str, key: str, page_size: int = HISTORY_PAGE,
                   token: str = "", every_page: bool = True) -> tuple[list[pb.Metric], str]:
    points: list[pb.Metric] = []
    while True:
        answer = await ctx.tracking("GetMetricHistory", api.GetMetricHistoryRequest(
            run_id=run_id, key=key, page_size=page_size, page_token=token))
        points.extend(answer.metrics)
        token = answer.next_page_token
        if not token or not every_page:
            return points, token


async def get_metric_history(ctx: Context) -> dict:
    run_id, key = _run_id(ctx), ctx.text("metric_key", required=True)
    limit = ctx.integer("max_results", 0)
    if limit < 0:
        raise MlflowError.invalid(f"max_results must be positive, got {limit}")
    # Without max_results MLflow answers the whole series; with it, a page.
    points, token = await _history(ctx, run_id, key, min(limit, HISTORY_PAGE) or HISTORY_PAGE,
                                   ctx.text("page_token"), every_page=not limit)
    return _page("metrics", [convert.metric_json(m, run_id) for m in points], token)


async def get_metric_history_bulk_interval(ctx: Context) -> dict:
    run_ids = ctx.strings("run_ids")
    if not run_ids:
        raise MlflowError.invalid("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise MlflowError.invalid(f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} "
                                  f"run_ids. Received {len(run_ids)} run_ids.")
    key = ctx.text("metric_key", required=True)
    limit = ctx.integer("max_results", MAX_BULK_RESULTS)
    if not 1 <= limit <= MAX_BULK_RESULTS:
        raise MlflowError.invalid(f"max_results must be between 1 and {MAX_BULK_RESULTS}.")
    start, end = ctx.params.get("start_step"), ctx.params.get("end_step")
    if (start is None) != (end is None):
        raise MlflowError.invalid("If either start step or end step are specified, both must be specified.")
    histories = {run_id: (await _history(ctx, convert.check_run_id(run_id), key))[0] for run_id in run_ids}
    all_steps = sorted({m.step for points in histories.values() for m in points})
    first, last = (ctx.integer("start_step"), ctx.integer("end_step")) if start is not None \
        else (0, all_steps[-1] if all_steps else 0)
    if first > last:
        raise MlflowError.invalid(f"end_step must be greater than start_step. Found start_step={first} and "
                                  f"end_step={last}.")
    # MLflow's sampling: evenly spaced steps of the range, plus each run's first and last step.
    lo, hi = bisect.bisect_left(all_steps, first), bisect.bisect_right(all_steps, last)
    if hi - lo <= limit:
        sampled = set(all_steps[lo:hi])
    else:
        sampled = {all_steps[lo + int(i * (hi - lo) / limit)] for i in range(limit)}
    for points in histories.values():
        if points:
            sampled |= {s for s in (min(m.step for m in points), max(m.step for m in points)) if first <= s <= last}
    out = []
    for run_id in run_ids:
        chosen = sorted((m for m in histories[run_id] if m.step in sampled), key=lambda m: (m.step, convert.ms(
            m.timestamp)))[:limit]
        out.extend(convert.metric_json(m, run_id) for m in chosen)
    return {"metrics": out}


# --- registry -----------------------------------------------------------------------------------

def _tags(ctx: Context) -> list[pb.Tag]:
    return [pb.Tag(key=k, value=v) for k, v in convert.pairs(ctx.items("tags"), "tags")]


async def create_registered_model(ctx: Context) -> dict:
    answer = await ctx.registry("CreateRegisteredModel", rapi.CreateRegisteredModelRequest(
        name=ctx.text("name", required=True), description=ctx.text("description"), tags=_tags(ctx)))
    return {"registered_model": convert.registered_model_json(answer.registered_model)}


async def get_registered_model(ctx: Context) -> dict:
    answer = await ctx.registry("GetRegisteredModel", rapi.GetRegisteredModelRequest(
        name=ctx.text("name", required=True)))
    return {"registered_model": convert.registered_model_json(answer.registered_model)}


async def rename_registered_model(ctx: Context) -> dict:
    answer = await ctx.registry("RenameRegisteredModel", rapi.RenameRegisteredModelRequest(
        name=ctx.text("name", required=True), new_name=ctx.text("new_name", required=True)))
    return {"registered_model": convert.registered_model_json(answer.registered_model)}


async def update_registered_model(ctx: Context) -> dict:
    answer = await ctx.registry("UpdateRegisteredModel", rapi.UpdateRegisteredModelRequest(
        name=ctx.text("name", required=True), description=ctx.text("description")))
    return {"registered_model": convert.registered_model_json(answer.registered_model)}


async def delete_registered_model(ctx: Context) -> dict:
    await ctx.registry("DeleteRegisteredModel", rapi.DeleteRegisteredModelRequest(
        name=ctx.text("name", required=True)))
    return {}


async def search_registered_models(ctx: Context) -> dict:
    answer = await ctx.registry("SearchRegisteredModels", rapi.SearchRegisteredModelsRequest(
        filter=filters.translate_filter(filters.REGISTERED_MODELS, ctx.text("filter")),
        order_by=filters.translate_order_by(filters.REGISTERED_MODELS, ctx.strings("order_by")),
        page_size=_page_size(ctx, 100, 1000), page_token=ctx.text("page_token")))
    return _page("registered_models", [convert.registered_model_json(m) for m in answer.registered_models],
                 answer.next_page_token)


async def get_latest_versions(ctx: Context) -> dict:
    answer = await ctx.registry("GetRegisteredModel", rapi.GetRegisteredModelRequest(
        name=ctx.text("name", required=True)))
    stages = {convert.stage_value(s) for s in ctx.strings("stages")}
    versions = [v for v in answer.registered_model.latest_versions if not stages or v.stage in stages]
    return {"model_versions": [convert.model_version_json(v) for v in versions]}


async def set_registered_model_tag(ctx: Context) -> dict:
    await ctx.registry("SetRegisteredModelTag", rapi.SetRegisteredModelTagRequest(
        name=ctx.text("name", required=True), key=ctx.text("key", required=True), value=ctx.text("value")))
    return {}


async def delete_registered_model_tag(ctx: Context) -> dict:
    await ctx.registry("DeleteRegisteredModelTag", rapi.DeleteRegisteredModelTagRequest(
        name=ctx.text("name", required=True), key=ctx.text("key", required=True)))
    return {}


async def _model_source(ctx: Context, source: str, model_id: str) -> str:
    """Our registry's source for MLflow's: a runs:/ path of the run that holds the files."""
    if model_id or source.startswith("models:/m-"):
        model_id = model_id or source.removeprefix("models:/").strip("/")
        return logged_models.source(await logged_models.get_model(ctx, model_id))
    if source.startswith("models:/"):
        # Another registered version (models:/<name>/<version> or models:/<name>@<alias>): its files.
        reference = source.removeprefix("models:/").strip("/")
        if "@" in reference:
            name, _, alias = reference.rpartition("@")
            found = await ctx.registry("GetModelVersionByAlias", rapi.GetModelVersionByAliasRequest(
                name=name, alias=alias))
        else:
            name, _, number = reference.rpartition("/")
            found = await ctx.registry("GetModelVersion", rapi.GetModelVersionRequest(
                name=name, version=convert.version_number(number)))
        return found.model_version.source
    if source.startswith(convert.ARTIFACTS_SCHEME):
        run_id, path = convert.split_artifact_path(source.removeprefix(convert.ARTIFACTS_SCHEME))
        return f"runs:/{run_id}/{path}".rstrip("/")
    if source.startswith("runs:/"):
        # MLflow 3 resolves runs:/<run>/<name> to the run's logged model of that name.
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        name, _, rest = path.partition("/")
        if convert.RUN_ID.fullmatch(run_id) and name:
            run = (await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))).run
            named = await logged_models.named_model_of_run(ctx, run, name)
            if named is not None and named.artifact_location:
                return f"{logged_models.source(named)}/{rest}".rstrip("/")
    return source


async def create_model_version(ctx: Context) -> dict:
    source = await _model_source(ctx, ctx.text("source", required=True), ctx.text("model_id"))
    run_id = ctx.text("run_id")
    if source.startswith("runs:/"):
        run_id = ""  # the source names it
    answer = await ctx.registry("CreateModelVersion", rapi.CreateModelVersionRequest(
        name=ctx.text("name", required=True), source=source, run_id=run_id, description=ctx.text("description"),
        tags=_tags(ctx)))
    return {"model_version": convert.model_version_json(answer.model_version)}


def _version(ctx: Context) -> tuple[str, int]:
    return ctx.text("name", required=True), convert.version_number(ctx.text("version", required=True))


async def get_model_version(ctx: Context) -> dict:
    name, version = _version(ctx)
    answer = await ctx.registry("GetModelVersion", rapi.GetModelVersionRequest(name=name, version=version))
    return {"model_version": convert.model_version_json(answer.model_version)}


async def update_model_version(ctx: Context) -> dict:
    name, version = _version(ctx)
    answer = await ctx.registry("UpdateModelVersion", rapi.UpdateModelVersionRequest(
        name=name, version=version, description=ctx.text("description")))
    return {"model_version": convert.model_version_json(answer.model_version)}


async def delete_model_version(ctx: Context) -> dict:
    name, version = _version(ctx)
    await ctx.registry("DeleteModelVersion", rapi.DeleteModelVersionRequest(name=name, version=version))
    return {}


async def transition_stage(ctx: Context) -> dict:
    name, version = _version(ctx)
    answer = await ctx.registry("TransitionModelVersionStage", rapi.TransitionModelVersionStageRequest(
        name=name, version=version, stage=convert.stage_value(ctx.text("stage", required=True)),
        archive_existing_versions=ctx.flag("archive_existing_versions")))
    return {"model_version": convert.model_version_json(answer.model_version)}


async def search_model_versions(ctx: Context) -> dict:
    answer = await ctx.registry("SearchModelVersions", rapi.SearchModelVersionsRequest(
        filter=filters.translate_filter(filters.MODEL_VERSIONS, ctx.text("filter")),
        order_by=filters.translate_order_by(filters.MODEL_VERSIONS, ctx.strings("order_by")),
        page_size=_page_size(ctx, 10_000, 10_000), page_token=ctx.text("page_token")))
    return _page("model_versions", [convert.model_version_json(v) for v in answer.model_versions],
                 answer.next_page_token)


async def get_download_uri(ctx: Context) -> dict:
    """Where the client fetches a version's files: through our proxied artifacts when they are a run's."""
    name, version = _version(ctx)
    found = (await ctx.registry("GetModelVersion", rapi.GetModelVersionRequest(name=name, version=version)))
    mv = found.model_version
    if mv.source.startswith("runs:/") and mv.run_id:
        path = mv.source.removeprefix("runs:/").partition("/")[2].strip("/")
        base = convert.run_artifact_uri(mv.experiment_id, mv.run_id)
        return {"artifact_uri": f"{base}/{path}" if path else base}
    answer = await ctx.registry("GetModelVersionDownloadUri", rapi.GetModelVersionDownloadUriRequest(
        name=name, version=version))
    return {"artifact_uri": answer.artifact_uri}


async def set_model_version_tag(ctx: Context) -> dict:
    name, version = _version(ctx)
    await ctx.registry("SetModelVersionTag", rapi.SetModelVersionTagRequest(
        name=name, version=version, key=ctx.text("key", required=True), value=ctx.text("value")))
    return {}


async def delete_model_version_tag(ctx: Context) -> dict:
    name, version = _version(ctx)
    await ctx.registry("DeleteModelVersionTag", rapi.DeleteModelVersionTagRequest(
        name=name, version=version, key=ctx.text("key", required=True)))
    return {}


async def set_alias(ctx: Context) -> dict:
    name, alias = ctx.text("name", required=True), ctx.text("alias", required=True)
    version = convert.version_number(ctx.text("version", required=True))
    await ctx.registry("SetRegisteredModelAlias", rapi.SetRegisteredModelAliasRequest(
        name=name, alias=alias, version=version))
    return {}


async def delete_alias(ctx: Context) -> dict:
    await ctx.registry("DeleteRegisteredModelAlias", rapi.DeleteRegisteredModelAliasRequest(
        name=ctx.text("name", required=True), alias=ctx.text("alias", required=True)))
    return {}


async def get_by_alias(ctx: Context) -> dict:
    answer = await ctx.registry("GetModelVersionByAlias", rapi.GetModelVersionByAliasRequest(
        name=ctx.text("name", required=True), alias=ctx.text("alias", required=True)))
    return {"model_version": convert.model_version_json(answer.model_version)}


# --- the rest -----------------------------------------------------------------------------------

async def server_info(ctx: Context) -> dict:
    """What MLflow 3's client asks before proxying artifacts (and for workspaces): plain uploads and
    downloads, no workspaces, no multipart or presigned URLs."""
    return {
        "store_type": None,
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


def _unsupported(what: str) -> Handler:
    async def handler(ctx: Context) -> dict:
        raise MlflowError.unsupported(f"{what} is not supported by this server (the MLflow-compatible API of "
                                      "the tuning gateway; see docs/GATEWAY.md)")

    return handler


async def _no_endpoint(ctx: Context) -> dict:
    raise MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow endpoint {ctx.request.method} {ctx.request.url.path} on this "
                                            "server (see docs/GATEWAY.md for the ones it has)")


TABLE: list[tuple[str, str, Handler]] = [
    ("POST", f"{API}/experiments/create", create_experiment),
    ("GET", f"{API}/experiments/get", get_experiment),
    ("GET", f"{API}/experiments/get-by-name", get_experiment_by_name),
    ("POST", f"{API}/experiments/search", search_experiments),
    ("GET", f"{API}/experiments/search", search_experiments),
    ("POST", f"{API}/experiments/delete", delete_experiment),
    ("POST", f"{API}/experiments/restore", restore_experiment),
    ("POST", f"{API}/experiments/update", update_experiment),
    ("POST", f"{API}/experiments/set-experiment-tag", set_experiment_tag),
    ("POST", f"{API}/experiments/delete-experiment-tag", _unsupported("Deleting an experiment tag")),
    ("POST", f"{API}/runs/create", create_run),
    ("POST", f"{API}/runs/update", update_run),
    ("POST", f"{API}/runs/delete", delete_run),
    ("POST", f"{API}/runs/restore", restore_run),
    ("POST", f"{API}/runs/log-metric", log_metric),
    ("POST", f"{API}/runs/log-parameter", log_param),
    ("POST", f"{API}/runs/set-tag", set_tag),
    ("POST", f"{API}/runs/delete-tag", delete_tag),
    ("POST", f"{API}/runs/log-batch", log_batch),
    ("POST", f"{API}/runs/log-inputs", log_inputs),
    ("POST", f"{API}/runs/outputs", log_outputs),
    ("POST", f"{API}/runs/log-model", log_model),
    ("GET", f"{API}/runs/get", get_run),
    ("POST", f"{API}/runs/search", search_runs),
    ("GET", f"{API}/metrics/get-history", get_metric_history),
    ("GET", f"{API}/metrics/get-history-bulk-interval", get_metric_history_bulk_interval),
    ("GET", f"{API}/artifacts/list", artifacts.list_run),
    ("POST", f"{API}/logged-models", logged_models.create),
    ("POST", f"{API}/logged-models/search", logged_models.search),
    ("GET", f"{API}/logged-models/{{model_id}}", logged_models.get),
    ("PATCH", f"{API}/logged-models/{{model_id}}", logged_models.finalize),
    ("DELETE", f"{API}/logged-models/{{model_id}}", logged_models.delete),
    ("PATCH", f"{API}/logged-models/{{model_id}}/tags", logged_models.set_tags),
    ("DELETE", f"{API}/logged-models/{{model_id}}/tags/{{tag_key:path}}", logged_models.delete_tag),
    ("POST", f"{API}/logged-models/{{model_id}}/params", logged_models.log_params),
    ("GET", f"{API}/logged-models/{{model_id}}/artifacts/directories", logged_models.list_artifacts),
    ("POST", f"{API}/registered-models/create", create_registered_model),
    ("GET", f"{API}/registered-models/get", get_registered_model),
    ("POST", f"{API}/registered-models/rename", rename_registered_model),
    ("PATCH", f"{API}/registered-models/update", update_registered_model),
    ("DELETE", f"{API}/registered-models/delete", delete_registered_model),
    ("GET", f"{API}/registered-models/search", search_registered_models),
    ("POST", f"{API}/registered-models/get-latest-versions", get_latest_versions),
    ("GET", f"{API}/registered-models/get-latest-versions", get_latest_versions),
    ("POST", f"{API}/registered-models/set-tag", set_registered_model_tag),
    ("DELETE", f"{API}/registered-models/delete-tag", delete_registered_model_tag),
    ("POST", f"{API}/registered-models/alias", set_alias),
    ("DELETE", f"{API}/registered-models/alias", delete_alias),
    ("GET", f"{API}/registered-models/alias", get_by_alias),
    ("POST", f"{API}/model-versions/create", create_model_version),
    ("GET", f"{API}/model-versions/get", get_model_version),
    ("PATCH", f"{API}/model-versions/update", update_model_version),
    ("DELETE", f"{API}/model-versions/delete", delete_model_version),
    ("POST", f"{API}/model-versions/transition-stage", transition_stage),
    ("GET", f"{API}/model-versions/search", search_model_versions),
    ("GET", f"{API}/model-versions/get-download-uri", get_download_uri),
    ("POST", f"{API}/model-versions/set-tag", set_model_version_tag),
    ("DELETE", f"{API}/model-versions/delete-tag", delete_model_version_tag),
    ("GET", f"{ARTIFACTS}/artifacts", artifacts.list_proxied),
    ("DELETE", f"{ARTIFACTS}/artifacts/{{path:path}}", _unsupported("Deleting artifacts")),
    ("POST", f"{ARTIFACTS}/mpu/create/{{path:path}}", _unsupported("Multipart upload")),
    ("POST", f"{ARTIFACTS}/mpu/complete/{{path:path}}", _unsupported("Multipart upload")),
    ("POST", f"{ARTIFACTS}/mpu/abort/{{path:path}}", _unsupported("Multipart upload")),
    ("GET", f"{ARTIFACTS}/presigned/{{path:path}}", _unsupported("Presigned download")),
    ("GET", f"{API3}/server-info", server_info),
]


def _respond(value: Any) -> Response:
    return value if isinstance(value, Response) else JSONResponse(value)


def _guarded(work: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint answering ``work``'s dict as JSON and every error as MLflow's error JSON."""
    async def endpoint(request: Request) -> Response:
        try:
            return _respond(await work(request))
        except MlflowError as error:
            return error_response(error)
        except TuningError as error:
            return error_response(from_tuning_error(error))
        except Exception:
            return internal_error_response(f"{request.method} {request.url.path}")

    return endpoint


def _endpoint(handler: Handler, max_json_bytes: int, stubs) -> Callable[[Request], Awaitable[Response]]:
    async def work(request: Request) -> Any:
        return await handler(await Context.of(request, stubs, max_json_bytes))

    return _guarded(work)


def routes(stubs, options) -> list[BaseRoute]:
    """The MLflow-compatible routes on the gateway's stubs (filled in the app's lifespan)."""
    out: list[BaseRoute] = [Route(path, _endpoint(handler, options.max_json_bytes, stubs), methods=[method])
                            for method, path, handler in TABLE]
    out += [
        Route(f"{ARTIFACTS}/artifacts/{{path:path}}",
              _guarded(lambda request: artifacts.upload(request, stubs, options.max_artifact_bytes)),
              methods=["PUT"]),
        Route(f"{ARTIFACTS}/artifacts/{{path:path}}", _guarded(lambda request: artifacts.download(request, stubs)),
              methods=["GET"]),
    ]
    # Anything else under MLflow's prefixes: ENDPOINT_NOT_FOUND in MLflow's JSON (the client falls
    # back from one endpoint to another on it), not the gateway's own 404 or 405: for every method
    # (a Route without methods would take GET only).
    fallback = _guarded(lambda request: _no_endpoint(Context(request, stubs, {})))
    out += [Route(prefix + "{rest:path}", fallback, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
            for prefix in PREFIXES]
    return out
