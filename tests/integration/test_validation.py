"""Every invalid field of every RPC: the right status code, a message naming the field,
and the stored data exactly as it was before the call."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2, struct_pb2

from trial_worker import Float, Int, SuggestionClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, TuningError

V = pb.ParameterValue


def _float(name, low, high, **kw):
    return pb.ParameterSpec(name=name, float_range=pb.FloatRange(low=low, high=high, **kw))


def _spec(*parameters, objectives=None, **kw):
    objectives = objectives if objectives is not None else [pb.Objective(metric="loss", direction=pb.DIRECTION_MINIMIZE)]
    return pb.StudySpec(parameters=list(parameters) or [_float("x", 0, 1)], objectives=objectives, **kw)


def _create(spec, name="new"):
    return ("CreateStudy", api.CreateStudyRequest(name=name, spec=spec))


def _settings(**values):
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


LOSS = [pb.Metric(name="loss", value=0.5)]

# (id, rpc, request or a function of the live trial id, expected error, field)
CASES = [
    ("study name empty", *_create(_spec(), name=""), InvalidArgument, "name"),
    ("study name bad chars", *_create(_spec(), name="a b/c"), InvalidArgument, "name"),
    ("study name too long", *_create(_spec(), name="x" * 129), InvalidArgument, "name"),
    ("no objectives", *_create(_spec(objectives=[])), InvalidArgument, "spec.objectives"),
    ("objective direction", *_create(_spec(objectives=[pb.Objective(metric="loss")])),
     InvalidArgument, "spec.objectives[0].direction"),
    ("objective name", *_create(_spec(objectives=[pb.Objective(metric="", direction=1)])),
     InvalidArgument, "spec.objectives[0].metric"),
    ("duplicate objective", *_create(_spec(objectives=[pb.Objective(metric="a", direction=1)] * 2)),
     InvalidArgument, "spec.objectives[1].metric"),
    ("parameter without domain", *_create(_spec(pb.ParameterSpec(name="x"))), InvalidArgument,
     "spec.parameters[0].domain"),
    ("parameter name", *_create(_spec(_float("", 0, 1))), InvalidArgument, "spec.parameters[0].name"),
    ("duplicate parameter", *_create(_spec(_float("x", 0, 1), _float("x", 0, 1))), InvalidArgument,
     "spec.parameters[1].name"),
    ("low above high", *_create(_spec(_float("x", 2, 1))), InvalidArgument, "spec.parameters[0].float_range.low"),
    ("infinite bound", *_create(_spec(_float("x", 0, float("inf")))), InvalidArgument,
     "spec.parameters[0].float_range.low"),
    ("log of non-positive", *_create(_spec(_float("x", 0, 1, scale=pb.SCALE_LOG))), InvalidArgument,
     "spec.parameters[0].float_range.low"),
    ("log with step", *_create(_spec(_float("x", 1, 2, scale=pb.SCALE_LOG, step=0.1))), InvalidArgument,
     "spec.parameters[0].float_range.step"),
    ("zero step", *_create(_spec(_float("x", 0, 1, step=0))), InvalidArgument, "spec.parameters[0].float_range.step"),
    ("int step", *_create(_spec(pb.ParameterSpec(name="n", int_range=pb.IntRange(low=0, high=5, step=-1)))),
     InvalidArgument, "spec.parameters[0].int_range.step"),
    ("int low above high", *_create(_spec(pb.ParameterSpec(name="n", int_range=pb.IntRange(low=5, high=1)))),
     InvalidArgument, "spec.parameters[0].int_range.low"),
    ("no choices", *_create(_spec(pb.ParameterSpec(name="c", categorical=pb.Categorical()))),
     InvalidArgument, "spec.parameters[0].categorical.choices"),
    ("duplicate choice", *_create(_spec(pb.ParameterSpec(name="c", categorical=pb.Categorical(
        choices=[V(string_value="a"), V(string_value="a")])))), InvalidArgument,
     "spec.parameters[0].categorical.choices[1]"),
    ("empty choice", *_create(_spec(pb.ParameterSpec(name="c", categorical=pb.Categorical(choices=[V()])))),
     InvalidArgument, "spec.parameters[0].categorical.choices[0]"),
    ("fixed without value", *_create(_spec(pb.ParameterSpec(name="f", fixed=pb.Fixed()))), InvalidArgument,
     "spec.parameters[0].fixed.value"),
    ("condition on unknown parent", *_create(_spec(pb.ParameterSpec(
        name="y", float_range=pb.FloatRange(low=0, high=1),
        condition=pb.Condition(parent="nope", values=[V(string_value="a")])))), InvalidArgument,
     "spec.parameters[0].condition.parent"),
    ("condition on a float parent", *_create(_spec(_float("x", 0, 1), pb.ParameterSpec(
        name="y", float_range=pb.FloatRange(low=0, high=1),
        condition=pb.Condition(parent="x", values=[V(float_value=0.5)])))), InvalidArgument,
     "spec.parameters[1].condition.parent"),
    ("condition value outside parent", *_create(_spec(
        pb.ParameterSpec(name="b", categorical=pb.Categorical(choices=[V(string_value="a")])),
        pb.ParameterSpec(name="y", float_range=pb.FloatRange(low=0, high=1),
                         condition=pb.Condition(parent="b", values=[V(string_value="z")])))), InvalidArgument,
     "spec.parameters[1].condition.values[0]"),
    ("condition without values", *_create(_spec(
        pb.ParameterSpec(name="b", categorical=pb.Categorical(choices=[V(string_value="a")])),
        pb.ParameterSpec(name="y", float_range=pb.FloatRange(low=0, high=1), condition=pb.Condition(parent="b")))),
     InvalidArgument, "spec.parameters[1].condition.values"),
    ("unknown algorithm", *_create(_spec(algorithm=pb.Algorithm(name="magic"))), InvalidArgument,
     "spec.algorithm.name"),
    ("unknown setting", *_create(_spec(algorithm=pb.Algorithm(name="quasi_random", settings=_settings(speed=3)))),
     InvalidArgument, "spec.algorithm.settings.speed"),
    ("bad setting value", *_create(_spec(algorithm=pb.Algorithm(name="quasi_random",
                                                                settings=_settings(sequence="latin")))),
     InvalidArgument, "spec.algorithm.settings.sequence"),
    ("bad setting type", *_create(_spec(algorithm=pb.Algorithm(name="grid", settings=_settings(shuffle="yes")))),
     InvalidArgument, "spec.algorithm.settings.shuffle"),
    ("grid over a continuous range", *_create(_spec(algorithm=pb.Algorithm(name="grid"))), InvalidArgument,
     "spec.parameters[0].float_range.step"),
    ("negative max_trials", *_create(_spec(max_trials=-1)), InvalidArgument, "spec.max_trials"),
    ("negative parallel", *_create(_spec(max_parallel_trials=-2)), InvalidArgument, "spec.max_parallel_trials"),
    ("lease too short", *_create(_spec(lease_duration=duration_pb2.Duration(nanos=1000))), InvalidArgument,
     "spec.lease_duration"),
    ("negative retries", *_create(_spec(retry_policy=pb.RetryPolicy(max_retries=-1))), InvalidArgument,
     "spec.retry_policy.max_retries"),
    ("negative seed", *_create(_spec(seed=-5)), InvalidArgument, "spec.seed"),
    ("existing study, other spec", *_create(_spec(_float("x", 0, 2)), name="base"), AlreadyExists, None),
    ("get missing study", "GetStudy", api.GetStudyRequest(name="missing"), NotFound, None),
    ("get empty name", "GetStudy", api.GetStudyRequest(name=""), InvalidArgument, "name"),
    ("list negative page", "ListStudies", api.ListStudiesRequest(page_size=-1), InvalidArgument, "page_size"),
    ("list huge page", "ListStudies", api.ListStudiesRequest(page_size=5000), InvalidArgument, "page_size"),
    ("list bad token", "ListStudies", api.ListStudiesRequest(page_token="!!"), InvalidArgument, "page_token"),
    ("state unspecified", "SetStudyState", api.SetStudyStateRequest(name="base"), InvalidArgument, "state"),
    ("state of missing study", "SetStudyState", api.SetStudyStateRequest(name="missing", state=2), NotFound, None),
    ("delete missing", "DeleteStudy", api.DeleteStudyRequest(name="missing"), NotFound, None),
    ("delete empty name", "DeleteStudy", api.DeleteStudyRequest(name=""), InvalidArgument, "name"),
    ("ask zero", "SuggestTrials", api.SuggestTrialsRequest(study="base", count=0, worker_id="w", request_id="r"),
     InvalidArgument, "count"),
    ("ask too many", "SuggestTrials", api.SuggestTrialsRequest(study="base", count=1001, worker_id="w",
                                                               request_id="r"), InvalidArgument, "count"),
    ("ask no worker", "SuggestTrials", api.SuggestTrialsRequest(study="base", count=1, request_id="r"),
     InvalidArgument, "worker_id"),
    ("ask no request id", "SuggestTrials", api.SuggestTrialsRequest(study="base", count=1, worker_id="w"),
     InvalidArgument, "request_id"),
    ("ask long worker", "SuggestTrials", api.SuggestTrialsRequest(study="base", count=1, worker_id="w" * 300,
                                                                  request_id="r"), InvalidArgument, "worker_id"),
    ("ask missing study", "SuggestTrials", api.SuggestTrialsRequest(study="missing", count=1, worker_id="w",
                                                                    request_id="r"), NotFound, None),
    ("report negative step", "ReportIntermediate",
     lambda t: api.ReportIntermediateRequest(trial_id=t, step=-1, metrics=LOSS), InvalidArgument, "step"),
    ("report no metrics", "ReportIntermediate", lambda t: api.ReportIntermediateRequest(trial_id=t, step=1),
     InvalidArgument, "metrics"),
    ("report nan", "ReportIntermediate", lambda t: api.ReportIntermediateRequest(
        trial_id=t, step=1, metrics=[pb.Metric(name="loss", value=float("nan"))]), InvalidArgument,
     "metrics[0].value"),
    ("report duplicate metric", "ReportIntermediate", lambda t: api.ReportIntermediateRequest(
        trial_id=t, step=1, metrics=LOSS * 2), InvalidArgument, "metrics[1].name"),
    ("report bad metric name", "ReportIntermediate", lambda t: api.ReportIntermediateRequest(
        trial_id=t, step=1, metrics=[pb.Metric(name="a b", value=1)]), InvalidArgument, "metrics[0].name"),
    ("report missing trial", "ReportIntermediate", api.ReportIntermediateRequest(trial_id=10**9, step=1, metrics=LOSS),
     NotFound, None),
    ("report zero trial id", "ReportIntermediate", api.ReportIntermediateRequest(trial_id=0, step=1, metrics=LOSS),
     InvalidArgument, "trial_id"),
    ("report other worker", "ReportIntermediate", lambda t: api.ReportIntermediateRequest(
        trial_id=t, worker_id="other", step=1, metrics=LOSS), FailedPrecondition, None),
    ("heartbeat missing", "Heartbeat", api.HeartbeatRequest(trial_id=10**9), NotFound, None),
    ("heartbeat other worker", "Heartbeat", lambda t: api.HeartbeatRequest(trial_id=t, worker_id="other"),
     FailedPrecondition, None),
    ("tell no outcome", "CompleteTrial", lambda t: api.CompleteTrialRequest(trial_id=t, metrics=LOSS),
     InvalidArgument, "outcome"),
    ("tell missing objective", "CompleteTrial", lambda t: api.CompleteTrialRequest(
        trial_id=t, outcome=api.OUTCOME_SUCCEEDED, metrics=[pb.Metric(name="acc", value=1)]), InvalidArgument,
     "metrics"),
    ("tell infinite", "CompleteTrial", lambda t: api.CompleteTrialRequest(
        trial_id=t, outcome=api.OUTCOME_SUCCEEDED, metrics=[pb.Metric(name="loss", value=float("-inf"))]),
     InvalidArgument, "metrics[0].value"),
    ("tell long reason", "CompleteTrial", lambda t: api.CompleteTrialRequest(
        trial_id=t, outcome=api.OUTCOME_FAILED, reason="x" * 5000), InvalidArgument, "reason"),
    ("tell other worker", "CompleteTrial", lambda t: api.CompleteTrialRequest(
        trial_id=t, worker_id="other", outcome=api.OUTCOME_SUCCEEDED, metrics=LOSS), FailedPrecondition, None),
    ("tell missing trial", "CompleteTrial", api.CompleteTrialRequest(
        trial_id=10**9, outcome=api.OUTCOME_SUCCEEDED, metrics=LOSS), NotFound, None),
    ("enqueue unknown parameter", "CreateTrial", api.CreateTrialRequest(
        study="base", parameters={"x": V(float_value=0.5), "n": V(int_value=2), "zzz": V(int_value=1)}),
     InvalidArgument, "parameters[zzz]"),
    ("enqueue out of range", "CreateTrial", api.CreateTrialRequest(
        study="base", parameters={"x": V(float_value=1.5), "n": V(int_value=2)}), InvalidArgument, "parameters[x]"),
    ("enqueue wrong type", "CreateTrial", api.CreateTrialRequest(
        study="base", parameters={"x": V(string_value="a"), "n": V(int_value=2)}), InvalidArgument, "parameters[x]"),
    ("enqueue missing", "CreateTrial", api.CreateTrialRequest(study="base", parameters={"x": V(float_value=0.5)}),
     InvalidArgument, "parameters[n]"),
    ("enqueue empty value", "CreateTrial", api.CreateTrialRequest(
        study="base", parameters={"x": V(), "n": V(int_value=2)}), InvalidArgument, "parameters[x]"),
    ("enqueue missing study", "CreateTrial", api.CreateTrialRequest(study="missing"), NotFound, None),
    ("get missing trial", "GetTrial", api.GetTrialRequest(trial_id=10**9), NotFound, None),
    ("get trial id zero", "GetTrial", api.GetTrialRequest(trial_id=0), InvalidArgument, "trial_id"),
    ("list trials bad state", "ListTrials", api.ListTrialsRequest(study="base", states=[42]), InvalidArgument,
     "states[0]"),
    ("list trials missing study", "ListTrials", api.ListTrialsRequest(study="missing"), NotFound, None),
    ("list trials bad page", "ListTrials", api.ListTrialsRequest(study="base", page_size=-3), InvalidArgument,
     "page_size"),
    ("measurements missing trial", "ListMeasurements", api.ListMeasurementsRequest(trial_id=10**9), NotFound, None),
    ("best of missing study", "GetBestTrials", api.GetBestTrialsRequest(study="missing"), NotFound, None),
    ("population of missing study", "GetPopulation", api.GetPopulationRequest(study="missing"), NotFound, None),
    ("population of a study that is not pbt", "GetPopulation", api.GetPopulationRequest(study="base"),
     FailedPrecondition, None),
    ("population of a bad name", "GetPopulation", api.GetPopulationRequest(study="a b"), InvalidArgument, "study"),
    ("importance of missing study", "GetParameterImportance", api.GetParameterImportanceRequest(study="missing"),
     NotFound, None),
    ("importance of a bad name", "GetParameterImportance", api.GetParameterImportanceRequest(study="a b"),
     InvalidArgument, "study"),
    ("importance of another metric", "GetParameterImportance",
     api.GetParameterImportanceRequest(study="base", objective="accuracy"), InvalidArgument, "objective"),
    ("importance from one completed trial", "GetParameterImportance",
     api.GetParameterImportanceRequest(study="base"), FailedPrecondition, None),
]


def _snapshot(client: SuggestionClient) -> list[bytes]:
    state = []
    for study in client.list_studies():
        state.append(study.SerializeToString(deterministic=True))
        for trial in client.get_study(study.name).trials():
            state.append(trial.SerializeToString(deterministic=True))
            measurements = client.call("ListMeasurements", api.ListMeasurementsRequest(trial_id=trial.id))
            state.append(measurements.SerializeToString(deterministic=True))
    return state


@pytest.fixture
def live_trial(client: SuggestionClient) -> int:
    study = client.create_study("base", [Float("x", 0, 1), Int("n", 1, 3)], objectives={"loss": "minimize"})
    done = study.ask()
    done.report(0, 0.7)
    study.tell(done, 0.7)
    trial = study.ask()
    trial.report(0, 0.9)
    return trial.id


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_invalid_requests_are_refused_and_change_nothing(client: SuggestionClient, live_trial: int, case):
    _, rpc, request, expected, field = case
    if callable(request):
        request = request(live_trial)
    before = _snapshot(client)
    with pytest.raises(TuningError) as raised:
        client.call(rpc, request)
    assert type(raised.value) is expected, raised.value
    if field is not None:
        assert raised.value.field == field
        assert str(raised.value).startswith(field)
    assert _snapshot(client) == before


def _components():
    """Every algorithm and pruner with a spec that it accepts apart from its settings."""
    from suggestion_service.algorithms import ALGORITHMS
    from suggestion_service.algorithms.pruners import PRUNERS

    fidelity = pb.Fidelity(name="epochs", min=1, max=9)
    for name, cls in ALGORITHMS.items():
        # pbt schedules steps itself and refuses a fidelity.
        yield "algorithm", name, cls, lambda settings, name=name: _spec(
            _float("x", 0, 1, step=0.5), fidelity=None if name == "pbt" else fidelity,
            algorithm=pb.Algorithm(name=name, settings=settings))
    for name, cls in PRUNERS.items():
        yield "pruner", name, cls, lambda settings, name=name: _spec(
            fidelity=fidelity, pruner=pb.Pruner(name=name, settings=settings))


# A value of another JSON type than each setting type takes.
_WRONG = {bool: "yes", int: 2.5, float: "fast", str: 3.0}
COMPONENTS = list(_components())


@pytest.mark.parametrize("kind, name, cls, spec", COMPONENTS, ids=[f"{c[0]}-{c[1]}" for c in COMPONENTS])
def test_every_setting_refuses_unknown_keys_and_wrong_types(client: SuggestionClient, kind, name, cls, spec):
    # The control: the defaults, spelled out, are accepted and stored as given.
    defaults = {key: default for key, (_, default) in cls.settings_schema().items()}
    study = client.create_study_from_proto(f"{name}-defaults", spec(_settings(**defaults)))
    stored = getattr(study.info.spec, kind).settings
    assert dict(stored) == defaults
    for i, (key, (expected, _)) in enumerate(cls.settings_schema().items()):
        with pytest.raises(InvalidArgument) as raised:
            client.create_study_from_proto(f"{name}-{i}", spec(_settings(**{key: _WRONG[expected]})))
        assert raised.value.field == f"spec.{kind}.settings.{key}"
        for other in (struct_pb2.Struct(fields={key: struct_pb2.Value(null_value=0)}),
                      _settings(**{key: [defaults[key]]}), _settings(**{key: {"value": defaults[key]}})):
            with pytest.raises(InvalidArgument) as raised:
                client.create_study_from_proto(f"{name}-{i}", spec(other))
            assert raised.value.field == f"spec.{kind}.settings.{key}"
    with pytest.raises(InvalidArgument) as raised:
        client.create_study_from_proto(f"{name}-typo", spec(_settings(n_startup_trails=5)))
    assert raised.value.field == f"spec.{kind}.settings.n_startup_trails"
    assert "unknown setting" in str(raised.value)
    assert [s.name for s in client.list_studies()] == [f"{name}-defaults"]
