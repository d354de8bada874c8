"""What the dashboard shows, fetched from the services through the gateway's grpc.aio stubs and
turned into plain dicts (for Jinja templates and the pages' JSON). The gateway owns no data;
the one thing kept here is a cache of finished trials' intermediate values (they never change)
so that a live study page does not ask for every trial's measurements every few seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import grpc
from google.protobuf import json_format

from tuning.suggestion.v1 import study_pb2 as spb
from tuning.suggestion.v1 import suggestion_service_pb2 as sapi
from tuning.tracking.v1 import registry_pb2 as rpb
from tuning.tracking.v1 import registry_service_pb2 as rapi
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning.tracking.v1 import tracking_service_pb2 as tapi
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from tuning_common.grpc_errors import error_from_rpc

TIMEOUT = 30.0
# Fan-out of per-item RPCs (a trial's measurements, a run's metric history).
CONCURRENCY = 16
MAX_TRIALS = 20_000
RUNS_PAGE = 100
MAX_RUNS_PAGE = 1_000
MAX_EVENTS = 1_000
MAX_POINTS = 1_000
MAX_ARTIFACTS = 500
MAX_COMPARE = 12
# A trial page finds the trials that retried it by scanning its study (ListTrials filters by
# state only, and a retry may be in any state): at most this many trials.
MAX_RETRY_SCAN = MAX_TRIALS
FINISHED_TRIALS = {spb.TRIAL_STATE_COMPLETED, spb.TRIAL_STATE_PRUNED, spb.TRIAL_STATE_FAILED,
                   spb.TRIAL_STATE_INFEASIBLE, spb.TRIAL_STATE_STALE}


def enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix)
    except ValueError:
        return str(value)


def iso(timestamp: Any, present: bool = True) -> str | None:
    if not present or (timestamp.seconds == 0 and timestamp.nanos == 0):
        return None
    return timestamp.ToDatetime(tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_between(start: Any, end: Any) -> float | None:
    if start.seconds == 0 and start.nanos == 0:
        return None
    if end.seconds == 0 and end.nanos == 0:
        return max(0.0, time.time() - start.ToNanoseconds() / 1e9)
    return (end.ToNanoseconds() - start.ToNanoseconds()) / 1e9


def number(value: float) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if math.isfinite(value) else None


def param_value(value: spb.ParameterValue) -> Any:
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def filter_string(text: str) -> str:
    """A quoted string of the services' filter language."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


class Services:
    """The three stubs, with the caller's metadata (its bearer token) forwarded on every call."""

    def __init__(self, stubs: Mapping[str, Any], metadata: tuple[tuple[str, str], ...] = ()):
        self.stubs = stubs
        self.metadata = metadata

    async def call(self, service: str, rpc: str, request: Any) -> Any:
        try:
            return await getattr(self.stubs[service], rpc)(request, timeout=TIMEOUT, metadata=self.metadata)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def suggestion(self, rpc: str, request: Any) -> Awaitable[Any]:
        return self.call("SuggestionService", rpc, request)

    def tracking(self, rpc: str, request: Any) -> Awaitable[Any]:
        return self.call("TrackingService", rpc, request)

    def registry(self, rpc: str, request: Any) -> Awaitable[Any]:
        return self.call("ModelRegistryService", rpc, request)

    async def pages(self, fetch: Callable[[str], Awaitable[Any]], items: str, limit: int) -> tuple[list[Any], bool]:
        """Every page's ``items`` up to ``limit``; the flag says whether there were more."""
        found: list[Any] = []
        token = ""
        while True:
            answer = await fetch(token)
            found.extend(getattr(answer, items))
            token = answer.next_page_token
            if not token:
                return found[:limit], len(found) > limit
            if len(found) >= limit:
                return found[:limit], True


async def gather_limited(calls: Iterable[Awaitable[Any]], limit: int = CONCURRENCY) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[Any]) -> Any:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


# --- studies -------------------------------------------------------------------------------------


def objectives(study: spb.Study) -> list[dict[str, Any]]:
    """Each objective's metric and direction, and its hypervolume reference value when the spec
    fixes one (the hypervolume plot derives the others as GetBestTrials does)."""
    return [{"metric": o.metric, "direction": "maximize" if o.direction == spb.DIRECTION_MAXIMIZE else "minimize",
             **({"reference_point": o.reference_point} if o.HasField("reference_point") else {})}
            for o in study.spec.objectives]


def param_specs(spec: spb.StudySpec) -> list[dict[str, Any]]:
    specs = []
    for p in spec.parameters:
        kind = p.WhichOneof("domain") or "unknown"
        item: dict[str, Any] = {"name": p.name, "kind": kind.removesuffix("_range")}
        if kind in ("float_range", "int_range"):
            domain = getattr(p, kind)
            item.update(low=domain.low, high=domain.high, log=domain.scale == spb.SCALE_LOG)
        elif kind == "categorical":
            item["choices"] = [param_value(c) for c in p.categorical.choices]
        elif kind == "fixed":
            item["choices"] = [param_value(p.fixed.value)]
        if p.HasField("condition") and p.condition.parent:
            item["condition"] = {"parent": p.condition.parent, "values": [param_value(v) for v in p.condition.values]}
        specs.append(item)
    return specs


def counts(study: spb.Study) -> dict[str, int]:
    c = study.trial_counts
    return {"queued": c.queued, "active": c.active, "completed": c.completed, "pruned": c.pruned,
            "failed": c.failed, "infeasible": c.infeasible, "stale": c.stale}


