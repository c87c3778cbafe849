"""The first-request processor finishes the exit set-up once, then leaves the span chain."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from otel_uwsgi.runtime import exit_flush


def test_it_runs_at_the_first_server_span_then_leaves_the_chain(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(exit_flush, "_mask_stop_signals_in_handlers", lambda: calls.append("mask"))
    monkeypatch.setattr(exit_flush, "_register_c_exit_handler", lambda: calls.append("on_exit"))
    provider = TracerProvider(shutdown_on_exit=False)
    monkeypatch.setattr(exit_flush.state, "provider", provider)
    processor = exit_flush._at_first_request(register_exit_handler=True)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")

    tracer.start_span("internal", kind=SpanKind.INTERNAL).end()
    assert calls == [] and processor in provider._active_span_processor._span_processors

    tracer.start_span("GET", kind=SpanKind.SERVER).end()
    assert calls == ["on_exit", "mask"]
    assert processor not in provider._active_span_processor._span_processors

    tracer.start_span("GET", kind=SpanKind.SERVER).end()
    assert calls == ["on_exit", "mask"]
