"""MLflow 3's logged models, translated to the tracking service's logged-model RPCs.

The tracking service keeps them (``CreateLoggedModel``, ``SearchLoggedModels``, ...); this
module only translates. What is MLflow's alone stays here:

* A model's files are in the artifacts of a run (its ``artifact_location`` is
  ``runs:/<run>/models/<model id>``), which MLflow sees as the proxied
  ``mlflow-artifacts:/<experiment>/<run>/artifacts/models/<model id>``.
* A model created without a run (``mlflow.set_active_model``, ``create_external_model``
  outside a run) gets a run of its own to hold its files: named like the model, FINISHED at
  once, tagged ``tuning.mlflow.modelHolder`` (MLflow's run searches skip such runs); the model
  has no source run.
* Metrics logged with a ``model_id`` are stored on their run (LogBatch) and linked to the model
  (``LogLoggedModelMetrics``: the latest point per key, run and dataset).
* A run's model outputs (MLflow's ``runs/outputs``, and the models created from the run) are a
  list in its tag ``tuning.mlflow.modelOutputs``, changed by compare-and-set
  (:func:`compare_and_set`) so that concurrent additions are all kept.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable

from gateway.mlflow import convert, filters
from gateway.mlflow.context import Context
from gateway.mlflow.errors import MlflowError
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api

MODEL_ID = re.compile(r"m-[0-9a-f]{32}(?:[0-9a-f]{8})?")
STATUSES = {"LOGGED_MODEL_PENDING": pb.LOGGED_MODEL_STATUS_PENDING, "LOGGED_MODEL_READY": pb.LOGGED_MODEL_STATUS_READY,
            "LOGGED_MODEL_UPLOAD_FAILED": pb.LOGGED_MODEL_STATUS_FAILED}
STATUS_NAMES = {number: name for name, number in STATUSES.items()}
# Tries of a compare-and-set before giving up with ABORTED: each lost try means that another
# writer's change went in, so this many only run out under a crowd of writers of one run.
_ATTEMPTS = 50


def now() -> int:
    import time

    return int(time.time() * 1000)


def check_model_id(model_id: str) -> str:
    """Anything that is not one of our model ids names no model (404, as MLflow answers)."""
    if not MODEL_ID.fullmatch(model_id or ""):
        raise MlflowError.missing(f"Logged model with ID '{model_id:.80}' not found.")
    return model_id


async def get_model(ctx: Context, model_id: str) -> pb.LoggedModel:
    check_model_id(model_id)
    try:
        return (await ctx.tracking("GetLoggedModel", api.GetLoggedModelRequest(model_id=model_id))).model
    except MlflowError as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise MlflowError.missing(f"Logged model with ID '{model_id}' not found.") from None
        raise


async def get_run(ctx: Context, run_id: str) -> pb.Run:
    return (await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))).run


async def compare_and_set(ctx: Context, read: Callable[[], Awaitable[pb.Run]],
                          change: Callable[[pb.Run], list[pb.Tag] | None], watched: Callable[[str], bool]) -> pb.Run:
    """Read-modify-write of run tags that other requests may be changing at the same time.

    ``change`` computes the tags to write from the run as ``read`` (None: nothing to write); they
    are stored only if the ``watched`` tags are still as read (those that existed with their
    values, those the write creates still absent). Otherwise another change went in first:
    read again and apply ``change`` to that. Returns the run as read by the try that counted.
    """
    for attempt in range(_ATTEMPTS):
        run = await read()
        tags = change(run)
        if tags is None:
            return run
        current = {t.key: t.value for t in run.tags if watched(t.key)}
        expected = [api.ExpectedTag(key=key, value=value) for key, value in current.items()]
        expected += [api.ExpectedTag(key=t.key, absent=True) for t in tags if watched(t.key) and t.key not in current]
        try:
            await ctx.tracking("LogBatch", api.LogBatchRequest(run_id=run.id, tags=tags, expected_tags=expected))
            return run
        except MlflowError as error:
            if error.origin != "ABORTED":
                raise
        await asyncio.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** attempt)))
    raise MlflowError("ABORTED", f"run {run.id} was changed by other requests {_ATTEMPTS} times while this one "
                                 "tried to update it; try again")


def files_of(model: pb.LoggedModel) -> tuple[str, str] | None:
    """(run id, folder in its artifacts) where the model's files are, from its artifact location."""
    location = model.artifact_location.removeprefix("runs:/")
    run_id, _, folder = location.partition("/")
    return (run_id, folder) if run_id and folder else None


