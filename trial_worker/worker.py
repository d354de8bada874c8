"""The trial worker: ask -> train -> report -> tell, on as many machines as you like.

    worker = Worker(train, WorkerConfig(study="wine-xgb", parallel=2))
    summary = worker.run()        # until the study is done (or max_trials, or stop())

Each of ``parallel`` slots (threads) loops: lease a trial, open its tracking run (linked both
ways with the trial), call ``train(ctx)``, then tell the outcome and end the run. One
background thread renews the leases of running trials between reports.

Nothing here is durable: a worker killed at any moment loses at most its running trials,
whose leases expire and whose retries go to other workers. :meth:`Worker.stop` asks no
more trials and lets the running ones finish; :meth:`Worker.hand_back` gives the running
ones back to the study at once (ReleaseTrial), which is what a second SIGTERM or the end of
the grace period does.

While a service restarts, calls are retried with backoff for ``reconnect_seconds``; a
report that cannot get through is skipped (training goes on) and the tracking logger spools
what it cannot send.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trial_worker.client import Study, SuggestionClient, Trial, default_worker_id
from trial_worker.context import TrialContext, bind, final_metrics
from trial_worker.exceptions import LeaseLost, TrialPruned
from trial_worker.tracking import provenance
from trial_worker.tracking.client import TrackingClient
from trial_worker.tracking.fluent import trial_link
from trial_worker.tracking.logger import RunLogger
from tuning.suggestion.v1 import study_pb2 as spb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning_common import telemetry
from tuning_common.errors import DeadlineExceeded, FailedPrecondition, NotFound, TuningError, Unavailable
from tuning_common.grpc_errors import MAX_BACKOFF
from tuning_types.search import quote_string

log = logging.getLogger(__name__)

TrainFunction = Callable[[TrialContext], Any]

# Outcomes of one trial, as the worker saw it.
COMPLETED, PRUNED, FAILED, LOST = "COMPLETED", "PRUNED", "FAILED", "LOST"
OUTCOMES = (COMPLETED, PRUNED, FAILED, LOST)
END_TIMEOUT = 30.0
# A failed trial's reason: the exception's whole message (a command's stderr tail spans lines),
# its end kept when longer than the suggestion service takes (ReleaseTrial/CompleteTrial: 4096).
MAX_ERROR_CHARS = 4096
# After a hand-back, how long run() waits for train functions that do not report (and so
# cannot be told to stop): short, since Ctrl-C must be answered within a couple of seconds.
ABANDON_SECONDS = 1.0
# Trial ids per SearchRuns filter: well within its 10,000 characters.
_IDS_PER_SEARCH = 400


@dataclass(frozen=True)
class WorkerConfig:
    study: str
    suggestion_address: str | None = None
    tracking_address: str | None = None
    # False: no tracking runs (the suggestion service alone).
    tracking: bool = True
    # Experiment of the trials' runs; default: the study's name.
    experiment: str | None = None
    parallel: int = 1
    # Trials this worker runs at most (0: until the study is done).
    max_trials: int = 0
    worker_id: str | None = None
    # How long calls keep retrying while a service is unreachable.
    reconnect_seconds: float = 120.0
    # Stop with an error after this many train failures in a row (0: never); a broken train
    # function should not burn the whole study.
    max_consecutive_failures: int = 5
    spool_dir: str | None = None
    # Keep waiting when the study is done, stopped or not created yet, instead of stopping: for
    # workers run as a Kubernetes Deployment, which restarts whatever exits.
    wait_for_work: bool = False
    poll_seconds: float = 10.0

    def validate(self) -> None:
        if self.parallel < 1:
            raise ValueError(f"parallel must be 1 or more, got {self.parallel}")
        if self.max_trials < 0:
            raise ValueError(f"max_trials must be 0 (no limit) or more, got {self.max_trials}")
        if self.poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be positive, got {self.poll_seconds}")


@dataclass(frozen=True)
class TrialResult:
    number: int
    trial_id: int
    outcome: str
    params: dict[str, Any]
    metrics: dict[str, float]
    run_id: str | None
    seconds: float
    worker_id: str
    error: str = ""


@dataclass
class WorkerSummary:
    results: list[TrialResult] = field(default_factory=list)
    # Why the worker stopped: "study done", "max_trials", "stopped", or an error.
    reason: str = ""

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    def counts(self) -> dict[str, int]:
        return {outcome: self.count(outcome) for outcome in OUTCOMES}


def describe_counts(counts: Mapping[str, int]) -> str:
    """``3 completed, 1 pruned, 0 failed, 0 lost``."""
    return ", ".join(f"{counts.get(outcome, 0)} {outcome.lower()}" for outcome in OUTCOMES)


def print_result(result: TrialResult) -> None:
    """One line per finished trial, as the command-line workers print them."""
    metrics = " ".join(f"{k}={v:.6g}" for k, v in sorted(result.metrics.items()))
    print(f"trial {result.number}: {result.outcome.lower()} in {result.seconds:.1f} s {metrics}".rstrip(), flush=True)


def retries_for(seconds: float, backoff: float = 0.1, max_backoff: float = MAX_BACKOFF) -> int:
    """How many retries of a doubling backoff (capped at ``max_backoff``) span ``seconds``."""
    retries, delay, spent = 0, backoff, 0.0
    while spent < seconds:
        spent += delay
        delay = min(delay * 2, max_backoff)
        retries += 1
    return retries


def _check_checkpoint(ctx: TrialContext) -> None:
    """A pbt segment that saved no checkpoint would leave its member's next segment nothing to load."""
    segment = ctx.pbt_segment
    if segment is not None and not segment.last and not ctx.checkpoint_saved:
        raise TuningError(f"pbt segment {segment.generation} of member {segment.member} saved no checkpoint: "
                          f"call ctx.save_checkpoint(path) before returning (the next segment loads it)")


