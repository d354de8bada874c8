"""MLflow's JSON <-> our protos.

MLflow's ids are strings (experiment ids too), its times epoch milliseconds, its enums plain
strings (run status RUNNING/SCHEDULED/FINISHED/FAILED/KILLED, lifecycle stage active/deleted,
model stages None/Staging/Production/Archived), and its int64 fields JSON numbers. Non-finite
metric values are written as proto3 JSON does ("NaN", "Infinity"), which the client parses.

System tags round-trip: every tag MLflow sends is stored as a tag. ``mlflow.runName`` is also
the run's name and ``mlflow.parentRunId`` its parent, and answers always carry both (and
``mlflow.user``) from the run itself, so runs created through our API look the same. Tags under
``tuning.mlflow.`` hold what MLflow has and our protos do not (logged models, model inputs and
outputs); they are left out of MLflow's answers and cannot be set through it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.mlflow.errors import MlflowError
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import tracking_pb2 as pb

RUN_NAME, PARENT_RUN, USER = "mlflow.runName", "mlflow.parentRunId", "mlflow.user"
DATASET_CONTEXT = "mlflow.data.context"
# Our own records on a run, hidden from MLflow's answers.
INTERNAL_PREFIX = "tuning.mlflow."
MODEL_INPUTS = INTERNAL_PREFIX + "modelInputs"
MODEL_OUTPUTS = INTERNAL_PREFIX + "modelOutputs"
# Marks the run that holds a logged model created without a run (mlflow.set_active_model):
# MLflow's run searches do not show these runs.
MODEL_HOLDER = INTERNAL_PREFIX + "modelHolder"

ARTIFACTS_SCHEME = "mlflow-artifacts:"
# Where a logged model's files live inside its source run's artifacts.
MODELS_FOLDER = "models"

RUN_STATUSES = {pb.RUN_STATUS_RUNNING: "RUNNING", pb.RUN_STATUS_SCHEDULED: "SCHEDULED",
                pb.RUN_STATUS_FINISHED: "FINISHED", pb.RUN_STATUS_FAILED: "FAILED", pb.RUN_STATUS_KILLED: "KILLED"}
RUN_STATUS_VALUES = {name: value for value, name in RUN_STATUSES.items()}
LIFECYCLE = {pb.LIFECYCLE_STAGE_ACTIVE: "active", pb.LIFECYCLE_STAGE_DELETED: "deleted"}
VIEW_TYPES = {"ACTIVE_ONLY": pb.VIEW_TYPE_ACTIVE_ONLY, "DELETED_ONLY": pb.VIEW_TYPE_DELETED_ONLY,
              "ALL": pb.VIEW_TYPE_ALL, "1": pb.VIEW_TYPE_ACTIVE_ONLY, "2": pb.VIEW_TYPE_DELETED_ONLY,
              "3": pb.VIEW_TYPE_ALL}
STAGES = {rpb.STAGE_NONE: "None", rpb.STAGE_STAGING: "Staging", rpb.STAGE_PRODUCTION: "Production",
          rpb.STAGE_ARCHIVED: "Archived", rpb.STAGE_UNSPECIFIED: "None"}
STAGE_VALUES = {"none": rpb.STAGE_NONE, "staging": rpb.STAGE_STAGING, "production": rpb.STAGE_PRODUCTION,
                "archived": rpb.STAGE_ARCHIVED}
VERSION_STATUSES = {rpb.MODEL_VERSION_STATUS_PENDING_REGISTRATION: "PENDING_REGISTRATION",
                    rpb.MODEL_VERSION_STATUS_FAILED_REGISTRATION: "FAILED_REGISTRATION",
                    rpb.MODEL_VERSION_STATUS_READY: "READY", rpb.MODEL_VERSION_STATUS_UNSPECIFIED: "READY"}

RUN_ID = re.compile(r"[0-9a-f]{32}")


# --- scalars ------------------------------------------------------------------------------------

def ms(timestamp: Timestamp) -> int:
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000


def timestamp(milliseconds: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(int(milliseconds))
    return stamp


def number(value: float) -> float | str:
    """A double as proto3 JSON writes it: non-finite values as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def parse_double(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise MlflowError.invalid(f"{field} must be a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # also "NaN", "Infinity", "-Infinity"
        except ValueError:
            pass
    raise MlflowError.invalid(f"{field} must be a number, got {value!r:.60}")


def experiment_id(value: Any, field: str = "experiment_id") -> int:
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"\d{1,18}", text):
        raise MlflowError.invalid(f"{field} must be an experiment id (digits), got {value!r:.60}")
    return int(text)


def check_run_id(run_id: str, field: str = "run_id") -> str:
    if not RUN_ID.fullmatch(run_id):
        # Our ids are 32 hex characters: anything else names no run.
        raise MlflowError.missing(f"Run with id={run_id!r:.80} not found")
    return run_id


def pairs(items: Iterable[Mapping[str, Any]] | None, field: str, *, name_key: str = "key") -> list[tuple[str, str]]:
    out = []
    for item in items or ():
        if not isinstance(item, Mapping):
            raise MlflowError.invalid(f"{field} must be a list of objects with {name_key} and value")
        value = item.get("value", "")
        out.append((str(item.get(name_key, "")), "" if value is None else str(value)))
    return out


def tag_list(tags: Iterable[tuple[str, str]] | Mapping[str, str]) -> list[dict]:
    items = tags.items() if isinstance(tags, Mapping) else tags
    return [{"key": key, "value": value} for key, value in items]


def check_settable(key: str) -> None:
    if key.startswith(INTERNAL_PREFIX):
        raise MlflowError.invalid(f"tag keys starting with {INTERNAL_PREFIX!r} are reserved by this server")


# --- artifact locations -------------------------------------------------------------------------

def experiment_location(exp_id: int) -> str:
    return f"{ARTIFACTS_SCHEME}/{exp_id}"


def run_artifact_uri(exp_id: int, run_id: str) -> str:
    return f"{ARTIFACTS_SCHEME}/{exp_id}/{run_id}/artifacts"


def split_artifact_path(path: str) -> tuple[str, str]:
    """(run id, path inside the run's artifacts) of ``<experiment>/<run>/artifacts[/<path>]``, the
    paths of ``mlflow-artifacts:`` URIs this server hands out."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or not parts[0].isdigit() or parts[2] != "artifacts" or not RUN_ID.fullmatch(parts[1]):
        raise MlflowError.missing(
            f"no artifact location {path!r:.200}: this server keeps artifacts under "
            "<experiment id>/<run id>/artifacts/, the artifact_uri of each run")
    return parts[1], parts[3] if len(parts) == 4 else ""


# --- experiments --------------------------------------------------------------------------------

def experiment_json(experiment: pb.Experiment) -> dict:
    return {
        "experiment_id": str(experiment.id),
        "name": experiment.name,
        "artifact_location": experiment_location(experiment.id),
        "lifecycle_stage": LIFECYCLE.get(experiment.lifecycle_stage, "active"),
        "last_update_time": ms(experiment.update_time),
        "creation_time": ms(experiment.create_time),
        "tags": tag_list((t.key, t.value) for t in experiment.tags),
    }


# --- runs ---------------------------------------------------------------------------------------

def run_info_json(run: pb.Run) -> dict:
    info = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user,
        "status": RUN_STATUSES.get(run.status, "RUNNING"),
        "start_time": ms(run.start_time),
        "artifact_uri": run_artifact_uri(run.experiment_id, run.id),
        "lifecycle_stage": LIFECYCLE.get(run.lifecycle_stage, "active"),
    }
    if run.HasField("end_time"):
        info["end_time"] = ms(run.end_time)
    return info


def run_tags(run: pb.Run) -> dict[str, str]:
    """The run's tags as MLflow sees them: ours hidden, the system tags from the run itself."""
    tags = {t.key: t.value for t in run.tags if not t.key.startswith(INTERNAL_PREFIX)}
    tags[RUN_NAME] = run.name
    if run.parent_run_id:
        tags[PARENT_RUN] = run.parent_run_id
    if run.user:
        tags.setdefault(USER, run.user)
    return tags


def metric_json(metric: pb.Metric, run_id: str | None = None) -> dict:
    out = {"key": metric.key, "value": number(metric.value), "timestamp": ms(metric.timestamp), "step": metric.step}
    if run_id:
        out["run_id"] = run_id
    return out


def dataset_input_json(item: pb.DatasetInput) -> dict:
    tags = [(t.key, t.value) for t in item.tags]
    if item.context and all(key != DATASET_CONTEXT for key, _ in tags):
        tags.append((DATASET_CONTEXT, item.context))
    d = item.dataset
    dataset = {"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source}
    if d.schema:
        dataset["schema"] = d.schema
    if d.profile:
        dataset["profile"] = d.profile
    return {"tags": tag_list(tags), "dataset": dataset}


def json_list(text: str | None) -> list:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def dataset_inputs(items: Iterable[Mapping[str, Any]] | None) -> list[pb.DatasetInput]:
    out = []
    for i, item in enumerate(items or ()):
        if not isinstance(item, Mapping) or not isinstance(item.get("dataset"), Mapping):
            raise MlflowError.invalid(f"datasets[{i}] must be an object with a dataset")
        d = item["dataset"]
        tags = pairs(item.get("tags"), f"datasets[{i}].tags")
        context = next((value for key, value in tags if key == DATASET_CONTEXT), "")
        out.append(pb.DatasetInput(
            dataset=pb.Dataset(name=str(d.get("name", "")), digest=str(d.get("digest", "")),
                               source_type=str(d.get("source_type", "")), source=str(d.get("source", "")),
                               schema=str(d.get("schema", "") or ""), profile=str(d.get("profile", "") or "")),
            context=context, tags=[pb.Tag(key=k, value=v) for k, v in tags]))
    return out


# --- registry -----------------------------------------------------------------------------------

def stage_value(text: Any) -> int:
    stage = STAGE_VALUES.get(str(text or "").strip().lower())
    if stage is None:
        raise MlflowError.invalid(f"Invalid Model Version stage: {text!r:.40}. Value must be one of "
                                  "None, Staging, Production, Archived.")
    return stage


def version_number(value: Any) -> int:
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"\d{1,18}", text) or int(text) < 1:
        raise MlflowError.invalid(f"Model version must be a positive integer, got {value!r:.40}")
    return int(text)


def logged_model_of_source(source: str) -> tuple[str, str] | None:
    """(run id, model id) when ``source`` is where a logged model of this server lives."""
    match = re.fullmatch(rf"runs:/([0-9a-f]{{32}})/{MODELS_FOLDER}/(m-[0-9a-f]{{32}}(?:[0-9a-f]{{8}})?)/?", source)
    if match:
        return match.group(1), match.group(2)
    return None


def model_version_json(version: rpb.ModelVersion) -> dict:
    source = version.source
    model = logged_model_of_source(source)
    out = {
        "name": version.name,
        "version": str(version.version),
        "creation_timestamp": ms(version.create_time),
        "last_updated_timestamp": ms(version.update_time),
        "user_id": version.user,
        "current_stage": STAGES.get(version.stage, "None"),
        "description": version.description,
        # As MLflow 3 records a logged model's registration: models:/<model id>.
        "source": f"models:/{model[1]}" if model else source,
        "run_id": version.run_id,
        "status": VERSION_STATUSES.get(version.status, "READY"),
        "status_message": "",
        "tags": tag_list((t.key, t.value) for t in version.tags),
        "run_link": "",
        "aliases": list(version.aliases),
    }
    if model:
        out["model_id"] = model[1]
    return out


def registered_model_json(model: rpb.RegisteredModel) -> dict:
    return {
        "name": model.name,
        "creation_timestamp": ms(model.create_time),
        "last_updated_timestamp": ms(model.update_time),
        "description": model.description,
        "latest_versions": [model_version_json(v) for v in model.latest_versions],
        "tags": tag_list((t.key, t.value) for t in model.tags),
        "aliases": [{"alias": alias, "version": str(version)} for alias, version in sorted(model.aliases.items())],
    }
