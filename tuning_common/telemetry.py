"""OpenTelemetry for every process of the suite: one set-up, one attribute vocabulary.

Each ``main()`` (suggestion service, tracking service, gateway, worker, Tuner, demo) calls
:func:`setup` once with its service name. The standard ``OTEL_*`` variables configure it:

- ``OTEL_SDK_DISABLED=true`` turns everything off.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or a per-signal ``..._TRACES/METRICS/LOGS_ENDPOINT``)
  exports every signal over OTLP; ``OTEL_EXPORTER_OTLP_PROTOCOL`` is ``http/protobuf`` (the
  default, port 4318) or ``grpc`` (port 4317); headers, timeouts, compression and
  certificates are the exporters' own variables.
- ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``: ``otlp``,
  ``console`` or ``none`` per signal (default: ``otlp`` when an endpoint is set, else none).
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the process; the sampler is
  ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default ``parentbased_always_on``);
  ``OTEL_BSP_*`` and ``OTEL_METRIC_EXPORT_INTERVAL`` tune batching.

With nothing configured, nothing is instrumented, exported or printed: the spans and
instruments below are OpenTelemetry's no-op ones.

A collector that does not answer costs the process one warning line and no waiting: the
exporters' own log records stay off the console (DEBUG only), a failed export drops batches
for :data:`PROBE_SECONDS` before the next try, and at exit the process gives its last export
at most :data:`SHUTDOWN_SECONDS` (docs/TELEMETRY.md, "When the collector is away").

Span and attribute names live here only. Spans are named ``verb object`` and carry ids from
:data:`ATTRIBUTES` (the ``tuning.*`` namespace): never hyperparameter values, data or tokens.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tuning_common.errors import InvalidArgument, TuningError

log = logging.getLogger(__name__)

SUGGESTION_SERVICE = "suggestion-service"
TRACKING_SERVICE = "tracking-service"
GATEWAY = "gateway"
TRIAL_WORKER = "trial-worker"

# The tuning.* vocabulary: keyword -> attribute. span(), set_attributes() and the metric
# helpers accept these keywords only, so a new attribute is added here or not at all.
ATTRIBUTES = {
    "study": "tuning.study",
    "trial_id": "tuning.trial.id",
    "trial_number": "tuning.trial.number",
    "trial_ids": "tuning.trial.ids",
    "trial_state": "tuning.trial.state",
    "run_id": "tuning.run.id",
    "experiment_id": "tuning.experiment.id",
    "worker": "tuning.worker",
    "algorithm": "tuning.algorithm",
    "pruner": "tuning.pruner",
    "step": "tuning.step",
    "count": "tuning.count",
    "history": "tuning.history.size",
    "prefetch": "tuning.suggest.prefetch",
    "suggest_status": "tuning.suggest.status",
    "decision": "tuning.pruning.decision",
    "artifact_path": "tuning.artifact.path",
    "artifact_bytes": "tuning.artifact.bytes",
    "metrics_count": "tuning.metrics.count",
    "error_reason": "tuning.error.reason",
}

# gRPC codes that are the server's fault (OpenTelemetry's RPC conventions); any other code
# (NOT_FOUND, ALREADY_EXISTS, ABORTED, ...) is an answer, not an error of the server span.
SERVER_ERROR_CODES = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})

_EXPORTERS = ("otlp", "console", "none")
_enabled = False
_configured = False
_tracer = trace.get_tracer("tuning")
_meter = metrics.get_meter("tuning")
# The providers setup() installed, shut down by shutdown() (at exit) within SHUTDOWN_SECONDS.
_providers: list = []
# What the process knows of its collectors, by signal (set by setup() for the OTLP exporters;
# signals sent to one endpoint share one guard).
_guards: dict[str, _Guard] = {}

# At exit, what is still buffered gets this long to reach the collector: a stopping service
# stays well inside its grace period (10 s) and the CLI returns at once, whatever the collector does.
SHUTDOWN_SECONDS = 5.0
# After an export failed (the exporter gave up after its own retries), batches are dropped
# without a try for this long, then the next one probes the collector again: a collector that
# is away costs no retries, and the span queue never overflows behind a blocked export.
PROBE_SECONDS = 15.0

# Bucket boundaries per unit for every histogram of the suite (see histogram()): durations
# from a fraction of a millisecond (a cached health check) to a minute (a long GP fit), about
# three buckets a decade, so that a typical latency never shares a bucket with one ten times it.
BUCKETS: dict[str, tuple[float, ...]] = {
    "ms": (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000),
    "s": (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
}

# The loggers of the OTLP exporters (all under opentelemetry.exporter) and of the SDK's batch
# processors and metric reader: their records describe the export itself, so they go through
# _ExportLog instead of the console, and never to the OTLP log exporter.
_EXPORT_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk._shared_internal",
                   "opentelemetry.sdk.trace.export", "opentelemetry.sdk.metrics._internal.export",
                   "opentelemetry.sdk._logs._internal.export")
# Where the one line about an unreachable collector (and, at DEBUG, every failure) is logged.
export_log = logging.getLogger(f"{__name__}.export")


# --- set-up ---------------------------------------------------------------------------------


def exporters_from_env(environ: dict[str, str] | os._Environ = os.environ) -> dict[str, str]:
    """Which exporter each signal gets (``otlp``, ``console`` or ``none``) under ``environ``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return {"traces": "none", "metrics": "none", "logs": "none"}
    chosen = {}
    for signal in ("traces", "metrics", "logs"):
        endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        value = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower() or ("otlp" if endpoint else "none")
        if value not in _EXPORTERS:
            raise InvalidArgument(f"OTEL_{signal.upper()}_EXPORTER",
                                  f"{value!r} is not one of {', '.join(_EXPORTERS)}")
        chosen[signal] = value
    return chosen


