"""MLflow 3's logged models, kept on their source run.

Our protos have no logged-model entity, and the gateway owns no data, so a logged model is a
record on the run that produced it: JSON in the run's tag ``tuning.mlflow.model.<model id>``
(split over ``...#1``, ``...#2`` when it outgrows a tag value; all parts are written in one
atomic LogBatch), its files under ``models/<model id>/`` in the run's artifacts, and the run tag
``tuning.mlflow.models`` marking runs that have any (what a search looks for). The model id is
``m-`` + the run's id + 8 random hex digits, so a model is found from its id alone.

A model created without a run (``mlflow.set_active_model``, ``create_external_model`` outside a
run) gets a run of its own to hold it: named like the model, FINISHED at once, tagged
``tuning.mlflow.modelHolder`` (MLflow's run searches skip such runs), and the model shows no
source run.

Metrics logged with a ``model_id`` are stored on the run they were logged to, as any metric,
and the latest point of each (metric, run, dataset) is also kept in the model's record, which
is what the model's ``metrics`` show (MLflow keeps every point there; the whole history is the
run's). Searches see the models of live runs.

A record changes by read-modify-write (a metric, a tag, the status), and several clients may
change one model at once (threads logging metrics with its ``model_id``). Each change is
therefore a compare-and-set (:func:`compare_and_set`): the new parts are written with a
LogBatch that expects the parts as they were read, and a change that lost the race reads the
record again and is applied anew, so none is lost.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.mlflow import convert, filters
from gateway.mlflow.context import Context
from gateway.mlflow.errors import MlflowError
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api

MODEL_ID = re.compile(r"m-([0-9a-f]{32})[0-9a-f]{8}")
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
_PART = "#"
_CHUNK = 7_900  # characters of a tag value (well under the service's limit, and what MLflow's tags hold)
_MAX_PARTS = 90  # a LogBatch takes 100 tags
# Tries of a compare-and-set before giving up with ABORTED: each lost try means that another
# writer's change went in, so this many only run out under a crowd of writers of one run.
_ATTEMPTS = 50
_ORDERABLE = {"name", "model_id", "creation_timestamp", "last_updated_timestamp", "status", "model_type"}


def now() -> int:
    return int(time.time() * 1000)


def run_id_of(model_id: str) -> str:
    match = MODEL_ID.fullmatch(model_id or "")
    if not match:
        raise MlflowError.missing(f"Logged model with ID '{model_id:.80}' not found.")
    return match.group(1)


# --- records on runs ----------------------------------------------------------------------------

def records(run: pb.Run) -> dict[str, dict]:
    """model id -> record, for the logged models stored on ``run``."""
    tags = {t.key: t.value for t in run.tags if t.key.startswith(convert.MODEL_TAG)}
    out = {}
    for key, value in tags.items():
        model_id = key[len(convert.MODEL_TAG):]
        if _PART in model_id:
            continue
        count, _, text = value.partition("|")
        if not count.isdigit():
            continue
        parts = [text] + [tags.get(f"{key}{_PART}{i}", "") for i in range(1, int(count))]
        try:
            record = json.loads("".join(parts))
        except ValueError:
            continue
        if isinstance(record, dict):
            out[model_id] = record
    return out


def _encode(model_id: str, record: dict) -> list[pb.Tag]:
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    chunks = [text[i:i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    if len(chunks) > _MAX_PARTS:
        raise MlflowError.invalid(f"logged model {model_id}: its tags, params and metrics take {len(text)} characters, "
                                  f"more than this server keeps for a model ({_CHUNK * _MAX_PARTS})")
    key = convert.MODEL_TAG + model_id
    tags = [pb.Tag(key=key, value=f"{len(chunks)}|{chunks[0]}")]
    tags += [pb.Tag(key=f"{key}{_PART}{i}", value=chunk) for i, chunk in enumerate(chunks[1:], start=1)]
    return tags


def _tags(model_id: str, record: dict) -> list[pb.Tag]:
    record["updated"] = now()
    return _encode(model_id, record) + [pb.Tag(key=convert.MODELS_MARKER, value="1")]


async def _model_run(ctx: Context, model_id: str) -> pb.Run:
    run_id = run_id_of(model_id)
    try:
        return (await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))).run
    except MlflowError as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise MlflowError.missing(f"Logged model with ID '{model_id}' not found.") from None
        raise


def _record(run: pb.Run, model_id: str) -> dict:
    record = records(run).get(model_id)
    if record is None:
        raise MlflowError.missing(f"Logged model with ID '{model_id}' not found.")
    return record


async def load(ctx: Context, model_id: str) -> tuple[pb.Run, dict]:
    run = await _model_run(ctx, model_id)
    return run, _record(run, model_id)


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


async def update(ctx: Context, model_id: str, mutate: Callable[[dict], bool]) -> tuple[pb.Run, dict]:
    """Applies ``mutate`` (which changes the record it is given in place and says whether it
    changed it) to the model's record, as a compare-and-set: it may run more than once, each
    time on the record as stored then. Returns the run and the record as written."""
    key = convert.MODEL_TAG + model_id
    written: dict[str, dict] = {}

    def change(run: pb.Run) -> list[pb.Tag] | None:
        record = written["record"] = _record(run, model_id)
        return _tags(model_id, record) if mutate(record) else None

    run = await compare_and_set(ctx, lambda: _model_run(ctx, model_id), change,
                                lambda name: name == key or name.startswith(key + _PART))
    return run, written["record"]


def artifact_uri(run: pb.Run, model_id: str) -> str:
    return f"{convert.run_artifact_uri(run.experiment_id, run.id)}/{convert.model_folder(model_id)}"


def _metric_key(point: dict) -> tuple:
    return point["key"], point.get("run_id", ""), point.get("dataset_name", ""), point.get("dataset_digest", "")


def _later(new: dict, old: dict) -> bool:
    """MLflow's "latest" rule: the higher step, then the later timestamp, then the larger value."""
    def rank(point: dict) -> tuple:
        value = point["value"]
        return point["step"], point["timestamp"], float("-inf") if value == "NaN" else float(value)

    return rank(new) >= rank(old)


