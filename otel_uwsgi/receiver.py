"""A small OTLP/HTTP receiver: decodes protobuf (gzip or not) with opentelemetry-proto.

Used by ``otel-uwsgi check``, the Docker checker and the tests.  Binds to 127.0.0.1 by default;
it never logs request headers (they may carry tokens).  Fault modes (status codes, delays,
hanging) let tests play a sick collector.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received, with its resource flattened in."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    status_code: int
    events: tuple[str, ...]

    @property
    def pid(self) -> Optional[int]:
        return self.resource.get("process.pid")


def decode_traces(body: bytes, encoding: str = "") -> list[ReceivedSpan]:
    """Decode one OTLP/HTTP traces request body (``Content-Encoding`` gzip, deflate or none)."""
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        kind=_KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes=attributes(span.attributes),
                        resource=resource,
                        scope=ss.scope.name,
                        status_code=span.status.code,
                        events=tuple(e.name for e in span.events),
                    )
                )
    return spans


@dataclass
class Fault:
    """How the receiver misbehaves: answer ``status`` (with ``retry_after``), wait ``delay``
    seconds first, or ``hang`` until stopped."""

    status: int = 200
    delay: float = 0.0
    hang: bool = False
    retry_after: Optional[int] = None


@dataclass
class Stats:
    requests: int = 0
    bytes: int = 0
    encodings: set[str] = field(default_factory=set)
    content_types: set[str] = field(default_factory=set)
    errors: int = 0
    other_paths: dict[str, int] = field(default_factory=dict)


class Receiver:
    """OTLP/HTTP receiver on ``host:port`` (port 0: a free one). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self._port = host, port
        self.spans: list[ReceivedSpan] = []
        self.stats = Stats()
        self.fault = Fault()
        self.last_headers: dict[str, str] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle
    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet, no headers
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                receiver._handle(self)

        self._server = ThreadingHTTPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """Base URL, for ``otel-exporter-otlp-endpoint``."""
        return f"http://{self.host}:{self.port}"

    @property
    def traces_url(self) -> str:
        return self.endpoint + "/v1/traces"

    # -- requests
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        fault = self.fault
        if fault.hang:
            self._stopping.wait()
            return
        if fault.delay:
            self._stopping.wait(fault.delay)
        path = handler.path.split("?")[0]
        status = fault.status
        if status == 200 and path == "/v1/traces":
            encoding = (handler.headers.get("Content-Encoding") or "").lower()
            try:
                spans = decode_traces(body, encoding)
            except Exception:  # noqa: BLE001 - a bad body is a 400, as a collector answers
                status = 400
                spans = []
            with self._lock:
                self.stats.requests += 1
                self.stats.bytes += len(body)
                self.stats.encodings.add(encoding or "identity")
                self.stats.content_types.add(handler.headers.get("Content-Type") or "")
                self.last_headers = {k.lower(): v for k, v in handler.headers.items()}
                if status == 200:
                    self.spans.extend(spans)
                else:
                    self.stats.errors += 1
                self._lock.notify_all()
        elif status == 200:
            with self._lock:
                self.stats.other_paths[path] = self.stats.other_paths.get(path, 0) + 1
        payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
        handler.send_response(status)
        if fault.retry_after is not None and status != 200:
            handler.send_header("Retry-After", str(fault.retry_after))
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    # -- queries
    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float) -> bool:
        """Wait until ``predicate(spans)`` holds, up to ``timeout`` seconds. Returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self.spans)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.5))
            return True

    def server_spans(self) -> list[ReceivedSpan]:
        return [s for s in self.snapshot() if s.kind == "SERVER"]