def protocol_from_env(signal: str, environ: dict[str, str] | os._Environ = os.environ) -> str:
    value = (environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
             or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if value not in ("grpc", "http/protobuf"):
        raise InvalidArgument("OTEL_EXPORTER_OTLP_PROTOCOL", f"{value!r} is not grpc or http/protobuf")
    return value


def enabled() -> bool:
    """Whether :func:`setup` installed an SDK (traces or metrics) in this process."""
    return _enabled


def setup(service_name: str) -> bool:
    """Configures OpenTelemetry for this process from ``OTEL_*``; returns whether anything is on.

    Call it early in ``main()`` (before databases are opened, so their engines are
    instrumented); later calls change nothing. At exit, :func:`shutdown` exports what is left,
    within :data:`SHUTDOWN_SECONDS`. A malformed variable raises InvalidArgument naming it,
    before anything is installed.
    """
    global _enabled, _configured
    if _configured:
        return _enabled
    chosen = exporters_from_env()
    for signal, kind in chosen.items():
        if kind == "otlp":
            protocol_from_env(signal)
    _configured = True
    if all(value == "none" for value in chosen.values()):
        return False
    from opentelemetry.sdk.resources import (
        SERVICE_INSTANCE_ID,
        SERVICE_NAME,
        SERVICE_VERSION,
        OTELResourceDetector,
        Resource,
    )

    attributes: dict[str, Any] = {SERVICE_INSTANCE_ID: uuid.uuid4().hex, SERVICE_VERSION: _version()}
    if SERVICE_NAME not in OTELResourceDetector().detect().attributes:
        attributes[SERVICE_NAME] = service_name
    resource = Resource.create(attributes)

    endpoints = _collector_endpoints(chosen)
    by_endpoint = {endpoint: _Guard(endpoint) for endpoint in set(endpoints.values())}
    _guards.update({signal: by_endpoint[endpoint] for signal, endpoint in endpoints.items()})
    if _guards:
        _route_export_logs()
    # The providers' own exit handlers would wait up to 30 s per signal for a collector that
    # is gone; shutdown() bounds them all together.
    if chosen["traces"] != "none":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The sampler comes from OTEL_TRACES_SAMPLER.
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(_exporter("traces", chosen["traces"])))
        trace.set_tracer_provider(tracer_provider)
        _providers.append(tracer_provider)
    if chosen["metrics"] != "none":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(_exporter("metrics", chosen["metrics"]))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        metrics.set_meter_provider(meter_provider)
        _providers.append(meter_provider)
    if chosen["logs"] != "none":
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(_exporter("logs", chosen["logs"])))
        set_logger_provider(logger_provider)
        handler = LoggingHandler(logger_provider=logger_provider)
        # Records about telemetry itself (OpenTelemetry's loggers, the collector warning) would
        # be exported through the very exporter they are about, failing again.
        handler.addFilter(_not_about_telemetry)
        logging.getLogger().addHandler(handler)
        _providers.append(logger_provider)
    atexit.register(shutdown)

    if chosen["traces"] != "none" or chosen["metrics"] != "none":
        _enabled = True
        _meter.create_observable_gauge(
            "db.client.connections.usage", [_pool_usage], unit="{connection}",
            description="Connections of each database pool, by state (used, idle)")
    log.info("telemetry on for %s: traces %s, metrics %s, logs %s", resource.attributes.get(SERVICE_NAME),
             chosen["traces"], chosen["metrics"], chosen["logs"])
    return True