def study_summary(study: spb.Study) -> dict[str, Any]:
    spec = study.spec
    tally = counts(study)
    return {
        "name": study.name,
        "state": enum_name(spb.StudyState, study.state, "STUDY_STATE_"),
        "algorithm": spec.algorithm.name or "default",
        "pruner": spec.pruner.name if spec.HasField("pruner") else "",
        "pruner_metric": _pruner_metric(spec),
        "fidelity": spec.fidelity.name if spec.HasField("fidelity") else "",
        "objectives": objectives(study),
        "constraints": list(spec.constraints),
        "counts": tally,
        "total": sum(tally.values()),
        "max_trials": spec.max_trials,
        "create_time": iso(study.create_time, study.HasField("create_time")),
        "update_time": iso(study.update_time, study.HasField("update_time")),
    }


def _pruner_metric(spec: spb.StudySpec) -> str:
    if not spec.HasField("pruner"):
        return ""
    settings = spec.pruner.settings
    metric = settings.fields.get("metric")
    return metric.string_value if metric is not None else ""


def objective_value(metrics: Iterable[spb.Metric], metric: str) -> float | None:
    for item in metrics:
        if item.name == metric:
            return number(item.value)
    return None


async def list_studies(services: Services, page_size: int = 50, page_token: str = "") -> dict[str, Any]:
    """One page of studies, each with its best trial: GetBestTrials is one RPC per study (it
    reads the study's completed trials), so the fan-out is bounded by the page, not by how many
    studies there are."""
    answer = await services.suggestion("ListStudies", sapi.ListStudiesRequest(page_size=page_size,
                                                                              page_token=page_token))
    studies = list(answer.studies)
    bests = await gather_limited(services.suggestion("GetBestTrials", sapi.GetBestTrialsRequest(study=s.name))
                                 for s in studies)
    rows = []
    for study, best in zip(studies, bests):
        row = study_summary(study)
        goals = row["objectives"]
        row["best"] = None
        if best.trials and goals:
            if len(goals) == 1:
                trial = best.trials[0]
                row["best"] = {"value": objective_value(trial.metrics, goals[0]["metric"]), "number": trial.number}
            else:
                row["best"] = {"pareto": len(best.trials)}
        rows.append(row)
    return {"studies": rows, "next_page_token": answer.next_page_token}


class MeasurementCache:
    """Intermediate values by trial, refetched only when a trial's last measurement changed."""

    def __init__(self, size: int = 50_000):
        self.size = size
        self.entries: OrderedDict[tuple, list[dict[str, Any]]] = OrderedDict()

    @staticmethod
    def key(trial: spb.Trial) -> tuple:
        last = trial.last_measurement
        return (trial.study, trial.id, trial.number, last.step, last.create_time.seconds, last.create_time.nanos,
                trial.state in FINISHED_TRIALS)

    def get(self, trial: spb.Trial) -> list[dict[str, Any]] | None:
        key = self.key(trial)
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, trial: spb.Trial, measurements: list[dict[str, Any]]) -> None:
        self.entries[self.key(trial)] = measurements
        self.entries.move_to_end(self.key(trial))
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def _measurements(answer: sapi.ListMeasurementsResponse) -> list[dict[str, Any]]:
    return [{"step": m.step, "values": {x.name: number(x.value) for x in m.metrics}} for m in answer.measurements]


OPEN_STATES = [spb.TRIAL_STATE_QUEUED, spb.TRIAL_STATE_ACTIVE]
# Past this many trials that finished between two reads, one full read is cheaper than a GetTrial each.
MAX_REREAD = 500
# Bounds of the trial cache over all studies, and of the intermediate-values chart.
MAX_CACHED_TRIALS = 200_000
INTERMEDIATE_GROUP = 100
MAX_PBT_MEASURED = 2_000


class StudyTrials:
    """One study's trials as last read, by number, with each one's row for the page.

    A finished trial never changes (every update of a trial is conditional on QUEUED or
    ACTIVE), so a later read asks only for the trials numbered above the highest one held, the
    ones open now, and (GetTrial) those that were open and have finished since. ``created``
    tells a study from a deleted one of the same name."""

    def __init__(self, created: tuple[int, int]):
        self.created = created
        self.trials: dict[int, spb.Trial] = {}
        self.rows: dict[int, dict[str, Any]] = {}
        self.lock = asyncio.Lock()

    @property
    def max_number(self) -> int:
        return max(self.trials, default=-1)

    def open(self) -> list[spb.Trial]:
        return [t for t in self.trials.values() if t.state not in FINISHED_TRIALS]

    def put(self, trials: Iterable[spb.Trial], goals: list[dict[str, str]]) -> None:
        for trial in trials:
            self.trials[trial.number] = trial
            self.rows[trial.number] = trial_row(trial, goals)

    def ordered(self) -> list[spb.Trial]:
        return [self.trials[n] for n in sorted(self.trials)]


class TrialCache:
    """The studies' trials the dashboard has read, least recently used dropped first. Every
    read still goes to the suggestion service with the caller's credentials (the cache only
    spares re-reading finished trials), so it shows nobody what the service would not."""

    def __init__(self, max_trials: int = MAX_CACHED_TRIALS):
        self.max_trials = max_trials
        self.studies: OrderedDict[str, StudyTrials] = OrderedDict()

    def entry(self, study: spb.Study) -> StudyTrials:
        created = (study.create_time.seconds, study.create_time.nanos)
        entry = self.studies.get(study.name)
        if entry is None or entry.created != created:
            entry = self.studies[study.name] = StudyTrials(created)
        self.studies.move_to_end(study.name)
        return entry

    def trim(self) -> None:
        while len(self.studies) > 1 and sum(len(e.trials) for e in self.studies.values()) > self.max_trials:
            self.studies.popitem(last=False)


