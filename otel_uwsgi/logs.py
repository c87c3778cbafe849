"""Log correlation and optional OTLP log export.

**Correlation** (always, when otel-uwsgi is on): every ``logging.LogRecord`` gets ``otelTraceID``,
``otelSpanID``, ``otelTraceSampled`` and ``otelServiceName``, the attribute names of
opentelemetry-instrumentation-logging, so a format such as ``%(otelTraceID)s`` works in uWSGI's
log and a record outside any span formats as ``0`` instead of failing.  The record factory is
installed at import, in the master, and inherited by the workers (it owns no thread or socket).
``otel-python-log-correlation = true`` also sets the root format, as that instrumentation does.

**Export** (``otel-logs-exporter = otlp``): a LoggerProvider with a batch processor and the
OTLP/HTTP log exporter, built in each worker after fork with the tracer's Resource, and a handler
on the root logger.  Records carry the active span's context, so a backend links each line to
its request span.  Records of the ``opentelemetry`` loggers are not exported: a failing export
would otherwise feed itself.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber

from otel_uwsgi.options import Settings

logger = logging.getLogger("otel_uwsgi")

#: The logging instrumentation's default format for OTEL_PYTHON_LOG_CORRELATION.
DEFAULT_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] [trace_id=%(otelTraceID)s "
    "span_id=%(otelSpanID)s resource.service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s] "
    "- %(message)s"
)
_SKIPPED = ("opentelemetry",)

_previous_factory: Optional[Callable[..., logging.LogRecord]] = None
_service_name = ""


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _previous_factory is not None
    record = _previous_factory(*args, **kwargs)
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        record.otelTraceID = format(ctx.trace_id, "032x")
        record.otelSpanID = format(ctx.span_id, "016x")
        record.otelTraceSampled = ctx.trace_flags.sampled
    else:
        record.otelTraceID, record.otelSpanID, record.otelTraceSampled = "0", "0", False
    record.otelServiceName = _service_name
    return record


def inject_trace_context(service_name: str) -> None:
    """Put the current trace/span ids on every LogRecord (idempotent; chains the previous factory)."""
    global _previous_factory, _service_name
    _service_name = service_name
    if _previous_factory is None:
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_record_factory)


def configure_logging(settings: Settings) -> None:
    """At import: correlation attributes, and the root format/level the options ask for."""
    inject_trace_context(settings["otel-service-name"])
    level = settings["otel-python-log-level"]
    if settings["otel-python-log-correlation"]:
        # basicConfig does nothing when the root logger already has handlers (the app's config wins).
        logging.basicConfig(format=settings["otel-python-log-format"] or DEFAULT_FORMAT)
    if level:
        logging.getLogger().setLevel(level.upper())


def severity(levelno: int) -> SeverityNumber:
    """Python level -> OpenTelemetry severity (DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21)."""
    return SeverityNumber(max(1, min(24, 5 + (levelno - 10) * 4 // 10)))


_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}


class OTLPHandler(logging.Handler):
    """Hands Python log records to a LoggerProvider, with the active span's context."""

    def __init__(self, provider: Any) -> None:
        super().__init__()
        self.provider = provider
        self.closed = False
        self._loggers: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if self.closed or record.name.startswith(_SKIPPED):
            return
        try:
            otel_logger = self._loggers.get(record.name)
            if otel_logger is None:
                otel_logger = self._loggers.setdefault(record.name, self.provider.get_logger(record.name))
            attributes: dict[str, Any] = {
                "code.file.path": record.pathname,
                "code.function.name": record.funcName,
                "code.line.number": record.lineno,
            }
            if record.exc_info and record.exc_info[0] is not None:
                exc_type, exc, tb = record.exc_info
                attributes["exception.type"] = exc_type.__name__
                attributes["exception.message"] = str(exc)
                attributes["exception.stacktrace"] = "".join(traceback.format_exception(exc_type, exc, tb))
            otel_logger.emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=otel_context.get_current(),
                severity_number=severity(record.levelno),
                severity_text=_SEVERITY_TEXT.get(record.levelname, record.levelname),
                body=record.getMessage(),
                attributes=attributes,
            )
        except Exception:  # noqa: BLE001 - logging must never break the app
            self.handleError(record)


class LogExport:
    """The worker's LoggerProvider and its root handler; shutdown detaches the handler first."""

    def __init__(self, provider: Any, handler: OTLPHandler) -> None:
        self.provider, self.handler = provider, handler

    def shutdown(self) -> None:
        self.handler.closed = True
        logging.getLogger().removeHandler(self.handler)
        self.provider.shutdown()


def build_exporter(settings: Settings) -> Any:
    if settings["otel-logs-exporter"] == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    from otel_uwsgi.signals import limit_export_errors, otlp_arguments
    from otel_uwsgi.tracing import _without_otlp_environment

    limit_export_errors("opentelemetry.exporter.otlp.proto.http._log_exporter", "otel-logs-exporter")
    with _without_otlp_environment():
        return OTLPLogExporter(**otlp_arguments(settings, "logs"))


def start_log_export(settings: Settings, resource: Any) -> LogExport:
    """In this process: LoggerProvider + batch processor + exporter, and the root-logger handler."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    queue = settings["otel-blrp-max-queue-size"]
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            build_exporter(settings),
            schedule_delay_millis=settings["otel-blrp-schedule-delay"],
            max_queue_size=queue,
            max_export_batch_size=min(512, queue),
        )
    )
    handler = OTLPHandler(provider)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, OTLPHandler)]:
        root.removeHandler(old)  # inherited from a parent process: its provider is not ours
    root.addHandler(handler)
    return LogExport(provider, handler)
