"""Trace ids on every log record, and Python levels as OpenTelemetry severities."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_uwsgi.logs import correlation
from otel_uwsgi.logs import export as logs


def test_log_records_carry_trace_context():
    """Inside a span a record has its trace and span ids; outside, '0' (so formats never fail)."""
    correlation.inject_trace_context("svc")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        inside = logging.getLogger("t").makeRecord("t", logging.INFO, __file__, 1, "m", None, None)
        ctx = span.get_span_context()
    outside = logging.getLogger("t").makeRecord("t", logging.INFO, __file__, 1, "m", None, None)
    assert inside.otelTraceID == format(ctx.trace_id, "032x") and inside.otelSpanID == format(ctx.span_id, "016x")
    assert inside.otelTraceSampled is True and inside.otelServiceName == "svc"
    assert outside.otelTraceID == "0" and outside.otelSpanID == "0"
    assert logging.Formatter(correlation.DEFAULT_FORMAT).format(outside)


@pytest.mark.parametrize(("level", "number"), [(10, 5), (20, 9), (30, 13), (40, 17), (50, 21), (1, 1), (99, 24)])
def test_severity_numbers(level, number):
    """Python levels map onto OpenTelemetry severities (DEBUG 5 ... CRITICAL 21), clamped to 1..24."""
    assert logs.severity(level).value == number
