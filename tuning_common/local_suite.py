"""The suite's services as child processes (on free ports unless given): what `tuning up`
starts, and what the Tuner API and the demo start when no running suite is configured.

    with LocalSuite(home=".tuning") as suite:
        print(suite.suggestion_address, suite.tracking_address)

Embedded defaults: SQLite files and an artifact folder under ``home``; each service's log
goes to ``home/logs/<service>.log``. Leaving the block stops the services (SIGTERM, then
SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tuning_common.errors import Unavailable

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


def start_service(name: str, module: str, args: Sequence[str], log_path: Path, *, host: str = "127.0.0.1",
                  port: int = 0, env: dict[str, str] | None = None) -> ServiceProcess:
    """Starts ``python -m module --host HOST --port PORT ...`` and waits for the line that says where it listens."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--host", host, "--port", str(port), *args], stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "TUNING_LOG_LEVEL": os.environ.get("TUNING_LOG_LEVEL", "WARNING"), **(env or {})},
        )
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    line = first_line[0] if first_line else ""
    if "listening on" not in line:
        process.kill()
        process.wait()
        raise Unavailable(f"the {name} did not start: see {log_path}")
    # Nothing more is read from stdout; it gets no more than a line or two.
    return ServiceProcess(name, process, line.rsplit(" ", 1)[1].strip())


class LocalSuite:
    """The suggestion and tracking services on this machine (SQLite, local artifacts), and the
    gateway in front of them when a ``gateway_port`` is given."""

    def __init__(self, home: str | os.PathLike, *, host: str = "127.0.0.1", suggestion_port: int = 0,
                 tracking_port: int = 0, gateway_port: int | None = None, lease_check_seconds: float = 1.0):
        self.home = Path(home)
        self.host = host
        self.ports = (suggestion_port, tracking_port)
        # None: no gateway (the Tuner and the demo talk gRPC only).
        self.gateway_port = gateway_port
        self.lease_check_seconds = lease_check_seconds
        self.services: list[ServiceProcess] = []

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
        self.home.mkdir(parents=True, exist_ok=True)
        logs = self.home / "logs"
        specs = [
            ("suggestion service", "suggestion_service",
             ["--database-url", f"sqlite:///{self.home / 'suggestion.db'}", "--migrate",
              "--lease-check-seconds", str(self.lease_check_seconds)], logs / "suggestion.log"),
            ("tracking service", "tracking_service",
             ["--database-url", f"sqlite:///{self.home / 'tracking.db'}", "--migrate",
              "--artifacts", str(self.home / "artifacts")], logs / "tracking.log"),
        ]
        # Both start at once: most of a start is importing.
        results: list[ServiceProcess | BaseException | None] = [None] * len(specs)

        def launch(index: int) -> None:
            try:
                results[index] = start_service(*specs[index], host=self.host, port=self.ports[index])
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
                    logs / "gateway.log", host=self.host, port=self.gateway_port))
            except BaseException as error:  # stop what started, then report
                failure = error
        if failure is not None:
            self.stop()
            raise failure
        return self

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def __enter__(self) -> LocalSuite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