async def _list_trials(services: Services, name: str, **fields: Any) -> tuple[list[spb.Trial], bool]:
    return await services.pages(
        lambda token: services.suggestion("ListTrials", sapi.ListTrialsRequest(
            study=name, page_size=1000, page_token=token, **fields)),
        "trials", MAX_TRIALS)


async def read_trials(services: Services, study: spb.Study, cache: TrialCache) -> tuple[StudyTrials, bool]:
    """The study's trials, brought up to date; the flag says the study has more than MAX_TRIALS
    (then only the first MAX_TRIALS are held, and every read is a full one)."""
    entry = cache.entry(study)
    goals = objectives(study)
    async with entry.lock:
        if entry.trials:
            new, more = await _list_trials(services, study.name, after_number=entry.max_number)
            still_open, _ = await _list_trials(services, study.name, states=OPEN_STATES)
            seen = {t.number for t in new} | {t.number for t in still_open}
            finished = [t for t in entry.open() if t.number not in seen]
            if not more and len(entry.trials) + len(new) <= MAX_TRIALS and len(finished) <= MAX_REREAD:
                answers = await gather_limited(
                    services.suggestion("GetTrial", sapi.GetTrialRequest(trial_id=t.id)) for t in finished)
                entry.put([a.trial for a in answers], goals)
                entry.put(still_open, goals)
                entry.put(new, goals)
                cache.trim()
                return entry, False
            entry.trials.clear()
            entry.rows.clear()
        trials, truncated = await _list_trials(services, study.name)
        entry.put(trials, goals)
        if truncated:  # not kept: the next read is a full one again
            cache.studies.pop(study.name, None)
        cache.trim()
        return entry, truncated


def trial_row(trial: spb.Trial, goals: list[dict[str, str]]) -> dict[str, Any]:
    values = {m.name: number(m.value) for m in trial.metrics}
    return {
        "number": trial.number,
        "id": trial.id,
        "state": enum_name(spb.TrialState, trial.state, "TRIAL_STATE_"),
        "params": {k: param_value(v) for k, v in sorted(trial.parameters.items())},
        "values": values,
        "objectives": [values.get(g["metric"]) for g in goals],
        # A constrained study's told trials: False keeps a completed trial from being the best.
        "feasible": trial.feasible if trial.HasField("feasible") else None,
        "constraints": list(trial.constraints),
        "budget": trial.budget if trial.HasField("budget") else None,
        "worker": trial.worker_id,
        "run_id": trial.run_id,
        "reason": trial.reason,
        "start_time": iso(trial.start_time, trial.HasField("start_time")),
        "end_time": iso(trial.end_time, trial.HasField("end_time")),
        "duration": seconds_between(trial.start_time, trial.end_time) if trial.HasField("start_time") else None,
        # Intermediate values are the intermediate chart's own request (a bounded sample);
        # only a pbt study's population chart needs them here (see study_detail).
        "intermediate": [],
        # Where a pruned trial stopped: intermediate values, shown apart from results.
        "stopped_at": _stopped_at(trial),
        "pbt": pbt_segment(trial),
    }


async def _measure(services: Services, trials: list[spb.Trial], cache: MeasurementCache) -> dict[int, list]:
    """The trials' intermediate values by trial id, from the cache where it has them."""
    found = {t.id: cache.get(t) for t in trials}
    missing = [t for t in trials if found[t.id] is None]
    answers = await gather_limited(services.suggestion("ListMeasurements", sapi.ListMeasurementsRequest(trial_id=t.id))
                                   for t in missing)
    for trial, answer in zip(missing, answers):
        found[trial.id] = _measurements(answer)
        cache.put(trial, found[trial.id])
    return found


async def study_detail(services: Services, name: str, cache: MeasurementCache, trials: TrialCache,
                       after: int | None = None, open_numbers: Iterable[int] = ()) -> dict[str, Any]:
    """The study page's document. With ``after`` (the highest trial number the page holds) it is
    a delta: only the trials numbered above ``after`` and those of ``open_numbers`` (the ones
    the page holds unfinished), which is all that can have changed."""
    study = (await services.suggestion("GetStudy", sapi.GetStudyRequest(name=name))).study
    entry, truncated = await read_trials(services, study, trials)
    if after is None:
        numbers = sorted(entry.rows)
    else:
        wanted = set(open_numbers)
        numbers = sorted(n for n in entry.rows if n > after or n in wanted)
    rows = [entry.rows[n] for n in numbers]
    pbt = [entry.trials[n] for n in numbers if entry.trials[n].HasField("pbt_segment")
           and entry.trials[n].HasField("last_measurement")][-MAX_PBT_MEASURED:]
    if pbt:
        measured = await _measure(services, pbt, cache)
        rows = [dict(row, intermediate=measured[row["id"]]) if row["id"] in measured else row for row in rows]
    return {"study": study_summary(study), "params": param_specs(study.spec), "trials": rows, "truncated": truncated,
            "delta": after is not None, "generated_at": iso_now()}


def _objective_key(trial: spb.Trial, goal: dict[str, str]) -> float:
    value = objective_value(trial.metrics, goal["metric"])
    if value is None:
        return math.inf
    return -value if goal["direction"] == "maximize" else value


