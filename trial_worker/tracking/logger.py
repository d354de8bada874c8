"""Background logging of metrics, params and tags, with an offline spool.

    logger = RunLogger(TrackingClient())
    for step in range(10_000):
        logger.log_metric(run_id, "loss", loss, step)   # a deque append: no RPC on this thread
    logger.flush()                                       # everything so far is stored (or raises)

A daemon thread turns what is queued into ``LogBatch`` calls per run, within the service's
limits (1,000 metrics, 100 params, 100 tags), every ``flush_interval`` seconds or as soon as
1,000 items wait. Metric timestamps are taken at the call.

When the service does not answer (UNAVAILABLE or DEADLINE_EXCEEDED after the client's
retries), batches go to a spool: JSON lines, one batch per line, fsync'd, in
``$TUNING_HOME/spool`` (``./.tuning/spool`` by default). Once anything is spooled, later
batches are spooled behind it so that order is kept (a tag set twice ends with the later
value); the thread probes the service and re-sends the spool oldest first when it answers.
Each logger appends to a file of its own, locked with ``flock`` while the logger lives; a
new logger replays the unlocked files left by loggers that died. Re-sending is safe: every
batch carries a request id, kept in the spool with it (and derived for the halves of a split
batch), so the service stores nothing for a batch it already has; a batch sent twice (a reply
lost, a crash after sending before the spool shrank) is stored exactly once. (Points are also
stamped here, and the service stores a point and params and tags idempotently.)

Other errors are not retried: a batch the service refuses (INVALID_ARGUMENT,
FAILED_PRECONDITION for a changed param) is split in halves until the offending items are
isolated, so one bad key does not drop the 999 good metrics beside it; the errors are raised
from the next :meth:`RunLogger.flush`.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trial_worker.tracking.client import now_ms, timestamp
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning_common import telemetry
from tuning_common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    TuningError,
    Unavailable,
)
from tuning_common.settings import data_dir

log = logging.getLogger(__name__)

MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1_000, 100, 100
SPOOL_SUFFIX = ".jsonl"
# A probe of a service that is down costs one failed call; it is repeated with a growing pause.
_PROBE_MIN, _PROBE_MAX = 0.25, 2.0

_METRIC, _PARAM, _TAG, _END = range(4)
_STORED, _OFFLINE, _FAILED = range(3)


class Caller(Protocol):
    """What the logger needs of :class:`~trial_worker.tracking.client.TrackingClient`."""

    address: str

    def call(self, method: str, request: Any, *, retries: int | None = None) -> Any: ...


def default_spool_dir() -> Path:
    return Path(data_dir()) / "spool"


def _encode(value: float) -> float | str:
    # Standard JSON has no NaN or Infinity; the spool stays readable by any JSON parser.
    return value if math.isfinite(value) else repr(value)


def _decode(value: float | str) -> float:
    return float(value)


@dataclass(eq=False)
class _Batch:
    """Metrics, params and tags of one run for one LogBatch call."""

    run_id: str
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, timestamp ms, step
    params: dict[str, str] = field(default_factory=dict)
    tags: list[tuple[str, str]] = field(default_factory=list)
    seq: int = 0
    spooled: bool = False
    # LogBatch's idempotency key: one per batch, the same whenever this batch is re-sent.
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    method = "LogBatch"

    def takes(self, kind: int, key: str, value: Any) -> bool:
        if kind == _METRIC:
            return len(self.metrics) < MAX_METRICS
        if kind == _PARAM:
            # The same param twice with different values would have the whole batch refused;
            # split so that only the change is refused.
            return len(self.params) < MAX_PARAMS and self.params.get(key, value) == value
        return len(self.tags) < MAX_TAGS

    def add(self, item: tuple) -> None:
        kind = item[0]
        if kind == _METRIC:
            self.metrics.append(item[2:6])
        elif kind == _PARAM:
            self.params[item[2]] = item[3]
        else:
            self.tags.append((item[2], item[3]))

    def request(self) -> api.LogBatchRequest:
        return api.LogBatchRequest(
            run_id=self.run_id,
            series=_series(self.metrics),
            params=[pb.Param(key=k, value=v) for k, v in self.params.items()],
            tags=[pb.Tag(key=k, value=v) for k, v in self.tags],
            request_id=self.request_id,
        )

    def size(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def halves(self) -> tuple[_Batch, _Batch]:
        items = ([(_METRIC, m) for m in self.metrics] + [(_PARAM, p) for p in self.params.items()]
                 + [(_TAG, t) for t in self.tags])
        middle = len(items) // 2
        return self._of(items[:middle], 0), self._of(items[middle:], 1)

    def _of(self, items: list[tuple[int, tuple]], half: int) -> _Batch:
        # The halves of a refused batch are new requests, named after it so that the halves of a
        # re-sent copy (replayed from the spool) carry the same ids as the first copy's.
        batch = _Batch(self.run_id, seq=self.seq, request_id=f"{self.request_id}.{half}")
        for kind, item in items:
            batch.add((kind, self.run_id, *item))
        return batch

    def record(self) -> dict:
        return {"run_id": self.run_id, "metrics": [[k, _encode(v), t, s] for k, v, t, s in self.metrics],
                "params": [[k, v] for k, v in self.params.items()], "tags": [[k, v] for k, v in self.tags],
                "request_id": self.request_id}

    @classmethod
    def from_record(cls, record: dict) -> _Batch:
        batch = cls(record["run_id"], [(k, _decode(v), int(t), int(s)) for k, v, t, s in record["metrics"]],
                    dict(record["params"]), [(k, v) for k, v in record["tags"]])
        # Spools written before request ids have none: their points carry timestamps, which
        # keeps their replay safe.
        if record.get("request_id"):
            batch.request_id = str(record["request_id"])
        return batch

    def describe(self) -> str:
        return (f"{len(self.metrics)} metrics, {len(self.params)} params and {len(self.tags)} tags "
                f"of run {self.run_id}")


@dataclass(eq=False)
class _RunEnd:
    """The end of a run, queued behind its batches so that nothing is logged after the run is marked done."""

    run_id: str
    status: int
    end_ms: int
    seq: int = 0
    spooled: bool = False

    method = "UpdateRun"

    def request(self) -> api.UpdateRunRequest:
        return api.UpdateRunRequest(run_id=self.run_id, status=self.status, end_time=timestamp(self.end_ms))

    def size(self) -> int:
        return 1

    def record(self) -> dict:
        return {"run_id": self.run_id, "end": {"status": self.status, "end_time_ms": self.end_ms}}

    def describe(self) -> str:
        return f"the end of run {self.run_id}"


_Entry = _Batch | _RunEnd


def _entry_from_record(record: dict) -> _Entry:
    if "end" in record:
        return _RunEnd(record["run_id"], int(record["end"]["status"]), int(record["end"]["end_time_ms"]))
    return _Batch.from_record(record)


@dataclass(eq=False)
class _SpoolFile:
    path: Path
    fd: int
    outstanding: int = 0


class Spool:
    """Entries the service did not take, in order, each also a line of a locked file until it is re-sent.

    Not thread-safe: :class:`RunLogger` calls it under its lock.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._entries: deque[tuple[_Entry, _SpoolFile]] = deque()
        self._own: _SpoolFile | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def first(self) -> _Entry:
        return self._entries[0][0]

    def first_seq(self) -> int | None:
        return self._entries[0][0].seq if self._entries else None

    def append(self, entries: Iterable[_Entry]) -> None:
        """Writes the entries as lines of this logger's file and fsyncs once."""
        entries = [e for e in entries if not e.spooled]
        if not entries:
            return
        if self._own is None:
            self._own = self._create()
        lines = "".join(json.dumps(e.record(), allow_nan=False, separators=(",", ":")) + "\n" for e in entries)
        data = memoryview(lines.encode())
        while data:
            data = data[os.write(self._own.fd, data):]
        os.fsync(self._own.fd)
        for entry in entries:
            entry.spooled = True
            self._entries.append((entry, self._own))
        self._own.outstanding += len(entries)

    def _create(self) -> _SpoolFile:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"spool-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # Locked under a name the replay ignores, then renamed: no other logger can take it in between.
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = self.directory / f"{name}{SPOOL_SUFFIX}"
        os.rename(temporary, path)
        self._fsync_directory()
        return _SpoolFile(path, fd)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pop_first(self) -> None:
        """Drops the oldest entry (stored); deletes its file once nothing in it is outstanding."""
        _, spool_file = self._entries.popleft()
        spool_file.outstanding -= 1
        if spool_file.outstanding == 0:
            spool_file.path.unlink(missing_ok=True)
            os.close(spool_file.fd)
            if spool_file is self._own:
                self._own = None

    def load_leftovers(self, new_seq: Callable[[], int]) -> int:
        """Takes over the files of loggers that are gone (unlocked), oldest first; returns the entry count."""
        try:
            candidates = sorted(self.directory.glob(f"*{SPOOL_SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
        except FileNotFoundError:
            return 0
        loaded = 0
        for path in candidates:
            if self._own is not None and path == self._own.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # replayed and deleted by another logger meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # a live logger's
                continue
            if os.fstat(fd).st_nlink == 0:
                os.close(fd)  # finished by its owner between our open and our lock
                continue
            entries = self._read(fd, path)
            spool_file = _SpoolFile(path, fd, len(entries))
            for entry in entries:
                entry.seq, entry.spooled = new_seq(), True
                self._entries.append((entry, spool_file))
            if not entries:
                path.unlink(missing_ok=True)
                os.close(fd)
            loaded += len(entries)
        if loaded:
            log.info("replaying %d spooled logging batches from %s", loaded, self.directory)
        return loaded

    @staticmethod
    def _read(fd: int, path: Path) -> list[_Entry]:
        with os.fdopen(os.dup(fd), "r", encoding="utf-8") as file:
            lines = file.read().splitlines()
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(_entry_from_record(json.loads(line)))
            except (ValueError, KeyError, TypeError) as error:
                # A crash mid-write leaves a torn last line; anything else unreadable is skipped too,
                # rather than blocking everything behind it.
                log.warning("skipping unreadable line %d of spool file %s: %s", number, path, error)
        return entries

    def close(self) -> None:
        """Releases the files (their locks), leaving what is outstanding for a later logger."""
        for spool_file in {id(f): f for _, f in self._entries}.values():
            os.close(spool_file.fd)
        self._entries.clear()
        self._own = None


class RunLogger:
    """Queues metrics, params and tags of any number of runs and sends them in the background.

    One per client; thread-safe. ``flush_interval``: how often queued items are sent.
    ``spool_dir``: where batches wait while the service is down. ``exit_timeout``: how long
    the ``atexit`` hook waits for the queue to drain before spooling what is left.
    """

    def __init__(self, client: Caller, *, flush_interval: float = 0.2, spool_dir: str | os.PathLike | None = None,
                 exit_timeout: float = 10.0):
        self.client = client
        self.flush_interval = flush_interval
        self.exit_timeout = exit_timeout
        self.spool = Spool(default_spool_dir() if spool_dir is None else spool_dir)
        # Callers only ever append to this deque (atomic, lock-free); the rest is under _lock.
        self._queue: deque[tuple] = deque()
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._outbox: deque[_Entry] = deque()
        self._seq = 0
        self._errors: list[Exception] = []
        self._offline = False
        self._closed = False
        self._probe_at = 0.0
        self._probe_pause = _PROBE_MIN
        # run id -> the trace its writes belong to (see trace_run)
        self._traces: dict[str, Any] = {}
        with self._lock:
            self.spool.load_leftovers(self._new_seq)
        self._thread = threading.Thread(target=self._run, name="tracking-logger", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # --- the callers' side: append and return -------------------------------------------------

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp_ms: int | None = None
                   ) -> None:
        """Queues one metric point, stamped now unless ``timestamp_ms`` is given. NaN and ±Inf are kept."""
        if self._closed:
            raise FailedPrecondition("this RunLogger is closed", reason="LOGGER_CLOSED")
        self._queue.append((_METRIC, run_id, key, float(value),
                            time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms, int(step)))
        if len(self._queue) >= MAX_METRICS:
            self._wake.set()

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0,
                    timestamp_ms: int | None = None) -> None:
        stamp = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
        for key, value in metrics.items():
            self.log_metric(run_id, key, value, step, stamp)

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self._put((_PARAM, run_id, key, str(value)))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.log_param(run_id, key, value)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self._put((_TAG, run_id, key, str(value)))

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.set_tag(run_id, key, value)

    def end_run(self, run_id: str, status: int, end_ms: int | None = None) -> None:
        """Queues the run's end (an UpdateRun) behind everything logged to it so far."""
        self._put((_END, run_id, status, now_ms() if end_ms is None else end_ms))

    def trace_run(self, run_id: str, context: Any) -> None:
        """Sends ``run_id``'s writes, until its end, as part of the trace ``context`` (from
        :func:`tuning_common.telemetry.current_context`): a trial's run stays in the trial's trace."""
        self._traces[run_id] = context

    def _put(self, item: tuple) -> None:
        if self._closed:
            raise FailedPrecondition("this RunLogger is closed", reason="LOGGER_CLOSED")
        self._queue.append(item)
        if len(self._queue) >= MAX_METRICS:
            self._wake.set()

    @property
    def spooled(self) -> int:
        """How many batches wait in the spool."""
        with self._lock:
            return len(self.spool)

    def flush(self, timeout: float | None = None) -> None:
        """Blocks until everything queued so far is stored, then raises any error the service gave.

        If ``timeout`` seconds pass first, whatever is not stored yet is spooled (it will be
        re-sent) and ``Unavailable`` is raised (``DeadlineExceeded`` if the service answers but
        slowly), saying how many batches are spooled and where.
        """
        if self._closed:
            raise FailedPrecondition("this RunLogger is closed", reason="LOGGER_CLOSED")
        with self._progress:
            self._drain()
            target = self._seq
        self._wake.set()
        with self._progress:
            done = self._progress.wait_for(lambda: self._done_through() >= target, timeout)
            if not done:
                self.spool.append(self._outbox)
                self._outbox.clear()
                cls = Unavailable if self._offline else DeadlineExceeded
                timed_out = cls(
                    f"the tracking service at {self.client.address} did not store everything within {timeout} s: "
                    f"{len(self.spool)} batches are spooled in {self.spool.directory} and will be re-sent when it "
                    "answers", reason="SPOOLED")
            errors, self._errors = self._errors, []
        if not done:
            raise timed_out
        if errors:
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"also: {type(other).__name__}: {other}")
            raise first

    def settle(self, timeout: float) -> None:
        """:meth:`flush` for up to ``timeout`` seconds, or not waiting at all while batches are
        already spooled (the service is down: waiting would only delay the caller); what is not
        stored stays spooled and the flush's Unavailable or DeadlineExceeded says so."""
        self.flush(0.0 if self.spooled else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flushes, then stops the thread; what could not be stored stays spooled for a later logger."""
        atexit.unregister(self._at_exit)
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._wake.set()
            self._thread.join(max(timeout or 0.0, 1.0))
            if not self._thread.is_alive():
                with self._lock:
                    self.spool.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        try:
            self.close(self.exit_timeout)
        except Exception as error:  # nothing may escape an atexit hook; what is left stays spooled
            log.warning("tracking logger at exit: %s", error)

    # --- the thread's side ----------------------------------------------------------------------

    def _new_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _done_through(self) -> int:
        """The highest seq up to which every entry is stored or given up (caller holds the lock)."""
        pending = [s for s in (self._outbox[0].seq if self._outbox else None, self.spool.first_seq()) if s is not None]
        return min(pending) - 1 if pending else self._seq

    def _drain(self) -> None:
        """Moves the queued items into the outbox as batches per run, in order (caller holds the lock)."""
        open_batches: dict[str, _Batch] = {}
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                return
            kind, run_id = item[0], item[1]
            if kind == _END:
                open_batches.pop(run_id, None)
                self._outbox.append(_RunEnd(run_id, item[2], item[3], self._new_seq()))
                continue
            batch = open_batches.get(run_id)
            if batch is None or not batch.takes(kind, item[2], item[3]):
                batch = open_batches[run_id] = _Batch(run_id, seq=self._new_seq())
                self._outbox.append(batch)
            batch.add(item)

    def _run(self) -> None:
        while not (self._closed and not self._queue and not self._outbox):
            self._wake.wait(self._pause())
            self._wake.clear()
            try:
                self._cycle()
            except Exception:  # the thread must outlive any bug, or logging would stop silently
                log.exception("tracking logger: unexpected error")

    def _pause(self) -> float:
        with self._lock:
            if len(self.spool):
                return max(0.0, min(self.flush_interval, self._probe_at - time.monotonic()))
        return self.flush_interval

    def _cycle(self) -> None:
        with self._progress:
            self._drain()
            if len(self.spool):
                # Behind what is spooled, in order.
                self.spool.append(self._outbox)
                self._outbox.clear()
        with self._lock:
            offline = len(self.spool) > 0
        if not offline:
            self._send_outbox()
        elif time.monotonic() >= self._probe_at:
            self._replay()

    def _send_outbox(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    return
                entry = self._outbox[0]
            outcome = self._send(entry, None)
            with self._progress:
                if self._outbox and self._outbox[0] is entry:
                    if outcome == _OFFLINE:
                        self.spool.append(self._outbox)
                        self._outbox.clear()
                    else:
                        self._outbox.popleft()
                self._progress.notify_all()
            if outcome == _OFFLINE:
                self._schedule_probe()
                return

    def _replay(self) -> None:
        while True:
            with self._lock:
                if not len(self.spool):
                    self._probe_pause = _PROBE_MIN
                    return
                entry = self.spool.first()
            # One attempt: the client's retries would only delay the next probe.
            outcome = self._send(entry, 0)
            if outcome == _OFFLINE:
                self._schedule_probe()
                return
            with self._progress:
                self.spool.pop_first()
                self._progress.notify_all()

    def _schedule_probe(self) -> None:
        self._probe_at = time.monotonic() + self._probe_pause
        self._probe_pause = min(self._probe_pause * 2, _PROBE_MAX)

    def _send(self, entry: _Entry, retries: int | None) -> int:
        try:
            with telemetry.attached(self._traces.get(entry.run_id)):
                self.client.call(entry.method, entry.request(), retries=retries)
        except (Unavailable, DeadlineExceeded):
            self._offline = True
            return _OFFLINE
        except TuningError as error:
            if isinstance(entry, _Batch) and entry.size() > 1 and _item_error(error):
                outcomes = [self._send(half, retries) for half in entry.halves()]
                return _OFFLINE if _OFFLINE in outcomes else _STORED
            error.add_note(f"{entry.describe()} were not stored" if isinstance(entry, _Batch)
                           else f"{entry.describe()} was not recorded")
            self._record(error)
            return _FAILED
        except Exception as error:  # anything else is a bug; surface it from flush() too
            self._record(error)
            return _FAILED
        self._offline = False
        if isinstance(entry, _RunEnd):
            self._traces.pop(entry.run_id, None)
        return _STORED

    def _record(self, error: Exception) -> None:
        with self._lock:
            self._errors.append(error)


def _item_error(error: TuningError) -> bool:
    """Whether the service refused some items of a batch (rather than the run as a whole)."""
    if isinstance(error, InvalidArgument):
        return error.field != "run_id"
    return isinstance(error, FailedPrecondition) and error.reason == "PARAM_CHANGED"


def _series(metrics: list[tuple[str, float, int, int]]) -> list[pb.MetricSeries]:
    """Queued (key, value, timestamp ms, step) points as one column series per key, in order."""
    columns: dict[str, tuple[list, list, list]] = {}
    for key, value, stamp, step in metrics:
        values, steps, stamps = columns.setdefault(key, ([], [], []))
        values.append(value)
        steps.append(step)
        stamps.append(stamp)
    return [pb.MetricSeries(key=key, values=v, steps=s, timestamps_ms=t) for key, (v, s, t) in columns.items()]


__all__ = ["RunLogger", "Spool", "default_spool_dir"]
