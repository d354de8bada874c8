"""Multi-host: the services in one network namespace, workers in two others joined to it by veth pairs.

The test process stays in the host's namespace, which has no route to the services' address
(tests/netns.py touches none of the host's interfaces), so it creates the study and reads the
results back with small Python programs run inside the services' namespace.

Each worker namespace runs two ``python -m trial_worker`` processes with ``--max-trials 10``:
two processes can run at most 20 of the 24 trials, so the other namespace's workers must run
at least 4, however unevenly the processes start; normally every process stops at "study done".
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.netns import Star, identify, required_star

TRIALS = 24
STEPS = 5
WORKERS_PER_NAMESPACE = 2
MAX_TRIALS_PER_WORKER = 10
WORKER_TIMEOUT = 120.0
START_TIMEOUT = 60.0

CREATE_STUDY = """
import sys
from trial_worker import Float, SuggestionClient
address, name, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
with SuggestionClient(address) as client:
    client.create_study(name, [Float("x", -3, 3)], objectives={"loss": "minimize"}, algorithm="random",
                        max_trials=trials, seed=1)
"""

REPORT = """
import json, sys
from trial_worker import SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2
from tuning_common.errors import NotFound
suggestion, tracking, name = sys.argv[1:4]
rows = []
with SuggestionClient(suggestion) as client, TrackingClient(tracking) as runs:
    for trial in client.get_study(name).trials():
        row = {"id": trial.id, "number": trial.number, "state": study_pb2.TrialState.Name(trial.state),
               "worker_id": trial.worker_id, "run_id": trial.run_id,
               "metrics": {m.name: m.value for m in trial.metrics}, "run": None}
        if trial.run_id:
            try:
                run = runs.get_run(trial.run_id)
            except NotFound:
                pass
            else:
                row["run"] = {"id": run.id, "trial_id": run.trial.trial_id, "trial_number": run.trial.trial_number,
                              "study": run.trial.study, "tags": {t.key: t.value for t in run.tags},
                              "metrics": {m.key: m.value for m in run.latest_metrics}}
        rows.append(row)
print(json.dumps(rows))
"""

PROBE = """
import json, socket, sys
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as error:
        return type(error).__name__
print(json.dumps({target: attempt(target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1])) for target in sys.argv[1:]}))
"""


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without proxies (gRPC would send 10.231.0.1 through one) and quiet logs."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "grpc_proxy",
                                                                   "all_proxy", "no_proxy")}
    return {**env, "TUNING_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **extra}


class Output:
    """Drains a process's stdout+stderr on a thread; keeps every line; hands out the first one."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines: list[str] = []
        self._first: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            if not self.lines:
                self._first.put(line)
            self.lines.append(line)
        self._first.put("")

    def first_line(self, timeout: float) -> str:
        try:
            return self._first.get(timeout=timeout)
        except queue.Empty:
            return ""

    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)


def start_service(net: Star, module: str, *args: str) -> tuple[str, Output]:
    process = net.spawn(net.svc, [sys.executable, "-m", module, "--host", net.service_address, "--port", "0",
                                  "--migrate", *args],
                        cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    line = output.first_line(START_TIMEOUT)
    if "listening on" not in line:
        process.kill()
        raise AssertionError(f"{module} did not start in {net.svc}: {line}{output.text()}")
    address = line.rsplit(" ", 1)[1].strip()
    assert address.startswith(f"{net.service_address}:"), line
    return address, output


def run_python(net: Star, ns: str, code: str, *args: str, timeout: float = 60,
               env: dict[str, str] | None = None) -> object:
    """Runs ``code`` inside namespace ``ns`` (with ``env`` added to the environment); returns the JSON it
    printed last."""
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args], cwd=ROOT,
                            env=child_env(**(env or {})), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"python in {ns} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def star() -> Iterator[Star]:
    with required_star(2) as net:
        yield net