def model_json(run: pb.Run, model_id: str, record: dict) -> dict:
    info = {
        "model_id": model_id,
        "experiment_id": str(run.experiment_id),
        "name": record.get("name", ""),
        "creation_timestamp_ms": record.get("created", 0),
        "last_updated_timestamp_ms": record.get("updated", 0),
        "artifact_uri": artifact_uri(run, model_id),
        "status": record.get("status", "LOGGED_MODEL_PENDING"),
        "model_type": record.get("model_type", ""),
        "source_run_id": "" if record.get("run_less") else run.id,
        "status_message": record.get("status_message", ""),
        "tags": convert.tag_list(record.get("tags", {})),
    }
    metrics = [{**point, "model_id": model_id} for point in record.get("metrics", [])]
    return {"info": info, "data": {"params": convert.tag_list(record.get("params", {})), "metrics": metrics}}


def outputs_of(run: pb.Run) -> list[dict]:
    """The run's model outputs: its own logged models, and others it named with log-outputs."""
    outputs = [{"model_id": model_id, "step": int(record.get("step", 0))}
               for model_id, record in sorted(records(run).items(), key=lambda item: item[1].get("created", 0))]
    own = {o["model_id"] for o in outputs}
    tag = next((t.value for t in run.tags if t.key == convert.MODEL_OUTPUTS), None)
    for item in convert.json_list(tag):
        if isinstance(item, dict) and item.get("model_id") not in own:
            outputs.append({"model_id": str(item.get("model_id")), "step": int(item.get("step", 0))})
    return outputs


# --- handlers -----------------------------------------------------------------------------------

async def _holder_run(ctx: Context, experiment: str, name: str) -> pb.Run:
    """A run of its own for a model created without one (see the module's docstring)."""
    if not experiment:
        raise MlflowError.invalid("a logged model without a source_run_id needs an experiment_id")
    run = (await ctx.tracking("CreateRun", api.CreateRunRequest(
        experiment_id=convert.experiment_id(experiment), name=name,
        tags=[pb.Tag(key=convert.MODEL_HOLDER, value="1")]))).run
    return (await ctx.tracking("UpdateRun", api.UpdateRunRequest(run_id=run.id, status=pb.RUN_STATUS_FINISHED))).run


async def create(ctx: Context) -> dict:
    run_id = ctx.text("source_run_id")
    wanted = ctx.text("experiment_id")
    name = ctx.text("name") or f"model-{secrets.token_hex(3)}"
    if run_id:
        convert.check_run_id(run_id, "source_run_id")
        run = (await ctx.tracking("GetRun", api.GetRunRequest(run_id=run_id))).run
        if wanted and convert.experiment_id(wanted) != run.experiment_id:
            raise MlflowError.invalid(f"source run {run_id} belongs to experiment {run.experiment_id}, not {wanted}")
    else:
        run = await _holder_run(ctx, wanted, name)
    model_id = f"m-{run.id}{secrets.token_hex(4)}"
    created = now()
    record = {
        "name": name,
        "model_type": ctx.text("model_type"),
        "status": "LOGGED_MODEL_PENDING",
        "created": created,
        "tags": dict(convert.pairs(ctx.items("tags"), "tags")),
        "params": dict(convert.pairs(ctx.items("params"), "params")),
        **({} if run_id else {"run_less": True}),
    }
    # A new model id: no other request can be writing its record yet.
    await ctx.tracking("LogBatch", api.LogBatchRequest(run_id=run.id, tags=_tags(model_id, record)))
    return {"model": model_json(run, model_id, record)}