class Worker:
    def __init__(self, train: TrainFunction, config: WorkerConfig, *,
                 on_result: Callable[[TrialResult], None] | None = None):
        config.validate()
        self.train = train
        self.config = config
        self.worker_id = config.worker_id or default_worker_id()
        self.host = socket.gethostname()
        self.on_result = on_result
        retries = retries_for(config.reconnect_seconds)
        self.suggestion = SuggestionClient(config.suggestion_address, retries=retries)
        self.tracking = TrackingClient(config.tracking_address, retries=retries) if config.tracking else None
        self.logger = RunLogger(self.tracking, spool_dir=config.spool_dir) if self.tracking else None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # trial id -> the trial, its context and its trace (see _run_trial)
        self._active: dict[int, tuple[Trial, TrialContext, Any]] = {}
        self._started = 0
        self._failures_in_a_row = 0
        self._summary = WorkerSummary()
        self._experiment_id: int | None = None
        self._study: Study | None = None  # set by run()
        self._algorithm = ""
        self._handed_back_at: float | None = None
        # Git and package versions cannot change under a running worker: look them up once.
        self._source_tags = provenance.source_tags() if self.tracking else {}

    # --- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask no more trials; the running ones finish."""
        self._stopping.set()

    def hand_back(self, reason: str = "the worker is shutting down") -> int:
        """Gives every running trial back to the study now; returns how many were handed back."""
        self._stopping.set()
        self._handed_back_at = time.monotonic()
        with self._lock:
            running = list(self._active.values())
        handed = 0
        for trial, ctx, _ in running:
            ctx.lose(f"handed back: {reason}")
            try:
                trial.release(reason)
                handed += 1
            except TuningError as error:  # finished meanwhile, or the lease was already lost
                log.info("trial %d not handed back: %s", trial.number, error)
        return handed

    def _abandoned(self) -> bool:
        """After a hand-back, a train function that never reports cannot be interrupted: stop waiting."""
        return self._handed_back_at is not None and time.monotonic() > self._handed_back_at + ABANDON_SECONDS

    def running(self) -> int:
        with self._lock:
            return len(self._active)

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> WorkerSummary:
        with telemetry.span("start worker", study=self.config.study, worker=self.worker_id):
            study = self._study = self._find_study()
            if study is None:  # stopped while waiting for the study to be created
                self._finish_logging()
                self._summary.reason = "stopped"
                return self._summary
            self._algorithm = study.info.spec.algorithm.name
            if self.tracking is not None:
                self._experiment_id = self.tracking.get_or_create_experiment(
                    self.config.experiment or study.name).id
        spec = study.info.spec
        lease_seconds = spec.lease_duration.ToTimedelta().total_seconds() if spec.HasField("lease_duration") else 120.0
        beats = threading.Thread(target=self._heartbeats, args=(lease_seconds,),
                                 name="heartbeats", daemon=True)
        beats.start()
        slots = [threading.Thread(target=self._slot, args=(index,), name=f"slot-{index}", daemon=True)
                 for index in range(self.config.parallel)]
        try:
            for slot in slots:
                slot.start()
            for slot in slots:
                while slot.is_alive() and not self._abandoned():
                    slot.join(0.2)
            if self._summary.reason == "study done" and self.tracking is not None:
                self._end_runs_of_stale_trials(study)
        finally:
            self._stopping.set()
            self._finish_logging()
        if not self._summary.reason:
            self._summary.reason = "stopped"
        return self._summary

    def _find_study(self) -> Study | None:
        while True:
            try:
                return self.suggestion.get_study(self.config.study)
            except NotFound:
                if not self.config.wait_for_work:
                    raise
            log.info("study %s does not exist yet; waiting for it", self.config.study)
            if self._stopping.wait(self.config.poll_seconds):
                return None

    def close(self) -> None:
        self.suggestion.close()
        if self.tracking is not None:
            self.tracking.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _finish_logging(self) -> None:
        if self.logger is None:
            return
        try:
            self.logger.close(0.0 if self.logger.spooled else END_TIMEOUT)
        except TuningError as error:
            log.warning("tracking data left in the spool: %s", error)

    def _claim(self) -> bool:
        with self._lock:
            if self.config.max_trials and self._started >= self.config.max_trials:
                self._summary.reason = self._summary.reason or "max_trials"
                return False
            self._started += 1
            return True

    def _unclaim(self) -> None:
        with self._lock:
            self._started -= 1

    def _slot(self, index: int) -> None:
        worker_id = self.worker_id if self.config.parallel == 1 else f"{self.worker_id}-{index}"
        study = Study(self.suggestion, self._study.info, worker_id=worker_id)
        try:
            while not self._stopping.is_set() and self._claim():
                # One trace per trial: the ask, the training and its reports, the tell, the run's writes.
                with telemetry.span("run trial", study=study.name, worker=worker_id) as span:
                    trial = self._ask(study)
                    if trial is not None and self._stopping.is_set():
                        trial = self._give_back_unstarted(trial)
                    if trial is not None:
                        telemetry.set_attributes(span, trial_id=trial.id, trial_number=trial.number)
                        result = self._run_trial(trial)
                        telemetry.set_attributes(span, trial_state=result.outcome, run_id=result.run_id)
                if trial is None:
                    self._unclaim()
                    if self.config.wait_for_work and not self._stopping.is_set():
                        self._stopping.wait(self.config.poll_seconds)  # no work now: look again later
                        continue
                    return
                self._record(result)
        except Exception as error:  # a slot must never die silently
            if self._abandoned():
                # run() has returned and closed the clients under this slot's train function, which
                # did not stop when its trial was handed back: its errors now are that, and noise.
                log.debug("abandoned worker slot %d stopped: %s", index, error)
                return
            log.exception("worker slot %d stopped", index)
            self._summary.reason = f"error: {error}"
            self._stopping.set()

    def _ask(self, study: Study) -> Trial | None:
        """A trial, or None: stopping, or no work (the study is done; with ``wait_for_work`` also
        stopped or deleted, and the caller waits)."""
        while not self._stopping.is_set():
            try:
                trials = study.ask_batch(1, wait=False)
            except NotFound:
                if self.config.wait_for_work:
                    return None
                raise
            if trials:
                return trials[0]
            answer = study.last_suggest
            if answer.status == api.SUGGEST_STATUS_DONE:
                if self.config.wait_for_work:
                    return None
                self._summary.reason = self._summary.reason or "study done"
                self._stopping.set()
                return None
            self._stopping.wait(answer.retry_after.ToTimedelta().total_seconds() or 0.5)
        return None

    def _give_back_unstarted(self, trial: Trial) -> None:
        """A trial leased while the worker was told to stop (the ask was under way): it never
        starts, and goes back to the study at once instead of waiting for its lease to expire."""
        try:
            trial.release("the worker stopped before the trial started")
        except TuningError as error:
            log.info("trial %d not handed back: %s", trial.number, error)
        return None

    def _record(self, result: TrialResult) -> None:
        with self._lock:
            self._summary.results.append(result)
            if result.outcome == FAILED:
                self._failures_in_a_row += 1
            elif result.outcome in (COMPLETED, PRUNED):
                self._failures_in_a_row = 0
            limit = self.config.max_consecutive_failures
            if limit and self._failures_in_a_row >= limit:
                self._summary.reason = (f"error: the train function failed {limit} times in a row; "
                                        f"the last error: {result.error.splitlines()[-1] if result.error else '?'}")
                self._stopping.set()
        if self.on_result is not None:
            self.on_result(result)

    # --- one trial ---------------------------------------------------------------------------

    def _open_run(self, trial: Trial) -> str | None:
        if self.tracking is None:
            return None
        tags = {
            "tuning.study": trial.study.name, "tuning.trial_number": str(trial.number),
            "tuning.trial_id": str(trial.id), "tuning.worker": trial.study.worker_id, "tuning.host": self.host,
            "tuning.algorithm": self._algorithm, **self._source_tags,
        }
        if trial.budget is not None:
            tags["tuning.budget"] = f"{trial.budget:g}"
        if (segment := trial.pbt_segment) is not None:  # the lineage, readable from the tracking side too
            tags.update({"tuning.pbt.member": str(segment.member), "tuning.pbt.generation": str(segment.generation)})
            if segment.HasField("parent_trial_id"):
                tags["tuning.pbt.parent_trial_id"] = str(segment.parent_trial_id)
        run = self.tracking.create_run(self._experiment_id, name=f"{trial.study.name}-{trial.number}", tags=tags,
                                       run_group=trial.study.name, trial=trial_link(trial))
        self.logger.trace_run(run.id, telemetry.current_context())
        try:
            trial.link_run(run.id)
        except FailedPrecondition:  # the lease expired while the run was created: it never trains
            self._end_run(run.id, LOST, "")
            raise
        self.logger.log_params(run.id, trial.params)
        if trial.info.HasField("retry_of"):
            try:
                self._end_lost_runs(trial.study.name, [trial.info.retry_of])
            except TuningError as error:  # housekeeping: never worth failing the retry over
                log.warning("trial %d: could not end the runs of the attempt it retries: %s", trial.number, error)
        return run.id

    def _end_lost_runs(self, study: str, trial_ids: Iterable[int]) -> None:
        """Ends as KILLED the runs of ``trial_ids``, attempts that lost their lease.

        Their workers died or were cut off: a run would otherwise stay RUNNING for good, or
        FINISHED when its worker died between ending it and a tell the study would have refused.
        Runs are found by their trial link rather than the trial's run id, so a run created just
        before its worker died, never linked, is ended too. Called for the attempt a retry
        replaces when the retry starts, and for every STALE trial when the study is done (a cut-off
        worker's late writes may land after the retry started).
        """
        ids = sorted(set(trial_ids))
        for start in range(0, len(ids), _IDS_PER_SEARCH):
            query = (f"attributes.trial_study = {quote_string(study)} and attributes.status != 'KILLED' "
                     f"and attributes.trial_id IN ({', '.join(map(str, ids[start:start + _IDS_PER_SEARCH]))})")
            for run in self.tracking.search_runs([self._experiment_id], query):
                self._end_run(run.id, LOST, "")
                log.info("ended run %s of trial %d, which lost its lease, as KILLED", run.id, run.trial.trial_id)

    def _end_runs_of_stale_trials(self, study: Study) -> None:
        try:
            self._end_lost_runs(study.name, (t.id for t in study.trials(spb.TRIAL_STATE_STALE)))
        except TuningError as error:  # housekeeping: a later worker tries again
            log.warning("could not end the runs of the trials of %s that lost their lease: %s", study.name, error)

    def _run_trial(self, trial: Trial) -> TrialResult:
        started = time.perf_counter()
        try:
            run_id = self._open_run(trial)
        except FailedPrecondition as error:  # the lease was lost before training started
            log.warning("trial %d of %s: %s", trial.number, trial.study.name, error)
            return TrialResult(trial.number, trial.id, LOST, trial.params, {}, None, time.perf_counter() - started,
                               trial.study.worker_id, str(error))
        ctx = TrialContext(trial, run_id=run_id, logger=self.logger, tracking=self.tracking)
        with self._lock:
            self._active[trial.id] = (trial, ctx, telemetry.current_context())
            # hand_back() sets this before it looks at the running trials: a trial it did not see
            # (its run was being opened) is handed back here, and never trains.
            handed_back = self._handed_back_at is not None
        if handed_back:
            self._give_back_unstarted(trial)
            ctx.lose("handed back before it started")
        outcome, metrics, error = COMPLETED, {}, ""
        bind(ctx)
        try:
            if not handed_back:
                with telemetry.span("train trial", expected=(TrialPruned, LeaseLost), trial_id=trial.id):
                    result = self.train(ctx)
                if not ctx.should_stop:
                    metrics = final_metrics(result, ctx)
                    _check_checkpoint(ctx)
        except TrialPruned:
            pass
        except LeaseLost as lost:
            ctx.lose(str(lost))
        except Exception as exc:  # the user's code failed: the trial fails, the worker goes on
            outcome, error = FAILED, "".join(traceback.format_exception_only(exc)).strip()[-MAX_ERROR_CHARS:]
            # Once handed back, the trial is not this worker's: a failure then is no news (it comes
            # from the hand-back itself, a closed run for one).
            log.log(logging.INFO if ctx.lost else logging.WARNING, "trial %d of %s failed: %s", trial.number,
                    trial.study.name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            bind(None)
            ctx.close()
            with self._lock:
                self._active.pop(trial.id, None)
        if ctx.lost:
            outcome = LOST
        elif outcome != FAILED and ctx.pruned:
            outcome = PRUNED
        outcome = self._finish(trial, ctx, outcome, metrics, error)
        return TrialResult(trial.number, trial.id, outcome, trial.params, metrics or dict(ctx.last_metrics),
                           run_id, time.perf_counter() - started, trial.study.worker_id,
                           error or (ctx.lost or ""))

    def _finish(self, trial: Trial, ctx: TrialContext, outcome: str, metrics: dict[str, float], error: str) -> str:
        """Stores the run's last data and ends it, tells the study; returns the outcome.

        The run is ended, and its data stored, before the trial shows as finished (unless the
        tracking service is down: then they wait in the spool). When the study takes the trial
        otherwise (a tell refused because the lease was lost, a result it rejects), the run is
        ended again as the study took it; when the worker dies before that, the retry's worker
        ends the run (:meth:`_end_lost_runs`).
        """
        run_id = ctx.run_id
        if run_id is not None:
            if metrics:
                self.logger.log_metrics(run_id, metrics, ctx.last_step or 0)
            if ctx.constraints:
                # The run shows what the study judged feasibility by (MLflow has no constraints).
                self.logger.log_metrics(run_id, {f"constraint.{name}": value for name, value in ctx.constraints.items()},
                                        ctx.last_step or 0)
                self.logger.set_tags(run_id, {"tuning.feasible": str(all(v <= 0 for v in ctx.constraints.values()))})
            if outcome != LOST:
                outcome = self._still_leased(trial, ctx, outcome)
            self._end_run(run_id, outcome, error)
            try:
                self.logger.settle(END_TIMEOUT)
            except (Unavailable, DeadlineExceeded) as problem:
                log.warning("run %s of trial %d is spooled: %s", run_id, trial.number, problem)
            except TuningError as problem:
                log.warning("run %s of trial %d: the tracking service refused some data: %s",
                            run_id, trial.number, problem)
        told, error = self._tell(trial, ctx, outcome, metrics, error)
        if run_id is not None and told != outcome:
            self._end_run(run_id, told, error)
        return told

    def _still_leased(self, trial: Trial, ctx: TrialContext, outcome: str) -> str:
        """``outcome``, or LOST when the trial's lease is gone (say the worker was cut off while
        training): then its run must not end as a success the study never took."""
        try:
            trial.heartbeat(retries=1)
        except FailedPrecondition as problem:
            ctx.lose(str(problem))
            log.warning("trial %d of %s: %s", trial.number, trial.study.name, problem)
            return LOST
        except TuningError:  # unreachable now: the tell will find out
            pass
        return outcome

    def _tell(self, trial: Trial, ctx: TrialContext, outcome: str, metrics: dict[str, float],
              error: str) -> tuple[str, str]:
        """Tells the study ``outcome``; returns the outcome it took and its error."""
        if outcome == LOST:
            return LOST, error
        try:
            if outcome == COMPLETED:
                trial.study.tell(trial, metrics, constraints=ctx.constraints or None)
            elif outcome == PRUNED:
                # Where it stopped is its last report, which the study already holds.
                trial.study.prune(trial)
            else:
                trial.study.fail(trial, error or "failed")
        except FailedPrecondition as problem:  # the lease was lost: the study has moved on without this result
            ctx.lose(str(problem))
            log.warning("trial %d of %s: %s", trial.number, trial.study.name, problem)
            outcome = LOST
        except TuningError as problem:
            if outcome != COMPLETED:
                raise
            # E.g. a final metrics dict without the objective: the trial fails with the reason.
            trial.study.fail(trial, str(problem)[-MAX_ERROR_CHARS:])
            outcome, error = FAILED, str(problem)
        return outcome, error

    def _end_run(self, run_id: str, outcome: str, error: str) -> None:
        tags = {"tuning.trial_state": outcome}
        if error:
            tags["tuning.error"] = error
        self.logger.set_tags(run_id, tags)
        status = {COMPLETED: tpb.RUN_STATUS_FINISHED, PRUNED: tpb.RUN_STATUS_FINISHED,
                  FAILED: tpb.RUN_STATUS_FAILED}.get(outcome, tpb.RUN_STATUS_KILLED)
        self.logger.end_run(run_id, status)

    # --- leases ------------------------------------------------------------------------------

    def _heartbeats(self, lease_seconds: float) -> None:
        interval = max(0.2, lease_seconds / 3)
        while True:
            if self._stopping.is_set():
                if not self.running():
                    return
                time.sleep(interval)  # stopping, but trials still finish: keep their leases
            else:
                self._stopping.wait(interval)
            with self._lock:
                running = list(self._active.values())
            for trial, ctx, trace in running:
                if ctx.should_stop:
                    continue
                try:
                    with telemetry.attached(trace):  # a heartbeat belongs to its trial's trace
                        trial.heartbeat(retries=1)
                except FailedPrecondition as error:
                    ctx.lose(str(error))
                except TuningError as error:
                    log.info("heartbeat of trial %d: %s", trial.number, error)