def sample_measured(trials: list[spb.Trial], goal: dict[str, str] | None,
                    group: int = INTERMEDIATE_GROUP) -> tuple[list[spb.Trial], dict[str, int]]:
    """At most 3 x ``group`` of the trials with intermediate values: the best completed, the
    most recent (running ones included), and the rest spread evenly by number (pruned trials
    mostly, and the worst); all of them when they are that few."""
    if len(trials) <= 3 * group:
        return trials, {"all": len(trials)}
    chosen: dict[int, spb.Trial] = {}
    completed = [t for t in trials if t.state == spb.TRIAL_STATE_COMPLETED]
    best = sorted(completed, key=lambda t: _objective_key(t, goal))[:group] if goal else []
    recent = trials[-group:]
    for t in best + recent:
        chosen[t.number] = t
    rest = [t for t in trials if t.number not in chosen]
    step = max(1, math.ceil(len(rest) / group))
    spread = rest[::step][:group]
    for t in spread:
        chosen[t.number] = t
    return [chosen[n] for n in sorted(chosen)], {"best": len(best), "recent": len(recent), "spread": len(spread)}


async def intermediate(services: Services, name: str, metric: str | None, cache: MeasurementCache,
                       trials: TrialCache) -> dict[str, Any]:
    """The intermediate-values chart: one metric's curves of a bounded sample of the trials
    (see :func:`sample_measured`); measurements are fetched for the sample only."""
    study = (await services.suggestion("GetStudy", sapi.GetStudyRequest(name=name))).study
    entry, _ = await read_trials(services, study, trials)
    measured = [t for t in entry.ordered() if t.HasField("last_measurement")]
    names = sorted({m.name for t in measured for m in t.last_measurement.metrics})
    summary = study_summary(study)
    if metric and metric not in names:
        raise InvalidArgument("metric", f"no trial of study {name!r} reported {metric!r}; reported: "
                                        f"{', '.join(names) or 'nothing yet'}")
    if not metric:
        preferred = [summary["pruner_metric"]] + [g["metric"] for g in summary["objectives"]]
        metric = next((n for n in preferred if n in names), names[0] if names else "")
    with_metric = [t for t in measured if any(m.name == metric for m in t.last_measurement.metrics)]
    goals = summary["objectives"]
    sample, groups = sample_measured(with_metric, goals[0] if goals else None)
    found = await _measure(services, sample, cache)
    curves = []
    for t in sample:
        points = [[m["step"], m["values"][metric]] for m in found[t.id]
                  if metric in m["values"] and m["values"][metric] is not None]
        curves.append({"number": t.number, "id": t.id, "state": enum_name(spb.TrialState, t.state, "TRIAL_STATE_"),
                       "feasible": t.feasible if t.HasField("feasible") else None, "points": points})
    return {"metric": metric, "metrics": names, "total": len(with_metric), "groups": groups, "trials": curves}


def _stopped_at(trial: spb.Trial) -> dict[str, Any] | None:
    if trial.state != spb.TRIAL_STATE_PRUNED or not trial.HasField("last_measurement"):
        return None
    last = trial.last_measurement
    return {"step": last.step, "values": {m.name: number(m.value) for m in last.metrics}}


def pbt_segment(trial: spb.Trial) -> dict[str, Any] | None:
    """A pbt trial's segment (member, steps, parent, decision), for the population charts."""
    if not trial.HasField("pbt_segment"):
        return None
    segment = trial.pbt_segment
    parent = segment.HasField("parent_trial_id")
    return {"member": segment.member, "generation": segment.generation, "start_step": segment.start_step,
            "end_step": segment.end_step, "decision": enum_name(spb.PbtDecision, segment.decision, "PBT_DECISION_"),
            "parent_trial_id": segment.parent_trial_id if parent else None,
            "parent_member": segment.parent_member if segment.HasField("parent_member") else None}


# --- one trial -------------------------------------------------------------------------------------

# suggestion_metadata's keys that the algorithms document (study.proto), in this order, labelled;
# any other key follows under its own name.
SUGGESTION_KEYS = (
    ("algorithm", "algorithm"), ("seed", "seed"), ("index", "index in the seeded sequence"), ("phase", "phase"),
    ("predicted_mean", "predicted mean"), ("predicted_std", "predicted std"), ("acquisition", "acquisition"),
    ("acquisition_value", "acquisition value"), ("fallback", "fallback"), ("reason", "fallback reason"),
)


def suggestion_metadata(trial: spb.Trial) -> list[dict[str, Any]]:
    """Every key of the trial's suggestion_metadata: the documented ones first, labelled."""
    found = json_format.MessageToDict(trial.suggestion_metadata) if trial.HasField("suggestion_metadata") else {}
    labels = dict(SUGGESTION_KEYS)
    order = [key for key, _ in SUGGESTION_KEYS if key in found] + sorted(k for k in found if k not in labels)
    return [{"key": key, "label": labels.get(key, key), "value": found[key],
             "known": key in labels} for key in order]