def flush(timeout_s: float = 10.0) -> None:
    """Exports what is buffered now (for processes that outlive their work, like Ray's workers),
    waiting at most ``timeout_s`` (the SDK's span and log flushes ignore their timeout)."""
    _within(timeout_s, "flush", [provider.force_flush for provider in _providers])


def shutdown(timeout_s: float = SHUTDOWN_SECONDS) -> None:
    """Exports what is buffered and stops the exporters, within ``timeout_s`` whatever the
    collector does (registered to run at exit by :func:`setup`; later calls do nothing)."""
    providers = list(_providers)
    _providers.clear()
    if not providers:
        return
    guards = set(_guards.values())
    for guard in guards:
        guard.close()
    if not _within(timeout_s, "shutdown", [provider.shutdown for provider in providers]):
        # A collector that neither answers nor refuses: stop the retries, close the connections,
        # and leave an export still blocked in a socket behind (its thread is a daemon).
        for guard in guards:
            if guard.exporting:
                guard.reason = f"no answer within {timeout_s:g} s at exit"
                guard.failed("shutdown")


def _within(timeout_s: float, what: str, calls: list[Callable[[], object]]) -> bool:
    """Runs ``calls`` at once, each on a daemon thread; whether all finished in ``timeout_s``.

    Side by side rather than in turn: a slow trace export must not use up the time of the
    final metric export (the last trial counts are read at that moment)."""

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as error:  # one provider's failure must not keep the others from stopping
            export_log.debug("telemetry %s failed: %r", what, error)

    threads = [threading.Thread(target=run, args=(call,), name=f"telemetry-{what}", daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        export_log.debug("telemetry %s gave up after %.1f s", what, timeout_s)
        return False
    return True


def _exporter(signal: str, kind: str):
    if kind == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return {"traces": ConsoleSpanExporter, "metrics": ConsoleMetricExporter, "logs": ConsoleLogRecordExporter}[
            signal]()
    if protocol_from_env(signal) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    exporter = {"traces": OTLPSpanExporter, "metrics": OTLPMetricExporter, "logs": OTLPLogExporter}[signal]()
    return _guarded_classes()[signal](exporter, _guards[signal])


def _collector_endpoints(chosen: dict[str, str],
                         environ: dict[str, str] | os._Environ = os.environ) -> dict[str, str]:
    """Where each OTLP signal goes: its own endpoint, the common one, or the exporter's default."""
    endpoints = {}
    for signal, kind in chosen.items():
        if kind == "otlp":
            default = "http://localhost:4317" if protocol_from_env(signal, environ) == "grpc" else \
                "http://localhost:4318"
            endpoints[signal] = (environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
                                 or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or default)
    return endpoints


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tuning-suite")
    except PackageNotFoundError:
        return "unknown"


# --- the collector --------------------------------------------------------------------------


class _Guard:
    """What this process knows about one collector, shared by the exporters of the signals sent
    there: whether the last export got through, whether the one warning was given, whether the
    process is shutting down (then a failure stops all those exporters at once)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.reason = "no answer"
        self.warned = False
        self.closing = False
        self._down = False
        # An exporter reported trouble (retrying) since the last export that got through.
        self._troubled = False
        self._exporting = 0  # exports under way
        self._next_probe = 0.0
        self._lock = threading.Lock()
        self._exporters: list[_Guarded] = []

    def add(self, exporter: _Guarded) -> None:
        self._exporters.append(exporter)

    @property
    def exporting(self) -> bool:
        return self._exporting > 0

    @property
    def troubled(self) -> bool:
        return self._down or self._troubled

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        with self._lock:
            self._exporting += 1
        try:
            yield
        finally:
            with self._lock:
                self._exporting -= 1

    def close(self) -> None:
        """The process is stopping: from now on a failure stops every exporter, and an export
        retrying right now is not waited for."""
        self.closing = True
        if self._troubled:
            self.abort()

    def should_try(self) -> bool:
        """Whether to export now: always while the collector answers; once per PROBE_SECONDS while
        it does not; and at exit, whatever happened before. One failed export must not cost the
        last one (the final trial counts): a collector still away fails it at once, and that
        failure stops every exporter (closing)."""
        with self._lock:
            if not self._down or self.closing:
                return True
            now = time.monotonic()
            if now < self._next_probe:
                return False
            self._next_probe = now + PROBE_SECONDS
            return True

    def succeeded(self) -> None:
        with self._lock:
            was_down, self._down, self._troubled = self._down, False, False
        if was_down:
            export_log.info("telemetry: the collector at %s answers again", self.endpoint)

    def failed(self, signal: str) -> None:
        """An export failed after the exporter's own retries."""
        with self._lock:
            self._down = True
            self._next_probe = time.monotonic() + PROBE_SECONDS
            first, self.warned = not self.warned, True
        if first:
            export_log.warning(
                "telemetry: cannot export to the OpenTelemetry collector at %s (%s); telemetry is dropped while "
                "it does not answer (said once; TUNING_LOG_LEVEL=DEBUG shows each failure)",
                self.endpoint, self.reason)
        else:
            export_log.debug("telemetry: %s export failed (%s)", signal, self.reason)
        if self.closing:
            self.abort()

    def trouble(self, record: logging.LogRecord) -> None:
        """An exporter logged a problem (a transient error it is about to retry, or its failure)."""
        message = record.getMessage()
        export_log.debug("%s: %s", record.name, message, exc_info=record.exc_info)
        if "shutdown" in message.lower():  # an exporter that abort() stopped says so: nothing new
            return
        self._troubled = True
        self.reason = _reason(message)
        if self.closing:  # no time for the exporter's back-off at exit
            self.abort()

    def abort(self) -> None:
        """Stops every exporter now: retries end, connections close, later exports fail at once."""
        with self._lock:
            self._down = True
            exporters = list(self._exporters)
        for exporter in exporters:
            exporter.abort()


def _reason(message: str) -> str:
    """The gist of an exporter's message (which quotes whole exception chains)."""
    for pattern in (r"connection refused|timed? ?out|name or service not known|no route to host|connection reset|"
                    r"certificate verify failed", r"code: \d+|StatusCode\.[A-Z_]+"):
        found = re.search(pattern, message, re.IGNORECASE)
        if found:
            return found.group(0)
    return message[:120]


class _Guarded:
    """An OTLP exporter behind its collector's _Guard: it skips exports while the collector is
    away and reports each outcome."""

    signal = ""

    def __init__(self, inner, guard: _Guard) -> None:
        self._inner = inner
        self._guard = guard
        self._stopped = False
        self._stop_lock = threading.Lock()
        guard.add(self)

    def _export(self, export: Callable[[], Any], success: Any, failure: Any) -> Any:
        guard = self._guard
        if self._stopped or not guard.should_try():
            return failure
        with guard.counting():
            result = export()
        if result == success:
            guard.succeeded()
        else:
            guard.failed(self.signal)
        return result

    def abort(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._inner.shutdown()

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.abort()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)


@functools.cache
def _guarded_classes() -> dict[str, type[_Guarded]]:
    """The exporter class of each signal, built on first use: the SDK is imported only when telemetry is on."""
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Spans(_Guarded, SpanExporter):
        signal = "traces"

        def export(self, spans):
            return self._export(lambda: self._inner.export(spans), SpanExportResult.SUCCESS,
                                SpanExportResult.FAILURE)

    class Metrics(_Guarded, MetricExporter):
        signal = "metrics"

        def __init__(self, inner, guard: _Guard) -> None:
            # The reader asks its exporter for temporality and aggregation: the OTLP exporter's.
            MetricExporter.__init__(self, inner._preferred_temporality, inner._preferred_aggregation)
            _Guarded.__init__(self, inner, guard)

        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
            return self._export(lambda: self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
                                MetricExportResult.SUCCESS, MetricExportResult.FAILURE)

    class Logs(_Guarded, LogRecordExporter):
        signal = "logs"

        def export(self, batch):
            return self._export(lambda: self._inner.export(batch), LogRecordExportResult.SUCCESS,
                                LogRecordExportResult.FAILURE)

    return {"traces": Spans, "metrics": Metrics, "logs": Logs}


class _ExportLog(logging.Handler):
    """Takes the exporters' and batch processors' records off the console: an exporter's
    warning or error goes to the guard of its signal (whose one warning line says why); a
    processor's warning (a full queue) passes on while the collectors answer, and is a
    consequence, at DEBUG, while one does not."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        # Without the handler's lock: emit() may stop exporters whose threads are logging too;
        # what it shares is the guard's, under the guard's lock.
        if self.filter(record):
            self.emit(record)
        return record

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry.exporter") and record.levelno >= logging.WARNING:
            signal = _signal_of(record)
            for guard in {_guards[signal]} if signal in _guards else set(_guards.values()):
                guard.trouble(record)
        elif record.levelno >= logging.WARNING and not any(guard.troubled for guard in _guards.values()):
            export_log.log(record.levelno, "%s", record.getMessage())
        else:
            export_log.debug("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)


# The HTTP exporters log under their own module's name; the gRPC ones share one logger and
# name the signal in the message ("exporting traces to ...", "Failed to export spans batch").
_SIGNAL_MODULES = {"trace_exporter": "traces", "metric_exporter": "metrics", "_log_exporter": "logs"}


def _signal_of(record: logging.LogRecord) -> str | None:
    """Which signal an exporter's record is about (None: it does not say)."""
    module = record.name.rsplit(".", 1)[-1]
    if module in _SIGNAL_MODULES:
        return _SIGNAL_MODULES[module]
    found = re.search(r"export(?:ing)? (spans|traces|metrics|logs)\b", record.getMessage())
    return None if found is None else {"spans": "traces"}.get(found.group(1), found.group(1))


def _route_export_logs() -> None:
    handler = _ExportLog()
    for name in _EXPORT_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False


def _not_about_telemetry(record: logging.LogRecord) -> bool:
    return not record.name.startswith(("opentelemetry", export_log.name))


# --- spans ----------------------------------------------------------------------------------


def attributes(**values: Any) -> dict[str, Any]:
    """``values`` under their ``tuning.*`` names (KeyError for a keyword not in ATTRIBUTES); None is left out."""
    return {ATTRIBUTES[key]: value for key, value in values.items() if value is not None}


def set_attributes(span: Span | None = None, **values: Any) -> None:
    """Sets ``tuning.*`` attributes on ``span`` (default: the current span)."""
    span = span or trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes(**values))


@contextlib.contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, expected: tuple[type[BaseException], ...] = (),
         **values: Any) -> Iterator[Span]:
    """A span named ``name`` (``verb object``) with ``tuning.*`` attributes, current inside the block.

    An exception leaving the block marks the span as an error, unless it is one of
    ``expected`` or a TuningError whose code is an answer rather than a fault (NOT_FOUND,
    a lost lease...): those only get their reason as ``tuning.error.reason``.
    """
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes(**values), record_exception=False,
                                       set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as error:
            record_error(current, error, expected)
            raise


