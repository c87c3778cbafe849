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


def _place(tmp_path):
    import os

    from otel_uwsgi.traces.journal.directory import Instance
    from otel_uwsgi.traces.journal.region import Owner
    from otel_uwsgi.traces.provider import JournalPlace

    return JournalPlace(Instance(str(tmp_path), "1-1"), "worker", Owner(os.getpid(), 1, 1, 0, 1))


def test_the_journal_is_on_by_default_and_off_on_request(tmp_path):
    """A uWSGI process gets the span journal (a file in its instance directory); otel-span-journal =
    false, a console exporter or the SDK's own exporter (otel-fast-export = false) keep the in-memory queue."""
    from otel_uwsgi.traces.provider import journal_processor

    on = build_provider(load({}, {}), build_resource(load({}, {})), journal=_place(tmp_path / "on"))
    assert journal_processor(on) is not None and list((tmp_path / "on" / "1-1").glob("worker-*.journal"))
    for ini in ({"otel-span-journal": b"false"}, {"otel-traces-exporter": b"console"},
                {"otel-fast-export": b"false"}):
        settings = load(ini, {})
        provider = build_provider(settings, build_resource(settings), journal=_place(tmp_path / "off"))
        assert journal_processor(provider) is None, ini
    assert not list((tmp_path / "off").rglob("*.journal"))


def test_the_masters_exit_exporter_gives_a_hanging_collector_the_flush_timeout_only():
    """build_span_exporter(timeout_s=...): each request to a collector that never answers ends
    after that, not after otel-exporter-otlp-timeout (the master ships busy workers' journals at
    its exit with it: one request per journal held a stop 10 s each)."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    from otel_uwsgi.tools.receiver import Receiver
    from otel_uwsgi.traces.provider import build_span_exporter

    with Receiver() as receiver:
        receiver.fault.hang = True
        settings = load({"otel-exporter-otlp-endpoint": receiver.endpoint.encode(),
                         "otel-exporter-otlp-timeout": b"10"}, {})  # fmt: skip
        exporter = build_span_exporter(settings, timeout_s=0.5)
        started = time.monotonic()
        assert exporter.export_body(b"", 1) is SpanExportResult.FAILURE
        took = time.monotonic() - started
        exporter.shutdown()
    assert 0.4 < took < 3.0, f"{took:.1f} s"
