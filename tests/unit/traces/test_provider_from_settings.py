"""The sampler and the bounded exit flush of a provider built from settings (no uWSGI needed)."""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import sampling

from otel_uwsgi.config.settings import load
from otel_uwsgi.runtime.resource import build_resource
from otel_uwsgi.traces.flush import shutdown_bounded
from otel_uwsgi.traces.provider import build_provider, build_sampler


def test_sampler_choice_and_ratio():
    assert build_sampler(load({"otel-traces-sampler": b"always_off"}, {})) is sampling.ALWAYS_OFF
    ratio = build_sampler(load({"otel-traces-sampler": b"traceidratio", "otel-traces-sampler-arg": b"0.25"}, {}))
    assert isinstance(ratio, sampling.TraceIdRatioBased) and ratio.rate == 0.25


def test_bounded_shutdown_gives_up_on_a_dead_collector():
    """With nothing listening, the exit flush returns within its bound instead of the ~10 s export."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = load({"otel-exporter-otlp-endpoint": f"http://127.0.0.1:{port}".encode()}, {})
    provider = build_provider(settings, build_resource(settings))
    with provider.get_tracer("t").start_as_current_span("x"):
        pass
    started = time.monotonic()
    assert shutdown_bounded(provider, 0.5) is False
    assert time.monotonic() - started < 1.5
