"""The `tuning` command against a real server process."""

from __future__ import annotations

import os
import subprocess
import sys

from suggestion_service.persistence import MIGRATIONS
from tests.conftest import ROOT
from tracking_service.persistence import MIGRATIONS as TRACKING_MIGRATIONS


def tuning(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuning_common.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **(env or {})})


def test_study_commands(sqlite_url: str, spawn_server):
    address = spawn_server(sqlite_url).address
    created = tuning("study", "create", "examples/study.yaml", "--address", address)
    assert created.returncode == 0, created.stderr
    assert "created xgb-wine" in created.stdout
    assert "exists, same spec" in tuning("study", "create", "examples/study.yaml", "--address", address).stdout
    env = {"TUNING_SUGGESTION_ADDRESS": address}
    listing = tuning("study", "list", env=env)
    assert "xgb-wine" in listing.stdout and "quasi_random" in listing.stdout
    shown = tuning("study", "show", "xgb-wine", env=env)
    assert "val_f1 (maximize)" in shown.stdout and "0 trials" in shown.stdout
    assert tuning("study", "stop", "xgb-wine", env=env).returncode == 0
    assert "STOPPED" in tuning("study", "list", env=env).stdout
    refused = tuning("study", "delete", "xgb-wine", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert tuning("study", "delete", "xgb-wine", "--yes", env=env).returncode == 0
    missing = tuning("study", "show", "xgb-wine", env=env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_db_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert tuning("db", "check", "--database-url", url).returncode == 1
    upgraded = tuning("db", "upgrade", "--database-url", url)
    assert upgraded.returncode == 0 and MIGRATIONS.head() in upgraded.stdout
    assert tuning("db", "check", "--database-url", url).returncode == 0
    # Each service has its own schema and version table, even in one database file.
    assert tuning("db", "check", "--service", "tracking", "--database-url", url).returncode == 1
    upgraded = tuning("db", "upgrade", "--service", "tracking", "--database-url", url)
    assert upgraded.returncode == 0 and TRACKING_MIGRATIONS.head() in upgraded.stdout
    assert tuning("db", "check", "--service", "tracking", "--database-url", url).returncode == 0


def test_demo_runs_end_to_end(tmp_path):
    result = tuning("demo", "--workers", "3", "--trials", "12", env={"TUNING_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 completed, 1 stale (retried), state COMPLETED" in result.stdout
    assert "best trial #" in result.stdout