def record_error(current: Span, error: BaseException, expected: tuple[type[BaseException], ...] = ()) -> None:
    if not current.is_recording():
        return
    if isinstance(error, TuningError):
        current.set_attribute(ATTRIBUTES["error_reason"], error.reason)
        if grpc.StatusCode[error.code] not in SERVER_ERROR_CODES:
            return
    elif isinstance(error, expected) or not isinstance(error, Exception):
        return
    current.record_exception(error)
    current.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:300]))


def stage(name: str) -> contextlib.AbstractContextManager:
    """A child span for a stage of an algorithm (``fit gp``, ``optimize acquisition``, ``sample tpe``):
    the hook the suggestion service hands to the pure algorithms through their context."""
    return span(name)


def record_stages(stages: Sequence[tuple[str, int, int]]) -> None:
    """Child spans of the current span for stages timed elsewhere (``(name, start_ns, end_ns)``,
    e.g. an algorithm's stages in a model process, which has no tracer of its own)."""
    if not trace.get_current_span().is_recording():
        return
    for name, start_ns, end_ns in stages:
        _tracer.start_span(name, start_time=start_ns).end(end_time=end_ns)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No spans inside (instrumented libraries' included): for housekeeping that runs every few
    seconds and would otherwise start a trace each time."""
    if not _enabled:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def current_context() -> otel_context.Context:
    """The active trace context, to carry work into another thread (see :func:`attached`)."""
    return otel_context.get_current()


@contextlib.contextmanager
def attached(saved: otel_context.Context | None) -> Iterator[None]:
    """Runs the block in ``saved`` (from :func:`current_context`), or as is when None."""
    if saved is None:
        yield
        return
    token = otel_context.attach(saved)
    try:
        yield
    finally:
        otel_context.detach(token)


def meter() -> metrics.Meter:
    """The suite's meter (a no-op until :func:`setup` installs a provider)."""
    return _meter


def histogram(name: str, unit: str, description: str, on: metrics.Meter | None = None) -> metrics.Histogram:
    """A histogram with the bucket boundaries of its unit (:data:`BUCKETS`; KeyError for another
    unit): every histogram of the suite is made here, so none gets the SDK's default buckets,
    which are milliseconds whatever the unit."""
    return (on or _meter).create_histogram(name, unit=unit, description=description,
                                           explicit_bucket_boundaries_advisory=BUCKETS[unit])


# --- databases ------------------------------------------------------------------------------

_engines: weakref.WeakSet = weakref.WeakSet()
# Transaction control says nothing a trace needs (Database.run issues BEGIN itself on SQLite).
_TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")


def instrument_engine(engine) -> None:
    """Statement spans for ``engine`` (from the SQLAlchemy instrumentation) and its pool in
    ``db.client.connections.usage``, when telemetry is on.

    Per engine rather than the instrumentor's global ``create_engine`` patch, and leaner: no
    ``connect`` span per transaction, no span for transaction control, no work at all for
    statements outside a sampled trace, and pool usage read at export instead of counted at
    every checkout. That made the instrumentation's cost per ask a fraction of what it was
    (docs/BENCHMARKS.md, "Telemetry overhead").
    """
    if not _enabled:
        return
    from opentelemetry.instrumentation.sqlalchemy import __version__
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    class StatementTracer(EngineTracer):
        @classmethod
        def _register_event_listener(cls, target, identifier, func, *args, **kw):
            if identifier in ("before_cursor_execute", "after_cursor_execute", "handle_error"):
                super()._register_event_listener(target, identifier, func, *args, **kw)

        def _before_cur_exec(self, conn, cursor, statement, params, context, executemany):
            if not trace.get_current_span().get_span_context().trace_flags.sampled or \
                    statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
                return statement, params
            return super()._before_cur_exec(conn, cursor, statement, params, context, executemany)

    StatementTracer(trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__), engine, None)
    _engines.add(engine)


