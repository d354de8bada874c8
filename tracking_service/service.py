"""Use cases of the tracking service: experiments, runs, logging, search and artifacts.

Each use case is one short transaction through :class:`tuning_common.database.Database`;
validation happens before it starts, so a refused request changes nothing. Artifact bytes
go to the artifact store outside any transaction (the run is checked first).
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable, Iterator, Sequence

import numpy as np

from tracking_service.artifacts import ArtifactStore, FileInfo, clean_relative_path
from tracking_service.artifacts.store import check_upload_header
from tracking_service.domain.model import (
    MAX_EXPERIMENT_NAME,
    MAX_INPUTS,
    MAX_KEY,
    MAX_REQUEST_ID,
    MAX_TAG_VALUE,
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    MetricSeries,
    Run,
    RunStatus,
    TrialLink,
    ViewType,
    check_batch,
    check_dataset_input,
    check_expected_tags,
    check_key,
    check_run_id,
    check_series,
    check_tags,
    check_text,
    new_run_id,
)
from tracking_service.persistence import Transaction
from tracking_service.persistence.repository import ExperimentRepository, RunRepository, RunState, stored_value
from tuning_common import paging, telemetry
from tuning_common.access import record_creation
from tuning_common.database import Database
from tuning_common.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tuning_common.paging import page_size
from tuning_types import search

DEFAULT_EXPERIMENT_ID = 0
DEFAULT_EXPERIMENT_NAME = "Default"
MAX_ARTIFACT_BYTES = 5 * 1024**3
# Presigned download URLs: 15 minutes unless asked otherwise; S3 refuses more than 7 days (SigV4).
DOWNLOAD_URL_SECONDS = 900
MAX_DOWNLOAD_URL_SECONDS = 7 * 24 * 3600

_ADJECTIVES = ("amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "fair", "gentle", "keen", "lucid",
               "merry", "nimble", "quiet", "rapid", "sly", "steady", "swift", "vivid", "witty")
_NOUNS = ("badger", "crane", "falcon", "fox", "heron", "ibis", "lynx", "marten", "newt", "otter", "owl", "panda",
          "puffin", "raven", "seal", "stoat", "swan", "tern", "vole", "wren")


def now_ms() -> int:
    return int(time.time() * 1000)


def paged_search(db: Database, schema: search.EntitySchema, fetch, *, filter_text: str, order_by: Sequence[str],
                 size: int, token: str, default_size: int, max_size: int, scope: tuple = ()) -> tuple[list, str]:
    """One page of a search: parse the filter and order, check the page token against this
    query, and fetch one more than a page to know whether another follows.

    ``fetch(conn, node, keys, offset, limit)`` is a repository's search (which compiles the
    parsed filter and order to SQL); ``scope`` is whatever else shapes the result (experiment
    ids, view type), so that a page token is refused by another query.
    """
    size = page_size(size, default_size, max_size)
    node = search.parse_filter(filter_text, schema)
    keys = search.parse_order_by(list(order_by), schema)
    fingerprint = paging.fingerprint(schema.entity, filter_text, list(order_by), *scope)
    offset = paging.decode_page_token(token, fingerprint)
    found = db.run(lambda conn: fetch(conn, node, keys, offset, size + 1), write=False)
    more = len(found) > size
    return found[:size], paging.encode_page_token(offset + size, fingerprint) if more else ""


def live_run(runs: RunRepository, conn: Transaction, run_id: str, *, allow_deleted: bool = False,
             lock: bool = False) -> RunState:
    """The run, which must exist and (unless ``allow_deleted``) not be in the trash; with ``lock``,
    its row is locked until the transaction ends (writers that compare before they write)."""
    state = runs.state(conn, run_id, lock=lock)
    if state is None:
        raise NotFound(f"no run {run_id}")
    if state.lifecycle_stage is LifecycleStage.DELETED and not allow_deleted:
        raise FailedPrecondition(f"run {run_id} is deleted; restore it first", reason="RUN_DELETED")
    return state


METRICS_LOGGED = telemetry.meter().create_counter(
    "tuning.metrics.logged", unit="{point}", description="Metric points stored (logged one by one, in batches or series)")
ARTIFACT_BYTES = telemetry.meter().create_counter(
    "tuning.artifacts.uploaded", unit="By", description="Bytes of artifact files stored")


class TrackingService:
    def __init__(self, db: Database, store: ArtifactStore, *, max_artifact_bytes: int = MAX_ARTIFACT_BYTES):
        self.db, self.store, self.max_artifact_bytes = db, store, max_artifact_bytes
        self.experiments, self.runs = ExperimentRepository(), RunRepository()

    # -- experiments --------------------------------------------------------------------------

    def ensure_default_experiment(self) -> None:
        """Experiment 0, "Default", where runs go when no experiment is named (as in MLflow)."""
        location = self.store.default_experiment_location(DEFAULT_EXPERIMENT_ID)
        self.db.run(lambda conn: self.experiments.insert_if_absent(
            conn, DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, location, now_ms()), write=True)

    def create_experiment(self, name: str, artifact_location: str = "", tags: dict[str, str] | None = None
                          ) -> Experiment:
        check_key(name, "name", MAX_EXPERIMENT_NAME)
        tags = check_tags(tags or {}, "tags")
        location = self.store.check_location(artifact_location, "artifact_location") if artifact_location else None

        def work(conn: Transaction) -> Experiment:
            if self.experiments.exists_named(conn, name):
                raise AlreadyExists(f"an experiment named {name!r} exists (it may be deleted: restore or rename it)")
            experiment_id = self.experiments.insert(conn, name, location, now_ms())
            if location is None:
                # The default location holds the id, known only once the row exists.
                self.experiments.set_location(conn, experiment_id,
                                              self.store.default_experiment_location(experiment_id))
            self.experiments.set_tags(conn, experiment_id, tags)
            record_creation(conn, str(experiment_id))
            return self.experiments.find(conn, experiment_id=experiment_id)

        return self.db.run(work, write=True)

    def get_experiment(self, experiment_id: int) -> Experiment:
        return self.db.run(lambda conn: self._experiment(conn, experiment_id), write=False)

    def get_experiment_by_name(self, name: str) -> Experiment:
        check_key(name, "name", MAX_EXPERIMENT_NAME)
        experiment = self.db.run(lambda conn: self.experiments.find(conn, name=name), write=False)
        if experiment is None:
            raise NotFound(f"no experiment named {name!r}")
        return experiment

    def _experiment(self, conn: Transaction, experiment_id: int, *, for_update: bool = False) -> Experiment:
        experiment = self.experiments.find(conn, experiment_id=experiment_id, for_update=for_update)
        if experiment is None:
            raise NotFound(f"no experiment with id {experiment_id}")
        return experiment

    def search_experiments(self, filter_text: str = "", order_by: Sequence[str] = (),
                           view: ViewType = ViewType.ACTIVE_ONLY, size: int = 0, token: str = "",
                           readable: Collection[str] | None = None) -> tuple[list[Experiment], str]:
        """``readable``: only the experiments these subjects have a role on
        (tuning_common.access.readable_subjects); None: all."""
        def fetch(conn: Transaction, node, keys, offset: int, limit: int) -> list[Experiment]:
            return self.experiments.search(conn, node, keys, view, offset, limit, readable)

        return paged_search(self.db, search.EXPERIMENTS, fetch, filter_text=filter_text, order_by=order_by, size=size,
                            token=token, default_size=100, max_size=1_000, scope=(view.value, *sorted(readable or ())))

    def rename_experiment(self, experiment_id: int, new_name: str) -> Experiment:
        check_key(new_name, "new_name", MAX_EXPERIMENT_NAME)

        def work(conn: Transaction) -> Experiment:
            experiment = self._experiment(conn, experiment_id, for_update=True)
            if experiment.name != new_name and self.experiments.exists_named(conn, new_name):
                raise AlreadyExists(f"an experiment named {new_name!r} exists")
            self.experiments.rename(conn, experiment_id, new_name, now_ms())
            return self._experiment(conn, experiment_id)

        return self.db.run(work, write=True)

    def set_experiment_tag(self, experiment_id: int, key: str, value: str) -> None:
        check_key(key, "key")
        check_text(value, "value", MAX_TAG_VALUE)

        def work(conn: Transaction) -> None:
            self._experiment(conn, experiment_id)
            self.experiments.set_tags(conn, experiment_id, {key: value})
            self.experiments.touch(conn, experiment_id, now_ms())

        self.db.run(work, write=True)

    def set_experiment_stage(self, experiment_id: int, stage: LifecycleStage) -> None:
        """Delete or restore an experiment with its runs (MLflow's semantics)."""
        if stage is LifecycleStage.DELETED and experiment_id == DEFAULT_EXPERIMENT_ID:
            raise FailedPrecondition("the Default experiment (id 0) cannot be deleted")

        def work(conn: Transaction) -> None:
            experiment = self._experiment(conn, experiment_id, for_update=True)
            if experiment.lifecycle_stage is not stage:
                self.experiments.set_stage(conn, experiment_id, stage, now_ms())

        self.db.run(work, write=True)

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, experiment_id: int, *, name: str = "", start_ms: int | None = None,
                   tags: dict[str, str] | None = None, parent_run_id: str = "", run_group: str = "", user: str = "",
                   trial: TrialLink | None = None, status: RunStatus = RunStatus.RUNNING, request_id: str = "") -> Run:
        if name:
            check_key(name, "name")
        tags = check_tags(tags or {}, "tags")
        if parent_run_id:
            check_run_id(parent_run_id, "parent_run_id")
        if run_group:
            check_key(run_group, "run_group")
        check_text(user, "user", MAX_KEY)
        check_text(request_id, "request_id", MAX_REQUEST_ID)
        if status not in (RunStatus.RUNNING, RunStatus.SCHEDULED):
            raise InvalidArgument("status", f"a new run is RUNNING or SCHEDULED, got {status.name}")
        if trial is not None:
            check_key(trial.study, "trial.study")
        if start_ms is not None and start_ms < 0:
            raise InvalidArgument("start_time", "must not be before 1970")

        def work(conn: Transaction) -> Run:
            if request_id:
                existing = self.runs.id_for_request(conn, experiment_id, request_id)
                if existing is not None:
                    return self.runs.get(conn, [existing])[0]
            experiment = self._experiment(conn, experiment_id)
            if experiment.lifecycle_stage is LifecycleStage.DELETED:
                raise FailedPrecondition(f"experiment {experiment_id} is deleted; restore it first")
            if parent_run_id:
                parent = self.runs.state(conn, parent_run_id)
                if parent is None:
                    raise NotFound(f"no parent run {parent_run_id}")
            run_id = new_run_id()
            now = now_ms()
            run = Run(run_id, experiment_id, name or _run_name(), status, LifecycleStage.ACTIVE,
                      now if start_ms is None else start_ms, None, parent_run_id or None, run_group, user,
                      self.store.run_root(experiment_id, run_id, experiment.artifact_location), {}, tags, {}, (),
                      trial)
            if not self.runs.insert(conn, run, request_id or None, now):
                # A concurrent retry of the same request created it: return that one.
                return self.runs.get(conn, [self.runs.id_for_request(conn, experiment_id, request_id)])[0]
            self.runs.set_tags(conn, run_id, tags.items())
            return run

        return self.db.run(work, write=True)

    def experiment_of_run(self, run_id: str) -> int:
        """The id of a run's experiment, in one narrow read (roles are checked on it)."""
        check_run_id(run_id)
        state = self.db.run(lambda conn: self.runs.state(conn, run_id), write=False)
        if state is None:
            raise NotFound(f"no run {run_id}")
        return state.experiment_id

    def get_run(self, run_id: str) -> Run:
        check_run_id(run_id)
        found = self.db.run(lambda conn: self.runs.get(conn, [run_id]), write=False)
        if not found:
            raise NotFound(f"no run {run_id}")
        return found[0]

    def update_run(self, run_id: str, *, status: RunStatus | None = None, end_ms: int | None = None,
                   name: str = "") -> Run:
        check_run_id(run_id)
        if name:
            check_key(name, "name")
        if end_ms is not None and end_ms < 0:
            raise InvalidArgument("end_time", "must not be before 1970")
        if status is not None and status.terminal and end_ms is None:
            end_ms = now_ms()

        def work(conn: Transaction) -> Run:
            live_run(self.runs, conn, run_id, allow_deleted=True)
            self.runs.update(conn, run_id, now_ms(), status=status, end_ms=end_ms, name=name or None)
            return self.runs.get(conn, [run_id])[0]

        return self.db.run(work, write=True)

    def set_run_stage(self, run_id: str, stage: LifecycleStage) -> None:
        check_run_id(run_id)

        def work(conn: Transaction) -> None:
            state = live_run(self.runs, conn, run_id, allow_deleted=True)
            if stage is LifecycleStage.ACTIVE:
                experiment = self._experiment(conn, state.experiment_id)
                if experiment.lifecycle_stage is LifecycleStage.DELETED:
                    raise FailedPrecondition(
                        f"run {run_id}'s experiment {state.experiment_id} is deleted; restore it first")
            if state.lifecycle_stage is not stage:
                self.runs.update(conn, run_id, now_ms(), stage=stage)

        self.db.run(work, write=True)

    def search_runs(self, experiment_ids: Sequence[int], filter_text: str = "", order_by: Sequence[str] = (),
                    view: ViewType = ViewType.ACTIVE_ONLY, size: int = 0, token: str = "") -> tuple[list[Run], str]:
        if not experiment_ids:
            raise InvalidArgument("experiment_ids", "name at least one experiment")
        if len(experiment_ids) > 1_000:
            raise InvalidArgument("experiment_ids", f"at most 1000 experiments, got {len(experiment_ids)}")

        def fetch(conn: Transaction, node, keys, offset: int, limit: int) -> list[Run]:
            return self.runs.search(conn, node, keys, experiment_ids, view, offset, limit)

        return paged_search(self.db, search.RUNS, fetch, filter_text=filter_text, order_by=order_by, size=size,
                            token=token, default_size=1_000, max_size=50_000,
                            scope=(sorted(experiment_ids), view.value))

    # -- logging ------------------------------------------------------------------------------

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[tuple[str, str]] = (),
                  tags: Sequence[tuple[str, str]] = (), series: Sequence[MetricSeries] = (), *,
                  request_id: str = "", digest: str = "", single: bool = False,
                  expected_tags: Sequence[tuple[str, str | None]] = ()) -> None:
        """Stores a batch atomically. With a ``request_id``, a replay of a stored batch (same id,
        same ``digest`` of its content) stores nothing: its points without timestamps were
        stamped ``now`` by the first call, and a retry would stamp them again. ``single``: the
        batch is LogMetric's, LogParam's or SetTag's one item (see :func:`check_batch`).

        ``expected_tags`` (key, value or None for "absent") make the batch a compare-and-set: the
        run's row is locked (PostgreSQL; SQLite's write transactions are serial anyway), the tags
        compared, and the batch stored only if all match, else Aborted (TAG_CHANGED)."""
        check_run_id(run_id)
        check_text(request_id, "request_id", MAX_REQUEST_ID)
        check_batch(list(metrics), list(params), list(tags), single=single)
        check_series(series)
        expected = list(expected_tags)
        check_expected_tags(expected)

        def work(conn: Transaction) -> bool:
            live_run(self.runs, conn, run_id, lock=bool(expected))
            if request_id:
                stored = self.runs.claim_batch_request(conn, run_id, request_id, digest, now_ms())
                if stored == digest:
                    return False
                if stored is not None:
                    raise FailedPrecondition(
                        f"request_id {request_id!r:.80} of run {run_id} was used for another batch; use a new "
                        "request id per batch (and the same one only when re-sending that batch)",
                        reason="REQUEST_ID_REUSED")
            if expected:
                found = self.runs.tag_values(conn, run_id, [key for key, _ in expected])
                changed = next((key for key, value in expected if found.get(key) != value), None)
                if changed is not None:
                    raise Aborted(f"run {run_id}'s tag {changed!r:.80} is not as expected (changed since it was "
                                  "read); read it again and retry", reason="TAG_CHANGED")
            self.runs.log_params(conn, run_id, params)
            self.runs.set_tags(conn, run_id, tags)
            self.runs.log_metrics(conn, run_id, metrics, series)
            return True

        stored = self.db.run(work, write=True)
        points = len(metrics) + sum(len(one.values) for one in series)
        if stored and points:
            METRICS_LOGGED.add(points)

    def delete_tag(self, run_id: str, key: str) -> None:
        check_run_id(run_id)
        check_key(key, "key")

        def work(conn: Transaction) -> None:
            # Locked as a LogBatch with expected_tags locks it, so that a delete cannot slip between
            # such a batch's comparison and its write (and be undone by it).
            live_run(self.runs, conn, run_id, lock=True)
            if not self.runs.delete_tag(conn, run_id, key):
                raise NotFound(f"run {run_id} has no tag {key!r}")

        self.db.run(work, write=True)

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        check_run_id(run_id)
        if len(inputs) > MAX_INPUTS:
            raise InvalidArgument("inputs", f"at most {MAX_INPUTS} inputs per call, got {len(inputs)}")
        for i, item in enumerate(inputs):
            check_dataset_input(item, f"inputs[{i}]")

        def work(conn: Transaction) -> None:
            self.runs.log_inputs(conn, run_id, live_run(self.runs, conn, run_id).experiment_id, inputs)

        self.db.run(work, write=True)

    def metric_history(self, run_id: str, key: str, size: int = 0, token: str = "", max_points: int = 0
                       ) -> tuple[list[Metric], str]:
        check_run_id(run_id)
        check_key(key, "key")
        size = page_size(size, 10_000, 100_000)
        if max_points and not 2 <= max_points <= 100_000:
            raise InvalidArgument("max_points", f"must be 0 (every point) or between 2 and 100000, got {max_points}")
        fingerprint = paging.fingerprint("history", run_id, key)
        # (step, timestamp_ms, value, is_nan) of the previous page's last point.
        after = paging.decode_keyset_token(token, fingerprint, (int, int, (int, float), bool)) if token else None

        def work(conn: Transaction):
            live_run(self.runs, conn, run_id, allow_deleted=True)
            if max_points:
                return self.runs.metric_columns(conn, run_id, key)
            return self.runs.metric_history(conn, run_id, key, after, size + 1)

        found = self.db.run(work, write=False)
        if max_points:
            return downsample(key, found, max_points), ""
        more = len(found) > size
        page = found[:size]
        if not more:
            return page, ""
        last = page[-1]
        value, is_nan = stored_value(last.value)
        return page, paging.encode_keyset_token([last.step, last.timestamp_ms, value, is_nan], fingerprint)

    # -- artifacts ----------------------------------------------------------------------------

    def _artifact_root(self, run_id: str, *, write: bool, field: str = "run_id") -> str:
        check_run_id(run_id, field)

        def work(conn: Transaction) -> str:
            return live_run(self.runs, conn, run_id, allow_deleted=not write).artifact_uri

        return self.db.run(work, write=False)

    def upload_artifact(self, run_id: str, path: str, size: int, sha256: str, chunks: Iterable[bytes]) -> FileInfo:
        path = clean_relative_path(path, "header.path")
        check_upload_header(size, sha256, self.max_artifact_bytes)
        with telemetry.span("upload artifact", run_id=run_id, artifact_path=path, artifact_bytes=size):
            root = self._artifact_root(run_id, write=True, field="header.run_id")
            info = self.store.upload(root, path, chunks, size=size, sha256=sha256, max_bytes=self.max_artifact_bytes)
        ARTIFACT_BYTES.add(info.size)
        return info

    def open_artifact(self, run_id: str, path: str) -> tuple[FileInfo, Iterator[bytes]]:
        path = clean_relative_path(path, "path")
        return self.store.open(self._artifact_root(run_id, write=False), path)

    def artifact_download_url(self, run_id: str, path: str, expires_s: int) -> tuple[FileInfo, str, int]:
        """The file, a URL that downloads it from the store directly, and when that URL expires (ms)."""
        path = clean_relative_path(path, "path")
        if expires_s == 0:
            expires_s = DOWNLOAD_URL_SECONDS
        if not 1 <= expires_s <= MAX_DOWNLOAD_URL_SECONDS:
            raise InvalidArgument("expires_in_seconds",
                                  f"must be 1..{MAX_DOWNLOAD_URL_SECONDS} (7 days), not {expires_s}")
        root = self._artifact_root(run_id, write=False)
        # Taken before signing: the URL never outlives what the answer says.
        expire_ms = now_ms() + 1000 * expires_s
        info, url = self.store.download_url(root, path, expires_s)
        return info, url, expire_ms

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        path = clean_relative_path(path, "path", allow_empty=True)
        return self.store.list(self._artifact_root(run_id, write=False), path)


def _run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"


def downsample(key: str, points: list[tuple], max_points: int) -> list[Metric]:
    """At most about ``max_points`` points: per bucket of consecutive points, its first, last,
    lowest and highest (so spikes and the series' ends survive, unlike plain striding)."""
    if len(points) <= max_points:
        keep = range(len(points))
    else:
        values = np.array([float("nan") if p[3] else p[2] for p in points])
        buckets = max(1, max_points // 4)
        edges = np.linspace(0, len(points), buckets + 1).astype(int)
        chosen: set[int] = set()
        for lo, hi in zip(edges[:-1], edges[1:]):
            if hi <= lo:
                continue
            chunk = values[lo:hi]
            chosen.update((lo, hi - 1))
            if not np.all(np.isnan(chunk)):
                chosen.update((lo + int(np.nanargmin(chunk)), lo + int(np.nanargmax(chunk))))
        keep = sorted(chosen)
    return [Metric(key, float("nan") if points[i][3] else points[i][2], points[i][1], points[i][0]) for i in keep]
