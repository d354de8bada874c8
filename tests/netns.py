"""Network namespaces joined by veth pairs, for tests that need several "hosts" on one machine.

    with Star(workers=2) as net:          # namespaces tun-<hex>-svc, tun-<hex>-w1, tun-<hex>-w2
        server = net.spawn(net.svc, [sys.executable, "-m", "...", "--host", net.service_address])
        worker = net.spawn(net.workers[0], [...])

Topology (a star around the services' namespace; no bridge, so no kernel module beyond veth)::

        w1: eth0 10.231.1.2/24 ──veth── v1 10.231.1.1/24 ┐
        w2: eth0 10.231.2.2/24 ──veth── v2 10.231.2.1/24 ┤ svc, which also holds the
        ...                                                ┘ service address 10.231.0.1/32 on lo

Each worker namespace routes only 10.231.0.1 through its veth, so workers reach the services
and nothing else: not the host, not each other (the svc namespace does not forward). The veth
pairs are created inside the namespaces (``ip -n svc link add ... netns w<k>``), so the host's
own interfaces, addresses and routes are never touched. The 10.231.0.0/16 range is private to
these namespaces; nothing routes it to or from the host.

Everything needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the ``ip`` command from iproute2;
:func:`netns_available` says whether this machine has them. Closing a :class:`Star` kills every
process still running in its namespaces and deletes them, whatever happened before.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

SUBNET = "10.231"
SERVICE_ADDRESS = f"{SUBNET}.0.1"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _prefix() -> str:
    return f"tun-{secrets.token_hex(4)}-"


@functools.lru_cache(maxsize=1)
def netns_available() -> str | None:
    """None when network namespaces and veth pairs can be created here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"creating network namespaces needs root (running as uid {os.geteuid()})"
    a, b = f"{_prefix()}probe-a", f"{_prefix()}probe-b"
    created: list[str] = []
    try:
        for name in (a, b):
            _ip("netns", "add", name)
            created.append(name)
        _ip("-n", a, "link", "add", "p0", "type", "veth", "peer", "name", "p1", "netns", b)
        _ip("-n", a, "link", "set", "lo", "up")
        return None
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        return f"cannot create network namespaces with veth pairs here: {error}"
    finally:
        for name in created:
            _ip("netns", "del", name, check=False)


def run_in(ns: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Starts ``argv`` inside network namespace ``ns`` (``ip netns exec`` execs it: the pid is argv's)."""
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **popen_kwargs)


def identify(pid: int) -> str:
    """The name of the namespace process ``pid`` is in ("" for an unnamed one, such as the host's)."""
    return _ip("netns", "identify", str(pid)).stdout.strip()


class Star:
    """``workers`` namespaces, each joined to one services' namespace by its own veth pair."""

    def __init__(self, workers: int = 2):
        if not 1 <= workers <= 250:
            raise ValueError(f"workers must be 1..250, got {workers}")
        self.prefix = _prefix()
        self.svc = f"{self.prefix}svc"
        self.workers = [f"{self.prefix}w{k}" for k in range(1, workers + 1)]
        self.service_address = SERVICE_ADDRESS
        self.processes: list[subprocess.Popen] = []
        self._created: list[str] = []

    @property
    def namespaces(self) -> list[str]:
        return [self.svc, *self.workers]

    def worker_address(self, index: int) -> str:
        """The address of ``self.workers[index]``."""
        return f"{SUBNET}.{index + 1}.2"

    # --- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> Star:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for name in self.namespaces:
            _ip("netns", "add", name)
            self._created.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", self.svc, "addr", "add", f"{SERVICE_ADDRESS}/32", "dev", "lo")
        for k, worker in enumerate(self.workers, start=1):
            hub, leaf = f"v{k}", "eth0"
            _ip("-n", self.svc, "link", "add", hub, "type", "veth", "peer", "name", leaf, "netns", worker)
            _ip("-n", self.svc, "addr", "add", f"{SUBNET}.{k}.1/24", "dev", hub)
            _ip("-n", worker, "addr", "add", f"{SUBNET}.{k}.2/24", "dev", leaf)
            _ip("-n", self.svc, "link", "set", hub, "up")
            _ip("-n", worker, "link", "set", leaf, "up")
            _ip("-n", worker, "route", "add", f"{SERVICE_ADDRESS}/32", "via", f"{SUBNET}.{k}.1", "dev", leaf)

    def set_link(self, index: int, up: bool) -> None:
        """Takes the link of ``self.workers[index]`` down or brings it back (the services' end of
        its veth pair): a cable pulled out and plugged back in, as the host sees it."""
        _ip("-n", self.svc, "link", "set", f"v{index + 1}", "up" if up else "down")

    def spawn(self, ns: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
        """:func:`run_in`, in a session of its own; :meth:`close` kills it if it is still running."""
        if ns not in self.namespaces:
            raise ValueError(f"{ns} is not one of this star's namespaces")
        popen_kwargs.setdefault("start_new_session", True)
        process = run_in(ns, argv, **popen_kwargs)
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Kills what runs in the namespaces (ours, by pid), then deletes them. Never raises."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    process.kill()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for name in self._created:
            # Anything left in a namespace we made was started there by us (a grandchild, say).
            for _ in range(3):
                pids = [int(p) for p in _ip("netns", "pids", name, check=False).stdout.split() if p.isdigit()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            _ip("netns", "del", name, check=False)
        self._created.clear()


@contextlib.contextmanager
def required_star(workers: int) -> Iterator[Star]:
    """A :class:`Star` for a test, which skips (fails under TUNING_TEST_STRICT) where namespaces cannot be made."""
    from tests.conftest import require

    problem = netns_available()
    require(problem is None, problem or "")
    with Star(workers=workers) as net:
        yield net