def source(model: pb.LoggedModel) -> str:
    """Our registry's source for the model's files: ``runs:/<run>/models/<model id>``."""
    return model.artifact_location


def artifact_uri(model: pb.LoggedModel) -> str:
    where = files_of(model)
    if where is None:
        return ""
    return f"{convert.run_artifact_uri(model.experiment_id, where[0])}/{where[1]}"


def model_json(model: pb.LoggedModel) -> dict:
    info = {
        "model_id": model.id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": convert.ms(model.create_time),
        "last_updated_timestamp_ms": convert.ms(model.update_time),
        "artifact_uri": artifact_uri(model),
        "status": STATUS_NAMES.get(model.status, "LOGGED_MODEL_PENDING"),
        "model_type": model.model_type,
        "source_run_id": model.source_run_id,
        "status_message": model.status_message,
        "tags": convert.tag_list((t.key, t.value) for t in model.tags),
    }
    metrics = []
    for m in model.metrics:
        point = {"key": m.key, "value": convert.number(m.value), "step": m.step,
                 "timestamp": convert.ms(m.timestamp), "model_id": model.id}
        point.update({name: getattr(m, name) for name in ("run_id", "dataset_name", "dataset_digest")
                      if getattr(m, name)})
        metrics.append(point)
    return {"info": info, "data": {"params": convert.tag_list((p.key, p.value) for p in model.params),
                                   "metrics": metrics}}


def outputs_of(run: pb.Run) -> list[dict]:
    """The run's model outputs: the models created from it and those it named with log-outputs."""
    tag = next((t.value for t in run.tags if t.key == convert.MODEL_OUTPUTS), None)
    return [{"model_id": str(item.get("model_id")), "step": int(item.get("step", 0) or 0)}
            for item in convert.json_list(tag) if isinstance(item, dict)]


async def record_outputs(ctx: Context, run_id: str, models: list[tuple[str, int]]) -> None:
    """Adds ``models`` (model id, step) to the run's outputs; a model listed already takes the new step."""
    def add(current: pb.Run) -> list[pb.Tag] | None:
        listed = outputs_of(current)
        steps = {o["model_id"]: o["step"] for o in listed}
        changed = False
        for model_id, step in models:
            if steps.get(model_id) != step:
                changed = True
                if model_id in steps:
                    listed = [{**o, "step": step} if o["model_id"] == model_id else o for o in listed]
                else:
                    listed.append({"model_id": model_id, "step": step})
                steps[model_id] = step
        if not changed:
            return None
        return [pb.Tag(key=convert.MODEL_OUTPUTS, value=json.dumps(listed, separators=(",", ":")))]

    await compare_and_set(ctx, lambda: get_run(ctx, run_id), add, lambda name: name == convert.MODEL_OUTPUTS)


async def forget_output(ctx: Context, run_id: str, model_id: str) -> None:
    """Takes ``model_id`` off the run's outputs."""
    def remove(current: pb.Run) -> list[pb.Tag] | None:
        listed = outputs_of(current)
        kept = [o for o in listed if o["model_id"] != model_id]
        if len(kept) == len(listed):
            return None
        return [pb.Tag(key=convert.MODEL_OUTPUTS, value=json.dumps(kept, separators=(",", ":")))]

    await compare_and_set(ctx, lambda: get_run(ctx, run_id), remove, lambda name: name == convert.MODEL_OUTPUTS)


# --- handlers -----------------------------------------------------------------------------------

