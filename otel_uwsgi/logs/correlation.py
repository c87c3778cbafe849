"""Log correlation: trace and span ids on every ``logging.LogRecord``.

Always on when otel-uwsgi is: every record gets ``otelTraceID``, ``otelSpanID``,
``otelTraceSampled`` and ``otelServiceName``, the attribute names of
opentelemetry-instrumentation-logging, so a format such as ``%(otelTraceID)s`` works in uWSGI's
log and a record outside any span formats as ``0`` instead of failing.  The record factory is
installed at import, in the master, and inherited by the workers (it owns no thread or socket).
``otel-python-log-correlation = true`` also sets the root format, as that instrumentation does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from opentelemetry import trace

from otel_uwsgi.config.settings import Settings

#: The logging instrumentation's default format for OTEL_PYTHON_LOG_CORRELATION.
DEFAULT_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] [trace_id=%(otelTraceID)s "
    "span_id=%(otelSpanID)s resource.service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s] "
    "- %(message)s"
)

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
