"""The suite's services as child processes (on free ports unless given): what `tuning up`
starts, and what the Tuner API and the demo start when no running suite is configured.

    with LocalSuite(home=".tuning") as suite:
        print(suite.suggestion_address, suite.tracking_address)

Embedded defaults: SQLite files and an artifact folder under ``home`` (``database_url`` puts
both services on one database, PostgreSQL for instance; their tables do not overlap), and
``artifacts`` moves the artifact store. Each service's log goes to
``home/logs/<service>.log``. Leaving the block stops the services (SIGTERM, then SIGKILL after
a grace period).

``tuning up`` records what it started in ``home/suite.json`` (:func:`write_state`), so that
``tuning status`` and ``tuning down`` find the services again, also when they were started in
the background (``tuning up --detach``: each service in a session of its own, outliving the
command), and so that client commands (``tuning study ...``, ``tuning worker``) and the Tuner
talk to them whatever ports they got (:func:`find_address`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tuning_common.errors import FailedPrecondition, Unavailable
from tuning_common.settings import data_dir

START_TIMEOUT = 60.0


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    address: str

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            _RUNNING.discard(self.process)


# Services started here and not stopped yet: what exit_now() stops.
_RUNNING: set[subprocess.Popen] = set()


def exit_now(code: int) -> None:
    """Leaves at once (a second Ctrl-C): SIGTERM to the services started here, which stop on
    their own, then ``os._exit(code)``."""
    for process in list(_RUNNING):
        if process.poll() is None:
            process.terminate()
    sys.stderr.flush()
    os._exit(code)


def start_service(name: str, module: str, args: Sequence[str], log_path: Path, *, host: str = "127.0.0.1",
                  port: int = 0, env: dict[str, str] | None = None, detach: bool = False) -> ServiceProcess:
    """Starts ``python -m module --host HOST --port PORT ...`` and waits for the line that says where it listens.

    ``detach``: in a session of its own with its output in the log only, so that it outlives
    this process (and a closed terminal). Otherwise in a process group of its own: a Ctrl-C
    in the terminal reaches this process alone, which stops its services in order (SIGTERM)
    rather than every service taking the SIGINT and writing its own shutdown to the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--host", host, "--port", str(port), *args],
            stdout=log_file if detach else subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, text=True,
            start_new_session=detach, process_group=None if detach else 0,
            env={**os.environ, "TUNING_LOG_LEVEL": os.environ.get("TUNING_LOG_LEVEL", "WARNING"), **(env or {})},
        )
    if not detach:
        _RUNNING.add(process)
    line = _listening_line(process, log_path, start) if detach else _first_line(process)
    if "listening on" not in line:
        process.kill()
        process.wait()
        _RUNNING.discard(process)
        raise Unavailable(f"the {name} did not start: see {log_path}")
    # Nothing more is read from stdout; it gets no more than a line or two.
    return ServiceProcess(name, process, line.rsplit(" ", 1)[1].strip())


def _first_line(process: subprocess.Popen) -> str:
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    return first_line[0] if first_line else ""


