"""Model-based asks through a real server: computed off the serving thread, prefetched after tells.

On SQLite the service answers calls on its event loop; a GP batch is computed in a model
process, so calls of other studies (and the model study's own tells) are answered while it runs.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from suggestion_service.domain.trial import Outcome
from suggestion_service.persistence import MIGRATIONS
from suggestion_service.server import serve
from suggestion_service.service import SuggestionService
from trial_worker import Float, SuggestionClient
from tuning_common.database import Database
from tuning_common.errors import InvalidArgument
from tuning_common.grpc_server import ServerOptions
from tuning_types.space import FloatDomain, Parameter, SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

SPACE = [Float(f"x{i}", 0.0, 1.0) for i in range(6)]


def loss(params) -> float:
    return sum((v - 0.3) ** 2 for v in params.values())


def test_other_calls_are_answered_while_a_gp_batch_is_computed(sqlite_url):
    running = serve(sqlite_url, ServerOptions(port=0, grace_seconds=1), model_workers=1)
    try:
        with SuggestionClient(running.address) as client:
            # Many candidates and a batch of 4: a second or more of model work for one ask.
            slow = client.create_study("slow", SPACE, objectives={"loss": "minimize"}, algorithm="gp",
                                       algorithm_settings={"n_startup_trials": 2, "n_candidates": 30_000})
            for trial in slow.ask_batch(3):
                slow.tell(trial, loss(trial.params))
            other = client.create_study("other", SPACE, objectives={"loss": "minimize"}, algorithm="random")
            finished = threading.Event()
            asked = []
            asker = threading.Thread(target=lambda: (asked.extend(slow.ask_batch(4)), finished.set()))
            asker.start()
            time.sleep(0.3)
            calls = 0
            while not finished.is_set() and calls < 20:
                trial = other.ask()
                trial.report(1, 0.5)
                trial.heartbeat()
                other.tell(trial, 0.5)
                calls += 1
            asker.join(120)
            assert len(asked) == 4
            assert calls >= 5, f"only {calls} ask/report/heartbeat/tell rounds of another study during a GP batch"
    finally:
        running.stop()


def test_model_workers_must_be_a_sensible_count(sqlite_url):
    with pytest.raises(InvalidArgument) as error:
        serve(sqlite_url, ServerOptions(port=0), model_workers=-1)
    assert error.value.field == "model_workers"


def test_a_tell_of_a_busy_study_computes_its_next_batch_ahead(tmp_path):
    db = Database.connect(f"sqlite:///{tmp_path / 's.db'}")
    MIGRATIONS.ensure(db, upgrade=False)
    service = SuggestionService(db, model_workers=1)
    service.models.start()
    try:
        space = SearchSpace(tuple(Parameter(f"x{i}", FloatDomain(0.0, 1.0)) for i in range(3)))
        spec = StudySpec(space, (Objective("loss", Direction.MINIMIZE),), AlgorithmSpec("tpe", {"n_startup_trials": 2}),
                         seed=3)
        study, _ = service.create_study("busy", spec)
        for _ in range(3):
            [trial] = service.suggest_trials("busy", 1, "w", uuid.uuid4().hex).trials
            service.complete_trial(trial.id, "w", Outcome.SUCCEEDED, (("loss", loss(trial.params)),), "")
        work = service.models.work(study)
        deadline = time.monotonic() + 30
        while (work.computing or not work.ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert work.ready, "no batch was computed after the tell"
        ready = work.ready[0].suggestion.params
        [trial] = service.suggest_trials("busy", 1, "w", uuid.uuid4().hex).trials
        assert trial.params == ready  # the ask took the prefetched suggestion
    finally:
        service.models.stop()
        db.dispose()
