"""Optional OTLP log export (``otel-logs-exporter = otlp``): a LoggerProvider with a batch
processor and the OTLP/HTTP log exporter, built in each worker after fork with the tracer's
Resource, and a handler on the root logger.  Records carry the active span's context, so a
backend links each line to its request span.  Records of the ``opentelemetry`` loggers are not
exported: a failing export would otherwise feed itself.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.export import otlp

logger = logging.getLogger(__name__)

def severity(levelno: int) -> SeverityNumber:
    """Python level -> OpenTelemetry severity (DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21)."""
    return SeverityNumber(max(1, min(24, 5 + (levelno - 10) * 4 // 10)))


_SKIPPED = ("opentelemetry",)
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
            fields = {
                "timestamp": int(record.created * 1e9),
                "observed_timestamp": time.time_ns(),
                "severity_number": severity(record.levelno),
                "severity_text": _SEVERITY_TEXT.get(record.levelname, record.levelname),
                "body": record.getMessage(),
                "attributes": attributes,
            }
            if _emit_takes_fields(otel_logger):
                otel_logger.emit(context=otel_context.get_current(), **fields)
            else:  # SDKs before 1.38 take one LogRecord carrying the span context
                otel_logger.emit(_record_of_span(fields, otel_logger))
        except Exception:  # noqa: BLE001 - logging must never break the app
            self.handleError(record)


_fields_form: dict[type, bool] = {}


def _emit_takes_fields(otel_logger: Any) -> bool:
    """Whether this SDK's ``Logger.emit`` takes the record's fields as keywords (1.38 and later)."""
    kind = type(otel_logger)
    known = _fields_form.get(kind)
    if known is None:
        import inspect

        known = _fields_form[kind] = "context" in inspect.signature(otel_logger.emit).parameters
    return known


def _record_of_span(fields: dict[str, Any], otel_logger: Any) -> Any:
    """An SDK ``LogRecord`` with the active span's context, for SDKs whose ``emit`` takes one."""
    from opentelemetry.sdk._logs import LogRecord

    context = trace.get_current_span().get_span_context()
    return LogRecord(
        trace_id=context.trace_id,
        span_id=context.span_id,
        trace_flags=context.trace_flags,
        resource=getattr(otel_logger, "resource", None),
        **fields,
    )


class LogExport:
    """The worker's LoggerProvider and its root handler; shutdown detaches the handler first."""

    def __init__(self, provider: Any, handler: OTLPHandler) -> None:
        self.provider, self.handler = provider, handler

    def shutdown(self) -> None:
        self.handler.closed = True
        logging.getLogger().removeHandler(self.handler)
        self.provider.shutdown()


def build_log_exporter(settings: Settings) -> Any:
    if settings["otel-logs-exporter"] == "console":
        try:
            from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter as Console
        except ImportError:  # its name before SDK 1.39
            from opentelemetry.sdk._logs.export import ConsoleLogExporter as Console  # type: ignore[attr-defined,no-redef]

        return Console()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    otlp.limit_export_errors("opentelemetry.exporter.otlp.proto.http._log_exporter", "otel-logs-exporter")
    return otlp.build_otlp_exporter(OTLPLogExporter, settings, "logs")


def start_log_export(settings: Settings, resource: Any) -> LogExport:
    """In this process: LoggerProvider + batch processor + exporter, and the root-logger handler."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    queue = settings["otel-blrp-max-queue-size"]
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            build_log_exporter(settings),
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
