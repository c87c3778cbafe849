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
from opentelemetry._logs import SeverityNumber

from otel_uwsgi.config.settings import Settings
from otel_uwsgi.export import otlp

logger = logging.getLogger("otel_uwsgi")

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

    otlp.limit_export_errors("opentelemetry.exporter.otlp.proto.http._log_exporter", "otel-logs-exporter")
    return otlp.build_exporter(OTLPLogExporter, settings, "logs")


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
