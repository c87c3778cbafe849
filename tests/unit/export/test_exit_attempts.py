"""At exit a failed batch is not retried (export/otlp.py ``stop_retrying``): the SDK's own OTLP
exporter against a real HTTP server that answers 503, counted on the server side."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_uwsgi.export.otlp import stop_retrying
from otel_uwsgi.export.span_exporter import FastOTLPSpanExporter


class Refusing(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.posts = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.posts += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = self
        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def collector() -> Iterator[Refusing]:
    server = Refusing()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _spans():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("t").start_span("s").end()
    return memory.get_finished_spans()


@pytest.mark.parametrize("exporter_class", [OTLPSpanExporter, FastOTLPSpanExporter])
def test_after_stop_retrying_a_503_batch_is_tried_once(collector, exporter_class):
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
    spans = _spans()

    once = exporter_class(endpoint=endpoint, timeout=3)
    if not stop_retrying(once):
        pytest.skip("this opentelemetry-exporter-otlp-proto-http has no retry signal (before 1.34 it sleeps)")
    retrying = exporter_class(endpoint=endpoint, timeout=3)
    started = time.monotonic()
    assert retrying.export(spans) is SpanExportResult.FAILURE
    assert collector.posts >= 2 and time.monotonic() - started >= 0.5  # the SDK retries with backoff (~1 s, jittered)

    collector.posts = 0
    started = time.monotonic()
    assert once.export(spans) is SpanExportResult.FAILURE
    assert collector.posts == 1
    assert time.monotonic() - started < 0.5


def test_an_exporter_without_a_retry_signal_is_left_alone():
    assert stop_retrying(object()) is False