def _pool_usage(_options) -> list:
    from opentelemetry.metrics import Observation

    observations = []
    for engine in list(_engines):
        pool, url = engine.pool, engine.url
        name = f"{url.host or ''}{f':{url.port}' if url.port else ''}/{url.database or ''}"
        if hasattr(pool, "checkedout"):
            observations += [Observation(pool.checkedout(), {"pool.name": name, "state": "used"}),
                             Observation(pool.checkedin(), {"pool.name": name, "state": "idle"})]
    return observations


# --- gRPC -----------------------------------------------------------------------------------


def record_rpc_status(code: grpc.StatusCode, message: str, reason: str | None = None) -> None:
    """Marks the current server span with the status a handler ended with (called where errors
    are mapped, since the instrumentation does not see ``abort_with_status``)."""
    current = trace.get_current_span()
    if not current.is_recording():
        return
    current.set_attribute("rpc.grpc.status_code", code.value[0])
    if reason:
        current.set_attribute(ATTRIBUTES["error_reason"], reason)
    if code in SERVER_ERROR_CODES:
        current.set_status(Status(StatusCode.ERROR, f"{code.name}: {message}"[:300]))


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The interceptors that go first on every server when telemetry is on: the server span
    (with the caller's trace context) and the per-RPC count and latency histogram."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    # Probes call Health/Check every few seconds: a trace each time would bury the trials.
    def traced(details: grpc.HandlerCallDetails) -> bool:
        return not details.method.startswith(("/grpc.health.", "/grpc.reflection."))

    return [aio_server_interceptor(filter_=traced), _RpcMetricsInterceptor()]


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """``channel`` with client spans and trace-context propagation when telemetry is on."""
    if not _enabled:
        return channel
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    return intercept_channel(channel, client_interceptor())


def aio_client_interceptors() -> list:
    """For ``grpc.aio`` channels (the gateway's): client spans and propagation when telemetry is on."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors as interceptors

    return interceptors()


class _RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """``rpc.server.duration`` (ms) by service, method and status code: the request count too."""

    def __init__(self) -> None:
        self._duration = histogram("rpc.server.duration", "ms", "Time to serve an RPC, by method and status code")

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        record = self._duration.record

        def finish(started: float, context, failed: bool) -> None:
            code = context.code()
            if code is None:
                code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
            value = code.value[0] if isinstance(code, grpc.StatusCode) else int(code)
            record((time.perf_counter() - started) * 1000, {**base, "rpc.grpc.status_code": value})

        def wrap(behaviour: Callable) -> Callable:
            if inspect.isasyncgenfunction(behaviour):
                async def streaming(request, context):
                    started, failed = time.perf_counter(), True
                    try:
                        async for item in behaviour(request, context):
                            yield item
                        failed = False
                    finally:
                        finish(started, context, failed)

                return streaming

            async def unary(request, context):
                started, failed = time.perf_counter(), True
                try:
                    result = await behaviour(request, context)
                    failed = False
                    return result
                finally:
                    finish(started, context, failed)

            return unary

        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        return handler._replace(**{kind: wrap(getattr(handler, kind)) for kind in kinds
                                   if getattr(handler, kind) is not None})


# --- HTTP -----------------------------------------------------------------------------------


def asgi_middleware(app):
    """The gateway's ASGI app inside OpenTelemetry's HTTP server spans and metrics, when on.

    Query strings are dropped from the span attributes: filters may quote parameter values.
    Credentials stay redacted even when header capture is turned on
    (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``).
    """
    if not _enabled:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, get_custom_headers

    redacted = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrf-token",
                *get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS)]

    def without_query(current: Span, scope: dict) -> None:
        if current.is_recording() and scope.get("query_string"):
            path = scope.get("path", "")
            current.set_attribute("http.target", path)
            server = scope.get("server") or ("", None)
            host = f"{server[0]}:{server[1]}" if server[1] else server[0]
            current.set_attribute("http.url", f"{scope.get('scheme', 'http')}://{host}{path}")

    return OpenTelemetryMiddleware(app, server_request_hook=without_query, exclude_spans=["receive", "send"],
                                   http_capture_headers_sanitize_fields=redacted)


# --- logs -----------------------------------------------------------------------------------


class TraceFormatter(logging.Formatter):
    """Appends ``trace_id=... span_id=...`` to lines logged inside a sampled span."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line += f" trace_id={context.trace_id:032x} span_id={context.span_id:016x}"
        return line


def configure_logging(default_level: str = "INFO") -> None:
    """Log lines to stderr at $TUNING_LOG_LEVEL (else ``default_level``), with trace ids inside
    spans; Alembic only when it has a problem."""
    logging.basicConfig(level=os.environ.get("TUNING_LOG_LEVEL", default_level))
    formatter = TraceFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(formatter)
    logging.getLogger("alembic").setLevel(logging.WARNING)