async def _holder_run(ctx: Context, experiment: int, name: str) -> pb.Run:
    """A run of its own for a model created without one (see the module's docstring)."""
    run = (await ctx.tracking("CreateRun", api.CreateRunRequest(
        experiment_id=experiment, name=name, tags=[pb.Tag(key=convert.MODEL_HOLDER, value="1")]))).run
    return (await ctx.tracking("UpdateRun", api.UpdateRunRequest(run_id=run.id, status=pb.RUN_STATUS_FINISHED))).run


async def create(ctx: Context) -> dict:
    run_id = ctx.text("source_run_id")
    wanted = ctx.text("experiment_id")
    name = ctx.text("name")
    holder = ""
    if run_id:
        convert.check_run_id(run_id, "source_run_id")
        experiment = (await get_run(ctx, run_id)).experiment_id
        if wanted and convert.experiment_id(wanted) != experiment:
            raise MlflowError.invalid(f"source run {run_id} belongs to experiment {experiment}, not {wanted}")
    else:
        if not wanted:
            raise MlflowError.invalid("a logged model without a source_run_id needs an experiment_id")
        experiment = convert.experiment_id(wanted)
        if not name:
            import secrets

            name = f"model-{secrets.token_hex(3)}"
        holder = (await _holder_run(ctx, experiment, name)).id
    model = (await ctx.tracking("CreateLoggedModel", api.CreateLoggedModelRequest(
        experiment_id=experiment, name=name, source_run_id=run_id, model_type=ctx.text("model_type"),
        params=[pb.Param(key=k, value=v) for k, v in convert.pairs(ctx.items("params"), "params")],
        tags=[pb.Tag(key=k, value=v) for k, v in convert.pairs(ctx.items("tags"), "tags")],
        artifact_run_id=holder))).model
    if run_id:
        await record_outputs(ctx, run_id, [(model.id, 0)])
    return {"model": model_json(model)}


async def check_models(ctx: Context, model_ids: list[str]) -> None:
    """RESOURCE_DOES_NOT_EXIST unless every model that metrics name exists: checked before the
    metrics are stored, so that a bad model id stores nothing."""
    for model_id in dict.fromkeys(model_ids):
        await get_model(ctx, model_id)


async def record_metrics(ctx: Context, points: list[tuple[str, dict]]) -> None:
    """Links ``points`` (model id, MLflow metric JSON with run_id) to their models."""
    for model_id in dict.fromkeys(owner for owner, _ in points):
        metrics = []
        for owner, point in points:
            if owner != model_id:
                continue
            metric = pb.LoggedModelMetric(key=point["key"], value=float(point["value"]), step=point["step"],
                                          timestamp=convert.timestamp(point["timestamp"]),
                                          run_id=point.get("run_id", ""), dataset_name=point.get("dataset_name", ""),
                                          dataset_digest=point.get("dataset_digest", ""))
            metrics.append(metric)
        await ctx.tracking("LogLoggedModelMetrics", api.LogLoggedModelMetricsRequest(model_id=model_id,
                                                                                     metrics=metrics))


async def get(ctx: Context) -> dict:
    return {"model": model_json(await get_model(ctx, ctx.text("model_id", required=True)))}


async def finalize(ctx: Context) -> dict:
    model_id = check_model_id(ctx.text("model_id", required=True))
    status = ctx.text("status", required=True)
    names = list(STATUSES)
    if status.isdigit() and 1 <= int(status) <= 3:
        status = names[int(status) - 1]
    if status not in STATUSES:
        raise MlflowError.invalid(f"status must be one of {', '.join(names)}, got {status!r:.40}")
    model = (await ctx.tracking("FinalizeLoggedModel", api.FinalizeLoggedModelRequest(
        model_id=model_id, status=STATUSES[status], status_message=ctx.text("status_message")))).model
    return {"model": model_json(model)}


async def delete(ctx: Context) -> dict:
    model = await get_model(ctx, ctx.text("model_id", required=True))
    model_id = model.id
    await ctx.tracking("DeleteLoggedModel", api.DeleteLoggedModelRequest(model_id=model_id))
    if model.source_run_id:  # a deleted model is no longer one of its run's outputs (as in MLflow)
        await forget_output(ctx, model.source_run_id, model_id)
    return {}


