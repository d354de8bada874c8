"""The storage contract: what each service's storage promises, on SQLite and on PostgreSQL.

Each service is reached as users reach it, through its gRPC API on a real server (port 0), and
each test runs once per (service, database): ``suggestion-sqlite``, ``suggestion-postgres``,
``tracking-sqlite``, ``tracking-postgres``. :class:`SuggestionStorage` and :class:`TrackingStorage`
put the two APIs behind the same few verbs (create a named thing, get it, list it page by page,
write to it from several threads at once), so that one test states each promise for both.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from suggestion_service.persistence import MIGRATIONS as SUGGESTION_MIGRATIONS
from suggestion_service.persistence.tables import metadata as suggestion_metadata
from suggestion_service.server import serve as serve_suggestion
from tracking_service.persistence import MIGRATIONS as TRACKING_MIGRATIONS
from tracking_service.persistence.tables import metadata as tracking_metadata
from tracking_service.server import serve as serve_tracking
from trial_worker import Float, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning.tracking.v1 import tracking_service_pb2 as tapi
from tuning.tracking.v1 import tracking_service_pb2_grpc as tapi_grpc
from tuning_common.database import Database
from tuning_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from tuning_common.grpc_errors import error_from_rpc
from tuning_common.grpc_server import ServerOptions

pytestmark = pytest.mark.contract

OPTIONS = ServerOptions(port=0, grace_seconds=1)


def at_once(call: Callable[[int], object], times: int = 8) -> tuple[list, list[BaseException]]:
    """Runs ``call(i)`` in ``times`` threads released together; their results and errors."""
    barrier = threading.Barrier(times)
    results, errors = [], []

    def target(i: int) -> None:
        barrier.wait()
        try:
            results.append(call(i))
        except Exception as error:  # collected for the test to judge
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


class SuggestionStorage:
    """Studies (named) and the trials told to them."""

    def __init__(self, address: str):
        self.client = SuggestionClient(address, retries=2, backoff=0.05)

    def create(self, name: str, variant: int = 0) -> None:
        self.client.create_study(name, [Float("x", 0, 1 + variant)], objectives={"loss": "minimize"}, seed=1)

    def get(self, name: str) -> tuple:
        spec = self.client.get_study(name).info.spec
        return spec.parameters[0].float_range.high, spec.seed

    def names(self, page_size: int) -> list[str]:
        return [s.name for s in self.client.list_studies(page_size=page_size)]

    def bad_page_token(self) -> None:
        from tuning.suggestion.v1 import suggestion_service_pb2 as api

        self.client.call("ListTrials", api.ListTrialsRequest(study="any", page_token="garbage"))

    def write_concurrently(self, name: str, writers: int, each: int) -> tuple[dict, dict]:
        """Each writer tells its share of one study's trials; what was told and what is stored."""
        study = self.client.get_study(name)
        trials = study.ask_batch(writers * each)
        told = {t.id: t.params["x"] for t in trials}

        def tell(i: int) -> None:
            for trial in trials[i::writers]:
                study.tell(trial, trial.params["x"])

        _, errors = at_once(tell, writers)
        assert not errors, errors
        stored = {t.id: t.metrics[0].value for t in study.trials(spb.TRIAL_STATE_COMPLETED, page_size=7)}
        assert study.refresh().trial_counts.completed == len(stored)
        return told, stored

    def close(self) -> None:
        self.client.close()


class TrackingStorage:
    """Experiments (named) and the metric points logged to a run."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = tapi_grpc.TrackingServiceStub(self.channel)

    def _call(self, method: str, request):
        try:
            return getattr(self.stub, method)(request)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def create(self, name: str, variant: int = 0) -> None:
        self._call("CreateExperiment", tapi.CreateExperimentRequest(
            name=name, tags=[tpb.Tag(key="variant", value=str(variant))]))

    def get(self, name: str) -> tuple:
        experiment = self._call("GetExperimentByName", tapi.GetExperimentByNameRequest(name=name)).experiment
        return experiment.id, {t.key: t.value for t in experiment.tags}["variant"]

    def names(self, page_size: int) -> list[str]:
        names, token = [], ""
        while True:
            page = self._call("SearchExperiments", tapi.SearchExperimentsRequest(
                page_size=page_size, page_token=token, order_by=["creation_time ASC"]))
            assert len(page.experiments) <= page_size
            names += [e.name for e in page.experiments if e.name != "Default"]
            token = page.next_page_token
            if not token:
                return names

    def bad_page_token(self) -> None:
        self._call("SearchExperiments", tapi.SearchExperimentsRequest(page_token="garbage"))

    def run(self, name: str) -> str:
        experiment_id = self.get(name)[0]
        return self._call("CreateRun", tapi.CreateRunRequest(experiment_id=experiment_id)).run.id

    def write_concurrently(self, name: str, writers: int, each: int) -> tuple[dict, dict]:
        """Each writer logs its share of one run's metric points; what was logged and what is stored."""
        run_id = self.run(name)
        logged = {step: step / 7 for step in range(writers * each)}

        def log(i: int) -> None:
            for step in list(logged)[i::writers]:
                self._call("LogMetric", tapi.LogMetricRequest(run_id=run_id, metric=tpb.Metric(
                    key="loss", value=logged[step], step=step, timestamp={"seconds": 1_700_000_000 + step})))

        _, errors = at_once(log, writers)
        assert not errors, errors
        stored, token = {}, ""
        while True:
            page = self._call("GetMetricHistory", tapi.GetMetricHistoryRequest(
                run_id=run_id, key="loss", page_size=7, page_token=token))
            for point in page.metrics:
                assert point.step not in stored, "a point was stored twice"
                stored[point.step] = point.value
            token = page.next_page_token
            if not token:
                break
        latest = self._call("GetRun", tapi.GetRunRequest(run_id=run_id)).run.latest_metrics
        assert [(m.key, m.step) for m in latest] == [("loss", max(logged))]
        return logged, stored

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(params=["suggestion", "tracking"])
def storage(request, database_url: str, tmp_path: Path) -> Iterator[SuggestionStorage | TrackingStorage]:
    if request.param == "suggestion":
        running = serve_suggestion(database_url, OPTIONS)
        storage = SuggestionStorage(running.address)
    else:
        running = serve_tracking(database_url, str(tmp_path / "artifacts"), OPTIONS)
        storage = TrackingStorage(running.address)
    yield storage
    storage.close()
    running.stop()