def trial_params(trial: spb.Trial, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's parameters in the spec's order: the value, or inactive for a conditional
    parameter whose condition did not hold (the trial does not carry it)."""
    rows = []
    for spec in specs:
        present = spec["name"] in trial.parameters
        rows.append({"name": spec["name"], "kind": spec["kind"], "log": spec.get("log", False),
                     "active": present, "condition": spec.get("condition"),
                     "value": param_value(trial.parameters[spec["name"]]) if present else None})
    named = {spec["name"] for spec in specs}
    for name in sorted(set(trial.parameters) - named):  # not in the spec (a user-created trial's extra)
        rows.append({"name": name, "kind": "", "log": False, "active": True, "condition": None,
                     "value": param_value(trial.parameters[name])})
    return rows


def trial_ref(trial: spb.Trial) -> dict[str, Any]:
    return {"id": trial.id, "number": trial.number, "attempt": trial.attempt,
            "state": enum_name(spb.TrialState, trial.state, "TRIAL_STATE_"), "reason": trial.reason,
            "create_time": iso(trial.create_time, trial.HasField("create_time"))}


async def retry_chain(services: Services, trial: spb.Trial) -> dict[str, Any]:
    """The attempts at the trial's configuration: the trials it retries (``retry_of``, back to
    the first attempt) and the trials that retried it, found by scanning the study's trials
    (at most MAX_RETRY_SCAN; ``complete`` says whether the scan saw them all)."""
    if trial.attempt == 0 and trial.state not in (spb.TRIAL_STATE_FAILED, spb.TRIAL_STATE_STALE):
        # Only a failed or stale trial is ever retried, and a first attempt retries nothing.
        return {"attempts": [trial_ref(trial)], "complete": True, "scanned": 0}
    trials, truncated = await services.pages(
        lambda token: services.suggestion("ListTrials", sapi.ListTrialsRequest(study=trial.study, page_size=1000,
                                                                               page_token=token)),
        "trials", MAX_RETRY_SCAN)
    by_id = {t.id: t for t in trials}
    by_id[trial.id] = trial
    retried_by = {t.retry_of: t for t in trials if t.HasField("retry_of")}
    chain = [trial]
    while chain[0].HasField("retry_of") and chain[0].retry_of in by_id:
        chain.insert(0, by_id[chain[0].retry_of])
    while chain[-1].id in retried_by:
        chain.append(retried_by[chain[-1].id])
    missing = trial.HasField("retry_of") and trial.retry_of not in by_id
    return {"attempts": [trial_ref(t) for t in chain], "complete": not truncated and not missing,
            "scanned": len(trials)}


def state_history(trial: spb.Trial, chain: dict[str, Any], measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the services store of the trial's life, in order: created (and how), leased,
    the lease's expiry, the intermediate values, the end and its reason, the retry."""
    state = enum_name(spb.TrialState, trial.state, "TRIAL_STATE_")
    events: list[dict[str, Any]] = []
    source = enum_name(spb.TrialSource, trial.source, "TRIAL_SOURCE_")
    attempts = chain["attempts"]
    position = next((i for i, a in enumerate(attempts) if a["id"] == trial.id), 0)
    how = {"ALGORITHM": "suggested by the study's algorithm", "USER": "created by a user (CreateTrial)",
           "RETRY": "queued again as a retry"}.get(source, source.lower())
    created = {"event": "created", "time": iso(trial.create_time, trial.HasField("create_time")), "detail": how}
    if trial.HasField("retry_of"):
        created["trial"] = attempts[position - 1] if position > 0 else {"id": trial.retry_of, "number": None, "state": ""}
        created["detail"] = f"attempt {trial.attempt + 1}: a retry of"
    events.append(created)
    if trial.HasField("start_time"):
        detail = f"leased by worker {trial.worker_id}" if trial.worker_id else "leased"
        events.append({"event": "started", "time": iso(trial.start_time), "detail": detail})
    if measurements:
        first, last = measurements[0], measurements[-1]
        events.append({"event": "reported", "time": first.get("time"),
                       "detail": f"{len(measurements)} intermediate value(s), steps {first['step']} to {last['step']}"})
    if trial.HasField("lease_expire_time") and iso(trial.lease_expire_time):
        # Only a leased trial has one (the service clears it at the end): a time to come.
        events.append({"event": "lease expires", "time": iso(trial.lease_expire_time),
                       "detail": "unless the worker reports, heartbeats or tells before"})
    if trial.HasField("end_time") or trial.state in FINISHED_TRIALS:
        detail = ""
        if trial.state == spb.TRIAL_STATE_PRUNED and trial.HasField("last_measurement"):
            detail = f"at step {trial.last_measurement.step}"
        events.append({"event": state.lower(), "time": iso(trial.end_time, trial.HasField("end_time")),
                       "detail": detail, "reason": trial.reason})
    if position + 1 < len(attempts):
        after = attempts[position + 1]
        events.append({"event": "retried", "time": after["create_time"], "detail": "its configuration was queued "
                       "again as", "trial": after})
    return [{"detail": "", "trial": None, "reason": "", **event} for event in events]


async def _run_and_versions(services: Services, run_id: str) -> tuple[dict[str, Any] | None, str, list]:
    """The linked run (None when the tracking service no longer has it, with why) and the model
    versions registered from it."""
    if not run_id:
        return None, "", []
    try:
        run = (await services.tracking("GetRun", tapi.GetRunRequest(run_id=run_id))).run
    except NotFound as error:
        return None, error.message, []
    experiment, versions = await asyncio.gather(
        services.tracking("GetExperiment", tapi.GetExperimentRequest(experiment_id=run.experiment_id)),
        services.registry("SearchModelVersions", rapi.SearchModelVersionsRequest(
            filter=f"run_id = {filter_string(run_id)}", page_size=100)))
    summary = run_summary(run)
    summary["experiment_name"] = experiment.experiment.name
    return summary, "", [version_summary(v) for v in versions.model_versions]


