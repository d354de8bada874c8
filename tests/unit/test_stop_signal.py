"""The services' wait for SIGTERM/SIGINT notices a signal the kernel delivered to another thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

WAIT = """
import signal, threading, time
from tuning_common.signals import wait_for_stop_signal

def deliver_to_this_thread():
    time.sleep(0.3)  # the main thread is waiting by now
    signal.pthread_kill(threading.get_ident(), signal.{name})

threading.Thread(target=deliver_to_this_thread, daemon=True).start()
print(wait_for_stop_signal().name, flush=True)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_delivered_to_another_thread_ends_the_wait(name: str):
    # Python runs the handler on the main thread only; a main thread blocked in an untimed
    # Event.wait() never got to run it, and the process ignored the signal.
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(WAIT.format(name=name))], cwd=ROOT,
                            capture_output=True, text=True, timeout=20)
    assert (result.returncode, result.stdout.strip()) == (0, name), result.stderr
