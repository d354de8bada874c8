"""OpenTelemetry end to end: the services, the gateway and two workers as separate processes,
exporting over OTLP/gRPC to an in-process receiver on port 0."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from trial_worker import Categorical, Float, SuggestionClient
from trial_worker.local_suite import LocalSuite
from trial_worker.tracking import TrackingClient
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.tracking.v1 import tracking_pb2 as tpb
from tuning_common import telemetry
from tuning_common.otlp_receiver import OtlpReceiver, SpanRecord, format_trace
from tuning_types.convert import value_from_proto

TRIALS = 6
# Values of the study's categorical parameter: no span attribute may ever contain them.
SECRET_CHOICES = ["zqx-alpha-choice", "zqx-beta-choice"]
SECRET_TOKEN = "zqx-token-never-traced-0123456789"


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> dict:
    """One small study run by two worker processes, with every process exporting telemetry."""
    home = tmp_path_factory.mktemp("telemetry")
    with OtlpReceiver() as receiver:
        # Header capture on, as an operator might turn it: credentials must stay out all the same.
        env = {**receiver.environment(), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization"}
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)  # the suite's processes inherit it
        try:
            with LocalSuite(home, gateway_port=0) as suite:
                name = f"otel-{uuid.uuid4().hex[:6]}"
                with SuggestionClient(suite.suggestion_address) as client:
                    client.create_study(name, [Float("x", -3, 3), Categorical("flavour", SECRET_CHOICES)],
                                        objectives={"loss": "minimize"}, algorithm="tpe", pruner="median",
                                        algorithm_settings={"n_startup_trials": 2},
                                        # The pruner is asked at every report (its spans are wanted) but
                                        # never stops a trial: which trial it would stop depends on how
                                        # the two workers' reports interleave, and every trial must complete.
                                        pruner_settings={"n_startup_trials": TRIALS},
                                        max_trials=TRIALS, seed=3)
                workers = [subprocess.Popen(
                    [sys.executable, "-m", "trial_worker", "--study", name, "--suggestion-address",
                     suite.suggestion_address, "--tracking-address", suite.tracking_address,
                     "--train", "tests.e2e.worker_functions:traced"],
                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    env={**os.environ, "TUNING_HOME": str(home / f"worker-{i}")}) for i in range(2)]
                outputs = [worker.communicate(timeout=120)[0] for worker in workers]
                assert all(worker.returncode == 0 for worker in workers), outputs
                with SuggestionClient(suite.suggestion_address) as client:
                    trials = list(client.get_study(name).trials(pb.TRIAL_STATE_COMPLETED))
                # A traced HTTP request through the gateway, continuing a trace of ours.
                parent_trace, parent_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
                response = httpx.get(f"{suite.gateway_url}/v1/studies/{name}/trials", params={"page_size": 2},
                                     headers={"traceparent": f"00-{parent_trace}-{parent_span}-01",
                                              "authorization": f"Bearer {SECRET_TOKEN}"})
                assert response.status_code == 200, response.text
                missing = httpx.get(f"{suite.gateway_url}/v1/studies/no-such-study")
                assert missing.status_code == 404
            # The services flushed at exit (SIGTERM); the workers when they finished.
            completed_ids = {t.id for t in trials}
            assert len(completed_ids) == TRIALS

            def all_traced() -> bool:
                roots = {s.attributes.get("tuning.trial.id") for s in receiver.spans if s.name == "run trial"}
                return completed_ids <= roots and any(s.trace_id == parent_trace for s in receiver.spans)

            assert receiver.wait_for(all_traced, 30), "not every trial's trace arrived"
            receiver.wait_for(lambda: {"tuning.trials", "tuning.metrics.logged"} <= {m.name for m in receiver.metrics})
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {"receiver": receiver, "trials": trials, "study": name, "parent": (parent_trace, parent_span)}


def trial_traces(receiver: OtlpReceiver) -> dict[int, list[SpanRecord]]:
    traces = receiver.traces()
    by_trial: dict[int, list[list[SpanRecord]]] = defaultdict(list)
    for spans in traces.values():
        for span in spans:
            if span.name == "run trial" and not span.parent_id and "tuning.trial.id" in span.attributes:
                by_trial[span.attributes["tuning.trial.id"]].append(spans)
    assert all(len(found) == 1 for found in by_trial.values()), "a trial has more than one trace"
    return {trial_id: found[0] for trial_id, found in by_trial.items()}


def test_each_completed_trial_is_one_trace_across_the_processes(study_run):
    traces = trial_traces(study_run["receiver"])
    for trial in study_run["trials"]:
        spans = traces[trial.id]
        by_id = {s.span_id: s for s in spans}
        names = {(s.service, s.kind, s.name) for s in spans}
        context = format_trace(spans)
        # The worker's own spans.
        for name in ("run trial", "train trial", "report measurement"):
            assert ("trial-worker", "internal", name) in names, context
        # The ask, the reports and the tell as client spans, answered by the suggestion service.
        for rpc in ("SuggestTrials", "ReportIntermediate", "CompleteTrial", "LinkRun"):
            method = f"/tuning.suggestion.v1.SuggestionService/{rpc}"
            assert ("trial-worker", "client", method) in names, context
            assert ("suggestion-service", "server", method) in names, context
        # The tracking writes, including those of the worker's background logger thread.
        for rpc in ("CreateRun", "LogBatch", "UpdateRun", "UploadArtifact"):
            assert ("tracking-service", "server", f"/tuning.tracking.v1.TrackingService/{rpc}") in names, context
        assert ("suggestion-service", "internal", "suggest trials") in names
        assert ("suggestion-service", "internal", "decide pruning") in names
        assert ("tracking-service", "internal", "upload artifact") in names
        assert {s.service for s in spans if s.attributes.get("db.system") == "sqlite"} == {
            "suggestion-service", "tracking-service"}, context

        # Parent links: one root; every server span's parent is the caller's client span of the
        # same method; database spans hang below their own service's server span.
        roots = [s for s in spans if not s.parent_id]
        assert [r.name for r in roots] == ["run trial"], context
        assert all(s.parent_id in by_id for s in spans if s.parent_id), "a span's parent is not in the trace"
        for span in spans:
            parent = by_id.get(span.parent_id)
            if span.kind == "server":
                assert parent.kind == "client" and parent.name == span.name and parent.service == "trial-worker"
            if span.attributes.get("db.system"):
                ancestor = parent
                while ancestor.kind != "server":
                    ancestor = by_id[ancestor.parent_id]
                assert ancestor.service == span.service
        train = next(s for s in spans if s.name == "train trial")
        assert by_id[train.parent_id].name == "run trial"
        assert all(by_id[s.parent_id] is train for s in spans if s.name == "report measurement")
        reports = [s for s in spans if s.kind == "client" and s.name.endswith("/ReportIntermediate")]
        assert all(by_id[s.parent_id].name == "report measurement" for s in reports)
        ask = next(s for s in spans if s.service == "trial-worker" and s.name.endswith("/SuggestTrials"))
        assert by_id[ask.parent_id].name == "run trial"


def test_custom_spans_carry_the_tuning_ids(study_run):
    traces = trial_traces(study_run["receiver"])
    study = study_run["study"]
    for trial in study_run["trials"]:
        spans = traces[trial.id]
        root = next(s for s in spans if s.name == "run trial")
        assert root.attributes["tuning.study"] == study
        assert root.attributes["tuning.trial.number"] == trial.number
        assert root.attributes["tuning.trial.state"] == "COMPLETED"
        assert root.attributes["tuning.run.id"] == trial.run_id
        suggest = next(s for s in spans if s.name == "suggest trials")
        assert suggest.attributes["tuning.study"] == study and trial.id in suggest.attributes["tuning.trial.ids"]
        assert suggest.attributes["tuning.suggest.status"] == "OK"
        for decision in (s for s in spans if s.name == "decide pruning"):
            assert decision.attributes["tuning.trial.id"] == trial.id
            assert decision.attributes["tuning.pruner"] == "median"
            assert decision.attributes["tuning.pruning.decision"] in ("stop", "continue")
        upload = next(s for s in spans if s.name == "upload artifact")
        assert upload.attributes["tuning.run.id"] == trial.run_id
        assert upload.attributes["tuning.artifact.bytes"] == len("trained\n")
    # Once the TPE model takes over (after two start-up trials), its sampling is a span too.
    spans = study_run["receiver"].spans
    asks = [s for s in spans if s.name == "suggest trials" and "tuning.algorithm" in s.attributes]
    assert len(asks) == TRIALS and all(s.attributes["tuning.algorithm"] == "tpe" for s in asks)
    # A batch is computed for an ask (a child of its span) or, after a tell, ahead of the next
    # ask (a trace of its own, marked prefetch); the model process's stages are its children.
    computes = [s for s in spans if s.name == "compute suggestions"]
    assert computes and all(c.attributes["tuning.algorithm"] == "tpe" for c in computes)
    assert all(c.parent_id in {a.span_id for a in asks} or c.attributes["tuning.suggest.prefetch"] for c in computes)
    samples = [s for s in spans if s.name == "sample tpe"]
    assert samples and all(s.parent_id in {c.span_id for c in computes} for s in samples)


def test_no_attribute_holds_a_hyperparameter_value(study_run):
    values = [value_from_proto(t.parameters["x"], "x") for t in study_run["trials"]]
    checked = 0
    for span in study_run["receiver"].spans:
        for attributes in (span.attributes, *(event for _, event in span.events)):
            for key, value in attributes.items():
                checked += 1
                text = str(value)
                assert not any(choice in text for choice in SECRET_CHOICES), (span.name, key, value)
                for x in values:
                    assert repr(x) not in text and f"{x:.6g}" not in text, (span.name, key, value)
                    if isinstance(value, float):
                        assert not math.isclose(value, x), (span.name, key, value)
    assert checked > 1000


def test_expected_outcomes_are_not_server_errors(study_run):
    spans = study_run["receiver"].spans
    server = [s for s in spans if s.kind == "server"]
    assert server and not [s for s in server if s.status == "error"]
    # The gateway's lookup of a missing study: NOT_FOUND (5) is an answer, not a fault.
    missing = [s for s in server if s.service == "suggestion-service" and s.name.endswith("/GetStudy")
               and s.attributes.get("rpc.grpc.status_code") == 5]
    assert missing and all(s.status == "unset" and s.attributes["tuning.error.reason"] for s in missing)
    assert not [s for s in spans if s.service == "trial-worker" and s.kind == "internal" and s.status == "error"]


def test_http_requests_continue_the_callers_trace_through_the_gateway(study_run):
    parent_trace, parent_span = study_run["parent"]
    spans = study_run["receiver"].traces()[parent_trace]
    by_id = {s.span_id: s for s in spans}
    http = next(s for s in spans if s.service == "gateway" and s.kind == "server")
    assert http.parent_id == parent_span
    assert http.attributes["http.method"] == "GET" and http.attributes["http.status_code"] == 200
    # The query string stays out of the attributes (filters may quote parameter values).
    assert "page_size" not in http.attributes["http.target"] and "page_size" not in http.attributes["http.url"]
    # Captured headers are redacted where they hold credentials.
    assert http.attributes["http.request.header.authorization"] == ["[REDACTED]"]
    assert not [s for s in study_run["receiver"].spans if SECRET_TOKEN in str(s.attributes)]
    rpc = next(s for s in spans if s.service == "suggestion-service" and s.kind == "server")
    client = by_id[rpc.parent_id]
    assert client.service == "gateway" and client.kind == "client"
    assert any(s.attributes.get("db.system") == "sqlite" and s.service == "suggestion-service" for s in spans)


def metric(study_run, name: str, service: str | None = None) -> list:
    return [m for m in study_run["receiver"].metrics if m.name == name and (service is None or m.service == service)]


def latest(points: list, **attributes) -> float:
    matching = [p for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())]
    assert matching, attributes
    return matching[-1]


def test_the_metrics_arrive_with_sane_values(study_run):
    trials = study_run["trials"]
    # Trials by state, read from the database: every trial completed.
    assert latest(metric(study_run, "tuning.trials"), **{"tuning.trial.state": "COMPLETED"}).value == TRIALS
    assert latest(metric(study_run, "tuning.trials.retried")).value == 0
    # Suggestion latency by algorithm: one proposal per trial, each well under a minute.
    suggest = latest(metric(study_run, "tuning.suggest.duration"), **{"tuning.algorithm": "tpe"})
    assert suggest.count == TRIALS and 0 < suggest.value < 60
    # Buckets in seconds: the SDK's default ones (0, 5, 10, ... for milliseconds) put every proposal in one.
    assert suggest.bounds == telemetry.BUCKETS["s"] and sum(suggest.bucket_counts) == TRIALS
    # Pruning decisions: one per report that reached a checkpoint, at most three per trial.
    decisions = metric(study_run, "tuning.pruning.decisions")
    total = sum(latest(decisions, **{"tuning.pruning.decision": d}).value
                for d in {p.attributes["tuning.pruning.decision"] for p in decisions})
    assert 0 < total <= 3 * TRIALS
    # Metric points stored: three reports and the final loss per trial, at least.
    assert latest(metric(study_run, "tuning.metrics.logged")).value >= 4 * len(trials)
    # Requests by RPC with their latency, and the database pools.
    asks = latest(metric(study_run, "rpc.server.duration", "suggestion-service"),
                  **{"rpc.method": "SuggestTrials", "rpc.grpc.status_code": 0})
    assert asks.count >= TRIALS and 0 < asks.value / asks.count < 10_000
    assert asks.bounds == telemetry.BUCKETS["ms"]
    tells = latest(metric(study_run, "rpc.server.duration", "suggestion-service"), **{"rpc.method": "CompleteTrial"})
    assert tells.count == TRIALS
    pools = {m.service for m in metric(study_run, "db.client.connections.usage")}
    assert {"suggestion-service", "tracking-service"} <= pools
    assert metric(study_run, "http.server.duration", "gateway")


def test_nothing_is_exported_or_printed_unless_configured(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", "from tuning_common import telemetry; print(telemetry.setup('gateway'))"],
        env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout == "False\n" and result.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "suggestion_service", "--port", "0", "--database-url",
                          f"sqlite:///{tmp_path / 's.db'}"], env={**env, "OTEL_TRACES_EXPORTER": "zipkin"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "OTEL_TRACES_EXPORTER" in bad.stderr


CLIENT_SCRIPT = """
import logging, sys
from tuning_common import telemetry
from trial_worker import Float, SuggestionClient
telemetry.setup("trial-worker")
with SuggestionClient(sys.argv[1]) as client:
    study = client.create_study("pg", [Float("x", 0, 1)], objectives={"loss": "minimize"}, max_trials=3)
    with telemetry.span("run trial"):
        trial = study.ask()
        logging.getLogger("client").warning("asked for trial %d", trial.number)
        study.tell(trial, 0.5)
