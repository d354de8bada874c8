"""Model-based suggestions outside the study's lock (suggestion_service.model_work), on real SQLite.

The in-memory history must always equal what a full read of the database gives; a batch is
handed out only while it is fresh; a lane that lost its state, or its process, recovers.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from dataclasses import replace

import pytest

from suggestion_service.algorithms.base import PriorTask, Suggestion, TrialView
from suggestion_service.domain.trial import Outcome, TrialState
from suggestion_service.model_work import Batch, Job, Lane, LaneState, Resync, Snapshot, StudyHistory
from suggestion_service.persistence import MIGRATIONS
from suggestion_service.service import SuggestionService, _StaleProposals, _Supply
from tuning_common.database import Database
from tuning_types.space import FloatDomain, Parameter, SearchSpace
from tuning_types.study import AlgorithmSpec, Direction, Objective, StudySpec

SPACE = SearchSpace(tuple(Parameter(f"x{i}", FloatDomain(0.0, 1.0)) for i in range(3)))
OBJECTIVES = (Objective("loss", Direction.MINIMIZE),)


def spec(algorithm: str = "tpe", **settings) -> StudySpec:
    return StudySpec(SPACE, OBJECTIVES, AlgorithmSpec(algorithm, settings), seed=1, lease_seconds=600.0)


@pytest.fixture
def service(tmp_path):
    db = Database.connect(f"sqlite:///{tmp_path / 's.db'}")
    MIGRATIONS.ensure(db, upgrade=False)
    yield SuggestionService(db)
    db.dispose()


def ask(service: SuggestionService, name: str, count: int = 1):
    return service.suggest_trials(name, count, "w", uuid.uuid4().hex).trials


def tell(service: SuggestionService, trial) -> None:
    value = sum((v - 0.3) ** 2 for v in trial.params.values())
    service.complete_trial(trial.id, "w", Outcome.SUCCEEDED, (("loss", value),), "")


def full_read(service: SuggestionService, study) -> list[TrialView]:
    return service.db.run(lambda conn: service.repo.history(conn, study), write=False)


def assert_same_history(kept: list[TrialView], read: list[TrialView]) -> None:
    """Finished trials exactly; running and queued ones by number and configuration (a queued
    trial that was leased since, or a running one that reported, is not read again)."""
    assert [v.number for v in kept] == [v.number for v in read]
    for mine, theirs in zip(kept, read):
        if theirs.state.finished:
            assert mine == theirs
        else:
            assert not mine.state.finished and (mine.id, mine.params) == (theirs.id, theirs.params)


def test_the_history_in_memory_equals_a_full_read_after_every_change(service):
    study, _ = service.create_study("h", spec("random"))
    history = StudyHistory(study)
    rng = random.Random(0)
    running = []
    for _ in range(60):
        move = rng.random()
        if move < 0.4 or not running:
            running += ask(service, "h", rng.randint(1, 3))
        elif move < 0.8:
            tell(service, running.pop(rng.randrange(len(running))))
        elif move < 0.9:
            trial = running.pop(rng.randrange(len(running)))
            service.complete_trial(trial.id, "w", Outcome.FAILED, (), "broke")
        else:
            service.create_trial("h", {"x0": 0.5, "x1": 0.5, "x2": rng.random()})
        with history.lock:
            service.db.run(lambda conn: history.refresh(conn, service.repo), write=False)
            snapshot = history.snapshot()
        assert_same_history(history.views(snapshot), full_read(service, study))
        assert snapshot.finished == sum(1 for v in full_read(service, study) if v.state.finished)


def test_a_refresh_reads_only_new_and_unfinished_trials(service, monkeypatch):
    study, _ = service.create_study("r", spec("random"))
    running = ask(service, "r", 5)
    for trial in running[:4]:
        tell(service, trial)
    history = StudyHistory(study)
    read = []
    original = service.repo.history_since

    def counting(conn, study, after, numbers):
        views = original(conn, study, after, numbers)
        read.append(len(views))
        return views

    monkeypatch.setattr(service.repo, "history_since", counting)
    with history.lock:
        service.db.run(lambda conn: history.refresh(conn, service.repo), write=False)
        tell(service, running[4])
        ask(service, "r", 2)
        service.db.run(lambda conn: history.refresh(conn, service.repo), write=False)
        service.db.run(lambda conn: history.refresh(conn, service.repo), write=False)
    # All five; then the one that was running (it finished) and the two new ones; then nothing
    # (the two new ones still run).
    assert read == [5, 3, 0]


def _batch(finished: int, pending: int, size: int) -> Batch:
    views = tuple(TrialView(i, TrialState.ACTIVE, {}) for i in range(pending))
    return Batch(Snapshot(finished, views, 0), [Suggestion({})] * size, size)


def test_a_batch_stays_fresh_while_it_misses_no_more_results_than_trials_run_alongside_it():
    batch = _batch(finished=10, pending=3, size=2)
    assert batch.allowance(running_now=1) == 7
    assert batch.is_fresh(10, 1) and batch.is_fresh(17, 1)
    assert not batch.is_fresh(18, 1)
    assert batch.is_fresh(18, 4) and not batch.is_fresh(19, 4)  # more running now: more allowed


def test_proposals_gone_stale_are_refused_and_the_last_attempt_computes_under_the_lock(service):
    service.create_study("s", spec("tpe", n_startup_trials=2))
    for trial in ask(service, "s", 4):
        tell(service, trial)
    study = service.get_study("s")
    proposals = service.models.propose(study, 1, 1, 0, 0)
    assert len(proposals) == 1
    # Far more results arrive than the batch allowed for (it knew of nothing running).
    for trial in ask(service, "s", 3):
        tell(service, trial)
    stale = _Supply(service, proposals, last=False)
    with pytest.raises(_StaleProposals):
        service.db.run(lambda conn: stale.take(conn, service.get_study("s"), 1), write=True)
    last = _Supply(service, proposals, last=True)
    [suggestion] = service.db.run(lambda conn: last.take(conn, service.get_study("s"), 1), write=True)
    assert suggestion.metadata["phase"] != "startup"


def test_a_proposal_repeating_a_trial_created_since_its_snapshot_is_refused(service):
    service.create_study("d", spec("tpe", n_startup_trials=2))
    for trial in ask(service, "d", 3):
        tell(service, trial)
    study = service.get_study("d")
    [proposal] = service.models.propose(study, 1, 1, 0, 0)
    service.create_trial("d", proposal.suggestion.params)  # someone enqueued the same configuration
    supply = _Supply(service, [proposal], last=False)
    with pytest.raises(_StaleProposals):
        service.db.run(lambda conn: supply.take(conn, service.get_study("d"), 1), write=True)


def test_asks_of_a_model_study_go_on_after_the_batch_was_used_up(service):
    service.create_study("m", spec("gp", n_startup_trials=3))
    numbers = []
    for _ in range(8):
        trials = ask(service, "m", 2)
        numbers += [t.number for t in trials]
        for trial in trials:
            tell(service, trial)
    assert numbers == list(range(16))
    phases = [t.suggestion_metadata["phase"] for t in service.list_trials("m", [], 100, "")[0]]
    assert phases[:3] == ["startup"] * 3 and set(phases[3:]) == {"model"}


def _job(study_id: int, base: int, finished: tuple, count: int = 1) -> Job:
    return Job(study_id, spec("tpe", n_startup_trials=2), base, finished, (), len(finished) + base, count)


def _views(numbers) -> tuple[TrialView, ...]:
    return tuple(TrialView(n, TrialState.COMPLETED, {"x0": n / 10, "x1": 0.5, "x2": 0.5}, (float(n),))
                 for n in numbers)


def test_a_lane_asks_for_the_whole_history_when_it_does_not_hold_what_the_job_assumes():
    state = LaneState()
    with pytest.raises(Resync):
        state.run(_job(1, base=3, finished=_views([3])))  # it holds nothing of study 1
    state.run(_job(1, base=0, finished=_views(range(3))))
    state.run(_job(1, base=3, finished=_views([3, 4])))
    with pytest.raises(Resync):
        state.run(_job(1, base=3, finished=_views([5])))  # it holds 5 trials, not 3


def test_a_lane_whose_process_died_starts_another(service):
    service.create_study("p", spec("tpe", n_startup_trials=2))
    for trial in ask(service, "p", 3):
        tell(service, trial)
    study = service.get_study("p")
    history = StudyHistory(study)
    with history.lock:
        service.db.run(lambda conn: history.refresh(conn, service.repo), write=False)
        snapshot = history.snapshot()
    lane = Lane(process=True)
    lane.start()
    try:
        first = lane.compute(history, snapshot, study.spec, 3, 2)
        for pid in list(lane._executor._processes):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        again = lane.compute(history, snapshot, study.spec, 3, 2)
    finally:
        lane.stop()
    # The new process rebuilt the study from the whole history: the same answer as before.
    assert [s.params for s in again.suggestions] == [s.params for s in first.suggestions]


def test_a_study_made_again_under_its_name_with_a_model_algorithm_is_asked_as_one(service):
    service.create_study("again", spec("random"))
    tell(service, ask(service, "again")[0])
    service.delete_study("again")
    service.create_study("again", spec("tpe", n_startup_trials=2))
    for _ in range(4):
        tell(service, ask(service, "again")[0])
    study = service.get_study("again")
    # The later asks went through the model work (its history holds the study's trials).
    assert service.models.work(study).history.max_number == 2  # read before the last ask inserted 3
    phases = [t.suggestion_metadata["phase"] for t in service.list_trials("again", [], 10, "")[0]]
    assert phases == ["startup", "startup", "model", "model"]


def test_a_lane_gives_the_algorithm_its_history_oldest_first_whatever_order_trials_finished_in():
    from suggestion_service.model_work import _LaneStudy

    study = _LaneStudy(spec(), None)
    study.add(_views([0, 1, 4, 2]))
    study.add(_views([6, 3]))
    pending = tuple(TrialView(n, TrialState.ACTIVE, {}) for n in (7, 5))
    history = study.history(pending)
    assert [v.number for v in history] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [v.number for v in study.history(())] == [0, 1, 2, 3, 4, 6]  # pending ones were not kept


def test_a_lane_keeps_a_studys_priors_until_their_version_changes():
    prior = PriorTask("old", OBJECTIVES[0], tuple(
        TrialView(i, TrialState.COMPLETED, {f"x{k}": (i + k) / 10 for k in range(3)}, (float(i),)) for i in range(5)))
    with_priors = replace(spec(), prior_studies=("old",))
    state = LaneState()
    [first] = state.run(Job(1, with_priors, 0, (), (), 0, 1, priors_version=1, priors=(prior,))).suggestions
    assert first.metadata["phase"] == "prior_best" and first.params == prior.trials[0].params
    # The same version, not sent again: the lane uses the priors it has.
    [again] = state.run(Job(1, with_priors, 0, (), (), 0, 1, priors_version=1, priors=None)).suggestions
    assert again.params == first.params
    # A newer version the lane never got: it asks for everything again.
    with pytest.raises(Resync):
        state.run(Job(1, with_priors, 0, (), (), 0, 1, priors_version=2, priors=None))
