"""Chaos: a 200-trial study survives dead workers, crashed services and a cut network link.

Topology (tests/netns.py): the suggestion and tracking services (SQLite each) run in the
services' namespace; eight ``python -m trial_worker`` processes run two per worker namespace,
four "hosts". Each host has its own ``$TUNING_HOME``, so the tracking spool of a worker killed
on a host is replayed by the worker restarted there, as it would be on a real machine.

First a fault-free study of the same size on the same services and workers gives the baseline.
Then the chaos study runs while a driver, keyed on progress (finished trials), injects:

- four SIGKILLs of a random worker, each restarted half a second later on the same host (as
  a supervisor would) under a new worker id;
- two SIGKILLs of the suggestion service and one of the tracking service, each restarted on
  the same address a second later (the databases are whatever the crash left behind);
- one cut of a random host's link for longer than a lease (the services' end of its veth pair
  goes down), so its workers' trials expire, are retried elsewhere, and their late results
  are refused when the link returns.

At the end:
- exactly 200 configurations COMPLETED, each once; every other trial is STALE with exactly one
  retry; the study is COMPLETED with its budget used;
- no duplicate suggestions: the algorithm's 200 configurations are distinct, no worker held
  two trials at once, and each trial was finished by one worker, the one the study recorded;
- every completed trial has its FINISHED run, linked both ways, with its params and every
  metric the train function reported or returned, at every step, with the right values;
- nothing stuck: no trial ACTIVE or QUEUED, no run RUNNING (the runs of lost attempts are
  ended KILLED by the worker that takes over the retry), nothing left in any spool;
- both databases pass ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``.

Access control is on (every process calls with a bearer token), and the tracking service keeps
artifacts in an S3 bucket (moto's server in the services' namespace, tests/e2e/secured.py), so each
restart of the tracking service opens the bucket again.

The test prints the faults with their times, and the time lost against the baseline.
"""

from __future__ import annotations

import collections
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.secured import Secured, secured
from tests.e2e.test_multi_host import Output, child_env, run_python, stop
from tests.e2e.worker_functions import loss_at
from tests.netns import Star, identify, required_star

pytestmark = pytest.mark.chaos

TRIALS = 200
HOSTS = 4
WORKERS_PER_HOST = 2
STEPS = 4
STEP_SECONDS = 0.1
LEASE_SECONDS = 5.0
LEASE_CHECK_SECONDS = 0.5
MAX_RETRIES = 10
RESTART_AFTER = 1.0  # a crashed service comes back after this long
WORKER_RESTART_AFTER = 0.5
CUT_SECONDS = LEASE_SECONDS + 4.0  # longer than a lease: the host's trials expire
START_TIMEOUT = 60.0
STUDY_TIMEOUT = 240.0

# (finished trials, fault): the driver fires each once the chaos study has finished that many.
SCHEDULE = [
    (10, "kill worker"),
    (25, "crash suggestion"),
    (45, "cut link"),  # restored CUT_SECONDS later, while the study goes on
    (60, "kill worker"),
    (85, "crash tracking"),
    (110, "crash suggestion"),
    (135, "kill worker"),
    (160, "kill worker"),
]

CREATE_STUDY = """
import sys
from trial_worker import Float, SuggestionClient
address, name = sys.argv[1:3]
trials, lease, retries = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
with SuggestionClient(address) as client:
    client.create_study(name, [Float("x", -3, 3), Float("y", -3, 3)], objectives={"loss": "minimize"},
                        algorithm="tpe", max_trials=trials, seed=11, lease_seconds=lease, max_retries=retries)
"""


