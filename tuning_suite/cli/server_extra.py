"""The commands that run services (`up`, `serve`, `demo`, `db`, `backup`, `restore`) need the
`server` extra; a client install (`pip install tuning-suite`) has the rest. Without it those
commands say so on one line instead of failing on an import."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from trial_worker.local_suite import missing_server_modules


def installed() -> bool:
    return not missing_server_modules()


def needs_server(what: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Makes a command refuse to run (exit 2) when the server extra is not installed."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(run)
        def checked(args: argparse.Namespace) -> int:
            absent = missing_server_modules()
            if absent:
                print(f"error: {what} needs the services, which this install lacks (no {', '.join(absent)}): "
                      "pip install 'tuning-suite[server]'", file=sys.stderr)
                return 2
            return run(args)

        return checked

    return wrap