def test_what_is_created_is_got_and_listed_once_across_pages(storage):
    names = [f"item-{i}" for i in range(7)]
    for name in names:
        storage.create(name)
    for page_size in (1, 2, 3, 100):
        assert storage.names(page_size) == names
    first = storage.get("item-3")
    assert storage.get("item-3") == first
    with pytest.raises(InvalidArgument) as error:
        storage.bad_page_token()
    assert error.value.field == "page_token"


def test_a_name_is_stored_once_even_when_created_concurrently(storage):
    storage.create("unique")
    before = storage.get("unique")
    # Another definition under the same name is refused and changes nothing.
    with pytest.raises(AlreadyExists):
        storage.create("unique", variant=1)
    assert storage.get("unique") == before
    # Eight creators at once: the name is stored once, and each creator either made it or was
    # told it exists (the suggestion service's get-or-create answers the identical spec with it).
    results, errors = at_once(lambda _: storage.create("raced"))
    assert all(isinstance(e, AlreadyExists) for e in errors), errors
    assert len(results) + len(errors) == 8
    assert storage.names(100).count("raced") == 1 and storage.names(100).count("unique") == 1


def test_concurrent_writers_lose_no_update(storage):
    storage.create("busy")
    written, stored = storage.write_concurrently("busy", writers=4, each=10)
    assert stored == written and len(stored) == 40


# -- the storage layer underneath: transactions and migrations --------------------------------


MIGRATIONS = [
    pytest.param(SUGGESTION_MIGRATIONS, suggestion_metadata, id="suggestion"),
    pytest.param(TRACKING_MIGRATIONS, tracking_metadata, id="tracking"),
]


@pytest.mark.parametrize("migrations, metadata", MIGRATIONS)
def test_migrations_bring_an_empty_database_to_exactly_the_declared_schema(database_url: str, migrations, metadata):
    db = Database.connect(database_url)
    try:
        assert db.run(migrations.current, write=False) is None  # empty
        assert migrations.ensure(db, upgrade=False) == migrations.head()
        assert db.run(migrations.current, write=False) == migrations.head()
        assert migrations.ensure(db, upgrade=False) == migrations.head()  # a second start changes nothing
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_name": lambda name, kind, _: kind != "table" or name != migrations.version_table}
            )
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        db.dispose()


@pytest.mark.parametrize("migrations, metadata", MIGRATIONS)
def test_a_transaction_that_fails_leaves_nothing_behind(database_url: str, migrations, metadata):
    db = Database.connect(database_url)
    try:
        migrations.ensure(db, upgrade=False)
        table = migrations.version_table

        def half_done(conn) -> None:
            conn.execute(sa.text(f"UPDATE {table} SET version_num = 'half-done'"))
            raise FailedPrecondition("the second step failed")

        with pytest.raises(FailedPrecondition):
            db.run(half_done, write=True)
        assert db.run(migrations.current, write=False) == migrations.head()
    finally:
        db.dispose()


def test_a_refused_tracking_batch_stores_none_of_it(database_url: str, tmp_path: Path):
    """LogBatch claims its request id, then writes params, tags and metrics: a refused param must
    take the claim and everything before it back with it, so that a retry is judged again."""
    running = serve_tracking(database_url, str(tmp_path / "artifacts"), OPTIONS)
    storage = TrackingStorage(running.address)
    try:
        storage.create("e")
        run_id = storage.run("e")
        storage._call("LogParam", tapi.LogParamRequest(run_id=run_id, param=tpb.Param(key="depth", value="6")))
        batch = tapi.LogBatchRequest(
            run_id=run_id, request_id=uuid.uuid4().hex,
            params=[tpb.Param(key="a_new_one", value="1"), tpb.Param(key="depth", value="7")],
            tags=[tpb.Tag(key="phase", value="train")],
            metrics=[tpb.Metric(key="loss", value=0.5, step=1)])
        for _ in range(2):  # the retry is refused again, not taken for a replay of a stored batch
            with pytest.raises(FailedPrecondition):
                storage._call("LogBatch", batch)
        run = storage._call("GetRun", tapi.GetRunRequest(run_id=run_id)).run
        assert {p.key: p.value for p in run.params} == {"depth": "6"}
        assert "phase" not in {t.key for t in run.tags}
        assert list(run.latest_metrics) == []
    finally:
        storage.close()
        running.stop()