async def set_tags(ctx: Context) -> dict:
    model_id = check_model_id(ctx.text("model_id", required=True))
    tags = [pb.Tag(key=k, value=v) for k, v in convert.pairs(ctx.items("tags"), "tags")]
    model = (await ctx.tracking("SetLoggedModelTags", api.SetLoggedModelTagsRequest(model_id=model_id,
                                                                                   tags=tags))).model
    return {"model": model_json(model)}


async def delete_tag(ctx: Context) -> dict:
    model_id = check_model_id(ctx.text("model_id", required=True))
    key = ctx.text("tag_key", required=True)
    await ctx.tracking("DeleteLoggedModelTag", api.DeleteLoggedModelTagRequest(model_id=model_id, key=key))
    return {}


async def log_params(ctx: Context) -> dict:
    model_id = check_model_id(ctx.text("model_id", required=True))
    params = [pb.Param(key=k, value=v) for k, v in convert.pairs(ctx.items("params"), "params")]
    await ctx.tracking("LogLoggedModelParams", api.LogLoggedModelParamsRequest(model_id=model_id, params=params))
    return {}


def _order_by(items: list) -> list[str]:
    """MLflow's order_by objects as our order keys."""
    out = []
    for item in items:
        if not isinstance(item, dict) or not item.get("field_name"):
            raise MlflowError.invalid("order_by items need a field_name")
        if item.get("dataset_name") or item.get("dataset_digest"):
            raise MlflowError.invalid("ordering logged models by a dataset's metric is not supported")
        name = str(item["field_name"])
        prefix, dot, key = name.partition(".")
        if dot and prefix in ("metrics", "metric", "params", "param", "tags", "tag") and not key.startswith("`"):
            name = f"{prefix}.`{key.replace('`', '``')}`"
        descending = item.get("ascending", True) in (False, "false")
        out.append(f"{name} DESC" if descending else name)
    return filters.translate_order_by(filters.LOGGED_MODELS, out)


async def search(ctx: Context) -> dict:
    experiment_ids = [convert.experiment_id(e, "experiment_ids") for e in ctx.strings("experiment_ids")]
    if not experiment_ids:
        raise MlflowError.invalid("experiment_ids must name at least one experiment")
    if ctx.items("datasets"):
        raise MlflowError.invalid("searching logged models by dataset is not supported by this server")
    limit = ctx.integer("max_results", 100)
    if not 1 <= limit <= 1000:
        raise MlflowError.invalid(f"max_results must be between 1 and 1000, got {limit}")
    answer = await ctx.tracking("SearchLoggedModels", api.SearchLoggedModelsRequest(
        experiment_ids=experiment_ids, filter=filters.translate_filter(filters.LOGGED_MODELS, ctx.text("filter")),
        order_by=_order_by(ctx.items("order_by")), page_size=limit, page_token=ctx.text("page_token")))
    token = answer.next_page_token
    return {"models": [model_json(m) for m in answer.models], **({"next_page_token": token} if token else {})}


async def named_model_of_run(ctx: Context, run: pb.Run, name: str) -> pb.LoggedModel | None:
    """The newest model named ``name`` that ``run`` produced (MLflow 3's ``runs:/<run>/<name>``)."""
    answer = await ctx.tracking("SearchLoggedModels", api.SearchLoggedModelsRequest(
        experiment_ids=[run.experiment_id],
        filter=f"attributes.source_run_id = '{run.id}' AND attributes.name = {filters.quote(name)}",
        order_by=["attributes.creation_time DESC"], page_size=1))
    return answer.models[0] if answer.models else None


async def list_artifacts(ctx: Context) -> dict:
    from gateway.mlflow import artifacts

    model = await get_model(ctx, ctx.text("model_id", required=True))
    where = files_of(model)
    if where is None:
        return {"root_uri": "", "files": []}
    run_id, folder = where
    path = ctx.text("artifact_directory_path").strip("/")
    files = await artifacts.listing(ctx, run_id, f"{folder}/{path}" if path else folder)
    return {"root_uri": artifact_uri(model),
            "files": [artifacts.file_json(f, f.path[len(folder) + 1:]) for f in files]}
