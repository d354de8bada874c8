"""A typed Python client for the suggestion service.

    from trial_worker import SuggestionClient, Float, Int

    client = SuggestionClient("127.0.0.1:50051")
    study = client.create_study("demo", [Float("x", -5, 5), Int("n", 1, 9)],
                                objectives={"loss": "minimize"}, max_trials=20)
    while (trial := study.ask()) is not None:
        for step in range(10):
            if trial.report(step, loss_at(step, **trial.params)):
                trial.prune(); break
        else:
            study.tell(trial, final_loss(**trial.params))

Errors come back as :mod:`tuning_common.errors` exceptions (``NotFound``,
``FailedPrecondition`` with ``reason == "LEASE_LOST"``, ...). UNAVAILABLE is retried with
exponential backoff; asks carry a request id so a retried ask never leases twice.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from trial_worker.webhooks import WebhookCalls
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning.suggestion.v1 import suggestion_service_pb2_grpc as api_grpc
from tuning.suggestion.v1 import webhook_pb2 as wpb
from tuning_common import telemetry, tls
from tuning_common.auth import authorized_channel, client_token
from tuning_common.errors import DeadlineExceeded
from tuning_common.grpc_errors import MAX_BACKOFF, call_with_retries
from tuning_common.settings import suggestion_address
from tuning_types import convert
from tuning_types.space import Parameter, SearchSpace, Value
from tuning_types.study import (
    DEFAULT_ALGORITHM,
    AlgorithmSpec,
    Direction,
    Fidelity,
    Objective,
    PrunerSpec,
    RetryPolicy,
    StudySpec,
)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _metrics(value: float | Mapping[str, float], objectives: Sequence[str]) -> list[pb.Metric]:
    if isinstance(value, Mapping):
        return [pb.Metric(name=k, value=float(v)) for k, v in value.items()]
    if len(objectives) != 1:
        raise ValueError(f"this study has objectives {list(objectives)}: pass a dict of values")
    return [pb.Metric(name=objectives[0], value=float(value))]


def constraint_values(values: Sequence[float] | Mapping[str, float] | None, declared: Sequence[str]) -> list[float]:
    """Constraint values in the study's declared order; a dict must name each declared constraint.

    Counts and finiteness are the service's to check (INVALID_ARGUMENT on ``constraints``).
    """
    if values is None:
        return []
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(declared))
        missing = [name for name in declared if name not in values]
        if unknown or missing:
            raise ValueError(f"constraints must name exactly the study's constraints {list(declared)}: "
                             f"unknown {unknown}, missing {missing}")
        return [float(values[name]) for name in declared]
    return [float(v) for v in values]


class SuggestionClient:
    """One channel to a suggestion service. Thread-safe; close it (or use ``with``) when done.

    ``token`` (default ``$TUNING_TOKEN``; "" for none) is sent as a bearer token with every
    call, for a service with access control on.
    """

    def __init__(self, address: str | None = None, *, timeout: float = 30.0, retries: int = 6,
                 backoff: float = 0.1, max_backoff: float = MAX_BACKOFF, channel: grpc.Channel | None = None,
                 token: str | None = None):
        self.address = address or suggestion_address()
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._channel = telemetry.traced_channel(
            authorized_channel(channel or tls.channel(self.address), client_token(token)))
        self._stub = api_grpc.SuggestionServiceStub(self._channel)
        self._webhooks = WebhookCalls(self.call, api, wpb.WebhookEvent, "Study", "study_name")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SuggestionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, request: Any, *, retries: int | None = None) -> Any:
        """Calls an RPC by name, retrying UNAVAILABLE with jittered exponential backoff
        ``retries`` times (default: the client's)."""
        rpc = getattr(self._stub, method)
        return call_with_retries(lambda: rpc(request, timeout=self.timeout),
                                 retries=self.retries if retries is None else retries,
                                 backoff=self.backoff, max_backoff=self.max_backoff)

    # --- studies ---------------------------------------------------------------------

    def create_study(
        self,
        name: str,
        parameters: Sequence[Parameter],
        *,
        objectives: Mapping[str, str],
        algorithm: str | None = None,
        algorithm_settings: Mapping[str, Any] | None = None,
        seed: int | None = None,
        max_trials: int = 0,
        max_parallel_trials: int = 0,
        lease_seconds: float = 120.0,
        max_retries: int = 2,
        retry_failed: bool = False,
        fidelity: Fidelity | None = None,
        pruner: str | None = None,
        pruner_settings: Mapping[str, Any] | None = None,
        constraints: Sequence[str] = (),
        reference_point: Mapping[str, float] | None = None,
        prior_studies: Sequence[str] = (),
    ) -> Study:
        """Gets or creates a study; ``objectives`` maps metric names to "minimize"/"maximize".

        ``fidelity`` (e.g. ``Fidelity("boosting_rounds", 10, 810)``) makes trials carry a
        budget; ``pruner`` ("median", "asha", "hyperband") makes ``Trial.report`` answer
        whether to stop early. ``algorithm`` None: ``auto`` for a new study, and an existing
        study of that name is joined whatever it runs. ``constraints`` names the values every successful tell then
        carries (``study.tell(trial, value, constraints=[...])``); <= 0 is feasible.
        ``reference_point`` maps objectives to their hypervolume reference value (a
        multi-objective study's ``study.hypervolume()``); objectives left out get the derived one.
        ``prior_studies`` names earlier studies of the same parameters whose trials gp, tpe and
        auto learn from (transfer learning, docs/ALGORITHMS.md); both need one objective.
        """
        if algorithm is None and algorithm_settings:
            raise ValueError("algorithm_settings needs an algorithm: name the one they are for")
        reference_point = dict(reference_point or {})
        unknown = sorted(set(reference_point) - set(objectives))
        if unknown:
            raise ValueError(f"reference_point names {unknown}, which are not objectives of this study")
        spec = StudySpec(
            space=SearchSpace(tuple(parameters)),
            objectives=tuple(Objective(metric, Direction(direction.lower()), reference_point.get(metric))
                             for metric, direction in objectives.items()),
            algorithm=AlgorithmSpec(algorithm or DEFAULT_ALGORITHM, dict(algorithm_settings or {})),
            seed=seed,
            max_trials=max_trials,
            max_parallel_trials=max_parallel_trials,
            lease_seconds=lease_seconds,
            retry_policy=RetryPolicy(max_retries, retry_failed),
            fidelity=fidelity,
            pruner=None if pruner is None else PrunerSpec(pruner, dict(pruner_settings or {})),
            constraints=tuple(constraints),
            prior_studies=tuple(prior_studies),
        )
        message = convert.spec_to_proto(spec)
        if seed is None:
            message.ClearField("seed")
        if algorithm is None:
            message.ClearField("algorithm")
        return self.create_study_from_proto(name, message)

    def create_study_from_proto(self, name: str, spec: pb.StudySpec) -> Study:
        response = self.call("CreateStudy", api.CreateStudyRequest(name=name, spec=spec))
        return Study(self, response.study, created=response.created)

    def get_study(self, name: str) -> Study:
        return Study(self, self.call("GetStudy", api.GetStudyRequest(name=name)).study)

    def list_studies(self, page_size: int = 100) -> Iterator[pb.Study]:
        token = ""
        while True:
            page = self.call("ListStudies", api.ListStudiesRequest(page_size=page_size, page_token=token))
            yield from page.studies
            if not (token := page.next_page_token):
                return

    def delete_study(self, name: str) -> None:
        self.call("DeleteStudy", api.DeleteStudyRequest(name=name))

    # --- roles (servers with --roles on; docs/OPERATIONS.md "Roles") -----------------------

    def set_study_permission(self, study: str, subject: str, role: str) -> pb.Permission:
        """Gives ``subject`` (``user:NAME`` or ``group:NAME``) ``role`` (reader, editor, manager) on a study."""
        request = api.SetStudyPermissionRequest(study=study, subject=subject, role=role)
        return self.call("SetStudyPermission", request).permission

    def delete_study_permission(self, study: str, subject: str) -> None:
        self.call("DeleteStudyPermission", api.DeleteStudyPermissionRequest(study=study, subject=subject))

    def list_study_permissions(self, study: str) -> list[pb.Permission]:
        return list(self.call("ListStudyPermissions", api.ListStudyPermissionsRequest(study=study)).permissions)

    # --- study webhooks (docs/OPERATIONS.md, "Webhooks") -------------------------------

    def create_study_webhook(self, name: str, url: str, events: Sequence[int | str], *, study_name: str = "",
                             secret: str = "", active: bool = True) -> tuple[wpb.Webhook, str]:
        """A webhook on study events ("STUDY_COMPLETED", "BEST_IMPROVED", "BUDGET_SPENT"), of
        ``study_name`` only or ("") of every study, and its generated secret (shown this once; ""
        when ``secret`` was given)."""
        return self._webhooks.create(name, url, events, study_name, secret, active)

    def get_study_webhook(self, name: str) -> wpb.Webhook:
        return self._webhooks.get(name)

    def list_study_webhooks(self, *, page_size: int = 100) -> Iterator[wpb.Webhook]:
        return self._webhooks.list(page_size)

    def update_study_webhook(self, name: str, *, url: str | None = None, events: Sequence[int | str] | None = None,
                             study_name: str | None = None, secret: str | None = None,
                             active: bool | None = None) -> wpb.Webhook:
        """Changes what is given (not None); the rest stays."""
        return self._webhooks.update(name, url=url, events=events, scope=study_name, secret=secret, active=active)

    def delete_study_webhook(self, name: str) -> None:
        self._webhooks.delete(name)

    def test_study_webhook(self, name: str) -> wpb.WebhookDelivery:
        """Queues a test delivery for the sender's next pass; follow it with list_study_webhook_deliveries."""
        return self._webhooks.test(name)

    def list_study_webhook_deliveries(self, name: str, *, status: int = 0, page_size: int = 100
                                      ) -> Iterator[wpb.WebhookDelivery]:
        """The delivery log, newest first, each delivery with its attempts."""
        return self._webhooks.deliveries(name, status, page_size)


@dataclass
class Study:
    """A handle on one study: ask, tell and look at its trials."""

    client: SuggestionClient
    info: pb.Study
    created: bool = False
    worker_id: str = field(default_factory=default_worker_id)
    # The latest SuggestTrials answer: its status, done_reason and message say why an ask came back empty.
    last_suggest: api.SuggestTrialsResponse | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def objectives(self) -> list[str]:
        return [o.metric for o in self.info.spec.objectives]

    @property
    def constraints(self) -> list[str]:
        """The declared constraint names; a successful tell carries one value per name."""
        return list(self.info.spec.constraints)

    def refresh(self) -> pb.Study:
        self.info = self.client.call("GetStudy", api.GetStudyRequest(name=self.name)).study
        return self.info

    def ask_batch(self, count: int = 1, *, wait: bool = True, timeout: float | None = None) -> list[Trial]:
        """Leases up to ``count`` trials. Returns [] once the study is done.

        With ``wait``, a WAIT answer (parallel limit reached, or the last trials still
        running) is retried after the server's ``retry_after`` until trials come back,
        the study is done or ``timeout`` seconds pass (then DeadlineExceeded).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            request = api.SuggestTrialsRequest(
                study=self.name, count=count, worker_id=self.worker_id, request_id=uuid.uuid4().hex
            )
            response = self.client.call("SuggestTrials", request)
            self.last_suggest = response
            if response.trials or response.status == api.SUGGEST_STATUS_DONE or not wait:
                return [Trial(self, t) for t in response.trials]
            pause = response.retry_after.ToTimedelta().total_seconds() or 0.5
            if deadline is not None and time.monotonic() + pause > deadline:
                raise DeadlineExceeded(f"no trial of study {self.name!r} became available in time: {response.message}")
            time.sleep(pause)

    def ask(self, *, wait: bool = True, timeout: float | None = None) -> Trial | None:
        """Leases one trial, or returns None once the study is done (see :meth:`ask_batch`)."""
        trials = self.ask_batch(1, wait=wait, timeout=timeout)
        return trials[0] if trials else None

    def tell(self, trial: Trial | int, value: float | Mapping[str, float], *,
             constraints: Sequence[float] | Mapping[str, float] | None = None) -> pb.Trial:
        """Completes a trial successfully with its objective value(s) (and any extra metrics).

        In a constrained study, ``constraints`` gives each declared constraint's value (<= 0:
        satisfied), as a list in declaration order or a dict by name. The returned trial's
        ``feasible`` says whether all hold; an infeasible trial never counts as a best trial.
        """
        return self._complete(trial, api.OUTCOME_SUCCEEDED, _metrics(value, self.objectives), "",
                              constraint_values(constraints, self.constraints))

    def fail(self, trial: Trial | int, reason: str) -> pb.Trial:
        return self._complete(trial, api.OUTCOME_FAILED, [], reason)

    def mark_infeasible(self, trial: Trial | int, reason: str) -> pb.Trial:
        return self._complete(trial, api.OUTCOME_INFEASIBLE, [], reason)

    def prune(self, trial: Trial | int) -> pb.Trial:
        """Ends ``trial`` as stopped early: it keeps no final values, where it stopped is its last report."""
        return self._complete(trial, api.OUTCOME_PRUNED, [], "stopped early")

    def _complete(self, trial: Trial | int, outcome: int, metrics: list[pb.Metric], reason: str,
                  constraints: Sequence[float] = ()) -> pb.Trial:
        trial_id = trial.id if isinstance(trial, Trial) else trial
        request = api.CompleteTrialRequest(
            trial_id=trial_id, worker_id=self.worker_id if isinstance(trial, Trial) else "",
            outcome=outcome, metrics=metrics, reason=reason, constraints=constraints,
        )
        return self.client.call("CompleteTrial", request).trial

    def enqueue(self, params: Mapping[str, Value]) -> pb.Trial:
        """Queues a configuration of your own (a baseline, a warm start); it is asked before new ones."""
        request = api.CreateTrialRequest(
            study=self.name, parameters={k: convert.value_to_proto(v) for k, v in params.items()}
        )
        return self.client.call("CreateTrial", request).trial

    def trials(self, *states: int, page_size: int = 500) -> Iterator[pb.Trial]:
        token = ""
        while True:
            page = self.client.call("ListTrials", api.ListTrialsRequest(
                study=self.name, states=states, page_size=page_size, page_token=token))
            yield from page.trials
            if not (token := page.next_page_token):
                return

    def best_trials(self) -> list[pb.Trial]:
        """The best feasible trial, or with several objectives the feasible Pareto set."""
        return list(self.best_response().trials)

    def hypervolume(self) -> float | None:
        """The Pareto set's hypervolume (several objectives; None otherwise or before any feasible trial).

        ``best_trials()`` and this are one call each; ``GetBestTrials`` also carries the
        reference point used (``reference_point``).
        """
        best = self.best_response()
        return best.hypervolume if best.HasField("hypervolume") else None

    def best_response(self) -> api.GetBestTrialsResponse:
        """GetBestTrials as it answers: the trials, the hypervolume and its reference point."""
        return self.client.call("GetBestTrials", api.GetBestTrialsRequest(study=self.name))

    def population(self) -> list[api.PopulationMember]:
        """A pbt study's members, each with its segments' trials (GetPopulation)."""
        return list(self.client.call("GetPopulation", api.GetPopulationRequest(study=self.name)).members)

    def parameter_importance(self, objective: str | None = None) -> dict[str, float]:
        """How much of ``objective``'s (default: the first objective's) variation each non-fixed
        parameter explains, largest first, summing to 1 (GetParameterImportance: fANOVA on a
        seeded random forest of the completed trials). Needs 5 completed trials
        (``FailedPrecondition`` before)."""
        response = self.client.call("GetParameterImportance", api.GetParameterImportanceRequest(
            study=self.name, objective=objective or ""))
        return {entry.parameter: entry.importance for entry in response.importances}

    def set_state(self, state: int) -> pb.Study:
        self.info = self.client.call("SetStudyState", api.SetStudyStateRequest(name=self.name, state=state)).study
        return self.info


@dataclass
class Trial:
    """A leased trial. ``params`` holds the active parameters with their Python types."""

    study: Study
    info: pb.Trial

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def number(self) -> int:
        return self.info.number

    @property
    def params(self) -> dict[str, Value]:
        return {name: convert.value_from_proto(v, name) for name, v in self.info.parameters.items()}

    @property
    def budget(self) -> float | None:
        return self.info.budget if self.info.HasField("budget") else None

    @property
    def pbt_segment(self) -> pb.PbtSegment | None:
        """In a pbt study: the member's segment to train (steps, the checkpoint's trial), else None."""
        return self.info.pbt_segment if self.info.HasField("pbt_segment") else None

    def report(self, step: int, value: float | Mapping[str, float], *, retries: int | None = None) -> bool:
        """Reports intermediate value(s) at ``step`` and renews the lease; True means stop now."""
        request = api.ReportIntermediateRequest(
            trial_id=self.id, worker_id=self.study.worker_id, step=step,
            metrics=_metrics(value, self.study.objectives),
        )
        return self.study.client.call("ReportIntermediate", request, retries=retries).should_stop

    def link_run(self, run_id: str) -> pb.Trial:
        """Records the tracking run that holds this trial's params, metrics and model."""
        request = api.LinkRunRequest(trial_id=self.id, worker_id=self.study.worker_id, run_id=run_id)
        self.info = self.study.client.call("LinkRun", request).trial
        return self.info

    def heartbeat(self, *, retries: int | None = None) -> None:
        self.study.client.call("Heartbeat", api.HeartbeatRequest(trial_id=self.id, worker_id=self.study.worker_id),
                               retries=retries)

    def release(self, reason: str = "") -> pb.Trial:
        """Hands the trial back now (e.g. on SIGTERM): it goes STALE and is retried within the policy.

        Releasing it again is a no-op; afterwards report and tell are refused (``LEASE_LOST``).
        """
        request = api.ReleaseTrialRequest(trial_id=self.id, worker_id=self.study.worker_id, reason=reason)
        self.info = self.study.client.call("ReleaseTrial", request).trial
        return self.info

    def prune(self) -> pb.Trial:
        return self.study.prune(self)


__all__ = ["Study", "SuggestionClient", "Trial"]
