"""Scale-out on one machine: replicated services on PostgreSQL, eight workers on four "hosts".

The services' network namespace (tests/netns.py) runs two suggestion-service replicas and two
tracking-service replicas, on distinct ports of the services' address; each pair shares one
fresh PostgreSQL database, reached through PostgreSQL's unix socket (127.0.0.1:5432 is the
host's loopback, which a namespace cannot reach). All four start at once with ``--migrate``,
so the two replicas of each service race to create the schema (they serialise on an advisory
lock). Eight ``python -m trial_worker`` processes, two in each of four worker namespaces, run
a 200-trial ASHA study with a 2 s lease.

Access control is on (every call carries a bearer token; one without is refused), and the two
tracking replicas keep artifacts in one S3 bucket (moto's server in the services' namespace,
tests/e2e/secured.py): each trial logs its params as an artifact through its worker's replica,
and all of them are read back, bytes checked, through replica B.

Each worker talks to one tracking replica, and to the suggestion replicas through a gRPC
target that lists both, its own replica first (``ipv4:10.231.0.1:A,10.231.0.1:B``):
SuggestionClient hands the address to gRPC as is, and gRPC's default pick_first policy uses
the first address that answers. Half the workers list A first, half B, so both replicas
serve workers (checked with ``ss`` in the services' namespace). Mid-study replica A is
SIGKILLed: its workers' calls fail over to B, which is what deploy/README.md promises
("every RPC is safe to retry on another replica"); nobody restarts them. Two workers are
SIGKILLed in the middle of a trial (the ``stepped`` train function hangs after its first
report in those processes) and not restarted, so their leases expire, a live replica reclaims
them and the other six workers run the retries and finish the study.

The end state is read from both databases (the test process, on the host, reaches
PostgreSQL directly) and from the surviving replica: max_trials counts configurations, so
the 200 configurations each end COMPLETED or PRUNED exactly once, directly or through
retries (a retry is a new trial, source RETRY, ``retry_of`` its STALE predecessor); no
configuration was ever leased twice at once; every finished trial has its tracked run,
linked both ways; at least one expired lease was reclaimed and its retry finished; nothing
is left QUEUED or ACTIVE.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, require
from tests.e2e.secured import Secured, secured
from tests.e2e.test_multi_host import Output, child_env, run_python, stop
from tests.netns import Star, identify, required_star

TRIALS = 200
STEPS = 4
STEP_SECONDS = 0.02
LEASE_SECONDS = 2.0
MAX_RETRIES = 5
NAMESPACES = 4
WORKERS_PER_NAMESPACE = 2
# Workers (index into the eight) that hang in their Nth trial and are SIGKILLed there.
VICTIMS = {1: 3, 6: 4}
# Replica A of the suggestion service dies once this many trials have finished.
KILL_REPLICA_AFTER = 70
START_TIMEOUT = 60.0
STUDY_TIMEOUT = 150.0

CREATE_STUDY = """
import sys
from trial_worker import Fidelity, Float, SuggestionClient
address, name = sys.argv[1:3]
trials, steps, lease, retries = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
with SuggestionClient(address) as client:
    client.create_study(name, [Float("x", -3, 3)], objectives={"loss": "minimize"}, algorithm="random",
                        max_trials=trials, seed=7, lease_seconds=lease, max_retries=retries,
                        fidelity=Fidelity("steps", 1, steps, 2), pruner="asha")
"""

READ_STUDY = """
import json, sys
from trial_worker import SuggestionClient
from tuning.suggestion.v1 import study_pb2
address, name = sys.argv[1:3]
with SuggestionClient(address, retries=0) as client:
    study = client.get_study(name)
    print(json.dumps({"state": study_pb2.StudyState.Name(study.info.state),
                      "trials": {t.id: study_pb2.TrialState.Name(t.state) for t in study.trials()}}))