"""


@pytest.mark.postgres
def test_handlers_on_the_thread_pool_keep_the_callers_trace(postgres_url):
    """On PostgreSQL the handlers run on a thread pool: the trace must cross into those threads."""
    from tests.conftest import ServerProcess

    with OtlpReceiver() as receiver:
        server = ServerProcess(postgres_url, env=receiver.environment())
        try:
            client = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, server.address], cwd=ROOT,
                                    env={**os.environ, **receiver.environment()}, capture_output=True, text=True,
                                    timeout=60)
            assert client.returncode == 0, client.stderr
        finally:
            server.stop()

        def traced() -> bool:
            return any(s.name == "run trial" for s in receiver.spans) and any(
                s.service == "suggestion-service" and s.name.endswith("/CompleteTrial") for s in receiver.spans
            ) and receiver.logs

        assert receiver.wait_for(traced, 30)
    [root] = [s for s in receiver.spans if s.name == "run trial"]
    spans = receiver.traces()[root.trace_id]
    by_id = {s.span_id: s for s in spans}
    for method in ("SuggestTrials", "CompleteTrial"):
        [handler] = [s for s in spans if s.kind == "server" and s.name.endswith(f"/{method}")]
        below = [s for s in spans if s.attributes.get("db.system") == "postgresql" and s.parent_id
                 and _descends_from(s, handler, by_id)]
        assert below, format_trace(spans)
    suggest = next(s for s in spans if s.name == "suggest trials")
    assert by_id[suggest.parent_id].kind == "server"
    # Log records carry the trace and span they were logged in.
    [record] = [r for r in receiver.logs if r.body == "asked for trial 0"]
    assert (record.trace_id, record.span_id, record.service) == (root.trace_id, root.span_id, "trial-worker")


def _descends_from(span: SpanRecord, ancestor: SpanRecord, by_id: dict[str, SpanRecord]) -> bool:
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        if span is ancestor:
            return True
    return False


# --- a collector that is away ------------------------------------------------------------------

AWAY_TRIALS = 4


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _about_export(output: str) -> list[str]:
    """The lines of ``output`` that speak of exporting telemetry (the exporters' own warnings
    quote "exporting", "retrying" or the OTLP path; ours, "collector")."""
    return [line for line in output.splitlines()
            if re.search(r"collector|export|retry|otlp|opentelemetry|/v1/(traces|metrics|logs)", line, re.I)]


@pytest.mark.parametrize("services_protocol", ["grpc", "http/protobuf"])
def test_a_collector_that_is_away_costs_one_line_per_process_and_loses_nothing(tmp_path: Path, monkeypatch, services_protocol):
    """Every process exports to a closed port: each says so in one line, none prints a
    traceback, the services stop within their grace (SIGTERM, not SIGKILL), and every trial's
    result, metrics and artifact are stored."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    # Prompt batches, so that exports fail while the trials run and again at exit.
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BLRP_SCHEDULE_DELAY": "200"}
    for name, value in {**otel, "OTEL_EXPORTER_OTLP_PROTOCOL": services_protocol}.items():
        monkeypatch.setenv(name, value)  # the services inherit it
    home = tmp_path / "suite"
    workers_protocol = "http/protobuf" if services_protocol == "grpc" else "grpc"
    suite = LocalSuite(home).start()
    try:
        name = f"away-{uuid.uuid4().hex[:6]}"
        with SuggestionClient(suite.suggestion_address) as client:
            client.create_study(name, [Float("x", -3, 3)], objectives={"loss": "minimize"}, algorithm="random",
                                max_trials=AWAY_TRIALS, seed=5)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "tuning_suite", "worker", "--study", name, "--suggestion-address",
             suite.suggestion_address, "--tracking-address", suite.tracking_address,
             "--train", "tests.e2e.worker_functions:traced"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "OTEL_EXPORTER_OTLP_PROTOCOL": workers_protocol,
                 "TUNING_HOME": str(tmp_path / f"worker-{i}")}) for i in range(2)]
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], outputs
    finally:
        codes = {service.name: service.stop() for service in reversed(suite.services)}
    # 0: the service ended on SIGTERM by itself; a SIGKILL after the grace would read -9.
    assert codes == {"suggestion service": 0, "tracking service": 0}
    logs = {path.name: path.read_text() for path in (home / "logs").glob("*.log")}
    for where, output in [*(("worker", output) for output in outputs), *logs.items()]:
        assert "Traceback" not in output, (where, output)
        said = _about_export(output)
        # Every process traced calls, so each had something to export: and said so once.
        assert len(said) == 1, (where, output)
        assert all(f"cannot export to the OpenTelemetry collector at {endpoint}" in line for line in said), said

    for variable in otel:  # the restarted suite exports nothing
        monkeypatch.delenv(variable)
    with LocalSuite(home) as restarted, SuggestionClient(restarted.suggestion_address) as client, \
            TrackingClient(restarted.tracking_address) as tracking:
        trials = list(client.get_study(name).trials())
        assert len(trials) == AWAY_TRIALS and all(t.state == pb.TRIAL_STATE_COMPLETED for t in trials), trials
        for trial in trials:
            run = tracking.get_run(trial.run_id)
            assert run.status == tpb.RUN_STATUS_FINISHED
            # The three reports, then the result (at the last step).
            assert [m.step for m in tracking.get_metric_history(run.id, "loss")] == [1, 2, 3, 3]
            assert [f.path for f in tracking.list_artifacts(run.id)] == ["notes.txt"]


