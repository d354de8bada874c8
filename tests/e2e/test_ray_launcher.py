"""`tuning worker --ray-address ... --num-workers N`: workers as tasks on a real Ray cluster.

The cluster is started here with `ray start --head` in its own process group, temp dir and
ports, and stopped by killing that process group (`ray stop` would stop every Ray cluster on
the machine, not just this one).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, require
from tests.e2e.test_worker import Suite, assert_every_completed_trial_has_its_run, finish, make_study, trials_of
from tuning.suggestion.v1 import study_pb2 as pb

RAY_START_TIMEOUT = 90


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_group(pgid: int, timeout: float = 3) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)  # gcs_server and raylet may linger after SIGTERM
    except ProcessLookupError:
        pass


@pytest.fixture
def ray_cluster() -> Iterator[RayCluster]:
    require(importlib.util.find_spec("ray") is not None, "ray is not installed: pip install -e '.[ray]'")
    ray_cli = Path(sys.executable).with_name("ray")
    require(ray_cli.exists(), f"no ray command next to {sys.executable}")
    # A short path: Ray's unix sockets live under it (108-byte limit).
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = free_port()
    # Token authentication with a token of our own, in the environment: nothing is written to ~/.ray.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    command = [str(ray_cli), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
               "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp_dir,
               "--object-store-memory", str(100 * 1024 * 1024),
               "--ray-client-server-port", str(free_port()), "--dashboard-port", str(free_port()),
               "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())]
    # The Ray workers' environment is the cluster's: a trial takes 5 x 0.1 s, so that both tasks get some.
    cluster_env = {**env, "TEST_STEP_SECONDS": "0.1"}
    # Its own session: the head's daemons (gcs_server, raylet, the workers) stay in this process group.
    starter = subprocess.Popen(command, env=cluster_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    pgid = starter.pid
    try:
        output, _ = starter.communicate(timeout=RAY_START_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(pgid, 0)
        output, _ = starter.communicate()
        raise AssertionError(f"ray start did not finish in {RAY_START_TIMEOUT} s:\n{output}") from None
    try:
        assert starter.returncode == 0, f"ray start failed:\n{output}"
        yield RayCluster(f"127.0.0.1:{port}", env)
    finally:
        _kill_group(pgid)
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def test_workers_run_as_ray_tasks_until_the_study_is_done(tmp_path: Path, spawn_server, ray_cluster: RayCluster):
    suggestion = spawn_server(f"sqlite:///{tmp_path / 'suggestion.db'}", "--lease-check-seconds", "0.3")
    tracking = spawn_server(f"sqlite:///{tmp_path / 'tracking.db'}", "--artifacts", str(tmp_path / "artifacts"),
                            module="tracking_service")
    suite = Suite(suggestion.address, tracking.address, [suggestion, tracking], spawn_server, "", "",
                  tmp_path / "artifacts")
    make_study(suite, "onray", 12)
    started = time.monotonic()
    # --ray-working-dir uploads the repository, so that tests.e2e.worker_functions imports on the Ray workers.
    driver = subprocess.Popen(
        [sys.executable, "-m", "trial_worker", "--study", "onray", "--train", "tests.e2e.worker_functions:quadratic",
         "--suggestion-address", suite.suggestion, "--tracking-address", suite.tracking,
         "--ray-address", ray_cluster.address, "--num-workers", "2", "--ray-working-dir", "--worker-id", "rt"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**ray_cluster.env, "TUNING_LOG_LEVEL": "WARNING"},
    )
    code, output = finish(driver, timeout=90)
    assert code == 0, output
    assert "ray workers rt-ray* stopped (study done): 12 completed, 0 pruned, 0 failed, 0 lost" in output, output
    assert output.count("stopped (study done)") == 3, output  # one line per task, then the totals
    trials = trials_of(suite, "onray")
    assert [t.state for t in trials] == [pb.TRIAL_STATE_COMPLETED] * 12
    assert_every_completed_trial_has_its_run(suite, trials)
    workers = {t.worker_id for t in trials}
    assert workers <= {"rt-ray0", "rt-ray1"}, workers
    assert len(workers) == 2, f"one Ray task ran every trial: {workers}\n{output}"
    print(f"{len(trials)} trials on Ray in {time.monotonic() - started:.1f} s")