async def trial_detail(services: Services, trial_id: int) -> dict[str, Any]:
    trial = (await services.suggestion("GetTrial", sapi.GetTrialRequest(trial_id=trial_id))).trial
    study, measured, chain, linked = await asyncio.gather(
        services.suggestion("GetStudy", sapi.GetStudyRequest(name=trial.study)),
        services.suggestion("ListMeasurements", sapi.ListMeasurementsRequest(trial_id=trial_id)),
        retry_chain(services, trial),
        _run_and_versions(services, trial.run_id),
    )
    summary = study_summary(study.study)
    measurements = [{"step": m.step, "values": {x.name: number(x.value) for x in m.metrics},
                     "time": iso(m.create_time, m.HasField("create_time"))} for m in measured.measurements]
    goals = {g["metric"]: g["direction"] for g in summary["objectives"]}
    values = [{"name": m.name, "value": number(m.value), "objective": goals.get(m.name, "")} for m in trial.metrics]
    order = list(goals)
    values.sort(key=lambda v: order.index(v["name"]) if v["objective"] else len(order))
    constraints = [{"name": name, "value": number(value), "satisfied": value <= 0}
                   for name, value in zip(summary["constraints"], trial.constraints)]
    run, run_problem, versions = linked
    return {
        "trial": {
            "id": trial.id, "number": trial.number, "study": trial.study,
            "state": enum_name(spb.TrialState, trial.state, "TRIAL_STATE_"),
            "source": enum_name(spb.TrialSource, trial.source, "TRIAL_SOURCE_"),
            "attempt": trial.attempt, "retry_of": trial.retry_of if trial.HasField("retry_of") else None,
            "worker": trial.worker_id, "reason": trial.reason,
            "budget": trial.budget if trial.HasField("budget") else None,
            "seed": str(trial.seed) if trial.HasField("seed") else None,
            "feasible": trial.feasible if trial.HasField("feasible") else None,
            "create_time": iso(trial.create_time, trial.HasField("create_time")),
            "start_time": iso(trial.start_time, trial.HasField("start_time")),
            "end_time": iso(trial.end_time, trial.HasField("end_time")),
            "lease_expire_time": iso(trial.lease_expire_time, trial.HasField("lease_expire_time")),
            "duration": seconds_between(trial.start_time, trial.end_time) if trial.HasField("start_time") else None,
            "run_id": trial.run_id, "stopped_at": _stopped_at(trial), "pbt": pbt_segment(trial),
        },
        "study": summary, "params": trial_params(trial, param_specs(study.study.spec)), "values": values,
        "constraints": constraints, "measurements": measurements,
        "metric_names": sorted({k for m in measurements for k in m["values"]}),
        "suggestion": suggestion_metadata(trial), "attempts": chain,
        "history": state_history(trial, chain, measurements),
        "run": run, "run_problem": run_problem, "model_versions": versions,
    }


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def importance(services: Services, name: str, metric: str | None) -> dict[str, Any]:
    """The importance panel's data, from the suggestion service (GetParameterImportance): the
    objective, each parameter's importance (largest first), the trials used, and a message when
    there is nothing to show (too few completed trials, or nothing varies)."""
    request = sapi.GetParameterImportanceRequest(study=name, objective=metric or "")
    try:
        answer = await services.suggestion("GetParameterImportance", request)
    except FailedPrecondition as error:
        if error.reason != "TOO_FEW_TRIALS":
            raise
        return {"objective": metric or "", "importances": [], "trials": int(error.metadata.get("trials", 0)),
                "min_trials": int(error.metadata.get("min_trials", 0)), "message": error.message}
    ranked = [{"param": entry.parameter, "importance": entry.importance} for entry in answer.importances]
    message = ""
    if not ranked:
        message = "the study has no parameters to rank"
    elif all(entry["importance"] == 0 for entry in ranked):
        message = "nothing to rank: the objective has the same value in every completed trial, or no parameter varies"
    return {"objective": answer.objective, "importances": ranked, "trials": answer.trial_count, "message": message}


# --- experiments and runs ------------------------------------------------------------------------


def tags(items: Iterable[tpb.Tag]) -> dict[str, str]:
    return {t.key: t.value for t in items}


def experiment_summary(experiment: tpb.Experiment) -> dict[str, Any]:
    return {"id": experiment.id, "name": experiment.name, "artifact_location": experiment.artifact_location,
            "lifecycle_stage": enum_name(tpb.LifecycleStage, experiment.lifecycle_stage, "LIFECYCLE_STAGE_"),
            "tags": tags(experiment.tags),
            "create_time": iso(experiment.create_time, experiment.HasField("create_time")),
            "update_time": iso(experiment.update_time, experiment.HasField("update_time"))}


async def list_experiments(services: Services) -> list[dict[str, Any]]:
    experiments, _ = await services.pages(
        lambda token: services.tracking("SearchExperiments", tapi.SearchExperimentsRequest(
            page_size=1000, page_token=token, order_by=["create_time DESC"])),
        "experiments", 10_000)
    return [experiment_summary(e) for e in experiments]


async def study_names(services: Services) -> set[str]:
    try:
        studies, _ = await services.pages(
            lambda token: services.suggestion("ListStudies", sapi.ListStudiesRequest(page_size=1000,
                                                                                     page_token=token)),
            "studies", 10_000)
    except Exception:  # the suggestion service is optional for the tracking pages
        return set()
    return {s.name for s in studies}


def trial_link(link: tpb.TrialLink) -> dict[str, Any] | None:
    if not link.study:
        return None
    return {"study": link.study, "trial_id": link.trial_id, "number": link.trial_number}


