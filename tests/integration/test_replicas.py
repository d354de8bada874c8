"""Several suggestion-service replicas on one database (PostgreSQL, and a SQLite file).

The service serialises each study's bookkeeping on the study row (``SELECT ... FOR
UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) and finishes trials with compare-and-set updates, so any number of replicas
sharing a database must behave like one server: no trial handed out twice, no tell
lost, never more than ``max_parallel_trials`` trials leased at once, and a retried ask
(same ``request_id``) answered with the same trials whichever replica it reaches.

Both tests start two server processes on the same fresh database and hammer them from
many threads, each thread with its own channel and worker id, alternating replicas.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from trial_worker import Float, Int, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api

MAX_TRIALS = 400
MAX_PARALLEL = 8
N_WORKERS = 32
LEASE_SECONDS = 60.0  # far longer than the test: no lease may expire, so nothing is retried


def start_replicas(spawn_server, database_url: str):
    # The first replica creates the schema; start the second only once the first is listening.
    a = spawn_server(database_url)
    b = spawn_server(database_url)
    return a, b


def assert_clean_logs(*replicas) -> None:
    for name, replica in zip("AB", replicas):
        replica.stop()
        output = replica.output()
        assert "Traceback" not in output and " ERROR " not in output, f"replica {name} logged errors:\n{output}"


def run_threads(targets, timeout: float) -> list[BaseException]:
    """Runs the callables in threads; returns their exceptions. Fails if any is still running."""
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} client thread(s) still running after {timeout} s (deadlock?); errors so far: {errors!r}"
    return errors


def max_overlap(intervals: dict[int, tuple[int, int]]) -> tuple[int, int, list[tuple[int, int, int]]]:
    """The most half-open [start, end) intervals covering one instant, by id.

    At equal times ends are processed before starts, so a trial that ends at the very
    millisecond another starts does not count as overlapping it. Returns the peak, the
    first instant it is reached and the (id, start, end) intervals covering that instant.
    """
    events = sorted([(start, 1) for start, _ in intervals.values()] + [(end, -1) for _, end in intervals.values()])
    running = peak = 0
    at = None
    for time_ms, delta in events:
        running += delta
        if running > peak:
            peak, at = running, time_ms
    covering = sorted((i, s, e) for i, (s, e) in intervals.items() if at is not None and s <= at < e)
    return peak, at, covering


class ActiveSampler:
    """Counts ACTIVE trials in the database over and over while the clients run.

    Each sample is one statement, so one consistent snapshot of committed leases: the
    exact number leased at that instant of commit order.
    """

    def __init__(self, database_url: str):
        self.engine = sa.create_engine(database_url)
        self.samples = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = sa.text("SELECT count(*) FROM trials WHERE state = 'ACTIVE'")
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            while not self._stop.is_set():
                self.peak = max(self.peak, conn.execute(query).scalar_one())
                self.samples += 1
                time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()


# Model-based studies compute outside the study's lock and commit after a freshness check
# (suggestion_service.model_work): the same guarantees, with fewer trials (GP asks cost more).
@pytest.mark.parametrize("algorithm, max_trials", [("random", MAX_TRIALS), ("tpe", 150), ("gp", 60)])
def test_replicas_never_duplicate_lose_or_overrun(database_url, spawn_server, algorithm, max_trials):
    replica_a, replica_b = start_replicas(spawn_server, database_url)
    addresses = [replica_a.address, replica_b.address]
    name = f"replicas-{uuid.uuid4().hex[:8]}"

    with SuggestionClient(addresses[0]) as admin:
        study = admin.create_study(
            name,
            [Float("x", -5.0, 5.0), Int("n", 1, 100)],
            objectives={"loss": "minimize"},
            algorithm=algorithm,
            max_trials=max_trials,
            max_parallel_trials=MAX_PARALLEL,
            lease_seconds=LEASE_SECONDS,
        )
        assert study.created
    if algorithm != "random":
        # Each replica's model process starts in the background; without this, one replica
        # could spend the whole (short) budget before the other's is ready.
        for address in addresses:
            with SuggestionClient(address) as client:
                warm_up = client.create_study(f"warm-up-{uuid.uuid4().hex[:8]}", [Float("x", 0.0, 1.0)],
                                              objectives={"loss": "minimize"}, algorithm=algorithm)
                warm_up.tell(warm_up.ask(), 0.0)

    lock = threading.Lock()
    in_flight = 0
    peak_in_flight = 0
    handed_out: list[tuple[int, str, int]] = []  # (trial id, worker id, replica)
    told: list[tuple[int, str, float]] = []  # (trial id, worker id, value) for every successful tell
    start = threading.Barrier(N_WORKERS)

    def worker(index: int) -> None:
        nonlocal in_flight, peak_in_flight
        replica = index % 2
        rng = random.Random(index)
        with SuggestionClient(addresses[replica]) as client:
            handle = client.get_study(name)
            handle.worker_id = f"worker-{index:02d}-{uuid.uuid4().hex[:6]}"
            start.wait(30)
            while (trial := handle.ask(timeout=60)) is not None:
                with lock:
                    handed_out.append((trial.id, handle.worker_id, replica))
                    in_flight += 1
                    peak_in_flight = max(peak_in_flight, in_flight)
                params = trial.params
                value = (params["x"] - 1.0) ** 2 + params["n"] / 100 + rng.random()
                if rng.random() < 0.5:
                    trial.report(0, value + 1.0)
                time.sleep(rng.uniform(0.0, 0.01))  # "train"
                with lock:
                    in_flight -= 1
                stored = handle.tell(trial, value)
                assert stored.id == trial.id and stored.state == pb.TRIAL_STATE_COMPLETED, stored
                with lock:
                    told.append((trial.id, handle.worker_id, value))
            last = handle.last_suggest
            assert last.status == api.SUGGEST_STATUS_DONE, last
            assert last.done_reason == api.DONE_REASON_BUDGET_SPENT, last  # every worker learns why

    began = time.monotonic()
    sampler = ActiveSampler(database_url)
    try:
        errors = run_threads([lambda i=i: worker(i) for i in range(N_WORKERS)], timeout=120)
    finally:
        sampler.stop()
    elapsed_clients = time.monotonic() - began
    assert not errors, f"client errors: {errors!r}"

    # Every trial went to exactly one client, and both replicas handed some out.
    ids = [trial_id for trial_id, _, _ in handed_out]
    duplicates = {trial_id: n for trial_id, n in Counter(ids).items() if n > 1}
    assert not duplicates, f"trials handed out more than once: {duplicates}"
    assert len(ids) == max_trials
    per_replica = Counter(replica for _, _, replica in handed_out)
    assert per_replica[0] > 0 and per_replica[1] > 0, per_replica
    assert len({worker_id for _, worker_id, _ in handed_out}) > 1

    # No tell lost: each one is stored, by the worker that was leased the trial, with its value.
    assert len(told) == max_trials
    told_by_id = {trial_id: (worker_id, value) for trial_id, worker_id, value in told}
    assert len(told_by_id) == max_trials
    assert set(told_by_id) == set(ids)
    assert peak_in_flight <= MAX_PARALLEL, f"{peak_in_flight} trials in flight at once (client-side)"
    assert sampler.peak <= MAX_PARALLEL, f"{sampler.peak} ACTIVE trials in one database snapshot"

    with SuggestionClient(addresses[1]) as client:
        handle = client.get_study(name)
        assert handle.info.state == pb.STUDY_STATE_COMPLETED
        counts = handle.info.trial_counts
        assert (counts.completed, counts.active, counts.queued, counts.stale) == (max_trials, 0, 0, 0), counts
        trials = list(handle.trials())
        completed = list(handle.trials(pb.TRIAL_STATE_COMPLETED))
    assert len(completed) == len(told) == len(trials) == max_trials
    assert sorted(t.number for t in trials) == list(range(max_trials))
    configurations = Counter(tuple(sorted((k, str(v)) for k, v in t.parameters.items())) for t in trials)
    assert max(configurations.values()) == 1, "a configuration was handed out twice"
    for t in trials:
        assert t.state == pb.TRIAL_STATE_COMPLETED, t
        assert t.source == pb.TRIAL_SOURCE_ALGORITHM and t.attempt == 0, t
        worker_id, value = told_by_id[t.id]
        assert t.worker_id == worker_id, t
        assert [(m.name, m.value) for m in t.metrics] == [("loss", value)], t

    # The database agrees, and its lease/tell timestamps never show more than the cap running.
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            of_study = {"name": name}
            rows = conn.execute(sa.text("SELECT id, state, start_ms, end_ms FROM trials WHERE study_id = "
                                        "(SELECT id FROM studies WHERE name = :name)"), of_study).all()
            n_requests = conn.execute(sa.text("SELECT count(*) FROM suggest_requests WHERE study_id = "
                                              "(SELECT id FROM studies WHERE name = :name)"), of_study).scalar_one()
    finally:
        engine.dispose()
    assert len(rows) == max_trials
    assert {row.state for row in rows} == {"COMPLETED"}
    assert all(row.start_ms is not None and row.end_ms is not None and row.start_ms <= row.end_ms for row in rows)
    assert n_requests >= max_trials  # one per answered ask, WAIT answers included
    assert_clean_logs(replica_a, replica_b)

    # Last, the recorded timeline: start_ms (set at lease) and end_ms (set at tell) must
    # never show more than max_parallel_trials trials running at once either.
    overlap, at, covering = max_overlap({row.id: (row.start_ms, row.end_ms) for row in rows})
    print(
        f"\n{max_trials} trials by {N_WORKERS} clients in {elapsed_clients:.1f} s "
        f"(replica A {per_replica[0]}, B {per_replica[1]}, {n_requests} asks answered); peak in flight: "
        f"client-side {peak_in_flight}, ACTIVE in a database snapshot {sampler.peak} ({sampler.samples} samples), "
        f"start_ms/end_ms overlap {overlap}"
    )
    assert overlap <= MAX_PARALLEL, (
        f"{overlap} trials overlap in the trials table's [start_ms, end_ms) at {at}; as (id, start - {at}, "
        f"end - {at}): {[(i, s - at, e - at) for i, s, e in covering]}"
    )


def test_replicas_replay_a_retried_ask(database_url, spawn_server):
    replica_a, replica_b = start_replicas(spawn_server, database_url)
    addresses = [replica_a.address, replica_b.address]
    name = f"replay-{uuid.uuid4().hex[:8]}"
    n_clients, count = 16, 2

    with SuggestionClient(addresses[0]) as admin:
        # No parallel limit or budget: every first ask gets its two trials, so any extra
        # trial in the database could only come from a replayed request_id.
        admin.create_study(name, [Float("x", 0.0, 1.0), Int("n", 0, 9)], objectives={"loss": "minimize"},
                           max_trials=0, max_parallel_trials=0, lease_seconds=LEASE_SECONDS)

    lock = threading.Lock()
    answers: dict[str, tuple[str, list[list[int]]]] = {}  # request id -> (worker id, trial ids per attempt)
    start = threading.Barrier(n_clients)

    def ask(client: SuggestionClient, request: api.SuggestTrialsRequest) -> list[int]:
        response = client.call("SuggestTrials", request)
        assert response.status == api.SUGGEST_STATUS_OK, response
        assert all(t.worker_id == request.worker_id and t.state == pb.TRIAL_STATE_ACTIVE for t in response.trials)
        return [t.id for t in response.trials]

    def client_thread(index: int) -> None:
        worker_id = f"worker-{index:02d}"
        clients = [SuggestionClient(addresses[index % 2]), SuggestionClient(addresses[(index + 1) % 2])]
        try:
            # Round 1: an ask retried twice in a row, A, B, A (or B, A, B): each retry lands
            # on the other replica than the one before.
            request_id = uuid.uuid4().hex
            request = api.SuggestTrialsRequest(study=name, count=count, worker_id=worker_id, request_id=request_id)
            start.wait(30)
            attempts = [ask(clients[attempt % 2], request) for attempt in range(3)]
            with lock:
                answers[request_id] = (worker_id, attempts)

            # Round 2: the same three identical asks, but racing each other on both replicas
            # (a retry sent while the first try is still in flight).
            request_id = uuid.uuid4().hex
            request = api.SuggestTrialsRequest(study=name, count=count, worker_id=worker_id, request_id=request_id)
            racing: list[list[int]] = [[], [], []]
            go = threading.Barrier(3)

            def racer(attempt: int) -> None:
                go.wait(30)
                racing[attempt] = ask(clients[attempt % 2], request)

            racer_errors = run_threads([lambda a=a: racer(a) for a in range(3)], timeout=45)
            assert not racer_errors, racer_errors
            with lock:
                answers[request_id] = (worker_id, racing)
        finally:
            for client in clients:
                client.close()

    errors = run_threads([lambda i=i: client_thread(i) for i in range(n_clients)], timeout=60)
    assert not errors, f"client errors: {errors!r}"
    assert len(answers) == 2 * n_clients

    all_ids: list[int] = []
    for worker_id, attempts in answers.values():
        first = attempts[0]
        assert len(first) == count, (worker_id, attempts)
        assert attempts[1] == first and attempts[2] == first, f"{worker_id} got different trials: {attempts}"
        all_ids += first
    assert len(set(all_ids)) == len(all_ids) == count * len(answers), "a trial was leased to two requests"

    with SuggestionClient(addresses[1]) as client:
        trials = list(client.get_study(name).trials())
    assert len(trials) == count * len(answers)
    assert {t.id for t in trials} == set(all_ids)
    assert sorted(t.number for t in trials) == list(range(len(trials)))

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            n_trials = conn.execute(sa.text("SELECT count(*) FROM trials")).scalar_one()
            requests = conn.execute(sa.text("SELECT request_id, count(*) AS n FROM trials GROUP BY request_id")).all()
            n_requests = conn.execute(sa.text("SELECT count(*) FROM suggest_requests")).scalar_one()
    finally:
        engine.dispose()
    assert n_trials == count * len(answers)
    assert {row.request_id: row.n for row in requests} == {request_id: count for request_id in answers}
    assert n_requests == len(answers)

    assert_clean_logs(replica_a, replica_b)


def test_replicas_exhaust_a_grid_exactly_once(database_url, spawn_server):
    """A grid search served by two replicas: every point is handed out once, and the study
    completes with SPACE_EXHAUSTED (not before, and never with a point missing)."""
    replica_a, replica_b = start_replicas(spawn_server, database_url)
    addresses = [replica_a.address, replica_b.address]
    name = f"grid-{uuid.uuid4().hex[:8]}"
    with SuggestionClient(addresses[0]) as admin:
        admin.create_study(name, [Int("a", 0, 5), Int("b", 0, 7)], objectives={"loss": "minimize"},
                           algorithm="grid", lease_seconds=LEASE_SECONDS)
    points = 6 * 8
    lock = threading.Lock()
    told: list[tuple[int, int]] = []
    done_reasons: list[int] = []

    def client_thread(index: int) -> None:
        with SuggestionClient(addresses[index % 2]) as client:
            study = client.get_study(name)
            study.worker_id = f"grid-worker-{index}"
            while True:
                trials = study.ask_batch(2, wait=False)
                for trial in trials:
                    study.tell(trial, float(trial.params["a"] + trial.params["b"]))
                    with lock:
                        told.append((trial.params["a"], trial.params["b"]))
                if study.last_suggest.status == api.SUGGEST_STATUS_DONE:
                    with lock:
                        done_reasons.append(study.last_suggest.done_reason)
                    return
                if not trials:
                    time.sleep(0.01)

    errors = run_threads([lambda i=i: client_thread(i) for i in range(12)], timeout=120)
    assert not errors, f"client errors: {errors!r}"
    assert sorted(told) == sorted((a, b) for a in range(6) for b in range(8)), "a grid point was missed or repeated"
    assert len(told) == points
    # The ask that found the space exhausted completed the study; later asks learn the same reason.
    assert done_reasons == [api.DONE_REASON_SPACE_EXHAUSTED] * 12
    with SuggestionClient(addresses[1]) as client:
        assert client.get_study(name).info.state == pb.STUDY_STATE_COMPLETED
    assert_clean_logs(replica_a, replica_b)