LOGGING_SCRIPT = """
import logging
from tuning_common import telemetry
telemetry.configure_logging("WARNING")
telemetry.setup("trial-worker")
with telemetry.span("run trial"):
    logging.getLogger("client").warning("a line of the application")
"""


def test_the_log_exporter_never_exports_telemetry_about_telemetry():
    """Traces go to a closed port, logs to a receiver: the trace exporter's failures (and the one
    line about them) stay out of the exported logs, while the application's lines arrive."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with OtlpReceiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT":
                    receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BLRP_SCHEDULE_DELAY": "100"})
        result = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert receiver.wait_for(lambda: receiver.logs, 10)
    said = _about_export(result.stderr)
    assert len(said) == 1 and f"collector at {endpoint}" in said[0], result.stderr
    assert [record.body for record in receiver.logs] == ["a line of the application"]


RECOVERING_SCRIPT = """
import sys, threading
from tuning_common import telemetry
telemetry.PROBE_SECONDS = 0.5  # the test's patience, not the 15 s of a real process
telemetry.configure_logging("INFO")
telemetry.setup("trial-worker")
with telemetry.span("while away"):
    pass
sys.stdin.readline()  # the collector is there now
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
while not done.wait(0.1):
    with telemetry.span("back"):
        pass
"""


def test_exports_resume_when_the_collector_comes_back():
    """After the one warning, batches are dropped for a while, then the collector is tried
    again: once it answers, spans arrive and one line says so."""
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "2", "OTEL_BSP_SCHEDULE_DELAY": "100"})
    process = subprocess.Popen([sys.executable, "-c", RECOVERING_SCRIPT], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "telemetry on for trial-worker" in process.stderr.readline()
        warning = process.stderr.readline()
        assert "cannot export to the OpenTelemetry collector" in warning, warning
        with OtlpReceiver(port=port) as receiver:
            process.stdin.write("\n")
            process.stdin.flush()
            arrived = receiver.wait_for(lambda: any(s.name == "back" for s in receiver.spans), 30)
            process.stdin.write("\n")
            process.stdin.close()
            rest = process.stderr.read()
            assert process.wait(30) == 0, rest
        assert arrived
    finally:
        process.kill()
    [said] = _about_export(rest)  # nothing else about exporting, not even about the first batch
    assert said.endswith(f"the collector at http://127.0.0.1:{port} answers again"), rest
    assert not [s for s in receiver.spans if s.name == "while away"]  # dropped, not retried forever
