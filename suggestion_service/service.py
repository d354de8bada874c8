"""Use cases of the suggestion service: studies, ask, report, tell, leases.

Each public method validates its input, then runs one short transaction. Work that
changes a study's trial bookkeeping (numbers, budget, leases handed out, retries) first
locks the study's row, so any number of replicas on one PostgreSQL database serialise
per study and never hand out a trial twice or exceed ``max_parallel_trials``. Single
trial transitions are compare-and-set on the trial's state, so a late (zombie) tell
cannot overwrite a reclaimed trial. An ask of a model-based study reads and computes first,
with no lock (suggestion_service.model_work), and only its commit takes the study's lock.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection

from suggestion_service import instruments
from suggestion_service.algorithms import Pruner, make_algorithm, make_pruner, validate_algorithm
from suggestion_service.algorithms.base import Algorithm, SuggestContext, Suggestion
from suggestion_service.algorithms.importance import MIN_TRIALS, Importance, parameter_importance
from suggestion_service.domain.codec import specs_match
from suggestion_service.domain.ranking import BestTrials, best_trials
from suggestion_service.domain.study import Study, StudyState
from suggestion_service.domain.trial import (
    MAX_REASON_CHARS,
    Measurement,
    Metrics,
    Outcome,
    Trial,
    TrialSource,
    TrialState,
    check_constraints,
    check_metrics,
)
from suggestion_service.domain.webhook import TEST_PAYLOAD, CompletedBecause, WebhookEvent, improves, trial_payload
from suggestion_service.model_work import PRIOR_TRIALS, ModelWork, Proposal, StudyHistory
from suggestion_service.persistence.repository import Repository
from suggestion_service.persistence.webhooks import STORE as WEBHOOKS
from tuning_common import telemetry
from tuning_common.access import record_creation
from tuning_common.database import Database
from tuning_common.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from tuning_common.webhooks import WebhookService
from tuning_types.space import Assignment, check_name, config_key
from tuning_types.study import StudySpec

log = logging.getLogger(__name__)

MAX_SUGGEST_COUNT = 1000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_ID_CHARS = 256
# Tracking run ids (tracking_service.domain.model.new_run_id: uuid4 hex).
_RUN_ID = re.compile(r"[0-9a-f]{32}")
WAIT_SECONDS = 0.5
# A released trial's reason (ReleaseTrial); also how a repeated release recognises it.
_HANDED_BACK = "handed back by worker {worker!r}"
# Parameter importances kept, by (study id, objective, completed trials).
IMPORTANCE_CACHE = 64


class SuggestStatus(enum.Enum):
    OK = "OK"
    WAIT = "WAIT"
    DONE = "DONE"


class DoneReason(enum.Enum):
    BUDGET_SPENT = "BUDGET_SPENT"
    SPACE_EXHAUSTED = "SPACE_EXHAUSTED"
    STUDY_STOPPED = "STUDY_STOPPED"
    STUDY_COMPLETED = "STUDY_COMPLETED"


@dataclass(frozen=True)
class SuggestResult:
    trials: list[Trial]
    status: SuggestStatus
    done_reason: DoneReason | None = None
    message: str = ""
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class ReportResult:
    should_stop: bool
    lease_expires_ms: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_id(field: str, value: str) -> None:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(field, f"at most {MAX_ID_CHARS} characters, got {len(value)}")


def _page_size(page_size: int) -> int:
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be between 0 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size or DEFAULT_PAGE_SIZE


def _encode_token(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _decode_token(token: str, kind: type) -> object | None:
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if type(position) is not kind:
        raise InvalidArgument("page_token", "malformed; pass next_page_token from the previous response")
    return position


class SuggestionService:
    def __init__(self, db: Database, clock: Callable[[], int] = _now_ms, model_workers: int = 0):
        """``model_workers``: model processes computing model-based suggestions; 0 computes them in
        the asking thread (still outside the study's lock)."""
        self.db = db
        self.clock = clock
        self.repo = Repository()
        # The webhook RPCs' use cases; the events' deliveries are queued by the methods below.
        self.webhooks = WebhookService(db, WEBHOOKS, check_scope=lambda name: check_name("study_name", name, "study name"),
                                       test_payload=TEST_PAYLOAD)
        self.models = ModelWork(model_workers, self._read_history)
        self._cache: dict[int, tuple[Algorithm, Pruner | None]] = {}
        # Whether a study (by name) runs a model-based algorithm; a stale entry only costs speed.
        self._model_based: dict[str, bool] = {}
        # Striped: bounded memory; two studies rarely share a stripe.
        self._ask_locks = [threading.Lock() for _ in range(64)]
        self._importances: OrderedDict[tuple[int, str, int], Importance] = OrderedDict()
        self._importances_lock = threading.Lock()
        if telemetry.enabled():
            instruments.observe_trials(self._census)

    def _census(self) -> tuple[dict[str, int], int]:
        with telemetry.quiet():  # read at every metrics export
            return self.db.run(self.repo.census, write=False)

    # --- studies ---------------------------------------------------------------------

    def create_study(self, name: str, spec: StudySpec, algorithm_named: bool = True) -> tuple[Study, bool]:
        """Gets or creates the study ``name``; ``algorithm_named`` False: the request named no
        algorithm, so a new study gets the default one and an existing study keeps its own."""
        check_name("name", name, "study name")
        spec.validate()
        validate_algorithm(spec)

        def work(conn: Connection) -> tuple[Study, bool]:
            existing = self.repo.find_study(conn, name=name)
            if existing is None:
                self._check_priors(conn, name, spec)
                stored = spec if spec.seed is not None else spec.with_seed(secrets.randbits(63))
                created = self.repo.insert_study(conn, name, stored, self.clock())
                # Not created: a concurrent CreateStudy of the same name won; compare with it.
                existing = self.repo.find_study(conn, name=name)
                if created:
                    record_creation(conn, name)
                    return self.repo.with_counts(conn, existing), True
            if not specs_match(existing.spec, spec, algorithm_named):
                raise AlreadyExists(
                    f"study {name!r} already exists with a different spec; pick another name or delete it first",
                    reason="STUDY_SPEC_MISMATCH",
                )
            return self.repo.with_counts(conn, existing), False

        return self.db.run(work, write=True)

    def _check_priors(self, conn: Connection, name: str, spec: StudySpec) -> None:
        for i, prior_name in enumerate(spec.prior_studies):
            field = f"spec.prior_studies[{i}]"
            if prior_name == name:
                raise InvalidArgument(field, "a study cannot be its own prior")
            prior = self.repo.find_study(conn, name=prior_name)
            if prior is None:
                raise NotFound(f"{field}: prior study {prior_name!r} does not exist", reason="STUDY_NOT_FOUND")
            spec.check_prior(field, prior_name, prior.spec)

    def get_study(self, name: str) -> Study:
        check_name("name", name, "study name")
        return self.db.run(lambda conn: self.repo.with_counts(conn, self._study(conn, name)), write=False)

    def list_studies(self, page_size: int, page_token: str, *, readable: Collection[str] | None = None
                     ) -> tuple[list[Study], str]:
        """A page of studies by name; ``readable``: only those these subjects have a role on
        (tuning_common.access.readable_subjects), None: all."""
        limit = _page_size(page_size)
        after = _decode_token(page_token, str)

        def work(conn: Connection) -> tuple[list[Study], str]:
            page = self.repo.list_studies(conn, after, limit + 1, readable)
            more, page = len(page) > limit, page[:limit]
            counts = self.repo.trial_counts(conn, [s.id for s in page]) if page else {}
            return [replace(s, counts=counts[s.id]) for s in page], _encode_token(page[-1].name) if more else ""

        return self.db.run(work, write=False)

    def set_study_state(self, name: str, state: StudyState | None) -> Study:
        check_name("name", name, "study name")
        if state is None:
            raise InvalidArgument("state", "must be ACTIVE, STOPPED or COMPLETED")

        def work(conn: Connection) -> Study:
            study = self._study(conn, name, lock=True)
            if study.state is StudyState.COMPLETED and state is not StudyState.COMPLETED:
                raise FailedPrecondition(f"study {name!r} is completed and cannot change state", reason="STUDY_COMPLETED")
            if state is StudyState.COMPLETED and study.state is not state:
                self._complete_study(conn, study, self.clock(), CompletedBecause.SET_STUDY_STATE)
            elif study.state is not state:
                self.repo.set_study_state(conn, study.id, state, self.clock())
            return self.repo.with_counts(conn, self._study(conn, name))

        return self.db.run(work, write=True)

    def delete_study(self, name: str) -> None:
        check_name("name", name, "study name")

        def work(conn: Connection) -> int:
            study_id = self._study(conn, name, lock=True).id
            self.repo.delete_study(conn, study_id)
            return study_id

        self.models.forget(self.db.run(work, write=True))

    # --- ask -------------------------------------------------------------------------

    def suggest_trials(self, study_name: str, count: int, worker_id: str, request_id: str) -> SuggestResult:
        check_name("study", study_name, "study name")
        if not 1 <= count <= MAX_SUGGEST_COUNT:
            raise InvalidArgument("count", f"must be between 1 and {MAX_SUGGEST_COUNT}, got {count}")
        _check_id("worker_id", worker_id)
        _check_id("request_id", request_id)
        with telemetry.span("suggest trials", study=study_name, count=count, worker=worker_id) as span:
            result = self._ask(study_name, count, worker_id, request_id)
            telemetry.set_attributes(span, trial_ids=[t.id for t in result.trials],
                                     suggest_status=result.status.value)
            return result

    def _ask(self, study_name: str, count: int, worker_id: str, request_id: str) -> SuggestResult:
        """Model-based algorithms propose outside the study's lock (see suggestion_service.model_work):
        read, compute, then commit if the proposals are still fresh, else again; the last
        attempt computes under the lock, so an ask always ends."""
        if self._model_based.get(study_name) is False:  # saves a read per ask of random, grid, pbt...
            return self._commit_ask(study_name, count, worker_id, request_id, None)
        for attempt in range(_ASK_ATTEMPTS):
            plan = self.db.run(lambda conn: self._plan(conn, study_name, count, request_id), write=False)
            if plan is not None and plan.new > 0:  # the ask draws on the algorithm
                telemetry.set_attributes(algorithm=plan.study.spec.algorithm.name)
            proposals = (self.models.propose(plan.study, plan.new, plan.limit, plan.finished, plan.running)
                         if plan and plan.new > 0 else [])
            supply = _Supply(self, proposals, last=attempt == _ASK_ATTEMPTS - 1) if plan else None
            try:
                result = self._commit_ask(study_name, count, worker_id, request_id, supply)
            except _StaleProposals:
                instruments.STALE_PROPOSALS.add(1, telemetry.attributes(algorithm=plan.study.spec.algorithm.name))
                log.debug("ask of study %r: proposals went stale (attempt %d)", study_name, attempt + 1)
                continue
            if supply is not None:
                self.models.give_back(plan.study, supply.unused)
            return result
        raise AssertionError("unreachable: the last attempt computes under the lock")

    def _plan(self, conn: Connection, study_name: str, count: int, request_id: str) -> _AskPlan | None:
        """How many new suggestions the ask will likely need (None: not a model-based study)."""
        study = self._study(conn, study_name)
        algorithm, _ = self._components(study.id, study.spec)
        self._remember_kind(study_name, algorithm)
        if not algorithm.model_based:
            return None
        spec = study.spec
        if study.state is not StudyState.ACTIVE or self.repo.find_request(conn, study.id, request_id) is not None:
            return _AskPlan(study, 0, 0)
        active, queued, _ = self.repo.pending_summary(conn, study.id)
        budget_left = _remaining(spec.max_trials, study.budget_used)
        room = count if spec.max_parallel_trials == 0 else max(0, min(count, spec.max_parallel_trials - active))
        new = min(room - min(queued, room), budget_left)
        # A batch may serve the asks that come next, within what the study can still take.
        limit = budget_left if spec.max_parallel_trials == 0 else min(
            budget_left, spec.max_parallel_trials - active - queued)
        finished, running = self.models.refresh(conn, study, self.repo) if new > 0 else (0, 0)
        return _AskPlan(study, int(max(new, 0)), int(min(limit, MAX_SUGGEST_COUNT)), finished, running)

    def _commit_ask(self, study_name: str, count: int, worker_id: str, request_id: str,
                    supply: _Supply | None) -> SuggestResult:
        def work(conn: Connection) -> SuggestResult:
            study = self._study(conn, study_name, lock=True)
            seen = self.repo.find_request(conn, study.id, request_id)
            if seen is not None:
                return self._replay(conn, study, seen, worker_id, request_id)
            now = self.clock()
            active, queued, earliest_expiry = self.repo.pending_summary(conn, study.id)
            if earliest_expiry is not None and earliest_expiry < now and self._reclaim_expired(conn, study, now):
                study = self.repo.find_study(conn, study_id=study.id)  # retries advanced its counters
                active, queued, _ = self.repo.pending_summary(conn, study.id)
            result = self._suggest(conn, study, count, worker_id, request_id, active, queued, supply)
            self.repo.record_request(
                conn, study.id, request_id, worker_id, result.status.value,
                result.done_reason.value if result.done_reason else None, result.message, now,
            )
            return result

        # Asks for one study queue here first, so at most one per replica waits on the
        # study's row lock: a crowd of waiters on one PostgreSQL row lock is far slower
        # than a queue in front of it.
        with self._ask_locks[hash(study_name) % len(self._ask_locks)]:
            return self.db.run(work, write=True)

    def _remember_kind(self, study_name: str, algorithm: Algorithm) -> None:
        if len(self._model_based) >= 4096:
            self._model_based.clear()
        self._model_based[study_name] = algorithm.model_based

    def _read_history(self, history: StudyHistory) -> Study:
        """The study now, with ``history`` brought up to date in the same read."""
        def work(conn: Connection) -> Study:
            study = self.repo.find_study(conn, study_id=history.study.id)
            if study is None:
                raise NotFound(f"study {history.study.name!r} does not exist", reason="STUDY_NOT_FOUND")
            history.refresh(conn, self.repo)
            return study

        return self.db.run(work, write=False)

    def _replay(self, conn: Connection, study: Study, seen, worker_id: str, request_id: str) -> SuggestResult:
        if seen.worker_id != worker_id:
            raise InvalidArgument(
                "request_id", f"{request_id!r} was already used by worker {seen.worker_id!r}; request ids must be unique"
            )
        status = SuggestStatus(seen.status)
        return SuggestResult(
            trials=self.repo.trials_for_request(conn, study.id, request_id),
            status=status,
            done_reason=DoneReason(seen.done_reason) if seen.done_reason else None,
            message=seen.message,
            retry_after_s=WAIT_SECONDS if status is SuggestStatus.WAIT else 0.0,
        )

    def _suggest(
        self, conn: Connection, study: Study, count: int, worker_id: str, request_id: str, active: int, queued: int,
        supply: _Supply | None,
    ) -> SuggestResult:
        """Leases queued trials, then new suggestions, within the cap and the budget. Needs the study lock."""
        spec = study.spec
        if study.state is StudyState.STOPPED:
            return SuggestResult([], SuggestStatus.DONE, DoneReason.STUDY_STOPPED,
                                 f"study {study.name!r} is stopped")
        algorithm, _ = self._components(study.id, spec)
        budget_left = _remaining(spec.max_trials, study.budget_used)
        space_left = _remaining(algorithm.capacity(), study.algorithm_seq)
        if study.state is StudyState.COMPLETED:
            # Every asker after the one that completed the study learns the same reason, so
            # each worker can tell a spent budget from a study someone completed by hand.
            if budget_left > 0 and space_left > 0:
                return SuggestResult([], SuggestStatus.DONE, DoneReason.STUDY_COMPLETED,
                                     f"study {study.name!r} is completed")
            return _done(study, budget_left)

        # Read the clock only after counting: a tell that freed a slot committed before the
        # count, so its end_ms is earlier and recorded [start, end) spans respect the cap too.
        now = self.clock()
        lease = {"state": TrialState.ACTIVE, "worker_id": worker_id, "request_id": request_id,
                 "lease_expires_ms": now + int(spec.lease_seconds * 1000), "start_ms": now}
        room = count if spec.max_parallel_trials == 0 else max(0, min(count, spec.max_parallel_trials - active))

        leased: list[Trial] = []
        for trial in self.repo.queued_trials(conn, study.id, room) if room and queued else ():
            if self.repo.update_trial_if(conn, trial.id, TrialState.QUEUED, **lease):
                leased.append(replace(trial, **lease))
        queued -= len(leased)

        n_new = min(room - len(leased), budget_left, space_left)
        if n_new > 0:
            if supply is None and algorithm.model_based:
                # A study of this name was deleted and made again with a model-based algorithm:
                # this ask computes under the lock, the next ones outside it.
                self._remember_kind(study.name, algorithm)
            if supply is not None:
                suggestions = supply.take(conn, study, n_new)
            else:
                context = SuggestContext(
                    space=spec.space,
                    objectives=spec.objectives,
                    sequence=study.algorithm_seq,
                    pending=self.repo.pending_params(conn, study.id) if algorithm.uses_pending else (),
                    history=self.repo.history(conn, study) if algorithm.uses_history else (),
                    constraints=spec.constraints,
                    priors=(self.repo.prior_tasks(conn, spec.prior_studies, PRIOR_TRIALS)
                            if algorithm.uses_priors and spec.prior_studies else ()),
                    stage=telemetry.stage,
                )
                suggestions = self._propose(algorithm, context, n_new)
            n = len(suggestions)
            first = self.repo.advance_counters(conn, study.id, trials_=n, budget=n, algorithm=n)
            leased += self.repo.insert_trials(conn, study.name, [
                {"study_id": study.id, "number": first + i, "source": TrialSource.ALGORITHM.value,
                 "params": s.params, "budget": s.budget if s.budget is not None else _full_budget(spec),
                 "attempt": 0, "create_ms": now,
                 "suggestion_metadata": {"algorithm": spec.algorithm.name, "seed": spec.seed,
                                         "index": study.algorithm_seq + i, **s.metadata},
                 **lease, "state": TrialState.ACTIVE.value}
                for i, s in enumerate(suggestions)
            ])
            if n and spec.max_trials and study.budget_used + n == spec.max_trials:
                self._budget_spent(conn, study, leased[-1], now)
            budget_left -= n
            if n < n_new and algorithm.waits_for_running and (active or leased):
                # Its next proposals depend on the results of trials still running.
                return SuggestResult(leased, SuggestStatus.WAIT, retry_after_s=WAIT_SECONDS,
                                     message=f"{algorithm.name}: the next trials wait for running ones to finish")
            space_left = 0 if n < n_new else space_left - n

        if len(leased) == count:
            return SuggestResult(leased, SuggestStatus.OK)
        if budget_left > 0 and space_left > 0:
            return SuggestResult(
                leased, SuggestStatus.WAIT,
                message=f"max_parallel_trials ({spec.max_parallel_trials}) trials are running",
                retry_after_s=WAIT_SECONDS,
            )
        if leased or active or queued:
            return SuggestResult(
                leased, SuggestStatus.WAIT,
                message=f"{_what_ended(spec, budget_left)}; trials still running may fail and be retried",
                retry_after_s=WAIT_SECONDS,
            )
        self._complete_study(conn, study, now, CompletedBecause.BUDGET_SPENT if budget_left <= 0
                             else CompletedBecause.SPACE_EXHAUSTED)
        return _done(study, budget_left)

    @staticmethod
    def _propose(algorithm: Algorithm, context: SuggestContext, count: int) -> list[Suggestion]:
        # No span of its own (an ask is hot): the algorithm's costly stages have theirs.
        telemetry.set_attributes(algorithm=algorithm.name, history=len(context.history))
        started = time.perf_counter()
        suggestions = algorithm.suggest(context, count)
        instruments.SUGGEST_DURATION.record(time.perf_counter() - started, telemetry.attributes(algorithm=algorithm.name))
        return suggestions

    def _components(self, study_id: int, spec: StudySpec) -> tuple[Algorithm, Pruner | None]:
        # Algorithms and pruners are stateless and a study's spec never changes (ids are never
        # reused), so caching them by id only saves re-deriving things like a grid's points.
        components = self._cache.get(study_id)
        if components is None:
            if len(self._cache) >= 256:
                self._cache.clear()
            components = self._cache[study_id] = (make_algorithm(spec), make_pruner(spec))
        return components

    # --- leases ----------------------------------------------------------------------

    def _reclaim_expired(self, conn: Connection, study: Study, now: int) -> int:
        """Marks expired leases STALE and queues their retries. Needs the study lock."""
        reclaimed = 0
        for trial in self.repo.expired_trials(conn, study.id, now):
            reason = f"lease held by worker {trial.worker_id!r} expired without a report, heartbeat or tell"
            if self.repo.update_trial_if(conn, trial.id, TrialState.ACTIVE, state=TrialState.STALE,
                                    reason=reason, end_ms=now, lease_expires_ms=None):
                reclaimed += 1
                self._maybe_retry(conn, study, trial, now)
        if reclaimed:
            log.info("study %s: reclaimed %d expired lease(s)", study.name, reclaimed)
            instruments.LEASES_EXPIRED.add(reclaimed)
        return reclaimed

    def _maybe_retry(self, conn: Connection, study: Study, trial: Trial, now: int) -> None:
        if trial.attempt >= study.spec.retry_policy.max_retries or study.state is StudyState.COMPLETED:
            return
        self._queue_copy(conn, study, trial, now, attempt=trial.attempt + 1)

    def _queue_copy(self, conn: Connection, study: Study, trial: Trial, now: int, *, attempt: int) -> None:
        number = self.repo.advance_counters(conn, study.id, trials_=1)
        self.repo.insert_trials(conn, study.name, [{
            "study_id": study.id, "number": number, "state": TrialState.QUEUED.value,
            "source": TrialSource.RETRY.value, "params": trial.params, "budget": trial.budget,
            "attempt": attempt, "retry_of": trial.id, "create_ms": now,
            "suggestion_metadata": trial.suggestion_metadata or None,
        }])

    def renew_leases(self) -> int:
        """Gives every running trial a full lease from now; returns how many leases moved.

        Called as a replica starts, before it serves: while no replica served (a crash and
        restart), workers could not heartbeat, and that time must not cost them their trials.
        With several replicas, a restart delays the retry of a dead worker's trial by at most
        one lease."""
        study_ids = self.db.run(self.repo.studies_with_active_trials, write=False)
        renewed = 0
        for study_id in study_ids:
            def work(conn: Connection, study_id: int = study_id) -> int:
                study = self.repo.find_study(conn, study_id=study_id, lock=True)
                if study is None:
                    return 0
                return self.repo.extend_leases(conn, study.id, self.clock() + int(study.spec.lease_seconds * 1000))

            renewed += self.db.run(work, write=True)
        if renewed:
            log.info("renewed %d lease(s) of running trials for the time the service was down", renewed)
        return renewed

    def reap_expired_leases(self) -> int:
        """Reclaims every expired lease in every study; each replica runs this periodically."""
        now = self.clock()
        with telemetry.quiet():  # a scan every few seconds: a trace only when it finds something
            study_ids = self.db.run(lambda conn: self.repo.studies_with_expired_leases(conn, now), write=False)
        if not study_ids:
            return 0
        total = 0
        with telemetry.span("reclaim leases") as span:
            for study_id in study_ids:
                def work(conn: Connection, study_id: int = study_id) -> int:
                    study = self.repo.find_study(conn, study_id=study_id, lock=True)
                    return 0 if study is None else self._reclaim_expired(conn, study, self.clock())

                total += self.db.run(work, write=True)
            telemetry.set_attributes(span, count=total)
        return total

    # --- report and tell ---------------------------------------------------------------

    def report_intermediate(self, trial_id: int, worker_id: str, step: int, metrics: Metrics) -> ReportResult:
        if step < 0:
            raise InvalidArgument("step", f"must be 0 or more, got {step}")
        metrics = check_metrics("metrics", metrics, required=True)

        def work(conn: Connection) -> ReportResult:
            trial = self._leased_trial(conn, self._trial(conn, trial_id), worker_id)
            now = self.clock()
            renewal = {"lease_expires_ms": now + self._lease_ms(conn, trial)}
            existing = self.repo.get_measurement(conn, trial.id, step)
            if existing is None and not self.repo.insert_measurement(conn, trial.id, Measurement(step, metrics, now)):
                existing = self.repo.get_measurement(conn, trial.id, step)  # a concurrent retry got there first
            if existing is not None and existing.metrics != metrics:
                raise FailedPrecondition(
                    f"trial {trial_id} already reported step {step} with other values", reason="STEP_ALREADY_REPORTED"
                )
            last = trial.last_measurement
            if existing is None and (last is None or step >= last.step):
                renewal.update(last_step=step, last_metrics=[list(m) for m in metrics], last_measurement_ms=now)
            self.repo.update_trial_if(conn, trial.id, TrialState.ACTIVE, **renewal)
            stop = self._should_stop(conn, trial, step, dict(metrics))
            return ReportResult(should_stop=stop, lease_expires_ms=renewal["lease_expires_ms"])

        return self.db.run(work, write=True)

    def _should_stop(self, conn: Connection, trial: Trial, step: int, metrics: dict[str, float]) -> bool:
        """The study's pruner's verdict on ``trial`` reporting ``metrics`` at ``step``.

        It depends on stored measurements only, so a repeated report, another replica or a
        restarted service gives the same answer.
        """
        spec = self.repo.study_spec(conn, trial.study_id)
        _, pruner = self._components(trial.study_id, spec)
        # The pruner's metric: the objective unless its settings name another one.
        if pruner is None or pruner.metric not in metrics:
            return False
        metric = pruner.metric
        checkpoint = pruner.checkpoint(trial.number, self.repo.previous_step(conn, trial.id, step), step)
        if checkpoint is None:
            return False
        with telemetry.span("decide pruning", trial_id=trial.id, trial_number=trial.number, step=step,
                            pruner=pruner.name) as span:
            peers = self.repo.values_at(conn, trial.study_id, trial.id, checkpoint.step, metric)
            stop = pruner.should_stop(trial.number, metrics[metric], peers)
            decision = "stop" if stop else "continue"
            telemetry.set_attributes(span, decision=decision)
        instruments.PRUNING_DECISIONS.add(1, telemetry.attributes(pruner=pruner.name, decision=decision))
        return stop

    def heartbeat(self, trial_id: int, worker_id: str) -> int:
        def work(conn: Connection) -> int:
            trial = self._leased_trial(conn, self._trial(conn, trial_id), worker_id)
            expires = self.clock() + self._lease_ms(conn, trial)
            self.repo.update_trial_if(conn, trial.id, TrialState.ACTIVE, lease_expires_ms=expires)
            return expires

        return self.db.run(work, write=True)

    def release_trial(self, trial_id: int, worker_id: str, reason: str) -> Trial:
        """Hands a leased trial back now: STALE, and its configuration queued again at once.

        A hand-back is not a failure (the worker shuts down, a node is drained): the copy keeps
        the trial's attempt, so it spends none of the retry policy, and queued retries are
        leased before anything else, so the next ask gets this configuration first.

        Releasing again a trial that its worker already handed back returns it unchanged.
        """
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument("reason", f"at most {MAX_REASON_CHARS} characters, got {len(reason)}")

        def work(conn: Connection) -> Trial:
            trial = self._trial(conn, trial_id)
            if self._handed_back(trial, worker_id):
                return trial
            # Lock order is always study, then trial (the ask path does the same).
            study = self.repo.find_study(conn, study_id=trial.study_id, lock=True)
            trial = self._trial(conn, trial_id)
            if self._handed_back(trial, worker_id):
                return trial
            trial = self._leased_trial(conn, trial, worker_id)
            why = _HANDED_BACK.format(worker=trial.worker_id) + (f": {reason}" if reason else "")
            ending = {"state": TrialState.STALE, "reason": why, "end_ms": self.clock(), "lease_expires_ms": None}
            if not self.repo.update_trial_if(conn, trial.id, TrialState.ACTIVE, **ending):
                # Lost a race (a tell, which needs no study lock): answer as a repeated call would.
                trial = self._trial(conn, trial_id)
                if self._handed_back(trial, worker_id):
                    return trial
                self._leased_trial(conn, trial, worker_id)  # raises: the trial is no longer ACTIVE
                raise Aborted(f"trial {trial_id} changed state while it was being released; retry")
            if study.state is not StudyState.COMPLETED:
                self._queue_copy(conn, study, trial, ending["end_ms"], attempt=trial.attempt)
            return replace(trial, **ending)

        return self.db.run(work, write=True)

    @staticmethod
    def _handed_back(trial: Trial, worker_id: str) -> bool:
        """Whether ``trial`` is STALE because its lease holder (``worker_id``, when given) released it."""
        if trial.state is not TrialState.STALE or (worker_id and worker_id != trial.worker_id):
            return False
        prefix = _HANDED_BACK.format(worker=trial.worker_id)
        return trial.reason == prefix or trial.reason.startswith(prefix + ": ")

    def link_run(self, trial_id: int, worker_id: str, run_id: str) -> Trial:
        """Records the tracking run of a trial; the same run again is a no-op, another is refused."""
        if not _RUN_ID.fullmatch(run_id):
            raise InvalidArgument("run_id", f"must be 32 lowercase hex characters, got {run_id!r:.80}")

        def work(conn: Connection) -> Trial:
            trial = self._trial(conn, trial_id)
            if trial.run_id == run_id:
                return trial
            if trial.run_id is not None:
                raise FailedPrecondition(f"trial {trial_id} is recorded by run {trial.run_id} already",
                                         reason="RUN_ALREADY_LINKED")
            self._leased_trial(conn, trial, worker_id)
            if not self.repo.update_trial_if(conn, trial.id, TrialState.ACTIVE, run_id=run_id):
                raise Aborted(f"trial {trial_id} changed state while its run was being linked; retry")
            return self._trial(conn, trial_id)

        return self.db.run(work, write=True)

    def _lease_ms(self, conn: Connection, trial: Trial) -> int:
        return int(self.repo.study_spec(conn, trial.study_id).lease_seconds * 1000)

    def complete_trial(
        self, trial_id: int, worker_id: str, outcome: Outcome | None, metrics: Metrics, reason: str,
        constraints: Sequence[float] = (),
    ) -> Trial:
        if outcome is None:
            raise InvalidArgument("outcome", "must be SUCCEEDED, PRUNED, FAILED or INFEASIBLE")
        metrics = check_metrics("metrics", metrics, required=False)
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument("reason", f"at most {MAX_REASON_CHARS} characters, got {len(reason)}")

        def work(conn: Connection) -> Trial:
            trial = self._trial(conn, trial_id)
            spec = self.repo.study_spec(conn, trial.study_id)
            final = _final_metrics(spec, outcome, metrics, trial)
            values = check_constraints("constraints", constraints, spec.constraints,
                                       required=outcome is Outcome.SUCCEEDED)
            if trial.state.finished:
                return self._repeat_tell(conn, trial, outcome, final, values)
            retry = outcome is Outcome.FAILED and spec.retry_policy.retry_failed
            # Tells of a study watched for BEST_IMPROVED serialise on its row, so each compares with
            # every success committed before it and two concurrent ones cannot both be "the new best".
            watched = outcome is Outcome.SUCCEEDED and WEBHOOKS.wanted(conn, WebhookEvent.BEST_IMPROVED,
                                                                       trial.study_name)
            if retry or watched:
                # Lock order is always study, then trial (the ask path does the same).
                study = self.repo.find_study(conn, study_id=trial.study_id, lock=True)
                trial = self._trial(conn, trial_id)
            trial = self._leased_trial(conn, trial, worker_id)
            ending = {"state": outcome.value, "metrics": final, "reason": reason,
                      "end_ms": self.clock(), "lease_expires_ms": None, "constraints": values}
            stored = {**ending, "metrics": [list(m) for m in final],
                      "constraints": None if values is None else list(values)}
            if not self.repo.update_trial_if(conn, trial.id, TrialState.ACTIVE, **stored):
                # Lost a race with the lease reaper: answer as if the tell came after it.
                return self._repeat_tell(conn, self._trial(conn, trial_id), outcome, final, values)
            if retry:
                self._maybe_retry(conn, study, trial, ending["end_ms"])
            if watched:
                self._best_maybe_improved(conn, study, replace(trial, **ending), ending["end_ms"])
            return replace(trial, **ending)

        trial = self.db.run(work, write=True)
        self.models.prefetch(trial.study_id)  # a busy model-based study's next batch, computed ahead
        return trial

    def _repeat_tell(self, conn: Connection, trial: Trial, outcome: Outcome, metrics: Metrics,
                     constraints: tuple[float, ...] | None) -> Trial:
        if trial.state is outcome.value and trial.metrics == metrics and trial.constraints == constraints:
            return trial  # the same tell again: idempotent
        self._raise_finished(conn, trial)

    def _raise_finished(self, conn: Connection, trial: Trial) -> None:
        if trial.state is TrialState.STALE:
            retry = self.repo.retry_of(conn, trial.id)
            then = f"; its configuration was queued again as trial {retry}" if retry else ""
            how = "its worker handed it back" if trial.reason.startswith("handed back by worker ") else "it expired"
            raise FailedPrecondition(
                f"trial {trial.id} lost its lease ({how} and the trial went stale){then}", reason="LEASE_LOST"
            )
        raise FailedPrecondition(
            f"trial {trial.id} already finished as {trial.state.value}", reason="TRIAL_ALREADY_FINISHED"
        )

    # --- webhook events: queued in the transaction of the change (the outbox) ----------

    def _complete_study(self, conn: Connection, study: Study, now: int, because: CompletedBecause) -> None:
        self.repo.set_study_state(conn, study.id, StudyState.COMPLETED, now)
        WEBHOOKS.enqueue(conn, WebhookEvent.STUDY_COMPLETED, study.name, now,
                         {"study": study.name, "reason": because.value, "trial": None}, {"study_name": study.name})

    def _budget_spent(self, conn: Connection, study: Study, last: Trial, now: int) -> None:
        """``last``: the trial that used the last of max_trials. Needs the study lock."""
        WEBHOOKS.enqueue(conn, WebhookEvent.BUDGET_SPENT, study.name, now,
                         {"study": study.name, "reason": "", "trial": trial_payload(last, study.spec)},
                         {"study_name": study.name, "trial_number": last.number})

    def _best_maybe_improved(self, conn: Connection, study: Study, trial: Trial, now: int) -> None:
        """``trial``: just completed, in this transaction. Needs the study lock."""
        if improves(trial, self.repo.completed_results(conn, study.id, trial.id), study.spec):
            WEBHOOKS.enqueue(conn, WebhookEvent.BEST_IMPROVED, study.name, now,
                             {"study": study.name, "reason": "", "trial": trial_payload(trial, study.spec)},
                             {"study_name": study.name, "trial_number": trial.number})

    # --- trials ----------------------------------------------------------------------

    def create_trial(self, study_name: str, params: Assignment) -> Trial:
        check_name("study", study_name, "study name")

        def work(conn: Connection) -> Trial:
            study = self._study(conn, study_name, lock=True)
            assignment = study.spec.space.complete(params, "parameters")
            if study.state is StudyState.COMPLETED:
                raise FailedPrecondition(f"study {study_name!r} is completed", reason="STUDY_COMPLETED")
            algorithm, _ = self._components(study.id, study.spec)
            if not algorithm.accepts_user_trials:
                raise FailedPrecondition(f"study {study_name!r} runs {algorithm.name}, whose trials are segments it "
                                         "schedules itself: it takes no hand-made trial", reason="ALGORITHM_ONLY")
            if _remaining(study.spec.max_trials, study.budget_used) <= 0:
                raise ResourceExhausted(
                    f"study {study_name!r} already has max_trials ({study.spec.max_trials}) trials",
                    reason="BUDGET_SPENT",
                )
            number = self.repo.advance_counters(conn, study.id, trials_=1, budget=1)
            now = self.clock()
            [trial] = self.repo.insert_trials(conn, study.name, [{
                "study_id": study.id, "number": number, "state": TrialState.QUEUED.value,
                "source": TrialSource.USER.value, "params": assignment, "budget": _full_budget(study.spec),
                "attempt": 0, "create_ms": now,
            }])
            if study.spec.max_trials and study.budget_used + 1 == study.spec.max_trials:
                self._budget_spent(conn, study, trial, now)
            return trial

        return self.db.run(work, write=True)

    def get_trial(self, trial_id: int) -> Trial:
        return self.db.run(lambda conn: self._trial(conn, trial_id), write=False)

    def list_trials(
        self, study_name: str, states: Sequence[TrialState], page_size: int, page_token: str,
        after_number: int | None = None,
    ) -> tuple[list[Trial], str]:
        check_name("study", study_name, "study name")
        limit = _page_size(page_size)
        after = _decode_token(page_token, int)
        if after_number is not None:
            after = after_number if after is None else max(after, after_number)

        def work(conn: Connection) -> tuple[list[Trial], str]:
            study = self._study(conn, study_name)
            page = self.repo.list_trials(conn, study.id, states, after, limit + 1)
            more, page = len(page) > limit, page[:limit]
            return page, _encode_token(page[-1].number) if more else ""

        return self.db.run(work, write=False)

    def list_measurements(self, trial_id: int) -> list[Measurement]:
        def work(conn: Connection) -> list[Measurement]:
            return self.repo.list_measurements(conn, self._trial(conn, trial_id).id)

        return self.db.run(work, write=False)

    def best_trials(self, study_name: str) -> BestTrials:
        check_name("study", study_name, "study name")

        def work(conn: Connection) -> BestTrials:
            study = self._study(conn, study_name)
            completed = self.repo.list_trials(conn, study.id, [TrialState.COMPLETED], None, None)
            # A trial that violates a constraint is never a best trial, however good its value.
            return best_trials([t for t in completed if t.feasible is not False], study.spec.objectives)

        return self.db.run(work, write=False)

    def population(self, study_name: str) -> list[tuple[int, list[Trial]]]:
        """A pbt study's members, each with its segments' trials by number (every attempt)."""
        check_name("study", study_name, "study name")

        def work(conn: Connection) -> list[tuple[int, list[Trial]]]:
            study = self._study(conn, study_name)
            if study.spec.algorithm.name != "pbt":
                raise FailedPrecondition(f"study {study_name!r} runs {study.spec.algorithm.name!r}, not pbt: "
                                         "it has no population", reason="NOT_PBT")
            members: dict[int, list[Trial]] = {}
            for trial in self.repo.list_trials(conn, study.id, [], None, None):
                if (segment := trial.pbt_segment) is not None:
                    members.setdefault(segment.member, []).append(trial)
            return sorted(members.items())

        return self.db.run(work, write=False)

    def parameter_importance(self, study_name: str, objective: str) -> tuple[str, Importance]:
        """``objective``'s (default: the first objective's) importance of each non-fixed parameter,
        from the completed trials (``algorithms/importance.py``).

        Completed trials never change and ids are never reused, so (study id, objective, number of
        completed trials) identifies the input, and an answer is cached under it.
        """
        check_name("study", study_name, "study name")

        def work(conn: Connection) -> tuple[Study, str, list[Trial]]:
            study = self._study(conn, study_name)
            metrics = study.spec.metric_names
            if objective and objective not in metrics:
                raise InvalidArgument("objective", f"{objective!r} is not an objective of study {study_name!r} "
                                                   f"(its objectives: {', '.join(metrics)})")
            return study, objective or metrics[0], self.repo.list_trials(conn, study.id, [TrialState.COMPLETED],
                                                                         None, None)

        with telemetry.span("compute parameter importance", study=study_name) as span:
            study, metric, completed = self.db.run(work, write=False)
            rows = [(t.params, value) for t in completed if (value := dict(t.metrics).get(metric)) is not None]
            telemetry.set_attributes(span, count=len(rows))
            if len(rows) < MIN_TRIALS:
                raise FailedPrecondition(
                    f"parameter importance needs at least {MIN_TRIALS} completed trials ({len(rows)} so far)",
                    reason="TOO_FEW_TRIALS", metadata={"min_trials": str(MIN_TRIALS), "trials": str(len(rows))})
            key = (study.id, metric, len(rows))
            with self._importances_lock:
                cached = self._importances.get(key)
                if cached is not None:
                    self._importances.move_to_end(key)
                    return metric, cached
            result = parameter_importance(study.spec.space, [p for p, _ in rows], [v for _, v in rows],
                                          seed=study.spec.seed or 0)
            with self._importances_lock:
                self._importances[key] = result
                while len(self._importances) > IMPORTANCE_CACHE:
                    self._importances.popitem(last=False)
            return metric, result

    # --- helpers ---------------------------------------------------------------------

    def _study(self, conn: Connection, name: str, lock: bool = False) -> Study:
        study = self.repo.find_study(conn, name=name, lock=lock)
        if study is None:
            raise NotFound(f"study {name!r} does not exist", reason="STUDY_NOT_FOUND")
        return study

    def _trial(self, conn: Connection, trial_id: int) -> Trial:
        if trial_id <= 0:
            raise InvalidArgument("trial_id", f"must be positive, got {trial_id}")
        trial = self.repo.get_trial(conn, trial_id)
        if trial is None:
            raise NotFound(f"trial {trial_id} does not exist", reason="TRIAL_NOT_FOUND")
        return trial

    def _leased_trial(self, conn: Connection, trial: Trial, worker_id: str) -> Trial:
        """``trial``, if it is ACTIVE and leased to ``worker_id`` (when given)."""
        if len(worker_id) > MAX_ID_CHARS:
            raise InvalidArgument("worker_id", f"at most {MAX_ID_CHARS} characters")
        if trial.state.finished:
            self._raise_finished(conn, trial)
        if trial.state is not TrialState.ACTIVE:
            raise FailedPrecondition(
                f"trial {trial.id} is {trial.state.value}, not ACTIVE: only a leased trial accepts this",
                reason="TRIAL_NOT_ACTIVE",
            )
        if worker_id and worker_id != trial.worker_id:
            raise FailedPrecondition(
                f"trial {trial.id} is leased to worker {trial.worker_id!r}, not {worker_id!r}",
                reason="LEASED_TO_ANOTHER_WORKER",
            )
        return trial


# Ask attempts whose proposals, computed outside the lock, went stale before the commit; the
# last attempt computes under the lock.
_ASK_ATTEMPTS = 3


@dataclass(frozen=True)
class _AskPlan:
    study: Study
    new: int  # new suggestions the ask will likely need
    limit: int  # how many the study could take now (a batch for the asks that come next)
    finished: int = 0  # the study's finished trials, and its running or queued ones, as read
    running: int = 0


class _StaleProposals(Exception):
    """The study moved on while the ask computed: roll back and ask again."""


class _Supply:
    """An ask's proposals, computed outside the lock, checked under it (model_work.Batch.is_fresh;
    no trial created since may have the same configuration)."""

    def __init__(self, service: SuggestionService, proposals: list[Proposal], last: bool):
        self.service, self.proposals, self.last = service, proposals, last
        self.unused: list[Proposal] = []

    def take(self, conn: Connection, study: Study, count: int) -> list[Suggestion]:
        models = self.service.models
        history = models.work(study).history
        with history.lock:
            history.refresh(conn, self.service.repo)
            finished, running = len(history.arrival), len(history.pending)
            created: dict[int, set] = {}
            fresh = []
            for proposal in self.proposals:
                batch = proposal.batch
                if not batch.is_fresh(finished, running):
                    continue
                if id(batch) not in created:
                    created[id(batch)] = {config_key(v.params) for v in history.created_since(batch.snapshot)}
                if config_key(proposal.suggestion.params) not in created[id(batch)]:
                    fresh.append(proposal)
            exhausted = any(len(p.batch.suggestions) < p.batch.size for p in self.proposals)
            if len(fresh) >= count or (exhausted and len(fresh) == len(self.proposals)):
                self.unused = fresh[count:]
                return [p.stamped() for p in fresh[:count]]
            if not self.last:
                raise _StaleProposals()
            snapshot = history.snapshot()
        return models.compute_now(history, snapshot, study, count)


def _what_ended(spec: StudySpec, budget_left: float) -> str:
    return f"all {spec.max_trials} trials were created" if budget_left <= 0 else "the search space is exhausted"


def _check_pruned_values(given: dict[str, float], trial: Trial) -> None:
    """A pruned trial has no final values: where it stopped is its last report (an
    intermediate value, often better than a finished trial's, so it must never read as a
    result). Values sent with the prune may only repeat that report."""
    last = trial.last_measurement
    reported = {} if last is None else dict(last.metrics)
    for name, value in given.items():
        if reported.get(name) == value:
            continue
        if last is None:
            found = "it reported nothing"
        elif name in reported:
            found = f"its last report (step {last.step}) has {name}={reported[name]!r}"
        else:
            found = f"its last report (step {last.step}) has no {name!r}"
        raise InvalidArgument(f"metrics.{name}", "a pruned trial keeps no final values, only its last report, and "
                              f"{found}: report {name} with ReportIntermediate before pruning, or send no metrics")


def _done(study: Study, budget_left: float) -> SuggestResult:
    """The DONE answer of a study whose budget or space is spent (needs nothing running)."""
    reason = DoneReason.BUDGET_SPENT if budget_left <= 0 else DoneReason.SPACE_EXHAUSTED
    return SuggestResult([], SuggestStatus.DONE, reason,
                         f"study {study.name!r} is done: {_what_ended(study.spec, budget_left)}")


def _full_budget(spec: StudySpec) -> float | None:
    return None if spec.fidelity is None else spec.fidelity.max


def _remaining(limit: int | None, used: int) -> float:
    return float("inf") if not limit else limit - used


def _final_metrics(spec: StudySpec, outcome: Outcome, metrics: Metrics, trial: Trial) -> Metrics:
    """Objective values first (in objective order), then the rest as given; none for a pruned trial."""
    given = dict(metrics)
    if outcome is Outcome.PRUNED:
        _check_pruned_values(given, trial)
        return ()
    if outcome is Outcome.SUCCEEDED:
        for name in spec.metric_names:
            if name not in given:
                raise InvalidArgument("metrics", f"a value for objective {name!r} is required to succeed")
    names = [n for n in spec.metric_names if n in given] + [n for n in given if n not in spec.metric_names]
    return tuple((name, given[name]) for name in names)
