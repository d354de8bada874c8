"""Waiting in the main thread for SIGTERM or SIGINT, in a process that has other threads.

Python runs a signal's handler on the main thread, but the kernel delivers the signal to any
thread that does not block it: often one of grpc's or uvicorn's. The main thread, blocked in a
lock with no timeout (``Event.wait()``), is then never woken to run the handler, and the
process ignores the signal. A timed wait wakes it to run pending handlers.
"""

from __future__ import annotations

import signal
import threading

# How late a signal may be noticed; waking this often costs nothing measurable.
_POLL_S = 0.2


def wait_for_stop_signal() -> signal.Signals:
    """Blocks until SIGTERM or SIGINT arrives (call from the main thread); returns the signal."""
    received: list[signal.Signals] = []
    requested = threading.Event()

    def handler(signum: int, _frame) -> None:
        received.append(signal.Signals(signum))
        requested.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    while not requested.wait(_POLL_S):
        pass
    return received[0]
