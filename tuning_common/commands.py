"""How every command-line entry point ends: the user's errors on one line, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tuning_common.errors import TuningError


def run_command(command: Callable[[], int]) -> int:
    """Runs a command with the user's errors on one line of stderr, never a traceback: a
    service's refusal (1), a closed output pipe (`tuning study list | head`: 1, silently) or
    Ctrl-C (130)."""
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
        return code
    except TuningError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Whatever is still buffered would fail again as the interpreter exits.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as interrupt:
        if not getattr(interrupt, "announced", False):  # the Tuner has said what it did
            print("interrupted", file=sys.stderr)
        return 130
