"""Command-line flags that default to ``TUNING_*`` environment variables.

Precedence: flag, then environment variable, then built-in default. Every option's help
text names its variable, so ``--help`` documents the whole configuration surface.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: str,
    default: Any,
    help: str,
    type: Callable[[str], Any] = str,
) -> None:
    """Adds ``flag`` whose default comes from ``env`` when that variable is set."""
    if type is bool:
        value = default
        if env in os.environ:
            value = _env_value(env, _flag)
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value,
                            help=f"{help} [${env}; default: {default}]")
        return
    value = _env_value(env, type) if env in os.environ else default
    parser.add_argument(flag, type=type, default=value, help=f"{help} [${env}; default: {default}]")


def _env_value(env: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(os.environ[env])
    except ValueError as error:
        raise SystemExit(f"invalid ${env}: {error}") from None


def data_dir() -> str:
    """Where embedded defaults keep their files (SQLite databases, artifacts)."""
    return os.environ.get("TUNING_HOME", ".tuning")


def suggestion_address() -> str:
    return os.environ.get("TUNING_SUGGESTION_ADDRESS", "127.0.0.1:50051")