"""


@dataclass
class Databases:
    """One fresh database per service: URLs for the host (TCP) and for the namespaces (socket)."""

    suggestion: str
    tracking: str
    suggestion_socket: str
    tracking_socket: str


def _socket_directory(admin: sa.Engine) -> tuple[str, int] | None:
    """A unix-socket directory of the PostgreSQL server that exists on this machine, and its port."""
    with admin.connect() as conn:
        directories = conn.execute(sa.text("SHOW unix_socket_directories")).scalar() or ""
        port = int(conn.execute(sa.text("SHOW port")).scalar())
    for directory in (d.strip() for d in directories.split(",")):
        if directory and not directory.startswith("@") and os.path.exists(os.path.join(directory, f".s.PGSQL.{port}")):
            return directory, port
    return None


@pytest.fixture
def databases(postgres_server: str) -> Iterator[Databases]:
    """Two fresh databases (as tests/conftest.py's ``postgres_url``), dropped afterwards."""
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    names: list[str] = []
    try:
        found = _socket_directory(admin)
        require(found is not None, "PostgreSQL has no unix socket on this machine, and the services' network "
                                   "namespace cannot reach it over TCP on the host's loopback")
        directory, port = found
        base = sa.engine.make_url(postgres_server)
        with admin.connect() as conn:
            for _ in range(2):
                names.append(f"tuning_test_{uuid.uuid4().hex[:12]}")
                conn.execute(sa.text(f'CREATE DATABASE "{names[-1]}"'))
        tcp = [base.set(database=name).render_as_string(hide_password=False) for name in names]
        socket = [sa.engine.URL.create(base.drivername, base.username, base.password, database=name,
                                       query={"host": directory, "port": str(port)}).render_as_string(
            hide_password=False) for name in names]
        # The socket leads to the server that just created these databases (not some other one).
        for url in socket:
            engine = sa.create_engine(url)
            try:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT inet_server_addr() IS NULL")).scalar()
            except sa.exc.OperationalError as error:
                require(False, f"PostgreSQL's unix socket in {directory} does not work: {error}")
            finally:
                engine.dispose()
        yield Databases(tcp[0], tcp[1], socket[0], socket[1])
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Every finished trial's config.json, read through one tracking replica: how many were checked, and the
# trials whose artifact is missing or differs from their params.
CHECK_CONFIGS = """
import json, pathlib, sys, tempfile
from trial_worker import SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2
from tuning_types.convert import params_from_proto
suggestion, tracking, name = sys.argv[1:4]
checked, wrong = 0, []
with SuggestionClient(suggestion) as client, TrackingClient(tracking) as runs, tempfile.TemporaryDirectory() as tmp:
    for trial in client.get_study(name).trials(study_pb2.TRIAL_STATE_COMPLETED, study_pb2.TRIAL_STATE_PRUNED):
        checked += 1
        try:
            local = runs.download(trial.run_id, "config.json", pathlib.Path(tmp) / trial.run_id)
            if json.loads(local.read_text()) != params_from_proto(trial.parameters):
                wrong.append(f"trial {trial.id}: {local.read_text()}")
        except Exception as error:
            wrong.append(f"trial {trial.id}: {error!r}")
print(json.dumps({"checked": checked, "wrong": wrong}))
"""


@pytest.fixture
def star() -> Iterator[Star]:
    with required_star(NAMESPACES) as net:
        yield net


@pytest.fixture
def security(star: Star, tmp_path: Path) -> Iterator[Secured]:
    with secured(star, tmp_path) as settings:
        yield settings


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    output: Output
    address: str = ""

    @property
    def port(self) -> str:
        return self.address.rsplit(":", 1)[1]


@dataclass
class Worker:
    id: str
    ns: str
    primary: Service  # the suggestion replica its target lists first
    tracking: Service
    process: subprocess.Popen
    output: Output
    marker: Path | None  # where it says which trial it hangs in (victims only)


def start_services(net: Star, specs: list[tuple[str, str, list[str]]], env: dict[str, str]) -> list[Service]:
    """Starts every ``(name, module, args)`` at once in the services' namespace (``env`` added to their
    environment), then waits for each."""
    services = []
    for name, module, args in specs:
        process = net.spawn(net.svc, [sys.executable, "-m", module, "--host", net.service_address, "--port", "0",
                                      "--migrate", *args],
                            cwd=ROOT, env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
        services.append(Service(name, process, Output(process)))
    deadline = time.monotonic() + START_TIMEOUT
    for service in services:
        line = service.output.first_line(max(0.1, deadline - time.monotonic()))
        if "listening on" not in line:
            service.process.kill()
            raise AssertionError(f"{service.name} did not start in {net.svc}: {line}{service.output.text()}")
        service.address = line.rsplit(" ", 1)[1].strip()
        assert service.address.startswith(f"{net.service_address}:"), line
    return services


def peers_of(net: Star, port: str) -> set[str]:
    """The worker addresses with an established TCP connection to ``port`` in the services' namespace."""
    out = subprocess.run(["ip", "netns", "exec", net.svc, "ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    # The servers' sockets are dual-stack: peers show as [::ffff:10.231.1.2]:PORT.
    return {line.split()[3].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
            for line in out.splitlines() if line.strip()}


def wait_until(condition, timeout: float, what: str, *, processes: dict[str, subprocess.Popen] | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        for name, process in (processes or {}).items():
            assert process.poll() is None, f"{name} exited ({process.returncode}) while waiting for {what}"
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_replicated_services_survive_dead_replica_and_dead_workers(star: Star, databases: Databases,
                                                                   security: Secured, tmp_path: Path) -> None:
    net, timings = star, {}
    begun = time.monotonic()
    suggestion_db = sa.create_engine(databases.suggestion)
    tracking_db = sa.create_engine(databases.tracking)
    services: list[Service] = []
    workers: list[Worker] = []
    try:
        lease = ["--lease-check-seconds", "0.5", *security.service_args]
        artifacts = ["--artifacts", security.artifacts("scale-out"), *security.service_args]
        services = start_services(net, [
            ("suggestion A", "suggestion_service", ["--database-url", databases.suggestion_socket, *lease]),
            ("suggestion B", "suggestion_service", ["--database-url", databases.suggestion_socket, *lease]),
            ("tracking A", "tracking_service", ["--database-url", databases.tracking_socket, *artifacts]),
            ("tracking B", "tracking_service", ["--database-url", databases.tracking_socket, *artifacts]),
        ], security.aws)
        suggestion_a, suggestion_b, tracking_a, tracking_b = services
        timings["services up"] = time.monotonic() - begun

        study = f"scale-out-{net.prefix.strip('-')}"
        assert security.refused_without_token(net, suggestion_b.address) == "Unauthenticated"
        run_python(net, net.svc, CREATE_STUDY, suggestion_b.address, study, str(TRIALS), str(STEPS), str(LEASE_SECONDS),
                   str(MAX_RETRIES), env=security.client_env)
        with suggestion_db.connect() as conn:
            study_id = conn.execute(sa.text("SELECT id FROM studies WHERE name = :n"), {"n": study}).scalar_one()

        started = time.monotonic()
        for index in range(NAMESPACES * WORKERS_PER_NAMESPACE):
            ns = net.workers[index // WORKERS_PER_NAMESPACE]
            worker_id = f"w{index // WORKERS_PER_NAMESPACE + 1}-{'ab'[index % WORKERS_PER_NAMESPACE]}"
            # Suggestion replicas alternate by worker, tracking replicas by pair: every combination twice.
            first, second = (suggestion_a, suggestion_b) if index % 2 == 0 else (suggestion_b, suggestion_a)
            tracking = (tracking_a, tracking_b)[(index // 2) % 2]
            target = f"ipv4:{first.address},{second.address}"
            env = child_env(TEST_STEP_SECONDS=str(STEP_SECONDS), TEST_STEPS=str(STEPS), TEST_LOG_CONFIG="1",
                            **security.client_env)
            marker = None
            if index in VICTIMS:
                marker = tmp_path / f"hang-{worker_id}"
                env.update(TEST_HANG_AT=str(VICTIMS[index]), TEST_HANG_MARKER=str(marker))
            process = net.spawn(ns, [
                sys.executable, "-m", "trial_worker", "--study", study, "--train", "tests.e2e.worker_functions:stepped",
                "--suggestion-address", target, "--tracking-address", tracking.address,
                "--parallel", "1", "--worker-id", worker_id, "--reconnect-seconds", "60",
            ], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            workers.append(Worker(worker_id, ns, first, tracking, process, Output(process), marker))
        for worker in workers:
            assert identify(worker.process.pid) == worker.ns, f"{worker.id} (pid {worker.process.pid}) is elsewhere"
        for service in services:
            assert identify(service.process.pid) == net.svc, service.name

        def finished() -> int:
            with suggestion_db.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM trials WHERE study_id = :s "
                                            "AND state IN ('COMPLETED', 'PRUNED')"), {"s": study_id}).scalar()

        # Two workers hang mid-trial (leased, one step reported, heartbeating): SIGKILL them there.
        victims = [w for w in workers if w.marker is not None]
        hung: dict[str, int] = {}
        for victim in victims:
            wait_until(victim.marker.exists, 60, f"{victim.id} to hang in a trial",
                       processes={victim.id: victim.process})
            hung[victim.id] = int(victim.marker.read_text())
            victim.process.kill()
            victim.process.wait(10)
        timings["workers killed"] = time.monotonic() - started

        # Both suggestion replicas serve workers; then replica A dies mid-study.
        worker_addresses = {net.worker_address(i) for i in range(NAMESPACES)}
        live = [w for w in workers if w.marker is None]
        wait_until(lambda: finished() >= KILL_REPLICA_AFTER, 90, f"{KILL_REPLICA_AFTER} finished trials",
                   processes={w.id: w.process for w in live})
        served = {s.name: peers_of(net, s.port) & worker_addresses for s in services}
        assert all(served.values()), f"a replica serves no worker: {served}"
        done_before_kill = finished()
        suggestion_a.process.send_signal(signal.SIGKILL)
        suggestion_a.process.wait(10)
        killed_ms = int(time.time() * 1000)
        timings["replica killed"] = time.monotonic() - started
        assert done_before_kill < TRIALS - 40, f"the study was nearly over ({done_before_kill}) when replica A died"

        deadline = started + STUDY_TIMEOUT
        for worker in live:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        timings["study"] = time.monotonic() - started
        outputs = {w.id: w.output.text() if w.process.poll() is not None else "".join(w.output.lines) for w in workers}
        report = "\n".join(f"--- {w.id} (exit {w.process.poll()}, suggestion {w.primary.name} first, "
                           f"{w.tracking.name}):\n{outputs[w.id]}" for w in workers)
        still = [w.id for w in live if w.process.poll() is None]
        assert not still, f"workers still running after {STUDY_TIMEOUT:g} s: {still}\n{report}"
        for worker in live:
            assert worker.process.returncode == 0, report
            assert re.search(r"stopped \(study done\)", outputs[worker.id]), report
        for victim in victims:
            assert victim.process.returncode == -signal.SIGKILL, report

        # The surviving replica answers for the whole study.
        seen = run_python(net, net.svc, READ_STUDY, suggestion_b.address, study, env=security.client_env)
        timings["read back"] = time.monotonic() - started

        # --- the suggestion database -------------------------------------------------------------
        with suggestion_db.connect() as conn:
            row = conn.execute(sa.text("SELECT state, budget_used FROM studies WHERE id = :s"), {"s": study_id}).one()
            trials = {t.id: t for t in conn.execute(sa.text(
                "SELECT id, number, state, source, params, worker_id, lease_expires_ms, attempt, retry_of, reason, "
                "run_id, start_ms, end_ms FROM trials WHERE study_id = :s ORDER BY id"), {"s": study_id})}
        states = collections.Counter(t.state for t in trials.values())
        assert (row.state, row.budget_used) == ("COMPLETED", TRIALS), (row, states)
        assert set(states) <= {"COMPLETED", "PRUNED", "STALE"}, f"left over or failed: {states}\n{report}"
        assert states["COMPLETED"] + states["PRUNED"] == TRIALS, states
        assert states["PRUNED"] > 0 and states["COMPLETED"] > 0, f"ASHA pruned nothing? {states}"
        assert seen["state"] == "STUDY_STATE_COMPLETED", seen["state"]
        assert {int(k): v.removeprefix("TRIAL_STATE_") for k, v in seen["trials"].items()} == {
            t.id: t.state for t in trials.values()}, "the live replica disagrees with the database"

        sources = collections.Counter(t.source for t in trials.values())
        assert sources["ALGORITHM"] == TRIALS and set(sources) <= {"ALGORITHM", "RETRY"}, sources
        retry_of = collections.defaultdict(list)
        for trial in trials.values():
            assert (trial.source == "RETRY") == (trial.retry_of is not None), trial
            if trial.retry_of is not None:
                retry_of[trial.retry_of].append(trial)
        # Each configuration: a chain of STALE trials, each retried once, ending COMPLETED or PRUNED;
        # no two trials of a chain ever leased at once (a retry starts after its predecessor ended).
        ends = collections.Counter()
        for root in (t for t in trials.values() if t.source == "ALGORITHM"):
            trial = root
            while trial.state == "STALE":
                assert len(retry_of[trial.id]) == 1, (trial, retry_of[trial.id])
                [retry] = retry_of[trial.id]
                assert (retry.params, retry.attempt) == (trial.params, trial.attempt + 1), (trial, retry)
                assert retry.start_ms >= trial.end_ms, f"trial {retry.id} leased before trial {trial.id} ended"
                trial = retry
            assert trial.state in ("COMPLETED", "PRUNED") and not retry_of[trial.id], trial
            ends[root.id] += 1
        assert len(ends) == TRIALS and set(ends.values()) == {1}
        assert sum(map(len, retry_of.values())) == sources["RETRY"], "a retry of a trial that is not STALE"

        worker_ids = {w.id for w in workers}
        for trial in trials.values():
            assert trial.worker_id in worker_ids and trial.lease_expires_ms is None, trial
            assert trial.start_ms is not None and trial.end_ms is not None and trial.start_ms <= trial.end_ms, trial
        # One worker runs one trial at a time (--parallel 1): its leases never overlap.
        by_worker = collections.defaultdict(list)
        for trial in trials.values():
            by_worker[trial.worker_id].append((trial.start_ms, trial.end_ms, trial.id))
        for worker_id, spans in by_worker.items():
            spans.sort()
            for (_, end, earlier), (start, _, later) in zip(spans, spans[1:]):
                assert start >= end, f"{worker_id} held trials {earlier} and {later} at once"

        # The killed workers' trials expired, were reclaimed and retried, and the retries finished elsewhere.
        for victim_id, trial_id in hung.items():
            trial = trials[trial_id]
            assert (trial.state, trial.worker_id) == ("STALE", victim_id), trial
            assert "expired" in trial.reason, trial.reason
            [retry] = retry_of[trial_id]
            while retry.state == "STALE":
                [retry] = retry_of[retry.id]
            assert retry.state in ("COMPLETED", "PRUNED") and retry.worker_id != victim_id, retry

        # The workers that listed replica A first went on with B: each leased trials after A died.
        for worker in live:
            if worker.primary is suggestion_a:
                assert any(t.worker_id == worker.id and t.start_ms > killed_ms for t in trials.values()), (
                    f"{worker.id} leased no trial after replica A died")

        # What the workers said: every finished trial by exactly one worker, the one the study recorded.
        done_by: dict[int, str] = {}
        for worker_id, text in outputs.items():
            for number in map(int, re.findall(r"^trial (\d+): (?:completed|pruned)\b", text, re.MULTILINE)):
                assert number not in done_by, f"trial {number} finished by {done_by[number]} and {worker_id}"
                done_by[number] = worker_id
        finished_trials = [t for t in trials.values() if t.state in ("COMPLETED", "PRUNED")]
        assert done_by == {t.number: t.worker_id for t in finished_trials}, report

        # --- the tracking database ---------------------------------------------------------------
        with tracking_db.connect() as conn:
            runs = {r.id: r for r in conn.execute(sa.text(
                "SELECT id, status, trial_study, trial_id, trial_number FROM runs WHERE trial_study = :s"),
                {"s": study})}
            run_workers = dict(conn.execute(sa.text(
                "SELECT run_id, value FROM tags WHERE key = 'tuning.worker'")).all())
            with_loss = set(conn.execute(sa.text("SELECT run_id FROM latest_metrics WHERE key = 'loss'")).scalars())
        per_trial = collections.Counter(r.trial_id for r in runs.values())
        assert max(per_trial.values()) == 1, [t for t, n in per_trial.items() if n > 1]
        for trial in finished_trials:
            assert trial.run_id and trial.run_id in runs, f"trial {trial.id} has no run ({trial.run_id!r})"
            run = runs[trial.run_id]
            assert (run.trial_id, run.trial_number) == (trial.id, trial.number), (trial, run)
            assert run.status == "FINISHED" and run.id in with_loss, run
            assert run_workers[run.id] == trial.worker_id, (trial, run_workers.get(run.id))

        # --- the artifacts: written through either tracking replica, all read back through B -------------
        configs = run_python(net, net.svc, CHECK_CONFIGS, suggestion_b.address, tracking_b.address, study,
                             env=security.client_env, timeout=180)
        assert configs == {"checked": TRIALS, "wrong": []}, configs

        per_worker = {w.id: sum(t.worker_id == w.id for t in finished_trials) for w in workers}
        print(f"\n{states}; retries {sources['RETRY']}; finished per worker {per_worker}; "
              f"replica A killed at {done_before_kill} finished; workers per replica "
              f"{ {k: len(v) for k, v in served.items()} }; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        for service in (suggestion_b, tracking_a, tracking_b):
            stop(service.process)
            text = service.output.text()
            assert "Traceback" not in text and " ERROR " not in text, f"{service.name} logged errors:\n{text}"
    finally:
        for worker in workers:
            stop(worker.process, 5)
        for service in services:
            stop(service.process)
        suggestion_db.dispose()
        tracking_db.dispose()
