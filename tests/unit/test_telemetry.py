"""The telemetry set-up's pure parts: which exporters the OTEL_* variables choose, the tuning.*
vocabulary, error marking, trace ids in log lines and histogram buckets (spans and metrics
from local SDK providers, so the process-wide ones stay untouched)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, use_span

from tests.conftest import ROOT
from tuning_common import telemetry
from tuning_common.errors import InvalidArgument, NotFound, Unavailable


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, ("none", "none", "none")),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp", "otlp", "otlp")),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ("otlp", "none", "none")),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_LOGS_EXPORTER": "none"}, ("otlp", "otlp", "none")),
    ({"OTEL_TRACES_EXPORTER": "console"}, ("console", "none", "none")),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, ("none", "none", "none")),
])
def test_exporters_follow_the_standard_variables(environ, expected):
    chosen = telemetry.exporters_from_env(environ)
    assert (chosen["traces"], chosen["metrics"], chosen["logs"]) == expected


def test_malformed_variables_are_refused_by_name():
    with pytest.raises(InvalidArgument) as error:
        telemetry.exporters_from_env({"OTEL_METRICS_EXPORTER": "prometheus"})
    assert error.value.field == "OTEL_METRICS_EXPORTER"
    with pytest.raises(InvalidArgument) as error:
        telemetry.protocol_from_env("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert error.value.field == "OTEL_EXPORTER_OTLP_PROTOCOL"
    assert telemetry.protocol_from_env("traces", {}) == "http/protobuf"
    assert telemetry.protocol_from_env("metrics", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                                   "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}) == "grpc"


def test_attributes_come_from_the_one_vocabulary():
    assert telemetry.attributes(study="s", trial_id=3, run_id=None) == {"tuning.study": "s", "tuning.trial.id": 3}
    assert all(name.startswith("tuning.") for name in telemetry.ATTRIBUTES.values())
    with pytest.raises(KeyError):
        telemetry.attributes(learning_rate=0.1)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


@pytest.mark.parametrize(("error", "is_error"), [
    (NotFound("no study 'x'", reason="STUDY_NOT_FOUND"), False),
    (Unavailable("database busy"), True),
    (RuntimeError("bug"), True),
    (KeyboardInterrupt(), False),
])
def test_only_faults_mark_a_span_as_an_error(spans, error, is_error):
    tracer, exporter = spans
    with tracer.start_as_current_span("work", record_exception=False, set_status_on_exception=False) as span:
        telemetry.record_error(span, error)
    finished = exporter.get_finished_spans()[0]
    assert (finished.status.status_code is StatusCode.ERROR) == is_error
    assert bool(finished.events) == is_error  # the exception event goes with the error status only
    if isinstance(error, NotFound):
        assert finished.attributes["tuning.error.reason"] == "STUDY_NOT_FOUND"


def test_expected_exceptions_are_not_errors(spans):
    class Pruned(Exception):
        pass

    tracer, exporter = spans
    with tracer.start_as_current_span("train", set_status_on_exception=False) as span:
        telemetry.record_error(span, Pruned(), expected=(Pruned,))
    assert exporter.get_finished_spans()[0].status.status_code is StatusCode.UNSET


def test_rpc_status_marks_server_faults_only(spans):
    tracer, exporter = spans
    for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL):
        with tracer.start_as_current_span(code.name) as span, use_span(span):
            telemetry.record_rpc_status(code, "message", "REASON")
    found, internal = exporter.get_finished_spans()
    assert found.status.status_code is StatusCode.UNSET and found.attributes["rpc.grpc.status_code"] == 5
    assert internal.status.status_code is StatusCode.ERROR and internal.attributes["rpc.grpc.status_code"] == 13


def test_log_lines_inside_a_span_carry_its_ids(spans):
    tracer, _ = spans
    formatter = telemetry.TraceFormatter("%(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert formatter.format(record) == "hello"
    with tracer.start_as_current_span("work") as span:
        context = span.get_span_context()
        line = formatter.format(record)
    assert line == f"hello trace_id={context.trace_id:032x} span_id={context.span_id:016x}"


def test_without_setup_nothing_is_instrumented():
    # The test process never calls setup(): servers and channels stay as they are.
    assert not telemetry.enabled()
    assert telemetry.server_interceptors() == [] and telemetry.aio_client_interceptors() == []
    channel = grpc.insecure_channel("127.0.0.1:1")
    assert telemetry.traced_channel(channel) is channel
    channel.close()


# --- histogram buckets ------------------------------------------------------------------------

SOURCE_FOLDERS = ("gateway", "suggestion_service", "tracking_service", "trial_worker", "tuning_common", "benchmarks")


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of a function or method called ``name`` in the suite's own source."""
    found = []
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and name in (getattr(node.func, "attr", None),
                                                           getattr(node.func, "id", None)):
                    found.append((path, node))
    return found


