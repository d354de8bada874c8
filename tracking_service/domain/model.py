"""Plain values of the tracking service: what the API and the storage exchange.

Validation lives here too, so every entry point (gRPC now, the MLflow dialect of the
gateway later) enforces the same documented limits: a request over a limit is refused
with a message naming the field, and nothing is ever truncated.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from tuning_common.errors import InvalidArgument

# MLflow's limits (mlflow/utils/validation.py) where it has one, or more where MLflow
# accepts more by truncating (tag values: MLflow keeps 8,000 characters of a run tag and
# 20,000 of an experiment tag; a run's description, tag mlflow.note.content, is often
# longer). Nothing is truncated here: a value over its limit is refused.
MAX_KEY = 250
MAX_EXPERIMENT_NAME = 500
MAX_PARAM_VALUE = 6_000
MAX_TAG_VALUE = 100_000
MAX_REQUEST_ID = 256
MAX_BATCH_METRICS = 1_000
MAX_BATCH_SERIES_POINTS = 10_000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_EXPECTED_TAGS = 100
MAX_DATASET_TEXT = 65_536
MAX_INPUTS = 100

_RUN_ID = re.compile(r"[0-9a-f]{32}")


class LifecycleStage(enum.Enum):
    ACTIVE = "active"
    DELETED = "deleted"


class RunStatus(enum.Enum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)


class ViewType(enum.Enum):
    ACTIVE_ONLY = "active_only"
    DELETED_ONLY = "deleted_only"
    ALL = "all"

    def stages(self) -> tuple[str, ...]:
        return {
            ViewType.ACTIVE_ONLY: (LifecycleStage.ACTIVE.value,),
            ViewType.DELETED_ONLY: (LifecycleStage.DELETED.value,),
            ViewType.ALL: (LifecycleStage.ACTIVE.value, LifecycleStage.DELETED.value),
        }[self]


class Metric(NamedTuple):
    # A named tuple rather than a dataclass: a LogBatch builds a thousand of these, and a
    # tuple is several times cheaper to create.
    key: str
    value: float
    timestamp_ms: int
    step: int = 0


class MetricSeries(NamedTuple):
    """Points of one metric in columns (the wire's compact form), arrays of equal length."""

    key: str
    values: Sequence[float]
    steps: Sequence[int]
    timestamps_ms: Sequence[int]


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage
    tags: dict[str, str]
    create_ms: int
    update_ms: int


@dataclass(frozen=True)
class TrialLink:
    study: str
    trial_id: int
    trial_number: int


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema: str = ""
    profile: str = ""


@dataclass(frozen=True)
class DatasetInput:
    dataset: Dataset
    context: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    id: str
    experiment_id: int
    name: str
    status: RunStatus
    lifecycle_stage: LifecycleStage
    start_ms: int
    end_ms: int | None
    parent_run_id: str | None
    run_group: str
    user: str
    artifact_uri: str
    params: dict[str, str]
    tags: dict[str, str]
    latest_metrics: dict[str, Metric]
    inputs: tuple[DatasetInput, ...]
    trial: TrialLink | None


# -- validation ------------------------------------------------------------------------------


def new_run_id() -> str:
    return uuid.uuid4().hex


def check_run_id(run_id: str, field: str = "run_id") -> str:
    if not _RUN_ID.fullmatch(run_id or ""):
        raise InvalidArgument(field, f"must be 32 lowercase hex characters, got {run_id!r:.80}")
    return run_id


def check_text(value: str, field: str, limit: int, *, required: bool = False) -> str:
    if required and not value.strip():
        raise InvalidArgument(field, "must not be empty")
    if len(value) > limit:
        raise InvalidArgument(field, f"is {len(value)} characters long; the limit is {limit}")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def check_key(key: str, field: str, limit: int = MAX_KEY) -> str:
    """Names and keys: 1-``limit`` characters, no control characters, no leading/trailing blanks."""
    check_text(key, field, limit, required=True)
    if key != key.strip():
        raise InvalidArgument(field, "must not start or end with whitespace")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidArgument(field, "must not contain control characters")
    return key


def check_tags(tags: dict[str, str] | list[tuple[str, str]], field: str) -> dict[str, str]:
    items = list(tags.items()) if isinstance(tags, dict) else list(tags)
    for i, (key, value) in enumerate(items):
        check_key(key, f"{field}[{i}].key")
        check_text(value, f"{field}[{i}].value", MAX_TAG_VALUE)
    return dict(items)


def check_series(series: Sequence[MetricSeries]) -> None:
    total = 0
    for i, item in enumerate(series):
        check_key(item.key, f"series[{i}].key")
        n = len(item.values)
        for name in ("steps", "timestamps_ms"):
            if len(getattr(item, name)) != n:
                raise InvalidArgument(f"series[{i}].{name}",
                                      f"has {len(getattr(item, name))} entries for {n} values")
        if n and min(item.timestamps_ms) < 0:
            raise InvalidArgument(f"series[{i}].timestamps_ms", "must not be before 1970")
        total += n
    if total > MAX_BATCH_SERIES_POINTS:
        raise InvalidArgument("series", f"a batch holds at most {MAX_BATCH_SERIES_POINTS} points in series, "
                                        f"got {total}")


def check_batch(metrics: list[Metric], params: list[tuple[str, str]], tags: list[tuple[str, str]], *,
                single: bool = False) -> None:
    """``single``: the request carries one item in a field of its own (LogMetric's ``metric``,
    LogParam's ``param``, SetTag's ``tag``), and errors name that field rather than a list's item."""
    def item(kind: str, i: int) -> str:
        return kind[:-1] if single else f"{kind}[{i}]"

    for name, items, limit in (("metrics", metrics, MAX_BATCH_METRICS), ("params", params, MAX_BATCH_PARAMS),
                               ("tags", tags, MAX_BATCH_TAGS)):
        if len(items) > limit:
            raise InvalidArgument(name, f"a batch holds at most {limit} {name}, got {len(items)}")
    checked: set[str] = set()  # a batch repeats a few keys many times: check each once
    for i, metric in enumerate(metrics):
        if metric.key not in checked:
            check_key(metric.key, f"{item('metrics', i)}.key")
            checked.add(metric.key)
        if metric.timestamp_ms < 0:
            raise InvalidArgument(f"{item('metrics', i)}.timestamp", "must not be before 1970")
    seen: dict[str, str] = {}
    for i, (key, value) in enumerate(params):
        check_key(key, f"{item('params', i)}.key")
        check_text(value, f"{item('params', i)}.value", MAX_PARAM_VALUE)
        if seen.setdefault(key, value) != value:
            raise InvalidArgument(item("params", i), f"param {key!r} appears twice in the batch with different values")
    for i, (key, value) in enumerate(tags):
        check_key(key, f"{item('tags', i)}.key")
        check_text(value, f"{item('tags', i)}.value", MAX_TAG_VALUE)


def check_expected_tags(expected: list[tuple[str, str | None]]) -> None:
    """A LogBatch's compare-and-set conditions: (key, the value it must have, or None: absent)."""
    if len(expected) > MAX_EXPECTED_TAGS:
        raise InvalidArgument("expected_tags", f"at most {MAX_EXPECTED_TAGS} per batch, got {len(expected)}")
    for i, (key, value) in enumerate(expected):
        check_key(key, f"expected_tags[{i}].key")
        if value is not None:
            check_text(value, f"expected_tags[{i}].value", MAX_TAG_VALUE)


def check_dataset_input(item: DatasetInput, field: str) -> DatasetInput:
    d = item.dataset
    check_key(d.name, f"{field}.dataset.name")
    check_key(d.digest, f"{field}.dataset.digest")
    if len(d.digest) > 128:
        raise InvalidArgument(f"{field}.dataset.digest", "is longer than 128 characters")
    check_text(d.source_type, f"{field}.dataset.source_type", 64)
    for name in ("source", "schema", "profile"):
        check_text(getattr(d, name), f"{field}.dataset.{name}", MAX_DATASET_TEXT)
    check_text(item.context, f"{field}.context", MAX_KEY)
    check_tags(item.tags, f"{field}.tags")
    return item
