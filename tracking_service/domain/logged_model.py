"""Logged models (MLflow 3's LoggedModel): plain values and their validation. No SQL, no gRPC."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from tracking_service.domain.model import (
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    MAX_PARAM_VALUE,
    check_key,
    check_run_id,
    check_tags,
    check_text,
)
from tuning_common.errors import InvalidArgument

# "m-" and 32 hex digits; models the gateway kept on runs before the entity existed have 40
# (their run's id and 8 more), and keep them.
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}(?:[0-9a-f]{8})?")
MAX_DATASET_DIGEST = 128
MAX_MODEL_TYPE = 250
# Where a model's files go inside the artifacts of the run that holds them.
MODELS_FOLDER = "models"


class LoggedModelStatus(enum.Enum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class ModelMetric(NamedTuple):
    """The latest point of one (key, run, dataset) linked to a model."""

    key: str
    value: float
    timestamp_ms: int
    step: int = 0
    run_id: str = ""
    dataset_name: str = ""
    dataset_digest: str = ""

    def identity(self) -> tuple[str, str, str, str]:
        return self.key, self.run_id, self.dataset_name, self.dataset_digest


@dataclass(frozen=True)
class LoggedModel:
    id: str
    experiment_id: int
    name: str
    source_run_id: str | None
    status: LoggedModelStatus
    status_message: str
    model_type: str
    artifact_run_id: str | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: tuple[ModelMetric, ...]
    create_ms: int
    update_ms: int

    @property
    def artifact_location(self) -> str:
        """``runs:/<run>/models/<id>``, or empty when no run holds its files."""
        if not self.artifact_run_id:
            return ""
        return f"runs:/{self.artifact_run_id}/{MODELS_FOLDER}/{self.id}"


def new_model_id() -> str:
    return "m-" + uuid.uuid4().hex


def check_model_id(model_id: str, field: str = "model_id") -> str:
    if not _MODEL_ID.fullmatch(model_id or ""):
        raise InvalidArgument(field, f"must be 'm-' and 32 lowercase hex characters, got {model_id!r:.80}")
    return model_id


def check_optional_run_id(run_id: str, field: str) -> str | None:
    return check_run_id(run_id, field) if run_id else None


def check_params(params: list[tuple[str, str]], field: str = "params") -> dict[str, str]:
    if len(params) > MAX_BATCH_PARAMS:
        raise InvalidArgument(field, f"at most {MAX_BATCH_PARAMS} params per call, got {len(params)}")
    for i, (key, value) in enumerate(params):
        check_key(key, f"{field}[{i}].key")
        check_text(value, f"{field}[{i}].value", MAX_PARAM_VALUE)
    return dict(params)


def check_model_tags(tags: list[tuple[str, str]], field: str = "tags") -> dict[str, str]:
    if len(tags) > MAX_BATCH_TAGS:
        raise InvalidArgument(field, f"at most {MAX_BATCH_TAGS} tags per call, got {len(tags)}")
    return check_tags(tags, field)


def check_model_metrics(metrics: list[ModelMetric], field: str = "metrics") -> None:
    if len(metrics) > MAX_BATCH_METRICS:
        raise InvalidArgument(field, f"at most {MAX_BATCH_METRICS} metrics per call, got {len(metrics)}")
    for i, metric in enumerate(metrics):
        check_key(metric.key, f"{field}[{i}].key")
        if metric.timestamp_ms < 0:
            raise InvalidArgument(f"{field}[{i}].timestamp", "must not be before 1970")
        if metric.run_id:
            check_run_id(metric.run_id, f"{field}[{i}].run_id")
        check_text(metric.dataset_name, f"{field}[{i}].dataset_name", 250)
        check_text(metric.dataset_digest, f"{field}[{i}].dataset_digest", MAX_DATASET_DIGEST)


def later(new: ModelMetric, old: ModelMetric) -> bool:
    """MLflow's "latest" rule: the higher step, then the later timestamp, then the larger value (NaN lowest)."""
    def rank(point: ModelMetric) -> tuple:
        value = float("-inf") if point.value != point.value else point.value
        return point.step, point.timestamp_ms, value

    return rank(new) >= rank(old)