async def check_models(ctx: Context, model_ids: list[str]) -> None:
    """RESOURCE_DOES_NOT_EXIST unless every model that metrics name exists: checked before the
    metrics are stored, so that a bad model id stores nothing."""
    for model_id in dict.fromkeys(model_ids):
        await load(ctx, model_id)


async def record_metrics(ctx: Context, points: list[tuple[str, dict]]) -> None:
    """Keeps the latest of ``points`` (model id, MLflow metric JSON with run_id) per metric, run
    and dataset in each model's record."""
    for model_id in dict.fromkeys(owner for owner, _ in points):
        mine = [point for owner, point in points if owner == model_id]

        def merge(record: dict, mine: list[dict] = mine) -> bool:
            latest = {_metric_key(p): p for p in record.get("metrics", [])}
            changed = False
            for point in mine:
                key = _metric_key(point)
                if key not in latest or _later(point, latest[key]):
                    latest[key], changed = point, True
            record["metrics"] = sorted(latest.values(), key=_metric_key)
            return changed

        await update(ctx, model_id, merge)


async def get(ctx: Context) -> dict:
    model_id = ctx.text("model_id", required=True)
    run, record = await load(ctx, model_id)
    return {"model": model_json(run, model_id, record)}


async def finalize(ctx: Context) -> dict:
    model_id = ctx.text("model_id", required=True)
    status = ctx.text("status", required=True)
    if status.isdigit() and 1 <= int(status) <= 3:
        status = STATUSES[int(status) - 1]
    if status not in STATUSES:
        raise MlflowError.invalid(f"status must be one of {', '.join(STATUSES)}, got {status!r:.40}")
    def finish(record: dict) -> bool:
        record["status"] = status
        return True

    run, record = await update(ctx, model_id, finish)
    return {"model": model_json(run, model_id, record)}


async def delete(ctx: Context) -> dict:
    model_id = ctx.text("model_id", required=True)
    run, record = await load(ctx, model_id)
    key = convert.MODEL_TAG + model_id
    keys = [key] + [t.key for t in run.tags if t.key.startswith(key + _PART)]
    for name in keys:
        await ctx.tracking("DeleteTag", api.DeleteTagRequest(run_id=run.id, key=name))
    return {}


async def _merge(ctx: Context, field: str) -> tuple[pb.Run, str, dict]:
    """Adds the request's ``field`` pairs (tags or params) to the logged model's record."""
    model_id = ctx.text("model_id", required=True)
    pairs = convert.pairs(ctx.items(field), field)

    def add(record: dict) -> bool:
        record.setdefault(field, {}).update(pairs)
        return True

    run, record = await update(ctx, model_id, add)
    return run, model_id, record


async def set_tags(ctx: Context) -> dict:
    return {"model": model_json(*await _merge(ctx, "tags"))}


async def delete_tag(ctx: Context) -> dict:
    model_id = ctx.text("model_id", required=True)
    key = ctx.text("tag_key", required=True)

    def remove(record: dict) -> bool:
        if key not in record.get("tags", {}):
            raise MlflowError.missing(f"No tag with key {key!r:.250} on logged model {model_id}")
        del record["tags"][key]
        return True

    await update(ctx, model_id, remove)
    return {}


async def log_params(ctx: Context) -> dict:
    await _merge(ctx, "params")
    return {}


async def record_outputs(ctx: Context, run: pb.Run, models: list[tuple[str, int]]) -> None:
    """log-outputs: a step on the run's own models, a list in a tag for models of other runs."""
    own = records(run)
    others = []
    for model_id, step in models:
        if model_id in own:
            def at_step(record: dict, step: int = step) -> bool:
                changed, record["step"] = record.get("step", 0) != step, step
                return changed

            await update(ctx, model_id, at_step)
        else:
            run_id_of(model_id)  # a model of this server
            others.append({"model_id": model_id, "step": step})
    if not others:
        return

    def add(current: pb.Run) -> list[pb.Tag] | None:
        tag = next((t.value for t in current.tags if t.key == convert.MODEL_OUTPUTS), None)
        foreign = [o for o in convert.json_list(tag) if isinstance(o, dict)]
        known = len(foreign)
        foreign += [o for i, o in enumerate(others) if o not in foreign and o not in others[:i]]
        if len(foreign) == known:
            return None
        return [pb.Tag(key=convert.MODEL_OUTPUTS, value=json.dumps(foreign, separators=(",", ":")))]

    await compare_and_set(ctx, lambda: get_run(ctx, run.id), add, lambda name: name == convert.MODEL_OUTPUTS)