def test_every_histogram_is_made_with_the_buckets_of_its_unit():
    # create_histogram only inside telemetry.histogram(), which picks the boundaries by unit.
    direct = [(path.relative_to(ROOT), node.lineno) for path, node in _calls("create_histogram")]
    assert direct == [(Path("tuning_common/telemetry.py"), _line_of(telemetry.histogram, "create_histogram"))]
    made = _calls("histogram")
    assert {path.name for path, _ in made} >= {"telemetry.py", "instruments.py"}
    for path, node in made:
        unit = node.args[1] if len(node.args) > 1 else next(k.value for k in node.keywords if k.arg == "unit")
        assert isinstance(unit, ast.Constant) and unit.value in telemetry.BUCKETS, (path, node.lineno)


def _line_of(function, text: str) -> int:
    import inspect

    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


# One millisecond to ten seconds: the span of an RPC, a suggestion or a GP fit.
DURATIONS_S = (0.001, 0.01, 0.1, 1.0, 10.0)
PER_SECOND = {"ms": 1000.0, "s": 1.0}


@pytest.mark.parametrize("unit", sorted(telemetry.BUCKETS))
def test_histogram_buckets_fit_their_unit(unit):
    assert set(telemetry.BUCKETS) == set(PER_SECOND), "a new unit needs its durations here"
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    duration = telemetry.histogram("test.duration", unit, "a duration", on=provider.get_meter("test"))
    for seconds in DURATIONS_S:
        duration.record(seconds * PER_SECOND[unit])
    [point] = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    bounds = tuple(point.explicit_bounds)
    assert bounds == telemetry.BUCKETS[unit] and list(bounds) == sorted(set(bounds))
    # Each decade its own bucket, none below the first boundary or above the last.
    counts = list(point.bucket_counts)
    assert counts[0] == 0 and counts[-1] == 0 and counts.count(1) == len(DURATIONS_S), counts
    provider.shutdown()


def test_each_export_reads_a_fresh_trial_census():
    """The final export at shutdown follows the last tell by milliseconds: it must count it."""
    from suggestion_service import instruments

    completed = iter(range(1, 100))
    calls = []

    def census():
        calls.append(1)
        return {"COMPLETED": next(completed)}, 0

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instruments.observe_trials(census, on=provider.get_meter("test"))
    for expected in (1, 2, 3):  # three exports in quick succession
        data = {m.name: m.data.data_points for m in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics}
        assert [p.value for p in data["tuning.trials"]] == [expected]
        assert [p.value for p in data["tuning.trials.retried"]] == [0]
    assert len(calls) == 3  # one census per export, shared by both gauges
    provider.shutdown()


def test_one_failed_export_does_not_cost_the_last_one():
    """A collector that missed one export (a deadline under load) is skipped for a while, but
    the export at exit is tried all the same: it carries the final counts. If the collector is
    still away, that one failure stops every exporter of that collector at once."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    class Inner:
        def __init__(self, results):
            self.results, self.exported, self.stopped = list(results), 0, False

        def export(self, _batch):
            self.exported += 1
            return self.results.pop(0)

        def shutdown(self):
            self.stopped = True

    spans = telemetry._guarded_classes()["traces"]
    guard = telemetry._Guard("http://collector:4317")
    answering = Inner([SpanExportResult.FAILURE, SpanExportResult.SUCCESS])
    exporter = spans(answering, guard)
    assert exporter.export([]) == SpanExportResult.FAILURE  # the one warning; probing later
    assert exporter.export([]) == SpanExportResult.FAILURE and answering.exported == 1  # skipped
    guard.close()
    assert exporter.export([]) == SpanExportResult.SUCCESS and answering.exported == 2
    assert not answering.stopped

    guard = telemetry._Guard("http://collector:4317")
    away, other = Inner([SpanExportResult.FAILURE] * 2), Inner([])
    first, second = spans(away, guard), spans(other, guard)
    first.export([])
    guard.close()
    assert first.export([]) == SpanExportResult.FAILURE and away.exported == 2
    assert away.stopped and other.stopped  # the exit costs no more tries
    assert second.export([]) == SpanExportResult.FAILURE and other.exported == 0
