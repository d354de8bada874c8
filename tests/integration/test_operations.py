"""Operating the service: schema checks, generated code, shutdown, restarts."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from suggestion_service.persistence import MIGRATIONS
from tests.conftest import ROOT, GatewayProcess
from tracking_service.persistence import MIGRATIONS as TRACKING_MIGRATIONS
from trial_worker import Float, SuggestionClient
from tuning_common.database import Database
from tuning_common.errors import TuningError, Unavailable


def test_generated_code_is_fresh():
    result = subprocess.run([sys.executable, "-m", "tuning_common.codegen", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_freshness_check_finds_a_stale_generated_file(tmp_path: Path, monkeypatch):
    # The check above passes vacuously if the check itself stops checking.
    from tuning_common import codegen

    shutil.copytree(ROOT / "tuning", tmp_path / "tuning", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codegen, "ROOT", tmp_path)
    assert codegen.main(["--check"]) == 0
    stale = tmp_path / "tuning" / "proto_comments.py"
    stale.write_text(stale.read_text() + "# edited by hand\n")
    assert codegen.main(["--check"]) == 1


def test_a_database_at_an_unknown_schema_version_is_refused(sqlite_url: str, spawn_server):
    spawn_server(sqlite_url).stop()
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {MIGRATIONS.version_table} SET version_num = '9999'"))
    engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "suggestion_service", "--port", "0", "--database-url", sqlite_url],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "unknown schema revision 9999" in result.stderr


def test_sigterm_lets_in_flight_calls_finish_and_loses_nothing(sqlite_url: str, spawn_server):
    server = spawn_server(sqlite_url)
    setup = SuggestionClient(server.address)
    setup.create_study("drain", [Float("x", 0, 1)], objectives={"loss": "minimize"})
    told, errors, stop = [], [], threading.Event()

    def worker() -> None:
        with SuggestionClient(server.address, retries=0) as client:
            handle = client.get_study("drain")
            while not stop.is_set():
                try:
                    trial = handle.ask()
                    handle.tell(trial, trial.params["x"])
                    told.append(trial.id)
                except Unavailable:
                    return  # the server is going away: the expected way to end
                except TuningError as error:
                    errors.append(error)
                    return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(told) < 20:
        threading.Event().wait(0.01)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    stop.set()
    for thread in threads:
        thread.join()
    setup.close()
    assert errors == []
    restarted = spawn_server(sqlite_url)
    with SuggestionClient(restarted.address) as client:
        completed = {t.id for t in client.get_study("drain").trials() if t.metrics}
    assert set(told) <= completed


# tgkill(2), which Python's os module lacks: a signal to one thread of another process.
TGKILL = {"x86_64": 234, "aarch64": 131}


def _signal_a_thread_other_than_main(pid: int, signum: int) -> None:
    """What ``kill`` may do: the kernel hands a process's signal to any thread not blocking it."""
    def blocks(tid: int) -> bool:
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16)
        return bool(mask >> (signum - 1) & 1)

    tids = [tid for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")) if tid != pid and not blocks(tid)]
    assert tids, "the server has no other thread to deliver to"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL[platform.machine()], pid, tids[0], signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.skipif(platform.machine() not in TGKILL or not sys.platform.startswith("linux"),
                    reason="tgkill's system call number is known here for Linux on x86_64 and aarch64 only")
def test_every_server_stops_on_a_sigterm_delivered_to_a_thread_other_than_main(sqlite_url: str, spawn_server,
                                                                                tmp_path: Path):
    suggestion = spawn_server(sqlite_url)
    tracking = spawn_server(f"sqlite:///{tmp_path / 't.db'}", "--artifacts", str(tmp_path / "a"),
                            module="tracking_service")
    gateway = GatewayProcess(tracking.address, suggestion.address)
    for process in (gateway.proc, tracking.proc, suggestion.proc):
        _signal_a_thread_other_than_main(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.args


def test_an_older_schema_is_refused_then_upgraded_with_its_data(database_url: str, spawn_server):
    from alembic import command

    first = spawn_server(database_url)
    with SuggestionClient(first.address) as client:
        study = client.create_study("kept", [Float("x", 0, 1)], objectives={"loss": "minimize"}, algorithm="random",
                                    seed=3)
        trial = study.ask()
        assert trial.info.suggestion_metadata["algorithm"] == "random"
        study.tell(trial, 0.25)
    first.stop()
    db = Database.connect(database_url)
    db.run(lambda conn: command.downgrade(MIGRATIONS._config(conn), "0001"), write=True)

    refused = subprocess.run(
        [sys.executable, "-m", "suggestion_service", "--port", "0", "--database-url", database_url],
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 2 and "schema revision 0001" in refused.stderr and "--migrate" in refused.stderr
    upgraded = spawn_server(database_url, "--migrate")
    with SuggestionClient(upgraded.address) as client:
        [kept] = list(client.get_study("kept").trials())
    assert kept.id == trial.id and kept.metrics[0].value == 0.25
    assert db.run(MIGRATIONS.current, write=False) == MIGRATIONS.head()
    db.dispose()


def test_tracking_upgrade_backfills_search_heads(database_url: str, spawn_server, tmp_path):
    """0001 -> 0002 adds the indexed value heads of params and tags, filled in for existing rows."""
    from alembic import command

    from trial_worker.tracking import TrackingClient

    artifacts = str(tmp_path / "artifacts")
    first = spawn_server(database_url, "--artifacts", artifacts, module="tracking_service")
    with TrackingClient(first.address) as client:
        run = client.create_run(0)
        client.log_batch(run.id, params={"max_depth": "6", "long": "x" * 500}, tags={"team": "ml"})
    first.stop()
    db = Database.connect(database_url)
    db.run(lambda conn: command.downgrade(TRACKING_MIGRATIONS._config(conn), "0001"), write=True)

    upgraded = spawn_server(database_url, "--artifacts", artifacts, "--migrate", module="tracking_service")
    with TrackingClient(upgraded.address) as client:
        for query in ("params.max_depth = '6'", f"params.long = '{'x' * 500}'", "tags.team IN ('ml', 'data')"):
            assert [r.id for r in client.search_runs([0], query)] == [run.id], query
        assert list(client.search_runs([0], "params.long = 'x'")) == []
    assert db.run(TRACKING_MIGRATIONS.current, write=False) == TRACKING_MIGRATIONS.head()
    db.dispose()


def test_the_upgrade_moves_pruned_trials_values_to_their_last_report(database_url: str, spawn_server):
    # Before 0005 a pruned trial's metrics repeated its last report, and a prune told with values
    # and no report kept them only there: after the upgrade neither reads as a final value, and
    # the second becomes a report at step 0.
    from alembic import command

    first = spawn_server(database_url)
    with SuggestionClient(first.address) as client:
        study = client.create_study("pruned", [Float("x", 0, 1)], objectives={"loss": "minimize"}, seed=1)
        reported, unreported = study.ask(), study.ask()
        reported.report(3, 0.8)
        reported.prune()
        unreported.prune()
    first.stop()
    db = Database.connect(database_url)
    db.run(lambda conn: command.downgrade(MIGRATIONS._config(conn), "0004"), write=True)
    trials = sa.table("trials", sa.column("id"), sa.column("metrics", sa.JSON))
    db.run(lambda conn: conn.execute(trials.update().where(trials.c.id == unreported.id)
                                     .values(metrics=[["loss", 0.7]])), write=True)
    assert db.run(lambda conn: conn.execute(sa.select(trials.c.metrics).where(trials.c.id == reported.id)).scalar(),
                  write=False) == [["loss", 0.8]]

    upgraded = spawn_server(database_url, "--migrate")
    with SuggestionClient(upgraded.address) as client:
        after = {t.id: t for t in client.get_study("pruned").trials()}
    assert [list(t.metrics) for t in after.values()] == [[], []]
    assert (after[reported.id].last_measurement.step, after[reported.id].last_measurement.metrics[0].value) == (3, 0.8)
    assert (after[unreported.id].last_measurement.step, after[unreported.id].last_measurement.metrics[0].value) == (0, 0.7)
    db.dispose()
