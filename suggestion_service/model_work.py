"""Model-based suggestions computed outside the study's lock and off the serving thread.

A GP or TPE suggestion costs from milliseconds to a good fraction of a second. Computed inside
the ask's transaction it would hold the study's lock that long, and on SQLite (whose handlers
run on the event loop) delay every other call of every study. So the service asks in three
steps (docs/ALGORITHMS.md, "Cost, and where it is paid"):

1. read a snapshot of the study's history with no lock (:class:`StudyHistory` keeps it in
   memory and reads only what changed since the last read: a finished trial never changes);
2. compute a *batch* of suggestions from it in a model process (a :class:`Lane`), while the
   service goes on answering other calls; asks of the same study that arrive meanwhile wait
   for that batch instead of starting their own, and the next batch is sized by how many
   asked during this one;
3. commit under the study's lock after checking that the study has not moved on by more than
   the batch allowed for (:meth:`Batch.is_fresh`: no more results missed than there are trials
   running alongside, plus twice the batch's size) and that no trial created since repeats a
   suggestion; otherwise the ask computes again.

A tell of a busy study also starts the next batch early (prefetch), so that the next ask
usually finds suggestions ready.

Each study always goes to the same lane (its id modulo the number of lanes), and a lane keeps
the finished trials it was sent, so a job carries only the trials that finished since the
last one and the pending ones: at 10,000 trials, pickling the whole history would cost more
than a TPE suggestion. A lane that lost its state (a new process) asks for the whole history
again (:class:`Resync`). Lanes run in processes of a ``forkserver`` context: nothing is forked
from the threaded service process.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from suggestion_service import instruments
from suggestion_service.algorithms import make_algorithm
from suggestion_service.algorithms.base import Algorithm, PriorTask, SuggestContext, Suggestion, TrialView
from suggestion_service.domain.study import Study, StudyState
from suggestion_service.domain.trial import TrialState
from tuning_common import telemetry
from tuning_common.errors import TuningError, Unavailable
from tuning_types.study import StudySpec

log = logging.getLogger(__name__)

_PENDING = (TrialState.ACTIVE, TrialState.QUEUED)
# The largest batch one computation proposes, whatever the demand.
MAX_BATCH = 32
# A study counts as busy (worth computing ahead for) this long after its last ask.
BUSY_SECONDS = 30.0
# Studies whose history and batches a service keeps in memory (least recently asked go first).
MAX_STUDIES = 256
# Transfer learning: the most recent completed trials read of each prior study, and how often
# they are read again (a prior may still be running; its newest trials add little).
PRIOR_TRIALS = 500
PRIOR_REFRESH_SECONDS = 60.0


# --- the history, in memory ---------------------------------------------------------------


class StudyHistory:
    """A study's trials as the algorithms see them, brought up to date by reading only the
    trials numbered above the last one seen and those that were running then and have finished
    since (a running trial's reports are no algorithm's input: they read finished trials').

    Trial numbers are handed out and committed in order under the study's lock, so a read
    never misses a number below the highest it saw. ``arrival`` lists finished trials in the
    order this process learned of them: a lane that has the first k needs only the rest.
    """

    def __init__(self, study: Study):
        self.study = study
        self.finished: dict[int, TrialView] = {}
        self.arrival: list[int] = []
        self.pending: dict[int, TrialView] = {}
        self.max_number = -1
        # The highest position in the algorithm's random streams a stored trial was proposed at
        # (its metadata's "index"): a new batch starts above it, so no replica draws from a
        # stream another already used for a trial it can see (it would propose the same point).
        self.max_index = -1
        # The prior studies' trials (spec.prior_studies), read at most every PRIOR_REFRESH_SECONDS;
        # the version tells a lane whether it has them already.
        self.priors: tuple[PriorTask, ...] = ()
        self.priors_version = 0
        self.priors_read = -PRIOR_REFRESH_SECONDS
        self.lock = threading.Lock()

    def refresh(self, conn: Connection, repo) -> None:
        """Reads what changed; call with ``lock`` held (reads are then applied in order)."""
        names = self.study.spec.prior_studies
        if names and time.monotonic() - self.priors_read >= PRIOR_REFRESH_SECONDS:
            self.priors = repo.prior_tasks(conn, names, PRIOR_TRIALS)
            self.priors_version += 1
            self.priors_read = time.monotonic()
        for view in repo.history_since(conn, self.study, self.max_number, list(self.pending)):
            self.max_number = max(self.max_number, view.number)
            index = view.metadata.get("index")
            if isinstance(index, (int, float)) and index > self.max_index:
                self.max_index = int(index)
            if view.state in _PENDING:
                self.pending[view.number] = view
            elif view.number not in self.finished:
                self.pending.pop(view.number, None)
                self.finished[view.number] = view
                self.arrival.append(view.number)

    def snapshot(self) -> Snapshot:
        """What the history is now; call with ``lock`` held."""
        return Snapshot(len(self.arrival), tuple(self.pending.values()), self.max_number, self.max_index + 1,
                        self.priors, self.priors_version)

    def views(self, snapshot: Snapshot) -> list[TrialView]:
        """The trials of ``snapshot``, oldest first."""
        finished = [self.finished[n] for n in self.arrival[:snapshot.finished]]
        return sorted([*finished, *snapshot.pending], key=lambda v: v.number)

    def created_since(self, snapshot: Snapshot) -> list[TrialView]:
        """Trials numbered above the snapshot's highest; call with ``lock`` held."""
        new = [self.finished[n] for n in self.arrival[snapshot.finished:] if n > snapshot.max_number]
        return new + [v for n, v in self.pending.items() if n > snapshot.max_number]


@dataclass(frozen=True)
class Snapshot:
    finished: int  # how many trials had finished (a prefix of StudyHistory.arrival)
    pending: tuple[TrialView, ...]  # the trials then running or queued
    max_number: int  # the highest trial number then
    next_index: int = 0  # above every stream position a trial then stored was proposed at
    priors: tuple[PriorTask, ...] = ()  # the prior studies' trials then read
    priors_version: int = 0


# --- batches ---------------------------------------------------------------------------------


@dataclass
class Batch:
    """Suggestions computed together from one snapshot."""

    snapshot: Snapshot
    suggestions: list[Suggestion]
    size: int  # how many were asked for; fewer came back: the space is exhausted
    sequence: int = 0  # the algorithm's stream position of the first suggestion

    def allowance(self, running_now: int) -> int:
        """How many results a suggestion of this batch may miss: as many as there are trials
        running alongside it (when it was computed or now, whichever is more), the results an
        asynchronous worker's suggestion always lacks; plus two per suggestion of its batch:
        its siblings' results, and as many again from the workers the batch was sized for
        (with no training time, every worker may be between a tell and an ask, so none is
        running at either moment)."""
        return max(len(self.snapshot.pending), running_now) + 2 * self.size

    def is_fresh(self, finished_now: int, running_now: int) -> bool:
        """Whether the study has moved on by no more than the batch allowed for."""
        return finished_now - self.snapshot.finished <= self.allowance(running_now)


@dataclass
class Proposal:
    suggestion: Suggestion
    batch: Batch
    position: int = 0  # in its batch

    def stamped(self) -> Suggestion:
        """The suggestion with its stream position as the metadata's ``index``."""
        s = self.suggestion
        return Suggestion(s.params, s.budget, {**s.metadata, "index": self.batch.sequence + self.position})


# --- lanes: where suggestions are computed ------------------------------------------------------


class Resync(Exception):
    """The lane does not have the finished trials the job assumes: send the whole history."""


@dataclass(frozen=True)
class Job:
    study_id: int
    spec: StudySpec
    base: int  # finished trials the lane already holds for this study
    finished: tuple[TrialView, ...]  # the ones it does not have yet
    pending: tuple[TrialView, ...]
    sequence: int
    count: int
    priors_version: int = 0
    # None: the same as the lane got with this version before.
    priors: tuple[PriorTask, ...] | None = ()


@dataclass(frozen=True)
class JobResult:
    suggestions: list[Suggestion]
    # (stage name, start, end) in time.time_ns(): the service replays them as spans.
    stages: list[tuple[str, int, int]]


@dataclass
class _LaneStudy:
    spec: StudySpec
    algorithm: Algorithm
    # The finished trials, by number (and their numbers, to insert into): kept sorted, so a
    # job's history is this list with its few pending trials put in, the same objects from
    # one job to the next (TPE reuses what it read of an unchanged prefix).
    finished: list[TrialView] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    priors: tuple[PriorTask, ...] = ()
    priors_version: int = -1

    def add(self, views: Sequence[TrialView]) -> None:
        for view in views:
            at = bisect.bisect(self.numbers, view.number)
            self.numbers.insert(at, view.number)
            self.finished.insert(at, view)

    def history(self, pending: Sequence[TrialView]) -> list[TrialView]:
        history, numbers = list(self.finished), list(self.numbers)
        for view in sorted(pending, key=lambda v: v.number):
            at = bisect.bisect(numbers, view.number)
            numbers.insert(at, view.number)
            history.insert(at, view)
        return history


class LaneState:
    """What a lane remembers between jobs: each study's algorithm and finished trials."""

    def __init__(self) -> None:
        self.studies: OrderedDict[int, _LaneStudy] = OrderedDict()

    def run(self, job: Job) -> JobResult:
        study = self.studies.get(job.study_id)
        if study is None or study.spec != job.spec:
            if job.base:
                raise Resync()
            study = _LaneStudy(job.spec, make_algorithm(job.spec))
        elif len(study.finished) != job.base:
            raise Resync()
        if job.priors is not None:
            study.priors, study.priors_version = job.priors, job.priors_version
        elif study.priors_version != job.priors_version:
            raise Resync()
        self.studies[job.study_id] = study
        self.studies.move_to_end(job.study_id)
        while len(self.studies) > MAX_STUDIES:
            self.studies.popitem(last=False)
        study.add(job.finished)
        history = study.history(job.pending)
        stages: list[tuple[str, int, int]] = []
        context = SuggestContext(
            space=job.spec.space, objectives=job.spec.objectives, sequence=job.sequence,
            pending=[v.params for v in job.pending], history=history, constraints=job.spec.constraints,
            priors=study.priors, stage=lambda name: _timed(name, stages),
        )
        return JobResult(study.algorithm.suggest(context, job.count), stages)


@contextlib.contextmanager
def _timed(name: str, stages: list[tuple[str, int, int]]) -> Iterator[None]:
    """An algorithm's stage hook in a model process: records the stage's start and end."""
    start = time.time_ns()
    try:
        yield
    finally:
        stages.append((name, start, time.time_ns()))


_PROCESS_STATE = LaneState()


def _run_in_process(job: Job) -> JobResult:
    return _PROCESS_STATE.run(job)


class Lane:
    """One place where suggestions are computed: a model process, or (``process=False``) the
    calling thread itself."""

    def __init__(self, process: bool):
        self.process = process
        self._state = None if process else LaneState()
        self._executor: ProcessPoolExecutor | None = None
        self._stopped = False
        self._lock = threading.Lock()
        # Per study: how many of its finished trials (StudyHistory.arrival) the lane holds.
        self._sent: dict[int, int] = {}
        # Per study: the version of its priors the lane holds.
        self._sent_priors: dict[int, int] = {}

    def start(self) -> None:
        """Starts the model process now rather than on the first job."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self.process and self._executor is None and not self._stopped:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["suggestion_service.model_work"])
            self._executor = ProcessPoolExecutor(1, mp_context=context)
            self._executor.submit(int).result()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None

    def compute(self, history: StudyHistory, snapshot: Snapshot, spec: StudySpec, sequence: int,
                count: int) -> JobResult:
        """The algorithm's ``count`` suggestions for the study as ``snapshot`` saw it."""
        study_id = history.study.id
        for attempt in range(3):
            try:
                with self._lock:
                    # Submitted under the lock: jobs reach the process in the order their bases were set.
                    base = min(self._sent.get(study_id, 0), snapshot.finished) if attempt == 0 else 0
                    finished = tuple(history.finished[n] for n in history.arrival[base:snapshot.finished])
                    same_priors = attempt == 0 and self._sent_priors.get(study_id) == snapshot.priors_version
                    job = Job(study_id, spec, base, finished, snapshot.pending, sequence, count,
                              snapshot.priors_version, None if same_priors else snapshot.priors)
                    self._sent[study_id] = snapshot.finished
                    self._sent_priors[study_id] = snapshot.priors_version
                    if self.process:
                        self._start()
                        if self._executor is None:
                            raise Unavailable("the service is stopping", reason="SERVER_SHUTTING_DOWN")
                        outcome = self._executor.submit(_run_in_process, job)
                    else:
                        outcome = self._local(job)
                return outcome.result()
            except Resync:
                continue
            except BrokenProcessPool:
                log.warning("the model process of a lane died; starting another")
                with self._lock:
                    self._sent.clear()
                    self._sent_priors.clear()
                    if self._executor is not None:
                        self._executor.shutdown(wait=False)
                    self._executor = None
        raise Unavailable("could not compute suggestions: the model process keeps failing", reason="MODEL_FAILED")

    def _local(self, job: Job) -> Future:
        """Runs ``job`` in the calling thread (the lock held: one job at a time, as in a process)."""
        outcome: Future = Future()
        try:
            outcome.set_result(self._state.run(job))
        except BaseException as error:  # noqa: BLE001 - handed to the caller as the process would
            outcome.set_exception(error)
        return outcome


# --- the service's side -------------------------------------------------------------------------


@dataclass
class _StudyWork:
    """One study's history, its batch of ready suggestions and the gate of its computations."""

    history: StudyHistory
    cond: threading.Condition = field(default_factory=threading.Condition)
    ready: list[Proposal] = field(default_factory=list)
    computing: bool = False
    # Suggestions wanted by asks that arrived while a batch was being computed: the next batch's size.
    demand_during: int = 0
    recent_demand: int = 1
    waiting: int = 0
    next_sequence: int = 0
    last_ask: float = -BUSY_SECONDS
    refresh_wanted: bool = False


class ModelWork:
    """Computes model-based suggestions for the service: batches, lanes and prefetch.

    ``read(work)`` is the service's read of a study (no lock): it brings ``work.history`` up to
    date (holding ``work.history.lock``) and returns the study row as it is now.
    """

    def __init__(self, lanes: int, read: Callable[[StudyHistory], Study]):
        self._lanes = [Lane(process=True) for _ in range(lanes)] if lanes else [Lane(process=False)]
        self._read = read
        self._studies: OrderedDict[int, _StudyWork] = OrderedDict()
        self._lock = threading.Lock()
        self._prefetch = None
        if lanes:
            from concurrent.futures import ThreadPoolExecutor

            self._prefetch = ThreadPoolExecutor(max(1, lanes), thread_name_prefix="prefetch")

    def start(self) -> None:
        """Starts the model processes in the background: a service starts serving at once, and
        a first ask that comes sooner waits for its lane."""
        for lane in self._lanes:
            threading.Thread(target=lane.start, name="start model worker", daemon=True).start()

    def stop(self) -> None:
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=True, cancel_futures=True)
        for lane in self._lanes:
            lane.stop()

    def work(self, study: Study) -> _StudyWork:
        with self._lock:
            work = self._studies.get(study.id)
            if work is None:
                work = self._studies[study.id] = _StudyWork(StudyHistory(study))
            self._studies.move_to_end(study.id)
            while len(self._studies) > MAX_STUDIES:
                self._studies.popitem(last=False)
            return work

    def forget(self, study_id: int) -> None:
        with self._lock:
            self._studies.pop(study_id, None)

    # -- asks ----------------------------------------------------------------------------------

    def refresh(self, conn: Connection, study: Study, repo) -> tuple[int, int]:
        """Brings the study's history up to date in the caller's read; returns how many of its
        trials have finished and how many are running or queued."""
        history = self.work(study).history
        with history.lock:
            history.refresh(conn, repo)
            return len(history.arrival), len(history.pending)

    def propose(self, study: Study, count: int, limit: int, finished_now: int, running_now: int) -> list[Proposal]:
        """Up to ``count`` fresh proposals, computing a batch (of up to ``limit``) if none are ready.

        ``finished_now`` and ``running_now``: what :meth:`refresh` just said. Fewer than ``count``
        only when the algorithm ran out of configurations."""
        work = self.work(study)
        with work.cond:
            work.last_ask = time.monotonic()
            counted = False
            while True:
                work.ready = [p for p in work.ready if p.batch.is_fresh(finished_now, running_now)]
                if len(work.ready) >= count:
                    taken, work.ready = work.ready[:count], work.ready[count:]
                    return taken
                if not work.computing:
                    break
                if not counted:  # this ask's demand sizes the next batch
                    work.demand_during += count
                    counted = True
                work.waiting += count
                work.cond.wait()
                work.waiting -= count
            work.computing = True
            size = min(max(count + work.waiting, work.recent_demand), limit, MAX_BATCH)
            work.demand_during = count
        self._compute(work, max(size, count), prefetch=False)
        with work.cond:
            taken, work.ready = work.ready[:count], work.ready[count:]
            return taken

    def give_back(self, study: Study, proposals: Sequence[Proposal]) -> None:
        """Proposals an ask took but did not use: the next ask may have them (if still fresh)."""
        if not proposals:
            return
        work = self.work(study)
        with work.cond:
            batch = proposals[0].batch
            if not work.ready or work.ready[0].batch is batch:
                work.ready[:0] = list(proposals)

    def _compute(self, work: _StudyWork, size: int, prefetch: bool) -> None:
        """Computes a batch (the caller set ``work.computing``) and makes it the ready one."""
        try:
            with work.history.lock:
                study = self._read(work.history)
                snapshot = work.history.snapshot()
            if prefetch:
                size = min(size, _budget_left(study))
                if study.state is not StudyState.ACTIVE or size <= 0:
                    return
            with work.cond:
                sequence = work.next_sequence = max(work.next_sequence, study.algorithm_seq, snapshot.next_index)
            result = self._run(work.history, snapshot, study, sequence, size, prefetch)
            batch = Batch(snapshot, result.suggestions, size, sequence)
            with work.cond:
                work.ready = [Proposal(s, batch, j) for j, s in enumerate(result.suggestions)]
                work.next_sequence = sequence + size
                work.recent_demand = max(1, work.demand_during)
                work.demand_during = 0
        finally:
            with work.cond:
                work.computing = False
                work.cond.notify_all()
                again = work.refresh_wanted
                work.refresh_wanted = False
            if again:
                self.prefetch(work.history.study.id)

    def compute_now(self, history: StudyHistory, snapshot: Snapshot, study: Study, count: int) -> list[Suggestion]:
        """Suggestions for ``snapshot`` of the study as it is now (the caller holds its lock)."""
        sequence = max(study.algorithm_seq, snapshot.next_index)
        result = self._run(history, snapshot, study, sequence, count, prefetch=False)
        batch = Batch(snapshot, result.suggestions, count, sequence)
        return [Proposal(s, batch, j).stamped() for j, s in enumerate(result.suggestions)]

    def _run(self, history: StudyHistory, snapshot: Snapshot, study: Study, sequence: int, size: int,
             prefetch: bool) -> JobResult:
        lane = self._lanes[study.id % len(self._lanes)]
        algorithm = study.spec.algorithm.name
        with telemetry.span("compute suggestions", study=study.name, algorithm=algorithm, count=size,
                            history=snapshot.finished + len(snapshot.pending), prefetch=prefetch):
            started = time.perf_counter()
            result = lane.compute(history, snapshot, study.spec, sequence, size)
            instruments.SUGGEST_DURATION.record(time.perf_counter() - started,
                                                telemetry.attributes(algorithm=algorithm))
            telemetry.record_stages(result.stages)
        return result

    # -- prefetch ---------------------------------------------------------------------------------

    def prefetch(self, study_id: int) -> None:
        """After a tell: starts the next batch of a busy study now, so the next ask finds it ready."""
        if self._prefetch is None:
            return
        with self._lock:
            work = self._studies.get(study_id)
        if work is None:
            return
        with work.cond:
            if time.monotonic() - work.last_ask > BUSY_SECONDS:
                return
            if work.computing:
                work.refresh_wanted = True
                return
            work.computing = True
            size = min(work.recent_demand, MAX_BATCH)
        try:
            self._prefetch.submit(self._prefetch_batch, work, size)
        except RuntimeError:  # shutting down
            with work.cond:
                work.computing = False
                work.cond.notify_all()

    def _prefetch_batch(self, work: _StudyWork, size: int) -> None:
        try:
            self._compute(work, size, prefetch=True)
        except TuningError as error:  # the study was deleted, the service is stopping...
            log.info("no suggestions prefetched for study %r: %s", work.history.study.name, error)
        except Exception:
            log.exception("prefetching suggestions failed; asks will compute their own")


def _budget_left(study: Study) -> int:
    limit = study.spec.max_trials
    return MAX_BATCH if not limit else limit - study.budget_used
