"""Fixtures shared by every test: databases (SQLite, PostgreSQL), servers on port 0, clients.

A test that needs something this machine may lack (PostgreSQL, Node.js) calls
:func:`require`: it skips with the reason, or fails when TUNING_TEST_STRICT=1
(which `.ci/run` sets, so CI never silently skips them).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from suggestion_service.server import serve
from tests.s3_server import MotoServer
from trial_worker import SuggestionClient
from tuning_common.grpc_server import RunningServer, ServerOptions

if TYPE_CHECKING:
    from gateway.server import RunningGateway

ROOT = Path(__file__).resolve().parent.parent
STRICT = os.environ.get("TUNING_TEST_STRICT") == "1"
POSTGRES_URL = os.environ.get("TUNING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def require(condition: bool, reason: str) -> None:
    """Skip (or, in strict mode, fail) the calling test when ``condition`` is false."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required in strict mode (TUNING_TEST_STRICT=1): {reason}")
    pytest.skip(reason)


def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:  # any failure means "not here"
        return f"PostgreSQL is not reachable at {POSTGRES_URL}: {type(error).__name__}: {error}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    require(problem is None, problem or "")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server, dropped afterwards."""
    name = f"tuning_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_server).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """A real S3 API server (moto's), one for the session; tests keep apart by using buckets of their own."""
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def s3_artifacts(s3_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<new bucket>/suite``, with the standard AWS settings pointing at the S3 server in this process's
    environment (and so in that of the services it starts)."""
    for key, value in s3_server.environment(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{s3_server.new_bucket()}/suite"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'suggestion.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once per storage backend."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def server(sqlite_url: str) -> Iterator[RunningServer]:
    running = serve(sqlite_url, ServerOptions(port=0, grace_seconds=1), lease_check_seconds=0.2)
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[SuggestionClient]:
    with SuggestionClient(server.address, retries=2, backoff=0.05) as c:
        yield c


class ServerProcess:
    """A service (the suggestion service unless ``module`` says otherwise) in its own process, on a free port."""

    def __init__(self, database_url: str, *args: str, env: dict[str, str] | None = None,
                 module: str = "suggestion_service"):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", "--database-url", database_url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TUNING_LOG_LEVEL": "WARNING", **(env or {})},
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{rest}")
        self.address = line.rsplit(" ", 1)[1].strip()
        # Drain the pipe so a chatty server never blocks on a full one; keep what it said.
        self.lines: list[str] = []
        self._drain = threading.Thread(target=self.lines.extend, args=(self.proc.stdout,), daemon=True)
        self._drain.start()

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._drain.join(10)

    def output(self) -> str:
        """Everything the server printed after starting (complete once stopped)."""
        return "".join(self.lines)


class GatewayProcess:
    """A gateway (``python -m gateway``) in its own process on a free port, in front of ``tracking``
    (and ``suggestion``, default the same address: only the tracking routes are then usable)."""

    def __init__(self, tracking: str, suggestion: str | None = None, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "--port", "0", "--tracking-address", tracking,
                                      "--suggestion-address", suggestion or tracking, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "TUNING_LOG_LEVEL": "WARNING", **(env or {})})
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            self.proc.kill()
            raise RuntimeError(f"the gateway did not start: {line}{rest}")
        self.url = "http://" + line.rsplit(" ", 1)[1].strip()
        self._drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._drain.start()

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def memory_mb(pid: int, field: str) -> float:
    """A process's VmRSS (resident now) or VmHWM (peak resident) in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak(*pids: int) -> dict[int, float]:
    """Resets each process's VmHWM to its current RSS (proc(5), clear_refs), so a later VmHWM is the peak
    of what happened since; returns the RSS of each at that moment."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return {pid: memory_mb(pid, "VmRSS") for pid in pids}


@dataclass
class GatewaySuite:
    gateway: RunningGateway
    suggestion: ServerProcess
    tracking: ServerProcess


@contextlib.contextmanager
def gateway_suite(folder: Path, tracking_url: str | None = None, *, artifacts: str | None = None,
                  **options) -> Iterator[GatewaySuite]:
    """Both services as processes on SQLite files in ``folder`` (the tracking service on
    ``tracking_url`` and its artifacts in ``artifacts`` when given), and the gateway in front of them."""
    from gateway.server import GatewayOptions
    from gateway.server import serve as serve_gateway

    suggestion = ServerProcess(f"sqlite:///{folder / 's.db'}")
    tracking = None
    try:
        tracking = ServerProcess(tracking_url or f"sqlite:///{folder / 't.db'}", "--artifacts",
                                 artifacts or str(folder / "artifacts"), module="tracking_service")
        gateway = serve_gateway(GatewayOptions(suggestion_address=suggestion.address,
                                               tracking_address=tracking.address, **options))
        try:
            yield GatewaySuite(gateway, suggestion, tracking)
        finally:
            gateway.stop()
    finally:
        suggestion.stop()
        if tracking is not None:
            tracking.stop()


@pytest.fixture
def spawn_server() -> Iterator:
    started: list[ServerProcess] = []

    def spawn(database_url: str, *args: str, env: dict[str, str] | None = None,
              module: str = "suggestion_service") -> ServerProcess:
        started.append(ServerProcess(database_url, *args, env=env, module=module))
        return started[-1]

    yield spawn
    for process in started:
        process.stop()
