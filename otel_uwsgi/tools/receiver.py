"""A small OTLP/HTTP receiver: decodes protobuf (gzip or not) with opentelemetry-proto.

Used by ``otel-uwsgi check``, the Docker checker and the tests.  Binds to 127.0.0.1 by default;
it never logs request headers (they may carry tokens).  Fault modes (status codes, delays,
hanging) let tests play a sick collector.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otel_uwsgi.tools import waiting

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
    status_message: str = ""
    event_attributes: tuple[dict[str, Any], ...] = ()
    start_ns: int = 0
    end_ns: int = 0

    @property
    def pid(self) -> Optional[int]:
        return self.resource.get("process.pid")


#: The largest request body the receiver reads, and the most it inflates one to: beyond either it
#: answers 413 (it listens on 0.0.0.0 for the Docker checker; a collector caps both too).
MAX_BODY = 32 << 20
MAX_INFLATED = 128 << 20


class TooLarge(ValueError):
    """A body over :data:`MAX_BODY`, or one that inflates past :data:`MAX_INFLATED`."""


def decode_traces(body: bytes, encoding: str = "") -> list[ReceivedSpan]:
    """Decode one OTLP/HTTP traces request body (``Content-Encoding`` gzip, deflate or none)."""
    body = _inflate(body, encoding)
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
                        status_message=span.status.message,
                        event_attributes=tuple(attributes(e.attributes) for e in span.events),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return spans


SIGNAL_PATHS = ("/v1/metrics", "/v1/logs")


def _inflate(body: bytes, encoding: str, limit: Optional[int] = None) -> bytes:
    """``body`` decompressed (gzip, deflate or none), never past ``limit`` bytes (default
    :data:`MAX_INFLATED`; :class:`TooLarge`)."""
    if encoding not in ("gzip", "deflate"):
        return body
    limit = MAX_INFLATED if limit is None else limit
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"the body inflates past {limit} bytes")
    if not inflater.eof:
        raise zlib.error("truncated compressed body")
    return out


@dataclass(frozen=True)
class ReceivedPoint:
    """One metric data point as received, with its metric and resource flattened in.

    ``value`` is the number (sum, gauge) or the count (histograms); ``sum`` the histogram sum.
    ``request`` numbers the /v1/metrics request that carried it (0, 1, ...).
    """

    name: str
    kind: str
    unit: str
    value: float
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    time_ns: int
    start_ns: int
    temporality: int = 0
    monotonic: Optional[bool] = None
    sum: Optional[float] = None
    request: int = 0

    @property
    def pid(self) -> Optional[int]:
        return self.resource.get("process.pid")


def decode_metrics(body: bytes, encoding: str = "", *, request: int = 0) -> list[ReceivedPoint]:
    """Decode one OTLP/HTTP metrics request body into data points."""
    message = ExportMetricsServiceRequest()
    message.ParseFromString(_inflate(body, encoding))
    points: list[ReceivedPoint] = []
    for rm in message.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data") or "none"
                data = getattr(metric, kind, None)
                for dp in getattr(data, "data_points", ()):
                    is_number = kind in ("sum", "gauge")
                    points.append(
                        ReceivedPoint(
                            name=metric.name,
                            kind=kind,
                            unit=metric.unit,
                            value=getattr(dp, dp.WhichOneof("value") or "as_int") if is_number else dp.count,
                            attributes=attributes(dp.attributes),
                            resource=resource,
                            scope=sm.scope.name,
                            time_ns=dp.time_unix_nano,
                            start_ns=dp.start_time_unix_nano,
                            temporality=getattr(data, "aggregation_temporality", 0),
                            monotonic=data.is_monotonic if kind == "sum" else None,
                            sum=None if is_number else dp.sum,
                            request=request,
                        )
                    )
    return points


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as received, with its resource flattened in."""

    body: Any
    severity_text: str
    severity_number: int
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    time_ns: int

    @property
    def pid(self) -> Optional[int]:
        return self.resource.get("process.pid")


def decode_logs(body: bytes, encoding: str = "") -> list[ReceivedLog]:
    """Decode one OTLP/HTTP logs request body into log records."""
    message = ExportLogsServiceRequest()
    message.ParseFromString(_inflate(body, encoding))
    records: list[ReceivedLog] = []
    for rl in message.resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for record in sl.log_records:
                records.append(
                    ReceivedLog(
                        body=any_value(record.body),
                        severity_text=record.severity_text,
                        severity_number=record.severity_number,
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        attributes=attributes(record.attributes),
                        resource=resource,
                        scope=sl.scope.name,
                        time_ns=record.time_unix_nano,
                    )
                )
    return records


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
    faulted: int = 0  # requests met with a fault mode (an error status, or hanging)


class Receiver:
    """OTLP/HTTP receiver on ``host:port`` (port 0: a free one). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self._port = host, port
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedPoint] = []  # /v1/metrics
        self.logs: list[ReceivedLog] = []  # /v1/logs
        self.signal_requests: dict[str, int] = {"/v1/metrics": 0, "/v1/logs": 0}
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

    # -- requests
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:  # read nothing: a bad or huge length is answered at once
            handler.close_connection = True
            self._answer(handler, 413 if length > MAX_BODY else 400, b"", None)
            return
        body = handler.rfile.read(length)
        fault = self.fault
        if fault.hang or fault.status != 200:
            with self._lock:
                self.stats.faulted += 1
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
            except TooLarge:
                status, spans = 413, []
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
        elif status == 200 and path in SIGNAL_PATHS:
            status = self._receive_signal(path, body, (handler.headers.get("Content-Encoding") or "").lower())
        elif status == 200:
            with self._lock:
                self.stats.other_paths[path] = self.stats.other_paths.get(path, 0) + 1
        payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
        self._answer(handler, status, payload, fault.retry_after)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, payload: bytes, retry_after: Optional[int]) -> None:
        handler.send_response(status)
        if retry_after is not None and status != 200:
            handler.send_header("Retry-After", str(retry_after))
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
        return self.wait_until(lambda: predicate(list(self.spans)), timeout)

    def server_spans(self) -> list[ReceivedSpan]:
        return [s for s in self.snapshot() if s.kind == "SERVER"]

    # -- metrics and logs
    def _receive_signal(self, path: str, body: bytes, encoding: str) -> int:
        """Decode one /v1/metrics or /v1/logs request and keep its records; the HTTP status to answer."""
        try:
            if path == "/v1/metrics":
                with self._lock:
                    number = self.signal_requests[path]
                records: list[Any] = decode_metrics(body, encoding, request=number)
            else:
                records = decode_logs(body, encoding)
        except TooLarge:
            return 413
        except Exception:  # noqa: BLE001 - a bad body is a 400, as a collector answers
            return 400
        with self._lock:
            self.signal_requests[path] += 1
            (self.points if path == "/v1/metrics" else self.logs).extend(records)
            self._lock.notify_all()
        return 200

    def metric_points(self, name: Optional[str] = None) -> list[ReceivedPoint]:
        with self._lock:
            return [p for p in self.points if name is None or p.name == name]

    def log_records(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self.logs)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (which may read any of the lists) holds, up to ``timeout`` seconds;
        each request received wakes the wait."""
        with self._lock:
            return waiting.wait_until(predicate, timeout, 0.5, condition=self._lock)
