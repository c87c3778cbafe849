"""Counting what reached the collector, without the counting costing CPU during the run.

``otel_uwsgi.tools.receiver.Receiver`` decodes every request into Python objects as it arrives: at
saturation on ``/db10`` that takes most of a core on the same box and would compete with the
uWSGI being measured.  ``StoringReceiver`` is the same HTTP server answering the same way, but
keeps the raw bodies; they are decoded and counted after uWSGI has exited.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otel_uwsgi.tools.receiver import Receiver

_DECOMPRESS = {"gzip": gzip.decompress, "deflate": zlib.decompress}
SERVER_KIND = 2
# The views' own query (otel_uwsgi/demo/views.py).  Django's connection set-up adds two more
# DB spans per new connection (SELECT VERSION() ..., SET SESSION ...), which are not per request.
VIEW_QUERY = "SELECT %s"

# Spans one request produces: its server span plus one span per query of the view.
SPANS_PER_REQUEST = {"/": 1, "/db": 2, "/db10": 11, "/pg": 2}


class StoringReceiver(Receiver):
    """An OTLP/HTTP receiver that answers 200 at once and decodes later (see module docstring).

    Fault modes still behave as in :class:`Receiver` (its handler serves them).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.bodies: list[tuple[bytes, str]] = []
        self._bodies_lock = threading.Lock()
        self._ok = ExportTraceServiceResponse().SerializeToString()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        fault = self.fault
        if fault.hang or fault.delay or fault.status != 200 or handler.path.split("?")[0] != "/v1/traces":
            super()._handle(handler)
            return
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._bodies_lock:
            self.bodies.append((body, (handler.headers.get("Content-Encoding") or "").lower()))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(self._ok)))
        handler.end_headers()
        handler.wfile.write(self._ok)

    def count(self) -> SpanCount:
        with self._bodies_lock:
            bodies = list(self.bodies)
        total = SpanCount()
        for body, encoding in bodies:
            total.add(count_spans(body, encoding))
        return total


@dataclass
class SpanCount:
    requests: int = 0  # export requests
    bytes: int = 0  # compressed
    spans: int = 0  # all spans
    server: int = 0  # SERVER spans
    view_queries: int = 0  # DB spans of the views' own query
    bad: int = 0  # bodies that did not decode

    @property
    def per_request(self) -> int:
        """Spans that belong to requests: server spans and the views' query spans."""
        return self.server + self.view_queries

    def add(self, other: SpanCount) -> None:
        for name in ("requests", "bytes", "spans", "server", "view_queries", "bad"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def count_spans(body: bytes, encoding: str = "") -> SpanCount:
    """Count the spans of one OTLP/HTTP traces request body."""
    count = SpanCount(requests=1, bytes=len(body))
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(_DECOMPRESS.get(encoding, bytes)(body))
    except Exception:  # noqa: BLE001 - a broken body is counted, not fatal
        count.bad = 1
        return count
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                count.spans += 1
                if span.kind == SERVER_KIND:
                    count.server += 1
                elif any(kv.value.string_value == VIEW_QUERY for kv in span.attributes):
                    count.view_queries += 1
    return count
