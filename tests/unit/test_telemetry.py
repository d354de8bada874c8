"""The telemetry set-up's pure parts: which exporters the OTEL_* variables choose, the tuning.*
vocabulary, error marking and trace ids in log lines (spans from a local SDK provider, so the
process-wide one stays untouched)."""

from __future__ import annotations

import logging

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, use_span

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
