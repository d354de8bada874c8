"""`tuning backup` and `tuning restore` on SQLite and on PostgreSQL: a backup taken while the
services run, restored into fresh databases and a new artifact folder, brings back every
study, trial, measurement, experiment, run, param, tag, metric point, artifact and registry
entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.protobuf.json_format import MessageToDict

from tests.conftest import ROOT
from trial_worker import Categorical, Float, SuggestionClient
from trial_worker.local_suite import LocalSuite
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import suggestion_service_pb2 as api


def tuning(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuning_suite", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **env})


@pytest.fixture(params=["sqlite", "postgres"])
def places(request, tmp_path: Path) -> Iterator[dict]:
    """Where the suite runs and where it is restored: two homes (and two PostgreSQL databases)."""
    if request.param == "sqlite":
        yield {"source": {}, "target": {}}
        return
    server = request.getfixturevalue("postgres_server")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    names = [f"tuning_backup_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    urls = [sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False) for name in names]
    try:
        # Both services on one database, as `tuning up --database` runs them.
        yield {"source": {"database_url": urls[0]}, "target": {"database_url": urls[1]}}
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill(suite: LocalSuite, tmp_path: Path) -> None:
    with SuggestionClient(suite.suggestion_address) as client:
        study = client.create_study("kept", [Float("lr", 1e-4, 1e-1, log=True), Categorical("kind", ["a", "b"])],
                                    objectives={"loss": "minimize"}, algorithm="tpe", max_trials=6, seed=3)
        for number in range(5):
            trial = study.ask()
            for step in range(3):
                trial.report(step, {"loss": 1.0 / (step + 1) + number})
            if number == 3:
                study.fail(trial, "diverged")
            else:
                study.tell(trial, {"loss": 0.1 * number})
        study.ask()  # one left running: its lease is part of the state too
    notes = tmp_path / "notes.txt"
    notes.write_text("what this run learned\n")
    with TrackingClient(suite.tracking_address) as client:
        experiment = client.get_or_create_experiment("kept-experiment")
        for index in range(2):
            run = client.create_run(experiment.id, name=f"run-{index}", tags={"team": "ml"})
            client.log_batch(run.id, params={"depth": str(index + 3)})
            for step in range(4):
                client.log_metric(run.id, "val_loss", 1.0 / (step + 1 + index), step=step)
            client.upload_file(run.id, notes, "reports")
            client.update_run(run.id, status="FINISHED")
        client.create_registered_model("kept-model", description="the one we ship")
        version = client.create_model_version("kept-model", f"runs:/{run.id}/reports", run_id=run.id)
        client.set_registered_model_alias("kept-model", "champion", version.version)
        client.transition_model_version_stage("kept-model", version.version, "Production")


def snapshot(suite: LocalSuite) -> dict:
    """Everything both services return about what is stored, as plain data."""
    as_dict = lambda message: MessageToDict(message, preserving_proto_field_name=True)  # noqa: E731
    state: dict = {}
    with SuggestionClient(suite.suggestion_address) as client:
        state["studies"] = [as_dict(s) for s in client.list_studies()]
        trials = list(client.get_study("kept").trials())
        state["trials"] = [as_dict(t) for t in trials]
        state["measurements"] = [as_dict(client.call("ListMeasurements", api.ListMeasurementsRequest(trial_id=t.id)))
                                 for t in trials]
    with TrackingClient(suite.tracking_address) as client:
        experiments = list(client.search_experiments())
        state["experiments"] = [as_dict(e) for e in experiments]
        runs = list(client.search_runs([e.id for e in experiments]))
        state["runs"] = [as_dict(r) for r in runs]
        state["history"] = {r.id: [as_dict(m) for m in client.get_metric_history(r.id, "val_loss")] for r in runs}
        state["artifacts"] = {}
        for run in runs:
            files = client.list_artifacts(run.id, "reports")
            folder = client.download(run.id, "reports", suite.home / "downloads" / run.id)
            state["artifacts"][run.id] = [[as_dict(f) for f in files],
                                          sorted(p.read_text() for p in Path(folder).rglob("*") if p.is_file())]
        state["models"] = [as_dict(m) for m in client.search_registered_models()]
        state["versions"] = [as_dict(v) for v in client.search_model_versions("name = 'kept-model'")]
        state["champion"] = as_dict(client.get_model_version_by_alias("kept-model", "champion"))
    return state


def test_a_restore_brings_back_everything(places: dict, tmp_path: Path):
    source_home, target_home = tmp_path / "source", tmp_path / "target"
    source_artifacts, target_artifacts = tmp_path / "artifacts-a", tmp_path / "artifacts-b"
    backup = tmp_path / "backup"
    source_url = places["source"].get("database_url")
    target_url = places["target"].get("database_url")

    def env(home: Path, url: str | None, artifacts: Path) -> dict[str, str]:
        variables = {"TUNING_HOME": str(home), "TUNING_ARTIFACTS": str(artifacts)}
        if url:
            variables |= {"TUNING_SUGGESTION_DATABASE_URL": url, "TUNING_TRACKING_DATABASE_URL": url}
        return variables

    with LocalSuite(source_home, database_url=source_url, artifacts=str(source_artifacts)) as suite:
        fill(suite, tmp_path)
        before = snapshot(suite)
        # Taken while both services run.
        saved = tuning("backup", str(backup), env=env(source_home, source_url, source_artifacts))
        assert saved.returncode == 0, saved.stderr
    manifest = json.loads((backup / "manifest.json").read_text())
    assert set(manifest["services"]) == {"suggestion", "tracking"} and manifest["artifacts"] == "artifacts"

    restored = tuning("restore", str(backup), env=env(target_home, target_url, target_artifacts))
    assert restored.returncode == 0, restored.stderr
    # Nothing is overwritten: a second restore into the same places is refused and changes nothing.
    again = tuning("restore", str(backup), env=env(target_home, target_url, target_artifacts))
    assert again.returncode == 1 and "restore into" in again.stderr, again.stderr

    with LocalSuite(target_home, database_url=target_url, artifacts=str(target_artifacts)) as suite:
        after = snapshot(suite)
    old_root, new_root = source_artifacts.resolve().as_uri(), target_artifacts.resolve().as_uri()
    # A restore is a restart: the service renews running trials' leases as it starts, so they
    # come back later, never earlier.
    for old, new in zip(before["trials"], after["trials"]):
        if old["state"] == "TRIAL_STATE_ACTIVE":
            backed_up, restored = (datetime.fromisoformat(t.pop("lease_expire_time")) for t in (old, new))
            assert restored >= backed_up
    assert any(t["state"] == "TRIAL_STATE_ACTIVE" for t in before["trials"])
    assert json.loads(json.dumps(before).replace(old_root, new_root)) == after
    assert after["trials"] and after["runs"] and after["versions"] and len(after["history"]) == 2


def test_backup_and_restore_refuse_what_they_cannot_do(tmp_path: Path):
    env = {"TUNING_HOME": str(tmp_path / "nothing-here")}
    missing = tuning("backup", str(tmp_path / "b"), env=env)
    assert missing.returncode == 1 and "there is no database at" in missing.stderr
    not_a_backup = tuning("restore", str(tmp_path), env=env)
    assert not_a_backup.returncode == 1 and "is not a backup" in not_a_backup.stderr