def _listening_line(process: subprocess.Popen, log_path: Path, start: int) -> str:
    """The "<name> listening on <address>" line the process writes to its log (from offset ``start``)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        with open(log_path, "rb") as log_file:
            log_file.seek(start)
            for line in log_file.read().decode("utf-8", "replace").splitlines():
                if " listening on " in line:
                    return line
        time.sleep(0.05)
    return ""


# What the services import that a client install (`pip install tuning-suite`, no `server` extra) lacks.
SERVER_MODULES = ("sqlalchemy", "alembic", "scipy", "starlette", "uvicorn", "jinja2")


def missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


class LocalSuite:
    """The suggestion and tracking services on this machine (SQLite, local artifacts), and the
    gateway in front of them when a ``gateway_port`` is given."""

    def __init__(self, home: str | os.PathLike, *, host: str = "127.0.0.1", suggestion_port: int = 0,
                 tracking_port: int = 0, gateway_port: int | None = None, lease_check_seconds: float = 1.0,
                 database_url: str | None = None, artifacts: str | None = None, detach: bool = False):
        self.home = Path(home)
        self.host = host
        self.ports = (suggestion_port, tracking_port)
        # None: no gateway (the Tuner and the demo talk gRPC only).
        self.gateway_port = gateway_port
        self.lease_check_seconds = lease_check_seconds
        self.databases = (database_url or f"sqlite:///{self.home / 'suggestion.db'}",
                          database_url or f"sqlite:///{self.home / 'tracking.db'}")
        self.artifacts = artifacts or str(self.home / "artifacts")
        self.detach = detach
        self.services: list[ServiceProcess] = []
        self._previous_sighup = None

    @property
    def gateway_url(self) -> str | None:
        return f"http://{self.services[2].address}" if len(self.services) > 2 else None

    @property
    def suggestion_address(self) -> str:
        return self.services[0].address

    @property
    def tracking_address(self) -> str:
        return self.services[1].address

    def start(self) -> LocalSuite:
        absent = missing_server_modules()
        if absent:
            raise FailedPrecondition(
                f"a local suite runs the services, which this install lacks (no {', '.join(absent)}): "
                "pip install 'tuning-suite[server]', or give the addresses of a running suite",
                reason="SERVER_NOT_INSTALLED")
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.detach and threading.current_thread() is threading.main_thread():
            # The services have a process group of their own, so a closed terminal's SIGHUP reaches
            # this process only: take them along rather than leave them running.
            self._previous_sighup = signal.signal(signal.SIGHUP, lambda *_: exit_now(128 + signal.SIGHUP))
        logs = self.home / "logs"
        specs = [
            ("suggestion service", "suggestion_service",
             ["--database-url", self.databases[0], "--migrate",
              "--lease-check-seconds", str(self.lease_check_seconds)], logs / "suggestion.log"),
            ("tracking service", "tracking_service",
             ["--database-url", self.databases[1], "--migrate", "--artifacts", self.artifacts], logs / "tracking.log"),
        ]
        # Both start at once: most of a start is importing.
        results: list[ServiceProcess | BaseException | None] = [None] * len(specs)

        def launch(index: int) -> None:
            try:
                results[index] = start_service(*specs[index], host=self.host, port=self.ports[index],
                                               detach=self.detach)
            except BaseException as error:  # handed to the caller below
                results[index] = error

        threads = [threading.Thread(target=launch, args=(i,)) for i in range(len(specs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.services = [r for r in results if isinstance(r, ServiceProcess)]
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is None and self.gateway_port is not None:
            try:
                self.services.append(start_service(
                    "gateway", "gateway", ["--suggestion-address", self.suggestion_address,
                                           "--tracking-address", self.tracking_address],
                    logs / "gateway.log", host=self.host, port=self.gateway_port, detach=self.detach))
            except BaseException as error:  # stop what started, then report
                failure = error
        if failure is not None:
            self.stop()
            raise failure
        return self

    def stop(self) -> None:
        # SIGTERM to all first: they shut down side by side.
        for service in self.services:
            if service.process.poll() is None:
                service.process.terminate()
        for service in reversed(self.services):
            service.stop()
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None

    def __enter__(self) -> LocalSuite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- what `tuning up` started: home/suite.json ------------------------------------------------


def state_path(home: str | os.PathLike) -> Path:
    return Path(home) / "suite.json"


def write_state(suite: LocalSuite, owner: int | None) -> None:
    """Records the services (name, pid, address) and ``owner``, the foreground `tuning up`
    that stops them on SIGTERM (None when they run detached)."""
    state = {"owner": owner, "services": [
        {"name": service.name, "pid": service.process.pid, "address": service.address}
        for service in suite.services]}
    state_path(suite.home).write_text(json.dumps(state, indent=2) + "\n")


def read_state(home: str | os.PathLike) -> dict | None:
    try:
        return json.loads(state_path(home).read_text())
    except FileNotFoundError:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_recorded(home: str | os.PathLike, timeout: float = 20.0) -> list[str]:
    """Stops what home/suite.json records (SIGTERM, SIGKILL after ``timeout``); the names stopped."""
    state = read_state(home) or {"owner": None, "services": []}
    pids = [state["owner"]] if state.get("owner") else [s["pid"] for s in reversed(state["services"])]
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    recorded = [s["pid"] for s in state["services"]] + pids
    while any(alive(pid) for pid in recorded) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in recorded:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    state_path(home).unlink(missing_ok=True)
    return [s["name"] for s in state["services"]]


# --- which services a client talks to -----------------------------------------------------

# service -> (its name in suite.json, its address variable, the address `tuning up` defaults to)
SERVICES = {
    "suggestion": ("suggestion service", "TUNING_SUGGESTION_ADDRESS", "127.0.0.1:50051"),
    "tracking": ("tracking service", "TUNING_TRACKING_ADDRESS", "127.0.0.1:50052"),
}


@dataclass(frozen=True)
class Found:
    """A service's address and where it came from, in words (``--address``, the suite in ...)."""

    service: str
    address: str
    source: str
    # True when the address came from a running suite's suite.json.
    recorded: bool = False
    # True when nothing named the service: the address `tuning up` uses by default.
    fallback: bool = False

    def describe(self) -> str:
        return f"the {SERVICES[self.service][0]} at {self.address} ({self.source})"


def find_address(service: str, given: str = "", *, flag: str = "", home: str | os.PathLike | None = None) -> Found:
    """The address of ``service`` ("suggestion" or "tracking") a client should use.

    ``given`` (the value of the option ``flag``, whose default is ``$TUNING_*_ADDRESS``) wins; then the running
    suite recorded in ``$TUNING_HOME/suite.json``, whatever ports it got; then the address
    `tuning up` uses by default."""
    name, variable, default = SERVICES[service]
    if given:
        return Found(service, given, f"${variable}" if os.environ.get(variable) == given else (flag or "given"))
    home = Path(home if home is not None else data_dir()).resolve()
    state = read_state(home)
    if state is None:
        return Found(service, default, f"the default: no suite recorded in {state_path(home)}", fallback=True)
    for recorded in state["services"]:
        if recorded["name"] == name and alive(recorded["pid"]):
            return Found(service, recorded["address"], f"the suite `tuning up` started in {home}", recorded=True)
    return Found(service, default, f"the default: the suite recorded in {state_path(home)} is not running",
                 fallback=True)


def health_problem(address: str, timeout: float = 3.0) -> str:
    """Why the gRPC service at ``address`` is not serving ("" when it is), by its health check."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tuning_common import tls

    with tls.channel(address) as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status
        except grpc.RpcError as error:
            return f"not serving: {error.code().name}"
    return "" if status == health_pb2.HealthCheckResponse.SERVING else health_pb2.HealthCheckResponse.ServingStatus.Name(
        status).lower().replace("_", " ")