def test_workers_in_two_namespaces_share_one_study(star: Star, tmp_path: Path) -> None:
    net, timings = star, {}
    begun = time.monotonic()
    suggestion, suggestion_out = start_service(
        net, "suggestion_service", "--database-url", f"sqlite:///{tmp_path / 'suggestion.db'}",
        "--lease-check-seconds", "1")
    tracking, tracking_out = start_service(
        net, "tracking_service", "--database-url", f"sqlite:///{tmp_path / 'tracking.db'}",
        "--artifacts", str(tmp_path / "artifacts"))
    services = [(suggestion_out.process, suggestion_out), (tracking_out.process, tracking_out)]
    timings["services up"] = time.monotonic() - begun

    # Isolation is real: from a worker namespace the services answer on 10.231.0.1, while the
    # host's loopback and the other worker namespace cannot be reached.
    with socket.socket() as host_listener:
        host_listener.bind(("127.0.0.1", 0))
        host_listener.listen()
        host_loopback = f"127.0.0.1:{host_listener.getsockname()[1]}"
        for index, ns in enumerate(net.workers):
            other = net.worker_address(1 - index)
            probe = run_python(net, ns, PROBE, suggestion, tracking, host_loopback, f"{other}:22")
            assert probe[suggestion] == probe[tracking] == "connected", (ns, probe)
            assert probe[host_loopback] == "ConnectionRefusedError", (ns, probe)
            assert probe[f"{other}:22"] != "connected", (ns, probe)
        with socket.create_connection(host_listener.getsockname(), timeout=3):
            pass  # ...which the host itself reaches

    study = f"multi-host-{net.prefix.strip('-')}"
    run_python(net, net.svc, CREATE_STUDY, suggestion, study, str(TRIALS))

    workers: dict[str, tuple[str, subprocess.Popen, Output]] = {}
    started = time.monotonic()
    try:
        for index, ns in enumerate(net.workers):
            for letter in "ab"[:WORKERS_PER_NAMESPACE]:
                worker_id = f"w{index + 1}-{letter}"
                process = net.spawn(ns, [
                    sys.executable, "-m", "trial_worker", "--study", study,
                    "--train", "tests.e2e.worker_functions:quadratic",
                    "--suggestion-address", suggestion, "--tracking-address", tracking,
                    "--parallel", "1", "--max-trials", str(MAX_TRIALS_PER_WORKER), "--worker-id", worker_id,
                    "--reconnect-seconds", "30",
                ], cwd=ROOT, env=child_env(TEST_STEP_SECONDS="0.02", TEST_STEPS=str(STEPS)),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                workers[worker_id] = (ns, process, Output(process))
        for worker_id, (ns, process, _) in workers.items():
            assert identify(process.pid) == ns, f"worker {worker_id} (pid {process.pid}) is not in {ns}"
        for process, _ in services:
            assert identify(process.pid) == net.svc

        deadline = started + WORKER_TIMEOUT
        for process in (p for _, p, _ in workers.values()):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        timings["workers"] = time.monotonic() - started
        outputs = {worker_id: out.text() if p.poll() is not None else "".join(out.lines)
                   for worker_id, (_, p, out) in workers.items()}
        report = "\n".join(f"--- {worker_id} (exit {workers[worker_id][1].poll()}):\n{text}"
                           for worker_id, text in outputs.items())
        hung = [worker_id for worker_id, (_, p, _) in workers.items() if p.poll() is None]
        assert not hung, f"workers still running after {WORKER_TIMEOUT:g} s: {hung}\n{report}"
        assert all(p.returncode == 0 for _, p, _ in workers.values()), report

        # What the workers said: every trial completed once, by exactly one process.
        done_by: dict[int, str] = {}
        for worker_id, text in outputs.items():
            for number in map(int, re.findall(r"^trial (\d+): completed\b", text, re.MULTILINE)):
                assert number not in done_by, f"trial {number} completed by {done_by[number]} and {worker_id}"
                done_by[number] = worker_id
            assert re.search(r"stopped \((study done|max_trials)\)", text), f"{worker_id}:\n{text}"
        assert sorted(done_by) == list(range(TRIALS)), report

        # What the services recorded.
        began_report = time.monotonic()
        rows = run_python(net, net.svc, REPORT, suggestion, tracking, study)
        timings["report"] = time.monotonic() - began_report
        states = sorted({row["state"] for row in rows})
        assert [row["state"] for row in rows] == ["TRIAL_STATE_COMPLETED"] * TRIALS, (states, len(rows))
        numbers = [row["number"] for row in rows]
        assert len(set(numbers)) == len(numbers) and sorted(numbers) == list(range(TRIALS)), numbers
        hostname = socket.gethostname()  # the namespaces share the host's UTS namespace
        for row in rows:
            run = row["run"]
            assert row["run_id"] and run is not None, f"trial {row['number']}: no run {row['run_id']!r}"
            assert run["id"] == row["run_id"]
            assert (run["trial_id"], run["trial_number"], run["study"]) == (row["id"], row["number"], study), row
            assert "loss" in run["metrics"], row
            assert run["metrics"]["loss"] == pytest.approx(row["metrics"]["loss"]), row
            assert row["worker_id"] == done_by[row["number"]], row
            tags = run["tags"]
            assert tags["tuning.study"] == study and tags["tuning.trial_number"] == str(row["number"]), tags
            assert tags["tuning.worker"] == row["worker_id"] and tags["tuning.algorithm"] == "random", tags
            assert tags["tuning.host"] == hostname, tags
        namespaces_used = {workers[row["worker_id"]][0] for row in rows}
        assert namespaces_used == set(net.workers), {row["worker_id"] for row in rows}
        per_worker = {worker_id: sum(row["worker_id"] == worker_id for row in rows) for worker_id in workers}
        print(f"\nnamespaces {net.namespaces}; trials per worker {per_worker}; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    finally:
        for _, process, _ in workers.values():
            stop(process, 5)
        for process, _ in services:
            stop(process)