def run_summary(run: tpb.Run) -> dict[str, Any]:
    return {
        "id": run.id, "experiment_id": run.experiment_id, "name": run.name,
        "status": enum_name(tpb.RunStatus, run.status, "RUN_STATUS_"),
        "start_time": iso(run.start_time, run.HasField("start_time")),
        "end_time": iso(run.end_time, run.HasField("end_time")),
        "duration": seconds_between(run.start_time, run.end_time) if run.HasField("start_time") else None,
        "lifecycle_stage": enum_name(tpb.LifecycleStage, run.lifecycle_stage, "LIFECYCLE_STAGE_"),
        "parent_run_id": run.parent_run_id, "run_group": run.run_group, "artifact_uri": run.artifact_uri,
        "user": run.user,
        "params": {p.key: p.value for p in sorted(run.params, key=lambda p: p.key)},
        "tags": dict(sorted(tags(run.tags).items())),
        "metrics": {m.key: {"value": number(m.value), "step": m.step, "timestamp": iso(m.timestamp)}
                    for m in sorted(run.latest_metrics, key=lambda m: m.key)},
        "inputs": [{"name": i.dataset.name, "digest": i.dataset.digest, "source_type": i.dataset.source_type,
                    "source": i.dataset.source, "context": i.context, "tags": tags(i.tags)} for i in run.inputs],
        "trial": trial_link(run.trial),
    }


async def experiment_runs(services: Services, experiment_id: int, filter: str = "", order_by: Iterable[str] = (),
                          page_size: int = RUNS_PAGE, page_token: str = "") -> dict[str, Any]:
    """One page of the experiment's runs (SearchRuns pages on the server: 100,000 runs cost
    what one page costs)."""
    experiment, answer = await asyncio.gather(
        services.tracking("GetExperiment", tapi.GetExperimentRequest(experiment_id=experiment_id)),
        services.tracking("SearchRuns", tapi.SearchRunsRequest(
            experiment_ids=[experiment_id], filter=filter, order_by=list(order_by), page_size=page_size,
            page_token=page_token)))
    rows = [run_summary(r) for r in answer.runs]
    return {"experiment": experiment_summary(experiment.experiment), "runs": rows,
            "next_page_token": answer.next_page_token,
            "param_keys": sorted({k for r in rows for k in r["params"]}),
            "metric_keys": sorted({k for r in rows for k in r["metrics"]})}


async def is_study(services: Services, name: str) -> bool:
    try:
        await services.suggestion("GetStudy", sapi.GetStudyRequest(name=name))
    except Exception:  # not found, or the suggestion service is not there: either way no link
        return False
    return True


async def metric_history(services: Services, run_id: str, key: str) -> list[list[float | None]]:
    answer = await services.tracking("GetMetricHistory", tapi.GetMetricHistoryRequest(
        run_id=run_id, key=key, max_points=MAX_POINTS))
    return [[m.step, number(m.value), m.timestamp.ToMilliseconds()] for m in answer.metrics]


