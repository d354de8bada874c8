"""A small in-memory OTLP/gRPC receiver: what the suite exports, kept as plain records.

The tests and benchmarks point the processes' ``OTEL_EXPORTER_OTLP_ENDPOINT`` at one of
these (on port 0), and on a laptop it shows traces without a collector or Jaeger:

    python -m tuning_common.otlp_receiver --port 4317       # then, for the processes:
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc

It prints each trace as an indented tree once no span of it has arrived for a while.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_KINDS = {trace_pb2.Span.SPAN_KIND_INTERNAL: "internal", trace_pb2.Span.SPAN_KIND_SERVER: "server",
          trace_pb2.Span.SPAN_KIND_CLIENT: "client", trace_pb2.Span.SPAN_KIND_PRODUCER: "producer",
          trace_pb2.Span.SPAN_KIND_CONSUMER: "consumer"}
_STATUSES = {0: "unset", 1: "ok", 2: "error"}


@dataclass(frozen=True)
class SpanRecord:
    service: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    kind: str  # internal, server, client, ...
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status: str  # unset, ok, error
    status_message: str
    events: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class MetricPoint:
    service: str
    name: str
    kind: str  # sum, gauge, histogram
    attributes: dict[str, Any]
    value: float  # a sum's or gauge's value; a histogram's sum
    count: int = 0  # a histogram's count
    bounds: tuple[float, ...] = ()  # a histogram's bucket boundaries
    bucket_counts: tuple[int, ...] = ()  # a histogram's count per bucket (one more than bounds)


@dataclass(frozen=True)
class LogRecord:
    service: str
    body: str
    severity: str
    trace_id: str
    span_id: str


def value_of(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: value_of(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def _attributes(items: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {item.key: value_of(item.value) for item in items}


@dataclass
class OtlpReceiver:
    """Traces, metrics and logs services on ``host:port`` (0: a free port), storing what arrives."""

    host: str = "127.0.0.1"
    port: int = 0
    spans: list[SpanRecord] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OtlpReceiver:
        server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.so_reuseport", 0)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self), server)
        self.port = server.add_insecure_port(f"{self.host}:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(1).wait()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """The variables that make a process export here, promptly."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "500"}

    def traces(self) -> dict[str, list[SpanRecord]]:
        """Spans by trace id, each trace's spans in start order."""
        grouped: dict[str, list[SpanRecord]] = defaultdict(list)
        with self._lock:
            for span in self.spans:
                grouped[span.trace_id].append(span)
        return {trace_id: sorted(spans, key=lambda s: s.start_ns) for trace_id, spans in grouped.items()}

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return condition()

    def _add(self, kind: str, records: list) -> None:
        with self._lock:
            getattr(self, kind).extend(records)


def _service(resource) -> str:
    return str(_attributes(resource.attributes).get("service.name", "?"))


def _by_service(resources, kind: str) -> Iterator[tuple[str, Any]]:
    """(service name, item) for every span, metric or log record of an export request."""
    for resource in resources:
        service = _service(resource.resource)
        for scope in getattr(resource, f"scope_{kind}"):
            for item in getattr(scope, "log_records" if kind == "logs" else kind):
                yield service, item


def _span(service: str, span) -> SpanRecord:
    return SpanRecord(
        service=service, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(), name=span.name, kind=_KINDS.get(span.kind, "?"),
        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
        attributes=_attributes(span.attributes), status=_STATUSES.get(span.status.code, "?"),
        status_message=span.status.message,
        events=tuple((event.name, _attributes(event.attributes)) for event in span.events))


def _points(service: str, metric) -> Iterator[MetricPoint]:
    kind = metric.WhichOneof("data")
    for point in getattr(metric, kind).data_points:
        attributes = _attributes(point.attributes)
        if kind == "histogram":
            yield MetricPoint(service, metric.name, kind, attributes, point.sum, point.count,
                              tuple(point.explicit_bounds), tuple(point.bucket_counts))
        else:
            number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
            yield MetricPoint(service, metric.name, kind, attributes, number)


class _Collector:
    def __init__(self, receiver: OtlpReceiver):
        self.receiver = receiver


class _Traces(_Collector, trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        self.receiver._add("spans", [_span(*item) for item in _by_service(request.resource_spans, "spans")])
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(_Collector, metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        self.receiver._add("metrics", [point for service, metric in _by_service(request.resource_metrics, "metrics")
                                       for point in _points(service, metric)])
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(_Collector, logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        self.receiver._add("logs", [
            LogRecord(service, str(value_of(record.body)), record.severity_text, record.trace_id.hex(),
                      record.span_id.hex()) for service, record in _by_service(request.resource_logs, "logs")])
        return logs_service_pb2.ExportLogsServiceResponse()


def format_trace(spans: list[SpanRecord]) -> str:
    """One trace as an indented tree: offset from the trace's start, duration, service, name, ids."""
    if not spans:
        return ""
    ids = {span.span_id for span in spans}
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else ""].append(span)
    start = min(span.start_ns for span in spans)
    lines = [f"trace {spans[0].trace_id}"]

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_ns):
            tuning = " ".join(f"{key.removeprefix('tuning.')}={value}" for key, value in span.attributes.items()
                              if key.startswith("tuning."))
            error = "  ERROR " + span.status_message if span.status == "error" else ""
            lines.append(f"{(span.start_ns - start) / 1e6:9.1f} ms {span.seconds * 1000:9.1f} ms  "
                         f"{'  ' * depth}{span.name} [{span.service}] {tuning}{error}".rstrip())
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuning_common.otlp_receiver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4317)
    parser.add_argument("--quiet-seconds", type=float, default=3.0,
                        help="print a trace once no span of it arrived for this long")
    args = parser.parse_args(argv)
    receiver = OtlpReceiver(args.host, args.port).start()
    print(f"OTLP/gRPC receiver on {receiver.endpoint}; Ctrl-C stops it", flush=True)
    printed: set[str] = set()
    try:
        while True:
            time.sleep(args.quiet_seconds)
            now = time.time_ns()
            for trace_id, spans in receiver.traces().items():
                if trace_id not in printed and now - max(s.end_ns for s in spans) > args.quiet_seconds * 1e9:
                    printed.add(trace_id)
                    print(format_trace(spans) + "\n", flush=True)
    except KeyboardInterrupt:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
