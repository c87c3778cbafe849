"""The OTLP exporter arguments of every signal, resolved once from the options, and the limit on
the SDK's export-failure lines."""

from __future__ import annotations

import logging
import os

import pytest

from otel_uwsgi.config.settings import load
from otel_uwsgi.export import otlp
from otel_uwsgi.export.otlp import endpoint
from otel_uwsgi.runtime.resource import build_resource
from otel_uwsgi.tools.receiver import Receiver
from otel_uwsgi.traces.provider import build_provider


@pytest.mark.parametrize(
    ("opt", "env", "signal", "expected"),
    [
        ({}, {}, "metrics", "http://localhost:4318/v1/metrics"),
        ({"otel-exporter-otlp-endpoint": b"http://c:4318/"}, {}, "logs", "http://c:4318/v1/logs"),
        ({}, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m/x"}, "metrics", "http://m/x"),
        # the ini's generic endpoint beats the environment's specific one (uwsgi option > env)
        ({"otel-exporter-otlp-endpoint": b"http://ini:1"}, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://env/x"},
         "metrics", "http://ini:1/v1/metrics"),
        ({"otel-exporter-otlp-logs-endpoint": b"http://l/logs"}, {}, "logs", "http://l/logs"),
    ],
)
def test_signal_endpoint(opt, env, signal, expected):
    """Each signal's URL follows the same precedence as the traces URL."""
    assert otlp.endpoint(load(opt, env), signal) == expected


def test_signal_specific_headers_and_compression_win():
    """Metrics-only headers replace the generic ones; compression falls back to the generic gzip."""
    from opentelemetry.exporter.otlp.proto.http import Compression

    settings = load({"otel-exporter-otlp-headers": b"a=1", "otel-exporter-otlp-metrics-headers": b"b=2"}, {})
    args = otlp.otlp_arguments(settings, "metrics")
    assert args["headers"] == {"b": "2"}
    assert args["compression"] is Compression.Gzip
    assert otlp.otlp_arguments(settings, "logs")["headers"] == {"a": "1"}


def test_export_error_limiter_lets_one_line_through_per_interval():
    """A collector without a metrics pipeline costs one log line per interval per process, with advice."""
    limiter = otlp.ExportErrorLimiter("otel-metrics-exporter", interval_s=3600)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, None, None)

    first = record("Failed to export metrics batch code: 404, reason: Not Found")
    assert limiter.filter(first) and "otel-metrics-exporter = none" in first.msg
    assert not limiter.filter(record("Failed to export metrics batch code: 404, reason: Not Found"))
    assert limiter.filter(record("something else"))


def test_traces_endpoint_appends_path_only_to_base_url():
    assert endpoint(load({"otel-exporter-otlp-endpoint": b"http://c:4318/"}, {}), "traces") == "http://c:4318/v1/traces"
    assert endpoint(load({"otel-exporter-otlp-traces-endpoint": b"http://c/x"}, {}), "traces") == "http://c/x"
    assert endpoint(load({}, {}), "traces") == "http://localhost:4318/v1/traces"


@pytest.mark.parametrize("fast_export", [b"true", b"false"])
def test_exporter_ignores_environment_when_ini_sets_headers(monkeypatch, fast_export):
    """Ini headers replace environment headers entirely (the SDK would merge them): what reaches a
    real receiver carries the ini's header and not the environment's, with either exporter."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-env=leak")
    with Receiver() as receiver:
        settings = load(
            {
                "otel-exporter-otlp-headers": b"x-ini=1",
                "otel-exporter-otlp-endpoint": receiver.endpoint.encode(),
                "otel-fast-export": fast_export,
            },
            {},
        )
        provider = build_provider(settings, build_resource(settings))
        assert os.environ["OTEL_EXPORTER_OTLP_HEADERS"] == "x-env=leak"  # environment restored
        provider.get_tracer("t").start_span("s").end()
        assert provider.force_flush()
        assert receiver.wait_for(lambda spans: len(spans) == 1, 5)
        provider.shutdown()
    assert receiver.last_headers.get("x-ini") == "1"
    assert "x-env" not in receiver.last_headers