@dataclass
class Service:
    """A service in the services' namespace, restartable on the address it first got."""

    net: Star
    name: str
    module: str
    args: list[str]
    env: dict[str, str]
    address: str = ""
    process: subprocess.Popen | None = None
    outputs: list[Output] = field(default_factory=list)

    def start(self) -> None:
        port = self.address.rsplit(":", 1)[1] if self.address else "0"
        self.process = self.net.spawn(self.net.svc, [
            sys.executable, "-m", self.module, "--host", self.net.service_address, "--port", port, "--migrate",
            *self.args], cwd=ROOT, env=child_env(**self.env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        output = Output(self.process)
        self.outputs.append(output)
        line = output.first_line(START_TIMEOUT)
        if "listening on" not in line:
            self.process.kill()
            raise AssertionError(f"{self.name} did not start: {line}{output.text()}")
        address = line.rsplit(" ", 1)[1].strip()
        assert not self.address or address == self.address, (self.address, address)
        self.address = address

    def crash(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return "".join(output.text() for output in self.outputs)


@dataclass
class Worker:
    id: str
    host: int
    process: subprocess.Popen
    output: Output


class Cluster:
    """The eight workers of one study, and what happened to them."""

    def __init__(self, net: Star, tmp: Path, study: str, suggestion: Service, tracking: Service,
                 env: dict[str, str]):
        self.net, self.tmp, self.study, self.env = net, tmp, study, env
        self.suggestion, self.tracking = suggestion, tracking
        self.workers: list[Worker] = []
        self.generation: collections.Counter[str] = collections.Counter()

    def home(self, host: int) -> Path:
        return self.tmp / f"host-{host + 1}"

    def start_worker(self, base: str, host: int) -> Worker:
        self.generation[base] += 1
        worker_id = base if self.generation[base] == 1 else f"{base}.{self.generation[base]}"
        env = child_env(TEST_STEP_SECONDS=str(STEP_SECONDS), TEST_STEPS=str(STEPS), TUNING_HOME=str(self.home(host)),
                        **self.env)
        process = self.net.spawn(self.net.workers[host], [
            sys.executable, "-m", "trial_worker", "--study", self.study,
            "--train", "tests.e2e.worker_functions:quadratic",
            "--suggestion-address", self.suggestion.address, "--tracking-address", self.tracking.address,
            "--parallel", "1", "--worker-id", worker_id, "--reconnect-seconds", "120",
        ], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        worker = Worker(worker_id, host, process, Output(process))
        self.workers.append(worker)
        return worker

    def start(self) -> None:
        for index in range(HOSTS * WORKERS_PER_HOST):
            host = index // WORKERS_PER_HOST
            self.start_worker(f"h{host + 1}{'ab'[index % WORKERS_PER_HOST]}", host)
        for worker in self.workers:
            # `ip netns exec` enters the namespace, then execs the worker: give it a moment.
            deadline = time.monotonic() + 10
            while identify(worker.process.pid) != self.net.workers[worker.host]:
                assert time.monotonic() < deadline, f"{worker.id} (pid {worker.process.pid}) is elsewhere"
                time.sleep(0.05)

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.process.poll() is None]

    def wait(self, timeout: float) -> str:
        """Waits for every worker to exit; returns everything they printed."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        return self.report()

    def report(self) -> str:
        return "\n".join(f"--- {w.id} on host {w.host + 1} (exit {w.process.poll()}):\n"
                         f"{w.output.text() if w.process.poll() is not None else ''.join(w.output.lines)}"
                         for w in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            stop(worker.process, 5)


def sqlite_rows(path: Path, query: str, *args: object) -> list[sqlite3.Row]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(query, args).fetchall()
    finally:
        connection.close()


def study_progress(db: Path, study: str) -> tuple[int, list[int]]:
    """(finished configurations, end times in ms of the COMPLETED trials) of ``study``."""
    rows = sqlite_rows(db, "SELECT t.end_ms FROM trials t JOIN studies s ON s.id = t.study_id "
                           "WHERE s.name = ? AND t.state = 'COMPLETED' ORDER BY t.end_ms", study)
    return len(rows), [row["end_ms"] for row in rows]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{cluster.report()}")
        if not cluster.live():
            raise AssertionError(f"every worker exited while waiting for {what}\n{cluster.report()}")
        time.sleep(0.05)


@pytest.fixture
def star() -> Iterator[Star]:
    with required_star(HOSTS) as net:
        yield net


@pytest.fixture
def security(star: Star, tmp_path: Path) -> Iterator[Secured]:
    with secured(star, tmp_path) as settings:
        yield settings


def run_study(net: Star, tmp: Path, name: str, suggestion: Service, tracking: Service, env: dict[str, str]) -> Cluster:
    run_python(net, net.svc, CREATE_STUDY, suggestion.address, name, str(TRIALS), str(LEASE_SECONDS),
               str(MAX_RETRIES), env=env)
    cluster = Cluster(net, tmp, name, suggestion, tracking, env)
    cluster.start()
    return cluster


def test_a_study_survives_killed_workers_crashed_services_and_a_cut_link(star: Star, security: Secured,
                                                                          tmp_path: Path) -> None:
    net = star
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    suggestion_db, tracking_db = tmp_path / "suggestion.db", tmp_path / "tracking.db"
    suggestion = Service(net, "suggestion", "suggestion_service", [
        "--database-url", f"sqlite:///{suggestion_db}", "--lease-check-seconds", str(LEASE_CHECK_SECONDS),
        *security.service_args], {})
    tracking = Service(net, "tracking", "tracking_service", [
        "--database-url", f"sqlite:///{tracking_db}", "--artifacts", security.artifacts("chaos"),
        *security.service_args], security.aws)
    clusters: list[Cluster] = []
    cut: int | None = None  # the host whose link is down
    restore: threading.Timer | None = None
    try:
        suggestion.start()
        tracking.start()

        # --- the baseline: the same study without faults ------------------------------------------
        started = time.monotonic()
        assert security.refused_without_token(net, suggestion.address) == "Unauthenticated"
        baseline = run_study(net, tmp_path, "baseline", suggestion, tracking, security.client_env)
        clusters.append(baseline)
        report = baseline.wait(STUDY_TIMEOUT)
        assert all(w.process.returncode == 0 for w in baseline.workers), report
        baseline_seconds = time.monotonic() - started
        assert study_progress(suggestion_db, "baseline")[0] == TRIALS, report

        # --- the chaos study ----------------------------------------------------------------------
        study = "chaos"
        started = time.monotonic()
        cluster = run_study(net, tmp_path, study, suggestion, tracking, security.client_env)
        clusters.append(cluster)
        faults: list[dict] = []
        for after, fault in SCHEDULE:
            wait_until(lambda after=after: study_progress(suggestion_db, study)[0] >= after, STUDY_TIMEOUT,
                       f"{after} completed trials before '{fault}'", cluster)
            at = time.monotonic() - started
            event = {"fault": fault, "at_s": round(at, 2), "after_trials": study_progress(suggestion_db, study)[0],
                     "wall_ms": int(time.time() * 1000)}
            if fault == "kill worker":
                victim = chance.choice(cluster.live())
                victim.process.send_signal(signal.SIGKILL)
                victim.process.wait(10)
                time.sleep(WORKER_RESTART_AFTER)
                base = victim.id.split(".")[0]
                event["worker"] = f"{victim.id} -> {cluster.start_worker(base, victim.host).id}"
            elif fault.startswith("crash "):
                service = suggestion if fault == "crash suggestion" else tracking
                service.crash()
                time.sleep(RESTART_AFTER)
                service.start()
            elif fault == "cut link":
                cut = chance.randrange(HOSTS)
                net.set_link(cut, up=False)
                restore = threading.Timer(CUT_SECONDS, net.set_link, (cut, True))
                restore.start()
                event.update(host=cut + 1, for_s=CUT_SECONDS)
            event["took_s"] = round(time.monotonic() - started - at, 2)
            faults.append(event)

        late = [event for event in faults if event["after_trials"] >= TRIALS]
        assert not late, f"faults injected after the study was over: {late}"
        report = cluster.wait(STUDY_TIMEOUT)
        chaos_seconds = time.monotonic() - started
        restore.join()
        cut = None
        still = [w.id for w in cluster.live()]
        assert not still, f"workers still running after {STUDY_TIMEOUT:g} s (seed {seed}): {still}\n{report}"
        killed = [w for w in cluster.workers if w.process.returncode == -signal.SIGKILL]
        assert len(killed) == sum(f == "kill worker" for _, f in SCHEDULE), report
        for worker in cluster.workers:
            if worker not in killed:
                assert worker.process.returncode == 0, report
                assert "stopped (study done)" in worker.output.text(), report

        # Every host's spool was drained: nothing the workers logged is left behind.
        left = {str(p): p.stat().st_size for h in range(HOSTS) for p in (cluster.home(h) / "spool").glob("*")
                if p.is_file() and p.stat().st_size}
        assert not left, f"tracking data left in spools: {left}"

        stop(suggestion.process)
        stop(tracking.process)
        check_suggestion_database(suggestion_db, study, cluster, report)
        check_tracking_database(tracking_db, suggestion_db, study)
        for db in (suggestion_db, tracking_db):
            assert [tuple(r) for r in sqlite_rows(db, "PRAGMA integrity_check")] == [("ok",)], db
            assert sqlite_rows(db, "PRAGMA foreign_key_check") == [], db
        for service in (suggestion, tracking):
            assert "Traceback" not in service.log(), f"{service.name} logged a traceback:\n{service.log()}"

        # --- what it cost ---------------------------------------------------------------------------
        trials = sqlite_rows(suggestion_db, "SELECT t.state, t.start_ms, t.end_ms FROM trials t JOIN studies s "
                                            "ON s.id = t.study_id WHERE s.name = ?", study)
        discarded = sum((t["end_ms"] - t["start_ms"]) / 1000 for t in trials if t["state"] == "STALE")
        _, ends = study_progress(suggestion_db, study)
        for event in faults:
            before = [e for e in ends if e <= event["wall_ms"]]
            after = [e for e in ends if e > event["wall_ms"]]
            # The study's stall: from the last completion before the fault to the first one after it.
            event["stall_s"] = round(((after[0] if after else ends[-1]) - (before[-1] if before else after[0])) / 1000,
                                     2)
            del event["wall_ms"]
        summary = {"seed": seed, "baseline_s": round(baseline_seconds, 1), "chaos_s": round(chaos_seconds, 1),
                   "time_lost_s": round(chaos_seconds - baseline_seconds, 1),
                   "stale_trials": sum(t["state"] == "STALE" for t in trials),
                   "discarded_training_s": round(discarded, 1), "faults": faults}
        print("\nchaos:", json.dumps(summary))
    finally:
        if restore is not None:
            restore.cancel()
        if cut is not None:
            net.set_link(cut, up=True)
        for cluster in clusters:
            cluster.stop()
            (tmp_path / f"{cluster.study}-workers.log").write_text(cluster.report())
        for service in (suggestion, tracking):
            if service.process is not None:
                stop(service.process)
                (tmp_path / f"{service.name}.log").write_text(service.log())


def check_suggestion_database(db: Path, study: str, cluster: Cluster, report: str) -> None:
    [row] = sqlite_rows(db, "SELECT id, state, budget_used FROM studies WHERE name = ?", study)
    trials = {t["id"]: t for t in sqlite_rows(db, (
        "SELECT id, number, state, source, params, worker_id, lease_expires_ms, attempt, retry_of, run_id, start_ms, "
        "end_ms FROM trials WHERE study_id = ? ORDER BY id"), row["id"])}
    states = collections.Counter(t["state"] for t in trials.values())
    assert (row["state"], row["budget_used"]) == ("COMPLETED", TRIALS), (tuple(row), states)
    assert set(states) <= {"COMPLETED", "STALE"} and states["COMPLETED"] == TRIALS, f"{states}\n{report}"

    # No duplicate suggestions: the algorithm's configurations are all distinct.
    algorithm = [t for t in trials.values() if t["source"] == "ALGORITHM"]
    assert len(algorithm) == TRIALS and len({t["params"] for t in algorithm}) == TRIALS
    # Each configuration: STALE attempts, each retried exactly once, ending in one COMPLETED trial,
    # and no attempt leased before the one it replaces had ended.
    retries = collections.defaultdict(list)
    for trial in trials.values():
        assert (trial["source"] == "RETRY") == (trial["retry_of"] is not None), tuple(trial)
        if trial["retry_of"] is not None:
            retries[trial["retry_of"]].append(trial)
    for trial in algorithm:
        while trial["state"] == "STALE":
            [retry] = retries[trial["id"]]
            assert (retry["params"], retry["attempt"]) == (trial["params"], trial["attempt"] + 1)
            assert retry["start_ms"] >= trial["end_ms"], f"trial {retry['id']} leased before {trial['id']} ended"
            trial = retry
        assert trial["state"] == "COMPLETED" and not retries[trial["id"]], tuple(trial)

    # No worker held two trials at once, and nothing holds a lease.
    by_worker = collections.defaultdict(list)
    for trial in trials.values():
        assert trial["lease_expires_ms"] is None and trial["start_ms"] <= trial["end_ms"], tuple(trial)
        by_worker[trial["worker_id"]].append((trial["start_ms"], trial["end_ms"], trial["id"]))
    assert set(by_worker) <= {w.id for w in cluster.workers}, set(by_worker)
    for worker_id, spans in by_worker.items():
        spans.sort()
        for (_, end, earlier), (start, _, later) in zip(spans, spans[1:]):
            assert start >= end, f"{worker_id} held trials {earlier} and {later} at once"

    # Each completed trial was finished by exactly one worker: the one the study recorded.
    done_by: dict[int, str] = {}
    for worker in cluster.workers:
        for line in worker.output.text().splitlines():
            if line.startswith("trial ") and ": completed" in line:
                number = int(line.split()[1].rstrip(":"))
                assert number not in done_by, f"trial {number} completed by {done_by[number]} and {worker.id}"
                done_by[number] = worker.id
    completed = {t["number"]: t["worker_id"] for t in trials.values() if t["state"] == "COMPLETED"}
    # A worker SIGKILLed after its tell but before printing leaves no line: those are the only gaps.
    assert all(done_by[n] == w for n, w in completed.items() if n in done_by), report
    missing = [n for n in completed if n not in done_by]
    assert len(missing) <= sum(1 for w in cluster.workers if w.process.returncode == -signal.SIGKILL), missing


def check_tracking_database(db: Path, suggestion_db: Path, study: str) -> None:
    trials = {t["id"]: t for t in sqlite_rows(suggestion_db, (
        "SELECT t.id, t.number, t.state, t.params, t.run_id FROM trials t JOIN studies s ON s.id = t.study_id "
        "WHERE s.name = ?"), study)}
    runs = {r["id"]: r for r in sqlite_rows(db, "SELECT id, status, trial_id, trial_number FROM runs "
                                                "WHERE trial_study = ?", study)}
    stuck = [r["id"] for r in runs.values() if r["status"] == "RUNNING"]
    assert not stuck, f"runs left RUNNING: {stuck}"
    for run in runs.values():
        trial = trials[run["trial_id"]]
        assert run["trial_number"] == trial["number"], tuple(run)
        assert run["status"] == ("FINISHED" if trial["state"] == "COMPLETED" else "KILLED"), (tuple(run), trial["state"])

    points = collections.defaultdict(list)
    for metric in sqlite_rows(db, "SELECT run_id, key, step, value FROM metrics"):
        points[metric["run_id"], metric["key"]].append((metric["step"], metric["value"]))
    params = collections.defaultdict(dict)
    for param in sqlite_rows(db, "SELECT run_id, key, value FROM params"):
        params[param["run_id"]][param["key"]] = param["value"]
    for trial in (t for t in trials.values() if t["state"] == "COMPLETED"):
        run_id = trial["run_id"]
        assert run_id in runs and runs[run_id]["trial_id"] == trial["id"], f"trial {trial['id']} has no run"
        values = json.loads(trial["params"])
        assert {k: float(v) for k, v in params[run_id].items() if k in values} == values, (run_id, params[run_id])
        assert params[run_id]["steps"] == str(STEPS), params[run_id]
        # Reported at steps 1..STEPS, and the returned loss again at the last step.
        loss = points[run_id, "loss"]
        assert {step for step, _ in loss} == set(range(1, STEPS + 1)), (run_id, sorted(loss))
        for step, value in loss:
            assert math.isclose(value, loss_at(values, step), rel_tol=0, abs_tol=1e-12), (run_id, step, value)
        assert points[run_id, "extra"] and {v for _, v in points[run_id, "extra"]} == {1.0}, run_id
        assert {v for _, v in points[run_id, "x_abs"]} == {abs(values["x"])}, run_id
