"""RunLogger with a fake client (no server): batching, limits, ordering, spool, replay and errors."""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from pathlib import Path

import pytest

from trial_worker.tracking.logger import MAX_METRICS, MAX_PARAMS, MAX_TAGS, RunLogger
from tuning.tracking.v1 import tracking_pb2 as pb
from tuning.tracking.v1 import tracking_service_pb2 as api
from tuning_common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable

RUN_A, RUN_B = "a" * 32, "b" * 32


class FakeClient:
    """Stores what LogBatch and UpdateRun carry with the service's rules: a metric point once,
    params write-once, tags overwritten; can be taken down or slowed."""

    address = "fake:0"

    def __init__(self):
        self.lock = threading.Lock()
        self.down = False
        self.delay = 0.0
        self.calls: list[tuple[str, object, str]] = []  # method, request, thread name
        self.points: dict[str, set[tuple]] = {}
        self.params: dict[str, dict[str, str]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.ended: dict[str, int] = {}
        self.attempts = 0

    def call(self, method: str, request, *, retries: int | None = None):
        with self.lock:
            self.attempts += 1
        if self.down:
            raise Unavailable("the fake service is down")
        time.sleep(self.delay)
        with self.lock:
            copy = type(request)()
            copy.CopyFrom(request)
            if method == "LogBatch":
                copy = _as_metrics(copy)
                self._log_batch(copy)
            else:
                assert method == "UpdateRun"
                self.ended[request.run_id] = request.status
            self.calls.append((method, copy, threading.current_thread().name))
        return None

    def _log_batch(self, request: api.LogBatchRequest) -> None:
        for i, m in enumerate(request.metrics):
            if not m.key:
                raise InvalidArgument(f"metrics[{i}].key", "must not be empty")
        seen: dict[str, str] = {}
        for i, p in enumerate(request.params):
            if seen.setdefault(p.key, p.value) != p.value:
                raise InvalidArgument(f"params[{i}]", "appears twice with different values")
        stored = self.params.setdefault(request.run_id, {})
        for p in request.params:
            if stored.get(p.key, p.value) != p.value:
                raise FailedPrecondition(f"param {p.key!r} changed", reason="PARAM_CHANGED")
        stored.update((p.key, p.value) for p in request.params)
        self.tags.setdefault(request.run_id, {}).update((t.key, t.value) for t in request.tags)
        points = self.points.setdefault(request.run_id, set())
        for m in request.metrics:
            value = "nan" if math.isnan(m.value) else m.value
            points.add((m.key, m.step, m.timestamp.ToMilliseconds(), value))

    def batches(self, run_id: str | None = None) -> list[api.LogBatchRequest]:
        return [r for method, r, _ in self.calls if method == "LogBatch" and run_id in (None, r.run_id)]


def _as_metrics(request: api.LogBatchRequest) -> api.LogBatchRequest:
    """The batch with its column series spelled out as Metric messages, so checks read one form."""
    for series in request.series:
        for value, step, stamp in zip(series.values, series.steps, series.timestamps_ms):
            point = request.metrics.add(key=series.key, value=value, step=step)
            point.timestamp.FromMilliseconds(stamp)
    del request.series[:]
    return request


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_logger(fake: FakeClient, spool_dir: Path):
    made: list[RunLogger] = []

    def make(client=None, **options) -> RunLogger:
        options.setdefault("spool_dir", spool_dir)
        options.setdefault("flush_interval", 0.02)
        made.append(RunLogger(client or fake, **options))
        return made[-1]

    yield make
    fake.down = False
    for logger in made:
        try:
            logger.close(5)
        except Exception:  # a test may leave errors behind on purpose
            pass


def spool_files(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob("*.jsonl")) if spool_dir.exists() else []


def test_calls_queue_and_rpcs_happen_on_the_logger_thread(fake, make_logger):
    logger = make_logger(flush_interval=60)
    for step in range(10):
        logger.log_metric(RUN_A, "loss", 1.0 / (step + 1), step)
    logger.log_params(RUN_A, {"depth": 6, "eta": 0.1})
    logger.set_tags(RUN_A, {"phase": "train"})
    assert fake.calls == []  # nothing is sent before the interval or a flush
    logger.flush()
    assert {thread for _, _, thread in fake.calls} == {"tracking-logger"}
    assert sorted(step for _, step, _, _ in fake.points[RUN_A]) == list(range(10))
    assert fake.params[RUN_A] == {"depth": "6", "eta": "0.1"} and fake.tags[RUN_A] == {"phase": "train"}


def test_batches_stay_within_the_limits_per_run_and_keep_order(fake, make_logger):
    logger = make_logger()
    for i in range(2_500):
        logger.log_metric(RUN_A, "loss", float(i), i)
        if i < 250:
            logger.log_param(RUN_A, f"p{i}", i)
        if i < 150:
            logger.set_tag(RUN_A, f"t{i}", i)
        if i < 10:
            logger.log_metric(RUN_B, "acc", float(i), i)
    logger.set_tag(RUN_A, "t0", "last")  # overwrites the first value, in order
    logger.flush()
    for batch in fake.batches():
        assert len(batch.metrics) <= MAX_METRICS and len(batch.params) <= MAX_PARAMS and len(batch.tags) <= MAX_TAGS
    steps = [m.step for batch in fake.batches(RUN_A) for m in batch.metrics]
    assert steps == list(range(2_500))
    assert len(fake.params[RUN_A]) == 250 and len(fake.tags[RUN_A]) == 150 and fake.tags[RUN_A]["t0"] == "last"
    assert all(m.key == "acc" for batch in fake.batches(RUN_B) for m in batch.metrics)
    assert len(fake.points[RUN_B]) == 10
    assert len(fake.batches(RUN_A)) >= 3


def test_a_thousand_waiting_items_are_sent_before_the_interval(fake, make_logger):
    logger = make_logger(flush_interval=3_600)
    for i in range(MAX_METRICS):
        logger.log_metric(RUN_A, "loss", float(i), i)
    deadline = time.monotonic() + 30
    while not fake.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.calls, "1,000 waiting metrics should wake the sender without a flush"


def test_timestamps_are_taken_at_the_call_and_nan_inf_pass_through(fake, make_logger):
    logger = make_logger()
    before = time.time_ns() // 1_000_000
    logger.log_metric(RUN_A, "nan", math.nan)
    logger.log_metric(RUN_A, "inf", math.inf)
    logger.log_metric(RUN_A, "-inf", -math.inf, timestamp_ms=5)
    after = time.time_ns() // 1_000_000
    logger.flush()
    points = {key: (ts, value) for key, _, ts, value in fake.points[RUN_A]}
    assert points["nan"][1] == "nan" and points["inf"][1] == math.inf and points["-inf"] == (5, -math.inf)
    assert before <= points["nan"][0] <= after


def test_refused_items_are_isolated_and_raised_from_the_next_flush(fake, make_logger):
    logger = make_logger(flush_interval=3_600)
    logger.log_param(RUN_A, "depth", 6)
    for i in range(50):
        logger.log_metric(RUN_A, "loss", float(i), i)
    logger.log_metric(RUN_A, "", 1.0)  # refused by the service
    logger.log_param(RUN_A, "depth", 7)  # a changed param: refused
    with pytest.raises(InvalidArgument) as caught:
        logger.flush()
    assert any(note.startswith("also: FailedPrecondition") for note in caught.value.__notes__)
    # Only the offending items are lost: the 50 good points and the first param are stored.
    assert len(fake.points[RUN_A]) == 50 and fake.params[RUN_A] == {"depth": "6"}
    logger.flush()  # the errors were reported once


def test_a_changed_param_alone_raises_failed_precondition(fake, make_logger):
    logger = make_logger()
    logger.log_param(RUN_A, "lr", 0.1)
    logger.flush()
    logger.log_param(RUN_A, "lr", 0.2)
    with pytest.raises(FailedPrecondition) as caught:
        logger.flush()
    assert caught.value.reason == "PARAM_CHANGED"


def test_unavailable_spools_in_order_and_replays_when_the_service_is_back(fake, make_logger, spool_dir):
    logger = make_logger()
    fake.down = True
    for i in range(300):
        logger.log_metric(RUN_A, "loss", float(i) if i else math.nan, i)
    logger.set_tag(RUN_A, "state", "first")
    with pytest.raises(Unavailable) as caught:
        logger.flush(timeout=0.5)
    message = str(caught.value)
    assert str(spool_dir) in message and "spooled" in message and logger.spooled >= 1
    [spool_file] = spool_files(spool_dir)
    records = [json.loads(line, parse_constant=lambda token: pytest.fail(f"non-standard JSON {token}"))
               for line in spool_file.read_text().splitlines()]
    assert sum(len(r["metrics"]) for r in records) == 300 and records[0]["metrics"][0][1] == "nan"

    logger.set_tag(RUN_A, "state", "second")  # queued behind the spool, so it wins
    fake.down = False
    logger.flush()
    assert len(fake.points[RUN_A]) == 300 and fake.tags[RUN_A] == {"state": "second"}
    assert spool_files(spool_dir) == [] and logger.spooled == 0


def test_a_slow_service_gives_deadline_exceeded_and_keeps_everything(fake, make_logger):
    logger = make_logger()
    fake.delay = 0.3
    logger.log_metric(RUN_A, "loss", 1.0, 1)
    with pytest.raises(DeadlineExceeded):
        logger.flush(timeout=0.05)
    fake.delay = 0.0
    logger.flush()
    assert len(fake.points[RUN_A]) == 1


def test_a_new_logger_replays_the_spool_left_behind_exactly_once(fake, make_logger, spool_dir):
    first = make_logger()
    fake.down = True
    for i in range(120):
        first.log_metric(RUN_A, "loss", float(i), i)
    first.log_param(RUN_A, "depth", 6)
    with pytest.raises(Unavailable):
        first.close(timeout=0.3)  # the process goes away with its batches spooled
    [left] = spool_files(spool_dir)
    shutil.copy(left, spool_dir / "copy-of-the-same.jsonl")  # and they are re-sent twice

    fake.down = False
    second = make_logger()
    second.flush()
    assert len(fake.points[RUN_A]) == 120 and fake.params[RUN_A] == {"depth": "6"}
    assert sum(len(b.metrics) for b in fake.batches(RUN_A)) == 240  # sent twice, stored once
    assert spool_files(spool_dir) == []


def test_a_live_loggers_spool_is_not_taken_by_another(fake, make_logger, spool_dir):
    owner = make_logger()
    fake.down = True
    owner.log_metric(RUN_A, "loss", 1.0, 1)
    with pytest.raises(Unavailable):
        owner.flush(timeout=0.3)
    other = make_logger()
    assert other.spooled == 0  # the file is locked by its live owner
    fake.down = False
    owner.flush()
    assert len(fake.points[RUN_A]) == 1 and spool_files(spool_dir) == []


def test_a_torn_last_line_is_skipped(fake, make_logger, spool_dir):
    spool_dir.mkdir()
    good = {"run_id": RUN_A, "metrics": [["loss", 0.5, 1_000, 1]], "params": [["depth", "6"]], "tags": []}
    end = {"run_id": RUN_A, "end": {"status": pb.RUN_STATUS_FINISHED, "end_time_ms": 2_000}}
    (spool_dir / "spool-dead.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(end) + "\n{\"run_id\": \"a")
    logger = make_logger()
    logger.flush()
    assert fake.points[RUN_A] == {("loss", 1, 1_000, 0.5)} and fake.ended[RUN_A] == pb.RUN_STATUS_FINISHED
    assert spool_files(spool_dir) == []


def test_the_end_of_a_run_follows_what_was_logged_to_it(fake, make_logger):
    logger = make_logger(flush_interval=3_600)
    logger.log_metric(RUN_A, "loss", 1.0, 1)
    logger.end_run(RUN_A, pb.RUN_STATUS_FINISHED)
    logger.log_metric(RUN_A, "late", 2.0, 2)
    logger.flush()
    assert [(method, len(getattr(r, "metrics", []))) for method, r, _ in fake.calls] == \
        [("LogBatch", 1), ("UpdateRun", 0), ("LogBatch", 1)]


def test_many_threads_log_at_once(fake, make_logger):
    logger = make_logger()

    def work(worker: int) -> None:
        for step in range(2_000):
            logger.log_metric(RUN_A, f"w{worker}", float(step), step)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.flush()
    assert len(fake.points[RUN_A]) == 16_000
    for worker in range(8):
        steps = [m.step for b in fake.batches(RUN_A) for m in b.metrics if m.key == f"w{worker}"]
        assert steps == list(range(2_000))


def test_close_flushes_and_then_refuses_more(fake, make_logger):
    logger = make_logger(flush_interval=3_600)
    logger.log_metric(RUN_A, "loss", 1.0, 1)
    logger.close()
    assert len(fake.points[RUN_A]) == 1
    with pytest.raises(FailedPrecondition):
        logger.log_metric(RUN_A, "loss", 2.0, 2)


def test_batches_carry_request_ids_kept_in_the_spool_and_derived_for_halves(fake, make_logger, spool_dir):
    logger = make_logger()
    fake.down = True
    for i in range(10):
        logger.log_metric(RUN_A, "loss", float(i), i)
    logger.log_metric(RUN_A, "", 1.0)  # refused once the service is back: the batch is split
    with pytest.raises(Unavailable):
        logger.flush(timeout=0.3)
    [spool_file] = spool_files(spool_dir)
    [record] = [json.loads(line) for line in spool_file.read_text().splitlines()]
    spooled_id = record["request_id"]
    assert len(spooled_id) == 32

    fake.down = False
    with pytest.raises(InvalidArgument):
        logger.flush()
    sent = [method_request for method, method_request, _ in fake.calls if method == "LogBatch"]
    ids = [request.request_id for request in sent]
    # Only what the fake stored is in calls; the refused whole batch and halves are not. Each stored
    # half is named after the spooled batch, so a re-sent copy of it would carry the same ids.
    assert ids and all(i.startswith(spooled_id + ".") for i in ids) and len(set(ids)) == len(ids)
    assert len(fake.points[RUN_A]) == 10
    logger.log_metric(RUN_B, "acc", 1.0)
    logger.flush()
    [fresh] = fake.batches(RUN_B)
    assert fresh.request_id and not fresh.request_id.startswith(spooled_id)