async def artifacts(services: Services, run_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The run's artifact files, folders walked breadth first, up to MAX_ARTIFACTS entries."""
    found: list[dict[str, Any]] = []
    folders = [""]
    while folders and len(found) < MAX_ARTIFACTS:
        folder = folders.pop(0)
        answer = await services.tracking("ListArtifacts", tapi.ListArtifactsRequest(run_id=run_id, path=folder))
        for info in sorted(answer.files, key=lambda f: f.path):
            found.append({"path": info.path, "is_dir": info.is_dir, "size": info.size})
            if info.is_dir:
                folders.append(info.path)
    return found[:MAX_ARTIFACTS], bool(folders) or len(found) > MAX_ARTIFACTS


async def run_detail(services: Services, run_id: str) -> dict[str, Any]:
    run = (await services.tracking("GetRun", tapi.GetRunRequest(run_id=run_id))).run
    summary = run_summary(run)
    keys = list(summary["metrics"])
    histories = await gather_limited(metric_history(services, run_id, key) for key in keys)
    experiment, files, versions = await asyncio.gather(
        services.tracking("GetExperiment", tapi.GetExperimentRequest(experiment_id=run.experiment_id)),
        artifacts(services, run_id),
        services.registry("SearchModelVersions", rapi.SearchModelVersionsRequest(
            filter=f"run_id = {filter_string(run_id)}", page_size=100)),
    )
    return {"run": summary, "experiment": experiment_summary(experiment.experiment),
            "histories": dict(zip(keys, histories)), "artifacts": files[0], "artifacts_truncated": files[1],
            "model_versions": [version_summary(v) for v in versions.model_versions]}


async def compare_runs(services: Services, run_ids: list[str]) -> dict[str, Any]:
    answers = await gather_limited(services.tracking("GetRun", tapi.GetRunRequest(run_id=r)) for r in run_ids)
    runs = [run_summary(a.run) for a in answers]
    param_keys = sorted({k for r in runs for k in r["params"]})
    metric_keys = sorted({k for r in runs for k in r["metrics"]})
    wanted = [(r["id"], k) for r in runs for k in metric_keys if k in r["metrics"]]
    histories = await gather_limited(metric_history(services, run_id, key) for run_id, key in wanted)
    curves: dict[str, dict[str, list]] = {}
    for (run_id, key), points in zip(wanted, histories):
        curves.setdefault(key, {})[run_id] = points

    def differs(values: list[Any]) -> bool:
        return len({repr(v) for v in values}) > 1

    return {
        "runs": runs, "param_keys": param_keys, "metric_keys": metric_keys,
        "param_differs": {k: differs([r["params"].get(k) for r in runs]) for k in param_keys},
        "metric_differs": {k: differs([(r["metrics"].get(k) or {}).get("value") for r in runs])
                           for k in metric_keys},
        "tag_keys": sorted({k for r in runs for k in r["tags"]}),
        "tag_differs": {k: differs([r["tags"].get(k) for r in runs]) for r in runs for k in r["tags"]},
        "curves": curves,
    }


# --- registry ------------------------------------------------------------------------------------


def version_summary(version: rpb.ModelVersion) -> dict[str, Any]:
    return {
        "name": version.name, "version": version.version, "source": version.source, "run_id": version.run_id,
        "status": enum_name(rpb.ModelVersionStatus, version.status, "MODEL_VERSION_STATUS_"),
        "stage": enum_name(rpb.Stage, version.stage, "STAGE_").title(),
        "description": version.description, "tags": tags(version.tags), "aliases": list(version.aliases),
        "user": version.user, "experiment_id": version.experiment_id, "trial": trial_link(version.trial),
        "create_time": iso(version.create_time, version.HasField("create_time")),
        "update_time": iso(version.update_time, version.HasField("update_time")),
    }


def model_summary(model: rpb.RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name, "description": model.description, "tags": tags(model.tags),
        "aliases": dict(sorted(model.aliases.items())),
        "latest_versions": [version_summary(v) for v in model.latest_versions],
        "create_time": iso(model.create_time, model.HasField("create_time")),
        "update_time": iso(model.update_time, model.HasField("update_time")),
    }


async def list_models(services: Services) -> list[dict[str, Any]]:
    models, _ = await services.pages(
        lambda token: services.registry("SearchRegisteredModels", rapi.SearchRegisteredModelsRequest(
            page_size=1000, page_token=token)),
        "registered_models", 10_000)
    return [model_summary(m) for m in models]


def stage_text(value: str) -> str:
    """A stage as a reader says it: the registry's stage "None" (MLflow's name) is no stage."""
    return "no stage" if value == "None" else value


def event_summary(event: rpb.RegistryEvent) -> dict[str, Any]:
    action = enum_name(rpb.RegistryAction, event.action, "REGISTRY_ACTION_")
    # A stage transition's from/to are stage names, and "None" there is the stage, not a
    # missing value; the other actions' from/to are versions or sources, empty when none.
    shown = stage_text if action == "TRANSITION_STAGE" else str
    return {"id": event.id, "version": event.version, "action": action.replace("_", " ").lower(),
            "from": shown(event.from_value), "to": shown(event.to_value), "alias": event.alias,
            "actor": event.actor, "reason": event.reason, "time": iso(event.time, event.HasField("time"))}


async def model_detail(services: Services, name: str) -> dict[str, Any]:
    model = (await services.registry("GetRegisteredModel", rapi.GetRegisteredModelRequest(name=name))).registered_model
    versions, events = await asyncio.gather(
        services.pages(lambda token: services.registry("SearchModelVersions", rapi.SearchModelVersionsRequest(
            filter=f"name = {filter_string(name)}", page_size=1000, page_token=token)),
            "model_versions", 10_000),
        services.pages(lambda token: services.registry("ListRegistryEvents", rapi.ListRegistryEventsRequest(
            name=name, page_size=1000, page_token=token)), "events", MAX_EVENTS),
    )
    return {"model": model_summary(model), "versions": [version_summary(v) for v in versions[0]],
            "events": [event_summary(e) for e in events[0]], "events_truncated": events[1]}


async def version_detail(services: Services, name: str, version: int) -> dict[str, Any]:
    """One model version with its lineage (version -> run -> trial -> study, and the run's
    experiment), the model's aliases, and the version's audit events."""
    found = (await services.registry("GetModelVersion", rapi.GetModelVersionRequest(name=name, version=version)))
    summary = version_summary(found.model_version)

    async def experiment_of(experiment_id: int) -> dict[str, Any] | None:
        try:
            answer = await services.tracking("GetExperiment", tapi.GetExperimentRequest(experiment_id=experiment_id))
        except (NotFound, PermissionDenied):  # gone, or (with roles on) not the viewer's to read
            return None
        return experiment_summary(answer.experiment)

    async def run_of(run_id: str) -> tuple[dict[str, Any] | None, str]:
        if not run_id:
            return None, ""
        try:
            return run_summary((await services.tracking("GetRun", tapi.GetRunRequest(run_id=run_id))).run), ""
        except (NotFound, PermissionDenied) as error:
            return None, error.message

    model, events, (run, run_problem) = await asyncio.gather(
        services.registry("GetRegisteredModel", rapi.GetRegisteredModelRequest(name=name)),
        services.pages(lambda token: services.registry("ListRegistryEvents", rapi.ListRegistryEventsRequest(
            name=name, version=version, page_size=1000, page_token=token)), "events", MAX_EVENTS),
        run_of(summary["run_id"]),
    )
    trial = summary["trial"] or (run or {}).get("trial")
    experiment_id = run["experiment_id"] if run else summary["experiment_id"]
    experiment = await experiment_of(experiment_id) if (run or summary["run_id"]) else None
    return {"version": summary, "model": model_summary(model.registered_model), "run": run, "run_problem": run_problem,
            "trial": trial, "experiment": experiment,
            "events": [event_summary(e) for e in events[0]],
            "events_truncated": events[1]}