async def search(ctx: Context) -> dict:
    experiment_ids = [convert.experiment_id(e, "experiment_ids") for e in ctx.strings("experiment_ids")]
    if not experiment_ids:
        raise MlflowError.invalid("experiment_ids must name at least one experiment")
    if ctx.items("datasets"):
        raise MlflowError.invalid("searching logged models by dataset is not supported by this server "
                                  "(metrics are kept on runs, not per model and dataset)")
    test = filters.predicate(ctx.text("filter"))
    order = []
    for item in ctx.items("order_by"):
        if not isinstance(item, dict) or not item.get("field_name"):
            raise MlflowError.invalid("order_by items need a field_name")
        if item.get("dataset_name") or item.get("dataset_digest"):
            raise MlflowError.invalid("ordering logged models by a dataset's metric is not supported")
        name = str(item["field_name"]).removeprefix("attributes.")
        name = {"creation_time": "creation_timestamp", "last_update_time": "last_updated_timestamp"}.get(name, name)
        order.append((name, item.get("ascending", True) not in (False, "false")))
    filters.order_keys(order, _ORDERABLE)
    limit = ctx.integer("max_results", 100)
    if not 1 <= limit <= 1000:
        raise MlflowError.invalid(f"max_results must be between 1 and 1000, got {limit}")
    offset = ctx.text("page_token")
    if offset and not offset.isdigit():
        raise MlflowError.invalid("invalid page_token")
    offset_n = int(offset or 0)

    found = []
    token = ""
    while True:
        answer = await ctx.tracking("SearchRuns", api.SearchRunsRequest(
            experiment_ids=experiment_ids, filter=f"tags.`{convert.MODELS_MARKER}` IS NOT NULL",
            page_size=1000, page_token=token))
        for run in answer.runs:
            for model_id, record in records(run).items():
                item = model_json(run, model_id, record)
                if test(_lookup(item)):
                    found.append(item)
        token = answer.next_page_token
        if not token:
            break

    def sort_key(item: dict, name: str):
        value = _attribute(item["info"], name)
        return (value is None, value)

    found.sort(key=lambda item: (-item["info"]["creation_timestamp_ms"], item["info"]["model_id"]))
    for name, ascending in reversed(order):
        found.sort(key=lambda item, name=name: sort_key(item, name), reverse=not ascending)
    page = found[offset_n:offset_n + limit]
    more = offset_n + limit < len(found)
    return {"models": page, **({"next_page_token": str(offset_n + limit)} if more else {})}


def _lookup(item: dict):
    info, data = item["info"], item["data"]
    tags = {t["key"]: t["value"] for t in info["tags"]}
    params = {p["key"]: p["value"] for p in data["params"]}
    metrics: dict[str, dict] = {}
    for point in data["metrics"]:
        if point["key"] not in metrics or _later(point, metrics[point["key"]]):
            metrics[point["key"]] = point

    def lookup(namespace: str, key: str) -> Any:
        if namespace == "tags":
            return tags.get(key)
        if namespace == "params":
            return params.get(key)
        if namespace == "metrics":
            point = metrics.get(key)
            return None if point is None else float(point["value"])
        return _attribute(info, key)

    return lookup


def _attribute(info: dict, name: str) -> Any:
    if name == "experiment_id":
        return int(info["experiment_id"])
    if name in ("creation_timestamp", "last_updated_timestamp"):
        return info[name + "_ms"]
    return info.get(name)


async def list_artifacts(ctx: Context) -> dict:
    from gateway.mlflow import artifacts

    model_id = ctx.text("model_id", required=True)
    run, _ = await load(ctx, model_id)
    folder = convert.model_folder(model_id)
    path = ctx.text("artifact_directory_path").strip("/")
    files = await artifacts.listing(ctx, run.id, f"{folder}/{path}" if path else folder)
    return {"root_uri": artifact_uri(run, model_id),
            "files": [artifacts.file_json(f, f.path[len(folder) + 1:]) for f in files]}
