"""Two tracking-service replicas on one database (PostgreSQL, and a SQLite file).

Whatever replica a request reaches, the result must be the one a single server would
give: model version numbers distinct and consecutive (a per-model counter taken under the
model row's lock), one run per CreateRun request id, each metric point stored once however
many replicas it was sent to, and exactly one version in Production after racing
transitions that archive the current holder.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from trial_worker.tracking import TrackingClient, metric
from tuning.tracking.v1 import registry_pb2 as rpb

THREADS = 8


def start(spawn_server, database_url: str, artifacts: Path):
    # The first replica creates the schema; the second starts once the first is listening.
    return [spawn_server(database_url, "--artifacts", str(artifacts), module="tracking_service") for _ in range(2)]


def race(work, clients) -> None:
    """Runs ``work(client, i)`` in THREADS threads, alternating replicas; re-raises the first error."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(clients[i % len(clients)], i)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


@pytest.fixture
def replicas(spawn_server, database_url: str, tmp_path: Path):
    servers = start(spawn_server, database_url, tmp_path / "artifacts")
    clients = [TrackingClient(s.address, retries=2, backoff=0.05) for s in servers]
    yield clients
    for client in clients:
        client.close()
    for name, server in zip("AB", servers):
        server.stop()
        assert "Traceback" not in server.output(), f"replica {name} logged an error:\n{server.output()}"


def test_replicas_agree_on_runs_metrics_and_versions(replicas, tmp_path: Path):
    a, _ = replicas
    model_file = tmp_path / "model.json"
    model_file.write_text("{}")
    run = a.create_run(0, name="source")
    a.upload_file(run.id, model_file, "model/model.json")

    # One CreateRun request id, sent to both replicas at once: one run.
    created: list[str] = []
    race(lambda client, i: created.append(client.create_run(0, request_id="same-request").id), replicas)
    assert len(set(created)) == 1

    # The same 300 points sent by every thread through both replicas: stored once each.
    points = [metric("loss", 1.0 / (step + 1), step=step, timestamp_ms=1_000 + step) for step in range(300)]
    race(lambda client, i: client.log_batch(run.id, metrics=points), replicas)
    history = list(a.get_metric_history(run.id, "loss"))
    assert [(m.step, m.value) for m in history] == [(m.step, m.value) for m in points]
    assert {m.key: m.step for m in a.get_run(run.id).latest_metrics} == {"loss": 299}

    # Racing registrations: distinct, consecutive numbers, each in the audit log once.
    versions: list[int] = []
    race(lambda client, i: versions.extend(
        client.create_model_version("wine", f"runs:/{run.id}/model").version for _ in range(3)), replicas)
    assert sorted(versions) == list(range(1, 3 * THREADS + 1))
    events = Counter(e.action for e in a.list_registry_events("wine"))
    assert events[rpb.REGISTRY_ACTION_CREATE_VERSION] == 3 * THREADS

    # Every thread promotes its own version to Production, archiving whoever holds it.
    race(lambda client, i: client.transition_model_version_stage(
        "wine", i + 1, "Production", archive_existing_versions=True), replicas)
    stages = Counter(v.stage for v in a.search_model_versions("name = 'wine'"))
    assert stages[rpb.STAGE_PRODUCTION] == 1
    assert stages[rpb.STAGE_ARCHIVED] == THREADS - 1
